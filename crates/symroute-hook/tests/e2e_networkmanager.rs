//! End to end with the real NetworkManager: a two-uplink host whose uplinks get their
//! addresses from dnsmasq on strict reverse-path-filtering routers (DHCPv4 and SLAAC), and
//! the dispatcher script exactly as `scripts/install-integrations.sh` installs it. Nobody
//! runs symroute-hook by hand: NetworkManager's own dispatcher does, on its own events.
//!
//! Each test builds its own namespaces, private mount namespace, D-Bus and NetworkManager
//! (see `symroute_testlab::daemons`); the machine's NetworkManager and files are untouched.

use std::time::{Duration, Instant};

use symroute_testlab::beside::{change_lines, DaemonBeside};
use symroute_testlab::daemons::{
    assert_no_stale_rules, assert_reaches, docker0_is_copied_on, global_addrs, has_new_lease,
    install_for_hook, mode_of, plug_back_until_symmetric, ready_test, routing_state, stale_rules,
    symroute_rules, uplink_addrs, wait_dispatched, wait_symmetric, DhcpLab, Dispatcher, FakeHook,
    NetworkManager, TempDir, NETWORKMANAGER_PROGRAMS,
};
use symroute_testlab::{ping, table_of, wait_until, Netns};

const HOOK: &str = env!("CARGO_BIN_EXE_symroute-hook");
const UPLINKS: [&str; 2] = ["eth0", "eth1"];
/// Where the installer puts the dispatcher script, inside the root it installs into.
const SCRIPT: &str = "etc/NetworkManager/dispatcher.d/50-symroute";

/// A DHCP lab with NetworkManager on the host. Fields drop in order: NetworkManager first,
/// the namespaces last.
struct NmLab {
    /// The running test's name (libtest names its thread after it), for the log.
    test: String,
    nm: NetworkManager,
    _root: TempDir,
    lab: DhcpLab,
}

/// Builds the lab, installs the dispatcher script with the project's installer (SBINDIR =
/// where cargo built symroute-hook), starts NetworkManager (following, beside the uplinks,
/// the `external` devices others configure) and waits until both uplinks are activated and
/// symmetric. `None` when the test is skipped (not root, or NetworkManager is not installed).
fn nm_lab(external: &[&str]) -> Option<NmLab> {
    let test = ready_test(NETWORKMANAGER_PROGRAMS)?;
    let started = Instant::now();
    let lab = DhcpLab::two_uplinks();
    let root = install_for_hook(HOOK, "networkmanager", &[SCRIPT]);
    let nm = NetworkManager::start_with_external(&lab.host, root.path(), &UPLINKS, external);
    wait_symmetric(&lab, &UPLINKS, Duration::from_secs(30));
    eprintln!(
        "{test}: both uplinks symmetric {:?} after start; events: {:?}",
        started.elapsed(),
        nm.events()
    );
    for dev in UPLINKS {
        assert_eq!(nm.device_state(dev), "connected", "{dev}");
    }
    Some(NmLab {
        test,
        nm,
        _root: root,
        lab,
    })
}

/// Whether every rule of symroute's is from one of `addrs`.
fn only_rules_from(host: &Netns, addrs: &[String]) -> bool {
    symroute_rules(host)
        .iter()
        .all(|(from, _)| addrs.contains(from))
}

/// r2 unplugs for longer than NetworkManager's down delay: it takes eth1 down and dispatches
/// `down`, and the hook leaves only eth0's rules (`eth0`, its addresses), which still answer.
fn unplug_eth1_until_down(nm: &NetworkManager, lab: &DhcpLab, eth0: &[String]) {
    lab.set_carrier(1, false);
    wait_dispatched(nm, &lab.host, "eth1 down", Duration::from_secs(20), || {
        only_rules_from(&lab.host, eth0)
    });
    assert_reaches(&lab.client, eth0, "while eth1 is down");
}

