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

use super::placement;
use crate::model::{route_type, Family, Link, Route, Snapshot, MAIN_TABLE};
use crate::settings::Settings;

/// The uplinks of each family, by interface index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Uplinks {
    by_family: BTreeSet<(Family, u32)>,
    /// Those of `by_family` that main alone makes uplinks (a gateway, or main's routes'
    /// share): their tables hold a way out of their own.
    by_main: BTreeSet<(Family, u32)>,
    /// Uplinks only because they share the wire of an uplink (a macvlan without a way out
    /// of its own), with that parent.
    borrowed: BTreeMap<(Family, u32), u32>,
    /// The loopback: a route through it leads back into the host, so it is neither a way
    /// out nor behind the host (nothing there answers), and a run for another interface
    /// need not read it.
    loopback: BTreeSet<u32>,
}

/// Whether `route` is a way out on its own, never copied as behind the host: it has a
/// gateway, or it covers at least half of the address space (`0.0.0.0/1`, `::/1`).
pub fn is_way_out(route: &Route) -> bool {
    route.dst_len <= 1 || has_gateway(route)
}

fn has_gateway(route: &Route) -> bool {
    route.nexthops.iter().any(|nh| nh.gateway.is_some())
}

/// A main-table unicast route that makes its interfaces uplinks ([`is_way_out`]).
pub fn is_uplink_route(route: &Route) -> bool {
    route.table == MAIN_TABLE && route.kind == route_type::UNICAST && is_way_out(route)
}

/// The public address space an interface's share is measured against, as the first and
/// last address (numbers): all of IPv4, and IPv6's global unicast `2000::/3` — everything
/// IANA hands out for the public Internet, where OpenVPN's `def1 ipv6` split (`2000::/4` +
/// `3000::/4`) covers all of it while it is an eighth of the whole IPv6 space.
fn public_space(family: Family) -> (u128, u128) {
    match family {
        Family::V4 => (0, u128::from(u32::MAX)),
        Family::V6 => (0x2000 << 112, (0x4000 << 112) - 1),
    }
}

/// The part of the public space (of its family) `route`'s prefix covers, first and last
/// address; `None` when it covers none of it (a ULA, `::/3`, `8000::/1`).
fn public_span(route: &Route) -> Option<(u128, u128)> {
    let (addr, bits) = match route.dst {
        IpAddr::V4(a) => (u128::from(u32::from(a)), 32),
        IpAddr::V6(a) => (u128::from(a), 128),
    };
    let host = bits - u32::from(route.dst_len.min(bits as u8));
    let low_bits = if host >= 128 {
        u128::MAX
    } else {
        (1u128 << host) - 1
    };
    let (first, last) = (addr & !low_bits, addr | low_bits);
    let (public_first, public_last) = public_space(route.family());
    let (first, last) = (first.max(public_first), last.min(public_last));
    (first <= last).then_some((first, last))
}

/// Whether `spans` (of one family, in any order, overlapping or not) cover at least half of
/// its public space; each address counts once however many routes cover it.
fn covers_half(family: Family, spans: &mut [(u128, u128)]) -> bool {
    spans.sort_unstable();
    let mut covered: u128 = 0;
    let mut open: Option<(u128, u128)> = None;
    for &(first, last) in spans.iter() {
        open = match open {
            Some((a, b)) if first <= b.saturating_add(1) => Some((a, b.max(last))),
            Some((a, b)) => {
                covered += b - a + 1;
                Some((first, last))
            }
            None => Some((first, last)),
        };
    }
    if let Some((a, b)) = open {
        covered += b - a + 1;
    }
    let (first, last) = public_space(family);
    // `covered * 2 >= size`, size being `last - first + 1`; at most 2^125 (IPv6) or 2^32:
    // doubling cannot overflow.
    covered * 2 > last - first
}

/// Whether direct routes whose [`Uplinks::direct_shares`] sum to `sum` could cover half of
/// `family`'s public space (they do not when the sum, overlaps counted twice, is under it).
pub fn may_cover_half(family: Family, sum: u128) -> bool {
    let (first, last) = public_space(family);
    sum.saturating_mul(2) > last - first
}

/// Each interface's share of the public space, per family: the spans of its routes.
type Spans = BTreeMap<(Family, u32), Vec<(u128, u128)>>;

