//! The kernel source: an rtnetlink socket subscribed to the multicast groups of links,
//! addresses, routes and rules (IPv4 and IPv6), read by draining.
//!
//! The socket is subscribed before the daemon's first full sync, so a change made while the
//! daemon starts is either in that sync's snapshot or waiting in this socket. Only the
//! kernel's datagrams are read (`Socket::receive_now`, on the one netlink socket of kernel/socket.rs): a process sending to this
//! socket's port cannot fake a change.

use std::io;
use std::net::IpAddr;

use futures::FutureExt;
use netlink_packet_core::{Emitable, NetlinkBuffer, NetlinkMessage};
use netlink_packet_route::RouteNetlinkMessage;
use tokio::io::unix::AsyncFd;

use super::socket::{Route as Rtnetlink, Socket};
use super::{wire, wire_rules};
use crate::model::{Route, Rule};

/// Largest datagram the kernel sends for a notification is one page-sized skb; 64 KiB holds
/// anything it may batch.
const DATAGRAM_BUFFER: usize = 64 << 10;

/// The rtnetlink multicast groups symroute's plan depends on.
const GROUPS: [libc::c_uint; 7] = [
    libc::RTNLGRP_LINK,
    libc::RTNLGRP_IPV4_IFADDR,
    libc::RTNLGRP_IPV6_IFADDR,
    libc::RTNLGRP_IPV4_ROUTE,
    libc::RTNLGRP_IPV6_ROUTE,
    libc::RTNLGRP_IPV4_RULE,
    libc::RTNLGRP_IPV6_RULE,
];

/// Why the kernel source could not be opened or read.
#[derive(Debug, thiserror::Error)]
pub enum MonitorError {
    #[error("cannot open the rtnetlink event socket: {0}")]
    Open(#[source] io::Error),
    #[error("cannot subscribe to rtnetlink group {group}: {source}")]
    Subscribe {
        group: libc::c_uint,
        #[source]
        source: io::Error,
    },
    #[error("reading rtnetlink events: {0}")]
    Read(#[source] io::Error),
}

/// A notification, decoded into what the daemon's decisions need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A link appeared or changed (`RTM_NEWLINK`), by index.
    Link(u32),
    /// A link is gone (`RTM_DELLINK`).
    LinkGone(u32),
    /// An address of the link was added (or its flags or lifetimes changed): which (`None`
    /// when the message did not say).
    Address {
        index: u32,
        addr: Option<IpAddr>,
    },
    /// An address of the link was removed: which (`None` when the message did not say).
    AddressGone {
        index: u32,
        addr: Option<IpAddr>,
    },
    /// A route was added (or replaced: `NLM_F_REPLACE` in the header flags) or removed.
    Route {
        route: Route,
        added: bool,
    },
    RuleAdded(Rule),
    RuleRemoved(Rule),
}

/// What `message` changed, read as [`parse_datagram`] reads the same message's bytes:
/// for tests (and fuzz seeds) that build notifications as netlink-packet-route messages.
/// `None` for what no decision depends on (other message types, route cache exceptions)
/// and for what does not decode.
pub fn decode(message: &RouteNetlinkMessage) -> Option<Change> {
    let mut typed = NetlinkMessage::from(message.clone());
    typed.finalize();
    let mut bytes = vec![0; typed.buffer_len()];
    typed.emit(&mut bytes);
    let mut change = None;
    parse_datagram(&bytes, &mut |received| {
        if let Received::Message { message, .. } = received {
            change = Some(message);
        }
    });
    change
}

/// One thing read from the socket.
#[derive(Debug)]
pub enum Received {
    /// A notification, with its netlink header flags (`NLM_F_REPLACE` tells a replaced route).
    Message {
        flags: u16,
        /// The port id of the socket whose request caused it; 0 for the kernel's own changes.
        sender: u32,
        message: Change,
    },
    /// The kernel dropped notifications because the receive buffer was full (`ENOBUFS`):
    /// whatever they said is unknown, only a full resync is safe.
    Overrun,
}

/// The subscribed socket.
pub struct Monitor {
    socket: AsyncFd<Socket<Rtnetlink>>,
    buffer: Vec<u8>,
    /// Whether the in-kernel filter that drops our own route echoes is in place.
    pub filtered: bool,
    /// The port of the socket whose echoes are ours ([`Monitor::set_writer`]).
    writer: Option<u32>,
}

impl Monitor {
    /// Opens the socket, sizes its receive buffer, installs the echo filter for routes
    /// tagged `protocol` and joins the groups. Must run inside a tokio runtime.
    pub fn open(receive_buffer: usize, protocol: u8) -> Result<Monitor, MonitorError> {
        let (socket, forced) =
            Socket::<Rtnetlink>::listener(receive_buffer).map_err(MonitorError::Open)?;
        if !forced {
            // Without CAP_NET_ADMIN: capped by net.core.rmem_max.
            log::debug!("SO_RCVBUFFORCE refused; receive buffer capped by net.core.rmem_max");
        }
        let filtered = match attach_echo_filter(&socket, protocol, None) {
            Ok(()) => true,
            Err(e) => {
                log::debug!("no in-kernel filter for our own route echoes: {e}");
                false
            }
        };
        for group in GROUPS {
            socket
                .join(group)
                .map_err(|source| MonitorError::Subscribe { group, source })?;
        }
        // SAFETY: the socket moves into the AsyncFd, which owns it until it is deregistered
        // on drop: its descriptor cannot be closed or reused while tokio watches it.
        let socket = unsafe { AsyncFd::register(socket) }
            .map_err(|e| MonitorError::Open(io::Error::from(e)))?;
        Ok(Monitor {
            socket,
            buffer: vec![0; DATAGRAM_BUFFER],
            filtered,
            writer: None,
        })
    }

