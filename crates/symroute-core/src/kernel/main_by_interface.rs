//! Main's routes for a run about one interface, read interface by interface with dumps the
//! kernel filters (`RTA_OIF`), so that a hook's cost follows the routes through its
//! interface, not the size of main.
//!
//! Planning interface X needs all of X's routes, whether each other interface is an uplink
//! (per family), the copyable routes of those that are not (they go into an uplink's
//! table), and every default route (steering). An uplink's other routes are needed by
//! nobody but its own table. The kernel walks IPv4 tables in prefix order, so an
//! interface's IPv4 dump opens with its routes of `0.0.0.0/n`, defaults included: once one
//! of its routes is a way out (it is an uplink) and the dump is past `0.0.0.0`, the rest of
//! it (a BGP feed's 1 000 000 routes) is not read. IPv6 dumps end with the default (the
//! tree is walked root last): they are read whole when steering (`[health]`) needs the
//! defaults, otherwise cut like IPv4 ones once the interface is an uplink. The dumps of
//! interfaces that turn out not to be uplinks are read whole.
//!
//! Each filtered dump still walks all of main in the kernel (about 70 ms per 1 000 000
//! routes here, as long as `ip route show dev eth1` takes), even when it is cut short after
//! its first part: so few dumps, few walks. Interfaces that are down hold no route of their
//! own (the kernel removes them with the link, and refuses new ones), and the loopback is
//! neither an uplink nor behind the host ([`crate::model::uplinks`]): neither is read.
//! Beyond [`MOST_DUMPS`] other interfaces, one dump of all of main is cheaper, and the
//! caller reads that.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, Ipv4Addr};
use std::ops::ControlFlow;

use super::netlink::Netlink;
use super::rtnl::Answer;
use super::{read_error, wire, ReadError, ENOENT};
use crate::model::uplinks::is_uplink_route;
use crate::model::{Family, Link, Route, RouteKey, MAIN_TABLE};

/// The most interfaces besides the run's own whose routes are read by dumps of their own.
/// A dump of all of main costs about seven filtered walks (handing over and parsing every
/// route); an interface that is not an uplink costs one walk, an uplink next to nothing.
pub const MOST_DUMPS: usize = 6;

/// Main's routes read interface by interface.
#[derive(Debug, Default)]
pub struct MainByInterface {
    pub routes: Vec<Route>,
    /// Interfaces whose routes were all read.
    whole: BTreeSet<u32>,
    /// The dumps cut once their interface was known as an uplink of that family.
    cut: BTreeSet<(Family, u32)>,
    /// Multipath routes, by key: one through two interfaces is in the dumps of both.
    multipath: BTreeMap<RouteKey, Vec<usize>>,
}

/// The interfaces other than `x` whose routes the kernel may hold in main: up, and not the
/// loopback. `None` when there are more than [`MOST_DUMPS`].
pub fn others(links: &[Link], x: u32) -> Option<Vec<u32>> {
    let others: Vec<u32> = links
        .iter()
        .filter(|l| l.index != x && l.up && !l.loopback)
        .map(|l| l.index)
        .collect();
    (others.len() <= MOST_DUMPS).then_some(others)
}

impl MainByInterface {
    /// `own` (all of main's routes through `x`), then what planning `x` needs of every one
    /// of `others` ([`others`]); with `defaults`, every default route too (what steering
    /// looks at).
    pub fn read(
        nl: &Netlink,
        x: u32,
        own: Vec<Route>,
        others: &[u32],
        defaults: bool,
    ) -> Result<MainByInterface, ReadError> {
        let mut main = MainByInterface::default();
        main.add(own);
        main.whole.insert(x);
        for y in others {
            let mut whole = true;
            for family in [Family::V4, Family::V6] {
                let (routes, cut) = until_uplink(nl, *y, family, defaults)?;
                main.add(routes);
                if cut {
                    main.cut.insert((family, *y));
                    whole = false;
                }
            }
            if whole {
                main.whole.insert(*y);
            }
        }
        Ok(main)
    }

