//! Rules read straight from rtnetlink messages (`struct fib_rule_hdr` and its `FRA_*`
//! attributes) and written straight into them, as [`super::wire`] does links, addresses and
//! routes: one codec for everything the reads, writes and the daemon's notifications carry.
//!
//! A message the kernel would never send (an attribute of a known kind with a value of the
//! wrong size, broken framing) is no rule at all, rather than a rule read in part: a rule
//! whose selectors were half understood must not be taken for one that routes everything.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::rtnl::{attr, begin, finish, u32_at};
use super::wire::{AF_INET, AF_INET6, AF_UNSPEC};
use crate::model::{Family, Rule, RuleExtra, RuleVerdict};

pub const RTM_NEWRULE: u16 = 32;
pub const RTM_DELRULE: u16 = 33;
pub const RTM_GETRULE: u16 = 34;

/// `struct fib_rule_hdr`: family, dst_len, src_len, tos, table, two reserved bytes, action,
/// flags.
const HEADER_LEN: usize = 12;
const FIB_RULE_INVERT: u32 = 0x2;

const FR_ACT_TO_TBL: u8 = 1;
const FR_ACT_BLACKHOLE: u8 = 6;
const FR_ACT_UNREACHABLE: u8 = 7;
const FR_ACT_PROHIBIT: u8 = 8;

const FRA_DST: u16 = 1;
const FRA_SRC: u16 = 2;
const FRA_IIFNAME: u16 = 3;
const FRA_GOTO: u16 = 4;
const FRA_PRIORITY: u16 = 6;
const FRA_FWMARK: u16 = 10;
const FRA_FLOW: u16 = 11;
const FRA_TUN_ID: u16 = 12;
const FRA_SUPPRESS_IFGROUP: u16 = 13;
const FRA_SUPPRESS_PREFIXLEN: u16 = 14;
const FRA_TABLE: u16 = 15;
const FRA_FWMASK: u16 = 16;
const FRA_OIFNAME: u16 = 17;
const FRA_L3MDEV: u16 = 19;
const FRA_UID_RANGE: u16 = 20;
const FRA_PROTOCOL: u16 = 21;
const FRA_IP_PROTO: u16 = 22;
const FRA_SPORT_RANGE: u16 = 23;
const FRA_DPORT_RANGE: u16 = 24;

/// The attributes of `buf` as `(kind without flag bits, value)`; `None` when the framing is
/// broken (a length below the attribute header or past the end).
fn strict_attrs(buf: &[u8]) -> Option<Vec<(u16, &[u8])>> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        let rest = &buf[at..];
        let len = usize::from(u16::from_ne_bytes([*rest.first()?, *rest.get(1)?]));
        let kind = u16::from_ne_bytes([*rest.get(2)?, *rest.get(3)?]) & 0x3fff;
        if len < 4 || len > rest.len() {
            return None;
        }
        out.push((kind, &rest[4..len]));
        at += (len + 3) & !3;
    }
    Some(out)
}

fn u32_of(value: &[u8]) -> Option<u32> {
    <[u8; 4]>::try_from(value).ok().map(u32::from_ne_bytes)
}

fn u8_of(value: &[u8]) -> Option<u8> {
    match value {
        [b] => Some(*b),
        _ => None,
    }
}

/// An address as a rule carries it: its size says its family.
fn ip_of(value: &[u8]) -> Option<IpAddr> {
    match value.len() {
        4 => <[u8; 4]>::try_from(value)
            .ok()
            .map(|b| Ipv4Addr::from(b).into()),
        16 => <[u8; 16]>::try_from(value)
            .ok()
            .map(|b| Ipv6Addr::from(b).into()),
        _ => None,
    }
}

/// A NUL-terminated (or not) name.
fn name_of(value: &[u8]) -> Option<String> {
    let name = value.strip_suffix(&[0]).unwrap_or(value);
    String::from_utf8(name.to_vec()).ok()
}

