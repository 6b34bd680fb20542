//! What symroute has installed, per interface, and how far that is from what a sync would
//! install: the pure half of `symroute status` (and of `doctor`'s sync check).
//!
//! [`status`] works on a full snapshot (`kernel::Scope::All`): every link, address, rule and
//! table. It never writes; it shows the plan and operations of the sync of that snapshot
//! (`run::plan_run`), the very ones `symroute sync` would write.
//!
//! The JSON shape (`symroute status --json`) is the serde form of [`Status`]; it is documented
//! in `docs/cli.md`. Rules and routes use `ip -j`'s keys and value forms; `schema_version`
//! goes up whenever a key changes its meaning or form (2: the `ip -j` forms).

use std::net::IpAddr;

use serde::Serialize;

use crate::health::HealthState;
use crate::kernel::names::Names;
use crate::model::{Family, Link, Op, Route, Rule, Snapshot, MAIN_TABLE};
use crate::plan::{garbage_by_table, Garbage};
use crate::run::{NftPlan, RunPlan, Subject};
use crate::settings::{Prefix, Settings};
use crate::views::iproute::{route_text, rule_text};

mod health;
mod render;
mod shadow;

pub use crate::views::iproute::{RouteView, RuleView, TableAndProtocol};
pub use health::{FamilyHealth, HealthView, SteeringStatus};
pub use shadow::{shadows_of, Shadow, ShadowExtent};

/// `schema_version` of the JSON of `status` and `explain`.
pub const SCHEMA_VERSION: u32 = 2;

/// Everything `symroute status` reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Status {
    pub schema_version: u32,
    pub table_base: u32,
    pub rule_priority: u32,
    pub protocol: u8,
    /// True when a sync would change nothing and nothing was refused.
    pub in_sync: bool,
    pub interfaces: Vec<InterfaceStatus>,
    pub exempt: ExemptStatus,
    /// Rules of ours whose interface is gone, with the routes left in their tables.
    pub stale: Vec<StaleTable>,
    /// The interface asked about (`symroute status INTERFACE`): `interfaces` holds it alone,
    /// while `in_sync` is still about everything.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// With `scope`: the other interfaces that are not in sync (left out of `interfaces`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub others_not_in_sync: Vec<String>,
    /// With `scope`: the other interfaces whose tables `symroute sync INTERFACE` writes
    /// too (uplinks that copy routes through it, macvlans on it), as it would change them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sync_also_writes: Vec<String>,
    /// `[health]`'s steering (or what is left of it); absent without either.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steering: Option<SteeringStatus>,
    /// `table inet symroute` (`iif_rules`), when a sync would change it or it could not be
    /// read; absent when it is as a sync leaves it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nftables: Option<NftStatus>,
    /// Why a sync refuses something, one line each naming it (an interface's table holding
    /// another tool's route, a subnet shared under `prefix_rules`, the steering table).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub refusals: Vec<String>,
}

