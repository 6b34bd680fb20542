//! Rules and routes as iproute2 shows them: the `ip -j` JSON views that `status` and
//! `explain` print ([`RuleView`], [`RouteView`]), and the `ip rule` / `ip route` text.
//!
//! Keys and value forms are `ip -j`'s (documented in `docs/cli.md`); a change of either
//! raises [`SCHEMA_VERSION`](super::status::SCHEMA_VERSION).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::net::IpAddr;

use serde::Serialize;

use crate::kernel::names::Names;
use crate::model::{
    link_name, metric, route_type, scope, Family, Link, Route, Rule, LOCAL_TABLE, MAIN_TABLE,
};

/// A rule's or a route's table and protocol, as `ip -j` prints them: numbers (and the
/// kernel's own table names) until [`name`](Self::name) puts in the host's iproute2 names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TableAndProtocol {
    /// `main`, a name from rt_tables(.d), else the number.
    pub table: String,
    #[serde(skip)]
    pub table_id: u32,
    /// `symroute` once rt_protos.d names 83, else `"83"`.
    pub protocol: String,
    #[serde(skip)]
    pub protocol_id: u8,
}

impl TableAndProtocol {
    pub fn new(table: u32, protocol: u8) -> TableAndProtocol {
        TableAndProtocol {
            table: table_name(table),
            table_id: table,
            protocol: protocol.to_string(),
            protocol_id: protocol,
        }
    }

    /// `table` and `protocol` as iproute2 names them on this host.
    pub fn name(&mut self, names: &Names) {
        self.table = names.table(self.table_id);
        self.protocol = names.protocol(self.protocol_id);
    }

    /// [`name`](Self::name) for many (the 100 000 routes of one table): each table and
    /// protocol is looked up once, not once a route.
    pub fn name_all<'a>(all: impl Iterator<Item = &'a mut TableAndProtocol>, names: &Names) {
        let mut last: Option<TableAndProtocol> = None;
        for tp in all {
            match &last {
                Some(l) if (l.table_id, l.protocol_id) == (tp.table_id, tp.protocol_id) => {
                    tp.clone_from(l);
                }
                _ => {
                    tp.name(names);
                    last = Some(tp.clone());
                }
            }
        }
    }
}

/// A rule, in the spirit of `ip -j rule`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleView {
    /// `inet` or `inet6`.
    pub family: &'static str,
    pub priority: u32,
    /// `all` or an address.
    pub src: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub srclen: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dst: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dstlen: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iif: Option<String>,
    /// `0x3000000`: the mark of an `fwmark` rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fwmark: Option<String>,
    /// `0xff000000`: its mask, when it is not `0xffffffff`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fwmask: Option<String>,
    /// `suppress_prefixlength N` (the steering rule into main of `[health]`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub suppress_prefixlen: Option<u8>,
    #[serde(flatten)]
    pub table_protocol: TableAndProtocol,
    /// `ip rule` syntax.
    pub text: String,
}

/// A route, with the keys and value forms of `ip -j route` (plus `family` and `text`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RouteView {
    pub family: &'static str,
    /// `unreachable`, `blackhole`, `prohibit`, `local`, ... or the type number; left out for
    /// unicast, as `ip -j` does.
    #[serde(rename = "type", skip_serializing_if = "is_unicast")]
    pub kind: Cow<'static, str>,
    /// `default` or `ADDRESS/LENGTH`.
    pub dst: String,
    /// A single-path route's gateway and device; a multipath route has `nexthops` instead.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    #[serde(flatten)]
    pub table_protocol: TableAndProtocol,
    /// `link` or `host`; left out for global scope.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<&'static str>,
    /// Left out when 0, as `ip -j` does.
    #[serde(skip_serializing_if = "is_zero")]
    pub metric: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefsrc: Option<IpAddr>,
    /// IPv6 router preference: `medium`, `high`, `low`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pref: Option<&'static str>,
    /// Only for a multipath route: one entry per path.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub nexthops: Vec<NextHopView>,
    /// Route metrics as `ip -j` shows them: one object (`[{"mtu": 1400, "congestion":
    /// "bbr"}]`), left out when there is none. The numeric ones by their `ip route` names
    /// with the kernel's value (`rtt`, `rttvar` and `rto_min`, which `ip -j` converts, and
    /// `lock` are left out).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<BTreeMap<&'static str, MetricValue>>,
    /// `ip route` syntax.
    pub text: String,
}

/// A route metric's value in JSON: a number, or the congestion control's name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum MetricValue {
    Number(u32),
    Name(String),
}

fn metrics_view(route: &Route) -> Vec<BTreeMap<&'static str, MetricValue>> {
    let mut all: BTreeMap<&'static str, MetricValue> = route
        .metrics()
        .iter()
        .filter(|(id, _)| !matches!(*id, metric::LOCK | 4 | 5 | 13))
        .filter_map(|(id, value)| Some((metric::name(*id)?, MetricValue::Number(*value))))
        .collect();
    if let Some(name) = route.congctl() {
        all.insert("congestion", MetricValue::Name(name.to_string()));
    }
    if all.is_empty() {
        Vec::new()
    } else {
        vec![all]
    }
}

fn is_unicast(kind: &str) -> bool {
    kind == "unicast"
}

pub(crate) fn is_zero(n: &u32) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NextHopView {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    pub dev: String,
    pub weight: u16,
}

pub fn family_name(family: Family) -> &'static str {
    match family {
        Family::V4 => "inet",
        Family::V6 => "inet6",
    }
}

/// The kernel's own table names (`local`, `main`, `default`), else the number.
pub fn table_name(table: u32) -> String {
    match table {
        MAIN_TABLE => "main".into(),
        LOCAL_TABLE => "local".into(),
        253 => "default".into(),
        t => t.to_string(),
    }
}

