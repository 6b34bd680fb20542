//! `symroute explain FROM TO`: which rule and which route the kernel uses for a packet, and
//! whether the packet leaves through the interface it belongs to.
//!
//! The kernel decides ([`lookup`]: `RTM_GETROUTE` with `RTA_SRC`, `RTA_DST` and
//! `RTM_F_LOOKUP_TABLE`, once plain for the egress and once with `RTM_F_FIB_MATCH` for the
//! table entry that matched); [`explain`] is the pure part that names the rule leading to that
//! table, the interface owning `FROM`, and the verdict.

use std::net::IpAddr;

use serde::Serialize;

use crate::kernel::names::Names;
use crate::model::errno_text;
use crate::model::uplinks::Uplinks;
use crate::model::{link_name, route_type, Family, Rule, Snapshot};
pub use crate::model::{Answer, Query};
use crate::settings::Settings;
use crate::views::iproute::{family_name, is_zero, rule_text, table_name, RouteView, RuleView};
use crate::views::rule_walk::{self, rules_in_order, selectors_match};
use crate::views::status::SCHEMA_VERSION;

mod render;

/// The rule that leads to the table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleMatch {
    #[serde(flatten)]
    pub rule: RuleView,
    /// Whether the rule is symroute's.
    pub ours: bool,
    /// False when the rule has selectors symroute cannot evaluate (fwmark, uid range,
    /// ports...) or the lookup failed, so that it is only the likely one.
    pub certain: bool,
}

/// `symroute explain`'s answer; `--json` prints it as is (documented in `docs/cli.md`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Explanation {
    /// `SCHEMA_VERSION`; 0 (left out) in a `reply`.
    #[serde(skip_serializing_if = "is_zero")]
    pub schema_version: u32,
    pub from: IpAddr,
    pub to: IpAddr,
    pub family: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iif: Option<String>,
    /// The packet's mark (`0x3000000`), when it has one: the answer of a connection marked by
    /// `iif_rules`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mark: Option<String>,
    /// The interface that holds `FROM` as an address.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<RuleMatch>,
    /// `main`, `local` or the table number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    /// The interface whose symroute table `table` is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table_of: Option<String>,
    /// The table entry that matched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<RouteView>,
    /// Result type: `unicast`, `local`, ...
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dev: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gateway: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prefsrc: Option<IpAddr>,
    /// `dev` is a tunnel (tun, WireGuard, GRE, ...); left out when not.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub into_tunnel: bool,
    /// For a packet the host sends: it leaves through the interface that owns `FROM`. For a
    /// packet entering `iif`: the answer (`TO` to `FROM`) leaves through `iif` again.
    /// `null` when that cannot be said (local delivery of a local packet, failed lookup,
    /// `FROM` not local and no `iif`).
    pub symmetric: Option<bool>,
    /// With `iif`: how the answer to this packet is routed (`TO` to `FROM`, entering the
    /// interface this packet leaves through, or sent by the host when `TO` is its own).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reply: Option<Box<Explanation>>,
    /// One sentence.
    pub verdict: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `EXDEV`: what an input route lookup answers when the reverse-path filter rejects the
/// packet.
const EXDEV: i32 = 18;
/// `EINVAL`: what current kernels answer instead when an input lookup fails the
/// reverse-path filter (a "martian source").
const EINVAL: i32 = 22;

/// For a packet entering an interface (`query.iif`), the packet of the answer and the
/// interface index it enters through (`None`: the host sends it). `None` when there is no
/// answer to ask about (the lookup failed, `query` is the host's own packet).
///
/// With `iif_rules`, the answer carries the mark of the interface the packet came in
/// through, as `table inet symroute` sets it, when a `fwmark` rule of ours for that
/// interface's table is installed.
pub fn reply_query(
    snapshot: &Snapshot,
    settings: &Settings,
    query: &Query,
    answer: &Answer,
) -> Option<(Query, Option<u32>)> {
    let links = &snapshot.links;
    let entry = snapshot.link_by_name(query.iif.as_deref()?);
    let Answer::Route { kind, oif, .. } = answer else {
        return None;
    };
    let mark = entry
        .filter(|_| settings.iif_rules)
        .and_then(|link| {
            let table = settings.table_for(link.index);
            snapshot
                .rules_into(settings.protocol, table)
                .find_map(|r| r.fwmark.map(|(mark, _)| mark))
        })
        .unwrap_or(0);
    let reverse = |iif: Option<String>| Query {
        from: query.to,
        to: query.from,
        iif,
        mark,
    };
    if *kind == route_type::LOCAL {
        return Some((reverse(None), None));
    }
    let oif = (*oif)?;
    Some((reverse(Some(link_name(links, oif))), Some(oif)))
}

