//! Uplinks and what sits behind the host: which interfaces main uses as a way out, and
//! which main-table routes lead into bridges, LANs and tunnels behind the host. A property
//! of the host as read, classified once per model (kernel/ to choose what to read, plan/ to
//! plan, views/ to report); what each uplink table copies of it is plan::uplinks.
//! See docs/design.md, "Uplinks and what is behind the host".

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use super::rules;
use super::{route_type, Family, Link, Route, Snapshot, MAIN_TABLE};

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
    /// other tools' catch-all rules look up before main ([`rules::vpn_tables`]), and
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
    {
        let main = main.into_iter();
        Uplinks::classify_each(|visit| main.for_each(visit), vpn, links)
    }

    /// [`Uplinks::classify`] of the routes `main` shows its visitor, once each: for a
    /// table kept in a form of its own (the daemon's packed model).
    pub fn classify_each(
        main: impl FnOnce(&mut dyn FnMut(&Route)),
        vpn: &[&Route],
        links: &[Link],
    ) -> Uplinks {
        let loopback: BTreeSet<u32> = links
            .iter()
            .filter(|l| l.loopback)
            .map(|l| l.index)
            .collect();
        let through_loopback =
            |r: &Route| r.nexthops.iter().any(|nh| loopback.contains(&nh.ifindex));
        let mut by_family = BTreeSet::new();
        // Main holds few uplinks and up to 1 000 000 routes through them, mostly in runs
        // through the same one: only a change of (family, interface) is looked up. Direct
        // routes are few (connected subnets, a tunnel's split default): they are kept, and
        // their share of the public space is summed per interface.
        let mut last = None;
        let mut direct: Vec<Route> = Vec::new();
        main(&mut |r: &Route| {
            if r.table != MAIN_TABLE || r.kind != route_type::UNICAST || through_loopback(r) {
                return;
            }
            if !has_gateway(r) {
                direct.push(r.clone());
                return;
            }
            for nh in r.nexthops.iter() {
                let way = (r.family(), nh.ifindex);
                if last != Some(way) {
                    by_family.insert(way);
                    last = Some(way);
                }
            }
        });
        let mut spans = Spans::new();
        add_spans(&mut spans, direct.iter(), &by_family);
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
    /// ([`rules::vpn_tables`] of its rules, `protocol` being ours) and its links.
    pub fn of(snapshot: &Snapshot, protocol: u8) -> Uplinks {
        let vpn = vpn_routes(snapshot, &rules::vpn_tables(&snapshot.rules, protocol));
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
    /// `plan::uplinks::behind_routes`; a veth's or bridge port's `fe80::/64` is none).
    pub fn is_behind(&self, main: &[Route], ifindex: u32) -> bool {
        !self.loopback.contains(&ifindex)
            && main.iter().any(|r| {
                r.uses_link(ifindex) && is_copyable(r) && !self.is_uplink(r.family(), ifindex)
            })
    }

    /// [`Uplinks::is_behind`] in `family` alone.
    pub fn is_behind_in(&self, main: &[Route], ifindex: u32, family: Family) -> bool {
        !self.loopback.contains(&ifindex)
            && !self.is_uplink(family, ifindex)
            && main
                .iter()
                .any(|r| r.family() == family && r.uses_link(ifindex) && is_copyable(r))
    }

    /// Whether `route` leaves through an uplink of its family or the loopback: it is never
    /// copied as behind the host.
    pub fn leaves_host(&self, route: &Route) -> bool {
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

/// The interfaces a run for `x` plans along with it, ascending: the uplinks of each family
/// `x` is behind the host in (their tables copy its routes of that family; with `strict`,
/// every uplink's closed table takes them), the macvlans on `x` (one that took `x`'s ways
/// out keeps copies of them when `x` loses its gateway), and the uplinks whose tables still
/// hold a copy of a route through `x` from when it was behind the host
/// (`holds_copy_through`, asked only about uplinks the rest leaves out). The read of a run
/// for `x` reads these tables; `status X` names them. An IPv4-only uplink is not planned
/// along with an interface behind the host in IPv6 alone: its table would take nothing,
/// and reading it means reading all of its routes in main.
pub fn dependents<E>(
    uplinks: &Uplinks,
    main: &[Route],
    links: &[Link],
    x: u32,
    strict: bool,
    mut holds_copy_through: impl FnMut(&Link) -> Result<bool, E>,
) -> Result<Vec<u32>, E> {
    let behind: Vec<Family> = [Family::V4, Family::V6]
        .into_iter()
        .filter(|f| uplinks.is_behind_in(main, x, *f))
        .collect();
    let takes_copies = |y: u32| behind.iter().any(|f| strict || uplinks.is_uplink(*f, y));
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
        if takes_copies(y) || link.parent == Some(x) || holds_copy_through(link)? {
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
