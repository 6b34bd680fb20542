//! The read of a run: the links, addresses, rules, main's routes and tables a run of one
//! interface or of all needs ([`snapshot`]), with main's uplinks classified once.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;

use super::main_by_interface::{self, MainByInterface};
use super::netlink::Netlink;
use super::rtnl::Answer;
use super::tables::{all_routes, read_unless_large, Large, Tables};
use super::{addresses, read_error, read_routes, routes, rules, wire, ReadError, ENOENT};
use crate::model::rules::vpn_tables;
use crate::model::uplinks::{dependents, is_way_out, matters_to_others, Uplinks};
use crate::model::{Address, Family, Link, Route, Snapshot, MAIN_TABLE};
use crate::settings::Settings;

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
