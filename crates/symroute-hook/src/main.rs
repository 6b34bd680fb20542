//! `symroute-hook IFACE ACTION`: called once per interface event by NetworkManager's
//! dispatcher, networkd-dispatcher or an admin. A thin shell: parse, call the core, map the
//! outcome to an exit status.

mod cli;
#[cfg(test)]
mod properties;

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use cli::Args;
use symroute_core::lock::DEFAULT_LOCK_PATH;
use symroute_core::shell::{self, Failure};
use symroute_core::{
    action_for, logging, reconcile, validate_interface_name, Action, Error, Mode, Netlink, Target,
};

fn main() -> ExitCode {
    let args = Args::parse();
    logging::init_hook(shell::level(args.verbose, args.quiet));
    shell::exit(run(&args))
}

fn run(args: &Args) -> Result<ExitCode, Failure> {
    let Some(target) = target(args)? else {
        return Ok(ExitCode::SUCCESS);
    };
    let settings = shell::settings(args.config.as_deref())?;
    let mode = if args.dry_run {
        Mode::DryRun
    } else {
        Mode::Apply
    };
    let report = shell::runtime("async runtime")?.block_on(async {
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
    Ok(shell::report_exit(&report, mode))
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
        return Ok(None);
    }
    let name = args.interface.clone().unwrap_or_default();
    validate_interface_name(&name)?;
    Ok(Some(Target::Interface { name, action }))
}
