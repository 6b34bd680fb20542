//! The daemon under test, run inside a lab namespace, and what the tests check about it.

#![allow(dead_code)]

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use symroute_testlab::daemons::{
    global_addrs, routing_state, stale_rules, symroute_rules, wait_symmetric, write_file, DhcpLab,
    NetworkManager, PrivateMounts, TempDir, NETWORKMANAGER_PROGRAMS, POOL_R2_NEXT,
};
use symroute_testlab::{ping, root_with, test_name, wait_until, Netns};

pub const DAEMON: &str = env!("CARGO_BIN_EXE_symrouted");

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// `symrouted` running in a namespace, with its log captured and its readiness notification
/// received on a socket of the test's own.
pub struct Symrouted {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    notify: UnixDatagram,
    dir: PathBuf,
    pub started: Instant,
}

impl Symrouted {
    /// Starts the daemon (`-v`, logging to stderr, a lock file of its own) and waits for
    /// READY=1.
    pub fn start(ns: &Netns, args: &[&str]) -> Symrouted {
        Symrouted::start_with(ns, args, &[])
    }

    pub fn start_with(ns: &Netns, args: &[&str], env: &[(&str, &str)]) -> Symrouted {
        Symrouted::start_locked(ns, args, env, None)
    }

    /// [`Symrouted::start_with`], with the lock file at `lock` instead of in the daemon's
    /// own directory.
    pub fn start_locked(
        ns: &Netns,
        args: &[&str],
        env: &[(&str, &str)],
        lock: Option<&Path>,
    ) -> Symrouted {
        Symrouted::launch(Some(ns), None, args, env, lock, true)
    }

    /// Starts the daemon in a private mount namespace with its default lock file (in that
    /// namespace's /run). With `wait_ready`, returns after READY=1.
    pub fn start_in(mounts: &PrivateMounts, args: &[&str], wait_ready: bool) -> Symrouted {
        Symrouted::launch(None, Some(mounts), args, &[], None, wait_ready)
    }

