//! `symroute-hook` against the real kernel: a two-uplink host in network namespaces, routers
//! with strict reverse-path filtering, a client behind both, real pings.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use std::path::Path;

use symroute_testlab::beside::{change_lines, DaemonBeside};
use symroute_testlab::lock::DEFAULT_LOCK;
use symroute_testlab::monitor::Monitor;
use symroute_testlab::syslog::Syslog;
use symroute_testlab::{
    add_foreign_state, all_rules, assert_foreign_state, ping, root_lab, table_of, wait_until, Lab,
    Netns, PingFlow, HOST_ETH0_V4, HOST_ETH1_V4, HOST_ETH1_V6,
};

const HOOK: &str = env!("CARGO_BIN_EXE_symroute-hook");

/// The hook run inside `ns` the way a dispatcher runs it, logging to stderr.
fn hook(ns: &Netns, args: &[&str]) -> Output {
    ns.run_logged(HOOK, args)
}

/// Like [`hook`], which must succeed; its log.
fn hook_ok(ns: &Netns, args: &[&str]) -> String {
    ns.run_logged_ok(HOOK, args)
}

/// A converged lab: both uplinks synced, foreign state in place; `None` when the test is
/// skipped (not root).
fn converged_lab() -> Option<Lab> {
    let lab = root_lab()?;
    add_foreign_state(&lab);
    hook_ok(&lab.host, &["eth0", "up"]);
    hook_ok(&lab.host, &["eth1", "up"]);
    Some(lab)
}

/// Panics unless some rule of the host contains each of `has`, and none any of `lacks`.
fn assert_rules(lab: &Lab, has: &[&str], lacks: &[&str]) {
    let rules = all_rules(&lab.host);
    for want in has {
        assert!(
            rules.iter().any(|r| r.contains(want)),
            "no {want:?} in {rules:?}"
        );
    }
    for unwanted in lacks {
        assert!(
            !rules.iter().any(|r| r.contains(unwanted)),
            "{unwanted:?} in {rules:?}"
        );
    }
}

/// r2 unplugs eth1: the kernel keeps eth1's addresses and marks its IPv4 routes linkdown.
fn cut_eth1_carrier(lab: &Lab) {
    lab.r2.ip("link set down0 down");
    assert!(wait_until(Duration::from_secs(5), || {
        lab.host.ip("route show dev eth1").contains("linkdown")
    }));
}

/// r2 plugs eth1 back in, and gets back the IPv6 address it lost with its link
/// (keep_addr_on_down is off).
fn restore_eth1_carrier(lab: &Lab) {
    lab.r2.ip("link set down0 up");
    lab.r2.try_ip("-6 addr add fd02::1/64 dev down0 nodad").ok();
    assert!(wait_until(Duration::from_secs(5), || {
        !lab.host.ip("route show dev eth1").contains("linkdown")
    }));
}

/// Runs the hook for each of `events` on `dev`; panics at the first that changed anything.
fn assert_events_change_nothing(lab: &Lab, dev: &str, events: &[&str]) {
    for event in events {
        let log = hook_ok(&lab.host, &[dev, event]);
        assert!(
            change_lines(&log).is_empty(),
            "{event} changed something: {log}"
        );
    }
}

#[test]
fn both_uplinks_answer_after_up_events() {
    let Some(lab) = root_lab() else { return };
    add_foreign_state(&lab);
    assert!(ping(&lab.client, HOST_ETH0_V4));
    assert!(
        !ping(&lab.client, HOST_ETH1_V4),
        "second uplink answered without symroute"
    );

    let log = hook_ok(&lab.host, &["eth0", "up"]);
    assert!(log.contains("eth0: +rule from 10.1.0.2 lookup"), "{log}");
    hook_ok(&lab.host, &["eth1", "up"]);

    lab.assert_client_reaches_all();
    let t1 = table_of(&lab.host, "eth1");
    let rules = all_rules(&lab.host);
    for want in [
        format!("32000:\tfrom 10.2.0.2 lookup {t1} proto"),
        format!("32000:\tfrom fd02::2 lookup {t1} proto"),
    ] {
        assert!(
            rules.iter().any(|r| r.starts_with(&want)),
            "no {want:?} in {rules:?}"
        );
    }
    assert_foreign_state(&lab);
}

