//! The pure decisions: what an interface's table and rules should be, given a snapshot
//! (here), the operations between that and what is there ([`diff`]), and the nftables table
//! `iif_rules` wants ([`nft`]).

pub mod diff;
pub mod nft;
pub mod placement;
pub mod steer;
pub mod uplinks;

use crate::model::rules;
use crate::model::uplinks::{vpn_routes, Uplinks};
pub use crate::model::Snapshot;
use crate::model::{
    route_type, scope, Address, Extras, Family, Link, NextHops, Route, Rule, RuleExtra, MAIN_TABLE,
};
use crate::route_metrics::RouteMetrics;
use crate::settings::{Prefix, Settings};
use std::borrow::Cow;
use std::collections::BTreeMap;
use uplinks::behind_routes;

/// Metric of the `unreachable default` that closes a strict table: after every real default.
pub const STRICT_METRIC: u32 = u32::MAX;

/// The wanted state of one interface's table and rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InterfacePlan {
    pub ifindex: u32,
    pub name: String,
    pub table: u32,
    pub routes: Vec<Route>,
    pub rules: Vec<Rule>,
    /// With `iif_rules`: the mark of connections entering this interface, when it gets
    /// rules and its index fits in `fwmark_mask` ([`Settings::mark_for`]).
    pub mark: Option<u32>,
}

impl InterfacePlan {
    /// With `iif_rules`, an interface that gets rules but whose index does not fit in
    /// `fwmark_mask`: its connections cannot be marked.
    pub fn unmarkable(&self, settings: &Settings) -> bool {
        settings.iif_rules && !self.rules.is_empty() && self.mark.is_none()
    }
}

/// Reasons symroute refuses to plan an interface.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error(
        "{interface}: table {table} already holds a route that is not symroute's ({route}, protocol {protocol}); \
         refusing to touch it (set table_base to move symroute's tables)"
    )]
    ForeignTable {
        interface: String,
        table: u32,
        route: String,
        protocol: u8,
    },
    #[error(
        "{interface}: prefix_rules: subnet {prefix} is also on {other}; a rule for the subnet \
         cannot tell the two apart (turn prefix_rules off or give the interfaces distinct subnets)"
    )]
    SharedSubnet {
        interface: String,
        other: String,
        prefix: String,
    },
}

impl PlanError {
    /// The interface that was refused.
    pub fn interface(&self) -> &str {
        match self {
            PlanError::ForeignTable { interface, .. }
            | PlanError::SharedSubnet { interface, .. } => interface,
        }
    }
}

/// Plans the interfaces of one snapshot. What every plan needs of all of main (which
/// interfaces are uplinks) is worked out once, not once per interface: a `--all` run over a
/// 100 000-route main with many interfaces would otherwise walk main once for each.
#[derive(Debug, Clone)]
pub struct Planner<'a> {
    snapshot: &'a Snapshot,
    settings: &'a Settings,
    uplinks: Cow<'a, Uplinks>,
}

impl<'a> Planner<'a> {
    /// Classifying main itself: for tests (a run and the views plan with the read's
    /// classification, [`Planner::with_uplinks`]).
    #[cfg(test)]
    pub fn new(snapshot: &'a Snapshot, settings: &'a Settings) -> Planner<'a> {
        Planner {
            snapshot,
            settings,
            uplinks: Cow::Owned(Uplinks::of(snapshot, settings.protocol)),
        }
    }

    /// With `uplinks` already classified from `snapshot.main_routes` (by the read that
    /// needed them to choose what to read).
    pub fn with_uplinks(
        snapshot: &'a Snapshot,
        settings: &'a Settings,
        uplinks: &'a Uplinks,
    ) -> Planner<'a> {
        Planner {
            snapshot,
            settings,
            uplinks: Cow::Borrowed(uplinks),
        }
    }

    #[cfg(test)]
    pub fn uplinks(&self) -> &Uplinks {
        &self.uplinks
    }

    /// The wanted table and rules of `link`: a copy of every unicast main-table route
    /// through it (only its own nexthops of a multipath route), and one rule per usable
    /// address.
    ///
    /// An interface with no usable address gets nothing: a table no rule points to would
    /// only be clutter (loopback, bridges without addresses, links still waiting for DHCP).
    /// Only an interface that would get something is refused when its table holds someone
    /// else's routes.
    pub fn interface(&self, link: &Link) -> Result<InterfacePlan, PlanError> {
        interface_plan(self.snapshot, &self.uplinks, self.settings, link)
    }
}

/// One interface planned alone ([`Planner::interface`]), for tests: every caller in the
/// crate plans through one [`Planner`] per snapshot.
#[cfg(test)]
pub fn plan_interface(
    snapshot: &Snapshot,
    settings: &Settings,
    link: &Link,
) -> Result<InterfacePlan, PlanError> {
    Planner::new(snapshot, settings).interface(link)
}

