//! An unprivileged local user, and a stuck root process, against `symrouted`'s run lock. The
//! daemon runs in a private mount namespace with its own tmpfs on /run, so the lock is the
//! real default path (/run/symroute/lock) without touching the machine's /run.

mod common;

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::*;
use symroute_testlab::daemons::{find_program, require_programs, PrivateMounts};
use symroute_testlab::{require_root, wait_until, Lab};

const SETTLE: Duration = Duration::from_secs(20);

/// `flock -n /run/symroute/lock` held (as `prefix`, e.g. setpriv) until dropped; `None`
/// when the lock could not be taken.
struct Holder(Child);

impl Holder {
    fn start(mounts: &PrivateMounts, prefix: &[&str]) -> Option<Holder> {
        let mut argv: Vec<&str> = prefix.to_vec();
        argv.extend_from_slice(&[
            "flock",
            "-n",
            "/run/symroute/lock",
            "sh",
            "-c",
            "echo held; exec sleep 300",
        ]);
        let program = find_program(argv[0]).expect("program");
        let mut child = mounts
            .command(&program)
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            // Killed as a group: the sleep inherits the locked descriptor.
            .process_group(0)
            .spawn()
            .expect("start the lock holder");
        let mut line = String::new();
        let stdout = child.stdout.take().expect("holder stdout");
        let _ = BufReader::new(stdout).read_line(&mut line);
        let holder = Holder(child);
        (line.trim() == "held").then_some(holder)
    }
}

impl Drop for Holder {
    fn drop(&mut self) {
        // SAFETY: plain kill(2) of the process group of our own child.
        unsafe { libc::kill(-(self.0.id() as libc::pid_t), libc::SIGKILL) };
        let _ = self.0.wait();
    }
}

const NOBODY: [&str; 4] = [
    "setpriv",
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
];

#[test]
fn daemon_waits_for_the_lock_without_blocking_and_nobody_cannot_take_it() {
    let test = "daemon_waits_for_the_lock_without_blocking_and_nobody_cannot_take_it";
    if !require_root(test) || !require_programs(test, &["setpriv", "flock"]) {
        return;
    }
    let lab = Lab::two_uplinks();
    let host = &lab.host;
    let mounts = PrivateMounts::new(
        host,
        "mount -t tmpfs -o mode=0755 symroute-test /run\n\
         mkdir -m 0700 /run/symroute\n\
         install -m 0600 /dev/null /run/symroute/lock",
    );
    // A root process sits on the lock before the daemon starts (a stuck hook, say).
    let stuck = Holder::start(&mounts, &[]).expect("root takes the free lock");
    let started = Instant::now();
    let mut daemon = Symrouted::start_in(&mounts, &["--source", "netlink"], false);
    // Still ready (systemd's start must not time out), saying what it waits for.
    daemon.wait_ready();
    eprintln!("READY=1 after {:?} with the lock held", started.elapsed());
    assert!(
        daemon.wait_log("the first sync waits for /run/symroute/lock", SETTLE),
        "{}",
        daemon.log()
    );
    assert!(daemon.wait_log("held by pid", SETTLE), "{}", daemon.log());
    assert!(our_rules(host).is_empty(), "synced without the lock");

    // Meanwhile nobody cannot take it, nor once it is free.
    assert!(Holder::start(&mounts, &NOBODY).is_none());
    drop(stuck);
    assert!(
        wait_until(SETTLE, || mirrored(host, "eth0") && mirrored(host, "eth1")),
        "{}{}",
        mirror_diff(host, "eth1"),
        daemon.log()
    );
    assert!(daemon.wait_log("got the lock after", SETTLE));
    assert!(Holder::start(&mounts, &NOBODY).is_none());
    assert_all_reachable(&lab);

    // Held again: a kernel change waits, events are still read, SIGTERM is still answered;
    // released, the change is mirrored.
    let t1 = table_of(host, "eth1");
    let stuck = Holder::start(&mounts, &[]).expect("root takes the lock again");
    host.ip("route add 203.0.113.0/24 via 10.2.0.1 dev eth1");
    let complaints = |d: &Symrouted| {
        d.lines()
            .iter()
            .filter(|l| l.contains("held by pid"))
            .count()
    };
    assert!(
        wait_until(SETTLE, || complaints(&daemon) >= 2),
        "{}",
        daemon.log()
    );
    assert!(!destinations(host, &t1, false).contains("203.0.113.0/24"));
    drop(stuck);
    assert!(
        wait_until(SETTLE, || destinations(host, &t1, false)
            .contains("203.0.113.0/24")),
        "{}",
        daemon.log()
    );
    daemon.assert_running();
    let _stuck = Holder::start(&mounts, &[]).expect("root takes the lock once more");
    host.ip("route del 203.0.113.0/24 via 10.2.0.1 dev eth1");
    assert!(daemon.terminate().success());
}

#[test]
fn watchdog_is_pinged_from_the_loop_only_for_this_process() {
    if !require_root("watchdog_is_pinged_from_the_loop_only_for_this_process") {
        return;
    }
    let lab = Lab::two_uplinks();
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
    // SAFETY: signalling our own child.
    unsafe { libc::kill(daemon.pid() as libc::pid_t, libc::SIGHUP) };
    let seen = daemon.wait_notify("READY=1");
    assert!(
        !seen.iter().any(|n| n.lines().any(|l| l == "WATCHDOG=1")),
        "{seen:?}"
    );
    assert!(daemon.terminate().success());
}

#[test]
fn group_writable_config_stops_the_daemon_with_status_2() {
    let test = "group_writable_config_stops_the_daemon_with_status_2";
    if !require_root(test) {
        return;
    }
    let lab = Lab::two_uplinks();
    let dir = symroute_testlab::daemons::TempDir::new("daemon-config");
    let config = dir.path().join("symroute.toml");
    symroute_testlab::daemons::write_file(&config, "prefix_rules = true\n", 0o664);
    let cfg = config.display().to_string();
    for mode in [&["--once"][..], &[]] {
        let out = lab
            .host
            .private_run(&[DAEMON, "--config", &cfg])
            .args(mode)
            .env("SYMROUTE_LOG", "stderr")
            .stdin(Stdio::null())
            .output()
            .expect("run symrouted");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert_eq!(
            stderr.trim(),
            format!(
                "error: {cfg}: refused: it is writable by its group (mode 0664); remove that \
                 with chmod go-w"
            )
        );
    }
    assert!(our_rules(&lab.host).is_empty());
}
