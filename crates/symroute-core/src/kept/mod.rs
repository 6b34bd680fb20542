//! The daemon's kept model of the host: read in full once (at start and after every full
//! run), then kept current from rtnetlink notifications, so that a route added, removed or
//! replaced in main becomes its writes without reading main again.
//!
//! What it keeps: links, addresses, main's routes by prefix ([`TableIndex`]), the routes of
//! symroute's tables (also the hook's writes and anyone else's), and how many main routes
//! make each interface an uplink of each family. A batch of main-table changes is planned
//! by the ordinary [`Planner`] over the prefixes it touched only: every plan rule (what is
//! mirrored, what an uplink shares of what is behind the host, own routes winning over
//! those copies, `strict`) decides per prefix, given the uplinks; so the plan of the
//! touched prefixes alone is exactly that part of a full plan, and nothing of the rules of
//! what is copied is written twice. What it cannot express — an interface becoming or
//! ceasing to be an uplink — the daemon hands to a full run ([`Kept::uplinks_changed`]).
//! The model plans with the classification of the last full run ([`Uplinks::classify`]:
//! gateways, the share of the public space, VPN tables, macvlans) and watches only what can
//! change it: the set of interfaces main has gateway routes through, an interface's direct
//! routes nearing half of the public space, a VPN table's routes, a new link.
//! See docs/design.md, "The daemon's event path".

mod packed;
mod renumber;
mod routes;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::net::IpAddr;
use std::ops::ControlFlow;

use netlink_packet_core::{NLM_F_APPEND, NLM_F_EXCL, NLM_F_REPLACE};

use crate::error::Error;
use crate::kernel::{self, apply, netlink::Netlink, ReadError, Walked};
use crate::model::rules;
use crate::model::uplinks::{is_copyable, may_cover_half, Uplinks};
use crate::model::{Address, Family, Link, Op, Route, RouteKey, Rule, Snapshot, MAIN_TABLE};
use crate::monitor::Change;
use crate::plan::diff::diff_owned;
use crate::plan::placement;
use crate::plan::Planner;
use crate::settings::Settings;
use renumber::{lost_all_v4, V4Event};
pub use routes::{Place, Prefix, Removed, TableIndex};

/// The writes one interface's table needs after a batch of main-table changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableWrites {
    pub ifindex: u32,
    pub name: String,
    pub ops: Vec<Op>,
}

/// What [`Kept::plan`] found.
#[derive(Debug, Default)]
pub struct Planned {
    pub writes: Vec<TableWrites>,
    /// Interfaces whose plan was refused (someone else's route in their table), or that
    /// lose every rule of a family: a per-interface run decides and reports.
    pub refused: Vec<u32>,
    /// Interfaces whose addresses changed but that were skipped: they need a run.
    pub unplanned: Vec<u32>,
}

impl Planned {
    /// Records `ops` as `link`'s table's writes, when there are any.
    fn add(&mut self, link: &Link, ops: Vec<Op>) {
        if !ops.is_empty() {
            self.writes.push(TableWrites {
                ifindex: link.index,
                name: link.name.clone(),
                ops,
            });
        }
    }
}

/// The kept model; invalid (and every notification left to the per-interface runs) until
/// [`Kept::load`] succeeds.
#[derive(Debug, Default)]
pub struct Kept {
    valid: bool,
    links: Vec<Link>,
    addresses: Vec<Address>,
    main: TableIndex,
    /// Every table in symroute's range, with whatever routes are in it.
    ours: BTreeMap<u32, TableIndex>,
    /// Main routes with a gateway through each (family, interface)
    /// ([`Uplinks::gateway_ways`]).
    ways: BTreeMap<(Family, u32), u32>,
    /// The keys of `ways` when the model was read.
    loaded_ways: BTreeSet<(Family, u32)>,
    /// Each (family, interface)'s direct routes' share of the public space, summed
    /// ([`Uplinks::direct_shares`]).
    shares: BTreeMap<(Family, u32), u128>,
    /// The uplinks the last full run planned with: every plan of the model uses them.
    settled: Uplinks,
    /// Something changed that may change the uplinks (or, with `[health]`, the order of
    /// main's defaults the steering follows): a full run decides.
    reclassify: bool,
    /// The tables other tools' catch-all rules look up before main, and their routes.
    vpn: BTreeMap<u32, Vec<Route>>,
    /// Prefixes of main changed since the last plan, with the main routes that left them:
    /// a table may still hold a copy of one that the model does not know of (see
    /// [`Kept::plan`]).
    pending: BTreeMap<Prefix, Vec<Route>>,
    /// Interfaces whose routes the kernel may have changed without a notification (their
    /// links changed).
    refresh: BTreeSet<u32>,
    /// Interfaces whose addresses changed.
    readdressed: BTreeSet<u32>,
    /// IPv4 addresses added and removed since the last refresh, by interface, in the
    /// order the kernel sent them.
    v4_events: Vec<(u32, V4Event)>,
    addresses_stale: bool,
    /// Interfaces whose addresses changed: planned whole (rules and table) from the model.
    whole: BTreeSet<u32>,
    /// Every policy rule, read again when an interface is planned whole.
    rules: Vec<Rule>,
}

