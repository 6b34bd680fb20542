//! `replies`: the host's replies from its uplinks' addresses leave through that uplink, as
//! the kernel's own lookups show ([`crate::views::replies`]); a reply that leaves through
//! another interface or into a tunnel is named with the rule or route that sends it there.

use super::{Finding, REPLIES};
use crate::model::errno_text;
use crate::model::host::HostFacts;
use crate::model::uplinks::Uplinks;
use crate::model::{Family, Rule, Snapshot};
use crate::settings::Settings;
use crate::views::iproute::{route_text, rule_text, table_name};
use crate::views::replies::{judge, Egress, Reply};

/// The program that installs `table`'s catch-all, for a table number that says so.
fn known_owner(table: u32) -> Option<&'static str> {
    match table {
        51820 => Some("wg-quick"),
        52 => Some("Tailscale"),
        220 => Some("strongSwan"),
        _ => None,
    }
}

/// `ip route get PEER from ADDRESS`, the reader's way to see the same answer.
fn ip_route_get(reply: &Reply) -> String {
    let six = match Family::of(&reply.query.to) {
        Family::V4 => "",
        Family::V6 => " -6",
    };
    format!(
        "ip{six} route get {} from {}",
        reply.query.to, reply.query.from
    )
}

/// Where the reply went, for the message: `into wg0, a tunnel` / `out of eth0 via 10.1.0.1`.
fn where_to(reply: &Reply) -> String {
    let dev = reply.dev.as_deref().unwrap_or("?");
    match (&reply.egress, reply.gateway) {
        (Egress::Tunnel, _) => format!("into {dev}, a tunnel,"),
        (_, Some(gw)) => format!("out of {dev} via {gw}"),
        (_, None) => format!("out of {dev}"),
    }
}

/// The culprit (a rule of someone else's, or the route our own rule found) and the fix.
fn culprit_and_fix(snapshot: &Snapshot, settings: &Settings, reply: &Reply) -> (String, String) {
    let table = reply.table.unwrap_or_default();
    let six = match Family::of(&reply.query.to) {
        Family::V4 => "",
        Family::V6 => " -6",
    };
    let ours_exists = snapshot.rules.iter().any(|r| {
        r.protocol == settings.protocol
            && r.src.is_some_and(|(a, len)| {
                crate::settings::Prefix::new(a, len).contains(&reply.query.from)
            })
    });
    let rule_name = |rule: &Rule| {
        let whose = known_owner(rule.table).map_or_else(String::new, |tool| format!(" ({tool})"));
        let text = rule_text(rule);
        let text = text
            .strip_suffix(&format!(" priority {}", rule.priority))
            .unwrap_or(&text);
        format!("rule {}: {text}{whose}", rule.priority)
    };
    match &reply.rule {
        Some(rule) if rule.protocol != settings.protocol && !settings.rule_priority_fixed => {
            let fix = format!(
                "run `symroute sync`: with `rule_priority` automatic it places symroute's rules \
                 before this one (at {}; they take only packets from the host's own addresses, \
                 the tunnel keeps the rest), or give that rule a priority above {}, if replies \
                 are not meant to follow it",
                settings.rule_priority, settings.rule_priority
            );
            (rule_name(rule), fix)
        }
        Some(rule)
            if rule.protocol != settings.protocol && rule.priority < settings.rule_priority =>
        {
            let fix = if ours_exists {
                let ahead = if rule.priority > 2 {
                    format!(
                        "set `rule_priority = {}` in /etc/symroute/symroute.toml and run \
                         `symroute sync`, so that symroute's `from ADDRESS` rules come first (they \
                         take only packets from the host's own addresses; the tunnel keeps the \
                         rest), or ",
                        rule.priority - 1
                    )
                } else {
                    String::new()
                };
                format!(
                    "{ahead}give that rule a priority above {}, if replies are not meant to \
                     follow it",
                    settings.rule_priority
                )
            } else {
                "symroute sync: no rule of symroute's covers this address yet".to_string()
            };
            (rule_name(rule), fix)
        }
        Some(rule) if rule.protocol == settings.protocol => {
            let Some(route) = &reply.route else {
                return (
                    format!("{} (table {})", rule_name(rule), table_name(table)),
                    format!(
                        "see `symroute explain {} {}`",
                        reply.query.from, reply.query.to
                    ),
                );
            };
            let text = route_text(route, &snapshot.links);
            let dev = reply.dev.as_deref().unwrap_or("?");
            let fix = if route.protocol == settings.protocol {
                format!(
                    "it is symroute's copy of main's route into {dev}, counted as a network \
                     behind the host although it takes a large share of the address space (a \
                     full tunnel): remove it with `ip{six} route del {text}` and update \
                     symroute (a full tunnel is an uplink, docs/design.md); `symroute sync` \
                     puts it back until then"
                )
            } else {
                format!(
                    "someone else's route in symroute's table: remove it with \
                     `ip{six} route del {text}` and stop what adds it"
                )
            };
            (
                format!("route {text} (reached by {})", rule_name(rule)),
                fix,
            )
        }
        Some(rule) if !ours_exists => (
            rule_name(rule),
            "symroute sync: no rule of symroute's covers this address yet".to_string(),
        ),
        Some(rule) => (
            rule_name(rule),
            format!(
                "see `symroute explain {} {}`: a rule of symroute's covers the address, yet \
                 this rule decides",
                reply.query.from, reply.query.to
            ),
        ),
        None => (
            format!("the lookup in table {}", table_name(table)),
            format!(
                "see `symroute explain {} {}`",
                reply.query.from, reply.query.to
            ),
        ),
    }
}

