//! An interface deleted during a run, against the real kernel: the run reads eth1, plans its
//! table, and eth1 is deleted before the writes (the test's own hook between the two). The
//! writes through eth1 fail with ENODEV while the others in the same batch (a copy of a LAN
//! route, strict's `unreachable default`) succeed: without more, they would stay behind in
//! a table no interface owns. The run must say eth1 disappeared and leave nothing of it.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Mutex;

use symroute_core::shell::block_on;
use symroute_core::{reconcile_interrupted, Action, Mode, Netlink, Settings, Target};
use symroute_testlab::hosts::in_netns;
use symroute_testlab::{root_lab, table_of, Lab, Netns};

/// The warnings and errors the run logs.
static LOGGED: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= log::Level::Warn
    }
    fn log(&self, record: &log::Record) {
        if self.enabled(record.metadata()) {
            if let Ok(mut lines) = LOGGED.lock() {
                lines.push(format!("{}: {}", record.level(), record.args()));
            }
        }
    }
    fn flush(&self) {}
}

/// A LAN behind the host (lan0 10.50.0.1/24, a veth whose peer stays in the host), whose
/// direct route every uplink table copies.
fn lan_behind(lab: &Lab) {
    lab.host.sh_ok_input(
        &["ip", "-batch", "-"],
        "link add lan0 type veth peer name lan0p
         link set lan0 up
         link set lan0p up
         addr add 10.50.0.1/24 dev lan0
        ",
    );
}

/// Every rule and route of ours (protocol 83) that points at or lies in `table`.
fn ours_in(ns: &Netns, table: &str) -> Vec<String> {
    let mut found = Vec::new();
    for family in ["-4", "-6"] {
        found.extend(
            ns.ip(&format!("{family} rule show"))
                .lines()
                .filter(|l| {
                    l.contains(&format!("lookup {table} "))
                        || l.ends_with(&format!("lookup {table}"))
                })
                .map(str::to_string),
        );
        found.extend(
            ns.ip(&format!("{family} route show table {table} proto 83"))
                .lines()
                .map(str::to_string),
        );
    }
    found
}

#[test]
fn an_interface_deleted_during_a_run_leaves_nothing_behind() {
    let Some(lab) = root_lab() else { return };
    let _ = log::set_logger(&Capture);
    log::set_max_level(log::LevelFilter::Warn);
    lan_behind(&lab);
    let t1 = table_of(&lab.host, "eth1");
    let name = lab.host.name().to_string();
    let settings = Settings {
        strict: true,
        ..Settings::default()
    };
    let target = Target::Interface {
        name: "eth1".into(),
        action: Action::Sync,
    };
    let result = in_netns(&lab.host, move || {
        let nl = Netlink::connect().expect("netlink");
        let mut deleted = false;
        let mut delete_eth1 = || {
            let out = Command::new("ip")
                .args(["-n", &name, "link", "del", "eth1"])
                .output()
                .expect("ip link del");
            deleted = out.status.success();
        };
        let result = block_on(reconcile_interrupted(
            &nl,
            &settings,
            &target,
            Mode::Apply,
            None,
            &BTreeSet::new(),
            &mut delete_eth1,
        ))
        .map(|report| report.change_count())
        .map_err(|e| e.to_string());
        (result, deleted)
    })
    .join()
    .expect("netns thread");
    let (result, deleted) = result;
    assert!(deleted, "the hook did not delete eth1");
    // The writes that made it (the LAN copy, the unreachable default) were undone.
    let changes = result.expect("the run ends well: eth1 is gone, not broken");
    assert!(changes >= 2, "{changes} changes");
    let logged = LOGGED.lock().map(|l| l.clone()).unwrap_or_default();
    assert_eq!(
        logged,
        [
            "WARN: eth1 disappeared during the run; the run was redone without it, and nothing \
          was left half-done (what was written for it is removed)"
        ]
    );
    assert_eq!(ours_in(&lab.host, &t1), Vec::<String>::new());
    // eth0 was not part of the run and is as it was; nothing else of ours is left.
    assert!(lab
        .host
        .ip("route show table all proto 83")
        .trim()
        .is_empty());
}
