//! `symroute` against the real kernel: the two-uplink lab (routers with strict reverse-path
//! filtering, a client behind both), each subcommand and each policy with real traffic.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::{assert_contains, findings, Admin, Ran, BIN, NOBODY};
use serde_json::Value;
use symroute_testlab::daemons::{write_file, TempDir};
use symroute_testlab::syslog::Syslog;
use symroute_testlab::{
    all_rules, ping, require, root_lab, running_as_root, table_of, test_name, veth, Lab, Netns,
    HOST_ETH0_V4, HOST_ETH0_V6, HOST_ETH1_V4, HOST_ETH1_V6,
};

fn interface<'a>(status: &'a Value, name: &str) -> &'a Value {
    status["interfaces"]
        .as_array()
        .and_then(|list| list.iter().find(|i| i["ifname"] == name))
        .unwrap_or_else(|| panic!("no {name} in {status}"))
}

/// Every rule and route carrying protocol 83, both families, all tables.
fn ours(ns: &Netns) -> Vec<String> {
    let mut found = Vec::new();
    for family in ["-4", "-6"] {
        for line in ns.ip(&format!("{family} rule show")).lines() {
            if line.contains("proto symroute") || line.contains("proto 83") {
                found.push(line.to_string());
            }
        }
        found.extend(
            ns.ip(&format!("{family} route show table all proto 83"))
                .lines()
                .map(str::to_string),
        );
    }
    found
}

/// One ping, no retry: for paths that must fail (costs about 1 s).
fn ping_once(ns: &Netns, args: &[&str]) -> bool {
    let mut argv = vec!["ping", "-n", "-c", "1", "-W", "1"];
    argv.extend_from_slice(args);
    ns.run(&argv).status.success()
}

/// Pings from the host with a bound source address, retried once like [`ping`].
fn ping_from(ns: &Netns, src: &str, dst: &str) -> bool {
    (0..2).any(|_| ping_once(ns, &["-I", src, dst]))
}

/// A namespace `svc` behind the host on a third link: host lan0 10.50.0.1/24, fd50::1/64 —
/// svc eth0 10.50.0.2/24, fd50::2/64, default via the host (a container or VM network).
fn service_behind_host(lab: &Lab) -> Netns {
    let svc = Netns::new("svc");
    veth(&lab.host, "lan0", &svc, "eth0");
    lab.host.sh_ok_input(
        &["ip", "-batch", "-"],
        "addr add 10.50.0.1/24 dev lan0\naddr add fd50::1/64 dev lan0 nodad\n",
    );
    svc.sh_ok_input(
        &["ip", "-batch", "-"],
        "addr add 10.50.0.2/24 dev eth0
         addr add fd50::2/64 dev eth0 nodad
         route add default via 10.50.0.1
         route add ::/0 via fd50::1
        ",
    );
    svc
}

/// [`service_behind_host`] with the host forwarding to it (both families).
fn service_forwarded_to(lab: &Lab) -> Netns {
    let svc = service_behind_host(lab);
    lab.host.sysctls(&[
        ("net.ipv4.ip_forward", "1"),
        ("net.ipv6.conf.all.forwarding", "1"),
    ]);
    svc
}

/// The rules of one interface in `symroute status --json`, as text.
fn rule_texts(interface: &Value) -> Vec<&str> {
    interface["rules"]
        .as_array()
        .map(|r| r.iter().filter_map(|x| x["text"].as_str()).collect())
        .unwrap_or_default()
}

/// Whether `value` (a JSON string) satisfies `test`.
fn text_is(value: &Value, test: impl Fn(&str) -> bool) -> bool {
    value.as_str().is_some_and(test)
}

#[test]
fn status_plan_and_sync_in_the_lab() {
    let Some(lab) = root_lab() else { return };
    let admin = Admin::new(&lab.host, "");
    let t1 = table_of(&lab.host, "eth1");

    let before = admin.status();
    assert_eq!(before["in_sync"], false);
    assert_eq!(before["table_base"], 1000);
    let eth1 = interface(&before, "eth1");
    assert_eq!(eth1["state"], "pending");
    assert_eq!(eth1["table"].to_string(), t1);
    assert_eq!(eth1["addresses"][0]["covered"], false);
    assert_eq!(interface(&before, "lo")["state"], "unmanaged");

    let rules_before = all_rules(&lab.host);
    let plan = admin.plan();
    let want = format!("eth1: +rule from {HOST_ETH1_V4} lookup {t1} priority 32000");
    assert!(plan.lines().any(|l| l == want), "{plan}");
    let only = |plan: &str, devs: &[&str]| {
        plan.lines()
            .all(|l| devs.iter().any(|d| l.starts_with(&format!("{d}: "))))
    };
    assert!(only(&plan, &["eth0", "eth1"]), "{plan}");
    let plan_eth1 = admin.ok(&["plan", "eth1"]).out;
    assert!(only(&plan_eth1, &["eth1"]), "{plan_eth1}");
    assert_eq!(rules_before, all_rules(&lab.host), "plan changed something");
    assert!(!ping_once(&lab.client, &[HOST_ETH1_V4]));

    assert_contains(&admin.sync().err, &want);
    for addr in Lab::host_addresses() {
        assert!(ping(&lab.client, addr), "{addr} unreachable after sync");
    }

    let after = admin.status();
    assert_eq!(after["in_sync"], true, "{after}");
    let eth1 = interface(&after, "eth1");
    assert_eq!(eth1["state"], "in-sync");
    assert!(eth1["addresses"]
        .as_array()
        .is_some_and(|a| a.len() == 2 && a.iter().all(|x| x["covered"] == true)));
    assert_eq!(
        rule_texts(eth1),
        [
            format!("from {HOST_ETH1_V4} lookup {t1} priority 32000"),
            format!("from {HOST_ETH1_V6} lookup {t1} priority 32000")
        ]
    );
    assert!(eth1["routes"].as_array().is_some_and(|r| r
        .iter()
        .any(|x| x["dst"] == "default" && x["gateway"] == "10.2.0.1" && x["dev"] == "eth1")));
    assert_eq!(admin.plan(), "", "a second sync would change something");
    assert_contains(&admin.ok(&["-v", "sync"]).err, "in sync");

    let text = admin.ok(&["status"]).out;
    let index = lab.host.ifindex("eth1");
    assert_contains(
        &text,
        &format!("eth1 (index {index}, up): table {t1}, in sync"),
    );
    assert!(text.ends_with("in sync\n"), "{text}");
    let one = admin.json(&["status", "eth1", "--json"]);
    assert_eq!(one["interfaces"].as_array().map(Vec::len), Some(1));
    let unknown = admin.exits(1, &["status", "eth9"]);
    assert_contains(&unknown.err, "eth9: no such interface");
}

#[test]
fn status_shows_foreign_and_stale_state() {
    let Some(lab) = root_lab() else { return };
    let (t0, t1) = (table_of(&lab.host, "eth0"), table_of(&lab.host, "eth1"));
    let admin = Admin::new(&lab.host, "");
    admin.sync();
    // Someone else's rule into eth0's table, and eth1 vanishes behind symroute's back.
    lab.host.ip(&format!(
        "rule add priority 100 from 10.9.9.9 lookup {t0} proto static"
    ));
    lab.host.ip("link del eth1");

    let status = admin.status();
    assert_eq!(status["in_sync"], false);
    let foreign = &interface(&status, "eth0")["foreign"];
    assert_eq!(
        foreign[0].as_str(),
        Some(format!("rule from 10.9.9.9 lookup {t0} priority 100 proto 4").as_str()),
        "{status}"
    );
    let stale = &status["stale"][0];
    assert_eq!(stale["table"].to_string(), t1, "{status}");
    let removal = format!("-rule from {HOST_ETH1_V4} lookup {t1}");
    assert!(text_is(&stale["pending"][0], |p| p.starts_with(&removal)));

    admin.sync();
    assert_eq!(admin.status()["stale"], Value::Array(vec![]));
    assert!(lab.host.ip("rule show").contains("from 10.9.9.9 lookup"));
}

