//! The kernel's rule walk, judged from a snapshot: which rules a packet's addresses match,
//! in which order the rules are tried, and which tables end the lookup. Shared by
//! `status` (rules of others that shadow ours) and `explain` (the rule that led to a table).

use std::net::IpAddr;

use crate::model::{route_type, Family, Query, Route, Rule, Snapshot, MAIN_TABLE};
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

/// Whether the selectors symroute models match the packet `query` describes (a rule's
/// `not` inverts them all, as the kernel does).
pub fn selectors_match(rule: &Rule, query: &Query) -> bool {
    let host = Family::of(&query.from).host_prefix_len();
    let to_host = Family::of(&query.to).host_prefix_len();
    // Locally generated packets carry `iif lo` through the rules.
    let iif = query.iif.as_deref().unwrap_or("lo");
    let selected = selector_covers(rule.src, (query.from, host))
        && selector_covers(rule.dst, (query.to, to_host))
        && rule.iif.as_deref().is_none_or(|i| i == iif)
        && rule
            .fwmark
            .is_none_or(|(mark, mask)| (query.mark ^ mark) & mask == 0);
    rule.family == Family::of(&query.to) && selected != rule.extra.invert
}

/// The rule that sent `query` to `table`, where the kernel's lookup ended: the first rule in
/// the kernel's order whose selectors match and that points at `table`. The kernel does not
/// report the rule; rules with selectors symroute cannot evaluate make this the likely one.
pub fn deciding_rule<'a>(snapshot: &'a Snapshot, query: &Query, table: u32) -> Option<&'a Rule> {
    rules_in_order(snapshot)
        .into_iter()
        .find(|r| r.table == table && selectors_match(r, query))
}

/// Whether a route of `family` with prefix length `len` takes a large share of the address
/// space: shorter than a /8 (IPv4) or a /16 (IPv6). A default, VPN clients' `0.0.0.0/1`
/// pair and OpenVPN's IPv6 split (`::/3`, `2000::/4`, `3000::/4`, `fc00::/7`) are; a
/// site-to-site tunnel's `10.0.0.0/8` or `fd00:1::/48` is not.
pub fn is_wide(family: Family, len: u8) -> bool {
    len < match family {
        Family::V4 => 8,
        Family::V6 => 16,
    }
}
