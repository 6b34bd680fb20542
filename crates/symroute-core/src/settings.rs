//! The numbers and policies symroute works with. Every one has a default; zero configuration
//! is the norm (see `config.rs` for the file that changes them).

use std::collections::BTreeMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::glob::glob_match;
use crate::model::Family;
use crate::route_metrics::RouteMetrics;

/// Protocol number symroute tags its rules and routes with (`symroute` in
/// `/etc/iproute2/rt_protos.d/symroute.conf`). Unassigned in `rtnetlink.h`.
pub const DEFAULT_PROTOCOL: u8 = 83;
pub const DEFAULT_TABLE_BASE: u32 = 1000;
/// After the local table (0), before main (32766).
pub const DEFAULT_RULE_PRIORITY: u32 = 32000;
/// The packet and connection mark bits `iif_rules` uses: the top byte. The low two bytes are
/// where administrators and Kubernetes (kube-proxy 0x4000/0x8000, Calico's defaults, Istio
/// 0x539, Cilium 0xf00) put theirs, the third byte is Tailscale's (0xff0000).
pub const DEFAULT_FWMARK_MASK: u32 = 0xff00_0000;

/// An address prefix with its host bits cleared.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Prefix {
    pub addr: IpAddr,
    pub len: u8,
}

impl Prefix {
    /// The prefix of length `len` containing `addr`.
    pub fn new(addr: IpAddr, len: u8) -> Prefix {
        let addr = match addr {
            IpAddr::V4(a) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(len.min(32)))
                    .unwrap_or(0);
                IpAddr::V4(Ipv4Addr::from(u32::from(a) & mask))
            }
            IpAddr::V6(a) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(len.min(128)))
                    .unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(a) & mask))
            }
        };
        Prefix { addr, len }
    }

    pub fn family(&self) -> Family {
        Family::of(&self.addr)
    }

    pub fn contains(&self, addr: &IpAddr) -> bool {
        Family::of(addr) == self.family() && Prefix::new(*addr, self.len) == *self
    }
}

impl fmt::Display for Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.len)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Interface with index N gets table `table_base + N`.
    pub table_base: u32,
    /// Priority of our `from` rules: where they go unless a catch-all rule of another tool
    /// comes first (`plan/placement.rs`), then just before it.
    pub rule_priority: u32,
    /// `rule_priority` was configured: it is kept whatever other tools' rules do.
    pub rule_priority_fixed: bool,
    /// Ownership mark on rules and routes: nothing without it is ever changed.
    pub protocol: u8,
    pub ipv4: bool,
    pub ipv6: bool,
    /// Interface name patterns (`*`, `?`) to manage; empty means all.
    pub include: Vec<String>,
    /// Interface name patterns never to manage; wins over `include`.
    pub exclude: Vec<String>,
    /// One rule per connected subnet instead of per address.
    pub prefix_rules: bool,
    /// Connections entering IF are marked (conntrack), and their answers, wherever they come
    /// from (a LAN, a container, the host itself), are routed by IF's table: forwarded and
    /// DNAT'ed traffic is answered through the interface it came in through.
    pub iif_rules: bool,
    /// The mark bits `iif_rules` owns, in packet marks and conntrack marks alike; interface N
    /// is marked with N written into these bits ([`Settings::mark_for`]).
    pub fwmark_mask: u32,
    /// Destinations always looked up in main (`to PREFIX lookup main`, just before ours).
    pub exempt: Vec<Prefix>,
    /// Each table ends in `unreachable default`: traffic from IF's addresses never leaks
    /// through another uplink.
    pub strict: bool,
    /// Name the tables `symroute-IF` in `/etc/iproute2/rt_tables.d/symroute.conf`.
    pub table_names: bool,
    /// Where symrouted writes its node_exporter textfile; `None`: not at all.
    pub metrics_textfile: Option<std::path::PathBuf>,
    /// How often symrouted checks its event path with a full run; `None`: never.
    pub verify_interval: Option<std::time::Duration>,
    /// Metrics set on every mirrored route (`route_metrics`), under those of the interface
    /// the route leaves through.
    pub route_metrics: RouteMetrics,
    /// Settings of single interfaces (`[interface.NAME]`), by name.
    pub interfaces: BTreeMap<String, InterfaceSettings>,
    /// `[health]`: probe the uplinks and steer new outbound traffic; `None`: neither.
    pub health: Option<crate::health::HealthSettings>,
}

/// What `[interface.NAME]` sets for one interface.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InterfaceSettings {
    /// Metrics of the mirrored routes that leave through it, over the global ones.
    pub route_metrics: RouteMetrics,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            table_base: DEFAULT_TABLE_BASE,
            rule_priority: DEFAULT_RULE_PRIORITY,
            rule_priority_fixed: false,
            protocol: DEFAULT_PROTOCOL,
            ipv4: true,
            ipv6: true,
            include: Vec::new(),
            exclude: Vec::new(),
            prefix_rules: false,
            iif_rules: false,
            fwmark_mask: DEFAULT_FWMARK_MASK,
            exempt: Vec::new(),
            strict: false,
            table_names: false,
            metrics_textfile: None,
            route_metrics: RouteMetrics::default(),
            interfaces: BTreeMap::new(),
            health: None,
            verify_interval: Some(std::time::Duration::from_secs(600)),
        }
    }
}

impl Settings {
    pub fn table_for(&self, ifindex: u32) -> u32 {
        self.table_base.saturating_add(ifindex)
    }

    /// The interface index whose table this is, if it is in symroute's range.
    pub fn interface_of_table(&self, table: u32) -> Option<u32> {
        table.checked_sub(self.table_base).filter(|i| *i > 0)
    }

