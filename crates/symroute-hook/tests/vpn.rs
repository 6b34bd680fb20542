//! VPN clients and VRRP next to symroute: the routes, tables and rules of OpenVPN, wg-quick,
//! tailscaled, strongSwan's charon and keepalived's `use_vmac`, reproduced with the commands
//! those programs run (testlab's `tunnels`), on tun devices the test holds open. Each uplink
//! address must answer through its own uplink (real pings and TCP through the lab's strict
//! routers), and what the VPN sends into its tunnel must still go there.

use std::net::IpAddr;
use std::time::Duration;

use symroute_testlab::hosts::{reaches, Service, SERVICE_PORT, SERVICE_TAG as TAG};
use symroute_testlab::tunnels::{
    openvpn_def1_ipv6, strongswan_up, symroute_priorities, tailscale_up, wg_quick_down,
    wg_quick_up, Tun, INTERNET_V4, INTERNET_V6, SWAN_VIP, TS_MARK, TS_PEER_V4, TS_TABLE, TS_V4,
    TS_V6, WG_TABLE, WG_V4, WG_V6,
};
use symroute_testlab::{
    ping, root_lab, route_get, table_of, Lab, Netns, HOST_ETH0_V4, HOST_ETH0_V6, HOST_ETH1_V4,
    HOST_ETH1_V6,
};

const HOOK: &str = env!("CARGO_BIN_EXE_symroute-hook");

fn hook_ok(ns: &Netns, args: &[&str]) -> String {
    ns.run_logged_ok(HOOK, args)
}

/// Panics, naming what failed, unless the lab's client reaches every host address with a
/// ping and with TCP (the host service), each through its own uplink's strict router.
fn assert_client_reaches_all(lab: &Lab, when: &str) {
    let failed: Vec<String> = Lab::host_addresses()
        .into_iter()
        .flat_map(|a| {
            let mut out = Vec::new();
            if !ping(&lab.client, a) {
                out.push(format!("ping {a}"));
            }
            if !reaches(&lab.client, a, SERVICE_PORT, TAG) {
                out.push(format!("tcp {a}"));
            }
            out
        })
        .collect();
    assert!(failed.is_empty(), "{when}: {failed:?}");
}

/// Panics unless no route of eth0's or eth1's table (both families) goes through `dev`.
fn assert_uplink_tables_without(lab: &Lab, dev: &str) {
    for uplink in ["eth0", "eth1"] {
        let table = table_of(&lab.host, uplink);
        for v6 in [false, true] {
            let routes = lab.host.routes(&table, v6);
            assert!(
                !routes.iter().any(|r| r.contains(&format!("dev {dev} "))),
                "{uplink}'s table {table} holds a route through {dev}: {routes:?}"
            );
        }
    }
}

/// An unbound packet from the host to `to` (a ping nobody answers) comes out of `tun`.
fn host_sends_into(lab: &Lab, tun: &Tun, to: &str) -> bool {
    let _ = lab.host.run(&["ping", "-n", "-c", "1", "-W", "1", to]);
    let dst: IpAddr = to.parse().expect("an address");
    tun.saw_packet_to(dst, Duration::from_secs(3))
}

