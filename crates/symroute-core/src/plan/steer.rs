//! Outbound steering from uplink health (`[health]`, pure): which rules and which routes of
//! the steering table send new outbound traffic — sockets not bound to an address, which
//! none of the `from` rules catch — through healthy uplinks. Main is never edited:
//!
//! - `lookup main suppress_prefixlength 0` at `priority`: everything main routes but its
//!   defaults (LANs, containers, VPN prefixes) stays as main decides;
//! - `lookup T` at `priority + 1`: failover, T is the table of the best healthy uplink
//!   (it holds that uplink's default); balance, T is the steering table (`table_base`, an
//!   index no interface has) with one default route whose nexthops are the healthy uplinks'
//!   gateways, weighted.
//!
//! Both come after the `from` rules, so answers and sockets bound to an uplink's address
//! stay symmetric, and before main. IPv4 and IPv6 are decided apart. The preference order is
//! main's own: the metric of each uplink's default route.

use std::net::IpAddr;

use crate::health::{HealthSettings, HealthState, SteerMode};
use crate::model::{
    route_type, scope, Extras, Family, Link, NextHop, NextHops, Route, Rule, Snapshot, MAIN_TABLE,
};
use crate::settings::Settings;

/// An uplink main has a default route through, which steering can use and symrouted probes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    pub family: Family,
    pub ifindex: u32,
    pub name: String,
    /// The address probes leave from (its `from` rule routes them through its table).
    pub source: IpAddr,
    /// The lowest metric of main's default routes through it.
    pub metric: u32,
    /// Its nexthop in that default route.
    pub hop: NextHop,
}

/// What steering wants, with one line per family saying why.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SteerPlan {
    /// `[health]` in one line ([`HealthSettings::line`]).
    pub settings: String,
    pub rules: Vec<Rule>,
    /// Routes of the steering table (balance only).
    pub routes: Vec<Route>,
    pub candidates: Vec<Candidate>,
    /// `ipv4: eth0 is down: new connections leave through eth1`.
    pub summary: Vec<String>,
}

/// The table balance mode fills: `table_base` itself, which no interface's table is
/// ([`Settings::table_for`] adds an index of at least 1).
pub fn steer_table(settings: &Settings) -> u32 {
    settings.table_base
}

/// The steering of ours `snapshot` holds: its rules (no selector, our protocol) and the
/// routes of [`steer_table`] — what a sync diffs the plan against, and status shows.
pub fn present(snapshot: &Snapshot, settings: &Settings) -> (Vec<Route>, Vec<Rule>) {
    let rules = snapshot
        .rules
        .iter()
        .filter(|r| r.is_steering(settings.protocol))
        .cloned()
        .collect();
    let routes = snapshot
        .routes_in(settings.protocol, steer_table(settings))
        .cloned()
        .collect();
    (routes, rules)
}

fn family_name(family: Family) -> &'static str {
    match family {
        Family::V4 => "ipv4",
        Family::V6 => "ipv6",
    }
}

/// The uplinks of `family` steering can use, preferred first: a managed interface with a
/// usable address of the family and a default route through it in main.
pub fn candidates(snapshot: &Snapshot, settings: &Settings, family: Family) -> Vec<Candidate> {
    let mut found: Vec<Candidate> = Vec::new();
    for route in snapshot
        .main_routes
        .iter()
        .filter(|r| is_default(r, family))
    {
        for hop in route.nexthops.iter() {
            let Some(link) = snapshot.link(hop.ifindex) else {
                continue;
            };
            if link.loopback || !settings.manages(&link.name) {
                continue;
            }
            let Some(source) = source_of(snapshot, link, family) else {
                continue;
            };
            // A table that is someone else's is refused to its interface: steering must not
            // send traffic by another program's routes either.
            let table = settings.table_for(link.index);
            if snapshot
                .table(table)
                .iter()
                .any(|r| r.protocol != settings.protocol)
            {
                continue;
            }
            match found.iter_mut().find(|c| c.ifindex == link.index) {
                Some(c) if c.metric <= route.metric => {}
                Some(c) => {
                    c.metric = route.metric;
                    c.hop = plain(hop);
                }
                None => found.push(Candidate {
                    family,
                    ifindex: link.index,
                    name: link.name.clone(),
                    source,
                    metric: route.metric,
                    hop: plain(hop),
                }),
            }
        }
    }
    found.sort_by_key(|c| (c.metric, c.ifindex));
    found
}

fn is_default(route: &Route, family: Family) -> bool {
    route.table == MAIN_TABLE
        && route.kind == route_type::UNICAST
        && route.dst_len == 0
        && route.family() == family
}

