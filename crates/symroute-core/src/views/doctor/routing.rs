//! Checks of symroute's own state: in sync, tables free of others' use, rules not shadowed.

use std::collections::BTreeSet;

use super::{Finding, Verdict, SHADOWING, SYNC, TABLES};
use crate::model::host::HostFacts;
use crate::model::Snapshot;
use crate::settings::Settings;
use crate::views::iproute::{route_text, rule_text};
use crate::views::status::{ShadowExtent, State, Status};

pub(super) fn check_sync(status: &Status) -> Vec<Finding> {
    if status.in_sync {
        return vec![SYNC.ok("every interface's table and rules are as a sync would make them")];
    }
    let mut out = Vec::new();
    for i in &status.interfaces {
        match i.state {
            State::Pending => out.push(SYNC.fail(
                format!(
                    "{}: {} change(s) pending, first: {}",
                    i.ifname,
                    i.pending.len(),
                    i.pending.first().map_or("", String::as_str)
                ),
                format!(
                    "symroute sync {} (and check that an event integration is installed)",
                    i.ifname
                ),
            )),
            State::Refused => out.push(
                SYNC.fail(
                    i.error
                        .clone()
                        .unwrap_or_else(|| format!("{}: refused", i.ifname)),
                    "see the `tables` findings for a free table_base",
                ),
            ),
            // Someone else's rule into our table: the `tables` check fails it.
            State::Contested | State::InSync | State::Unmanaged | State::Idle => {}
        }
    }
    if !status.exempt.pending.is_empty() {
        out.push(SYNC.fail(
            format!(
                "exemption rules: {} change(s) pending, first: {}",
                status.exempt.pending.len(),
                status.exempt.pending[0]
            ),
            "symroute sync",
        ));
    }
    if let Some(steering) = &status.steering {
        if let Some(first) = steering.pending.first() {
            out.push(SYNC.fail(
                format!(
                    "steering: {} change(s) pending, first: {first}",
                    steering.pending.len()
                ),
                "symroute sync (symrouted does it when its verdicts change)",
            ));
        }
        if let Some(e) = &steering.error {
            out.push(SYNC.fail(e.clone(), "see the `tables` findings for a free table_base"));
        }
    }
    if let Some(pending) = status.nftables.as_ref().and_then(|n| n.pending.as_ref()) {
        out.push(SYNC.fail(pending.clone(), "symroute sync"));
    }
    for s in &status.stale {
        out.push(SYNC.fail(
            format!(
                "stale: {} rule(s) of ours point at table {}, whose interface is gone",
                s.rules.len(),
                s.table
            ),
            "symroute sync (collects state of vanished interfaces)",
        ));
    }
    if out.is_empty() {
        // Out of sync only by someone else's use of a table: a sync would change nothing.
        out.push(SYNC.ok(
            "every interface's table and rules are as a sync would make them (someone else's \
             use of them: see `tables`)",
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
            out.push(TABLES.fail(
                format!(
                    "table {table} (for {name}) holds someone else's route: {} proto {}",
                    route_text(route, &snapshot.links),
                    route.protocol
                ),
                fix(snapshot),
            ));
        } else if let Some(rule) = foreign_rule {
            out.push(TABLES.fail(
                format!(
                    "table {table} (for {name}) is used by someone else's rule: {} proto {}",
                    rule_text(rule),
                    rule.protocol
                ),
                fix(snapshot),
            ));
        }
        for (_, tname, file) in facts.table_names.iter().filter(|n| n.0 == *table) {
            out.push(TABLES.warn(
                format!(
                    "table {table} (for {name}) is named {tname:?} in {}: another tool may use it",
                    file.display()
                ),
                fix(snapshot),
            ));
        }
    }
    if out.is_empty() {
        let tables: Vec<String> = wanted.iter().map(|w| w.2.to_string()).collect();
        out.push(TABLES.ok(if tables.is_empty() {
            "no interface needs a table yet".into()
        } else {
            format!("tables {} are used by symroute alone", tables.join(", "))
        }));
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
            out.push(SHADOWING.finding(
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
        out.push(SHADOWING.ok("no foreign rule comes before ours with a catch-all table"));
    }
    out
}