#[test]
fn a_foreign_twin_of_our_rule_is_reported_and_a_scoped_status_keeps_to_its_scope() {
    let Some(lab) = root_lab() else { return };
    let t1 = table_of(&lab.host, "eth1");
    let admin = Admin::new(&lab.host, "");
    // Another tool's copy of the rule symroute is about to add, at symroute's priority.
    lab.host.ip(&format!(
        "rule add priority 32000 from {HOST_ETH1_V4} lookup {t1} proto static"
    ));
    admin.sync();
    assert_eq!(
        lab.host
            .ip("rule show")
            .matches(&format!("from {HOST_ETH1_V4} lookup {t1}"))
            .count(),
        2,
        "ours beside theirs"
    );
    let status = admin.status();
    assert_eq!(status["in_sync"], false, "{status}");
    assert_eq!(interface(&status, "eth1")["state"], "contested", "{status}");
    let text = admin.ok(&["status"]).out;
    assert_contains(&text, &format!("table {t1}, contested"));
    assert_contains(
        &text,
        "not in sync: someone else's rule uses symroute's table",
    );
    assert_eq!(findings(&admin.doctor(), "tables")[0]["verdict"], "fail");

    // eth0 is in sync; only eth1 is not: `status eth0` says so, and where the rest is.
    let text = admin.ok(&["status", "eth0"]).out;
    assert!(
        text.ends_with("eth0: in sync (elsewhere not in sync: eth1; run `symroute status`)\n"),
        "{text}"
    );
    let scoped = admin.json(&["status", "eth0", "--json"]);
    assert_eq!(scoped["scope"], "eth0");
    assert_eq!(scoped["others_not_in_sync"], serde_json::json!(["eth1"]));
}

#[test]
fn explain_names_rule_table_route_and_symmetry() {
    let Some(lab) = root_lab() else { return };
    let admin = Admin::new(&lab.host, "");
    let t1 = table_of(&lab.host, "eth1");

    let e = admin.explain(&[HOST_ETH1_V4, "10.12.0.2"]);
    assert_eq!(e["table"], "main", "{e}");
    assert_eq!(e["rule"]["text"], "from all lookup main priority 32766");
    assert_eq!(e["dev"], "eth0");
    assert_eq!(e["owner"], "eth1");
    assert_eq!(e["symmetric"], false);

    admin.sync();
    let e = admin.explain(&[HOST_ETH1_V4, "10.12.0.2"]);
    assert_eq!(
        e["rule"]["text"],
        format!("from {HOST_ETH1_V4} lookup {t1} priority 32000"),
        "{e}"
    );
    assert_eq!(e["rule"]["ours"], true);
    assert_eq!(e["rule"]["certain"], true);
    assert_eq!(e["table"].as_str(), Some(t1.as_str()));
    assert_eq!(e["table_of"], "eth1");
    assert_eq!(e["route"]["dst"], "default");
    assert_eq!(e["route"]["protocol"], "83");
    assert_eq!(e["type"], "unicast");
    assert_eq!(e["dev"], "eth1");
    assert_eq!(e["gateway"], "10.2.0.1");
    assert_eq!(e["symmetric"], true);

    let e = admin.explain(&[HOST_ETH1_V6, "fd12::2"]);
    assert_eq!(e["family"], "inet6");
    assert_eq!(e["dev"], "eth1", "{e}");
    assert_eq!(e["symmetric"], true);

    // eth0's address answering a client on eth1's side still leaves through eth0.
    let e = admin.explain(&["10.1.0.2", "10.2.0.9"]);
    assert_eq!(e["dev"], "eth0", "{e}");
    assert_eq!(e["symmetric"], true);

    let e = admin.explain(&["10.1.0.2", HOST_ETH1_V4]);
    assert_eq!(e["type"], "local", "{e}");
    assert_eq!(e["table"], "local");
    assert_eq!(e["symmetric"], Value::Null);

    let text = admin.ok(&["explain", HOST_ETH1_V4, "10.12.0.2"]).out;
    assert_contains(&text, &format!("table    {t1} (symroute's table for eth1)"));
    assert_contains(&text, "verdict  symmetric: leaves via 10.2.0.1 dev eth1");

    let e = admin.explain(&["192.0.2.1", "10.12.0.2"]);
    assert!(e["error"].is_string(), "{e}");
    assert!(text_is(&e["verdict"], |v| v.contains("not an address of this host")));
}

#[test]
fn read_only_commands_work_without_root() {
    let Some(lab) = root_lab() else { return };
    let admin = Admin::new(&lab.host, "");
    let nobody = |args: &[&str]| admin.run_as(Some(NOBODY), args);
    for args in [
        &["status", "--json"][..],
        &["plan"],
        &["explain", HOST_ETH1_V4, "10.12.0.2", "--json"],
    ] {
        let ran = nobody(args);
        assert_eq!(ran.code, Some(0), "{args:?} as nobody: {ran:?}");
    }
    assert_contains(&nobody(&["plan"]).out, "+rule from");
    let ran = nobody(&["doctor", "--json"]);
    assert!(matches!(ran.code, Some(0 | 1)), "{ran:?}");
    let doctor: Value = serde_json::from_str(&ran.out).expect("doctor JSON");
    assert!(doctor["findings"].as_array().is_some_and(|f| !f.is_empty()));
    // What they cannot see without privileges, they say on stderr, one line each.
    admin.configure("iif_rules = true\n");
    let ran = nobody(&["doctor", "--json"]);
    assert_eq!(
        ran.err,
        "warning: iif_rules: table inet symroute could not be read (that needs \
         CAP_NET_ADMIN: run doctor as root)\n"
    );
    let ran = nobody(&["plan"]);
    assert_eq!(ran.code, Some(0), "{ran:?}");
    assert_contains(&ran.err, "what a sync would change in it is unknown");
    assert_eq!(ran.err.lines().count(), 1, "{ran:?}");
    admin.configure("");

    // Writing needs privileges: refused first with why, nothing changed.
    for command in ["sync", "flush"] {
        let ran = nobody(&[command]);
        assert_eq!(ran.code, Some(1), "{ran:?}");
        assert_eq!(
            ran.err,
            format!(
                "error: symroute {command} must run as root: changing rules and routes needs \
                 CAP_NET_ADMIN, which this process lacks (use sudo)\n"
            )
        );
    }
    assert!(ours(&lab.host).is_empty());
}

/// `ip -j route show table T`'s routes as (dst, metrics object) pairs (`ip -j` calls
/// congctl `congestion`).
fn route_metrics_in(ns: &Netns, family: &str, table: &str) -> Vec<(String, Value)> {
    let out = ns.ip(&format!("-j {family} route show table {table}"));
    let routes: Vec<Value> = serde_json::from_str(&out).unwrap_or_default();
    routes
        .iter()
        .map(|r| {
            let mut metrics = serde_json::Map::new();
            for m in r["metrics"].as_array().into_iter().flatten() {
                if let Some(object) = m.as_object() {
                    metrics.extend(object.clone());
                }
            }
            (
                r["dst"].as_str().unwrap_or("?").to_string(),
                Value::Object(metrics),
            )
        })
        .collect()
}

