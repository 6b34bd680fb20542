//! A run for one interface reads main interface by interface (kernel-filtered dumps, an
//! uplink's cut once it is known as one): against the real kernel, on a host with two
//! uplinks (eth0 carrying thousands of routes), a LAN, a bridge, an OpenVPN-style full
//! tunnel (0/1 + 128/1), a wg-quick-style one (its default in a table of its own) and a
//! keepalived-style macvlan on eth1, the plan of every interface's own run is the plan of a
//! run over all of them, which read all of main in one dump.

mod common;

use symroute_core::{Action, Mode, Report, Settings, Target};
use symroute_testlab::{ping, root_lab, table_of, Lab, Netns};

const INTERFACES: [&str; 7] = ["eth0", "eth1", "br0", "lan0", "tun0", "tun1", "mac0"];

fn host_of_every_kind(lab: &Lab, lan: &Netns) {
    let mut batch = format!(
        "link add br0 type bridge
         link set br0 up
         addr add 172.17.0.1/16 dev br0
         addr add fd00:17::1/64 dev br0 nodad
         link add lan0 type veth peer name lan0p netns {lan}
         link set lan0 up
         addr add 192.168.5.1/24 dev lan0
         addr add fd05::1/64 dev lan0 nodad
         tuntap add tun0 mode tun
         link set tun0 up
         addr add 10.8.0.2/24 dev tun0
         route add 0.0.0.0/1 dev tun0
         route add 128.0.0.0/1 dev tun0
         tuntap add tun1 mode tun
         link set tun1 up
         addr add 10.64.0.2/24 dev tun1
         route add default dev tun1 table 51820
         rule add not fwmark 51820 table 51820 priority 32765
         rule add table main suppress_prefixlength 0 priority 32764
         link add mac0 link eth1 type macvlan mode bridge
         link set mac0 up
         addr add 10.2.0.50/24 dev mac0
         route add 10.99.0.0/16 nexthop via 10.1.0.1 dev eth0 nexthop via 10.2.0.1 dev eth1
         route add 10.98.0.0/16 nexthop dev br0 nexthop dev lan0
        ",
        lan = lan.name()
    );
    // eth0's IPv4 dump spans many parts: a run for another interface cuts it after the first.
    for i in 0..3000u32 {
        batch += &format!(
            "route add 172.20.{}.{}/32 via 10.1.0.1 dev eth0\n",
            i / 250,
            i % 250 + 1
        );
    }
    // And its IPv6 dump too, when steering does not need the default at its end.
    for i in 0..600u32 {
        batch += &format!("route add 2001:db8:{i:x}::/48 via fd01::1 dev eth0\n");
    }
    // Behind the host, copied into every uplink's table.
    for i in 1..=200u32 {
        batch += &format!("route add 192.168.100.{i}/32 dev lan0\n");
    }
    lab.host.sh_ok_input(&["ip", "-batch", "-"], &batch);
    lan.ip("link set lan0p up");
}

fn run(host: &Netns, target: Target, mode: Mode) -> Report {
    run_with(host, Settings::default(), target, mode)
}

fn steering() -> Settings {
    common::steering(&["192.0.2.1", "2001:db8:ffff::1"])
}

fn run_with(host: &Netns, settings: Settings, target: Target, mode: Mode) -> Report {
    common::run_in(host, settings, target, mode).expect("run")
}

fn sync(name: &str) -> Target {
    Target::Interface {
        name: name.into(),
        action: Action::Sync,
    }
}

/// The routes of ours in `table` and the rules into it, both families.
fn table_state(ns: &Netns, table: &str) -> Vec<String> {
    let mut state = Vec::new();
    for family in ["-4", "-6"] {
        // A table the kernel never had (no route of that family) is empty.
        state.extend(
            ns.try_ip(&format!("{family} route show table {table} proto 83"))
                .unwrap_or_default()
                .lines()
                .map(str::to_string),
        );
        state.extend(
            ns.ip(&format!("{family} rule show table {table}"))
                .lines()
                .map(str::to_string),
        );
    }
    state
}

