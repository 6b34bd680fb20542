//! The daemon recovering from the host's faults without anyone running anything: runs that
//! fail are retried on a quiet host, a reload with a broken file keeps the running
//! configuration, kill -9 in the middle of a 100 000-route table leaves nothing a rerun
//! cannot converge, and interfaces renamed or deleted and re-created leave no stale state.

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use symroute_testlab::daemons::{PrivateMounts, TempDir};
use symroute_testlab::{require_root, veth, wait_until, Lab, Netns, HOST_ETH1_V4};

const SETTLE: Duration = Duration::from_secs(20);

fn ok_once(ns: &Netns, args: &[&str]) -> String {
    let (status, log) = run_once(ns, args);
    assert!(status.success(), "symrouted {args:?}: {status}\n{log}");
    log
}

/// Log lines of a run that changed something (`eth1: +rule ...`, `if7: -route ...`).
fn changes(log: &str) -> Vec<&str> {
    log.lines()
        .filter(|l| l.contains(": +") || l.contains(": -"))
        .collect()
}

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
    if !require_root("a_lock_that_cannot_be_taken_yet_is_waited_for_on_a_quiet_host") {
        return;
    }
    let lab = Lab::two_uplinks();
    let host = &lab.host;
    let t1 = table_of(host, "eth1");
    // A real fault no event reports the end of: the lock's directory cannot be created
    // because a file sits where it should be (as with /run not mounted yet).
    let dir = TempDir::new("retry");
    let blocker = dir.path().join("run");
    std::fs::write(&blocker, "").expect("blocker");
    let lock = blocker.join("lock");
    let daemon = Symrouted::start_locked(host, &["--source", "netlink"], &[], Some(&lock));
    assert!(daemon.wait_log("lock", SETTLE), "{}", daemon.log());
    assert!(our_rules(host).is_empty(), "{:?}", our_rules(host));

    // The fault goes away; nothing else happens on the host. A timer converges.
    std::fs::remove_file(&blocker).expect("remove blocker");
    assert!(
        wait_until(SETTLE, || has_rule(host, HOST_ETH1_V4, &t1)
            && mirrored(host, "eth0")
            && mirrored(host, "eth1")),
        "not converged after the fault went away: {:?}\n{}",
        our_rules(host),
        daemon.log()
    );
    assert_all_reachable(&lab);
}

