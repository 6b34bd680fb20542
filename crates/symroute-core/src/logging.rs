//! Where the binaries' log lines go: the journal/syslog (identifier `symroute`) when not on a
//! terminal, stderr when they are. `SYMROUTE_LOG=stderr|syslog` overrides the choice.

use std::io::{IsTerminal, Write};

pub const SYSLOG_IDENTIFIER: &str = "symroute";

struct StderrLogger {
    level: log::LevelFilter,
}

impl log::Log for StderrLogger {
    fn enabled(&self, metadata: &log::Metadata) -> bool {
        metadata.level() <= self.level
    }

    fn log(&self, record: &log::Record) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let prefix = match record.level() {
            log::Level::Error => "error: ",
            log::Level::Warn => "warning: ",
            _ => "",
        };
        let _ = writeln!(std::io::stderr().lock(), "{prefix}{}", record.args());
    }

    fn flush(&self) {}
}

/// Installs the logger once per process. Falls back to stderr when no syslog socket exists
/// (containers, minimal namespaces), so messages are never lost silently.
pub fn init(level: log::LevelFilter) {
    let want_syslog = match std::env::var("SYMROUTE_LOG").as_deref() {
        Ok("stderr") => false,
        Ok("syslog") => true,
        _ => !std::io::stderr().is_terminal(),
    };
    if want_syslog {
        let formatter = syslog::Formatter3164 {
            facility: syslog::Facility::LOG_DAEMON,
            hostname: None,
            process: SYSLOG_IDENTIFIER.into(),
            pid: std::process::id(),
        };
        if let Ok(logger) = syslog::unix(formatter) {
            if log::set_boxed_logger(Box::new(syslog::BasicLogger::new(logger))).is_ok() {
                log::set_max_level(level);
            }
            return;
        }
    }
    if log::set_boxed_logger(Box::new(StderrLogger { level })).is_ok() {
        log::set_max_level(level);
    }
}