/// Explains the kernel's `answer` for `query` with the rules and addresses of `snapshot`.
/// For a packet entering an interface, `reply` is the kernel's answer for
/// [`reply_query`], which decides whether the path is symmetric.
pub fn explain(
    snapshot: &Snapshot,
    uplinks: &Uplinks,
    settings: &Settings,
    query: &Query,
    answer: &Answer,
    reply: Option<&Answer>,
) -> Explanation {
    let mut out = explain_one(snapshot, uplinks, settings, query, answer);
    let Some(iif) = &query.iif else {
        return out;
    };
    if out.kind.as_deref() == Some("unicast") && out.dev.as_deref() == Some(iif.as_str()) {
        out.symmetric = None;
        out.verdict = format!(
            "HAIRPIN: sent back out {}, the interface it came in through{}",
            via_text(out.gateway, out.dev.as_deref()),
            match (&out.table_of, &out.table) {
                (Some(_), Some(table)) => format!(
                    " (table {table} has no route for {}; exempt its network?)",
                    query.to
                ),
                _ => String::new(),
            }
        );
        return out;
    }
    let Some((reply_q, _)) = reply_query(snapshot, settings, query, answer) else {
        return out;
    };
    let Some(reply) = reply else {
        return out;
    };
    let back = explain_one(snapshot, uplinks, settings, &reply_q, reply);
    let what = if out.kind.as_deref() == Some("local") {
        format!("{} is this host's own address: delivered locally", query.to)
    } else {
        format!("forwarded {}", via_text(out.gateway, out.dev.as_deref()))
    };
    match (&back.dev, &back.error) {
        (Some(dev), None) if dev == iif => {
            out.symmetric = Some(true);
            out.verdict = format!(
                "symmetric: {what}; the answer leaves {} again",
                via_text(back.gateway, Some(dev))
            );
        }
        (Some(dev), None) => {
            out.symmetric = Some(false);
            out.verdict = format!(
                "ASYMMETRIC: {what}, but the answer leaves {}, not {iif} where this packet came in",
                via_text(back.gateway, Some(dev))
            );
        }
        _ => {
            out.verdict = format!("{what}; the answer's path: {}", back.verdict);
        }
    }
    let mut back = back;
    back.schema_version = 0;
    out.reply = Some(Box::new(back));
    out
}

fn via_text(gateway: Option<IpAddr>, dev: Option<&str>) -> String {
    match (gateway, dev) {
        (Some(gw), Some(dev)) => format!("via {gw} dev {dev}"),
        (None, Some(dev)) => format!("dev {dev}"),
        (Some(gw), None) => format!("via {gw}"),
        (None, None) => "nowhere".into(),
    }
}

