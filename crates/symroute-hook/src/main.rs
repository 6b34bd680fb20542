//! `symroute-hook IFACE ACTION`: called once per interface event by NetworkManager's
//! dispatcher, networkd-dispatcher or an admin. A thin shell: parse, call the core, map the
//! outcome to an exit status.

mod cli;
#[cfg(test)]
mod properties;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use cli::Args;
use symroute_core::{
    action_for, config, lock::DEFAULT_LOCK_PATH, logging, reconcile, validate_interface_name,
    Action, Error, Mode, Netlink, Settings, Target,
};

const EXIT_FAILURE: u8 = 1;
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let args = Args::parse();
    let level = if args.verbose {
        log::LevelFilter::Debug
    } else if args.quiet {
        log::LevelFilter::Warn
    } else {
        log::LevelFilter::Info
    };
    logging::init_hook(level);

    let target = match target(&args) {
        Ok(Some(target)) => target,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let settings = config::load_from(args.config.as_deref());
    let settings = match settings {
        Ok(settings) => settings,
        Err(e) => {
            log::error!("{e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let mode = if args.dry_run {
        Mode::DryRun
    } else {
        Mode::Apply
    };
    match run(&target, mode, &settings) {
        Ok(code) => code,
        Err(e) => {
            log::error!("{e}");
            ExitCode::from(if e.is_usage() {
                EXIT_USAGE
            } else {
                EXIT_FAILURE
            })
        }
    }
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

fn run(target: &Target, mode: Mode, settings: &Settings) -> Result<ExitCode, Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Connect(symroute_core::netlink::NetlinkError::Socket(e.to_string())))?;
    let report = runtime.block_on(async {
        let netlink = Netlink::connect()?;
        let lock = PathBuf::from(DEFAULT_LOCK_PATH);
        reconcile(&netlink, settings, target, mode, &lock).await
    })?;
    Ok(if report.finish(mode) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILURE)
    })
}
