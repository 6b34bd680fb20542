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
    let mut comparison = Comparison::new(wanted_routes);
    for route in present_routes {
        comparison.present(route);
    }
    comparison.ops(wanted_rules, present_rules)
}

/// The comparison of a table's wanted routes with its present ones, handed over one by one
/// in the table's order as they are read: the table as it is is never held, only the wanted
/// routes, an index of them by key (4 bytes a route), what the last present route under
/// each key said (1 byte) and the present routes no wanted one has the key of (deleted).
///
/// Which wanted routes are written: those with no present route under their key, or whose
/// last present route under it differs (of present routes sharing a key, the last one
/// counts). Which present routes stay: those some wanted route has the key of.
#[derive(Debug)]
pub struct Comparison {
    wanted: Vec<Route>,
    /// Indexes into `wanted`, sorted by key.
    by_key: Vec<u32>,
    /// Per wanted route, what the last present route under its key said.
    seen: Vec<Seen>,
    /// Present routes under a key no wanted route has, in the order they came.
    deletes: Vec<Route>,
    /// Where in `by_key` the last present route was found: the kernel hands a table over
    /// in key order, mostly, so the next one is usually right after it.
    cursor: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    Nothing,
    Same,
    Different,
}

impl Comparison {
    pub fn new(wanted: Vec<Route>) -> Comparison {
        let mut by_key: Vec<u32> = (0..wanted.len() as u32).collect();
        // Stable: wanted routes sharing a key stay in their order.
        by_key.sort_by_key(|i| wanted[*i as usize].sort_key());
        Comparison {
            seen: vec![Seen::Nothing; wanted.len()],
            wanted,
            by_key,
            deletes: Vec::new(),
            cursor: 0,
        }
    }

    /// Forgets every present route handed over: the table is read again from its start.
    pub fn restart(&mut self) {
        self.seen.fill(Seen::Nothing);
        self.deletes.clear();
        self.cursor = 0;
    }

    /// One present route of ours (only our protocol's are ever deleted), in table order.
    pub fn present(&mut self, route: &Route) {
        let key = route.sort_key();
        let key_at = |at: usize| self.wanted[self.by_key[at] as usize].sort_key();
        let n = self.by_key.len();
        let first_at_cursor = self.cursor < n
            && key_at(self.cursor) == key
            && (self.cursor == 0 || key_at(self.cursor - 1) < key);
        let start = if first_at_cursor {
            self.cursor
        } else {
            self.by_key
                .partition_point(|i| self.wanted[*i as usize].sort_key() < key)
        };
        let mut end = start;
        while end < n && key_at(end) == key {
            end += 1;
        }
        if start == end {
            self.deletes.push(route.clone());
            return;
        }
        for at in start..end {
            let i = self.by_key[at] as usize;
            self.seen[i] = if self.wanted[i] == *route {
                Seen::Same
            } else {
                Seen::Different
            };
        }
        self.cursor = end;
    }

    /// The operations, in the order they are written (see [`diff`]).
    pub fn ops(self, wanted_rules: &[Rule], present_rules: &[Rule]) -> Vec<Op> {
        let Comparison {
            mut wanted,
            by_key,
            seen,
            deletes,
            ..
        } = self;
        drop(by_key);
        let writes = seen.iter().filter(|s| **s != Seen::Same).count();
        // Sized once: growing a 100 000-operation list would briefly hold it twice.
        let mut ops =
            Vec::with_capacity(writes + wanted_rules.len() + present_rules.len() + deletes.len());
        // Moved out in two passes, direct routes first, each leaving an empty route (no heap
        // block) behind: splitting the list in two would hold the table once more.
        let via_gateway = |r: &Route| r.nexthops.iter().any(|nh| nh.gateway.is_some());
        let hole = || Route::unicast(0, Family::V4.unspecified(), 0);
        for gateways in [false, true] {
            for (route, _) in wanted
                .iter_mut()
                .zip(&seen)
                .filter(|(r, s)| **s != Seen::Same && via_gateway(r) == gateways)
            {
                ops.push(Op::ReplaceRoute(std::mem::replace(route, hole())));
            }
        }
        drop(wanted);
        drop(seen);

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
        ops.extend(deletes.into_iter().map(Op::DelRoute));
        debug_assert!(ops.windows(2).all(|w| w[0].phase() <= w[1].phase()));
        ops
    }
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

    /// What [`Comparison`] makes of `present` handed over in that order.
    fn compared(wanted: &[Route], rules: &[Rule], present: &[Route]) -> Vec<Op> {
        let mut comparison = Comparison::new(wanted.to_vec());
        for route in present {
            comparison.present(route);
        }
        comparison.ops(rules, &[])
    }

    #[test]
    fn of_present_routes_sharing_a_key_the_last_one_counts() {
        let wanted = vec![route("10.2.0.0", Some("10.2.0.1"), 5)];
        let other = route("10.2.0.0", Some("10.2.0.9"), 5);
        // Both stay (a wanted route has their key); the last one decides the write.
        assert_eq!(
            compared(&wanted, &[], &[other.clone(), wanted[0].clone()]),
            vec![]
        );
        assert_eq!(
            compared(&wanted, &[], &[wanted[0].clone(), other]),
            vec![Op::ReplaceRoute(wanted[0].clone())]
        );
    }

    #[test]
    fn present_routes_out_of_key_order_compare_as_sorted_ones() {
        let wanted = vec![
            route("10.9.0.0", Some("10.2.0.1"), 0),
            route("10.1.0.0", None, 0),
            route("10.5.0.0", Some("10.2.0.1"), 0),
            route("0.0.0.0", Some("10.2.0.1"), 101),
        ];
        let stale = route("10.7.0.0", None, 0);
        let changed = route("10.5.0.0", Some("10.2.0.254"), 0);
        let present = vec![
            wanted[0].clone(),
            stale.clone(),
            changed,
            wanted[3].clone(),
            route("10.3.0.0", None, 0),
        ];
        let ops = compared(&wanted, &[rule("10.2.0.2")], &present);
        // Direct routes, then those through a gateway, each in the plan's order; rules;
        // deletes in the table's order, last.
        assert_eq!(
            ops,
            vec![
                Op::ReplaceRoute(wanted[1].clone()),
                Op::ReplaceRoute(wanted[2].clone()),
                Op::add_rule(rule("10.2.0.2")),
                Op::DelRoute(stale),
                Op::DelRoute(route("10.3.0.0", None, 0)),
            ]
        );
        let mut sorted = present.clone();
        sorted.sort_by_key(Route::sort_key);
        let mut reversed = present.clone();
        reversed.reverse();
        for order in [sorted, reversed] {
            let writes: Vec<Op> = compared(&wanted, &[], &order)
                .into_iter()
                .filter(|op| matches!(op, Op::ReplaceRoute(_)))
                .collect();
            assert_eq!(writes, ops[..2]);
        }
    }

    #[test]
    fn a_walk_read_again_forgets_what_it_was_handed() {
        let wanted = vec![route("10.2.0.0", None, 0)];
        let mut comparison = Comparison::new(wanted.clone());
        comparison.present(&wanted[0]);
        comparison.present(&route("10.3.0.0", None, 0));
        comparison.restart();
        assert_eq!(
            comparison.ops(&[], &[]),
            vec![Op::ReplaceRoute(wanted[0].clone())]
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
