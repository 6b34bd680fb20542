//! What the kernel-facing tests of runs share: a run in a lab's namespace, and `[health]`
//! settings that steer without anybody probing.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use symroute_core::health::{HealthSettings, SteerMode};
use symroute_core::shell::block_on;
use symroute_core::{reconcile_locked, Error, Mode, Netlink, Report, Settings, Target};
use symroute_testlab::hosts::in_netns;
use symroute_testlab::Netns;

/// A run of `target` in `host`'s namespace, as symrouted runs it (no lock of its own).
pub fn run_in(
    host: &Netns,
    settings: Settings,
    target: Target,
    mode: Mode,
) -> Result<Report, Error> {
    in_netns(host, move || {
        let nl = Netlink::connect().expect("netlink");
        block_on(reconcile_locked(
            &nl,
            &settings,
            &target,
            mode,
            None,
            &BTreeSet::new(),
        ))
    })
    .join()
    .expect("netns thread")
}

/// Steering by uplink health towards `targets` (nobody probes: every uplink counts as up).
pub fn steering(targets: &[&str]) -> Settings {
    Settings {
        health: Some(HealthSettings {
            targets: targets
                .iter()
                .map(|t| t.parse().expect("a target address"))
                .collect(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_millis(500),
            down: 3,
            up: 3,
            min_targets: 1,
            mode: SteerMode::Failover,
            priority: 32700,
            weights: BTreeMap::new(),
        }),
        ..Settings::default()
    }
}