#[test]
fn route_metrics_are_set_on_mirrored_routes_and_a_second_sync_writes_nothing() {
    let Some(lab) = root_lab() else { return };
    let admin = Admin::new(
        &lab.host,
        "route_metrics = { initcwnd = 10, quickack = true, lock = [\"initcwnd\"] }\n\
         [interface.eth1]\nroute_metrics = { mtu = 1400, congctl = \"reno\" }\n",
    );
    let (t0, t1) = (table_of(&lab.host, "eth0"), table_of(&lab.host, "eth1"));
    let plan = admin.plan();
    assert!(
        plan.lines().any(
            |l| l.starts_with("eth1: +route default via 10.2.0.1 dev eth1")
                && l.ends_with(" mtu 1400 initcwnd lock 10 quickack 1 congctl reno")
        ),
        "{plan}"
    );
    admin.sync();
    let eth1_routes = route_metrics_in(&lab.host, "-4", &t1);
    assert!(!eth1_routes.is_empty());
    for (dst, metrics) in &eth1_routes {
        assert_eq!(metrics["mtu"], 1400, "{dst}: {metrics}");
        assert_eq!(metrics["initcwnd"], 10, "{dst}: {metrics}");
        assert_eq!(metrics["quickack"], 1, "{dst}: {metrics}");
        assert_eq!(metrics["congestion"], "reno", "{dst}: {metrics}");
    }
    for (dst, metrics) in route_metrics_in(&lab.host, "-6", &t1) {
        assert_eq!(metrics["mtu"], 1400, "{dst}: {metrics}");
        assert_eq!(metrics["congestion"], "reno", "{dst}: {metrics}");
    }
    for (dst, metrics) in route_metrics_in(&lab.host, "-4", &t0) {
        assert_eq!(metrics["initcwnd"], 10, "{dst}: {metrics}");
        assert!(metrics.get("mtu").is_none(), "{dst}: {metrics}");
    }
    let text = lab.host.ip(&format!("route show table {t1}"));
    assert!(
        text.lines()
            .all(|l| l.contains(" mtu 1400 initcwnd lock 10 quickack 1 congctl reno")),
        "{text}"
    );
    // Main keeps its routes as they were.
    assert!(!lab.host.ip("route show table main").contains("initcwnd"));
    // status --json shows the metrics as `ip -j` does.
    let status = admin.status();
    let ours = interface(&status, "eth1")["routes"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let theirs = ip_json(&lab.host.ip(&format!("-j -4 route show table {t1}")));
    for route in &theirs {
        let mine = ours
            .iter()
            .find(|r| r["family"] == "inet" && r["dst"] == route["dst"])
            .unwrap_or_else(|| panic!("{route} not in {status}"));
        same_as_ip(mine, route).unwrap_or_else(|e| panic!("{e}: {mine} vs {route}"));
    }
    assert_eq!(admin.plan(), "", "a second sync would write again");
    assert_eq!(admin.status()["in_sync"], true);
    // Traffic still flows both ways through each uplink.
    for addr in Lab::host_addresses() {
        assert!(
            ping(&lab.client, addr),
            "{addr} unreachable with route metrics"
        );
    }

    // Changed and then removed: each edit is one rewrite, and a rerun writes nothing.
    admin.configure("[interface.eth1]\nroute_metrics = { mtu = 1300 }\n");
    admin.sync();
    for (dst, metrics) in route_metrics_in(&lab.host, "-4", &t1) {
        assert_eq!(metrics, serde_json::json!({"mtu": 1300}), "{dst}");
    }
    assert_eq!(admin.plan(), "");
    admin.configure("");
    admin.sync();
    assert!(route_metrics_in(&lab.host, "-4", &t1)
        .iter()
        .all(|(_, m)| m.as_object().is_some_and(|m| m.is_empty())));
    assert_eq!(admin.plan(), "");

    // Refused before anything is done, naming the key.
    admin.configure("route_metrics = { mtu = 70000 }\n");
    let ran = admin.exits(2, &["sync"]);
    assert_contains(
        &ran.err,
        ":1: route_metrics.mtu: 70000 is out of range 68..=65520",
    );
    admin.configure("[interface.eth1]\nroute_metrics = { mss = 1 }\n");
    let ran = admin.exits(2, &["plan"]);
    assert_contains(
        &ran.err,
        ":2: interface.eth1.route_metrics.mss: unknown route metric",
    );
}

#[test]
fn usage_and_config_errors_exit_2_and_change_nothing() {
    // No kernel access is reached: these need no root.
    let dir = TempDir::new("config");
    let config = dir.path().join("symroute.toml");
    write_file(&config, "table_base = 1000\nstrict = \"yes\"\n", 0o644);
    let run = |args: &[&str]| -> Ran {
        Command::new(BIN)
            .args(args)
            .env("SYMROUTE_LOG", "stderr")
            .output()
            .expect("run symroute")
            .into()
    };
    let usage = |args: &[&str]| {
        let ran = run(args);
        assert_eq!(ran.code, Some(2), "{args:?}: {ran:?}");
        ran.err
    };
    let path = config.to_str().unwrap_or_default();
    assert_contains(
        &usage(&["--config", path, "sync"]),
        &format!("{path}:2: strict: "),
    );
    usage(&["--config", "/nonexistent/symroute.toml", "status"]);
    write_file(&config, "", 0o644);
    assert_contains(
        &usage(&["--config", path, "explain", "10.0.0.1", "fd00::1"]),
        "different address families",
    );
    usage(&["--config", path, "status", "a/b"]);
    usage(&["frobnicate"]);
    usage(&["explain", "10.0.0.1"]);
    let help = run(&["--help"]).out;
    for word in [
        "status",
        "plan",
        "sync",
        "flush",
        "doctor",
        "explain",
        "EXIT STATUS",
    ] {
        assert!(help.contains(word), "--help lacks {word}: {help}");
    }
}

#[test]
fn flush_leaves_no_rule_or_route_of_ours() {
    let Some(lab) = root_lab() else { return };
    let _svc = service_behind_host(&lab);
    lab.host
        .ip("rule add priority 100 from 10.9.9.9 lookup 200");
    lab.host
        .ip("route add 198.51.100.0/24 via 10.2.0.1 dev eth1 table 200");
    let foreign_routes = lab.host.routes("200", false);
    let admin = Admin::new(
        &lab.host,
        "iif_rules = true\nstrict = true\nexempt = [\"10.50.0.0/24\", \"fd50::/64\"]\n",
    );
    admin.sync();
    let installed = ours(&lab.host);
    let mark1 = mark_of(&lab.host, "eth1");
    let has = |lines: &[String], part: &str| lines.iter().any(|l| l.contains(part));
    assert!(
        has(&installed, &format!("fwmark {mark1}/0xff000000")),
        "{installed:?}"
    );
    assert!(nft_table(&lab.host).is_some());
    assert!(
        has(&installed, "to 10.50.0.0/24 lookup main"),
        "{installed:?}"
    );
    let closed = installed
        .iter()
        .any(|l| l.starts_with("unreachable default"));
    assert!(closed, "{installed:?}");

    // One interface: only its rules and table go.
    let t1 = table_of(&lab.host, "eth1");
    admin.ok(&["flush", "eth1"]);
    let left = ours(&lab.host);
    assert!(
        !has(&left, &format!("lookup {t1}")) && !has(&left, "dev eth1"),
        "{left:?}"
    );
    assert!(has(&left, "dev eth0"), "{left:?}");

    admin.sync();
    admin.ok(&["flush"]);
    assert_eq!(ours(&lab.host), Vec::<String>::new());
    assert_eq!(nft_table(&lab.host), None);
    for dev in ["eth0", "eth1", "lan0"] {
        let t = table_of(&lab.host, dev);
        assert!(lab.host.routes(&t, false).is_empty() && lab.host.routes(&t, true).is_empty());
    }
    assert_eq!(foreign_routes, lab.host.routes("200", false));
    assert!(has(&lab.host.rules(false), "from 10.9.9.9 lookup 200"));
    let status = admin.status();
    assert!(status["interfaces"]
        .as_array()
        .is_some_and(|i| i.iter().all(|x| x["rules"] == Value::Array(vec![]))));
    // Flushing what is already gone is fine.
    admin.ok(&["flush"]);
}

#[test]
fn exempt_prefix_stays_local_instead_of_going_via_the_uplink() {
    let Some(lab) = root_lab() else { return };
    let _svc = service_behind_host(&lab);
    let admin = Admin::new(&lab.host, "");
    admin.sync();
    // Without exemption, eth1's table already reaches the container network next door:
    // it holds a copy of main's direct route to it.
    let e = admin.explain(&[HOST_ETH1_V4, "10.50.0.2"]);
    assert_eq!(e["dev"], "lan0", "{e}");
    assert_eq!(e["symmetric"], true, "{e}");
    assert!(text_is(&e["verdict"], |v| v.starts_with("direct: ")), "{e}");
    assert!(ping_from(&lab.host, HOST_ETH1_V4, "10.50.0.2"));

    admin.configure("exempt = [\"10.50.0.0/24\", \"fd50::/64\"]\n");
    let exempt = "from all to 10.50.0.0/24 lookup main priority 31999";
    let plan = admin.plan();
    assert!(
        plan.lines().any(|l| l == format!("exempt: +rule {exempt}")),
        "{plan}"
    );
    admin.sync();
    let e = admin.explain(&[HOST_ETH1_V4, "10.50.0.2"]);
    assert_eq!(e["rule"]["text"], exempt, "{e}");
    assert_eq!(e["rule"]["ours"], true);
    assert_eq!(e["dev"], "lan0");
    assert!(ping_from(&lab.host, HOST_ETH1_V4, "10.50.0.2"));
    assert!(ping_from(&lab.host, HOST_ETH1_V6, "fd50::2"));
    // Still symmetric for everything else.
    assert!(ping(&lab.client, HOST_ETH1_V4));
    let status = admin.status();
    assert_eq!(status["exempt"]["rules"].as_array().map(Vec::len), Some(2));

    // Exemptions removed from the configuration are removed from the kernel.
    admin.configure("");
    admin.sync();
    assert!(!lab.host.ip("rule show").contains("10.50.0.0/24"));
}

/// [`service_forwarded_to`], reachable from the client through r2 and the host's eth1; r1
/// does not know the service network, so an answer that leaves through eth0 fails r1's
/// strict reverse-path filter.
fn forwarding_lab() -> Option<(Lab, Netns)> {
    let lab = root_lab()?;
    let svc = service_forwarded_to(&lab);
    lab.r2.ip("route add 10.50.0.0/24 via 10.2.0.2");
    lab.r2.ip("-6 route add fd50::/64 via fd02::2");
    lab.client.ip("route add 10.50.0.0/24 via 10.12.0.1");
    lab.client.ip("-6 route add fd50::/64 via fd12::1");
    Some((lab, svc))
}

/// `table inet symroute` as `nft list` shows it; `None` when it does not exist.
fn nft_table(ns: &Netns) -> Option<String> {
    let out = ns.run(&["nft", "list", "table", "inet", "symroute"]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// symroute's fwmark rules, both families, in `ip rule` syntax.
fn fwmark_rules(ns: &Netns) -> Vec<String> {
    ours(ns)
        .into_iter()
        .filter(|l| l.contains("fwmark"))
        .collect()
}

/// The mark iif_rules gives `dev` with the default fwmark_mask.
fn mark_of(ns: &Netns, dev: &str) -> String {
    format!("{:#x}", ns.ifindex(dev) << 24)
}

#[test]
fn iif_rules_answer_forwarded_traffic_through_the_interface_it_came_in() {
    let Some((lab, _svc)) = forwarding_lab() else {
        return;
    };
    let admin = Admin::new(&lab.host, "");
    // What the host does with the client's request to the service, entering eth1.
    let forwarded = || admin.explain(&["10.12.0.2", "10.50.0.2", "--iif", "eth1"]);
    admin.sync();
    // The answer of 10.50.0.2 leaves by main's default through eth0; r1 drops it.
    assert!(!ping_once(&lab.client, &["10.50.0.2"]));
    let e = forwarded();
    assert_eq!(e["dev"], "lan0", "{e}");
    assert_eq!(e["reply"]["dev"], "eth0", "{e}");
    assert_eq!(e["symmetric"], false);

    admin.configure("iif_rules = true\n");
    let plan = admin.plan();
    assert!(
        plan.lines()
            .any(|l| l == "nft: replace table inet symroute (3 interfaces)"),
        "{plan}"
    );
    admin.sync();
    let t1 = table_of(&lab.host, "eth1");
    let mark1 = mark_of(&lab.host, "eth1");
    let want = format!("from all fwmark {mark1}/0xff000000 lookup {t1} proto");
    let marked = fwmark_rules(&lab.host);
    assert!(
        marked
            .iter()
            .any(|r| r.starts_with("31998:") && r.contains(&want)),
        "{marked:?}"
    );
    // Requests are still routed by main (no hairpin, no exemption needed); the answer
    // carries eth1's mark and leaves through eth1, past r2's strict filter.
    assert!(ping(&lab.client, "10.50.0.2"));
    assert!(ping(&lab.client, "fd50::2"));
    let e = forwarded();
    assert_eq!(e["dev"], "lan0", "{e}");
    assert_eq!(e["reply"]["mark"], mark1.as_str(), "{e}");
    assert_eq!(
        e["reply"]["rule"]["text"],
        format!("from all fwmark {mark1}/0xff000000 lookup {t1} priority 31998"),
        "{e}"
    );
    assert_eq!(e["reply"]["dev"], "eth1", "{e}");
    assert_eq!(e["symmetric"], true, "{e}");
    let doctor = admin.doctor();
    let iif = findings(&doctor, "iif_rules");
    let marks = "connections entering eth0, eth1, lan0 are marked";
    assert!(
        iif.len() == 1
            && iif[0]["verdict"] == "ok"
            && text_is(&iif[0]["message"], |m| m.starts_with(marks)),
        "{doctor}"
    );
    let status = admin.status();
    assert_eq!(status["in_sync"], true, "{status}");

    // A strict reverse-path filter on the host drops such forwarded traffic whatever the
    // rules (the request's reverse path is looked up in main): explain and doctor say so,
    // and loosening it is the fix.
    lab.host.sysctl("net.ipv4.conf.all.rp_filter", "1");
    assert!(!ping_once(&lab.client, &["10.50.0.2"]));
    let e = forwarded();
    assert!(
        text_is(&e["verdict"], |v| v.starts_with("dropped on entry to eth1")),
        "{e}"
    );
    let doctor = admin.doctor();
    assert!(
        findings(&doctor, "rp_filter")
            .iter()
            .any(|f| f["verdict"] == "fail"
                && text_is(&f["message"], |m| m.starts_with("eth1: rp_filter=1"))
                && text_is(&f["fix"], |x| x.contains("net.ipv4.conf.eth1.rp_filter=2"))),
        "{doctor}"
    );
    lab.host.sysctls(&[
        ("net.ipv4.conf.all.rp_filter", "2"),
        ("net.ipv4.conf.eth1.rp_filter", "2"),
    ]);
    assert!(ping(&lab.client, "10.50.0.2"));
}

/// Issue 6: port forwarding. Echo requests to eth1's addresses are DNAT'ed to the service
/// behind the host, and to a second address of eth1 to the host's own lan0 address; echo
/// requests to eth0's address go to the service too. Every answer must leave through the
/// uplink its request came in through, with that uplink's address as source: through the
/// other one, the strict router there drops it (neither router knows the other's subnet).
#[test]
fn dnat_to_a_service_behind_the_host_is_answered_through_eth1() {
    let Some(lab) = root_lab() else { return };
    let _svc = service_forwarded_to(&lab);
    lab.host.ip("addr add 10.2.0.3/24 dev eth1");
    // Port forwarding, ICMP flavour.
    lab.host.sh_ok_input(
        &["nft", "-f", "-"],
        "table inet portfwd {
           chain pre {
             type nat hook prerouting priority dstnat; policy accept;
             iifname \"eth1\" ip daddr 10.2.0.2 icmp type echo-request dnat ip to 10.50.0.2
             iifname \"eth1\" ip daddr 10.2.0.3 icmp type echo-request dnat ip to 10.50.0.1
             iifname \"eth1\" ip6 daddr fd02::2 icmpv6 type echo-request dnat ip6 to fd50::2
             iifname \"eth0\" ip daddr 10.1.0.2 icmp type echo-request dnat ip to 10.50.0.2
           }
         }
        ",
    );
    let admin = Admin::new(&lab.host, "");
    admin.sync();
    // Without iif_rules the DNAT'ed answer leaves through eth0 (main's default) with source
    // 10.2.0.2, and r1 drops it.
    assert!(!ping_once(&lab.client, &[HOST_ETH1_V4]));

    admin.configure("iif_rules = true\n");
    admin.sync();
    assert!(
        ping(&lab.client, HOST_ETH1_V4),
        "the DNAT'ed echo's answer did not come back through eth1"
    );
    assert!(
        ping(&lab.client, HOST_ETH1_V6),
        "the DNAT'ed IPv6 echo's answer did not come back through eth1"
    );
    // Answered by the host itself from 10.50.0.1: re-routed in the output hook.
    assert!(
        ping(&lab.client, "10.2.0.3"),
        "the host's own answer to a DNAT'ed echo did not leave through eth1"
    );
    // Traffic entering eth0 is still answered through eth0.
    assert!(ping(&lab.client, HOST_ETH0_V4));
    assert!(ping(&lab.client, HOST_ETH0_V6));
}

#[test]
fn iif_rules_converged_rerun_writes_nothing_and_off_or_flush_removes_the_table() {
    let Some(lab) = root_lab() else { return };
    let admin = Admin::new(&lab.host, "iif_rules = true\n");
    // Interface by interface, as the hook does: the table grows with each.
    admin.ok(&["sync", "eth0"]);
    let table = nft_table(&lab.host).expect("table inet symroute after sync eth0");
    assert!(
        table.contains("ct state new iif \"eth0\"") && !table.contains("iif \"eth1\""),
        "{table}"
    );
    admin.ok(&["sync", "eth1"]);
    let table = nft_table(&lab.host).expect("table inet symroute after sync eth1");
    assert!(
        table.contains("ct state new iif \"eth0\"") && table.contains("ct state new iif \"eth1\""),
        "{table}"
    );
    assert_contains(&table, "comment \"symroute iif_rules ");
    assert_eq!(fwmark_rules(&lab.host).len(), 4, "{:?}", ours(&lab.host));
    assert_eq!(admin.plan(), "");

    // A converged rerun, per interface and of everything, writes neither rules nor routes
    // nor nftables: both monitors see only the markers around it.
    let (rx, mut monitors) = monitor(&lab.host);
    let marker = |n: u32| {
        lab.host
            .ip(&format!("rule add priority {n} from 192.0.2.{n} lookup 77"));
        lab.host
            .ip(&format!("rule del priority {n} from 192.0.2.{n} lookup 77"));
        lab.host.sh_ok_input(
            &["nft", "-f", "-"],
            &format!("table ip marker{n}\ndelete table ip marker{n}\n"),
        );
    };
    // Lines until both monitors have shown marker `n`, or `None` after `patience`.
    let wait_marker = |n: u32, patience: std::time::Duration| -> Option<Vec<String>> {
        let deadline = std::time::Instant::now() + patience;
        let (mut seen, mut rule, mut table) = (Vec::new(), false, false);
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            let Ok(line) = rx.recv_timeout(left) else {
                break;
            };
            rule |= line.starts_with("Deleted") && line.contains(&format!("from 192.0.2.{n} "));
            table |= line.contains(&format!("delete table ip marker{n}"));
            seen.push(line);
            if rule && table {
                return Some(seen);
            }
        }
        None
    };
    // The monitors subscribe a moment after they start: marker 11 until both show it.
    assert!(
        (0..50).any(|_| {
            marker(11);
            wait_marker(11, std::time::Duration::from_millis(200)).is_some()
        }),
        "the monitors never started"
    );
    admin.ok(&["sync", "eth1"]);
    admin.ok(&["sync", "eth0"]);
    admin.sync();
    marker(12);
    let seen = wait_marker(12, std::time::Duration::from_secs(10)).expect("marker 12");
    for m in &mut monitors {
        let _ = m.kill();
        let _ = m.wait();
    }
    let writes: Vec<&String> = seen
        .iter()
        // Late lines of repeated markers 11, and marker 12; each nft transaction ends in
        // `# new generation N by process P (nft)`, the markers' too.
        .filter(|l| {
            !l.contains("from 192.0.2.11 ")
                && !l.contains("from 192.0.2.12 ")
                && !l.contains("marker1")
                && !l.starts_with("# new generation")
        })
        .collect();
    assert!(writes.is_empty(), "a converged rerun wrote: {writes:?}");

    // Turned off: one interface's run already removes the table (its own rules and those
    // left elsewhere are the evidence); the full run removes the rest.
    admin.configure("");
    let ran = admin.ok(&["sync", "eth1"]);
    assert_contains(&ran.err, "nft: delete table inet symroute");
    assert_eq!(nft_table(&lab.host), None);
    admin.sync();
    assert_eq!(fwmark_rules(&lab.host), Vec::<String>::new());
    assert_eq!(admin.plan(), "");

    // On again, then flushed: nothing of ours is left, in nftables either.
    admin.configure("iif_rules = true\n");
    admin.sync();
    assert!(nft_table(&lab.host).is_some() && !fwmark_rules(&lab.host).is_empty());
    admin.ok(&["flush", "eth1"]);
    let table = nft_table(&lab.host).expect("eth0 is still marked");
    assert!(
        !table.contains("iif \"eth1\"") && table.contains("iif \"eth0\""),
        "{table}"
    );
    admin.ok(&["flush"]);
    assert_eq!(nft_table(&lab.host), None);
    assert_eq!(ours(&lab.host), Vec::<String>::new());
    // Someone deleting the table is repaired by the next run.
    admin.sync();
    lab.host
        .sh_ok(&["nft", "delete", "table", "inet", "symroute"]);
    admin.ok(&["sync", "eth0"]);
    assert!(nft_table(&lab.host).is_some_and(|t| t.contains("iif \"eth1\"")));
}

/// `ip monitor rule route` and `nft monitor` in `ns`, their lines merged into one channel.
fn monitor(ns: &Netns) -> (std::sync::mpsc::Receiver<String>, Vec<std::process::Child>) {
    use std::io::{BufRead, BufReader};
    let (tx, rx) = std::sync::mpsc::channel();
    let mut children = Vec::new();
    for argv in [&["ip", "monitor", "rule", "route"][..], &["nft", "monitor"]] {
        let mut child = ns.spawn(argv);
        let stdout = child.stdout.take().expect("monitor stdout");
        let tx = tx.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        children.push(child);
    }
    (rx, children)
}

#[test]
fn iif_rules_without_nft_is_one_error_naming_nft() {
    let Some(lab) = root_lab() else { return };
    let admin = Admin::new(&lab.host, "iif_rules = true\n");
    let dir = TempDir::new("nonft");
    let stand_in = dir.path().join("nft");
    write_file(&stand_in, "", 0o644);
    // /usr/sbin/nft replaced by a file that cannot be run, in a mount namespace of its own.
    let script = format!(
        "mount --bind {stand_in} /usr/sbin/nft && exec {BIN} --config {cfg} sync eth1",
        stand_in = stand_in.display(),
        cfg = admin.config().display(),
    );
    let ran = Ran::from(lab.host.run_private(&["sh", "-c", &script]));
    let err = ran.err;
    assert_eq!(ran.code, Some(1), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| !l.contains(": +")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].starts_with("error: replacing table inet symroute: cannot run /usr/sbin/nft: ")
            && lines[0].contains("install it, or turn iif_rules off"),
        "{err}"
    );
    // The rules were made all the same; the table was not.
    assert!(!fwmark_rules(&lab.host).is_empty());
    assert_eq!(nft_table(&lab.host), None);
}