fn explain_one(
    snapshot: &Snapshot,
    uplinks: &Uplinks,
    settings: &Settings,
    query: &Query,
    answer: &Answer,
) -> Explanation {
    let links = &snapshot.links;
    let owner = snapshot
        .addresses
        .iter()
        .find(|a| a.addr == query.from)
        .map(|a| link_name(links, a.ifindex));
    let matching: Vec<&Rule> = rules_in_order(snapshot)
        .into_iter()
        .filter(|r| selectors_match(r, query))
        .collect();
    let rule_match = |rule: &Rule, certain: bool| RuleMatch {
        rule: RuleView::new(rule),
        ours: rule.protocol == settings.protocol,
        certain: certain && !rule.other_selectors() && rule.suppress_prefixlen.is_none(),
    };
    let table_of = |table: u32| {
        settings
            .interface_of_table(table)
            .filter(|i| {
                snapshot
                    .rules_into(settings.protocol, table)
                    .next()
                    .is_some()
                    || snapshot.link(*i).is_some()
            })
            .map(|i| link_name(links, i))
    };
    let mut out = Explanation {
        schema_version: SCHEMA_VERSION,
        from: query.from,
        to: query.to,
        family: family_name(Family::of(&query.to)),
        iif: query.iif.clone(),
        mark: (query.mark != 0).then(|| format!("{:#x}", query.mark)),
        owner: owner.clone(),
        rule: None,
        table: None,
        table_of: None,
        route: None,
        kind: None,
        dev: None,
        gateway: None,
        prefsrc: None,
        into_tunnel: false,
        symmetric: None,
        reply: None,
        verdict: String::new(),
        error: None,
    };

    match answer {
        Answer::Failed { errno } if owner.is_none() && query.iif.is_none() => {
            let text = errno_text(*errno);
            out.verdict = format!(
                "the kernel refuses the lookup ({text}): {} is not an address of this host \
                 (for forwarded traffic give --iif INTERFACE)",
                query.from
            );
            out.error = Some(text);
        }
        Answer::Failed { errno }
            if (*errno == EXDEV || *errno == EINVAL) && query.iif.is_some() =>
        {
            let text = errno_text(*errno);
            let iif = query.iif.as_deref().unwrap_or_default();
            out.verdict = format!(
                "dropped on entry to {iif}: its reverse-path filter (rp_filter) rejects {} \
                 because the answer would leave through another interface (or the source is \
                 a martian)",
                query.from
            );
            out.error = Some(text);
        }
        Answer::Failed { errno } => {
            let text = errno_text(*errno);
            // The first rule whose table covers the destination is where the lookup ended.
            let likely = matching
                .iter()
                .find(|r| rule_walk::covers(snapshot, r.table, query.to));
            out.rule = likely.map(|r| rule_match(r, false));
            out.table = likely.map(|r| table_name(r.table));
            out.table_of = likely.and_then(|r| table_of(r.table));
            let after = match likely {
                Some(r) => format!(
                    " (most likely in table {} via `{}`)",
                    table_name(r.table),
                    rule_text(r)
                ),
                None => String::new(),
            };
            out.verdict = format!("no route: the kernel's lookup fails with {text}{after}");
            out.error = Some(text);
        }
        Answer::Route {
            table,
            kind,
            matched,
            oif,
            gateway,
            prefsrc,
        } => {
            let rule = matching.iter().find(|r| r.table == *table);
            out.rule = rule.map(|r| rule_match(r, true));
            out.table = Some(table_name(*table));
            out.table_of = table_of(*table);
            out.route = matched.as_ref().map(|r| RouteView::new(r, links));
            out.kind = Some(route_type::name(*kind).into_owned());
            out.dev = oif.map(|i| link_name(links, i));
            out.gateway = *gateway;
            out.prefsrc = *prefsrc;
            let via = via_text(*gateway, out.dev.as_deref());
            // A tunnel that takes a large share of the address space (a full tunnel: a
            // default, `0.0.0.0/1`, OpenVPN's `::/3`) is a way out, not a network behind the
            // host; unknown when the kernel did not say which entry matched.
            let family = Family::of(&query.to);
            out.into_tunnel = oif.is_some_and(|i| snapshot.link(i).is_some_and(|l| l.tunnel));
            let catch_all_tunnel = out.into_tunnel
                && matched
                    .as_ref()
                    .is_none_or(|r| rule_walk::is_wide(family, r.dst_len));
            if *kind == route_type::LOCAL {
                out.verdict = format!("{} is this host's own address: delivered locally", query.to);
            } else if *kind != route_type::UNICAST {
                out.verdict = format!("the lookup ends in a {} route", route_type::name(*kind));
            } else if query.iif.is_some() {
                // Judged by `explain` from the answer's path.
                out.verdict = format!("forwarded {via}");
            } else {
                match (&owner, &out.dev) {
                    (Some(want), Some(dev)) if want == dev => {
                        out.symmetric = Some(true);
                        out.verdict = format!(
                            "symmetric: leaves {via}, the interface that owns {}",
                            query.from
                        );
                    }
                    // Straight into a bridge, LAN or tunnel behind the host: where main sends
                    // it too, and where the peer's own answer comes from.
                    (Some(_), Some(dev))
                        if gateway.is_none()
                            && !catch_all_tunnel
                            && oif
                                .is_some_and(|i| !uplinks.is_uplink(Family::of(&query.to), i)) =>
                    {
                        out.symmetric = Some(true);
                        out.verdict = format!(
                            "direct: leaves {via} into a network behind the host ({dev} is no \
                             uplink), as main sends it"
                        );
                    }
                    (Some(want), Some(_)) => {
                        out.symmetric = Some(false);
                        let tunnel = if out.into_tunnel {
                            " into a tunnel"
                        } else {
                            ""
                        };
                        out.verdict = format!(
                            "ASYMMETRIC: leaves {via}{tunnel}, but {want} owns {}",
                            query.from
                        );
                    }
                    _ => {
                        out.verdict = format!(
                            "leaves {via}; {} is not an address of this host, so symmetry \
                             cannot be judged (give --iif for forwarded traffic)",
                            query.from
                        );
                    }
                }
            }
        }
    }
    out
}

