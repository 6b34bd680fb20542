//! `symroute`: the admin command line. A thin shell over the core: parse, call
//! [`symroute_core::admin`] (status, doctor, explain) or a reconcile run, print, map the
//! outcome to an exit status.

mod cli;

use std::path::Path;
use std::process::ExitCode;

use clap::Parser;
use cli::{Args, Command};
use symroute_core::lock::DEFAULT_LOCK_PATH;
use symroute_core::model::{Family, Query};
use symroute_core::shell::{self, Failure, EXIT_FAILURE};
use symroute_core::{
    admin, logging, reconcile, validate_interface_name, Action, Error, Mode, Names, Netlink,
    Settings, Target,
};

fn main() -> ExitCode {
    let args = Args::parse();
    logging::init_admin(args.common.level());
    shell::exit((|| {
        if let Some(command) = args.command.writes() {
            shell::require_net_admin(command)?;
        }
        let settings = shell::settings(args.common.config.as_deref())?;
        shell::runtime("async runtime")?.block_on(run(&args.command, &settings))
    })())
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
            let mut report = admin::status(&connect()?, settings, interface.as_deref()).await?;
            if *json {
                report.name(&Names::load(Path::new("/")));
            }
            show(&report, *json, *pretty, || report.render(false))?;
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
            let diagnosis = admin::doctor(&connect()?, settings).await?;
            show(&diagnosis, *json, *pretty, || diagnosis.render())?;
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
            let query = Query {
                from: *from,
                to: *to,
                iif: iif.clone(),
                mark: 0,
            };
            let mut explanation = admin::explain(&connect()?, settings, &query).await?;
            if *json {
                explanation.name(&Names::load(Path::new("/")));
            }
            show(&explanation, *json, *pretty, || explanation.render())?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn target(interface: Option<&str>, action: Action, all: Target) -> Result<Target, Failure> {
    let Some(name) = interface else {
        return Ok(all);
    };
    validate_interface_name(name).map_err(Error::from)?;
    let name = name.to_string();
    Ok(Target::Interface { name, action })
}

fn connect() -> Result<Netlink, Failure> {
    Ok(Netlink::connect().map_err(Error::Connect)?)
}

/// Runs `target`; a dry run prints its changes on stdout, a real run logs each change
/// (stderr, and the journal for audit).
async fn reconcile_and_report(
    settings: &Settings,
    target: &Target,
    mode: Mode,
) -> Result<ExitCode, Failure> {
    let report = reconcile(
        &connect()?,
        settings,
        target,
        mode,
        Path::new(DEFAULT_LOCK_PATH),
    )
    .await?;
    Ok(shell::report_exit(&report, mode))
}

/// Prints `value` as JSON (`--json`, `--pretty`) or as the text `render` makes.
fn show(
    value: &impl serde::Serialize,
    json: bool,
    pretty: bool,
    render: impl FnOnce() -> String,
) -> Result<(), Failure> {
    if !json {
        print!("{}", render());
        return Ok(());
    }
    let text = if pretty {
        serde_json::to_string_pretty(value)
    } else {
        serde_json::to_string(value)
    };
    let text = text.map_err(|e| Failure::Run(format!("cannot encode JSON: {e}")))?;
    println!("{text}");
    Ok(())
}
