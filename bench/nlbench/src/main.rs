//! nlbench: the raw-netlink side of symroute's benchmark (bench/run).
//!
//! Runs in whatever network namespace it is started in (bench/run only starts it inside the
//! namespaces it created). No dependencies: raw `socket(AF_NETLINK)` through libc's ABI.
//!
//! Subcommands (every one prints one JSON object on stdout when done):
//!   routes  --table T --oif I --gw A.B.C.D --start A.B.C.D --count N
//!           [--plen 32] [--proto 83] [--delete] [--ack] [--batch-bytes B]
//!       The floor: N IPv4 RTM_NEWROUTE (or RTM_DELROUTE) messages, built before the clock
//!       starts, sent as few large `sendmsg` calls as the socket takes, without NLM_F_ACK
//!       (the kernel still reports failures), so the kernel's own insert work is all that is
//!       timed. `--ack` asks for one (capped) ACK per message and reads them, as a
//!       request/answer program must.
//!   watch   --table T --expect N [--timeout-ms MS]
//!       Follows IPv4 table T (dump, then route notifications; a fresh dump after an overrun)
//!       and exits when it holds exactly N routes. Prints "ready <monotonic ns>" on stderr once
//!       following, then {"done":true,"at_ns":...,"count":...}.
//!   count   --table T
//!       Counts route and rule notifications about table T (both families) until stdin is
//!       closed: how many writes reached the kernel. Prints "ready" on stderr once listening.
//!   react   --table T --oif I --gw A.B.C.D --kind route|addr --count N [--timeout-ms MS]
//!       Makes a change in the kernel (a main-table route through I, or a replaced secondary
//!       address on I) and times until the mirror appears in table T (route) or the new
//!       `from` rule exists and the old one is gone (addr). Undoes each change and waits for
//!       that to be mirrored too before the next one.
//!   dump    --table T [--oif I]
//!       The reading floor: one kernel-filtered IPv4 dump of table T (routes through I),
//!       only counted, not decoded. Prints the count and the time it took.
//!   rss -- PROGRAM ARGS...
//!       Runs PROGRAM and prints its peak RSS in KiB (`getrusage(RUSAGE_CHILDREN)`, so its
//!       descendants count too). Measured from this small process because a child's peak
//!       includes the memory of the process that spawned it up to `exec`.

use std::collections::HashSet;
use std::io::Read;
use std::net::Ipv4Addr;
use std::process::exit;

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