/// The first changes of `report` (enough to tell what went wrong).
fn changes(report: &Report) -> Vec<String> {
    report
        .by_interface
        .iter()
        .flat_map(|c| {
            c.ops
                .iter()
                .map(move |op| format!("{}: {op:?}", c.interface))
        })
        .take(8)
        .collect()
}

#[test]
fn each_interfaces_run_plans_what_a_run_over_all_of_main_plans() {
    each_interfaces_run_plans_what_all_plans(Settings::default());
}

/// With `[health]`, a run reads every default route (IPv6 dumps whole) and plans the
/// steering as a run over all of main does.
#[test]
fn with_steering_each_interfaces_run_plans_what_a_run_over_all_of_main_plans() {
    each_interfaces_run_plans_what_all_plans(steering());
}

fn each_interfaces_run_plans_what_all_plans(settings: Settings) {
    let Some(lab) = root_lab() else { return };
    let lan = Netns::new("lan");
    host_of_every_kind(&lab, &lan);
    let run = |host: &Netns, target, mode| run_with(host, settings.clone(), target, mode);
    let all = run(&lab.host, Target::All, Mode::Apply);
    assert!(all.failures.is_empty(), "{:?}", all.failures);
    let built: Vec<(String, Vec<String>)> = INTERFACES
        .iter()
        .map(|dev| {
            let table = table_of(&lab.host, dev);
            let state = table_state(&lab.host, &table);
            (table, state)
        })
        .collect();
    // The host as the planner sees it: every kind is there.
    let eth1 = &built[1].1;
    assert!(
        eth1.iter().any(|r| r.starts_with("192.168.100.7 dev lan0")),
        "eth1's table copies the LAN: {eth1:?}"
    );
    assert!(
        !eth1
            .iter()
            .any(|r| r.contains("dev tun0") || r.contains("dev tun1")),
        "full tunnels are uplinks, not behind the host: {eth1:?}"
    );
    assert!(
        built[6]
            .1
            .iter()
            .any(|r| r.starts_with("default via 10.2.0.1")),
        "mac0 takes eth1's ways out: {:?}",
        built[6].1
    );
    assert!(
        built[5].1.iter().any(|r| r.starts_with("default dev tun1")),
        "tun1 keeps its VPN table's default: {:?}",
        built[5].1
    );

    let steered = all.steering.clone();
    assert_eq!(steered.is_some(), settings.health.is_some());
    for (dev, (table, state)) in INTERFACES.iter().zip(&built) {
        let dry = rebuilt_by_its_own_run(&lab.host, &run, dev, table, state);
        assert_eq!(dry.steering, steered, "{dev}'s run plans the steering");
    }
}

/// On the built host, `dev`'s own run changes nothing; with its table emptied, it builds it
/// again as the run over all of main built it (`state`), after which a run over all of main
/// changes nothing. Returns the dry run's report.
fn rebuilt_by_its_own_run(
    host: &Netns,
    run: &dyn Fn(&Netns, Target, Mode) -> Report,
    dev: &str,
    table: &str,
    state: &[String],
) -> Report {
    let dry = run(host, sync(dev), Mode::DryRun);
    assert_eq!(
        changes(&dry),
        Vec::<String>::new(),
        "{dev}'s run on the built host"
    );
    for family in ["-4", "-6"] {
        let _ = host.try_ip(&format!("{family} route flush table {table}"));
    }
    run(host, sync(dev), Mode::Apply);
    assert_eq!(table_state(host, table), state, "{dev}'s table rebuilt");
    let again = run(host, Target::All, Mode::DryRun);
    assert_eq!(
        changes(&again),
        Vec::<String>::new(),
        "after {dev}'s own run"
    );
    dry
}