fn interface_plan(
    snapshot: &Snapshot,
    uplinks: &Uplinks,
    settings: &Settings,
    link: &Link,
) -> Result<InterfacePlan, PlanError> {
    let table = settings.table_for(link.index);
    let mut rules: Vec<Rule> = if link.loopback || !settings.manages(&link.name) {
        Vec::new()
    } else {
        source_rules(snapshot, settings, link, table)?
    };
    rules.sort();
    rules.dedup();

    if rules.is_empty() {
        return Ok(InterfacePlan {
            ifindex: link.index,
            name: link.name.clone(),
            table,
            routes: Vec::new(),
            rules,
            mark: None,
        });
    }
    if let Some(foreign) = snapshot
        .table(table)
        .iter()
        .find(|r| r.protocol != settings.protocol)
    {
        return Err(PlanError::ForeignTable {
            interface: link.name.clone(),
            table,
            route: foreign.display(&snapshot.links).to_string(),
            protocol: foreign.protocol,
        });
    }

    let mut families: Vec<Family> = rules.iter().map(|r| r.family).collect();
    families.dedup();
    let mark = if settings.iif_rules {
        settings.mark_for(link.index)
    } else {
        None
    };
    if let Some(mark) = mark {
        // Answers of connections that came in through this interface (marked by the
        // `inet symroute` nftables table) are routed by its table.
        rules.extend(families.iter().map(|family| Rule {
            family: *family,
            priority: settings.mark_priority(),
            src: None,
            dst: None,
            iif: None,
            fwmark: Some((mark, settings.fwmark_mask)),
            table,
            protocol: settings.protocol,
            suppress_prefixlen: None,
            extra: RuleExtra::default(),
        }));
        rules.sort();
    }
    // A family without a rule would never look its routes up (fe80::/64 of an IPv4 uplink).
    let mut routes = mirror_routes(&snapshot.main_routes, settings, link.index, table);
    routes.retain(|r| families.contains(&r.family()));
    for family in &families {
        // A macvlan (keepalived's `use_vmac`) answers through its parent's gateway: main
        // has only its connected route, if any.
        if let Some(parent) = uplinks.parent(*family, link.index) {
            let borrowed = mirror_routes(&snapshot.main_routes, settings, parent, table);
            add_missing(
                &mut routes,
                borrowed.into_iter().filter(|r| r.family() == *family),
            );
        }
    }
    // Our rules come before the VPN's catch-all rules, which would otherwise have routed a
    // tunnel address's packets by the VPN's tables: what those tables route through a
    // tunnel (a full tunnel's default, Tailscale's peers) stays in its table, so that a
    // `strict` table does not cut the tunnel's own address off from the tunnel. Main's
    // routes win; an interface main already uses as a way out keeps main's ways alone.
    let tables: Vec<(Family, u32)> = rules::vpn_tables(&snapshot.rules, settings.protocol)
        .into_iter()
        .filter(|(f, _)| families.contains(f) && !uplinks.is_uplink_by_main(*f, link.index))
        .collect();
    if !tables.is_empty() {
        let vpn = vpn_routes(snapshot, &tables);
        let copies = mirror_of(vpn.iter().copied(), settings, link.index, table);
        add_missing(&mut routes, copies.into_iter());
    }
    // An uplink's table needs what is behind the host, or the answers to containers and LAN
    // clients would leave through its gateway. Other tables fall through to main for it,
    // except a `strict` table, which is closed: it gets the copies too, so that closing it
    // cuts its address off only from what is beyond every direct route.
    let mut behind = Vec::new();
    for family in families
        .iter()
        .filter(|f| settings.strict || uplinks.is_uplink(**f, link.index))
    {
        behind.extend(behind_routes(
            &snapshot.main_routes,
            uplinks,
            settings,
            *family,
            table,
            &routes,
        ));
    }
    routes.extend(behind);
    set_route_metrics(&mut routes, snapshot, settings);
    if settings.strict {
        routes.extend(
            families
                .iter()
                .map(|family| unreachable_default(*family, table, settings)),
        );
    }

    Ok(InterfacePlan {
        ifindex: link.index,
        name: link.name.clone(),
        table,
        routes,
        rules,
        mark,
    })
}

/// The `from` rules of `link`: one per usable address, or one per subnet with `prefix_rules`.
fn source_rules(
    snapshot: &Snapshot,
    settings: &Settings,
    link: &Link,
    table: u32,
) -> Result<Vec<Rule>, PlanError> {
    let usable = |a: &&Address| a.wants_rule() && settings.family_enabled(Family::of(&a.addr));
    let mut rules = Vec::new();
    for address in snapshot
        .addresses
        .iter()
        .filter(|a| a.ifindex == link.index)
        .filter(usable)
    {
        let family = Family::of(&address.addr);
        let src = if settings.prefix_rules {
            let prefix = Prefix::new(address.addr, address.prefix_len);
            let clash = snapshot
                .addresses
                .iter()
                .filter(usable)
                .find(|a| a.ifindex != link.index && prefix.contains(&a.addr));
            if let Some(other) = clash {
                return Err(PlanError::SharedSubnet {
                    interface: link.name.clone(),
                    other: snapshot.link_name(other.ifindex),
                    prefix: prefix.to_string(),
                });
            }
            (prefix.addr, prefix.len)
        } else {
            (address.addr, family.host_prefix_len())
        };
        rules.push(Rule {
            family,
            priority: settings.rule_priority,
            src: Some(src),
            dst: None,
            iif: None,
            fwmark: None,
            table,
            protocol: settings.protocol,
            suppress_prefixlen: None,
            extra: RuleExtra::default(),
        });
    }
    Ok(rules)
}

/// Sets `route_metrics` on the copies of main's routes: each gets the global metrics under
/// those of the interface it leaves through (`[interface.NAME]`); a route whose next hops
/// leave through several interfaces gets the global ones only.
fn set_route_metrics(routes: &mut [Route], snapshot: &Snapshot, settings: &Settings) {
    if !settings.sets_route_metrics() {
        return;
    }
    let mut by_link: BTreeMap<u32, RouteMetrics> = BTreeMap::new();
    for route in routes {
        let out = match route.nexthops.as_slice() {
            [first, rest @ ..] if rest.iter().all(|nh| nh.ifindex == first.ifindex) => {
                Some(first.ifindex)
            }
            _ => None,
        };
        match out {
            Some(ifindex) => by_link
                .entry(ifindex)
                .or_insert_with(|| settings.route_metrics_for(&snapshot.link_name(ifindex)))
                .apply(route),
            None => settings.route_metrics.apply(route),
        }
    }
}

