//! A Docker host's published port (iptables-nft rules the way Docker writes them) reached
//! through each uplink: doctor spots that the second uplink needs `iif_rules`, and the one
//! line it recommends makes it work, without breaking the container's own paths.

use std::process::Output;

use serde_json::Value;
use symroute_testlab::daemons::{write_file, TempDir};
use symroute_testlab::hosts::{
    docker_bridge, publish_port, reaches, Service, CONTAINER_PORT, PUBLISHED_PORT, SERVICE_PORT,
};
use symroute_testlab::{require_root, Lab, Netns, HOST_ETH0_V4, HOST_ETH1_V4};

const BIN: &str = env!("CARGO_BIN_EXE_symroute");

fn symroute(ns: &Netns, config: &std::path::Path, args: &[&str]) -> Output {
    ns.private_run(&[BIN, "--config"])
        .arg(config)
        .args(args)
        .env("SYMROUTE_LOG", "stderr")
        .output()
        .expect("run ip netns exec symroute")
}

fn sync(ns: &Netns, config: &std::path::Path) {
    let out = symroute(ns, config, &["sync"]);
    assert!(
        out.status.success(),
        "sync: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn nat_findings(ns: &Netns, config: &std::path::Path) -> Vec<Value> {
    let out = symroute(ns, config, &["doctor", "--json"]);
    assert!(matches!(out.status.code(), Some(0 | 1)), "doctor failed");
    let doctor: Value = serde_json::from_slice(&out.stdout).expect("doctor JSON");
    doctor["findings"]
        .as_array()
        .map(|all| {
            all.iter()
                .filter(|f| f["check"] == "nat")
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn published_port_on_the_second_uplink_needs_the_line_doctor_prints() {
    if !require_root("published_port_on_the_second_uplink_needs_the_line_doctor_prints") {
        return;
    }
    let lab = Lab::two_uplinks();
    let container = docker_bridge(&lab);
    let _web = Service::start(&container, CONTAINER_PORT, "container");
    let _host_service = Service::start(&lab.host, SERVICE_PORT, "host");
    publish_port(&lab);
    let dir = TempDir::new("config");
    let config = dir.path().join("symroute.toml");
    write_file(&config, "", 0o644);

    assert!(reaches(
        &lab.client,
        HOST_ETH0_V4,
        PUBLISHED_PORT,
        "container"
    ));
    sync(&lab.host, &config);
    // Entering eth1, DNAT'ed: the answer leaves through main's default (eth0), r1 drops it.
    assert!(!reaches(
        &lab.client,
        HOST_ETH1_V4,
        PUBLISHED_PORT,
        "container"
    ));
    let found = nat_findings(&lab.host, &config);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["verdict"], "warn", "{found:?}");
    let fix = found[0]["fix"].as_str().unwrap_or_default();
    assert!(fix.contains("iif_rules = true"), "{fix}");

    // The line doctor prints.
    write_file(&config, "iif_rules = true\n", 0o644);
    sync(&lab.host, &config);
    assert!(
        reaches(&lab.client, HOST_ETH1_V4, PUBLISHED_PORT, "container"),
        "published port through eth1 with iif_rules"
    );
    assert!(reaches(
        &lab.client,
        HOST_ETH0_V4,
        PUBLISHED_PORT,
        "container"
    ));
    assert_eq!(nat_findings(&lab.host, &config)[0]["verdict"], "ok");
    // The container still reaches the host at every address.
    for a in Lab::host_addresses() {
        assert!(
            reaches(&container, a, SERVICE_PORT, "host"),
            "container does not reach {a}"
        );
    }
}