impl Explanation {
    /// The rule's and the route's tables and protocols by their iproute2 names (`--json`).
    pub fn name(&mut self, names: &Names) {
        if let Some(m) = &mut self.rule {
            m.rule.table_protocol.name(names);
        }
        if let Some(r) = &mut self.route {
            r.table_protocol.name(names);
        }
        if let Some(reply) = &mut self.reply {
            reply.name(names);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{host, ip, route, synced, ETH0, ETH1};
    use crate::model::{LOCAL_TABLE, MAIN_TABLE};

    fn query(from: &str, to: &str) -> Query {
        Query {
            from: ip(from),
            to: ip(to),
            iif: None,
            mark: 0,
        }
    }

    /// A packet from `from` to `to` entering `iif`.
    fn entering(iif: &str, from: &str, to: &str) -> Query {
        Query {
            iif: Some(iif.into()),
            ..query(from, to)
        }
    }

    /// The kernel's answer for a default route of ours (or of main) via `gw`.
    fn unicast(table: u32, oif: u32, gw: &str) -> Answer {
        Answer::Route {
            table,
            kind: route_type::UNICAST,
            matched: Some(route(table, "0.0.0.0", 0, Some(gw), oif, 83)),
            oif: Some(oif),
            gateway: Some(ip(gw)),
            prefsrc: None,
        }
    }

    /// The kernel's answer for a route of `kind` out of `oif`, without gateway or entry.
    fn through(table: u32, kind: u8, oif: u32) -> Answer {
        Answer::Route {
            table,
            kind,
            matched: None,
            oif: Some(oif),
            gateway: None,
            prefsrc: None,
        }
    }

    /// Local delivery: the local table's answer for one of the host's addresses.
    fn local() -> Answer {
        through(LOCAL_TABLE, route_type::LOCAL, 1)
    }

    /// `text` is exactly `lines`, each a whole line.
    fn assert_lines(text: &str, lines: &[&str]) {
        assert_eq!(text.lines().collect::<Vec<_>>(), lines, "{text}");
    }

    const UNREACHABLE: Answer = Answer::Failed {
        errno: libc::ENETUNREACH,
    };

    /// `explain` of a packet the host sends from `from` to `to`.
    fn sent(snap: &Snapshot, settings: &Settings, from: &str, to: &str, a: &Answer) -> Explanation {
        explain(
            snap,
            &Uplinks::of(snap, settings.protocol),
            settings,
            &query(from, to),
            a,
            None,
        )
    }

    #[test]
    fn synced_host_answers_through_the_owning_interface() {
        let settings = Settings::default();
        let snap = synced(host(), &settings);
        let e = sent(
            &snap,
            &settings,
            "10.2.0.2",
            "10.12.0.2",
            &unicast(1003, ETH1, "10.2.0.1"),
        );
        assert_eq!(e.owner.as_deref(), Some("eth1"));
        let rule = e.rule.as_ref().unwrap();
        assert_eq!(rule.rule.text, "from 10.2.0.2 lookup 1003 priority 32000");
        assert!(rule.ours && rule.certain);
        assert_eq!(e.table.as_deref(), Some("1003"));
        assert_eq!(e.table_of.as_deref(), Some("eth1"));
        assert_eq!(e.dev.as_deref(), Some("eth1"));
        assert_eq!(e.symmetric, Some(true));
        assert_eq!(
            e.verdict,
            "symmetric: leaves via 10.2.0.1 dev eth1, the interface that owns 10.2.0.2"
        );
        assert_lines(
            &e.render(),
            &[
                "packet   from 10.2.0.2 (address of eth1) to 10.12.0.2",
                "rule     from 10.2.0.2 lookup 1003 priority 32000 (symroute's)",
                "table    1003 (symroute's table for eth1)",
                "route    default via 10.2.0.1 dev eth1 table 1003 metric 103",
                "egress   eth1 via 10.2.0.1",
                "verdict  symmetric: leaves via 10.2.0.1 dev eth1, the interface that owns 10.2.0.2",
            ],
        );

        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["from"], "10.2.0.2");
        assert_eq!(json["family"], "inet");
        assert_eq!(json["owner"], "eth1");
        assert_eq!(json["rule"]["src"], "10.2.0.2");
        assert_eq!(json["rule"]["table"], "1003");
        assert_eq!(json["rule"]["ours"], true);
        assert_eq!(json["table"], "1003");
        assert_eq!(json["table_of"], "eth1");
        assert_eq!(json["route"]["dst"], "default");
        assert_eq!(json["type"], "unicast");
        assert_eq!(json["dev"], "eth1");
        assert_eq!(json["gateway"], "10.2.0.1");
        assert_eq!(json["symmetric"], true);
        assert!(json.get("iif").is_none() && json.get("error").is_none());
    }

    /// The sample host with a LAN behind it: lan0 (index 4), 10.50.0.1/24.
    fn host_with_lan() -> Snapshot {
        let mut snap = host();
        snap.links.push(crate::fixtures::link(4, "lan0"));
        snap.addresses
            .push(crate::fixtures::addr(4, "10.50.0.1", 24));
        snap.main_routes
            .push(route(MAIN_TABLE, "10.50.0.0", 24, None, 4, 2));
        snap
    }

    #[test]
    fn uplink_address_answers_a_lan_behind_the_host_directly() {
        let settings = Settings::default();
        let snap = synced(host_with_lan(), &settings);
        let answer = Answer::Route {
            table: 1003,
            kind: route_type::UNICAST,
            matched: Some(route(1003, "10.50.0.0", 24, None, 4, 83)),
            oif: Some(4),
            gateway: None,
            prefsrc: None,
        };
        let e = sent(&snap, &settings, "10.2.0.2", "10.50.0.2", &answer);
        assert_eq!(e.symmetric, Some(true));
        assert_lines(
            &e.render(),
            &[
                "packet   from 10.2.0.2 (address of eth1) to 10.50.0.2",
                "rule     from 10.2.0.2 lookup 1003 priority 32000 (symroute's)",
                "table    1003 (symroute's table for eth1)",
                "route    10.50.0.0/24 dev lan0 table 1003 scope link",
                "egress   lan0",
                "verdict  direct: leaves dev lan0 into a network behind the host (lan0 is no \
                 uplink), as main sends it",
            ],
        );
    }

    #[test]
    fn replies_into_a_full_tunnel_are_asymmetric() {
        let settings = Settings::default();
        let snap = crate::fixtures::with_wg_quick(synced(host(), &settings), 5);
        let answer = Answer::Route {
            table: 51820,
            kind: route_type::UNICAST,
            matched: Some(route(51820, "0.0.0.0", 0, None, 5, 3)),
            oif: Some(5),
            gateway: None,
            prefsrc: None,
        };
        let e = sent(&snap, &settings, "10.2.0.2", "10.12.0.2", &answer);
        assert_eq!(e.symmetric, Some(false));
        assert!(e.into_tunnel);
        assert_lines(
            &e.render(),
            &[
                "packet   from 10.2.0.2 (address of eth1) to 10.12.0.2",
                "rule     not from all fwmark 0xca6c lookup 51820 priority 31999 (likely)",
                "table    51820",
                "route    default dev wg0 table 51820 scope link",
                "egress   wg0 (a tunnel)",
                "verdict  ASYMMETRIC: leaves dev wg0 into a tunnel, but eth1 owns 10.2.0.2",
            ],
        );
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["into_tunnel"], true);
        assert_eq!(json["symmetric"], false);

        // OpenVPN's `::/3` copied into eth1's table: as wide, as wrong.
        let mut snap = synced(host(), &settings);
        snap.links.push(crate::fixtures::tunnel(6, "tun0"));
        let answer = Answer::Route {
            table: 1003,
            kind: route_type::UNICAST,
            matched: Some(route(1003, "0.0.0.0", 1, None, 6, 83)),
            oif: Some(6),
            gateway: None,
            prefsrc: None,
        };
        let e = sent(&snap, &settings, "10.2.0.2", "10.12.0.2", &answer);
        assert_eq!(e.symmetric, Some(false));

        // A VPN server's clients (10.8.0.0/24 dev tun0) are a network behind the host.
        let answer = Answer::Route {
            table: 1003,
            kind: route_type::UNICAST,
            matched: Some(route(1003, "10.8.0.0", 24, None, 6, 83)),
            oif: Some(6),
            gateway: None,
            prefsrc: None,
        };
        let e = sent(&snap, &settings, "10.2.0.2", "10.8.0.6", &answer);
        assert_eq!(e.symmetric, Some(true));
        assert!(
            e.verdict.starts_with("direct: leaves dev tun0"),
            "{}",
            e.verdict
        );
    }

