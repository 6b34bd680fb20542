//! One run: lock → snapshot → plan → diff → apply, for one interface or all of them.

use std::collections::BTreeSet;
use std::path::Path;

use crate::error::Error;
use crate::events::Action;
use crate::health;
use crate::kernel::netlink::Netlink;
use crate::kernel::{self, ApplyError, Tables};
use crate::lock::{RunLock, LOCK_WAIT};
use crate::model::Link;
use crate::plan::placement;
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

mod planned;
mod read;
mod report;
mod side;
mod work;

pub(crate) use planned::plan_run;
pub use planned::{Effect, Refusal, RunPlan};
pub(crate) use read::{read, Read};
pub use report::{Changes, Report, LOGGED_CHANGES};
pub(crate) use side::NftRead;
use side::{apply_nftables, write_table_names, TABLE_NAMES_PATH};
pub use side::{table_names, NftPlan};
pub(crate) use work::warn_included_and_excluded;
pub use work::Subject;
use work::Work;

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
    let state_path =
        health::state_path(held.map_or(Path::new(crate::lock::DEFAULT_LOCK_PATH), RunLock::path));
    let mut read = read(
        nl,
        settings,
        target,
        mode,
        vanished,
        &state_path,
        Tables::LeaveLarge,
    )
    .await?;
    let settings = &placement::placed(settings, &read.snapshot.rules);
    if read.everyone {
        log::info!(
            "rules of other tools before ours came or went: every interface's rules move to \
             priority {}",
            settings.rule_priority
        );
    }
    match (target, &read.link) {
        (Target::All, _) => warn_included_and_excluded(&read.snapshot.links, settings, None),
        (Target::Interface { .. }, Some((l, _))) => {
            warn_included_and_excluded(&read.snapshot.links, settings, Some(l.index));
        }
        _ => {}
    }
    let mut plan = plan_run(&read, settings, target, skip);
    // Refused at planning: the interface's tables need not be walked.
    if let Some(i) = plan
        .refusals
        .iter()
        .position(|r| r.effect == Effect::FailsRun)
    {
        return Err(plan.refusals.swap_remove(i).error.into());
    }
    // Planned: main's routes (which can be 1 000 000) are not needed any more, and would
    // be a third copy beside each plan and its operations; the tables the read left are
    // walked now, each against its plan, and the others go once compared.
    read.snapshot.main_routes = Vec::new();
    plan.diff(&read, settings, Some(nl))?;
    let snapshot = &mut read.snapshot;
    snapshot.tables.clear();

    let mut report = Report {
        uplinks: read.uplinks.clone(),
        ..Report::default()
    };
    // After the diff, which refuses a table holding another protocol's route: nothing is
    // written before, so a refused run writes nothing.
    for Refusal { error, effect, .. } in std::mem::take(&mut plan.refusals) {
        match effect {
            Effect::FailsRun => return Err(error.into()),
            Effect::Failure => report.failures.push(error.into()),
            Effect::Warning => log::warn!("{error}"),
            Effect::Quiet => log::debug!("{error}"),
        }
    }
    report.steering = plan.steering.take();
    if let NftPlan::Unknown(why) = &plan.nft {
        log::warn!("{why}");
    }
    if mode == Mode::Apply {
        before_apply();
    }
    let mut cut_short = None;
    for Work {
        interface,
        mut ops,
        companion,
        ..
    } in std::mem::take(&mut plan.work)
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
        report.links = read.snapshot.links;
        return Ok(Pass { report, cut_short });
    }
    // After the rules: marks are only set once the rules that route them exist.
    let nft = match &plan.nft {
        NftPlan::Change(change) => apply_nftables(change, mode).map(|line| {
            report.nft = Some(line);
        }),
        NftPlan::Failed(e) => Err(e.clone().into()),
        NftPlan::Unchanged | NftPlan::Unknown(_) => Ok(()),
    };
    let flush = *target == Target::Flush;
    if mode == Mode::Apply && settings.table_names {
        let names = if flush {
            Vec::new()
        } else {
            table_names(&read.snapshot.links, settings)
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
    report.links = read.snapshot.links;
    Ok(Pass {
        report,
        cut_short: None,
    })
}
