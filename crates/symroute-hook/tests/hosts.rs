//! A real host behind its uplinks: a Docker bridge with a container, a LAN behind a
//! gateway-less NIC. Every path that worked before symroute must work after it, while each
//! uplink address still answers through its own uplink (real TCP and pings through the
//! lab's strict reverse-path-filtering routers).

use symroute_testlab::beside::change_lines;
use symroute_testlab::daemons::{write_file, TempDir};
use symroute_testlab::hosts::{
    assert_reaches_service, bridge_with_container, container_targets, docker_bridge, reaches,
    BehindLab, Service, BRIDGE_V4, BRIDGE_V6, CONTAINER_V4 as CONTAINER, SERVICE_PORT,
    SERVICE_TAG as TAG,
};
use symroute_testlab::{
    ping, root_lab, running_as_root, table_of, Netns, HOST_ETH0_V4, HOST_ETH1_V4,
};

const HOOK: &str = env!("CARGO_BIN_EXE_symroute-hook");

/// What sits behind a real host, for a root test; `None` when the test is skipped.
fn behind_lab() -> Option<BehindLab> {
    running_as_root().then(BehindLab::new)
}

/// Panics, with the table's routes, unless `table` (IPv6 when `v6`) has a route starting
/// with each of `want`.
fn assert_routes(ns: &Netns, table: &str, v6: bool, want: &[&str]) {
    let routes = ns.routes(table, v6);
    for w in want {
        assert!(
            routes.iter().any(|r| r.starts_with(w)),
            "no {w:?} in table {table}: {routes:?}"
        );
    }
}

/// Panics, with the table's routes, if a route of `table` (IPv6 when `v6`) mentions any of
/// `unwanted`.
fn assert_no_routes(ns: &Netns, table: &str, v6: bool, unwanted: &[&str]) {
    let routes = ns.routes(table, v6);
    for u in unwanted {
        assert!(
            !routes.iter().any(|r| r.contains(u)),
            "{u:?} in table {table}: {routes:?}"
        );
    }
}

/// The hook run inside `ns` the way a dispatcher runs it, which must succeed; its log.
fn hook_ok(ns: &Netns, args: &[&str]) -> String {
    ns.run_logged_ok(HOOK, args)
}

#[test]
fn container_and_lan_reach_every_host_address_before_and_after_symroute() {
    let Some(behind) = behind_lab() else { return };
    let lab = &behind.lab;
    behind.assert_everything_behind_reaches("before symroute");

    hook_ok(&lab.host, &["--all"]);
    behind.assert_everything_behind_reaches("after --all");
    lab.assert_client_reaches_all();

    // The mechanism: copies of main's direct routes into the uplink tables, ours.
    let t1 = table_of(&lab.host, "eth1");
    assert_routes(
        &lab.host,
        &t1,
        false,
        &[
            "172.17.0.0/16 dev docker0 proto 83",
            "192.168.50.0/24 dev lan0 proto 83",
        ],
    );
    assert_routes(&lab.host, &t1, true, &["fd00:17::/64 dev docker0 proto 83"]);
    // Never the link-local prefix of another interface.
    assert_no_routes(&lab.host, &t1, true, &["fe80::/64 dev docker0"]);

    // A converged run writes nothing.
    let again = hook_ok(&lab.host, &["--all"]);
    assert!(change_lines(&again).is_empty(), "{again}");
}

#[test]
fn strict_tables_keep_what_is_behind_the_host() {
    let Some(behind) = behind_lab() else { return };
    let lab = &behind.lab;
    let dir = TempDir::new("hosts-config");
    let config = dir.path().join("symroute.toml");
    write_file(&config, "strict = true\n", 0o644);
    hook_ok(&lab.host, &["--config", &config.to_string_lossy(), "--all"]);

    let t1 = table_of(&lab.host, "eth1");
    assert_routes(&lab.host, &t1, false, &["unreachable default"]);
    // The bridge's own table is closed too, with the LAN's route in it.
    let bridge = table_of(&lab.host, "docker0");
    assert_routes(
        &lab.host,
        &bridge,
        false,
        &["unreachable default", "192.168.50.0/24 dev lan0 proto 83"],
    );
    assert_reaches_service(&behind.container, &container_targets(), "container");
    assert_reaches_service(
        &behind.lan,
        &[HOST_ETH0_V4, HOST_ETH1_V4, BRIDGE_V4, BRIDGE_V6],
        "LAN",
    );
    lab.assert_client_reaches_all();
}

