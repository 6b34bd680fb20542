//! `symrouted` following the real NetworkManager through the host's faults and a hostile
//! local user: forged signals from an unprivileged user change nothing and cannot starve
//! kernel events; after NetworkManager or the system bus restarts the daemon follows again,
//! and while the bus is gone it follows the kernel alone.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use symroute_testlab::daemons::{
    global_addrs, require_programs, routing_state, stale_rules, symroute_rules, wait_symmetric,
    POOL_R2_NEXT,
};
use symroute_testlab::{require_root, wait_until, Lab};

const UPLINKS: [&str; 2] = ["eth0", "eth1"];
const FORGER: &str = include_str!("forge_signals.py");
/// The unprivileged user the forgeries come from.
const NOBODY: &str = "65534";

fn ready(test: &str) -> bool {
    require_root(test)
        && require_programs(
            test,
            &[
                "NetworkManager",
                "nmcli",
                "dbus-daemon",
                "dnsmasq",
                "nsenter",
                "unshare",
                "setpriv",
                "nft",
                "ping",
                "/usr/bin/python3",
            ],
        )
}

/// Lines of the daemon's log that say NetworkManager's own signals marked eth1.
fn eth1_signals(daemon: &Symrouted) -> usize {
    daemon
        .lines()
        .iter()
        .filter(|l| l.contains("names: {\"eth1\"}"))
        .count()
}

/// Index of the first log line after `from` containing one of `needles`.
fn wait_line(daemon: &Symrouted, from: usize, needles: &[&str], timeout: Duration) -> bool {
    wait_until(timeout, || {
        daemon
            .lines()
            .iter()
            .skip(from)
            .any(|l| needles.iter().any(|n| l.contains(n)))
    })
}

/// With SYMROUTE_SLOW_TESTS=1 the renumber is the silent one: no reactivation, the lease is
/// refused at renewal and rebound to a new address about 105 s later, which NetworkManager
/// 1.42 dispatches to no script. Otherwise eth1 is reactivated, which takes a second.
fn silent() -> bool {
    std::env::var_os("SYMROUTE_SLOW_TESTS").is_some()
}

/// A DHCP renumber of eth1 (r2's server moves to another pool): the new address answers,
/// nothing stale is left, and NetworkManager's own signals about eth1 reached the daemon —
/// the proof that it follows the bus again.
fn assert_renumber_followed(l: &mut NmLab, test: &str) {
    let host = &l.lab.host;
    let old = global_addrs(host, "eth1", false);
    let signals = eth1_signals(&l.daemon);
    l.lab.dhcp2.set_pool(POOL_R2_NEXT.0, POOL_R2_NEXT.1);
    let t = Instant::now();
    let wait = if silent() {
        Duration::from_secs(150)
    } else {
        l.nm.nmcli_ok(&["device", "down", "eth1"]);
        l.nm.nmcli_ok(&["device", "up", "eth1"]);
        Duration::from_secs(30)
    };
    let host = &l.lab.host;
    let renewed = wait_until(wait, || {
        let now = global_addrs(host, "eth1", false);
        now.len() == 1 && now != old
    });
    assert!(renewed, "no new lease:\n{}", routing_state(host));
    wait_symmetric(&l.lab, &UPLINKS, Duration::from_secs(20));
    let new = global_addrs(host, "eth1", false);
    eprintln!(
        "{test}: {old:?} -> {new:?}, symmetric after {:?}",
        t.elapsed()
    );
    assert!(stale_rules(host).is_empty(), "{:?}", stale_rules(host));
    assert_eq!(symroute_rules(host).len(), 4, "{}", routing_state(host));
    assert!(
        wait_until(Duration::from_secs(10), || eth1_signals(&l.daemon)
            > signals),
        "no NetworkManager signal about eth1 reached the daemon:\n{}",
        l.daemon.log()
    );
}

/// An address added on eth1 by hand gets its rule, and loses it when removed: the kernel is
/// followed.
fn assert_kernel_followed(lab: &Lab, what: &str) {
    let table = table_of(&lab.host, "eth1");
    lab.host.ip("addr add 10.2.0.77/24 dev eth1");
    assert!(
        wait_until(Duration::from_secs(10), || has_rule(
            &lab.host,
            "10.2.0.77",
            &table
        )),
        "{what}: no rule for an address added on eth1:\n{}",
        routing_state(&lab.host)
    );
    lab.host.ip("addr del 10.2.0.77/24 dev eth1");
    assert!(
        wait_until(Duration::from_secs(10), || !has_rule(
            &lab.host,
            "10.2.0.77",
            &table
        )),
        "{what}: the rule of a removed address stayed:\n{}",
        routing_state(&lab.host)
    );
}

/// What the daemon maintains on the host: its rules and its tables' routes.
fn our_state(lab: &Lab) -> String {
    let mut rules = symroute_rules(&lab.host);
    rules.sort();
    let mut s = format!("{rules:?}\n");
    for dev in UPLINKS {
        let table = table_of(&lab.host, dev);
        for v6 in [false, true] {
            s.push_str(&format!(
                "{dev} {:?}\n",
                destinations(&lab.host, &table, v6)
            ));
        }
    }
    s
}

