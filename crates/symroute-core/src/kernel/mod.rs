//! Everything that reads or writes the host: reading a [`Snapshot`] from the kernel and
//! applying [`Op`]s to it ([`netlink`] over the one netlink socket, [`socket`]; messages
//! encoded and decoded by [`wire`] and [`wire_rules`]), `table inet symroute`
//! ([`nftables`]), route lookups ([`lookup`]), the files doctor looks at ([`host`]) and iproute2's table and
//! protocol names ([`names`]).

pub mod convert;
pub mod host;
mod lookup;
mod main_by_interface;
pub mod monitor;
pub mod names;
pub mod nat;
pub mod netlink;
pub mod nftables;
pub mod rtnl;
mod socket;
pub mod timed;
pub mod wire;
pub mod wire_rules;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};

pub use lookup::lookup;
use main_by_interface::MainByInterface;
use netlink::{Netlink, NetlinkError};
use rtnl::Answer;

use crate::model::rules::vpn_tables;
use crate::model::uplinks::{dependents, is_way_out, matters_to_others, Uplinks};
use crate::model::{Address, Family, Link, Op, Route, Snapshot, MAIN_TABLE};
use crate::settings::Settings;

const ENOENT: i32 = libc::ENOENT;
const ESRCH: i32 = libc::ESRCH;
const EEXIST: i32 = libc::EEXIST;

/// What part of the kernel's state a run needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// One interface: all addresses, all of main, its table and the tables of the uplinks
    /// that depend on it.
    Interface(u32),
    /// Every interface.
    All,
    /// Only the state of interfaces that are gone (a `down` after the device vanished);
    /// with the index of one that vanished during a run, its table too (a first build cut
    /// short leaves routes there before any rule points at it).
    Garbage(Option<u32>),
}

/// Whether [`snapshot`] reads the tables of the interfaces that exist whole, or leaves those
/// of more than [`LARGE_TABLE`] routes to be walked by the diff ([`walk_table`]) once the
/// run has planned: a run over a 1 000 000-route uplink would otherwise hold main, that table
/// and its wanted copy at once. `status` and `doctor` read them (they show what is there); a
/// run leaves the large ones (a small table costs no second dump).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tables {
    Read,
    LeaveLarge,
}

/// Routes past which a run leaves an interface's table for the diff (256 KiB at 64 bytes a
/// route): the read of it stops there. Small, because what was read of a large table is
/// dropped, not used (the diff walks all of it again), and is still counted in the run's
/// peak (at 1 000 000 routes, 65 536 here cost the hook's no-op 4 MiB more); a table of a
/// few thousand routes costs its second dump next to nothing.
pub const LARGE_TABLE: usize = 4096;

/// What [`snapshot`] read.
#[derive(Debug)]
pub struct Snapshotted {
    pub snapshot: Snapshot,
    /// Main's uplinks ([`Uplinks::classify`] of [`Snapshot::main_routes`]): the read needs
    /// them to choose the tables, and planning needs them again.
    pub uplinks: Uplinks,
    /// Whether steering can be planned from what was read: with `[health]` every default
    /// route of main was (steering looks at nothing else of main); without, steering only
    /// takes away what is left of it and needs nothing of main.
    pub defaults_complete: bool,
    /// With [`Tables::LeaveLarge`]: the tables of interfaces the run may plan that were not
    /// read, being large; a per-interface run's are among its own and its dependents'. One
    /// found holding another tool's route (`--all`: in the dump that skipped it; a
    /// per-interface run: in the part it read, or, with `[health]`, whose steering passes
    /// such an uplink by, anywhere) is in [`Snapshot::tables`] with the first such route
    /// alone: planning refuses its interface by it, as by the whole table.
    pub left: BTreeSet<u32>,
}

/// A failed read, naming what was being read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("reading {what} from the kernel: {source}")]
pub struct ReadError {
    pub what: String,
    #[source]
    pub source: NetlinkError,
}

fn read_error(what: impl Into<String>) -> impl FnOnce(NetlinkError) -> ReadError {
    let what = what.into();
    move |source| ReadError { what, source }
}

pub async fn links(nl: &Netlink) -> Result<Vec<Link>, ReadError> {
    nl.dump_with(&mut wire::link_dump_request(), wire::link_from)
        .map_err(read_error("links"))
}

