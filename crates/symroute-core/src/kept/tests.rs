//! The kept model's central claim, checked against the planner: after any sequence of
//! main-table route changes that leaves the uplinks as they were, the tables written from
//! the touched prefixes alone equal what a full plan of the new main wants.

use std::collections::BTreeMap;

use netlink_packet_core::NLM_F_REPLACE;
use proptest::prelude::*;

use super::*;
use crate::fixtures::{self, addr, hop, link, ETH0, ETH1};
use crate::model::{RouteKey, MAIN_TABLE};

const LAN0: u32 = 4;
/// A macvlan on eth1 with a VIP (keepalived's `use_vmac`): its table takes eth1's ways out.
const MV0: u32 = 5;

fn settings() -> Settings {
    Settings::default()
}

fn links() -> Vec<Link> {
    vec![
        link(1, "lo"),
        link(ETH0, "eth0"),
        link(ETH1, "eth1"),
        link(LAN0, "lan0"),
        Link {
            parent: Some(ETH1),
            ..link(MV0, "mv0")
        },
    ]
}

fn addresses() -> Vec<Address> {
    vec![
        addr(ETH0, "10.1.0.2", 24),
        addr(ETH1, "10.2.0.2", 24),
        addr(LAN0, "192.168.50.1", 24),
        addr(ETH0, "fd01::2", 64),
        addr(MV0, "10.2.0.70", 32),
    ]
}

fn base_main() -> Vec<Route> {
    let mut main = fixtures::host().main_routes;
    main.push(fixtures::route(
        MAIN_TABLE,
        "192.168.50.0",
        24,
        None,
        LAN0,
        2,
    ));
    main.push(fixtures::route(
        MAIN_TABLE,
        "::",
        0,
        Some("fd01::1"),
        ETH0,
        4,
    ));
    main
}

/// What a full plan wants in every table, for `main`.
fn full_plan(main: &[Route]) -> BTreeMap<u32, Vec<Route>> {
    let settings = settings();
    let snapshot = Snapshot {
        links: links(),
        addresses: addresses(),
        main_routes: main.to_vec(),
        ..Snapshot::default()
    };
    let planner = Planner::new(&snapshot, &settings);
    let mut out = BTreeMap::new();
    for link in snapshot.links.iter().filter(|l| !l.loopback) {
        let mut routes = planner.interface(link).unwrap().routes;
        routes.sort();
        out.insert(settings.table_for(link.index), routes);
    }
    out
}

/// A model loaded over `main` with every table as a full run leaves it.
fn loaded(main: &[Route]) -> Kept {
    let settings = settings();
    let mut kept = Kept {
        valid: true,
        links: links(),
        addresses: addresses(),
        ..Kept::default()
    };
    for route in main {
        kept.count_ways(route, true);
        kept.main.insert(route.clone(), Place::Last);
    }
    kept.settled = Uplinks::classify(main, &[], &links());
    kept.loaded_ways = kept.ways.keys().copied().collect();
    kept.reclassify = false;
    for (table, routes) in full_plan(main) {
        let index = kept.ours.entry(table).or_default();
        for route in routes {
            index.insert(route, Place::Last);
        }
    }
    assert!(!kept.has_work());
    let _ = settings;
    kept
}

fn tables(kept: &Kept) -> BTreeMap<u32, Vec<Route>> {
    kept.ours
        .iter()
        .map(|(t, index)| {
            let mut routes: Vec<Route> = index.iter().collect();
            routes.sort();
            (*t, routes)
        })
        .filter(|(t, _)| {
            [ETH0, ETH1, LAN0, MV0]
                .iter()
                .any(|i| settings().table_for(*i) == *t)
        })
        .collect()
}

/// Our tables as the kernel holds them, changed as the kernel changes them: a replace puts
/// a route under its key; a deletion takes the first route under its prefix, lowest metric
/// first, that matches what it names, where a metric of 0 names any metric, no next hop
/// any next hop and scope 255 any scope (`fib_table_delete`).
#[derive(Debug, Default)]
struct KernelTables(BTreeMap<u32, Vec<Route>>);

impl KernelTables {
    fn of(tables: BTreeMap<u32, Vec<Route>>) -> KernelTables {
        KernelTables(tables)
    }

    fn apply(&mut self, ops: &[Op]) {
        for op in ops {
            match op {
                Op::ReplaceRoute(r) => {
                    let table = self.0.entry(r.table).or_default();
                    table.retain(|held| held.key() != r.key());
                    table.push(r.clone());
                    table.sort_by_key(|held| held.metric);
                }
                Op::DelRoute(r) => {
                    let table = self.0.entry(r.table).or_default();
                    if let Some(i) = table.iter().position(|held| deletes(r, held)) {
                        table.remove(i);
                    }
                }
                Op::AddRule(_) | Op::DelRule(_) => {}
            }
        }
    }

