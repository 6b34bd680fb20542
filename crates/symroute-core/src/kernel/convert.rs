//! Model types as netlink-packet-route's typed messages: what other crates' tests build
//! notifications and writes with (`route_message`, `rule_message`, re-exported by the
//! crate), and, in this crate's tests, the typed reference that the one codec
//! ([`super::wire`], [`super::wire_rules`]) is compared with. symroute itself reads and
//! writes through that codec only.

#[cfg(test)]
use netlink_packet_core::{Emitable, NetlinkMessage};
use netlink_packet_route::route::{
    RouteAttribute, RouteFlags, RouteHeader, RouteMessage, RouteMetric, RouteNextHop,
    RouteNextHopFlags, RoutePreference, RouteProtocol, RouteScope, RouteType,
};
#[cfg(test)]
use netlink_packet_route::rule::RuleFlags;
use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleMessage};
use netlink_packet_route::AddressFamily;
#[cfg(test)]
use netlink_packet_route::RouteNetlinkMessage;

#[cfg(test)]
use super::wire;
use crate::model::{Family, Route, Rule};
#[cfg(test)]
use crate::model::{RuleExtra, RuleVerdict};

/// `RT_TABLE_COMPAT`: what the header shows for tables above 255.
const RT_TABLE_COMPAT: u8 = 252;

pub fn family_code(family: Family) -> AddressFamily {
    match family {
        Family::V4 => AddressFamily::Inet,
        Family::V6 => AddressFamily::Inet6,
    }
}

#[cfg(test)]
fn family_of(code: AddressFamily) -> Option<Family> {
    match code {
        AddressFamily::Inet => Some(Family::V4),
        AddressFamily::Inet6 => Some(Family::V6),
        _ => None,
    }
}

fn metric_to(id: u16, v: u32) -> Option<RouteMetric> {
    Some(match id {
        1 => RouteMetric::Lock(v),
        2 => RouteMetric::Mtu(v),
        3 => RouteMetric::Window(v),
        4 => RouteMetric::Rtt(v),
        5 => RouteMetric::RttVar(v),
        6 => RouteMetric::SsThresh(v),
        7 => RouteMetric::Cwnd(v),
        8 => RouteMetric::Advmss(v),
        9 => RouteMetric::Reordering(v),
        10 => RouteMetric::Hoplimit(v),
        11 => RouteMetric::InitCwnd(v),
        12 => RouteMetric::Features(v),
        13 => RouteMetric::RtoMin(v),
        14 => RouteMetric::InitRwnd(v),
        15 => RouteMetric::QuickAck(v),
        17 => RouteMetric::FastopenNoCookie(v),
        _ => return None,
    })
}

#[cfg(test)]
/// Reads a route of the IPv4 or IPv6 FIB from a typed message (a lookup's answer, a
/// notification): its bytes, read by the one route decoder, [`wire::route_from`], which
/// says what comes back for routes symroute cannot copy.
pub fn route_from(msg: &RouteMessage) -> Option<Route> {
    let mut payload = vec![0; msg.buffer_len()];
    msg.emit(&mut payload);
    wire::route_from(&payload)
}

fn route_header(route: &Route) -> RouteHeader {
    RouteHeader {
        address_family: family_code(route.family()),
        destination_prefix_length: route.dst_len,
        tos: route.tos,
        table: u8::try_from(route.table).unwrap_or(RT_TABLE_COMPAT),
        protocol: RouteProtocol::from(route.protocol),
        scope: RouteScope::from(route.scope),
        kind: RouteType::from(route.kind),
        ..Default::default()
    }
}

/// The message that creates or replaces `route`, and that deletes exactly it.
pub fn route_message(route: &Route) -> RouteMessage {
    let mut msg = RouteMessage::default();
    msg.header = route_header(route);
    let attrs = &mut msg.attributes;
    attrs.push(RouteAttribute::Table(route.table));
    if route.dst_len != 0 {
        attrs.push(RouteAttribute::Destination(route.dst.into()));
    }
    if route.metric != 0 {
        attrs.push(RouteAttribute::Priority(route.metric));
    }
    if let Some(src) = route.pref_src() {
        attrs.push(RouteAttribute::PrefSource(src.into()));
    }
    if let Some(pref) = route.pref {
        attrs.push(RouteAttribute::Preference(RoutePreference::from(pref)));
    }
    if !route.metrics().is_empty() || route.congctl().is_some() {
        let mut metrics: Vec<RouteMetric> = route
            .metrics()
            .iter()
            .filter(|(id, _)| *id < crate::model::metric::CC_ALGO)
            .filter_map(|(id, v)| metric_to(*id, *v))
            .collect();
        metrics.extend(route.congctl().map(|c| RouteMetric::CcAlgo(c.to_string())));
        metrics.extend(
            route
                .metrics()
                .iter()
                .filter(|(id, _)| *id > crate::model::metric::CC_ALGO)
                .filter_map(|(id, v)| metric_to(*id, *v)),
        );
        attrs.push(RouteAttribute::Metrics(metrics));
    }
    match route.nexthops.as_slice() {
        [] => {}
        [nh] => {
            attrs.push(RouteAttribute::Oif(nh.ifindex));
            if let Some(gw) = nh.gateway {
                attrs.push(RouteAttribute::Gateway(gw.into()));
            }
            if nh.onlink {
                msg.header.flags |= RouteFlags::Onlink;
            }
        }
        many => {
            let hops = many
                .iter()
                .map(|nh| {
                    let mut hop = RouteNextHop::default();
                    hop.interface_index = nh.ifindex;
                    hop.hops = nh.hops;
                    if nh.onlink {
                        hop.flags |= RouteNextHopFlags::Onlink;
                    }
                    if let Some(gw) = nh.gateway {
                        hop.attributes.push(RouteAttribute::Gateway(gw.into()));
                    }
                    hop
                })
                .collect();
            attrs.push(RouteAttribute::MultiPath(hops));
        }
    }
    msg
}

