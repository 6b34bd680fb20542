//! One run: lock → snapshot → plan → diff → apply, for one interface or all of them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::error::Error;
use crate::events::Action;
use crate::health::{self, HealthState};
use crate::kernel::netlink::Netlink;
use crate::kernel::{self, nftables, ApplyError, Scope};
use crate::lock::{RunLock, LOCK_WAIT};
use crate::model::Op;
use crate::model::{Link, NftInstalled as Installed, Route, Rule, Snapshot, MAIN_TABLE};
use crate::plan::diff::{diff, diff_owned};
use crate::plan::steer::{self, SteerPlan};
use crate::plan::{garbage_by_table, plan_exempt, Garbage, InterfacePlan, PlanError, Planner};
use crate::plan::{nft, placement};
use crate::settings::Settings;

/// What a run is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// One interface, by name, with what its event asks for.
    Interface { name: String, action: Action },
    /// Every interface (install, daemon start, manual `--all`).
    All,
    /// Remove every rule and route of ours (uninstall, `--flush`).
    Flush,
}

/// Whether a run writes to the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Apply,
    /// Compute and report the operations; change nothing (and take no lock).
    DryRun,
}

/// Changes logged one per line for each interface in a run; the rest are counted.
pub const LOGGED_CHANGES: usize = 50;

/// The operations of one interface in a run, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Changes {
    pub interface: String,
    pub ops: Vec<Op>,
}

/// An operation for a named interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change<'a> {
    pub interface: &'a str,
    pub op: &'a Op,
}

impl Change<'_> {
    /// `eth1: +rule from 10.2.0.9 lookup 1003 priority 32000`, with the names of `links`.
    pub fn line(&self, links: &[Link]) -> String {
        format!("{}: {}", self.interface, self.op.display(links))
    }
}

/// What a run did (or, in a dry run, would do).
///
/// Each operation is held once, as planned (a 100 000-route table is 100 000 of them); its
/// line is formatted only when it is shown.
#[derive(Debug, Default)]
pub struct Report {
    /// Planned operations per interface, in order. In apply mode, those the kernel confirmed.
    pub by_interface: Vec<Changes>,
    /// The links of the run, for the names in `Change::line`.
    pub links: Vec<Link>,
    /// The change to `table inet symroute` (`iif_rules`), as one line
    /// (`nft: replace table inet symroute (2 interfaces)`); in apply mode, once made.
    pub nft: Option<String>,
    /// Interfaces that were refused or failed while others went on (only in [`Target::All`]).
    pub failures: Vec<Error>,
    /// With `[health]`, when the run planned the steering: what it decided, one line per
    /// family, and the uplinks it could steer to (what symrouted probes).
    pub steering: Option<SteerPlan>,
}

impl Report {
    /// Every operation, in order, with its interface.
    pub fn changes(&self) -> impl Iterator<Item = Change<'_>> {
        self.by_interface.iter().flat_map(|c| {
            c.ops.iter().map(|op| Change {
                interface: &c.interface,
                op,
            })
        })
    }

    /// How many operations [`Report::changes`] yields.
    pub fn change_count(&self) -> usize {
        self.by_interface.iter().map(|c| c.ops.len()).sum()
    }

    /// Every change as a line: the netlink operations in order, then the nftables change.
    pub fn lines(&self) -> impl Iterator<Item = String> + '_ {
        self.changes()
            .map(|c| c.line(&self.links))
            .chain(self.nft.clone())
    }

    /// Whether nothing was (or would be) changed.
    pub fn is_empty(&self) -> bool {
        self.change_count() == 0 && self.nft.is_none()
    }

    /// How the command-line tools end a run: a dry run's changes on stdout, one per line,
    /// every failure logged. Returns whether the run had no failure.
    pub fn finish(&self, mode: Mode) -> bool {
        if mode == Mode::DryRun {
            if let Some(steering) = &self.steering {
                println!("# health: {}", steering.settings);
                for line in &steering.summary {
                    println!("# steering {line}");
                }
            }
            for line in self.lines() {
                println!("{line}");
            }
        }
        if self.is_empty() {
            log::debug!("in sync, nothing to change");
        }
        for failure in &self.failures {
            log::error!("{failure}");
        }
        self.failures.is_empty()
    }
}

