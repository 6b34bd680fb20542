//! `symrouted` against the real kernel: a two-uplink host in network namespaces, routers
//! with strict reverse-path filtering, a client behind both. Nobody runs a hook: whatever the
//! operator does on the host, the daemon alone has to follow.

mod common;

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::*;
use symroute_testlab::{
    ping, root_lab, wait_until, Netns, PingFlow, HOST_ETH0_V4, HOST_ETH1_V4, HOST_ETH1_V6,
};

const SETTLE: Duration = Duration::from_secs(10);

/// A DHCP renewal as the kernel sees it, no hook running: eth1's address `old` replaced by
/// `new` (the default route goes with the old address and is added back). Returns whether
/// the daemon moved the rule in time.
fn renumber_eth1(host: &Netns, old: &str, new: &str) -> bool {
    let t1 = table_of(host, "eth1");
    host.ip(&format!("addr del {old}/24 dev eth1"));
    host.ip(&format!("addr add {new}/24 dev eth1"));
    host.ip("route add default via 10.2.0.1 dev eth1 metric 101");
    wait_until(SETTLE, || {
        has_rule(host, new, &t1) && !has_rule(host, old, &t1) && mirrored(host, "eth1")
    })
}

/// One lab and one daemon for every change an operator (or a DHCP client) makes on a
/// running host, in order.
#[test]
fn daemon_follows_every_change_on_a_running_host() {
    let Some(lab) = root_lab() else { return };
    add_foreign_state(&lab);
    let host = &lab.host;
    let (t0, t1) = (table_of(host, "eth0"), table_of(host, "eth1"));
    let mut daemon = Symrouted::start(host, &["--source", "netlink", "--fight-pause", "2"]);
    eprintln!(
        "ready after {:?}; RSS {} KiB",
        daemon.started.elapsed(),
        daemon.rss_kib()
    );
    assert!(mirrored(host, "eth0") && mirrored(host, "eth1"));
    assert!(has_rule(host, HOST_ETH1_V4, &t1) && has_rule(host, HOST_ETH1_V6, &t1));
    lab.assert_client_reaches_all();

    // The DHCP renewal case: eth1's address is replaced, no hook runs.
    let t = Instant::now();
    assert!(
        renumber_eth1(host, HOST_ETH1_V4, "10.2.0.3"),
        "rule not moved: {:?}",
        our_rules(host)
    );
    eprintln!("address change followed in {:?}", t.elapsed());
    assert!(ping(&lab.client, "10.2.0.3"), "new address unreachable");
    assert!(ping(&lab.client, HOST_ETH0_V4));
    // And back, for the steps below.
    assert!(renumber_eth1(host, "10.2.0.3", HOST_ETH1_V4));

    // A route added to and deleted from main through eth1, both families.
    let t = Instant::now();
    host.ip("route add 203.0.113.0/24 via 10.2.0.1 dev eth1");
    host.ip("-6 route add 2001:db8:1::/48 via fd02::1 dev eth1");
    assert!(
        wait_until(SETTLE, || {
            destinations(host, &t1, false).contains("203.0.113.0/24")
                && destinations(host, &t1, true).contains("2001:db8:1::/48")
        }),
        "{:?}",
        host.routes(&t1, false)
    );
    eprintln!("route addition mirrored in {:?}", t.elapsed());
    host.ip("route del 203.0.113.0/24 via 10.2.0.1 dev eth1");
    host.ip("-6 route del 2001:db8:1::/48 via fd02::1 dev eth1");
    assert!(
        wait_until(SETTLE, || mirrored(host, "eth1")
            && !destinations(host, &t1, false).contains("203.0.113.0/24")),
        "{:?}",
        host.routes(&t1, false)
    );

    // A route moved from eth0 to eth1 in one replace: no stale copy in eth0's table.
    host.ip("route add 192.0.2.128/25 via 10.1.0.1 dev eth0");
    host.ip("-6 route add 2001:db8:2::/48 via fd01::1 dev eth0");
    assert!(wait_until(SETTLE, || destinations(host, &t0, false)
        .contains("192.0.2.128/25")
        && destinations(host, &t0, true).contains("2001:db8:2::/48")));
    host.ip("route replace 192.0.2.128/25 via 10.2.0.1 dev eth1");
    host.ip("-6 route replace 2001:db8:2::/48 via fd02::1 dev eth1");
    assert!(
        wait_until(SETTLE, || mirrored(host, "eth0") && mirrored(host, "eth1")),
        "eth0: {:?} eth1: {:?}",
        host.routes(&t0, false),
        host.routes(&t1, false)
    );
    assert!(!destinations(host, &t0, false).contains("192.0.2.128/25"));
    assert!(!destinations(host, &t0, true).contains("2001:db8:2::/48"));
    assert!(destinations(host, &t1, false).contains("192.0.2.128/25"));
    host.ip("route del 192.0.2.128/25");
    host.ip("-6 route del 2001:db8:2::/48");

    // Link down and up: the kernel empties the table; the network manager's routes come
    // back (here: by hand) and so must the copies.
    host.ip("link set eth1 down");
    assert!(wait_until(SETTLE, || host.routes(&t1, false).is_empty()));
    host.ip("link set eth1 up");
    reconfigure_second_uplink(host, "eth1");
    assert!(
        wait_until(SETTLE, || second_uplink_back(host, "eth1", &t1)),
        "{:?} {:?}",
        host.routes(&t1, false),
        our_rules(host)
    );
    lab.assert_client_reaches_all();

    // Someone flushes our rules and table: repaired; foreign rules never touched.
    let ours_before = our_rules(host);
    for rule in &ours_before {
        let spec = rule.split_once(":\t").map_or(rule.as_str(), |(_, s)| s);
        let family = if spec.contains(':') { "-6" } else { "-4" };
        let _ = host.try_ip(&format!("{family} rule del {spec}"));
    }
    host.ip(&format!("route flush table {t1}"));
    assert!(
        wait_until(SETTLE, || our_rules(host) == ours_before
            && mirrored(host, "eth1")),
        "not repaired: {:?}",
        our_rules(host)
    );
    assert_foreign_state(&lab);
    assert!(ping(&lab.client, HOST_ETH1_V4) && ping(&lab.client, HOST_ETH1_V6));

    // A fight: the same rule deleted again and again. The daemon backs off, says who is
    // probably doing it, and restores the rule once the pause (2 s here) is over.
    let hint = "ManageForeignRoutingPolicyRules";
    let (fought, deletions) =
        fight_rule(host, HOST_ETH1_V4, &t1, SETTLE, || daemon.count(hint) > 0);
    assert!(fought, "no fight detected after {deletions} deletions");
    let line = daemon.line_with(hint).unwrap_or_default();
    assert!(
        line.starts_with("error: eth1: ") && line.contains("systemd-networkd"),
        "{line}"
    );
    eprintln!("fight detected after {deletions} deletions: {line}");
    let _ = host.try_ip(&format!("rule del {}", rule_spec(HOST_ETH1_V4, &t1)));
    eventually(SETTLE, "the rule restored after the pause", || {
        has_rule(host, HOST_ETH1_V4, &t1)
    });

    daemon.assert_running();
    let status = daemon.terminate();
    assert!(status.success(), "exit status {status}");
    // SIGTERM leaves everything in place.
    assert!(synced(host, "eth1", HOST_ETH1_V4));
    lab.assert_client_reaches_all();
}

