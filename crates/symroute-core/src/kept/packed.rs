//! The common route of a large table in 28 bytes instead of 64: IPv4, one way out (or none),
//! no preferred source, metrics or router preference. That is every route of a BGP-fed IPv4
//! main and of its copies, so a model of a million-route main and its mirror holds 56 MB of
//! routes, not 128 (docs/design.md, "The daemon's event path"). Any other route is kept
//! whole beside it.

use std::net::{IpAddr, Ipv4Addr};

use crate::model::{Extras, NextHop, NextHops, Route};

const HAS_GATEWAY: u8 = 1;
const ONLINK: u8 = 2;
const HAS_HOP: u8 = 4;

/// A packed route; `table` 0 is a free slot (no route lives in table 0).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Packed {
    pub(super) table: u32,
    metric: u32,
    ifindex: u32,
    dst: [u8; 4],
    gateway: [u8; 4],
    dst_len: u8,
    tos: u8,
    protocol: u8,
    scope: u8,
    kind: u8,
    flags: u8,
}

impl Packed {
    /// `route` packed, when it is of the common kind; `None` keeps it whole.
    pub(super) fn of(route: &Route) -> Option<Packed> {
        let IpAddr::V4(dst) = route.dst else {
            return None;
        };
        if route.pref.is_some()
            || route.pref_src().is_some()
            || !route.metrics().is_empty()
            || route.congctl().is_some()
        {
            return None;
        }
        let (ifindex, gateway, flags) = match route.nexthops.as_slice() {
            [] => (0, [0; 4], 0),
            [hop] if hop.hops == 0 => {
                let onlink = if hop.onlink { ONLINK } else { 0 };
                match hop.gateway {
                    None => (hop.ifindex, [0; 4], HAS_HOP | onlink),
                    Some(IpAddr::V4(gw)) => {
                        (hop.ifindex, gw.octets(), HAS_HOP | HAS_GATEWAY | onlink)
                    }
                    Some(IpAddr::V6(_)) => return None,
                }
            }
            _ => return None,
        };
        Some(Packed {
            table: route.table,
            metric: route.metric,
            ifindex,
            dst: dst.octets(),
            gateway,
            dst_len: route.dst_len,
            tos: route.tos,
            protocol: route.protocol,
            scope: route.scope,
            kind: route.kind,
            flags,
        })
    }

    /// The route again, exactly as it was packed.
    pub(super) fn route(&self) -> Route {
        let hop = (self.flags & HAS_HOP != 0).then(|| NextHop {
            ifindex: self.ifindex,
            gateway: (self.flags & HAS_GATEWAY != 0)
                .then(|| IpAddr::V4(Ipv4Addr::from(self.gateway))),
            hops: 0,
            onlink: self.flags & ONLINK != 0,
        });
        Route {
            table: self.table,
            dst: IpAddr::V4(Ipv4Addr::from(self.dst)),
            dst_len: self.dst_len,
            tos: self.tos,
            metric: self.metric,
            protocol: self.protocol,
            scope: self.scope,
            kind: self.kind,
            pref: None,
            extras: Extras::default(),
            nexthops: NextHops::from(hop),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MAIN_TABLE;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_packed_route_comes_back_as_it_was_and_others_stay_whole() {
        assert_eq!(std::mem::size_of::<Packed>(), 28);
        let plain = Route::unicast(MAIN_TABLE, ip("192.0.2.0"), 24).via(ip("10.1.0.1"), 2);
        let mut onlink = plain.clone();
        onlink.nexthops[0].onlink = true;
        onlink.metric = 100;
        onlink.protocol = 186;
        let direct = Route::unicast(1003, ip("10.2.0.0"), 24).dev(3);
        let mut unreachable = Route::unicast(MAIN_TABLE, ip("198.51.100.0"), 24);
        unreachable.kind = 7;
        for route in [plain.clone(), onlink, direct, unreachable] {
            let packed = Packed::of(&route).expect("packs");
            assert_eq!(packed.route(), route);
        }
        let v6 = Route::unicast(MAIN_TABLE, ip("2001:db8::"), 64).via(ip("fe80::1"), 2);
        let with_source = plain.clone().with_pref_src(ip("10.1.0.2"));
        let multipath = Route::unicast(MAIN_TABLE, ip("192.0.2.0"), 24).multipath(vec![
            NextHop::via(ip("10.1.0.1"), 2),
            NextHop::via(ip("10.2.0.1"), 3),
        ]);
        let mut weighted = plain;
        weighted.nexthops[0].hops = 1;
        for route in [v6, with_source, multipath, weighted] {
            assert_eq!(Packed::of(&route), None, "{route:?}");
        }
    }
}
