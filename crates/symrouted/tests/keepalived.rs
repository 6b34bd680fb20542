//! keepalived (VRRP) on a two-uplink host that `symrouted` keeps symmetric: the VIPs come and
//! go as keepalived becomes MASTER, goes into FAULT and stops, and the daemon alone (no notify
//! script) has to give each VIP its rule while it exists and take it away after. A client
//! behind r2, a strict reverse-path-filtering router, pings and connects to every VIP.

mod common;

use std::time::{Duration, Instant};

use common::*;
use symroute_testlab::daemons::{
    assert_no_stale_rules, routing_state, symroute_rules, vmac_name, wait_answered, Keepalived,
    VrrpInstance,
};
use symroute_testlab::hosts::{Service, SERVICE_PORT, SERVICE_TAG};
use symroute_testlab::{root_lab_with, Lab, Netns, HOST_ETH0_V4, HOST_ETH1_V4, HOST_ETH1_V6};

/// Generous for a loaded 2-core machine; what the daemon needs is logged.
const SETTLE: Duration = Duration::from_secs(10);
const PROGRAMS: &[&str] = &["keepalived", "ping", "nft"];
const VRID: u8 = 52;

/// A /32 and a second address of eth1's own /24 (which the kernel makes `secondary`), and
/// an IPv6 VIP in the instance's `virtual_ipaddress_excluded`.
const VIPS_V4: [&str; 2] = ["10.2.0.10/32", "10.2.0.20/24"];
const VIPS_V6: [&str; 1] = ["fd02::10/64"];
const VIP_ADDRS: [&str; 3] = ["10.2.0.10", "10.2.0.20", "fd02::10"];

/// The host's own uplink addresses that must keep answering throughout.
const UPLINK_ADDRS: [&str; 3] = [HOST_ETH0_V4, HOST_ETH1_V4, HOST_ETH1_V6];

/// Whether every one of `addrs` has a rule of symroute's into `table` (`None`: any table).
fn have_rules(host: &Netns, addrs: &[&str], table: Option<&str>) -> bool {
    let rules = symroute_rules(host);
    addrs.iter().all(|a| {
        rules
            .iter()
            .any(|(from, t)| from == a && table.is_none_or(|want| want == t))
    })
}

/// Whether none of `addrs` has a rule of symroute's left.
fn no_rules(host: &Netns, addrs: &[&str]) -> bool {
    let rules = symroute_rules(host);
    !rules.iter().any(|(from, _)| addrs.contains(&from.as_str()))
}

/// A lab whose host answers on every address, kept symmetric by the daemon; `None` when
/// skipped.
fn symmetric_lab() -> Option<(Lab, Service, Symrouted)> {
    let lab = root_lab_with(PROGRAMS)?;
    let service = Service::start(&lab.host, SERVICE_PORT, SERVICE_TAG);
    let daemon = Symrouted::start(&lab.host, &["--source", "netlink"]);
    Some((lab, service, daemon))
}

/// keepalived's instance on eth1 with [`VIPS_V4`], on keepalived's macvlan with `use_vmac`.
fn keepalived_on_eth1(host: &Netns, excluded: &[&str], use_vmac: bool) -> Keepalived {
    Keepalived::start(
        host,
        &VrrpInstance {
            interface: "eth1",
            virtual_router_id: VRID,
            vips: &VIPS_V4,
            excluded,
            use_vmac,
            notify: None,
        },
    )
}

/// After `event` the rules of `vips` go, nothing stale is left, and the uplink addresses
/// keep answering.
fn assert_vips_gone(lab: &Lab, vips: &[&str], event: &str) {
    eventually(SETTLE, &format!("no VIP rule after {event}"), || {
        no_rules(&lab.host, vips)
    });
    assert_no_stale_rules(&lab.host);
    wait_answered(
        &lab.client,
        &lab.host,
        &UPLINK_ADDRS,
        SETTLE,
        &format!("after {event}"),
    );
}

#[test]
fn daemon_gives_keepalived_vips_rules_and_takes_them_away_after_fault_and_stop() {
    let Some((lab, _service, mut daemon)) = symmetric_lab() else {
        return;
    };
    let host = &lab.host;
    let t1 = table_of(host, "eth1");

    let started = Instant::now();
    let mut keepalived = keepalived_on_eth1(host, &VIPS_V6, false);
    eventually(SETTLE, "a rule into eth1's table for every VIP", || {
        have_rules(host, &VIP_ADDRS, Some(&t1))
    });
    eprintln!("VIP rules {:?} after keepalived's start", started.elapsed());
    wait_answered(&lab.client, host, &VIP_ADDRS, SETTLE, "from the VIPs");
    wait_answered(&lab.client, host, &UPLINK_ADDRS, SETTLE, "with the VIPs");

    // The tracked file goes bad: FAULT, keepalived removes the VIPs.
    keepalived.set_fault(true);
    keepalived.wait_state("FAULT", 1);
    assert_vips_gone(&lab, &VIP_ADDRS, "FAULT");

    // Recovered: MASTER again, the rules come back.
    keepalived.set_fault(false);
    keepalived.wait_state("MASTER", 2);
    eventually(SETTLE, "the VIP rules back after recovery", || {
        have_rules(host, &VIP_ADDRS, Some(&t1))
    });
    wait_answered(&lab.client, host, &VIP_ADDRS, SETTLE, "after recovery");

    // The service stops: VIPs and rules go, nothing stale, the uplinks keep answering.
    keepalived.stop();
    assert_vips_gone(&lab, &VIP_ADDRS, "keepalived stopped");
    daemon.assert_running();
    assert!(daemon.terminate().success());
}

/// With `use_vmac` the VIPs live on keepalived's macvlan `vrrp.52` over eth1: they must
/// answer a client behind r2 through eth1's gateway, and the macvlan's connected route
/// (`10.2.0.0/24 dev vrrp.52`) must not be copied into eth0's table as if the subnet were
/// behind the host.
///
/// vrrp.52's own table would hold no default route, so the VIPs would not answer (as
/// without symroute): a macvlan takes its parent's ways out.
#[test]
fn daemon_answers_from_keepalived_vips_on_a_use_vmac_macvlan() {
    let Some((lab, _service, mut daemon)) = symmetric_lab() else {
        return;
    };
    let host = &lab.host;
    let vmac = vmac_name(VRID);
    let on_vmac = ["10.2.0.10", "10.2.0.20"];

    let mut keepalived = keepalived_on_eth1(host, &[], true);
    assert!(
        host.ip(&format!("-4 -o addr show dev {vmac}"))
            .contains("10.2.0.10/32"),
        "the VIPs are not on {vmac}:\n{}",
        routing_state(host)
    );
    eventually(SETTLE, "a rule for every VIP on the macvlan", || {
        have_rules(host, &on_vmac, None)
    });
    wait_answered(
        &lab.client,
        host,
        &on_vmac,
        SETTLE,
        &format!("from the VIPs on {vmac}"),
    );
    wait_answered(&lab.client, host, &UPLINK_ADDRS, SETTLE, "with the VIPs");
    let t0 = table_of(host, "eth0");
    let through_vmac: Vec<String> = host
        .routes(&t0, false)
        .into_iter()
        .filter(|r| r.contains(&format!("dev {vmac} ")))
        .collect();
    assert!(
        through_vmac.is_empty(),
        "eth0's table copies {vmac}'s routes as if behind the host: {through_vmac:?}"
    );

    keepalived.stop();
    assert_vips_gone(&lab, &on_vmac, "keepalived stopped");
    daemon.assert_running();
    assert!(daemon.terminate().success());
}
