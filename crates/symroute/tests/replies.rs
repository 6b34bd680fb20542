//! `doctor` and `explain` against the kernel's own route lookups, on the two-uplink lab with
//! the routing VPN clients leave behind (wg-quick's and Tailscale's rules on tun devices,
//! OpenVPN's `def1 ipv6` routes copied into the uplink tables): whenever the client behind a
//! router loses the host's answers, doctor FAILs naming the rule or route, and explain says
//! the path is not symmetric.

mod common;

use common::{findings, Admin};
use serde_json::Value;
use symroute_testlab::hosts::{reaches, Service, SERVICE_PORT};
use symroute_testlab::tunnels::{openvpn_def1_ipv6, tailscale_up, wg_quick_up, OPENVPN_DEF1_V6};
use symroute_testlab::{
    ping, root_lab, table_of, Lab, HOST_ETH0_V4, HOST_ETH0_V6, HOST_ETH1_V4, HOST_ETH1_V6,
};

/// The `replies` findings of a doctor run.
fn replies(admin: &Admin) -> Vec<Value> {
    findings(&admin.doctor(), "replies")
}

fn message(finding: &Value) -> &str {
    finding["message"].as_str().unwrap_or_default()
}

/// The failing `replies` finding about `address`.
fn failure_for<'a>(found: &'a [Value], address: &str) -> &'a Value {
    found
        .iter()
        .find(|f| f["verdict"] == "fail" && message(f).contains(&format!("from {address} (")))
        .unwrap_or_else(|| panic!("no replies failure for {address}: {found:#?}"))
}

/// Whether the client reaches the host's service at `addr` over TCP.
fn tcp_reaches(lab: &Lab, addr: &str) -> bool {
    reaches(&lab.client, addr, SERVICE_PORT, "host")
}

#[test]
fn healthy_two_uplink_host_replies_through_each_uplink() {
    let Some(lab) = root_lab() else { return };
    let _service = Service::start(&lab.host, SERVICE_PORT, "host");
    let admin = Admin::new(&lab.host, "");
    admin.sync();
    lab.assert_client_reaches_all();
    assert!(tcp_reaches(&lab, HOST_ETH1_V4) && tcp_reaches(&lab, HOST_ETH1_V6));

    let found = replies(&admin);
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0]["verdict"], "ok", "{found:#?}");
    for address in Lab::host_addresses() {
        assert!(message(&found[0]).contains(address), "{found:#?}");
    }
    for (from, to, dev) in [
        (HOST_ETH1_V4, "10.12.0.2", "eth1"),
        (HOST_ETH1_V6, "fd12::2", "eth1"),
        (HOST_ETH0_V4, "10.11.0.2", "eth0"),
    ] {
        let e = admin.explain(&[from, to]);
        assert_eq!(e["symmetric"], true, "{e}");
        assert_eq!(e["dev"], dev, "{e}");
        assert!(e.get("into_tunnel").is_none(), "{e}");
    }
}

#[test]
fn wg_quick_full_tunnel_takes_the_replies_and_doctor_names_its_rule() {
    let Some(lab) = root_lab() else { return };
    let _service = Service::start(&lab.host, SERVICE_PORT, "host");
    let admin = Admin::new(&lab.host, "");
    admin.sync();
    let _wg0 = wg_quick_up(&lab.host, "wg0");

    // What the issue saw: nothing behind either router reaches the host.
    for address in [HOST_ETH1_V4, HOST_ETH1_V6, HOST_ETH0_V4] {
        assert!(!ping(&lab.client, address), "{address} still answers");
    }
    assert!(!tcp_reaches(&lab, HOST_ETH1_V4));

    let ran = admin.exits(1, &["doctor"]);
    assert!(ran.out.contains("FAIL  replies"), "{}", ran.out);
    let found = replies(&admin);
    for address in Lab::host_addresses() {
        let fail = failure_for(&found, address);
        let text = message(fail);
        assert!(
            text.starts_with(
                "rule 31999: not from all fwmark 0xca6c lookup 51820 (wg-quick) sends replies from"
            ),
            "{text}"
        );
        assert!(text.contains("into wg0, a tunnel"), "{text}");
        assert!(
            fail["fix"]
                .as_str()
                .is_some_and(|f| f.starts_with("run `symroute sync`")),
            "{fail}"
        );
    }

    let e = admin.explain(&[HOST_ETH1_V4, "10.12.0.2"]);
    assert_eq!(e["symmetric"], false, "{e}");
    assert_eq!(e["dev"], "wg0");
    assert_eq!(e["into_tunnel"], true);
    assert_eq!(e["table"], "51820");
    assert_eq!(
        e["rule"]["text"],
        "not from all fwmark 0xca6c lookup 51820 priority 31999"
    );
    let e = admin.explain(&[HOST_ETH1_V6, "fd12::2"]);
    assert_eq!(e["symmetric"], false, "{e}");
    assert_eq!(e["dev"], "wg0");

    // The fix doctor prints: a sync places symroute's rules ahead of wg-quick's. Replies
    // leave through their uplinks again; the host's own traffic still goes into the tunnel ...
    admin.sync();
    lab.assert_client_reaches_all();
    assert!(tcp_reaches(&lab, HOST_ETH1_V4) && tcp_reaches(&lab, HOST_ETH1_V6));
    assert!(lab.host.ip("route get 192.0.2.1").contains("dev wg0"));
    assert!(lab.host.ip("-6 route get 2001:db8::1").contains("dev wg0"));
    // ... and its encapsulated packets (marked 51820) still leave through an uplink.
    assert!(lab
        .host
        .ip("route get 192.0.2.1 mark 51820")
        .contains("via 10.1.0.1 dev eth0"));
    let found = replies(&admin);
    assert!(found.iter().all(|f| f["verdict"] == "ok"), "{found:#?}");
    assert_eq!(
        admin.explain(&[HOST_ETH1_V4, "10.12.0.2"])["symmetric"],
        true
    );
}