/// Packets leaving eth0 with eth1's address as source, counted by nftables in the host.
fn leak_counter(host: &Netns) -> impl Fn() -> u64 + '_ {
    host.sh_ok_input(
        &["nft", "-f", "-"],
        "table ip leak {
           counter leaked { }
           chain post {
             type filter hook postrouting priority 0; policy accept;
             oifname \"eth0\" ip saddr 10.2.0.2 counter name leaked
           }
         }
        ",
    );
    move || {
        let out = host.sh_ok(&["nft", "list", "counter", "ip", "leak", "leaked"]);
        out.split_whitespace()
            .skip_while(|w| *w != "packets")
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("no packet count in {out}"))
    }
}

#[test]
fn strict_keeps_eth1_traffic_from_leaking_through_eth0() {
    let Some(lab) = root_lab() else { return };
    // eth1's gateway is gone from main (DHCP lost it, an admin removed it).
    lab.host.ip("route del default via 10.2.0.1 dev eth1");
    let leaked = leak_counter(&lab.host);
    let admin = Admin::new(&lab.host, "");
    // What the host sends from eth1's address to the client.
    let to_client = || admin.explain(&[HOST_ETH1_V4, "10.12.0.2"]);
    let try_client = || ping_once(&lab.host, &["-I", HOST_ETH1_V4, "10.12.0.2"]);
    admin.sync();
    let e = to_client();
    assert_eq!(e["dev"], "eth0", "{e}");
    assert_eq!(e["symmetric"], false);
    assert!(!try_client());
    assert!(
        leaked() > 0,
        "without strict the packet should have left through eth0"
    );

    admin.configure("strict = true\n");
    admin.sync();
    let before = leaked();
    assert!(!try_client());
    assert_eq!(
        leaked(),
        before,
        "traffic from eth1's address leaked through eth0"
    );
    let e = to_client();
    // An `unreachable` route answers EHOSTUNREACH.
    assert!(text_is(&e["error"], |x| x.contains("(errno 113)")), "{e}");
    assert_eq!(
        e["rule"]["text"],
        format!(
            "from {HOST_ETH1_V4} lookup {} priority 32000",
            table_of(&lab.host, "eth1")
        )
    );
    // The connected subnet is still reachable from that address.
    assert!(ping_from(&lab.host, HOST_ETH1_V4, "10.2.0.1"));
}

