//! Following the kernel's route and rule notifications: `watch` (until a table holds N
//! routes) and `count` (how many writes about a table reached the kernel).

use std::io::Read;
use std::process::exit;

use crate::dump::dump_table;
use crate::msg::{
    messages, parse_route, parse_rule, GRP_IPV4_ROUTE, GRP_IPV4_RULE, GRP_IPV6_ROUTE,
    GRP_IPV6_RULE, RTM_DELROUTE, RTM_DELRULE, RTM_NEWROUTE, RTM_NEWRULE,
};
use crate::sys::{now_ns, Sock, ENOBUFS};
use crate::{die, Args};

pub fn cmd_watch(args: &Args) {
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

pub fn cmd_count(args: &Args) {
    let table: u32 = args.num("table", None);
    let listen = Sock::open(GRP_IPV4_ROUTE | GRP_IPV6_ROUTE | GRP_IPV4_RULE | GRP_IPV6_RULE);
    eprintln!("ready {}", now_ns());
    let (mut new_routes, mut del_routes, mut new_rules, mut del_rules, mut overruns) =
        (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let (notified, stdin) = listen.wait_with_stdin();
        if notified {
            loop {
                match listen.recv(&mut buf, true) {
                    Ok(0) => break,
                    Ok(n) => {
                        for (t, _, p) in messages(&buf[..n]) {
                            let about = match t {
                                RTM_NEWROUTE | RTM_DELROUTE => parse_route(p).map(|(tb, _)| tb),
                                RTM_NEWRULE | RTM_DELRULE => parse_rule(p).map(|(tb, _)| tb),
                                _ => None,
                            };
                            if about != Some(table) {
                                continue;
                            }
                            match t {
                                RTM_NEWROUTE => new_routes += 1,
                                RTM_DELROUTE => del_routes += 1,
                                RTM_NEWRULE => new_rules += 1,
                                _ => del_rules += 1,
                            }
                        }
                    }
                    Err(ENOBUFS) => overruns += 1,
                    Err(e) => die(&format!("recv errno {e}")),
                }
            }
        }
        if stdin {
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