    #[test]
    fn unsynced_host_is_asymmetric_through_main() {
        let settings = Settings::default();
        let main = unicast(MAIN_TABLE, ETH0, "10.1.0.1");
        let e = sent(&host(), &settings, "10.2.0.2", "10.12.0.2", &main);
        assert_eq!(
            e.rule.unwrap().rule.text,
            "from all lookup main priority 32766"
        );
        assert_eq!(e.table.as_deref(), Some("main"));
        assert_eq!(e.table_of, None);
        assert_eq!(e.symmetric, Some(false));
        assert_eq!(
            e.verdict,
            "ASYMMETRIC: leaves via 10.1.0.1 dev eth0, but eth1 owns 10.2.0.2"
        );
    }

    #[test]
    fn local_delivery_and_foreign_sources() {
        let settings = Settings::default();
        let snap = synced(host(), &settings);
        let e = sent(&snap, &settings, "10.1.0.2", "10.2.0.2", &local());
        assert_eq!(
            e.rule.unwrap().rule.text,
            "from all lookup local priority 0"
        );
        assert_eq!(e.symmetric, None);
        assert!(e.verdict.contains("delivered locally"));

        let e = sent(&snap, &settings, "192.0.2.1", "10.12.0.2", &UNREACHABLE);
        assert!(e.rule.is_none());
        assert!(
            e.verdict
                .contains("192.0.2.1 is not an address of this host"),
            "{}",
            e.verdict
        );
        let main = unicast(MAIN_TABLE, ETH0, "10.1.0.1");
        let e = sent(&snap, &settings, "192.0.2.1", "10.12.0.2", &main);
        assert_eq!(e.owner, None);
        assert_eq!(e.symmetric, None);
        assert!(e.verdict.contains("give --iif"), "{}", e.verdict);
    }