#[test]
fn prefix_rules_cover_a_new_address_before_any_sync() {
    let Some(lab) = root_lab() else { return };
    let t1 = table_of(&lab.host, "eth1");
    let admin = Admin::new(&lab.host, "");
    admin.sync();
    // Per-address rules: a new address is dead until the next sync.
    lab.host.ip("addr add 10.2.0.8/24 dev eth1");
    assert!(!ping_once(&lab.client, &["10.2.0.8"]));

    admin.configure("prefix_rules = true\n");
    admin.sync();
    let rules = lab.host.ip("rule show");
    assert_contains(&rules, &format!("from 10.2.0.0/24 lookup {t1}"));
    assert!(
        !rules.contains(&format!("from {HOST_ETH1_V4} lookup")),
        "{rules}"
    );
    assert!(lab
        .host
        .ip("-6 rule show")
        .contains(&format!("from fd02::/64 lookup {t1}")));
    lab.host.ip("addr add 10.2.0.9/24 dev eth1");
    lab.host.ip("addr add fd02::9/64 dev eth1 nodad");
    assert!(
        ping(&lab.client, "10.2.0.9"),
        "new address not covered by the prefix rule"
    );
    assert!(ping(&lab.client, "fd02::9"));
    assert!(ping(&lab.client, "10.2.0.8"));
    assert!(ping(&lab.client, "10.1.0.2"));

    // A subnet on two interfaces cannot be told apart by a prefix rule: refused.
    lab.host.ip("addr add 10.2.0.77/24 dev eth0");
    assert_contains(&admin.exits(1, &["sync", "eth1"]).err, "prefix_rules");
    let status = admin.status();
    assert_eq!(interface(&status, "eth1")["state"], "refused", "{status}");
}

