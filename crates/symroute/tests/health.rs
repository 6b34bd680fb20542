//! `[health]` as the operator sees it: `symroute plan` says what the steering would do and
//! shows its rules, `status` shows each uplink's health from symrouted's state file (text
//! and `--json`), `sync` (the hook's run) steers from the same verdicts, and `doctor` warns
//! that nothing probes without symrouted.

mod common;

use common::Admin;
use symroute_testlab::{root_lab, INTERNET_V4, INTERNET_V6};

const HEALTH: &str = "[health]\ntargets = [\"198.51.100.1\", \"2001:db8:100::1\"]\n\
                      mode = \"failover\"\n";

/// What symrouted writes after a round in which eth0's probes failed (index 2 in the lab),
/// at the current time so that it is fresh.
fn eth0_down(ifindex0: u32, ifindex1: u32) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default();
    format!(
        "updated {now:.3}\n\
         uplink eth0 {ifindex0} ipv4 down loss=1.000 rtt_ms=- since={now:.3} transitions=1\n\
         uplink eth1 {ifindex1} ipv4 up loss=0.000 rtt_ms=0.250 since={now:.3} transitions=0\n\
         uplink eth1 {ifindex1} ipv6 up loss=0.000 rtt_ms=- since={now:.3} transitions=0 rounds=0\n"
    )
}

#[test]
fn plan_status_and_sync_steer_from_the_daemons_verdicts() {
    let Some(lab) = root_lab() else { return };
    let host = &lab.host;
    let _ = (INTERNET_V4, INTERNET_V6);
    let admin = Admin::new(host, HEALTH);
    admin.sync();
    // No verdicts yet: every uplink counts as up, main decides.
    let plan = admin.ok(&["plan"]).out;
    assert!(
        plan.contains("# steering ipv4: eth0 is up: main decides"),
        "{plan}"
    );

    let (i0, i1) = (host.ifindex("eth0"), host.ifindex("eth1"));
    std::fs::write(host.run_dir().join("health"), eth0_down(i0, i1)).expect("state file");
    let plan = admin.ok(&["plan"]).out;
    assert!(
        plan.contains("# steering ipv4: eth0 is down: new connections leave through eth1"),
        "{plan}"
    );
    assert!(
        plan.contains(
            "steering: +rule from all lookup main suppress_prefixlength 0 priority 32700"
        ),
        "{plan}"
    );
    let status = admin.status();
    let eth0 = status["interfaces"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["ifname"] == "eth0"))
        .expect("eth0 in status");
    assert_eq!(eth0["health"]["state"], "down", "{eth0}");
    assert_eq!(eth0["health"]["loss"], 1.0, "{eth0}");
    assert!(
        eth0["health"]["since"].as_f64().is_some_and(|t| t > 1e9),
        "{eth0}"
    );
    assert_eq!(eth0["health"]["ipv4"]["state"], "down", "{eth0}");
    assert_eq!(eth0["health"]["probed"], true, "{eth0}");
    // eth1's IPv6 was never probed (refused, or no round yet): up only by assumption.
    let eth1 = status["interfaces"]
        .as_array()
        .and_then(|a| a.iter().find(|i| i["ifname"] == "eth1"))
        .expect("eth1 in status");
    assert_eq!(eth1["health"]["ipv6"]["probed"], false, "{eth1}");
    assert_eq!(eth1["health"]["probed"], false, "{eth1}");
    assert_eq!(status["in_sync"], false);
    assert!(!status["steering"]["pending"]
        .as_array()
        .expect("pending")
        .is_empty());

    // The hook's run steers from the same verdicts: then all is in sync.
    admin.sync();
    let status = admin.status();
    assert_eq!(status["in_sync"], true, "{status}");
    assert_eq!(
        status["steering"]["rules"].as_array().map(Vec::len),
        Some(2)
    );
    // As `ip -j rule` shows it.
    let suppress = status["steering"]["rules"]
        .as_array()
        .and_then(|r| r.iter().find(|r| r.get("suppress_prefixlen").is_some()))
        .expect("the suppress rule");
    assert_eq!(suppress["suppress_prefixlen"], 0, "{suppress}");
    assert_eq!(suppress["table"], "main", "{suppress}");
    assert_eq!(suppress["src"], "all", "{suppress}");
    let text = admin.ok(&["status"]).out;
    assert!(
        text.contains("health     IPv4 down (no answer, loss 100 %"),
        "{text}"
    );
    assert!(
        text.contains("IPv6 up (not probed yet: no probe round has finished"),
        "{text}"
    );
    assert!(text.contains("steering (failover):"), "{text}");

    // The doctor: nothing probes here.
    let doctor = admin.run(&["doctor"]).out;
    assert!(
        doctor.contains("[health] is set but symrouted is not running"),
        "{doctor}"
    );

    // [health] removed: the steering goes with the next sync.
    admin.configure("");
    admin.sync();
    let status = admin.status();
    assert!(status.get("steering").is_none(), "{status}");
    assert_eq!(status["in_sync"], true, "{status}");
}
