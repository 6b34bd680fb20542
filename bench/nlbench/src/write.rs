//! `routes`: the writing floor, N route messages in as few large `sendmsg` calls as the
//! socket takes.

use std::net::Ipv4Addr;
use std::process::exit;

use crate::msg::{
    error_code, messages, route_msg, RouteSpec, NLMSG_ERROR, NLM_F_ACK, NLM_F_CREATE, NLM_F_EXCL,
    NLM_F_REQUEST, RTM_DELROUTE, RTM_NEWROUTE,
};
use crate::sys::{now_ns, Sock};
use crate::{die, Args};

/// The kernel's answers that reported a failure.
#[derive(Default)]
struct Failures {
    errors: u64,
    first_errno: i32,
}

impl Failures {
    fn note(&mut self, code: i32) {
        if code != 0 {
            self.errors += 1;
            if self.first_errno == 0 {
                self.first_errno = -code;
            }
        }
    }
}

pub fn cmd_routes(args: &Args) {
    let spec = RouteSpec {
        table: args.num("table", None),
        oif: args.num("oif", None),
        gw: args
            .get("gw")
            .map(|g| g.parse().unwrap_or_else(|_| die("bad --gw"))),
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
    let mut failed = Failures::default();
    let mut acks = 0u64;
    let t0 = now_ns();
    for b in &batches {
        // The kernel handles every message of a datagram inside this send.
        sock.send_all(b);
        if ack {
            let want = messages(b).count() as u64;
            let mut got = 0;
            while got < want {
                let n = sock.recv_or_die(&mut rbuf, "recv");
                for (t, _, p) in messages(&rbuf[..n]) {
                    if t == NLMSG_ERROR {
                        got += 1;
                        acks += 1;
                        failed.note(error_code(p));
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
                    if t == NLMSG_ERROR {
                        failed.note(error_code(p));
                    }
                }
            }
            Err(e) => die(&format!("recv errno {e}")),
        }
    }
    let Failures {
        errors,
        first_errno,
    } = failed;
    println!(
        "{{\"count\":{count},\"errors\":{errors},\"first_errno\":{first_errno},\"acks\":{acks},\"sendmsgs\":{},\"elapsed_ns\":{}}}",
        batches.len(),
        t1 - t0
    );
    if errors > 0 {
        exit(1);
    }
}
