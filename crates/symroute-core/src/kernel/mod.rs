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
mod snapshot;
mod socket;
mod tables;
pub mod timed;
pub mod wire;
pub mod wire_rules;

use netlink_packet_core::{NLM_F_CREATE, NLM_F_EXCL, NLM_F_REPLACE};

pub use lookup::lookup;
use netlink::{Netlink, NetlinkError};
use rtnl::Answer;
pub use snapshot::{snapshot, Scope, Snapshotted};
pub(crate) use tables::walk_routes;
pub use tables::{walk_table, Tables, Walked, LARGE_TABLE};

use crate::model::{Address, Link, Op, Route};

const ENOENT: i32 = libc::ENOENT;
const ESRCH: i32 = libc::ESRCH;
const EEXIST: i32 = libc::EEXIST;

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
    route_dump(nl, table, oif, |route| {
        asked_for(&route, table, oif).then_some(route)
    })
}

/// Whether a dump filtered by `table` and `oif` asked for `route`: unfiltered dumps (and old
/// kernels that ignore the filter) hand back everything.
fn asked_for(route: &Route, table: Option<u32>, oif: Option<u32>) -> bool {
    table.is_none_or(|t| route.table == t) && oif.is_none_or(|i| route.uses_link(i))
}

/// The error of a failed route dump of `table` (all tables with `None`).
fn routes_error(table: Option<u32>) -> impl FnOnce(NetlinkError) -> ReadError {
    read_error(match table {
        Some(t) => format!("routes of table {t}"),
        None => "routes".to_string(),
    })
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
        Err(e) => Err(routes_error(table)(e)),
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
