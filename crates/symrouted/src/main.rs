//! `symrouted`: keeps every interface's symmetric policy routing in step with the kernel
//! (rtnetlink multicast) and NetworkManager (D-Bus). A thin shell over symroute-core: parse,
//! run the event loop, map the outcome to an exit status.

mod cli;
mod daemon;
mod dirty;
mod fight;
mod follow;
mod health;
mod lockwait;
mod metrics;
mod nm;
mod notify;
#[cfg(test)]
mod properties;
mod retry;
mod socket_watch;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use symroute_core::shell::{self, Failure};
use symroute_core::{config, logging, Mode, Target};

use crate::cli::Args;
use crate::daemon::{DaemonError, Options};
use crate::fight::FightPolicy;
use crate::retry::RetryPolicy;

fn main() -> ExitCode {
    let args = Args::parse();
    logging::init(args.common.level());
    shell::exit(run(&args))
}

fn run(args: &Args) -> Result<ExitCode, Failure> {
    shell::require_net_admin("symrouted")?;
    let settings = shell::settings(args.common.config.as_deref())?;
    let runtime = shell::runtime("event loop")?;
    if args.once || args.flush {
        let target = if args.flush {
            Target::Flush
        } else {
            Target::All
        };
        let report = runtime.block_on(daemon::run_once(&settings, &target, &args.lock_file))?;
        return Ok(shell::report_exit(&report, Mode::Apply));
    }

    let options = Options {
        source: args.source,
        receive_buffer: args.receive_buffer,
        lock_path: args.lock_file.clone(),
        fight: FightPolicy {
            backoff: Duration::from_secs(args.fight_pause.max(1)),
            ..FightPolicy::default()
        },
        retry: RetryPolicy::default(),
    };
    let config_path = args.common.config.clone();
    let reload = Box::new(move || match config::load_from(config_path.as_deref()) {
        Ok(settings) => Some(settings),
        Err(e) => {
            log::error!("{e}; keeping the configuration in force");
            None
        }
    });
    match runtime.block_on(daemon::run(settings, &options, reload)) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(DaemonError::Run(e)) => Err(e.into()),
        Err(e) => Err(Failure::Run(e.to_string())),
    }
}
