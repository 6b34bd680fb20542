//! Route lookups: how the kernel routes one packet (`symroute explain`).

use netlink_packet_route::route::{RouteAttribute, RouteFlags, RouteMessage};
use netlink_packet_route::RouteNetlinkMessage as Msg;

use super::convert::{self, ip_of};
use super::netlink::{Netlink, NetlinkError};
use crate::model::{Answer, Family, Query, Route};

/// Asks the kernel how it routes `query`. `iif` is the index of `query.iif`.
///
/// Two `RTM_GETROUTE` requests, as `ip route get ... fibmatch` does: the plain one gives the
/// egress interface, gateway and table of the lookup; the `RTM_F_FIB_MATCH` one gives the
/// table entry that matched. Works without privileges.
pub async fn lookup(nl: &Netlink, query: &Query, iif: Option<u32>) -> Result<Answer, NetlinkError> {
    let get = |flags: RouteFlags| {
        let mut msg = RouteMessage::default();
        let family = Family::of(&query.to);
        msg.header.address_family = convert::family_code(family);
        msg.header.destination_prefix_length = family.host_prefix_len();
        msg.header.source_prefix_length = Family::of(&query.from).host_prefix_len();
        // Under strict checking IPv6 refuses RTM_F_LOOKUP_TABLE (EINVAL); it always reports
        // the table anyway.
        msg.header.flags = match family {
            Family::V4 => flags,
            Family::V6 => flags - RouteFlags::LookupTable,
        };
        msg.attributes
            .push(RouteAttribute::Source(query.from.into()));
        msg.attributes
            .push(RouteAttribute::Destination(query.to.into()));
        if let Some(i) = iif {
            msg.attributes.push(RouteAttribute::Iif(i));
        }
        if query.mark != 0 {
            msg.attributes.push(RouteAttribute::Mark(query.mark));
        }
        Msg::GetRoute(msg)
    };
    let route_of = |answer: Msg| match answer {
        Msg::NewRoute(route) => Ok(route),
        _ => Err(NetlinkError::Closed),
    };
    let plain = match nl
        .get(get(RouteFlags::LookupTable))
        .await
        .and_then(route_of)
    {
        Ok(route) => route,
        Err(NetlinkError::Errno(errno)) => return Ok(Answer::Failed { errno }),
        Err(e) => return Err(e),
    };
    let matched = nl
        .get(get(RouteFlags::LookupTable | RouteFlags::FibMatch))
        .await
        .and_then(route_of)
        .ok()
        .and_then(|m| convert::route_from(&m));
    Ok(answer_from(&plain, matched))
}

fn answer_from(plain: &RouteMessage, matched: Option<Route>) -> Answer {
    let mut table = u32::from(plain.header.table);
    let (mut oif, mut gateway, mut prefsrc) = (None, None, None);
    for attr in &plain.attributes {
        match attr {
            RouteAttribute::Table(t) => table = *t,
            RouteAttribute::Oif(i) => oif = Some(*i),
            RouteAttribute::Gateway(g) => gateway = ip_of(g),
            RouteAttribute::PrefSource(s) => prefsrc = ip_of(s),
            _ => {}
        }
    }
    Answer::Route {
        table,
        kind: u8::from(plain.header.kind),
        matched,
        oif,
        gateway,
        prefsrc,
    }
}
