//! End to end with the real NetworkManager: a two-uplink host whose uplinks get their
//! addresses from dnsmasq on strict reverse-path-filtering routers (DHCPv4 and SLAAC), and
//! the dispatcher script exactly as `scripts/install-integrations.sh` installs it. Nobody
//! runs symroute-hook by hand: NetworkManager's own dispatcher does, on its own events.
//!
//! Each test builds its own namespaces, private mount namespace, D-Bus and NetworkManager
//! (see `symroute_testlab::daemons`); the machine's NetworkManager and files are untouched.

use std::path::Path;
use std::time::{Duration, Instant};

use symroute_testlab::beside::{fights, start_symrouted, symrouted_next_to, RuleWatch};
use symroute_testlab::daemons::{
    global_addrs, ifindex, install_integrations, require_programs, routing_state, stale_rules,
    symroute_rules, wait_symmetric, DhcpLab, NetworkManager, TempDir, POOL_R2_NEXT,
};
use symroute_testlab::{ping, require_root, wait_until};

const HOOK: &str = env!("CARGO_BIN_EXE_symroute-hook");
const UPLINKS: [&str; 2] = ["eth0", "eth1"];

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
                "nft",
                "ping",
            ],
        )
}

/// A DHCP lab with NetworkManager on the host. Fields drop in order: NetworkManager first,
/// the namespaces last.
struct NmLab {
    nm: NetworkManager,
    _root: TempDir,
    lab: DhcpLab,
}

/// Builds the lab, installs the dispatcher script with the project's installer (SBINDIR =
/// where cargo built symroute-hook), starts NetworkManager and waits until both uplinks
/// are activated and symmetric.
fn nm_lab(test: &str) -> NmLab {
    let started = Instant::now();
    let lab = DhcpLab::two_uplinks();
    let root = TempDir::new("nm-root");
    let sbindir = Path::new(HOOK).parent().expect("hook directory");
    let installed = install_integrations(sbindir, root.path(), "networkmanager");
    let script = root
        .path()
        .join("etc/NetworkManager/dispatcher.d/50-symroute");
    assert!(
        installed.contains(&script.display().to_string()),
        "{installed}"
    );
    let text = std::fs::read_to_string(&script).expect("installed dispatcher script");
    assert!(
        text.contains(&format!("HOOK={HOOK}")) && !text.contains("@SBINDIR@"),
        "{text}"
    );

    let nm = NetworkManager::start(&lab.host, root.path(), &UPLINKS);
    wait_symmetric(&lab, &UPLINKS, Duration::from_secs(30));
    eprintln!(
        "{test}: both uplinks symmetric {:?} after start; events: {:?}",
        started.elapsed(),
        nm.events()
    );
    for dev in UPLINKS {
        assert_eq!(nm.device_state(dev), "connected", "{dev}");
    }
    NmLab {
        nm,
        _root: root,
        lab,
    }
}

#[test]
fn networkmanager_dhcp_uplinks_are_symmetric_through_the_dispatcher_script() {
    if !ready("networkmanager_dhcp_uplinks_are_symmetric_through_the_dispatcher_script") {
        return;
    }
    let NmLab { nm, lab, .. } =
        &nm_lab("networkmanager_dhcp_uplinks_are_symmetric_through_the_dispatcher_script");

    // The addresses really came from DHCP: inside the pools, not the static lab's .2.
    for (dev, net) in [("eth0", "10.1.0."), ("eth1", "10.2.0.")] {
        let v4 = global_addrs(&lab.host, dev, false);
        assert!(
            v4.len() == 1 && v4[0].starts_with(net) && !v4[0].ends_with(".2"),
            "{dev}: {v4:?}"
        );
    }
    // Both uplinks had their `up`, and the hook ran on it (the rules exist and the
    // dispatcher's output shows its change lines).
    let events = nm.events();
    for dev in UPLINKS {
        assert!(events.contains(&format!("{dev} up")), "{events:?}");
    }
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
    assert!(stale_rules(&lab.host).is_empty());

    // `nmcli device reapply` dispatches `reapply`: the hook runs again and changes nothing.
    let rules = symroute_rules(&lab.host);
    nm.nmcli_ok(&["device", "reapply", "eth1"]);
    assert!(
        nm.wait_event("eth1 reapply", 1, Duration::from_secs(10)),
        "{:?}",
        nm.events()
    );
    wait_symmetric(lab, &UPLINKS, Duration::from_secs(10));
    assert_eq!(symroute_rules(&lab.host), rules);
}

