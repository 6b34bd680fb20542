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
//!
//! Modules: `sys` (the libc ABI and the netlink socket), `msg` (building and reading
//! rtnetlink messages), one module per command group (`write`, `dump`, `watch`, `react`,
//! `rss`). It shares no code with symroute-core on purpose: it is the floor symroute is
//! measured against.

mod dump;
mod msg;
mod react;
mod rss;
mod sys;
mod watch;
mod write;

use std::process::exit;

fn die(msg: &str) -> ! {
    eprintln!("nlbench: {msg}");
    exit(2)
}

/// The command line after the program name: the subcommand, then `--name value` flags.
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
        self.list.contains(&flag)
    }
    fn num<T: std::str::FromStr>(&self, name: &str, default: Option<T>) -> T {
        match self.get(name) {
            Some(v) => v
                .parse()
                .unwrap_or_else(|_| die(&format!("bad --{name} {v}"))),
            None => default.unwrap_or_else(|| die(&format!("--{name} is required"))),
        }
    }
    /// What follows the first `--`, if there is one.
    fn after_dashes(&self) -> Option<&[String]> {
        let pos = self.list.iter().position(|a| a == "--")?;
        Some(&self.list[pos + 1..])
    }
}

fn main() {
    let list: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = list.first().cloned() else {
        die("usage: nlbench routes|watch|count|react ...")
    };
    let args = Args { list };
    match cmd.as_str() {
        "routes" => write::cmd_routes(&args),
        "watch" => watch::cmd_watch(&args),
        "count" => watch::cmd_count(&args),
        "react" => react::cmd_react(&args),
        "rss" => rss::cmd_rss(&args),
        "dump" => dump::cmd_dump(&args),
        _ => die(&format!("unknown subcommand {cmd}")),
    }
}