#[test]
fn openvpn_def1_ipv6_tunnel_is_an_uplink_and_its_routes_stay_out_of_the_others() {
    let Some(lab) = root_lab() else { return };
    let _service = Service::start(&lab.host, SERVICE_PORT, TAG);
    hook_ok(&lab.host, &["--all"]);
    let tun = openvpn_def1_ipv6(&lab.host, "tun0");
    // OpenVPN's up script (or NetworkManager's vpn-up) for the tunnel.
    hook_ok(&lab.host, &["tun0", "up"]);

    assert_uplink_tables_without(&lab, "tun0");
    let own = lab.host.routes(&table_of(&lab.host, "tun0"), true);
    for split in [
        "::/3 dev tun0",
        "2000::/4 dev tun0",
        "3000::/4 dev tun0",
        "fc00::/7 dev tun0",
    ] {
        assert!(own.iter().any(|r| r.starts_with(split)), "{split}: {own:?}");
    }
    // The kernel's own lookups of the answers to the client, and the real thing.
    for (from, to, dev) in [
        (HOST_ETH0_V6, "fd11::2", "eth0"),
        (HOST_ETH1_V6, "fd12::2", "eth1"),
        (HOST_ETH0_V4, "10.11.0.2", "eth0"),
        (HOST_ETH1_V4, "10.12.0.2", "eth1"),
    ] {
        assert_eq!(
            route_get(&lab.host, to, Some(from), None).0,
            dev,
            "{from} -> {to}"
        );
    }
    assert_client_reaches_all(&lab, "with OpenVPN's def1 ipv6");
    // The host's own traffic still goes through the tunnel.
    assert!(host_sends_into(&lab, &tun, INTERNET_V6));
    assert!(host_sends_into(&lab, &tun, INTERNET_V4));
}

#[test]
fn ipv6_half_split_tunnel_is_an_uplink() {
    let Some(lab) = root_lab() else { return };
    let _service = Service::start(&lab.host, SERVICE_PORT, TAG);
    hook_ok(&lab.host, &["--all"]);
    let tun = Tun::open(&lab.host, "tun0");
    // A VPN client's IPv6 default split in two halves, without a gateway: main sends even
    // the client's ULA (fd11::2, in 8000::/1) into the tunnel.
    lab.host.sh_ok_input(
        &["ip", "-batch", "-"],
        "link set tun0 up
         addr add fd08::2/64 dev tun0 nodad
         route add ::/1 dev tun0
         route add 8000::/1 dev tun0
        ",
    );
    hook_ok(&lab.host, &["tun0", "up"]);
    assert_uplink_tables_without(&lab, "tun0");
    assert_client_reaches_all(&lab, "with ::/1 + 8000::/1 into tun0");
    assert!(host_sends_into(&lab, &tun, INTERNET_V6));
}

#[test]
fn wg_quick_full_tunnel_rules_no_longer_take_the_uplinks_replies() {
    let Some(lab) = root_lab() else { return };
    let _service = Service::start(&lab.host, SERVICE_PORT, TAG);
    hook_ok(&lab.host, &["--all"]);
    assert_eq!(symroute_priorities(&lab.host, false), [32000]);
    let tun = wg_quick_up(&lab.host, "wg0");
    // `ip rule add` put wg-quick's rules before ours: the replies go into the tunnel.
    let rules = lab.host.rules(false);
    assert!(
        rules
            .iter()
            .any(|r| r.starts_with("31999:")
                && r.contains("not from all fwmark 0xca6c lookup 51820")),
        "{rules:?}"
    );
    assert!(!ping(&lab.client, HOST_ETH1_V4));

    // The event for the new link (NetworkManager's `up`, networkd's `routable`) moves every
    // interface's rules before wg-quick's, adding before deleting.
    let log = hook_ok(&lab.host, &["wg0", "up"]);
    let t1 = table_of(&lab.host, "eth1");
    let added = format!("+rule from {HOST_ETH1_V4} lookup {t1} priority 31997");
    let removed = format!("-rule from {HOST_ETH1_V4} lookup {t1} priority 32000");
    let at = |line: &str| {
        log.find(line)
            .unwrap_or_else(|| panic!("no {line:?} in {log}"))
    };
    assert!(at(&added) < at(&removed), "{log}");
    for v6 in [false, true] {
        assert_eq!(symroute_priorities(&lab.host, v6), [31997], "v6 {v6}");
    }
    assert_client_reaches_all(&lab, "with wg-quick's rules");
    assert_uplink_tables_without(&lab, "wg0");

    let t0 = table_of(&lab.host, "eth0");
    let wg = Some(WG_TABLE.to_string());
    for (to, from_eth0, from_eth1, own) in [
        (INTERNET_V4, HOST_ETH0_V4, HOST_ETH1_V4, WG_V4),
        (INTERNET_V6, HOST_ETH0_V6, HOST_ETH1_V6, WG_V6),
    ] {
        // Unbound traffic into the tunnel, by wg-quick's table.
        assert_eq!(
            route_get(&lab.host, to, None, None),
            ("wg0".into(), wg.clone())
        );
        // The tunnel's own packets (mark 51820): main, or the uplink's table once their
        // source is an uplink's address.
        assert_eq!(route_get(&lab.host, to, None, Some(WG_TABLE)).0, "eth0");
        assert_eq!(
            route_get(&lab.host, to, Some(from_eth0), Some(WG_TABLE)),
            ("eth0".into(), Some(t0.clone()))
        );
        assert_eq!(
            route_get(&lab.host, to, Some(from_eth1), Some(WG_TABLE)),
            ("eth1".into(), Some(t1.clone()))
        );
        // The tunnel's address stays in the tunnel.
        assert_eq!(route_get(&lab.host, to, Some(own), None).0, "wg0");
        assert!(host_sends_into(&lab, &tun, to), "{to}");
    }

    // wg-quick down: the next run (here the uplink's own event) moves ours back.
    wg_quick_down(&lab.host, tun);
    hook_ok(&lab.host, &["eth0", "up"]);
    for v6 in [false, true] {
        assert_eq!(symroute_priorities(&lab.host, v6), [32000], "v6 {v6}");
    }
    assert_client_reaches_all(&lab, "after wg-quick down");
}