/// The operations for one interface, named for logging.
struct Work {
    interface: String,
    ops: Vec<Op>,
    /// A plan not yet compared with what is there (then `ops` is empty): diffed once main's
    /// routes are dropped, so a 100 000-route run holds main, the plan and the operations
    /// two at a time, never all three.
    plan: Option<InterfacePlan>,
    /// An uplink planned along with the interface a run is about: a failure to write it
    /// is logged, and does not fail that run.
    companion: bool,
}

impl Work {
    fn ops(interface: String, ops: Vec<Op>) -> Work {
        Work {
            interface,
            ops,
            plan: None,
            companion: false,
        }
    }

    /// Turns a pending plan into its operations.
    fn diff(&mut self, snapshot: &Snapshot, settings: &Settings) {
        if let Some(plan) = self.plan.take() {
            let (routes, rules) = present(snapshot, settings, plan.table);
            self.ops = diff_owned(plan.routes, &plan.rules, &routes, &rules);
        }
    }
}

/// What is present for `table` and ours: the rules pointing at it and its routes (borrowed:
/// a 100 000-route table is not copied to be compared).
fn present<'a>(
    snapshot: &'a Snapshot,
    settings: &Settings,
    table: u32,
) -> (Vec<&'a Route>, Vec<Rule>) {
    let routes = snapshot.routes_in(settings.protocol, table).collect();
    let rules = snapshot
        .rules_into(settings.protocol, table)
        // A steering rule into an uplink's table is the steering's (`steer_work`).
        .filter(|r| !r.is_steering(settings.protocol))
        .cloned()
        .collect();
    (routes, rules)
}

/// The work of syncing `link`, and its plan's connection mark (`iif_rules`).
fn sync_work(
    planner: &Planner<'_>,
    settings: &Settings,
    link: &Link,
) -> Result<(Work, Option<u32>), Error> {
    let plan = planner.interface(link)?;
    warn_unmarkable(&plan, settings);
    let mark = plan.mark;
    Ok((
        Work {
            plan: Some(plan),
            ..Work::ops(link.name.clone(), Vec::new())
        },
        mark,
    ))
}

fn warn_unmarkable(plan: &InterfacePlan, settings: &Settings) {
    if plan.unmarkable(settings) {
        log::warn!(
            "{name}: iif_rules: its index {index} does not fit in fwmark_mask {mask:#x} (room for \
             indexes 1 to {max}): connections entering {name} are not tied to it (give \
             fwmark_mask more bits)",
            name = plan.name,
            index = plan.ifindex,
            mask = settings.fwmark_mask,
            max = settings.mark_capacity(),
        );
    }
}

/// One warning line about the interfaces (only `only`, when given) that `include` names and
/// `exclude` leaves out: exclude wins, so they are not managed, and the admin likely meant
/// one or the other.
pub(crate) fn warn_included_and_excluded(links: &[Link], settings: &Settings, only: Option<u32>) {
    let both: Vec<String> = links
        .iter()
        .filter(|l| !l.loopback && only.is_none_or(|i| i == l.index))
        .filter_map(|l| {
            let (include, exclude) = settings.included_and_excluded(&l.name)?;
            Some(format!(
                "{} (include {include:?}, exclude {exclude:?})",
                l.name
            ))
        })
        .collect();
    if !both.is_empty() {
        log::warn!(
            "matched by both include and exclude, so not managed (exclude wins): {}",
            both.join(", ")
        );
    }
}

fn remove_work(snapshot: &Snapshot, settings: &Settings, link: &Link) -> Work {
    let (routes, rules) = present(snapshot, settings, settings.table_for(link.index));
    Work::ops(
        link.name.clone(),
        diff_owned(Vec::new(), &[], &routes, &rules),
    )
}

