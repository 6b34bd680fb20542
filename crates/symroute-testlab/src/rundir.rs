//! A private `/run` per network namespace, so that tests never create or change the
//! machine's `/run/symroute`.
//!
//! `symroute-hook` and `symroute` take their lock at the fixed `/run/symroute/lock` (an
//! option to move it would let whoever sets a dispatcher's environment redirect root's
//! lock). Run through plain `ip netns exec` they would create the machine's real lock, and
//! runs of parallel tests would wait on each other. [`Netns::private_run`] runs a command in
//! the namespace inside a mount namespace of its own, with a tmpfs on `/run` and
//! `/run/symroute` bind-mounted from a directory of this namespace: every run in one
//! namespace (parallel hook runs, a daemon beside them with `--lock-file
//! /run/symroute/lock`) still shares one lock, and the directory goes with the namespace.

use std::ffi::OsStr;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;
use std::process::{Command, Output};

use crate::Netns;

/// Set up before the command is exec'ed (so its pid is the spawned child's): `$0` is the
/// namespace's run directory, `"$@"` the command.
const SETUP: &str = "set -e
mount -t tmpfs -o mode=0755 symroute-test-run /run
mkdir -m 0700 /run/symroute
mount --bind \"$0\" /run/symroute
exec \"$@\"";

impl Netns {
    /// The directory bind-mounted on `/run/symroute` by [`Netns::private_run`]; created (0700,
    /// as symroute's own run directory is) on first use, removed when the namespace is dropped.
    pub fn run_dir(&self) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("symroute-run-{}", self.name));
        match std::fs::DirBuilder::new().mode(0o700).create(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => panic!("mkdir {}: {e}", dir.display()),
        }
        dir
    }

    /// Arguments that run the rest of an `ip netns exec NAME` command line with this
    /// namespace's private `/run` (see the module docs); append the command to them.
    pub fn private_run_prefix(&self) -> Vec<String> {
        let dir = self.run_dir();
        [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            "/bin/sh",
            "-c",
            SETUP,
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([dir.display().to_string()])
        .collect()
    }

    /// `argv` in this namespace with its private `/run` and run directory. `ip netns exec`
    /// enters the network namespace (and remounts /sys) first; the mount namespace made after
    /// it keeps both. The child's pid is the command's, as with [`Netns::spawn`].
    pub fn private_run<S: AsRef<OsStr>>(&self, argv: &[S]) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name])
            .args(self.private_run_prefix())
            .args(argv);
        cmd
    }

    /// [`Netns::run`] with the private `/run` of [`Netns::private_run`].
    pub fn run_private(&self, argv: &[&str]) -> Output {
        let all = self.with_prefix(argv);
        self.run(&all.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// [`Netns::sh_ok`] with the private `/run` of [`Netns::private_run`].
    pub fn sh_ok_private(&self, argv: &[&str]) -> String {
        let all = self.with_prefix(argv);
        self.sh_ok(&all.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// One of the project's binaries (`bin`, its path) with `args`, the way a dispatcher runs
    /// it: with the private `/run` of [`Netns::private_run`], logging to stderr.
    pub fn run_logged(&self, bin: &str, args: &[&str]) -> Output {
        self.private_run(&[bin])
            .args(args)
            .env("SYMROUTE_LOG", "stderr")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {bin} in {}: {e}", self.name))
    }

    /// Like [`Netns::run_logged`], panicking with its log when it fails; returns the log.
    pub fn run_logged_ok(&self, bin: &str, args: &[&str]) -> String {
        let out = self.run_logged(bin, args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{bin} {args:?} failed: {stderr}");
        stderr
    }

    fn with_prefix(&self, argv: &[&str]) -> Vec<String> {
        let mut all = self.private_run_prefix();
        all.extend(argv.iter().map(|a| a.to_string()));
        all
    }

    /// Removes the run directory; called when the namespace is dropped.
    pub(crate) fn remove_run_dir(&self) {
        let dir = std::env::temp_dir().join(format!("symroute-run-{}", self.name));
        let _ = std::fs::remove_dir_all(dir);
    }
}