/// Routes of `table` (both families); a table the kernel has never seen is empty.
pub async fn routes(
    nl: &Netlink,
    table: Option<u32>,
    oif: Option<u32>,
) -> Result<Vec<Route>, ReadError> {
    read_routes(nl, table, oif)
}

/// [`routes`], where it cannot be awaited.
fn read_routes(
    nl: &Netlink,
    table: Option<u32>,
    oif: Option<u32>,
) -> Result<Vec<Route>, ReadError> {
    // Unfiltered dumps (and old kernels that ignore the filter) hand back everything.
    let wanted = |route: &Route| {
        table.is_none_or(|t| route.table == t) && oif.is_none_or(|i| route.uses_link(i))
    };
    route_dump(nl, table, oif, |route| wanted(&route).then_some(route))
}

/// Every route of every table in one dump: main's returned, the others' put into `tables`
/// as they stream in (holding all of them in one list first would hold a 100 000-route main
/// beside a 100 000-route copy of it twice). A table of `leavable` that grows past
/// [`LARGE_TABLE`] routes is dropped and put into `left`, and the rest of it skipped but for
/// its first route of another protocol than ours (`foreign`).
async fn all_routes(
    nl: &Netlink,
    protocol: u8,
    tables: &mut BTreeMap<u32, Vec<Route>>,
    leavable: &BTreeSet<u32>,
    left: &mut BTreeSet<u32>,
    foreign: &mut BTreeMap<u32, Route>,
) -> Result<Vec<Route>, ReadError> {
    let parse = |answer: &Answer<'_>| {
        if answer.kind != wire::RTM_NEWROUTE {
            return None;
        }
        // Skipped unparsed: a 1 000 000-route table left for the diff costs its bytes only.
        if let Some(table) = wire::route_table(answer.payload).filter(|t| left.contains(t)) {
            let theirs = answer.payload.get(5).is_some_and(|p| *p != protocol);
            if theirs && !foreign.contains_key(&table) {
                foreign.extend(wire::route_from(answer.payload).map(|r| (table, r)));
            }
            return None;
        }
        let route = wire::route_from(answer.payload)?;
        if route.table == MAIN_TABLE {
            return Some(route);
        }
        let table = route.table;
        let routes = tables.entry(table).or_default();
        if routes.len() >= LARGE_TABLE && leavable.contains(&table) {
            let first = tables
                .remove(&table)
                .into_iter()
                .flatten()
                .chain([route])
                .find(|r| r.protocol != protocol);
            foreign.extend(first.map(|r| (table, r)));
            left.insert(table);
        } else {
            routes.push(route);
        }
        None
    };
    match nl.dump_with(&mut wire::route_dump_request(None, None), parse) {
        Ok(routes) => Ok(routes),
        Err(e) if e.errno() == Some(ENOENT) => Ok(Vec::new()),
        Err(e) => Err(read_error("routes")(e)),
    }
}

/// A table read unless large ([`read_unless_large`]).
enum Large {
    No(Vec<Route>),
    /// With its first route of another protocol than ours, if one was found.
    Yes(Option<Route>),
}

/// The routes of `table`, unless it holds more than [`LARGE_TABLE`]: then the dump is cut
/// there (the kernel never generates the rest), and what comes back is the first route of
/// another protocol in the part read, or with `[health]` (whose steering passes an uplink
/// with such a route by) in all of it, walked for it. `seen` is shown every route read,
/// also of a table that turns out large, and `None` when the dump starts again.
fn read_unless_large(
    nl: &Netlink,
    settings: &Settings,
    table: u32,
    mut seen: impl FnMut(Option<&Route>),
) -> Result<Large, ReadError> {
    let mut routes = Vec::new();
    let mut large = false;
    walk_table(nl, table, |walked| match walked {
        Walked::Again => {
            seen(None);
            routes.clear();
            ControlFlow::Continue(())
        }
        Walked::Route(_) if routes.len() >= LARGE_TABLE => {
            large = true;
            ControlFlow::Break(())
        }
        Walked::Route(route) => {
            seen(Some(route));
            routes.push(route.clone());
            ControlFlow::Continue(())
        }
    })?;
    if !large {
        routes.shrink_to_fit();
        return Ok(Large::No(routes));
    }
    let theirs = |r: &Route| r.protocol != settings.protocol;
    let mut first = routes.into_iter().find(theirs);
    if first.is_none() && settings.health.is_some() {
        walk_table(nl, table, |walked| match walked {
            Walked::Again => ControlFlow::Continue(()),
            Walked::Route(r) if theirs(r) => {
                first = Some(r.clone());
                ControlFlow::Break(())
            }
            Walked::Route(_) => ControlFlow::Continue(()),
        })?;
    }
    Ok(Large::Yes(first))
}