fn unreachable_default(family: Family, table: u32, settings: &Settings) -> Route {
    Route {
        table,
        dst: family.unspecified(),
        dst_len: 0,
        tos: 0,
        metric: STRICT_METRIC,
        protocol: settings.protocol,
        scope: scope::UNIVERSE,
        kind: route_type::UNREACHABLE,
        pref: match family {
            Family::V4 => None,
            // The kernel reports a router preference on every IPv6 route: medium.
            Family::V6 => Some(0),
        },
        extras: Extras::default(),
        nexthops: NextHops::default(),
    }
}

/// The exemption rules: `to PREFIX lookup main`, just before ours, for every `exempt` prefix.
pub fn plan_exempt(settings: &Settings) -> Vec<Rule> {
    let mut rules: Vec<Rule> = settings
        .exempt
        .iter()
        .filter(|p| settings.family_enabled(p.family()))
        .map(|p| Rule {
            family: p.family(),
            priority: settings.exempt_priority(),
            src: None,
            dst: Some((p.addr, p.len)),
            iif: None,
            fwmark: None,
            table: MAIN_TABLE,
            protocol: settings.protocol,
            suppress_prefixlen: None,
            extra: RuleExtra::default(),
        })
        .collect();
    rules.sort();
    rules
}

/// Adds to `routes` those of `more` whose prefix (destination, length, tos) `routes` has
/// no route for, whatever the metric: an interface's own routes win.
fn add_missing(routes: &mut Vec<Route>, more: impl Iterator<Item = Route>) {
    let taken: std::collections::BTreeSet<(std::net::IpAddr, u8, u8)> =
        routes.iter().map(|r| (r.dst, r.dst_len, r.tos)).collect();
    routes.extend(more.filter(|r| !taken.contains(&(r.dst, r.dst_len, r.tos))));
}

/// Copies of the main-table unicast routes through `ifindex`, retargeted to `table`.
fn mirror_routes(main: &[Route], settings: &Settings, ifindex: u32, table: u32) -> Vec<Route> {
    mirror_of(
        main.iter().filter(|r| r.table == MAIN_TABLE),
        settings,
        ifindex,
        table,
    )
}

/// Copies of the unicast routes of `source` through `ifindex`, retargeted to `table`.
fn mirror_of<'a>(
    source: impl Iterator<Item = &'a Route> + Clone,
    settings: &Settings,
    ifindex: u32,
    table: u32,
) -> Vec<Route> {
    let mirrored = |route: &&Route| {
        route.kind == route_type::UNICAST
            && route.uses_link(ifindex)
            && settings.family_enabled(route.family())
    };
    // Counted first: a list grown by doubling would hold up to twice the table.
    let mut copies: Vec<Route> = Vec::with_capacity(source.clone().filter(mirrored).count());
    copies.extend(source.filter(mirrored).map(|route| {
        let mut copy = route.clone();
        copy.table = table;
        copy.protocol = settings.protocol;
        copy.nexthops.retain(|nh| nh.ifindex == ifindex);
        copy
    }));
    // Sorted by key (stable: routes under one key keep the kernel's order), then merged in
    // place. The kernel dumps in key order already, so usually there is nothing to sort
    // (and no scratch copy of the table to allocate).
    if !copies.is_sorted_by_key(Route::sort_key) {
        copies.sort_by_key(Route::sort_key);
    }
    // IPv4 can hold several routes under one key (`ip route append`): one table entry per
    // key is what a replace can express, so they become one multipath route.
    copies.dedup_by(|later, first| {
        let same = later.key() == first.key();
        if same {
            first.nexthops.append(&mut later.nexthops);
        }
        same
    });
    let mut merged = copies;
    for route in &mut merged {
        route.nexthops.sort_dedup();
        if let [single] = route.nexthops.as_mut_slice() {
            // A weight means nothing outside a multipath route; the kernel reports 0.
            single.hops = 0;
        }
    }
    merged
}

/// Our rules whose table belongs to no existing interface: the interface is gone and its
/// rules are stale. Returns them with the routes of ours still left in their tables, and the
/// routes of ours in tables of symroute's range whose interface is gone even when no rule
/// points there (a run killed after writing a table and before its rules, or after deleting
/// the rules and before the routes; `unreachable` routes outlive their interface).
pub fn plan_garbage(snapshot: &Snapshot, settings: &Settings) -> (Vec<Rule>, Vec<Route>) {
    let mut rules: Vec<Rule> = snapshot
        .rules
        .iter()
        // Exemptions point at main and are planned by `plan_exempt`; steering rules by
        // `steer::plan`.
        .filter(|r| r.protocol == settings.protocol && r.table != MAIN_TABLE)
        .filter(|r| !r.is_steering(settings.protocol))
        .filter(|r| match settings.interface_of_table(r.table) {
            Some(ifindex) => snapshot.link(ifindex).is_none(),
            None => true,
        })
        .cloned()
        .collect();
    rules.sort();
    let mut tables: Vec<u32> = rules.iter().map(|r| r.table).collect();
    tables.extend(snapshot.tables.keys().copied().filter(|t| {
        settings
            .interface_of_table(*t)
            .is_some_and(|i| snapshot.link(i).is_none())
    }));
    tables.sort_unstable();
    tables.dedup();
    let routes = tables
        .iter()
        .flat_map(|t| snapshot.table(*t))
        .filter(|r| r.protocol == settings.protocol)
        .cloned()
        .collect();
    (rules, routes)
}

/// The stale state of one table: what [`plan_garbage`] found in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Garbage {
    pub table: u32,
    pub rules: Vec<Rule>,
    pub routes: Vec<Route>,
}