#[test]
fn networkmanager_carrier_loss_longer_than_the_down_delay_heals_by_itself() {
    let test = "networkmanager_carrier_loss_longer_than_the_down_delay_heals_by_itself";
    if !ready(test) {
        return;
    }
    let NmLab { nm, lab, .. } = &nm_lab(test);
    let mut eth0 = global_addrs(&lab.host, "eth0", false);
    eth0.extend(global_addrs(&lab.host, "eth0", true));

    // r2 unplugs: the host's eth1 loses carrier. NetworkManager waits a few seconds, then
    // takes the device down and dispatches `down`; the hook removes eth1's rules.
    let lost = Instant::now();
    lab.set_carrier(1, false);
    let removed = wait_until(Duration::from_secs(20), || {
        nm.events().contains(&"eth1 down".to_string())
            && symroute_rules(&lab.host)
                .iter()
                .all(|(from, _)| eth0.contains(from))
    });
    assert!(
        removed,
        "eth1's rules still there: {:?}\n{}",
        nm.events(),
        routing_state(&lab.host)
    );
    eprintln!(
        "{test}: down + rules removed {:?} after carrier loss; device {}",
        lost.elapsed(),
        nm.device_state("eth1")
    );
    assert!(
        stale_rules(&lab.host).is_empty(),
        "{:?}",
        stale_rules(&lab.host)
    );
    // eth0 is unaffected meanwhile.
    for a in &eth0 {
        assert!(ping(&lab.client, a), "{a} unreachable while eth1 is down");
    }

    // Carrier back: NetworkManager reactivates (dhcp4-change, up) and the dispatcher script
    // alone makes eth1 symmetric again.
    let back = Instant::now();
    lab.set_carrier(1, true);
    wait_symmetric(lab, &UPLINKS, Duration::from_secs(30));
    eprintln!(
        "{test}: symmetric again {:?} after carrier returned; events: {:?}",
        back.elapsed(),
        nm.events()
    );
    let events = nm.events();
    let down = events.iter().position(|e| e == "eth1 down").expect("down");
    assert!(
        events[down..].contains(&"eth1 up".to_string()),
        "{events:?}"
    );
    assert!(
        stale_rules(&lab.host).is_empty(),
        "{:?}",
        stale_rules(&lab.host)
    );
}

#[test]
fn networkmanager_new_lease_after_reactivation_leaves_no_old_rule() {
    let test = "networkmanager_new_lease_after_reactivation_leaves_no_old_rule";
    if !ready(test) {
        return;
    }
    let NmLab { nm, lab, .. } = &mut nm_lab(test);
    let old = global_addrs(&lab.host, "eth1", false);
    assert_eq!(old.len(), 1, "{old:?}");

    // r2's DHCP server forgets its leases and moves to another pool: the host's request
    // for its old address is refused at the next activation and it gets a new one.
    lab.dhcp2.set_pool(POOL_R2_NEXT.0, POOL_R2_NEXT.1);
    let t = Instant::now();
    nm.nmcli_ok(&["device", "down", "eth1"]);
    nm.nmcli_ok(&["device", "up", "eth1"]);
    let renewed = wait_until(Duration::from_secs(30), || {
        let now = global_addrs(&lab.host, "eth1", false);
        now.len() == 1 && now != old
    });
    assert!(renewed, "{}", routing_state(&lab.host));
    wait_symmetric(lab, &UPLINKS, Duration::from_secs(30));
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
    assert!(
        stale_rules(&lab.host).is_empty(),
        "{:?}",
        stale_rules(&lab.host)
    );
    assert_eq!(rules.len(), 4, "{}", routing_state(&lab.host));
}