impl Kept {
    pub fn is_valid(&self) -> bool {
        self.valid
    }

    /// Forgets everything (events were lost): [`Kept::load`] must read it again.
    pub fn invalidate(&mut self) {
        *self = Kept::default();
    }

    pub fn links(&self) -> &[Link] {
        &self.links
    }

    /// Main-table routes held.
    pub fn main_len(&self) -> usize {
        self.main.len()
    }

    /// Whether a plan or a refresh is waiting.
    pub fn has_work(&self) -> bool {
        self.valid
            && (!self.pending.is_empty()
                || !self.refresh.is_empty()
                || !self.whole.is_empty()
                || self.addresses_stale)
    }

    /// Reads links, addresses, rules and every route (main into the index as the dump
    /// streams, our tables and the VPN tables beside it). Run after a full run, with the
    /// uplinks that run planned with (`planned_with`): when the host changed in between,
    /// they differ from the ones read here, and [`Kept::uplinks_changed`] says so.
    pub async fn load(
        &mut self,
        nl: &Netlink,
        settings: &Settings,
        planned_with: &Uplinks,
    ) -> Result<(), ReadError> {
        self.invalidate();
        let links = kernel::links(nl).await?;
        let addresses = kernel::addresses(nl, None).await?;
        let rules = kernel::rules(nl).await?;
        let vpn_tables = rules::vpn_tables(&rules, settings.protocol);
        let mut vpn: BTreeMap<u32, Vec<Route>> =
            vpn_tables.iter().map(|(_, t)| (*t, Vec::new())).collect();
        let mut main = TableIndex::default();
        let mut ours: BTreeMap<u32, TableIndex> = BTreeMap::new();
        kernel::walk_routes(nl, None, None, |walked| {
            let route = match walked {
                Walked::Route(route) => route,
                Walked::Again => {
                    // Started again (a change interrupted the dump): a route deleted in
                    // between would stay in the model.
                    main = TableIndex::default();
                    ours.clear();
                    vpn.values_mut().for_each(Vec::clear);
                    return ControlFlow::Continue(());
                }
            };
            if route.table == MAIN_TABLE {
                main.insert(route.clone(), Place::Last);
            } else if let Some(routes) = vpn.get_mut(&route.table) {
                // (Before ours: any table above `table_base` could be an interface's.)
                routes.push(route.clone());
            } else if settings.interface_of_table(route.table).is_some() {
                ours.entry(route.table)
                    .or_default()
                    .insert(route.clone(), Place::Last);
            }
            ControlFlow::Continue(())
        })?;
        let read = {
            let vpn_routes: Vec<&Route> = vpn_tables
                .iter()
                .flat_map(|(family, t)| {
                    vpn.get(t)
                        .into_iter()
                        .flatten()
                        .filter(move |r| r.family() == *family)
                })
                .collect();
            Uplinks::classify_each(|visit| main.for_each(visit), &vpn_routes, &links)
        };
        *self = Kept {
            valid: true,
            links,
            addresses,
            main,
            ours,
            settled: planned_with.clone(),
            vpn,
            rules,
            ..Kept::default()
        };
        let (ways, shares) = (&mut self.ways, &mut self.shares);
        self.main.for_each(|route| {
            count(ways, shares, route, true);
        });
        self.loaded_ways = self.ways.keys().copied().collect();
        self.reclassify = read != *planned_with;
        Ok(())
    }

    /// Plans `route`'s prefix again: a change of main the last read already holds (see
    /// symrouted's `reload_model`); a route that left may have left copies.
    pub fn replan(&mut self, route: &Route, added: bool) {
        if !self.valid {
            return;
        }
        if added {
            self.touch(route);
        } else {
            self.left(route);
        }
    }