/// A rule of either family from an `RTM_NEWRULE`/`RTM_DELRULE` payload. Selectors symroute
/// does not model make the rule [`RuleExtra::narrow`]; `not` is kept, never dropped (`not
/// from X` must never be read as `from X`).
pub fn rule_from(payload: &[u8]) -> Option<Rule> {
    let header = payload.get(..HEADER_LEN)?;
    let family = match header[0] {
        AF_INET => Family::V4,
        AF_INET6 => Family::V6,
        _ => return None,
    };
    let (dst_len, src_len, tos, action) = (header[1], header[2], header[3], header[7]);
    // A prefix longer than the family's address is forged: no rule the kernel holds.
    if dst_len > family.host_prefix_len() || src_len > family.host_prefix_len() {
        return None;
    }
    let mut rule = Rule {
        family,
        priority: 0,
        src: None,
        dst: None,
        iif: None,
        fwmark: None,
        table: u32::from(header[4]),
        protocol: 0,
        suppress_prefixlen: None,
        extra: RuleExtra {
            invert: u32_at(header, 8) & FIB_RULE_INVERT != 0,
            narrow: tos != 0,
            suppress: false,
            action: match action {
                FR_ACT_TO_TBL => RuleVerdict::Lookup,
                FR_ACT_BLACKHOLE | FR_ACT_UNREACHABLE | FR_ACT_PROHIBIT => RuleVerdict::Refuse,
                _ => RuleVerdict::Other,
            },
        },
    };
    let (mut fwmark, mut fwmask) = (None, None);
    for (kind, value) in strict_attrs(&payload[HEADER_LEN..])? {
        match kind {
            FRA_PRIORITY => rule.priority = u32_of(value)?,
            FRA_TABLE => rule.table = u32_of(value)?,
            FRA_SRC => rule.src = Some((ip_of(value)?, src_len)),
            FRA_DST => rule.dst = Some((ip_of(value)?, dst_len)),
            FRA_IIFNAME => rule.iif = Some(name_of(value)?),
            FRA_FWMARK => fwmark = Some(u32_of(value)?),
            FRA_FWMASK => fwmask = Some(u32_of(value)?),
            FRA_PROTOCOL => rule.protocol = u8_of(value)?,
            // The kernel reports these unset as all ones; set, they change what the rule
            // does (wg-quick's `lookup main suppress_prefixlength 0`). A prefix is at most
            // 128 long: anything larger is no rule of ours.
            FRA_SUPPRESS_PREFIXLEN => match u32_of(value)? {
                u32::MAX => {}
                v => match u8::try_from(v) {
                    Ok(len) => rule.suppress_prefixlen = Some(len),
                    Err(_) => rule.extra.suppress = true,
                },
            },
            FRA_SUPPRESS_IFGROUP => rule.extra.suppress |= u32_of(value)? != u32::MAX,
            // Selectors outside the model, each checked for the size the kernel sends.
            FRA_GOTO | FRA_FLOW => {
                u32_of(value)?;
                rule.extra.narrow = true;
            }
            FRA_TUN_ID | FRA_UID_RANGE => {
                <[u8; 8]>::try_from(value).ok()?;
                rule.extra.narrow = true;
            }
            FRA_OIFNAME => {
                name_of(value)?;
                rule.extra.narrow = true;
            }
            FRA_L3MDEV | FRA_IP_PROTO => {
                u8_of(value)?;
                rule.extra.narrow = true;
            }
            FRA_SPORT_RANGE | FRA_DPORT_RANGE => {
                <[u8; 4]>::try_from(value).ok()?;
                rule.extra.narrow = true;
            }
            // Padding and kinds newer than this decoder.
            _ => {}
        }
    }
    if dst_len != 0 && rule.dst.is_none() {
        rule.extra.narrow = true;
    }
    // The kernel reports the mask whenever a mark or mask is set; `fwmark 0/0` is no
    // selector.
    rule.fwmark = match (fwmark, fwmask) {
        (None, None) | (None | Some(0), Some(0)) => None,
        (mark, mask) => Some((mark.unwrap_or(0), mask.unwrap_or(u32::MAX))),
    };
    Some(rule)
}

