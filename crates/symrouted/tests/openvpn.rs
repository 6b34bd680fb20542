//! OpenVPN 2.6 with `--redirect-gateway def1` on a two-uplink host that `symrouted` keeps
//! symmetric: the server sits in a namespace of its own behind r1, the host is its client.
//! While the VPN carries the host's own traffic, the uplinks' addresses must keep answering
//! the client behind r1 and r2 (strict reverse-path filtering) through their own uplinks, and
//! the VPN must keep working.

mod common;

use std::time::Duration;

use common::*;
use symroute_testlab::daemons::{
    assert_no_stale_rules, wait_answered, OpenVpnTunnel, TUNNEL_DEV, TUNNEL_SERVER_V4,
    TUNNEL_SERVER_V6,
};
use symroute_testlab::hosts::{Service, SERVICE_PORT, SERVICE_TAG};
use symroute_testlab::{
    ping, root_lab_with, route_get, Lab, HOST_ETH0_V4, HOST_ETH0_V6, HOST_ETH1_V4, HOST_ETH1_V6,
};

const SETTLE: Duration = Duration::from_secs(10);
const PROGRAMS: &[&str] = &["openvpn", "ping", "nft"];

/// Starts the VPN with `redirect` on a lab the daemon keeps symmetric, checks that `addrs`
/// answer the client and that the host's own traffic to `outside` goes into the tunnel and
/// reaches the server's end of it (`peer`); then stops the VPN and checks that the daemon
/// leaves nothing of the tunnel behind.
fn uplinks_answer_through_the_vpn(redirect: &str, addrs: &[&str], outside: &str, peer: &str) {
    let Some(lab) = root_lab_with(PROGRAMS) else {
        return;
    };
    let host = &lab.host;
    let _service = Service::start(host, SERVICE_PORT, SERVICE_TAG);
    let mut daemon = Symrouted::start(host, &["--source", "netlink"]);
    wait_answered(&lab.client, host, addrs, SETTLE, "before the VPN");

    let mut vpn = OpenVpnTunnel::start(&lab, redirect);
    assert_vpn_carries(&lab, outside, peer);
    wait_answered(
        &lab.client,
        host,
        addrs,
        SETTLE,
        &format!("with redirect-gateway {redirect}"),
    );
    // Still the VPN's after the daemon's changes.
    assert_vpn_carries(&lab, outside, peer);

    vpn.client.stop();
    eventually(SETTLE, "tun0 gone with the VPN client", || {
        host.try_ip(&format!("link show dev {TUNNEL_DEV}")).is_err()
    });
    eventually(SETTLE, "no route through tun0 left", || {
        let t0 = table_of(host, "eth0");
        let t1 = table_of(host, "eth1");
        [&t0, &t1].iter().all(|t| {
            [false, true]
                .iter()
                .all(|&v6| !host.routes(t, v6).iter().any(|r| r.contains("dev tun0")))
        })
    });
    assert_no_stale_rules(host);
    wait_answered(&lab.client, host, addrs, SETTLE, "after the VPN stopped");
    daemon.assert_running();
    assert!(daemon.terminate().success());
}

/// The host's own traffic to `outside` is routed into the tunnel, and the tunnel carries it:
/// the server's end answers.
#[track_caller]
fn assert_vpn_carries(lab: &Lab, outside: &str, peer: &str) {
    let (dev, _) = route_get(&lab.host, outside, None, None);
    assert_eq!(
        dev, TUNNEL_DEV,
        "the host's traffic to {outside} bypasses the VPN"
    );
    assert!(
        ping(&lab.host, peer),
        "no answer from {peer} through the tunnel"
    );
}

#[test]
fn openvpn_redirect_gateway_def1_keeps_both_uplinks_answering() {
    uplinks_answer_through_the_vpn(
        "def1",
        &[HOST_ETH0_V4, HOST_ETH1_V4],
        "192.0.2.1",
        TUNNEL_SERVER_V4,
    );
}

/// `def1 ipv6` adds `::/3`, `2000::/4`, `3000::/4` and `fc00::/7` on tun0 without a gateway.
///
/// None of them covers half the address space: before full tunnels were classified by the
/// share of the public space they take, tun0 counted as "behind the host" for IPv6, those
/// routes were copied into eth0's and eth1's tables, and every IPv6 reply from an uplink
/// address went into the tunnel.
#[test]
fn openvpn_redirect_gateway_def1_ipv6_keeps_both_uplinks_answering() {
    uplinks_answer_through_the_vpn(
        "def1 ipv6",
        &[HOST_ETH0_V4, HOST_ETH1_V4, HOST_ETH0_V6, HOST_ETH1_V6],
        "2001:db8::1",
        TUNNEL_SERVER_V6,
    );
}