/// 10 000 routes added, then deleted, in main through eth1 in one `ip -batch` each: eth1's
/// table ends equal to the mirror of main, with the normal receive buffer and with one so
/// small that the kernel must drop events (the daemon then resyncs everything).
#[test]
fn bursts_of_10000_routes_end_mirrored_even_after_an_overrun() {
    let Some(lab) = root_lab() else { return };
    let host = &lab.host;
    let t1 = table_of(host, "eth1");
    // eth1's table holds `routes` IPv4 routes and mirrors main.
    let settled = |routes: usize| {
        wait_until(Duration::from_secs(60), || {
            destinations(host, &t1, false).len() == routes && mirrored(host, "eth1")
        })
    };

    for (case, args, overrun) in [
        ("normal buffer", vec!["--source", "netlink"], false),
        (
            "4 KiB buffer",
            vec!["--source", "netlink", "--receive-buffer", "4096"],
            true,
        ),
    ] {
        let daemon = Symrouted::start(host, &args);
        let base = destinations(host, &t1, false).len();
        let t = Instant::now();
        eth1_routes(host, "add", 10_000);
        let added = t.elapsed();
        assert!(
            settled(base + 10_000),
            "{case}: {}",
            mirror_diff(host, "eth1")
        );
        eprintln!(
            "{case}: 10 000 routes added in {added:?}, mirrored after {:?}",
            t.elapsed()
        );
        let t = Instant::now();
        eth1_routes(host, "del", 10_000);
        assert!(settled(base), "{case}: {}", mirror_diff(host, "eth1"));
        eprintln!(
            "{case}: 10 000 routes deleted, mirrored after {:?}",
            t.elapsed()
        );
        if overrun {
            daemon.expect_log("overrun", Duration::from_secs(10));
        } else {
            assert!(
                !daemon.log().contains("overrun"),
                "overrun with the normal buffer:\n{}",
                daemon.log()
            );
        }
        eprintln!("{case}: RSS after the bursts {} KiB", daemon.rss_kib());
        assert!(daemon.terminate().success());
    }
    assert!(ping(&lab.client, HOST_ETH1_V4));
}