    /// Marks `route`'s prefix for the next plan.
    fn touch(&mut self, route: &Route) {
        self.pending.entry(Prefix::of(route)).or_default();
    }

    /// Marks `route`'s prefix for the next plan, remembering that a route with its metric
    /// left main.
    fn left(&mut self, route: &Route) {
        self.pending
            .entry(Prefix::of(route))
            .or_default()
            .push(route.clone());
    }

    /// Counts `route` in (or out of) what decides the uplinks: its gateways, and its share
    /// of the public space when direct. A share that may reach half of the space (before or
    /// after) leaves the classification to a full run.
    fn count_ways(&mut self, route: &Route, add: bool) {
        if count(&mut self.ways, &mut self.shares, route, add) {
            self.reclassify = true;
        }
    }

    /// Takes one notification into the model. Returns whether it was a main-table route
    /// change that the model now plans ([`Kept::plan`]); everything else is still the
    /// caller's to note (our tables' echoes, links, addresses, rules).
    pub fn note(&mut self, settings: &Settings, flags: u16, change: &Change) -> bool {
        if !self.valid {
            return false;
        }
        match change {
            Change::Route { route, added } if route.table == MAIN_TABLE => {
                if route.dst_len == 0 && settings.health.is_some() {
                    // Main's defaults order the uplinks `[health]` steers to: a full run
                    // plans the steering.
                    self.reclassify = true;
                }
                self.touch(route);
                if *added {
                    if flags & NLM_F_REPLACE != 0
                        && self
                            .main
                            .get(&route.key())
                            .is_some_and(|first| self.maybe_dropped(&first))
                    {
                        // The kernel replaced the first route under the key it still held,
                        // and IPv4 may have dropped the model's first without a word (its
                        // link went down, its source went) before this change: the other
                        // one, which the model would keep, may be what went. Only a full
                        // run can tell.
                        self.valid = false;
                        return false;
                    }
                    let old = if flags & NLM_F_REPLACE != 0
                        || (route.family() == Family::V6 && self.v6_siblings(route))
                    {
                        // (An IPv6 multipath route is reported whole, with the next hop
                        // just appended: it stands for the route held under its key.)
                        self.count_ways(route, true);
                        self.main.replace(route.clone())
                    } else {
                        if route.family() == Family::V4 && flags & NLM_F_EXCL != 0 {
                            // The kernel inserted it with no other route under its key: any
                            // the model holds there is from a notification replayed after
                            // a load, and a later one puts back whatever is still there.
                            for old in self.main.remove_key(&route.key()) {
                                self.count_ways(&old, false);
                                self.left(&old);
                            }
                        }
                        let place = if flags & NLM_F_APPEND != 0 {
                            Place::Last
                        } else {
                            Place::First
                        };
                        // Counted only when new: a notification replayed after a load may
                        // report what the load already read.
                        if self.main.insert(route.clone(), place) {
                            self.count_ways(route, true);
                        }
                        None
                    };
                    if let Some(old) = old {
                        self.count_ways(&old, false);
                        self.left(&old);
                    }
                } else if let Removed::Gone(old) = self.main.remove(route) {
                    self.count_ways(&old, false);
                    self.left(&old);
                    if let Some(left) = self.main.get(&old.key()) {
                        // A multipath route that lost next hops: count what is left.
                        if left.nexthops.len() < old.nexthops.len() {
                            self.count_ways(&left, true);
                        }
                    }
                }
                true
            }
            Change::Route { route, .. } if self.vpn.contains_key(&route.table) => {
                // A VPN table's routes can make a tunnel an uplink.
                self.reclassify = true;
                false
            }
            Change::Route { route, added } => {
                if settings.interface_of_table(route.table).is_some() {
                    let table = self.ours.entry(route.table).or_default();
                    if *added {
                        table.replace(route.clone());
                    } else {
                        table.remove(route);
                    }
                }
                false
            }
            Change::Link(index) => {
                if !self.links.iter().any(|l| l.index == *index) {
                    // A new link: a macvlan takes its parent's ways out.
                    self.reclassify = true;
                }
                self.refresh.insert(*index);
                false
            }
            Change::Address { index, .. } | Change::AddressGone { index, .. } => {
                // Whether the interface was left without an IPv4 address for a moment is
                // judged from these at the next refresh ([`renumber`]).
                match change {
                    Change::Address {
                        addr: Some(IpAddr::V4(a)),
                        ..
                    } => self
                        .v4_events
                        .push((*index, V4Event::Added(IpAddr::V4(*a)))),
                    Change::AddressGone { addr, .. } if !addr.is_some_and(|a| a.is_ipv6()) => {
                        self.v4_events.push((*index, V4Event::Removed(*addr)));
                    }
                    _ => {}
                }
                // IPv4 drops the routes whose preferred source was a removed address
                // without a notification.
                self.addresses_stale = true;
                self.readdressed.insert(*index);
                // The interface's rules (and, when a family gains or loses its first rule,
                // its table) are planned from the model, unless a setting makes one
                // interface's addresses matter to others (`prefix_rules`: shared subnets;
                // `iif_rules`: the nftables table of marked interfaces): then a run.
                if settings.prefix_rules || settings.iif_rules {
                    return false;
                }
                self.whole.insert(*index);
                true
            }
            Change::LinkGone(_) => {
                self.valid = false;
                false
            }
            Change::RuleAdded(_) | Change::RuleRemoved(_) => false,
        }
    }

