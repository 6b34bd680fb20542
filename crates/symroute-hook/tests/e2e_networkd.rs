//! End to end with the real systemd-networkd and networkd-dispatcher: a two-uplink host whose
//! uplinks get their addresses from dnsmasq on strict reverse-path-filtering routers (DHCPv4
//! and SLAAC), with the networkd-dispatcher scripts and the networkd drop-in exactly as
//! `scripts/install-integrations.sh` installs them. Nobody runs symroute-hook by hand.
//!
//! Each test builds its own namespaces, private mount namespace, D-Bus, networkd and
//! networkd-dispatcher (see `symroute_testlab::daemons`); the machine's own are untouched.

use std::path::Path;
use std::time::{Duration, Instant};

use symroute_testlab::beside::{fights, start_symrouted, symrouted_next_to, RuleWatch};
use symroute_testlab::daemons::{
    check_symmetric, global_addrs, ifindex, install_integrations, require_programs, routing_state,
    stale_rules, symroute_rules, wait_symmetric, DhcpLab, Networkd, TempDir,
};
use symroute_testlab::{ping, require_root, wait_until, Netns};

const HOOK: &str = env!("CARGO_BIN_EXE_symroute-hook");
const UPLINKS: [&str; 2] = ["eth0", "eth1"];

fn ready(test: &str) -> bool {
    require_root(test)
        && require_programs(
            test,
            &[
                "systemd-networkd",
                "networkctl",
                "networkd-dispatcher",
                "dbus-daemon",
                "dnsmasq",
                "nsenter",
                "unshare",
                "nft",
                "ping",
            ],
        )
}

/// A DHCP lab with networkd on the host. Fields drop in order: the daemons first, the
/// namespaces last.
struct NdLab {
    nd: Networkd,
    _root: TempDir,
    lab: DhcpLab,
}

/// Builds the lab, installs the integrations (`which` as in SYMROUTE_INTEGRATIONS) with the
/// project's installer, starts networkd and networkd-dispatcher while the uplinks have no
/// carrier, then plugs them in, so every event after that is live; waits until symmetric.
fn nd_lab(test: &str, which: &str) -> NdLab {
    let started = Instant::now();
    let lab = DhcpLab::two_uplinks();
    let root = TempDir::new("nd-root");
    let sbindir = Path::new(HOOK).parent().expect("hook directory");
    let installed = install_integrations(sbindir, root.path(), which);
    for state in ["routable", "configured", "degraded", "off", "no-carrier"] {
        let script = root
            .path()
            .join(format!("etc/networkd-dispatcher/{state}.d/50-symroute"));
        assert!(
            installed.contains(&script.display().to_string()),
            "{installed}"
        );
        let text = std::fs::read_to_string(&script).expect("installed script");
        assert!(
            text.contains(&format!("HOOK={HOOK}")) && !text.contains("@SBINDIR@"),
            "{text}"
        );
    }

    lab.set_carrier(0, false);
    lab.set_carrier(1, false);
    let nd = Networkd::start(&lab.host, root.path(), &UPLINKS);
    lab.set_carrier(0, true);
    lab.set_carrier(1, true);
    wait_symmetric(&lab, &UPLINKS, Duration::from_secs(30));
    eprintln!(
        "{test}: both uplinks symmetric {:?} after start; events: {:?}",
        started.elapsed(),
        nd.events()
    );
    NdLab {
        nd,
        _root: root,
        lab,
    }
}

fn addrs(host: &Netns, dev: &str) -> Vec<String> {
    let mut a = global_addrs(host, dev, false);
    a.extend(global_addrs(host, dev, true));
    a
}

fn rules_of(host: &Netns, dev: &str) -> Vec<(String, String)> {
    let table = (1000 + ifindex(host, dev)).to_string();
    symroute_rules(host)
        .into_iter()
        .filter(|(_, t)| *t == table)
        .collect()
}