/// Main's routes through `dev` in `table` (ours), both families.
fn through(ns: &Netns, table: &str, dev: &str) -> Vec<String> {
    table_state(ns, table)
        .into_iter()
        .filter(|l| l.contains(&format!("dev {dev} ")) && !l.contains("lookup"))
        .collect()
}

#[test]
fn a_lan_nic_that_gets_a_gateway_takes_its_copies_out_of_the_other_uplinks_table() {
    let Some(lab) = root_lab() else { return };
    // eth1 without its defaults: behind the host, its subnets copied into eth0's table.
    lab.host.ip("-4 route del default via 10.2.0.1 dev eth1");
    lab.host.ip("-6 route del default via fd02::1 dev eth1");
    let all = run(&lab.host, Target::All, Mode::Apply);
    assert!(all.failures.is_empty(), "{:?}", all.failures);
    let t0 = table_of(&lab.host, "eth0");
    let copies = through(&lab.host, &t0, "eth1");
    assert!(
        copies.iter().any(|r| r.starts_with("10.2.0.0/24 dev eth1")),
        "eth0's table copies the LAN eth1 is: {copies:?}"
    );
    // The admin gives eth1 its gateway back; its hook runs.
    lab.host
        .ip("-4 route add default via 10.2.0.1 dev eth1 metric 101");
    lab.host
        .ip("-6 route add default via fd02::1 dev eth1 metric 101");
    run(&lab.host, sync("eth1"), Mode::Apply);
    assert_eq!(through(&lab.host, &t0, "eth1"), Vec::<String>::new());
    let again = run(&lab.host, Target::All, Mode::DryRun);
    assert_eq!(changes(&again), Vec::<String>::new(), "after eth1's run");
    // Each uplink's address answers through its own strict router.
    lab.assert_client_reaches_all();
}

/// IPv4 uplinks with IPv6 addresses but no IPv6 default: each NIC is behind the host in
/// IPv6, where no uplink takes copies, so a run for eth1 does not plan (nor read all the
/// routes of) eth0; it still plans what a run over all of main plans.
#[test]
fn with_ipv4_only_uplinks_each_run_plans_what_a_run_over_all_of_main_plans() {
    let Some(lab) = root_lab() else { return };
    lab.host.ip("-6 route del default via fd01::1 dev eth0");
    lab.host.ip("-6 route del default via fd02::1 dev eth1");
    let mut batch = String::new();
    for i in 0..3000u32 {
        batch += &format!(
            "route add 172.20.{}.{}/32 via 10.1.0.1 dev eth0\n",
            i / 250,
            i % 250 + 1
        );
    }
    lab.host.sh_ok_input(&["ip", "-batch", "-"], &batch);
    let all = run(&lab.host, Target::All, Mode::Apply);
    assert!(all.failures.is_empty(), "{:?}", all.failures);
    // A copy missing from eth0's table is no business of eth1's run: it does not plan eth0.
    let t0 = table_of(&lab.host, "eth0");
    lab.host.ip(&format!("route del 172.20.0.1/32 table {t0}"));
    let eth1 = run(&lab.host, sync("eth1"), Mode::DryRun);
    assert_eq!(
        changes(&eth1),
        Vec::<String>::new(),
        "eth1's run planned eth0 along"
    );
    run(&lab.host, sync("eth0"), Mode::Apply);
    for dev in ["eth0", "eth1"] {
        let table = table_of(&lab.host, dev);
        let state = table_state(&lab.host, &table);
        assert!(
            state.iter().any(|r| r.starts_with("default via")),
            "{dev}: {state:?}"
        );
        rebuilt_by_its_own_run(&lab.host, &run, dev, &table, &state);
    }
    // Each uplink's IPv4 address answers through its own strict router.
    for addr in &Lab::host_addresses()[..2] {
        assert!(ping(&lab.client, addr), "the client reaches {addr}");
    }
}
