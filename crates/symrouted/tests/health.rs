//! Uplink health and outbound steering (`[health]`) with real traffic: the two-uplink lab
//! plus an "internet" address behind both routers. r1 loses its upstream while eth0's link
//! stays up; new outbound connections must move to eth1 and back, answers must stay
//! symmetric, the hook (a run beside the daemon) must never undo the steering, a daemon
//! killed during an outage must converge, and balance must spread new connections by weight.

mod common;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use symroute_testlab::daemons::TempDir;
use symroute_testlab::hosts::{tcp_source, Service};
use symroute_testlab::{
    root_lab, wait_until, Lab, Netns, HOST_ETH0_V4, HOST_ETH0_V6, HOST_ETH1_V4, HOST_ETH1_V6,
    INTERNET_V4, INTERNET_V6,
};

const SETTLE: Duration = Duration::from_secs(20);
const PORT: u16 = 7070;
/// Probe rounds of the tests: 0.2 s apart, 3 failed ones make an uplink down.
const INTERVAL: f64 = 0.2;
const DOWN: u32 = 3;
const UP: u32 = 2;

fn health_config(mode: &str, extra: &str) -> String {
    format!(
        "[health]\ntargets = [\"{INTERNET_V4}\", \"{INTERNET_V6}\"]\ninterval = {INTERVAL}\n\
         timeout = 0.15\ndown = {DOWN}\nup = {UP}\nmode = \"{mode}\"\n{extra}"
    )
}

/// The lab with its internet, and a TCP service there.
fn internet_lab() -> Option<(Lab, Service)> {
    let lab = root_lab()?;
    lab.add_internet();
    let service = Service::start(&lab.client, PORT, "internet");
    Some((lab, service))
}

/// The source a new outbound connection from the host to the internet gets (which uplink
/// it leaves through), or `None` when it is not answered within 0.5 s.
fn outbound(host: &Netns, v6: bool) -> Option<IpAddr> {
    let to = if v6 { INTERNET_V6 } else { INTERNET_V4 };
    tcp_source(host, to, PORT, Duration::from_millis(500)).ok()
}

fn ip(s: &str) -> IpAddr {
    s.parse().expect("address")
}

/// Our steering rules (no selector), as `ip rule` shows them.
fn steering(ns: &Netns) -> Vec<String> {
    our_rules(ns)
        .into_iter()
        .filter(|r| r.contains("from all lookup"))
        .collect()
}

/// Waits until both families' uplinks are probed and up in the state file at `path`.
fn wait_probed(path: &Path) {
    eventually(
        SETTLE,
        "every uplink probed and up in both families",
        || {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            text.lines()
                .filter(|l| l.starts_with("uplink ") && l.contains(" up "))
                .count()
                == 4
        },
    );
}

/// The bound of the issue: down × interval + 1 s from the first lost probe.
fn failover_bound() -> Duration {
    Duration::from_secs_f64(f64::from(DOWN) * INTERVAL + 1.0)
}

/// The source the kernel picks for a new connection to the internet (`ip route get`): cheap
/// enough to poll, where a TCP attempt into a dead uplink costs its whole timeout.
fn kernel_source(host: &Netns, v6: bool) -> Option<IpAddr> {
    let (family, to) = if v6 {
        ("-6", INTERNET_V6)
    } else {
        ("-4", INTERNET_V4)
    };
    let out = host.try_ip(&format!("{family} route get {to}")).ok()?;
    let mut words = out.split_whitespace();
    words.find(|w| *w == "src")?;
    words.next()?.parse().ok()
}

/// Waits (at most `bound`) until the kernel sends new connections of both families from
/// `v4`/`v6`, then proves it with real ones (TCP to the internet, source as picked);
/// returns how long the kernel took.
fn wait_outbound(host: &Netns, v4: &str, v6: &str, bound: Duration, what: &str) -> Duration {
    let start = Instant::now();
    let moved = wait_until(bound, || {
        kernel_source(host, false) == Some(ip(v4)) && kernel_source(host, true) == Some(ip(v6))
    });
    let took = start.elapsed();
    assert!(
        moved,
        "{what}: new connections not sent from {v4} and {v6} within {bound:?} \
         (now: {:?} / {:?}; steering: {:?})",
        kernel_source(host, false),
        kernel_source(host, true),
        steering(host)
    );
    assert_eq!(
        outbound(host, false),
        Some(ip(v4)),
        "{what}: IPv4 connection"
    );
    assert_eq!(
        outbound(host, true),
        Some(ip(v6)),
        "{what}: IPv6 connection"
    );
    took
}

