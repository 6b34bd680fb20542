//! `symroute-hook IFACE ACTION`: called once per interface event by NetworkManager's
//! dispatcher, networkd-dispatcher or an admin. A thin shell: parse, call the core, map the
//! outcome to an exit status.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use symroute_core::{
    action_for, config, lock::DEFAULT_LOCK_PATH, logging, reconcile, validate_interface_name,
    Action, Error, Mode, Netlink, Settings, Target,
};

const EXIT_FAILURE: u8 = 1;
const EXIT_USAGE: u8 = 2;

const ABOUT: &str = "Keep symmetric policy routing for one interface in step with its events";

const LONG_ABOUT: &str = "\
Keep symmetric policy routing for one interface in step with its events.

For INTERFACE with index N, symroute-hook keeps routing table 1000+N as a copy of every
main-table route through INTERFACE, and one rule `from ADDRESS lookup 1000+N` (priority
32000) for each of its global IPv4 and IPv6 addresses, so that traffic to an address is
answered through the uplink it arrived on. Rules and routes are tagged with protocol 83
(`symroute`); nothing without that tag is ever changed, and a table that already holds
someone else's routes is refused.

The kernel is the only state: each run reads it, applies the difference, and a second run
changes nothing. Runs are serialized with a lock, so parallel events cannot interleave.";

const AFTER_HELP: &str = "\
ACTIONS:
  sync:    up, dhcp4-change, dhcp6-change, reapply, vpn-up   (NetworkManager)
           routable, configured, degraded                    (networkd-dispatcher)
           sync                                              (by hand)
  remove:  down, pre-down, vpn-down, vpn-pre-down            (NetworkManager)
           off, no-carrier                                   (networkd-dispatcher)
           remove                                            (by hand)
  Any other action (hostname, connectivity-change, pre-up, carrier, ...) is ignored.
  `down` for an interface that no longer exists removes whatever is left of it.

EXAMPLES:
  symroute-hook eth1 up           build eth1's table and rules
  symroute-hook --dry-run eth1 up show what that would change
  symroute-hook eth1 down         remove eth1's rules and table
  symroute-hook --all             sync every interface, remove stale state
  symroute-hook --flush           remove everything symroute installed

EXIT STATUS:
  0  done, or nothing to do
  1  failure (unknown interface, table owned by someone else, kernel refused a change)
  2  usage error (bad arguments, interface name or configuration file)

ENVIRONMENT:
  SYMROUTE_LOG=stderr|syslog  where log lines go (default: stderr on a terminal, else
                              syslog with identifier `symroute`)

FILES:
  /etc/symroute/symroute.toml configuration (every key optional; see symroute.toml(5))
  /run/symroute/lock          serializes runs";

#[derive(Parser, Debug)]
#[command(
    name = "symroute-hook",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_long_help = AFTER_HELP,
    override_usage = "symroute-hook [OPTIONS] <INTERFACE> <ACTION>\n       symroute-hook [OPTIONS] --all | --flush"
)]
struct Args {
    /// Interface the event is about (NetworkManager's $1, networkd-dispatcher's $IFACE)
    #[arg(
        value_name = "INTERFACE",
        required_unless_present_any = ["all", "flush"],
        conflicts_with_all = ["all", "flush"]
    )]
    interface: Option<String>,

    /// Event name (NetworkManager's $2, networkd-dispatcher's $STATE, or sync/remove)
    #[arg(value_name = "ACTION", required_unless_present_any = ["all", "flush"])]
    action: Option<String>,

    /// Sync every interface and remove state left by interfaces that are gone
    #[arg(short, long, conflicts_with = "flush")]
    all: bool,

    /// Remove every rule and table route of symroute's, on all interfaces (uninstall)
    #[arg(long)]
    flush: bool,

    /// Print the changes that would be made, one per line, and change nothing
    #[arg(short = 'n', long)]
    dry_run: bool,

    /// Also log what was checked and found in sync
    #[arg(short, long, conflicts_with = "quiet")]
    verbose: bool,

    /// Log only warnings and errors
    #[arg(short, long)]
    quiet: bool,

    /// Configuration file [default: /etc/symroute/symroute.toml; a missing default file means
    /// defaults]
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,
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
    logging::init(level);

    let target = match target(&args) {
        Ok(Some(target)) => target,
        Ok(None) => return ExitCode::SUCCESS,
        Err(e) => {
            log::error!("{e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let settings = match &args.config {
        Some(path) => config::load(path, true),
        None => config::load(Path::new(config::DEFAULT_CONFIG_PATH), false),
    };
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
    if mode == Mode::DryRun {
        for change in &report.changes {
            println!("{}", change.line);
        }
    }
    if report.changes.is_empty() {
        log::debug!("in sync, nothing to change");
    }
    for failure in &report.failures {
        log::error!("{failure}");
    }
    Ok(if report.failures.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILURE)
    })
}