/// Runs `networkctl reconfigure dev` and waits until networkd has dispatched `configured`
/// for it again and `dev` is symmetric again (IPv6 included, which comes last); meanwhile
/// samples the *other* uplink's rules and returns how many samples missed any of them.
fn reconfigure(nd: &Networkd, lab: &DhcpLab, dev: &str, other: &str) -> usize {
    let other_rules = rules_of(&lab.host, other);
    assert_eq!(other_rules.len(), 2, "{}", routing_state(&lab.host));
    let configured = format!("{dev} configured");
    let before = nd.events().iter().filter(|e| **e == configured).count();
    let t = Instant::now();
    nd.networkctl_ok(&["reconfigure", dev]);
    let mut missing = 0;
    let again = wait_until(Duration::from_secs(30), || {
        let now = rules_of(&lab.host, other);
        if !other_rules.iter().all(|r| now.contains(r)) {
            missing += 1;
        }
        nd.events().iter().filter(|e| **e == configured).count() > before
            && check_symmetric(lab, &[dev]).is_ok()
    });
    assert!(
        again,
        "{dev} not back after reconfigure: {:?}\n{}",
        nd.events(),
        routing_state(&lab.host)
    );
    eprintln!(
        "reconfigure {dev}: back after {:?}; events: {:?}",
        t.elapsed(),
        nd.events()
    );
    missing
}

#[test]
fn networkd_dhcp_uplinks_are_symmetric_and_reconfigure_keeps_the_rules() {
    let test = "networkd_dhcp_uplinks_are_symmetric_and_reconfigure_keeps_the_rules";
    if !ready(test) {
        return;
    }
    let NdLab { nd, lab, .. } = &nd_lab(test, "networkd-dispatcher,networkd");
    for dev in UPLINKS {
        assert!(nd.events().contains(&format!("{dev} routable")));
        assert!(nd.dispatcher_log().contains(&format!("{dev}: +rule from")));
    }
    assert!(stale_rules(&lab.host).is_empty());

    // With the drop-in networkd leaves our rules alone when it reconfigures a link: the other
    // uplink's rules never go, the reconfigured one is rebuilt from its events (the kernel
    // flushes the routes of its table when the lease is dropped and taken again).
    let missed = reconfigure(nd, lab, "eth0", "eth1");
    assert_eq!(
        missed, 0,
        "eth1's rules vanished while eth0 was reconfigured"
    );
    wait_symmetric(lab, &UPLINKS, Duration::from_secs(20));
    let missed = reconfigure(nd, lab, "eth1", "eth0");
    assert_eq!(
        missed, 0,
        "eth0's rules vanished while eth1 was reconfigured"
    );
    wait_symmetric(lab, &UPLINKS, Duration::from_secs(20));
    assert!(
        stale_rules(&lab.host).is_empty(),
        "{:?}",
        stale_rules(&lab.host)
    );

    // `off`: the admin takes eth1 down; its rules and table go, eth0 keeps working.
    let eth1_table = (1000 + ifindex(&lab.host, "eth1")).to_string();
    let eth0_rules = rules_of(&lab.host, "eth0");
    nd.networkctl_ok(&["down", "eth1"]);
    let removed = wait_until(Duration::from_secs(15), || {
        nd.events().contains(&"eth1 off".to_string())
            && rules_of(&lab.host, "eth1").is_empty()
            && lab.host.routes(&eth1_table, false).is_empty()
            && lab.host.routes(&eth1_table, true).is_empty()
    });
    assert!(
        removed,
        "eth1 is off but symroute state is left: {:?}\n{}",
        nd.events(),
        routing_state(&lab.host)
    );
    assert_eq!(rules_of(&lab.host, "eth0"), eth0_rules);
    assert!(
        stale_rules(&lab.host).is_empty(),
        "{:?}",
        stale_rules(&lab.host)
    );
    for a in addrs(&lab.host, "eth0") {
        assert!(ping(&lab.client, &a), "{a} unreachable while eth1 is off");
    }

    // And back up: routable again, symmetric again.
    nd.networkctl_ok(&["up", "eth1"]);
    wait_symmetric(lab, &UPLINKS, Duration::from_secs(30));
}