/// r2's DHCP server moves to another pool and eth1 is activated again: a new lease, and
/// both uplinks symmetric again. Returns eth1's IPv4 addresses before.
fn renumber_eth1(nm: &NetworkManager, lab: &mut DhcpLab) -> Vec<String> {
    let old = global_addrs(&lab.host, "eth1", false);
    lab.renumber_r2();
    nm.nmcli_ok(&["device", "down", "eth1"]);
    nm.nmcli_ok(&["device", "up", "eth1"]);
    // One address, the new one: NetworkManager let the old lease go.
    let renewed = |host: &Netns| {
        has_new_lease(host, "eth1", &old) && global_addrs(host, "eth1", false).len() == 1
    };
    assert!(
        wait_until(Duration::from_secs(30), || renewed(&lab.host)),
        "eth1 kept {old:?}\n{}",
        routing_state(&lab.host)
    );
    wait_symmetric(lab, &UPLINKS, Duration::from_secs(30));
    old
}

/// `nmcli device reapply eth1` dispatches `reapply`: the hook runs again and changes nothing.
fn reapply_changes_nothing(nm: &NetworkManager, lab: &DhcpLab) {
    let rules = symroute_rules(&lab.host);
    let reapplies = nm.count("eth1 reapply");
    nm.nmcli_ok(&["device", "reapply", "eth1"]);
    assert!(
        nm.wait_event("eth1 reapply", reapplies + 1, Duration::from_secs(10)),
        "{:?}",
        nm.events()
    );
    wait_symmetric(lab, &UPLINKS, Duration::from_secs(10));
    assert_eq!(symroute_rules(&lab.host), rules);
}

#[test]
fn networkmanager_dhcp_uplinks_are_symmetric_through_the_dispatcher_script() {
    let Some(NmLab { nm, lab, .. }) = &nm_lab(&[]) else {
        return;
    };

    // The addresses really came from DHCP: inside the pools, not the static lab's .2.
    for (dev, net) in [("eth0", "10.1.0."), ("eth1", "10.2.0.")] {
        let v4 = global_addrs(&lab.host, dev, false);
        assert!(
            v4.len() == 1 && v4[0].starts_with(net) && !v4[0].ends_with(".2"),
            "{dev}: {v4:?}"
        );
    }
    // Both uplinks have their `up` (the hook may have made them symmetric on the earlier
    // `dhcp4-change`, so `up` can still be on its way), and the hook ran (the rules exist and
    // the dispatcher's output shows its change lines).
    let both_up = || {
        let events = nm.events();
        UPLINKS
            .iter()
            .all(|dev| events.contains(&format!("{dev} up")))
    };
    assert!(
        wait_until(Duration::from_secs(20), both_up),
        "{:?}",
        nm.events()
    );
    let out = nm.dispatcher_output();
    for dev in UPLINKS {
        assert!(out.contains(&format!("{dev}: +rule from")), "{out}");
    }
    // Exactly one rule per address, nothing stale.
    assert_eq!(
        symroute_rules(&lab.host).len(),
        4,
        "{}",
        routing_state(&lab.host)
    );
    assert_no_stale_rules(&lab.host);

    reapply_changes_nothing(nm, lab);
}

#[test]
fn networkmanager_carrier_loss_longer_than_the_down_delay_heals_by_itself() {
    let Some(NmLab { nm, lab, test, .. }) = &nm_lab(&[]) else {
        return;
    };
    let eth0 = uplink_addrs(&lab.host, "eth0");

    // r2 unplugs: the host's eth1 loses carrier. NetworkManager waits a few seconds, then
    // takes the device down and dispatches `down`; the hook removes eth1's rules, eth0 is
    // unaffected meanwhile.
    let lost = Instant::now();
    unplug_eth1_until_down(nm, lab, &eth0);
    eprintln!(
        "{test}: down + rules removed {:?} after carrier loss; device {}",
        lost.elapsed(),
        nm.device_state("eth1")
    );
    assert_no_stale_rules(&lab.host);

    // Carrier back: NetworkManager reactivates (dhcp4-change, up) and the dispatcher script
    // alone makes eth1 symmetric again.
    plug_back_until_symmetric(test, nm, lab, 1, &UPLINKS);
    let events = nm.events();
    let down = events.iter().position(|e| e == "eth1 down").expect("down");
    assert!(
        events[down..].contains(&"eth1 up".to_string()),
        "{events:?}"
    );
    assert_no_stale_rules(&lab.host);
}

