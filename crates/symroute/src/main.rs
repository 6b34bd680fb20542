//! `symroute`: the admin command line. A thin shell over the core: parse, read the kernel,
//! call the pure status/doctor/explain functions or a reconcile run, print, map the outcome
//! to an exit status.

mod cli;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use cli::{Args, Command};
use symroute_core::doctor::{self, HostFacts};
use symroute_core::explain::{self, Query};
use symroute_core::kernel::nftables;
use symroute_core::kernel::{self, Scope};
use symroute_core::model::{Family, Snapshot};
use symroute_core::status;
use symroute_core::{
    config, lock::DEFAULT_LOCK_PATH, logging, reconcile, validate_interface_name, Action, Error,
    Mode, Netlink, Settings, Target,
};

const EXIT_FAILURE: u8 = 1;
const EXIT_USAGE: u8 = 2;

/// Why a command ended badly, and with which exit status.
enum Failure {
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

fn main() -> ExitCode {
    let args = Args::parse();
    let level = if args.verbose {
        log::LevelFilter::Debug
    } else if args.quiet {
        log::LevelFilter::Warn
    } else {
        log::LevelFilter::Info
    };
    logging::init_admin(level);

    let settings = config::load_from(args.config.as_deref());
    let settings = match settings {
        Ok(settings) => settings,
        Err(e) => {
            log::error!("{e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            log::error!("cannot start the async runtime: {e}");
            return ExitCode::from(EXIT_FAILURE);
        }
    };
    match runtime.block_on(run(&args.command, &settings)) {
        Ok(code) => code,
        Err(Failure::Usage(e)) => {
            log::error!("{e}");
            ExitCode::from(EXIT_USAGE)
        }
        Err(Failure::Run(e)) => {
            log::error!("{e}");
            ExitCode::from(EXIT_FAILURE)
        }
    }
}

async fn run(command: &Command, settings: &Settings) -> Result<ExitCode, Failure> {
    match command {
        Command::Status {
            interface,
            json,
            pretty,
        } => {
            if let Some(name) = interface {
                validate_interface_name(name).map_err(Error::from)?;
            }
            let netlink = connect()?;
            let snapshot = full_snapshot(&netlink, settings).await?;
            let mut report = status::status(&snapshot, settings);
            if let Some(name) = interface {
                if !report.retain_interface(name) {
                    return Err(Error::UnknownInterface(name.clone()).into());
                }
            }
            if *json {
                print_json(&report, *pretty)?;
            } else {
                print!("{}", report.render(false));
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Plan { interface } => {
            let target = target(interface.as_deref(), Action::Sync, Target::All)?;
            reconcile_and_report(settings, &target, Mode::DryRun).await
        }
        Command::Sync { interface } => {
            let target = target(interface.as_deref(), Action::Sync, Target::All)?;
            reconcile_and_report(settings, &target, Mode::Apply).await
        }
        Command::Flush { interface } => {
            let target = target(interface.as_deref(), Action::Remove, Target::Flush)?;
            reconcile_and_report(settings, &target, Mode::Apply).await
        }
        Command::Doctor { json, pretty } => {
            let netlink = connect()?;
            let snapshot = full_snapshot(&netlink, settings).await?;
            let report = status::status(&snapshot, settings);
            let mut facts = HostFacts::read(Path::new("/"), &snapshot.links);
            // Needs CAP_NET_ADMIN; unknown otherwise. Not asked when nf_tables is not even
            // loaded and nothing needs it (asking would load it).
            if settings.iif_rules || Path::new("/sys/module/nf_tables").exists() {
                facts.nft_table = nftables::read_installed().ok();
            }
            facts.nat = kernel::nat::read(Path::new("/"));
            let diagnosis = doctor::diagnose(&snapshot, settings, &report, &facts);
            if *json {
                print_json(&diagnosis, *pretty)?;
            } else {
                print!("{}", diagnosis.render());
            }
            Ok(if diagnosis.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_FAILURE)
            })
        }
        Command::Explain {
            from,
            to,
            iif,
            json,
            pretty,
        } => {
            if Family::of(from) != Family::of(to) {
                return Err(Failure::Usage(format!(
                    "{from} and {to} are of different address families"
                )));
            }
            if let Some(name) = iif {
                validate_interface_name(name).map_err(Error::from)?;
            }
            let netlink = connect()?;
            let snapshot = full_snapshot(&netlink, settings).await?;
            let iif_index = match iif {
                Some(name) => match snapshot.link_by_name(name) {
                    Some(link) => Some(link.index),
                    None => return Err(Error::UnknownInterface(name.clone()).into()),
                },
                None => None,
            };
            let query = Query {
                from: *from,
                to: *to,
                iif: iif.clone(),
                mark: 0,
            };
            let answer = kernel::lookup(&netlink, &query, iif_index)
                .await
                .map_err(Error::Connect)?;
            // Forwarded traffic is symmetric when its answer goes back the same way: ask
            // the kernel about the answer too.
            let reply = match explain::reply_query(&snapshot, settings, &query, &answer) {
                Some((reply, reply_iif)) => Some(
                    kernel::lookup(&netlink, &reply, reply_iif)
                        .await
                        .map_err(Error::Connect)?,
                ),
                None => None,
            };
            let explanation =
                explain::explain(&snapshot, settings, &query, &answer, reply.as_ref());
            if *json {
                print_json(&explanation, *pretty)?;
            } else {
                print!("{}", explanation.render());
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn target(interface: Option<&str>, action: Action, all: Target) -> Result<Target, Failure> {
    match interface {
        None => Ok(all),
        Some(name) => {
            validate_interface_name(name).map_err(Error::from)?;
            Ok(Target::Interface {
                name: name.to_string(),
                action,
            })
        }
    }
}

fn connect() -> Result<Netlink, Failure> {
    Ok(Netlink::connect().map_err(Error::Connect)?)
}

/// Everything: every link, address, rule and table.
async fn full_snapshot(netlink: &Netlink, settings: &Settings) -> Result<Snapshot, Failure> {
    let links = kernel::links(netlink).await.map_err(Error::from)?;
    Ok(kernel::snapshot(netlink, settings, Scope::All, links)
        .await
        .map_err(Error::from)?)
}

/// Runs `target`; a dry run prints its changes on stdout, a real run logs each change
/// (stderr, and the journal for audit).
async fn reconcile_and_report(
    settings: &Settings,
    target: &Target,
    mode: Mode,
) -> Result<ExitCode, Failure> {
    let netlink = connect()?;
    let lock = PathBuf::from(DEFAULT_LOCK_PATH);
    let report = reconcile(&netlink, settings, target, mode, &lock).await?;
    Ok(if report.finish(mode) {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILURE)
    })
}

fn print_json(value: &impl serde::Serialize, pretty: bool) -> Result<(), Failure> {
    let text = if pretty {
        serde_json::to_string_pretty(value)
    } else {
        serde_json::to_string(value)
    };
    let text = text.map_err(|e| Failure::Run(format!("cannot encode JSON: {e}")))?;
    println!("{text}");
    Ok(())
}
