//! The libc ABI nlbench needs, declared by hand (no dependencies), and the netlink socket.
//! Every `unsafe` block of nlbench is here.

use crate::die;

#[allow(non_camel_case_types)]
type c_int = i32;

#[repr(C)]
struct SockaddrNl {
    family: u16,
    pad: u16,
    pid: u32,
    groups: u32,
}

#[repr(C)]
struct Timespec {
    sec: i64,
    nsec: i64,
}

#[repr(C)]
struct PollFd {
    fd: c_int,
    events: i16,
    revents: i16,
}

#[repr(C)]
struct Rusage {
    utime: [i64; 2],
    stime: [i64; 2],
    maxrss: i64,
    rest: [i64; 13],
}

extern "C" {
    fn socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int;
    fn bind(fd: c_int, addr: *const SockaddrNl, len: u32) -> c_int;
    fn setsockopt(fd: c_int, level: c_int, name: c_int, val: *const c_int, len: u32) -> c_int;
    fn send(fd: c_int, buf: *const u8, len: usize, flags: c_int) -> isize;
    fn recv(fd: c_int, buf: *mut u8, len: usize, flags: c_int) -> isize;
    fn clock_gettime(clock: c_int, ts: *mut Timespec) -> c_int;
    fn poll(fds: *mut PollFd, n: u64, timeout: c_int) -> c_int;
    fn __errno_location() -> *mut c_int;
    fn getrusage(who: c_int, usage: *mut Rusage) -> c_int;
}

const AF_NETLINK: c_int = 16;
const SOCK_RAW: c_int = 3;
const SOCK_CLOEXEC: c_int = 0o2000000;
const NETLINK_ROUTE: c_int = 0;
const SOL_SOCKET: c_int = 1;
const SO_SNDBUFFORCE: c_int = 32;
const SO_RCVBUFFORCE: c_int = 33;
const SOL_NETLINK: c_int = 270;
const NETLINK_CAP_ACK: c_int = 10;
const NETLINK_GET_STRICT_CHK: c_int = 12;
const MSG_DONTWAIT: c_int = 0x40;
const EAGAIN: c_int = 11;
const EINTR: c_int = 4;
pub const ENOBUFS: c_int = 105;
const CLOCK_MONOTONIC: c_int = 1;
const POLLIN: i16 = 1;
const RUSAGE_CHILDREN: c_int = -1;

fn errno() -> c_int {
    // SAFETY: glibc's thread-local errno.
    unsafe { *__errno_location() }
}

pub fn now_ns() -> u64 {
    let mut ts = Timespec { sec: 0, nsec: 0 };
    // SAFETY: writes one timespec.
    unsafe { clock_gettime(CLOCK_MONOTONIC, &mut ts) };
    ts.sec as u64 * 1_000_000_000 + ts.nsec as u64
}

/// Peak RSS in KiB of the waited-for children of this process and their descendants.
pub fn children_peak_rss_kib() -> i64 {
    let mut ru = Rusage {
        utime: [0; 2],
        stime: [0; 2],
        maxrss: 0,
        rest: [0; 13],
    };
    // SAFETY: fills one rusage.
    unsafe { getrusage(RUSAGE_CHILDREN, &mut ru) };
    ru.maxrss
}

/// A NETLINK_ROUTE socket with large buffers, capped ACKs and strict dump checking.
pub struct Sock {
    fd: c_int,
}

impl Sock {
    /// Opens a socket subscribed to the multicast `groups` (0: none).
    pub fn open(groups: u32) -> Sock {
        // SAFETY: plain syscalls on values we own.
        unsafe {
            let fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
            if fd < 0 {
                die(&format!("socket: errno {}", errno()));
            }
            let addr = SockaddrNl {
                family: AF_NETLINK as u16,
                pad: 0,
                pid: 0,
                groups,
            };
            if bind(fd, &addr, std::mem::size_of::<SockaddrNl>() as u32) != 0 {
                die(&format!("bind: errno {}", errno()));
            }
            let s = Sock { fd };
            s.opt(SOL_SOCKET, SO_RCVBUFFORCE, 64 << 20);
            s.opt(SOL_SOCKET, SO_SNDBUFFORCE, 8 << 20);
            s.opt(SOL_NETLINK, NETLINK_CAP_ACK, 1);
            s.opt(SOL_NETLINK, NETLINK_GET_STRICT_CHK, 1);
            s
        }
    }

    fn opt(&self, level: c_int, name: c_int, value: c_int) {
        // SAFETY: reads one c_int.
        unsafe { setsockopt(self.fd, level, name, &value, 4) };
    }

    pub fn send_all(&self, buf: &[u8]) {
        loop {
            // SAFETY: buf is live for the call.
            let n = unsafe { send(self.fd, buf.as_ptr(), buf.len(), 0) };
            if n == buf.len() as isize {
                return;
            }
            if n < 0 && errno() == EINTR {
                continue;
            }
            die(&format!(
                "send of {} bytes: {} errno {}",
                buf.len(),
                n,
                errno()
            ));
        }
    }

    /// One datagram (possibly many messages); Err(errno) on failure; Ok(0) when
    /// non-blocking and nothing is pending.
    pub fn recv(&self, buf: &mut [u8], dontwait: bool) -> Result<usize, c_int> {
        loop {
            let flags = if dontwait { MSG_DONTWAIT } else { 0 };
            // SAFETY: buf is live and writable for the call.
            let n = unsafe { recv(self.fd, buf.as_mut_ptr(), buf.len(), flags) };
            if n >= 0 {
                return Ok(n as usize);
            }
            match errno() {
                EINTR => continue,
                EAGAIN => return Ok(0),
                e => return Err(e),
            }
        }
    }

    /// A blocking `recv` that ends the program on failure, naming `what` was being read.
    pub fn recv_or_die(&self, buf: &mut [u8], what: &str) -> usize {
        self.recv(buf, false)
            .unwrap_or_else(|e| die(&format!("{what} errno {e}")))
    }

    /// Waits up to `ms` for data; true when readable.
    pub fn wait(&self, ms: i32) -> bool {
        let mut p = PollFd {
            fd: self.fd,
            events: POLLIN,
            revents: 0,
        };
        // SAFETY: one pollfd.
        unsafe { poll(&mut p, 1, ms) > 0 }
    }

    /// Waits without a timeout until the socket or stdin has something (data or, for stdin,
    /// its end); says which: (socket, stdin).
    pub fn wait_with_stdin(&self) -> (bool, bool) {
        let mut fds = [
            PollFd {
                fd: self.fd,
                events: POLLIN,
                revents: 0,
            },
            PollFd {
                fd: 0,
                events: POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: two pollfds.
        unsafe { poll(fds.as_mut_ptr(), 2, -1) };
        (fds[0].revents != 0, fds[1].revents != 0)
    }
}