#[test]
fn networkmanager_vanished_uplink_leaves_nothing_behind() {
    let test = "networkmanager_vanished_uplink_leaves_nothing_behind";
    if !ready(test) {
        return;
    }
    let NmLab { nm, lab, .. } = &nm_lab(test);
    let eth1_table = (1000 + ifindex(&lab.host, "eth1")).to_string();
    let eth0_rules: Vec<_> = symroute_rules(&lab.host)
        .into_iter()
        .filter(|(_, t)| *t != eth1_table)
        .collect();

    // The device disappears (a USB NIC pulled, a VPN or VLAN deleted): the kernel drops its
    // addresses and routes but not the rules pointing at its table. NetworkManager then
    // dispatches `down` for a name that no longer exists; the hook cleans up and exits 0.
    lab.host.ip("link del eth1");
    let cleaned = wait_until(Duration::from_secs(15), || {
        nm.events().contains(&"eth1 down".to_string()) && stale_rules(&lab.host).is_empty()
    });
    assert!(
        cleaned,
        "stale rules after eth1 vanished: {:?}\n{:?}\n{}",
        stale_rules(&lab.host),
        nm.events(),
        routing_state(&lab.host)
    );
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
    let sbin = TempDir::new("fake-sbin");
    let calls = sbin.path().join("calls");
    symroute_testlab::daemons::write_file(
        &sbin.path().join("symroute-hook"),
        &format!("#!/bin/sh\necho \"$*\" >> '{}'\n", calls.display()),
        0o755,
    );
    let root = TempDir::new("nm-script-root");
    let first = install_integrations(sbin.path(), root.path(), "networkmanager");
    let again = install_integrations(sbin.path(), root.path(), "networkmanager");
    let script = root
        .path()
        .join("etc/NetworkManager/dispatcher.d/50-symroute");
    assert!(first.contains("installed"), "{first}");
    assert!(
        again.contains("unchanged") && !again.contains("installed"),
        "{again}"
    );
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&script)
        .expect("script")
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o755);

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
    for (iface, action, passed) in cases {
        let _ = std::fs::remove_file(&calls);
        let out = std::process::Command::new(&script)
            .args([iface, action])
            .env_clear()
            .output()
            .expect("run the dispatcher script");
        assert!(out.status.success(), "{iface} {action}: {out:?}");
        let got = std::fs::read_to_string(&calls).unwrap_or_default();
        let want = if passed {
            format!("{iface} {action}\n")
        } else {
            String::new()
        };
        assert_eq!(got, want, "{iface} {action}");
    }

    // The hook's exit status is NetworkManager's to log.
    symroute_testlab::daemons::write_file(
        &sbin.path().join("symroute-hook"),
        "#!/bin/sh\nexit 1\n",
        0o755,
    );
    let out = std::process::Command::new(&script)
        .args(["eth1", "up"])
        .env_clear()
        .output()
        .expect("run the dispatcher script");
    assert_eq!(out.status.code(), Some(1));
    // No hook installed (symroute removed, script left behind): nothing to do, no failure.
    std::fs::remove_file(sbin.path().join("symroute-hook")).expect("rm");
    let out = std::process::Command::new(&script)
        .args(["eth1", "up"])
        .env_clear()
        .output()
        .expect("run the dispatcher script");
    assert!(out.status.success());
}

/// Lines of a symroute log that changed something (`eth1: +rule from ...`).
fn change_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains(": +") || l.contains(": -"))
        .map(str::to_string)
        .collect()
}

