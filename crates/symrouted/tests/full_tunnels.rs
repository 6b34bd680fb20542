//! Full-tunnel VPNs whose own policy rules come ahead of symroute's: wg-quick with
//! `AllowedIPs = 0.0.0.0/0, ::/0` and tailscaled using an exit node, each brought up with the
//! exact commands the tool runs (testlab's `tunnels`, on tun devices) on a host that
//! `symrouted` already keeps symmetric. Replies from eth0's and eth1's addresses must still
//! reach the client behind r1 and r2 (strict reverse-path filtering), IPv4 and IPv6, and the
//! VPN must keep its own traffic: the host's outbound traffic into the tunnel, the tunnel's
//! marked packets out through main.
//!
//! The VPN's rules land before priority 32000 and would send every reply into the tunnel:
//! the daemon places symroute's rules before them (plan/placement.rs).

mod common;

use std::time::Duration;

use common::*;
use symroute_testlab::daemons::wait_answered;
use symroute_testlab::hosts::{Service, SERVICE_PORT, SERVICE_TAG};
use symroute_testlab::tunnels::{tailscale_up, wg_quick_up, TS_MARK, WG_TABLE};
use symroute_testlab::{root_lab_with, route_get, Lab};

const SETTLE: Duration = Duration::from_secs(10);
const WG_DEV: &str = "wg0";
const TS_DEV: &str = "tailscale0";

/// Outside addresses the host's own traffic goes to, one per family.
const OUTSIDE: [&str; 2] = ["192.0.2.1", "2001:db8::1"];

/// The VPN still routes the host's own traffic into `dev`, and packets with its `mark` (the
/// tunnel's encapsulated packets) through main, i.e. eth0's default route.
#[track_caller]
fn assert_vpn_routing(lab: &Lab, dev: &str, mark: &str, when: &str) {
    for dst in OUTSIDE {
        let (out, _) = route_get(&lab.host, dst, None, None);
        assert_eq!(
            out, dev,
            "{when}: the host's traffic to {dst} bypasses {dev}"
        );
        let (out, _) = route_get(&lab.host, dst, None, Some(mark));
        assert_eq!(
            out, "eth0",
            "{when}: {dev}'s own packets (mark {mark}) to {dst} do not leave through main"
        );
    }
}

/// A lab the daemon keeps symmetric, answering on every uplink address; `None` when skipped.
fn symmetric_lab() -> Option<(Lab, Service, Symrouted)> {
    let lab = root_lab_with(&["ping", "nft"])?;
    let service = Service::start(&lab.host, SERVICE_PORT, SERVICE_TAG);
    let daemon = Symrouted::start(&lab.host, &["--source", "netlink"]);
    wait_answered(
        &lab.client,
        &lab.host,
        &Lab::host_addresses(),
        SETTLE,
        "before the VPN",
    );
    Some((lab, service, daemon))
}

#[test]
fn wg_quick_full_tunnel_leaves_the_uplink_addresses_answering() {
    let Some((lab, _service, mut daemon)) = symmetric_lab() else {
        return;
    };
    let _wg = wg_quick_up(&lab.host, WG_DEV);
    assert_vpn_routing(&lab, WG_DEV, WG_TABLE, "wg-quick up");
    wait_answered(
        &lab.client,
        &lab.host,
        &Lab::host_addresses(),
        SETTLE,
        "with wg-quick's full tunnel",
    );
    assert_vpn_routing(&lab, WG_DEV, WG_TABLE, "after the daemon's changes");
    daemon.assert_running();
}

#[test]
fn tailscale_exit_node_leaves_the_uplink_addresses_answering() {
    let Some((lab, _service, mut daemon)) = symmetric_lab() else {
        return;
    };
    let _ts = tailscale_up(&lab.host, TS_DEV, true);
    assert_vpn_routing(&lab, TS_DEV, TS_MARK, "tailscale up");
    wait_answered(
        &lab.client,
        &lab.host,
        &Lab::host_addresses(),
        SETTLE,
        "with Tailscale's exit node",
    );
    assert_vpn_routing(&lab, TS_DEV, TS_MARK, "after the daemon's changes");
    daemon.assert_running();
}
