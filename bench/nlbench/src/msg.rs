//! Building and reading rtnetlink messages: the constants, a message builder, the route,
//! address and dump requests, and walkers over received datagrams.

use std::net::Ipv4Addr;

pub const NLM_F_REQUEST: u16 = 1;
pub const NLM_F_ACK: u16 = 4;
const NLM_F_DUMP: u16 = 0x300;
pub const NLM_F_EXCL: u16 = 0x200;
pub const NLM_F_CREATE: u16 = 0x400;
pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;

pub const RTM_NEWADDR: u16 = 20;
pub const RTM_DELADDR: u16 = 21;
pub const RTM_NEWROUTE: u16 = 24;
pub const RTM_DELROUTE: u16 = 25;
const RTM_GETROUTE: u16 = 26;
pub const RTM_NEWRULE: u16 = 32;
pub const RTM_DELRULE: u16 = 33;

const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;
const RTA_TABLE: u16 = 15;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const FRA_SRC: u16 = 2;
const FRA_TABLE: u16 = 15;

const AF_INET: u8 = 2;
const RTN_UNICAST: u8 = 1;
const RT_SCOPE_UNIVERSE: u8 = 0;
const RT_TABLE_COMPAT: u8 = 252;
pub const RTPROT_STATIC: u8 = 4;

// Multicast groups (bit = 1 << (group - 1)).
pub const GRP_IPV4_ROUTE: u32 = 1 << 6;
pub const GRP_IPV4_RULE: u32 = 1 << 7;
pub const GRP_IPV6_ROUTE: u32 = 1 << 10;
pub const GRP_IPV6_RULE: u32 = 1 << 18;

/// A netlink message being built.
struct Msg {
    buf: Vec<u8>,
}

impl Msg {
    fn new(ty: u16, flags: u16, seq: u32) -> Msg {
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&ty.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        Msg { buf }
    }
    fn bytes(&mut self, b: &[u8]) -> &mut Msg {
        self.buf.extend_from_slice(b);
        self
    }
    fn attr(&mut self, ty: u16, payload: &[u8]) -> &mut Msg {
        let len = 4 + payload.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(payload);
        while !self.buf.len().is_multiple_of(4) {
            self.buf.push(0);
        }
        self
    }
    fn finish(mut self) -> Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf
    }
}

fn rtmsg(dst_len: u8, table: u32, proto: u8, scope: u8, kind: u8) -> [u8; 12] {
    let t = if table < 256 {
        table as u8
    } else {
        RT_TABLE_COMPAT
    };
    [AF_INET, dst_len, 0, 0, t, proto, scope, kind, 0, 0, 0, 0]
}

/// What the IPv4 unicast routes nlbench writes have in common; only the destination varies.
pub struct RouteSpec {
    pub table: u32,
    pub oif: u32,
    pub gw: Option<Ipv4Addr>,
    pub proto: u8,
    pub plen: u8,
}

pub fn route_msg(ty: u16, flags: u16, seq: u32, spec: &RouteSpec, dst: Ipv4Addr) -> Vec<u8> {
    let mut m = Msg::new(ty, flags, seq);
    m.bytes(&rtmsg(
        spec.plen,
        spec.table,
        spec.proto,
        RT_SCOPE_UNIVERSE,
        RTN_UNICAST,
    ))
    .attr(RTA_TABLE, &spec.table.to_ne_bytes())
    .attr(RTA_DST, &dst.octets())
    .attr(RTA_OIF, &spec.oif.to_ne_bytes());
    if let Some(gw) = spec.gw {
        m.attr(RTA_GATEWAY, &gw.octets());
    }
    m.finish()
}

pub fn addr_msg(ty: u16, flags: u16, seq: u32, ifindex: u32, addr: Ipv4Addr, plen: u8) -> Vec<u8> {
    let mut m = Msg::new(ty, flags, seq);
    let mut hdr = [AF_INET, plen, 0, 0, 0, 0, 0, 0];
    hdr[4..8].copy_from_slice(&ifindex.to_ne_bytes());
    m.bytes(&hdr)
        .attr(IFA_LOCAL, &addr.octets())
        .attr(IFA_ADDRESS, &addr.octets());
    m.finish()
}

