//! The hook's command line and environment as a dispatcher (or anyone who can run it) passes
//! them: the input is NUL-separated words, the first SYMROUTE_LOG's value (empty: unset),
//! the rest argv after the program name, bytes as they come (not necessarily UTF-8).
//!
//! The hook's own `cli.rs` (as xtask compiles it in for the man page) parses them, then
//! the core decides as `symroute-hook`'s `target()` does: a known action runs only for a
//! valid interface name, anything else is ignored or a one-line usage error. Its direct
//! reading of `IFACE ACTION` is checked against clap by the hook's property tests.
#![no_main]

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

use clap::Parser;
use libfuzzer_sys::fuzz_target;
use log::LevelFilter;
use symroute_core::logging::{routing, Role};
use symroute_core::{action_for, validate_interface_name, Action};

#[path = "../../crates/symroute-hook/src/cli.rs"]
#[allow(dead_code)]
mod cli;

fuzz_target!(|bytes: &[u8]| {
    let mut words = bytes.split(|b| *b == 0);
    let forced = words.next().and_then(|w| std::str::from_utf8(w).ok());
    let forced = forced.filter(|w| !w.is_empty());
    let argv: Vec<OsString> = std::iter::once(OsString::from("symroute-hook"))
        .chain(words.map(|w| OsString::from_vec(w.to_vec())))
        .collect();

    let args = match cli::Args::try_parse_from(&argv) {
        Ok(args) => args,
        Err(e) => {
            // What the admin sees: rendered without panicking.
            let _ = e.render().to_string();
            return;
        }
    };
    let level = args.common.level();
    for role in [Role::Hook, Role::Admin] {
        for (terminal, have_syslog) in [(false, false), (false, true), (true, false), (true, true)]
        {
            let r = routing(role, level, forced, terminal, have_syslog);
            // Dispatchers capture stderr: errors always reach it, whatever SYMROUTE_LOG says.
            assert!(
                r.stderr >= level.min(LevelFilter::Error),
                "{role:?} {forced:?} terminal={terminal} syslog={have_syslog}: {r:?}"
            );
        }
    }
    if args.all || args.flush {
        assert!(args.interface.is_none(), "{argv:?}");
        return;
    }
    let action = action_for(args.action.as_deref().unwrap_or_default());
    if action == Action::Ignore {
        return;
    }
    let name = args.interface.clone().unwrap_or_default();
    match validate_interface_name(&name) {
        Ok(()) => {
            assert!(!name.is_empty() && name.len() <= 15 && !name.contains(['/', ':']));
            assert!(!name.chars().any(|c| c.is_whitespace() || c.is_control()));
        }
        Err(e) => {
            let e = symroute_core::Error::from(e);
            assert!(e.is_usage(), "{e}");
            assert!(!e.to_string().contains('\n'), "{e}");
        }
    }
});
