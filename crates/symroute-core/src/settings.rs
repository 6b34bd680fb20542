//! The numbers and policies symroute works with. Every one has a default; zero configuration
//! is the norm (see `config.rs` for the file that changes them).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::model::Family;

/// Protocol number symroute tags its rules and routes with (`symroute` in
/// `/etc/iproute2/rt_protos.d/symroute.conf`). Unassigned in `rtnetlink.h`.
pub const DEFAULT_PROTOCOL: u8 = 83;
pub const DEFAULT_TABLE_BASE: u32 = 1000;
/// After the local table (0), before main (32766).
pub const DEFAULT_RULE_PRIORITY: u32 = 32000;

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
    pub rule_priority: u32,
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
    /// Also `iif IF lookup T`, so forwarded and DNAT'ed traffic is answered through IF.
    pub iif_rules: bool,
    /// Destinations always looked up in main (`to PREFIX lookup main`, just before ours).
    pub exempt: Vec<Prefix>,
    /// Each table ends in `unreachable default`: traffic from IF's addresses never leaks
    /// through another uplink.
    pub strict: bool,
    /// Name the tables `symroute-IF` in `/etc/iproute2/rt_tables.d/symroute.conf`.
    pub table_names: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            table_base: DEFAULT_TABLE_BASE,
            rule_priority: DEFAULT_RULE_PRIORITY,
            protocol: DEFAULT_PROTOCOL,
            ipv4: true,
            ipv6: true,
            include: Vec::new(),
            exclude: Vec::new(),
            prefix_rules: false,
            iif_rules: false,
            exempt: Vec::new(),
            strict: false,
            table_names: false,
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

    /// Priority of the exemption rules: just before ours, so they win.
    pub fn exempt_priority(&self) -> u32 {
        self.rule_priority.saturating_sub(1)
    }
}

/// Shell-style matching with `*` (any run) and `?` (one character), as in `ip link` globs
/// and networkd's `Name=`.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut pi, mut ni) = (0, 0);
    let mut backtrack: Option<(usize, usize)> = None;
    while ni < n.len() {
        match p.get(pi) {
            Some('*') => {
                backtrack = Some((pi, ni));
                pi += 1;
            }
            Some(c) if *c == '?' || *c == n[ni] => {
                pi += 1;
                ni += 1;
            }
            _ => match backtrack {
                Some((bp, bn)) => {
                    pi = bp + 1;
                    ni = bn + 1;
                    backtrack = Some((bp, bn + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("eth*", "eth0"));
        assert!(glob_match("eth*", "eth"));
        assert!(glob_match("*", "anything"));
        assert!(glob_match("wl?0", "wlp0"));
        assert!(glob_match("*.100", "eth0.100"));
        assert!(glob_match("e*h*1", "eth1"));
        assert!(!glob_match("eth?", "eth10"));
        assert!(!glob_match("docker*", "eth0"));
    }

    #[test]
    fn include_and_exclude() {
        let mut s = Settings::default();
        assert!(s.manages("eth0"));
        s.include = vec!["eth*".into()];
        s.exclude = vec!["eth9".into()];
        assert!(s.manages("eth0") && !s.manages("eth9") && !s.manages("wlan0"));
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