/// Adds the [`public_span`] of each of `routes` to `spans`, for every (family, interface)
/// it goes through that `uplinks` does not hold yet; returns those that got a span.
fn add_spans<'a>(
    spans: &mut Spans,
    routes: impl Iterator<Item = &'a Route>,
    uplinks: &BTreeSet<(Family, u32)>,
) -> BTreeSet<(Family, u32)> {
    let mut added = BTreeSet::new();
    for route in routes {
        let Some(span) = public_span(route) else {
            continue;
        };
        for nh in route.nexthops.iter() {
            let way = (route.family(), nh.ifindex);
            if !uplinks.contains(&way) {
                spans.entry(way).or_default().push(span);
                added.insert(way);
            }
        }
    }
    added
}

impl Uplinks {
    /// Classifies every interface main routes through; `vpn` are the routes of the tables
    /// other tools' catch-all rules look up before main (`placement::vpn_tables`), and
    /// `links` say which link sits on another's wire.
    ///
    /// An interface is an uplink of a family when main has a route through it with a
    /// gateway, when main's routes through it cover at least half of the public space
    /// ([`public_space`]; overlaps counted once), or when the VPN tables' routes through it
    /// do (a full tunnel whose default lives in a table of its own). A macvlan or ipvlan
    /// without a way out of its own is an uplink wherever its parent is.
    pub fn classify<'a, I>(main: I, vpn: &[&Route], links: &[Link]) -> Uplinks
    where
        I: IntoIterator<Item = &'a Route>,
        I::IntoIter: Clone,
    {
        let loopback: BTreeSet<u32> = links
            .iter()
            .filter(|l| l.loopback)
            .map(|l| l.index)
            .collect();
        let through_loopback =
            |r: &&Route| r.nexthops.iter().any(|nh| loopback.contains(&nh.ifindex));
        let main = main.into_iter().filter(|r| !through_loopback(r));
        let mut by_family = BTreeSet::new();
        // Main holds few uplinks and up to 100 000 routes through them, mostly in runs
        // through the same one: only a change of (family, interface) is looked up.
        let mut last = None;
        for way in main
            .clone()
            .filter(|r| r.table == MAIN_TABLE && r.kind == route_type::UNICAST && has_gateway(r))
            .flat_map(|r| r.nexthops.iter().map(move |nh| (r.family(), nh.ifindex)))
        {
            if last != Some(way) {
                by_family.insert(way);
                last = Some(way);
            }
        }
        // Direct routes are few (connected subnets, a tunnel's split default): their share
        // of the public space is summed per interface.
        let mut spans = Spans::new();
        let direct = main
            .filter(|r| r.table == MAIN_TABLE && r.kind == route_type::UNICAST && !has_gateway(r));
        add_spans(&mut spans, direct, &by_family);
        for (way, list) in &mut spans {
            if covers_half(way.0, list) {
                by_family.insert(*way);
            }
        }
        let by_main = by_family.clone();
        let vpn_unicast = vpn
            .iter()
            .copied()
            .filter(|r| r.kind == route_type::UNICAST)
            .filter(|r| !r.nexthops.iter().any(|nh| loopback.contains(&nh.ifindex)));
        let by_vpn_table = add_spans(&mut spans, vpn_unicast, &by_family);
        // Main's direct routes through them and the VPN tables' together.
        by_family.extend(by_vpn_table.into_iter().filter(|way| {
            spans
                .get_mut(way)
                .is_some_and(|list| covers_half(way.0, list))
        }));
        let mut borrowed = BTreeMap::new();
        for link in links {
            let Some(parent) = link.parent else { continue };
            for family in [Family::V4, Family::V6] {
                if by_family.contains(&(family, parent))
                    && !by_family.contains(&(family, link.index))
                {
                    borrowed.insert((family, link.index), parent);
                }
            }
        }
        by_family.extend(borrowed.keys().copied());
        Uplinks {
            by_family,
            by_main,
            borrowed,
            loopback,
        }
    }

    /// [`Uplinks::classify`] of what `snapshot` holds: its main, the VPN tables it read
    /// ([`placement::vpn_tables`] of its rules) and its links.
    pub fn of(snapshot: &Snapshot, settings: &Settings) -> Uplinks {
        let vpn = vpn_routes(snapshot, &placement::vpn_tables(&snapshot.rules, settings));
        Uplinks::classify(&snapshot.main_routes, &vpn, &snapshot.links)
    }

    pub fn is_uplink(&self, family: Family, ifindex: u32) -> bool {
        self.by_family.contains(&(family, ifindex))
    }