#[test]
fn table_names_are_written_in_a_private_mount_namespace_only() {
    if !running_as_root() {
        return;
    }
    let real = Path::new("/etc/iproute2/rt_tables.d");
    if !require(
        real.is_dir(),
        &test_name(),
        "needs /etc/iproute2/rt_tables.d",
    ) {
        return;
    }
    let names_file = real.join("symroute.conf");
    let before = std::fs::read(&names_file).ok();
    let lab = Lab::two_uplinks();
    let admin = Admin::new(&lab.host, "table_names = true\n");
    let t1 = table_of(&lab.host, "eth1");
    let script = format!(
        "set -e
         mount -t tmpfs symroute-test {dir}
         {BIN} --config {cfg} sync
         cat {dir}/symroute.conf
         echo ---
         ip route show table symroute-eth1
         echo ---
         ip rule show
         echo ---
         {BIN} --config {cfg} flush
         test ! -e {dir}/symroute.conf && echo removed",
        dir = real.display(),
        cfg = admin.config().display(),
    );
    let out = lab.host.sh_ok_private(&["sh", "-c", &script]);
    let parts: Vec<&str> = out.split("---\n").collect();
    assert_eq!(parts.len(), 4, "{out}");
    assert!(
        parts[0]
            .lines()
            .any(|l| l == format!("{t1}\tsymroute-eth1")),
        "{out}"
    );
    assert!(parts[1].contains("default via 10.2.0.1 dev eth1"), "{out}");
    assert!(
        parts[2].contains(&format!("from {HOST_ETH1_V4} lookup symroute-eth1")),
        "{out}"
    );
    assert_eq!(parts[3].trim(), "removed", "{out}");
    assert_eq!(
        std::fs::read(&names_file).ok(),
        before,
        "the machine's /etc was touched"
    );
}

