//! The daemon recovering from the host's faults without anyone running anything: runs that
//! fail are retried on a quiet host, a reload with a broken file keeps the running
//! configuration, kill -9 in the middle of a 100 000-route table leaves nothing a rerun
//! cannot converge, and interfaces renamed or deleted and re-created leave no stale state.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use symroute_testlab::beside::change_lines;
use symroute_testlab::daemons::{PrivateMounts, TempDir};
use symroute_testlab::{root_lab, veth, wait_until, Lab, Netns, HOST_ETH0_V4, HOST_ETH1_V4};

const SETTLE: Duration = Duration::from_secs(20);

/// Our rules whose table belongs to no interface, and tables in our range (1000 + index)
/// that hold routes of ours but belong to no interface: what a crash or a vanished
/// interface may leave behind.
fn stale(ns: &Netns) -> Vec<String> {
    let links: Vec<u32> = ns
        .ip("-o link show")
        .lines()
        .filter_map(|l| l.split(':').next()?.trim().parse().ok())
        .collect();
    let live = |table: u32| table > 1000 && links.contains(&(table - 1000));
    let mut out: Vec<String> = our_rules(ns)
        .into_iter()
        .filter(|r| {
            r.split("lookup ")
                .nth(1)
                .and_then(|t| t.split_whitespace().next())
                .and_then(|t| t.parse::<u32>().ok())
                .is_some_and(|t| t != 254 && !live(t))
        })
        .collect();
    for v6 in [false, true] {
        let family = if v6 { "-6" } else { "-4" };
        for line in ns
            .ip(&format!("{family} route show table all proto 83"))
            .lines()
        {
            let table = line
                .split("table ")
                .nth(1)
                .and_then(|t| t.split_whitespace().next())
                .and_then(|t| t.parse::<u32>().ok());
            if table.is_some_and(|t| !live(t)) {
                out.push(line.to_string());
            }
        }
    }
    out
}

#[test]
fn a_lock_that_cannot_be_taken_yet_is_waited_for_on_a_quiet_host() {
    let Some(lab) = root_lab() else { return };
    let host = &lab.host;
    // A real fault no event reports the end of: the lock's directory cannot be created
    // because a file sits where it should be (as with /run not mounted yet).
    let dir = TempDir::new("retry");
    let blocker = dir.path().join("run");
    std::fs::write(&blocker, "").expect("blocker");
    let lock = blocker.join("lock");
    let daemon = Symrouted::start_locked(host, &["--source", "netlink"], &[], Some(&lock));
    daemon.expect_log("lock", SETTLE);
    assert!(our_rules(host).is_empty(), "{:?}", our_rules(host));

    // The fault goes away; nothing else happens on the host. A timer converges.
    std::fs::remove_file(&blocker).expect("remove blocker");
    assert!(
        wait_until(SETTLE, || synced(host, "eth1", HOST_ETH1_V4)
            && mirrored(host, "eth0")),
        "not converged after the fault went away: {:?}",
        our_rules(host)
    );
    lab.assert_client_reaches_all();
}

