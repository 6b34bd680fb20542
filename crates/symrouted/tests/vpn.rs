//! The daemon beside VPN clients that put catch-all rules before symroute's (wg-quick,
//! tailscaled; reproduced with their commands on tun devices): nobody runs a hook, and the
//! daemon moves every interface's rules before the VPN's as they come, and back as they go.

mod common;

use std::time::Duration;

use common::*;
use symroute_testlab::hosts::{reaches, Service, SERVICE_PORT, SERVICE_TAG as TAG};
use symroute_testlab::tunnels::{
    symroute_priorities, tailscale_up, wg_quick_down, wg_quick_up, INTERNET_V4,
};
use symroute_testlab::{ping, root_lab, route_get, wait_until, Lab, Netns};

/// Generous for a loaded 2-core machine.
const SETTLE: Duration = Duration::from_secs(10);

/// Whether symroute's rules of both families share one priority, before every rule of
/// another tool but `local`'s. (Which one depends on the order of events: wg-quick's IPv6
/// rules land before ours if ours moved for its IPv4 rules first.)
fn before_the_others(ns: &Netns) -> bool {
    let ours = [
        symroute_priorities(ns, false),
        symroute_priorities(ns, true),
    ];
    let [v4, v6] = &ours;
    let others = [false, true]
        .into_iter()
        .flat_map(|v6| ns.rules(v6))
        .filter_map(|r| {
            let priority: u32 = r.split(':').next()?.trim().parse().ok()?;
            (priority > 0 && !r.contains(" proto 83")).then_some(priority)
        });
    v4.len() == 1 && v4 == v6 && others.min().is_none_or(|first| v4[0] < first)
}

fn at_priority(ns: &Netns, priority: u32) -> bool {
    [false, true]
        .into_iter()
        .all(|v6| symroute_priorities(ns, v6) == [priority])
}

fn assert_client_reaches_all(lab: &Lab, when: &str) {
    for a in Lab::host_addresses() {
        assert!(ping(&lab.client, a), "{when}: ping {a}");
        assert!(
            reaches(&lab.client, a, SERVICE_PORT, TAG),
            "{when}: tcp {a}"
        );
    }
}

#[test]
fn daemon_moves_the_rules_before_a_vpns_catch_alls_and_back() {
    let Some(lab) = root_lab() else { return };
    let _service = Service::start(&lab.host, SERVICE_PORT, TAG);
    let daemon = Symrouted::start(&lab.host, &["--source", "netlink"]);
    assert!(
        wait_until(SETTLE, || at_priority(&lab.host, 32000)),
        "{}",
        daemon.log()
    );

    let wg = wg_quick_up(&lab.host, "wg0");
    assert!(
        wait_until(SETTLE, || before_the_others(&lab.host)),
        "rules not moved before wg-quick's: {:?}\n{}",
        lab.host.rules(false),
        daemon.log()
    );
    assert_client_reaches_all(&lab, "with wg-quick's rules");
    assert_eq!(route_get(&lab.host, INTERNET_V4, None, None).0, "wg0");

    wg_quick_down(&lab.host, wg);
    assert!(
        wait_until(SETTLE, || at_priority(&lab.host, 32000)),
        "rules not moved back: {:?}\n{}",
        lab.host.rules(false),
        daemon.log()
    );

    let _ts = tailscale_up(&lab.host, "tailscale0", true);
    assert!(
        wait_until(SETTLE, || at_priority(&lab.host, 5269)),
        "rules not moved before tailscaled's: {:?}\n{}",
        lab.host.rules(false),
        daemon.log()
    );
    assert_client_reaches_all(&lab, "with Tailscale's exit node");
    assert_eq!(
        route_get(&lab.host, INTERNET_V4, None, None).0,
        "tailscale0"
    );
}