#[test]
fn networkd_carrier_loss_removes_and_carrier_return_restores() {
    let test = "networkd_carrier_loss_removes_and_carrier_return_restores";
    if !ready(test) {
        return;
    }
    let NdLab { nd, lab, .. } = &nd_lab(test, "networkd-dispatcher,networkd");
    let eth0_rules = rules_of(&lab.host, "eth0");

    let t = Instant::now();
    lab.set_carrier(1, false);
    let removed = wait_until(Duration::from_secs(15), || {
        nd.events().contains(&"eth1 no-carrier".to_string())
            && rules_of(&lab.host, "eth1").is_empty()
    });
    assert!(removed, "{:?}\n{}", nd.events(), routing_state(&lab.host));
    eprintln!(
        "{test}: eth1's rules removed {:?} after carrier loss",
        t.elapsed()
    );
    assert_eq!(rules_of(&lab.host, "eth0"), eth0_rules);
    assert!(
        stale_rules(&lab.host).is_empty(),
        "{:?}",
        stale_rules(&lab.host)
    );

    let t = Instant::now();
    lab.set_carrier(1, true);
    wait_symmetric(lab, &UPLINKS, Duration::from_secs(30));
    eprintln!(
        "{test}: symmetric {:?} after carrier returned; events: {:?}",
        t.elapsed(),
        nd.events()
    );
    assert!(
        stale_rules(&lab.host).is_empty(),
        "{:?}",
        stale_rules(&lab.host)
    );
}

/// The control experiment for the drop-in: without it, networkd deletes every foreign rule
/// when it reconfigures one link, the other uplink's included, although only the
/// reconfigured link gets events. If this starts failing, networkd changed its default and
/// the drop-in may no longer be needed.
///
/// Whether the other uplink's rules come back without the drop-in is timing: while eth0's
/// lease is renewed it may be without its default route for a moment, and a hook run in that
/// moment sees eth0 behind the host and re-plans every uplink (eth1 included). So this only
/// asserts the deletion and that eth0 ends up right.
#[test]
fn networkd_without_the_dropin_deletes_the_other_uplinks_rules() {
    let test = "networkd_without_the_dropin_deletes_the_other_uplinks_rules";
    if !ready(test) {
        return;
    }
    let NdLab { nd, lab, .. } = &nd_lab(test, "networkd-dispatcher");
    // The kernel's own record of deletions: a poll could miss a rule deleted and restored
    // between two looks.
    let watch = RuleWatch::start(&lab.host);
    let eth1 = global_addrs(&lab.host, "eth1", false);
    reconfigure(nd, lab, "eth0", "eth1");
    let deleted = wait_until(Duration::from_secs(10), || {
        watch
            .lines()
            .iter()
            .any(|l| l.starts_with("Deleted") && l.contains(&format!("from {} ", eth1[0])))
    });
    assert!(deleted, "eth1's rules survived without the drop-in");
    // eth0, which had the events, has its rules back.
    assert_eq!(
        rules_of(&lab.host, "eth0").len(),
        2,
        "{}",
        routing_state(&lab.host)
    );
}

#[test]
fn networkd_vanished_uplink_leaves_nothing_behind() {
    let test = "networkd_vanished_uplink_leaves_nothing_behind";
    if !ready(test) {
        return;
    }
    let NdLab { nd, lab, .. } = &nd_lab(test, "networkd-dispatcher,networkd");
    let eth1_table = (1000 + ifindex(&lab.host, "eth1")).to_string();
    let eth0_rules = rules_of(&lab.host, "eth0");

    // The link disappears: the kernel drops its addresses and routes, not the rules into its
    // table. networkd-dispatcher reports `off` (then `linger`) for a name that is gone; the
    // hook removes what is left by the table's number.
    lab.host.ip("link del eth1");
    let cleaned = wait_until(Duration::from_secs(15), || {
        nd.events().contains(&"eth1 off".to_string()) && stale_rules(&lab.host).is_empty()
    });
    assert!(
        cleaned,
        "stale rules after eth1 vanished: {:?}\n{:?}\n{}",
        stale_rules(&lab.host),
        nd.events(),
        routing_state(&lab.host)
    );
    assert!(symroute_rules(&lab.host)
        .iter()
        .all(|(_, t)| *t != eth1_table));
    assert_eq!(rules_of(&lab.host, "eth0"), eth0_rules);
    for a in addrs(&lab.host, "eth0") {
        assert!(ping(&lab.client, &a), "{a} unreachable");
    }
}

