//! `ip monitor route rule` on a namespace, proven to listen before a test relies on it.

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

use crate::Netns;

/// The source of the rule [`Monitor::start`] repeats until the monitor reports it.
const READY_FROM: &str = "192.0.2.250";

/// `ip monitor route rule` in a namespace, with markers that delimit a stretch of time:
/// anything else it prints between two markers is a write.
pub struct Monitor {
    child: Child,
    lines: Receiver<String>,
}

/// `ip -n NS ARGS` (an `ip monitor` command line) with its stdout to read; panics when it
/// cannot start.
pub(crate) fn spawn_ip_monitor(ns: &Netns, args: &[&str]) -> (Child, ChildStdout) {
    let mut child = Command::new("ip")
        .args(["-n", ns.name()])
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("ip {args:?} in {}: {e}", ns.name()));
    let stdout = child
        .stdout
        .take()
        .unwrap_or_else(|| panic!("ip {args:?} has no stdout"));
    (child, stdout)
}

impl Monitor {
    /// Starts the monitor and returns once it has reported a rule change. `ip monitor`
    /// subscribes a moment after it starts, so a single marker written at once can come and
    /// go unseen on a loaded machine: the readiness rule is added and deleted again until its
    /// deletion shows.
    pub fn start(ns: &Netns) -> Monitor {
        let (child, stdout) = spawn_ip_monitor(ns, &["monitor", "route", "rule"]);
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let monitor = Monitor { child, lines: rx };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            ns.ip(&format!(
                "rule add priority 799 from {READY_FROM} lookup 77"
            ));
            ns.ip(&format!(
                "rule del priority 799 from {READY_FROM} lookup 77"
            ));
            if monitor
                .deleted(READY_FROM, Duration::from_millis(200))
                .is_ok()
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "ip monitor in {} never reported a rule change",
                ns.name()
            );
        }
        monitor
    }

    /// Waits (at most `timeout`) for a line containing `needle`.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
        false
    }

    /// Adds and deletes a rule nobody else writes, then returns every line seen up to its
    /// deletion (the markers' own lines, and late ones of the readiness rule, excluded).
    pub fn marker(&self, ns: &Netns, n: u8) -> Vec<String> {
        let from = format!("192.0.2.{n}");
        ns.ip(&format!("rule add priority 7{n} from {from} lookup 77"));
        ns.ip(&format!("rule del priority 7{n} from {from} lookup 77"));
        self.deleted(&from, Duration::from_secs(10))
            .unwrap_or_else(|seen| panic!("marker {from} never seen; saw {seen:?}"))
    }

    /// Lines until the deletion of the rule from `from`, or `Err` with what came before
    /// after `patience`.
    fn deleted(&self, from: &str, patience: Duration) -> Result<Vec<String>, Vec<String>> {
        let mut seen = Vec::new();
        let deadline = Instant::now() + patience;
        let ours = |line: &str, from: &str| line.contains(&format!("from {from} "));
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Ok(line) = self.lines.recv_timeout(left) else {
                break;
            };
            if ours(&line, from) {
                if line.starts_with("Deleted") {
                    return Ok(seen);
                }
                continue;
            }
            if !ours(&line, READY_FROM) {
                seen.push(line);
            }
        }
        Err(seen)
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