#[test]
fn tailscale_exit_node_rules_leave_replies_to_the_uplinks_and_the_rest_to_the_tunnel() {
    let Some(lab) = root_lab() else { return };
    let _service = Service::start(&lab.host, SERVICE_PORT, TAG);
    let tun = tailscale_up(&lab.host, "tailscale0", true);
    hook_ok(&lab.host, &["--all"]);
    // Before `5270: lookup 52`, after tailscaled's rules for its own marked packets.
    for v6 in [false, true] {
        assert_eq!(symroute_priorities(&lab.host, v6), [5269], "v6 {v6}");
    }
    assert_client_reaches_all(&lab, "with Tailscale's exit node");
    assert_uplink_tables_without(&lab, "tailscale0");

    let ts = Some(TS_TABLE.to_string());
    let ts_own = Some(table_of(&lab.host, "tailscale0"));
    for (to, own) in [(INTERNET_V4, TS_V4), (INTERNET_V6, TS_V6)] {
        assert_eq!(
            route_get(&lab.host, to, None, None),
            ("tailscale0".into(), ts.clone())
        );
        // tailscaled's own packets: main, by rule 5210.
        assert_eq!(
            route_get(&lab.host, to, None, Some(TS_MARK)),
            ("eth0".into(), None)
        );
        // Exit-node traffic once its source is chosen: the tunnel, by its table of ours.
        assert_eq!(
            route_get(&lab.host, to, Some(own), None),
            ("tailscale0".into(), ts_own.clone())
        );
        assert!(host_sends_into(&lab, &tun, to), "{to}");
    }
    assert_eq!(
        route_get(&lab.host, TS_PEER_V4, Some(TS_V4), None).0,
        "tailscale0"
    );

    // The exit node switched off (tailscaled removes the defaults from table 52), then on
    // again: the tunnel's own event updates its table, read with table 52 by a run for it.
    let own = ts_own.clone().unwrap_or_default();
    let has_default = |v6: bool| {
        lab.host
            .routes(&own, v6)
            .iter()
            .any(|r| r.starts_with("default dev tailscale0"))
    };
    lab.host.ip("route del 0.0.0.0/0 dev tailscale0 table 52");
    lab.host.ip("-6 route del ::/0 dev tailscale0 table 52");
    hook_ok(&lab.host, &["tailscale0", "up"]);
    assert!(!has_default(false) && !has_default(true));
    let peers = lab.host.routes(&own, false);
    assert!(peers.iter().any(|r| r.starts_with(TS_PEER_V4)), "{peers:?}");
    lab.host.ip("route add 0.0.0.0/0 dev tailscale0 table 52");
    lab.host.ip("-6 route add ::/0 dev tailscale0 table 52");
    hook_ok(&lab.host, &["tailscale0", "up"]);
    assert!(has_default(false) && has_default(true));
    assert_client_reaches_all(&lab, "after the exit node came back");
}

