//! The daemon's event path against the real kernel, as a property: random sequences of
//! link, address and route changes in main (adds, deletes, replaces, appends, multipath, a
//! route behind the host, an interface becoming an uplink by a gateway, by its direct
//! routes' share of the space or by a VPN table's routes, a VIP on a macvlan, an interface
//! renumbered within a burst, our own routes deleted by someone else, an overrun forced by
//! a tiny receive buffer) leave, once the daemon has
//! caught up, exactly the state a fresh full reconcile computes: a full run would write
//! nothing. Seeded: a failure names the seed (`SYMROUTE_EVENTS_SEED` replays it).

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use symroute_core::{reconcile, Mode, Netlink, Settings, Target};
use symroute_testlab::hosts::in_netns;
use symroute_testlab::{root_lab, wait_until, Netns};

/// How long the daemon may take to catch up after a sequence (a loaded 2-core machine).
const CONVERGE: Duration = Duration::from_secs(30);

/// A small deterministic generator (xorshift64*): the same seed, the same sequence.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Destinations the sequences play with: few, so that deletes and replaces hit routes that
/// exist, and one of them also on the LAN behind the host (own routes win over its copy).
const V4: [&str; 6] = [
    "198.51.100.0/24",
    "198.51.101.0/24",
    "203.0.113.0/25",
    "203.0.113.128/25",
    "192.168.60.0/24",
    "100.64.0.0/10",
];
const V6: [&str; 3] = ["2001:db8:1::/48", "2001:db8:2::/48", "2001:db8:3::/64"];
const GW4: [&str; 2] = ["via 10.1.0.1 dev eth0", "via 10.2.0.1 dev eth1"];
const GW6: [&str; 2] = ["via fd01::1 dev eth0", "via fd02::1 dev eth1"];
const METRICS: [&str; 2] = ["", "metric 50"];

/// One random change to the host, as `ip` arguments (several for a burst); failures (a
/// delete of what is not there) are part of the game.
fn step(rng: &mut Rng, lan_table: &str) -> Vec<String> {
    let v4 = *rng.pick(&V4);
    let v6 = *rng.pick(&V6);
    let gw4 = *rng.pick(&GW4);
    let gw6 = *rng.pick(&GW6);
    let metric = *rng.pick(&METRICS);
    match rng.below(24) {
        0..=2 => vec![format!("route add {v4} {gw4} {metric}")],
        3 => vec![format!("route append {v4} {gw4} {metric}")],
        4..=5 => vec![format!("route replace {v4} {gw4} {metric}")],
        6..=7 => vec![format!("route del {v4} {metric}")],
        8 => vec![format!(
            "route replace {v4} {metric} nexthop via 10.1.0.1 dev eth0 nexthop via 10.2.0.1 dev eth1"
        )],
        9 => vec![format!("route replace {v6} {gw6} {metric}")],
        10 => vec![format!("route del {v6} {metric}")],
        11 => vec![format!(
            "route replace {v6} {metric} nexthop via fd01::1 dev eth0 nexthop via fd02::1 dev eth1"
        )],
        12 => vec![format!("route append {v6} {gw6} {metric}")],
        // Behind the host: a direct route on the LAN bridge, copied into every uplink table.
        13 => vec![format!("route replace {v4} dev lan0 {metric}")],
        // An address on eth1 comes or goes (its rule with it, and the routes that use it as
        // their preferred source, which IPv4 drops without a notification).
        14 => vec![match rng.below(3) {
            0 => "addr add 10.2.0.50/24 dev eth1".to_string(),
            1 => "addr del 10.2.0.50/24 dev eth1".to_string(),
            _ => format!("route replace {v4} via 10.2.0.1 dev eth1 src 10.2.0.50"),
        }],
        // The LAN link goes down or comes back (IPv4 drops its routes without a word).
        15 => vec![format!("link set lan0 {}", *rng.pick(&["down", "up"]))],
        // The LAN becomes an uplink or stops being one: a full run.
        16 => vec![format!(
            "route {} 0.0.0.0/1 via 192.168.50.2 dev lan0",
            *rng.pick(&["replace", "del"])
        )],
        // A tunnel whose direct routes cover the public IPv6 space (OpenVPN's `def1 ipv6`
        // split): it becomes an uplink, or stops being one, by its share of the space.
        18 => vec![format!(
            "route {} {} dev vpn0",
            *rng.pick(&["replace", "del"]),
            *rng.pick(&["2000::/4", "3000::/4"])
        )],
        // The table a foreign catch-all rule looks up before main (wg-quick's): its default
        // makes the tunnel an uplink, other routes there are copied into the tunnel's table.
        19 => vec![format!(
            "route {} {} dev vpn0 table 51820",
            *rng.pick(&["replace", "del"]),
            *rng.pick(&["0.0.0.0/0", "198.51.100.0/24"])
        )],
        // A VIP comes or goes on a macvlan of eth1 (keepalived's `use_vmac`): its table takes
        // eth1's ways out.
        20 => vec![format!(
            "addr {} 10.2.0.71/32 dev mv0",
            *rng.pick(&["add", "del"])
        )],
        // eth1 renumbered in one go (a DHCP client's new lease): for a moment it has no
        // IPv4 address, and IPv4 drops its routes (and copies, and the next hops of
        // multipath routes through it, which come back with the address) without a word.
        21 => vec![
            "addr del 10.2.0.2/24 dev eth1".to_string(),
            "addr add 10.2.0.2/24 dev eth1".to_string(),
            "route replace default via 10.2.0.1 dev eth1 metric 101".to_string(),
        ],
        // Someone deletes our routes in the middle of it all.
        17 => vec![format!("route flush table {lan_table} proto 83")],
        // A burst through eth1.
        _ => (0..rng.below(60) + 1)
            .map(|i| format!("route replace 172.31.{}.0/24 {gw4}", i))
            .collect(),
    }
}

