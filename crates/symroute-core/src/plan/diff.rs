//! The pure comparison of wanted and present state, as an ordered list of operations.

use std::collections::BTreeSet;

pub use crate::model::Op;
use crate::model::{Family, Route, Rule};

/// Operations that turn `present` into `wanted`.
///
/// `present_*` must hold only what symroute owns (our protocol); anything else is never
/// deleted. Routes come first so that a new rule never points at an incomplete table; stale
/// rules go before stale routes so that no packet is looked up in a half-emptied table.
/// Routes without a gateway go before routes with one, so a gateway's connected route exists
/// when the route through it is written.
pub fn diff(
    wanted_routes: &[Route],
    wanted_rules: &[Rule],
    present_routes: &[Route],
    present_rules: &[Rule],
) -> Vec<Op> {
    let present: Vec<&Route> = present_routes.iter().collect();
    diff_owned(
        wanted_routes.to_vec(),
        wanted_rules,
        &present,
        present_rules,
    )
}

/// [`diff`] that moves the wanted routes into the operations instead of copying them (a
/// first build of a 100 000-route table would otherwise hold them twice).
pub fn diff_owned(
    wanted_routes: Vec<Route>,
    wanted_rules: &[Rule],
    present_routes: &[&Route],
    present_rules: &[Rule],
) -> Vec<Op> {
    let (write, keep) = compare(&wanted_routes, present_routes);
    let deletes = keep.iter().filter(|k| !**k).count();
    let writes = write.iter().filter(|w| **w).count();
    // Sized once: growing a 100 000-operation list would briefly hold it twice.
    let mut ops = Vec::with_capacity(writes + wanted_rules.len() + present_rules.len() + deletes);
    // Moved out in two passes, direct routes first, each leaving an empty route (no heap
    // block) behind: splitting the list in two would hold the table once more.
    let mut wanted_routes = wanted_routes;
    let via_gateway = |r: &Route| r.nexthops.iter().any(|nh| nh.gateway.is_some());
    let hole = || Route::unicast(0, Family::V4.unspecified(), 0);
    for gateways in [false, true] {
        for (route, _) in wanted_routes
            .iter_mut()
            .zip(&write)
            .filter(|(r, w)| **w && via_gateway(r) == gateways)
        {
            ops.push(Op::ReplaceRoute(std::mem::replace(route, hole())));
        }
    }
    drop(wanted_routes);

    let present_rules: BTreeSet<&Rule> = present_rules.iter().collect();
    let wanted_rules_set: BTreeSet<&Rule> = wanted_rules.iter().collect();
    ops.extend(
        wanted_rules_set
            .difference(&present_rules)
            .map(|r| Op::add_rule((*r).clone())),
    );
    ops.extend(
        present_rules
            .difference(&wanted_rules_set)
            .map(|r| Op::del_rule((*r).clone())),
    );

    ops.extend(
        present_routes
            .iter()
            .zip(keep)
            .filter(|(_, keep)| !keep)
            .map(|(r, _)| Op::DelRoute((*r).clone())),
    );
    debug_assert!(ops.windows(2).all(|w| w[0].phase() <= w[1].phase()));
    ops
}

/// Which wanted routes must be written (no present route with its key, or a different one)
/// and which present routes stay (some wanted route has their key): both sides sorted by
/// key once and walked together. Of present routes sharing a key, the last one counts.
fn compare(wanted: &[Route], present: &[&Route]) -> (Vec<bool>, Vec<bool>) {
    // Indexes, not keys, are sorted: 4 bytes a route instead of 48.
    let mut w: Vec<u32> = (0..wanted.len() as u32).collect();
    w.sort_by_key(|i| wanted[*i as usize].sort_key());
    let mut p: Vec<u32> = (0..present.len() as u32).collect();
    p.sort_by_key(|i| present[*i as usize].sort_key());
    let mut write = vec![true; wanted.len()];
    let mut keep = vec![false; present.len()];
    let mut j = 0;
    for i in w.into_iter().map(|i| i as usize) {
        let key = wanted[i].sort_key();
        while j < p.len() && present[p[j] as usize].sort_key() < key {
            j += 1;
        }
        // The last present route under this key.
        let mut last = None;
        let mut k = j;
        while k < p.len() && present[p[k] as usize].sort_key() == key {
            keep[p[k] as usize] = true;
            last = Some(p[k] as usize);
            k += 1;
        }
        if let Some(at) = last {
            write[i] = present[at] != &wanted[i];
        }
    }
    (write, keep)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    fn route(dst: &str, gw: Option<&str>, metric: u32) -> Route {
        let len = if dst == "0.0.0.0" { 0 } else { 24 };
        fixtures::unicast(1003, dst, len, metric, 83, vec![fixtures::hop(3, gw)])
    }

    fn rule(src: &str) -> Rule {
        fixtures::rule(32000, Some((src, 32)), 1003, 83)
    }

    #[test]
    fn converged_state_needs_no_operation() {
        let routes = vec![
            route("10.2.0.0", None, 0),
            route("0.0.0.0", Some("10.2.0.1"), 101),
        ];
        let rules = vec![rule("10.2.0.2")];
        assert!(diff(&routes, &rules, &routes, &rules).is_empty());
    }

    #[test]
    fn first_build_writes_connected_routes_before_gateway_routes_then_rules() {
        let routes = vec![
            route("0.0.0.0", Some("10.2.0.1"), 101),
            route("10.2.0.0", None, 0),
        ];
        let ops = diff(&routes, &[rule("10.2.0.2")], &[], &[]);
        assert_eq!(
            ops,
            vec![
                Op::ReplaceRoute(route("10.2.0.0", None, 0)),
                Op::ReplaceRoute(route("0.0.0.0", Some("10.2.0.1"), 101)),
                Op::add_rule(rule("10.2.0.2")),
            ]
        );
    }

    #[test]
    fn changed_gateway_is_replaced_in_place_not_deleted() {
        let old = vec![route("0.0.0.0", Some("10.2.0.1"), 101)];
        let new = vec![route("0.0.0.0", Some("10.2.0.254"), 101)];
        assert_eq!(
            diff(&new, &[], &old, &[]),
            vec![Op::ReplaceRoute(new[0].clone())]
        );
    }

    #[test]
    fn address_change_is_make_before_break() {
        let routes = vec![route("10.2.0.0", None, 0)];
        let ops = diff(&routes, &[rule("10.2.0.9")], &routes, &[rule("10.2.0.2")]);
        assert_eq!(
            ops,
            vec![
                Op::add_rule(rule("10.2.0.9")),
                Op::del_rule(rule("10.2.0.2"))
            ]
        );
    }

    #[test]
    fn removal_deletes_rules_before_routes() {
        let routes = vec![route("10.2.0.0", None, 0)];
        let ops = diff(&[], &[], &routes, &[rule("10.2.0.2")]);
        assert_eq!(
            ops,
            vec![
                Op::del_rule(rule("10.2.0.2")),
                Op::DelRoute(routes[0].clone())
            ]
        );
    }

    #[test]
    fn display_uses_ip_syntax() {
        assert_eq!(
            Op::add_rule(rule("10.2.0.2")).to_string(),
            "+rule from 10.2.0.2 lookup 1003 priority 32000"
        );
    }
}