/// A local user without privileges (uid 65534) floods the bus with forged NetworkManager
/// signals, to the daemon's unique name and broadcast: config objects NetworkManager never
/// had, device state changes (of made-up and of real device paths), made-up devices with
/// made-up interface names, and a forged new owner of NetworkManager's name. Nothing changes,
/// the daemon's log shows none of it handled (at most a bounded debug count), its memory stays
/// bounded, and an address added during the flood gets its rule.
#[test]
fn forged_networkmanager_signals_from_an_unprivileged_user_change_nothing() {
    let test = "forged_networkmanager_signals_from_an_unprivileged_user_change_nothing";
    if !ready(test) {
        return;
    }
    let mut l = nm_lab(test, &UPLINKS);
    let me = l
        .daemon
        .lines()
        .iter()
        .find_map(|line| {
            line.split("connected to the system bus as ")
                .nth(1)
                .map(|n| n.trim().to_string())
        })
        .expect("the daemon logs its unique name");
    let before = our_state(&l.lab);
    let lines_before = l.daemon.lines().len();
    let rss_before = l.daemon.rss_kib();
    let rounds = "300";

    let forger =
        l.nm.command(&[
            "setpriv",
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
            "/usr/bin/python3",
            "-I",
            "-c",
            FORGER,
            "/run/dbus/system_bus_socket",
            &me,
            rounds,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the forger");
    // A kernel event in the middle of the flood is still handled.
    assert_kernel_followed(&l.lab, "during the flood");
    let out = forger.wait_with_output().expect("forger");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("unicast-delivered"),
        "forger failed ({}): {stdout}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("{test}: forger: {}", stdout.trim().replace('\n', "; "));
    // And after it: every forgery has been routed by the bus by now.
    assert_kernel_followed(&l.lab, "after the flood");

    let rss_after = l.daemon.rss_kib();
    eprintln!("{test}: daemon RSS {rss_before} KiB before, {rss_after} KiB after the flood");
    assert!(
        rss_after < rss_before + 8 * 1024,
        "RSS grew from {rss_before} to {rss_after} KiB"
    );
    assert_eq!(our_state(&l.lab), before, "{}", routing_state(&l.lab.host));
    let lines = l.daemon.lines();
    let flood = &lines[lines_before..];
    let handled: Vec<&String> = flood
        .iter()
        .filter(|l| {
            l.contains("forged")
                || l.contains("NetworkManager restarted")
                || l.contains("NetworkManager is on the bus")
                || l.contains("NetworkManager left the bus")
        })
        .collect();
    assert!(handled.is_empty(), "forgeries were handled: {handled:#?}");
    // The match rules name NetworkManager's unique name and the bus driver, and zbus checks
    // the sender of what arrives against them, so hardly a forgery reaches the daemon's code;
    // what does is counted in a few debug lines at most.
    let dropped = flood
        .iter()
        .filter(|l| l.contains("D-Bus signal(s) sent by neither"))
        .count();
    assert!(dropped <= 20, "{dropped} lines about dropped signals");
    l.daemon.assert_running();
    assert!(l.daemon.terminate().success());
}

/// NetworkManager is restarted (new unique name): the daemon follows the new instance, and a
/// DHCP renumber after that (the silent one with SYMROUTE_SLOW_TESTS=1) is caught through its
/// signals.
#[test]
fn networkmanager_restarted_is_followed_again() {
    let test = "networkmanager_restarted_is_followed_again";
    if !ready(test) {
        return;
    }
    let mut l = nm_lab(test, &UPLINKS);
    let from = l.daemon.lines().len();
    l.nm.restart();
    assert!(
        wait_line(
            &l.daemon,
            from,
            &["NetworkManager is on the bus"],
            Duration::from_secs(20)
        ),
        "{}",
        l.daemon.log()
    );
    wait_symmetric(&l.lab, &UPLINKS, Duration::from_secs(30));
    assert_renumber_followed(&mut l, test);
    assert!(l.daemon.terminate().success());
}

/// The system bus goes away (NetworkManager with it): the daemon follows the kernel alone
/// meanwhile, reconnects when the bus is back, and catches a renumber after that (the silent
/// one with SYMROUTE_SLOW_TESTS=1).
#[test]
fn system_bus_restarted_is_reconnected_and_the_kernel_followed_meanwhile() {
    let test = "system_bus_restarted_is_reconnected_and_the_kernel_followed_meanwhile";
    if !ready(test) {
        return;
    }
    let mut l = nm_lab(test, &UPLINKS);
    let from = l.daemon.lines().len();
    l.nm.stop_bus();
    assert!(
        wait_line(
            &l.daemon,
            from,
            &["lost the system bus connection"],
            Duration::from_secs(20)
        ),
        "{}",
        l.daemon.log()
    );
    l.daemon.assert_running();
    assert_kernel_followed(&l.lab, "while the bus is gone");
    // At least one reconnect attempt fails before the bus is back (logged at debug level).
    assert!(
        wait_line(
            &l.daemon,
            from,
            &["system bus still unreachable"],
            Duration::from_secs(20)
        ),
        "{}",
        l.daemon.log()
    );

    let from = l.daemon.lines().len();
    let t = Instant::now();
    l.nm.start_bus();
    assert!(
        wait_line(
            &l.daemon,
            from,
            &[
                "following NetworkManager again",
                "NetworkManager is on the bus"
            ],
            Duration::from_secs(60)
        ),
        "{}",
        l.daemon.log()
    );
    eprintln!(
        "{test}: following NetworkManager again {:?} after the bus came back",
        t.elapsed()
    );
    // One line for the loss and one for the return, not one per attempt.
    let lost = l
        .daemon
        .lines()
        .iter()
        .filter(|l| l.contains("lost the system bus connection"))
        .count();
    assert_eq!(lost, 1, "{}", l.daemon.log());
    let noise: Vec<String> = l
        .daemon
        .lines()
        .into_iter()
        .filter(|l| l.starts_with("warning:") && !l.contains("lost the system bus connection"))
        .collect();
    assert!(noise.is_empty(), "{noise:#?}");
    wait_symmetric(&l.lab, &UPLINKS, Duration::from_secs(30));
    assert_renumber_followed(&mut l, test);
    assert!(l.daemon.terminate().success());
}
