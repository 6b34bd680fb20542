//! `symrouted`: keeps every interface's symmetric policy routing in step with the kernel
//! (rtnetlink multicast) and NetworkManager (D-Bus). A thin shell over symroute-core: parse,
//! run the event loop, map the outcome to an exit status.

mod daemon;
mod dirty;
mod fight;
mod monitor;
mod nm;
mod notify;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use symroute_core::{config, lock::DEFAULT_LOCK_PATH, logging, Settings, Target};

use crate::daemon::{DaemonError, Options, Source};
use crate::fight::FightPolicy;

const EXIT_FAILURE: u8 = 1;
const EXIT_USAGE: u8 = 2;

const ABOUT: &str = "Keep symmetric policy routing in step with the kernel and NetworkManager";

const LONG_ABOUT: &str = "\
Keep symmetric policy routing in step with the kernel and NetworkManager.

For every interface with index N, symrouted keeps routing table 1000+N as a copy of every
main-table route through that interface, and one rule `from ADDRESS lookup 1000+N`
(priority 32000) for each of its global IPv4 and IPv6 addresses, so that traffic to an
address is answered through the uplink it arrived on. Rules and routes are tagged with
protocol 83 (`symroute`); nothing without that tag is ever changed, and a table that already
holds someone else's routes is refused.

On start symrouted subscribes to the kernel's rtnetlink events (links, addresses, routes and
rules, IPv4 and IPv6), syncs every interface, then tells systemd it is ready. After that every
batch of events is drained at once and each interface it touched is synced once: an address
changed by a DHCP renewal, a route added to or removed from the main table, a link that went
down and up, a rule or table route of symroute's removed by someone else (put back; if that
keeps happening, symrouted backs off and names the likely cause). If the kernel drops events
because the receive buffer overflowed, everything is synced again.

With NetworkManager on the system bus its device, IP configuration and DHCP signals are
followed too. The kernel stays the only state: a signal only says which interface to look at.

On SIGTERM or SIGINT symrouted exits and leaves rules and tables in place, so a restart drops
no traffic; --flush removes them. SIGHUP rereads the configuration and syncs everything.";

const AFTER_HELP: &str = "\
EXAMPLES:
  symrouted                   run in the foreground (as the systemd unit does)
  symrouted --source netlink  follow the kernel only, even where NetworkManager runs
  symrouted --once            sync every interface once and exit (like symroute-hook --all)
  symrouted --flush           remove every rule and table route of symroute's and exit
  systemctl enable --now symrouted.service

EXIT STATUS:
  0  stopped by SIGTERM/SIGINT, or --once/--flush done
  1  failure (no netlink socket, NetworkManager missing with --source nm, a refused or failed
     change with --once/--flush)
  2  usage error (bad arguments or configuration file)

SIGNALS:
  SIGTERM, SIGINT  exit 0, leaving rules and tables in place
  SIGHUP           reread the configuration file and sync everything

ENVIRONMENT:
  SYMROUTE_LOG=stderr|syslog   where log lines go (default: stderr on a terminal, else syslog
                               with identifier `symroute`)
  NOTIFY_SOCKET                set by systemd (Type=notify); READY=1 is sent after the first sync
  DBUS_SYSTEM_BUS_ADDRESS      the system bus to find NetworkManager on

FILES:
  /etc/symroute/symroute.toml  configuration (every key optional; see symroute.toml(5))
  /run/symroute/lock           serializes runs with symroute-hook and the admin CLI

SEE ALSO:
  symroute-hook(8), symroute(8), systemd.service(5)";

#[derive(Parser, Debug)]
#[command(
    name = "symrouted",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_long_help = AFTER_HELP
)]
struct Args {
    /// Where change events come from: `auto` follows the kernel and, when it is on the system
    /// bus at start, NetworkManager; `netlink` the kernel only; `nm` the kernel and
    /// NetworkManager, failing if NetworkManager is not there
    #[arg(long, value_enum, default_value = "auto", value_name = "SOURCE")]
    source: Source,

    /// Sync every interface, remove state left by interfaces that are gone, and exit
    #[arg(long, conflicts_with = "flush")]
    once: bool,

    /// Remove every rule and table route of symroute's, on all interfaces, and exit (stop the
    /// service first, or it puts them back)
    #[arg(long)]
    flush: bool,

    /// Also log every event batch and what was found in sync
    #[arg(short, long, conflicts_with = "quiet")]
    verbose: bool,

    /// Log only warnings and errors
    #[arg(short, long)]
    quiet: bool,

    /// Configuration file [default: /etc/symroute/symroute.toml; a missing default file means
    /// defaults]
    #[arg(short, long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// rtnetlink receive buffer in bytes (tests shrink it to force overruns)
    #[arg(long, hide = true, default_value_t = monitor::DEFAULT_RECEIVE_BUFFER)]
    receive_buffer: usize,

    /// Lock file shared with symroute-hook (tests give each lab its own)
    #[arg(long, hide = true, default_value = DEFAULT_LOCK_PATH)]
    lock_file: PathBuf,

    /// Seconds an interface is left alone after a fight starts (doubling, at most 15 min)
    #[arg(long, hide = true, default_value_t = 60)]
    fight_pause: u64,
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

    let settings = match load_settings(args.config.as_deref()) {
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
    };
    let config_path = args.config.clone();
    let reload = Box::new(move || match load_settings(config_path.as_deref()) {
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

fn load_settings(path: Option<&Path>) -> Result<Settings, config::ConfigError> {
    match path {
        Some(path) => config::load(path, true),
        None => config::load(Path::new(config::DEFAULT_CONFIG_PATH), false),
    }
}
