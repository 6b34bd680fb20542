//! The one netlink socket of symroute, over the protocol family it speaks ([`Route`]:
//! rtnetlink requests, batched writes and multicast; [`Netfilter`]: nfnetlink requests).
//! Opening, binding, socket options and receiving live here once; requests and their answers
//! (dumps, gets, batched writes) are in [`super::rtnl`], on the same type.
//!
//! Only the kernel is believed. Any local process, unprivileged included, can send a
//! datagram to another netlink socket's port id. Only the kernel's own messages (sender port
//! id 0) describe the kernel's state or answer our requests: everything else is dropped
//! where it is received, so a forged "route deleted" or "write failed" never reaches a
//! decision.

use std::io;
use std::marker::PhantomData;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use crate::model::errno_text;

/// A failure of one netlink request, with the kernel's errno when it gave one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetlinkError {
    #[error("{}", errno_text(*.0))]
    Errno(i32),
    #[error("netlink connection closed")]
    Closed,
    #[error("dump kept being interrupted by concurrent changes")]
    Interrupted,
    #[error("cannot open netlink socket: {0}")]
    Socket(String),
    #[error("no answer from the kernel in time")]
    TimedOut,
}

impl NetlinkError {
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetlinkError::Errno(e) => Some(*e),
            _ => None,
        }
    }
}

/// A netlink protocol family, and how a socket of it that sends requests is set up.
pub trait Protocol: Sized {
    /// The `protocol` argument of `socket(AF_NETLINK, SOCK_RAW, protocol)`.
    const PROTOCOL: libc::c_int;

    /// Prepares a freshly created socket for requests and their answers.
    fn configure(socket: &mut Socket<Self>) -> Result<(), NetlinkError>;
}

/// rtnetlink: links, addresses, routes, rules.
#[derive(Debug)]
pub enum Route {}

/// nfnetlink: `table inet symroute`.
#[derive(Debug)]
pub enum Netfilter {}

const NETLINK_CAP_ACK: libc::c_int = 10;
const NETLINK_GET_STRICT_CHK: libc::c_int = 12;
/// Send buffer asked for so that one batch of writes fits in one datagram.
const SEND_BUFFER: libc::c_int = 1 << 20;
/// Receive buffer asked for with `SO_RCVBUFFORCE` (root) or `SO_RCVBUF` (capped by rmem_max).
const RECEIVE_BUFFER: usize = 8 << 20;
/// Bytes of writes sent per `sendmsg` at most (a datagram larger than the send buffer fails
/// with EMSGSIZE).
pub(super) const WRITE_BATCH_BYTES: usize = 240 << 10;
/// Larger than any datagram the kernel sends (dump parts are at most 32 KiB).
const RECV_BUFFER_LEN: usize = 64 << 10;
/// How long an nfnetlink request waits for its answer.
const NETFILTER_TIMEOUT: libc::time_t = 2;

impl Protocol for Route {
    const PROTOCOL: libc::c_int = libc::NETLINK_ROUTE;

    /// Strict checks (so the kernel filters dumps), small ACKs, and buffers large enough for
    /// a batch of writes and its errors.
    fn configure(socket: &mut Socket<Route>) -> Result<(), NetlinkError> {
        if !socket.set_int(libc::SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1) {
            return Err(NetlinkError::Socket(io::Error::last_os_error().to_string()));
        }
        // Small ACKs: the kernel would otherwise echo every request back in its ACK.
        socket.set_int(libc::SOL_NETLINK, NETLINK_CAP_ACK, 1);
        socket.set_receive_buffer(RECEIVE_BUFFER);
        if !socket.set_int(libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, SEND_BUFFER) {
            socket.set_int(libc::SOL_SOCKET, libc::SO_SNDBUF, SEND_BUFFER);
        }
        // The kernel reports twice the size it accounts; keep each datagram well inside.
        let send_buffer = socket
            .get_int(libc::SOL_SOCKET, libc::SO_SNDBUF)
            .unwrap_or(0);
        socket.batch_bytes =
            (usize::try_from(send_buffer).unwrap_or(0) / 4).clamp(16 << 10, WRITE_BATCH_BYTES);
        Ok(())
    }
}

impl Protocol for Netfilter {
    const PROTOCOL: libc::c_int = libc::NETLINK_NETFILTER;

