//! Facts about the host that the kernel's routing state does not hold: sysctls,
//! systemd-networkd's configuration, installed integrations, table names. Read by
//! `kernel::host`, judged by `views::doctor`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{Answer, NftInstalled, Probe};

/// Settings of one `net.ipv4.conf.NAME` (`NAME` = `all`, `default` or an interface), and
/// `net.ipv6.conf.NAME.forwarding`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Conf {
    pub rp_filter: Option<u32>,
    pub arp_announce: Option<u32>,
    pub arp_ignore: Option<u32>,
    pub arp_filter: Option<u32>,
    pub forwarding: Option<u32>,
    pub ipv6_forwarding: Option<u32>,
}

/// systemd-networkd on this host.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Networkd {
    /// Its binary, when installed.
    pub binary: Option<PathBuf>,
    /// Running now, or enabled to start at boot.
    pub active: bool,
    /// networkd.conf and its drop-ins, in the order networkd applies them, with their text.
    pub files: Vec<(PathBuf, String)>,
}

/// An installed file that runs symroute on events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub path: PathBuf,
    pub mode: u32,
    pub uid: u32,
    /// The program the script calls (`HOOK=...`), and whether it is executable.
    pub calls: Option<(PathBuf, bool)>,
}

/// Facts about the host that the kernel snapshot does not hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostFacts {
    /// `net.ipv4.conf.*`, by name.
    pub conf: BTreeMap<String, Conf>,
    pub networkd: Networkd,
    pub nm_dispatcher: Vec<Installed>,
    pub networkd_dispatcher: Vec<Installed>,
    pub daemon_unit: Vec<PathBuf>,
    /// Table names from iproute2's `rt_tables` files other than symroute's own:
    /// `(table, name, file)`.
    pub table_names: Vec<(u32, String, PathBuf)>,
    /// `/usr/sbin/nft` is installed (`iif_rules` needs it to write its table).
    pub nft_binary: bool,
    /// `table inet symroute` as the kernel has it; `None` when it could not be read (that
    /// needs CAP_NET_ADMIN, so the caller fills it in: [`HostFacts::read`] reads files only).
    pub nft_table: Option<NftInstalled>,
    /// DNAT rules in nftables or legacy iptables (`kernel::nat::read`); `None`
    /// when they could not be read (root only, so the caller fills it in too).
    pub nat: Option<Nat>,
    /// The kernel's route lookups of the host's replies from its uplinks' addresses
    /// (`views::replies::probes`), one per probe; `None` when they were not asked.
    pub replies: Option<Vec<(Probe, Answer)>>,
    /// What `[health]` depends on ([`HealthFacts`]).
    pub health: HealthFacts,
}

/// What `[health]` needs of the host besides the daemon's configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthFacts {
    /// A process named `symrouted` runs (in this PID namespace).
    pub daemon_running: bool,
    /// `net.ipv4.ping_group_range` (it governs IPv6 ping sockets too).
    pub ping_group_range: Option<(u32, u32)>,
    /// `net.ipv4.fib_multipath_hash_policy` and its IPv6 twin.
    pub multipath_hash_policy: (Option<u32>, Option<u32>),
}

/// What the host's NAT configuration looks like, as far as it can be seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Nat {
    /// nftables tables (iptables-nft's included, `ip nat`) with a `dnat`/`redirect`
    /// statement, as `family name`.
    pub dnat_tables: Vec<String>,
    /// A legacy (x_tables) `nat` table is loaded: its rules are invisible to nftables.
    pub legacy_nat: bool,
}

impl Nat {
    pub fn dnat_seen(&self) -> bool {
        !self.dnat_tables.is_empty() || self.legacy_nat
    }
}
