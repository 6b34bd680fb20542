//! End to end with the real systemd-networkd and networkd-dispatcher: a two-uplink host whose
//! uplinks get their addresses from dnsmasq on strict reverse-path-filtering routers (DHCPv4
//! and SLAAC), with the networkd-dispatcher scripts and the networkd drop-in exactly as
//! `scripts/install-integrations.sh` installs them. Nobody runs symroute-hook by hand.
//!
//! Each test builds its own namespaces, private mount namespace, D-Bus, networkd and
//! networkd-dispatcher (see `symroute_testlab::daemons`); the machine's own are untouched.

use std::time::{Duration, Instant};

use symroute_testlab::beside::{DaemonBeside, RuleWatch};
use symroute_testlab::daemons::{
    assert_no_stale_rules, assert_reaches, check_symmetric, docker0_is_copied_on, global_addrs,
    install_for_hook, mode_of, networkd_dispatcher_scripts, plug_back_until_symmetric, ready_test,
    routing_state, rules_of, stale_rules, symroute_rules, uplink_addrs, wait_dispatched,
    wait_symmetric, DhcpLab, Dispatcher, FakeHook, Networkd, TempDir, NETWORKD_DISPATCHER_STATES,
    NETWORKD_PROGRAMS,
};
use symroute_testlab::{table_of, wait_until};

const HOOK: &str = env!("CARGO_BIN_EXE_symroute-hook");
const UPLINKS: [&str; 2] = ["eth0", "eth1"];

/// A DHCP lab with networkd on the host. Fields drop in order: the daemons first, the
/// namespaces last.
struct NdLab {
    /// The running test's name (libtest names its thread after it), for the log.
    test: String,
    nd: Networkd,
    _root: TempDir,
    lab: DhcpLab,
}

/// Builds the lab, installs the integrations (`which` as in SYMROUTE_INTEGRATIONS) with the
/// project's installer, starts networkd and networkd-dispatcher while the uplinks have no
/// carrier, then plugs them in, so every event after that is live; waits until symmetric.
/// `None` when the test is skipped (not root, or networkd is not installed).
fn nd_lab(which: &str) -> Option<NdLab> {
    let test = ready_test(NETWORKD_PROGRAMS)?;
    let started = Instant::now();
    let lab = DhcpLab::two_uplinks();
    let root = install_for_hook(HOOK, which, &networkd_dispatcher_scripts());
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
    Some(NdLab {
        test,
        nd,
        _root: root,
        lab,
    })
}

/// [`reconfigure`], which must not take any of `other`'s rules away even for a moment;
/// then both uplinks symmetric again.
fn reconfigure_leaves_the_other_alone(nd: &Networkd, lab: &DhcpLab, dev: &str, other: &str) {
    let missed = reconfigure(nd, lab, dev, other);
    assert_eq!(
        missed, 0,
        "{other}'s rules vanished while {dev} was reconfigured"
    );
    wait_symmetric(lab, &UPLINKS, Duration::from_secs(30));
}

/// The admin takes eth1 down (`networkctl down`): networkd-dispatcher reports `off`, the hook
/// removes its rules, eth0 (`eth0`, its addresses) still answers.
fn take_eth1_off(nd: &Networkd, lab: &DhcpLab, eth0: &[String]) {
    nd.networkctl_ok(&["down", "eth1"]);
    wait_dispatched(nd, &lab.host, "eth1 off", Duration::from_secs(15), || {
        rules_of(&lab.host, "eth1").is_empty()
    });
    assert_reaches(&lab.client, eth0, "while eth1 is off");
}

/// r2 unplugs: networkd-dispatcher reports `no-carrier`, the hook removes eth1's rules.
fn unplug_eth1(nd: &Networkd, lab: &DhcpLab) {
    lab.set_carrier(1, false);
    wait_dispatched(
        nd,
        &lab.host,
        "eth1 no-carrier",
        Duration::from_secs(15),
        || rules_of(&lab.host, "eth1").is_empty(),
    );
}

