//! Where the binaries' log lines go. Each binary follows the convention of the programs that
//! run it:
//! - [`init_admin`] (`symroute`): an admin by hand, ssh or Ansible reads stderr, so every
//!   line at the chosen level goes there always; changes (info and above) also go to the
//!   journal/syslog (identifier `symroute`) for audit when a syslog socket exists.
//! - [`init_hook`] (`symroute-hook`): on a terminal, stderr; run by a dispatcher, the journal/
//!   syslog, and errors also to stderr, which the dispatchers capture.
//! - [`init`] (`symrouted`): the journal/syslog off a terminal, else stderr.
//!
//! `SYMROUTE_LOG=stderr` sends everything to stderr only; `SYMROUTE_LOG=syslog` behaves as
//! off a terminal. Without a syslog socket (containers, minimal namespaces) everything goes to
//! stderr, so messages are never lost silently.

use std::io::{IsTerminal, Write};

pub const SYSLOG_IDENTIFIER: &str = "symroute";

/// Which binary logs: decides where its lines go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Admin,
    Hook,
    Daemon,
}

/// How much goes to each destination; `Off` for none.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Routing {
    pub stderr: log::LevelFilter,
    pub syslog: log::LevelFilter,
}

/// Where the lines of `role` go at `level`. `forced` is `SYMROUTE_LOG`, `terminal` whether
/// stderr is a terminal, `have_syslog` whether a syslog socket could be opened (tried at the
/// first line that would go there).
pub fn routing(
    role: Role,
    level: log::LevelFilter,
    forced: Option<&str>,
    terminal: bool,
    have_syslog: bool,
) -> Routing {
    use log::LevelFilter::{Error, Info, Off};
    let stderr_only = Routing {
        stderr: level,
        syslog: Off,
    };
    if !have_syslog || forced == Some("stderr") {
        return stderr_only;
    }
    let off_terminal = forced == Some("syslog") || !terminal;
    match role {
        // Audit: changes reach the journal even with --quiet; debug stays on stderr.
        Role::Admin => Routing {
            stderr: level,
            syslog: Info,
        },
        Role::Hook if off_terminal => Routing {
            stderr: level.min(Error),
            syslog: level,
        },
        Role::Daemon if off_terminal => Routing {
            stderr: Off,
            syslog: level,
        },
        Role::Hook | Role::Daemon => stderr_only,
    }
}

struct Logger {
    /// Where lines go while a syslog socket can be had (and always for lines that never go
    /// to syslog: for those both routings agree).
    with_syslog: Routing,
    /// Where lines go once opening the syslog socket failed.
    without_syslog: Routing,
    /// Opened at the first line for syslog, not at start: a run that logs nothing (the
    /// hook's usual no-op) then costs no socket and no connect.
    syslog: std::sync::OnceLock<Option<syslog::BasicLogger>>,
}

impl Logger {
    /// The routing for a line at `level`, with the syslog logger it goes to, if any.
    fn route(&self, level: log::Level) -> (Routing, Option<&syslog::BasicLogger>) {
        if level > self.with_syslog.syslog {
            return (self.with_syslog, None);
        }
        match self.syslog.get_or_init(open_syslog) {
            Some(syslog) => (self.with_syslog, Some(syslog)),
            None => (self.without_syslog, None),
        }
    }
}

impl log::Log for Logger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        let level = metadata.level();
        level <= self.with_syslog.stderr
            || level <= self.with_syslog.syslog
            || level <= self.without_syslog.stderr
    }

    fn log(&self, record: &log::Record) {
        let (routing, syslog) = self.route(record.level());
        if record.level() <= routing.stderr {
            let prefix = match record.level() {
                log::Level::Error => "error: ",
                log::Level::Warn => "warning: ",
                _ => "",
            };
            let _ = writeln!(std::io::stderr().lock(), "{prefix}{}", record.args());
        }
        if let Some(syslog) = syslog {
            log::Log::log(syslog, record);
        }
    }

    fn flush(&self) {}
}

fn open_syslog() -> Option<syslog::BasicLogger> {
    let formatter = syslog::Formatter3164 {
        facility: syslog::Facility::LOG_DAEMON,
        hostname: None,
        process: SYSLOG_IDENTIFIER.into(),
        pid: std::process::id(),
    };
    syslog::unix(formatter).ok().map(syslog::BasicLogger::new)
}

