//! `symroute-hook IFACE ACTION`: called once per interface event by NetworkManager's
//! dispatcher, networkd-dispatcher or an admin. A thin shell: parse, call the core, map the
//! outcome to an exit status.

// The C `main` below replaces std's, whose set-up reads /proc/self/maps for a stack guard:
// a quarter of the instructions of a whole no-op run (`shell::start_up` keeps what matters
// of it).
#![cfg_attr(not(test), no_main)]

mod cli;
#[cfg(test)]
mod properties;

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::path::Path;

use clap::Parser;
use cli::Args;
use symroute_core::lock::DEFAULT_LOCK_PATH;
use symroute_core::shell::{self, CommonFlags, Failure, EXIT_FAILURE};
use symroute_core::{
    action_for, is_known_event, logging, reconcile, validate_interface_name, Action, Error, Mode,
    Netlink, Target, ACTIONS,
};

#[cfg_attr(not(test), no_mangle)]
extern "C" fn main(_argc: libc::c_int, _argv: *const *const libc::c_char) -> libc::c_int {
    shell::start_up();
    let args = arguments();
    logging::init_hook(args.common.level());
    let code = run(&args).unwrap_or_else(Failure::code);
    let _ = std::io::stdout().flush();
    libc::c_int::from(code)
}

/// The arguments: `IFACE ACTION` as dispatchers pass them is read directly; anything else
/// (options, help, errors) goes through clap. Both give the same [`Args`].
fn arguments() -> Args {
    let argv: Vec<OsString> = std::env::args_os().skip(1).collect();
    direct_arguments(&argv).unwrap_or_else(Args::parse)
}

/// `IFACE ACTION` read without clap; `None` for anything else.
fn direct_arguments(argv: &[OsString]) -> Option<Args> {
    if let [interface, action] = argv {
        if let (Some(interface), Some(action)) = (interface.to_str(), action.to_str()) {
            if !interface.starts_with('-') && !action.starts_with('-') {
                return Some(Args {
                    interface: Some(interface.to_string()),
                    action: Some(action.to_string()),
                    all: false,
                    flush: false,
                    dry_run: false,
                    common: CommonFlags::default(),
                });
            }
        }
    }
    None
}

fn run(args: &Args) -> Result<u8, Failure> {
    let Some(target) = target(args)? else {
        return Ok(0);
    };
    if !args.dry_run {
        shell::require_net_admin("symroute-hook")?;
    }
    let settings = shell::settings(args.common.config.as_deref())?;
    let mode = if args.dry_run {
        Mode::DryRun
    } else {
        Mode::Apply
    };
    let report = shell::block_on(async {
        let netlink = Netlink::connect()?;
        reconcile(
            &netlink,
            &settings,
            &target,
            mode,
            Path::new(DEFAULT_LOCK_PATH),
        )
        .await
    })?;
    Ok(if report.finish(mode) { 0 } else { EXIT_FAILURE })
}

/// What the arguments ask for; `None` for an event that needs nothing.
fn target(args: &Args) -> Result<Option<Target>, Error> {
    if args.all {
        return Ok(Some(Target::All));
    }
    if args.flush {
        return Ok(Some(Target::Flush));
    }
    let event = args.action.as_deref().unwrap_or_default();
    let action = action_for(event);
    if action == Action::Ignore {
        // NetworkManager passes "none" or "" as the interface for some of these.
        log::debug!("ignoring event {event:?}");
        // Dispatchers send new events over time and must hear nothing about them; a person
        // at a terminal who typed `upp` must.
        if !is_known_event(event) && std::io::stderr().is_terminal() {
            eprintln!("{}", unknown_action_warning(event));
        }
        return Ok(None);
    }
    let name = args.interface.clone().unwrap_or_default();
    validate_interface_name(&name)?;
    Ok(Some(Target::Interface { name, action }))
}

/// The line a person at a terminal sees for an action symroute-hook does not know (the exit
/// status stays 0: to a dispatcher, an unknown event is one to ignore).
fn unknown_action_warning(event: &str) -> String {
    format!(
        "warning: unknown action {event:?}, nothing done (actions: {}; see symroute-hook --help)",
        ACTIONS.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_unknown_action_is_named_with_the_known_ones() {
        let line = unknown_action_warning("upp");
        assert!(line.starts_with("warning: unknown action \"upp\", nothing done (actions: up, "));
        assert!(
            line.contains(", remove; see symroute-hook --help)"),
            "{line}"
        );
        assert!(!line.contains('\n'));
    }
}
