//! `react`: makes one change in the kernel at a time and times until its mirror (written by
//! whatever runs beside, e.g. symrouted) shows in the notifications.

use std::net::Ipv4Addr;

use crate::msg::{
    addr_msg, error_code, messages, parse_route, parse_rule, route_msg, RouteSpec, GRP_IPV4_ROUTE,
    GRP_IPV4_RULE, NLMSG_ERROR, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL, NLM_F_REQUEST, RTM_DELADDR,
    RTM_DELROUTE, RTM_DELRULE, RTM_NEWADDR, RTM_NEWROUTE, RTM_NEWRULE, RTPROT_STATIC,
};
use crate::sys::{now_ns, Sock, ENOBUFS};
use crate::{die, Args};

/// Sends one request with an ACK and returns the kernel's answer code.
fn request(sock: &Sock, msg: &[u8]) -> i32 {
    sock.send_all(msg);
    let mut buf = vec![0u8; 65536];
    loop {
        let n = sock.recv_or_die(&mut buf, "recv");
        for (t, _, p) in messages(&buf[..n]) {
            if t == NLMSG_ERROR {
                return error_code(p);
            }
        }
    }
}

/// Waits on `listen` until `seen` says the state it tracks is reached; returns the time.
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

/// Latencies of one kind of change, and how many were not seen in time.
#[derive(Default)]
struct Samples {
    ns: Vec<u64>,
    missed: u32,
}

impl Samples {
    /// Records the change made at `t0` as seen at `seen_at` (None: not in time).
    fn record(&mut self, t0: u64, seen_at: Option<u64>) {
        match seen_at {
            Some(t1) => self.ns.push(t1 - t0),
            None => self.missed += 1,
        }
    }

    fn list(&self) -> String {
        self.ns
            .iter()
            .map(|x| x.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }
}

pub fn cmd_react(args: &Args) {
    let table: u32 = args.num("table", None);
    let oif: u32 = args.num("oif", None);
    let count: u32 = args.num("count", None);
    let timeout_ms: u64 = args.num("timeout-ms", Some(2000));
    let kind = args.get("kind").unwrap_or("route").to_string();
    let listen = Sock::open(GRP_IPV4_ROUTE | GRP_IPV4_RULE);
    let ctl = Sock::open(0);
    let mut buf = vec![0u8; 1 << 20];
    let mut done = Samples::default();
    let mut undone = Samples::default();
    let mut seq = 1;
    let create = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
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
                let add = route_msg(RTM_NEWROUTE, create, seq, &spec, dst);
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
                let deadline = t0 + timeout_ms * 1_000_000;
                done.record(
                    t0,
                    wait_for(&listen, &mut buf, deadline, check(RTM_NEWROUTE)),
                );
                let del = route_msg(RTM_DELROUTE, NLM_F_REQUEST | NLM_F_ACK, seq, &spec, dst);
                seq += 1;
                let t0 = now_ns();
                request(&ctl, &del);
                let deadline = t0 + timeout_ms * 1_000_000;
                undone.record(
                    t0,
                    wait_for(&listen, &mut buf, deadline, check(RTM_DELROUTE)),
                );
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
            let add = addr_msg(RTM_NEWADDR, create, seq, oif, old, plen);
            seq += 1;
            if request(&ctl, &add) != 0 {
                die(&format!("adding {old}"));
            }
            // Let the daemon settle on the first address.
            let settled = now_ns() + timeout_ms * 1_000_000;
            let _ = wait_for(&listen, &mut buf, settled, |t, p| {
                t == RTM_NEWRULE
                    && parse_rule(p).is_some_and(|(tb, s)| tb == table && s == old.octets())
            });
            for i in 0..count {
                let new = Ipv4Addr::from(b + 1 + (i % 2));
                let t0 = now_ns();
                let add = addr_msg(RTM_NEWADDR, create, seq, oif, new, plen);
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
                done.record(t0, r);
                // Alternates between base+1 and base+2 (base itself is replaced first).
                old = new;
            }
            let del = addr_msg(RTM_DELADDR, NLM_F_REQUEST | NLM_F_ACK, seq, oif, old, plen);
            request(&ctl, &del);
        }
        _ => die("--kind route|addr"),
    }
    println!(
        "{{\"kind\":\"{kind}\",\"missed\":{},\"ns\":[{}],\"undo_ns\":[{}]}}",
        done.missed + undone.missed,
        done.list(),
        undone.list()
    );
}
