//! The command line of `symrouted`, kept apart so the man page is generated from the same
//! definition (see `crates/xtask`): clap, std and symroute-core only.

use std::path::PathBuf;

use clap::Parser;
use symroute_core::lock::DEFAULT_LOCK_PATH;
use symroute_core::shell::CommonFlags;

/// Receive buffer asked for by default. Memory is only used while messages wait, so a large
/// limit costs nothing at idle; 10 000 route changes queue about 10 MiB.
pub const DEFAULT_RECEIVE_BUFFER: usize = 32 << 20;

/// Where change events come from besides the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Source {
    /// The kernel, plus NetworkManager whenever it is on the system bus (also a bus that
    /// appears after start).
    Auto,
    /// The kernel only.
    Netlink,
    /// The kernel plus NetworkManager, which must be on the system bus at start.
    Nm,
}

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
Only signals from NetworkManager's current unique name (and the bus driver's NameOwnerChanged)
are believed; signals other users send are dropped. When NetworkManager restarts it is followed
again under its new name; when the bus connection is lost, symrouted follows the kernel alone
and reconnects as soon as the bus's socket is created again (an inotify watch; with back-off,
1 s doubling up to 30 s, while a socket is there that does not answer), logging each change
of state once. The same holds when there is no system bus yet at start (symrouted.service
starts before dbus at boot): the kernel is followed at once, NetworkManager from the moment
it is on the bus.

With a [health] section in symroute.toml, symrouted also probes every uplink (ICMP echoes
from the uplink's own address through its own device, every interval, per family), logs one
line per transition (`eth0: IPv4 is down ...`), keeps the verdicts in /run/symroute/health for
every run to steer by, and steers new outbound connections around an uplink found down
(failover) or over the healthy ones by weight (balance). See symroute.toml(5).

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
     change with --once/--flush, no CAP_NET_ADMIN: it must run as root)
  2  usage error (bad arguments, or a configuration file that is broken, too large, or
     owned or writable by anyone but root)

SIGNALS:
  SIGTERM, SIGINT  exit 0, leaving rules and tables in place
  SIGHUP           reread the configuration file and sync everything

ENVIRONMENT:
  SYMROUTE_LOG=stderr|syslog   where log lines go (default: stderr on a terminal, else syslog
                               with identifier `symroute`)
  NOTIFY_SOCKET                set by systemd (Type=notify); READY=1 is sent after the first sync
                               (or after 5 s waiting for the run lock)
  WATCHDOG_USEC, WATCHDOG_PID  set by systemd (WatchdogSec=); WATCHDOG=1 is sent from the
                               event loop every half interval
  DBUS_SYSTEM_BUS_ADDRESS      the system bus to find NetworkManager on

FILES:
  /etc/symroute/symroute.toml  configuration (every key optional; see symroute.toml(5))
  /run/symroute/lock           serializes runs with symroute-hook and the admin CLI (0600 in a
                               0700 directory, root's; never waited for: retried on a timer)

SEE ALSO:
  symroute-hook(8), symroute(8), systemd.service(5)";

#[derive(Parser, Debug)]
#[command(
    name = "symrouted",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_long_help = AFTER_HELP,
    // The daemon's `-v` also shows its event batches.
    mut_arg("verbose", |a| a.help("Also log every event batch and what was found in sync"))
)]
pub struct Args {
    /// Where change events come from: `auto` follows the kernel and, whenever it is on the
    /// system bus (also a bus that appears later), NetworkManager; `netlink` the kernel only;
    /// `nm` the kernel and NetworkManager, failing if NetworkManager is not there at start
    #[arg(long, value_enum, default_value = "auto", value_name = "SOURCE")]
    pub source: Source,

    /// Sync every interface, remove state left by interfaces that are gone, and exit
    #[arg(long, conflicts_with = "flush")]
    pub once: bool,

    /// Remove every rule and table route of symroute's, on all interfaces, and exit (stop the
    /// service first, or it puts them back)
    #[arg(long)]
    pub flush: bool,

    #[command(flatten)]
    pub common: CommonFlags,

    /// rtnetlink receive buffer in bytes (tests shrink it to force overruns)
    #[arg(long, hide = true, default_value_t = DEFAULT_RECEIVE_BUFFER)]
    pub receive_buffer: usize,

    /// Lock file shared with symroute-hook (tests give each lab its own)
    #[arg(long, hide = true, default_value = DEFAULT_LOCK_PATH)]
    pub lock_file: PathBuf,

    /// Seconds an interface is left alone after a fight starts (doubling, at most 15 min)
    #[arg(long, hide = true, default_value_t = 60)]
    pub fight_pause: u64,
}
