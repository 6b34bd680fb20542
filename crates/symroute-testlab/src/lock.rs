//! Someone else at symroute's run lock: a process holding `/run/symroute/lock` inside a
//! test's private mount namespace (its own tmpfs on /run, never the machine's), as root or
//! as the unprivileged `nobody`.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::process::{Child, Stdio};

use crate::daemons::{find_program, PrivateMounts};

/// The lock every symroute binary takes by default; under a private /run it is the test's.
pub const DEFAULT_LOCK: &str = "/run/symroute/lock";

/// A command prefix that runs the rest as uid/gid 65534 (nobody) with no groups.
pub const NOBODY: [&str; 4] = [
    "setpriv",
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
];

/// `flock -n /run/symroute/lock` held inside `mounts` (run through `prefix`, e.g. [`NOBODY`])
/// until dropped.
pub struct LockHolder(Child);

impl LockHolder {
    /// Starts the holder and returns once it holds the lock; `None` when it could not take
    /// it (the file must exist and be open to it).
    pub fn start(mounts: &PrivateMounts, prefix: &[&str]) -> Option<LockHolder> {
        let mut argv: Vec<&str> = prefix.to_vec();
        argv.extend_from_slice(&[
            "flock",
            "-n",
            DEFAULT_LOCK,
            "sh",
            "-c",
            "echo held; exec sleep 300",
        ]);
        let program =
            find_program(argv[0]).unwrap_or_else(|| panic!("{} is not installed", argv[0]));
        let mut child = mounts
            .command(&program)
            .args(&argv[1..])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            // Its own process group, killed whole: the sleep inherits the locked descriptor.
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the lock holder: {e}"));
        let mut line = String::new();
        if let Some(stdout) = child.stdout.take() {
            let _ = BufReader::new(stdout).read_line(&mut line);
        }
        // Dropped when it did not get the lock: its group is killed all the same.
        let holder = LockHolder(child);
        (line.trim() == "held").then_some(holder)
    }
}

impl Drop for LockHolder {
    fn drop(&mut self) {
        // SAFETY: plain kill(2) of the process group of our own child.
        unsafe { libc::kill(-(self.0.id() as libc::pid_t), libc::SIGKILL) };
        let _ = self.0.wait();
    }
}
