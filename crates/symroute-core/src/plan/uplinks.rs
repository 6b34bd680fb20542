//! Uplinks and what sits behind the host: which interfaces main uses as a way out, and the
//! main-table routes into bridges, LANs and tunnels that every uplink table must share.
//!
//! Without these copies an uplink table sends everything it does not hold to its gateway,
//! so the answer from an uplink address to a container or a LAN client (which main sends
//! straight to a bridge or LAN NIC) would leave through the uplink instead. Copying the
//! routes into our tables, rather than adding `to PREFIX lookup main` rules, only touches
//! packets from our addresses, never jumps over foreign rules between our priority and
//! main, costs no extra lookup and keeps every object we write in our own tables.
//! See docs/design.md, "Uplinks and what is behind the host".

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use crate::model::{route_type, Family, Route, MAIN_TABLE};
use crate::settings::Settings;

/// The uplinks of each family, by interface index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Uplinks {
    by_family: BTreeSet<(Family, u32)>,
}

/// Whether `route` makes the interfaces it goes through ways out: it has a gateway, or it
/// covers at least half of the address space (the `0.0.0.0/1` + `128.0.0.0/1` pair VPN
/// clients install instead of a default).
fn is_way_out(route: &Route) -> bool {
    route.dst_len <= 1 || route.nexthops.iter().any(|nh| nh.gateway.is_some())
}

/// A main-table unicast route that makes its interfaces uplinks ([`is_way_out`]).
fn is_uplink_route(route: &Route) -> bool {
    route.table == MAIN_TABLE && route.kind == route_type::UNICAST && is_way_out(route)
}

impl Uplinks {
    /// Classifies every interface main routes through.
    pub fn classify(main: &[Route]) -> Uplinks {
        let mut by_family = BTreeSet::new();
        // Main holds few uplinks and up to 100 000 routes through them, mostly in runs
        // through the same one: only a change of (family, interface) is looked up.
        let mut last = None;
        for way in main
            .iter()
            .filter(|r| is_uplink_route(r))
            .flat_map(|r| r.nexthops.iter().map(move |nh| (r.family(), nh.ifindex)))
        {
            if last != Some(way) {
                by_family.insert(way);
                last = Some(way);
            }
        }
        Uplinks { by_family }
    }

    pub fn is_uplink(&self, family: Family, ifindex: u32) -> bool {
        self.by_family.contains(&(family, ifindex))
    }

    /// Whether main has a route through `ifindex` that every uplink table copies (see
    /// [`behind_routes`]; a veth's or bridge port's `fe80::/64` is none).
    pub fn is_behind(&self, main: &[Route], ifindex: u32) -> bool {
        main.iter()
            .any(|r| r.uses_link(ifindex) && is_copyable(r) && !self.is_uplink(r.family(), ifindex))
    }

    /// The (family, interface) pairs `route` makes uplinks: what a model kept route by
    /// route counts to know when an interface's uplink status changes.
    pub fn ways_of(route: &Route) -> impl Iterator<Item = (Family, u32)> + '_ {
        let family = route.family();
        route
            .nexthops
            .iter()
            .filter(move |_| is_uplink_route(route))
            .map(move |nh| (family, nh.ifindex))
    }

    /// Every (family, interface) that is an uplink.
    pub fn ways(&self) -> impl Iterator<Item = (Family, u32)> + '_ {
        self.by_family.iter().copied()
    }

    /// The uplinks of a main whose [`Uplinks::ways_of`] are `ways`.
    pub fn from_ways(ways: impl IntoIterator<Item = (Family, u32)>) -> Uplinks {
        Uplinks {
            by_family: ways.into_iter().collect(),
        }
    }

    /// Every interface that is an uplink of some family, ascending.
    pub fn indexes(&self) -> Vec<u32> {
        let mut all: Vec<u32> = self.by_family.iter().map(|(_, i)| *i).collect();
        all.sort_unstable();
        all.dedup();
        all
    }
}

/// Destinations that never leave through a gateway anyway and that every interface has a
/// route of its own for: IPv6 link-local and multicast.
fn is_local_scope(dst: &IpAddr) -> bool {
    match dst {
        IpAddr::V4(a) => a.is_multicast(),
        IpAddr::V6(a) => {
            let first = a.segments()[0];
            (first & 0xffc0) == 0xfe80 || (first & 0xff00) == 0xff00
        }
    }
}

/// A main-table route of the kind that is copied when its interfaces are behind the host:
/// direct (unicast, no gateway, less than half the space), not IPv6 link-local or multicast,
/// and readable (nexthops known).
pub fn is_copyable(route: &Route) -> bool {
    route.table == MAIN_TABLE
        && route.kind == route_type::UNICAST
        && !route.nexthops.is_empty()
        && !is_way_out(route)
        && !is_local_scope(&route.dst)
}

