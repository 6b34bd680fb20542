//! Requests and answers without a framework, on the one netlink socket ([`Socket`], over
//! rtnetlink or nfnetlink): one blocking socket, requests encoded straight into a reused
//! buffer, answers handed to the caller in place as they arrive; dumps, gets and batched
//! writes. Messages and attributes are framed here too ([`begin`], [`attr`], [`attrs`]).
//!
//! The kernel handles a routing request inside `sendmsg` and generates dump parts inside
//! `recvmsg`, so a blocking socket never waits for anything but the kernel's own work; no
//! runtime, task or channel is needed, and a one-shot hook pays for none of them.
//!
//! As on every netlink socket of ours ([`super::socket`]), only the kernel is believed:
//! datagrams from other processes' sockets are dropped where they are received.

use std::ops::ControlFlow;

pub use super::socket::Socket;
use super::socket::{NetlinkError, Protocol};

pub const NLMSG_HDRLEN: usize = 16;
const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_OVERRUN: u16 = 4;
pub const NLM_F_REQUEST: u16 = 0x01;
const NLM_F_ACK: u16 = 0x04;
const NLM_F_DUMP_INTR: u16 = 0x10;
const NLM_F_DUMP: u16 = 0x300;

/// Writes sent per `sendmsg`, bounded in count and bytes (a datagram larger than the send
/// buffer fails with EMSGSIZE). Only the last write of a batch asks for an ACK; the kernel
/// answers every failed write anyway, so successes cost no answer at all.
const WRITE_BATCH: usize = 4096;
/// A dump that the kernel flags as interrupted by a concurrent change is read again.
const DUMP_ATTEMPTS: usize = 5;

/// How an answer to a request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Answered {
    /// A dump the kernel flagged as interrupted by a concurrent change (`NLM_F_DUMP_INTR`):
    /// read again.
    interrupted: bool,
    /// A dump the reader stopped reading before its end: the socket still holds its rest.
    cut: bool,
}

/// One netlink message of an answer: its type, flags and payload (after the header).
pub struct Answer<'a> {
    pub kind: u16,
    pub flags: u16,
    pub seq: u32,
    pub payload: &'a [u8],
    /// The whole message, header included.
    pub message: &'a [u8],
}

fn u16_at(buf: &[u8], at: usize) -> u16 {
    buf.get(at..at + 2)
        .map_or(0, |b| u16::from_ne_bytes([b[0], b[1]]))
}

pub fn u32_at(buf: &[u8], at: usize) -> u32 {
    buf.get(at..at + 4)
        .map_or(0, |b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
}

/// Splits a datagram into its messages; stops at the first malformed length.
pub(crate) fn messages(mut buf: &[u8]) -> impl Iterator<Item = Answer<'_>> {
    std::iter::from_fn(move || {
        let len = u32_at(buf, 0) as usize;
        if len < NLMSG_HDRLEN || len > buf.len() {
            return None;
        }
        let message = &buf[..len];
        let answer = Answer {
            kind: u16_at(message, 4),
            flags: u16_at(message, 6),
            seq: u32_at(message, 8),
            payload: &message[NLMSG_HDRLEN..],
            message,
        };
        buf = buf.get((len + 3) & !3..).unwrap_or(&[]);
        Some(answer)
    })
}

/// The errno of an `NLMSG_ERROR` payload (0 for an ACK).
fn error_code(payload: &[u8]) -> i32 {
    -(u32_at(payload, 0) as i32)
}