    fn launch(
        ns: Option<&Netns>,
        mounts: Option<&PrivateMounts>,
        args: &[&str],
        env: &[(&str, &str)],
        lock: Option<&Path>,
        wait_ready: bool,
    ) -> Symrouted {
        let dir = std::env::temp_dir().join(format!(
            "symrouted-test-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("test directory");
        let socket = dir.join("notify");
        let _ = std::fs::remove_file(&socket);
        let notify = UnixDatagram::bind(&socket).expect("notify socket");
        notify
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("notify timeout");
        let started = Instant::now();
        let mut command = match (ns, mounts) {
            (_, Some(mounts)) => mounts.command(Path::new(DAEMON)),
            (Some(ns), None) => {
                let mut command = Command::new("ip");
                command
                    .args(["netns", "exec", ns.name(), DAEMON, "--lock-file"])
                    .arg(lock.map_or_else(|| dir.join("lock"), Path::to_path_buf));
                command
            }
            (None, None) => unreachable!("a namespace to run in"),
        };
        let mut child = command
            .arg("-v")
            .args(args)
            .env("SYMROUTE_LOG", "stderr")
            .env("NOTIFY_SOCKET", &socket)
            .env_remove("DBUS_SYSTEM_BUS_ADDRESS")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start symrouted");
        let log = Arc::new(Mutex::new(Vec::new()));
        let stderr = child.stderr.take().expect("daemon stderr");
        let sink = Arc::clone(&log);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if std::env::var_os("SYMROUTED_TEST_ECHO").is_some() {
                    eprintln!("symrouted: {line}");
                }
                if let Ok(mut log) = sink.lock() {
                    log.push(line);
                }
            }
        });
        let daemon = Symrouted {
            child,
            log,
            notify,
            dir,
            started,
        };
        if wait_ready {
            daemon.wait_ready();
        }
        daemon
    }

    /// Where the daemon keeps its uplink health (beside its lock file, when the lock is in
    /// its own directory).
    pub fn state_file(&self) -> PathBuf {
        self.dir.join("health")
    }

    /// The daemon's pid.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    pub fn wait_ready(&self) {
        let mut buf = [0u8; 512];
        loop {
            match self.notify.recv(&mut buf) {
                Ok(n) => {
                    let text = String::from_utf8_lossy(&buf[..n]);
                    if text.lines().any(|l| l == "READY=1") {
                        return;
                    }
                }
                Err(e) => panic!("no READY=1 from symrouted ({e}); log:\n{}", self.log()),
            }
        }
    }

    /// Waits for the next notification containing the line `line` and returns every
    /// notification received until then.
    pub fn wait_notify(&self, line: &str) -> Vec<String> {
        let mut seen = Vec::new();
        let mut buf = [0u8; 512];
        loop {
            match self.notify.recv(&mut buf) {
                Ok(n) => {
                    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    let found = text.lines().any(|l| l == line);
                    seen.push(text);
                    if found {
                        return seen;
                    }
                }
                Err(e) => panic!(
                    "no {line} from symrouted ({e}); saw {seen:?}; log:\n{}",
                    self.log()
                ),
            }
        }
    }

    /// The daemon's resident set size in KiB (`VmRSS`), for the test output.
    pub fn rss_kib(&self) -> u64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find_map(|l| l.strip_prefix("VmRSS:"))
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
            .unwrap_or(0)
    }

    pub fn log(&self) -> String {
        self.log.lock().map(|l| l.join("\n")).unwrap_or_default()
    }

    pub fn lines(&self) -> Vec<String> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Waits until a log line contains `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        wait_until(timeout, || self.lines().iter().any(|l| l.contains(needle)))
    }

    /// Waits (at most `timeout`) for a log line containing `needle`; fails otherwise (the
    /// log follows from the drop).
    #[track_caller]
    pub fn expect_log(&self, needle: &str, timeout: Duration) {
        assert!(
            self.wait_log(needle, timeout),
            "no log line with {needle:?} within {timeout:?}"
        );
    }

    /// How many log lines contain `needle`.
    pub fn count(&self, needle: &str) -> usize {
        self.lines().iter().filter(|l| l.contains(needle)).count()
    }

    /// The first log line containing `needle`.
    pub fn line_with(&self, needle: &str) -> Option<String> {
        self.lines().into_iter().find(|l| l.contains(needle))
    }

    /// The operator's `systemctl reload`: SIGHUP, then every notification until READY=1.
    pub fn reload(&self) -> Vec<String> {
        // SAFETY: signalling the daemon this test started, not reaped yet.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGHUP) };
        self.wait_notify("READY=1")
    }

    pub fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("symrouted exited with {status}; log:\n{}", self.log());
        }
    }

    /// SIGTERM, then waits (at most 10 s) for the exit status.
    pub fn terminate(mut self) -> ExitStatus {
        // SAFETY: signalling our own child, not reaped yet.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "symrouted ignored SIGTERM; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Symrouted {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- symrouted log:\n{}", self.log());
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Waits (at most `timeout`) until `cond` holds; fails saying what did not happen (a
/// daemon's log follows from its drop).
#[track_caller]
pub fn eventually(timeout: Duration, what: &str, cond: impl FnMut() -> bool) {
    assert!(wait_until(timeout, cond), "not within {timeout:?}: {what}");
}

/// Whether `dev` is in sync: its table mirrors main's routes through it and `addr` has
/// its rule to that table.
pub fn synced(ns: &Netns, dev: &str, addr: &str) -> bool {
    has_rule(ns, addr, &table_of(ns, dev)) && mirrored(ns, dev)
}

/// A configuration file `name` in `dir` holding `text` (mode 0644: the daemon refuses
/// group-writable ones); returns its path for `--config`.
pub fn config_file(dir: &TempDir, name: &str, text: &str) -> String {
    let path = dir.path().join(name);
    write_file(&path, text, 0o644);
    path.display().to_string()
}

/// Our rule for `addr` to `table` as `ip rule del` takes it.
pub fn rule_spec(addr: &str, table: &str) -> String {
    format!("from {addr} lookup {table} priority 32000 proto 83")
}

/// Another program fighting the daemon over a rule: deletes `addr`'s rule to `table` each
/// time it is back, until `done` holds or `timeout` passes. Returns whether `done` held and
/// how many deletions there were.
pub fn fight_rule(
    ns: &Netns,
    addr: &str,
    table: &str,
    timeout: Duration,
    mut done: impl FnMut() -> bool,
) -> (bool, usize) {
    let rule = rule_spec(addr, table);
    let mut deletions = 0;
    let fought = wait_until(timeout, || {
        if has_rule(ns, addr, table) && ns.try_ip(&format!("rule del {rule}")).is_ok() {
            deletions += 1;
        }
        done()
    });
    (fought, deletions)
}

/// What a network manager puts back on the second uplink `dev` once its link is up again
/// (its IPv6 address and both default routes); what the kernel kept stays as it is.
pub fn reconfigure_second_uplink(ns: &Netns, dev: &str) {
    let _ = ns.try_ip(&format!("-6 addr add fd02::2/64 dev {dev} nodad"));
    let _ = ns.try_ip(&format!(
        "route add default via 10.2.0.1 dev {dev} metric 101"
    ));
    let _ = ns.try_ip(&format!(
        "-6 route add default via fd02::1 dev {dev} metric 101"
    ));
}

/// Whether the second uplink `dev` is back in sync in `table` after
/// [`reconfigure_second_uplink`]: mirrored with its default route, the IPv6 rule there.
pub fn second_uplink_back(ns: &Netns, dev: &str, table: &str) -> bool {
    mirrored(ns, dev)
        && destinations(ns, table, false).contains("default")
        && has_rule(ns, "fd02::2", table)
}

/// Fails unless `table` holds no route of either family.
#[track_caller]
pub fn assert_table_empty(ns: &Netns, table: &str) {
    let left = [ns.routes(table, false), ns.routes(table, true)].concat();
    assert!(left.is_empty(), "table {table} still holds {left:?}");
}

/// Runs the daemon once (`--once`, `--flush`, ...) in `ns` and returns its exit status and
/// log.
pub fn run_once(ns: &Netns, args: &[&str]) -> (ExitStatus, String) {
    let lock = std::env::temp_dir().join(format!(
        "symrouted-once-{}-{}.lock",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let out = Command::new("ip")
        .args(["netns", "exec", ns.name(), DAEMON, "--lock-file"])
        .arg(&lock)
        .args(args)
        .env("SYMROUTE_LOG", "stderr")
        .stdin(Stdio::null())
        .output()
        .expect("run symrouted");
    let _ = std::fs::remove_file(&lock);
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs `daemon` (the daemon's command, to fail before it syncs anything) and fails unless
/// it exits with `code` after printing just `line`.
#[track_caller]
pub fn assert_refused(mut daemon: Command, code: i32, line: &str) {
    let out = daemon
        .env("SYMROUTE_LOG", "stderr")
        .stdin(Stdio::null())
        .output()
        .expect("run symrouted");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{stderr}");
    assert_eq!(stderr.trim(), line);
}

/// [`run_once`] that must succeed; returns the log.
#[track_caller]
pub fn ok_once(ns: &Netns, args: &[&str]) -> String {
    let (status, log) = run_once(ns, args);
    assert!(status.success(), "symrouted {args:?}: {status}\n{log}");
    log
}

// Not every test binary that includes this module uses all of them.
#[allow(unused_imports)]
pub use symroute_testlab::{add_foreign_state, all_rules, assert_foreign_state, table_of};

/// Rules and tables of symroute (protocol 83), both families.
pub fn our_rules(ns: &Netns) -> Vec<String> {
    all_rules(ns)
        .into_iter()
        .filter(|r| r.contains(" proto 83") || r.contains(" proto symroute"))
        .collect()
}

pub fn has_rule(ns: &Netns, from: &str, table: &str) -> bool {
    all_rules(ns)
        .iter()
        .any(|r| r.contains(&format!("from {from} lookup {table} ")))
}

/// Destinations of one family in `table`.
pub fn destinations(ns: &Netns, table: &str, v6: bool) -> BTreeSet<String> {
    ns.routes(table, v6)
        .iter()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// Destinations of main-table routes through `dev` (what `dev`'s table must mirror).
pub fn main_destinations(ns: &Netns, dev: &str, v6: bool) -> BTreeSet<String> {
    let family = if v6 { "-6" } else { "-4" };
    ns.try_ip(&format!("{family} route show table main dev {dev}"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// Whether `dev`'s table mirrors the main-table routes through it, both families.
pub fn mirrored(ns: &Netns, dev: &str) -> bool {
    let table = table_of(ns, dev);
    [false, true]
        .into_iter()
        .all(|v6| destinations(ns, &table, v6) == main_destinations(ns, dev, v6))
}

/// What differs between `dev`'s table and its mirror, for failure messages.
pub fn mirror_diff(ns: &Netns, dev: &str) -> String {
    let table = table_of(ns, dev);
    let mut out = String::new();
    for v6 in [false, true] {
        let have = destinations(ns, &table, v6);
        let want = main_destinations(ns, dev, v6);
        let missing: Vec<_> = want.difference(&have).take(5).collect();
        let extra: Vec<_> = have.difference(&want).take(5).collect();
        out.push_str(&format!(
            "{dev} v{}: {} in table {table}, {} in main; missing {missing:?}, extra {extra:?}\n",
            if v6 { 6 } else { 4 },
            have.len(),
            want.len()
        ));
    }
    out
}

// Not every test binary that includes this module uses it.
#[allow(unused_imports)]
pub use symroute_testlab::monitor::Monitor;

/// `ip route ACTION` of `count` /32 routes (172.16.0.0 and up) through eth1 in main, in one
/// `ip -batch`: a burst of netlink events as fast as the kernel makes them.
pub fn eth1_routes(ns: &Netns, action: &str, count: u32) {
    let batch: String = (0..count)
        .map(|i| {
            format!(
                "route {action} 172.{}.{}.{}/32 via 10.2.0.1 dev eth1\n",
                16 + i / 65536,
                i / 256 % 256,
                i % 256
            )
        })
        .collect();
    ns.sh_ok_input(&["ip", "-batch", "-"], &batch);
}

/// The DHCP lab with the real NetworkManager on the host (and no dispatcher script of
/// symroute's), and the daemon following NetworkManager's bus: symmetric by the daemon
/// alone. Fields drop in order: the daemon first, the namespaces last.
pub struct NmLab {
    pub daemon: Symrouted,
    pub nm: NetworkManager,
    pub _root: TempDir,
    pub lab: DhcpLab,
}

/// Starts an [`NmLab`] on `uplinks` and waits until they are symmetric; `None` when the
/// test is skipped (not root, or NetworkManager or `extra` programs missing).
pub fn nm_lab(uplinks: &[&str], extra: &[&str]) -> Option<NmLab> {
    if !root_with(&[NETWORKMANAGER_PROGRAMS, extra].concat()) {
        return None;
    }
    let started = Instant::now();
    let lab = DhcpLab::two_uplinks();
    let root = TempDir::new("nm-root");
    let nm = NetworkManager::start(&lab.host, root.path(), uplinks);
    let daemon = Symrouted::start_with(
        &lab.host,
        &["--source", "nm"],
        &[("DBUS_SYSTEM_BUS_ADDRESS", &nm.bus_address())],
    );
    daemon.expect_log("NetworkManager manages", Duration::from_secs(10));
    wait_symmetric(&lab, uplinks, Duration::from_secs(30));
    eprintln!(
        "{}: symmetric {:?} after start; daemon RSS {} KiB",
        test_name(),
        started.elapsed(),
        daemon.rss_kib()
    );
    Some(NmLab {
        daemon,
        nm,
        _root: root,
        lab,
    })
}

/// eth1's lease before and after [`NmLab::renumber_eth1`], and how long that took.
pub struct Renumbered {
    pub old: Vec<String>,
    pub new: Vec<String>,
    pub took: Duration,
}

impl NmLab {
    /// r2's DHCP server moves to another pool. With `reactivate` the operator reactivates
    /// eth1 (`nmcli device down/up`); without, the lease is refused at its renewal and
    /// rebound to a new address later. Waits (at most `timeout`) for eth1's one new IPv4
    /// address, then for both uplinks to be symmetric.
    pub fn renumber_eth1(&mut self, reactivate: bool, timeout: Duration) -> Renumbered {
        let old = global_addrs(&self.lab.host, "eth1", false);
        self.lab.dhcp2.set_pool(POOL_R2_NEXT.0, POOL_R2_NEXT.1);
        let t = Instant::now();
        if reactivate {
            self.nm.nmcli_ok(&["device", "down", "eth1"]);
            self.nm.nmcli_ok(&["device", "up", "eth1"]);
        }
        let host = &self.lab.host;
        let renewed = wait_until(timeout, || {
            let now = global_addrs(host, "eth1", false);
            now.len() == 1 && now != old
        });
        assert!(renewed, "no new lease:\n{}", routing_state(host));
        wait_symmetric(&self.lab, &["eth0", "eth1"], Duration::from_secs(20));
        Renumbered {
            new: global_addrs(host, "eth1", false),
            old,
            took: t.elapsed(),
        }
    }

    /// Log lines saying NetworkManager's own signals marked eth1.
    pub fn eth1_signals(&self) -> usize {
        self.daemon.count("names: {\"eth1\"}")
    }

    /// Fails unless after `r` the new address answers, no rule is stale, symroute has its
    /// four rules, and more than `signals_before` of NetworkManager's own signals about eth1
    /// reached the daemon (the proof that it follows the bus: the kernel's address events
    /// alone would have been enough).
    #[track_caller]
    pub fn assert_renumber_followed(&self, r: &Renumbered, signals_before: usize) {
        let host = &self.lab.host;
        assert!(
            ping(&self.lab.client, &r.new[0]),
            "{:?} -> {:?}: the new address does not answer",
            r.old,
            r.new
        );
        assert!(stale_rules(host).is_empty(), "{:?}", stale_rules(host));
        assert_eq!(symroute_rules(host).len(), 4, "{}", routing_state(host));
        eventually(
            Duration::from_secs(10),
            "a NetworkManager signal about eth1 reached the daemon",
            || self.eth1_signals() > signals_before,
        );
    }
}