    #[test]
    fn forwarded_traffic_is_judged_by_the_path_of_its_answer() {
        let settings = Settings {
            iif_rules: true,
            ..Settings::default()
        };
        let mut snap = synced(host(), &settings);
        snap.links.push(crate::fixtures::link(4, "lan0"));
        // A client beyond r2 reaches 10.50.0.2 behind lan0, entering eth1.
        let q = entering("eth1", "10.12.0.2", "10.50.0.2");
        let forward = through(MAIN_TABLE, route_type::UNICAST, 4);
        let (back_q, back_iif) = reply_query(&snap, &settings, &q, &forward).unwrap();
        // The answer carries eth1's mark (iif_rules' fwmark rule for table 1003 is there).
        assert_eq!(
            back_q,
            Query {
                mark: 0x0300_0000,
                ..entering("lan0", "10.50.0.2", "10.12.0.2")
            }
        );
        assert_eq!(back_iif, Some(4));
        let plain = Settings::default();
        let unmarked = synced(host(), &plain);
        assert_eq!(
            reply_query(&unmarked, &plain, &q, &forward).map(|(q, _)| q.mark),
            Some(0)
        );

        // The answer leaves through eth0: asymmetric.
        let back = unicast(MAIN_TABLE, ETH0, "10.1.0.1");
        let e = explain(
            &snap,
            &Uplinks::of(&snap, settings.protocol),
            &settings,
            &q,
            &forward,
            Some(&back),
        );
        assert_eq!(e.symmetric, Some(false));
        assert_eq!(
            e.verdict,
            "ASYMMETRIC: forwarded dev lan0, but the answer leaves via 10.1.0.1 dev eth0, not eth1 where this packet came in"
        );
        let reply = e.reply.as_ref().unwrap();
        assert_eq!(reply.iif.as_deref(), Some("lan0"));
        assert_eq!(reply.dev.as_deref(), Some("eth0"));
        assert_lines(
            &e.render(),
            &[
                "packet   from 10.12.0.2 to 10.50.0.2 entering eth1",
                "rule     from all lookup main priority 32766",
                "table    main",
                "egress   lan0",
                "answer:",
                "  packet   from 10.50.0.2 to 10.12.0.2 entering lan0, mark 0x3000000",
                "  rule     from all lookup main priority 32766",
                "  table    main",
                "  route    default via 10.1.0.1 dev eth0 metric 102",
                "  egress   eth0 via 10.1.0.1",
                "verdict  ASYMMETRIC: forwarded dev lan0, but the answer leaves via 10.1.0.1 \
                 dev eth0, not eth1 where this packet came in",
            ],
        );

        // The answer leaves through eth1: symmetric.
        let back = unicast(1003, ETH1, "10.2.0.1");
        let e = explain(
            &snap,
            &Uplinks::of(&snap, settings.protocol),
            &settings,
            &q,
            &forward,
            Some(&back),
        );
        assert_eq!(e.symmetric, Some(true));
        assert_eq!(
            e.verdict,
            "symmetric: forwarded dev lan0; the answer leaves via 10.2.0.1 dev eth1 again"
        );
        // ... taken there by the fwmark rule, which only a marked packet matches.
        let reply = e.reply.as_ref().unwrap();
        assert_eq!(
            reply.rule.as_ref().unwrap().rule.text,
            "from all fwmark 0x3000000/0xff000000 lookup 1003 priority 31998"
        );
        assert_eq!(reply.mark.as_deref(), Some("0x3000000"));
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["reply"]["mark"], "0x3000000");
        assert_eq!(json["reply"]["rule"]["fwmark"], "0x3000000");
        assert_eq!(json["reply"]["rule"]["fwmask"], "0xff000000");
        assert!(json.get("mark").is_none());