/// [`plan_garbage`], table by table in ascending order.
pub fn garbage_by_table(snapshot: &Snapshot, settings: &Settings) -> Vec<Garbage> {
    let (rules, routes) = plan_garbage(snapshot, settings);
    let mut tables: Vec<u32> = rules.iter().map(|r| r.table).collect();
    tables.extend(routes.iter().map(|r| r.table));
    tables.sort_unstable();
    tables.dedup();
    tables
        .into_iter()
        .map(|table| Garbage {
            table,
            rules: rules.iter().filter(|r| r.table == table).cloned().collect(),
            routes: routes
                .iter()
                .filter(|r| r.table == table)
                .cloned()
                .collect(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{self, hop, ip, link, unicast};
    use crate::model::{addr_flags, scope, NextHop};

    const ETH0: u32 = 2;
    const ETH1: u32 = 3;

    fn addr(ifindex: u32, a: &str, scope: u8, flags: u32) -> Address {
        let addr = ip(a);
        Address {
            ifindex,
            prefix_len: if addr.is_ipv4() { 24 } else { 64 },
            addr,
            scope,
            flags,
        }
    }

    /// A main-table route as a DHCP client writes it.
    fn route(dst: &str, len: u8, metric: u32, nexthops: Vec<NextHop>) -> Route {
        unicast(MAIN_TABLE, dst, len, metric, 4, nexthops)
    }

    fn two_uplinks() -> Snapshot {
        Snapshot {
            links: vec![link(ETH0, "eth0"), link(ETH1, "eth1")],
            addresses: vec![
                addr(ETH0, "10.1.0.2", scope::UNIVERSE, 0),
                addr(ETH1, "10.2.0.2", scope::UNIVERSE, 0),
                addr(ETH1, "fd02::2", scope::UNIVERSE, 0),
                addr(ETH1, "fe80::2", scope::LINK, 0),
            ],
            main_routes: vec![
                route("0.0.0.0", 0, 100, vec![hop(ETH0, Some("10.1.0.1"))]),
                route("0.0.0.0", 0, 101, vec![hop(ETH1, Some("10.2.0.1"))]),
                route("10.1.0.0", 24, 0, vec![hop(ETH0, None)]),
                route("10.2.0.0", 24, 0, vec![hop(ETH1, None)]),
                route("::", 0, 101, vec![hop(ETH1, Some("fe80::1"))]),
            ],
            ..Snapshot::default()
        }
    }

    fn settings() -> Settings {
        Settings::default()
    }

    /// The plan of the interface at `position` in `snap.links`.
    fn plan_of(snap: &Snapshot, settings: &Settings, position: usize) -> InterfacePlan {
        plan_interface(snap, settings, &snap.links[position]).unwrap()
    }

    fn routes_of(plan: &InterfacePlan) -> Vec<String> {
        plan.routes
            .iter()
            .map(|r| r.display(&[]).to_string())
            .collect()
    }

    fn rules_of(plan: &InterfacePlan) -> Vec<String> {
        plan.rules.iter().map(Rule::to_string).collect()
    }

    /// The planned routes to `dst`, whatever their prefix length.
    fn routes_to<'a>(plan: &'a InterfacePlan, dst: &str) -> Vec<&'a Route> {
        plan.routes.iter().filter(|r| r.dst == ip(dst)).collect()
    }

    #[test]
    fn table_mirrors_only_routes_through_the_interface() {
        let snap = two_uplinks();
        let plan = plan_of(&snap, &settings(), 1);
        assert_eq!(plan.table, 1003);
        let dsts: Vec<String> = plan
            .routes
            .iter()
            .map(|r| format!("{}/{}", r.dst, r.dst_len))
            .collect();
        assert_eq!(dsts, ["0.0.0.0/0", "10.2.0.0/24", "::/0"]);
        assert!(plan
            .routes
            .iter()
            .all(|r| r.table == 1003 && r.protocol == 83));
    }

    #[test]
    fn ipv6_link_local_gateway_is_kept() {
        let snap = two_uplinks();
        let plan = plan_of(&snap, &settings(), 1);
        let v6_default = plan
            .routes
            .iter()
            .find(|r| r.family() == Family::V6)
            .unwrap();
        assert_eq!(v6_default.nexthops, vec![hop(ETH1, Some("fe80::1"))]);
        assert_eq!(v6_default.metric, 101);
    }

    #[test]
    fn one_rule_per_global_address_skipping_link_local_and_tentative() {
        let mut snap = two_uplinks();
        snap.addresses.push(addr(
            ETH1,
            "fd02::99",
            scope::UNIVERSE,
            addr_flags::TENTATIVE,
        ));
        snap.addresses.push(addr(
            ETH1,
            "fd02::98",
            scope::UNIVERSE,
            addr_flags::DADFAILED,
        ));
        snap.addresses
            .push(addr(ETH1, "169.254.3.3", scope::UNIVERSE, 0));
        snap.addresses.push(addr(ETH1, "127.0.0.9", scope::HOST, 0));
        let plan = plan_of(&snap, &settings(), 1);
        assert_eq!(
            rules_of(&plan),
            [
                "from 10.2.0.2 lookup 1003 priority 32000",
                "from fd02::2 lookup 1003 priority 32000"
            ]
        );
    }

    #[test]
    fn ecmp_route_contributes_only_its_own_nexthops() {
        let mut snap = two_uplinks();
        snap.main_routes.push(route(
            "192.0.2.0",
            24,
            10,
            vec![
                hop(ETH0, Some("10.1.0.1")),
                hop(ETH1, Some("10.2.0.1")),
                hop(ETH1, Some("10.2.0.254")),
            ],
        ));
        let plan = plan_of(&snap, &settings(), 1);
        let ecmp = routes_to(&plan, "192.0.2.0")[0];
        assert_eq!(
            ecmp.nexthops,
            vec![hop(ETH1, Some("10.2.0.1")), hop(ETH1, Some("10.2.0.254"))]
        );
        let plan0 = plan_of(&snap, &settings(), 0);
        let ecmp0 = routes_to(&plan0, "192.0.2.0")[0];
        assert_eq!(ecmp0.nexthops, vec![hop(ETH0, Some("10.1.0.1"))]);
    }

    #[test]
    fn single_nexthop_left_from_weighted_ecmp_loses_its_weight() {
        let mut snap = two_uplinks();
        let mut weighted = hop(ETH1, Some("10.2.0.1"));
        weighted.hops = 4;
        snap.main_routes.push(route(
            "192.0.2.0",
            24,
            10,
            vec![hop(ETH0, Some("10.1.0.1")), weighted],
        ));
        let plan = plan_of(&snap, &settings(), 1);
        let ecmp = routes_to(&plan, "192.0.2.0")[0];
        assert_eq!(ecmp.nexthops[0].hops, 0);
    }

    #[test]
    fn non_unicast_and_other_tables_are_not_mirrored() {
        let mut snap = two_uplinks();
        let mut blackhole = route("198.51.100.0", 24, 0, vec![hop(ETH1, None)]);
        blackhole.kind = 6;
        snap.main_routes.push(blackhole);
        let mut other_table = route("203.0.113.0", 24, 0, vec![hop(ETH1, None)]);
        other_table.table = 200;
        snap.main_routes.push(other_table);
        let plan = plan_of(&snap, &settings(), 1);
        assert_eq!(plan.routes.len(), 3);
    }

    #[test]
    fn interface_without_usable_address_gets_nothing() {
        let mut snap = two_uplinks();
        snap.addresses
            .retain(|a| a.ifindex != ETH1 || a.scope == scope::LINK);
        let plan = plan_of(&snap, &settings(), 1);
        assert!(plan.rules.is_empty() && plan.routes.is_empty());
    }

    #[test]
    fn foreign_route_in_our_table_is_refused_naming_the_table() {
        let mut snap = two_uplinks();
        let mut foreign = route("10.9.0.0", 24, 0, vec![hop(ETH1, None)]);
        foreign.table = 1003;
        foreign.protocol = 4;
        snap.tables.insert(1003, vec![foreign]);
        let err = plan_interface(&snap, &settings(), &snap.links[1]).unwrap_err();
        assert!(matches!(err, PlanError::ForeignTable { table: 1003, .. }));
        assert!(err.to_string().contains("table 1003"), "{err}");
        assert!(err.to_string().starts_with("eth1: "), "{err}");
    }

    #[test]
    fn garbage_is_our_rules_of_vanished_interfaces_only() {
        let mut snap = two_uplinks();
        let rule = |table, protocol| fixtures::rule(32000, Some(("10.7.0.2", 32)), table, protocol);
        snap.rules = vec![rule(1003, 83), rule(1042, 83), rule(1042, 4), rule(200, 83)];
        let (rules, _) = plan_garbage(&snap, &settings());
        let tables: Vec<u32> = rules.iter().map(|r| r.table).collect();
        assert_eq!(tables, [200, 1042]);
    }

    #[test]
    fn garbage_includes_rule_less_tables_of_vanished_interfaces() {
        let mut snap = two_uplinks();
        let ours = |table: u32, protocol: u8| {
            route("192.0.2.0", 24, 0, vec![hop(42, Some("10.7.0.1"))])
                .with_table(table)
                .with_protocol(protocol)
        };
        // A run killed after writing table 1042 and before its rule; a foreign route beside
        // ours there; eth1's own table (it still exists) and a table outside the range.
        snap.tables
            .insert(1042, vec![ours(1042, 83), ours(1042, 4)]);
        snap.tables.insert(1003, vec![ours(1003, 83)]);
        snap.tables.insert(200, vec![ours(200, 83)]);
        let (rules, routes) = plan_garbage(&snap, &settings());
        assert!(rules.is_empty());
        assert_eq!(routes, vec![ours(1042, 83)]);
    }

    #[test]
    fn appended_ipv4_routes_with_one_key_merge_into_multipath() {
        let mut snap = two_uplinks();
        snap.main_routes
            .push(route("192.0.2.0", 24, 5, vec![hop(ETH1, Some("10.2.0.1"))]));
        snap.main_routes.push(route(
            "192.0.2.0",
            24,
            5,
            vec![hop(ETH1, Some("10.2.0.254"))],
        ));
        let plan = plan_of(&snap, &settings(), 1);
        let merged = routes_to(&plan, "192.0.2.0");
        assert_eq!(merged.len(), 1);
        assert_eq!(merged[0].nexthops.len(), 2);
    }

    #[test]
    fn prefix_rules_cover_the_subnet() {
        let snap = two_uplinks();
        let settings = Settings {
            prefix_rules: true,
            ..settings()
        };
        let plan = plan_of(&snap, &settings, 1);
        assert_eq!(
            rules_of(&plan),
            [
                "from 10.2.0.0/24 lookup 1003 priority 32000",
                "from fd02::/64 lookup 1003 priority 32000"
            ]
        );
    }

    #[test]
    fn prefix_rules_are_refused_for_a_shared_subnet() {
        let mut snap = two_uplinks();
        snap.addresses
            .push(addr(ETH0, "10.2.0.77", scope::UNIVERSE, 0));
        let settings = Settings {
            prefix_rules: true,
            ..settings()
        };
        let err = plan_interface(&snap, &settings, &snap.links[1]).unwrap_err();
        assert_eq!(
            err,
            PlanError::SharedSubnet {
                interface: "eth1".into(),
                other: "eth0".into(),
                prefix: "10.2.0.0/24".into()
            }
        );
        // Per-address rules have no such problem.
        assert!(plan_interface(&snap, &self::settings(), &snap.links[1]).is_ok());
    }

    #[test]
    fn iif_rules_are_fwmark_rules_per_family_before_the_from_rules() {
        let snap = two_uplinks();
        let settings = Settings {
            iif_rules: true,
            ..settings()
        };
        let plan = plan_of(&snap, &settings, 1);
        assert_eq!(plan.mark, Some(0x0300_0000));
        assert_eq!(
            rules_of(&plan),
            [
                "from all fwmark 0x3000000/0xff000000 lookup 1003 priority 31998",
                "from 10.2.0.2 lookup 1003 priority 32000",
                "from all fwmark 0x3000000/0xff000000 lookup 1003 priority 31998",
                "from fd02::2 lookup 1003 priority 32000",
            ]
        );
        assert_eq!(
            plan.rules
                .iter()
                .filter(|r| r.fwmark.is_some() && r.family == Family::V6)
                .count(),
            1
        );
        assert!(plan.rules.iter().all(|r| r.iif.is_none()));
        // eth0 has no IPv6 address: no IPv6 fwmark rule.
        let plan0 = plan_of(&snap, &settings, 0);
        assert_eq!(plan0.mark, Some(0x0200_0000));
        assert_eq!(plan0.rules.iter().filter(|r| r.fwmark.is_some()).count(), 1);
        assert!(!plan0.unmarkable(&settings));

        // Off: no mark, no fwmark rule.
        let plan = plan_of(&snap, &self::settings(), 1);
        assert_eq!(plan.mark, None);
        assert!(plan.rules.iter().all(|r| r.fwmark.is_none()));

        // An index beyond what fwmark_mask holds: `from` rules only, and said so.
        let narrow = Settings {
            fwmark_mask: 0x0300_0000,
            ..settings
        };
        let mut snap = two_uplinks();
        snap.links[1].index = 4;
        for a in &mut snap.addresses {
            if a.ifindex == ETH1 {
                a.ifindex = 4;
            }
        }
        let plan = plan_of(&snap, &narrow, 1);
        assert_eq!(plan.mark, None);
        assert!(plan.unmarkable(&narrow));
        assert_eq!(plan.rules.len(), 2);
        assert!(plan.rules.iter().all(|r| r.src.is_some()));
    }

    #[test]
    fn interface_without_rules_gets_no_mark() {
        let mut snap = two_uplinks();
        snap.addresses.retain(|a| a.ifindex != ETH1);
        let settings = Settings {
            iif_rules: true,
            ..settings()
        };
        let plan = plan_of(&snap, &settings, 1);
        assert_eq!(plan.mark, None);
        assert!(plan.rules.is_empty() && !plan.unmarkable(&settings));
    }

    #[test]
    fn strict_tables_end_in_unreachable_default() {
        let snap = two_uplinks();
        let settings = Settings {
            strict: true,
            ..settings()
        };
        let plan = plan_of(&snap, &settings, 1);
        let closers: Vec<&Route> = plan
            .routes
            .iter()
            .filter(|r| r.kind == route_type::UNREACHABLE)
            .collect();
        assert_eq!(closers.len(), 2);
        assert!(closers
            .iter()
            .all(|r| r.dst_len == 0 && r.metric == STRICT_METRIC && r.nexthops.is_empty()));
    }

    #[test]
    fn exempt_prefixes_become_rules_to_main_just_before_ours() {
        let settings = Settings {
            exempt: vec![
                Prefix::new(ip("172.17.0.0"), 16),
                Prefix::new(ip("fd00:1::"), 64),
            ],
            ipv6: false,
            ..settings()
        };
        let rules: Vec<String> = plan_exempt(&settings).iter().map(Rule::to_string).collect();
        assert_eq!(
            rules,
            ["from all to 172.17.0.0/16 lookup main priority 31999"]
        );
    }

    #[test]
    fn excluded_interfaces_get_nothing() {
        let snap = two_uplinks();
        let settings = Settings {
            exclude: vec!["eth1".into()],
            ..settings()
        };
        let plan = plan_of(&snap, &settings, 1);
        assert!(plan.rules.is_empty() && plan.routes.is_empty());
        assert!(!plan_of(&snap, &settings, 0).rules.is_empty());
    }

    const DOCKER0: u32 = 4;
    const LAN0: u32 = 5;

    /// [`two_uplinks`] plus a bridge with a ULA and a gateway-less LAN NIC.
    fn docker_host() -> Snapshot {
        let mut snap = two_uplinks();
        snap.links
            .extend([link(DOCKER0, "docker0"), link(LAN0, "lan0")]);
        snap.addresses.extend([
            addr(DOCKER0, "172.17.0.1", scope::UNIVERSE, 0),
            addr(DOCKER0, "fd00:17::1", scope::UNIVERSE, 0),
            addr(LAN0, "192.168.50.1", scope::UNIVERSE, 0),
        ]);
        snap.main_routes.extend([
            route("172.17.0.0", 16, 0, vec![hop(DOCKER0, None)]),
            route("fd00:17::", 64, 256, vec![hop(DOCKER0, None)]),
            route("fe80::", 64, 256, vec![hop(DOCKER0, None)]),
            route("192.168.50.0", 24, 0, vec![hop(LAN0, None)]),
            route("fe80::", 64, 256, vec![hop(ETH1, None)]),
        ]);
        snap
    }

    #[test]
    fn uplink_table_gets_the_direct_routes_behind_the_host() {
        let snap = docker_host();
        let plan = plan_of(&snap, &settings(), 1);
        assert_eq!(
            routes_of(&plan),
            [
                "default via 10.2.0.1 dev if3 table 1003 metric 101",
                "10.2.0.0/24 dev if3 table 1003 scope link",
                "default via fe80::1 dev if3 table 1003 metric 101",
                "fe80::/64 dev if3 table 1003 scope link metric 256",
                "172.17.0.0/16 dev if4 table 1003 scope link",
                "192.168.50.0/24 dev if5 table 1003 scope link",
                "fd00:17::/64 dev if4 table 1003 scope link metric 256",
            ]
        );
        assert!(plan.routes.iter().all(|r| r.protocol == 83));
        // eth0 has no IPv6 address: no IPv6 table, so no IPv6 copies either.
        let plan0 = plan_of(&snap, &settings(), 0);
        assert_eq!(
            routes_of(&plan0),
            [
                "default via 10.1.0.1 dev if2 table 1002 metric 100",
                "10.1.0.0/24 dev if2 table 1002 scope link",
                "172.17.0.0/16 dev if4 table 1002 scope link",
                "192.168.50.0/24 dev if5 table 1002 scope link",
            ]
        );
    }

    #[test]
    fn route_metrics_follow_the_interface_a_copy_leaves_through() {
        let snap = docker_host();
        let mut settings = crate::config::parse(
            "route_metrics = { initcwnd = 10 }\n[interface.eth1]\n\
             route_metrics = { mtu = 1400, congctl = \"reno\" }\n",
            std::path::Path::new("symroute.toml"),
        )
        .unwrap();
        settings.strict = true;
        let plan = plan_of(&snap, &settings, 1);
        assert_eq!(
            routes_of(&plan),
            [
                "default via 10.2.0.1 dev if3 table 1003 metric 101 mtu 1400 initcwnd 10 congctl reno",
                "10.2.0.0/24 dev if3 table 1003 scope link mtu 1400 initcwnd 10 congctl reno",
                "default via fe80::1 dev if3 table 1003 metric 101 mtu 1400 initcwnd 10 congctl reno",
                "fe80::/64 dev if3 table 1003 scope link metric 256 mtu 1400 initcwnd 10 congctl reno",
                "172.17.0.0/16 dev if4 table 1003 scope link initcwnd 10",
                "192.168.50.0/24 dev if5 table 1003 scope link initcwnd 10",
                "fd00:17::/64 dev if4 table 1003 scope link metric 256 initcwnd 10",
                "default table 1003 metric 4294967295",
                "default table 1003 metric 4294967295",
            ]
        );
        // Main's own routes are left as they are.
        assert!(snap.main_routes.iter().all(|r| r.metrics().is_empty()));
    }

    #[test]
    fn non_uplink_table_keeps_only_its_own_routes_unless_strict() {
        let snap = docker_host();
        let plan = plan_of(&snap, &settings(), 2);
        assert_eq!(
            routes_of(&plan),
            [
                "172.17.0.0/16 dev if4 table 1004 scope link",
                "fd00:17::/64 dev if4 table 1004 scope link metric 256",
                "fe80::/64 dev if4 table 1004 scope link metric 256",
            ]
        );
        let strict = Settings {
            strict: true,
            ..settings()
        };
        let plan = plan_of(&snap, &strict, 2);
        assert_eq!(
            routes_of(&plan),
            [
                "172.17.0.0/16 dev if4 table 1004 scope link",
                "fd00:17::/64 dev if4 table 1004 scope link metric 256",
                "fe80::/64 dev if4 table 1004 scope link metric 256",
                "192.168.50.0/24 dev if5 table 1004 scope link",
                "default table 1004 metric 4294967295",
                "default table 1004 metric 4294967295",
            ]
        );
    }

    #[test]
    fn one_planner_plans_every_interface_as_planning_each_alone() {
        let snap = docker_host();
        for settings in [
            settings(),
            Settings {
                strict: true,
                ..settings()
            },
        ] {
            let planner = Planner::new(&snap, &settings);
            for link in &snap.links {
                assert_eq!(
                    planner.interface(link),
                    plan_interface(&snap, &settings, link)
                );
            }
            assert_eq!(planner.uplinks().indexes(), [ETH0, ETH1]);
        }
    }

    #[test]
    fn same_subnet_nic_without_gateway_does_not_take_over_the_uplinks_subnet() {
        let mut snap = two_uplinks();
        snap.links.push(link(LAN0, "eth2"));
        snap.addresses
            .push(addr(LAN0, "10.2.0.9", scope::UNIVERSE, 0));
        snap.main_routes
            .push(route("10.2.0.0", 24, 0, vec![hop(LAN0, None)]));
        let plan = plan_of(&snap, &settings(), 1);
        let subnet = routes_to(&plan, "10.2.0.0");
        assert_eq!(subnet.len(), 1);
        assert_eq!(subnet[0].nexthops, vec![hop(ETH1, None)]);
        // eth0's table gets eth2's subnet (main sends it there directly); eth1's own
        // route for the same prefix, through eth1, is not in eth0's table.
        let plan0 = plan_of(&snap, &settings(), 0);
        let subnet0 = routes_to(&plan0, "10.2.0.0");
        assert_eq!(subnet0.len(), 1);
        assert_eq!(subnet0[0].nexthops, vec![hop(LAN0, None)]);
    }

    #[test]
    fn applying_a_plan_makes_it_a_no_op() {
        // Idempotence: what the plan wants, once present, produces no operation.
        let snap = docker_host();
        for settings in [
            settings(),
            Settings {
                strict: true,
                iif_rules: true,
                ..settings()
            },
        ] {
            let plan = plan_of(&snap, &settings, 1);
            let mut applied = snap.clone();
            applied.tables.insert(plan.table, plan.routes.clone());
            applied.rules.extend(plan.rules.clone());
            let again = plan_of(&applied, &settings, 1);
            assert_eq!(again, plan);
            assert!(crate::plan::diff::diff(
                &again.routes,
                &again.rules,
                &plan.routes,
                &plan.rules
            )
            .is_empty());
        }
    }
    const VRRP: u32 = 6;
    const WG0: u32 = 7;

    #[test]
    fn keepalived_vmac_answers_through_its_parents_gateway() {
        // keepalived's `use_vmac`: the VIP on macvlan vrrp.52 over eth1, main holding only
        // its connected route.
        let mut snap = two_uplinks();
        let mut vmac = link(VRRP, "vrrp.52");
        vmac.parent = Some(ETH1);
        snap.links.push(vmac);
        snap.addresses
            .push(addr(VRRP, "10.2.0.100", scope::UNIVERSE, 0));
        snap.main_routes
            .push(route("10.2.0.0", 24, 0, vec![hop(VRRP, None)]));
        let plan = plan_of(&snap, &settings(), 2);
        assert_eq!(
            routes_of(&plan),
            [
                "10.2.0.0/24 dev if6 table 1006 scope link",
                "default via 10.2.0.1 dev if3 table 1006 metric 101",
            ]
        );
        // Not behind the host: eth0's table does not get its subnet.
        let plan0 = plan_of(&snap, &settings(), 0);
        assert!(plan0.routes.iter().all(|r| !r.uses_link(VRRP)));
        // A /32 VIP without a connected route of its own takes the parent's subnet too.
        snap.main_routes.retain(|r| !r.uses_link(VRRP));
        let plan = plan_of(&snap, &settings(), 2);
        assert_eq!(
            routes_of(&plan),
            [
                "default via 10.2.0.1 dev if3 table 1006 metric 101",
                "10.2.0.0/24 dev if3 table 1006 scope link",
            ]
        );
    }

    /// wg-quick with `AllowedIPs = 0.0.0.0/0`: its default in table 51820, its rules ahead
    /// of ours, its address's /24 in main.
    fn wg_quick_host() -> Snapshot {
        let mut snap = two_uplinks();
        snap.links.push(link(WG0, "wg0"));
        snap.addresses
            .push(addr(WG0, "10.64.0.2", scope::UNIVERSE, 0));
        snap.main_routes
            .push(route("10.64.0.0", 24, 0, vec![hop(WG0, None)]));
        snap.tables.insert(
            51820,
            vec![unicast(51820, "0.0.0.0", 0, 0, 3, vec![hop(WG0, None)])],
        );
        snap.rules.push(Rule {
            fwmark: Some((51820, u32::MAX)),
            extra: RuleExtra {
                invert: true,
                ..RuleExtra::default()
            },
            ..Rule::lookup(51820, 31999)
        });
        snap.rules.push(Rule {
            suppress_prefixlen: Some(0),
            ..Rule::lookup(MAIN_TABLE, 31998)
        });
        snap
    }

    #[test]
    fn wg_quick_full_tunnel_is_an_uplink_whose_table_holds_its_default() {
        let snap = wg_quick_host();
        let settings = placement::placed(&settings(), &snap.rules);
        assert_eq!(settings.rule_priority, 31997);
        let plan = plan_of(&snap, &settings, 2);
        assert_eq!(
            rules_of(&plan),
            ["from 10.64.0.2 lookup 1007 priority 31997"]
        );
        assert_eq!(
            routes_of(&plan),
            [
                "10.64.0.0/24 dev if7 table 1007 scope link",
                "default dev if7 table 1007 scope link",
            ]
        );
        // The uplinks' tables keep their own ways and get nothing of the tunnel.
        let plan1 = plan_of(&snap, &settings, 1);
        assert!(plan1.routes.iter().all(|r| !r.uses_link(WG0)));
        assert!(plan1.rules.iter().all(|r| r.priority == 31997));
        // Strict: the tunnel's table is closed after its own default.
        let strict = Settings {
            strict: true,
            ..settings
        };
        let plan = plan_of(&snap, &strict, 2);
        assert!(routes_of(&plan).contains(&"default dev if7 table 1007 scope link".to_string()));
    }

    #[test]
    fn a_configured_rule_priority_stays_where_it_is() {
        let snap = wg_quick_host();
        let fixed = Settings {
            rule_priority_fixed: true,
            ..settings()
        };
        let settings = placement::placed(&fixed, &snap.rules);
        let plan = plan_of(&snap, &settings, 1);
        assert!(plan.rules.iter().all(|r| r.priority == 32000));
    }
    #[test]
    fn tailscale_peers_stay_in_the_tunnels_strict_table_without_making_it_an_uplink() {
        // tailscaled without an exit node: peers in table 52, `5270: lookup 52`.
        const TS0: u32 = 8;
        let mut snap = two_uplinks();
        snap.links.push(link(TS0, "tailscale0"));
        snap.addresses
            .push(addr(TS0, "100.101.102.103", scope::UNIVERSE, 0));
        snap.tables.insert(
            52,
            vec![unicast(52, "100.64.0.5", 32, 0, 3, vec![hop(TS0, None)])],
        );
        snap.rules.push(Rule::lookup(52, 5270).with_protocol(3));
        let strict = placement::placed(
            &Settings {
                strict: true,
                ..settings()
            },
            &snap.rules,
        );
        assert_eq!(strict.rule_priority, 5269);
        let planner = Planner::new(&snap, &strict);
        assert!(!planner.uplinks().is_uplink(Family::V4, TS0));
        let plan = planner.interface(&snap.links[2]).unwrap();
        assert_eq!(
            routes_of(&plan),
            [
                "100.64.0.5/32 dev if8 table 1008 scope link",
                "default table 1008 metric 4294967295",
            ]
        );
    }
    #[test]
    fn an_uplink_keeps_mains_ways_beside_strongswans_table_220() {
        // charon's full tunnel: its routes through eth0's gateway in table 220, `220: lookup
        // 220`. eth0's table stays a mirror of main.
        let mut snap = two_uplinks();
        snap.tables.insert(
            220,
            vec![
                unicast(220, "0.0.0.0", 1, 0, 4, vec![hop(ETH0, Some("10.1.0.1"))]),
                unicast(220, "128.0.0.0", 1, 0, 4, vec![hop(ETH0, Some("10.1.0.1"))]),
            ],
        );
        snap.rules.push(Rule::lookup(220, 220).with_protocol(4));
        let settings = placement::placed(&settings(), &snap.rules);
        assert_eq!(settings.rule_priority, 219);
        let plan = plan_of(&snap, &settings, 0);
        assert_eq!(
            routes_of(&plan),
            [
                "default via 10.1.0.1 dev if2 table 1002 metric 100",
                "10.1.0.0/24 dev if2 table 1002 scope link",
            ]
        );
    }
}