    /// Replaces the echo filter (after a configuration reload changed the protocol).
    pub fn refilter(&mut self, protocol: u8) {
        self.filtered = attach_echo_filter(self.socket.get_ref(), protocol, self.writer).is_ok();
    }

    /// Drops only the route echoes of the socket with port `port` (the caller's own writer),
    /// so that routes tagged `protocol` that another process writes (the hook, under the
    /// run lock) still arrive: a model of our tables kept from notifications needs them.
    pub fn set_writer(&mut self, protocol: u8, port: u32) {
        self.writer = (port != 0).then_some(port);
        self.refilter(protocol);
    }

    /// Waits until at least one datagram (or an error) is pending. Cancel-safe.
    pub async fn readable(&self) -> Result<(), MonitorError> {
        let mut guard = self.socket.readable().await.map_err(MonitorError::Read)?;
        // Readiness is cleared by `drain` once it has read until EAGAIN.
        guard.retain_ready();
        Ok(())
    }

    /// Reads every pending datagram without waiting and hands each notification (or
    /// overrun) to `on`. Returns how many datagrams were read.
    pub fn drain(&mut self, on: impl FnMut(Received)) -> Result<usize, MonitorError> {
        self.drain_and(true, on)
    }

    /// [`Monitor::drain`], leaving tokio's readiness as it is: for a read in the middle of
    /// other work, after which the event loop drains again anyway.
    pub fn drain_now(&mut self, on: impl FnMut(Received)) -> Result<usize, MonitorError> {
        self.drain_and(false, on)
    }