impl RuleView {
    pub fn new(rule: &Rule) -> RuleView {
        let host = rule.family.host_prefix_len();
        RuleView {
            family: family_name(rule.family),
            priority: rule.priority,
            src: rule
                .src
                .map_or_else(|| "all".to_string(), |(a, _)| a.to_string()),
            srclen: rule.src.map(|(_, l)| l).filter(|l| *l != host),
            dst: rule.dst.map(|(a, _)| a.to_string()),
            dstlen: rule.dst.map(|(_, l)| l).filter(|l| *l != host),
            iif: rule.iif.clone(),
            fwmark: rule.fwmark.map(|(mark, _)| format!("{mark:#x}")),
            fwmask: rule
                .fwmark
                .map(|(_, mask)| mask)
                .filter(|m| *m != u32::MAX)
                .map(|m| format!("{m:#x}")),
            suppress_prefixlen: rule.suppress_prefixlen,
            table_protocol: TableAndProtocol::new(rule.table, rule.protocol),
            text: rule_text(rule),
        }
    }
}

/// `ip rule` syntax, with the kernel's table names (`local`, `main`, `default`).
pub fn rule_text(rule: &Rule) -> String {
    rule.to_string().replacen(
        &format!(" lookup {} ", rule.table),
        &format!(" lookup {} ", table_name(rule.table)),
        1,
    )
}

impl RouteView {
    pub fn new(route: &Route, links: &[Link]) -> RouteView {
        RouteView::with_table(
            route,
            links,
            TableAndProtocol::new(route.table, route.protocol),
        )
    }

    /// [`RouteView::new`] of a route whose table and protocol are `table_protocol`'s (a
    /// copy for each route of a table: not formatted again for each).
    pub fn with_table(
        route: &Route,
        links: &[Link],
        table_protocol: TableAndProtocol,
    ) -> RouteView {
        debug_assert_eq!(
            (table_protocol.table_id, table_protocol.protocol_id),
            (route.table, route.protocol)
        );
        let multipath = route.nexthops.len() > 1;
        let single = route.nexthops.first().filter(|_| !multipath);
        let kind = route_type::name(route.kind);
        let text = route_text(route, links);
        // The text starts with the destination as `ip` writes it (`default` or
        // `ADDRESS/LENGTH`), after the type unless unicast: formatted once, not twice.
        let body = match route.kind {
            route_type::UNICAST => text.as_str(),
            _ => text.get(kind.len() + 1..).unwrap_or_default(),
        };
        let dst = body.split(' ').next().unwrap_or_default().to_string();
        RouteView {
            family: family_name(route.family()),
            kind,
            dst,
            gateway: single.and_then(|nh| nh.gateway),
            dev: single.map(|nh| link_name(links, nh.ifindex)),
            table_protocol,
            scope: match route.scope {
                scope::LINK => Some("link"),
                scope::HOST => Some("host"),
                200 => Some("site"),
                255 => Some("nowhere"),
                _ => None,
            },
            metric: route.metric,
            prefsrc: route.pref_src(),
            // RTA_PREF: ICMPV6_ROUTER_PREF_* as iproute2 names them.
            pref: route.pref.map(|p| match p {
                1 => "high",
                3 => "low",
                _ => "medium",
            }),
            nexthops: route
                .nexthops
                .iter()
                .filter(|_| multipath)
                .map(|nh| NextHopView {
                    gateway: nh.gateway,
                    dev: link_name(links, nh.ifindex),
                    weight: if multipath { u16::from(nh.hops) + 1 } else { 1 },
                })
                .collect(),
            metrics: metrics_view(route),
            text,
        }
    }
}

/// `ip route` syntax, with the type in front when it is not unicast.
pub fn route_text(route: &Route, links: &[Link]) -> String {
    let text = route.display(links).to_string();
    if route.kind == route_type::UNICAST {
        text
    } else {
        format!("{} {text}", route_type::name(route.kind))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{host, synced};
    use crate::settings::Settings;

    #[test]
    fn destination_and_type_are_those_of_the_text() {
        let settings = Settings::default();
        let snap = synced(host(), &settings);
        let mut route = snap.table(1003).first().cloned().expect("a route");
        for (kind, dst_len, name, dst) in [
            (route_type::UNICAST, 0, "unicast", "default"),
            (route_type::UNREACHABLE, 0, "unreachable", "default"),
            (route_type::THROW, 24, "throw", "10.2.0.0/24"),
            (42, 24, "42", "10.2.0.0/24"),
        ] {
            route.kind = kind;
            route.dst = "10.2.0.0".parse().unwrap();
            route.dst_len = dst_len;
            let view = RouteView::new(&route, &snap.links);
            assert_eq!(
                (view.kind.as_ref(), view.dst.as_str()),
                (name, dst),
                "{}",
                view.text
            );
            assert!(view.text.contains(dst), "{}", view.text);
        }
    }

    #[test]
    fn multipath_route_has_nexthops_instead_of_gateway_and_dev() {
        let settings = Settings::default();
        let snap = synced(host(), &settings);
        let mut route = snap.table(1003).first().cloned().expect("a route");
        let mut second = route.nexthops[0].clone();
        second.gateway = Some("10.2.0.9".parse().unwrap());
        route.nexthops.push(second);
        let view = serde_json::to_value(RouteView::new(&route, &snap.links)).unwrap();
        assert!(
            view.get("gateway").is_none() && view.get("dev").is_none(),
            "{view}"
        );
        assert_eq!(view["nexthops"].as_array().map(Vec::len), Some(2), "{view}");
        assert_eq!(view["nexthops"][1]["gateway"], "10.2.0.9");
    }
}