    fn sorted(&self) -> BTreeMap<u32, Vec<Route>> {
        self.0
            .iter()
            .map(|(t, routes)| {
                let mut routes = routes.clone();
                routes.sort();
                (*t, routes)
            })
            .filter(|(t, routes)| {
                !routes.is_empty()
                    && [ETH0, ETH1, LAN0, MV0]
                        .iter()
                        .any(|i| settings().table_for(*i) == *t)
            })
            .collect()
    }
}

/// Whether the kernel takes `held` for a deletion naming `named`.
fn deletes(named: &Route, held: &Route) -> bool {
    Prefix::of(named) == Prefix::of(held)
        && (named.metric == 0 || named.metric == held.metric)
        && (named.protocol == 0 || named.protocol == held.protocol)
        && (named.scope == 255 || named.scope == held.scope)
        && match (named.nexthops.first(), held.nexthops.first()) {
            (None, _) => true,
            (Some(a), Some(b)) => {
                a.ifindex == b.ifindex && (a.gateway.is_none() || a.gateway == b.gateway)
            }
            (Some(_), None) => false,
        }
}

/// Plans, and applies the writes to the model as the daemon learns them and to `kernel`.
fn write(kept: &mut Kept, kernel: &mut KernelTables) -> usize {
    let settings = settings();
    let planned = kept.plan(&settings, &BTreeSet::new());
    assert!(planned.refused.is_empty());
    let mut count = 0;
    for w in planned.writes {
        count += w.ops.len();
        kernel.apply(&w.ops);
        kept.wrote(&settings, &w.ops);
    }
    count
}

/// What a full plan of `main` wants in the tables, as [`KernelTables::sorted`] lists them.
fn wanted(main: &[Route]) -> BTreeMap<u32, Vec<Route>> {
    full_plan(main)
        .into_iter()
        .filter(|(_, routes)| !routes.is_empty())
        .collect()
}

const DESTS: [(&str, u8); 8] = [
    ("198.51.100.0", 24),
    ("203.0.113.0", 25),
    ("192.168.60.0", 24),
    ("10.2.0.0", 24),
    ("100.64.0.0", 10),
    // A full tunnel's split default (OpenVPN's def1) and a wide share: direct routes through
    // an interface covering half of the space make it an uplink.
    ("0.0.0.0", 1),
    ("128.0.0.0", 1),
    ("64.0.0.0", 2),
];

/// One change of main as the kernel reports it: (the route, added, flags).
fn change() -> impl Strategy<Value = (Route, bool, u16)> {
    let dest = 0..DESTS.len();
    let via = prop_oneof![
        Just(vec![hop(ETH0, Some("10.1.0.1"))]),
        Just(vec![hop(ETH1, Some("10.2.0.1"))]),
        Just(vec![
            hop(ETH0, Some("10.1.0.1")),
            hop(ETH1, Some("10.2.0.1"))
        ]),
        Just(vec![hop(LAN0, None)]),
        Just(vec![hop(ETH1, None)]),
    ];
    let metric = prop_oneof![Just(0u32), Just(50)];
    (dest, via, metric, any::<bool>(), any::<bool>()).prop_map(|(d, via, metric, add, replace)| {
        let (dst, len) = DESTS[d];
        let route = fixtures::unicast(MAIN_TABLE, dst, len, metric, 4, via);
        let flags = if replace { NLM_F_REPLACE } else { 0 };
        (route, add, flags)
    })
}

/// The kernel's main for IPv4 unique keys: a replace or an add puts the route under its
/// key, a delete of that exact route removes it. Returns the notification to send, if the
/// kernel would accept the change.
fn kernel(main: &mut BTreeMap<RouteKey, Route>, route: &Route, add: bool, flags: u16) -> bool {
    let key = route.key();
    if add {
        if flags & NLM_F_REPLACE == 0 && main.contains_key(&key) {
            return false; // EEXIST
        }
        main.insert(key, route.clone());
        true
    } else {
        main.get(&key) == Some(route) && main.remove(&key).is_some()
    }
}