#[test]
fn strongswan_table_220_does_not_take_the_other_uplinks_replies() {
    let Some(lab) = root_lab() else { return };
    let _service = Service::start(&lab.host, SERVICE_PORT, TAG);
    strongswan_up(&lab.host);
    assert!(!ping(&lab.client, HOST_ETH1_V4));
    hook_ok(&lab.host, &["--all"]);
    assert_eq!(symroute_priorities(&lab.host, false), [219]);
    assert_client_reaches_all(&lab, "with strongSwan's table 220");
    // The virtual IP's traffic leaves where charon routes it: eth0's gateway.
    assert_eq!(
        route_get(&lab.host, INTERNET_V4, Some(SWAN_VIP), None).0,
        "eth0"
    );
    assert_eq!(route_get(&lab.host, INTERNET_V4, None, None).0, "eth0");
}

#[test]
fn keepalived_vmac_vip_answers_through_its_parents_gateway() {
    let Some(lab) = root_lab() else { return };
    let _service = Service::start(&lab.host, SERVICE_PORT, TAG);
    hook_ok(&lab.host, &["--all"]);
    // keepalived's `use_vmac` on eth1 for VRID 52: a macvlan with the VRRP MAC holding the
    // VIPs, ARP answered only for the addresses of the interface asked.
    lab.host.sysctl("net.ipv4.conf.all.arp_ignore", "1");
    lab.host.sh_ok_input(
        &["ip", "-batch", "-"],
        "link add vrrp.52 link eth1 type macvlan mode private
         link set vrrp.52 address 00:00:5e:00:01:34
         link set vrrp.52 up
         addr add 10.2.0.100/24 dev vrrp.52
         addr add fd02::100/64 dev vrrp.52 nodad
        ",
    );
    const VIP4: &str = "10.2.0.100";
    const VIP6: &str = "fd02::100";
    assert!(!ping(&lab.client, VIP4), "the VIP answered before symroute");
    // keepalived's notify script (or the daemon) on the VIP's coming.
    hook_ok(&lab.host, &["vrrp.52", "up"]);

    let vmac = table_of(&lab.host, "vrrp.52");
    let routes = lab.host.routes(&vmac, false);
    assert!(
        routes
            .iter()
            .any(|r| r.starts_with("default via 10.2.0.1 dev eth1")),
        "{routes:?}"
    );
    assert_uplink_tables_without(&lab, "vrrp.52");
    for vip in [VIP4, VIP6] {
        assert!(ping(&lab.client, vip), "ping {vip}");
        assert!(reaches(&lab.client, vip, SERVICE_PORT, TAG), "tcp {vip}");
    }
    assert_client_reaches_all(&lab, "beside the VRRP macvlan");

    // eth1 loses its IPv4 gateway (and comes back): a run for eth1 alone takes the borrowed
    // default out of the macvlan's table (and puts it back).
    let has_default = || {
        lab.host
            .routes(&vmac, false)
            .iter()
            .any(|r| r.starts_with("default via 10.2.0.1 dev eth1"))
    };
    lab.host.ip("route del default via 10.2.0.1 dev eth1");
    hook_ok(&lab.host, &["eth1", "up"]);
    assert!(!has_default(), "{:?}", lab.host.routes(&vmac, false));
    lab.host
        .ip("route add default via 10.2.0.1 dev eth1 metric 101");
    hook_ok(&lab.host, &["eth1", "up"]);
    assert!(has_default(), "{:?}", lab.host.routes(&vmac, false));
    assert!(ping(&lab.client, VIP4));
}
