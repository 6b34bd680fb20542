//! The host's replies from its uplinks' addresses as the kernel routes them: `doctor`'s
//! `replies` check.
//!
//! A reply from an address of uplink X to a peer beyond X must leave through X: out of
//! another uplink a strict router drops it, into a tunnel it never reaches the peer. Rules
//! and routes of others (wg-quick's `not fwmark 51820 lookup 51820`, Tailscale's table 52, a
//! VPN's routes copied into X's table) can send it elsewhere however our own rules look, so
//! the kernel's own lookup decides. Which replies to ask about is chosen here ([`probes`]),
//! the kernel layer asks them, and [`judge`] reads the answers: this module stays pure.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::model::uplinks::Uplinks;
pub use crate::model::Probe;
use crate::model::{link_name, route_type, Answer, Family, Link, Query, Route, Rule, Snapshot};
use crate::settings::Settings;
use crate::views::rule_walk::{deciding_rule, is_wide};

/// A peer beyond every uplink (documentation addresses: a lookup only, nothing is sent).
const FAR_V4: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
const FAR_V6: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1);
/// At most this many destinations per family besides the far peer.
const MAX_DERIVED: usize = 8;

/// A host address inside `prefix` (the middle of it), for a route of prefix length `len`.
fn inside(dst: IpAddr, len: u8) -> IpAddr {
    match dst {
        IpAddr::V4(a) => {
            let base = u32::from(a);
            let half = 1u32.checked_shl(31 - u32::from(len.min(31))).unwrap_or(0);
            IpAddr::V4(Ipv4Addr::from(base | half | 1))
        }
        IpAddr::V6(a) => {
            let base = u128::from(a);
            let half = 1u128
                .checked_shl(127 - u32::from(len.min(127)))
                .unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(base | half | 1))
        }
    }
}

fn is_tunnel(links: &[Link], ifindex: u32) -> bool {
    links.iter().any(|l| l.index == ifindex && l.tunnel)
}

/// Peers to ask about for `family`: the far peer, and one inside each wide route (a large
/// share of the address space, [`is_wide`]) of any table that goes into a tunnel or out of
/// an uplink, widest first: those are the routes that can take a reply elsewhere.
fn peers(snapshot: &Snapshot, uplinks: &Uplinks, family: Family) -> Vec<IpAddr> {
    let mut wide: Vec<&Route> = snapshot
        .main_routes
        .iter()
        .chain(snapshot.tables.values().flatten())
        .filter(|r| {
            r.family() == family
                && r.kind == route_type::UNICAST
                && r.dst_len > 0
                && is_wide(family, r.dst_len)
                && r.nexthops.iter().any(|nh| {
                    is_tunnel(&snapshot.links, nh.ifindex) || uplinks.is_uplink(family, nh.ifindex)
                })
        })
        .collect();
    wide.sort_by_key(|r| r.dst_len);
    let mut out = vec![match family {
        Family::V4 => IpAddr::V4(FAR_V4),
        Family::V6 => IpAddr::V6(FAR_V6),
    }];
    for route in wide {
        let peer = inside(route.dst, route.dst_len);
        if !out.contains(&peer) && out.len() <= MAX_DERIVED {
            out.push(peer);
        }
    }
    out
}

/// The replies to ask the kernel about: from every address that wants a rule on a managed
/// uplink of its family, to each of that family's peers. A reply the host sends carries no
/// mark and no input interface (an output lookup, as `ip route get PEER from ADDRESS`).
pub fn probes(snapshot: &Snapshot, uplinks: &Uplinks, settings: &Settings) -> Vec<Probe> {
    let mut out = Vec::new();
    for family in [Family::V4, Family::V6] {
        if !settings.family_enabled(family) {
            continue;
        }
        let peers = peers(snapshot, uplinks, family);
        for address in &snapshot.addresses {
            let managed = snapshot
                .link(address.ifindex)
                .is_some_and(|l| !l.loopback && settings.manages(&l.name));
            if Family::of(&address.addr) != family
                || !address.wants_rule()
                || !managed
                || !uplinks.is_uplink(family, address.ifindex)
            {
                continue;
            }
            out.extend(peers.iter().map(|peer| Probe {
                owner: address.ifindex,
                query: Query {
                    from: address.addr,
                    to: *peer,
                    iif: None,
                    mark: 0,
                },
            }));
        }
    }
    out
}

