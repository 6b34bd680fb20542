//! Route lookups: how the kernel routes one packet (`symroute explain`, `doctor`'s
//! `replies` check).

use super::netlink::{Netlink, NetlinkError};
use super::rtnl::Answer;
use super::wire::{self, RouteGet};
use crate::model::{self, Query};

/// The payload of an `RTM_NEWROUTE` answer, parsed.
fn new_route<T>(parse: fn(&[u8]) -> Option<T>) -> impl FnOnce(&Answer<'_>) -> Option<T> {
    move |answer| match answer.kind {
        wire::RTM_NEWROUTE => parse(answer.payload),
        _ => None,
    }
}

/// Asks the kernel how it routes `query`. `iif` is the index of `query.iif`; `oif` binds the
/// packet to an output interface, as a socket bound with `SO_BINDTODEVICE` is.
///
/// Two `RTM_GETROUTE` requests, as `ip route get ...` and `ip route get ... fibmatch` make
/// them: the plain one gives the egress interface, gateway and table of the lookup; the
/// `RTM_F_FIB_MATCH` one gives the table entry that matched. The kernel does not say which
/// rule led to the table: the views find it by walking the rules
/// ([`crate::views::rule_walk`]). Works without privileges.
pub async fn lookup(
    nl: &Netlink,
    query: &Query,
    iif: Option<u32>,
    oif: Option<u32>,
) -> Result<model::Answer, NetlinkError> {
    let get = |fib_match| RouteGet {
        from: Some(query.from),
        to: query.to,
        iif,
        oif,
        mark: query.mark,
        fib_match,
    };
    let got = match nl.get_with(
        &mut wire::route_get_request(&get(false)),
        new_route(wire::route_got),
    ) {
        Ok(Some(got)) => got,
        Ok(None) => return Err(NetlinkError::Closed),
        Err(NetlinkError::Errno(errno)) => return Ok(model::Answer::Failed { errno }),
        Err(e) => return Err(e),
    };
    // Older kernels (before 4.13) do not know the flag; the answer is still the lookup's.
    let matched = nl
        .get_with(
            &mut wire::route_get_request(&get(true)),
            new_route(wire::route_from),
        )
        .ok()
        .flatten();
    Ok(model::Answer::Route {
        table: got.table,
        kind: got.kind,
        matched,
        oif: got.oif,
        gateway: got.gateway,
        prefsrc: got.prefsrc,
    })
}