/// What a sync would do to `table inet symroute`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NftStatus {
    /// The change, as `symroute plan` prints it (`nft: replace table inet symroute (2
    /// interfaces)`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending: Option<String>,
    /// Why it could not be read: what a sync would change in it is unknown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Where one interface stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum State {
    /// Its table and rules are exactly what a sync would make them.
    InSync,
    /// A sync would change something (see `pending`).
    Pending,
    /// A sync refuses it (see `error`): its table is someone else's, or its subnet is shared
    /// under `prefix_rules`.
    Refused,
    /// Loopback, or left out by `include`/`exclude`, and nothing of ours is left on it.
    Unmanaged,
    /// Managed, but without an address that gets a rule (down, waiting for DHCP, bridge
    /// port...): nothing to install, nothing installed.
    Idle,
    /// Its table and rules are what a sync makes them, but someone else's rule uses its
    /// table (see `foreign`; a rule just like ours at our priority, of another protocol,
    /// say): a sync does not change that, and traffic may follow the other rule.
    Contested,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::InSync => "in sync",
            State::Pending => "pending",
            State::Refused => "refused",
            State::Unmanaged => "unmanaged",
            State::Idle => "idle",
            State::Contested => "contested",
        }
    }

    /// Whether a sync would leave it as it is and nobody else is in its way.
    pub fn is_settled(self) -> bool {
        matches!(self, State::InSync | State::Unmanaged | State::Idle)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct InterfaceStatus {
    pub ifname: String,
    pub ifindex: u32,
    /// Administratively up.
    pub up: bool,
    /// Not loopback and let through by `include`/`exclude`.
    pub managed: bool,
    /// `table_base + ifindex`.
    pub table: u32,
    pub state: State,
    /// Addresses that want a rule (global scope, not tentative, family enabled), and whether
    /// a rule of ours covers each.
    pub addresses: Vec<AddressStatus>,
    /// Rules of ours that point at `table`.
    pub rules: Vec<RuleView>,
    /// Routes of ours in `table` (none when not listed: [`Listing`]).
    pub routes: Vec<RouteView>,
    /// What a sync would do, in order, in log-line syntax (`+rule from ...`).
    pub pending: Vec<String>,
    /// Someone else's state in the way: routes in `table` without our protocol, rules of
    /// others that point at `table`.
    pub foreign: Vec<String>,
    /// Foreign rules that come before ours and take their traffic elsewhere.
    pub shadowed_by: Vec<Shadow>,
    /// Why a sync refuses this interface.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// With `[health]`: the uplink's verdicts as symrouted last wrote them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub health: Option<HealthView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AddressStatus {
    pub local: IpAddr,
    pub prefixlen: u8,
    pub covered: bool,
}

/// The exemption rules (`to PREFIX lookup main`), global rather than per interface.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExemptStatus {
    pub rules: Vec<RuleView>,
    pub pending: Vec<String>,
}

/// What is left of an interface that is gone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StaleTable {
    pub table: u32,
    /// The interface index the table was for, when it is in symroute's range.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ifindex: Option<u32>,
    pub rules: Vec<RuleView>,
    pub routes: Vec<RouteView>,
    pub pending: Vec<String>,
}

fn op_lines<'a>(ops: impl IntoIterator<Item = &'a Op>, links: &[Link]) -> Vec<String> {
    ops.into_iter()
        .map(|op| op.display(links).to_string())
        .collect()
}

/// Whose tables' routes [`status`] lists: an uplink's table can hold 100 000 routes, a
/// view each, which `status INTERFACE` would throw away for the others and `doctor` never
/// shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listing {
    /// Every interface's.
    Every,
    /// The interface with this index alone.
    Interface(u32),
    /// None: the states, operations and findings are all that is shown.
    NoRoutes,
}

impl Listing {
    fn lists(self, ifindex: u32) -> bool {
        match self {
            Listing::Every => true,
            Listing::Interface(i) => i == ifindex,
            Listing::NoRoutes => false,
        }
    }
}

fn interface_status(
    plan: &RunPlan,
    snapshot: &Snapshot,
    settings: &Settings,
    link: &Link,
    listing: Listing,
) -> InterfaceStatus {
    let table = settings.table_for(link.index);
    let managed = !link.loopback && settings.manages(&link.name);
    let rules: Vec<&Rule> = snapshot
        .rules_into(settings.protocol, table)
        .filter(|r| !r.is_steering(settings.protocol))
        .collect();
    let routes: Vec<&Route> = if listing.lists(link.index) {
        snapshot.routes_in(settings.protocol, table).collect()
    } else {
        Vec::new()
    };
    let mut foreign: Vec<String> = snapshot
        .table(table)
        .iter()
        .filter(|r| r.protocol != settings.protocol)
        .map(|r| {
            format!(
                "route {} proto {}",
                route_text(r, &snapshot.links),
                r.protocol
            )
        })
        .collect();
    foreign.extend(
        snapshot
            .rules
            .iter()
            .filter(|r| r.protocol != settings.protocol && r.table == table)
            .map(|r| format!("rule {} proto {}", rule_text(r), r.protocol)),
    );
    let addresses = snapshot
        .addresses
        .iter()
        .filter(|a| a.ifindex == link.index)
        .filter(|a| a.wants_rule() && settings.family_enabled(Family::of(&a.addr)))
        .map(|a| AddressStatus {
            local: a.addr,
            prefixlen: a.prefix_len,
            covered: rules.iter().any(|r| {
                r.src
                    .is_some_and(|(addr, len)| Prefix::new(addr, len).contains(&a.addr))
            }),
        })
        .collect();
    let shadowed_by = rules
        .iter()
        .filter(|r| r.src.is_some())
        .flat_map(|r| shadows_of(snapshot, settings, r))
        .collect();

    // As the sync of the same snapshot does it: refused, or these operations.
    let refusal = plan.refusals.iter().find(|r| r.ifindex == Some(link.index));
    let (state, pending, error) = match refusal {
        Some(refusal) => (State::Refused, Vec::new(), Some(refusal.error.to_string())),
        None => {
            let pending = op_lines(plan.ops_of(Subject::Interface(link.index)), &snapshot.links);
            let state = if !pending.is_empty() {
                State::Pending
            } else if !managed {
                State::Unmanaged
            } else if plan.idle(link.index).unwrap_or(true) {
                State::Idle
            } else if !foreign.is_empty() {
                State::Contested
            } else {
                State::InSync
            };
            (state, pending, None)
        }
    };
    InterfaceStatus {
        ifname: link.name.clone(),
        ifindex: link.index,
        up: link.up,
        managed,
        table,
        state,
        addresses,
        rules: rules.iter().map(|r| RuleView::new(r)).collect(),
        routes: {
            let shared = TableAndProtocol::new(table, settings.protocol);
            routes
                .iter()
                .map(|r| RouteView::with_table(r, &snapshot.links, shared.clone()))
                .collect()
        },
        pending,
        foreign,
        shadowed_by,
        error,
        health: None,
    }
}