/// The exemption rules (`to PREFIX lookup main`): global, not tied to one interface.
fn exempt_work(snapshot: &Snapshot, settings: &Settings, flush: bool) -> Work {
    let wanted = if flush {
        Vec::new()
    } else {
        plan_exempt(settings)
    };
    let present: Vec<Rule> = snapshot
        .rules_into(settings.protocol, MAIN_TABLE)
        .filter(|r| !r.is_steering(settings.protocol))
        .cloned()
        .collect();
    Work::ops("exempt".into(), diff(&[], &wanted, &[], &present))
}

/// Stale state of interfaces that are gone, one [`Work`] per stale table.
fn garbage_work(snapshot: &Snapshot, settings: &Settings) -> Vec<Work> {
    garbage_by_table(snapshot, settings)
        .into_iter()
        .map(|g: Garbage| {
            // The interface is gone: its name is too.
            let name = match settings.interface_of_table(g.table) {
                Some(ifindex) => snapshot.link_name(ifindex),
                None => format!("table {}", g.table),
            };
            Work::ops(name, diff(&[], &[], &g.routes, &g.rules))
        })
        .collect()
}

/// The steering of `[health]` (`plan/steer.rs`) from the verdicts symrouted wrote beside
/// the run lock, as one [`Work`]; with `[health]` gone or on flush, the removal of what is
/// left of it. `None` when there is nothing to look at.
async fn steer_work(
    nl: &Netlink,
    snapshot: &mut Snapshot,
    settings: &Settings,
    flush: bool,
    state_path: &Path,
) -> Result<Option<(Work, Option<SteerPlan>)>, Error> {
    let present_rules: Vec<Rule> = snapshot
        .rules
        .iter()
        .filter(|r| r.is_steering(settings.protocol))
        .cloned()
        .collect();
    let table = steer::steer_table(settings);
    let health = settings.health.as_ref().filter(|_| !flush);
    if health.is_none() && present_rules.is_empty() && !snapshot.tables.contains_key(&table) {
        return Ok(None);
    }
    if let std::collections::btree_map::Entry::Vacant(e) = snapshot.tables.entry(table) {
        e.insert(kernel::routes(nl, Some(table), None).await?);
    }
    let present_routes: Vec<Route> = snapshot
        .routes_in(settings.protocol, table)
        .cloned()
        .collect();
    let plan = match health {
        Some(health) => {
            let state = HealthState::read(state_path, HealthState::stale_after(health.interval));
            let plan = steer::plan(snapshot, settings, health, state.as_ref());
            if !plan.routes.is_empty() {
                if let Some(foreign) = snapshot
                    .table(table)
                    .iter()
                    .find(|r| r.protocol != settings.protocol)
                {
                    return Err(Error::from(PlanError::ForeignTable {
                        interface: "steering".into(),
                        table,
                        route: foreign.display(&snapshot.links).to_string(),
                        protocol: foreign.protocol,
                    }));
                }
            }
            Some(plan)
        }
        None => None,
    };
    let (routes, rules) = plan
        .as_ref()
        .map_or((&[][..], &[][..]), |p| (&p.routes[..], &p.rules[..]));
    let ops = diff(routes, rules, &present_routes, &present_rules);
    Ok(Some((Work::ops("steering".into(), ops), plan)))
}

/// The interfaces a per-interface run plans besides the interface it is about: those whose
/// tables the snapshot read because they depend on it (uplinks holding copies through it,
/// macvlans on it).
fn companions<'a>(
    snapshot: &'a Snapshot,
    settings: &Settings,
    planned: &BTreeMap<u32, Option<u32>>,
) -> Vec<&'a Link> {
    snapshot
        .links
        .iter()
        .filter(|l| !planned.contains_key(&l.index))
        .filter(|l| snapshot.tables.contains_key(&settings.table_for(l.index)))
        .collect()
}