/// The installed scripts themselves, without root or networkd: every state folder holds the
/// same script (mode exactly 0755, folders too), which passes IFACE and STATE to the hook.
#[test]
fn networkd_dispatcher_scripts_are_installed_the_way_networkd_dispatcher_wants_them() {
    use std::os::unix::fs::PermissionsExt;
    let sbin = TempDir::new("fake-sbin");
    let calls = sbin.path().join("calls");
    symroute_testlab::daemons::write_file(
        &sbin.path().join("symroute-hook"),
        &format!("#!/bin/sh\necho \"$*\" >> '{}'\n", calls.display()),
        0o755,
    );
    let root = TempDir::new("nd-script-root");
    let first = install_integrations(sbin.path(), root.path(), "networkd-dispatcher,networkd");
    let again = install_integrations(sbin.path(), root.path(), "networkd-dispatcher,networkd");
    assert!(!again.contains("installed "), "not idempotent: {again}");
    let dropin = root
        .path()
        .join("etc/systemd/networkd.conf.d/symroute.conf");
    let text = std::fs::read_to_string(&dropin).expect("drop-in");
    assert!(
        text.contains("ManageForeignRoutingPolicyRules=no"),
        "{text}"
    );
    assert!(text.contains("ManageForeignRoutes=no"), "{text}");
    assert!(first.contains(&dropin.display().to_string()), "{first}");

    for state in ["routable", "configured", "degraded", "off", "no-carrier"] {
        let dir = root
            .path()
            .join(format!("etc/networkd-dispatcher/{state}.d"));
        let script = dir.join("50-symroute");
        for p in [&dir, &script] {
            let mode = std::fs::metadata(p)
                .expect("installed")
                .permissions()
                .mode();
            assert_eq!(mode & 0o7777, 0o755, "{}", p.display());
        }
        let _ = std::fs::remove_file(&calls);
        let out = std::process::Command::new(&script)
            .env_clear()
            .env("IFACE", "eth1")
            .env("STATE", state)
            .output()
            .expect("run the script");
        assert!(out.status.success(), "{state}: {out:?}");
        assert_eq!(
            std::fs::read_to_string(&calls).unwrap_or_default(),
            format!("eth1 {state}\n")
        );
    }
    for state in ["carrier", "dormant", "configuring"] {
        let dir = root
            .path()
            .join(format!("etc/networkd-dispatcher/{state}.d"));
        assert!(!dir.join("50-symroute").exists(), "{state}");
    }
}

