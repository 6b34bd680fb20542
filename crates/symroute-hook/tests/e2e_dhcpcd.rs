//! End to end with the real dhcpcd (Debian's dhcpcd-base) on a host without NetworkManager
//! or networkd: dhcpcd configures both uplinks from dnsmasq on strict reverse-path-filtering
//! routers, and its hook, exactly as `scripts/install-integrations.sh` installs it, runs
//! symroute-hook. Nobody runs symroute-hook by hand.
//!
//! dhcpcd runs in a private mount namespace inside the lab's host namespace with the test's
//! own hook folder (bind-mounted over dhcpcd's), configuration, /run and /var/lib/dhcpcd.
//! The machine's own are never touched.

use std::path::Path;
use std::time::Duration;

use symroute_testlab::daemons::{
    check_symmetric_v4, find_program, global_addrs, has_new_lease, install_for_hook, ready_test,
    routing_state, rules_of, tail, wait_symmetric_v4, write_file, Daemon, DhcpLab, PrivateMounts,
};
use symroute_testlab::wait_until;

const HOOK: &str = env!("CARGO_BIN_EXE_symroute-hook");
const FAST_RENEWAL: [&str; 2] = ["--dhcp-option=option:T1,3", "--dhcp-option=option:T2,5"];

/// dhcpcd's hook folder on this machine: the one the test hides behind its own.
fn hook_dir() -> Option<&'static str> {
    ["/usr/lib/dhcpcd/dhcpcd-hooks", "/lib/dhcpcd/dhcpcd-hooks"]
        .into_iter()
        .find(|d| Path::new(d).is_dir())
}

#[test]
fn dhcpcd_bound_new_address_and_carrier_loss_keep_the_rules_in_step() {
    let programs = ["dhcpcd", "dnsmasq", "nsenter", "unshare", "ping"];
    let Some(test) = ready_test(&programs) else {
        return;
    };
    let Some(hooks) = hook_dir() else {
        panic!("{test}: dhcpcd is installed but has no hook folder");
    };
    let mut lab = DhcpLab::two_uplinks_with(&FAST_RENEWAL);
    // Installed where this dhcpcd looks, inside the test's root.
    let script = format!("{}/50-symroute", &hooks[1..]);
    let root = install_for_hook(HOOK, "dhcpcd", &[&script]);
    let ours = root.path().join(script);
    let conf = root.path().join("etc/dhcpcd.conf");
    // IPv4 only (the lab's IPv6 comes from router advertisements, not tested here); no
    // resolv.conf, no hostname, no link-local fallback.
    write_file(
        &conf,
        "ipv4only\nnoipv4ll\nnohook resolv.conf, hostname\noption routers\nmetric 100\n\
         interface eth1\nmetric 101\n",
        0o644,
    );
    let setup = format!(
        "mount -o remount,ro /sys
         mount -t tmpfs -o mode=0755 symroute-test /run
         mount -t tmpfs -o mode=0755 symroute-test /var/lib/dhcpcd
         mount --bind '{dir}' '{hooks}'
         if [ -e /dev/log ] && [ ! -L /dev/log ]; then mount --bind /dev/null /dev/log || true; fi",
        dir = ours.parent().expect("hook folder").display(),
    );
    let mounts = PrivateMounts::new(&lab.host, &setup);
    let dhcpcd = find_program("dhcpcd").expect("dhcpcd");
    let mut cmd = mounts.command(&dhcpcd);
    cmd.arg("--config").arg(&conf).args([
        "--nobackground",
        "--nodev",
        "--debug",
        "-4",
        "eth0",
        "eth1",
    ]);
    let log = root.path().join("dhcpcd.log");
    let mut daemon = Daemon::spawn("dhcpcd", cmd, &log);

    let host = &lab.host;
    let dhcpcd_log = || format!("dhcpcd:\n{}", tail(&log, 40));
    wait_symmetric_v4(
        host,
        &lab.client,
        &["eth0", "eth1"],
        Duration::from_secs(40),
        dhcpcd_log,
    );
    daemon.assert_running();
    let before = global_addrs(host, "eth1", false);

    // A new pool and no memory of leases: the renewal is refused, dhcpcd binds a new address.
    lab.renumber_r2();
    let host = &lab.host;
    let ok = wait_until(Duration::from_secs(60), || {
        has_new_lease(host, "eth1", &before)
            && check_symmetric_v4(host, &lab.client, &["eth0", "eth1"]).is_ok()
    });
    assert!(
        ok,
        "eth1 had {before:?}: {:?}\n{}\ndhcpcd:\n{}",
        check_symmetric_v4(host, &lab.client, &["eth0", "eth1"]),
        routing_state(host),
        tail(&log, 40)
    );

    // eth1 loses its carrier: dhcpcd drops the address (NOCARRIER), its rules go with it;
    // eth0 is untouched.
    lab.set_carrier(1, false);
    let ok = wait_until(Duration::from_secs(20), || {
        rules_of(host, "eth1").is_empty()
    });
    assert!(
        ok,
        "eth1's rules stayed after carrier loss\n{}\ndhcpcd:\n{}",
        routing_state(host),
        tail(&log, 40)
    );
    check_symmetric_v4(host, &lab.client, &["eth0"]).unwrap_or_else(|e| panic!("eth0: {e}"));
    daemon.stop();
    drop(mounts);
}