/// Runs `target` against the kernel behind `nl`.
///
/// Bad input (an unknown interface to sync) is an error before anything is written. In
/// [`Target::All`] an interface that is refused (its table is someone else's) is reported in
/// [`Report::failures`] and the others are still done.
pub async fn reconcile(
    nl: &Netlink,
    settings: &Settings,
    target: &Target,
    mode: Mode,
    lock_path: &Path,
) -> Result<Report, Error> {
    // Bounded: a hook must not hold a dispatcher's queue waiting for a stuck holder.
    let lock = match mode {
        Mode::Apply => Some(RunLock::acquire(lock_path, LOCK_WAIT)?),
        Mode::DryRun => None,
    };
    reconcile_locked(nl, settings, target, mode, lock.as_ref(), &BTreeSet::new()).await
}

/// [`reconcile`] for a caller that took the run lock itself (the daemon, which must not
/// wait for it; `held` is the proof, `None` only in a dry run, and where the verdicts of
/// `[health]` are: beside it), leaving the interfaces in
/// `skip` (by index) as they are, in a [`Target::All`] run and as companions of a
/// per-interface run: the daemon keeps interfaces paused by a fight paused.
pub async fn reconcile_locked(
    nl: &Netlink,
    settings: &Settings,
    target: &Target,
    mode: Mode,
    held: Option<&RunLock>,
    skip: &BTreeSet<u32>,
) -> Result<Report, Error> {
    reconcile_interrupted(nl, settings, target, mode, held, skip, &mut || {}).await
}

/// [`reconcile_locked`] with `before_apply` called between reading the kernel and writing
/// to it: for tests that change the host in that window (an interface deleted during a run).
#[doc(hidden)]
pub async fn reconcile_interrupted(
    nl: &Netlink,
    settings: &Settings,
    target: &Target,
    mode: Mode,
    held: Option<&RunLock>,
    skip: &BTreeSet<u32>,
    before_apply: &mut dyn FnMut(),
) -> Result<Report, Error> {
    let first = pass(nl, settings, target, mode, held, skip, None, before_apply).await?;
    let Some(cut_short) = first.cut_short else {
        return Ok(first.report);
    };
    // A write found its device gone (ENODEV): an interface was deleted while the run read,
    // planned and wrote. What the run wrote for it is now half of a table, or rules into a
    // table the kernel emptied; what it wrote for others may copy routes through it. The run
    // is done again over what is there now, which collects the one and leaves out the other.
    let now = kernel::links(nl).await?;
    let gone: Vec<&Link> = first
        .report
        .links
        .iter()
        .filter(|l| !now.iter().any(|n| n.index == l.index && n.name == l.name))
        .collect();
    if gone.is_empty() {
        // Not a deleted interface after all: the failure stands.
        return match target {
            Target::Interface { .. } => Err(cut_short.into()),
            Target::All | Target::Flush => {
                let mut report = first.report;
                report.failures.push(cut_short.into());
                Ok(report)
            }
        };
    }
    let names: Vec<&str> = gone.iter().map(|l| l.name.as_str()).collect();
    let (again, vanished) = match target {
        // Asked about the interface that is gone: collect what is left of it.
        Target::Interface { name, .. } => match gone.iter().find(|l| &l.name == name) {
            Some(link) => (
                Target::Interface {
                    name: name.clone(),
                    action: Action::Settle,
                },
                Some(link.index),
            ),
            None => (target.clone(), None),
        },
        Target::All | Target::Flush => (target.clone(), None),
    };
    log::debug!("{cut_short}: redoing the run");
    let second = pass(nl, settings, &again, mode, held, skip, vanished, &mut || {}).await;
    let failed_again = |e: &dyn std::fmt::Display| {
        log::error!(
            "{} disappeared during the run, and redoing the run without it failed ({e}): what \
             is left of it is collected by the next run",
            names.join(", ")
        );
    };
    let mut report = match second {
        Ok(Pass {
            report,
            cut_short: None,
        }) => report,
        Ok(Pass {
            mut report,
            cut_short: Some(e),
        }) => {
            failed_again(&e);
            match target {
                Target::Interface { .. } => return Err(e.into()),
                Target::All | Target::Flush => {
                    report.failures.push(e.into());
                    return Ok(report);
                }
            }
        }
        Err(e) => {
            failed_again(&e);
            return Err(e);
        }
    };
    log::warn!(
        "{} disappeared during the run; the run was redone without it, and nothing was left \
         half-done (what was written for it is removed)",
        names.join(", ")
    );
    let mut by_interface = first.report.by_interface;
    by_interface.append(&mut report.by_interface);
    report.by_interface = by_interface;
    Ok(report)
}