        // The reverse-path filter drops it on entry.
        for errno in [EXDEV, EINVAL] {
            let e = explain(
                &snap,
                &Uplinks::of(&snap, settings.protocol),
                &settings,
                &q,
                &Answer::Failed { errno },
                None,
            );
            assert!(
                e.verdict
                    .starts_with("dropped on entry to eth1: its reverse-path filter"),
                "{}",
                e.verdict
            );
        }

        // A lookup that sends it back out eth1 (someone's `iif eth1` rule into a table
        // without a route for 10.50.0.0/24): a hairpin.
        let e = explain(
            &snap,
            &Uplinks::of(&snap, settings.protocol),
            &settings,
            &q,
            &unicast(1003, ETH1, "10.2.0.1"),
            None,
        );
        assert_eq!(e.symmetric, None);
        assert_eq!(
            e.verdict,
            "HAIRPIN: sent back out via 10.2.0.1 dev eth1, the interface it came in through \
             (table 1003 has no route for 10.50.0.2; exempt its network?)"
        );
        assert_eq!(
            reply_query(&snap, &settings, &q, &Answer::Failed { errno: EXDEV }),
            None
        );
    }

    #[test]
    fn traffic_to_the_host_entering_an_interface_is_judged_by_the_hosts_answer() {
        let settings = Settings::default();
        let snap = synced(host(), &settings);
        let q = entering("eth1", "10.12.0.2", "10.2.0.2");
        let (back_q, back_iif) = reply_query(&snap, &settings, &q, &local()).unwrap();
        assert_eq!(back_q.iif, None);
        assert_eq!(back_iif, None);
        let back = unicast(1003, ETH1, "10.2.0.1");
        let e = explain(
            &snap,
            &Uplinks::of(&snap, settings.protocol),
            &settings,
            &q,
            &local(),
            Some(&back),
        );
        assert_eq!(e.symmetric, Some(true));
        assert!(
            e.verdict
                .starts_with("symmetric: 10.2.0.2 is this host's own address"),
            "{}",
            e.verdict
        );
    }

    #[test]
    fn failed_lookup_names_the_likely_rule() {
        let settings = Settings {
            strict: true,
            ..Settings::default()
        };
        let snap = synced(host(), &settings);
        let e = sent(&snap, &settings, "10.2.0.2", "10.12.0.2", &UNREACHABLE);
        let rule = e.rule.as_ref().unwrap();
        assert_eq!(rule.rule.text, "from 10.2.0.2 lookup 1003 priority 32000");
        assert!(!rule.certain);
        assert_eq!(e.symmetric, None);
        assert!(
            e.verdict.starts_with(
                "no route: the kernel's lookup fails with Network is unreachable (errno 101)"
            ),
            "{}",
            e.verdict
        );
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["symmetric"], serde_json::Value::Null);
        assert_eq!(json["rule"]["priority"], 32000);
        assert_eq!(json["rule"]["certain"], false);
        assert!(json["error"].is_string());
    }
}
