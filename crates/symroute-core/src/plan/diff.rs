//! The pure comparison of wanted and present state, as an ordered list of operations.

use std::collections::{BTreeMap, BTreeSet};

pub use crate::model::Op;
use crate::model::{Route, RouteKey, Rule};

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
    let present: BTreeMap<RouteKey, &Route> = present_routes.iter().map(|r| (r.key(), r)).collect();
    let wanted_keys: BTreeSet<RouteKey> = wanted_routes.iter().map(Route::key).collect();
    let mut ops = Vec::new();

    let mut to_write: Vec<&Route> = wanted_routes
        .iter()
        .filter(|r| present.get(&r.key()) != Some(r))
        .collect();
    to_write.sort_by_key(|r| r.nexthops.iter().any(|nh| nh.gateway.is_some()));
    ops.extend(to_write.into_iter().cloned().map(Op::ReplaceRoute));

    let present_rules: BTreeSet<&Rule> = present_rules.iter().collect();
    let wanted_rules_set: BTreeSet<&Rule> = wanted_rules.iter().collect();
    ops.extend(
        wanted_rules_set
            .difference(&present_rules)
            .map(|r| Op::AddRule((*r).clone())),
    );
    ops.extend(
        present_rules
            .difference(&wanted_rules_set)
            .map(|r| Op::DelRule((*r).clone())),
    );

    ops.extend(
        present_routes
            .iter()
            .filter(|r| !wanted_keys.contains(&r.key()))
            .cloned()
            .map(Op::DelRoute),
    );
    debug_assert!(ops.windows(2).all(|w| w[0].phase() <= w[1].phase()));
    ops
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
                Op::AddRule(rule("10.2.0.2")),
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
            vec![Op::AddRule(rule("10.2.0.9")), Op::DelRule(rule("10.2.0.2"))]
        );
    }

    #[test]
    fn removal_deletes_rules_before_routes() {
        let routes = vec![route("10.2.0.0", None, 0)];
        let ops = diff(&[], &[], &routes, &[rule("10.2.0.2")]);
        assert_eq!(
            ops,
            vec![
                Op::DelRule(rule("10.2.0.2")),
                Op::DelRoute(routes[0].clone())
            ]
        );
    }

    #[test]
    fn display_uses_ip_syntax() {
        assert_eq!(
            Op::AddRule(rule("10.2.0.2")).to_string(),
            "+rule from 10.2.0.2 lookup 1003 priority 32000"
        );
    }
}