/// Where one reply went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Egress {
    /// Out of the uplink that owns the address.
    Own,
    /// Out of another uplink.
    OtherUplink,
    /// Into a tunnel.
    Tunnel,
    /// Into a network behind the host that holds the peer (a LAN route covers it): the
    /// probe says nothing about replies beyond the uplink.
    Behind,
    /// Delivered locally (the peer is an address of the host).
    Local,
    /// The lookup failed (errno), or ended in a blackhole/unreachable/prohibit route.
    NoRoute(Option<i32>),
}

/// The kernel's answer for one [`Probe`], judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub owner: String,
    pub query: Query,
    pub egress: Egress,
    pub dev: Option<String>,
    pub gateway: Option<IpAddr>,
    /// The table the lookup ended in.
    pub table: Option<u32>,
    /// The rule that led there ([`deciding_rule`]).
    pub rule: Option<Rule>,
    /// The table entry that matched.
    pub route: Option<Route>,
}

impl Reply {
    /// Whether the reply leaves somewhere it must not.
    pub fn is_wrong(&self) -> bool {
        matches!(self.egress, Egress::OtherUplink | Egress::Tunnel)
    }
}

/// Judges the kernel's `answers`, one per probe of [`probes`] (in any order).
pub fn judge(snapshot: &Snapshot, uplinks: &Uplinks, answers: &[(Probe, Answer)]) -> Vec<Reply> {
    let links = &snapshot.links;
    answers
        .iter()
        .map(|(probe, answer)| {
            let family = Family::of(&probe.query.to);
            let mut reply = Reply {
                owner: link_name(links, probe.owner),
                query: probe.query.clone(),
                egress: Egress::NoRoute(None),
                dev: None,
                gateway: None,
                table: None,
                rule: None,
                route: None,
            };
            let Answer::Route {
                table,
                kind,
                matched,
                oif,
                gateway,
                ..
            } = answer
            else {
                if let Answer::Failed { errno } = answer {
                    reply.egress = Egress::NoRoute(Some(*errno));
                }
                return reply;
            };
            reply.table = Some(*table);
            reply.rule = deciding_rule(snapshot, &probe.query, *table).cloned();
            reply.route = matched.clone();
            reply.dev = oif.map(|i| link_name(links, i));
            reply.gateway = *gateway;
            reply.egress = match (*kind, *oif) {
                (route_type::LOCAL, _) => Egress::Local,
                (route_type::UNICAST, Some(oif)) if oif == probe.owner => Egress::Own,
                (route_type::UNICAST, Some(oif)) if is_tunnel(links, oif) => Egress::Tunnel,
                (route_type::UNICAST, Some(oif)) if uplinks.is_uplink(family, oif) => {
                    Egress::OtherUplink
                }
                (route_type::UNICAST, Some(_)) if gateway.is_some() => Egress::OtherUplink,
                (route_type::UNICAST, Some(_)) => Egress::Behind,
                _ => Egress::NoRoute(None),
            };
            reply
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{host, ip, route, synced, through, tunnel, with_wg_quick, ETH0, ETH1};
    use crate::model::{Rule, MAIN_TABLE};

    const WG0: u32 = 5;

    fn wg_quick(settings: &Settings) -> Snapshot {
        with_wg_quick(synced(host(), settings), WG0)
    }

    #[test]
    fn every_uplink_address_is_asked_about_the_far_peer() {
        let settings = Settings::default();
        let snap = synced(host(), &settings);
        let asked: Vec<(u32, String, String)> =
            probes(&snap, &Uplinks::of(&snap, settings.protocol), &settings)
                .into_iter()
                .map(|p| (p.owner, p.query.from.to_string(), p.query.to.to_string()))
                .collect();
        assert_eq!(
            asked,
            [
                (ETH0, "10.1.0.2".into(), "192.0.2.1".into()),
                (ETH1, "10.2.0.2".into(), "192.0.2.1".into()),
            ]
        );
    }

    #[test]
    fn wide_routes_into_tunnels_add_peers_inside_them() {
        let settings = Settings::default();
        let mut snap = synced(host(), &settings);
        snap.links.push(tunnel(6, "tun0"));
        snap.tables.entry(1003).or_default().extend([
            route(1003, "0.0.0.0", 1, None, 6, 83),
            route(1003, "10.0.0.0", 8, None, 6, 83),
        ]);
        let to: Vec<String> = probes(&snap, &Uplinks::of(&snap, settings.protocol), &settings)
            .into_iter()
            .filter(|p| p.owner == ETH1)
            .map(|p| p.query.to.to_string())
            .collect();
        // 10.0.0.0/8 is a site-to-site network, not a way out: not asked about.
        assert_eq!(to, ["192.0.2.1", "64.0.0.1"]);
        assert_eq!(inside(ip("2000::"), 4), ip("2800::1"));
        assert_eq!(inside(ip("fc00::"), 7), ip("fd00::1"));
        assert_eq!(inside(ip("::"), 3), ip("1000::1"));
    }

    #[test]
    fn replies_into_a_tunnel_or_out_of_another_uplink_are_wrong() {
        let settings = Settings::default();
        let snap = wg_quick(&settings);
        let probes = probes(&snap, &Uplinks::of(&snap, settings.protocol), &settings);
        let default_wg0 = route(51820, "0.0.0.0", 0, None, WG0, 3);
        let answers: Vec<(Probe, Answer)> = probes
            .iter()
            .map(|p| (p.clone(), through(51820, WG0, None, default_wg0.clone())))
            .collect();
        let replies = judge(
            &snap,
            &Uplinks::of(&snap, Settings::default().protocol),
            &answers,
        );
        // eth0, eth1 and wg0 itself: a full tunnel is an uplink, its address is managed.
        assert_eq!(replies.len(), 3);
        let eth1 = &replies[1];
        assert_eq!(eth1.owner, "eth1");
        let wg0 = &replies[2];
        assert_eq!((wg0.owner.as_str(), wg0.is_wrong()), ("wg0", false));
        assert_eq!(eth1.egress, Egress::Tunnel);
        assert!(eth1.is_wrong());
        assert_eq!(eth1.dev.as_deref(), Some("wg0"));
        assert_eq!(
            eth1.rule.as_ref().map(Rule::to_string).as_deref(),
            Some("not from all fwmark 0xca6c lookup 51820 priority 31999")
        );

        let snap = synced(host(), &settings);
        let probe = Probe {
            owner: ETH1,
            query: probes[1].query.clone(),
        };
        let via_eth0 = route(MAIN_TABLE, "0.0.0.0", 0, Some("10.1.0.1"), ETH0, 4);
        let out_eth0 = through(MAIN_TABLE, ETH0, Some("10.1.0.1"), via_eth0);
        let replies = judge(
            &snap,
            &Uplinks::of(&snap, Settings::default().protocol),
            &[(probe.clone(), out_eth0)],
        );
        assert_eq!(replies[0].egress, Egress::OtherUplink);
        assert_eq!(
            replies[0].rule.as_ref().map(Rule::to_string).as_deref(),
            Some("from all lookup main priority 32766")
        );

        let ours = route(1003, "0.0.0.0", 0, Some("10.2.0.1"), ETH1, 83);
        let out_eth1 = through(1003, ETH1, Some("10.2.0.1"), ours);
        let replies = judge(
            &snap,
            &Uplinks::of(&snap, Settings::default().protocol),
            &[(probe.clone(), out_eth1)],
        );
        assert_eq!(replies[0].egress, Egress::Own);
        assert!(!replies[0].is_wrong());

        let failed = Answer::Failed {
            errno: libc::ENETUNREACH,
        };
        let replies = judge(
            &snap,
            &Uplinks::of(&snap, Settings::default().protocol),
            &[(probe, failed)],
        );
        assert_eq!(replies[0].egress, Egress::NoRoute(Some(libc::ENETUNREACH)));
    }
}
