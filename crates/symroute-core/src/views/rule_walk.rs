//! The kernel's rule walk, judged from a snapshot: which rules a packet's addresses match,
//! in which order the rules are tried, and which tables end the lookup. Shared by
//! `status` (rules of others that shadow ours) and `explain` (the rule that led to a table).

use std::net::IpAddr;

use crate::model::{route_type, Family, Route, Rule, Snapshot, MAIN_TABLE};
use crate::settings::Prefix;

/// Whether `outer` (a rule selector; `None` = all) covers every address of `inner`.
pub fn selector_covers(outer: Option<(IpAddr, u8)>, inner: (IpAddr, u8)) -> bool {
    match outer {
        None => true,
        Some((addr, len)) => len <= inner.1 && Prefix::new(addr, len).contains(&inner.0),
    }
}

/// Rules in the order the kernel walks them.
pub fn rules_in_order(snapshot: &Snapshot) -> Vec<&Rule> {
    let mut rules: Vec<&Rule> = snapshot.rules.iter().collect();
    // Stable: rules of equal priority keep the kernel's (insertion) order.
    rules.sort_by_key(|r| r.priority);
    rules
}

/// The routes a lookup in `table` sees: main's are read apart from the other tables.
fn routes_of(snapshot: &Snapshot, table: u32) -> &[Route] {
    if table == MAIN_TABLE {
        &snapshot.main_routes
    } else {
        snapshot.table(table)
    }
}

/// Whether `table` holds any route of `family` (a rule into an empty table is passed over).
pub fn has_routes(snapshot: &Snapshot, table: u32, family: Family) -> bool {
    routes_of(snapshot, table)
        .iter()
        .any(|r| r.family() == family)
}

/// Whether `table` has a default route of `family` that traffic could take
/// (unreachable/prohibit/blackhole defaults also end the lookup there; `throw` does not).
pub fn has_default(snapshot: &Snapshot, table: u32, family: Family) -> bool {
    routes_of(snapshot, table)
        .iter()
        .any(|r| r.family() == family && r.dst_len == 0 && r.kind != route_type::THROW)
}

/// Whether `table` holds an entry that covers `to` (so a lookup in it ends there).
pub fn covers(snapshot: &Snapshot, table: u32, to: IpAddr) -> bool {
    routes_of(snapshot, table)
        .iter()
        .any(|r| r.kind != route_type::THROW && Prefix::new(r.dst, r.dst_len).contains(&to))
}