    /// Reads the rest of `y`'s routes unless they were all read: planning its table (or
    /// one that takes its ways out) needs every one.
    pub fn complete(&mut self, nl: &Netlink, y: u32) -> Result<(), ReadError> {
        if self.whole.contains(&y) {
            return Ok(());
        }
        // Both families of one that was not read at all (down: the kernel keeps none of its
        // own routes) or cut in both.
        let family = match (
            self.cut.remove(&(Family::V4, y)),
            self.cut.remove(&(Family::V6, y)),
        ) {
            (true, false) => Some(Family::V4),
            (false, true) => Some(Family::V6),
            _ => None,
        };
        let (rest, _) = dump(nl, family, y, |_| false)?;
        // What the cut dump read is read again: left out, by key and then in full.
        let mut read: BTreeMap<(u64, u128, u64), Vec<usize>> = BTreeMap::new();
        for (i, route) in self.routes.iter().enumerate() {
            if family.is_none_or(|f| route.family() == f) && route.uses_link(y) {
                read.entry(route.sort_key()).or_default().push(i);
            }
        }
        let new: Vec<Route> = rest
            .into_iter()
            .filter(|r| {
                read.get(&r.sort_key())
                    .is_none_or(|same| same.iter().all(|i| self.routes[*i] != *r))
            })
            .collect();
        self.add(new);
        self.whole.insert(y);
        Ok(())
    }

    /// Adds `routes`, leaving out multipath routes already read through another interface.
    fn add(&mut self, routes: Vec<Route>) {
        self.routes.reserve(routes.len());
        for route in routes {
            if route.nexthops.len() > 1 {
                let same = self.multipath.entry(route.key()).or_default();
                if same.iter().any(|i| self.routes[*i] == route) {
                    continue;
                }
                same.push(self.routes.len());
            }
            self.routes.push(route);
        }
    }
}

/// `y`'s routes of `family` in main up to the one after the first that made `y` an uplink;
/// with `defaults`, IPv4 up to the first past `0.0.0.0/n` (its defaults come first) and
/// IPv6 whole (its defaults come last). With whether the dump was cut.
fn until_uplink(
    nl: &Netlink,
    y: u32,
    family: Family,
    defaults: bool,
) -> Result<(Vec<Route>, bool), ReadError> {
    if defaults && family == Family::V6 {
        return dump(nl, Some(family), y, |_| false);
    }
    let mut uplink = false;
    dump(nl, Some(family), y, |route| {
        if uplink && (!defaults || route.dst != IpAddr::V4(Ipv4Addr::UNSPECIFIED)) {
            return true;
        }
        uplink |= is_uplink_route(route);
        false
    })
}

/// Main's routes of `family` through `y` (the kernel filters), read until `enough` says a
/// route is enough (that route kept); with whether the dump was cut.
fn dump(
    nl: &Netlink,
    family: Option<Family>,
    y: u32,
    mut enough: impl FnMut(&Route) -> bool,
) -> Result<(Vec<Route>, bool), ReadError> {
    let mut routes = Vec::new();
    let mut cut = false;
    let each = |answer: Option<&Answer<'_>>| {
        let Some(answer) = answer else {
            // Started again (a change interrupted the dump): what it handed over is void.
            routes.clear();
            cut = false;
            return ControlFlow::Continue(());
        };
        if answer.kind != wire::RTM_NEWROUTE {
            return ControlFlow::Continue(());
        }
        // Old kernels that ignore the filter hand back everything.
        let Some(route) =
            wire::route_from(answer.payload).filter(|r| r.table == MAIN_TABLE && r.uses_link(y))
        else {
            return ControlFlow::Continue(());
        };
        let stop = enough(&route);
        routes.push(route);
        if stop {
            cut = true;
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    };
    let request = &mut wire::family_route_dump_request(family, Some(MAIN_TABLE), Some(y));
    match nl.walk(request, each) {
        Ok(()) => {
            routes.shrink_to_fit();
            Ok((routes, cut))
        }
        Err(e) if e.errno() == Some(ENOENT) => Ok((Vec::new(), false)),
        Err(e) => Err(read_error(format!("main's routes through if{y}"))(e)),
    }
}