/// A dump request for the routes of `table` (both families), optionally only those with a
/// nexthop through `oif`: the typed reference [`super::wire::route_dump_request`]'s bytes are
/// checked against.
#[cfg(test)]
pub fn route_dump_request(table: Option<u32>, oif: Option<u32>) -> RouteMessage {
    let mut msg = RouteMessage::default();
    msg.header.address_family = AddressFamily::Unspec;
    if let Some(table) = table {
        msg.attributes.push(RouteAttribute::Table(table));
    }
    if let Some(oif) = oif {
        msg.attributes.push(RouteAttribute::Oif(oif));
    }
    msg
}

#[cfg(test)]
pub fn rule_from(msg: &RuleMessage) -> Option<Rule> {
    let family = family_of(msg.header.family)?;
    let longest = family.host_prefix_len();
    if msg.header.dst_len > longest || msg.header.src_len > longest {
        return None;
    }
    let mut priority = 0;
    let mut table = u32::from(msg.header.table);
    let mut src = None;
    let mut dst = None;
    let mut iif = None;
    let mut fwmark = None;
    let mut fwmask = None;
    let mut protocol = 0;
    let mut suppress_prefixlen = None;
    // `not from X` must never be read as `from X`.
    let mut extra = RuleExtra {
        invert: msg.header.flags.contains(RuleFlags::Invert),
        narrow: msg.header.tos != 0,
        suppress: false,
        action: match msg.header.action {
            RuleAction::ToTable => RuleVerdict::Lookup,
            RuleAction::Blackhole | RuleAction::Unreachable | RuleAction::Prohibit => {
                RuleVerdict::Refuse
            }
            _ => RuleVerdict::Other,
        },
    };
    for attr in &msg.attributes {
        match attr {
            RuleAttribute::Priority(p) => priority = *p,
            RuleAttribute::Table(t) => table = *t,
            RuleAttribute::Source(a) => src = Some((*a, msg.header.src_len)),
            RuleAttribute::Destination(a) => dst = Some((*a, msg.header.dst_len)),
            RuleAttribute::Iifname(name) => iif = Some(name.clone()),
            RuleAttribute::FwMark(m) => fwmark = Some(*m),
            RuleAttribute::FwMask(m) => fwmask = Some(*m),
            RuleAttribute::Protocol(p) => protocol = u8::from(*p),
            // The kernel reports these unset as all ones; set, they change what the rule does
            // (wg-quick's `lookup main suppress_prefixlength 0`).
            RuleAttribute::SuppressPrefixLen(u32::MAX) => {}
            // A prefix is at most 128 long: anything larger is no rule of ours.
            RuleAttribute::SuppressPrefixLen(v) => match u8::try_from(*v) {
                Ok(len) => suppress_prefixlen = Some(len),
                Err(_) => extra.suppress = true,
            },
            RuleAttribute::SuppressIfGroup(v) => extra.suppress |= *v != u32::MAX,
            RuleAttribute::Other(_) => {}
            _ => extra.narrow = true,
        }
    }
    if msg.header.dst_len != 0 && dst.is_none() {
        extra.narrow = true;
    }
    // The kernel reports the mask whenever a mark or mask is set; `fwmark 0/0` is no selector.
    let fwmark = match (fwmark, fwmask) {
        (None, None) | (None | Some(0), Some(0)) => None,
        (mark, mask) => Some((mark.unwrap_or(0), mask.unwrap_or(u32::MAX))),
    };
    Some(Rule {
        family,
        priority,
        src,
        dst,
        iif,
        fwmark,
        table,
        protocol,
        suppress_prefixlen,
        extra,
    })
}

