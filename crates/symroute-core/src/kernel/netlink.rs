//! The one place that talks rtnetlink: dumps and batched writes on a strict-check socket.

use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};

use futures::channel::mpsc::UnboundedReceiver;
use futures::StreamExt;
use netlink_packet_core::{
    NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_proto::sys::{protocols::NETLINK_ROUTE, SocketAddr};
use netlink_proto::{ConnectionHandle, ReplyExpectation};
use netlink_sys::AsyncSocket;

use super::socket;
use crate::error::errno_text;

/// Writes sent per `sendmsg`, bounded in count and bytes (a datagram larger than the send
/// buffer fails with EMSGSIZE). Only the last write of a batch asks for an ACK; the kernel
/// answers every failed write anyway, so successes cost no answer at all.
const WRITE_BATCH: usize = 1024;
const WRITE_BATCH_BYTES: usize = 96 << 10;
/// Receive buffer asked for with `SO_RCVBUFFORCE` (root) or `SO_RCVBUF` (capped by rmem_max).
const RECEIVE_BUFFER: usize = 8 << 20;
/// A dump that the kernel flags as interrupted by a concurrent change is read again.
const DUMP_ATTEMPTS: usize = 5;

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
}

impl NetlinkError {
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetlinkError::Errno(e) => Some(*e),
            _ => None,
        }
    }
}

type Unsolicited = UnboundedReceiver<(NetlinkMessage<RouteNetlinkMessage>, SocketAddr)>;

/// A connection to the kernel's routing netlink, running on the current tokio runtime.
#[derive(Clone)]
pub struct Netlink {
    handle: ConnectionHandle<RouteNetlinkMessage>,
    /// Where the kernel's answers to writes that asked for none arrive: their errors.
    unsolicited: Arc<Mutex<Unsolicited>>,
}

impl Netlink {
    /// Opens a strict-check socket (so the kernel filters dumps) and spawns its driver on
    /// the current tokio runtime.
    pub fn connect() -> Result<Netlink, NetlinkError> {
        let (mut connection, handle, unsolicited) =
            netlink_proto::new_connection::<RouteNetlinkMessage>(NETLINK_ROUTE)
                .map_err(|e| NetlinkError::Socket(e.to_string()))?;
        let socket = connection.socket_mut().socket_mut();
        socket
            .set_netlink_get_strict_chk(true)
            .map_err(|e| NetlinkError::Socket(e.to_string()))?;
        // Small ACKs: the kernel would otherwise echo every request back in its ACK.
        let _ = socket.set_cap_ack(true);
        socket::set_receive_buffer(socket.as_raw_fd(), RECEIVE_BUFFER);
        // One answer per write, success included, is how results are matched to writes.
        connection.set_forward_ack(true);
        tokio::spawn(connection);
        Ok(Netlink {
            handle,
            unsolicited: Arc::new(Mutex::new(unsolicited)),
        })
    }