#[test]
fn second_run_makes_no_netlink_write() {
    let Some(lab) = converged_lab() else { return };
    let monitor = Monitor::start(&lab.host);
    monitor.marker(&lab.host, 11);

    hook_ok(&lab.host, &["eth0", "up"]);
    hook_ok(&lab.host, &["eth1", "up"]);
    hook_ok(&lab.host, &["--all"]);

    let seen = monitor.marker(&lab.host, 12);
    let writes: Vec<&String> = seen.iter().filter(|l| !l.contains("192.0.2.12")).collect();
    assert!(
        writes.is_empty(),
        "a converged rerun wrote to the kernel: {writes:?}"
    );
}

/// Every line of ours: rules of both families and the routes of both tables.
fn our_state(lab: &Lab) -> Vec<String> {
    let mut state: Vec<String> = all_rules(&lab.host)
        .into_iter()
        .filter(|r| r.contains("proto 83"))
        .collect();
    state.extend(tables(lab).concat());
    state
}

/// [`our_state`] without the kernel's `linkdown` marks.
fn our_state_unmarked(lab: &Lab) -> Vec<String> {
    our_state(lab)
        .iter()
        .map(|l| l.replace(" linkdown", ""))
        .collect()
}

#[test]
fn down_class_events_keep_what_the_kernel_still_shows() {
    let Some(lab) = converged_lab() else { return };
    let before = our_state(&lab);
    let t1 = table_of(&lab.host, "eth1");
    // Carrier lost (the router's end goes down): the kernel keeps eth1's addresses and marks
    // its IPv4 routes linkdown. NetworkManager and networkd still send their events.
    cut_eth1_carrier(&lab);
    assert_events_change_nothing(&lab, "eth1", &["no-carrier", "pre-down", "down", "off"]);
    // The same routes, only marked linkdown by the kernel.
    assert_eq!(our_state_unmarked(&lab), before);
    restore_eth1_carrier(&lab);
    // Nothing to rebuild once the carrier is back.
    assert_events_change_nothing(&lab, "eth1", &["up"]);
    lab.assert_client_reaches_all();

    // What the kernel says is gone goes: the address removed, then `down`.
    lab.host.ip("addr del 10.2.0.2/24 dev eth1");
    let log = hook_ok(&lab.host, &["eth1", "down"]);
    assert!(log.contains("-rule from 10.2.0.2"), "{log}");
    assert_rules(
        &lab,
        &[&format!("from fd02::2 lookup {t1}")],
        &["from 10.2.0.2"],
    );
    assert!(lab.host.routes(&t1, false).is_empty());
    assert!(ping(&lab.client, HOST_ETH1_V6));
    assert_foreign_state(&lab);
}

/// The measured problem of two managers: with the daemon running, down-class events for a
/// link that keeps its addresses tore the table down and the daemon rebuilt it at once.
/// Now neither writes anything, and the daemon reports no fight.
#[test]
fn hook_events_beside_the_daemon_change_nothing_the_kernel_still_shows() {
    let Some(lab) = converged_lab() else { return };
    // The hook has no option for its lock: the daemon beside it shares the default one (under
    // private_run the lab's own, never the machine's).
    let mut beside = DaemonBeside::start(&lab.host, HOOK, |bin| {
        let mut cmd = lab.host.private_run(&[bin]);
        cmd.args(["-v", "--source", "netlink", "--lock-file", DEFAULT_LOCK]);
        cmd
    });
    let before = our_state(&lab);

    cut_eth1_carrier(&lab);
    assert_events_change_nothing(
        &lab,
        "eth1",
        &[
            "no-carrier",
            "pre-down",
            "down",
            "off",
            "no-carrier",
            "down",
        ],
    );
    restore_eth1_carrier(&lab);
    hook_ok(&lab.host, &["eth1", "up"]);
    lab.assert_client_reaches_all();
    assert_eq!(our_state_unmarked(&lab), before);

    let log = beside.log();
    assert!(change_lines(&log).is_empty(), "the daemon rebuilt: {log}");
    beside.assert_no_fight("");
    assert_foreign_state(&lab);
}

#[test]
fn remove_removes_only_that_interfaces_rules_and_table() {
    let Some(lab) = converged_lab() else { return };
    let (t0, t1) = (table_of(&lab.host, "eth0"), table_of(&lab.host, "eth1"));
    hook_ok(&lab.host, &["eth1", "remove"]);

    assert_rules(
        &lab,
        &[&format!("from 10.1.0.2 lookup {t0}")],
        &[&format!("lookup {t1}")],
    );
    assert!(lab.host.routes(&t1, false).is_empty() && lab.host.routes(&t1, true).is_empty());
    assert!(!lab.host.routes(&t0, false).is_empty());
    assert!(ping(&lab.client, HOST_ETH0_V4));
    assert_foreign_state(&lab);
}

