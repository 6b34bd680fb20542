//! `symrouted`: keeps every interface's symmetric policy routing in step with the kernel
//! (rtnetlink multicast) and NetworkManager (D-Bus). A thin shell over symroute-core: parse,
//! run the event loop, map the outcome to an exit status.

mod cli;
mod daemon;
mod dirty;
mod fight;
mod follow;
mod lockwait;
mod monitor;
mod nm;
mod notify;
#[cfg(test)]
mod properties;
mod retry;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use symroute_core::{config, logging, Target};

use crate::cli::Args;
use crate::daemon::{DaemonError, Options};
use crate::fight::FightPolicy;
use crate::retry::RetryPolicy;

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
    logging::init(level);

    let settings = match config::load_from(args.config.as_deref()) {
        Ok(settings) => settings,
        Err(e) => {
            log::error!("{e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    // One thread: the work is sequential by design (one run at a time, under one lock), and
    // an idle daemon should cost next to nothing.
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            log::error!("cannot start the event loop: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };

    if args.once || args.flush {
        let target = if args.flush {
            Target::Flush
        } else {
            Target::All
        };
        return match runtime.block_on(daemon::run_once(&settings, &target, &args.lock_file)) {
            Ok(report) => {
                for failure in &report.failures {
                    log::error!("{failure}");
                }
                if report.failures.is_empty() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(EXIT_FAILURE)
                }
            }
            Err(e) => {
                log::error!("{e}");
                ExitCode::from(if e.is_usage() {
                    EXIT_USAGE
                } else {
                    EXIT_FAILURE
                })
            }
        };
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
    let config_path = args.config.clone();
    let reload = Box::new(move || match config::load_from(config_path.as_deref()) {
        Ok(settings) => Some(settings),
        Err(e) => {
            log::error!("{e}; keeping the configuration in force");
            None
        }
    });
    match runtime.block_on(daemon::run(settings, &options, reload)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            ExitCode::from(match e {
                DaemonError::Run(e) if e.is_usage() => EXIT_USAGE,
                _ => EXIT_FAILURE,
            })
        }
    }
}
