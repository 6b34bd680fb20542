//! End to end with the real ifupdown and isc-dhcp-client: a Debian server without
//! NetworkManager or networkd, whose uplinks are `iface ethN inet dhcp` stanzas brought up by
//! `ifup`, against dnsmasq on strict reverse-path-filtering routers. The if-up.d /
//! if-post-down.d scripts and the dhclient exit hook are exactly what
//! `scripts/install-integrations.sh` installs; nobody runs symroute-hook by hand.
//!
//! Everything runs in a private mount namespace inside the lab's host namespace: the test's
//! own /etc/network (interfaces, hook folders), /etc/dhcp, /run (ifupdown's state,
//! dhclient's pid files) and /var/lib/dhcp (leases). The machine's own are never touched.

use std::path::Path;
use std::time::Duration;

use symroute_testlab::daemons::{
    check_symmetric_v4, global_addrs, has_new_lease, install_for_hook, ready_test, routing_state,
    rules_of, symroute_rules, wait_symmetric_v4, write_file, DhcpLab, PrivateMounts, TempDir,
};
use symroute_testlab::wait_until;

const HOOK: &str = env!("CARGO_BIN_EXE_symroute-hook");

/// Renewals after 3 s (T1) instead of half the 2-minute lease, so that an address change at
/// renewal takes seconds.
const FAST_RENEWAL: [&str; 2] = ["--dhcp-option=option:T1,3", "--dhcp-option=option:T2,5"];

const PROGRAMS: &[&str] = &[
    "ifup",
    "ifdown",
    "dhclient",
    "dhclient-script",
    "run-parts",
    "dnsmasq",
    "nsenter",
    "unshare",
    "ping",
];

/// Fields drop in order: the mount namespace (and dhclient in it) first, the namespaces last.
struct IfLab {
    mounts: PrivateMounts,
    root: TempDir,
    lab: DhcpLab,
}

impl IfLab {
    /// The lab with the integrations installed and ifupdown's folders in place, nothing
    /// brought up yet; `None` when the test is skipped (not root, or ifupdown missing).
    fn new() -> Option<IfLab> {
        ready_test(PROGRAMS)?;
        let lab = DhcpLab::two_uplinks_with(&FAST_RENEWAL);
        let scripts = [
            "etc/network/if-up.d/symroute",
            "etc/network/if-post-down.d/symroute",
            "etc/dhcp/dhclient-exit-hooks.d/symroute",
        ];
        let root = install_for_hook(HOOK, "ifupdown,dhclient", &scripts);
        let etc = root.path().join("etc");
        // Metrics 100/101 as on the other labs: two default routes of one metric cannot
        // both be in main.
        write_file(
            &etc.join("network/interfaces"),
            "iface eth0 inet dhcp\n    metric 100\n\niface eth1 inet dhcp\n    metric 101\n",
            0o644,
        );
        for dir in ["if-pre-up.d", "if-down.d", "interfaces.d"] {
            std::fs::create_dir_all(etc.join("network").join(dir)).expect("mkdir");
        }
        write_file(
            &etc.join("dhcp/dhclient.conf"),
            "request subnet-mask, broadcast-address, routers, dhcp-lease-time,\n    \
             dhcp-renewal-time, dhcp-rebinding-time;\n",
            0o644,
        );
        // No resolv.conf of the test's: dhclient-script asks an enter hook first.
        write_file(
            &etc.join("dhcp/dhclient-enter-hooks.d/symroute-test-no-dns"),
            "make_resolv_conf() { :; }\n",
            0o644,
        );
        let setup = format!(
            "mount -t tmpfs -o mode=0755 symroute-test /run
             mkdir -p /run/network
             mount -t tmpfs -o mode=0755 symroute-test /var/lib/dhcp
             mount --bind '{etc}/network' /etc/network
             mount --bind '{etc}/dhcp' /etc/dhcp
             if [ -e /dev/log ] && [ ! -L /dev/log ]; then mount --bind /dev/null /dev/log || true; fi",
            etc = etc.display()
        );
        let mounts = PrivateMounts::new(&lab.host, &setup);
        Some(IfLab { mounts, root, lab })
    }

    fn ifupdown(&self, argv: &[&str]) -> String {
        let out = self.mounts.run(argv);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            out.status.success(),
            "{argv:?} failed ({}): {text}\n{}",
            out.status,
            routing_state(&self.lab.host)
        );
        text
    }
}

