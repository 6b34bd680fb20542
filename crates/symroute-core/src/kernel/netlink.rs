//! Netlink: rtnetlink dumps, gets and batched writes on one strict-check socket
//! ([`super::socket::Socket`] of [`Route`]), shared by clones.

use std::ops::ControlFlow;
use std::sync::{Arc, Mutex, MutexGuard};

use netlink_packet_core::{Emitable, NetlinkMessage};
use netlink_packet_route::RouteNetlinkMessage;

use super::rtnl::{Answer, Socket};
pub use super::socket::NetlinkError;
use super::socket::Route;

/// A connection to the kernel's routing netlink: one socket, shared by clones. Calls are
/// `async` for the callers' sake but never wait on anything but the kernel (see
/// `kernel/rtnl.rs`), so they need no particular runtime.
#[derive(Clone)]
pub struct Netlink {
    socket: Arc<Mutex<Socket<Route>>>,
}

fn encode(message: RouteNetlinkMessage, flags: u16) -> Vec<u8> {
    let mut message = NetlinkMessage::from(message);
    message.header.flags = super::rtnl::NLM_F_REQUEST | flags;
    message.finalize();
    let mut buf = vec![0; message.buffer_len()];
    message.emit(&mut buf);
    buf
}

impl Netlink {
    /// The port id of the socket: the sender of the notifications its writes cause.
    pub fn port(&self) -> u32 {
        self.socket().port()
    }

    /// Opens a strict-check socket (so the kernel filters dumps).
    pub fn connect() -> Result<Netlink, NetlinkError> {
        Ok(Netlink {
            socket: Arc::new(Mutex::new(Socket::open()?)),
        })
    }

    fn socket(&self) -> MutexGuard<'_, Socket<Route>> {
        // A panic while holding the socket leaves it usable: every request starts afresh.
        self.socket.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs a dump request (a whole message, see `kernel/wire.rs`) and parses each answer as
    /// it arrives.
    pub fn dump_with<T>(
        &self,
        request: &mut [u8],
        parse: impl FnMut(&Answer<'_>) -> Option<T>,
    ) -> Result<Vec<T>, NetlinkError> {
        self.socket().dump(request, parse)
    }

    /// [`Netlink::dump_with`] that stops where `parse` breaks ([`Socket::dump_until`]).
    pub fn dump_until<T>(
        &self,
        request: &mut [u8],
        parse: impl FnMut(&Answer<'_>) -> ControlFlow<Option<T>, Option<T>>,
    ) -> Result<Vec<T>, NetlinkError> {
        self.socket().dump_until(request, parse)
    }

    /// A dump handed to `each` as it streams, keeping nothing ([`Socket::walk`]).
    pub fn walk(
        &self,
        request: &mut [u8],
        each: impl FnMut(Option<&Answer<'_>>) -> ControlFlow<()>,
    ) -> Result<(), NetlinkError> {
        self.socket().walk(request, each)
    }

    /// Sends one request (a whole message, see `kernel/wire.rs`) answered by one message and
    /// parses that answer.
    pub fn get_with<T>(
        &self,
        request: &mut [u8],
        parse: impl FnOnce(&Answer<'_>) -> T,
    ) -> Result<T, NetlinkError> {
        self.socket().get(request, parse)
    }

    /// Sends the writes, netlink-packet-route messages (what tests build), in order, batched,
    /// and returns one result per write, in order.
    ///
    /// The kernel handles the messages of one socket in the order they were sent, so a route
    /// whose gateway depends on an earlier route can follow it in the same call.
    pub async fn write_all(
        &self,
        writes: impl IntoIterator<Item = (RouteNetlinkMessage, u16)>,
    ) -> Vec<Result<(), NetlinkError>> {
        let writes: Vec<(RouteNetlinkMessage, u16)> = writes.into_iter().collect();
        self.write_with(writes.len(), |i, buf| {
            let (message, flags) = &writes[i];
            buf.extend_from_slice(&encode(message.clone(), *flags));
        })
    }

    /// Sends `count` writes in order, each appended to the batch by `encode(i, buf)` as a
    /// whole message, and returns one result per write, in order.
    pub fn write_with(
        &self,
        count: usize,
        encode: impl FnMut(usize, &mut Vec<u8>),
    ) -> Vec<Result<(), NetlinkError>> {
        self.socket().write(count, encode)
    }
}
