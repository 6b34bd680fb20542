//! A Docker host's published port (iptables-nft rules the way Docker writes them) reached
//! through each uplink: doctor spots that the second uplink needs `iif_rules`, and the one
//! line it recommends makes it work, without breaking the container's own paths.

mod common;

use common::{findings, Admin};
use symroute_testlab::hosts::{
    docker_bridge, publish_port, reaches, Service, CONTAINER_PORT, PUBLISHED_PORT, SERVICE_PORT,
};
use symroute_testlab::{root_lab, Lab, Netns, HOST_ETH0_V4, HOST_ETH1_V4};

/// Whether the client gets the container's answer on the port published at `addr`.
fn published_reaches(client: &Netns, addr: &str) -> bool {
    reaches(client, addr, PUBLISHED_PORT, "container")
}

#[test]
fn published_port_on_the_second_uplink_needs_the_line_doctor_prints() {
    let Some(lab) = root_lab() else { return };
    let container = docker_bridge(&lab);
    let _web = Service::start(&container, CONTAINER_PORT, "container");
    let _host_service = Service::start(&lab.host, SERVICE_PORT, "host");
    publish_port(&lab);
    let admin = Admin::new(&lab.host, "");

    assert!(published_reaches(&lab.client, HOST_ETH0_V4));
    admin.sync();
    // Entering eth1, DNAT'ed: the answer leaves through main's default (eth0), r1 drops it.
    assert!(!published_reaches(&lab.client, HOST_ETH1_V4));
    let found = findings(&admin.doctor(), "nat");
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["verdict"], "warn", "{found:?}");
    let fix = found[0]["fix"].as_str().unwrap_or_default();
    assert!(fix.contains("iif_rules = true"), "{fix}");

    // The line doctor prints.
    admin.configure("iif_rules = true\n");
    admin.sync();
    assert!(
        published_reaches(&lab.client, HOST_ETH1_V4),
        "published port through eth1 with iif_rules"
    );
    assert!(published_reaches(&lab.client, HOST_ETH0_V4));
    assert_eq!(findings(&admin.doctor(), "nat")[0]["verdict"], "ok");
    // The container still reaches the host at every address.
    for a in Lab::host_addresses() {
        assert!(
            reaches(&container, a, SERVICE_PORT, "host"),
            "container does not reach {a}"
        );
    }
}
