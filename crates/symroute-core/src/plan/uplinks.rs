//! What every uplink table copies of what sits behind the host: the main-table routes into
//! bridges, LANs and tunnels ([`crate::model::uplinks`] says which interfaces are uplinks).
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

use crate::model::uplinks::{is_copyable, Uplinks};
use crate::model::{Family, Route};
use crate::settings::Settings;

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
            route.family() == family && is_copyable(route) && !uplinks.leaves_host(route)
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
    use crate::model::uplinks::matters_to_others;
    use crate::model::{scope, MAIN_TABLE};

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
    fn an_interface_behind_the_host_in_one_family_is_planned_with_that_familys_uplinks() {
        use crate::model::uplinks::dependents;
        // No IPv6 default: both NICs are IPv4 uplinks only, and behind the host in IPv6.
        let main: Vec<Route> = docker_host()
            .into_iter()
            .filter(|r| !(r.family() == Family::V6 && r.dst_len == 0))
            .collect();
        let links: Vec<_> = [(ETH0, "eth0"), (ETH1, "eth1"), (DOCKER0, "docker0")]
            .iter()
            .map(|(i, n)| fixtures::link(*i, n))
            .collect();
        let up = Uplinks::classify(&main, &[], &links);
        let along = |x: u32, strict: bool| {
            dependents(&up, &main, &links, x, strict, |_| Ok::<_, ()>(false)).unwrap()
        };
        // eth1's IPv6 prefix goes into no IPv4-only uplink's table: eth0 (and its share of
        // a large main) is not read for eth1's run.
        assert_eq!(along(ETH1, false), Vec::<u32>::new());
        assert_eq!(along(ETH1, true), [ETH0]);
        // docker0 is behind in IPv4 too: every IPv4 uplink copies it.
        assert_eq!(along(DOCKER0, false), [ETH0, ETH1]);
        // With the IPv6 default back, eth0 takes eth1's IPv6 prefix.
        let main = docker_host();
        let up = Uplinks::classify(&main, &[], &links);
        assert_eq!(
            dependents(&up, &main, &links, ETH1, false, |_| Ok::<_, ()>(false)).unwrap(),
            [ETH0]
        );
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
        let up = Uplinks::classify(&main, &[], &[]);
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
        assert!(!Uplinks::classify(&veth, &[], &[]).is_behind(&veth, VETH));
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
    fn the_loopback_is_neither_an_uplink_nor_behind_the_host() {
        const LO: u32 = 1;
        let mut main = docker_host();
        main.push(route("10.97.0.0", 16, 0, &[(LO, None)]));
        main.push(route("0.0.0.0", 1, 0, &[(LO, None)]));
        let lo = crate::fixtures::link(LO, "lo");
        assert!(lo.loopback);
        let up = Uplinks::classify(&main, &[], &[lo]);
        assert!(!up.is_uplink(Family::V4, LO) && !up.is_behind(&main, LO));
        let v4 = behind_routes(&main, &up, &Settings::default(), Family::V4, 1003, &[]);
        assert!(v4.iter().all(|r| !r.uses_link(LO)), "{:?}", shown(&v4));
        assert!(v4.iter().any(|r| r.uses_link(DOCKER0)));
    }

    #[test]
    fn non_uplink_direct_routes_are_copied_with_our_table_and_protocol() {
        let main = docker_host();
        let up = Uplinks::classify(&main, &[], &[]);
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
        let up = Uplinks::classify(&main, &[], &[]);
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
        let up = Uplinks::classify(&main, &[], &[]);
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
        let up = Uplinks::classify(&main, &[], &[]);
        let settings = Settings {
            ipv6: false,
            ..Settings::default()
        };
        assert!(behind_routes(&main, &up, &settings, Family::V6, 1002, &[]).is_empty());
        let v4 = behind_routes(&main, &up, &settings, Family::V4, 1002, &[]);
        assert!(v4.iter().all(|r| !r.nexthops.is_empty()));
    }
    /// OpenVPN's `redirect-gateway def1 ipv6`: four direct routes into tun0, none of them
    /// half of anything, together all of 2000::/3.
    fn openvpn_def1_ipv6() -> Vec<Route> {
        let mut main = docker_host();
        main.extend([
            route("fd08::", 64, 256, &[(TUN0, None)]),
            route("::", 3, 1024, &[(TUN0, None)]),
            route("2000::", 4, 1024, &[(TUN0, None)]),
            route("3000::", 4, 1024, &[(TUN0, None)]),
            route("fc00::", 7, 1024, &[(TUN0, None)]),
        ]);
        main
    }

    #[test]
    fn openvpn_ipv6_split_makes_the_tunnel_an_uplink_and_nothing_of_it_is_copied() {
        let main = openvpn_def1_ipv6();
        let up = Uplinks::classify(&main, &[], &[]);
        assert!(up.is_uplink(Family::V6, TUN0) && !up.is_uplink(Family::V4, TUN0));
        assert!(!up.is_behind(&main, TUN0));
        let v6 = behind_routes(&main, &up, &Settings::default(), Family::V6, 1003, &[]);
        assert!(v6.iter().all(|r| !r.uses_link(TUN0)), "{:?}", shown(&v6));
        // Half of 2000::/3 is enough; a quarter, or only space outside it, is not.
        let half = [
            route("2000::", 4, 0, &[(TUN0, None)]),
            route("2000::", 5, 0, &[(TUN0, None)]),
        ];
        assert!(Uplinks::classify(&half, &[], &[]).is_uplink(Family::V6, TUN0));
        let quarter = [route("2000::", 5, 0, &[(TUN0, None)])];
        assert!(!Uplinks::classify(&quarter, &[], &[]).is_uplink(Family::V6, TUN0));
        let outside = [
            route("8000::", 1, 0, &[(TUN0, None)]),
            route("::", 3, 0, &[(TUN0, None)]),
        ];
        assert!(!Uplinks::classify(&outside, &[], &[]).is_uplink(Family::V6, TUN0));
        // The ::/1 + 8000::/1 pair and a plain default through a tun without gateway.
        let pair = [
            route("::", 1, 0, &[(TUN0, None)]),
            route("8000::", 1, 0, &[(TUN0, None)]),
        ];
        assert!(Uplinks::classify(&pair, &[], &[]).is_uplink(Family::V6, TUN0));
        let default = [route("::", 0, 0, &[(TUN0, None)])];
        assert!(Uplinks::classify(&default, &[], &[]).is_uplink(Family::V6, TUN0));
    }

    #[test]
    fn ipv4_shares_count_each_address_once() {
        // Four /2s through one tun: all of IPv4. Overlapping /1s and /2s of half the
        // space are still half, and 0/2 + 0/3 (overlapping) only a quarter.
        let quarters: Vec<Route> = ["0.0.0.0", "64.0.0.0", "128.0.0.0", "192.0.0.0"]
            .iter()
            .map(|d| route(d, 2, 0, &[(TUN0, None)]))
            .collect();
        assert!(Uplinks::classify(&quarters, &[], &[]).is_uplink(Family::V4, TUN0));
        let overlap = [
            route("0.0.0.0", 2, 0, &[(TUN0, None)]),
            route("0.0.0.0", 3, 0, &[(TUN0, None)]),
        ];
        assert!(!Uplinks::classify(&overlap, &[], &[]).is_uplink(Family::V4, TUN0));
        let doubled = [
            route("0.0.0.0", 2, 0, &[(TUN0, None)]),
            route("64.0.0.0", 2, 0, &[(TUN0, None)]),
            route("0.0.0.0", 2, 5, &[(TUN0, None)]),
        ];
        assert!(Uplinks::classify(&doubled, &[], &[]).is_uplink(Family::V4, TUN0));
        // A site VPN (10.0.0.0/8) stays behind the host.
        let site = [route("10.0.0.0", 8, 0, &[(TUN0, None)])];
        let up = Uplinks::classify(&site, &[], &[]);
        assert!(!up.is_uplink(Family::V4, TUN0) && up.is_behind(&site, TUN0));
    }

    #[test]
    fn a_default_in_a_vpn_table_makes_the_tunnel_an_uplink() {
        // wg-quick: `default dev wg0 table 51820`, and in main only its address's subnet.
        let mut main = docker_host();
        main.push(route("10.64.0.0", 24, 0, &[(TUN0, None)]));
        let vpn_default = route("0.0.0.0", 0, 0, &[(TUN0, None)]).with_table(51820);
        let up = Uplinks::classify(&main, &[&vpn_default], &[]);
        assert!(up.is_uplink(Family::V4, TUN0) && !up.is_uplink_by_main(Family::V4, TUN0));
        assert!(up.is_uplink_by_main(Family::V4, ETH0));
        let v4 = behind_routes(&main, &up, &Settings::default(), Family::V4, 1003, &[]);
        assert!(v4.iter().all(|r| !r.uses_link(TUN0)), "{:?}", shown(&v4));
        // Peers' host routes alone (Tailscale without an exit node) are no way out.
        let peer = route("100.101.1.2", 32, 0, &[(TUN0, None)]).with_table(52);
        let up = Uplinks::classify(&main, &[&peer], &[]);
        assert!(!up.is_uplink(Family::V4, TUN0) && up.is_behind(&main, TUN0));
    }

    #[test]
    fn a_macvlan_on_an_uplink_is_one_and_takes_its_parents_ways_out() {
        const VRRP: u32 = 8;
        let mut main = docker_host();
        main.push(route("10.2.0.0", 24, 0, &[(VRRP, None)]));
        let mut vmac = crate::fixtures::link(VRRP, "vrrp.52");
        vmac.parent = Some(ETH1);
        let links = [vmac];
        let up = Uplinks::classify(&main, &[], &links);
        assert!(up.is_uplink(Family::V4, VRRP) && up.parent(Family::V4, VRRP) == Some(ETH1));
        // eth1 has no IPv6 gateway here: neither has its macvlan.
        assert!(!up.is_uplink(Family::V6, VRRP));
        assert!(!up.is_behind(&main, VRRP));
        let v4 = behind_routes(&main, &up, &Settings::default(), Family::V4, 1002, &[]);
        assert!(v4.iter().all(|r| !r.uses_link(VRRP)), "{:?}", shown(&v4));
        // One with a default of its own keeps its own ways.
        main.push(route("0.0.0.0", 0, 102, &[(VRRP, Some("10.2.0.1"))]));
        let up = Uplinks::classify(&main, &[], &links);
        assert!(up.is_uplink(Family::V4, VRRP) && up.parent(Family::V4, VRRP).is_none());
    }
}