    fn drain_and(
        &mut self,
        clear: bool,
        mut on: impl FnMut(Received),
    ) -> Result<usize, MonitorError> {
        let Monitor { socket, buffer, .. } = self;
        // Taken before reading, so that clearing it below cannot swallow a datagram that
        // arrives after the last `recv` (tokio only clears the readiness it handed out).
        let mut ready = if clear {
            socket
                .readable()
                .now_or_never()
                .transpose()
                .map_err(MonitorError::Read)?
        } else {
            None
        };
        let mut datagrams = 0;
        loop {
            match socket.get_ref().receive_now(buffer) {
                Ok(Some(len)) if len > buffer.len() => {
                    // Cannot happen with a 64 KiB buffer; if it does, the rest is lost.
                    datagrams += 1;
                    log::warn!("truncated rtnetlink datagram of {len} bytes");
                    on(Received::Overrun);
                }
                Ok(Some(len)) => {
                    datagrams += 1;
                    parse_datagram(&buffer[..len], &mut on);
                }
                Ok(None) => {
                    if let Some(guard) = ready.as_mut() {
                        guard.clear_ready();
                    }
                    return Ok(datagrams);
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    datagrams += 1;
                    on(Received::Overrun);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(MonitorError::Read(e)),
            }
        }
    }
}

/// Splits a datagram into netlink messages and decodes each; malformed ones are logged and
/// skipped, kinds no decision depends on are passed over.
pub fn parse_datagram(mut bytes: &[u8], on: &mut impl FnMut(Received)) {
    while !bytes.is_empty() {
        let buffer = match NetlinkBuffer::new_checked(bytes) {
            Ok(buffer) => buffer,
            Err(e) => {
                log::warn!("ignoring malformed rtnetlink datagram: {e}");
                return;
            }
        };
        let len = buffer.length() as usize;
        if len == 0 || len > bytes.len() {
            log::warn!("ignoring malformed rtnetlink datagram: message length {len}");
            return;
        }
        let kind = buffer.message_type();
        if kind == NLMSG_OVERRUN {
            on(Received::Overrun);
        } else {
            // Read straight from the bytes by the dumps' decoders (wire.rs, wire_rules.rs).
            let payload = bytes.get(NETLINK_HEADER_LEN..len).unwrap_or_default();
            if let Some(message) = change(kind, payload) {
                on(Received::Message {
                    flags: buffer.flags(),
                    sender: buffer.port_number(),
                    message,
                });
            }
        }
        // Messages are 4-byte aligned within a datagram.
        let next = (len + 3) & !3;
        bytes = bytes.get(next..).unwrap_or_default();
    }
}

/// `RTM_F_CLONED` in a route message's `rtm_flags`: a route cache exception.
const RTM_F_CLONED: u32 = 0x200;
const NETLINK_HEADER_LEN: usize = 16;
const NLMSG_OVERRUN: u16 = 4;
const RTM_DELLINK: u16 = 17;
const RTM_DELADDR: u16 = 21;

/// The change a notification of `kind` with `payload` (after the netlink header) says;
/// `None` for kinds no decision depends on and for what does not decode.
fn change(kind: u16, payload: &[u8]) -> Option<Change> {
    // The interface index of `struct ifinfomsg` (16 bytes) and `struct ifaddrmsg` (8).
    let index = |header_len: usize| {
        let header = payload.get(..header_len)?;
        Some(u32::from_ne_bytes(header.get(4..8)?.try_into().ok()?))
    };
    match kind {
        wire::RTM_NEWROUTE | wire::RTM_DELROUTE => {
            route_change(payload, kind == wire::RTM_NEWROUTE)
        }
        wire::RTM_NEWLINK => index(16).map(Change::Link),
        RTM_DELLINK => index(16).map(Change::LinkGone),
        wire::RTM_NEWADDR => index(8).map(|index| Change::Address {
            index,
            addr: wire::address_of(payload).map(|a| a.addr),
        }),
        RTM_DELADDR => index(8).map(|index| Change::AddressGone {
            index,
            addr: wire::address_of(payload).map(|a| a.addr),
        }),
        wire_rules::RTM_NEWRULE => wire_rules::rule_from(payload).map(Change::RuleAdded),
        wire_rules::RTM_DELRULE => wire_rules::rule_from(payload).map(Change::RuleRemoved),
        _ => None,
    }
}

/// The change a route notification's payload (`struct rtmsg` and its attributes) says.
fn route_change(payload: &[u8], added: bool) -> Option<Change> {
    let flags = u32::from_ne_bytes(payload.get(8..12)?.try_into().ok()?);
    // Route cache exceptions (PMTU, redirects) are no part of any table.
    if flags & RTM_F_CLONED != 0 {
        return None;
    }
    Some(Change::Route {
        route: wire::route_from(payload)?,
        added,
    })
}

/// Netlink message type whose echo is dropped in the kernel.
const RTM_NEWROUTE: u32 = 24;
/// Offsets in a notification: the low byte of `nlmsg_type` and `rtm_protocol`.
const TYPE_LOW_BYTE: u32 = if cfg!(target_endian = "little") { 4 } else { 5 };
const RTM_PROTOCOL: u32 = 16 + 5;

/// Offset of `nlmsg_pid`, the port of the socket whose request caused a notification.
const NLMSG_PID: u32 = 12;

/// A classic BPF program that drops `RTM_NEWROUTE` notifications tagged with our
/// protocol: those are the echoes of our own writes, and a 10 000-route mirror would
/// otherwise queue 10 000 of them. Deletions of our routes still arrive (self-heal). With
/// `writer`, only the echoes of that socket are dropped.
fn echo_filter(protocol: u8, writer: Option<u32>) -> Vec<libc::sock_filter> {
    let stmt = |code: u32, k: u32| libc::sock_filter {
        code: code as u16,
        jt: 0,
        jf: 0,
        k,
    };
    let jump = |code: u32, k: u32, jt: u8, jf: u8| libc::sock_filter {
        code: code as u16,
        jt,
        jf,
        k,
    };
    let ld_byte = libc::BPF_LD | libc::BPF_B | libc::BPF_ABS;
    let jeq = libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K;
    let ret = libc::BPF_RET | libc::BPF_K;
    match writer {
        None => vec![
            stmt(ld_byte, TYPE_LOW_BYTE),
            jump(jeq, RTM_NEWROUTE, 0, 2),
            stmt(ld_byte, RTM_PROTOCOL),
            jump(jeq, u32::from(protocol), 1, 0),
            stmt(ret, u32::MAX),
            stmt(ret, 0),
        ],
        Some(port) => vec![
            stmt(ld_byte, TYPE_LOW_BYTE),
            jump(jeq, RTM_NEWROUTE, 0, 4),
            stmt(ld_byte, RTM_PROTOCOL),
            jump(jeq, u32::from(protocol), 0, 2),
            stmt(libc::BPF_LD | libc::BPF_W | libc::BPF_ABS, NLMSG_PID),
            // Word loads read network byte order; the header is in host order.
            jump(jeq, u32::from_be_bytes(port.to_ne_bytes()), 1, 0),
            stmt(ret, u32::MAX),
            stmt(ret, 0),
        ],
    }
}

fn attach_echo_filter(
    socket: &Socket<Rtnetlink>,
    protocol: u8,
    writer: Option<u32>,
) -> io::Result<()> {
    socket.attach_filter(&mut echo_filter(protocol, writer))
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::NLM_F_REPLACE;
    use netlink_packet_route::link::LinkMessage;
    use netlink_packet_route::route::RouteMessage;

    use crate::fixtures;
    use crate::kernel::convert;
    use crate::model::MAIN_TABLE;
    use netlink_packet_route::route::RouteFlags;

    #[test]
    fn datagram_with_several_messages_yields_each_with_its_flags() {
        let route = fixtures::route(MAIN_TABLE, "192.0.2.0", 24, None, 3, 2);
        let message = convert::route_message(&route);
        let mut bytes = convert::encoded(RouteNetlinkMessage::NewRoute(message.clone()), 0);
        bytes.extend(convert::encoded(
            RouteNetlinkMessage::DelRoute(message),
            NLM_F_REPLACE,
        ));
        let mut seen = Vec::new();
        parse_datagram(&bytes, &mut |r| seen.push(r));
        assert_eq!(seen.len(), 2);
        assert!(matches!(
            &seen[1],
            Received::Message { flags, message: Change::Route { route: r, added: false }, .. }
                if *flags == NLM_F_REPLACE && *r == route
        ));
    }

    #[test]
    fn what_no_decision_needs_is_not_decoded() {
        let mut cached =
            convert::route_message(&fixtures::route(MAIN_TABLE, "192.0.2.9", 32, None, 3, 2));
        cached.header.flags |= RouteFlags::Cloned;
        // A datagram's route notifications are read from their bytes: the same verdict.
        let mut bytes = convert::encoded(RouteNetlinkMessage::NewRoute(cached.clone()), 0);
        bytes.extend(convert::encoded(
            RouteNetlinkMessage::DelRoute(RouteMessage::default()),
            0,
        ));
        let mut seen = Vec::new();
        parse_datagram(&bytes, &mut |r| seen.push(r));
        assert!(seen.is_empty());
        assert_eq!(decode(&RouteNetlinkMessage::NewRoute(cached)), None);
        assert_eq!(
            decode(&RouteNetlinkMessage::DelRoute(RouteMessage::default())),
            None
        );
        let mut link = LinkMessage::default();
        link.header.index = 7;
        assert_eq!(
            decode(&RouteNetlinkMessage::DelLink(link)),
            Some(Change::LinkGone(7))
        );
    }

    #[test]
    fn garbage_datagrams_are_skipped() {
        let mut seen = Vec::new();
        parse_datagram(&[1, 2, 3], &mut |r| seen.push(r));
        parse_datagram(&[0xff; 40], &mut |r| seen.push(r));
        parse_datagram(&[], &mut |r| seen.push(r));
        assert!(seen.is_empty());
    }

    #[test]
    fn echo_filter_reads_type_then_protocol() {
        let program = echo_filter(83, None);
        assert_eq!(program[0].k, TYPE_LOW_BYTE);
        assert_eq!(program[1].k, RTM_NEWROUTE);
        assert_eq!(program[3].k, 83);
        // Protocol match jumps to "drop", everything else reaches "accept".
        assert_eq!((program[3].jt, program[3].jf), (1, 0));
        assert_eq!(program[4].k, u32::MAX);
        assert_eq!(program[5].k, 0);
        // With a writer: our protocol and that socket's port drop; another port is accepted.
        let program = echo_filter(83, Some(0x0102_0304));
        assert_eq!(program.len(), 8);
        let to = |i: usize, jump: u8| i + 1 + usize::from(jump);
        assert_eq!(to(1, program[1].jf), 6);
        assert_eq!(to(3, program[3].jf), 6);
        assert_eq!(program[4].k, NLMSG_PID);
        assert_eq!(
            program[5].k,
            u32::from_be_bytes(0x0102_0304u32.to_ne_bytes())
        );
        assert_eq!((to(5, program[5].jt), to(5, program[5].jf)), (7, 6));
        assert_eq!((program[6].k, program[7].k), (u32::MAX, 0));
    }
}
