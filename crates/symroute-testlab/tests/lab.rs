//! The lab itself: it must show the problem symroute solves, and clean up after itself.

use symroute_testlab::{
    ping, require_root, Lab, HOST_ETH0_V4, HOST_ETH0_V6, HOST_ETH1_V4, HOST_ETH1_V6,
};

fn netns_list() -> String {
    let out = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn without_policy_routing_second_uplink_is_dead() {
    if !require_root("without_policy_routing_second_uplink_is_dead") {
        return;
    }
    let lab = Lab::two_uplinks();
    assert!(ping(&lab.client, HOST_ETH0_V4));
    assert!(ping(&lab.client, HOST_ETH0_V6));
    assert!(
        !ping(&lab.client, HOST_ETH1_V4),
        "reply via eth0 passed r1's rp_filter"
    );
    assert!(
        !ping(&lab.client, HOST_ETH1_V6),
        "reply via eth0 passed r1's IPv6 rpf"
    );

    // The cure, written by hand: the lab is sound when it works.
    lab.host
        .ip("rule add from 10.2.0.2 lookup 1003 priority 32000");
    lab.host
        .ip("route add default via 10.2.0.1 dev eth1 table 1003");
    lab.host
        .ip("-6 rule add from fd02::2 lookup 1003 priority 32000");
    lab.host
        .ip("-6 route add default via fd02::1 dev eth1 table 1003");
    for addr in Lab::host_addresses() {
        assert!(
            ping(&lab.client, addr),
            "{addr} unreachable with manual policy routing"
        );
    }
}

#[test]
fn namespaces_are_removed_on_drop_and_on_panic() {
    if !require_root("namespaces_are_removed_on_drop_and_on_panic") {
        return;
    }
    let lab = Lab::two_uplinks();
    let names: Vec<String> = [&lab.host, &lab.r1, &lab.r2, &lab.client]
        .iter()
        .map(|n| n.name().to_string())
        .collect();
    drop(lab);
    let panicked = std::panic::catch_unwind(|| {
        let lab = Lab::two_uplinks();
        let name = lab.host.name().to_string();
        std::panic::panic_any(name);
    });
    let in_panic = *panicked
        .expect_err("the closure panics")
        .downcast::<String>()
        .expect("name");
    let left = netns_list();
    for name in names.iter().chain([&in_panic]) {
        assert!(
            !left
                .lines()
                .any(|l| l.split_whitespace().next() == Some(name)),
            "{name} left: {left}"
        );
    }
}
