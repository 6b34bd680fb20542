//! Reading tables by dump: `dump` (the reading floor) and the table snapshot `watch` starts
//! from.

use std::collections::HashSet;

use crate::msg::{
    dump_msg, error_code, messages, parse_route, RouteKey, NLMSG_DONE, NLMSG_ERROR, RTM_NEWROUTE,
};
use crate::sys::{now_ns, Sock};
use crate::{die, Args};

/// Reads the answer to a dump request to its end, handing every route's payload to `each`;
/// returns how many datagrams it took. A table that does not exist yet (ENOENT) is empty.
fn read_dump(sock: &Sock, buf: &mut [u8], mut each: impl FnMut(&[u8])) -> u64 {
    let mut recvs = 0;
    loop {
        let n = sock.recv_or_die(buf, "dump recv");
        recvs += 1;
        for (t, _, p) in messages(&buf[..n]) {
            match t {
                NLMSG_DONE => return recvs,
                NLMSG_ERROR => {
                    let code = error_code(p);
                    if code == -2 {
                        return recvs;
                    }
                    die(&format!("dump error {code}"));
                }
                RTM_NEWROUTE => each(p),
                _ => {}
            }
        }
    }
}

/// Dumps IPv4 routes of `table` into a set (kernel-filtered under strict checking).
pub fn dump_table(table: u32) -> HashSet<RouteKey> {
    let sock = Sock::open(0);
    sock.send_all(&dump_msg(table, None));
    let mut set = HashSet::new();
    let mut buf = vec![0u8; 1 << 20];
    read_dump(&sock, &mut buf, |p| {
        if let Some((t, key)) = parse_route(p) {
            if t == table {
                set.insert(key);
            }
        }
    });
    set
}

pub fn cmd_dump(args: &Args) {
    let table: u32 = args.num("table", None);
    let oif: Option<u32> = args
        .get("oif")
        .map(|v| v.parse().unwrap_or_else(|_| die("bad --oif")));
    let sock = Sock::open(0);
    let req = dump_msg(table, oif);
    let mut buf = vec![0u8; 1 << 20];
    let t0 = now_ns();
    sock.send_all(&req);
    let mut count = 0u64;
    let recvs = read_dump(&sock, &mut buf, |_| count += 1);
    let t1 = now_ns();
    println!(
        "{{\"count\":{count},\"recvs\":{recvs},\"elapsed_ns\":{}}}",
        t1 - t0
    );
}