/// Whether any route of `main` (routes through one interface, say) makes its interfaces
/// matter to other tables: a way out (an uplink) or a copyable direct route.
pub fn matters_to_others(main: &[Route]) -> bool {
    // An uplink route without nexthops (unreadable) names no interface.
    main.iter()
        .any(|r| (is_uplink_route(r) && !r.nexthops.is_empty()) || is_copyable(r))
}

/// The routes behind the host that the uplink table `table` of family `family` gets: copies
/// of main's direct routes (unicast, no gateway on any nexthop) through non-uplinks of that
/// family, except IPv6 link-local and multicast, and except a prefix that `own` (the
/// table's mirror of its own interface) already has a route for: its own routes win, so two
/// NICs in one subnet still answer each through its own NIC. Of several main routes with
/// one key the first is copied: that is the one main's lookup takes.
pub fn behind_routes(
    main: &[Route],
    uplinks: &Uplinks,
    settings: &Settings,
    family: Family,
    table: u32,
    own: &[Route],
) -> Vec<Route> {
    if !settings.family_enabled(family) {
        return Vec::new();
    }
    let candidates: Vec<&Route> = main
        .iter()
        .filter(|route| {
            route.family() == family
                && is_copyable(route)
                && !route
                    .nexthops
                    .iter()
                    .any(|nh| uplinks.is_uplink(family, nh.ifindex))
        })
        .collect();
    if candidates.is_empty() {
        // No need to index `own`, which can be a 100 000-route mirror.
        return Vec::new();
    }
    let taken: BTreeSet<(IpAddr, u8, u8)> = own
        .iter()
        .filter(|r| r.family() == family)
        .map(|r| (r.dst, r.dst_len, r.tos))
        .collect();
    let mut copies = BTreeMap::new();
    for route in candidates {
        if taken.contains(&(route.dst, route.dst_len, route.tos)) {
            continue;
        }
        let mut copy = route.clone();
        copy.table = table;
        copy.protocol = settings.protocol;
        copies.entry(copy.key()).or_insert(copy);
    }
    copies.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;
    use crate::model::scope;

    const ETH0: u32 = 2;
    const ETH1: u32 = 3;
    const DOCKER0: u32 = 4;
    const LAN0: u32 = 5;
    const TUN0: u32 = 6;

    /// A main-table route as the kernel writes it (protocol kernel, scope link).
    fn route(dst: &str, len: u8, metric: u32, hops: &[(u32, Option<&str>)]) -> Route {
        let hops = hops.iter().map(|(i, gw)| fixtures::hop(*i, *gw)).collect();
        fixtures::unicast(MAIN_TABLE, dst, len, metric, 2, hops).with_scope(scope::LINK)
    }

    fn docker_host() -> Vec<Route> {
        vec![
            route("0.0.0.0", 0, 100, &[(ETH0, Some("10.1.0.1"))]),
            route("0.0.0.0", 0, 101, &[(ETH1, Some("10.2.0.1"))]),
            route("10.1.0.0", 24, 0, &[(ETH0, None)]),
            route("10.2.0.0", 24, 0, &[(ETH1, None)]),
            route("172.17.0.0", 16, 0, &[(DOCKER0, None)]),
            route("192.168.5.0", 24, 0, &[(LAN0, None)]),
            route("224.0.0.0", 4, 0, &[(LAN0, None)]),
            route("::", 0, 100, &[(ETH0, Some("fe80::1"))]),
            route("fd01::", 64, 256, &[(ETH0, None)]),
            route("fd00:17::", 64, 256, &[(DOCKER0, None)]),
            route("fe80::", 64, 256, &[(DOCKER0, None)]),
            route("fe80::", 64, 256, &[(ETH1, None)]),
            route("fd02::", 64, 256, &[(ETH1, None)]),
        ]
    }

    fn shown(routes: &[Route]) -> Vec<String> {
        routes.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn uplinks_are_interfaces_with_a_gateway_or_half_the_space_per_family() {
        let mut main = docker_host();
        // A VPN client's split default through a tun without gateway.
        main.push(route("0.0.0.0", 1, 0, &[(TUN0, None)]));
        main.push(route("128.0.0.0", 1, 0, &[(TUN0, None)]));
        // An ECMP route makes both of its interfaces uplinks.
        main.push(route(
            "fd99::",
            48,
            1024,
            &[(LAN0, Some("fe80::9")), (ETH1, Some("fe80::1"))],
        ));
        let up = Uplinks::classify(&main);
        assert!(up.is_uplink(Family::V4, ETH0) && up.is_uplink(Family::V4, ETH1));
        assert!(up.is_uplink(Family::V4, TUN0));
        assert!(!up.is_uplink(Family::V4, DOCKER0) && !up.is_uplink(Family::V4, LAN0));
        assert!(up.is_uplink(Family::V6, ETH0));
        // A link-local IPv6 gateway counts; so does a nexthop of a multipath route.
        assert!(up.is_uplink(Family::V6, ETH1) && up.is_uplink(Family::V6, LAN0));
        assert!(!up.is_uplink(Family::V6, DOCKER0) && !up.is_uplink(Family::V6, TUN0));
        assert_eq!(up.indexes(), [ETH0, ETH1, LAN0, TUN0]);
        assert!(up.is_behind(&main, DOCKER0) && up.is_behind(&main, LAN0));
        assert!(!up.is_behind(&main, ETH1) && !up.is_behind(&main, TUN0));
        assert!(!up.is_behind(&main, ETH0) && !up.is_behind(&main, 99));
        // A bridge port or veth with only its link-local prefix matters to nobody.
        const VETH: u32 = 7;
        let veth = [route("fe80::", 64, 256, &[(VETH, None)])];
        assert!(!Uplinks::classify(&veth).is_behind(&veth, VETH));
        assert!(!matters_to_others(&veth) && !matters_to_others(&[]));
        assert!(matters_to_others(&[route(
            "172.17.0.0",
            16,
            0,
            &[(DOCKER0, None)]
        )]));
        assert!(matters_to_others(&[route(
            "0.0.0.0",
            1,
            0,
            &[(TUN0, None)]
        )]));
    }

    #[test]
    fn non_uplink_direct_routes_are_copied_with_our_table_and_protocol() {
        let main = docker_host();
        let up = Uplinks::classify(&main);
        let own = [route("10.2.0.0", 24, 0, &[(ETH1, None)])];
        let settings = Settings::default();
        let v4 = behind_routes(&main, &up, &settings, Family::V4, 1003, &own);
        assert_eq!(
            shown(&v4),
            [
                "172.17.0.0/16 dev if4 table 1003 scope link",
                "192.168.5.0/24 dev if5 table 1003 scope link",
            ]
        );
        assert!(v4.iter().all(|r| r.protocol == 83));
        // IPv6: the ULA bridge but not its fe80::/64; eth1 has no IPv6 gateway here, so for
        // IPv6 its subnet is behind the host like the bridge.
        let v6 = behind_routes(&main, &up, &settings, Family::V6, 1002, &[]);
        assert_eq!(
            shown(&v6),
            [
                "fd00:17::/64 dev if4 table 1002 scope link metric 256",
                "fd02::/64 dev if3 table 1002 scope link metric 256",
            ]
        );
    }

    #[test]
    fn own_routes_win_over_a_copy_of_the_same_prefix() {
        // Two NICs in one subnet, the second without gateway: eth1's table keeps only its own
        // 10.2.0.0/24, whatever the metrics.
        let mut main = docker_host();
        main.push(route("10.2.0.0", 24, 102, &[(LAN0, None)]));
        let up = Uplinks::classify(&main);
        let own = [route("10.2.0.0", 24, 0, &[(ETH1, None)])];
        let v4 = behind_routes(&main, &up, &Settings::default(), Family::V4, 1003, &own);
        assert!(v4
            .iter()
            .all(|r| r.dst != "10.2.0.0".parse::<IpAddr>().unwrap()));
    }

    #[test]
    fn only_the_first_of_routes_with_one_key_is_copied() {
        let mut main = docker_host();
        main.push(route("172.17.0.0", 16, 0, &[(LAN0, None)]));
        let up = Uplinks::classify(&main);
        let v4 = behind_routes(&main, &up, &Settings::default(), Family::V4, 1003, &[]);
        let bridge: Vec<&Route> = v4.iter().filter(|r| r.dst_len == 16).collect();
        assert_eq!(bridge.len(), 1);
        assert_eq!(bridge[0].nexthops[0].ifindex, DOCKER0);
    }

    #[test]
    fn disabled_family_and_exotic_routes_are_not_copied() {
        let mut main = docker_host();
        // A route symroute cannot copy (nexthop object, encap) reads without nexthops.
        main.push(route("172.30.0.0", 16, 0, &[]));
        let up = Uplinks::classify(&main);
        let settings = Settings {
            ipv6: false,
            ..Settings::default()
        };
        assert!(behind_routes(&main, &up, &settings, Family::V6, 1002, &[]).is_empty());
        let v4 = behind_routes(&main, &up, &settings, Family::V4, 1002, &[]);
        assert!(v4.iter().all(|r| !r.nexthops.is_empty()));
    }
}