/// One pass of a run: its report, and the write that found its device gone, if one did
/// (the rest of the run was then left undone).
struct Pass {
    report: Report,
    cut_short: Option<ApplyError>,
}

#[allow(clippy::too_many_arguments)]
async fn pass(
    nl: &Netlink,
    settings: &Settings,
    target: &Target,
    mode: Mode,
    held: Option<&RunLock>,
    skip: &BTreeSet<u32>,
    vanished: Option<u32>,
    before_apply: &mut dyn FnMut(),
) -> Result<Pass, Error> {
    let links = kernel::links(nl).await?;
    let (scope, link) = match target {
        Target::All | Target::Flush => (Scope::All, None),
        Target::Interface { name, action } => match links.iter().find(|l| &l.name == name) {
            Some(link) => (Scope::Interface(link.index), Some((link.clone(), *action))),
            None if *action == Action::Sync => {
                return Err(Error::UnknownInterface(name.clone()));
            }
            // `down` or `remove` after the device vanished: only stale state is left to collect.
            None => (Scope::Garbage(vanished), None),
        },
    };
    let (mut snapshot, mut uplinks, mut main_complete) =
        kernel::snapshot(nl, settings, scope, links).await?;
    // Where our rules go depends on other tools' rules (a VPN's catch-alls): when that moved
    // them, every interface's rules move in this run, not only this one's.
    let mut everyone = false;
    if matches!(link, Some((_, Action::Sync | Action::Settle)))
        && placement::misplaced(
            &snapshot.rules,
            &placement::placed(settings, &snapshot.rules),
        )
    {
        let links = std::mem::take(&mut snapshot.links);
        (snapshot, uplinks, main_complete) =
            kernel::snapshot(nl, settings, Scope::All, links).await?;
        everyone = true;
    }
    let settings = &placement::placed(settings, &snapshot.rules);
    if everyone {
        log::info!(
            "rules of other tools before ours came or went: every interface's rules move to \
             priority {}",
            settings.rule_priority
        );
    }
    match (target, &link) {
        (Target::All, _) => warn_included_and_excluded(&snapshot.links, settings, None),
        (Target::Interface { .. }, Some((l, _))) => {
            warn_included_and_excluded(&snapshot.links, settings, Some(l.index));
        }
        _ => {}
    }
    // Main is classified once for every plan of the run (it can hold 100 000 routes).
    let planner = Planner::with_uplinks(&snapshot, settings, uplinks);

    let mut report = Report::default();
    let flush = *target == Target::Flush;
    let mut work = Vec::new();
    // Interfaces this run decides about, with their connection marks (`iif_rules`).
    let mut planned: BTreeMap<u32, Option<u32>> = BTreeMap::new();
    if !flush {
        // Before any `from` rule, so exempted traffic never takes an uplink's table.
        work.push(exempt_work(&snapshot, settings, false));
    }
    match (target, link) {
        (Target::All, _) => {
            for link in snapshot.links.iter().filter(|l| !skip.contains(&l.index)) {
                match sync_work(&planner, settings, link) {
                    Ok((w, mark)) => {
                        work.push(w);
                        planned.insert(link.index, mark);
                    }
                    Err(e) => report.failures.push(e),
                }
            }
        }
        (Target::Flush, _) => {
            work.extend(
                snapshot
                    .links
                    .iter()
                    .map(|l| remove_work(&snapshot, settings, l)),
            );
        }
        // A down-class event is a sync: the kernel, not the event, says what is gone.
        (_, Some((link, Action::Sync | Action::Settle))) => {
            let (w, mark) = sync_work(&planner, settings, &link)?;
            work.push(w);
            planned.insert(link.index, mark);
        }
        (_, Some((link, _))) => {
            work.push(remove_work(&snapshot, settings, &link));
            planned.insert(link.index, None);
        }
        (_, None) => {}
    }
    if let Target::Interface { .. } = target {
        // What changed may be behind the host (a bridge, a LAN, a tunnel), whose routes
        // every uplink table copies: those tables follow in the same run. An uplink that is
        // refused does not fail the run for the interface asked about; its own runs report it.
        let others = if everyone {
            snapshot
                .links
                .iter()
                .filter(|l| !planned.contains_key(&l.index))
                .collect()
        } else {
            companions(&snapshot, settings, &planned)
        };
        for uplink in others.into_iter().filter(|l| !skip.contains(&l.index)) {
            match sync_work(&planner, settings, uplink) {
                Ok((mut w, mark)) => {
                    w.companion = true;
                    work.push(w);
                    planned.insert(uplink.index, mark);
                }
                Err(e) => log::debug!("{e}"),
            }
        }
    }
    // After the tables it points at are written, before garbage; only from all of main (a
    // veth's run reads main's routes through the veth alone, and its steering is unchanged).
    let mut steering = None;
    if main_complete || flush {
        let state_path = health::state_path(
            held.map_or(Path::new(crate::lock::DEFAULT_LOCK_PATH), RunLock::path),
        );
        drop(planner);
        match steer_work(nl, &mut snapshot, settings, flush, &state_path).await {
            Ok(Some((w, plan))) => {
                work.push(w);
                steering = plan;
            }
            Ok(None) => {}
            Err(e) => match target {
                Target::All | Target::Flush => report.failures.push(e),
                Target::Interface { .. } => log::warn!("{e}"),
            },
        }
    }
    report.steering = steering;
    work.extend(garbage_work(&snapshot, settings));
    if flush {
        work.push(exempt_work(&snapshot, settings, true));
    }

    // Planned: main's routes (which can be 100 000) are not needed any more, and would be
    // a third copy beside each plan and its operations; the tables go once compared.
    snapshot.main_routes = Vec::new();
    for w in &mut work {
        w.diff(&snapshot, settings);
    }
    snapshot.tables.clear();
    if mode == Mode::Apply {
        before_apply();
    }
    let mut cut_short = None;
    for Work {
        interface,
        mut ops,
        companion,
        ..
    } in work
    {
        match mode {
            Mode::DryRun => {
                if !ops.is_empty() {
                    report.by_interface.push(Changes { interface, ops });
                }
            }
            Mode::Apply => {
                // `ops` is left holding what the kernel accepted: the report keeps the
                // operations themselves, not a copy.
                let result = kernel::apply(nl, &interface, &mut ops, &snapshot.links).await;
                // One line per change, up to a point: a 100 000-route table would spend a
                // quarter of its time formatting lines nobody reads (and flood the
                // journal); the rest is summed up.
                for op in ops.iter().take(LOGGED_CHANGES) {
                    log::info!("{interface}: {}", op.display(&snapshot.links));
                }
                if ops.len() > LOGGED_CHANGES {
                    log::info!(
                        "{interface}: ... and {} more changes ({} in all)",
                        ops.len() - LOGGED_CHANGES,
                        ops.len()
                    );
                }
                if !ops.is_empty() {
                    report.by_interface.push(Changes {
                        interface: interface.clone(),
                        ops,
                    });
                }
                if let Err(e) = result {
                    if e.source.errno() == Some(libc::ENODEV) {
                        cut_short = Some(e);
                        break;
                    }
                    match target {
                        _ if companion => log::warn!("{e}"),
                        Target::All | Target::Flush => report.failures.push(e.into()),
                        Target::Interface { .. } => return Err(e.into()),
                    }
                }
            }
        }
    }
    if cut_short.is_some() {
        report.links = snapshot.links;
        return Ok(Pass { report, cut_short });
    }
    // After the rules: marks are only set once the rules that route them exist.
    let nft = sync_nftables(&snapshot, settings, target, mode, &planned, &mut report);
    if mode == Mode::Apply && settings.table_names {
        let names = if flush {
            Vec::new()
        } else {
            table_names(&snapshot.links, settings)
        };
        if let Err(e) = write_table_names(Path::new(TABLE_NAMES_PATH), &names) {
            log::warn!("cannot write table names to {TABLE_NAMES_PATH}: {e}");
        }
    }
    if let Err(e) = nft {
        match target {
            Target::All | Target::Flush => report.failures.push(e),
            Target::Interface { .. } => return Err(e),
        }
    }
    report.links = snapshot.links;
    Ok(Pass {
        report,
        cut_short: None,
    })
}