    /// Whether IPv4 may have dropped `route` without a notification since the routes it can
    /// lose that way were last read ([`Kept::refresh`]): it goes through a link that changed
    /// (set down), or its preferred source was removed, or it goes through an interface whose
    /// IPv4 addresses may all be gone.
    fn maybe_dropped(&self, route: &Route) -> bool {
        if route.family() != Family::V4 {
            return false;
        }
        let source_gone = route.pref_src().is_some_and(|src| {
            self.v4_events.iter().any(|(i, event)| match event {
                V4Event::Removed(addr) => {
                    *addr == Some(src) || (addr.is_none() && route.uses_link(*i))
                }
                V4Event::Added(_) => false,
            })
        });
        source_gone
            || route.nexthops.iter().any(|nh| {
                self.refresh.contains(&nh.ifindex)
                    || lost_all_v4(
                        &v4_of(&self.addresses, nh.ifindex),
                        &events_of(&self.v4_events, nh.ifindex),
                    )
            })
    }

    /// Whether main holds an IPv6 route under `route`'s key that shares a next hop with it or
    /// could be its multipath sibling (both through gateways).
    fn v6_siblings(&self, route: &Route) -> bool {
        self.main.get(&route.key()).is_some_and(|held| {
            held.nexthops.iter().any(|h| {
                route
                    .nexthops
                    .iter()
                    .any(|n| n.ifindex == h.ifindex && n.gateway == h.gateway)
                    || (n_gw(route) && h.gateway.is_some())
            })
        })
    }