/// A run that fails inside (here: `nft` unusable while `iif_rules` needs it, as while the
/// nftables package is being installed) is retried with back-off until it succeeds, for the
/// full sync and for one interface's run, with nothing else happening on the host.
#[test]
fn failed_runs_are_retried_until_they_succeed_on_a_quiet_host() {
    let Some(lab) = root_lab() else { return };
    let host = &lab.host;
    let dir = TempDir::new("retry-nft");
    let config = config_file(&dir, "symroute.toml", "iif_rules = true\n");
    // In the daemon's own mount namespace only: /usr/sbin/nft fails until unmounted.
    let mounts = PrivateMounts::new(
        host,
        "mount -t tmpfs -o mode=0755 symroute-test /run\n\
         mount --bind /bin/false /usr/sbin/nft",
    );
    let daemon = Symrouted::start_in(&mounts, &["--source", "netlink", "--config", &config], true);
    daemon.expect_log("nft", SETTLE);
    assert!(nft_table(host).is_none());

    // nft works again; no event follows. The retry timer installs the table.
    mounts.run_ok(&["umount", "/usr/sbin/nft"]);
    eventually(SETTLE, "the failed sync retried", || {
        nft_table(host).is_some()
    });
    assert!(has_rule(host, HOST_ETH1_V4, &table_of(host, "eth1")));
    assert!(daemon.count("retrying") > 0);

    // One interface's run: nft breaks again, an address comes (its run fails to write the
    // table), nft comes back; the retry alone finishes the job.
    mounts.run_ok(&["mount", "--bind", "/bin/false", "/usr/sbin/nft"]);
    let failures = |d: &Symrouted| d.lines().iter().filter(|l| l.starts_with("error:")).count();
    let before = failures(&daemon);
    host.ip("link add lan0 type veth peer name lan1");
    host.ip("link set lan0 up");
    host.ip("addr add 10.7.0.1/24 dev lan0");
    let lan0 = table_of(host, "lan0");
    eventually(SETTLE, "lan0's run failed", || {
        failures(&daemon) > before || daemon.count("still failing") > 0
    });
    mounts.run_ok(&["umount", "/usr/sbin/nft"]);
    assert!(
        wait_until(SETTLE, || has_rule(host, "10.7.0.1", &lan0)
            && nft_table(host).is_some_and(|t| t.contains("lan0"))),
        "not retried: {:?}\n{:?}",
        our_rules(host),
        nft_table(host)
    );
}

