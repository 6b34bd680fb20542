//! One run: lock → snapshot → plan → diff → apply, for one interface or all of them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use crate::error::Error;
use crate::events::Action;
use crate::kernel::netlink::Netlink;
use crate::kernel::{self, nftables, Scope};
use crate::lock::{RunLock, LOCK_WAIT};
use crate::model::Op;
use crate::model::{Link, NftInstalled as Installed, Route, Rule, Snapshot, MAIN_TABLE};
use crate::plan::diff::{diff, diff_owned};
use crate::plan::nft;
use crate::plan::{garbage_by_table, plan_exempt, Garbage, InterfacePlan, Planner};
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
    /// The uplinks the run planned with, as (family, interface index): the daemon's kept
    /// model judges later changes against them.
    pub uplinks: Vec<(crate::model::Family, u32)>,
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

/// The uplinks a per-interface run plans besides the interface it is about: those whose
/// tables the snapshot read because they depend on it.
fn companions<'a>(
    planner: &Planner<'_>,
    snapshot: &'a Snapshot,
    settings: &Settings,
    planned: &BTreeMap<u32, Option<u32>>,
) -> Vec<&'a Link> {
    planner
        .uplinks()
        .indexes()
        .into_iter()
        .filter(|i| !planned.contains_key(i))
        .filter(|i| snapshot.tables.contains_key(&settings.table_for(*i)))
        .filter_map(|i| snapshot.link(i))
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
/// wait for it; `_held` is the proof, `None` only in a dry run), leaving the interfaces in
/// `skip` (by index) as they are, in a [`Target::All`] run and as companions of a
/// per-interface run: the daemon keeps interfaces paused by a fight paused.
pub async fn reconcile_locked(
    nl: &Netlink,
    settings: &Settings,
    target: &Target,
    mode: Mode,
    _held: Option<&RunLock>,
    skip: &BTreeSet<u32>,
) -> Result<Report, Error> {
    let links = kernel::links(nl).await?;
    let (scope, link) = match target {
        Target::All | Target::Flush => (Scope::All, None),
        Target::Interface { name, action } => match links.iter().find(|l| &l.name == name) {
            Some(link) => (Scope::Interface(link.index), Some((link.clone(), *action))),
            None if *action == Action::Sync => {
                return Err(Error::UnknownInterface(name.clone()));
            }
            // `down` or `remove` after the device vanished: only stale state is left to collect.
            None => (Scope::Garbage, None),
        },
    };
    let (mut snapshot, uplinks) = kernel::snapshot(nl, settings, scope, links).await?;
    // Main is classified once for every plan of the run (it can hold 100 000 routes).
    let planner = Planner::with_uplinks(&snapshot, settings, uplinks);

    let mut report = Report {
        uplinks: planner.uplinks().ways().collect(),
        ..Report::default()
    };
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
        for uplink in companions(&planner, &snapshot, settings, &planned)
            .into_iter()
            .filter(|l| !skip.contains(&l.index))
        {
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
                    match target {
                        _ if companion => log::warn!("{e}"),
                        Target::All | Target::Flush => report.failures.push(e.into()),
                        Target::Interface { .. } => return Err(e.into()),
                    }
                }
            }
        }
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
    Ok(report)
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