/// The message that adds `rule`, and that deletes exactly it (protocol included: it is part
/// of a rule's identity).
pub fn rule_message(rule: &Rule) -> RuleMessage {
    let mut msg = RuleMessage::default();
    msg.header.family = family_code(rule.family);
    msg.header.table = u8::try_from(rule.table).unwrap_or(0);
    msg.header.action = RuleAction::ToTable;
    msg.attributes.push(RuleAttribute::Priority(rule.priority));
    msg.attributes.push(RuleAttribute::Table(rule.table));
    msg.attributes
        .push(RuleAttribute::Protocol(RouteProtocol::from(rule.protocol)));
    if let Some((addr, len)) = rule.src {
        msg.header.src_len = len;
        msg.attributes.push(RuleAttribute::Source(addr));
    }
    if let Some((addr, len)) = rule.dst {
        msg.header.dst_len = len;
        msg.attributes.push(RuleAttribute::Destination(addr));
    }
    if let Some(iif) = &rule.iif {
        msg.attributes.push(RuleAttribute::Iifname(iif.clone()));
    }
    if let Some((mark, mask)) = rule.fwmark {
        msg.attributes.push(RuleAttribute::FwMark(mark));
        msg.attributes.push(RuleAttribute::FwMask(mask));
    }
    if let Some(len) = rule.suppress_prefixlen {
        msg.attributes
            .push(RuleAttribute::SuppressPrefixLen(u32::from(len)));
    }
    msg
}

/// Appends `message` to `buf` as one netlink message whose header carries `flags`.
#[cfg(test)]
pub fn append(buf: &mut Vec<u8>, message: RouteNetlinkMessage, flags: u16) {
    let mut message = NetlinkMessage::from(message);
    message.header.flags = flags;
    message.finalize();
    let at = buf.len();
    buf.resize(at + message.buffer_len(), 0);
    message.emit(&mut buf[at..]);
}

/// `message` alone as netlink bytes ([`append`]).
#[cfg(test)]
pub fn encoded(message: RouteNetlinkMessage, flags: u16) -> Vec<u8> {
    let mut buf = Vec::new();
    append(&mut buf, message, flags);
    buf
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::ip;
    use crate::model::scope;
    use crate::model::NextHop;

    fn sample(nexthops: Vec<NextHop>) -> Route {
        Route::unicast(1003, ip("2001:db8::"), 32)
            .multipath(nexthops)
            .with_scope(scope::UNIVERSE)
            .with_metric(1024)
            .with_protocol(83)
            .with_pref_src(ip("2001:db8::9"))
            .with_pref(0)
            .with_metrics(vec![(2, 1400)])
    }

    #[test]
    fn route_survives_round_trip_through_message() {
        let single = sample(vec![NextHop::via(ip("fe80::1"), 3)]);
        assert_eq!(route_from(&route_message(&single)), Some(single));
        let multi = sample(vec![
            NextHop::via(ip("fe80::1"), 3),
            NextHop::via(ip("fe80::2"), 3)
                .with_hops(4)
                .with_onlink(true),
        ]);
        assert_eq!(route_from(&route_message(&multi)), Some(multi));
    }

    #[test]
    fn rule_survives_round_trip_through_message() {
        let rule = Rule::lookup(1003, 32000)
            .with_src(ip("10.2.0.9"), 32)
            .with_protocol(83);
        assert_eq!(rule_from(&rule_message(&rule)), Some(rule.clone()));
        // The steering rule of [health]: no selector, suppress_prefixlength 0.
        let steering = Rule::lookup(254, 32700).with_protocol(83).with_suppress(0);
        let read = rule_from(&rule_message(&steering));
        assert_eq!(read, Some(steering.clone()));
        assert!(read.is_some_and(|r| r.is_steering(83)));
        assert_eq!(
            steering.to_string(),
            "from all lookup main suppress_prefixlength 0 priority 32700"
        );
        let marked = Rule {
            src: None,
            priority: 31998,
            fwmark: Some((0x0300_0000, 0xff00_0000)),
            ..rule.clone()
        };
        assert_eq!(rule_from(&rule_message(&marked)), Some(marked.clone()));
        assert_eq!(
            marked.to_string(),
            "from all fwmark 0x3000000/0xff000000 lookup 1003 priority 31998"
        );
        let exact = Rule {
            fwmark: Some((0xca6c, u32::MAX)),
            ..marked
        };
        assert_eq!(rule_from(&rule_message(&exact)), Some(exact.clone()));
        assert_eq!(
            exact.to_string(),
            "from all fwmark 0xca6c lookup 1003 priority 31998"
        );
        let iif = Rule {
            src: None,
            iif: Some("eth1".into()),
            ..rule.clone()
        };
        assert_eq!(rule_from(&rule_message(&iif)), Some(iif));
        let exempt = Rule::lookup(254, rule.priority)
            .with_dst(ip("172.17.0.0"), 16)
            .with_protocol(rule.protocol);
        assert_eq!(rule_from(&rule_message(&exempt)), Some(exempt));
    }
}