/// Waits until `devs` are symmetric (IPv4: the lab has no IPv6 here), with r2's DHCP log
/// in the failure.
fn wait_v4(lab: &IfLab, devs: &[&str], timeout: Duration) {
    let (host, client) = (&lab.lab.host, &lab.lab.client);
    wait_symmetric_v4(host, client, devs, timeout, || {
        format!("dnsmasq r2:\n{}", lab.lab.dhcp2.log())
    });
}

#[test]
fn ifup_renewal_with_a_new_address_and_ifdown_keep_the_rules_in_step() {
    let Some(mut lab) = IfLab::new() else { return };
    let host = &lab.lab.host;
    assert!(symroute_rules(host).is_empty());

    lab.ifupdown(&["ifup", "eth0"]);
    lab.ifupdown(&["ifup", "eth1"]);
    wait_v4(&lab, &["eth0", "eth1"], Duration::from_secs(30));
    let before = global_addrs(&lab.lab.host, "eth1", false);

    // The server forgets its leases and hands out another pool: the renewal is refused
    // (NAK), dhclient drops the address and binds a new one, with no ifupdown event at all.
    lab.lab.renumber_r2();
    let host = &lab.lab.host;
    let moved = wait_until(Duration::from_secs(60), || {
        has_new_lease(host, "eth1", &before)
    });
    assert!(
        moved,
        "eth1 kept {before:?}\n{}\ndnsmasq r2:\n{}",
        routing_state(host),
        lab.lab.dhcp2.log()
    );
    wait_v4(&lab, &["eth0", "eth1"], Duration::from_secs(30));
    for a in &before {
        assert!(
            !symroute_rules(&lab.lab.host).iter().any(|(f, _)| f == a),
            "stale rule for {a}"
        );
    }

    let out = lab.ifupdown(&["ifdown", "eth1"]);
    let host = &lab.lab.host;
    assert!(
        wait_until(Duration::from_secs(10), || rules_of(host, "eth1")
            .is_empty()),
        "eth1's rules stayed after ifdown: {:?}\n{out}\n{}",
        rules_of(host, "eth1"),
        routing_state(host)
    );
    check_symmetric_v4(host, &lab.lab.client, &["eth0"]).unwrap_or_else(|e| panic!("eth0: {e}"));

    lab.ifupdown(&["ifdown", "eth0"]);
    let host = &lab.lab.host;
    assert!(
        wait_until(Duration::from_secs(10), || symroute_rules(host).is_empty()),
        "rules left after ifdown of both: {}",
        routing_state(host)
    );
}

#[test]
fn the_hooks_never_fail_the_bring_up_and_skip_lo_and_pseudo_interfaces() {
    let Some(lab) = IfLab::new() else { return };
    let script = lab.root.path().join("etc/network/if-up.d/symroute");
    let script = script.to_string_lossy();
    // No PATH, as ifupdown and the DHCP clients may leave it: absolute paths only.
    for (iface, mode, phase) in [
        ("lo", "start", "post-up"),
        ("--all", "start", "post-up"),
        ("-v", "start", "post-up"),
        ("eth0", "start", "pre-up"),
        ("eth9", "start", "post-up"),
        ("bad name/x", "stop", "post-down"),
    ] {
        let out = lab
            .mounts
            .command(Path::new("/bin/sh"))
            .arg(&*script)
            .env_clear()
            .env("IFACE", iface)
            .env("MODE", mode)
            .env("PHASE", phase)
            .env("ADDRFAM", "inet")
            .env("METHOD", "dhcp")
            .output()
            .expect("run the if-up.d script");
        assert!(
            out.status.success(),
            "{iface} {mode} {phase}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert!(symroute_rules(&lab.lab.host).is_empty());

    // Sourced like dhclient-script does: never exits the caller, leaves no variable behind,
    // returns 0 even when the hook fails (an unknown interface).
    let hook = lab
        .root
        .path()
        .join("etc/dhcp/dhclient-exit-hooks.d/symroute");
    let probe = format!(
        "reason=BOUND interface=eth9; . '{}'; echo \"rc=$? left=${{symroute_hook:-}}${{symroute_action:-}}\"",
        hook.display()
    );
    let out = lab
        .mounts
        .command(Path::new("/bin/sh"))
        .args(["-c", &probe])
        .env_clear()
        .output()
        .expect("source the exit hook");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.trim_end().ends_with("rc=0 left="),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