/// Installs the logger of `role` once per process.
pub fn init_role(role: Role, level: log::LevelFilter) {
    let forced = std::env::var("SYMROUTE_LOG").ok();
    let forced = forced.as_deref();
    let terminal = std::io::stderr().is_terminal();
    // With SYMROUTE_LOG=stderr both are stderr only: syslog is never even tried.
    let with_syslog = routing(role, level, forced, terminal, true);
    let without_syslog = routing(role, level, forced, terminal, false);
    let max = with_syslog
        .stderr
        .max(with_syslog.syslog)
        .max(without_syslog.stderr);
    let logger = Logger {
        with_syslog,
        without_syslog,
        syslog: std::sync::OnceLock::new(),
    };
    if log::set_boxed_logger(Box::new(logger)).is_ok() {
        log::set_max_level(max);
    }
}

/// The daemon's logger: the journal/syslog off a terminal, else stderr.
pub fn init(level: log::LevelFilter) {
    init_role(Role::Daemon, level);
}

/// The admin command line's logger: stderr always, changes also to the journal.
pub fn init_admin(level: log::LevelFilter) {
    init_role(Role::Admin, level);
}

/// The hook's logger: the journal off a terminal with errors also on stderr.
pub fn init_hook(level: log::LevelFilter) {
    init_role(Role::Hook, level);
}

#[cfg(test)]
mod tests {
    use super::*;
    use log::LevelFilter::{Debug, Error, Info, Off, Warn};

    /// `(role, level, SYMROUTE_LOG, on a terminal, syslog reachable)` and the routing they
    /// give, as `(stderr, syslog)` levels.
    type Case = (
        Role,
        log::LevelFilter,
        Option<&'static str>,
        bool,
        bool,
        (log::LevelFilter, log::LevelFilter),
    );

    fn check(cases: &[Case]) {
        for &(role, level, env, terminal, syslog_up, (stderr, syslog)) in cases {
            assert_eq!(
                routing(role, level, env, terminal, syslog_up),
                Routing { stderr, syslog },
                "{role:?} {level} {env:?} terminal={terminal} syslog={syslog_up}"
            );
        }
    }

    #[test]
    fn admin_always_writes_stderr_and_audits_changes() {
        check(&[
            (Role::Admin, Info, None, true, true, (Info, Info)),
            (Role::Admin, Info, None, false, true, (Info, Info)),
            (Role::Admin, Warn, None, false, true, (Warn, Info)),
            (
                Role::Admin,
                Debug,
                Some("syslog"),
                false,
                true,
                (Debug, Info),
            ),
            (Role::Admin, Info, Some("stderr"), false, true, (Info, Off)),
            (Role::Admin, Info, None, false, false, (Info, Off)),
        ]);
    }

    #[test]
    fn hook_off_a_terminal_logs_to_syslog_and_errors_to_stderr() {
        check(&[
            (Role::Hook, Info, None, false, true, (Error, Info)),
            (Role::Hook, Info, None, true, true, (Info, Off)),
            (Role::Hook, Info, Some("syslog"), true, true, (Error, Info)),
            (Role::Hook, Info, None, false, false, (Info, Off)),
            (Role::Hook, Off, None, false, true, (Off, Off)),
        ]);
    }

    fn r(stderr: log::LevelFilter, syslog: log::LevelFilter) -> Routing {
        Routing { stderr, syslog }
    }

    fn logger(role: Role, level: log::LevelFilter, forced: Option<&str>) -> Logger {
        Logger {
            with_syslog: routing(role, level, forced, false, true),
            without_syslog: routing(role, level, forced, false, false),
            syslog: std::sync::OnceLock::new(),
        }
    }

    #[test]
    fn syslog_is_opened_only_for_a_line_that_goes_there() {
        let l = logger(Role::Hook, Info, None);
        // A debug line at the info level goes nowhere: no socket is tried.
        assert_eq!(l.route(log::Level::Debug).0, r(Error, Info));
        assert!(l.syslog.get().is_none());
        let l = logger(Role::Hook, Info, Some("stderr"));
        assert_eq!(l.route(log::Level::Error).0, r(Info, Off));
        assert!(l.syslog.get().is_none());
    }

    #[test]
    fn without_a_syslog_socket_lines_fall_back_to_stderr() {
        let l = logger(Role::Hook, Info, None);
        // As if opening the socket had failed at the first line.
        assert!(l.syslog.set(None).is_ok());
        let (routing, syslog) = l.route(log::Level::Info);
        assert_eq!(routing, r(Info, Off));
        assert!(syslog.is_none());
        assert!(log::Log::enabled(
            &l,
            &log::Metadata::builder().level(log::Level::Info).build()
        ));
    }

    #[test]
    fn daemon_off_a_terminal_logs_to_syslog_only() {
        check(&[
            (Role::Daemon, Info, None, false, true, (Off, Info)),
            (Role::Daemon, Info, None, true, true, (Info, Off)),
            (Role::Daemon, Info, None, false, false, (Info, Off)),
        ]);
    }
}