/// A converged host, the daemon restarted: the new one writes nothing and a ping flow
/// through the second uplink loses no packet.
#[test]
fn restart_over_converged_tables_writes_nothing_and_drops_no_packet() {
    let Some(lab) = root_lab() else { return };
    add_foreign_state(&lab);
    let first = Symrouted::start(&lab.host, &["--source", "netlink"]);
    lab.assert_client_reaches_all();

    let monitor = Monitor::start(&lab.host);
    monitor.marker(&lab.host, 11);
    let flow = PingFlow::start(&lab.client, HOST_ETH1_V4, 300);
    assert!(first.terminate().success());
    let t = Instant::now();
    let second = Symrouted::start(&lab.host, &["--source", "netlink"]);
    eprintln!("restarted and ready in {:?}", t.elapsed());
    let writes = monitor.marker(&lab.host, 12);
    assert!(
        writes.is_empty(),
        "a restart over converged tables wrote: {writes:?}\n{}",
        second.log()
    );
    assert!(
        !second.log().contains(": +") && !second.log().contains(": -"),
        "{}",
        second.log()
    );
    flow.assert_no_loss("across the restart");
    assert_foreign_state(&lab);
}

/// `--once` syncs everything and exits; `--flush` removes everything of ours and nothing
/// else.
#[test]
fn once_syncs_and_flush_removes_only_ours() {
    let Some(lab) = root_lab() else { return };
    add_foreign_state(&lab);
    let host = &lab.host;
    ok_once(host, &["--once"]);
    assert!(mirrored(host, "eth0") && mirrored(host, "eth1"));
    assert_eq!(our_rules(host).len(), 4, "{:?}", our_rules(host));
    lab.assert_client_reaches_all();

    let second = ok_once(host, &["--once"]);
    assert!(second.trim().is_empty(), "second run: {second}");

    ok_once(host, &["--flush"]);
    assert!(our_rules(host).is_empty(), "{:?}", our_rules(host));
    for dev in ["eth0", "eth1"] {
        assert_table_empty(host, &table_of(host, dev));
    }
    assert_foreign_state(&lab);
    assert!(ping(&lab.client, HOST_ETH0_V4));
}

/// The daemon run outside any namespace with `args`: only for what is decided before the
/// kernel is asked anything.
fn symrouted(args: &[&str]) -> Output {
    Command::new(DAEMON)
        .args(args)
        .env("SYMROUTE_LOG", "stderr")
        .output()
        .expect("run symrouted")
}

#[test]
fn help_version_and_usage_errors() {
    // No root needed: all decided before the kernel is asked anything.
    let out = symrouted(&["--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for want in [
        "EXIT STATUS",
        "SIGNALS",
        "--source",
        "--once",
        "--flush",
        "NOTIFY_SOCKET",
    ] {
        assert!(help.contains(want), "--help lacks {want}:\n{help}");
    }
    assert!(!help.contains("--receive-buffer"), "test option shown");
    let out = symrouted(&["--version"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("symrouted {}", env!("CARGO_PKG_VERSION"))
    );
    for args in [
        &["--source", "carrier-pigeon"][..],
        &["--once", "--flush"],
        &["--config"],
    ] {
        assert_eq!(symrouted(args).status.code(), Some(2), "{args:?}");
    }
    let out = symrouted(&["--once", "--config", "/nonexistent/symroute.toml"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}