/// Installed as the packages install it: the networkd-dispatcher scripts, the drop-in *and*
/// the daemon. Activation, carrier cut, renumber, reconfigure and off: one end state, eth0
/// reachable throughout, no rule torn down while its address is still there, no fight.
#[test]
fn networkd_with_the_daemon_beside_the_scripts_makes_no_churn_and_no_fight() {
    let test = "networkd_with_the_daemon_beside_the_scripts_makes_no_churn_and_no_fight";
    if !ready(test) {
        return;
    }
    let NdLab { nd, lab, .. } = &mut nd_lab(test, "networkd-dispatcher,networkd");
    let watch = RuleWatch::start(&lab.host);
    let dir = TempDir::new("nd-beside");
    let daemon_bin = symrouted_next_to(Path::new(HOOK));
    let cmd = nd.command(&[&daemon_bin.to_string_lossy(), "-v"]);
    let mut daemon = start_symrouted(cmd, &dir.path().join("symrouted.log"));
    let eth0 = addrs(&lab.host, "eth0");
    let eth0_reachable = |lab: &DhcpLab| {
        for a in &eth0 {
            assert!(ping(&lab.client, a), "{a} unreachable");
        }
    };

    // Carrier cut, then back.
    lab.set_carrier(1, false);
    assert!(
        wait_until(Duration::from_secs(15), || {
            nd.events().contains(&"eth1 no-carrier".to_string())
                && rules_of(&lab.host, "eth1").is_empty()
        }),
        "{:?}\n{}",
        nd.events(),
        routing_state(&lab.host)
    );
    eth0_reachable(lab);
    lab.set_carrier(1, true);
    wait_symmetric(lab, &UPLINKS, Duration::from_secs(30));

    // Renumber: the server moves to another pool; reconfigure takes a new lease.
    let old = global_addrs(&lab.host, "eth1", false);
    lab.dhcp2.set_pool(
        symroute_testlab::daemons::POOL_R2_NEXT.0,
        symroute_testlab::daemons::POOL_R2_NEXT.1,
    );
    let missed = reconfigure(nd, lab, "eth1", "eth0");
    assert_eq!(missed, 0, "eth0's rules vanished while eth1 was renumbered");
    wait_symmetric(lab, &UPLINKS, Duration::from_secs(30));
    assert_ne!(global_addrs(&lab.host, "eth1", false), old);

    // Reconfigure the other uplink.
    let missed = reconfigure(nd, lab, "eth0", "eth1");
    assert_eq!(
        missed, 0,
        "eth1's rules vanished while eth0 was reconfigured"
    );
    wait_symmetric(lab, &UPLINKS, Duration::from_secs(30));
    let eth0 = addrs(&lab.host, "eth0");

    // Off, then up again.
    nd.networkctl_ok(&["down", "eth1"]);
    assert!(
        wait_until(Duration::from_secs(15), || nd
            .events()
            .contains(&"eth1 off".to_string())
            && rules_of(&lab.host, "eth1").is_empty()),
        "{:?}\n{}",
        nd.events(),
        routing_state(&lab.host)
    );
    for a in &eth0 {
        assert!(ping(&lab.client, a), "{a} unreachable while eth1 is off");
    }
    nd.networkctl_ok(&["up", "eth1"]);
    wait_symmetric(lab, &UPLINKS, Duration::from_secs(30));

    daemon.assert_running();
    let log = daemon.log();
    assert!(fights(&log).is_empty(), "{:?}", fights(&log));
    let needless = watch.needless_removals();
    assert!(
        needless.is_empty(),
        "rules removed while their address was there: {needless:?}\ndaemon:\n{log}\nhook:\n{}",
        nd.dispatcher_log()
    );
    assert!(
        stale_rules(&lab.host).is_empty(),
        "{:?}",
        stale_rules(&lab.host)
    );
    eprintln!("{test}: events: {:?}", nd.events());
}

/// A Docker bridge is no link of networkd's, but networkd-dispatcher runs its scripts for
/// unmanaged links too: the hook gets `docker0 routable` (or `degraded`) and puts the
/// bridge's routes into both uplink tables, with no daemon and nobody running the hook.
#[test]
fn networkd_dispatcher_reports_an_unmanaged_bridge_and_the_hook_copies_it() {
    let test = "networkd_dispatcher_reports_an_unmanaged_bridge_and_the_hook_copies_it";
    if !ready(test) {
        return;
    }
    let NdLab { nd, lab, .. } = &nd_lab(test, "networkd-dispatcher,networkd");
    let container =
        symroute_testlab::hosts::bridge_with_container(&lab.host, "docker0", "172.17", "17");
    let tables: Vec<String> = UPLINKS
        .iter()
        .map(|dev| (1000 + ifindex(&lab.host, dev)).to_string())
        .collect();
    let copied = wait_until(Duration::from_secs(30), || {
        tables.iter().all(|t| {
            lab.host
                .routes(t, false)
                .iter()
                .any(|r| r.starts_with("172.17.0.0/16 dev docker0 proto 83"))
        })
    });
    // With a container attached the bridge has carrier and a global address.
    let docker0_events = || -> Vec<String> {
        nd.events()
            .into_iter()
            .filter(|e| e.starts_with("docker0 "))
            .collect()
    };
    wait_until(Duration::from_secs(10), || {
        docker0_events().iter().any(|e| e == "docker0 routable")
    });
    let events = docker0_events();
    eprintln!("{test}: docker0 events {events:?}");
    assert!(events.iter().any(|e| e == "docker0 routable"), "{events:?}");
    assert!(
        copied,
        "bridge not copied; docker0 events {events:?}\n{}",
        routing_state(&lab.host)
    );
    for a in global_addrs(&lab.host, "eth1", false) {
        assert!(ping(&container, &a), "container does not reach {a}");
    }
}