impl<P: Protocol> Socket<P> {
    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    /// Sends one request (a whole message whose header's length and type are set; sequence
    /// number and flags are filled in here) and hands every answer message to `each` until
    /// the kernel ends the answer or `each` returns false. Returns whether the answer is
    /// whole and not interrupted: a dump the kernel flagged as interrupted by a concurrent
    /// change is read again by the caller.
    fn request(
        &mut self,
        request: &mut [u8],
        flags: u16,
        mut each: impl FnMut(&Answer<'_>) -> bool,
    ) -> Result<Answered, NetlinkError> {
        let seq = self.next_seq();
        request[6..8].copy_from_slice(&flags.to_ne_bytes());
        request[8..12].copy_from_slice(&seq.to_ne_bytes());
        request[12..16].copy_from_slice(&0u32.to_ne_bytes());
        self.send_to_kernel(request)?;
        let dump = flags & NLM_F_DUMP != 0;
        let mut interrupted = false;
        loop {
            let len = self.receive()?;
            for answer in messages(&self.recv[..len]) {
                if answer.seq != seq {
                    continue;
                }
                interrupted |= answer.flags & NLM_F_DUMP_INTR != 0;
                let ended = |cut| Answered { interrupted, cut };
                match answer.kind {
                    NLMSG_NOOP | NLMSG_OVERRUN => {}
                    NLMSG_DONE => return Ok(ended(false)),
                    NLMSG_ERROR => {
                        return match error_code(answer.payload) {
                            0 => Ok(ended(false)),
                            errno => Err(NetlinkError::Errno(errno)),
                        };
                    }
                    _ => {
                        let more = each(&answer);
                        if !dump {
                            return Ok(ended(false));
                        }
                        if !more {
                            return Ok(ended(true));
                        }
                    }
                }
            }
        }
    }

    /// Runs a dump request and parses every answer with `parse`, streaming: no answer is held
    /// beyond its datagram. An interrupted dump is read again from the start, and only what
    /// `parse` returned is forgotten: a reader that keeps state of its own walks instead
    /// ([`Socket::walk`]), which tells it when the dump starts again.
    pub fn dump<T>(
        &mut self,
        request: &mut [u8],
        mut parse: impl FnMut(&Answer<'_>) -> Option<T>,
    ) -> Result<Vec<T>, NetlinkError> {
        self.dump_until(request, |answer| ControlFlow::Continue(parse(answer)))
    }

    /// [`Socket::dump`] that stops reading where `parse` says so (`Break`, keeping what it
    /// returns with it): the rest of the dump is never generated. The kernel walks a table
    /// as its parts are read, so a dump of a 1 000 000-route table filtered by interface
    /// costs the whole walk, and one cut after its first part next to nothing.
    ///
    /// A dump cannot be cancelled on its socket, and the socket takes no other request while
    /// one runs: a cut dump closes the socket (the kernel drops the rest with it) and the
    /// next request goes out on a fresh one.
    pub fn dump_until<T>(
        &mut self,
        request: &mut [u8],
        mut parse: impl FnMut(&Answer<'_>) -> ControlFlow<Option<T>, Option<T>>,
    ) -> Result<Vec<T>, NetlinkError> {
        let mut out = Vec::new();
        self.walk(request, |answer| {
            let Some(answer) = answer else {
                // Started again: what the first try returned is void.
                out.clear();
                return ControlFlow::Continue(());
            };
            match parse(answer) {
                ControlFlow::Continue(item) => {
                    out.extend(item);
                    ControlFlow::Continue(())
                }
                ControlFlow::Break(item) => {
                    out.extend(item);
                    ControlFlow::Break(())
                }
            }
        })?;
        // Grown by doubling while it streamed in; a large table keeps what it needs.
        out.shrink_to_fit();
        Ok(out)
    }

    /// A dump handed to `each` answer by answer, keeping nothing: for a reader that folds a
    /// large table into what it needs as it streams (a run's diff). `each` gets `None` when
    /// the dump starts again after the kernel flagged it interrupted (what it was told so
    /// far is void), and stops the dump by breaking, as [`Socket::dump_until`].
    pub fn walk(
        &mut self,
        request: &mut [u8],
        mut each: impl FnMut(Option<&Answer<'_>>) -> ControlFlow<()>,
    ) -> Result<(), NetlinkError> {
        for attempt in 0..DUMP_ATTEMPTS {
            if attempt > 0 {
                let _ = each(None);
            }
            let answered = self.request(request, NLM_F_REQUEST | NLM_F_DUMP, |answer| {
                each(Some(answer)).is_continue()
            })?;
            if answered.cut {
                *self = Socket::open()?;
            }
            if !answered.interrupted {
                return Ok(());
            }
        }
        Err(NetlinkError::Interrupted)
    }

    /// Sends one request answered by one message and parses it.
    pub fn get<T>(
        &mut self,
        request: &mut [u8],
        parse: impl FnOnce(&Answer<'_>) -> T,
    ) -> Result<T, NetlinkError> {
        let mut parse = Some(parse);
        let mut out = None;
        self.request(request, NLM_F_REQUEST, |answer| {
            if let Some(parse) = parse.take() {
                out = Some(parse(answer));
            }
            true
        })?;
        out.ok_or(NetlinkError::Closed)
    }

    /// Sends `count` writes in order, batched, and returns one result per write, in order.
    /// `encode(i, buf)` appends write `i` as a whole message (length, type and flags set;
    /// sequence number is filled in here).
    ///
    /// Only the last write of a batch asks for an ACK: the kernel answers writes in order and
    /// sends an error for every failed one, so when that ACK arrives every error of the batch
    /// has, and the sequence numbers map each back to its write.
    pub fn write(
        &mut self,
        count: usize,
        mut encode: impl FnMut(usize, &mut Vec<u8>),
    ) -> Vec<Result<(), NetlinkError>> {
        let mut results = Vec::with_capacity(count);
        let mut send = std::mem::take(&mut self.send);
        let mut next = 0;
        while next < count {
            send.clear();
            let first_seq = self.seq.wrapping_add(1);
            let mut last_at = 0;
            let start = next;
            while next < count && next - start < WRITE_BATCH && send.len() < self.batch_bytes {
                last_at = send.len();
                encode(next, &mut send);
                let seq = self.next_seq();
                send[last_at + 8..last_at + 12].copy_from_slice(&seq.to_ne_bytes());
                // Messages are padded to 4 bytes inside a datagram.
                send.resize((send.len() + 3) & !3, 0);
                next += 1;
            }
            let flags = u16_at(&send, last_at + 6) | NLM_F_ACK;
            send[last_at + 6..last_at + 8].copy_from_slice(&flags.to_ne_bytes());
            let n = next - start;
            let batch = self.finish_batch(&send, first_seq, n);
            results.extend(batch);
        }
        self.send = send;
        results
    }

    fn finish_batch(
        &mut self,
        send: &[u8],
        first_seq: u32,
        n: usize,
    ) -> Vec<Result<(), NetlinkError>> {
        if let Err(e) = self.send_to_kernel(send) {
            return vec![Err(e); n];
        }
        let mut results: Vec<Result<(), NetlinkError>> = vec![Ok(()); n];
        let last = n - 1;
        loop {
            let len = match self.receive() {
                Ok(len) => len,
                // Lost answers (a full receive buffer): no write's outcome is known.
                Err(e) => return vec![Err(e); n],
            };
            let mut acked = false;
            for answer in messages(&self.recv[..len]) {
                if answer.kind != NLMSG_ERROR {
                    continue;
                }
                let i = answer.seq.wrapping_sub(first_seq) as usize;
                if i > last {
                    continue;
                }
                let errno = error_code(answer.payload);
                if errno != 0 {
                    results[i] = Err(NetlinkError::Errno(errno));
                }
                acked |= i == last;
            }
            if acked {
                return results;
            }
        }
    }
}

/// Appends a message header (length patched by [`finish`]) for `kind` with `flags`.
pub fn begin(buf: &mut Vec<u8>, kind: u16, flags: u16) -> usize {
    let at = buf.len();
    buf.extend_from_slice(&0u32.to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(&(NLM_F_REQUEST | flags).to_ne_bytes());
    buf.extend_from_slice(&[0; 8]);
    at
}

/// Sets the length of the message begun at `at`.
pub fn finish(buf: &mut [u8], at: usize) {
    let len = (buf.len() - at) as u32;
    buf[at..at + 4].copy_from_slice(&len.to_ne_bytes());
}

/// Appends an attribute; returns where it starts (for nesting with [`end_nested`]).
pub fn attr(buf: &mut Vec<u8>, kind: u16, value: &[u8]) -> usize {
    let at = buf.len();
    let len = 4 + value.len();
    let padded = (len + 3) & !3;
    // One reservation, then plain copies: 100 000 routes have half a million attributes.
    buf.reserve(padded);
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(value);
    buf.extend_from_slice(&[0; 3][..padded - len]);
    at
}

/// Sets the length of the nested attribute begun at `at` to cover everything after it.
pub fn end_nested(buf: &mut [u8], at: usize) {
    let len = (buf.len() - at) as u16;
    buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
}

/// The attributes in `buf`: `(type without flag bits, value)`.
pub fn attrs(mut buf: &[u8]) -> impl Iterator<Item = (u16, &[u8])> {
    std::iter::from_fn(move || {
        let len = usize::from(u16_at(buf, 0));
        if len < 4 || len > buf.len() {
            return None;
        }
        let kind = u16_at(buf, 2) & 0x3fff;
        let value = &buf[4..len];
        buf = buf.get((len + 3) & !3..).unwrap_or(&[]);
        Some((kind, value))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::socket::Route;
    use netlink_sys::protocols::NETLINK_ROUTE;
    use netlink_sys::SocketAddr;

    /// A real kernel, no privileges, nothing changed: a dump cut after its first answer
    /// leaves the socket answering the next request in full (a fresh one: the rest of the
    /// cut dump never reaches it).
    #[test]
    fn a_dump_cut_short_leaves_the_socket_ready_for_the_next_request() {
        let mut socket = Socket::<Route>::open().unwrap();
        let request = || crate::kernel::wire::link_dump_request();
        let all = socket.dump(&mut request(), |_| Some(())).unwrap();
        let first = socket
            .dump_until(&mut request(), |_| ControlFlow::Break(Some(())))
            .unwrap();
        assert_eq!(first.len(), 1);
        let again = socket.dump(&mut request(), |_| Some(())).unwrap();
        assert_eq!(again.len(), all.len());
    }

    /// A real kernel, no privileges, nothing changed: an `NLMSG_ERROR` forged by a process
    /// for our next request, queued before the kernel's answer, is not taken for it.
    #[test]
    fn forged_answers_are_not_believed() {
        let mut ours = Socket::<Route>::open().unwrap();
        let links = ours
            .dump(&mut crate::kernel::wire::link_dump_request(), |_| Some(()))
            .unwrap();
        assert!(!links.is_empty(), "every namespace has lo");
        let port = ours.port();

        let mut forged = Vec::new();
        let at = begin(&mut forged, NLMSG_ERROR, 0);
        forged[at + 8..at + 12].copy_from_slice(&ours.seq.wrapping_add(1).to_ne_bytes());
        forged.extend_from_slice(&(-libc::EPERM).to_ne_bytes());
        forged.extend_from_slice(&[0; NLMSG_HDRLEN]);
        finish(&mut forged, at);
        let mut forger = netlink_sys::Socket::new(NETLINK_ROUTE).unwrap();
        forger.bind_auto().unwrap();
        forger
            .send_to(&forged, &SocketAddr::new(port, 0), 0)
            .unwrap();

        let again = ours
            .dump(&mut crate::kernel::wire::link_dump_request(), |_| Some(()))
            .unwrap();
        assert_eq!(again.len(), links.len());
    }
}