    /// Takes in writes of our own that the kernel confirmed: the monitor drops their
    /// echoes ([`crate::monitor::Monitor::set_writer`]), so the model learns them here.
    pub fn wrote<'a>(&mut self, settings: &Settings, ops: impl IntoIterator<Item = &'a Op>) {
        if !self.valid {
            return;
        }
        for op in ops {
            match op {
                Op::ReplaceRoute(route) if settings.interface_of_table(route.table).is_some() => {
                    self.ours
                        .entry(route.table)
                        .or_default()
                        .replace(route.clone());
                }
                Op::DelRoute(route) => {
                    if let Some(table) = self.ours.get_mut(&route.table) {
                        table.remove(route);
                    }
                }
                _ => {}
            }
        }
    }

    /// Reads links and addresses again, and the routes of every table through interfaces
    /// where IPv4 may have dropped some without a notification: one whose link or addresses
    /// changed (a link set down loses its routes, and so does one whose last IPv4 address
    /// goes), and one with a route whose preferred source is no address any more. Each is a
    /// dump filtered by the kernel (`RTA_OIF`), compared with what is held: only what
    /// differs becomes pending.
    pub async fn refresh(&mut self, nl: &Netlink, settings: &Settings) -> Result<(), ReadError> {
        if self.refresh.is_empty() && !self.addresses_stale {
            return Ok(());
        }
        let links = kernel::links(nl).await?;
        let addresses = kernel::addresses(nl, None).await?;
        // Judged by what is there now, not by what changed since the last read: an earlier
        // refresh may have read a state whose notification was still on its way.
        let mut reread = std::mem::take(&mut self.refresh);
        let events = std::mem::take(&mut self.v4_events);
        for index in std::mem::take(&mut self.readdressed) {
            let now = v4_of(&addresses, index);
            if now.is_empty() {
                // No IPv4 address left: no IPv4 route through it either.
                reread.insert(index);
                continue;
            }
            if lost_all_v4(&v4_of(&self.addresses, index), &events_of(&events, index)) {
                // Renumbered (a DHCP client's new lease): what IPv4 flushed in between
                // (routes, copies, dead next hops of multipath routes that came back) is
                // more than a re-read can tell apart from what came back the same, and
                // notifications of routes added before the flush can still be on their way.
                // A full run reads it all.
                self.valid = false;
                return Ok(());
            }
        }
        // (Counted by source in the index: a scan of main only when one went.)
        let sources_gone: Vec<IpAddr> = self
            .main
            .sources()
            .filter(|src| !addresses.iter().any(|a| a.addr == **src))
            .copied()
            .collect();
        if !sources_gone.is_empty() {
            for route in self.main.iter() {
                if route
                    .pref_src()
                    .is_some_and(|src| sources_gone.contains(&src))
                {
                    reread.extend(route.nexthops.iter().map(|nh| nh.ifindex));
                }
            }
        }
        self.links = links;
        self.addresses = addresses;
        self.addresses_stale = false;
        if !self.whole.is_empty() {
            self.rules = kernel::rules(nl).await?;
        }
        for ifindex in reread {
            self.reread(nl, settings, ifindex)?;
        }
        Ok(())
    }

    /// Reads our `table` again, whole, after a run that repaired it: someone deleted routes
    /// of ours there, and notifications of those deletions read after the run had put them
    /// back would have taken them out of the model while the kernel holds them (a copy it
    /// then never deletes, or one it never writes again).
    pub fn reread_table(&mut self, nl: &Netlink, table: u32) -> Result<(), ReadError> {
        if !self.valid {
            return Ok(());
        }
        // Walked into the index: a 1 000 000-route table is not held twice.
        let mut index = TableIndex::default();
        kernel::walk_table(nl, table, |walked| {
            match walked {
                Walked::Route(route) => {
                    index.insert(route.clone(), Place::Last);
                }
                Walked::Again => index = TableIndex::default(),
            }
            ControlFlow::Continue(())
        })?;
        self.ours.insert(table, index);
        Ok(())
    }

    /// Brings the routes through `ifindex` in line with the kernel's.
    fn reread(&mut self, nl: &Netlink, settings: &Settings, ifindex: u32) -> Result<(), ReadError> {
        let fresh = kernel::route_dump(nl, None, Some(ifindex), |route| {
            route.uses_link(ifindex).then_some(route)
        })?;
        let (main, ours): (Vec<Route>, Vec<Route>) =
            fresh.into_iter().partition(|r| r.table == MAIN_TABLE);
        let wanted: HashSet<&Route> = main.iter().collect();
        for gone in self
            .main
            .remove_where(|r| r.uses_link(ifindex) && !wanted.contains(r))
        {
            self.count_ways(&gone, false);
            self.left(&gone);
        }
        for route in main {
            let prefix = Prefix::of(&route);
            if self.main.prefix(&prefix).any(|held| held == route) {
                continue;
            }
            if route.family() == Family::V4
                && self
                    .main
                    .prefix(&prefix)
                    .any(|held| held.key() == route.key())
            {
                // Another IPv4 route under its key, through another interface: whether the
                // kernel still has it the filtered dump cannot say. A full run decides.
                self.valid = false;
                return Ok(());
            }
            self.count_ways(&route, true);
            self.touch(&route);
            if route.family() == Family::V6 && self.v6_siblings(&route) {
                // The whole multipath route, of which the model may hold a part through
                // another interface.
                if let Some(old) = self.main.replace(route) {
                    self.count_ways(&old, false);
                    self.left(&old);
                }
            } else {
                self.main.insert(route, Place::Last);
            }
        }
        let wanted: HashSet<&Route> = ours.iter().collect();
        let mut flushed = Vec::new();
        for table in self.ours.values_mut() {
            flushed.extend(table.remove_where(|r| r.uses_link(ifindex) && !wanted.contains(r)));
        }
        // Copies the kernel took out with the link or the address while main's route came
        // back the same (a renumbering): their prefixes are planned again.
        for route in &flushed {
            self.touch(route);
        }
        for route in ours {
            if settings.interface_of_table(route.table).is_some()
                && !self.vpn.contains_key(&route.table)
            {
                let table = self.ours.entry(route.table).or_default();
                if !table.prefix(&Prefix::of(&route)).any(|held| held == route) {
                    table.insert(route, Place::Last);
                }
            }
        }
        Ok(())
    }

    /// Whether an interface may have become or ceased to be an uplink of some family since
    /// the last full run: every table's share of what is behind the host may change, which
    /// only a full run plans. Never false when the classification changed; sometimes true
    /// when it did not (a share near half, a VPN table's route).
    pub fn uplinks_changed(&self) -> bool {
        self.reclassify || self.ways.keys().ne(self.loaded_ways.iter())
    }

    /// The writes that bring the tables of `links` (all but loopback and those in `skip`)
    /// in line with main for every prefix changed since the last plan. The prefixes are
    /// taken: interfaces skipped are expected to get a run of their own.
    pub fn plan(&mut self, settings: &Settings, skip: &BTreeSet<u32>) -> Planned {
        let pending = std::mem::take(&mut self.pending);
        let whole = std::mem::take(&mut self.whole);
        let mut planned = Planned::default();
        if !self.valid {
            return planned;
        }
        let mut skip = skip.clone();
        for ifindex in whole {
            if skip.contains(&ifindex) {
                planned.unplanned.push(ifindex);
                continue;
            }
            if self.plan_whole(settings, ifindex, &pending, &mut planned) {
                skip.insert(ifindex);
            }
        }
        if pending.is_empty() {
            return planned;
        }
        let main_routes: Vec<Route> = pending
            .keys()
            .flat_map(|p| self.main.prefix(p).collect::<Vec<_>>())
            .collect();
        let links: Vec<&Link> = self
            .links
            .iter()
            .filter(|l| !l.loopback && !skip.contains(&l.index))
            .collect();
        let mut tables = self.vpn.clone();
        for link in &links {
            let table = settings.table_for(link.index);
            let held: Vec<Route> = match self.ours.get(&table) {
                Some(index) => pending
                    .keys()
                    .flat_map(|p| index.prefix(p).collect::<Vec<_>>())
                    .collect(),
                None => Vec::new(),
            };
            tables.insert(table, held);
        }
        let snapshot = Snapshot {
            links: self.links.clone(),
            addresses: self.addresses.clone(),
            main_routes,
            // The VPN tables (and the rules that say which they are) for the copies of their
            // routes a tunnel's table gets.
            rules: self.rules.clone(),
            tables,
        };
        let uplinks = &self.settled;
        let planner = Planner::with_uplinks(&snapshot, settings, uplinks);
        for link in links {
            let plan = match planner.interface(link) {
                Ok(plan) => plan,
                Err(e) => {
                    log::debug!("{e}");
                    planned.refused.push(link.index);
                    continue;
                }
            };
            let wanted: Vec<Route> = plan
                .routes
                .into_iter()
                .filter(|r| pending.contains_key(&Prefix::of(r)))
                .collect();
            let present: Vec<&Route> = snapshot.routes_in(settings.protocol, plan.table).collect();
            // Copies of main routes that left, which the model may not hold.
            let unknown = unknown_copies(
                settings, uplinks, link.index, plan.table, &pending, &wanted, &present,
            );
            let mut ops = diff_owned(wanted, &[], &present, &[]);
            ops.extend(unknown.into_iter().map(Op::DelRoute));
            planned.add(link, ops);
        }
        planned
    }

    /// Plans the rules of `link` alone when its addresses changed but the families that get
    /// rules did not: the table depends on the addresses only through those families (a
    /// family without a rule never looks its routes up), so an address swap is a change of
    /// rules, planned without a scan of main. Returns whether it did; the table's routes of
    /// the batch's prefixes are then planned with everyone's.
    fn plan_rules_alone(&self, settings: &Settings, link: &Link, planned: &mut Planned) -> bool {
        let table = settings.table_for(link.index);
        let bare = Snapshot {
            links: self.links.clone(),
            addresses: self.addresses.clone(),
            main_routes: Vec::new(),
            rules: self.rules.clone(),
            tables: BTreeMap::from([(table, Vec::new())]),
        };
        let Ok(plan) = Planner::with_uplinks(&bare, settings, &self.settled).interface(link) else {
            return false;
        };
        let present: Vec<Rule> = bare.rules_into(settings.protocol, table).cloned().collect();
        let families = |rules: &[Rule]| rules.iter().map(|r| r.family).collect::<BTreeSet<_>>();
        if present.is_empty() || families(&plan.rules) != families(&present) {
            return false;
        }
        let ops = diff_owned(Vec::new(), &plan.rules, &[], &present);
        planned.add(link, ops);
        true
    }

    /// Plans `ifindex` whole (its rules and its table) from the model, unless its rules alone
    /// changed ([`Kept::plan_rules_alone`]; then returns false): main's routes with a
    /// prefix through it, or, when its table gets copies of what is behind the host, with
    /// a prefix of a copyable route through a non-uplink, and whatever its table holds.
    fn plan_whole(
        &self,
        settings: &Settings,
        ifindex: u32,
        pending: &BTreeMap<Prefix, Vec<Route>>,
        planned: &mut Planned,
    ) -> bool {
        let Some(link) = self.links.iter().find(|l| l.index == ifindex) else {
            // Gone: its deletion runs the garbage collection.
            return true;
        };
        // Where the rules go among other tools' (a VPN's catch-alls), as a run places them.
        let settings = &placement::placed(settings, &self.rules);
        if self.plan_rules_alone(settings, link, planned) {
            return false;
        }
        let uplinks = &self.settled;
        let behind = settings.strict
            || [Family::V4, Family::V6]
                .iter()
                .any(|f| uplinks.is_uplink(*f, ifindex));
        let table = settings.table_for(ifindex);
        // A macvlan without a way out of its own takes its parent's.
        let parents: Vec<(Family, u32)> = [Family::V4, Family::V6]
            .into_iter()
            .filter_map(|f| uplinks.parent(f, ifindex).map(|p| (f, p)))
            .collect();
        let mut prefixes: BTreeSet<Prefix> = BTreeSet::new();
        self.main.for_each(|r| {
            if r.uses_link(ifindex)
                || parents
                    .iter()
                    .any(|(f, p)| r.family() == *f && r.uses_link(*p))
                || (behind
                    && is_copyable(r)
                    && !r
                        .nexthops
                        .iter()
                        .any(|nh| uplinks.is_uplink(r.family(), nh.ifindex)))
            {
                prefixes.insert(Prefix::of(r));
            }
        });
        let held: Vec<Route> = self
            .ours
            .get(&table)
            .map(|t| t.iter().collect())
            .unwrap_or_default();
        prefixes.extend(held.iter().map(Prefix::of));
        let main_routes = prefixes
            .iter()
            .flat_map(|p| self.main.prefix(p).collect::<Vec<_>>())
            .collect();
        let snapshot = Snapshot {
            links: self.links.clone(),
            addresses: self.addresses.clone(),
            main_routes,
            rules: self.rules.clone(),
            tables: {
                let mut tables = self.vpn.clone();
                tables.insert(table, held);
                tables
            },
        };
        let planner = Planner::with_uplinks(&snapshot, settings, uplinks);
        let plan = match planner.interface(link) {
            Ok(plan) => plan,
            Err(e) => {
                log::debug!("{e}");
                planned.refused.push(ifindex);
                return true;
            }
        };
        let present: Vec<&Route> = snapshot.routes_in(settings.protocol, table).collect();
        let rules: Vec<Rule> = snapshot
            .rules_into(settings.protocol, table)
            .cloned()
            .collect();
        // A family losing its last rule empties its part of the table: a run reads the
        // table itself, where the model may miss a route (see `unknown` in `plan`).
        if rules
            .iter()
            .any(|r| !plan.rules.iter().any(|p| p.family == r.family))
        {
            planned.refused.push(ifindex);
            return true;
        }
        let unknown = unknown_copies(
            settings,
            uplinks,
            ifindex,
            table,
            pending,
            &plan.routes,
            &present,
        );
        let mut ops = diff_owned(plan.routes, &plan.rules, &present, &rules);
        ops.extend(unknown.into_iter().map(Op::DelRoute));
        planned.add(link, ops);
        true
    }

    pub async fn apply(
        &self,
        nl: &Netlink,
        interface: &str,
        ops: &mut Vec<Op>,
    ) -> Result<(), Error> {
        Ok(apply(nl, interface, ops, &self.links).await?)
    }
}