#[test]
fn table_holding_foreign_routes_is_refused() {
    let Some(lab) = root_lab() else { return };
    let t1 = table_of(&lab.host, "eth1");
    lab.host.ip(&format!(
        "route add 203.0.113.0/24 via 10.2.0.1 dev eth1 table {t1} proto static"
    ));
    let before = all_rules(&lab.host);

    let out = hook(&lab.host, &["eth1", "up"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("table {t1}")),
        "error does not name the table: {stderr}"
    );
    assert_eq!(
        stderr.trim().lines().count(),
        1,
        "not a one-line error: {stderr}"
    );
    assert_eq!(all_rules(&lab.host), before);
    assert_eq!(lab.host.routes(&t1, false).len(), 1);

    // The other uplink is not held hostage by eth1's clash.
    hook_ok(&lab.host, &["eth0", "up"]);
    let out = hook(&lab.host, &["--all"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(ping(&lab.client, HOST_ETH0_V4));
}

#[test]
fn changed_address_moves_the_rule() {
    let Some(lab) = converged_lab() else { return };
    // What a DHCP client does when the lease comes back with another address: the old one
    // goes (with the last address the kernel flushes eth1's IPv4 routes, ours included), the
    // new one and the gateway route come.
    lab.host.ip("addr del 10.2.0.2/24 dev eth1");
    lab.host.ip("addr add 10.2.0.3/24 dev eth1");
    lab.host
        .ip("route add default via 10.2.0.1 dev eth1 metric 101");
    hook_ok(&lab.host, &["eth1", "up"]);

    assert_rules(&lab, &["from 10.2.0.3 "], &["from 10.2.0.2 "]);
    assert!(ping(&lab.client, "10.2.0.3"));
    assert!(ping(&lab.client, HOST_ETH0_V4));
    assert_foreign_state(&lab);
}

#[test]
fn link_down_and_up_rebuilds_the_emptied_table() {
    let Some(lab) = converged_lab() else { return };
    let t1 = table_of(&lab.host, "eth1");
    lab.host.ip("link set eth1 down");
    assert!(
        lab.host.routes(&t1, false).is_empty(),
        "kernel kept routes of a down link"
    );
    lab.host.ip("link set eth1 up");
    // The network manager puts its addresses and routes back; the kernel does not (IPv6
    // addresses go with the link unless keep_addr_on_down is set).
    lab.host
        .try_ip("-6 addr add fd02::2/64 dev eth1 nodad")
        .ok();
    lab.host
        .try_ip("route add default via 10.2.0.1 dev eth1 metric 101")
        .ok();
    lab.host
        .try_ip("-6 route add default via fd02::1 dev eth1 metric 101")
        .ok();
    hook_ok(&lab.host, &["eth1", "up"]);

    assert!(!lab.host.routes(&t1, false).is_empty());
    lab.assert_client_reaches_all();
}

#[test]
fn parallel_runs_converge_to_one_runs_state() {
    let Some(lab) = root_lab() else { return };
    let children: Vec<_> = (0..20)
        .map(|i| {
            let dev = if i % 2 == 0 { "eth0" } else { "eth1" };
            lab.host
                .private_run(&[HOOK, dev, "up"])
                .env("SYMROUTE_LOG", "stderr")
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn hook")
        })
        .collect();
    for mut child in children {
        assert!(child.wait().expect("wait hook").success());
    }
    let parallel = (sorted(all_rules(&lab.host)), tables(&lab));

    hook_ok(&lab.host, &["--flush"]);
    hook_ok(&lab.host, &["eth0", "up"]);
    hook_ok(&lab.host, &["eth1", "up"]);
    // Rules of one priority list in insertion order, which parallel runs do not fix.
    assert_eq!(parallel, (sorted(all_rules(&lab.host)), tables(&lab)));
    lab.assert_client_reaches_all();
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn tables(lab: &Lab) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for dev in ["eth0", "eth1"] {
        let t = table_of(&lab.host, dev);
        out.push(lab.host.routes(&t, false));
        out.push(lab.host.routes(&t, true));
    }
    out
}

#[test]
fn resync_under_traffic_loses_no_packet() {
    let Some(lab) = converged_lab() else { return };
    let flow = PingFlow::start(&lab.client, HOST_ETH1_V4, 400);
    for i in 0..50 {
        // Routes come and go in main through eth1 while it is re-synced.
        let route = format!("192.0.2.{}/32 via 10.2.0.1 dev eth1", i % 5);
        if i % 2 == 0 {
            lab.host.try_ip(&format!("route add {route}")).ok();
        } else {
            lab.host.try_ip(&format!("route del {route}")).ok();
        }
        hook_ok(&lab.host, &["eth1", "up"]);
    }
    flow.assert_no_loss("during re-syncs");
}

#[test]
fn down_for_vanished_interface_collects_its_rules() {
    let Some(lab) = converged_lab() else { return };
    let t1 = table_of(&lab.host, "eth1");
    lab.host.ip("link del eth1");
    hook_ok(&lab.host, &["eth1", "down"]);
    // The foreign rule stays (its table's route went with the link, so only the rule).
    assert_rules(
        &lab,
        &["from 10.1.0.2 lookup", "from 10.9.9.9 lookup 200"],
        &[&format!("lookup {t1}")],
    );
}

#[test]
fn unknown_interface_fails_and_changes_nothing() {
    let Some(lab) = converged_lab() else { return };
    let before = (all_rules(&lab.host), tables(&lab));
    let out = hook(&lab.host, &["nosuch0", "up"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim(), "error: nosuch0: no such interface");
    assert_eq!(before, (all_rules(&lab.host), tables(&lab)));
}

#[test]
fn dry_run_prints_the_plan_and_changes_nothing() {
    let Some(lab) = root_lab() else { return };
    let before = all_rules(&lab.host);
    let out = hook(&lab.host, &["--dry-run", "eth1", "up"]);
    assert!(out.status.success());
    let plan = String::from_utf8_lossy(&out.stdout);
    assert!(
        plan.lines()
            .any(|l| l.starts_with("eth1: +rule from 10.2.0.2 lookup")),
        "{plan}"
    );
    assert!(
        plan.lines()
            .any(|l| l.starts_with("eth1: +route default via 10.2.0.1 dev eth1")),
        "{plan}"
    );
    assert_eq!(before, all_rules(&lab.host));
}

#[test]
fn bad_names_are_usage_errors_and_ignored_events_succeed() {
    // No root needed: both are decided before the kernel is asked anything.
    for name in ["", "sixteen-chars-16", "a/b", "a b"] {
        let out = Command::new(HOOK)
            .args([name, "up"])
            .env("SYMROUTE_LOG", "stderr")
            .output()
            .expect("run hook");
        assert_eq!(out.status.code(), Some(2), "name {name:?}");
        assert_eq!(
            String::from_utf8_lossy(&out.stderr).trim().lines().count(),
            1
        );
    }
    for (iface, event) in [
        ("none", "hostname"),
        ("", "connectivity-change"),
        ("eth0", "pre-up"),
        ("eth0", "carrier"),
        // A typo: warned about on a terminal only, never to a dispatcher.
        ("eth0", "upp"),
    ] {
        let out = Command::new(HOOK)
            .args([iface, event])
            .stderr(Stdio::piped())
            .output()
            .expect("run hook");
        assert_eq!(out.status.code(), Some(0), "{iface} {event}");
        assert_eq!(String::from_utf8_lossy(&out.stderr), "", "{iface} {event}");
    }
    let out = Command::new(HOOK).output().expect("run hook");
    assert_eq!(out.status.code(), Some(2));
    let out = Command::new(HOOK).arg("--help").output().expect("run hook");
    assert!(out.status.success() && String::from_utf8_lossy(&out.stdout).contains("EXIT STATUS"));
}

#[test]
fn run_by_a_dispatcher_errors_reach_stderr_and_changes_reach_syslog() {
    let Some(lab) = root_lab() else { return };
    let mut syslog = Syslog::new(&lab.host);
    let hook = Path::new(HOOK);

    let out = syslog.run(hook, &["eth1", "up"], &[]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{err}");
    let change = format!("eth1: +rule from {HOST_ETH1_V4} lookup");
    // Changes go to the journal only: a dispatcher would log them a second time.
    assert!(!err.contains(&change), "{err}");
    let got = syslog.wait_for(&change, Duration::from_secs(10));
    assert!(got.iter().any(|m| m.contains(&change)), "{got:?}");

    let out = syslog.run(hook, &["eth9", "up"], &[]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("error: eth9: no such interface"), "{err}");
    let got = syslog.wait_for("eth9: no such interface", Duration::from_secs(10));
    assert!(
        got.iter().any(|m| m.contains("eth9: no such interface")),
        "{got:?}"
    );
}

#[test]
fn route_metrics_reach_the_table_and_a_second_event_writes_nothing() {
    let Some(lab) = root_lab() else { return };
    let dir = symroute_testlab::daemons::TempDir::new("hook-metrics");
    let config = dir.path().join("symroute.toml");
    symroute_testlab::daemons::write_file(
        &config,
        "[interface.eth1]\nroute_metrics = { mtu = 1400, initcwnd = 10 }\n",
        0o644,
    );
    let config = config.to_string_lossy().into_owned();
    let log = hook_ok(&lab.host, &["-c", &config, "eth1", "up"]);
    assert!(log.contains("mtu 1400 initcwnd 10"), "{log}");
    let t1 = table_of(&lab.host, "eth1");
    let table = lab.host.ip(&format!("route show table {t1}"));
    assert!(
        table.lines().all(|l| l.contains("mtu 1400 initcwnd 10")),
        "{table}"
    );
    let again = hook_ok(&lab.host, &["-c", &config, "eth1", "up"]);
    assert!(
        !again.contains("+route"),
        "a second event wrote again: {again}"
    );
    assert!(ping(&lab.client, HOST_ETH1_V4));
}

/// `[health]`: the daemon beside the hook finds eth0's upstream dead and steers new
/// connections to eth1; every event the hook then runs plans the same steering from the
/// daemon's verdicts (`/run/symroute/health`) and never undoes it.
#[test]
fn hook_events_beside_the_daemon_keep_the_health_steering() {
    use symroute_testlab::daemons::{write_file, TempDir};
    use symroute_testlab::{INTERNET_V4, INTERNET_V6};
    let Some(lab) = converged_lab() else { return };
    lab.add_internet();
    let dir = TempDir::new("hook-health");
    let config = dir.path().join("symroute.toml");
    write_file(
        &config,
        &format!(
            "[health]\ntargets = [\"{INTERNET_V4}\", \"{INTERNET_V6}\"]\ninterval = 0.2\n\
             timeout = 0.15\ndown = 3\nup = 2\n"
        ),
        0o644,
    );
    let config = config.display().to_string();
    let mut beside = DaemonBeside::start(&lab.host, HOOK, |bin| {
        let mut cmd = lab.host.private_run(&[bin]);
        cmd.args(["-v", "--source", "netlink", "--lock-file", DEFAULT_LOCK]);
        cmd.args(["--config", &config]);
        cmd
    });
    let steering = |ns: &Netns| -> Vec<String> {
        all_rules(ns)
            .into_iter()
            .filter(|r| r.contains("from all lookup") && r.contains("proto"))
            .filter(|r| !r.contains("lookup local") && !r.contains("lookup default"))
            .filter(|r| !r.starts_with("32766:"))
            .collect()
    };
    Lab::cut_upstream(&lab.r1);
    assert!(
        wait_until(Duration::from_secs(20), || steering(&lab.host).len() == 4),
        "no steering: {:?}\n{}",
        steering(&lab.host),
        beside.log()
    );
    let steered = steering(&lab.host);
    for (dev, event) in [
        ("eth0", "up"),
        ("eth0", "dhcp4-change"),
        ("eth1", "up"),
        ("eth0", "down"),
        ("eth1", "reapply"),
    ] {
        let log = hook_ok(&lab.host, &["--config", &config, dev, event]);
        assert!(
            !log.contains("steering: -"),
            "{dev} {event} undid the steering:\n{log}"
        );
        assert_eq!(steering(&lab.host), steered, "after {dev} {event}");
    }
    Lab::restore_upstream(&lab.r1);
    assert!(
        wait_until(Duration::from_secs(20), || steering(&lab.host).is_empty()),
        "steering left after the repair: {:?}",
        steering(&lab.host)
    );
    let log = hook_ok(&lab.host, &["--config", &config, "eth0", "up"]);
    assert!(!log.contains("steering: +"), "{log}");
    beside.assert_no_fight("");
}