    /// Runs one dump request and returns every inner message of the answer.
    pub async fn dump(
        &self,
        request: RouteNetlinkMessage,
    ) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        for _ in 0..DUMP_ATTEMPTS {
            let mut message = NetlinkMessage::from(request.clone());
            message.header.flags = NLM_F_REQUEST | NLM_F_DUMP;
            let mut answers = self
                .handle
                .request(message, kernel())
                .map_err(|_| NetlinkError::Closed)?;
            let mut out = Vec::new();
            let mut interrupted = false;
            while let Some(answer) = answers.next().await {
                interrupted |= answer.header.flags & NLM_F_DUMP_INTR != 0;
                match answer.payload {
                    NetlinkPayload::InnerMessage(inner) => out.push(inner),
                    NetlinkPayload::Error(e) if e.code.is_some() => {
                        return Err(NetlinkError::Errno(-e.raw_code()));
                    }
                    _ => {}
                }
            }
            if !interrupted {
                return Ok(out);
            }
        }
        Err(NetlinkError::Interrupted)
    }

    /// Sends one request that is answered by one message (`RTM_GETROUTE` for a destination,
    /// `RTM_GETLINK` by name) and returns that answer.
    pub async fn get(
        &self,
        request: RouteNetlinkMessage,
    ) -> Result<RouteNetlinkMessage, NetlinkError> {
        let mut message = NetlinkMessage::from(request);
        message.header.flags = NLM_F_REQUEST;
        let mut answers = self
            .handle
            .request(message, kernel())
            .map_err(|_| NetlinkError::Closed)?;
        while let Some(answer) = answers.next().await {
            match answer.payload {
                NetlinkPayload::InnerMessage(inner) => return Ok(inner),
                NetlinkPayload::Error(e) if e.code.is_some() => {
                    return Err(NetlinkError::Errno(-e.raw_code()));
                }
                _ => {}
            }
        }
        Err(NetlinkError::Closed)
    }

    /// Sends the writes in order, batched, and returns one result per write, in order.
    ///
    /// The kernel handles the messages of one socket in the order they were sent, so a route
    /// whose gateway depends on an earlier route can follow it in the same call.
    ///
    /// Messages are taken from `writes` one batch at a time, so a 100 000-route phase never
    /// holds more than one batch of encoded requests.
    pub async fn write_all(
        &self,
        writes: impl IntoIterator<Item = (RouteNetlinkMessage, u16)>,
    ) -> Vec<Result<(), NetlinkError>> {
        let mut writes = writes.into_iter().peekable();
        let mut results = Vec::with_capacity(writes.size_hint().0);
        while writes.peek().is_some() {
            let mut batch = Vec::new();
            let mut bytes = 0;
            while let Some((payload, flags)) =
                writes.next_if(|_| batch.len() < WRITE_BATCH && bytes < WRITE_BATCH_BYTES)
            {
                let mut message = NetlinkMessage::from(payload);
                message.header.flags = NLM_F_REQUEST | flags;
                message.finalize();
                bytes += message.buffer_len();
                batch.push(message);
            }
            results.extend(self.write_batch(batch).await);
        }
        results
    }

    async fn write_batch(
        &self,
        mut batch: Vec<NetlinkMessage<RouteNetlinkMessage>>,
    ) -> Vec<Result<(), NetlinkError>> {
        let count = batch.len();
        let mut results: Vec<Result<(), NetlinkError>> = vec![Ok(()); count];
        if let Some(last) = batch.last_mut() {
            last.header.flags |= NLM_F_ACK;
        }
        let expectations = batch.into_iter().enumerate().map(|(i, m)| {
            let expect = if i + 1 == count {
                ReplyExpectation::Expected
            } else {
                ReplyExpectation::NotExpected
            };
            (m, expect)
        });
        let mut answers = match self
            .handle
            .request_batch_with_expectation(expectations, kernel())
        {
            Ok(answers) => answers,
            Err(_) => return vec![Err(NetlinkError::Closed); count],
        };
        let mut last_seq = None;
        let mut acked = false;
        while let Some(answer) = answers.next().await {
            if let NetlinkPayload::Error(e) = answer.payload {
                last_seq = Some(answer.header.sequence_number);
                acked = true;
                if e.code.is_some() {
                    results[count - 1] = Err(NetlinkError::Errno(-e.raw_code()));
                }
            }
        }
        let Some(last_seq) = last_seq.filter(|_| acked) else {
            return vec![Err(NetlinkError::Closed); count];
        };
        // Errors of earlier writes came before the last one's ACK (the kernel answers in
        // order), so they are all waiting already. Sequence numbers within a batch are
        // consecutive, which maps each error back to its write.
        if let Ok(mut unsolicited) = self.unsolicited.lock() {
            while let Ok((answer, sender)) = unsolicited.try_recv() {
                // A process can send to our port too: only the kernel's errors count.
                if !socket::from_kernel(&sender) {
                    continue;
                }
                if let NetlinkPayload::Error(e) = answer.payload {
                    let behind = last_seq.wrapping_sub(answer.header.sequence_number) as usize;
                    if e.code.is_some() && behind < count {
                        results[count - 1 - behind] = Err(NetlinkError::Errno(-e.raw_code()));
                    }
                }
            }
        }
        results
    }
}

fn kernel() -> SocketAddr {
    SocketAddr::new(0, 0)
}