#[test]
fn failover_moves_new_connections_off_a_dead_upstream_and_back() {
    let Some((lab, _service)) = internet_lab() else {
        return;
    };
    let host = &lab.host;
    let dir = TempDir::new("health-failover");
    let prom = dir.path().join("symroute.prom");
    let top = format!("metrics_textfile = \"{}\"\n", prom.display());
    let config = config_file(
        &dir,
        "symroute.toml",
        &(top + &health_config("failover", "")),
    );
    let daemon = Symrouted::start(host, &["--source", "netlink", "--config", &config]);
    wait_probed(&daemon.state_file());
    assert_eq!(outbound(host, false), Some(ip(HOST_ETH0_V4)));
    assert_eq!(outbound(host, true), Some(ip(HOST_ETH0_V6)));
    assert!(steering(host).is_empty(), "{:?}", steering(host));

    // r1's upstream dies; eth0's link, gateway and address all stay.
    Lab::cut_upstream(&lab.r1);
    let took = wait_outbound(
        host,
        HOST_ETH1_V4,
        HOST_ETH1_V6,
        failover_bound(),
        "r1's upstream cut",
    );
    eprintln!("failover took {took:?} (bound {:?})", failover_bound());
    let t1 = table_of(host, "eth1");
    let rules = steering(host);
    for want in [
        "from all lookup main suppress_prefixlength 0".to_string(),
        format!("from all lookup {t1}"),
    ] {
        assert_eq!(
            rules.iter().filter(|r| r.contains(&want)).count(),
            2,
            "{want} in both families: {rules:?}"
        );
    }
    // Answers stay symmetric: the client still reaches both uplink addresses (through r1
    // too, whose path to the host is alive).
    lab.assert_client_reaches_all();
    // Bound sockets still leave through their own uplink.
    daemon.expect_log("eth0: IPv4 is down", SETTLE);
    daemon.expect_log("eth0: IPv6 is down", SETTLE);
    assert_eq!(daemon.count("eth0: IPv4 is down"), 1);
    assert_eq!(daemon.count("eth1: IPv4 is down"), 0);
    // The textfile: eth0 down in both families, eth1 up, one transition each.
    eventually(SETTLE, "health in the metrics", || {
        let text = std::fs::read_to_string(&prom).unwrap_or_default();
        [
            "symroute_uplink_up{interface=\"eth0\",family=\"ipv4\"} 0",
            "symroute_uplink_up{interface=\"eth0\",family=\"ipv6\"} 0",
            "symroute_uplink_up{interface=\"eth1\",family=\"ipv4\"} 1",
            "symroute_uplink_transitions_total{interface=\"eth0\",family=\"ipv4\"} 1",
            "symroute_uplink_probe_loss_ratio{interface=\"eth0\",family=\"ipv4\"} 1",
        ]
        .iter()
        .all(|line| text.contains(line))
    });

    Lab::restore_upstream(&lab.r1);
    let bound = Duration::from_secs_f64(f64::from(UP) * INTERVAL + 1.0);
    wait_outbound(
        host,
        HOST_ETH0_V4,
        HOST_ETH0_V6,
        bound,
        "r1's upstream back",
    );
    eventually(SETTLE, "steering removed", || steering(host).is_empty());
    assert_eq!(daemon.count("eth0: IPv4 is up again"), 1);
    lab.assert_client_reaches_all();
}

#[test]
fn kill_9_during_an_outage_converges_and_a_run_beside_never_undoes_the_steering() {
    let Some((lab, _service)) = internet_lab() else {
        return;
    };
    let host = &lab.host;
    let dir = TempDir::new("health-kill");
    let config = config_file(&dir, "symroute.toml", &health_config("failover", ""));
    // The lock (and the state file beside it) where the hook's private /run has them.
    let lock = host.run_dir().join("lock");
    let args = ["--source", "netlink", "--config", config.as_str()];
    let daemon = Symrouted::start_locked(host, &args, &[], Some(&lock));
    wait_probed(&host.run_dir().join("health"));
    Lab::cut_upstream(&lab.r1);
    wait_outbound(
        host,
        HOST_ETH1_V4,
        HOST_ETH1_V6,
        SETTLE,
        "r1's upstream cut",
    );
    let steered = steering(host);
    assert_eq!(steered.len(), 4, "{steered:?}");

    // A run beside the daemon (what the hook does on an event) plans the same steering.
    let beside = |what: &str, expected: &[String]| {
        let out = host
            .private_run(&[DAEMON, "--once", "--config", config.as_str()])
            .env("SYMROUTE_LOG", "stderr")
            .stdin(Stdio::null())
            .output()
            .expect("run symrouted --once");
        let log = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{what}: {log}");
        assert!(
            !log.contains("steering: -rule"),
            "{what}: a run beside undid the steering:\n{log}"
        );
        assert_eq!(steering(host), expected, "{what}");
    };
    beside("with the daemon running", &steered);

    // Killed during the outage: the steering stays, a run meanwhile keeps it (the verdicts
    // are fresh), and a new daemon starts from them and converges.
    // SAFETY: signalling the daemon this test started.
    unsafe { libc::kill(daemon.id() as libc::pid_t, libc::SIGKILL) };
    drop(daemon);
    beside("with the daemon killed", &steered);
    assert_eq!(outbound(host, false), Some(ip(HOST_ETH1_V4)));
    let daemon = Symrouted::start_locked(host, &args, &[], Some(&lock));
    assert_eq!(
        steering(host),
        steered,
        "the restarted daemon undid the steering"
    );
    assert_eq!(outbound(host, false), Some(ip(HOST_ETH1_V4)));
    assert_eq!(daemon.count("is up again"), 0, "{}", daemon.log());
    Lab::restore_upstream(&lab.r1);
    wait_outbound(
        host,
        HOST_ETH0_V4,
        HOST_ETH0_V6,
        SETTLE,
        "r1's upstream back",
    );
    eventually(SETTLE, "steering removed", || steering(host).is_empty());
    beside("after the outage", &[]);
}

