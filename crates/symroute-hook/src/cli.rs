//! The command line of `symroute-hook`, kept apart so the man page is generated from the
//! same definition (see `crates/xtask`).

use clap::Parser;
use symroute_core::shell::CommonFlags;

const ABOUT: &str = "Keep symmetric policy routing for one interface in step with its events";

const LONG_ABOUT: &str = "\
Keep symmetric policy routing for one interface in step with its events.

For INTERFACE with index N, symroute-hook keeps routing table 1000+N as a copy of every
main-table route through INTERFACE, and one rule `from ADDRESS lookup 1000+N` (priority
32000) for each of its global IPv4 and IPv6 addresses, so that traffic to an address is
answered through the uplink it arrived on. Rules and routes are tagged with protocol 83
(`symroute`); nothing without that tag is ever changed, and a table that already holds
someone else's routes is refused. With iif_rules, symroute also keeps the nftables table
`inet symroute` (connection marks, so that forwarded and DNAT'ed traffic is answered through
the interface it came in through), written with /usr/sbin/nft only when it changes.

The kernel is the only state: each run reads it, applies the difference, and a second run
changes nothing. Runs are serialized with a lock, so parallel events cannot interleave.";

const AFTER_HELP: &str = "\
ACTIONS:
  sync:    up, dhcp4-change, dhcp6-change, reapply, vpn-up   (NetworkManager)
           routable, configured, degraded                    (networkd-dispatcher)
           sync                                              (by hand)
  settle:  down, pre-down, vpn-down, vpn-pre-down            (NetworkManager)
           off, no-carrier                                   (networkd-dispatcher)
           a sync: only what the kernel says is gone (addresses, flushed routes) is
           removed; a link that keeps its addresses keeps its rules and table
  remove:  remove                                            (by hand)
  Any other action (hostname, connectivity-change, pre-up, carrier, ...) is ignored
  (exit status 0); one no dispatcher sends (a typo such as `upp`) is also warned about
  when stderr is a terminal.
  `down` or `remove` for an interface that no longer exists removes whatever is left of it.

EXAMPLES:
  symroute-hook eth1 up           build eth1's table and rules
  symroute-hook --dry-run eth1 up show what that would change
  symroute-hook eth1 remove       remove eth1's rules and table
  symroute-hook --all             sync every interface, remove stale state
  symroute-hook --flush           remove everything symroute installed (nft table included)

EXIT STATUS:
  0  done, or nothing to do
  1  failure (unknown interface, table owned by someone else, kernel refused a change,
     the run lock still held after 5 s, nft not answering within 10 s, no CAP_NET_ADMIN:
     it must run as root except with --dry-run)
  2  usage error (bad arguments, interface name, or a configuration file that is broken,
     too large, or owned or writable by anyone but root)

ENVIRONMENT:
  SYMROUTE_LOG=stderr|syslog  where log lines go (default: stderr on a terminal, else
                              syslog with identifier `symroute` and errors also to stderr,
                              which dispatchers capture)

FILES:
  /etc/symroute/symroute.toml configuration (every key optional; see symroute.toml(5))
  /run/symroute/lock          serializes runs (0600 in a 0700 directory, root's; waited
                              for at most 5 s)";

#[derive(Parser, Debug)]
#[command(
    name = "symroute-hook",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_long_help = AFTER_HELP,
    override_usage = "symroute-hook [OPTIONS] <INTERFACE> <ACTION>\n       symroute-hook [OPTIONS] --all | --flush"
)]
pub struct Args {
    /// Interface the event is about (NetworkManager's $1, networkd-dispatcher's $IFACE)
    #[arg(
        value_name = "INTERFACE",
        required_unless_present_any = ["all", "flush"],
        conflicts_with_all = ["all", "flush"]
    )]
    pub interface: Option<String>,

    /// Event name (NetworkManager's $2, networkd-dispatcher's $STATE, or sync/remove)
    #[arg(value_name = "ACTION", required_unless_present_any = ["all", "flush"])]
    pub action: Option<String>,

    /// Sync every interface and remove state left by interfaces that are gone
    #[arg(short, long, conflicts_with = "flush")]
    pub all: bool,

    /// Remove every rule and table route of symroute's, on all interfaces, and its nftables
    /// table (uninstall)
    #[arg(long)]
    pub flush: bool,

    /// Print the changes that would be made, one per line, and change nothing
    #[arg(short = 'n', long)]
    pub dry_run: bool,

    #[command(flatten)]
    pub common: CommonFlags,
}
