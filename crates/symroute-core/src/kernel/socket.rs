//! What every netlink socket of symroute shares, whichever family it speaks (rtnetlink
//! requests, rtnetlink multicast, nfnetlink): the receive buffer, and believing only the
//! kernel.
//!
//! Any local process, unprivileged included, can send a datagram to another netlink socket's
//! port id. Only the kernel's own messages (sender port id 0) describe the kernel's state or
//! answer our requests: everything else is dropped where it is received, so a forged "route
//! deleted" or "write failed" never reaches a decision.

use std::io;
use std::os::fd::RawFd;

use netlink_sys::SocketAddr;

/// Whether a datagram came from the kernel (port id 0) rather than from a process.
pub fn from_kernel(sender: &SocketAddr) -> bool {
    sender.port_number() == 0
}

/// Asks for a receive buffer of `size` bytes: `SO_RCVBUFFORCE` (needs CAP_NET_ADMIN), else
/// `SO_RCVBUF`, which `net.core.rmem_max` caps. Returns whether the forced size was granted.
pub fn set_receive_buffer(fd: RawFd, size: usize) -> bool {
    let size = libc::c_int::try_from(size).unwrap_or(libc::c_int::MAX);
    let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    let ptr = (&size as *const libc::c_int).cast::<libc::c_void>();
    // SAFETY: setsockopt reads `len` bytes from a live c_int; fd is owned by the caller.
    let forced = unsafe { libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, ptr, len) };
    if forced != 0 {
        // SAFETY: as above.
        unsafe { libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, ptr, len) };
    }
    forced == 0
}

/// One non-blocking receive of a datagram the kernel sent; datagrams from processes are
/// dropped and the next one is read. `Ok(None)` when nothing (more) is pending. With
/// `MSG_TRUNC` the returned length is the datagram's real size, which may exceed `buffer`.
pub fn receive_from_kernel(fd: RawFd, buffer: &mut [u8]) -> io::Result<Option<usize>> {
    loop {
        // SAFETY: sockaddr_nl is plain data, valid when zeroed.
        let mut sender: libc::sockaddr_nl = unsafe { std::mem::zeroed() };
        let mut sender_len = std::mem::size_of::<libc::sockaddr_nl>() as libc::socklen_t;
        // SAFETY: recvfrom writes at most `buffer.len()` bytes into a live, exclusively
        // borrowed buffer and at most `sender_len` bytes into `sender`; fd is the caller's.
        let n = unsafe {
            libc::recvfrom(
                fd,
                buffer.as_mut_ptr().cast(),
                buffer.len(),
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                (&mut sender as *mut libc::sockaddr_nl).cast(),
                &mut sender_len,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock => Ok(None),
                _ => Err(e),
            };
        }
        if sender.nl_pid != 0 {
            log::debug!(
                "dropped a netlink datagram from process port {}: only the kernel is believed",
                sender.nl_pid
            );
            continue;
        }
        return Ok(Some(n as usize));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_sys::protocols::NETLINK_ROUTE;
    use netlink_sys::Socket;
    use std::os::fd::AsRawFd;

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
        let mut ours = Socket::new(NETLINK_ROUTE).unwrap();
        let our_port = ours.bind_auto().unwrap().port_number();
        let mut forger = Socket::new(NETLINK_ROUTE).unwrap();
        forger.bind_auto().unwrap();
        forger
            .send_to(&noop(1), &SocketAddr::new(our_port, 0), 0)
            .unwrap();
        ours.send_to(&noop(2), &SocketAddr::new(0, 0), 0).unwrap();

        let mut buffer = vec![0; 4096];
        let fd = ours.as_raw_fd();
        let mut received = Vec::new();
        // Both datagrams are queued before recvfrom runs: the forged one first.
        while let Some(len) = receive_from_kernel(fd, &mut buffer).unwrap() {
            received.push(sequence_of(&buffer[..len]));
        }
        assert_eq!(received, [2]);
    }

    #[test]
    fn the_kernel_is_port_zero() {
        assert!(from_kernel(&SocketAddr::new(0, 0)));
        assert!(!from_kernel(&SocketAddr::new(4242, 0)));
    }
}