/// What a full run would write now (a dry run of the core in the namespace), one line
/// each; empty when the daemon has converged.
fn full_run_would_write(host: &Netns) -> Vec<String> {
    in_netns(host, || {
        let nl = Netlink::connect().map_err(|e| e.to_string())?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(|e| e.to_string())?;
        let report = runtime
            .block_on(reconcile(
                &nl,
                &Settings::default(),
                &Target::All,
                Mode::DryRun,
                std::path::Path::new("/nonexistent"),
            ))
            .map_err(|e| e.to_string())?;
        let mut lines: Vec<String> = report.lines().collect();
        lines.extend(report.failures.iter().map(|f| format!("failure: {f}")));
        Ok::<_, String>(lines)
    })
    .join()
    .unwrap_or_else(|_| Err("dry run panicked".into()))
    .unwrap_or_else(|e| vec![format!("dry run failed: {e}")])
}

/// `ip -force -batch` of `lines` in `host`: every line is tried; returns ip's complaints.
fn batch(host: &Netns, lines: &[String]) -> String {
    let mut child = Command::new("ip")
        .args(["-n", host.name(), "-force", "-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run ip -batch");
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all((lines.join("\n") + "\n").as_bytes())
            .expect("write ip -batch input");
    }
    let out = child.wait_with_output().expect("wait for ip -batch");
    String::from_utf8_lossy(&out.stderr).trim().to_string()
}

/// A LAN bridge behind the host, a tunnel-like `vpn0` with wg-quick's catch-all rule for
/// its table 51820 (empty at first), and a macvlan `mv0` on eth1 with a VIP.
fn add_lan(host: &Netns) {
    host.sh_ok_input(
        &["ip", "-batch", "-"],
        "link add lan0 type bridge
         link set lan0 up
         addr add 192.168.50.1/24 dev lan0
         tuntap add dev vpn0 mode tun
         link set vpn0 up
         addr add 10.9.0.2/24 dev vpn0
         addr add fd09::2/64 dev vpn0 nodad
         rule add not fwmark 0xca6c table 51820 priority 31000
         link add mv0 link eth1 type macvlan mode bridge
         link set mv0 up
         addr add 10.2.0.70/32 dev mv0
        ",
    );
}

