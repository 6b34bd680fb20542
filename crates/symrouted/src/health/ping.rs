//! ICMP echo through one uplink: an unprivileged ping socket (`SOCK_DGRAM`, `IPPROTO_ICMP`
//! or `IPPROTO_ICMPV6`) bound to the uplink's address and device.
//!
//! Why this socket: the kernel fills in the identifier and checksum and hands the socket only
//! the answers to its own echoes, so nothing else on the host is read; it needs no
//! capability, only `net.ipv4.ping_group_range` covering the daemon's group (upstream
//! systemd's default `0 2147483647` does; Debian 12 leaves the kernel's `1 0`, no group). A
//! raw socket would need `CAP_NET_RAW` and see every ICMP packet of the host. The bound
//! source address is what makes the probe take the uplink's own table (its `from` rule); the
//! bound device makes sure it can leave through no other interface even when that table
//! lacks a route (the probe fails instead of passing through another uplink).

use std::io;
use std::mem::size_of;
use std::net::{IpAddr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use tokio::io::unix::AsyncFd;

const ECHO_REQUEST_V4: u8 = 8;
const ECHO_REPLY_V4: u8 = 0;
const ECHO_REQUEST_V6: u8 = 128;
const ECHO_REPLY_V6: u8 = 129;

pub struct Pinger {
    fd: AsyncFd<OwnedFd>,
    v6: bool,
}

fn check(rc: libc::c_int) -> io::Result<libc::c_int> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// `sockaddr_in`/`sockaddr_in6` bytes for `addr`.
fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain old data; all zeroes is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in, sin) };
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe { std::ptr::write(&mut storage as *mut _ as *mut libc::sockaddr_in6, sin6) };
            size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

fn address_of(storage: &libc::sockaddr_storage) -> Option<IpAddr> {
    match i32::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the kernel wrote a sockaddr_in for AF_INET.
            let sin = unsafe { &*(storage as *const _ as *const libc::sockaddr_in) };
            Some(IpAddr::from(sin.sin_addr.s_addr.to_ne_bytes()))
        }
        libc::AF_INET6 => {
            // SAFETY: the kernel wrote a sockaddr_in6 for AF_INET6.
            let sin6 = unsafe { &*(storage as *const _ as *const libc::sockaddr_in6) };
            Some(IpAddr::from(sin6.sin6_addr.s6_addr))
        }
        _ => None,
    }
}

impl Pinger {
    /// A ping socket sending from `source` through `device` only.
    pub fn open(source: IpAddr, device: &str) -> io::Result<Pinger> {
        let (domain, protocol) = match source {
            IpAddr::V4(_) => (libc::AF_INET, libc::IPPROTO_ICMP),
            IpAddr::V6(_) => (libc::AF_INET6, libc::IPPROTO_ICMPV6),
        };
        // SAFETY: plain socket(2); the descriptor is owned right away.
        let fd = check(unsafe {
            libc::socket(
                domain,
                libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                protocol,
            )
        })?;
        // SAFETY: fd was just returned by socket(2) and is owned by nobody else.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let name = device.as_bytes();
        // SAFETY: setsockopt reads `name.len()` bytes from a live slice.
        let bound = check(unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_BINDTODEVICE,
                name.as_ptr().cast(),
                name.len() as libc::socklen_t,
            )
        });
        match bound {
            Ok(_) => {}
            // Before Linux 5.7 binding to a device needs CAP_NET_RAW, which the unit does not
            // grant: the bound source address alone still takes the uplink's table.
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                log::debug!(
                    "{device}: SO_BINDTODEVICE refused ({e}); probing by source address only"
                );
            }
            Err(e) => return Err(e),
        }
        let (addr, len) = sockaddr(SocketAddr::new(source, 0));
        // SAFETY: addr is a valid sockaddr of `len` bytes.
        check(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &addr as *const _ as *const libc::sockaddr,
                len,
            )
        })?;
        // SAFETY: the descriptor is owned by the AsyncFd and closed only when it is dropped.
        let fd = unsafe { AsyncFd::register(fd)? };
        Ok(Pinger {
            fd,
            v6: source.is_ipv6(),
        })
    }

    /// Sends one echo request with `seq` to `target`.
    pub fn send(&self, target: IpAddr, seq: u16) -> io::Result<()> {
        let kind = if self.v6 {
            ECHO_REQUEST_V6
        } else {
            ECHO_REQUEST_V4
        };
        // type, code, checksum (the kernel's), identifier (the kernel's), sequence, payload.
        let mut packet = [0u8; 16];
        packet[0] = kind;
        packet[6..8].copy_from_slice(&seq.to_be_bytes());
        packet[8..16].copy_from_slice(b"symroute");
        let to = match target {
            IpAddr::V4(a) => SocketAddr::V4(SocketAddrV4::new(a, 0)),
            IpAddr::V6(a) => SocketAddr::V6(SocketAddrV6::new(a, 0, 0, 0)),
        };
        let (addr, len) = sockaddr(to);
        // SAFETY: sendto reads the packet and the address from live values of their sizes.
        let rc = unsafe {
            libc::sendto(
                self.fd.get_ref().as_raw_fd(),
                packet.as_ptr().cast(),
                packet.len(),
                0,
                &addr as *const _ as *const libc::sockaddr,
                len,
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// The next echo reply: who answered and the sequence number it answers.
    pub async fn receive(&self) -> io::Result<(IpAddr, u16)> {
        loop {
            let mut guard = self.fd.readable().await?;
            let got = guard.try_io(|fd| {
                let mut buf = [0u8; 256];
                // SAFETY: sockaddr_storage is plain old data.
                let mut from: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
                let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
                // SAFETY: recvfrom writes at most buf.len() bytes and `len` address bytes.
                let n = unsafe {
                    libc::recvfrom(
                        fd.get_ref().as_raw_fd(),
                        buf.as_mut_ptr().cast(),
                        buf.len(),
                        0,
                        &mut from as *mut _ as *mut libc::sockaddr,
                        &mut len,
                    )
                };
                if n < 0 {
                    return Err(io::Error::last_os_error());
                }
                Ok((buf, n as usize, address_of(&from)))
            });
            match got {
                Ok(Ok((buf, n, Some(from)))) if n >= 8 => {
                    let reply = if self.v6 {
                        ECHO_REPLY_V6
                    } else {
                        ECHO_REPLY_V4
                    };
                    if buf[0] == reply {
                        return Ok((from, u16::from_be_bytes([buf[6], buf[7]])));
                    }
                }
                Ok(Ok(_)) => {}
                // ICMP errors queued for the socket (unreachable, ...): the echo is lost.
                Ok(Err(e)) if e.kind() != io::ErrorKind::WouldBlock => {
                    log::debug!("ping socket: {e}");
                }
                Ok(Err(_)) | Err(_) => {}
            }
        }
    }
}