proptest! {
    #[test]
    fn writes_of_touched_prefixes_equal_the_full_plan(changes in prop::collection::vec(change(), 1..12)) {
        let base = base_main();
        let mut kernel_main: BTreeMap<RouteKey, Route> = base.iter().map(|r| (r.key(), r.clone())).collect();
        let mut kept = loaded(&base);
        let mut kernel_tables = KernelTables::of(full_plan(&base));
        for (route, add, flags) in &changes {
            if kernel(&mut kernel_main, route, *add, *flags) {
                let change = Change::Route { route: route.clone(), added: *add };
                prop_assert!(kept.note(&settings(), *flags, &change));
            }
        }
        let main: Vec<Route> = kernel_main.into_values().collect();
        let mut held: Vec<Route> = kept.main.iter().collect();
        held.sort();
        prop_assert_eq!(&held, &main);
        if kept.uplinks_changed() {
            // A full run's business.
            return Ok(());
        }
        // Never missed: what the model plans with is what main's uplinks are.
        prop_assert_eq!(&kept.settled, &Uplinks::classify(&main, &[], &links()));
        write(&mut kept, &mut kernel_tables);
        prop_assert_eq!(tables(&kept), full_plan(&main));
        // What the kernel made of the writes, too: a deletion names nothing else.
        prop_assert_eq!(kernel_tables.sorted(), wanted(&main));
        // And nothing more to do.
        prop_assert!(!kept.has_work());
    }
}

#[test]
fn a_route_via_an_uplink_is_one_write_in_its_table_and_a_replace_knows_the_old_interface() {
    let settings = settings();
    let mut kept = loaded(&base_main());
    let via1 = fixtures::route(MAIN_TABLE, "198.51.100.0", 24, Some("10.2.0.1"), ETH1, 4);
    kept.note(
        &settings,
        0,
        &Change::Route {
            route: via1.clone(),
            added: true,
        },
    );
    let planned = kept.plan(&settings, &BTreeSet::new());
    // (And in the table of the macvlan on eth1, which takes eth1's ways out.)
    let names: Vec<&str> = planned.writes.iter().map(|w| w.name.as_str()).collect();
    assert_eq!(names, ["eth1", "mv0"]);
    for w in &planned.writes {
        assert!(
            matches!(&w.ops[..], [Op::ReplaceRoute(r)] if r.table == settings.table_for(w.ifindex))
        );
        kept.wrote(&settings, &w.ops);
    }
    // Replaced by a route of the same key through eth0: out of eth1's table, into eth0's.
    let mut via0 = fixtures::route(MAIN_TABLE, "198.51.100.0", 24, Some("10.1.0.1"), ETH0, 4);
    via0.metric = via1.metric;
    kept.note(
        &settings,
        NLM_F_REPLACE,
        &Change::Route {
            route: via0,
            added: true,
        },
    );
    let planned = kept.plan(&settings, &BTreeSet::new());
    let by_name: BTreeMap<&str, &Vec<Op>> = planned
        .writes
        .iter()
        .map(|w| (w.name.as_str(), &w.ops))
        .collect();
    assert!(matches!(by_name["eth0"][..], [Op::ReplaceRoute(_)]));
    assert!(matches!(by_name["eth1"][..], [Op::DelRoute(_)]));
    assert!(matches!(by_name["mv0"][..], [Op::DelRoute(_)]));
    assert_eq!(by_name.len(), 3);
}

#[test]
fn a_new_way_out_is_left_to_a_full_run() {
    let settings = settings();
    let mut kept = loaded(&base_main());
    let lan_default = fixtures::route(MAIN_TABLE, "0.0.0.0", 1, Some("192.168.50.2"), LAN0, 4);
    kept.note(
        &settings,
        0,
        &Change::Route {
            route: lan_default.clone(),
            added: true,
        },
    );
    assert!(kept.uplinks_changed());
    kept.note(
        &settings,
        0,
        &Change::Route {
            route: lan_default,
            added: false,
        },
    );
    assert!(!kept.uplinks_changed());
}

#[test]
fn an_address_swap_is_planned_from_the_model_and_losing_a_family_is_left_to_a_run() {
    let settings = settings();
    let mut kept = loaded(&base_main());
    let t1 = settings.table_for(ETH1);
    kept.rules = vec![fixtures::rule(32000, Some(("10.2.0.2", 32)), t1, 83)];
    // 10.2.0.2 replaced by 10.2.0.9: one rule in, one out, the table as it was.
    kept.addresses
        .retain(|a| a.addr != fixtures::ip("10.2.0.2"));
    kept.addresses.push(addr(ETH1, "10.2.0.9", 24));
    kept.note(
        &settings,
        0,
        &Change::Address {
            index: ETH1,
            addr: None,
        },
    );
    kept.refresh.clear();
    kept.addresses_stale = false;
    let planned = kept.plan(&settings, &BTreeSet::new());
    assert!(planned.refused.is_empty());
    assert_eq!(planned.writes.len(), 1);
    let ops = &planned.writes[0].ops;
    assert!(
        matches!(&ops[..], [Op::AddRule(new), Op::DelRule(old)]
            if new.src == Some((fixtures::ip("10.2.0.9"), 32))
            && old.src == Some((fixtures::ip("10.2.0.2"), 32))),
        "{ops:?}"
    );
    // The last IPv4 address gone: a run, not the model.
    kept.addresses.retain(|a| a.ifindex != ETH1);
    kept.note(
        &settings,
        0,
        &Change::Address {
            index: ETH1,
            addr: None,
        },
    );
    let planned = kept.plan(&settings, &BTreeSet::new());
    assert_eq!(planned.refused, [ETH1]);
}

