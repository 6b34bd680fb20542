//! The numbers symroute works with. Every one has a default; zero configuration is the norm.

use crate::model::Family;

/// Protocol number symroute tags its rules and routes with (`symroute` in
/// `/etc/iproute2/rt_protos.d/symroute.conf`). Unassigned in `rtnetlink.h`.
pub const DEFAULT_PROTOCOL: u8 = 83;
pub const DEFAULT_TABLE_BASE: u32 = 1000;
/// After the local table (0), before main (32766).
pub const DEFAULT_RULE_PRIORITY: u32 = 32000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Interface with index N gets table `table_base + N`.
    pub table_base: u32,
    pub rule_priority: u32,
    /// Ownership mark on rules and routes: nothing without it is ever changed.
    pub protocol: u8,
    pub ipv4: bool,
    pub ipv6: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            table_base: DEFAULT_TABLE_BASE,
            rule_priority: DEFAULT_RULE_PRIORITY,
            protocol: DEFAULT_PROTOCOL,
            ipv4: true,
            ipv6: true,
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
}