pub(super) fn check_replies(
    snapshot: &Snapshot,
    uplinks: &Uplinks,
    settings: &Settings,
    facts: &HostFacts,
) -> Vec<Finding> {
    let Some(answers) = &facts.replies else {
        return vec![REPLIES.skip("the kernel was not asked how replies are routed")];
    };
    if answers.is_empty() {
        return vec![REPLIES.skip("no managed address on an uplink")];
    }
    let replies = judge(snapshot, uplinks, answers);
    let mut out = Vec::new();
    // One finding per address: its first wrong reply names the culprit.
    let mut seen = Vec::new();
    for reply in &replies {
        let from = reply.query.from;
        if seen.contains(&from) {
            continue;
        }
        match reply.egress {
            _ if reply.is_wrong() => {
                seen.push(from);
                let (culprit, fix) = culprit_and_fix(snapshot, settings, reply);
                // A route that is the culprit is named there already.
                let matched = match &reply.route {
                    Some(r) if !culprit.starts_with("route ") => {
                        format!(", route {}", route_text(r, &snapshot.links))
                    }
                    _ => String::new(),
                };
                out.push(REPLIES.fail(
                    format!(
                        "{culprit} sends replies from {from} ({}) {} not out of {}: `{}` \
                         gives dev {} table {}{matched}",
                        reply.owner,
                        where_to(reply),
                        reply.owner,
                        ip_route_get(reply),
                        reply.dev.as_deref().unwrap_or("?"),
                        table_name(reply.table.unwrap_or_default()),
                    ),
                    fix,
                ));
            }
            Egress::NoRoute(errno) => {
                seen.push(from);
                let why = errno.map_or_else(|| "no usable route".to_string(), errno_text);
                out.push(REPLIES.warn(
                    format!(
                        "replies from {from} ({}) to {} find no way out: {why} (`{}`)",
                        reply.owner,
                        reply.query.to,
                        ip_route_get(reply)
                    ),
                    format!(
                        "check {}'s default route and `symroute explain {from} {}`",
                        reply.owner, reply.query.to
                    ),
                ));
            }
            _ => {}
        }
    }
    if out.is_empty() {
        let mut addresses: Vec<String> = replies.iter().map(|r| r.query.from.to_string()).collect();
        addresses.dedup();
        out.push(REPLIES.ok(format!(
            "replies from {} leave through their own uplink (the kernel's lookups of {} \
             replies)",
            addresses.join(", "),
            replies.len()
        )));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{host, ip, route, synced, through, tunnel, with_wg_quick, ETH1};
    use crate::model::{Answer, Probe};
    use crate::views::replies::probes;

    const WG0: u32 = 5;
    const TUN0: u32 = 6;

    /// Every probe of `snapshot` answered with `answer(probe)`.
    fn facts(
        snapshot: &Snapshot,
        settings: &Settings,
        answer: impl Fn(&Probe) -> Answer,
    ) -> HostFacts {
        HostFacts {
            replies: Some(
                probes(
                    snapshot,
                    &Uplinks::of(snapshot, settings.protocol),
                    settings,
                )
                .into_iter()
                .map(|p| {
                    let a = answer(&p);
                    (p, a)
                })
                .collect(),
            ),
            ..HostFacts::default()
        }
    }

    /// What a synced host's kernel answers: out of the owner's own table and gateway.
    fn own(p: &Probe) -> Answer {
        let n = p.owner - 1;
        let gw = format!("10.{n}.0.1");
        let table = 1000 + p.owner;
        let matched = route(table, "0.0.0.0", 0, Some(&gw), p.owner, 83);
        through(table, p.owner, Some(&gw), matched)
    }

    #[test]
    fn healthy_host_replies_through_each_uplink() {
        let settings = Settings::default();
        let snap = synced(host(), &settings);
        let found = check_replies(
            &snap,
            &Uplinks::of(&snap, settings.protocol),
            &settings,
            &facts(&snap, &settings, own),
        );
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].verdict, super::super::Verdict::Ok);
        assert_eq!(
            found[0].message,
            "replies from 10.1.0.2, 10.2.0.2 leave through their own uplink (the kernel's \
             lookups of 2 replies)"
        );
        let none = check_replies(
            &snap,
            &Uplinks::of(&snap, settings.protocol),
            &settings,
            &HostFacts::default(),
        );
        assert_eq!(none[0].verdict, super::super::Verdict::Skip);
    }

    #[test]
    fn wg_quick_rules_ahead_of_ours_fail_naming_the_rule() {
        // A fixed rule_priority: the fix is to move it (automatic placement would have).
        let settings = Settings {
            rule_priority_fixed: true,
            ..Settings::default()
        };
        let snap = with_wg_quick(synced(host(), &settings), WG0);
        let default_wg0 = route(51820, "0.0.0.0", 0, None, WG0, 3);
        let found = check_replies(
            &snap,
            &Uplinks::of(&snap, settings.protocol),
            &settings,
            &facts(&snap, &settings, |_| {
                through(51820, WG0, None, default_wg0.clone())
            }),
        );
        assert_eq!(found.len(), 2, "{found:#?}");
        let eth1 = &found[1];
        assert_eq!(eth1.verdict, super::super::Verdict::Fail);
        assert_eq!(
            eth1.message,
            "rule 31999: not from all fwmark 0xca6c lookup 51820 (wg-quick) sends replies \
             from 10.2.0.2 (eth1) into wg0, a tunnel, not out of eth1: `ip route get \
             192.0.2.1 from 10.2.0.2` gives dev wg0 table 51820, route default dev wg0 table \
             51820 scope link"
        );
        assert_eq!(
            eth1.fix.as_deref(),
            Some(
                "set `rule_priority = 31998` in /etc/symroute/symroute.toml and run `symroute \
                 sync`, so that symroute's `from ADDRESS` rules come first (they take only \
                 packets from the host's own addresses; the tunnel keeps the rest), or give \
                 that rule a priority above 32000, if replies are not meant to follow it"
            )
        );

        // Automatic: the rules are merely not placed yet, a sync places them.
        let auto = Settings {
            rule_priority: 31997,
            ..Settings::default()
        };
        let found = check_replies(
            &snap,
            &Uplinks::of(&snap, auto.protocol),
            &auto,
            &facts(&snap, &auto, |_| {
                through(51820, WG0, None, default_wg0.clone())
            }),
        );
        assert!(
            found[1].fix.as_deref().is_some_and(
                |f| f.starts_with("run `symroute sync`: with `rule_priority` automatic")
            ),
            "{found:#?}"
        );
    }

    #[test]
    fn a_tunnel_route_copied_into_our_table_fails_naming_the_route() {
        let settings = Settings::default();
        let mut snap = synced(host(), &settings);
        snap.links.push(tunnel(TUN0, "tun0"));
        let copy = route(1003, "0.0.0.0", 1, None, TUN0, 83);
        snap.tables.entry(1003).or_default().push(copy.clone());
        let found = check_replies(
            &snap,
            &Uplinks::of(&snap, settings.protocol),
            &settings,
            &facts(&snap, &settings, |p| match p.owner {
                ETH1 if p.query.to == ip("64.0.0.1") => through(1003, TUN0, None, copy.clone()),
                _ => own(p),
            }),
        );
        assert_eq!(found.len(), 1, "{found:#?}");
        assert_eq!(
            found[0].message,
            "route 0.0.0.0/1 dev tun0 table 1003 scope link (reached by rule 32000: from \
             10.2.0.2 lookup 1003) sends replies from 10.2.0.2 (eth1) into tun0, a tunnel, \
             not out of eth1: `ip route get 64.0.0.1 from 10.2.0.2` gives dev tun0 table 1003"
        );
        assert!(
            found[0].fix.as_deref().is_some_and(
                |f| f.contains("`ip route del 0.0.0.0/1 dev tun0 table 1003 scope link`")
            ),
            "{:?}",
            found[0].fix
        );
    }
}