fn plain(hop: &NextHop) -> NextHop {
    NextHop {
        hops: 0,
        ..hop.clone()
    }
}

fn source_of(snapshot: &Snapshot, link: &Link, family: Family) -> Option<IpAddr> {
    snapshot
        .addresses
        .iter()
        .find(|a| a.ifindex == link.index && Family::of(&a.addr) == family && a.wants_rule())
        .map(|a| a.addr)
}

/// The interface main itself sends unbound traffic of `family` through: that of the
/// default route with the lowest metric (its first nexthop).
fn main_choice(snapshot: &Snapshot, family: Family) -> Option<u32> {
    snapshot
        .main_routes
        .iter()
        .filter(|r| is_default(r, family))
        .min_by_key(|r| r.metric)
        .and_then(|r| r.nexthops.first())
        .map(|nh| nh.ifindex)
}

/// The steering `health` and the verdicts in `state` call for (`state` `None`: nobody
/// probes, every uplink counts as up).
pub fn plan(
    snapshot: &Snapshot,
    settings: &Settings,
    health: &HealthSettings,
    state: Option<&HealthState>,
) -> SteerPlan {
    let mut plan = SteerPlan {
        settings: health.line(),
        ..SteerPlan::default()
    };
    for family in [Family::V4, Family::V6] {
        if !settings.family_enabled(family) || health.targets_of(family).next().is_none() {
            continue;
        }
        let found = candidates(snapshot, settings, family);
        let down = |c: &Candidate| state.is_some_and(|s| s.is_down(c.ifindex, family));
        let healthy: Vec<&Candidate> = found.iter().filter(|c| !down(c)).collect();
        let name = family_name(family);
        let target = match health.mode {
            SteerMode::Failover => {
                let preferred = main_choice(snapshot, family)
                    .and_then(|i| found.iter().find(|c| c.ifindex == i));
                match (preferred, healthy.first()) {
                    (Some(p), Some(best)) if down(p) => {
                        plan.summary.push(format!(
                            "{name}: {} is down: new connections leave through {}",
                            p.name, best.name
                        ));
                        Some(settings.table_for(best.ifindex))
                    }
                    (Some(p), None) if down(p) => {
                        plan.summary
                            .push(format!("{name}: every uplink is down: main decides"));
                        None
                    }
                    (Some(p), _) => {
                        plan.summary
                            .push(format!("{name}: {} is up: main decides", p.name));
                        None
                    }
                    (None, _) => None,
                }
            }
            SteerMode::Balance => {
                if healthy.is_empty() {
                    if !found.is_empty() {
                        plan.summary
                            .push(format!("{name}: every uplink is down: main decides"));
                    }
                    None
                } else {
                    let table = steer_table(settings);
                    let hops: Vec<NextHop> = healthy
                        .iter()
                        .map(|c| {
                            let weight = health.weight_of(&c.name);
                            let hops = if healthy.len() == 1 {
                                0
                            } else {
                                u8::try_from(weight.saturating_sub(1)).unwrap_or(u8::MAX)
                            };
                            NextHop {
                                hops,
                                ..c.hop.clone()
                            }
                        })
                        .collect();
                    let shares: Vec<String> = healthy
                        .iter()
                        .map(|c| format!("{} (weight {})", c.name, health.weight_of(&c.name)))
                        .collect();
                    plan.summary.push(format!(
                        "{name}: new connections spread over {}",
                        shares.join(", ")
                    ));
                    plan.routes
                        .push(balanced_default(family, table, settings, hops));
                    Some(table)
                }
            }
        };
        plan.candidates.extend(found.iter().cloned());
        if let Some(table) = target {
            plan.rules.push(
                Rule::lookup(MAIN_TABLE, health.priority)
                    .with_family(family)
                    .with_protocol(settings.protocol)
                    .with_suppress(0),
            );
            plan.rules.push(
                Rule::lookup(table, health.priority.saturating_add(1))
                    .with_family(family)
                    .with_protocol(settings.protocol),
            );
        }
    }
    plan.rules.sort();
    plan
}

