//! How a run reads the tables of the interfaces it plans: whole, or, past [`LARGE_TABLE`]
//! routes, left for the diff to walk once main is dropped ([`walk_table`]); `status` and
//! `doctor` read them whole.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;

use super::netlink::Netlink;
use super::rtnl::Answer;
use super::{asked_for, routes_error, wire, ReadError, ENOENT};
use crate::model::{Route, MAIN_TABLE};
use crate::settings::Settings;

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

/// Every route of every table in one dump: main's returned, the others' put into `tables`
/// (empty before, as `left` and `foreign`) as they stream in (holding all of them in one list first would hold a 100 000-route main
/// beside a 100 000-route copy of it twice). A table of `leavable` that grows past
/// [`LARGE_TABLE`] routes is dropped and put into `left`, and the rest of it skipped but for
/// its first route of another protocol than ours (`foreign`).
pub(super) async fn all_routes(
    nl: &Netlink,
    protocol: u8,
    tables: &mut BTreeMap<u32, Vec<Route>>,
    leavable: &BTreeSet<u32>,
    left: &mut BTreeSet<u32>,
    foreign: &mut BTreeMap<u32, Route>,
) -> Result<Vec<Route>, ReadError> {
    let mut main = Vec::new();
    let each = |answer: Option<&Answer<'_>>| {
        let Some(answer) = answer else {
            // The kernel started the dump again (a change interrupted it): what it handed
            // over is void, tables included (a route deleted in between would stay).
            main.clear();
            tables.clear();
            left.clear();
            foreign.clear();
            return ControlFlow::Continue(());
        };
        if answer.kind != wire::RTM_NEWROUTE {
            return ControlFlow::Continue(());
        }
        // Skipped unparsed: a 1 000 000-route table left for the diff costs its bytes only.
        if let Some(table) = wire::route_table(answer.payload).filter(|t| left.contains(t)) {
            let theirs = answer.payload.get(5).is_some_and(|p| *p != protocol);
            if theirs && !foreign.contains_key(&table) {
                foreign.extend(wire::route_from(answer.payload).map(|r| (table, r)));
            }
            return ControlFlow::Continue(());
        }
        let Some(route) = wire::route_from(answer.payload) else {
            return ControlFlow::Continue(());
        };
        if route.table == MAIN_TABLE {
            main.push(route);
            return ControlFlow::Continue(());
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
        ControlFlow::Continue(())
    };
    match nl.walk(&mut wire::route_dump_request(None, None), each) {
        Ok(()) => {
            // Grown by doubling while it streamed in; a large main keeps what it needs.
            main.shrink_to_fit();
            Ok(main)
        }
        Err(e) if e.errno() == Some(ENOENT) => Ok(Vec::new()),
        Err(e) => Err(routes_error(None)(e)),
    }
}

/// A table read unless large ([`read_unless_large`]).
pub(super) enum Large {
    No(Vec<Route>),
    /// With its first route of another protocol than ours, if one was found.
    Yes(Option<Route>),
}

/// The routes of `table`, unless it holds more than [`LARGE_TABLE`]: then the dump is cut
/// there (the kernel never generates the rest), and what comes back is the first route of
/// another protocol in the part read, or with `[health]` (whose steering passes an uplink
/// with such a route by) in all of it, walked for it. `seen` is shown every route read,
/// also of a table that turns out large, and `None` when the dump starts again.
pub(super) fn read_unless_large(
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
    visit: impl FnMut(Walked<'_>) -> ControlFlow<()>,
) -> Result<(), ReadError> {
    walk_routes(nl, Some(table), None, visit)
}

/// [`walk_table`] of a dump filtered by table and output interface, each optional.
pub(crate) fn walk_routes(
    nl: &Netlink,
    table: Option<u32>,
    oif: Option<u32>,
    mut visit: impl FnMut(Walked<'_>) -> ControlFlow<()>,
) -> Result<(), ReadError> {
    let each = |answer: Option<&Answer<'_>>| match answer {
        None => visit(Walked::Again),
        Some(answer) if answer.kind == wire::RTM_NEWROUTE => {
            match wire::route_from(answer.payload) {
                Some(route) if asked_for(&route, table, oif) => visit(Walked::Route(&route)),
                _ => ControlFlow::Continue(()),
            }
        }
        Some(_) => ControlFlow::Continue(()),
    };
    match nl.walk(&mut wire::route_dump_request(table, oif), each) {
        Ok(()) => Ok(()),
        Err(e) if e.errno() == Some(ENOENT) => Ok(()),
        Err(e) => Err(routes_error(table)(e)),
    }
}