/// Brings `table inet symroute` in line with the marked interfaces (`iif_rules`), or removes
/// it. The kernel is asked for the installed table (no process) only when it can matter:
/// with `iif_rules` on, on a full run or flush, or while fwmark rules of ours are left; `nft`
/// runs only to change something.
fn sync_nftables(
    snapshot: &Snapshot,
    settings: &Settings,
    target: &Target,
    mode: Mode,
    planned: &BTreeMap<u32, Option<u32>>,
    report: &mut Report,
) -> Result<(), Error> {
    let flush = *target == Target::Flush;
    let wanted = if flush {
        None
    } else {
        nft::table(&nft::marked_links(snapshot, settings, planned), settings)
    };
    let leftovers = snapshot
        .rules
        .iter()
        .any(|r| r.protocol == settings.protocol && r.fwmark.is_some());
    // Without nf_tables in the kernel there is no table to remove (and asking would load it).
    let full_run = *target == Target::All && crate::kernel::nat::nf_tables_present(Path::new("/"));
    if !(settings.iif_rules || flush || leftovers || full_run) {
        return Ok(());
    }
    let installed = match nftables::read_installed() {
        Ok(installed) => installed,
        Err(e) if mode == Mode::DryRun => {
            if settings.iif_rules {
                log::warn!("{e}: what a sync would change in it is unknown");
            } else {
                log::debug!("{e}");
            }
            return Ok(());
        }
        // Nothing was asked for and nothing can be seen: nothing to remove.
        Err(e) if !settings.iif_rules && !flush && !leftovers => {
            log::debug!("{e}");
            return Ok(());
        }
        // Without nf_tables nothing of ours can be there to flush.
        Err(e) if flush && wanted.is_none() && !leftovers => {
            log::debug!("{e}");
            Installed::Absent
        }
        Err(e) => return Err(e.into()),
    };
    let Some(change) = nft::change(wanted.as_ref(), &installed) else {
        return Ok(());
    };
    let line = change.line();
    if mode == Mode::Apply {
        nftables::apply(&change)?;
        log::info!("{line}");
    }
    report.nft = Some(line);
    Ok(())
}

