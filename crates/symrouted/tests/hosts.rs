//! The daemon on a real host: containers on bridges (one of them created while it runs), a
//! LAN behind a gateway-less NIC. Nobody runs a hook; every path that worked before
//! symroute must keep working, and each uplink address must still answer through its own
//! uplink.

mod common;

use std::time::{Duration, Instant};

use common::*;
use symroute_testlab::hosts::{
    bridge_with_container, reaches, BehindLab, SERVICE_PORT, SERVICE_TAG,
};
use symroute_testlab::{running_as_root, wait_until, HOST_ETH1_V4, HOST_ETH1_V6};

/// Generous for a loaded 2-core machine; what the daemon needs is logged.
const SETTLE: Duration = Duration::from_secs(5);

#[test]
fn daemon_keeps_containers_and_lan_working_and_follows_a_new_bridge() {
    if !running_as_root() {
        return;
    }
    let behind = BehindLab::new();
    let lab = &behind.lab;
    behind.assert_everything_behind_reaches("before symroute");

    let mut daemon = Symrouted::start(&lab.host, &["--source", "netlink"]);
    behind.assert_everything_behind_reaches("with the daemon");
    lab.assert_client_reaches_all();

    // `docker network create` + `docker run` while the daemon runs: no hook.
    let t1 = table_of(&lab.host, "eth1");
    let started = Instant::now();
    let second = bridge_with_container(&lab.host, "br-1234", "172.18", "18");
    let copied = |v6: bool, prefix: &str| {
        lab.host
            .routes(&t1, v6)
            .iter()
            .any(|r| r.starts_with(prefix))
    };
    assert!(
        wait_until(SETTLE, || copied(
            false,
            "172.18.0.0/16 dev br-1234 proto 83"
        ) && copied(
            true,
            "fd00:18::/64 dev br-1234 proto 83"
        )),
        "new bridge not in eth1's table; log:\n{}",
        daemon.log()
    );
    eprintln!(
        "new bridge in the uplink tables after {:?}",
        started.elapsed()
    );
    for a in [HOST_ETH1_V4, HOST_ETH1_V6, "172.18.0.1"] {
        assert!(
            reaches(&second, a, SERVICE_PORT, SERVICE_TAG),
            "new container does not reach {a}"
        );
    }

    // The bridge goes away (`docker network rm`): no copy through it is left.
    lab.host.ip("link del br-1234");
    assert!(
        wait_until(SETTLE, || !copied(false, "172.18.0.0/16")
            && !copied(true, "fd00:18::/64")),
        "{:?}",
        lab.host.routes(&t1, true)
    );
    // The first container (and the LAN) untouched.
    behind.assert_everything_behind_reaches("after the bridge went away");
    daemon.assert_running();
    assert!(daemon.terminate().success());
}