#[repr(C)]
struct Rusage {
    utime: [i64; 2],
    stime: [i64; 2],
    maxrss: i64,
    rest: [i64; 13],
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
const ENOBUFS: c_int = 105;
const CLOCK_MONOTONIC: c_int = 1;

const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLM_F_DUMP: u16 = 0x300;
const NLM_F_EXCL: u16 = 0x200;
const NLM_F_CREATE: u16 = 0x400;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;

const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const RTM_GETROUTE: u16 = 26;
const RTM_NEWRULE: u16 = 32;
const RTM_DELRULE: u16 = 33;

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
const RTPROT_STATIC: u8 = 4;

// Multicast groups (bit = 1 << (group - 1)).
const GRP_IPV4_ROUTE: u32 = 1 << 6;
const GRP_IPV4_RULE: u32 = 1 << 7;
const GRP_IPV6_ROUTE: u32 = 1 << 10;
const GRP_IPV6_RULE: u32 = 1 << 18;

fn errno() -> c_int {
    // SAFETY: glibc's thread-local errno.
    unsafe { *__errno_location() }
}

fn now_ns() -> u64 {
    let mut ts = Timespec { sec: 0, nsec: 0 };
    // SAFETY: writes one timespec.
    unsafe { clock_gettime(CLOCK_MONOTONIC, &mut ts) };
    ts.sec as u64 * 1_000_000_000 + ts.nsec as u64
}

fn die(msg: &str) -> ! {
    eprintln!("nlbench: {msg}");
    exit(2)
}

struct Sock {
    fd: c_int,
}

impl Sock {
    fn open(groups: u32) -> Sock {
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

    fn send_all(&self, buf: &[u8]) {
        loop {
            // SAFETY: buf is live for the call.
            let n = unsafe { send(self.fd, buf.as_ptr(), buf.len(), 0) };
            if n == buf.len() as isize {
                return;
            }
            if n < 0 && errno() == EINTR {
                continue;
            }
            die(&format!("send of {} bytes: {} errno {}", buf.len(), n, errno()));
        }
    }

    /// One datagram (possibly many messages); Err(errno) on failure; Ok(0) when
    /// non-blocking and nothing is pending.
    fn recv(&self, buf: &mut [u8], dontwait: bool) -> Result<usize, c_int> {
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

    /// Waits up to `ms` for data; true when readable.
    fn wait(&self, ms: i32) -> bool {
        let mut p = PollFd {
            fd: self.fd,
            events: 1,
            revents: 0,
        };
        // SAFETY: one pollfd.
        unsafe { poll(&mut p, 1, ms) > 0 }
    }
}

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
        while self.buf.len() % 4 != 0 {
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
    let t = if table < 256 { table as u8 } else { RT_TABLE_COMPAT };
    [AF_INET, dst_len, 0, 0, t, proto, scope, kind, 0, 0, 0, 0]
}

struct RouteSpec {
    table: u32,
    oif: u32,
    gw: Option<Ipv4Addr>,
    proto: u8,
    plen: u8,
}

fn route_msg(ty: u16, flags: u16, seq: u32, spec: &RouteSpec, dst: Ipv4Addr) -> Vec<u8> {
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

fn addr_msg(ty: u16, flags: u16, seq: u32, ifindex: u32, addr: Ipv4Addr, plen: u8) -> Vec<u8> {
    let mut m = Msg::new(ty, flags, seq);
    let mut hdr = [AF_INET, plen, 0, 0, 0, 0, 0, 0];
    hdr[4..8].copy_from_slice(&ifindex.to_ne_bytes());
    m.bytes(&hdr)
        .attr(IFA_LOCAL, &addr.octets())
        .attr(IFA_ADDRESS, &addr.octets());
    m.finish()
}

/// Walks the messages of one datagram: (type, flags, payload).
fn messages(buf: &[u8]) -> impl Iterator<Item = (u16, u16, &[u8])> {
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

fn error_code(payload: &[u8]) -> i32 {
    i32::from_ne_bytes(payload[0..4].try_into().unwrap())
}

/// A route notification or dump entry: (family, table, dst bytes, dst_len, metric).
#[derive(Clone, PartialEq, Eq, Hash, Debug)]
struct RouteKey {
    family: u8,
    dst: Vec<u8>,
    dst_len: u8,
    tos: u8,
    metric: u32,
}

fn parse_route(payload: &[u8]) -> Option<(u32, RouteKey)> {
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
fn parse_rule(payload: &[u8]) -> Option<(u32, Vec<u8>)> {
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

struct Args {
    list: Vec<String>,
}

impl Args {
    fn get(&self, name: &str) -> Option<&str> {
        let flag = format!("--{name}");
        self.list
            .iter()
            .position(|a| *a == flag)
            .map(|i| self.list.get(i + 1).map(String::as_str).unwrap_or(""))
    }
    fn has(&self, name: &str) -> bool {
        let flag = format!("--{name}");
        self.list.iter().any(|a| *a == flag)
    }
    fn num<T: std::str::FromStr>(&self, name: &str, default: Option<T>) -> T {
        match self.get(name) {
            Some(v) => v
                .parse()
                .unwrap_or_else(|_| die(&format!("bad --{name} {v}"))),
            None => default.unwrap_or_else(|| die(&format!("--{name} is required"))),
        }
    }
}

fn main() {
    let list: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = list.first().cloned() else {
        die("usage: nlbench routes|watch|count|react ...")
    };
    let args = Args { list };
    match cmd.as_str() {
        "routes" => cmd_routes(&args),
        "watch" => cmd_watch(&args),
        "count" => cmd_count(&args),
        "react" => cmd_react(&args),
        "rss" => cmd_rss(&args),
        "dump" => cmd_dump(&args),
        _ => die(&format!("unknown subcommand {cmd}")),
    }
}

fn cmd_routes(args: &Args) {
    let spec = RouteSpec {
        table: args.num("table", None),
        oif: args.num("oif", None),
        gw: args.get("gw").map(|g| g.parse().unwrap_or_else(|_| die("bad --gw"))),
        proto: args.num("proto", Some(83)),
        plen: args.num("plen", Some(32)),
    };
    let start: Ipv4Addr = args.num("start", None);
    let count: u32 = args.num("count", None);
    let batch_bytes: usize = args.num("batch-bytes", Some(256 << 10));
    let delete = args.has("delete");
    let ack = args.has("ack");
    let step = 1u32 << (32 - u32::from(spec.plen));

    // Everything is encoded before the clock starts: only the kernel's work is timed.
    let (ty, mut flags) = if delete {
        (RTM_DELROUTE, NLM_F_REQUEST)
    } else {
        (RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_EXCL)
    };
    if ack {
        flags |= NLM_F_ACK;
    }
    let mut batches: Vec<Vec<u8>> = Vec::new();
    let mut cur = Vec::with_capacity(batch_bytes);
    let base = u32::from(start);
    for i in 0..count {
        let dst = Ipv4Addr::from(base.wrapping_add(i.wrapping_mul(step)));
        let m = route_msg(ty, flags, i + 1, &spec, dst);
        if cur.len() + m.len() > batch_bytes {
            batches.push(std::mem::replace(&mut cur, Vec::with_capacity(batch_bytes)));
        }
        cur.extend_from_slice(&m);
    }
    if !cur.is_empty() {
        batches.push(cur);
    }
    let sock = Sock::open(0);
    let mut rbuf = vec![0u8; 1 << 20];
    let mut errors = 0u64;
    let mut first_errno = 0;
    let mut acks = 0u64;
    let t0 = now_ns();
    for b in &batches {
        // The kernel handles every message of a datagram inside this send.
        sock.send_all(b);
        if ack {
            let want = messages(b).count() as u64;
            let mut got = 0;
            while got < want {
                let n = sock.recv(&mut rbuf, false).unwrap_or_else(|e| die(&format!("recv errno {e}")));
                for (t, _, p) in messages(&rbuf[..n]) {
                    if t == NLMSG_ERROR {
                        got += 1;
                        acks += 1;
                        let code = error_code(p);
                        if code != 0 {
                            errors += 1;
                            if first_errno == 0 {
                                first_errno = -code;
                            }
                        }
                    }
                }
            }
        }
    }
    let t1 = now_ns();
    // Without ACKs only failures were answered; collect them.
    loop {
        match sock.recv(&mut rbuf, true) {
            Ok(0) => break,
            Ok(n) => {
                for (t, _, p) in messages(&rbuf[..n]) {
                    if t == NLMSG_ERROR && error_code(p) != 0 {
                        errors += 1;
                        if first_errno == 0 {
                            first_errno = -error_code(p);
                        }
                    }
                }
            }
            Err(e) => die(&format!("recv errno {e}")),
        }
    }
    println!(
        "{{\"count\":{count},\"errors\":{errors},\"first_errno\":{first_errno},\"acks\":{acks},\"sendmsgs\":{},\"elapsed_ns\":{}}}",
        batches.len(),
        t1 - t0
    );
    if errors > 0 {
        exit(1);
    }
}

/// Dumps IPv4 routes of `table` into a set (kernel-filtered under strict checking).
fn dump_table(table: u32) -> HashSet<RouteKey> {
    let sock = Sock::open(0);
    let mut m = Msg::new(RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, 1);
    m.bytes(&rtmsg(0, table, 0, 0, 0)).attr(RTA_TABLE, &table.to_ne_bytes());
    sock.send_all(&m.finish());
    let mut set = HashSet::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = sock.recv(&mut buf, false).unwrap_or_else(|e| die(&format!("dump recv errno {e}")));
        for (t, _, p) in messages(&buf[..n]) {
            match t {
                NLMSG_DONE => return set,
                NLMSG_ERROR => {
                    let code = error_code(p);
                    if code == -2 {
                        return set; // table does not exist yet: empty
                    }
                    die(&format!("dump error {code}"));
                }
                RTM_NEWROUTE => {
                    if let Some((t, key)) = parse_route(p) {
                        if t == table {
                            set.insert(key);
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

fn cmd_watch(args: &Args) {
    let table: u32 = args.num("table", None);
    let expect: usize = args.num("expect", None);
    let timeout_ms: u64 = args.num("timeout-ms", Some(60_000));
    let listen = Sock::open(GRP_IPV4_ROUTE);
    let mut set = dump_table(table);
    let mut overruns = 0;
    let mut notes = 0u64;
    eprintln!("ready {}", now_ns());
    let deadline = now_ns() + timeout_ms * 1_000_000;
    let mut buf = vec![0u8; 1 << 20];
    loop {
        if set.len() == expect {
            println!(
                "{{\"done\":true,\"at_ns\":{},\"count\":{},\"overruns\":{overruns},\"notifications\":{notes}}}",
                now_ns(),
                set.len()
            );
            return;
        }
        let now = now_ns();
        if now >= deadline {
            println!(
                "{{\"done\":false,\"at_ns\":{now},\"count\":{},\"overruns\":{overruns},\"notifications\":{notes}}}",
                set.len()
            );
            exit(3);
        }
        if !listen.wait(((deadline - now) / 1_000_000).min(1000) as i32 + 1) {
            continue;
        }
        match listen.recv(&mut buf, true) {
            Ok(n) => {
                for (t, _, p) in messages(&buf[..n]) {
                    if t != RTM_NEWROUTE && t != RTM_DELROUTE {
                        continue;
                    }
                    notes += 1;
                    if let Some((tb, key)) = parse_route(p) {
                        if tb == table {
                            if t == RTM_NEWROUTE {
                                set.insert(key);
                            } else {
                                set.remove(&key);
                            }
                        }
                    }
                }
            }
            Err(ENOBUFS) => {
                overruns += 1;
                set = dump_table(table);
            }
            Err(e) => die(&format!("recv errno {e}")),
        }
    }
}

fn cmd_count(args: &Args) {
    let table: u32 = args.num("table", None);
    let listen = Sock::open(GRP_IPV4_ROUTE | GRP_IPV6_ROUTE | GRP_IPV4_RULE | GRP_IPV6_RULE);
    eprintln!("ready {}", now_ns());
    let (mut new_routes, mut del_routes, mut new_rules, mut del_rules, mut overruns) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut buf = vec![0u8; 1 << 20];
    let mut fds = [
        PollFd {
            fd: listen.fd,
            events: 1,
            revents: 0,
        },
        PollFd {
            fd: 0,
            events: 1,
            revents: 0,
        },
    ];
    loop {
        // SAFETY: two pollfds.
        unsafe { poll(fds.as_mut_ptr(), 2, -1) };
        if fds[0].revents != 0 {
            loop {
                match listen.recv(&mut buf, true) {
                    Ok(0) => break,
                    Ok(n) => {
                        for (t, _, p) in messages(&buf[..n]) {
                            match t {
                                RTM_NEWROUTE | RTM_DELROUTE => {
                                    if let Some((tb, _)) = parse_route(p) {
                                        if tb == table {
                                            if t == RTM_NEWROUTE {
                                                new_routes += 1
                                            } else {
                                                del_routes += 1
                                            }
                                        }
                                    }
                                }
                                RTM_NEWRULE | RTM_DELRULE => {
                                    if let Some((tb, _)) = parse_rule(p) {
                                        if tb == table {
                                            if t == RTM_NEWRULE {
                                                new_rules += 1
                                            } else {
                                                del_rules += 1
                                            }
                                        }
                                    }
                                }
                                _ => {}
                            }
                        }
                    }
                    Err(ENOBUFS) => overruns += 1,
                    Err(e) => die(&format!("recv errno {e}")),
                }
            }
        }
        if fds[1].revents != 0 {
            let mut b = [0u8; 64];
            if std::io::stdin().read(&mut b).unwrap_or(0) == 0 {
                break;
            }
        }
    }
    println!(
        "{{\"new_routes\":{new_routes},\"del_routes\":{del_routes},\"new_rules\":{new_rules},\"del_rules\":{del_rules},\"overruns\":{overruns}}}"
    );
}

/// Sends one request with an ACK and returns the kernel's answer code.
fn request(sock: &Sock, msg: &[u8]) -> i32 {
    sock.send_all(msg);
    let mut buf = vec![0u8; 65536];
    loop {
        let n = sock.recv(&mut buf, false).unwrap_or_else(|e| die(&format!("recv errno {e}")));
        for (t, _, p) in messages(&buf[..n]) {
            if t == NLMSG_ERROR {
                return error_code(p);
            }
        }
    }
}

/// Waits on `listen` until `done` says the state it tracks is reached; returns the time.
fn wait_for(
    listen: &Sock,
    buf: &mut [u8],
    deadline: u64,
    mut seen: impl FnMut(u16, &[u8]) -> bool,
) -> Option<u64> {
    loop {
        let now = now_ns();
        if now >= deadline {
            return None;
        }
        if !listen.wait(((deadline - now) / 1_000_000) as i32 + 1) {
            continue;
        }
        match listen.recv(buf, true) {
            Ok(n) => {
                let mut hit = false;
                for (t, _, p) in messages(&buf[..n]) {
                    hit |= seen(t, p);
                }
                if hit {
                    return Some(now_ns());
                }
            }
            Err(ENOBUFS) => return None,
            Err(e) => die(&format!("recv errno {e}")),
        }
    }
}

fn cmd_react(args: &Args) {
    let table: u32 = args.num("table", None);
    let oif: u32 = args.num("oif", None);
    let count: u32 = args.num("count", None);
    let timeout_ms: u64 = args.num("timeout-ms", Some(2000));
    let kind = args.get("kind").unwrap_or("route").to_string();
    let listen = Sock::open(GRP_IPV4_ROUTE | GRP_IPV4_RULE);
    let ctl = Sock::open(0);
    let mut buf = vec![0u8; 1 << 20];
    let mut lat = Vec::new();
    let mut undo_lat = Vec::new();
    let mut missed = 0;
    let mut seq = 1;
    match kind.as_str() {
        "route" => {
            let spec = RouteSpec {
                table: 254,
                oif,
                gw: Some(args.num("gw", None)),
                proto: RTPROT_STATIC,
                plen: 32,
            };
            for i in 0..count {
                let dst = Ipv4Addr::new(198, 18, (i / 250) as u8, (i % 250) as u8 + 1);
                let key_dst = dst.octets().to_vec();
                let add = route_msg(RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, seq, &spec, dst);
                seq += 1;
                let t0 = now_ns();
                let code = request(&ctl, &add);
                if code != 0 {
                    die(&format!("adding {dst}: error {code}"));
                }
                let check = |want: u16| {
                    let key_dst = key_dst.clone();
                    move |t: u16, p: &[u8]| {
                        t == want
                            && parse_route(p).is_some_and(|(tb, k)| tb == table && k.dst == key_dst)
                    }
                };
                match wait_for(&listen, &mut buf, t0 + timeout_ms * 1_000_000, check(RTM_NEWROUTE)) {
                    Some(t1) => lat.push(t1 - t0),
                    None => missed += 1,
                }
                let del = route_msg(RTM_DELROUTE, NLM_F_REQUEST | NLM_F_ACK, seq, &spec, dst);
                seq += 1;
                let t0 = now_ns();
                request(&ctl, &del);
                match wait_for(&listen, &mut buf, t0 + timeout_ms * 1_000_000, check(RTM_DELROUTE)) {
                    Some(t1) => undo_lat.push(t1 - t0),
                    None => missed += 1,
                }
            }
        }
        "addr" => {
            // Replaces a secondary address on the interface: add the new one, delete the old
            // one (what a DHCP renewal with a new lease does), and times until the new
            // address's rule exists and the old one's is gone.
            let base: Ipv4Addr = args.num("addr-base", None);
            let plen: u8 = args.num("addr-plen", Some(24));
            let b = u32::from(base);
            let mut old = Ipv4Addr::from(b);
            let add = addr_msg(RTM_NEWADDR, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, seq, oif, old, plen);
            seq += 1;
            if request(&ctl, &add) != 0 {
                die(&format!("adding {old}"));
            }
            // Let the daemon settle on the first address.
            let _ = wait_for(&listen, &mut buf, now_ns() + timeout_ms * 1_000_000, |t, p| {
                t == RTM_NEWRULE && parse_rule(p).is_some_and(|(tb, s)| tb == table && s == old.octets())
            });
            for i in 0..count {
                let new = Ipv4Addr::from(b + 1 + (i % 2));
                let t0 = now_ns();
                let add = addr_msg(RTM_NEWADDR, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, seq, oif, new, plen);
                seq += 1;
                let del = addr_msg(RTM_DELADDR, NLM_F_REQUEST | NLM_F_ACK, seq, oif, old, plen);
                seq += 1;
                if request(&ctl, &add) != 0 || request(&ctl, &del) != 0 {
                    die("replacing address");
                }
                let (mut added, mut removed) = (false, false);
                let (n_oct, o_oct) = (new.octets(), old.octets());
                let r = wait_for(&listen, &mut buf, t0 + timeout_ms * 1_000_000, |t, p| {
                    if let Some((tb, s)) = parse_rule(p) {
                        if tb == table && t == RTM_NEWRULE && s == n_oct {
                            added = true;
                        }
                        if tb == table && t == RTM_DELRULE && s == o_oct {
                            removed = true;
                        }
                    }
                    added && removed
                });
                match r {
                    Some(t1) => lat.push(t1 - t0),
                    None => missed += 1,
                }
                // Alternates between base+1 and base+2 (base itself is replaced first).
                old = new;
            }
            let del = addr_msg(RTM_DELADDR, NLM_F_REQUEST | NLM_F_ACK, seq, oif, old, plen);
            request(&ctl, &del);
        }
        _ => die("--kind route|addr"),
    }
    let fmt = |v: &Vec<u64>| {
        v.iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    println!(
        "{{\"kind\":\"{kind}\",\"missed\":{missed},\"ns\":[{}],\"undo_ns\":[{}]}}",
        fmt(&lat),
        fmt(&undo_lat)
    );
}

fn cmd_rss(args: &Args) {
    let pos = args
        .list
        .iter()
        .position(|a| a == "--")
        .unwrap_or_else(|| die("usage: nlbench rss -- PROGRAM ARGS..."));
    let argv = &args.list[pos + 1..];
    let Some(program) = argv.first() else {
        die("rss: no program")
    };
    let status = std::process::Command::new(program)
        .args(&argv[1..])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap_or_else(|e| die(&format!("rss: cannot run {program}: {e}")));
    let mut ru = Rusage {
        utime: [0; 2],
        stime: [0; 2],
        maxrss: 0,
        rest: [0; 13],
    };
    // SAFETY: fills one rusage; RUSAGE_CHILDREN = -1.
    unsafe { getrusage(-1, &mut ru) };
    println!(
        "{{\"rss_kib\":{},\"status\":{}}}",
        ru.maxrss,
        status.code().unwrap_or(-1)
    );
    if !status.success() {
        exit(1);
    }
}

fn cmd_dump(args: &Args) {
    let table: u32 = args.num("table", None);
    let oif: Option<u32> = args.get("oif").map(|v| v.parse().unwrap_or_else(|_| die("bad --oif")));
    let sock = Sock::open(0);
    let mut m = Msg::new(RTM_GETROUTE, NLM_F_REQUEST | NLM_F_DUMP, 1);
    m.bytes(&rtmsg(0, table, 0, 0, 0)).attr(RTA_TABLE, &table.to_ne_bytes());
    if let Some(oif) = oif {
        m.attr(RTA_OIF, &oif.to_ne_bytes());
    }
    let req = m.finish();
    let mut buf = vec![0u8; 1 << 20];
    let t0 = now_ns();
    sock.send_all(&req);
    let mut count = 0u64;
    let mut recvs = 0u64;
    'outer: loop {
        let n = sock.recv(&mut buf, false).unwrap_or_else(|e| die(&format!("dump recv errno {e}")));
        recvs += 1;
        for (t, _, p) in messages(&buf[..n]) {
            match t {
                NLMSG_DONE => break 'outer,
                NLMSG_ERROR => {
                    if error_code(p) == -2 {
                        break 'outer;
                    }
                    die(&format!("dump error {}", error_code(p)));
                }
                RTM_NEWROUTE => count += 1,
                _ => {}
            }
        }
    }
    let t1 = now_ns();
    println!("{{\"count\":{count},\"recvs\":{recvs},\"elapsed_ns\":{}}}", t1 - t0);
}