/// Where `table_names` puts `1003 symroute-eth1` lines for `ip route show table NAME`.
pub const TABLE_NAMES_PATH: &str = "/etc/iproute2/rt_tables.d/symroute.conf";

/// `(table, name)` for every interface symroute may manage.
pub fn table_names(links: &[Link], settings: &Settings) -> Vec<(u32, String)> {
    links
        .iter()
        .filter(|l| !l.loopback && settings.manages(&l.name))
        .map(|l| (settings.table_for(l.index), format!("symroute-{}", l.name)))
        .collect()
}

/// Rewrites the names file when its content changes (atomically: iproute2 may read it at any
/// moment). An empty list removes it.
fn write_table_names(path: &Path, names: &[(u32, String)]) -> std::io::Result<()> {
    if names.is_empty() {
        return match std::fs::remove_file(path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        };
    }
    let mut text =
        String::from("# Written by symroute (table_names = true); changes are overwritten.\n");
    for (table, name) in names {
        text.push_str(&format!("{table}\t{name}\n"));
    }
    if std::fs::read_to_string(path).ok().as_deref() == Some(text.as_str()) {
        return Ok(());
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension("conf.tmp");
    std::fs::write(&tmp, text)?;
    // Readable by all whatever the umask (the unit's is 0077): every user's `ip` reads it.
    std::fs::set_permissions(&tmp, std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
    std::fs::rename(&tmp, path)
}
