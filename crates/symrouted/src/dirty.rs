//! What a drained batch of events asks for: which interfaces to reconcile, and why.
//!
//! Pure bookkeeping, no I/O: each notification marks interfaces dirty, so a burst of 10 000
//! route changes through one interface becomes one run for that interface.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::IpAddr;

use netlink_packet_core::NLM_F_REPLACE;
use symroute_core::model::{Family, Route, RouteKey, Rule, LOCAL_TABLE, MAIN_TABLE};
use symroute_core::monitor::Change;
use symroute_core::{is_catch_all, Op, Settings};

/// Why an interface is dirty. Ordered: a batch that both changed an interface and removed
/// something of ours counts as a repair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Reason {
    /// Its links, addresses or main-table routes changed.
    Changed,
    /// Someone else removed one of our rules or routes for it.
    Healing,
}

/// Our rules and routes of one interface that someone else deleted, so that a run putting
/// back one of these very objects is told from a run that only follows the kernel (a fight
/// is someone deleting what the kernel still calls for, and us restoring it).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Deleted {
    pub rules: BTreeSet<RuleKey>,
    pub routes: BTreeSet<RouteKey>,
}

impl Deleted {
    /// Whether `op` puts back something in this set.
    pub fn restored_by(&self, op: &Op) -> bool {
        match op {
            Op::AddRule(rule) => self.rules.contains(&rule_key(rule)),
            Op::ReplaceRoute(route) => self.routes.contains(&route.key()),
            Op::DelRule(_) | Op::DelRoute(_) => false,
        }
    }

    pub fn extend(&mut self, other: Deleted) {
        self.rules.extend(other.rules);
        self.routes.extend(other.routes);
    }
}

/// The interfaces a batch of events touched.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Dirty {
    /// Everything must be read again: events were lost, an interface vanished (its state is
    /// garbage now) or an exemption rule of ours was removed.
    pub resync: bool,
    /// A main-table route was replaced: the interface it went through before is unknown.
    pub every_link: bool,
    /// By interface index.
    pub links: BTreeMap<u32, Reason>,
    /// By name, from NetworkManager.
    pub names: BTreeSet<String>,
    /// What someone else deleted, by interface index.
    pub deleted: BTreeMap<u32, Deleted>,
}

impl Dirty {
    pub fn is_empty(&self) -> bool {
        !self.resync && !self.every_link && self.links.is_empty() && self.names.is_empty()
    }

    pub fn mark(&mut self, ifindex: u32, reason: Reason) {
        let slot = self.links.entry(ifindex).or_insert(reason);
        *slot = (*slot).max(reason);
    }

    pub fn mark_name(&mut self, name: String) {
        self.names.insert(name);
    }

    pub fn take(&mut self) -> Dirty {
        std::mem::take(self)
    }
}

/// The identity of a rule as the kernel echoes it back.
pub type RuleKey = (
    Family,
    u32,
    Option<(IpAddr, u8)>,
    Option<(IpAddr, u8)>,
    Option<String>,
    u32,
);

fn rule_key(rule: &Rule) -> RuleKey {
    (
        rule.family,
        rule.priority,
        rule.src,
        rule.dst,
        rule.iif.clone(),
        rule.table,
    )
}

/// Deletions we made ourselves, so that their notifications do not look like someone else
/// removing our state. The kernel queues a notification before it acknowledges the write,
/// so every echo of a run is waiting in the socket when the run returns: after the next
/// drain, whatever was not seen never will be (or was lost in an overrun, which resyncs).
#[derive(Debug, Default)]
pub struct Echoes {
    routes: HashSet<RouteKey>,
    rules: HashSet<RuleKey>,
}

impl Echoes {
    pub fn expect<'a>(&mut self, ops: impl IntoIterator<Item = &'a Op>) {
        for op in ops {
            match op {
                Op::DelRoute(route) => {
                    self.routes.insert(route.key());
                }
                Op::DelRule(rule) => {
                    self.rules.insert(rule_key(rule));
                }
                // Additions of ours are recognised by their protocol alone.
                Op::ReplaceRoute(_) | Op::AddRule(_) => {}
            }
        }
    }

    pub fn clear(&mut self) {
        self.routes.clear();
        self.rules.clear();
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.routes.len() + self.rules.len()
    }
}