/// The status of every interface of a full snapshot, of the exemption rules, of state
/// left by vanished interfaces, of `[health]`'s steering and of `table inet symroute`: each
/// as `plan` (the full sync of the same snapshot, [`crate::run::plan_run`], diffed) would
/// change it. `health`: symrouted's verdicts, as the plan read them; `listing`: whose
/// tables' routes are listed (every interface's state is there whatever it says).
pub fn status(
    snapshot: &Snapshot,
    settings: &Settings,
    plan: &RunPlan,
    health: Option<&HealthState>,
    listing: Listing,
) -> Status {
    let mut links: Vec<&Link> = snapshot.links.iter().collect();
    links.sort_by_key(|l| l.index);
    let interfaces: Vec<InterfaceStatus> = links
        .into_iter()
        .map(|l| interface_status(plan, snapshot, settings, l, listing))
        .collect();

    let exempt = ExemptStatus {
        rules: snapshot
            .rules_into(settings.protocol, MAIN_TABLE)
            .filter(|r| !r.is_steering(settings.protocol))
            .map(RuleView::new)
            .collect(),
        pending: op_lines(plan.ops_of(Subject::Exempt), &snapshot.links),
    };

    let stale = garbage_by_table(snapshot, settings)
        .into_iter()
        .map(|g: Garbage| StaleTable {
            table: g.table,
            ifindex: settings.interface_of_table(g.table),
            pending: op_lines(plan.ops_of(Subject::Stale(g.table)), &snapshot.links),
            rules: g.rules.iter().map(RuleView::new).collect(),
            routes: g
                .routes
                .iter()
                .map(|r| RouteView::new(r, &snapshot.links))
                .collect(),
        })
        .collect::<Vec<_>>();

    let nftables = match &plan.nft {
        NftPlan::Unchanged => None,
        NftPlan::Change(change) => Some(NftStatus {
            pending: Some(change.line()),
            error: None,
        }),
        NftPlan::Unknown(why) => Some(NftStatus {
            pending: None,
            error: Some(why.clone()),
        }),
        NftPlan::Failed(e) => Some(NftStatus {
            pending: None,
            error: Some(e.to_string()),
        }),
    };
    let mut status = Status {
        schema_version: SCHEMA_VERSION,
        table_base: settings.table_base,
        rule_priority: settings.rule_priority,
        protocol: settings.protocol,
        in_sync: false,
        interfaces,
        exempt,
        stale,
        scope: None,
        others_not_in_sync: Vec::new(),
        sync_also_writes: Vec::new(),
        steering: None,
        nftables,
        refusals: plan.refusals.iter().map(|r| r.error.to_string()).collect(),
    };
    status.add_health(snapshot, settings, health, plan);
    // Exactly when the sync would write nothing and refuse nothing (and nobody else's rule
    // uses one of our tables, which a sync leaves as it is).
    status.in_sync = plan.writes_nothing()
        && plan.refusals.is_empty()
        && status.interfaces.iter().all(|i| i.state.is_settled());
    status
}