/// How many of 40 new connections (to 40 ports, so 40 flows) left from each source.
fn spread(host: &Netns, v6: bool) -> BTreeMap<IpAddr, usize> {
    let to = if v6 { INTERNET_V6 } else { INTERNET_V4 };
    let mut count = BTreeMap::new();
    for port in BALANCE_PORTS {
        let source = tcp_source(host, to, port, Duration::from_secs(2))
            .unwrap_or_else(|e| panic!("connection {port}: {e}"));
        *count.entry(source).or_insert(0) += 1;
    }
    count
}

const BALANCE_PORTS: std::ops::Range<u16> = 20000..20040;

#[test]
fn balance_spreads_new_connections_by_weight_and_never_through_a_dead_uplink() {
    let Some((lab, _service)) = internet_lab() else {
        return;
    };
    let host = &lab.host;
    // What an admin sets for balance (the host's choice, not symroute's): flows hashed by
    // ports too, so connections to one server spread.
    host.sysctls(&[
        ("net.ipv4.fib_multipath_hash_policy", "1"),
        ("net.ipv6.fib_multipath_hash_policy", "1"),
    ]);
    let _services: Vec<Service> = BALANCE_PORTS
        .map(|port| Service::start(&lab.client, port, "internet"))
        .collect();
    let dir = TempDir::new("health-balance");
    let config = config_file(
        &dir,
        "symroute.toml",
        &health_config("balance", "[health.weights]\neth0 = 3\neth1 = 1\n"),
    );
    let daemon = Symrouted::start(host, &["--source", "netlink", "--config", &config]);
    wait_probed(&daemon.state_file());
    eventually(SETTLE, "balance steering", || steering(host).len() == 4);
    let multipath = host.routes("1000", false).join(" ");
    assert!(
        multipath.contains("weight 3") && multipath.contains("weight 1"),
        "{multipath}"
    );

    // The kernel picks each connection's uplink by a hash seeded at random per namespace:
    // 40 connections split about 30:10 (24:16 to 36:4 in 40 runs), but a rare seed splits
    // them evenly (one CI run saw 18:22 in IPv4). Each family must use both uplinks; the
    // weights are judged over both families.
    let mut totals = (0, 0);
    for (v6, eth0, eth1) in [
        (false, HOST_ETH0_V4, HOST_ETH1_V4),
        (true, HOST_ETH0_V6, HOST_ETH1_V6),
    ] {
        let count = spread(host, v6);
        let (on0, on1) = (
            count.get(&ip(eth0)).copied().unwrap_or(0),
            count.get(&ip(eth1)).copied().unwrap_or(0),
        );
        eprintln!(
            "balance {}: eth0 {on0}, eth1 {on1}",
            if v6 { "IPv6" } else { "IPv4" }
        );
        assert_eq!(on0 + on1, 40, "{count:?}");
        assert!(on0 > 0 && on1 > 0, "one uplink left out: {count:?}");
        totals = (totals.0 + on0, totals.1 + on1);
    }
    assert!(totals.0 > totals.1, "weights 3:1 not followed: {totals:?}");

    // A run beside finds the multipath route exactly as it plans it (nothing rewritten).
    let log = ok_once(host, &["--once", "--config", &config]);
    assert!(!log.contains("steering:"), "{log}");

    // r2's upstream dies: eth1 leaves the multipath route, nothing new goes through it.
    Lab::cut_upstream(&lab.r2);
    daemon.expect_log("eth1: IPv4 is down", SETTLE);
    daemon.expect_log("eth1: IPv6 is down", SETTLE);
    eventually(SETTLE, "eth1 out of the balance", || {
        !host.routes("1000", false).join(" ").contains("eth1")
            && !host.routes("1000", true).join(" ").contains("eth1")
    });
    for (v6, eth0) in [(false, HOST_ETH0_V4), (true, HOST_ETH0_V6)] {
        let count = spread(host, v6);
        assert_eq!(count.get(&ip(eth0)), Some(&40), "{count:?}");
    }
}

#[test]
fn bad_health_configuration_is_refused_and_changes_nothing() {
    let Some(lab) = root_lab() else { return };
    let host = &lab.host;
    let dir = TempDir::new("health-bad");
    let config = config_file(
        &dir,
        "symroute.toml",
        "[health]\ntargets = [\"192.0.2.1\", \"x\"]\n",
    );
    let mut daemon = Command::new("ip");
    daemon.args([
        "netns",
        "exec",
        host.name(),
        DAEMON,
        "--once",
        "--config",
        &config,
    ]);
    assert_refused(
        daemon,
        2,
        &format!("error: {config}:2: health.targets: \"x\" is not an IP address"),
    );
    assert!(our_rules(host).is_empty(), "{:?}", our_rules(host));
}