/// The kernel's own port id: a notification with it reports a change the kernel made by
/// itself (routes flushed with an address or a link), not a write of any process.
pub const KERNEL: u32 = 0;

/// Marks what one notification touches. `sender` is the port id in its header: the socket
/// whose request caused it, or [`KERNEL`].
pub fn note(
    dirty: &mut Dirty,
    echoes: &mut Echoes,
    settings: &Settings,
    flags: u16,
    sender: u32,
    change: &Change,
) {
    match change {
        Change::Link(index) | Change::Address { index, .. } | Change::AddressGone { index, .. } => {
            dirty.mark(*index, Reason::Changed)
        }
        // Its table and rules are garbage now; only a full run collects them.
        Change::LinkGone(_) => dirty.resync = true,
        Change::Route { route, added } => {
            note_route(dirty, echoes, settings, route, *added, flags, sender)
        }
        Change::RuleAdded(rule) => {
            // Ours are our own echoes. Another tool's catch-all (a VPN's) moves our rules
            // ahead of it and may make its table a way out: every interface is replanned.
            if is_catch_all(rule, settings) {
                dirty.resync = true;
            }
        }
        Change::RuleRemoved(rule) => {
            if rule.protocol != settings.protocol {
                if is_catch_all(rule, settings) {
                    dirty.resync = true;
                }
                return;
            }
            if echoes.rules.remove(&rule_key(rule)) {
                return;
            }
            if rule.table == MAIN_TABLE || rule.is_steering(settings.protocol) {
                // An exemption or steering rule: not tied to one interface.
                dirty.resync = true;
            } else if let Some(ifindex) = settings.interface_of_table(rule.table) {
                dirty.mark(ifindex, Reason::Healing);
                dirty
                    .deleted
                    .entry(ifindex)
                    .or_default()
                    .rules
                    .insert(rule_key(rule));
            }
        }
    }
}