/// A run that fails inside (here: `nft` unusable while `iif_rules` needs it, as while the
/// nftables package is being installed) is retried with back-off until it succeeds, for the
/// full sync and for one interface's run, with nothing else happening on the host.
#[test]
fn failed_runs_are_retried_until_they_succeed_on_a_quiet_host() {
    if !require_root("failed_runs_are_retried_until_they_succeed_on_a_quiet_host") {
        return;
    }
    let lab = Lab::two_uplinks();
    let host = &lab.host;
    let t1 = table_of(host, "eth1");
    let dir = TempDir::new("retry-nft");
    let config = dir.path().join("symroute.toml");
    std::fs::write(&config, "iif_rules = true\n").expect("config");
    // In the daemon's own mount namespace only: /usr/sbin/nft fails until unmounted.
    let mounts = PrivateMounts::new(
        host,
        "mount -t tmpfs -o mode=0755 symroute-test /run\n\
         mount --bind /bin/false /usr/sbin/nft",
    );
    let config_arg = config.display().to_string();
    let daemon = Symrouted::start_in(
        &mounts,
        &["--source", "netlink", "--config", &config_arg],
        true,
    );
    assert!(daemon.wait_log("nft", SETTLE), "{}", daemon.log());
    assert!(nft_table(host).is_none());

    // nft works again; no event follows. The retry timer installs the table.
    let out = mounts.run(&["umount", "/usr/sbin/nft"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        wait_until(SETTLE, || nft_table(host).is_some()),
        "not retried: {}",
        daemon.log()
    );
    assert!(has_rule(host, HOST_ETH1_V4, &t1));
    assert!(
        daemon.lines().iter().any(|l| l.contains("retrying")),
        "{}",
        daemon.log()
    );

    // One interface's run: nft breaks again, an address comes (its run fails to write the
    // table), nft comes back; the retry alone finishes the job.
    let out = mounts.run(&["mount", "--bind", "/bin/false", "/usr/sbin/nft"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let failures = |d: &Symrouted| d.lines().iter().filter(|l| l.starts_with("error:")).count();
    let before = failures(&daemon);
    host.ip("link add lan0 type veth peer name lan1");
    host.ip("link set lan0 up");
    host.ip("addr add 10.7.0.1/24 dev lan0");
    let lan0 = table_of(host, "lan0");
    assert!(
        wait_until(SETTLE, || failures(&daemon) > before
            || daemon
                .lines()
                .iter()
                .filter(|l| l.contains("still failing"))
                .count()
                > 0),
        "{}",
        daemon.log()
    );
    let out = mounts.run(&["umount", "/usr/sbin/nft"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        wait_until(SETTLE, || has_rule(host, "10.7.0.1", &lan0)
            && nft_table(host).is_some_and(|t| t.contains("lan0"))),
        "not retried: {:?}\n{:?}\n{}",
        our_rules(host),
        nft_table(host),
        daemon.log()
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
    if !require_root("reload_tells_systemd_and_a_broken_file_keeps_the_running_configuration") {
        return;
    }
    let lab = Lab::two_uplinks();
    let host = &lab.host;
    let t1 = table_of(host, "eth1");
    let dir = TempDir::new("reload");
    let config = dir.path().join("symroute.toml");
    std::fs::write(&config, "rule_priority = 32000\n").expect("config");
    let config_arg = config.display().to_string();
    let daemon = Symrouted::start(host, &["--source", "netlink", "--config", &config_arg]);
    assert!(has_rule(host, HOST_ETH1_V4, &t1));

    // A good file: RELOADING=1 with the monotonic time, then READY=1 once in sync again.
    std::fs::write(&config, "rule_priority = 31000\n").expect("config");
    // SAFETY: signalling the daemon this test started.
    unsafe { libc::kill(daemon.pid() as libc::pid_t, libc::SIGHUP) };
    let seen = daemon.wait_notify("READY=1");
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
    assert!(
        wait_until(SETTLE, || all_rules(host)
            .iter()
            .any(|r| r.starts_with("31000:")
                && r.contains(&format!("from {HOST_ETH1_V4} lookup {t1}")))),
        "{:?}",
        all_rules(host)
    );

    // A broken file: one error naming file, line and key; the running configuration stays.
    std::fs::write(&config, "ipv4 = true\nrule_priority = \"high\"\n").expect("config");
    let state = our_rules(host);
    unsafe { libc::kill(daemon.pid() as libc::pid_t, libc::SIGHUP) };
    daemon.wait_notify("READY=1");
    // The log comes through a pipe read by another thread: READY=1 can be seen first.
    assert!(
        daemon.wait_log(&format!("{config_arg}:2: rule_priority"), SETTLE),
        "{}",
        daemon.log()
    );
    let errors: Vec<String> = daemon
        .lines()
        .into_iter()
        .filter(|l| l.starts_with("error:"))
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0].contains(&format!("{config_arg}:2: rule_priority")),
        "{errors:?}"
    );
    assert_eq!(our_rules(host), state);
}

/// `count` /32 routes through eth1 in main, written with `ip -batch`.
fn add_many_routes(host: &Netns, dir: &Path, count: u32) {
    ip_batch(
        host,
        dir,
        "routes",
        (0..count).map(|i| {
            format!(
                "route add 172.{}.{}.{}/32 via 10.2.0.1 dev eth1",
                16 + i / 65536,
                i / 256 % 256,
                i % 256
            )
        }),
    );
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
    if !require_root("kill_9_mid_apply_of_100000_routes_then_a_rerun_converges_with_nothing_stale")
    {
        return;
    }
    const ROUTES: u32 = 100_000;
    let lab = Lab::two_uplinks();
    add_foreign_state(&lab);
    let host = &lab.host;
    let t1 = table_of(host, "eth1");
    let dir = TempDir::new("kill9");
    add_many_routes(host, dir.path(), ROUTES);
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
    assert!(changes(&again).is_empty(), "{again}");
    assert!(stale(host).is_empty(), "{:?}", stale(host));

    // Killed while removing (rules go first, then the routes), with `strict` so that an
    // `unreachable` route survives the interface; then the interface is deleted before
    // anyone runs again. The next full run collects the rule-less table.
    let strict = dir.path().join("strict.toml");
    std::fs::write(&strict, "strict = true\n").expect("config");
    let strict_arg = strict.display().to_string();
    ok_once(host, &["--once", "--config", &strict_arg]);
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
    ok_once(host, &["--once", "--config", &strict_arg]);
    assert!(stale(host).is_empty(), "{:?}", stale(host));
    assert!(host.routes(&t1, false).is_empty() && host.routes(&t1, true).is_empty());
    assert_foreign_state(&lab);
}

#[test]
fn renamed_interface_keeps_its_state_and_a_recreated_one_leaves_nothing_stale() {
    if !require_root("renamed_interface_keeps_its_state_and_a_recreated_one_leaves_nothing_stale") {
        return;
    }
    let lab = Lab::two_uplinks();
    add_foreign_state(&lab);
    let host = &lab.host;
    let t1 = table_of(host, "eth1");
    let daemon = Symrouted::start(host, &["--source", "netlink"]);
    assert!(has_rule(host, HOST_ETH1_V4, &t1) && mirrored(host, "eth1"));

    // Rename (a veth must be down for it): same index, same table, same rules.
    host.ip("link set eth1 down");
    host.ip("link set eth1 name wan1");
    host.ip("link set wan1 up");
    let _ = host.try_ip("-6 addr add fd02::2/64 dev wan1 nodad");
    let _ = host.try_ip("route add default via 10.2.0.1 dev wan1 metric 101");
    let _ = host.try_ip("-6 route add default via fd02::1 dev wan1 metric 101");
    assert!(
        wait_until(SETTLE, || mirrored(host, "wan1")
            && destinations(host, &t1, false).contains("default")
            && has_rule(host, "fd02::2", &t1)),
        "{}",
        mirror_diff(host, "wan1")
    );
    assert_eq!(table_of(host, "wan1"), t1);
    assert!(has_rule(host, HOST_ETH1_V4, &t1));
    assert_all_reachable(&lab);

    // Deleted and re-created under the old name: a new index, a new table; the old table
    // and rules are collected by the daemon.
    host.ip("link del wan1");
    veth(host, "eth1", &lab.r2, "down0");
    lab.r2.ip("addr add 10.2.0.1/24 dev down0");
    lab.r2.ip("addr add fd02::1/64 dev down0 nodad");
    host.sh_ok_input(
        &["ip", "-batch", "-"],
        "addr add 10.2.0.2/24 dev eth1
         addr add fd02::2/64 dev eth1 nodad
         route add default via 10.2.0.1 dev eth1 metric 101
         route add ::/0 via fd02::1 dev eth1 metric 101
        ",
    );
    let new_t1 = table_of(host, "eth1");
    assert_ne!(new_t1, t1);
    assert!(
        wait_until(SETTLE, || has_rule(host, HOST_ETH1_V4, &new_t1)
            && mirrored(host, "eth1")
            && stale(host).is_empty()),
        "{:?} {:?}\n{}",
        our_rules(host),
        stale(host),
        daemon.log()
    );
    assert!(host.routes(&t1, false).is_empty() && host.routes(&t1, true).is_empty());
    assert_all_reachable(&lab);
    let status = daemon.terminate();
    assert!(status.success());

    // Without the daemon: deleted and re-created again, then `--once` (as `--all`).
    host.ip("link del eth1");
    veth(host, "eth1", &lab.r2, "down0");
    lab.r2.ip("addr add 10.2.0.1/24 dev down0");
    host.ip("addr add 10.2.0.2/24 dev eth1");
    let newest = table_of(host, "eth1");
    assert!(
        !stale(host).is_empty(),
        "rules of the deleted eth1 should be left for --once"
    );
    ok_once(host, &["--once"]);
    assert!(stale(host).is_empty(), "{:?}", stale(host));
    assert!(has_rule(host, HOST_ETH1_V4, &newest));
    assert_foreign_state(&lab);
}

#[test]
fn an_interface_paused_by_a_fight_stays_paused_through_a_full_resync() {
    if !require_root("an_interface_paused_by_a_fight_stays_paused_through_a_full_resync") {
        return;
    }
    let lab = Lab::two_uplinks();
    let host = &lab.host;
    let (t0, t1) = (table_of(host, "eth0"), table_of(host, "eth1"));
    let daemon = Symrouted::start(host, &["--source", "netlink", "--fight-pause", "600"]);
    let rule = format!("from {HOST_ETH1_V4} lookup {t1} priority 32000 proto 83");
    let fought = wait_until(Duration::from_secs(60), || {
        if has_rule(host, HOST_ETH1_V4, &t1) {
            let _ = host.try_ip(&format!("rule del {rule}"));
        }
        daemon
            .lines()
            .iter()
            .any(|l| l.contains("removed by someone else"))
    });
    assert!(fought, "{}", daemon.log());
    // The fighter wins while eth1 is paused.
    let _ = host.try_ip(&format!("rule del {rule}"));
    // SIGHUP: a full resync. eth1 stays paused; the others are synced.
    host.ip(&format!(
        "rule del from 10.1.0.2 lookup {t0} priority 32000 proto 83"
    ));
    // SAFETY: signalling the daemon this test started.
    unsafe { libc::kill(daemon.pid() as libc::pid_t, libc::SIGHUP) };
    daemon.wait_notify("READY=1");
    assert!(
        wait_until(SETTLE, || has_rule(host, "10.1.0.2", &t0)),
        "{}",
        daemon.log()
    );
    assert!(
        !has_rule(host, HOST_ETH1_V4, &t1),
        "a paused interface was synced by the resync: {}",
        daemon.log()
    );
}

#[test]
fn a_table_id_clash_resolved_later_converges_by_itself() {
    if !require_root("a_table_id_clash_resolved_later_converges_by_itself") {
        return;
    }
    let lab = Lab::two_uplinks();
    let host = &lab.host;
    let t1 = table_of(host, "eth1");
    // Someone else's route in eth1's table: symroute refuses the table, eth0 goes on.
    host.ip(&format!("route add blackhole 198.51.100.0/24 table {t1}"));
    let daemon = Symrouted::start(host, &["--source", "netlink"]);
    assert!(
        daemon.wait_log("refusing to touch it", SETTLE),
        "{}",
        daemon.log()
    );
    assert!(!has_rule(host, HOST_ETH1_V4, &t1));
    assert!(mirrored(host, "eth0"));
    // The other program moves away; nobody tells symroute anything else.
    host.ip(&format!("route del blackhole 198.51.100.0/24 table {t1}"));
    assert!(
        wait_until(SETTLE, || has_rule(host, HOST_ETH1_V4, &t1)
            && mirrored(host, "eth1")),
        "{}",
        daemon.log()
    );
    assert_all_reachable(&lab);
}