/// Appends the message of `kind` (`RTM_NEWRULE`, `RTM_DELRULE`) with header `flags` that adds
/// `rule`, or deletes exactly it (protocol included: it is part of a rule's identity).
pub fn rule_message(buf: &mut Vec<u8>, kind: u16, flags: u16, rule: &Rule) {
    let at = begin(buf, kind, flags);
    let family = match rule.family {
        Family::V4 => AF_INET,
        Family::V6 => AF_INET6,
    };
    let len = |sel: Option<(IpAddr, u8)>| sel.map_or(0, |(_, len)| len);
    buf.extend_from_slice(&[
        family,
        len(rule.dst),
        len(rule.src),
        0,
        u8::try_from(rule.table).unwrap_or(0),
        0,
        0,
        FR_ACT_TO_TBL,
    ]);
    buf.extend_from_slice(&0u32.to_ne_bytes());
    attr(buf, FRA_PRIORITY, &rule.priority.to_ne_bytes());
    attr(buf, FRA_TABLE, &rule.table.to_ne_bytes());
    attr(buf, FRA_PROTOCOL, &[rule.protocol]);
    for (kind, sel) in [(FRA_SRC, rule.src), (FRA_DST, rule.dst)] {
        match sel {
            Some((IpAddr::V4(a), _)) => attr(buf, kind, &a.octets()),
            Some((IpAddr::V6(a), _)) => attr(buf, kind, &a.octets()),
            None => 0,
        };
    }
    if let Some(iif) = &rule.iif {
        let mut name = Vec::with_capacity(iif.len() + 1);
        name.extend_from_slice(iif.as_bytes());
        name.push(0);
        attr(buf, FRA_IIFNAME, &name);
    }
    if let Some((mark, mask)) = rule.fwmark {
        attr(buf, FRA_FWMARK, &mark.to_ne_bytes());
        attr(buf, FRA_FWMASK, &mask.to_ne_bytes());
    }
    if let Some(len) = rule.suppress_prefixlen {
        attr(buf, FRA_SUPPRESS_PREFIXLEN, &u32::from(len).to_ne_bytes());
    }
    finish(buf, at);
}