#[test]
fn doctor_reports_foreign_tables_and_shadowing_rules() {
    let Some(lab) = root_lab() else { return };
    let admin = Admin::new(&lab.host, "");
    admin.sync();
    let t1 = table_of(&lab.host, "eth1");
    let doctor = admin.doctor();
    for check in ["sync", "tables", "shadowing", "rp_filter", "arp"] {
        let f = findings(&doctor, check);
        assert!(
            !f.is_empty() && f.iter().all(|x| x["verdict"] == "ok"),
            "{check}: {doctor}"
        );
    }

    // A VPN-like catch-all before ours, and someone else's route in eth1's table.
    lab.host
        .ip("route add default via 10.1.0.1 dev eth0 table 51820");
    lab.host.ip("rule add priority 100 from all lookup 51820");
    lab.host.ip(&format!(
        "route add 203.0.113.0/24 via 10.2.0.1 dev eth1 table {t1} proto static"
    ));
    let ran = admin.exits(1, &["doctor", "--json"]);
    let doctor: Value = serde_json::from_str(&ran.out).expect("doctor JSON");
    assert_eq!(doctor["ok"], false);
    let ours = format!("table {t1} (for eth1)");
    assert!(
        findings(&doctor, "tables")
            .iter()
            .any(|x| x["verdict"] == "fail"
                && text_is(&x["message"], |m| m.starts_with(&ours))
                && text_is(&x["fix"], |f| f.contains("table_base = 2000"))),
        "{doctor}"
    );
    let vpn = "from all lookup 51820 priority 100";
    assert!(
        findings(&doctor, "shadowing")
            .iter()
            .any(|x| x["verdict"] == "fail" && text_is(&x["message"], |m| m.contains(vpn))),
        "{doctor}"
    );

    let text = admin.run(&["doctor"]).out;
    assert_contains(&text, "FAIL  tables");
    assert_contains(&text, "fix: set `table_base = 2000`");

    // The suggested base works, and a sync places our rules just before the catch-all.
    admin.configure("table_base = 2000\n");
    admin.sync();
    assert!(
        lab.host
            .rules(false)
            .iter()
            .any(|r| r.starts_with("99:") && r.contains("from 10.2.0.2 lookup 2003")),
        "{:?}",
        lab.host.rules(false)
    );
    assert!(ping(&lab.client, HOST_ETH1_V4));
    // Gone again: the next sync (the daemon's at once) puts ours back at 32000.
    lab.host.ip("rule del priority 100 from all lookup 51820");
    admin.sync();
    assert!(ping(&lab.client, HOST_ETH1_V4));
    let doctor = admin.doctor();
    for check in ["sync", "tables", "shadowing"] {
        assert!(
            findings(&doctor, check)
                .iter()
                .all(|x| x["verdict"] == "ok"),
            "{check}: {doctor}"
        );
    }
}

#[test]
fn off_a_terminal_errors_reach_stderr_and_changes_reach_syslog() {
    let Some(lab) = root_lab() else { return };
    let admin = Admin::new(&lab.host, "");
    let mut syslog = Syslog::new(&lab.host);
    let cfg = admin.config();
    let cfg = cfg.to_string_lossy();
    let t1 = table_of(&lab.host, "eth1");
    // `symroute --config FILE ARGS` off a terminal, its syslog the test's own.
    let logged = |syslog: &Syslog, args: &[&str], env: &[(&str, &str)]| -> Ran {
        let mut argv = vec!["--config", &cfg];
        argv.extend_from_slice(args);
        syslog.run(Path::new(BIN), &argv, env).into()
    };

    let ran = logged(&syslog, &["sync"], &[]);
    assert_eq!(ran.code, Some(0), "{ran:?}");
    let change = format!("eth1: +rule from {HOST_ETH1_V4} lookup {t1} priority 32000");
    assert_contains(&ran.err, &change);
    let got = syslog.wait_for(&change, Duration::from_secs(10));
    assert!(
        got.iter()
            .any(|m| m.contains(&change) && m.contains("symroute[")),
        "no audit line for {change:?} in {got:?}"
    );

    let ran = logged(&syslog, &["sync", "eth9"], &[]);
    assert_eq!(ran.code, Some(1), "{ran:?}");
    assert_contains(&ran.err, "error: eth9: no such interface");
    assert!(ran.out.is_empty());

    // SYMROUTE_LOG=syslog changes nothing for the admin: stderr still gets the error.
    let ran = logged(&syslog, &["status", "eth9"], &[("SYMROUTE_LOG", "syslog")]);
    assert_contains(&ran.err, "eth9: no such interface");
}

/// `ip -j` objects of one family, from `ip [-6] -j ARGS` output.
fn ip_json(text: &str) -> Vec<Value> {
    serde_json::from_str::<Value>(text)
        .ok()
        .and_then(|v| v.as_array().cloned())
        .unwrap_or_else(|| panic!("not an ip -j array: {text}"))
}

/// Every key `ip -j` prints for `theirs` (but `flags`, which symroute does not show) has the
/// same value in `ours`.
fn same_as_ip(ours: &Value, theirs: &Value) -> Result<(), String> {
    let Some(fields) = theirs.as_object() else {
        return Err(format!("not an object: {theirs}"));
    };
    for (key, value) in fields {
        if key == "flags" {
            continue;
        }
        if key == "nexthops" {
            let (Some(a), Some(b)) = (ours[key].as_array(), value.as_array()) else {
                return Err(format!("nexthops: {} vs {value}", ours[key]));
            };
            if a.len() != b.len() {
                return Err(format!("nexthops: {} vs {value}", ours[key]));
            }
            for (x, y) in a.iter().zip(b) {
                same_as_ip(x, y)?;
            }
            continue;
        }
        if &ours[key] != value {
            return Err(format!("{key}: ours {} , ip -j {value}", ours[key]));
        }
    }
    Ok(())
}