/// What a walk of a table hands its reader ([`walk_table`]).
#[derive(Debug)]
pub enum Walked<'a> {
    Route(&'a Route),
    /// The kernel started the dump again (a concurrent change interrupted it): what the
    /// walk handed over so far is void.
    Again,
}

/// Walks the routes of `table` in the kernel's order, keeping none: `visit` folds them into
/// what it needs, and may stop the walk (`Break`; the rest is never generated).
pub fn walk_table(
    nl: &Netlink,
    table: u32,
    mut visit: impl FnMut(Walked<'_>) -> ControlFlow<()>,
) -> Result<(), ReadError> {
    let each = |answer: Option<&Answer<'_>>| match answer {
        None => visit(Walked::Again),
        Some(answer) if answer.kind == wire::RTM_NEWROUTE => {
            match wire::route_from(answer.payload) {
                // Old kernels that ignore the filter hand back everything.
                Some(route) if route.table == table => visit(Walked::Route(&route)),
                _ => ControlFlow::Continue(()),
            }
        }
        Some(_) => ControlFlow::Continue(()),
    };
    match nl.walk(&mut wire::route_dump_request(Some(table), None), each) {
        Ok(()) => Ok(()),
        Err(e) if e.errno() == Some(ENOENT) => Ok(()),
        Err(e) => Err(read_error(format!("routes of table {table}"))(e)),
    }
}

/// A route dump, each route parsed as it arrives (a 100 000-route table is never held as
/// raw messages) and kept when `keep` returns it.
pub(crate) fn route_dump(
    nl: &Netlink,
    table: Option<u32>,
    oif: Option<u32>,
    mut keep: impl FnMut(Route) -> Option<Route>,
) -> Result<Vec<Route>, ReadError> {
    let parse = |answer: &Answer<'_>| match answer.kind {
        wire::RTM_NEWROUTE => keep(wire::route_from(answer.payload)?),
        _ => None,
    };
    match nl.dump_with(&mut wire::route_dump_request(table, oif), parse) {
        Ok(routes) => Ok(routes),
        Err(e) if e.errno() == Some(ENOENT) => Ok(Vec::new()),
        Err(e) => Err(read_error(match table {
            Some(t) => format!("routes of table {t}"),
            None => "routes".to_string(),
        })(e)),
    }
}

pub(crate) async fn addresses(
    nl: &Netlink,
    ifindex: Option<u32>,
) -> Result<Vec<Address>, ReadError> {
    let parse = |answer: &Answer<'_>| {
        wire::address_from(answer).filter(|a| ifindex.is_none_or(|i| a.ifindex == i))
    };
    nl.dump_with(&mut wire::address_dump_request(ifindex), parse)
        .map_err(read_error("addresses"))
}

/// Every policy rule of both families.
pub(crate) async fn rules(nl: &Netlink) -> Result<Vec<crate::model::Rule>, ReadError> {
    let parse = |answer: &Answer<'_>| {
        (answer.kind == wire_rules::RTM_NEWRULE)
            .then(|| wire_rules::rule_from(answer.payload))
            .flatten()
    };
    nl.dump_with(&mut wire_rules::rule_dump_request(), parse)
        .map_err(read_error("rules"))
}

