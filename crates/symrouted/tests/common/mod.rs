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

use symroute_testlab::daemons::{wait_symmetric, DhcpLab, NetworkManager, PrivateMounts, TempDir};
use symroute_testlab::{ping, wait_until, Lab, Netns};

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

    pub fn pid(&self) -> u32 {
        self.child.id()
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

pub fn ifindex(ns: &Netns, dev: &str) -> u32 {
    ns.ifindex(dev)
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

pub fn assert_all_reachable(lab: &Lab) {
    let r: Vec<(&str, bool)> = Lab::host_addresses()
        .into_iter()
        .map(|a| (a, ping(&lab.client, a)))
        .collect();
    assert!(r.iter().all(|(_, ok)| *ok), "reachability: {r:?}");
}

// Not every test binary that includes this module uses it.
#[allow(unused_imports)]
pub use symroute_testlab::monitor::Monitor;

/// Writes `ip -batch` input to a file and runs it in `ns`.
pub fn ip_batch(ns: &Netns, dir: &Path, name: &str, lines: impl Iterator<Item = String>) {
    let path = dir.join(name);
    let text: String = lines.map(|l| l + "\n").collect();
    std::fs::write(&path, text).expect("write batch");
    let out = Command::new("ip")
        .args(["-n", ns.name(), "-batch"])
        .arg(&path)
        .stdin(Stdio::null())
        .output()
        .expect("ip -batch");
    assert!(
        out.status.success(),
        "ip -batch {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
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

/// Starts an [`NmLab`] on `uplinks` and waits until they are symmetric.
pub fn nm_lab(test: &str, uplinks: &[&str]) -> NmLab {
    let started = Instant::now();
    let lab = DhcpLab::two_uplinks();
    let root = TempDir::new("nm-root");
    let nm = NetworkManager::start(&lab.host, root.path(), uplinks);
    let daemon = Symrouted::start_with(
        &lab.host,
        &["--source", "nm"],
        &[("DBUS_SYSTEM_BUS_ADDRESS", &nm.bus_address())],
    );
    assert!(
        daemon.wait_log("NetworkManager manages", Duration::from_secs(10)),
        "{}",
        daemon.log()
    );
    wait_symmetric(&lab, uplinks, Duration::from_secs(30));
    eprintln!(
        "{test}: symmetric {:?} after start; daemon RSS {} KiB",
        started.elapsed(),
        daemon.rss_kib()
    );
    NmLab {
        daemon,
        nm,
        _root: root,
        lab,
    }
}