impl Status {
    /// Tables and protocols of every rule and route by their iproute2 names (`--json`).
    pub fn name(&mut self, names: &Names) {
        let interfaces = self
            .interfaces
            .iter_mut()
            .map(|i| (&mut i.rules, &mut i.routes));
        let stale = self.stale.iter_mut().map(|s| (&mut s.rules, &mut s.routes));
        for (rules, routes) in interfaces.chain(stale) {
            rules.iter_mut().for_each(|r| r.table_protocol.name(names));
            let routes = routes.iter_mut().map(|r| &mut r.table_protocol);
            TableAndProtocol::name_all(routes, names);
        }
        for r in &mut self.exempt.rules {
            r.table_protocol.name(names);
        }
        if let Some(steering) = &mut self.steering {
            steering
                .rules
                .iter_mut()
                .for_each(|r| r.table_protocol.name(names));
            steering
                .routes
                .iter_mut()
                .for_each(|r| r.table_protocol.name(names));
        }
    }

    /// Keeps only the interface called `name` (exemptions and stale state are global and
    /// stay); `companions`: the interfaces `symroute sync NAME` plans along with it
    /// ([`crate::model::uplinks::dependents`]). False when there is no such interface.
    pub fn retain_interface(&mut self, name: &str, companions: &[String]) -> bool {
        self.others_not_in_sync = self
            .interfaces
            .iter()
            .filter(|i| i.ifname != name && !i.state.is_settled())
            .map(|i| i.ifname.clone())
            .collect();
        self.sync_also_writes = self
            .interfaces
            .iter()
            .filter(|i| i.ifname != name && i.state == State::Pending)
            .filter(|i| companions.contains(&i.ifname))
            .map(|i| i.ifname.clone())
            .collect();
        self.interfaces.retain(|i| i.ifname == name);
        self.scope = Some(name.to_string());
        !self.interfaces.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{
        addr, host, ip, link, route, rule, status_of, synced, with_vpn_catch_all, ETH0, ETH1,
    };

    fn of<'a>(status: &'a Status, name: &str) -> &'a InterfaceStatus {
        status.interfaces.iter().find(|i| i.ifname == name).unwrap()
    }

    #[test]
    fn fresh_host_has_everything_pending() {
        let st = status_of(&host(), &Settings::default());
        assert!(!st.in_sync);
        let eth1 = of(&st, "eth1");
        assert_eq!(eth1.state, State::Pending);
        assert_eq!(eth1.table, 1003);
        assert_eq!(
            eth1.pending,
            [
                "+route 10.2.0.0/24 dev eth1 table 1003 scope link",
                "+route default via 10.2.0.1 dev eth1 table 1003 metric 103",
                "+rule from 10.2.0.2 lookup 1003 priority 32000",
            ]
        );
        assert_eq!(
            eth1.addresses,
            [AddressStatus {
                local: ip("10.2.0.2"),
                prefixlen: 24,
                covered: false
            }]
        );
        assert_eq!(of(&st, "lo").state, State::Unmanaged);
    }

    #[test]
    fn synced_host_is_in_sync_with_rules_routes_and_covered_addresses() {
        let settings = Settings::default();
        let st = status_of(&synced(host(), &settings), &settings);
        assert!(st.in_sync, "{st:#?}");
        let eth1 = of(&st, "eth1");
        assert_eq!(eth1.state, State::InSync);
        assert!(eth1.pending.is_empty());
        assert!(eth1.addresses.iter().all(|a| a.covered));
        assert_eq!(
            eth1.rules.iter().map(|r| &r.text).collect::<Vec<_>>(),
            ["from 10.2.0.2 lookup 1003 priority 32000"]
        );
        assert_eq!(eth1.routes.len(), 2);
        assert!(eth1.foreign.is_empty() && eth1.shadowed_by.is_empty());
        assert!(st.render(false).ends_with("in sync\n"));
    }

    #[test]
    fn idle_and_excluded_interfaces() {
        let mut snap = host();
        snap.links.push(link(4, "eth2"));
        snap.links.push(link(5, "docker0"));
        snap.addresses.push(addr(5, "172.17.0.1", 16));
        let settings = Settings {
            exclude: vec!["docker*".into()],
            ..Settings::default()
        };
        let st = status_of(&synced(snap, &settings), &settings);
        assert_eq!(of(&st, "eth2").state, State::Idle);
        assert_eq!(of(&st, "docker0").state, State::Unmanaged);
        assert!(st.in_sync);
        let text = st.render(false);
        assert!(text.contains("eth2 (index 4, up): idle"), "{text}");
        assert!(text.contains("docker0 (index 5, up): unmanaged"), "{text}");
    }

    #[test]
    fn foreign_table_is_refused_and_shown() {
        let mut snap = host();
        snap.tables.insert(
            1003,
            vec![route(1003, "203.0.113.0", 24, Some("10.2.0.1"), ETH1, 4)],
        );
        snap.rules.push(rule(100, Some(("10.9.9.9", 32)), 1003, 4));
        let st = status_of(&snap, &Settings::default());
        let eth1 = of(&st, "eth1");
        assert_eq!(eth1.state, State::Refused);
        assert!(eth1.error.as_deref().unwrap().contains("table 1003"));
        assert_eq!(
            eth1.foreign,
            [
                "route 203.0.113.0/24 via 10.2.0.1 dev eth1 table 1003 metric 103 proto 4",
                "rule from 10.9.9.9 lookup 1003 priority 100 proto 4"
            ]
        );
        assert!(!st.in_sync);
    }

    #[test]
    fn a_refusal_is_named_instead_of_asking_for_a_sync() {
        let settings = Settings::default();
        let mut snap = synced(host(), &settings);
        snap.tables.get_mut(&1003).unwrap().push(route(
            1003,
            "203.0.113.0",
            24,
            Some("10.2.0.1"),
            ETH1,
            4,
        ));
        let st = status_of(&snap, &settings);
        assert!(!st.in_sync);
        assert_eq!(st.refusals.len(), 1, "{st:#?}");
        let text = st.render(false);
        let last = text.lines().last().unwrap();
        assert!(
            last.starts_with("not in sync: a sync refuses eth1: table 1003 already holds a route"),
            "{text}"
        );
        assert!(!last.contains("run `symroute sync`"), "{text}");
        let mut st = status_of(&snap, &settings);
        assert!(st.retain_interface("eth1", &[]));
        assert!(
            st.render(false).ends_with(
                "eth1: not in sync: a sync refuses eth1: table 1003 already holds a \
                            route that is not symroute's (203.0.113.0/24 via 10.2.0.1 dev eth1 \
                            table 1003 metric 103, protocol 4); refusing to touch it (set \
                            table_base to move symroute's tables)\n"
            ),
            "{}",
            st.render(false)
        );
        // And what the sync would still write beside the refusal, it says.
        snap.addresses.push(addr(ETH0, "10.1.0.9", 24));
        let text = status_of(&snap, &settings).render(false);
        assert!(
            text.ends_with(
                "not in sync: run `symroute sync`, but a sync refuses eth1: table \
                            1003 already holds a route that is not symroute's (203.0.113.0/24 \
                            via 10.2.0.1 dev eth1 table 1003 metric 103, protocol 4); refusing \
                            to touch it (set table_base to move symroute's tables)\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn a_scoped_status_counts_what_its_sync_writes_besides() {
        let settings = Settings::default();
        let mut snap = synced(host(), &settings);
        // eth0's table lacks a route a sync of eth1 would write too (a companion).
        snap.addresses.push(addr(ETH0, "10.1.0.9", 24));
        let mut st = status_of(&snap, &settings);
        assert!(st.retain_interface("eth1", &["eth0".to_string()]));
        assert_eq!(st.sync_also_writes, ["eth0"]);
        assert!(
            st.render(false).ends_with(
                "eth1: not in sync: run `symroute sync eth1` (it also writes the tables of eth0)\n"
            ),
            "{}",
            st.render(false)
        );
        let json = serde_json::to_value(&st).unwrap();
        assert_eq!(json["sync_also_writes"], serde_json::json!(["eth0"]));
    }

    #[test]
    fn a_foreign_twin_of_our_rule_is_not_in_sync() {
        let settings = Settings::default();
        let mut snap = synced(host(), &settings);
        // Ours, as another tool (protocol static) wrote it too.
        snap.rules
            .push(rule(32000, Some(("10.2.0.2", 32)), 1003, 4));
        let st = status_of(&snap, &settings);
        let eth1 = of(&st, "eth1");
        assert_eq!(eth1.state, State::Contested);
        assert_eq!(
            eth1.foreign,
            ["rule from 10.2.0.2 lookup 1003 priority 32000 proto 4"]
        );
        assert!(!st.in_sync);
        let text = st.render(false);
        assert!(
            text.contains("eth1 (index 3, up): table 1003, contested\n"),
            "{text}"
        );
        assert!(
            text.ends_with(
                "not in sync: someone else's rule uses symroute's table (see foreign; \
                 `symroute doctor` says how to fix it)\n"
            ),
            "{text}"
        );
    }

    #[test]
    fn a_scoped_status_speaks_of_its_interface_and_of_others_as_such() {
        let settings = Settings::default();
        let mut snap = synced(host(), &settings);
        snap.addresses.push(addr(ETH1, "10.2.0.9", 24));
        let mut st = status_of(&snap, &settings);
        assert!(st.retain_interface("eth0", &[]));
        assert_eq!(st.others_not_in_sync, ["eth1"]);
        let text = st.render(false);
        assert!(
            text.ends_with("eth0: in sync (elsewhere not in sync: eth1; run `symroute status`)\n"),
            "{text}"
        );
        let mut st = status_of(&snap, &settings);
        assert!(st.retain_interface("eth1", &[]));
        assert!(
            st.render(false)
                .ends_with("eth1: not in sync: run `symroute sync eth1`\n"),
            "{}",
            st.render(false)
        );
        let mut st = status_of(&synced(host(), &settings), &settings);
        assert!(st.retain_interface("eth1", &[]));
        assert!(st.render(false).ends_with("\neth1: in sync\n"));
    }

    #[test]
    fn stale_state_of_a_vanished_interface_is_listed() {
        let settings = Settings::default();
        let mut snap = synced(host(), &settings);
        snap.links.retain(|l| l.index != ETH1);
        snap.addresses.retain(|a| a.ifindex != ETH1);
        let st = status_of(&snap, &settings);
        assert!(!st.in_sync);
        assert_eq!(st.stale.len(), 1);
        assert_eq!(st.stale[0].table, 1003);
        assert_eq!(st.stale[0].ifindex, Some(ETH1));
        assert_eq!(
            st.stale[0].pending[0],
            "-rule from 10.2.0.2 lookup 1003 priority 32000"
        );
        assert!(st
            .render(false)
            .contains("stale table 1003 (of vanished if3)"));
    }

    #[test]
    fn exempt_rules_are_reported() {
        let settings = Settings {
            exempt: vec![Prefix::new(ip("172.17.0.0"), 16)],
            ..Settings::default()
        };
        let st = status_of(&host(), &settings);
        assert_eq!(
            st.exempt.pending,
            ["+rule from all to 172.17.0.0/16 lookup main priority 31999"]
        );
        let st = status_of(&synced(host(), &settings), &settings);
        assert!(st.exempt.pending.is_empty() && st.in_sync);
        assert_eq!(st.exempt.rules[0].dst.as_deref(), Some("172.17.0.0"));
        assert_eq!(st.exempt.rules[0].dstlen, Some(16));
    }

    #[test]
    fn shadowing_rules_are_found() {
        let settings = Settings::default();
        let mut snap = with_vpn_catch_all(synced(host(), &settings));
        // Only for 10.1.0.0/16 sources, into a table without a default: partial for eth0.
        snap.rules.push(rule(200, Some(("10.1.0.0", 16)), 300, 4));
        snap.tables.insert(
            300,
            vec![route(300, "198.51.100.0", 24, Some("10.1.0.1"), ETH0, 4)],
        );
        // Empty table: harmless.
        snap.rules.push(rule(300, None, 400, 4));
        let st = status_of(&snap, &settings);
        let eth1 = of(&st, "eth1");
        assert_eq!(eth1.shadowed_by.len(), 1);
        assert_eq!(eth1.shadowed_by[0].extent, ShadowExtent::Full);
        assert_eq!(eth1.shadowed_by[0].table, "51820");
        let eth0 = of(&st, "eth0");
        let extents: Vec<ShadowExtent> = eth0.shadowed_by.iter().map(|s| s.extent).collect();
        assert_eq!(extents, [ShadowExtent::Full, ShadowExtent::Partial]);
    }

    #[test]
    fn json_shape_is_stable() {
        let settings = Settings::default();
        let st = status_of(&synced(host(), &settings), &settings);
        let json = serde_json::to_value(&st).unwrap();
        assert_eq!(json["table_base"], 1000);
        assert_eq!(json["in_sync"], true);
        let eth1 = &json["interfaces"][2];
        assert_eq!(eth1["ifname"], "eth1");
        assert_eq!(eth1["state"], "in-sync");
        assert_eq!(eth1["table"], 1003);
        assert_eq!(eth1["rules"][0]["src"], "10.2.0.2");
        assert!(eth1["rules"][0].get("srclen").is_none());
        assert_eq!(eth1["rules"][0]["table"], "1003");
        assert_eq!(eth1["rules"][0]["protocol"], "83");
        assert_eq!(json["schema_version"], SCHEMA_VERSION);
        // ip -j's forms: no type for unicast, gateway/dev of a single path, table a string.
        assert_eq!(eth1["routes"][0]["dst"], "default");
        assert!(eth1["routes"][0].get("type").is_none());
        assert!(eth1["routes"][0].get("nexthops").is_none());
        assert_eq!(eth1["routes"][0]["gateway"], "10.2.0.1");
        assert_eq!(eth1["routes"][0]["dev"], "eth1");
        assert_eq!(eth1["routes"][0]["table"], "1003");
        assert_eq!(eth1["routes"][0]["protocol"], "83");
        assert_eq!(eth1["routes"][1]["dst"], "10.2.0.0/24");
        assert_eq!(eth1["routes"][1]["scope"], "link");
        assert_eq!(eth1["addresses"][0]["covered"], true);
        assert!(eth1.get("error").is_none());
        assert_eq!(json["stale"], serde_json::json!([]));
    }

    #[test]
    fn a_listing_leaves_out_other_tables_routes_and_nothing_else() {
        let settings = Settings::default();
        let snap = synced(host(), &settings);
        let read = crate::run::Read::of(snap.clone(), &settings);
        let mut plan =
            crate::run::plan_run(&read, &settings, &crate::Target::All, &Default::default());
        let _ = plan.diff(&read, &settings, None);
        let every = status(&snap, &settings, &plan, None, Listing::Every);
        assert!(!of(&every, "eth0").routes.is_empty() && !of(&every, "eth1").routes.is_empty());
        let only = status(&snap, &settings, &plan, None, Listing::Interface(ETH1));
        assert!(of(&only, "eth0").routes.is_empty());
        assert_eq!(of(&only, "eth1").routes, of(&every, "eth1").routes);
        let none = status(&snap, &settings, &plan, None, Listing::NoRoutes);
        for st in [&only, &none] {
            assert_eq!(st.in_sync, every.in_sync);
            for (a, b) in st.interfaces.iter().zip(&every.interfaces) {
                assert_eq!(
                    (&a.ifname, a.state, &a.pending),
                    (&b.ifname, b.state, &b.pending)
                );
                assert_eq!((&a.rules, &a.addresses), (&b.rules, &b.addresses));
            }
        }
        assert!(none.interfaces.iter().all(|i| i.routes.is_empty()));
    }

    #[test]
    fn names_replace_table_and_protocol_numbers() {
        let settings = Settings::default();
        let mut st = status_of(&synced(host(), &settings), &settings);
        let mut names = Names::default();
        names.parse(crate::kernel::names::Kind::Protocols, "83 symroute\n");
        names.parse(crate::kernel::names::Kind::Tables, "1003 symroute-eth1\n");
        st.name(&names);
        let json = serde_json::to_value(&st).unwrap();
        let eth1 = &json["interfaces"][2];
        assert_eq!(eth1["rules"][0]["table"], "symroute-eth1");
        assert_eq!(eth1["rules"][0]["protocol"], "symroute");
        assert_eq!(eth1["routes"][0]["table"], "symroute-eth1");
        assert_eq!(eth1["routes"][0]["protocol"], "symroute");
    }
}
