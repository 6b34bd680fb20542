//! Checks of symroute's own state: in sync, tables free of others' use, rules not shadowed.

use std::collections::BTreeSet;

use super::{finding, Finding, Verdict};
use crate::model::host::HostFacts;
use crate::model::Snapshot;
use crate::settings::Settings;
use crate::views::status::{self, ShadowExtent, State, Status};

pub(super) fn check_sync(status: &Status) -> Vec<Finding> {
    if status.in_sync {
        return vec![finding(
            "sync",
            Verdict::Ok,
            "every interface's table and rules are as a sync would make them".into(),
            None,
        )];
    }
    let mut out = Vec::new();
    for i in &status.interfaces {
        match i.state {
            State::Pending => out.push(finding(
                "sync",
                Verdict::Fail,
                format!(
                    "{}: {} change(s) pending, first: {}",
                    i.ifname,
                    i.pending.len(),
                    i.pending.first().map_or("", String::as_str)
                ),
                Some(format!(
                    "symroute sync {} (and check that an event integration is installed)",
                    i.ifname
                )),
            )),
            State::Refused => out.push(finding(
                "sync",
                Verdict::Fail,
                i.error
                    .clone()
                    .unwrap_or_else(|| format!("{}: refused", i.ifname)),
                Some("see the `tables` findings for a free table_base".into()),
            )),
            _ => {}
        }
    }
    if !status.exempt.pending.is_empty() {
        out.push(finding(
            "sync",
            Verdict::Fail,
            format!(
                "exemption rules: {} change(s) pending, first: {}",
                status.exempt.pending.len(),
                status.exempt.pending[0]
            ),
            Some("symroute sync".into()),
        ));
    }
    for s in &status.stale {
        out.push(finding(
            "sync",
            Verdict::Fail,
            format!(
                "stale: {} rule(s) of ours point at table {}, whose interface is gone",
                s.rules.len(),
                s.table
            ),
            Some("symroute sync (collects state of vanished interfaces)".into()),
        ));
    }
    out
}

/// Tables in symroute's range used by someone else: foreign routes in them, foreign rules
/// pointing at them, a name for them in iproute2's files.
pub(super) fn check_tables(
    snapshot: &Snapshot,
    settings: &Settings,
    status: &Status,
    facts: &HostFacts,
) -> Vec<Finding> {
    // Interfaces that get (or would get) a table: the ones that matter.
    let wanted: Vec<(&str, u32, u32)> = status
        .interfaces
        .iter()
        .filter(|i| i.managed && !i.addresses.is_empty())
        .map(|i| (i.ifname.as_str(), i.ifindex, i.table))
        .collect();
    let mut out = Vec::new();
    let mut suggestion = None;
    let mut fix = |snapshot: &Snapshot| {
        suggestion
            .get_or_insert_with(|| {
                let indexes: Vec<u32> = wanted.iter().map(|w| w.1).collect();
                match free_table_base(snapshot, settings, facts, &indexes) {
                    Some(base) => format!(
                        "set `table_base = {base}` in /etc/symroute/symroute.toml (tables \
                         {base}+ifindex are free), then `symroute sync`"
                    ),
                    None => "set table_base in /etc/symroute/symroute.toml to a free range".into(),
                }
            })
            .clone()
    };
    for (name, _, table) in &wanted {
        let foreign_route = snapshot
            .table(*table)
            .iter()
            .find(|r| r.protocol != settings.protocol);
        let foreign_rule = snapshot
            .rules
            .iter()
            .find(|r| r.protocol != settings.protocol && r.table == *table);
        if let Some(route) = foreign_route {
            out.push(finding(
                "tables",
                Verdict::Fail,
                format!(
                    "table {table} (for {name}) holds someone else's route: {} proto {}",
                    status::route_text(route, &snapshot.links),
                    route.protocol
                ),
                Some(fix(snapshot)),
            ));
        } else if let Some(rule) = foreign_rule {
            out.push(finding(
                "tables",
                Verdict::Fail,
                format!(
                    "table {table} (for {name}) is used by someone else's rule: {} proto {}",
                    status::rule_text(rule),
                    rule.protocol
                ),
                Some(fix(snapshot)),
            ));
        }
        for (_, tname, file) in facts.table_names.iter().filter(|n| n.0 == *table) {
            out.push(finding(
                "tables",
                Verdict::Warn,
                format!(
                    "table {table} (for {name}) is named {tname:?} in {}: another tool may use it",
                    file.display()
                ),
                Some(fix(snapshot)),
            ));
        }
    }
    if out.is_empty() {
        let tables: Vec<String> = wanted.iter().map(|w| w.2.to_string()).collect();
        out.push(finding(
            "tables",
            Verdict::Ok,
            if tables.is_empty() {
                "no interface needs a table yet".into()
            } else {
                format!("tables {} are used by symroute alone", tables.join(", "))
            },
            None,
        ));
    }
    out
}

/// The lowest multiple of 1000 from 1000 up whose tables `base + ifindex` hold nothing,
/// have no rule pointing at them and no name.
pub fn free_table_base(
    snapshot: &Snapshot,
    settings: &Settings,
    facts: &HostFacts,
    indexes: &[u32],
) -> Option<u32> {
    let used: BTreeSet<u32> = snapshot
        .tables
        .iter()
        .filter(|(_, routes)| routes.iter().any(|r| r.protocol != settings.protocol))
        .map(|(t, _)| *t)
        .chain(
            snapshot
                .rules
                .iter()
                .filter(|r| r.protocol != settings.protocol)
                .map(|r| r.table),
        )
        .chain(facts.table_names.iter().map(|n| n.0))
        .collect();
    (1..4_000_000u32)
        .map(|k| k * 1000)
        .filter(|b| *b != settings.table_base)
        .find(|base| {
            indexes
                .iter()
                .all(|i| base.checked_add(*i).is_some_and(|t| !used.contains(&t)))
        })
}

pub(super) fn check_shadowing(status: &Status, settings: &Settings) -> Vec<Finding> {
    let mut out = Vec::new();
    for i in &status.interfaces {
        for s in &i.shadowed_by {
            let (verdict, how) = match s.extent {
                ShadowExtent::Full => (Verdict::Fail, "takes all traffic"),
                ShadowExtent::Partial => (Verdict::Warn, "takes some traffic"),
            };
            let move_ours = if s.priority > 2 {
                format!(
                    " or set `rule_priority = {}` in /etc/symroute/symroute.toml",
                    s.priority - 1
                )
            } else {
                String::new()
            };
            out.push(finding(
                "shadowing",
                verdict,
                format!(
                    "{}: `{}` (table {}) {how} before ours, `{}`",
                    i.ifname, s.rule, s.table, s.ours
                ),
                Some(format!(
                    "give that rule a priority above {}{move_ours}, if it is not meant to win",
                    settings.rule_priority
                )),
            ));
        }
    }
    if out.is_empty() {
        out.push(finding(
            "shadowing",
            Verdict::Ok,
            "no foreign rule comes before ours with a catch-all table".into(),
            None,
        ));
    }
    out
}
