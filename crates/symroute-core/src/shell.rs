//! What the three binaries share around the core: their common flags (`-v`, `-q`, `-c`,
//! `CommonFlags`, flattened into each binary's `cli.rs`, from which its man page is
//! generated) and the log level they ask for, loading the configuration, the tokio runtime,
//! and exit statuses.

use std::path::Path;
use std::process::ExitCode;

use crate::{config, Error, Mode, Report, Settings};

/// A run failed (the kernel refused a change, an interface was refused, ...).
pub const EXIT_FAILURE: u8 = 1;
/// The caller asked for something wrong: bad arguments, name or configuration.
pub const EXIT_USAGE: u8 = 2;

/// The flags every binary takes, defined once so that their help and man pages agree.
/// Global: the admin CLI takes them after a subcommand too.
#[cfg(feature = "cli")]
#[derive(clap::Args, Debug, Clone, Default, PartialEq, Eq)]
pub struct CommonFlags {
    /// Also log what was checked and found in sync
    #[arg(short, long, global = true, conflicts_with = "quiet")]
    pub verbose: bool,

    /// Log only warnings and errors
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// Configuration file [default: /etc/symroute/symroute.toml; a missing default file means
    /// defaults]
    #[arg(short, long, value_name = "FILE", global = true)]
    pub config: Option<std::path::PathBuf>,
}

#[cfg(feature = "cli")]
impl CommonFlags {
    /// The log level `-v`/`-q` ask for ([`level`]).
    pub fn level(&self) -> log::LevelFilter {
        level(self.verbose, self.quiet)
    }
}

/// `-v` shows debug lines, `-q` only warnings and errors.
pub fn level(verbose: bool, quiet: bool) -> log::LevelFilter {
    if verbose {
        log::LevelFilter::Debug
    } else if quiet {
        log::LevelFilter::Warn
    } else {
        log::LevelFilter::Info
    }
}

/// Why a command ended badly, and with which exit status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Exit status 2.
    Usage(String),
    /// Exit status 1.
    Run(String),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        if e.is_usage() {
            Failure::Usage(e.to_string())
        } else {
            Failure::Run(e.to_string())
        }
    }
}

impl Failure {
    /// Logs the failure and returns its exit status.
    pub fn exit(self) -> ExitCode {
        ExitCode::from(self.code())
    }

    /// Logs the failure and returns its exit status as a number (for a C `main`).
    pub fn code(self) -> u8 {
        let (message, code) = match self {
            Failure::Usage(m) => (m, EXIT_USAGE),
            Failure::Run(m) => (m, EXIT_FAILURE),
        };
        log::error!("{message}");
        code
    }
}

/// `CAP_NET_ADMIN` in `capability.h`: what writing rules, routes and nftables takes.
const CAP_NET_ADMIN: u32 = 12;

/// Whether this process may change the network: `CAP_NET_ADMIN` in its effective set (root
/// usually, but a root without it in a container may not, and a user given it may). `None`
/// when `/proc/self/status` cannot tell; then the kernel will.
pub fn has_net_admin() -> Option<bool> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    effective_has(&status, CAP_NET_ADMIN)
}

/// Whether the `CapEff:` line of a `/proc/PID/status` text has capability `cap`.
fn effective_has(status: &str, cap: u32) -> Option<bool> {
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))?
        .trim();
    let bits = u64::from_str_radix(hex, 16).ok()?;
    Some(bits >> cap & 1 == 1)
}

/// Refuses, before anything is tried, a command that changes the network (`command`, as the
/// user typed it) in a process without `CAP_NET_ADMIN`: otherwise the first thing to fail
/// is the run lock in /run, which says nothing about why.
pub fn require_net_admin(command: &str) -> Result<(), Failure> {
    match has_net_admin() {
        Some(false) => Err(Failure::Run(not_net_admin(command))),
        _ => Ok(()),
    }
}

fn not_net_admin(command: &str) -> String {
    format!(
        "{command} must run as root: changing rules and routes needs CAP_NET_ADMIN, which this \
         process lacks (use sudo)"
    )
}