/// Runs `networkctl reconfigure dev` and waits until networkd has dispatched `configured`
/// for it again and `dev` is symmetric again (IPv6 included, which comes last); meanwhile
/// samples the *other* uplink's rules and returns how many samples missed any of them.
fn reconfigure(nd: &Networkd, lab: &DhcpLab, dev: &str, other: &str) -> usize {
    let other_rules = rules_of(&lab.host, other);
    assert_eq!(other_rules.len(), 2, "{}", routing_state(&lab.host));
    let configured = format!("{dev} configured");
    let before = nd.count(&configured);
    let t = Instant::now();
    nd.networkctl_ok(&["reconfigure", dev]);
    let mut missing = 0;
    let again = wait_until(Duration::from_secs(30), || {
        let now = rules_of(&lab.host, other);
        if !other_rules.iter().all(|r| now.contains(r)) {
            missing += 1;
        }
        nd.count(&configured) > before && check_symmetric(lab, &[dev]).is_ok()
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
    let Some(NdLab { nd, lab, .. }) = &nd_lab("networkd-dispatcher,networkd") else {
        return;
    };
    for dev in UPLINKS {
        assert!(nd.events().contains(&format!("{dev} routable")));
        assert!(nd.dispatcher_log().contains(&format!("{dev}: +rule from")));
    }
    assert_no_stale_rules(&lab.host);

    // With the drop-in networkd leaves our rules alone when it reconfigures a link: the other
    // uplink's rules never go, the reconfigured one is rebuilt from its events (the kernel
    // flushes the routes of its table when the lease is dropped and taken again).
    reconfigure_leaves_the_other_alone(nd, lab, "eth0", "eth1");
    reconfigure_leaves_the_other_alone(nd, lab, "eth1", "eth0");
    assert_no_stale_rules(&lab.host);

    // `off`: the admin takes eth1 down; its rules and table go, eth0 keeps working.
    let eth1_table = table_of(&lab.host, "eth1");
    let eth0_rules = rules_of(&lab.host, "eth0");
    take_eth1_off(nd, lab, &uplink_addrs(&lab.host, "eth0"));
    assert!(
        wait_until(Duration::from_secs(15), || {
            lab.host.routes(&eth1_table, false).is_empty()
                && lab.host.routes(&eth1_table, true).is_empty()
        }),
        "eth1 is off but its table is left:\n{}",
        routing_state(&lab.host)
    );
    assert_eq!(rules_of(&lab.host, "eth0"), eth0_rules);
    assert_no_stale_rules(&lab.host);

    // And back up: routable again, symmetric again.
    nd.networkctl_ok(&["up", "eth1"]);
    wait_symmetric(lab, &UPLINKS, Duration::from_secs(30));
}

#[test]
fn networkd_carrier_loss_removes_and_carrier_return_restores() {
    let Some(NdLab { nd, lab, test, .. }) = &nd_lab("networkd-dispatcher,networkd") else {
        return;
    };
    let eth0_rules = rules_of(&lab.host, "eth0");

    let t = Instant::now();
    unplug_eth1(nd, lab);
    eprintln!(
        "{test}: eth1's rules removed {:?} after carrier loss",
        t.elapsed()
    );
    assert_eq!(rules_of(&lab.host, "eth0"), eth0_rules);
    assert_no_stale_rules(&lab.host);

    plug_back_until_symmetric(test, nd, lab, 1, &UPLINKS);
    assert_no_stale_rules(&lab.host);
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
    let Some(NdLab { nd, lab, .. }) = &nd_lab("networkd-dispatcher") else {
        return;
    };
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
    let Some(NdLab { nd, lab, .. }) = &nd_lab("networkd-dispatcher,networkd") else {
        return;
    };
    let eth1_table = table_of(&lab.host, "eth1");
    let eth0_rules = rules_of(&lab.host, "eth0");

    // The link disappears: the kernel drops its addresses and routes, not the rules into its
    // table. networkd-dispatcher reports `off` (then `linger`) for a name that is gone; the
    // hook removes what is left by the table's number.
    lab.host.ip("link del eth1");
    wait_dispatched(nd, &lab.host, "eth1 off", Duration::from_secs(15), || {
        stale_rules(&lab.host).is_empty()
    });
    assert!(symroute_rules(&lab.host)
        .iter()
        .all(|(_, t)| *t != eth1_table));
    assert_eq!(rules_of(&lab.host, "eth0"), eth0_rules);
    assert_reaches(
        &lab.client,
        &uplink_addrs(&lab.host, "eth0"),
        "after eth1 vanished",
    );
}

/// The installed scripts themselves, without root or networkd: every state folder holds the
/// same script (mode exactly 0755, folders too), which passes IFACE and STATE to the hook.
#[test]
fn networkd_dispatcher_scripts_are_installed_the_way_networkd_dispatcher_wants_them() {
    let hook = FakeHook::new();
    let (root, first) = hook.install_twice("networkd-dispatcher,networkd");
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

    for state in NETWORKD_DISPATCHER_STATES {
        let dir = root
            .path()
            .join(format!("etc/networkd-dispatcher/{state}.d"));
        let script = dir.join("50-symroute");
        for p in [&dir, &script] {
            assert_eq!(mode_of(p), 0o755, "{}", p.display());
        }
        let out = std::process::Command::new(&script)
            .env_clear()
            .env("IFACE", "eth1")
            .env("STATE", state)
            .output()
            .expect("run the script");
        assert!(out.status.success(), "{state}: {out:?}");
        assert_eq!(hook.take_calls(), format!("eth1 {state}\n"));
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
    let Some(NdLab { nd, lab, test, .. }) = &mut nd_lab("networkd-dispatcher,networkd") else {
        return;
    };
    let mut beside = DaemonBeside::start(&lab.host, HOOK, |bin| nd.command(&[bin, "-v"]));
    let eth0 = uplink_addrs(&lab.host, "eth0");

    // Carrier cut, then back.
    unplug_eth1(nd, lab);
    assert_reaches(&lab.client, &eth0, "while eth1 has no carrier");
    plug_back_until_symmetric(test, nd, lab, 1, &UPLINKS);

    // Renumber: the server moves to another pool; reconfigure takes a new lease.
    let old = global_addrs(&lab.host, "eth1", false);
    lab.renumber_r2();
    reconfigure_leaves_the_other_alone(nd, lab, "eth1", "eth0");
    assert_ne!(global_addrs(&lab.host, "eth1", false), old);

    // Reconfigure the other uplink.
    reconfigure_leaves_the_other_alone(nd, lab, "eth0", "eth1");

    // Off, then up again.
    take_eth1_off(nd, lab, &uplink_addrs(&lab.host, "eth0"));
    nd.networkctl_ok(&["up", "eth1"]);
    wait_symmetric(lab, &UPLINKS, Duration::from_secs(30));

    beside.assert_no_fight(&nd.dispatcher_log());
    assert_no_stale_rules(&lab.host);
    eprintln!("{test}: events: {:?}", nd.events());
}

/// A Docker bridge is no link of networkd's, but networkd-dispatcher runs its scripts for
/// unmanaged links too: the hook gets `docker0 routable` (or `degraded`) and puts the
/// bridge's routes into both uplink tables, with no daemon and nobody running the hook.
#[test]
fn networkd_dispatcher_reports_an_unmanaged_bridge_and_the_hook_copies_it() {
    let Some(NdLab { nd, lab, .. }) = &nd_lab("networkd-dispatcher,networkd") else {
        return;
    };
    // With a container attached the bridge has carrier and a global address.
    docker0_is_copied_on(nd, &lab.host, &UPLINKS, "docker0 routable");
}