#[test]
fn tailscale_exit_node_takes_the_replies_and_doctor_names_its_rule() {
    let Some(lab) = root_lab() else { return };
    let admin = Admin::new(&lab.host, "");
    admin.sync();
    let _ts = tailscale_up(&lab.host, "tailscale0", true);
    assert!(!ping(&lab.client, HOST_ETH1_V4));

    let doctor = admin.doctor();
    assert_eq!(doctor["ok"], false);
    let found = findings(&doctor, "replies");
    for address in Lab::host_addresses() {
        let text = message(failure_for(&found, address));
        assert!(
            text.starts_with("rule 5270: from all lookup 52 (Tailscale) sends replies from"),
            "{text}"
        );
        assert!(text.contains("into tailscale0, a tunnel"), "{text}");
    }
    let e = admin.explain(&[HOST_ETH1_V4, "10.12.0.2"]);
    assert_eq!(e["symmetric"], false, "{e}");
    assert_eq!(e["dev"], "tailscale0");
    assert_eq!(e["rule"]["priority"], 5270);
}

#[test]
fn openvpn_def1_ipv6_routes_in_the_uplink_tables_take_the_replies() {
    let Some(lab) = root_lab() else { return };
    let admin = Admin::new(&lab.host, "");
    admin.sync();
    let _tun0 = openvpn_def1_ipv6(&lab.host, "tun0");
    // The state the issue found after a sync: OpenVPN's routes in main, and copies of them
    // in both uplink tables. The copies made by hand here: whoever made them, doctor must
    // catch them.
    let tables = [table_of(&lab.host, "eth0"), table_of(&lab.host, "eth1")];
    for prefix in OPENVPN_DEF1_V6 {
        for table in &tables {
            lab.host.ip(&format!(
                "-6 route add {prefix} dev tun0 table {table} proto 83 metric 1024"
            ));
        }
    }
    assert!(
        lab.host
            .ip(&format!("-6 route get fd12::2 from {HOST_ETH1_V6}"))
            .contains("dev tun0"),
        "the lab does not show the issue's state"
    );
    assert!(!ping(&lab.client, HOST_ETH1_V6));
    // IPv4 is untouched.
    assert!(ping(&lab.client, HOST_ETH1_V4));

    let found = replies(&admin);
    for address in [HOST_ETH0_V6, HOST_ETH1_V6] {
        let fail = failure_for(&found, address);
        let text = message(fail);
        assert!(text.starts_with("route "), "{text}");
        assert!(text.contains("dev tun0 table 10"), "{text}");
        assert!(text.contains("into tun0, a tunnel"), "{text}");
        assert!(
            fail["fix"]
                .as_str()
                .is_some_and(|f| f.contains("ip -6 route del ")),
            "{fail}"
        );
    }
    for address in [HOST_ETH0_V4, HOST_ETH1_V4] {
        assert!(
            !found
                .iter()
                .any(|f| message(f).contains(&format!("from {address} ("))),
            "{found:#?}"
        );
    }
    let e = admin.explain(&[HOST_ETH1_V6, "fd12::2"]);
    assert_eq!(e["symmetric"], false, "{e}");
    assert_eq!(e["dev"], "tun0");
    assert_eq!(e["route"]["dst"], "fc00::/7");

    // Removing the copies by hand, as the issue did, brings the answers back.
    for prefix in OPENVPN_DEF1_V6 {
        for table in &tables {
            lab.host
                .ip(&format!("-6 route del {prefix} dev tun0 table {table}"));
        }
    }
    assert!(ping(&lab.client, HOST_ETH1_V6));
    let found = replies(&admin);
    assert!(found.iter().all(|f| f["verdict"] == "ok"), "{found:#?}");
    assert_eq!(admin.explain(&[HOST_ETH1_V6, "fd12::2"])["symmetric"], true);
}
