//! `symrouted` following the real NetworkManager through the host's faults and a hostile
//! local user: forged signals from an unprivileged user change nothing and cannot starve
//! kernel events; after NetworkManager or the system bus restarts the daemon follows again,
//! and while the bus is gone it follows the kernel alone; a bus that first appears after the
//! daemon started (the boot order) is followed as soon as its socket is created.

mod common;

use std::process::Stdio;
use std::time::{Duration, Instant};

use common::*;
use symroute_testlab::daemons::{
    routing_state, symroute_rules, wait_symmetric, DhcpLab, NetworkManager, TempDir,
    NETWORKMANAGER_PROGRAMS,
};
use symroute_testlab::{root_with, say, slow_tests, test_name, wait_until, Lab};

const UPLINKS: [&str; 2] = ["eth0", "eth1"];
const FORGER: &str = include_str!("forge_signals.py");
/// The unprivileged user the forgeries come from.
const NOBODY: &str = "65534";

/// What the tests here need besides NetworkManager: the forger and the user it runs as.
const FORGING: [&str; 2] = ["setpriv", "/usr/bin/python3"];

/// Waits (at most `secs` seconds) for a log line after the first `from` containing one of
/// `needles`.
#[track_caller]
fn expect_line(daemon: &Symrouted, from: usize, needles: &[&str], secs: u64) {
    let logged = |l: &String| needles.iter().any(|n| l.contains(n));
    eventually(
        Duration::from_secs(secs),
        &format!("{needles:?} logged"),
        || daemon.lines().iter().skip(from).any(logged),
    );
}

/// The operator does `act` to NetworkManager (or its bus); then the daemon must log one of
/// `needles` within `secs` seconds. Returns how many lines it had logged before.
#[track_caller]
fn after(l: &mut NmLab, act: fn(&mut NetworkManager), needles: &[&str], secs: u64) -> usize {
    let from = l.daemon.lines().len();
    act(&mut l.nm);
    expect_line(&l.daemon, from, needles, secs);
    from
}

/// A DHCP renumber of eth1 (r2's server moves to another pool) is followed. With
/// SYMROUTE_SLOW_TESTS=1 or CI=true (`slow_tests`) it is the silent one: no reactivation,
/// the lease is refused at renewal and rebound to a new address about 105 s later, which
/// NetworkManager 1.42 dispatches to no script. Otherwise eth1 is reactivated, which takes a
/// second, and a visible line says the silent one was left out.
fn assert_renumber_followed(l: &mut NmLab) {
    let signals = l.eth1_signals();
    let r = if slow_tests() {
        l.renumber_eth1(false, Duration::from_secs(150))
    } else {
        say(&format!(
            "{}: renumber by reactivation only; the silent DHCP rebind runs with \
             SYMROUTE_SLOW_TESTS=1 or CI=true",
            test_name()
        ));
        l.renumber_eth1(true, Duration::from_secs(30))
    };
    eprintln!(
        "{}: {:?} -> {:?}, symmetric after {:?}",
        test_name(),
        r.old,
        r.new,
        r.took
    );
    l.assert_renumber_followed(&r, signals);
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
    let Some(mut l) = nm_lab(&UPLINKS, &FORGING) else {
        return;
    };
    let test = test_name();
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
    let Some(mut l) = nm_lab(&UPLINKS, &FORGING) else {
        return;
    };
    after(
        &mut l,
        NetworkManager::restart,
        &["NetworkManager is on the bus"],
        20,
    );
    wait_symmetric(&l.lab, &UPLINKS, Duration::from_secs(30));
    assert_renumber_followed(&mut l);
    assert!(l.daemon.terminate().success());
}

/// The system bus goes away (NetworkManager with it): the daemon follows the kernel alone
/// meanwhile, reconnects when the bus is back, and catches a renumber after that (the silent
/// one with SYMROUTE_SLOW_TESTS=1).
#[test]
fn system_bus_restarted_is_reconnected_and_the_kernel_followed_meanwhile() {
    let Some(mut l) = nm_lab(&UPLINKS, &FORGING) else {
        return;
    };
    let gone = "lost the system bus connection";
    let from = after(&mut l, NetworkManager::stop_bus, &[gone], 20);
    l.daemon.assert_running();
    assert_kernel_followed(&l.lab, "while the bus is gone");
    // The daemon ends up waiting for the socket to be created again (stop_bus removes it;
    // an attempt made while it was still there fails first). Logged at debug level.
    expect_line(&l.daemon, from, &["system_bus_socket to be created"], 20);

    let t = Instant::now();
    let back = [
        "on the system bus; following NetworkManager",
        "NetworkManager is on the bus",
    ];
    after(&mut l, NetworkManager::start_bus, &back, 60);
    eprintln!(
        "{}: following NetworkManager {:?} after the bus came back",
        test_name(),
        t.elapsed()
    );
    // One line for the loss and one for the return, not one per attempt.
    let lost = l.daemon.count(gone);
    assert_eq!(lost, 1, "{}", l.daemon.log());
    let noise: Vec<String> = l
        .daemon
        .lines()
        .into_iter()
        .filter(|l| l.starts_with("warning:") && !l.contains(gone))
        .collect();
    assert!(noise.is_empty(), "{noise:#?}");
    wait_symmetric(&l.lab, &UPLINKS, Duration::from_secs(30));
    assert_renumber_followed(&mut l);
    assert!(l.daemon.terminate().success());
}

/// The boot order: the unit starts the daemon before dbus. It starts with no socket at the
/// bus's path, follows the kernel, and as soon as dbus-daemon creates its socket connects
/// (woken by inotify, not by a timer: no attempt is made before), follows NetworkManager once
/// that is on the bus, tells systemd so in STATUS=, and catches a renumber through it.
#[test]
fn a_system_bus_that_appears_after_start_is_followed_at_once() {
    if !root_with(&[NETWORKMANAGER_PROGRAMS, &FORGING].concat()) {
        return;
    }
    let lab = DhcpLab::two_uplinks();
    let root = TempDir::new("nm-root");
    let mut nm = NetworkManager::start(&lab.host, root.path(), &UPLINKS);
    nm.stop_bus();
    let daemon = Symrouted::start_with(
        &lab.host,
        &["--source", "auto"],
        &[("DBUS_SYSTEM_BUS_ADDRESS", &nm.bus_address())],
    );
    daemon.expect_log("no system bus yet", Duration::from_secs(10));
    assert_kernel_followed(&lab, "before the bus");

    let from = daemon.lines().len();
    let t = Instant::now();
    nm.start_bus();
    expect_line(
        &daemon,
        from,
        &[
            "NetworkManager is on the bus",
            "on the system bus; following NetworkManager (",
        ],
        10,
    );
    let took = t.elapsed();
    daemon.wait_notify("STATUS=following rtnetlink and NetworkManager");
    eprintln!(
        "{}: following NetworkManager {took:?} after starting the bus",
        test_name()
    );
    let attempts = daemon.count("system bus still unreachable");
    assert_eq!(attempts, 0, "attempts on a timer:\n{}", daemon.log());
    let mut l = NmLab {
        daemon,
        nm,
        _root: root,
        lab,
    };
    wait_symmetric(&l.lab, &UPLINKS, Duration::from_secs(30));
    assert_renumber_followed(&mut l);
    assert!(l.daemon.terminate().success());
}
