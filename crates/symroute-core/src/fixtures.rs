//! Builders and a sample host shared by the unit tests: state written down literally.

use std::net::IpAddr;

use crate::model::{
    route_type, scope, Address, Answer, Link, NextHop, Route, Rule, Snapshot, LOCAL_TABLE,
    MAIN_TABLE,
};
use crate::plan::{plan_exempt, plan_interface};
use crate::settings::Settings;

pub const ETH0: u32 = 2;
pub const ETH1: u32 = 3;

pub fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub fn link(index: u32, name: &str) -> Link {
    Link {
        index,
        name: name.into(),
        up: true,
        loopback: index == 1,
        tunnel: false,
        parent: None,
    }
}

/// A tunnel device (tun, WireGuard) `name` with index `index`.
pub fn tunnel(index: u32, name: &str) -> Link {
    Link {
        tunnel: true,
        ..link(index, name)
    }
}

pub fn addr(ifindex: u32, a: &str, len: u8) -> Address {
    Address {
        ifindex,
        addr: ip(a),
        prefix_len: len,
        scope: scope::UNIVERSE,
        flags: 0,
    }
}

/// A next hop through `ifindex`, via `gw` when given.
pub fn hop(ifindex: u32, gw: Option<&str>) -> NextHop {
    match gw {
        Some(gw) => NextHop::via(ip(gw), ifindex),
        None => NextHop::dev(ifindex),
    }
}

/// A unicast route; its scope is `link` when no next hop has a gateway.
pub fn unicast(
    table: u32,
    dst: &str,
    len: u8,
    metric: u32,
    protocol: u8,
    nexthops: Vec<NextHop>,
) -> Route {
    Route::unicast(table, ip(dst), len)
        .multipath(nexthops)
        .with_metric(metric)
        .with_protocol(protocol)
}

/// A route through one device; via a gateway it gets metric 100 + `dev`.
pub fn route(table: u32, dst: &str, len: u8, gw: Option<&str>, dev: u32, proto: u8) -> Route {
    let metric = if gw.is_some() { 100 + dev } else { 0 };
    unicast(table, dst, len, metric, proto, vec![hop(dev, gw)])
}

/// The kernel's answer to a route lookup: through `oif` in `table`, the entry `matched`
/// having matched.
pub fn through(table: u32, oif: u32, gateway: Option<&str>, matched: Route) -> Answer {
    Answer::Route {
        table,
        kind: route_type::UNICAST,
        matched: Some(matched),
        oif: Some(oif),
        gateway: gateway.map(ip),
        prefsrc: None,
    }
}

pub fn rule(priority: u32, src: Option<(&str, u8)>, table: u32, protocol: u8) -> Rule {
    let rule = Rule::lookup(table, priority).with_protocol(protocol);
    match src {
        Some((a, len)) => rule.with_src(ip(a), len),
        None => rule,
    }
}

/// The lab host, before symroute ran: two uplinks with a default each.
pub fn host() -> Snapshot {
    Snapshot {
        links: vec![link(1, "lo"), link(ETH0, "eth0"), link(ETH1, "eth1")],
        addresses: vec![
            addr(1, "127.0.0.1", 8),
            addr(ETH0, "10.1.0.2", 24),
            addr(ETH1, "10.2.0.2", 24),
        ],
        main_routes: vec![
            route(MAIN_TABLE, "0.0.0.0", 0, Some("10.1.0.1"), ETH0, 4),
            route(MAIN_TABLE, "0.0.0.0", 0, Some("10.2.0.1"), ETH1, 4),
            route(MAIN_TABLE, "10.1.0.0", 24, None, ETH0, 2),
            route(MAIN_TABLE, "10.2.0.0", 24, None, ETH1, 2),
        ],
        rules: vec![
            rule(0, None, LOCAL_TABLE, 2),
            rule(32766, None, MAIN_TABLE, 2),
            rule(32767, None, 253, 2),
        ],
        ..Snapshot::default()
    }
}

/// `snapshot` after a sync of every interface.
pub fn synced(mut snapshot: Snapshot, settings: &Settings) -> Snapshot {
    for link in snapshot.links.clone() {
        let plan = plan_interface(&snapshot, settings, &link).unwrap();
        if !plan.routes.is_empty() {
            snapshot.tables.insert(plan.table, plan.routes);
        }
        snapshot.rules.extend(plan.rules);
    }
    snapshot.rules.extend(plan_exempt(settings));
    snapshot.rules.sort_by_key(|r| r.priority);
    snapshot
}

/// `snapshot` with a VPN client's catch-all (`from all lookup 51820 priority 100`, before
/// ours) into a table with a default route through eth1: it takes all traffic.
pub fn with_vpn_catch_all(mut snapshot: Snapshot) -> Snapshot {
    snapshot.rules.push(rule(100, None, 51820, 4));
    snapshot.tables.insert(
        51820,
        vec![route(51820, "0.0.0.0", 0, Some("10.2.0.1"), ETH1, 4)],
    );
    snapshot
}

/// `snapshot` with wg-quick's full tunnel on `wg0` (a tun device, index `wg0`): its rules
/// `not fwmark 51820 lookup 51820` and `lookup main suppress_prefixlength 0`, added after
/// ours (so at 31999 and 31998, ahead of them), and `default dev wg0 table 51820`.
pub fn with_wg_quick(mut snapshot: Snapshot, wg0: u32) -> Snapshot {
    snapshot.links.push(tunnel(wg0, "wg0"));
    snapshot.addresses.push(addr(wg0, "10.99.0.2", 32));
    let mut not_marked = rule(31999, None, 51820, 0);
    not_marked.fwmark = Some((51820, u32::MAX));
    not_marked.extra.invert = true;
    let mut suppress = rule(31998, None, MAIN_TABLE, 0);
    suppress.suppress_prefixlen = Some(0);
    snapshot.rules.extend([suppress, not_marked]);
    snapshot.rules.sort_by_key(|r| r.priority);
    snapshot
        .tables
        .insert(51820, vec![route(51820, "0.0.0.0", 0, None, wg0, 3)]);
    snapshot
}

/// `symroute status` of `snapshot`: the plan of a full sync of it, shown (with `settings`
/// as given, not placed).
pub fn status_of(snapshot: &Snapshot, settings: &Settings) -> crate::views::status::Status {
    use crate::run::{plan_run, Read, Target};
    let read = Read::of(snapshot.clone(), settings);
    let mut plan = plan_run(&read, settings, &Target::All, &Default::default());
    // Over a snapshot alone nothing is walked in a kernel, so nothing can fail.
    let _ = plan.diff(&read, settings, None);
    use crate::views::status::{status, Listing};
    status(&read.snapshot, settings, &plan, None, Listing::Every)
}
