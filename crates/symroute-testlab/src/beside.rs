//! `symrouted` beside the dispatcher scripts, as the packages install them: starting the
//! daemon inside a network manager's namespaces, and watching the kernel for teardowns it
//! did not call for.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::daemons::{Daemon, TempDir};
use crate::monitor::spawn_ip_monitor;
use crate::{wait_until, Netns};

/// The daemon binary cargo built next to `sibling` (another binary of the workspace, e.g.
/// `symroute-hook`): `cargo test --workspace` builds every binary before running any test.
pub fn symrouted_next_to(sibling: &Path) -> PathBuf {
    let path = sibling.with_file_name("symrouted");
    assert!(
        path.exists(),
        "{} is missing: build the workspace first (cargo build --workspace)",
        path.display()
    );
    path
}

/// Starts the daemon with `cmd` (a command already entering the right namespaces, with the
/// daemon's path and arguments), logging to `log`, and waits for its first full sync.
pub fn start_symrouted(mut cmd: Command, log: &Path) -> Daemon {
    cmd.env("SYMROUTE_LOG", "stderr");
    let mut daemon = Daemon::spawn("symrouted", cmd, log);
    let ready = wait_until(Duration::from_secs(30), || {
        daemon.log().contains("in sync; following")
    });
    daemon.assert_running();
    assert!(ready, "symrouted not in sync:\n{}", daemon.log());
    daemon
}

/// Lines of a daemon log that report a fight.
pub fn fights(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains("removed by someone else"))
        .map(str::to_string)
        .collect()
}

/// The daemon started beside the dispatcher scripts, with the kernel's record of rules and
/// addresses since just before it started: at the end, [`DaemonBeside::assert_no_fight`].
/// Fields drop in order: the daemon first, its log folder last.
pub struct DaemonBeside {
    pub daemon: Daemon,
    pub watch: RuleWatch,
    _dir: TempDir,
}

impl DaemonBeside {
    /// Watches `host`, then starts the symrouted that cargo built next to `sibling` with the
    /// command `cmd` makes of its path (entering the right namespaces, with its arguments).
    pub fn start(host: &Netns, sibling: &str, cmd: impl FnOnce(&str) -> Command) -> DaemonBeside {
        let watch = RuleWatch::start(host);
        let dir = TempDir::new("beside");
        let bin = symrouted_next_to(Path::new(sibling));
        let daemon = start_symrouted(
            cmd(&bin.to_string_lossy()),
            &dir.path().join("symrouted.log"),
        );
        DaemonBeside {
            daemon,
            watch,
            _dir: dir,
        }
    }

    pub fn log(&self) -> String {
        self.daemon.log()
    }

    /// Panics unless the daemon still runs, reported no fight and no rule of ours went while
    /// its address was there; `hook_log` (the dispatcher's, with the hook's lines) goes into
    /// the message.
    pub fn assert_no_fight(&mut self, hook_log: &str) {
        self.daemon.assert_running();
        let log = self.daemon.log();
        assert!(fights(&log).is_empty(), "{:?}", fights(&log));
        let needless = self.watch.needless_removals();
        assert!(
            needless.is_empty(),
            "rules removed while their address was there: {needless:?}\ndaemon:\n{log}\nhook:\n{hook_log}"
        );
    }
}

/// Lines of a symroute log that changed something (`eth1: +rule from ...`).
pub fn change_lines(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| l.contains(": +") || l.contains(": -"))
        .map(str::to_string)
        .collect()
}

/// `ip monitor address rule` on a namespace, from start to drop: the one ordered record of
/// addresses and rules coming and going.
pub struct RuleWatch {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl RuleWatch {
    pub fn start(ns: &Netns) -> RuleWatch {
        let (child, stdout) = spawn_ip_monitor(ns, &["-o", "monitor", "address", "rule"]);
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(mut lines) = sink.lock() {
                    lines.push(line);
                }
            }
        });
        // Proof that it listens: an address it must report, added and removed until it does
        // (it may not have subscribed yet when the first one comes and goes).
        let watch = RuleWatch { child, lines };
        let up = wait_until(Duration::from_secs(10), || {
            let seen = watch.lines().iter().any(|l| l.contains("192.0.2.254"));
            let _ = ns.try_ip("addr add 192.0.2.254/32 dev lo");
            let _ = ns.try_ip("addr del 192.0.2.254/32 dev lo");
            seen
        });
        assert!(up, "ip monitor does not report");
        // The addresses already there count as added now.
        let present = ns.ip("-o addr show");
        if let Ok(mut lines) = watch.lines.lock() {
            lines.extend(present.lines().map(str::to_string));
        }
        watch
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Rules of ours (protocol 83) deleted while the kernel still had their address: a
    /// teardown no kernel change called for (the address, not an event, decides).
    pub fn needless_removals(&self) -> Vec<String> {
        needless_removals(&self.lines())
    }
}

impl Drop for RuleWatch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The address (without prefix length) after `inet`/`inet6`, or after `from`.
fn word_after<'a>(line: &'a str, key: &str) -> Option<&'a str> {
    let mut words = line.split_whitespace();
    words.find(|w| *w == key)?;
    words.next().map(|w| w.split('/').next().unwrap_or(w))
}

pub fn needless_removals(lines: &[String]) -> Vec<String> {
    let mut present = std::collections::BTreeSet::new();
    let mut needless = Vec::new();
    for line in lines {
        let deleted = line.starts_with("Deleted");
        if let Some(addr) = word_after(line, "inet").or_else(|| word_after(line, "inet6")) {
            if deleted {
                present.remove(addr);
            } else {
                present.insert(addr.to_string());
            }
        } else if line.contains("proto 83") || line.contains("proto symroute") {
            if let Some(src) = word_after(line, "from") {
                if deleted && present.contains(src) {
                    needless.push(line.clone());
                }
            }
        }
    }
    needless
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rule_removed_with_its_address_is_needed_one_removed_before_is_not() {
        let lines: Vec<String> = [
            "3: eth1    inet 10.2.0.135/24 brd 10.2.0.255 scope global dynamic eth1",
            "32000:\tfrom 10.2.0.135 lookup 1003 proto 83",
            "Deleted 32000:\tfrom 10.2.0.135 lookup 1003 proto 83",
            "32000:\tfrom 10.2.0.135 lookup 1003 proto 83",
            "Deleted 3: eth1    inet 10.2.0.135/24 brd 10.2.0.255 scope global dynamic eth1",
            "Deleted 32000:\tfrom 10.2.0.135 lookup 1003 proto 83",
            "Deleted 100:\tfrom 10.9.9.9 lookup 200",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            needless_removals(&lines),
            ["Deleted 32000:\tfrom 10.2.0.135 lookup 1003 proto 83"]
        );
    }
}