/// `table inet symroute` as nft lists it, if there.
fn nft_table(ns: &Netns) -> Option<String> {
    let out = ns.run(&["nft", "list", "table", "inet", "symroute"]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn reload_tells_systemd_and_a_broken_file_keeps_the_running_configuration() {
    let Some(lab) = root_lab() else { return };
    let host = &lab.host;
    let t1 = table_of(host, "eth1");
    let dir = TempDir::new("reload");
    let config = config_file(&dir, "symroute.toml", "rule_priority = 32000\n");
    let daemon = Symrouted::start(host, &["--source", "netlink", "--config", &config]);
    assert!(has_rule(host, HOST_ETH1_V4, &t1));

    // A good file: RELOADING=1 with the monotonic time, then READY=1 once in sync again.
    std::fs::write(&config, "rule_priority = 31000\n").expect("config");
    let seen = daemon.reload();
    let reloading = seen
        .iter()
        .find(|m| m.lines().any(|l| l == "RELOADING=1"))
        .unwrap_or_else(|| panic!("no RELOADING=1: {seen:?}"));
    assert!(
        reloading.lines().any(|l| l
            .strip_prefix("MONOTONIC_USEC=")
            .is_some_and(|v| v.parse::<u64>().is_ok())),
        "{reloading:?}"
    );
    let moved = format!("from {HOST_ETH1_V4} lookup {t1}");
    assert!(
        wait_until(SETTLE, || all_rules(host)
            .iter()
            .any(|r| r.starts_with("31000:") && r.contains(&moved))),
        "{:?}",
        all_rules(host)
    );

    // A broken file: one error naming file, line and key; the running configuration stays.
    std::fs::write(&config, "ipv4 = true\nrule_priority = \"high\"\n").expect("config");
    let state = our_rules(host);
    daemon.reload();
    // The log comes through a pipe read by another thread: READY=1 can be seen first.
    let named = format!("{config}:2: rule_priority");
    daemon.expect_log(&named, SETTLE);
    let errors: Vec<String> = daemon
        .lines()
        .into_iter()
        .filter(|l| l.starts_with("error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains(&named), "{errors:?}");
    assert_eq!(our_rules(host), state);
}

/// Starts `argv` in `ns` and SIGKILLs it as soon as it has written a route into `table`
/// (it is then in the middle of writing the rest: no rule points at the table yet).
fn kill_mid_apply(ns: &Netns, argv: &[&str], table: &str) {
    let monitor = Monitor::start(ns);
    monitor.marker(ns, 1);
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns.name()])
        .args(argv)
        .env("SYMROUTE_LOG", "stderr")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the run");
    let seen = monitor.wait_for(&format!("table {table} "), SETTLE);
    let _ = child.kill();
    let _ = child.wait();
    assert!(seen, "{argv:?} never wrote into table {table}");
}

#[test]
fn kill_9_mid_apply_of_100000_routes_then_a_rerun_converges_with_nothing_stale() {
    const ROUTES: u32 = 100_000;
    let Some(lab) = root_lab() else { return };
    add_foreign_state(&lab);
    let host = &lab.host;
    let t1 = table_of(host, "eth1");
    let dir = TempDir::new("kill9");
    eth1_routes(host, "add", ROUTES);
    let lock = dir.path().join("lock");
    let lock_arg = lock.display().to_string();

    // The daemon killed while it builds the table at start-up.
    kill_mid_apply(
        host,
        &[DAEMON, "--source", "netlink", "--lock-file", &lock_arg],
        &t1,
    );
    assert!(!has_rule(host, HOST_ETH1_V4, &t1));
    let t = Instant::now();
    ok_once(host, &["--once"]);
    eprintln!("rerun after kill -9 converged in {:?}", t.elapsed());
    assert!(mirrored(host, "eth1"), "{}", mirror_diff(host, "eth1"));
    assert!(has_rule(host, HOST_ETH1_V4, &t1));
    // The same state as a clean run: a further run has nothing to change.
    let again = ok_once(host, &["--once"]);
    assert!(change_lines(&again).is_empty(), "{again}");
    assert_nothing_stale(host);

    // Killed while removing (rules go first, then the routes), with `strict` so that an
    // `unreachable` route survives the interface; then the interface is deleted before
    // anyone runs again. The next full run collects the rule-less table.
    let strict = config_file(&dir, "strict.toml", "strict = true\n");
    ok_once(host, &["--once", "--config", &strict]);
    assert!(host
        .routes(&t1, false)
        .iter()
        .any(|r| r.starts_with("unreachable default")));
    kill_mid_apply(host, &[DAEMON, "--flush", "--lock-file", &lock_arg], &t1);
    host.ip("link del eth1");
    assert!(
        !stale(host).is_empty(),
        "the kill left nothing to collect; the test proves nothing"
    );
    ok_once(host, &["--once", "--config", &strict]);
    assert_nothing_stale(host);
    assert_table_empty(host, &t1);
    assert_foreign_state(&lab);
}

fn assert_nothing_stale(ns: &Netns) {
    let stale = stale(ns);
    assert!(stale.is_empty(), "{stale:?}");
}

/// The operator deletes eth1 and creates it again under the same name (a new index), r2's
/// end addressed again; `host_config` (`ip -batch` input) configures the host's end.
fn recreate_eth1(lab: &Lab, host_config: &str) {
    veth(&lab.host, "eth1", &lab.r2, "down0");
    lab.r2.sh_ok_input(
        &["ip", "-batch", "-"],
        "addr add 10.2.0.1/24 dev down0
         addr add fd02::1/64 dev down0 nodad
        ",
    );
    lab.host.sh_ok_input(&["ip", "-batch", "-"], host_config);
}

#[test]
fn renamed_interface_keeps_its_state_and_a_recreated_one_leaves_nothing_stale() {
    let Some(lab) = root_lab() else { return };
    add_foreign_state(&lab);
    let host = &lab.host;
    let t1 = table_of(host, "eth1");
    let daemon = Symrouted::start(host, &["--source", "netlink"]);
    assert!(synced(host, "eth1", HOST_ETH1_V4));

    // Rename (a veth must be down for it): same index, same table, same rules.
    host.ip("link set eth1 down");
    host.ip("link set eth1 name wan1");
    host.ip("link set wan1 up");
    reconfigure_second_uplink(host, "wan1");
    assert!(
        wait_until(SETTLE, || second_uplink_back(host, "wan1", &t1)),
        "{}",
        mirror_diff(host, "wan1")
    );
    assert_eq!(table_of(host, "wan1"), t1);
    assert!(has_rule(host, HOST_ETH1_V4, &t1));
    lab.assert_client_reaches_all();

    // Deleted and re-created under the old name: a new index, a new table; the old table
    // and rules are collected by the daemon.
    host.ip("link del wan1");
    recreate_eth1(
        &lab,
        "addr add 10.2.0.2/24 dev eth1
         addr add fd02::2/64 dev eth1 nodad
         route add default via 10.2.0.1 dev eth1 metric 101
         route add ::/0 via fd02::1 dev eth1 metric 101
        ",
    );
    let new_t1 = table_of(host, "eth1");
    assert_ne!(new_t1, t1);
    assert!(
        wait_until(SETTLE, || synced(host, "eth1", HOST_ETH1_V4)
            && stale(host).is_empty()),
        "{:?} {:?}",
        our_rules(host),
        stale(host)
    );
    assert_table_empty(host, &t1);
    lab.assert_client_reaches_all();
    assert!(daemon.terminate().success());

    // Without the daemon: deleted and re-created again, then `--once` (as `--all`).
    host.ip("link del eth1");
    recreate_eth1(&lab, "addr add 10.2.0.2/24 dev eth1\n");
    let newest = table_of(host, "eth1");
    assert!(
        !stale(host).is_empty(),
        "rules of the deleted eth1 should be left for --once"
    );
    ok_once(host, &["--once"]);
    assert_nothing_stale(host);
    assert!(has_rule(host, HOST_ETH1_V4, &newest));
    assert_foreign_state(&lab);
}

#[test]
fn an_interface_paused_by_a_fight_stays_paused_through_a_full_resync() {
    let Some(lab) = root_lab() else { return };
    let host = &lab.host;
    let (t0, t1) = (table_of(host, "eth0"), table_of(host, "eth1"));
    let daemon = Symrouted::start(host, &["--source", "netlink", "--fight-pause", "600"]);
    let (fought, _) = fight_rule(host, HOST_ETH1_V4, &t1, Duration::from_secs(60), || {
        daemon.count("removed by someone else") > 0
    });
    assert!(fought, "no fight detected");
    // The fighter wins while eth1 is paused.
    let _ = host.try_ip(&format!("rule del {}", rule_spec(HOST_ETH1_V4, &t1)));
    // The operator reloads: a full resync. eth1 stays paused; the others are synced.
    host.ip(&format!("rule del {}", rule_spec(HOST_ETH0_V4, &t0)));
    daemon.reload();
    eventually(SETTLE, "eth0's rule restored by the resync", || {
        has_rule(host, HOST_ETH0_V4, &t0)
    });
    assert!(
        !has_rule(host, HOST_ETH1_V4, &t1),
        "a paused interface was synced by the resync"
    );
}

#[test]
fn a_table_id_clash_resolved_later_converges_by_itself() {
    let Some(lab) = root_lab() else { return };
    let host = &lab.host;
    let t1 = table_of(host, "eth1");
    // Someone else's route in eth1's table: symroute refuses the table, eth0 goes on.
    host.ip(&format!("route add blackhole 198.51.100.0/24 table {t1}"));
    let daemon = Symrouted::start(host, &["--source", "netlink"]);
    daemon.expect_log("refusing to touch it", SETTLE);
    assert!(!has_rule(host, HOST_ETH1_V4, &t1));
    assert!(mirrored(host, "eth0"));
    // The other program moves away; nobody tells symroute anything else.
    host.ip(&format!("route del blackhole 198.51.100.0/24 table {t1}"));
    eventually(SETTLE, "eth1 synced once its table was free", || {
        synced(host, "eth1", HOST_ETH1_V4)
    });
    lab.assert_client_reaches_all();
}