#[test]
fn event_for_a_bridge_updates_every_uplink_table() {
    let Some(lab) = root_lab() else { return };
    hook_ok(&lab.host, &["eth0", "up"]);
    hook_ok(&lab.host, &["eth1", "up"]);
    let _service = Service::start(&lab.host, SERVICE_PORT, TAG);
    let (t0, t1) = (table_of(&lab.host, "eth0"), table_of(&lab.host, "eth1"));

    // Created after symroute ran: broken until an event for it (or for an uplink) comes.
    let container = docker_bridge(&lab);
    assert!(!reaches(&container, HOST_ETH1_V4, SERVICE_PORT, TAG));
    let log = hook_ok(&lab.host, &["docker0", "up"]);
    for t in [&t0, &t1] {
        assert!(
            log.contains(&format!("+route 172.17.0.0/16 dev docker0 table {t}")),
            "{log}"
        );
    }
    assert_reaches_service(&container, &container_targets(), "container");
    lab.assert_client_reaches_all();

    // An address the bridge loses: its copy is stale and goes with the next event.
    lab.host.ip("-6 addr del fd00:17::1/64 dev docker0");
    hook_ok(&lab.host, &["docker0", "up"]);
    assert_no_routes(&lab.host, &t1, true, &["fd00:17::/64"]);

    // A bridge that loses every address has nothing left to copy: the run for it, which
    // has no main route to go by, finds the leftover copies through it and removes them.
    let _third = bridge_with_container(&lab.host, "br2", "172.19", "19");
    hook_ok(&lab.host, &["br2", "up"]);
    assert_routes(&lab.host, &t1, true, &["fd00:19::/64 dev br2 proto 83"]);
    lab.host.ip("addr flush dev br2 scope global");
    hook_ok(&lab.host, &["br2", "up"]);
    for t in [&t0, &t1] {
        for v6 in [false, true] {
            assert_no_routes(&lab.host, t, v6, &["dev br2"]);
        }
    }
    // A veth's event (a bridge port: no address, only fe80::/64) changes nothing.
    let before = (lab.host.routes(&t1, false), lab.host.routes(&t1, true));
    let log = hook_ok(&lab.host, &["vdocker0", "up"]);
    assert!(change_lines(&log).is_empty(), "{log}");
    assert_eq!(
        before,
        (lab.host.routes(&t1, false), lab.host.routes(&t1, true))
    );

    // A second bridge; then `--flush` removes every copy with the rest.
    let _second = bridge_with_container(&lab.host, "br1", "172.18", "18");
    hook_ok(&lab.host, &["br1", "up"]);
    assert_routes(&lab.host, &t0, false, &["172.18.0.0/16 dev br1 proto 83"]);
    hook_ok(&lab.host, &["--flush"]);
    for t in [&t0, &t1] {
        assert!(lab.host.routes(t, false).is_empty() && lab.host.routes(t, true).is_empty());
    }

    // A bridge that vanished: its `down` collects and exits 0.
    hook_ok(&lab.host, &["--all"]);
    lab.host.ip("link del br1");
    hook_ok(&lab.host, &["br1", "down"]);
    assert_no_routes(&lab.host, &t0, false, &["172.18.0.0/16"]);
}

/// The kernel's own answer to `ip route get TO from FROM`: the `dev` it picks.
fn dev_for(ns: &Netns, to: &str, from: &str) -> String {
    let out = ns.ip(&format!("route get {to} from {from}"));
    out.split_whitespace()
        .skip_while(|w| *w != "dev")
        .nth(1)
        .unwrap_or_default()
        .to_string()
}