fn balanced_default(family: Family, table: u32, settings: &Settings, hops: Vec<NextHop>) -> Route {
    let gateway = hops.iter().any(|h| h.gateway.is_some());
    Route {
        table,
        dst: family.unspecified(),
        dst_len: 0,
        tos: 0,
        // What the kernel stores for a route written without one (IPv6 makes 0 its
        // IP6_RT_PRIO_USER): asking for another would rewrite the route on every run.
        metric: match family {
            Family::V4 => 0,
            Family::V6 => 1024,
        },
        protocol: settings.protocol,
        scope: if gateway {
            scope::UNIVERSE
        } else {
            scope::LINK
        },
        kind: route_type::UNICAST,
        pref: match family {
            Family::V4 => None,
            // The kernel reports a router preference on every IPv6 route: medium.
            Family::V6 => Some(0),
        },
        extras: Extras::default(),
        nexthops: NextHops::from(hops),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{host, ip, ETH0, ETH1};
    use crate::health::{UplinkHealth, Verdict};

    fn health(mode: SteerMode) -> HealthSettings {
        let mut h = crate::health::validate(
            toml::from_str("targets = [\"192.0.2.1\"]\nweights = { eth0 = 3 }").unwrap(),
            32000,
        )
        .unwrap();
        h.mode = mode;
        h
    }

    fn down(ifindex: u32, name: &str) -> HealthState {
        HealthState {
            updated: 0.0,
            uplinks: vec![UplinkHealth {
                interface: name.into(),
                ifindex,
                family: Family::V4,
                verdict: Verdict::Down,
                loss: 1.0,
                rtt_ms: None,
                since: 0.0,
                transitions: 1,
                rounds: 5,
            }],
        }
    }

    fn lines(plan: &SteerPlan) -> Vec<String> {
        plan.rules.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn failover_steers_only_while_mains_choice_is_down() {
        let s = Settings::default();
        let snap = host();
        let h = health(SteerMode::Failover);
        let p = plan(&snap, &s, &h, None);
        assert!(p.rules.is_empty() && p.routes.is_empty());
        assert_eq!(p.candidates.len(), 2);
        assert_eq!(p.candidates[0].source, ip("10.1.0.2"));
        assert!(plan(&snap, &s, &h, Some(&down(ETH1, "eth1")))
            .rules
            .is_empty());
        let p = plan(&snap, &s, &h, Some(&down(ETH0, "eth0")));
        assert_eq!(
            lines(&p),
            [
                "from all lookup main suppress_prefixlength 0 priority 32700",
                "from all lookup 1003 priority 32701"
            ]
        );
        assert_eq!(
            p.summary,
            ["ipv4: eth0 is down: new connections leave through eth1"]
        );
        let mut both = down(ETH0, "eth0");
        both.uplinks.extend(down(ETH1, "eth1").uplinks);
        assert!(plan(&snap, &s, &h, Some(&both)).rules.is_empty());
    }

    #[test]
    fn balance_weights_healthy_uplinks_and_drops_dead_ones() {
        let s = Settings::default();
        let snap = host();
        let h = health(SteerMode::Balance);
        let p = plan(&snap, &s, &h, None);
        assert_eq!(
            lines(&p),
            [
                "from all lookup main suppress_prefixlength 0 priority 32700",
                "from all lookup 1000 priority 32701"
            ]
        );
        let hops: Vec<(u32, u8)> = p.routes[0]
            .nexthops
            .iter()
            .map(|nh| (nh.ifindex, nh.hops))
            .collect();
        assert_eq!(hops, [(ETH0, 2), (ETH1, 0)]);
        assert_eq!(p.routes[0].table, 1000);
        let p = plan(&snap, &s, &h, Some(&down(ETH1, "eth1")));
        assert_eq!(p.routes[0].nexthops.len(), 1);
        assert_eq!(p.routes[0].nexthops.as_slice()[0].ifindex, ETH0);
        assert_eq!(p.routes[0].nexthops.as_slice()[0].hops, 0);
    }

    #[test]
    fn an_uplink_without_address_or_excluded_is_no_candidate() {
        let mut snap = host();
        snap.addresses.retain(|a| a.ifindex != ETH1);
        assert_eq!(candidates(&snap, &Settings::default(), Family::V4).len(), 1);
        let snap = host();
        let s = Settings {
            exclude: vec!["eth0".into()],
            ..Settings::default()
        };
        let c = candidates(&snap, &s, Family::V4);
        assert_eq!(c.iter().map(|c| c.ifindex).collect::<Vec<_>>(), [ETH1]);
        let mut foreign = host();
        foreign.tables.insert(
            1003,
            vec![crate::fixtures::route(
                1003,
                "0.0.0.0",
                0,
                Some("10.2.0.1"),
                ETH1,
                4,
            )],
        );
        let c = candidates(&foreign, &Settings::default(), Family::V4);
        assert_eq!(c.iter().map(|c| c.ifindex).collect::<Vec<_>>(), [ETH0]);
        // main's choice is not a candidate: failover has nothing to say.
        let p = plan(
            &snap,
            &s,
            &health(SteerMode::Failover),
            Some(&down(ETH0, "eth0")),
        );
        assert!(p.rules.is_empty());
    }
}