/// A dump request for the IPv4 routes of `table` (and through `oif`), which the kernel
/// filters itself under strict checking.
pub fn dump_msg(table: u32, oif: Option<u32>) -> Vec<u8> {
    let mut m = Msg::new(RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, 1);
    m.bytes(&rtmsg(0, table, 0, 0, 0))
        .attr(RTA_TABLE, &table.to_ne_bytes());
    if let Some(oif) = oif {
        m.attr(RTA_OIF, &oif.to_ne_bytes());
    }
    m.finish()
}

/// Walks the messages of one datagram: (type, flags, payload).
pub fn messages(buf: &[u8]) -> impl Iterator<Item = (u16, u16, &[u8])> {
    let mut off = 0;
    std::iter::from_fn(move || {
        if off + 16 > buf.len() {
            return None;
        }
        let len = u32::from_ne_bytes(buf[off..off + 4].try_into().unwrap()) as usize;
        if len < 16 || off + len > buf.len() {
            return None;
        }
        let ty = u16::from_ne_bytes(buf[off + 4..off + 6].try_into().unwrap());
        let flags = u16::from_ne_bytes(buf[off + 6..off + 8].try_into().unwrap());
        let payload = &buf[off + 16..off + len];
        off += (len + 3) & !3;
        Some((ty, flags, payload))
    })
}

fn attrs(buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    let mut off = 0;
    std::iter::from_fn(move || {
        if off + 4 > buf.len() {
            return None;
        }
        let len = u16::from_ne_bytes(buf[off..off + 2].try_into().unwrap()) as usize;
        let ty = u16::from_ne_bytes(buf[off + 2..off + 4].try_into().unwrap()) & 0x3fff;
        if len < 4 || off + len > buf.len() {
            return None;
        }
        let v = &buf[off + 4..off + len];
        off += (len + 3) & !3;
        Some((ty, v))
    })
}

/// The (negative errno or 0) code of an NLMSG_ERROR payload.
pub fn error_code(payload: &[u8]) -> i32 {
    i32::from_ne_bytes(payload[0..4].try_into().unwrap())
}

/// A route notification or dump entry: (family, table, dst bytes, dst_len, metric).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct RouteKey {
    family: u8,
    pub dst: Vec<u8>,
    dst_len: u8,
    tos: u8,
    metric: u32,
}

pub fn parse_route(payload: &[u8]) -> Option<(u32, RouteKey)> {
    if payload.len() < 12 {
        return None;
    }
    let mut table = payload[4] as u32;
    let mut dst = Vec::new();
    let mut metric = 0;
    for (ty, v) in attrs(&payload[12..]) {
        match ty {
            RTA_TABLE if v.len() == 4 => table = u32::from_ne_bytes(v.try_into().unwrap()),
            RTA_DST => dst = v.to_vec(),
            RTA_PRIORITY if v.len() == 4 => metric = u32::from_ne_bytes(v.try_into().unwrap()),
            _ => {}
        }
    }
    Some((
        table,
        RouteKey {
            family: payload[0],
            dst,
            dst_len: payload[1],
            tos: payload[3],
            metric,
        },
    ))
}

/// A rule notification: (table, source address bytes).
pub fn parse_rule(payload: &[u8]) -> Option<(u32, Vec<u8>)> {
    if payload.len() < 12 {
        return None;
    }
    let mut table = payload[4] as u32;
    let mut src = Vec::new();
    for (ty, v) in attrs(&payload[12..]) {
        match ty {
            FRA_TABLE if v.len() == 4 => table = u32::from_ne_bytes(v.try_into().unwrap()),
            FRA_SRC => src = v.to_vec(),
            _ => {}
        }
    }
    Some((table, src))
}