#[test]
fn networkmanager_new_lease_after_reactivation_leaves_no_old_rule() {
    let Some(NmLab { nm, lab, test, .. }) = &mut nm_lab(&[]) else {
        return;
    };

    // r2's DHCP server forgets its leases and moves to another pool: the host's request
    // for its old address is refused at the next activation and it gets a new one.
    let t = Instant::now();
    let old = renumber_eth1(nm, lab);
    assert_eq!(old.len(), 1, "{old:?}");
    let new = global_addrs(&lab.host, "eth1", false);
    eprintln!(
        "{test}: {old:?} -> {new:?}, symmetric after {:?}; events: {:?}",
        t.elapsed(),
        nm.events()
    );
    assert!(
        new[0].starts_with("10.2.0.1") && new[0] != old[0],
        "{new:?}"
    );

    let rules = symroute_rules(&lab.host);
    assert!(
        !rules.iter().any(|(from, _)| *from == old[0]),
        "rule for the old address {} left: {rules:?}",
        old[0]
    );
    assert_no_stale_rules(&lab.host);
    assert_eq!(rules.len(), 4, "{}", routing_state(&lab.host));
}

#[test]
fn networkmanager_vanished_uplink_leaves_nothing_behind() {
    let Some(NmLab { nm, lab, .. }) = &nm_lab(&[]) else {
        return;
    };
    let eth1_table = table_of(&lab.host, "eth1");
    let eth0_rules: Vec<_> = symroute_rules(&lab.host)
        .into_iter()
        .filter(|(_, t)| *t != eth1_table)
        .collect();

    // The device disappears (a USB NIC pulled, a VPN or VLAN deleted): the kernel drops its
    // addresses and routes but not the rules pointing at its table. NetworkManager then
    // dispatches `down` for a name that no longer exists; the hook cleans up and exits 0.
    lab.host.ip("link del eth1");
    wait_dispatched(nm, &lab.host, "eth1 down", Duration::from_secs(15), || {
        stale_rules(&lab.host).is_empty()
    });
    assert_eq!(symroute_rules(&lab.host), eth0_rules);
    assert!(lab.host.routes(&eth1_table, false).is_empty());
    assert!(lab.host.routes(&eth1_table, true).is_empty());
    assert!(
        wait_until(Duration::from_secs(5), || nm
            .log()
            .lines()
            .filter(|l| l.contains("50-symroute"))
            .all(|l| l.contains("succeeded"))),
        "a dispatcher run of 50-symroute failed:\n{}",
        nm.log()
            .lines()
            .filter(|l| l.contains("dispatcher"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    for a in &eth0_rules {
        assert!(ping(&lab.client, &a.0), "{} unreachable", a.0);
    }
}

/// The installed script itself, without root or NetworkManager: run the way nm-dispatcher
/// runs it (empty environment, no PATH) against a stand-in hook that records its arguments.
#[test]
fn dispatcher_script_hands_the_right_events_to_the_hook() {
    let hook = FakeHook::new();
    let (root, first) = hook.install_twice("networkmanager");
    let script = root.path().join(SCRIPT);
    assert!(first.contains("installed"), "{first}");
    assert_eq!(mode_of(&script), 0o755);

    let cases = [
        ("eth1", "up", true),
        ("eth1", "dhcp4-change", true),
        ("eth1", "dhcp6-change", true),
        ("eth1", "reapply", true),
        ("eth1", "down", true),
        ("tun0", "vpn-up", true),
        ("tun0", "vpn-down", true),
        ("eth1", "pre-up", false),
        ("none", "hostname", false),
        ("", "connectivity-change", false),
        ("eth1", "dns-change", false),
        ("", "up", false),
    ];
    // As nm-dispatcher runs it: the device and the action as arguments, no environment.
    let dispatch = |iface: &str, action: &str| {
        std::process::Command::new(&script)
            .args([iface, action])
            .env_clear()
            .output()
            .expect("run the dispatcher script")
    };
    for (iface, action, passed) in cases {
        let out = dispatch(iface, action);
        assert!(out.status.success(), "{iface} {action}: {out:?}");
        let got = hook.take_calls();
        let want = if passed {
            format!("{iface} {action}\n")
        } else {
            String::new()
        };
        assert_eq!(got, want, "{iface} {action}");
    }

    // The hook's exit status is NetworkManager's to log.
    hook.replace("#!/bin/sh\nexit 1\n");
    assert_eq!(dispatch("eth1", "up").status.code(), Some(1));
    // No hook installed (symroute removed, script left behind): nothing to do, no failure.
    hook.remove();
    assert!(dispatch("eth1", "up").status.success());
}

/// Installed as the packages install it: the dispatcher script *and* the daemon following
/// NetworkManager's bus. Activation, carrier cut, renumber, reapply and device off: one end
/// state, eth0 reachable throughout, no rule torn down while its address is still there, no
/// fight reported.
#[test]
fn networkmanager_with_the_daemon_beside_the_script_makes_no_churn_and_no_fight() {
    let Some(NmLab { nm, lab, test, .. }) = &mut nm_lab(&[]) else {
        return;
    };
    let mut beside = DaemonBeside::start(&lab.host, HOOK, |bin| {
        nm.command(&[bin, "-v", "--source", "nm"])
    });
    assert!(
        beside.log().contains("NetworkManager manages"),
        "{}",
        beside.log()
    );
    // Activation was the script's; the daemon finds nothing to change.
    assert!(change_lines(&beside.log()).is_empty(), "{}", beside.log());
    let eth0 = uplink_addrs(&lab.host, "eth0");

    // Carrier cut longer than NetworkManager's down delay, then back.
    unplug_eth1_until_down(nm, lab, &eth0);
    plug_back_until_symmetric(test, nm, lab, 1, &UPLINKS);

    // Renumber: a new lease at the next activation.
    renumber_eth1(nm, lab);
    assert_reaches(&lab.client, &eth0, "after eth1 was renumbered");

    // Reconfigure in place: nothing changes.
    reapply_changes_nothing(nm, lab);

    // Off, then on again.
    nm.nmcli_ok(&["device", "down", "eth1"]);
    assert!(
        wait_until(Duration::from_secs(20), || only_rules_from(
            &lab.host, &eth0
        )),
        "{}",
        routing_state(&lab.host)
    );
    assert_reaches(&lab.client, &eth0, "while eth1 is off");
    nm.nmcli_ok(&["device", "up", "eth1"]);
    wait_symmetric(lab, &UPLINKS, Duration::from_secs(30));

    beside.assert_no_fight(&nm.dispatcher_output());
    // eth0 was never touched: its rules never went and never came again.
    let eth0_churn: Vec<String> = beside
        .watch
        .lines()
        .into_iter()
        .filter(|l| {
            l.contains("proto 83") && eth0.iter().any(|a| l.contains(&format!("from {a} ")))
        })
        .collect();
    assert!(eth0_churn.is_empty(), "{eth0_churn:?}");
    assert_no_stale_rules(&lab.host);
    eprintln!(
        "{test}: daemon made {} change(s); events: {:?}",
        change_lines(&beside.log()).len(),
        nm.events()
    );
}

/// A bridge someone else creates (Docker's `docker0`) on a device NetworkManager does not
/// leave unmanaged: NetworkManager shows it as connected externally and dispatches for it,
/// and the hook alone puts the bridge's routes into both uplink tables.
#[test]
fn networkmanager_dispatches_an_external_bridge_and_the_hook_copies_it() {
    let Some(NmLab { nm, lab, .. }) = &nm_lab(&["docker0"]) else {
        return;
    };
    docker0_is_copied_on(nm, &lab.host, &UPLINKS, "docker0 up");
}