    /// A receive timeout: an answer that never comes is a failed read, not a hang.
    fn configure(socket: &mut Socket<Netfilter>) -> Result<(), NetlinkError> {
        let timeout = libc::timeval {
            tv_sec: NETFILTER_TIMEOUT,
            tv_usec: 0,
        };
        // SAFETY: setsockopt reads `timeout` (a live local of the size given) and nothing else.
        let set = unsafe {
            libc::setsockopt(
                socket.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                std::ptr::addr_of!(timeout).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if set != 0 {
            return Err(NetlinkError::Socket(io::Error::last_os_error().to_string()));
        }
        Ok(())
    }
}

/// A netlink socket of protocol family `P`, with what its requests need: the sequence
/// number of the last one, and a receive and a send buffer reused across them.
pub struct Socket<P> {
    fd: OwnedFd,
    pub(super) seq: u32,
    /// Bytes of writes per datagram ([`Protocol::configure`] sizes it to the send buffer).
    pub(super) batch_bytes: usize,
    pub(super) recv: Vec<u8>,
    pub(super) send: Vec<u8>,
    protocol: PhantomData<P>,
}

impl<P> AsRawFd for Socket<P> {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl<P> AsFd for Socket<P> {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

fn last_error() -> NetlinkError {
    match io::Error::last_os_error().raw_os_error() {
        Some(errno) => NetlinkError::Errno(errno),
        None => NetlinkError::Closed,
    }
}

impl<P: Protocol> Socket<P> {
    /// A socket for requests and their answers, set up as its family needs
    /// ([`Protocol::configure`]). The kernel binds it on its first request.
    pub fn open() -> Result<Socket<P>, NetlinkError> {
        let mut socket =
            Socket::<P>::unconfigured().map_err(|e| NetlinkError::Socket(e.to_string()))?;
        P::configure(&mut socket)?;
        Ok(socket)
    }

    /// A socket for multicast: bound (so that it has a port before joining groups), with a
    /// receive buffer of `receive_buffer` bytes, non-blocking. Returns whether the buffer
    /// was forced past `net.core.rmem_max` ([`Socket::set_receive_buffer`]).
    pub fn listener(receive_buffer: usize) -> io::Result<(Socket<P>, bool)> {
        let socket = Socket::<P>::unconfigured()?;
        socket.bind()?;
        let forced = socket.set_receive_buffer(receive_buffer);
        socket.set_non_blocking()?;
        Ok((socket, forced))
    }

    fn unconfigured() -> io::Result<Socket<P>> {
        // SAFETY: plain socket(2); the result is checked before use.
        let fd = unsafe {
            libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC,
                P::PROTOCOL,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Socket {
            // SAFETY: fd was just returned by socket(2) and is owned by nobody else.
            fd: unsafe { OwnedFd::from_raw_fd(fd) },
            seq: 0,
            batch_bytes: WRITE_BATCH_BYTES,
            recv: Vec::with_capacity(RECV_BUFFER_LEN),
            send: Vec::new(),
            protocol: PhantomData,
        })
    }
}

impl<P> Socket<P> {
    /// Binds to a port the kernel picks.
    fn bind(&self) -> io::Result<()> {
        // SAFETY: sockaddr_nl is plain data; zeroed with its family set means "any port, no
        // groups".
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        // SAFETY: bind reads a live sockaddr_nl of the size given.
        let rc = unsafe {
            libc::bind(
                self.fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_nl).cast(),
                std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    fn set_non_blocking(&self) -> io::Result<()> {
        let fd = self.fd.as_raw_fd();
        // SAFETY: fcntl on a descriptor we own; F_GETFL/F_SETFL take and return plain ints.
        let rc = unsafe {
            let flags = libc::fcntl(fd, libc::F_GETFL);
            if flags < 0 {
                flags
            } else {
                libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK)
            }
        };
        if rc < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(())
        }
    }

    /// Joins multicast group `group` (an `RTNLGRP_*` number).
    pub fn join(&self, group: libc::c_uint) -> io::Result<()> {
        if self.set_int(
            libc::SOL_NETLINK,
            libc::NETLINK_ADD_MEMBERSHIP,
            group as libc::c_int,
        ) {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    /// Installs (or replaces) a classic BPF program that filters what the socket receives.
    pub fn attach_filter(&self, program: &mut [libc::sock_filter]) -> io::Result<()> {
        let fprog = libc::sock_fprog {
            len: program.len() as u16,
            filter: program.as_mut_ptr(),
        };
        // SAFETY: the kernel copies the program during the call; both live until it returns.
        let rc = unsafe {
            libc::setsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_ATTACH_FILTER,
                (&fprog as *const libc::sock_fprog).cast(),
                std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            Ok(())
        } else {
            Err(io::Error::last_os_error())
        }
    }

    pub(super) fn set_int(
        &self,
        level: libc::c_int,
        name: libc::c_int,
        value: libc::c_int,
    ) -> bool {
        let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        let ptr = (&value as *const libc::c_int).cast::<libc::c_void>();
        // SAFETY: setsockopt reads `len` bytes from a live c_int; the fd is ours.
        unsafe { libc::setsockopt(self.fd.as_raw_fd(), level, name, ptr, len) == 0 }
    }

    fn get_int(&self, level: libc::c_int, name: libc::c_int) -> Option<libc::c_int> {
        let mut value: libc::c_int = 0;
        let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        let ptr = (&mut value as *mut libc::c_int).cast::<libc::c_void>();
        // SAFETY: getsockopt writes at most `len` bytes into a live c_int.
        (unsafe { libc::getsockopt(self.fd.as_raw_fd(), level, name, ptr, &mut len) } == 0)
            .then_some(value)
    }

    /// Asks for a receive buffer of `size` bytes: `SO_RCVBUFFORCE` (needs CAP_NET_ADMIN),
    /// else `SO_RCVBUF`, which `net.core.rmem_max` caps. Returns whether the forced size was
    /// granted.
    pub fn set_receive_buffer(&self, size: usize) -> bool {
        let size = libc::c_int::try_from(size).unwrap_or(libc::c_int::MAX);
        let forced = self.set_int(libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, size);
        if !forced {
            self.set_int(libc::SOL_SOCKET, libc::SO_RCVBUF, size);
        }
        forced
    }

    /// The port id the kernel gave this socket (0 if it cannot say): notifications caused by
    /// its writes carry it.
    pub fn port(&self) -> u32 {
        // SAFETY: sockaddr_nl is plain data, valid when zeroed.
        let mut addr: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
        // SAFETY: getsockname writes at most `len` bytes into a live sockaddr_nl.
        let rc = unsafe {
            libc::getsockname(
                self.fd.as_raw_fd(),
                (&mut addr as *mut libc::sockaddr_nl).cast(),
                &mut len,
            )
        };
        if rc == 0 {
            addr.nl_pid
        } else {
            0
        }
    }

    /// Sends `buf` (whole messages) to the kernel.
    pub(super) fn send_to_kernel(&self, buf: &[u8]) -> Result<(), NetlinkError> {
        // SAFETY: sockaddr_nl is plain data; zeroed means "the kernel".
        let mut kernel: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        kernel.nl_family = libc::AF_NETLINK as libc::sa_family_t;
        loop {
            // SAFETY: buf and kernel are live for the call; lengths match them.
            let sent = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    buf.as_ptr().cast(),
                    buf.len(),
                    0,
                    (&kernel as *const libc::sockaddr_nl).cast(),
                    std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t,
                )
            };
            if sent >= 0 {
                return Ok(());
            }
            let e = last_error();
            if e != NetlinkError::Errno(libc::EINTR) {
                return Err(e);
            }
        }
    }

    /// One `recvfrom` of a datagram the kernel sent into `room` bytes at `at`, with `flags`;
    /// datagrams from processes are dropped and the next one is read. Returns what recvfrom
    /// returned (with `MSG_TRUNC`, the datagram's real size).
    ///
    /// # Safety
    /// `at` must be valid for writes of `room` bytes.
    unsafe fn receive_raw(
        &self,
        at: *mut u8,
        room: usize,
        flags: libc::c_int,
    ) -> io::Result<usize> {
        loop {
            // SAFETY: sockaddr_nl is plain data, valid when zeroed.
            let mut sender: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
            let mut sender_len = std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
            // SAFETY: the kernel writes at most `room` bytes at `at` (the caller's promise)
            // and at most `sender_len` bytes into `sender`.
            let got = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    at.cast(),
                    room,
                    flags,
                    (&mut sender as *mut libc::sockaddr_nl).cast(),
                    &mut sender_len,
                )
            };
            if got < 0 {
                return Err(io::Error::last_os_error());
            }
            if sender.nl_pid != 0 {
                log::debug!(
                    "dropped a netlink datagram from process port {}: only the kernel is believed",
                    sender.nl_pid
                );
                continue;
            }
            return Ok(got as usize);
        }
    }

    /// Receives one datagram the kernel sent into the socket's receive buffer, waiting for
    /// it; returns its length.
    pub(super) fn receive(&mut self) -> Result<usize, NetlinkError> {
        // Received into spare capacity: zeroing 64 KiB first would cost more than a small
        // dump.
        self.recv.clear();
        let room = self.recv.capacity();
        loop {
            let at = self.recv.as_mut_ptr();
            // SAFETY: the buffer's allocation holds `room` bytes.
            match unsafe { self.receive_raw(at, room, 0) } {
                Ok(0) => return Err(NetlinkError::Closed),
                Ok(got) => {
                    let got = got.min(room);
                    // SAFETY: recvfrom initialized the first `got` bytes, within the
                    // capacity.
                    unsafe { self.recv.set_len(got) };
                    return Ok(got);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // Only a socket with a receive timeout (nfnetlink's) gets here.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    return Err(NetlinkError::TimedOut)
                }
                Err(e) => {
                    return Err(e
                        .raw_os_error()
                        .map_or(NetlinkError::Closed, NetlinkError::Errno))
                }
            }
        }
    }

    /// One receive of a datagram the kernel sent into `buffer`, without waiting: `Ok(None)`
    /// when nothing (more) is pending. The returned length is the datagram's real size
    /// (`MSG_TRUNC`), which may exceed `buffer`.
    pub fn receive_now(&self, buffer: &mut [u8]) -> io::Result<Option<usize>> {
        // SAFETY: `buffer` is live and exclusively borrowed for its whole length.
        let got = unsafe {
            self.receive_raw(
                buffer.as_mut_ptr(),
                buffer.len(),
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
            )
        };
        match got {
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_sys::protocols::NETLINK_ROUTE;
    use netlink_sys::SocketAddr;

    /// `NLMSG_NOOP` asking for an ACK: the kernel answers it without looking at anything.
    fn noop(seq: u32) -> Vec<u8> {
        let mut msg = Vec::new();
        msg.extend_from_slice(&16u32.to_ne_bytes());
        msg.extend_from_slice(&1u16.to_ne_bytes()); // NLMSG_NOOP
        msg.extend_from_slice(&((libc::NLM_F_REQUEST | libc::NLM_F_ACK) as u16).to_ne_bytes());
        msg.extend_from_slice(&seq.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg
    }

    fn sequence_of(datagram: &[u8]) -> u32 {
        u32::from_ne_bytes(datagram[8..12].try_into().unwrap())
    }

    /// A real kernel, no privileges, nothing changed: a process's datagram sent straight to
    /// our port is dropped, the kernel's answer after it is received.
    #[test]
    fn only_the_kernels_datagrams_are_received() {
        let (ours, _) = Socket::<Route>::listener(1 << 16).unwrap();
        let mut forger = netlink_sys::Socket::new(NETLINK_ROUTE).unwrap();
        forger.bind_auto().unwrap();
        forger
            .send_to(&noop(1), &SocketAddr::new(ours.port(), 0), 0)
            .unwrap();
        ours.send_to_kernel(&noop(2)).unwrap();

        let mut buffer = vec![0; 4096];
        let mut received = Vec::new();
        // Both datagrams are queued before recvfrom runs: the forged one first.
        while let Some(len) = ours.receive_now(&mut buffer).unwrap() {
            received.push(sequence_of(&buffer[..len]));
        }
        assert_eq!(received, [2]);
    }

    /// A request socket keeps each batch of writes inside what its send buffer takes.
    #[test]
    fn a_route_socket_sizes_its_batches_to_its_send_buffer() {
        let route = Socket::<Route>::open().unwrap();
        assert!((16 << 10..=WRITE_BATCH_BYTES).contains(&route.batch_bytes));
    }
}