#[test]
fn same_subnet_nics_ecmp_and_link_local_gateways_stay_as_they_were_next_to_a_bridge() {
    let Some(lab) = root_lab() else { return };
    let container = docker_bridge(&lab);
    let _service = Service::start(&lab.host, SERVICE_PORT, TAG);
    // A second NIC in eth1's subnet (a macvlan on the same segment), with its own default.
    lab.host.sysctl("net.ipv4.conf.all.arp_ignore", "1");
    lab.host.sh_ok_input(
        &["ip", "-batch", "-"],
        "link add eth2 link eth1 type macvlan mode bridge
         link set eth2 up
         addr add 10.2.0.3/24 dev eth2
         route add default via 10.2.0.1 dev eth2 metric 102
        ",
    );
    // IPv6 through r2's link-local address instead of its ULA.
    let r2_ll = lab
        .r2
        .ip("-6 -o addr show dev down0 scope link")
        .split_whitespace()
        .skip_while(|w| *w != "inet6")
        .nth(1)
        .and_then(|a| a.split('/').next().map(str::to_string))
        .expect("r2 has a link-local address");
    lab.host
        .ip("-6 route del ::/0 via fd02::1 dev eth1 metric 101");
    lab.host.ip(&format!(
        "-6 route add ::/0 via {r2_ll} dev eth1 metric 101"
    ));
    // An ECMP route over both uplinks.
    lab.host
        .ip("route add 192.0.2.0/24 nexthop via 10.1.0.1 dev eth0 nexthop via 10.2.0.1 dev eth1");

    hook_ok(&lab.host, &["--all"]);
    let (t1, t2) = (table_of(&lab.host, "eth1"), table_of(&lab.host, "eth2"));
    // Each same-subnet NIC answers through itself, also inside the subnet.
    assert_eq!(dev_for(&lab.host, "10.12.0.2", "10.2.0.2"), "eth1");
    assert_eq!(dev_for(&lab.host, "10.12.0.2", "10.2.0.3"), "eth2");
    assert_eq!(dev_for(&lab.host, "10.2.0.1", "10.2.0.2"), "eth1");
    assert_eq!(dev_for(&lab.host, "10.2.0.1", "10.2.0.3"), "eth2");
    for t in [&t1, &t2] {
        let routes = lab.host.routes(t, false);
        let subnet: Vec<&String> = routes
            .iter()
            .filter(|r| r.starts_with("10.2.0.0/24"))
            .collect();
        assert_eq!(subnet.len(), 1, "table {t}: {routes:?}");
    }
    // ... and both reach the container directly.
    assert_eq!(dev_for(&lab.host, CONTAINER, "10.2.0.3"), "docker0");
    for a in ["10.2.0.3", HOST_ETH1_V4] {
        assert!(ping(&lab.client, a), "client does not reach {a}");
    }
    // ECMP: eth1's table holds only eth1's nexthop.
    let ecmp: Vec<String> = lab
        .host
        .routes(&t1, false)
        .into_iter()
        .filter(|r| r.starts_with("192.0.2.0/24"))
        .collect();
    assert_eq!(ecmp.len(), 1, "{ecmp:?}");
    assert!(ecmp[0].contains("via 10.2.0.1 dev eth1"), "{ecmp:?}");
    // The link-local gateway is kept, and the bridge's ULA is next to it.
    assert_routes(
        &lab.host,
        &t1,
        true,
        &[
            &format!("default via {r2_ll} dev eth1"),
            "fd00:17::/64 dev docker0",
        ],
    );
    assert!(ping(&lab.client, "fd02::2"));
    assert_reaches_service(&container, &container_targets(), "container");
}

#[test]
fn tunnel_with_direct_routes_is_behind_the_host_until_it_takes_half_the_space() {
    let Some(lab) = root_lab() else { return };
    hook_ok(&lab.host, &["--all"]);
    let (t0, t1) = (table_of(&lab.host, "eth0"), table_of(&lab.host, "eth1"));
    // A VPN's tun device (no process behind it here: its routes are `linkdown`).
    lab.host.sh_ok_input(
        &["ip", "-batch", "-"],
        "tuntap add tun0 mode tun
         link set tun0 up
         addr add 10.8.0.1/24 dev tun0
        ",
    );
    hook_ok(&lab.host, &["tun0", "up"]);
    for t in [&t0, &t1] {
        assert_routes(&lab.host, t, false, &["10.8.0.0/24 dev tun0 proto 83"]);
    }
    // The VPN client now sends everything through the tunnel (0/1 + 128/1): tun0 is an
    // uplink, whose routes are its own table's, no longer copies in the others.
    lab.host.ip("route add 0.0.0.0/1 dev tun0");
    lab.host.ip("route add 128.0.0.0/1 dev tun0");
    hook_ok(&lab.host, &["tun0", "up"]);
    for t in [&t0, &t1] {
        assert_no_routes(&lab.host, t, false, &["tun0"]);
    }
    assert_routes(
        &lab.host,
        &table_of(&lab.host, "tun0"),
        false,
        &[
            "0.0.0.0/1 dev tun0",
            "128.0.0.0/1 dev tun0",
            "10.8.0.0/24 dev tun0",
        ],
    );
    lab.assert_client_reaches_all();
}
