//! A run leaves an interface's table of more than `LARGE_TABLE` routes unread and walks it
//! after planning, against the plan (with main dropped): against the real kernel, with
//! 70 000 routes through eth0, the walked table is diffed as a read one is (a no-op writes
//! nothing, a change in main writes just that change), and a route of another tool in it
//! refuses eth0 as before: a run for eth0 fails and writes nothing, a run over all
//! interfaces reports eth0 and still does eth1; with `[health]`, whose steering passes an
//! uplink with such a table by, a run finds that route before it plans.

mod common;

use symroute_core::{Action, Error, Mode, Op, Report, Settings, Target, LARGE_TABLE};
use symroute_testlab::{ping, root_lab, table_of, Netns, HOST_ETH0_V4, HOST_ETH1_V4};

const ROUTES: u32 = 70_000;

fn run(host: &Netns, target: Target, mode: Mode) -> Result<Report, Error> {
    run_with(host, Settings::default(), target, mode)
}

fn steering() -> Settings {
    common::steering(&["192.0.2.1"])
}

fn run_with(host: &Netns, settings: Settings, target: Target, mode: Mode) -> Result<Report, Error> {
    common::run_in(host, settings, target, mode)
}

fn eth0() -> Target {
    Target::Interface {
        name: "eth0".into(),
        action: Action::Sync,
    }
}

/// Every operation of `report`, shown as `symroute plan` shows it.
fn ops(report: &Report) -> Vec<String> {
    report
        .by_interface
        .iter()
        .flat_map(|c| c.ops.iter().map(move |op| format!("{}: {op}", c.interface)))
        .collect()
}

/// The routes in `table` (IPv4 and IPv6) and every rule, as `ip` shows them.
fn state(host: &Netns, table: &str) -> (Vec<String>, Vec<String>, String) {
    (
        host.routes(table, false),
        host.routes(table, true),
        host.ip("-4 rule show") + &host.ip("-6 rule show"),
    )
}

#[test]
fn a_large_table_walked_after_planning_is_diffed_and_refused_as_a_read_one() {
    assert!(ROUTES as usize > LARGE_TABLE);
    let Some(lab) = root_lab() else { return };
    let host = &lab.host;
    let mut batch = String::new();
    for i in 0..ROUTES {
        batch += &format!(
            "route add 172.{}.{}.{}/32 via 10.1.0.1 dev eth0\n",
            20 + i / 62_500,
            i / 250 % 250,
            i % 250 + 1
        );
    }
    host.sh_ok_input(&["ip", "-batch", "-"], &batch);
    let t0 = table_of(host, "eth0");

    // Built (into an empty table), then nothing to do, per interface and over all.
    let built = run(host, eth0(), Mode::Apply).expect("eth0's first build");
    assert!(ops(&built).len() > ROUTES as usize);
    assert_eq!(host.routes(&t0, false).len(), ROUTES as usize + 2);
    let all = run(host, Target::All, Mode::Apply).expect("run over all");
    assert!(all.failures.is_empty(), "{:?}", all.failures);
    assert!(
        ops(&all).iter().all(|op| op.starts_with("eth1: ")),
        "{:?}",
        ops(&all)
    );
    for target in [eth0(), Target::All] {
        let again = run(host, target, Mode::DryRun).expect("dry run");
        assert_eq!(ops(&again), Vec::<String>::new());
    }
    assert!(ping(&lab.client, HOST_ETH0_V4));
    assert!(ping(&lab.client, HOST_ETH1_V4));

    // A change in main: the walk finds just it.
    host.ip("route del 172.20.0.1/32 via 10.1.0.1 dev eth0");
    host.ip("route add 198.51.100.0/24 via 10.1.0.1 dev eth0");
    let changed = run(host, eth0(), Mode::Apply).expect("eth0 after a change");
    let written = ops(&changed);
    assert_eq!(written.len(), 2, "{written:?}");
    assert!(
        written[0].starts_with("eth0: +route 198.51.100.0/24 via 10.1.0.1"),
        "{written:?}"
    );
    assert!(
        written[1].starts_with("eth0: -route 172.20.0.1/32 via 10.1.0.1"),
        "{written:?}"
    );
    assert!(matches!(
        changed.by_interface[0].ops.as_slice(),
        [Op::ReplaceRoute(_), Op::DelRoute(_)]
    ));
    assert_eq!(
        ops(&run(host, Target::All, Mode::DryRun).expect("dry")),
        Vec::<String>::new()
    );

    // Another tool's route in eth0's table, past the part a read would hold: refused.
    host.ip(&format!(
        "route add 203.0.113.0/24 via 10.1.0.1 dev eth0 table {t0} proto static"
    ));
    host.ip("route add 198.51.101.0/24 via 10.1.0.1 dev eth0");
    let before = state(host, &t0);
    let refused = run(host, eth0(), Mode::Apply).expect_err("eth0 is refused");
    let why = refused.to_string();
    assert!(
        why.starts_with(&format!(
            "eth0: table {t0} already holds a route that is not symroute's (203.0.113.0/24"
        )),
        "{why}"
    );
    assert_eq!(state(host, &t0), before, "a refused run writes nothing");
    let all = run(host, Target::All, Mode::Apply).expect("run over all");
    assert_eq!(all.failures.len(), 1, "{:?}", all.failures);
    assert_eq!(all.failures[0].to_string(), why);
    assert_eq!(state(host, &t0), before, "nothing of eth0 is written");
    assert!(ping(&lab.client, HOST_ETH1_V4));

    // With [health]: refused before planning, and the steering passes eth0 by.
    let refused = run_with(host, steering(), eth0(), Mode::DryRun).expect_err("eth0 is refused");
    assert_eq!(refused.to_string(), why);
    let all = run_with(host, steering(), Target::All, Mode::DryRun).expect("run over all");
    assert_steers_to_eth1_only(&all);
    // So does a run for a LAN behind the host, which plans eth0 along (and leaves it, refused).
    host.sh_ok_input(
        &["ip", "-batch", "-"],
        "link add lan0 type veth peer name lan0p
         link set lan0 up
         link set lan0p up
         addr add 10.50.0.1/24 dev lan0",
    );
    let lan0 = Target::Interface {
        name: "lan0".into(),
        action: Action::Sync,
    };
    let behind = run_with(host, steering(), lan0, Mode::DryRun).expect("lan0's run");
    assert_steers_to_eth1_only(&behind);
    assert!(
        behind.by_interface.iter().all(|c| c.interface != "eth0"),
        "{:?}",
        ops(&behind)
    );
}

/// The steering of `report` has eth1 among its candidates, and not eth0 (refused).
fn assert_steers_to_eth1_only(report: &Report) {
    let candidates: Vec<&str> = report
        .steering
        .iter()
        .flat_map(|s| s.candidates.iter().map(|c| c.name.as_str()))
        .collect();
    assert!(candidates.contains(&"eth1"), "{candidates:?}");
    assert!(!candidates.contains(&"eth0"), "{candidates:?}");
}
