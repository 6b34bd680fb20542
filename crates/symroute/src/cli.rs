//! The command line of `symroute`, kept apart from `main.rs` so a man page can be generated
//! from the same definition.

use std::net::IpAddr;

use clap::{Parser, Subcommand};
use symroute_core::shell::CommonFlags;

const ABOUT: &str = "Inspect, sync and troubleshoot symroute's symmetric policy routing";

const LONG_ABOUT: &str = "\
Inspect, sync and troubleshoot symroute's symmetric policy routing.

For every interface with index N and a global address, symroute keeps routing table
table_base+N (default 1000+N) as a copy of the main-table routes through that interface,
and a rule `from ADDRESS lookup 1000+N` (priority 32000) per address, so that traffic to an
address is answered through the interface it belongs to. Everything symroute installs
carries protocol 83 (`symroute`); nothing else is ever changed. With iif_rules, symroute
also owns the nftables table `inet symroute`, which marks each connection with the
interface it came in through so that its answers (forwarded, DNAT'ed) leave through it too.
With a [health] section, symrouted probes every uplink and new outbound connections are
steered around a dead one (failover) or spread over the healthy ones (balance).

status, plan, doctor and explain only read the kernel and work without root where the
kernel allows it; sync and flush need CAP_NET_ADMIN.";

const AFTER_HELP: &str = "\
EXAMPLES:
  symroute status                 what is installed, per interface, and what is pending
  symroute status eth1 --json     the same for eth1, as JSON (shape in docs/cli.md)
  symroute plan                   the changes a sync would make, one per line
  symroute sync                   sync every interface, collect state of vanished ones
  symroute sync eth1              sync eth1 only
  symroute flush                  remove every rule and route of symroute's, and table inet
                                  symroute (uninstall)
  symroute doctor                 check the host around symroute; exit 1 on a problem
  symroute explain 10.2.0.2 192.0.2.7
                                  which rule, table and route a packet from 10.2.0.2
                                  to 192.0.2.7 takes, and whether that is symmetric

EXIT STATUS:
  0  done, nothing to do, or nothing wrong
  1  failure (unknown interface, table owned by someone else, kernel refused a change,
     doctor found a problem, the run lock still held after 5 s, sync or flush without
     CAP_NET_ADMIN: they must run as root; status, plan, doctor, explain need not)
  2  usage error (bad arguments, or a configuration file that is broken, too large, or
     owned or writable by anyone but root)

ENVIRONMENT:
  SYMROUTE_LOG=stderr|syslog  where log lines go (default: stderr always, and changes,
                              warnings and errors also to syslog with identifier
                              `symroute` for audit; `stderr`: stderr only)

FILES:
  /etc/symroute/symroute.toml configuration (every key optional; docs/configuration.md)
  /run/symroute/lock          serializes sync and flush with the hook and the daemon";

#[derive(Parser, Debug)]
#[command(
    name = "symroute",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_long_help = AFTER_HELP,
    propagate_version = true
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Command,

    #[command(flatten)]
    pub common: CommonFlags,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Show each interface's table, rules, routes and covered addresses, whether it is in
    /// sync (else the pending changes), anything stale or foreign in the way, and with
    /// [health] each uplink's health and the steering; pending is exactly what `sync` would
    /// write (the same plan), and what `sync` would refuse is named
    Status {
        /// Only this interface (exemptions and stale state are still shown)
        #[arg(value_name = "INTERFACE")]
        interface: Option<String>,
        /// Print JSON (one document; shape in docs/cli.md)
        #[arg(short, long)]
        json: bool,
        /// Indent the JSON
        #[arg(short, long, requires = "json")]
        pretty: bool,
    },
    /// Print the changes a sync would make, one per line, and change nothing; with [health],
    /// comment lines first show the section and what the steering decides
    Plan {
        /// Only this interface [default: all, including state of vanished interfaces]
        #[arg(value_name = "INTERFACE")]
        interface: Option<String>,
    },
    /// Make the tables and rules what they should be
    Sync {
        /// Only this interface [default: all, including state of vanished interfaces]
        #[arg(value_name = "INTERFACE")]
        interface: Option<String>,
    },
    /// Remove symroute's rules and table routes, and its nftables table (of all interfaces:
    /// the uninstall path)
    Flush {
        /// Only this interface's rules and table [default: everything of symroute's]
        #[arg(value_name = "INTERFACE")]
        interface: Option<String>,
    },
    /// Check the host around symroute (sync state, tables, shadowing rules, where the kernel
    /// sends replies from the uplinks' addresses, rp_filter, ARP, systemd-networkd, event
    /// integrations, uplink health); exit 1 when something is wrong
    Doctor {
        /// Print JSON (shape in docs/cli.md)
        #[arg(short, long)]
        json: bool,
        /// Indent the JSON
        #[arg(short, long, requires = "json")]
        pretty: bool,
    },
    /// Ask the kernel which rule, table and route a packet from FROM to TO takes, and
    /// whether it leaves through the interface that owns FROM
    Explain {
        /// Source address of the packet
        #[arg(value_name = "FROM")]
        from: IpAddr,
        /// Destination address of the packet
        #[arg(value_name = "TO")]
        to: IpAddr,
        /// The packet enters through this interface (forwarded or DNAT'ed traffic) instead of
        /// being sent by the host itself
        #[arg(long, value_name = "INTERFACE")]
        iif: Option<String>,
        /// Print JSON (shape in docs/cli.md)
        #[arg(short, long)]
        json: bool,
        /// Indent the JSON
        #[arg(short, long, requires = "json")]
        pretty: bool,
    },
}

impl Command {
    /// The command as typed (`symroute sync`) when it changes the network, which takes
    /// `CAP_NET_ADMIN`; `None` for the commands that only read.
    pub fn writes(&self) -> Option<&'static str> {
        match self {
            Command::Sync { .. } => Some("symroute sync"),
            Command::Flush { .. } => Some("symroute flush"),
            Command::Status { .. }
            | Command::Plan { .. }
            | Command::Doctor { .. }
            | Command::Explain { .. } => None,
        }
    }
}