fn note_route(
    dirty: &mut Dirty,
    echoes: &mut Echoes,
    settings: &Settings,
    route: &Route,
    new: bool,
    flags: u16,
    sender: u32,
) {
    if route.table == MAIN_TABLE {
        for nh in &route.nexthops {
            dirty.mark(nh.ifindex, Reason::Changed);
        }
        if new && flags & NLM_F_REPLACE != 0 {
            dirty.every_link = true;
        }
        return;
    }
    if route.table == settings.table_base {
        // The steering table of `[health]`'s balance mode (no interface's): the full run
        // plans it.
        // Additions of ours are our echoes; someone else's route there, or one of ours
        // deleted by someone (or flushed by the kernel), is for a run to decide.
        let ours_added = new && route.protocol == settings.protocol;
        if !ours_added && (new || !echoes.routes.remove(&route.key())) {
            dirty.resync = true;
        }
        return;
    }
    if route.protocol != settings.protocol && route.table != LOCAL_TABLE {
        // Another table's route can make its interfaces ways out (a VPN's default in its
        // own table) or change what a VPN-only uplink's table copies: they are looked at.
        for nh in &route.nexthops {
            dirty.mark(nh.ifindex, Reason::Changed);
        }
    }
    let Some(ifindex) = settings.interface_of_table(route.table) else {
        return;
    };
    if route.protocol != settings.protocol {
        // Someone else's route in one of our tables: the run decides (and refuses).
        dirty.mark(ifindex, Reason::Changed);
    } else if !new && !echoes.routes.remove(&route.key()) {
        if sender == KERNEL {
            // Flushed by the kernel with an address or the link: the run decides from what
            // the kernel shows now; nobody is fighting.
            dirty.mark(ifindex, Reason::Changed);
        } else {
            dirty.mark(ifindex, Reason::Healing);
            dirty
                .deleted
                .entry(ifindex)
                .or_default()
                .routes
                .insert(route.key());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netlink_packet_core::NLM_F_CREATE;
    use netlink_packet_route::link::LinkMessage;
    use netlink_packet_route::RouteNetlinkMessage as Msg;
    use symroute_core::monitor::decode;
    use symroute_core::{route_message, rule_message};

    fn route(table: u32, dst: &str, ifindex: u32, protocol: u8) -> Route {
        Route::unicast(table, dst.parse().unwrap(), 24)
            .via("10.2.0.1".parse().unwrap(), ifindex)
            .with_protocol(protocol)
    }

    fn rule(table: u32, protocol: u8) -> Rule {
        Rule::lookup(table, 32000)
            .with_src("10.2.0.2".parse().unwrap(), 32)
            .with_protocol(protocol)
    }

    /// The port id of another process's socket.
    const SOMEONE: u32 = 4242;

    fn run(events: &[(u16, Msg)], echoes: &mut Echoes) -> Dirty {
        let settings = Settings::default();
        let mut dirty = Dirty::default();
        for (flags, msg) in events {
            if let Some(change) = decode(msg) {
                note(&mut dirty, echoes, &settings, *flags, SOMEONE, &change);
            }
        }
        dirty
    }

    fn new_route(r: &Route) -> Msg {
        Msg::NewRoute(route_message(r))
    }

    fn del_route(r: &Route) -> Msg {
        Msg::DelRoute(route_message(r))
    }

    #[test]
    fn main_table_routes_mark_their_interfaces_once() {
        let events: Vec<(u16, Msg)> = (0..100)
            .map(|i| {
                let r = route(MAIN_TABLE, &format!("192.0.{i}.0"), 3, 3);
                (NLM_F_CREATE, new_route(&r))
            })
            .collect();
        let dirty = run(&events, &mut Echoes::default());
        assert_eq!(dirty.links, BTreeMap::from([(3, Reason::Changed)]));
        assert!(!dirty.resync && !dirty.every_link);
    }

    #[test]
    fn a_replaced_main_route_marks_every_link() {
        let r = route(MAIN_TABLE, "192.0.2.0", 3, 3);
        let dirty = run(
            &[(NLM_F_CREATE | NLM_F_REPLACE, new_route(&r))],
            &mut Echoes::default(),
        );
        assert!(dirty.every_link);
        assert_eq!(dirty.links, BTreeMap::from([(3, Reason::Changed)]));
    }

    #[test]
    fn our_own_additions_and_deletions_are_ignored() {
        let ours = route(1003, "192.0.2.0", 3, 83);
        let our_rule = rule(1003, 83);
        let mut echoes = Echoes::default();
        echoes.expect(&[Op::DelRoute(ours.clone()), Op::del_rule(our_rule.clone())]);
        let dirty = run(
            &[
                (0, new_route(&ours)),
                (0, Msg::NewRule(rule_message(&our_rule))),
                (0, del_route(&ours)),
                (0, Msg::DelRule(rule_message(&our_rule))),
            ],
            &mut echoes,
        );
        assert!(dirty.is_empty(), "{dirty:?}");
        assert_eq!(echoes.len(), 0);
    }

    #[test]
    fn steering_removed_by_someone_else_resyncs_and_our_own_changes_do_not() {
        let balance = route(1000, "0.0.0.0", 3, 83);
        let steer = Rule::lookup(1000, 32701).with_protocol(83);
        let mut echoes = Echoes::default();
        echoes.expect(&[Op::DelRoute(balance.clone()), Op::del_rule(steer.clone())]);
        let ours = run(
            &[
                (0, new_route(&balance)),
                (0, del_route(&balance)),
                (0, Msg::DelRule(rule_message(&steer))),
            ],
            &mut echoes,
        );
        assert!(ours.is_empty(), "{ours:?}");
        for event in [del_route(&balance), Msg::DelRule(rule_message(&steer))] {
            let theirs = run(&[(0, event)], &mut Echoes::default());
            assert!(theirs.resync, "{theirs:?}");
        }
    }

    #[test]
    fn someone_else_removing_ours_is_healing() {
        let ours = route(1003, "192.0.2.0", 3, 83);
        let dirty = run(
            &[
                (0, del_route(&ours)),
                (0, Msg::DelRule(rule_message(&rule(1004, 83)))),
            ],
            &mut Echoes::default(),
        );
        assert_eq!(
            dirty.links,
            BTreeMap::from([(3, Reason::Healing), (4, Reason::Healing)])
        );
    }

    #[test]
    fn deletions_by_someone_are_remembered_and_kernel_flushes_are_no_healing() {
        let ours = route(1003, "192.0.2.0", 3, 83);
        let our_rule = rule(1004, 83);
        let dirty = run(
            &[
                (0, del_route(&ours)),
                (0, Msg::DelRule(rule_message(&our_rule))),
            ],
            &mut Echoes::default(),
        );
        assert!(dirty.deleted[&3].restored_by(&Op::ReplaceRoute(ours.clone())));
        assert!(dirty.deleted[&4].restored_by(&Op::add_rule(our_rule.clone())));
        assert!(!dirty.deleted[&4].restored_by(&Op::add_rule(
            rule(1004, 83).with_src("10.2.0.9".parse().unwrap(), 32)
        )));

        let settings = Settings::default();
        let mut flushed = Dirty::default();
        note(
            &mut flushed,
            &mut Echoes::default(),
            &settings,
            0,
            KERNEL,
            &decode(&del_route(&ours)).unwrap(),
        );
        assert_eq!(flushed.links, BTreeMap::from([(3, Reason::Changed)]));
        assert!(flushed.deleted.is_empty());
    }

    #[test]
    fn healing_wins_over_changed() {
        let mut dirty = Dirty::default();
        dirty.mark(3, Reason::Healing);
        dirty.mark(3, Reason::Changed);
        assert_eq!(dirty.links[&3], Reason::Healing);
    }

    #[test]
    fn foreign_rules_and_local_routes_are_ignored() {
        let dirty = run(
            &[
                (0, Msg::DelRule(rule_message(&rule(200, 4)))),
                (0, Msg::DelRule(rule_message(&rule(1003, 4)))),
                (0, Msg::NewRule(rule_message(&rule(200, 4)))),
                (0, new_route(&route(255, "10.2.0.2", 3, 2))),
            ],
            &mut Echoes::default(),
        );
        assert!(dirty.is_empty(), "{dirty:?}");
    }

    #[test]
    fn a_vpns_catch_all_rule_resyncs_and_its_tables_routes_mark_their_interfaces() {
        // wg-quick's `ip rule add table main suppress_prefixlength 0` and its removal.
        let mut suppress = netlink_packet_route::rule::RuleMessage::default();
        suppress.header.family = netlink_packet_route::AddressFamily::Inet;
        suppress.header.action = netlink_packet_route::rule::RuleAction::ToTable;
        suppress.attributes.extend([
            netlink_packet_route::rule::RuleAttribute::Priority(31998),
            netlink_packet_route::rule::RuleAttribute::Table(254),
            netlink_packet_route::rule::RuleAttribute::SuppressPrefixLen(0),
        ]);
        for msg in [Msg::NewRule(suppress.clone()), Msg::DelRule(suppress)] {
            let dirty = run(&[(0, msg)], &mut Echoes::default());
            assert!(dirty.resync, "{dirty:?}");
        }
        // `default dev wg0 table 51820` (wg0 = 7).
        let dirty = run(
            &[(0, new_route(&route(51820, "0.0.0.0", 7, 3)))],
            &mut Echoes::default(),
        );
        assert!(dirty.links.contains_key(&7), "{dirty:?}");
    }

    #[test]
    fn foreign_route_in_our_table_marks_it_changed() {
        let dirty = run(
            &[(0, new_route(&route(1003, "192.0.2.0", 3, 4)))],
            &mut Echoes::default(),
        );
        assert_eq!(dirty.links, BTreeMap::from([(3, Reason::Changed)]));
    }

    #[test]
    fn removed_exemption_or_link_resyncs() {
        let exempt = Rule::lookup(MAIN_TABLE, 32000)
            .with_dst("172.17.0.0".parse().unwrap(), 16)
            .with_protocol(83);
        let dirty = run(
            &[(0, Msg::DelRule(rule_message(&exempt)))],
            &mut Echoes::default(),
        );
        assert!(dirty.resync);
        let dirty = run(
            &[(0, Msg::DelLink(LinkMessage::default()))],
            &mut Echoes::default(),
        );
        assert!(dirty.resync);
    }
}