/// Reads what a run over `scope` needs, given the links just read.
///
/// A per-interface run reads main's routes through the interface, and of the others what
/// planning it needs: whether each is an uplink, the routes of those that are not (an
/// uplink's table holds copies of main's routes into bridges, LANs and tunnels,
/// [`crate::model::uplinks`]) and every default route (steering), with dumps the kernel
/// filters by interface ([`main_by_interface`]); with more interfaces than that pays for,
/// all of main in one dump. When the interface is behind the host, or an uplink's table
/// still holds copies through it, that uplink's table is read too, with all of its routes
/// in main, and the run plans it as well ([`Snapshot::tables`], and with
/// [`Tables::LeaveLarge`] [`Snapshotted::left`], tells which were read).
pub async fn snapshot(
    nl: &Netlink,
    settings: &Settings,
    scope: Scope,
    links: Vec<Link>,
    read_tables: Tables,
) -> Result<Snapshotted, ReadError> {
    let addresses = match scope {
        // Uplinks planned along with the interface need their own addresses.
        Scope::Interface(_) | Scope::All => addresses(nl, None).await?,
        Scope::Garbage(_) => Vec::new(),
    };
    let rules = rules(nl).await?;

    let mut tables: BTreeMap<u32, Vec<Route>> = BTreeMap::new();
    let mut left = BTreeSet::new();
    let mut foreign = BTreeMap::new();
    // Tables of our rules whose interface is gone, for garbage collection.
    let stale = rules
        .iter()
        .filter(|r| r.protocol == settings.protocol && r.table != MAIN_TABLE)
        .map(|r| r.table)
        .filter(|t| {
            settings
                .interface_of_table(*t)
                .is_none_or(|i| !links.iter().any(|l| l.index == i))
        });
    let mut defaults_complete = true;
    let (main_routes, uplinks) = match scope {
        Scope::Interface(x) => {
            let own = settings.table_for(x);
            // What a large own table's first part showed of ways out (the rest is not read).
            let mut own_ways_out = [false; 2];
            match read_tables {
                Tables::Read => {
                    tables.insert(own, routes(nl, Some(own), None).await?);
                }
                Tables::LeaveLarge => {
                    let seen = |route: Option<&Route>| match route {
                        Some(r) => {
                            if r.protocol == settings.protocol && r.uses_link(x) && is_way_out(r) {
                                own_ways_out[r.family() as usize] = true;
                            }
                        }
                        None => own_ways_out = [false; 2],
                    };
                    match read_unless_large(nl, settings, own, seen)? {
                        Large::No(routes) => {
                            tables.insert(own, routes);
                        }
                        Large::Yes(theirs) => {
                            left.insert(own);
                            foreign.extend(theirs.map(|r| (own, r)));
                        }
                    }
                }
            }
            for t in stale {
                tables.insert(t, routes(nl, Some(t), None).await?);
            }
            let others = main_by_interface::others(&links, x);
            let own_main = if others.is_some() || !reads_all_main(settings, &addresses, x) {
                Some(routes(nl, Some(MAIN_TABLE), Some(x)).await?)
            } else {
                None
            };
            match own_main {
                // A veth, a bridge port, a tun without routes: nothing of another interface
                // depends on it, so a container host's veth churn never reads a large main.
                Some(own_main) if alone(nl, settings, &addresses, &rules, x, &own_main).await? => {
                    defaults_complete = false;
                    let uplinks = Uplinks::classify(&own_main, &[], &links);
                    (own_main, uplinks)
                }
                own_main => {
                    // Where a full tunnel keeps its default (wg-quick's 51820, ...): small.
                    let vpn = vpn_tables(&rules, settings.protocol);
                    for (_, t) in &vpn {
                        if !tables.contains_key(t) {
                            tables.insert(*t, routes(nl, Some(*t), None).await?);
                        }
                    }
                    let mut by_interface = match (own_main, others) {
                        (Some(own_main), Some(others)) => {
                            let defaults = settings.health.is_some();
                            Some(MainByInterface::read(nl, x, own_main, &others, defaults)?)
                        }
                        _ => None,
                    };
                    let main = match &mut by_interface {
                        Some(read) => std::mem::take(&mut read.routes),
                        None => routes(nl, Some(MAIN_TABLE), None).await?,
                    };
                    let uplinks = {
                        let vpn_routes: Vec<&Route> = vpn
                            .iter()
                            .flat_map(|(family, t)| {
                                tables
                                    .get(t)
                                    .into_iter()
                                    .flatten()
                                    .filter(move |r| r.family() == *family)
                            })
                            .collect();
                        Uplinks::classify(&main, &vpn_routes, &links)
                    };
                    let stale_copies_possible = uplinks.is_behind(&main, x)
                        || !kept_its_ways_out(&uplinks, x, |family| match tables.get(&own) {
                            Some(routes) => Ok(routes
                                .iter()
                                .any(|r| is_own_way_out(r, settings, family, x))),
                            None if own_ways_out[family as usize] => Ok(true),
                            None => holds_own_way_out(nl, settings, own, family, x),
                        })?;
                    // Copies of routes through `x` from when it was behind the host are found
                    // by a dump filtered by table and oif (a walk of that table), looked for
                    // only where they can be.
                    let dependents =
                        dependents(&uplinks, &main, &links, x, settings.strict, |link| {
                            if !stale_copies_possible {
                                return Ok(false);
                            }
                            let table = settings.table_for(link.index);
                            read_routes(nl, Some(table), Some(x)).map(|r| !r.is_empty())
                        })?;
                    // Planned whole: `x`, those planned with it, and the uplinks whose ways
                    // out either takes (a macvlan's parent).
                    let mut planned = vec![x];
                    for y in dependents {
                        let table = settings.table_for(y);
                        match read_tables {
                            Tables::Read => {
                                tables.insert(table, routes(nl, Some(table), None).await?);
                            }
                            Tables::LeaveLarge => {
                                match read_unless_large(nl, settings, table, |_| {})? {
                                    Large::No(routes) => {
                                        tables.insert(table, routes);
                                    }
                                    Large::Yes(theirs) => {
                                        left.insert(table);
                                        foreign.extend(theirs.map(|r| (table, r)));
                                    }
                                }
                            }
                        }
                        planned.push(y);
                    }
                    match by_interface {
                        // The uplinks stay as classified: what the rest adds goes through
                        // interfaces already known as uplinks, or through none that is up.
                        Some(mut read) => {
                            read.routes = main;
                            let parents: Vec<u32> = planned
                                .iter()
                                .filter_map(|i| links.iter().find(|l| l.index == *i))
                                .filter_map(|l| l.parent)
                                .collect();
                            for y in planned.into_iter().chain(parents) {
                                read.complete(nl, y)?;
                            }
                            (read.routes, uplinks)
                        }
                        None => (main, uplinks),
                    }
                }
            }
        }
        Scope::Garbage(vanished) => {
            // The kernel takes a vanished device's routes out of every table itself.
            for t in stale.chain(vanished.map(|i| settings.table_for(i))) {
                tables.insert(t, routes(nl, Some(t), None).await?);
            }
            defaults_complete = false;
            (Vec::new(), Uplinks::default())
        }
        Scope::All => {
            let vpn = vpn_tables(&rules, settings.protocol);
            let mut leavable = BTreeSet::new();
            if read_tables == Tables::LeaveLarge {
                // A VPN's table is read whole: planning copies its routes.
                leavable.extend(
                    links
                        .iter()
                        .map(|l| settings.table_for(l.index))
                        .filter(|t| !vpn.iter().any(|(_, v)| v == t)),
                );
            }
            // Main's routes stay in the dump's order.
            let main = all_routes(
                nl,
                settings.protocol,
                &mut tables,
                &leavable,
                &mut left,
                &mut foreign,
            )
            .await?;
            let uplinks = {
                let vpn_routes: Vec<&Route> = vpn
                    .into_iter()
                    .flat_map(|(family, t)| {
                        tables
                            .get(&t)
                            .into_iter()
                            .flatten()
                            .filter(move |r| r.family() == family)
                    })
                    .collect();
                Uplinks::classify(&main, &vpn_routes, &links)
            };
            (main, uplinks)
        }
    };
    // A table read after all (a VPN's that is also an interface's) is the snapshot's.
    left.retain(|t| !tables.contains_key(t));
    for (table, route) in foreign.into_iter().filter(|(t, _)| left.contains(t)) {
        tables.insert(table, vec![route]);
    }
    let snapshot = Snapshot {
        links,
        addresses,
        main_routes,
        rules,
        tables,
    };
    Ok(Snapshotted {
        snapshot,
        uplinks,
        defaults_complete,
        left,
    })
}