    /// Whether main alone makes `ifindex` an uplink of `family` (a gateway, or main's routes
    /// through it covering half the public space): its table holds a way out of its own.
    pub fn is_uplink_by_main(&self, family: Family, ifindex: u32) -> bool {
        self.by_main.contains(&(family, ifindex))
    }

    /// The uplink whose wire `ifindex` shares and whose ways out it takes for `family`.
    pub fn parent(&self, family: Family, ifindex: u32) -> Option<u32> {
        self.borrowed.get(&(family, ifindex)).copied()
    }

    /// Whether main has a route through `ifindex` that every uplink table copies (see
    /// [`behind_routes`]; a veth's or bridge port's `fe80::/64` is none).
    pub fn is_behind(&self, main: &[Route], ifindex: u32) -> bool {
        !self.loopback.contains(&ifindex)
            && main.iter().any(|r| {
                r.uses_link(ifindex) && is_copyable(r) && !self.is_uplink(r.family(), ifindex)
            })
    }

    /// Whether `route` leaves through an uplink of its family or the loopback: it is never
    /// copied as behind the host.
    fn leaves_host(&self, route: &Route) -> bool {
        route.nexthops.iter().any(|nh| {
            self.is_uplink(route.family(), nh.ifindex) || self.loopback.contains(&nh.ifindex)
        })
    }

    /// The (family, interface) pairs a main-table route with a gateway makes uplinks: what
    /// a model kept route by route counts, so that it knows when that set changes.
    pub fn gateway_ways(route: &Route) -> impl Iterator<Item = (Family, u32)> + '_ {
        let family = route.family();
        route
            .nexthops
            .iter()
            .filter(move |_| {
                route.table == MAIN_TABLE && route.kind == route_type::UNICAST && has_gateway(route)
            })
            .map(move |nh| (family, nh.ifindex))
    }

    /// What a direct main-table route adds to the share of the public space of each
    /// (family, interface) it goes through, overlaps not taken out: a model kept route by
    /// route sums these, and an interface whose sum stays under half ([`may_cover_half`])
    /// cannot become an uplink by its share.
    pub fn direct_shares(route: &Route) -> impl Iterator<Item = ((Family, u32), u128)> + '_ {
        let direct =
            route.table == MAIN_TABLE && route.kind == route_type::UNICAST && !has_gateway(route);
        let size = public_span(route).map(|(first, last)| last - first + 1);
        let family = route.family();
        route
            .nexthops
            .iter()
            .filter_map(move |nh| size.filter(|_| direct).map(|n| ((family, nh.ifindex), n)))
    }

    /// Every interface that is an uplink of some family, ascending.
    pub fn indexes(&self) -> Vec<u32> {
        let mut all: Vec<u32> = self.by_family.iter().map(|(_, i)| *i).collect();
        all.sort_unstable();
        all.dedup();
        all
    }
}

/// The interfaces a run for `x` plans along with it, ascending: every uplink when `x` is
/// behind the host (their tables copy its routes), the macvlans on `x` (one that took `x`'s
/// ways out keeps copies of them when `x` loses its gateway), and the uplinks whose tables
/// still hold a copy of a route through `x` from when it was behind the host
/// (`holds_copy_through`, asked only about uplinks the rest leaves out). The read of a run
/// for `x` reads these tables; `status X` names them.
pub fn dependents<E>(
    uplinks: &Uplinks,
    main: &[Route],
    links: &[Link],
    x: u32,
    mut holds_copy_through: impl FnMut(&Link) -> Result<bool, E>,
) -> Result<Vec<u32>, E> {
    let behind = uplinks.is_behind(main, x);
    let mut candidates = uplinks.indexes();
    candidates.extend(
        links
            .iter()
            .filter(|l| l.parent == Some(x))
            .map(|l| l.index),
    );
    candidates.sort_unstable();
    candidates.dedup();
    let mut out = Vec::new();
    for y in candidates.into_iter().filter(|y| *y != x) {
        let Some(link) = links.iter().find(|l| l.index == y) else {
            continue;
        };
        if behind || link.parent == Some(x) || holds_copy_through(link)? {
            out.push(y);
        }
    }
    Ok(out)
}

/// The routes of `tables` (with their family: a rule of one family looks up only that
/// family's routes) in `snapshot`.
pub fn vpn_routes<'a>(snapshot: &'a Snapshot, tables: &[(Family, u32)]) -> Vec<&'a Route> {
    tables
        .iter()
        .flat_map(|(family, table)| {
            snapshot
                .table(*table)
                .iter()
                .filter(move |r| r.family() == *family)
        })
        .collect()
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