/// Puts back what the sequences may have taken away, so every case starts from a working
/// two-uplink host (the default routes go with a link or an address).
fn restore(host: &Netns) {
    for args in [
        "link set lan0 up",
        "route replace default via 10.1.0.1 dev eth0 metric 100",
        "route replace default via 10.2.0.1 dev eth1 metric 101",
        "-6 route replace ::/0 via fd01::1 dev eth0 metric 100",
        "-6 route replace ::/0 via fd02::1 dev eth1 metric 101",
    ] {
        let _ = host.try_ip(args);
    }
}

fn seed() -> u64 {
    std::env::var("SYMROUTE_EVENTS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed_2026_1207)
}

/// Runs `cases` random sequences against a running daemon started with `args`.
fn sequences(args: &[&str], cases: usize, steps: usize, seed: u64, burst: usize) -> String {
    let Some(lab) = root_lab() else {
        return String::new();
    };
    let host = &lab.host;
    add_lan(host);
    let lan_table = table_of(host, "eth1");
    assert!(
        !full_run_would_write(host).is_empty(),
        "the check sees nothing to do on a host symroute never touched"
    );
    let daemon = Symrouted::start(host, args);
    // What the kernel said during each case, for a failure message.
    let monitor = Monitor::start(host);
    let mut rng = Rng(seed | 1);
    for case in 0..cases {
        let case_seed = rng.next();
        let mut case_rng = Rng(case_seed | 1);
        let mut done = Vec::new();
        for _ in 0..steps {
            done.extend(step(&mut case_rng, &lan_table));
        }
        // One burst: the daemon sees the whole sequence at once, or in whatever pieces
        // it happens to drain.
        monitor.marker(host, 10);
        let errors = batch(host, &done);
        if burst > 0 {
            eth1_routes(host, "add", burst as u32);
            eth1_routes(host, "del", burst as u32);
        }
        let t = Instant::now();
        let mut left = Vec::new();
        let converged = wait_until(CONVERGE, || {
            left = full_run_would_write(host);
            left.is_empty()
        });
        if !converged {
            let kernel = monitor.marker(host, 11);
            panic!(
                "case {case} (seed {seed}, case seed {case_seed}): a full run would still write \
                 {left:#?}\nafter:\n{}\n(ip: {errors})\nthe kernel said:\n{}\nrules, \
                 addresses and main now:\n{}\n{}\n{}\ndaemon log:\n{}",
                done.join("\n"),
                kernel.join("\n"),
                host.sh_ok(&["ip", "rule"]),
                host.sh_ok(&["ip", "-br", "addr"]),
                host.sh_ok(&["ip", "route"]),
                daemon.log()
            );
        }
        // (Shown with a later case's failure: what led up to it.)
        eprintln!(
            "case {case}: {} changes, converged after {:?}:\n  {}",
            done.len(),
            t.elapsed(),
            done.join("\n  ")
        );
        restore(host);
    }
    let log = daemon.log();
    let mut daemon = daemon;
    daemon.assert_running();
    assert!(daemon.terminate().success());
    log
}

#[test]
fn random_event_sequences_leave_what_a_full_run_computes() {
    let log = sequences(&["--source", "netlink"], 24, 10, seed(), 0);
    if log.is_empty() {
        return;
    }
    // The main-table route changes were written on the event path, not by runs.
    assert!(
        log.lines()
            .any(|l| l.contains("event path:") && !l.contains(": 0 change")),
        "no change went the event path:\n{log}"
    );
}

#[test]
fn after_an_overrun_the_event_path_still_converges() {
    let log = sequences(
        &["--source", "netlink", "--receive-buffer", "4096"],
        3,
        10,
        seed() ^ 0xdead_beef,
        3000,
    );
    if log.is_empty() {
        return;
    }
    assert!(log.contains("overrun"), "no overrun was forced:\n{log}");
}
