//! End to end with the real keepalived on a host without the daemon: keepalived's `notify`
//! script runs `symroute-hook eth1 sync` on every VRRP state change (MASTER, FAULT, BACKUP,
//! STOP), the way an admin wires it up. keepalived adds or removes its VIPs before it runs the
//! script, so the hook finds the kernel as it now is. A client behind r2, a strict
//! reverse-path-filtering router, pings and connects to every VIP.

use std::time::{Duration, Instant};

use symroute_testlab::daemons::{
    assert_no_stale_rules, symroute_rules, tail, wait_answered, write_file, Keepalived, TempDir,
    VrrpInstance,
};
use symroute_testlab::hosts::{Service, SERVICE_PORT, SERVICE_TAG};
use symroute_testlab::{root_lab_with, table_of, wait_until, Netns, HOST_ETH0_V4, HOST_ETH1_V4};

const HOOK: &str = env!("CARGO_BIN_EXE_symroute-hook");
const SETTLE: Duration = Duration::from_secs(10);
const VIP_ADDRS: [&str; 3] = ["10.2.0.10", "10.2.0.20", "fd02::10"];

/// Whether symroute's rules for `VIP_ADDRS` are all there (into `table`) or all gone.
fn vip_rules(host: &Netns, table: &str, present: bool) -> bool {
    let rules = symroute_rules(host);
    VIP_ADDRS
        .iter()
        .all(|a| rules.iter().any(|(from, t)| from == a && t == table) == present)
}

#[test]
fn keepalived_notify_script_runs_the_hook_through_master_fault_and_stop() {
    let Some(lab) = root_lab_with(&["keepalived", "ping", "nft"]) else {
        return;
    };
    let host = &lab.host;
    let _service = Service::start(host, SERVICE_PORT, SERVICE_TAG);
    // The uplinks were set up at boot, their hooks ran.
    host.run_logged_ok(HOOK, &["--all"]);
    let t1 = table_of(host, "eth1");

    let dir = TempDir::new("keepalived-notify");
    let log = dir.path().join("hook.log");
    let notify = dir.path().join("symroute-notify");
    // keepalived calls it with `INSTANCE|GROUP NAME STATE PRIORITY`; every state change is a
    // sync of the interface, which adds the rules of VIPs present and removes those gone.
    write_file(
        &notify,
        &format!(
            "#!/bin/sh\n# keepalived notify: symroute follows eth1's VIPs.\n\
             echo \"notify $3\" >> '{log}'\n\
             SYMROUTE_LOG=stderr exec '{HOOK}' eth1 sync >> '{log}' 2>&1\n",
            log = log.display()
        ),
        0o755,
    );
    let hook_log = || tail(&log, 40);

    let started = Instant::now();
    let mut keepalived = Keepalived::start(
        host,
        &VrrpInstance {
            interface: "eth1",
            virtual_router_id: 52,
            vips: &["10.2.0.10/32", "10.2.0.20/24"],
            excluded: &["fd02::10/64"],
            use_vmac: false,
            notify: Some(&notify),
        },
    );
    let up = wait_until(SETTLE, || vip_rules(host, &t1, true));
    assert!(up, "no VIP rules after MASTER; hook:\n{}", hook_log());
    eprintln!("VIP rules {:?} after keepalived's start", started.elapsed());
    wait_answered(&lab.client, host, &VIP_ADDRS, SETTLE, "from the VIPs");

    keepalived.set_fault(true);
    keepalived.wait_state("FAULT", 1);
    let gone = wait_until(SETTLE, || vip_rules(host, &t1, false));
    assert!(gone, "VIP rules left after FAULT; hook:\n{}", hook_log());
    assert_no_stale_rules(host);

    keepalived.set_fault(false);
    keepalived.wait_state("MASTER", 2);
    let back = wait_until(SETTLE, || vip_rules(host, &t1, true));
    assert!(back, "no VIP rules after recovery; hook:\n{}", hook_log());
    wait_answered(&lab.client, host, &VIP_ADDRS, SETTLE, "after recovery");

    keepalived.stop();
    let gone = wait_until(SETTLE, || vip_rules(host, &t1, false));
    assert!(gone, "VIP rules left after stop; hook:\n{}", hook_log());
    assert_no_stale_rules(host);
    wait_answered(
        &lab.client,
        host,
        &[HOST_ETH0_V4, HOST_ETH1_V4],
        SETTLE,
        "after the stop",
    );
    let calls = hook_log();
    for state in ["MASTER", "FAULT", "STOP"] {
        assert!(
            calls.contains(&format!("notify {state}")),
            "no notify {state}:\n{calls}"
        );
    }
}