/// Installed as the packages install it: the dispatcher script *and* the daemon following
/// NetworkManager's bus. Activation, carrier cut, renumber, reapply and device off: one end
/// state, eth0 reachable throughout, no rule torn down while its address is still there, no
/// fight reported.
#[test]
fn networkmanager_with_the_daemon_beside_the_script_makes_no_churn_and_no_fight() {
    let test = "networkmanager_with_the_daemon_beside_the_script_makes_no_churn_and_no_fight";
    if !ready(test) {
        return;
    }
    let NmLab { nm, lab, .. } = &mut nm_lab(test);
    let watch = RuleWatch::start(&lab.host);
    let dir = TempDir::new("nm-beside");
    let daemon_bin = symrouted_next_to(Path::new(HOOK));
    let cmd = nm.command(&[&daemon_bin.to_string_lossy(), "-v", "--source", "nm"]);
    let mut daemon = start_symrouted(cmd, &dir.path().join("symrouted.log"));
    assert!(
        daemon.log().contains("NetworkManager manages"),
        "{}",
        daemon.log()
    );
    // Activation was the script's; the daemon finds nothing to change.
    assert!(change_lines(&daemon.log()).is_empty(), "{}", daemon.log());
    let mut eth0 = global_addrs(&lab.host, "eth0", false);
    eth0.extend(global_addrs(&lab.host, "eth0", true));
    let eth0_reachable = |lab: &DhcpLab| {
        for a in &eth0 {
            assert!(ping(&lab.client, a), "{a} unreachable");
        }
    };

    // Carrier cut longer than NetworkManager's down delay, then back.
    lab.set_carrier(1, false);
    let down = wait_until(Duration::from_secs(20), || {
        nm.events().contains(&"eth1 down".to_string())
            && symroute_rules(&lab.host)
                .iter()
                .all(|(from, _)| eth0.contains(from))
    });
    assert!(down, "{:?}\n{}", nm.events(), routing_state(&lab.host));
    eth0_reachable(lab);
    lab.set_carrier(1, true);
    wait_symmetric(lab, &UPLINKS, Duration::from_secs(30));

    // Renumber: a new lease at the next activation.
    let old = global_addrs(&lab.host, "eth1", false);
    lab.dhcp2.set_pool(POOL_R2_NEXT.0, POOL_R2_NEXT.1);
    nm.nmcli_ok(&["device", "down", "eth1"]);
    nm.nmcli_ok(&["device", "up", "eth1"]);
    assert!(
        wait_until(Duration::from_secs(30), || {
            let now = global_addrs(&lab.host, "eth1", false);
            now.len() == 1 && now != old
        }),
        "{}",
        routing_state(&lab.host)
    );
    wait_symmetric(lab, &UPLINKS, Duration::from_secs(30));
    eth0_reachable(lab);

    // Reconfigure in place: nothing changes.
    let rules = symroute_rules(&lab.host);
    let reapplies = nm.events().iter().filter(|e| *e == "eth1 reapply").count();
    nm.nmcli_ok(&["device", "reapply", "eth1"]);
    assert!(nm.wait_event("eth1 reapply", reapplies + 1, Duration::from_secs(10)));
    wait_symmetric(lab, &UPLINKS, Duration::from_secs(10));
    assert_eq!(symroute_rules(&lab.host), rules);

    // Off, then on again.
    nm.nmcli_ok(&["device", "down", "eth1"]);
    assert!(
        wait_until(Duration::from_secs(20), || symroute_rules(&lab.host)
            .iter()
            .all(|(from, _)| eth0.contains(from))),
        "{}",
        routing_state(&lab.host)
    );
    eth0_reachable(lab);
    nm.nmcli_ok(&["device", "up", "eth1"]);
    wait_symmetric(lab, &UPLINKS, Duration::from_secs(30));

    daemon.assert_running();
    let log = daemon.log();
    assert!(fights(&log).is_empty(), "{:?}", fights(&log));
    let needless = watch.needless_removals();
    assert!(
        needless.is_empty(),
        "rules removed while their address was there: {needless:?}\ndaemon:\n{log}\nhook:\n{}",
        nm.dispatcher_output()
    );
    // eth0 was never touched: its rules never went and never came again.
    let eth0_churn: Vec<String> = watch
        .lines()
        .into_iter()
        .filter(|l| {
            l.contains("proto 83") && eth0.iter().any(|a| l.contains(&format!("from {a} ")))
        })
        .collect();
    assert!(eth0_churn.is_empty(), "{eth0_churn:?}");
    assert!(
        stale_rules(&lab.host).is_empty(),
        "{:?}",
        stale_rules(&lab.host)
    );
    eprintln!(
        "{test}: daemon made {} change(s); events: {:?}",
        change_lines(&log).len(),
        nm.events()
    );
}

/// A bridge someone else creates (Docker's `docker0`) on a device NetworkManager does not
/// leave unmanaged: NetworkManager shows it as connected externally and dispatches for it,
/// and the hook alone puts the bridge's routes into both uplink tables.
#[test]
fn networkmanager_dispatches_an_external_bridge_and_the_hook_copies_it() {
    let test = "networkmanager_dispatches_an_external_bridge_and_the_hook_copies_it";
    if !ready(test) {
        return;
    }
    let lab = DhcpLab::two_uplinks();
    let root = TempDir::new("nm-root");
    let sbindir = Path::new(HOOK).parent().expect("hook directory");
    install_integrations(sbindir, root.path(), "networkmanager");
    let nm = NetworkManager::start_with_external(&lab.host, root.path(), &UPLINKS, &["docker0"]);
    wait_symmetric(&lab, &UPLINKS, Duration::from_secs(30));

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
    let events: Vec<String> = nm
        .events()
        .into_iter()
        .filter(|e| e.starts_with("docker0 "))
        .collect();
    eprintln!(
        "{test}: docker0 events {events:?}, state {}",
        nm.device_state("docker0")
    );
    assert!(
        copied,
        "bridge not copied; docker0 events {events:?}\n{}",
        routing_state(&lab.host)
    );
    assert!(events.iter().any(|e| e == "docker0 up"), "{events:?}");
    for a in global_addrs(&lab.host, "eth1", false) {
        assert!(ping(&container, &a), "container does not reach {a}");
    }
}