/// Counts `route` in (or out of) `ways` (its gateways) and `shares` (its share of the public
/// space, when direct). Returns whether a share it changed is or was at half of the space.
fn count(
    ways: &mut BTreeMap<(Family, u32), u32>,
    shares: &mut BTreeMap<(Family, u32), u128>,
    route: &Route,
    add: bool,
) -> bool {
    for way in Uplinks::gateway_ways(route) {
        let n = ways.entry(way).or_default();
        if add {
            *n += 1;
        } else {
            *n = n.saturating_sub(1);
            if *n == 0 {
                ways.remove(&way);
            }
        }
    }
    let mut near_half = false;
    for (way, size) in Uplinks::direct_shares(route) {
        let sum = shares.entry(way).or_default();
        let before = *sum;
        *sum = if add {
            sum.saturating_add(size)
        } else {
            sum.saturating_sub(size)
        };
        near_half |= may_cover_half(way.0, before) || may_cover_half(way.0, *sum);
    }
    near_half
}

/// Deletions by key of the copies that main routes which left (`pending`'s) may have left in
/// `table` of interface `ifindex` without the model holding them: our own writes are learnt
/// when made, a deletion by someone else when its notification is read, so a deletion read
/// after our rewrite of the same route hides that rewrite. A deletion of what is not there
/// costs nothing (the kernel's "no such route" is taken as done).
fn unknown_copies(
    settings: &Settings,
    uplinks: &Uplinks,
    ifindex: u32,
    table: u32,
    pending: &BTreeMap<Prefix, Vec<Route>>,
    wanted: &[Route],
    present: &[&Route],
) -> Vec<Route> {
    let parent = |family: Family| uplinks.parent(family, ifindex);
    // The interface a copy of `r` in the table leaves through first: its own (a mirror),
    // the parent's whose ways out a macvlan takes, or that of the route behind the host.
    let copied_through = |r: &Route| -> Option<u32> {
        if r.uses_link(ifindex) {
            Some(ifindex)
        } else if let Some(p) = parent(r.family()).filter(|p| r.uses_link(*p)) {
            Some(p)
        } else if is_copyable(r) && (settings.strict || uplinks.is_uplink(r.family(), ifindex)) {
            r.nexthops.first().map(|nh| nh.ifindex)
        } else {
            None
        }
    };
    let known: HashSet<RouteKey> = wanted
        .iter()
        .map(Route::key)
        .chain(present.iter().map(|r| r.key()))
        .collect();
    // The routes the table holds or gets under each prefix, by the interface they leave
    // through first: the kernel reads a deletion's metric 0 as any metric, and takes the
    // lowest that matches the rest (a key alone took the metric 50 copy the table wanted),
    // so a copy with metric 0 is named alone only by its interface, and only where nothing
    // else under its prefix leaves through that one.
    let taken: HashSet<(Prefix, Option<u32>)> = wanted
        .iter()
        .chain(present.iter().copied())
        .map(|r| (Prefix::of(r), r.nexthops.first().map(|nh| nh.ifindex)))
        .collect();
    let mut unknown: Vec<Route> = pending
        .values()
        .flatten()
        .filter(|old| !known.contains(&old.key().with_table(table)))
        .filter_map(|old| {
            let through = copied_through(old)?;
            let mut by_key = Route::unicast(table, old.dst, old.dst_len)
                .with_metric(old.metric)
                .with_protocol(settings.protocol);
            by_key.tos = old.tos;
            if old.metric == 0 {
                if taken.contains(&(Prefix::of(old), Some(through))) {
                    // Would take that route instead, when the copy is not there. The model
                    // misses a copy only when a deletion was read after our rewrite (see
                    // docs/design.md): left to the verification.
                    return None;
                }
                by_key = by_key.dev(through);
            }
            // RT_SCOPE_NOWHERE: any scope (a copied direct route is scope link).
            by_key.scope = 255;
            Some(by_key)
        })
        .collect();
    unknown.sort();
    unknown.dedup();
    unknown
}

fn n_gw(route: &Route) -> bool {
    route.nexthops.iter().any(|n| n.gateway.is_some())
}

/// The IPv4 addresses of interface `index` in `list`.
fn v4_of(list: &[Address], index: u32) -> Vec<IpAddr> {
    list.iter()
        .filter(|a| a.ifindex == index && a.addr.is_ipv4())
        .map(|a| a.addr)
        .collect()
}

/// The IPv4 address notifications of interface `index`, in order.
fn events_of(events: &[(u32, V4Event)], index: u32) -> Vec<V4Event> {
    events
        .iter()
        .filter(|(i, _)| *i == index)
        .map(|(_, e)| *e)
        .collect()
}

#[cfg(test)]
mod tests;
