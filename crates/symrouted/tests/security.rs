//! An unprivileged local user, and a stuck root process, against `symrouted`'s run lock. The
//! daemon runs in a private mount namespace with its own tmpfs on /run, so the lock is the
//! real default path (/run/symroute/lock) without touching the machine's /run.

mod common;

use std::time::{Duration, Instant};

use common::*;
use symroute_testlab::daemons::{write_file, PrivateMounts, TempDir};
use symroute_testlab::lock::{LockHolder, NOBODY};
use symroute_testlab::{root_lab, root_lab_with, wait_until};

const SETTLE: Duration = Duration::from_secs(20);

#[test]
fn daemon_waits_for_the_lock_without_blocking_and_nobody_cannot_take_it() {
    let Some(lab) = root_lab_with(&["setpriv", "flock"]) else {
        return;
    };
    let host = &lab.host;
    let mounts = PrivateMounts::new(
        host,
        "mount -t tmpfs -o mode=0755 symroute-test /run\n\
         mkdir -m 0700 /run/symroute\n\
         install -m 0600 /dev/null /run/symroute/lock",
    );
    // A root process sits on the lock before the daemon starts (a stuck hook, say).
    let stuck = LockHolder::start(&mounts, &[]).expect("root takes the free lock");
    let started = Instant::now();
    let mut daemon = Symrouted::start_in(&mounts, &["--source", "netlink"], false);
    // Still ready (systemd's start must not time out), saying what it waits for.
    daemon.wait_ready();
    eprintln!("READY=1 after {:?} with the lock held", started.elapsed());
    daemon.expect_log("the first sync waits for /run/symroute/lock", SETTLE);
    daemon.expect_log("held by pid", SETTLE);
    assert!(our_rules(host).is_empty(), "synced without the lock");

    // Meanwhile nobody cannot take it, nor once it is free.
    assert!(LockHolder::start(&mounts, &NOBODY).is_none());
    drop(stuck);
    assert!(
        wait_until(SETTLE, || mirrored(host, "eth0") && mirrored(host, "eth1")),
        "{}",
        mirror_diff(host, "eth1")
    );
    daemon.expect_log("got the lock after", SETTLE);
    assert!(LockHolder::start(&mounts, &NOBODY).is_none());
    lab.assert_client_reaches_all();

    // Held again: a kernel change waits, events are still read, SIGTERM is still answered;
    // released, the change is mirrored.
    let t1 = table_of(host, "eth1");
    let stuck = LockHolder::start(&mounts, &[]).expect("root takes the free lock");
    host.ip("route add 203.0.113.0/24 via 10.2.0.1 dev eth1");
    eventually(SETTLE, "the waiting change named the holder again", || {
        daemon.count("held by pid") >= 2
    });
    assert!(!destinations(host, &t1, false).contains("203.0.113.0/24"));
    drop(stuck);
    eventually(
        SETTLE,
        "the waiting change mirrored once the lock was free",
        || destinations(host, &t1, false).contains("203.0.113.0/24"),
    );
    daemon.assert_running();
    let _stuck = LockHolder::start(&mounts, &[]).expect("root takes the free lock");
    host.ip("route del 203.0.113.0/24 via 10.2.0.1 dev eth1");
    assert!(daemon.terminate().success());
}

#[test]
fn watchdog_is_pinged_from_the_loop_only_for_this_process() {
    let Some(lab) = root_lab() else { return };
    // 0.4 s: pings every 0.2 s, as systemd's WatchdogSec=30s would get them every 15 s.
    let daemon = Symrouted::start_with(
        &lab.host,
        &["--source", "netlink"],
        &[("WATCHDOG_USEC", "400000")],
    );
    for _ in 0..3 {
        daemon.wait_notify("WATCHDOG=1");
    }
    assert!(daemon.terminate().success());

    // WATCHDOG_PID naming another process: not ours to ping. The first tick would come
    // right after READY=1, so a reload's READY=1 comes after it if there is one.
    let daemon = Symrouted::start_with(
        &lab.host,
        &["--source", "netlink"],
        &[("WATCHDOG_USEC", "400000"), ("WATCHDOG_PID", "1")],
    );
    let seen = daemon.reload();
    assert!(
        !seen.iter().any(|n| n.lines().any(|l| l == "WATCHDOG=1")),
        "{seen:?}"
    );
    assert!(daemon.terminate().success());
}

#[test]
fn group_writable_config_stops_the_daemon_with_status_2() {
    let Some(lab) = root_lab() else { return };
    let dir = TempDir::new("daemon-config");
    let config = dir.path().join("symroute.toml");
    write_file(&config, "prefix_rules = true\n", 0o664);
    let cfg = config.display().to_string();
    let refusal = format!(
        "error: {cfg}: refused: it is writable by its group (mode 0664); remove that with \
         chmod go-w"
    );
    for mode in [&["--once"][..], &[]] {
        let mut daemon = lab.host.private_run(&[DAEMON, "--config", &cfg]);
        daemon.args(mode);
        assert_refused(daemon, 2, &refusal);
    }
    assert!(our_rules(&lab.host).is_empty());
}
