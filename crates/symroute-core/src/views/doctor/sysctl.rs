//! Checks of the sysctls symmetric routing depends on: reverse-path filtering, ARP.

use std::collections::BTreeSet;
use std::net::IpAddr;

use super::{Finding, ARP, RP_FILTER};
use crate::model::host::{Conf, HostFacts};
use crate::model::{Family, Link, Snapshot};
use crate::settings::{Prefix, Settings};
use crate::views::status::Status;

fn effective(facts: &HostFacts, name: &str, pick: fn(&Conf) -> Option<u32>) -> Option<u32> {
    let all = facts.conf.get("all").and_then(pick);
    let dev = facts.conf.get(name).and_then(pick);
    match (all, dev) {
        (Some(a), Some(d)) => Some(a.max(d)),
        (a, d) => a.or(d),
    }
}

/// Whether `name` forwards IPv4: its own `forwarding` (writing `all.forwarding` sets every
/// device's), else `all`'s.
fn forwarding(facts: &HostFacts, name: &str) -> Option<u32> {
    forwarding_of(facts, name, Family::V4)
}

fn forwarding_of(facts: &HostFacts, name: &str, family: Family) -> Option<u32> {
    let pick = |c: &Conf| match family {
        Family::V4 => c.forwarding,
        Family::V6 => c.ipv6_forwarding,
    };
    facts
        .conf
        .get(name)
        .and_then(pick)
        .or_else(|| facts.conf.get("all").and_then(pick))
}

/// Interfaces (not loopback) with a global IPv4 address, with those addresses.
fn ipv4_interfaces(snapshot: &Snapshot) -> Vec<(&Link, Vec<Prefix>, Vec<IpAddr>)> {
    snapshot
        .links
        .iter()
        .filter(|l| !l.loopback)
        .filter_map(|l| {
            let addrs: Vec<_> = snapshot
                .addresses
                .iter()
                .filter(|a| a.ifindex == l.index && a.wants_rule())
                .filter(|a| Family::of(&a.addr) == Family::V4)
                .collect();
            if addrs.is_empty() {
                return None;
            }
            Some((
                l,
                addrs
                    .iter()
                    .map(|a| Prefix::new(a.addr, a.prefix_len))
                    .collect(),
                addrs.iter().map(|a| a.addr).collect(),
            ))
        })
        .collect()
}

const SYSCTL_PERSIST: &str = "(persist it in /etc/sysctl.d/)";

pub(super) fn check_rp_filter(
    snapshot: &Snapshot,
    settings: &Settings,
    status: &Status,
    facts: &HostFacts,
) -> Vec<Finding> {
    let uplinks = ipv4_interfaces(snapshot);
    if uplinks.len() < 2 {
        return vec![
            RP_FILTER.skip("fewer than two interfaces with IPv4 addresses: no asymmetric path")
        ];
    }
    let mut out = Vec::new();
    for (link, _, _) in &uplinks {
        let name = &link.name;
        let Some(rp) = effective(facts, name, |c| c.rp_filter) else {
            continue;
        };
        if rp != 1 {
            continue;
        }
        let managed = settings.manages(name);
        let forwarding = forwarding(facts, name) == Some(1);
        let loosen = format!(
            "sysctl -w net.ipv4.conf.all.rp_filter=2 net.ipv4.conf.{name}.rp_filter=2 {SYSCTL_PERSIST}"
        );
        if !managed {
            out.push(RP_FILTER.fail(
                format!(
                    "{name}: rp_filter=1 (strict) on an interface symroute leaves alone \
                     (include/exclude): traffic to its addresses from sources that main routes \
                     through another interface is dropped"
                ),
                format!("let symroute manage {name}, or loosen: {loosen}"),
            ));
        } else if forwarding {
            out.push(RP_FILTER.fail(
                format!(
                    "{name}: rp_filter=1 (strict) and the host forwards: forwarded or DNAT'ed \
                     traffic entering {name} is dropped whenever main would route its answer \
                     through another interface (the kernel checks a forwarded request's \
                     reverse path in main: neither symroute's rules nor iif_rules' marks \
                     change that)"
                ),
                format!("loosen: {loosen}"),
            ));
        } else {
            let covered = status
                .interfaces
                .iter()
                .find(|i| &i.ifname == name)
                .is_some_and(|i| i.addresses.iter().all(|a| a.covered));
            out.push(RP_FILTER.ok(if covered {
                format!(
                    "{name}: rp_filter=1 (strict) is fine: symroute's rules make the \
                     reverse-path check use {name}'s table"
                )
            } else {
                format!(
                    "{name}: rp_filter=1 (strict) needs symroute's rules for {name} \
                     (see `sync`)"
                )
            }));
        }
    }
    if out.is_empty() {
        out.push(RP_FILTER.ok("no interface with strict reverse-path filtering"));
    }
    out
}

pub(super) fn check_arp(snapshot: &Snapshot, facts: &HostFacts) -> Vec<Finding> {
    let uplinks = ipv4_interfaces(snapshot);
    if uplinks.len() < 2 {
        return vec![ARP.skip("fewer than two interfaces with IPv4 addresses")];
    }
    let mut out = Vec::new();
    // Interfaces sharing a subnet: ARP flux makes traffic for one arrive on the other.
    let mut reported = BTreeSet::new();
    for (a, a_prefixes, _) in &uplinks {
        for (b, _, b_addrs) in &uplinks {
            if a.index >= b.index {
                continue;
            }
            let Some(shared) = a_prefixes
                .iter()
                .find(|p| b_addrs.iter().any(|addr| p.contains(addr)))
            else {
                continue;
            };
            let weak: Vec<&str> = [a, b]
                .iter()
                .filter(|l| {
                    let ignore = effective(facts, &l.name, |c| c.arp_ignore).unwrap_or(0);
                    let filter = effective(facts, &l.name, |c| c.arp_filter).unwrap_or(0);
                    ignore == 0 && filter == 0
                })
                .map(|l| l.name.as_str())
                .collect();
            if weak.is_empty() {
                continue;
            }
            reported.insert(a.index);
            reported.insert(b.index);
            out.push(ARP.fail(
                format!(
                    "{} and {} share {shared}, and {} answer ARP for any local address \
                     (arp_ignore=0): the other NIC's address is answered from both (ARP flux), \
                     so its traffic can arrive on the wrong interface",
                    a.name,
                    b.name,
                    weak.join(" and ")
                ),
                format!(
                    "sysctl -w net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
                     {SYSCTL_PERSIST}"
                ),
            ));
        }
    }
    let loose: Vec<&str> = uplinks
        .iter()
        .filter(|(l, _, _)| !reported.contains(&l.index))
        .filter(|(l, _, _)| effective(facts, &l.name, |c| c.arp_announce).is_some_and(|v| v < 2))
        .map(|(l, _, _)| l.name.as_str())
        .collect();
    if !loose.is_empty() {
        out.push(ARP.warn(
            format!(
                "{}: arp_announce below 2 on a multi-homed host: ARP requests may carry \
                 another interface's address as sender, which routers with strict rp_filter \
                 or ARP inspection ignore",
                loose.join(", ")
            ),
            format!("sysctl -w net.ipv4.conf.all.arp_announce=2 {SYSCTL_PERSIST}"),
        ));
    }
    if out.is_empty() {
        out.push(
            ARP.ok("ARP announces the interface's own address; no NICs share a subnet unguarded"),
        );
    }
    out
}