#[test]
fn json_rules_and_routes_read_like_ip_j() {
    if !running_as_root() {
        return;
    }
    let etc = Path::new("/etc/iproute2");
    let dirs = etc.join("rt_tables.d").is_dir() && etc.join("rt_protos.d").is_dir();
    if !require(
        dirs,
        &test_name(),
        "needs /etc/iproute2/rt_tables.d and rt_protos.d",
    ) {
        return;
    }
    let lab = Lab::two_uplinks();
    // Named tables (rt_tables.d) and protocol (rt_protos.d), both in a private mount
    // namespace only.
    let admin = Admin::new(&lab.host, "table_names = true\n");
    let t1 = table_of(&lab.host, "eth1");
    let script = format!(
        "set -e
         mount -t tmpfs symroute-test /etc/iproute2/rt_tables.d
         mount -t tmpfs symroute-test /etc/iproute2/rt_protos.d
         echo '83 symroute' > /etc/iproute2/rt_protos.d/symroute.conf
         {BIN} --config {cfg} sync 2>/dev/null
         {BIN} --config {cfg} status --json
         echo ---; ip -j rule show
         echo ---; ip -6 -j rule show
         echo ---; ip -j route show table {t1}
         echo ---; ip -6 -j route show table {t1}",
        cfg = admin.config().display(),
    );
    let out = lab.host.sh_ok_private(&["sh", "-c", &script]);
    let parts: Vec<&str> = out.split("---\n").collect();
    assert_eq!(parts.len(), 5, "{out}");
    let status: Value = serde_json::from_str(parts[0]).expect("status JSON");
    assert_eq!(status["schema_version"], 2, "{status}");
    let eth1 = interface(&status, "eth1");

    let rules = eth1["rules"].as_array().expect("rules");
    assert_eq!(rules.len(), 2, "{eth1}");
    for rule in rules {
        let ip = ip_json(if rule["family"] == "inet" {
            parts[1]
        } else {
            parts[2]
        });
        let theirs = ip
            .iter()
            .find(|r| r["priority"] == rule["priority"] && r["src"] == rule["src"])
            .unwrap_or_else(|| panic!("{rule} not in ip -j rule: {ip:?}"));
        same_as_ip(rule, theirs).unwrap_or_else(|e| panic!("{e}\nours {rule}\nip -j {theirs}"));
        assert_eq!(rule["table"], "symroute-eth1");
        assert_eq!(rule["protocol"], "symroute");
    }

    let routes = eth1["routes"].as_array().expect("routes");
    for v6 in [false, true] {
        let family = if v6 { "inet6" } else { "inet" };
        let ip = ip_json(if v6 { parts[4] } else { parts[3] });
        let ip: Vec<&Value> = ip.iter().filter(|r| r["protocol"] == "symroute").collect();
        let ours: Vec<&Value> = routes.iter().filter(|r| r["family"] == family).collect();
        assert_eq!(
            ours.len(),
            ip.len(),
            "{family}: ours {ours:?}\nip -j {ip:?}"
        );
        assert!(!ours.is_empty());
        for route in ours {
            let theirs = ip
                .iter()
                .find(|r| r["dst"] == route["dst"] && r["type"] == route["type"])
                .unwrap_or_else(|| panic!("{route} not in ip -j route: {ip:?}"));
            same_as_ip(route, theirs)
                .unwrap_or_else(|e| panic!("{e}\nours {route}\nip -j {theirs}"));
            assert_eq!(route["table"], "symroute-eth1");
            assert!(route.get("nexthops").is_none(), "single path: {route}");
        }
    }
    assert!(routes
        .iter()
        .any(|r| r["dst"] == "default" && r["gateway"] == "10.2.0.1" && r["dev"] == "eth1"));
}

/// `symroute status --json` and `symroute plan` of the same host, which must agree: status
/// says in sync exactly when the sync would write nothing and refuse nothing.
#[track_caller]
fn status_and_plan(admin: &Admin) -> (Value, Ran) {
    let status = admin.status();
    let plan = admin.run(&["plan"]);
    let writes_nothing = plan.out.is_empty() && plan.code == Some(0);
    assert_eq!(
        status["in_sync"] == true,
        writes_nothing,
        "status: {status}\nplan: {plan:?}"
    );
    (status, plan)
}

#[test]
fn a_lan_interfaces_status_counts_the_uplink_tables_its_sync_writes() {
    let Some(lab) = root_lab() else { return };
    let _svc = service_behind_host(&lab);
    let t0 = table_of(&lab.host, "eth0");
    let admin = Admin::new(&lab.host, "");
    admin.sync();
    assert_eq!(status_and_plan(&admin).0["in_sync"], true);
    // eth0's copy of the LAN's route is lost (someone's `ip route flush`, a crash midway):
    // answers from eth0's address to the LAN would leave through eth0's gateway.
    lab.host.ip(&format!("route del 10.50.0.0/24 table {t0}"));

    let (status, plan) = status_and_plan(&admin);
    assert_eq!(interface(&status, "eth0")["state"], "pending", "{status}");
    assert_eq!(interface(&status, "lan0")["state"], "in-sync", "{status}");
    assert_contains(
        &plan.out,
        &format!("eth0: +route 10.50.0.0/24 dev lan0 table {t0}"),
    );
    // lan0's own table is as a sync leaves it, but `sync lan0` writes eth0's copy too: its
    // status says so (it used to say "lan0: in sync").
    let text = admin.ok(&["status", "lan0"]).out;
    assert!(
        text.ends_with(
            "lan0: not in sync: run `symroute sync lan0` (it also writes the tables of eth0)\n"
        ),
        "{text}"
    );
    let scoped = admin.json(&["status", "lan0", "--json"]);
    assert_eq!(scoped["sync_also_writes"], serde_json::json!(["eth0"]));
    let written = admin.ok(&["sync", "lan0"]).err;
    assert_contains(&written, "eth0: +route 10.50.0.0/24 dev lan0");

    assert_eq!(status_and_plan(&admin).0["in_sync"], true);
    let text = admin.ok(&["status", "lan0"]).out;
    assert!(text.ends_with("\nlan0: in sync\n"), "{text}");
}

#[test]
fn status_counts_table_inet_symroute_as_the_sync_does() {
    let Some(lab) = root_lab() else { return };
    let admin = Admin::new(&lab.host, "iif_rules = true\n");
    admin.sync();
    assert!(nft_table(&lab.host).is_some());
    assert_eq!(status_and_plan(&admin).0["in_sync"], true);
    // The table is gone (`nft flush ruleset` by a firewall reload): the fwmark rules are
    // still there, and answers are no longer marked.
    lab.host
        .sh_ok_input(&["nft", "-f", "-"], "delete table inet symroute\n");

    let (status, plan) = status_and_plan(&admin);
    let pending = status["nftables"]["pending"].as_str().unwrap_or_default();
    assert!(
        pending.starts_with("nft: replace table inet symroute"),
        "{status}"
    );
    assert_contains(&plan.out, pending);
    assert!(interface(&status, "eth1")["state"] == "in-sync", "{status}");
    let text = admin.ok(&["status"]).out;
    assert_contains(
        &text,
        &format!("nftables (table inet symroute):\n  pending    {pending}\n"),
    );
    assert!(
        text.ends_with("\nnot in sync: run `symroute sync`\n"),
        "{text}"
    );
    assert_eq!(findings(&admin.doctor(), "sync")[0]["verdict"], "fail");

    admin.sync();
    assert!(nft_table(&lab.host).is_some());
    let (status, _) = status_and_plan(&admin);
    assert_eq!(status["in_sync"], true);
    assert!(status.get("nftables").is_none(), "{status}");
}

#[test]
fn status_names_what_a_sync_refuses_instead_of_asking_for_one() {
    let Some(lab) = root_lab() else { return };
    let t1 = table_of(&lab.host, "eth1");
    let admin = Admin::new(&lab.host, "");
    admin.sync();
    // Another tool's route in eth1's table: symroute will not touch the table.
    let foreign = format!("203.0.113.0/24 via 10.2.0.1 dev eth1 table {t1} proto static");
    lab.host.ip(&format!("route add {foreign}"));

    let (status, plan) = status_and_plan(&admin);
    assert_eq!(plan.code, Some(1), "{plan:?}");
    assert_eq!(plan.out, "", "a refused sync writes nothing");
    let eth1 = interface(&status, "eth1");
    assert_eq!(eth1["state"], "refused", "{status}");
    let why = format!("eth1: table {t1} already holds a route that is not symroute's");
    assert!(
        text_is(&status["refusals"][0], |r| r.starts_with(&why)),
        "{status}"
    );
    let text = admin.ok(&["status"]).out;
    let last = text.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(&format!("not in sync: a sync refuses {why}")),
        "{text}"
    );
    assert!(!text.contains("run `symroute sync`"), "{text}");
    let text = admin.ok(&["status", "eth1"]).out;
    assert_contains(&text, &format!("eth1: not in sync: a sync refuses {why}"));
    // The sync refuses just that, and writes nothing.
    let before = ours(&lab.host);
    assert_contains(&admin.exits(1, &["sync"]).err, &why);
    assert_eq!(ours(&lab.host), before);

    // Once the other tool's route is gone, nothing is left to do.
    lab.host.ip(&format!("route del {foreign}"));
    assert_eq!(status_and_plan(&admin).0["in_sync"], true);
}
