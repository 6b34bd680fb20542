//! A route lookup asked of the kernel (`symroute explain`, `doctor`'s `replies` check) and
//! its answer.

use std::net::IpAddr;

use super::Route;

/// The packet to explain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    pub from: IpAddr,
    pub to: IpAddr,
    /// The interface the packet enters through (forwarded traffic); `None` for a packet the
    /// host sends itself.
    pub iif: Option<String>,
    /// The packet's mark (`fwmark`); 0 for none. The answer of a connection that came in
    /// through an interface marked by `iif_rules` carries that interface's mark.
    pub mark: u32,
}

/// A reply of the host to ask the kernel about: from an address of the uplink `owner`
/// (its index) to a peer beyond it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    pub owner: u32,
    pub query: Query,
}

/// What the kernel answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Route {
        /// The table the lookup ended in.
        table: u32,
        /// The route type of the result (unicast, local, ...).
        kind: u8,
        /// The entry of `table` that matched (`RTM_F_FIB_MATCH`), when the kernel gave it.
        matched: Option<Route>,
        oif: Option<u32>,
        gateway: Option<IpAddr>,
        prefsrc: Option<IpAddr>,
    },
    /// The lookup failed (unreachable, prohibited, no route, source not local...).
    Failed { errno: i32 },
}