/// Main's `198.51.100.0/24` as the tests below change it.
fn dest(metric: u32, hops: Vec<crate::model::NextHop>) -> Route {
    fixtures::unicast(MAIN_TABLE, "198.51.100.0", 24, metric, 4, hops)
}

#[test]
fn a_copy_with_metric_0_that_was_never_written_is_deleted_by_its_interface_alone() {
    // eth1's table holds the prefix with metric 50; a route behind the host with metric 0
    // comes and goes within one batch: its copy was never written, and a deletion by key
    // alone (metric 0: any metric) would take eth1's.
    let settings = settings();
    let mut main = base_main();
    main.push(dest(50, vec![hop(ETH1, Some("10.2.0.1"))]));
    let mut kept = loaded(&main);
    let mut kernel = KernelTables::of(full_plan(&main));
    let behind = dest(0, vec![hop(LAN0, None)]);
    for added in [true, false] {
        let change = Change::Route {
            route: behind.clone(),
            added,
        };
        assert!(kept.note(&settings, 0, &change));
    }
    write(&mut kept, &mut kernel);
    assert_eq!(kernel.sorted(), wanted(&main));
    assert_eq!(tables(&kept), full_plan(&main));
}

#[test]
fn a_copy_the_model_lost_from_a_macvlan_table_goes_with_its_parents_route() {
    // The model can miss a copy (a deletion read after our rewrite): the main route that
    // leaves takes it out of every table it may be in by key, a macvlan's borrowed ones too.
    let settings = settings();
    let via1 = dest(50, vec![hop(ETH1, Some("10.2.0.1"))]);
    let mut main = base_main();
    main.push(via1.clone());
    let mut kept = loaded(&main);
    let mut kernel = KernelTables::of(full_plan(&main));
    let mv0 = settings.table_for(MV0);
    let copy = kernel.0[&mv0]
        .iter()
        .find(|r| Prefix::of(r) == Prefix::of(&via1))
        .cloned()
        .expect("mv0's table borrows eth1's route");
    kept.ours
        .get_mut(&mv0)
        .map(|t| t.remove(&copy))
        .expect("mv0's table");
    let change = Change::Route {
        route: via1,
        added: false,
    };
    assert!(kept.note(&settings, 0, &change));
    main.pop();
    write(&mut kept, &mut kernel);
    assert_eq!(kernel.sorted(), wanted(&main));
}

#[test]
fn a_replace_after_a_link_change_that_may_have_dropped_the_first_route_of_its_key_is_a_full_run() {
    // `ip route replace X dev lan0`, `ip route append X via eth0`, then within one burst
    // lan0 set down (IPv4 drops X dev lan0 without a word) and `ip route replace X nexthop
    // via eth0 nexthop via eth1`: the kernel replaced X via eth0, the model's first is
    // X dev lan0, and X via eth0 would have stayed in the model (and its copy in eth0's
    // table) for good.
    let settings = settings();
    let mut main = base_main();
    main.push(dest(0, vec![hop(LAN0, None)]));
    main.push(dest(0, vec![hop(ETH0, Some("10.1.0.1"))]));
    let both = dest(
        0,
        vec![hop(ETH0, Some("10.1.0.1")), hop(ETH1, Some("10.2.0.1"))],
    );
    let replace = Change::Route {
        route: both,
        added: true,
    };
    let mut kept = loaded(&main);
    assert!(kept.note(&settings, NLM_F_REPLACE, &replace));
    assert!(kept.is_valid(), "without a link change the model knows");
    let mut kept = loaded(&main);
    assert!(!kept.note(&settings, 0, &Change::Link(LAN0)));
    assert!(!kept.note(&settings, NLM_F_REPLACE, &replace));
    assert!(!kept.is_valid());
    // So with the first one's preferred source removed (IPv4 drops its routes too).
    let src = fixtures::ip("10.2.0.50");
    let mut main = base_main();
    main.push(dest(0, vec![hop(ETH1, Some("10.2.0.1"))]).with_pref_src(src));
    main.push(dest(0, vec![hop(ETH0, Some("10.1.0.1"))]));
    let mut kept = loaded(&main);
    let gone = Change::AddressGone {
        index: ETH1,
        addr: Some(src),
    };
    kept.note(&settings, 0, &gone);
    assert!(!kept.note(&settings, NLM_F_REPLACE, &replace));
    assert!(!kept.is_valid());
}