/// Whether `x` is an uplink and its own table holds a way out through `x` (a gateway or half
/// the space, [`is_way_out`]) of each family it is an uplink of (`holds(family)`, from the
/// table as read or by [`holds_own_way_out`]): then
/// the last run for `x` saw it as the uplink it is now, and took any copies of its routes
/// out of the other uplinks' tables.
///
/// Copies through `x` get into another uplink's table only from a run that planned that
/// table while `x` was behind the host, so after `x` lost its way out; a run for `x` in
/// between would have taken the way out from `x`'s table too. Looking for them costs a
/// walk of each uplink's table in the kernel (one holding 1 000 000 routes: as long as
/// the walk of main through `x`), so a run for `x` looks only when this says it may find
/// some. What is missed — `x` lost its way out and got it back with no run for it in
/// between, and another uplink's run copied its routes meanwhile — is taken out by the
/// next run for that uplink, `symroute sync` or symrouted.
fn kept_its_ways_out(
    uplinks: &Uplinks,
    x: u32,
    mut holds: impl FnMut(Family) -> Result<bool, ReadError>,
) -> Result<bool, ReadError> {
    let families: Vec<Family> = [Family::V4, Family::V6]
        .into_iter()
        .filter(|f| uplinks.is_uplink(*f, x))
        .collect();
    if families.is_empty() {
        return Ok(false);
    }
    for family in families {
        if !holds(family)? {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A route of ours in `x`'s table that [`kept_its_ways_out`] looks for.
fn is_own_way_out(route: &Route, settings: &Settings, family: Family, x: u32) -> bool {
    route.protocol == settings.protocol
        && route.family() == family
        && route.uses_link(x)
        && is_way_out(route)
}

/// Whether `table`, `x`'s own, not read, holds a way out of ours through `x` of `family`:
/// its routes through `x` (the kernel filters) read up to the first that is one. Such a table
/// usually starts with it (the default route), so the dump is cut at its first part; only a
/// table without one is walked whole.
fn holds_own_way_out(
    nl: &Netlink,
    settings: &Settings,
    table: u32,
    family: Family,
    x: u32,
) -> Result<bool, ReadError> {
    let parse = |answer: &Answer<'_>| {
        if answer.kind != wire::RTM_NEWROUTE {
            return ControlFlow::Continue(None);
        }
        match wire::route_from(answer.payload) {
            // Old kernels that ignore the filter hand back everything.
            Some(r) if r.table == table && is_own_way_out(&r, settings, family, x) => {
                ControlFlow::Break(Some(()))
            }
            _ => ControlFlow::Continue(None),
        }
    };
    let request = &mut wire::family_route_dump_request(Some(family), Some(table), Some(x));
    match nl.dump_until(request, parse) {
        Ok(found) => Ok(!found.is_empty()),
        Err(e) if e.errno() == Some(ENOENT) => Ok(false),
        Err(e) => Err(read_error(format!("routes of table {table} through if{x}"))(e)),
    }
}

/// Whether a run for `x` reads more of main than `x`'s own routes whatever they are: when
/// `x` has a global address (it has direct routes: it is an uplink or behind the host), or
/// when `strict` (every closed table gets the copies).
fn reads_all_main(settings: &Settings, addresses: &[Address], x: u32) -> bool {
    settings.strict || addresses.iter().any(|a| a.ifindex == x && a.wants_rule())
}

/// Whether `own_main`, main's routes through `x`, is all a run for `x` needs of main: not
/// when [`reads_all_main`], when main routes through it in a way that matters to other
/// tables, or when a table of ours still holds a route through it (a stale copy). The dumps
/// of the last check are filtered by the kernel (`RTA_OIF`): for an address-less veth they
/// are next to empty.
async fn alone(
    nl: &Netlink,
    settings: &Settings,
    addresses: &[Address],
    rules: &[crate::model::Rule],
    x: u32,
    own_main: &[Route],
) -> Result<bool, ReadError> {
    if reads_all_main(settings, addresses, x) || matters_to_others(own_main) {
        return Ok(false);
    }
    let mut ours: Vec<u32> = rules
        .iter()
        .filter(|r| r.protocol == settings.protocol && r.table != MAIN_TABLE)
        .map(|r| r.table)
        .filter(|t| *t != settings.table_for(x))
        .collect();
    ours.sort_unstable();
    ours.dedup();
    for table in ours {
        if !routes(nl, Some(table), Some(x)).await?.is_empty() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A write the kernel refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{interface}: {op}: {source}{}", hint.as_deref().unwrap_or(""))]
pub struct ApplyError {
    pub interface: String,
    pub op: String,
    #[source]
    pub source: NetlinkError,
    /// What likely caused it, when the errno alone does not say (` (...)`).
    pub hint: Option<String>,
}

/// Why the kernel may have refused `op` with `errno`, where symroute can tell more than the
/// errno: a `congctl` it does not know is a bare EINVAL.
fn hint_for(op: &Op, errno: Option<i32>) -> Option<String> {
    match op {
        Op::ReplaceRoute(route) if errno == Some(libc::EINVAL) => {
            let name = route.congctl()?;
            Some(format!(
                " (route_metrics: is congestion control {name:?} available? \
                 /proc/sys/net/ipv4/tcp_available_congestion_control lists those that are; \
                 a module may need loading: modprobe tcp_{name})"
            ))
        }
        _ => None,
    }
}

/// Appends the message for one operation. Outcomes that mean "already as wanted" (a rule
/// that exists, a route or rule already gone) count as success, so that a run racing with
/// the kernel or another tool still converges.
fn request(op: &Op, buf: &mut Vec<u8>) {
    match op {
        Op::ReplaceRoute(r) => {
            wire::route_message(buf, wire::RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, r)
        }
        Op::DelRoute(r) => wire::route_message(buf, wire::RTM_DELROUTE, 0, r),
        Op::AddRule(r) => {
            wire_rules::rule_message(buf, wire_rules::RTM_NEWRULE, NLM_F_CREATE | NLM_F_EXCL, r)
        }
        // No NLM_F_EXCL on deletes: since Linux 5.19 it asks for a bulk delete.
        Op::DelRule(r) => wire_rules::rule_message(buf, wire_rules::RTM_DELRULE, 0, r),
    }
}

fn is_benign(op: &Op, errno: i32) -> bool {
    match op {
        Op::AddRule(_) => errno == EEXIST,
        Op::DelRule(_) => errno == ENOENT,
        Op::DelRoute(_) => errno == ESRCH || errno == ENOENT,
        Op::ReplaceRoute(_) => false,
    }
}

/// Applies `ops` (already in make-before-break order) phase by phase; within a phase the
/// writes are batched. Stops at the first phase with a failure and reports its first one.
///
/// `ops` is left holding, in order, every operation the kernel accepted (kept in place, not
/// copied: a 100 000-route table is large enough); those it found already done and those
/// never written are taken out.
pub async fn apply(
    nl: &Netlink,
    interface: &str,
    ops: &mut Vec<Op>,
    links: &[Link],
) -> Result<(), ApplyError> {
    let mut accepted = vec![false; ops.len()];
    let mut failure = None;
    let mut start = 0;
    // Phases are contiguous runs of one kind.
    while let Some(first) = ops.get(start) {
        let phase = std::mem::discriminant(first);
        let pending = &ops[start..];
        let count = pending
            .iter()
            .take_while(|op| std::mem::discriminant(*op) == phase)
            .count();
        let results = nl.write_with(count, |i, buf| request(&pending[i], buf));
        for ((op, result), done) in pending.iter().zip(results).zip(&mut accepted[start..]) {
            match result {
                Ok(()) => *done = true,
                Err(e) if e.errno().is_some_and(|n| is_benign(op, n)) => {}
                Err(source) => {
                    failure.get_or_insert(ApplyError {
                        interface: interface.to_string(),
                        op: op.display(links).to_string(),
                        hint: hint_for(op, source.errno()),
                        source,
                    });
                }
            }
        }
        if failure.is_some() {
            break;
        }
        start += count;
    }
    let mut accepted = accepted.into_iter();
    ops.retain(|_| accepted.next().unwrap_or(false));
    failure.map_or(Ok(()), Err)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    #[test]
    fn an_unknown_congctl_is_named_beside_the_bare_einval() {
        let route = fixtures::route(1003, "10.9.0.0", 16, Some("10.2.0.1"), 3, 83);
        let with = Op::ReplaceRoute(route.clone().with_congctl(Some("bbr")));
        let hint = hint_for(&with, Some(libc::EINVAL)).unwrap_or_default();
        assert!(hint.starts_with(" (route_metrics: is congestion control \"bbr\" available?"));
        assert!(hint.ends_with("modprobe tcp_bbr)"), "{hint}");
        assert_eq!(hint_for(&with, Some(libc::ENODEV)), None);
        assert_eq!(hint_for(&Op::ReplaceRoute(route), Some(libc::EINVAL)), None);
    }
}