    pub fn family_enabled(&self, family: Family) -> bool {
        match family {
            Family::V4 => self.ipv4,
            Family::V6 => self.ipv6,
        }
    }

    /// Whether `include`/`exclude` let symroute manage the interface called `name`.
    pub fn manages(&self, name: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|p| glob_match(p, name)))
            && !self.exclude.iter().any(|p| glob_match(p, name))
    }

    /// The `include` and `exclude` patterns that both match `name`, when `include` names it
    /// explicitly (is not empty) and `exclude` still leaves it out: a contradiction the admin
    /// should hear about, not a silently unmanaged interface.
    pub fn included_and_excluded(&self, name: &str) -> Option<(&str, &str)> {
        let include = self.include.iter().find(|p| glob_match(p, name))?;
        let exclude = self.exclude.iter().find(|p| glob_match(p, name))?;
        Some((include, exclude))
    }

    /// The metrics of a mirrored route leaving through the interface called `name`: its
    /// `[interface.NAME]` ones over the global ones.
    pub fn route_metrics_for(&self, name: &str) -> RouteMetrics {
        match self.interfaces.get(name) {
            Some(interface) => self.route_metrics.overlaid(&interface.route_metrics),
            None => self.route_metrics.clone(),
        }
    }

    /// Whether any route metric is set anywhere (else mirroring skips looking).
    pub fn sets_route_metrics(&self) -> bool {
        !self.route_metrics.is_empty()
            || self
                .interfaces
                .values()
                .any(|i| !i.route_metrics.is_empty())
    }

    /// Priority of the exemption rules: just before ours, so they win.
    pub fn exempt_priority(&self) -> u32 {
        self.rule_priority.saturating_sub(1)
    }

    /// Priority of the `fwmark` rules of `iif_rules`: before the exemptions and the `from`
    /// rules, so that a marked answer follows the interface its connection came in through,
    /// whatever its source address, and so that the order never depends on which rule
    /// happened to be added first.
    pub fn mark_priority(&self) -> u32 {
        self.rule_priority.saturating_sub(2)
    }

    /// The highest interface index that [`Settings::mark_for`] can express:
    /// `2^(bits in fwmark_mask) - 1`.
    pub fn mark_capacity(&self) -> u32 {
        u32::try_from((1u64 << self.fwmark_mask.count_ones()) - 1).unwrap_or(u32::MAX)
    }

    /// The mark of the interface with index `ifindex`: the bits of `ifindex`, lowest first,
    /// spread over the bits of `fwmark_mask`, lowest first (with the default mask,
    /// `ifindex << 24`). `None` for an index that does not fit.
    pub fn mark_for(&self, ifindex: u32) -> Option<u32> {
        if ifindex == 0 || ifindex > self.mark_capacity() {
            return None;
        }
        let mut mark = 0;
        let mut rest = ifindex;
        let mut mask = self.fwmark_mask;
        while rest != 0 && mask != 0 {
            let bit = mask & mask.wrapping_neg();
            if rest & 1 == 1 {
                mark |= bit;
            }
            rest >>= 1;
            mask &= !bit;
        }
        Some(mark)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn include_and_exclude() {
        let mut s = Settings::default();
        assert!(s.manages("eth0"));
        s.include = vec!["eth*".into()];
        s.exclude = vec!["eth9".into()];
        assert!(s.manages("eth0") && !s.manages("eth9") && !s.manages("wlan0"));
        assert_eq!(s.included_and_excluded("eth9"), Some(("eth*", "eth9")));
        assert_eq!(s.included_and_excluded("eth0"), None);
        s.include.clear();
        assert_eq!(
            s.included_and_excluded("eth9"),
            None,
            "not included by name"
        );
    }

    #[test]
    fn marks_spread_the_index_over_the_mask() {
        let s = Settings::default();
        assert_eq!(s.mark_capacity(), 255);
        assert_eq!(s.mark_for(3), Some(0x0300_0000));
        assert_eq!(s.mark_for(255), Some(0xff00_0000));
        assert_eq!(s.mark_for(256), None);
        assert_eq!(s.mark_for(0), None);
        assert_eq!(s.mark_priority(), 31998);
        // A mask with gaps: bits 12-13 and 24-25 hold the index 0b1111 = 15.
        let s = Settings {
            fwmark_mask: 0x0300_3000,
            ..Settings::default()
        };
        assert_eq!(s.mark_capacity(), 15);
        assert_eq!(s.mark_for(1), Some(0x0000_1000));
        assert_eq!(s.mark_for(0b0110), Some(0x0100_2000));
        assert_eq!(s.mark_for(15), Some(0x0300_3000));
        assert_eq!(s.mark_for(16), None);
        let all = Settings {
            fwmark_mask: u32::MAX,
            ..Settings::default()
        };
        assert_eq!(all.mark_capacity(), u32::MAX);
        assert_eq!(all.mark_for(0x1234_5678), Some(0x1234_5678));
    }

    #[test]
    fn prefixes() {
        let p = Prefix::new("10.2.0.9".parse().unwrap(), 24);
        assert_eq!(p.to_string(), "10.2.0.0/24");
        assert!(p.contains(&"10.2.0.200".parse().unwrap()));
        assert!(!p.contains(&"10.3.0.1".parse().unwrap()));
        assert_eq!(
            Prefix::new("fd02::2".parse().unwrap(), 64).to_string(),
            "fd02::/64"
        );
        assert_eq!(
            Prefix::new("1.2.3.4".parse().unwrap(), 0).to_string(),
            "0.0.0.0/0"
        );
    }
}
