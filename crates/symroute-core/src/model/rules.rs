//! Other tools' rules as the host holds them: which are catch-alls that route every
//! unmarked packet (a VPN's full tunnel), and which tables those look up. Reading needs
//! this (the VPN tables' routes decide which interfaces are uplinks) and so does planning
//! (our rules go before such a rule: plan::placement). See docs/design.md, "Rules of other
//! tools".

use super::{Family, Rule, RuleVerdict, LOCAL_TABLE, MAIN_TABLE};

/// Main's own rule: catch-all rules after it see only what main had no route for.
const MAIN_PRIORITY: u32 = 32766;

/// Whether a rule of another tool routes every unmarked packet the host sends, whatever
/// its source and destination: no `from`, no `to`, no `iif` but `lo` (locally sent
/// packets carry it), no selector symroute does not model, a mark test that unmarked
/// packets pass (`not fwmark 51820`), and a lookup (of any table but `local`).
///
/// A rule that needs a mark is left alone: the mark is how a tool (Tailscale's and
/// WireGuard's own sockets, Cilium's proxy, kube-proxy) routes its own packets its own
/// way. Rules with a `from` or `to` are an administrator's explicit policy for those
/// addresses, and `local` decides only for the host's own addresses. A rule that refuses
/// everything (`unreachable`, `blackhole`, `prohibit`: a kill switch) is a deliberate
/// block, not a way: our rules never go ahead of it to get around it.
pub fn is_catch_all(rule: &Rule, protocol: u8) -> bool {
    let any = |sel: Option<(std::net::IpAddr, u8)>| sel.is_none_or(|(_, len)| len == 0);
    rule.protocol != protocol
        && any(rule.src)
        && any(rule.dst)
        && rule.iif.as_deref().is_none_or(|i| i == "lo")
        && !rule.extra.narrow
        && takes_unmarked(rule)
        && rule.extra.action == RuleVerdict::Lookup
        && rule.table != LOCAL_TABLE
}

/// Whether a packet without a mark matches the rule's mark test. `not` inverts the whole
/// match: with a mark as the only selector it is `not fwmark M`, without any it matches
/// nothing.
fn takes_unmarked(rule: &Rule) -> bool {
    let unmarked = rule.fwmark.is_none_or(|(mark, mask)| mark & mask == 0);
    if rule.extra.invert {
        rule.fwmark.is_some() && !unmarked
    } else {
        unmarked
    }
}

/// The tables (with their family) that other tools' catch-all rules look up before main:
/// where a VPN keeps the default route of its full tunnel (wg-quick's 51820, Tailscale's
/// 52, strongSwan's 220). Main, `local` and `default` are not among them. `protocol` is
/// ours.
pub fn vpn_tables(rules: &[Rule], protocol: u8) -> Vec<(Family, u32)> {
    let mut tables: Vec<(Family, u32)> = rules
        .iter()
        .filter(|r| {
            r.priority < MAIN_PRIORITY
                && !matches!(r.table, MAIN_TABLE | LOCAL_TABLE | DEFAULT_TABLE)
                && is_catch_all(r, protocol)
        })
        .map(|r| (r.family, r.table))
        .collect();
    tables.sort_unstable();
    tables.dedup();
    tables
}

/// `RT_TABLE_DEFAULT`.
pub(crate) const DEFAULT_TABLE: u32 = 253;
