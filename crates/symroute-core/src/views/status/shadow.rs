//! Rules of others that come before ours and take their traffic elsewhere: `status`'s
//! `shadowed_by` and `doctor`'s `shadowing` check.

use serde::Serialize;

use crate::model::{Rule, Snapshot, LOCAL_TABLE};
use crate::settings::Settings;
use crate::views::iproute::{rule_text, table_name};
use crate::views::rule_walk::{has_default, has_routes, selector_covers};

/// A foreign rule that comes before one of ours and sends its traffic to another table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Shadow {
    /// Our rule that loses.
    pub ours: String,
    /// The rule that wins.
    pub rule: String,
    pub priority: u32,
    pub table: String,
    /// `full`: its table has a default route, so all of our rule's traffic goes there.
    /// `partial`: only some destinations (the rule has a `to`, or its table no default).
    pub extent: ShadowExtent,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ShadowExtent {
    Full,
    Partial,
}

/// Foreign rules that come before `ours` (a `from` rule of ours) and send its traffic to
/// another table. Locally generated traffic has `iif lo` and no mark, so only rules without
/// `iif` or with `iif lo`, and without an `fwmark` that needs a mark, count. Rules with
/// selectors symroute does not model (uid range, ports, ...) are left out: they cannot be
/// judged from the snapshot. The local table never shadows (it holds
/// no default), nor do tables that are empty.
pub fn shadows_of(snapshot: &Snapshot, settings: &Settings, ours: &Rule) -> Vec<Shadow> {
    let Some(src) = ours.src else {
        return Vec::new();
    };
    snapshot
        .rules
        .iter()
        .filter(|f| {
            f.family == ours.family
                && f.protocol != settings.protocol
                && f.priority < ours.priority
                && f.table != ours.table
                && f.table != LOCAL_TABLE
                && !f.other_selectors()
                && f.suppress_prefixlen.is_none()
                && f.iif.as_deref().is_none_or(|i| i == "lo")
                && f.fwmark.is_none_or(|(mark, mask)| mark & mask == 0)
                && selector_covers(f.src, src)
                && has_routes(snapshot, f.table, f.family)
        })
        .map(|f| Shadow {
            ours: rule_text(ours),
            rule: rule_text(f),
            priority: f.priority,
            table: table_name(f.table),
            extent: if f.dst.is_none() && has_default(snapshot, f.table, f.family) {
                ShadowExtent::Full
            } else {
                ShadowExtent::Partial
            },
        })
        .collect()
}