/// What std's runtime set-up does that a binary with its own C `main` needs: standard
/// descriptors that are closed are opened on /dev/null (else the netlink socket could become
/// fd 2 and receive log lines), and SIGPIPE is ignored (a closed stdout is an error, not a
/// silent death).
pub fn start_up() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: poll reads and writes the three pollfd structs of a live array.
    if unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) } >= 0 {
        for pfd in fds.iter().filter(|p| p.revents & libc::POLLNVAL != 0) {
            // SAFETY: open with a NUL-terminated literal path; the lowest free descriptor is
            // the closed one being filled, and it stays open for the process's lifetime.
            let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
            if fd != pfd.fd {
                std::process::abort();
            }
        }
    }
    // SAFETY: setting a signal's disposition to SIG_IGN touches no memory of ours.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_IGN);
    }
}

/// Runs a future of the core to completion on this thread, without an async runtime. A
/// one-shot run waits on nothing but the kernel's answers (blocking syscalls), so the future
/// completes at its first poll and a runtime (threads, epoll, timers) would be pure
/// start-up cost.
pub fn block_on<F: std::future::Future>(future: F) -> F::Output {
    let mut future = std::pin::pin!(future);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    loop {
        if let std::task::Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        std::thread::yield_now();
    }
}

/// How a command's outcome ends the process.
pub fn exit(outcome: Result<ExitCode, Failure>) -> ExitCode {
    outcome.unwrap_or_else(Failure::exit)
}

/// The configuration at `path` (the default file when `None`); a bad one is a usage error.
pub fn settings(path: Option<&Path>) -> Result<Settings, Failure> {
    config::load_from(path).map_err(|e| Failure::Usage(e.to_string()))
}

/// A single-threaded runtime: the work is sequential by design (one run at a time, under
/// one lock), and an idle daemon should cost next to nothing. `what` names it in the error.
pub fn runtime(what: &str) -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::Run(format!("cannot start the {what}: {e}")))
}

/// A finished run's exit status ([`Report::finish`]: a dry run prints its changes, every
/// failure is logged).
pub fn report_exit(report: &Report, mode: Mode) -> ExitCode {
    if report.finish(mode) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILURE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_pick_the_level() {
        assert_eq!(level(false, false), log::LevelFilter::Info);
        assert_eq!(level(true, false), log::LevelFilter::Debug);
        assert_eq!(level(false, true), log::LevelFilter::Warn);
    }

    #[test]
    fn net_admin_is_read_from_the_effective_set() {
        let status = |eff: &str| {
            format!("Name:\tx\nCapInh:\t0\nCapPrm:\t000001ffffffffff\nCapEff:\t{eff}\n")
        };
        assert_eq!(
            effective_has(&status("000001ffffffffff"), CAP_NET_ADMIN),
            Some(true)
        );
        assert_eq!(
            effective_has(&status("0000000000000000"), CAP_NET_ADMIN),
            Some(false)
        );
        // CAP_NET_ADMIN alone, as `setpriv --inh-caps +net_admin --ambient-caps ...` gives.
        assert_eq!(
            effective_has(&status("0000000000001000"), CAP_NET_ADMIN),
            Some(true)
        );
        assert_eq!(
            effective_has(&status("0000000000000fff"), CAP_NET_ADMIN),
            Some(false)
        );
        assert_eq!(effective_has("Name:\tx\n", CAP_NET_ADMIN), None);
        assert_eq!(
            not_net_admin("symroute sync"),
            "symroute sync must run as root: changing rules and routes needs CAP_NET_ADMIN, \
             which this process lacks (use sudo)"
        );
    }

    #[test]
    fn usage_errors_exit_2_others_1() {
        let usage = Failure::from(Error::from(crate::events::NameError::Empty));
        assert!(matches!(usage, Failure::Usage(_)));
        let run = Failure::from(Error::UnknownInterface("eth9".into()));
        assert_eq!(run, Failure::Run("eth9: no such interface".into()));
    }
}