/// The request for every rule of both families.
pub fn rule_dump_request() -> Vec<u8> {
    let mut buf = Vec::with_capacity(32);
    let at = begin(&mut buf, RTM_GETRULE, 0);
    buf.extend_from_slice(&[AF_UNSPEC; HEADER_LEN]);
    finish(&mut buf, at);
    buf
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::ip;
    use crate::kernel::convert;
    use crate::kernel::rtnl::{messages, NLM_F_REQUEST};
    use netlink_packet_core::{NetlinkMessage, NetlinkPayload};
    use netlink_packet_route::route::RouteRealm;
    use netlink_packet_route::rule::{RuleAction, RuleAttribute, RuleFlags, RuleMessage};
    use netlink_packet_route::{AddressFamily, RouteNetlinkMessage as Msg};

    fn rules() -> Vec<Rule> {
        vec![
            Rule::lookup(1003, 32000)
                .with_src(ip("192.0.2.7"), 32)
                .with_protocol(83),
            Rule::lookup(1003, 32000)
                .with_src(ip("2001:db8::7"), 128)
                .with_protocol(83),
            Rule {
                iif: Some("eth1".into()),
                fwmark: Some((0x1003, 0xffff)),
                ..Rule::lookup(1003, 31998).with_protocol(83)
            },
            Rule::lookup(254, 31999)
                .with_dst(ip("10.50.0.0"), 24)
                .with_suppress(0)
                .with_protocol(83),
            Rule {
                iif: Some(String::new()),
                ..Rule::lookup(70000, 3)
            },
        ]
    }

    /// Our encoder writes the very bytes netlink-packet-route writes for the same rule.
    #[test]
    fn rules_are_encoded_as_the_typed_messages_are() {
        for rule in rules() {
            for (kind, typed) in [
                (RTM_NEWRULE, Msg::NewRule(convert::rule_message(&rule))),
                (RTM_DELRULE, Msg::DelRule(convert::rule_message(&rule))),
            ] {
                let mut ours = Vec::new();
                rule_message(&mut ours, kind, 0x400, &rule);
                let theirs = convert::encoded(typed, NLM_F_REQUEST | 0x400);
                assert_eq!(ours, theirs, "{rule:?}");
                let answer = messages(&ours).next().unwrap();
                assert_eq!(rule_from(answer.payload).as_ref(), Some(&rule));
            }
        }
        let mut theirs = RuleMessage::default();
        theirs.header.family = AddressFamily::Unspec;
        assert_eq!(
            rule_dump_request(),
            convert::encoded(Msg::GetRule(theirs), NLM_F_REQUEST)
        );
    }

    /// What the typed decoder makes of `msg`'s bytes, beside ours.
    fn both(msg: RuleMessage) -> (Option<Rule>, Option<Rule>) {
        let bytes = convert::encoded(Msg::NewRule(msg), 0);
        let payload = &bytes[16..];
        let typed = match NetlinkMessage::<Msg>::deserialize(&bytes) {
            Ok(NetlinkMessage {
                payload: NetlinkPayload::InnerMessage(Msg::NewRule(r)),
                ..
            }) => convert::rule_from(&r),
            _ => None,
        };
        (rule_from(payload), typed)
    }

    /// Other tools' rules (a VPN's catch-all, a kill switch, `not`, selectors outside the
    /// model) read as the typed decoder reads them.
    #[test]
    fn other_tools_rules_are_read_as_the_typed_decoder_reads_them() {
        let base = |f: &dyn Fn(&mut RuleMessage)| {
            let mut msg = RuleMessage::default();
            msg.header.family = AddressFamily::Inet;
            msg.header.action = RuleAction::ToTable;
            msg.attributes.push(RuleAttribute::Priority(5270));
            msg.attributes.push(RuleAttribute::Table(52));
            f(&mut msg);
            msg
        };
        let cases: Vec<RuleMessage> = vec![
            base(&|_| {}),
            base(&|m| m.header.flags = RuleFlags::Invert),
            base(&|m| {
                m.header.flags = RuleFlags::Invert;
                m.attributes.push(RuleAttribute::FwMark(51820));
                m.attributes.push(RuleAttribute::FwMask(u32::MAX));
            }),
            base(&|m| m.header.action = RuleAction::Unreachable),
            base(&|m| m.header.action = RuleAction::Goto),
            base(&|m| m.header.tos = 4),
            base(&|m| m.header.dst_len = 8),
            base(&|m| m.attributes.push(RuleAttribute::SuppressPrefixLen(0))),
            base(&|m| {
                m.attributes
                    .push(RuleAttribute::SuppressPrefixLen(u32::MAX))
            }),
            base(&|m| m.attributes.push(RuleAttribute::SuppressPrefixLen(300))),
            base(&|m| m.attributes.push(RuleAttribute::SuppressIfGroup(5))),
            base(&|m| m.attributes.push(RuleAttribute::Oifname("wg0".into()))),
            base(&|m| m.attributes.push(RuleAttribute::Goto(9))),
            base(&|m| m.attributes.push(RuleAttribute::L3MDev(true))),
            base(&|m| m.attributes.push(RuleAttribute::TunId(7))),
            base(&|m| {
                m.attributes.push(RuleAttribute::Realm(RouteRealm {
                    source: 1,
                    destination: 2,
                }))
            }),
            base(&|m| m.attributes.push(RuleAttribute::FwMask(0))),
            base(&|m| m.attributes.push(RuleAttribute::Iifname("lo".into()))),
            base(&|m| {
                m.header.family = AddressFamily::Inet6;
                m.header.src_len = 64;
                m.attributes.push(RuleAttribute::Source(ip("fd00::")));
            }),
            base(&|m| m.header.family = AddressFamily::Unspec),
        ];
        for msg in cases {
            let (ours, typed) = both(msg.clone());
            assert_eq!(ours, typed, "{msg:?}");
        }
    }

    #[test]
    fn broken_messages_are_no_rule() {
        let mut bytes = Vec::new();
        rule_message(&mut bytes, RTM_NEWRULE, 0, &rules()[0]);
        let payload = bytes[16..].to_vec();
        // A priority of the wrong size, framing past the end, a short header.
        let mut wrong = payload.clone();
        wrong[HEADER_LEN] = 6;
        assert_eq!(rule_from(&wrong), None);
        let mut past = payload.clone();
        past[HEADER_LEN] = 200;
        assert_eq!(rule_from(&past), None);
        assert_eq!(rule_from(&payload[..HEADER_LEN - 1]), None);
        for cut in 0..payload.len() {
            let _ = rule_from(&payload[..cut]);
        }
    }

    /// One attribute: a kind symroute reads, one it treats as narrowing, or one it passes
    /// over, with a value of the size the kernel sends or of any size.
    fn attribute() -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
        use proptest::prelude::*;
        let sizes = prop_oneof![
            Just(0usize),
            Just(1),
            Just(4),
            Just(8),
            Just(16),
            0..24usize
        ];
        (0u16..27, any::<bool>(), sizes, any::<u8>()).prop_flat_map(|(kind, nested, len, fill)| {
            prop::collection::vec(prop_oneof![Just(0u8), Just(fill), any::<u8>()], len).prop_map(
                move |value| {
                    let mut a = Vec::new();
                    let kind = kind | if nested { 0x8000 } else { 0 };
                    a.extend_from_slice(&((4 + value.len()) as u16).to_ne_bytes());
                    a.extend_from_slice(&kind.to_ne_bytes());
                    a.extend_from_slice(&value);
                    a.resize((a.len() + 3) & !3, 0);
                    a
                },
            )
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Whatever the kernel (or a fuzzer) sends, a rule reads as netlink-packet-route's
        /// typed decoder read it, or is dropped where that one dropped it.
        #[test]
        fn any_rule_message_reads_as_the_typed_decoder_reads_it(
            family in proptest::prop_oneof![
                proptest::strategy::Just(AF_INET),
                proptest::strategy::Just(AF_INET6),
                proptest::strategy::Just(AF_UNSPEC),
                proptest::strategy::Just(7u8),
            ],
            header in proptest::collection::vec(proptest::prelude::any::<u8>(), 11),
            header_zeroes in proptest::prelude::any::<bool>(),
            attributes in proptest::collection::vec(attribute(), 0..8),
            cut in 0usize..8,
        ) {
            let mut payload = vec![family];
            if header_zeroes {
                payload.extend_from_slice(&[0; 11]);
            } else {
                payload.extend_from_slice(&header);
            }
            for a in &attributes {
                payload.extend_from_slice(a);
            }
            // Now and then a message cut short inside its last attribute.
            if cut == 0 && payload.len() > HEADER_LEN {
                payload.pop();
            }
            let mut message = Vec::new();
            message.extend_from_slice(&((16 + payload.len()) as u32).to_ne_bytes());
            message.extend_from_slice(&RTM_NEWRULE.to_ne_bytes());
            message.extend_from_slice(&[0; 10]);
            message.extend_from_slice(&payload);
            let typed = match NetlinkMessage::<Msg>::deserialize(&message) {
                Ok(NetlinkMessage {
                    payload: NetlinkPayload::InnerMessage(Msg::NewRule(r)),
                    ..
                }) => convert::rule_from(&r),
                _ => None,
            };
            proptest::prop_assert_eq!(rule_from(&payload), typed);
        }
    }
}
