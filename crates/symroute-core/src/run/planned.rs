//! The pure half of a run: from what it read ([`Read`]), the settings and its target, every
//! operation it would write and every refusal, in the order they are written. The run
//! applies this; `status` and `doctor` display it, so that they say "in sync" exactly when
//! a sync would write nothing.

use std::collections::{BTreeMap, BTreeSet};

use crate::events::Action;
use crate::model::{Link, Op, Snapshot};
use crate::plan::steer::SteerPlan;
use crate::plan::{PlanError, Planner};
use crate::settings::Settings;

use super::read::Read;
use super::side::{plan_nftables, NftPlan};
use super::work::{
    companions, exempt_work, garbage_work, remove_work, steer_work, sync_work, Subject, Work,
};
use super::Target;

/// What a run would do, computed from one read without asking the host anything.
#[derive(Debug)]
pub struct RunPlan {
    /// In the order they are written: exemptions, interfaces, companions, steering, stale
    /// tables, exemptions' removal on flush. Each is a plan until [`RunPlan::diff`].
    pub(crate) work: Vec<Work>,
    /// What the run leaves alone, and why.
    pub refusals: Vec<Refusal>,
    /// With `[health]`, when the run plans the steering: what it decided.
    pub steering: Option<SteerPlan>,
    /// `table inet symroute` (`iif_rules`), written after the rules.
    pub nft: NftPlan,
}

/// Something a run refuses to write, and what that does to the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub error: PlanError,
    /// The refused interface's index; `None` for the steering.
    pub ifindex: Option<u32>,
    pub effect: Effect,
}

/// What a refusal does to the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// The interface a per-interface run is about: the run fails before writing anything.
    FailsRun,
    /// One of many in a full run: reported as a failure while the others are done.
    Failure,
    /// Logged as a warning (the steering of a per-interface run).
    Warning,
    /// An uplink planned along with the interface a run is about: its own runs report it.
    Quiet,
}

/// Plans a run of `target` over `read`: `settings` are the placed ones
/// ([`crate::plan::placement::placed`]), `skip` the interfaces (by index) left as they are.
pub(crate) fn plan_run(
    read: &Read,
    settings: &Settings,
    target: &Target,
    skip: &BTreeSet<u32>,
) -> RunPlan {
    let snapshot = &read.snapshot;
    // Main is classified once, by the read, for every plan of the run (it can hold 100 000
    // routes).
    let planner = Planner::with_uplinks(snapshot, settings, &read.uplinks);
    let flush = *target == Target::Flush;
    let mut work = Vec::new();
    let mut refusals = Vec::new();
    // Interfaces this run decides about, with their connection marks (`iif_rules`).
    let mut planned: BTreeMap<u32, Option<u32>> = BTreeMap::new();
    let refuse = |error: PlanError, ifindex, effect| Refusal {
        error,
        ifindex,
        effect,
    };
    if !flush {
        // Before any `from` rule, so exempted traffic never takes an uplink's table.
        work.push(exempt_work(snapshot, settings, false));
    }
    match (target, &read.link) {
        (Target::All, _) => {
            for link in snapshot.links.iter().filter(|l| !skip.contains(&l.index)) {
                match sync_work(&planner, settings, link) {
                    Ok((w, mark)) => {
                        work.push(w);
                        planned.insert(link.index, mark);
                    }
                    Err(e) => refusals.push(refuse(e, Some(link.index), Effect::Failure)),
                }
            }
        }
        (Target::Flush, _) => {
            work.extend(
                snapshot
                    .links
                    .iter()
                    .map(|l| remove_work(snapshot, settings, l)),
            );
        }
        // A down-class event is a sync: the kernel, not the event, says what is gone.
        (_, Some((link, Action::Sync | Action::Settle))) => {
            match sync_work(&planner, settings, link) {
                Ok((w, mark)) => {
                    work.push(w);
                    planned.insert(link.index, mark);
                }
                Err(e) => refusals.push(refuse(e, Some(link.index), Effect::FailsRun)),
            }
        }
        (_, Some((link, _))) => {
            work.push(remove_work(snapshot, settings, link));
            planned.insert(link.index, None);
        }
        (_, None) => {}
    }
    if let Target::Interface { .. } = target {
        // What changed may be behind the host (a bridge, a LAN, a tunnel), whose routes
        // every uplink table copies: those tables follow in the same run. An uplink that is
        // refused does not fail the run for the interface asked about; its own runs report it.
        let others: Vec<&Link> = if read.everyone {
            snapshot
                .links
                .iter()
                .filter(|l| !planned.contains_key(&l.index))
                .collect()
        } else {
            companions(snapshot, settings, &planned)
        };
        for uplink in others.into_iter().filter(|l| !skip.contains(&l.index)) {
            match sync_work(&planner, settings, uplink) {
                Ok((mut w, mark)) => {
                    w.companion = true;
                    work.push(w);
                    planned.insert(uplink.index, mark);
                }
                Err(e) => refusals.push(refuse(e, Some(uplink.index), Effect::Quiet)),
            }
        }
    }
    // After the tables it points at are written, before garbage; only from all of main.
    let mut steering = None;
    if read.defaults_read || flush {
        match steer_work(snapshot, settings, flush, read.health.as_ref()) {
            Ok(Some((w, plan))) => {
                work.push(w);
                steering = plan;
            }
            Ok(None) => {}
            Err(e) => {
                let effect = match target {
                    Target::All | Target::Flush => Effect::Failure,
                    Target::Interface { .. } => Effect::Warning,
                };
                refusals.push(refuse(e, None, effect));
            }
        }
    }
    work.extend(garbage_work(snapshot, settings));
    if flush {
        work.push(exempt_work(snapshot, settings, true));
    }
    let nft = plan_nftables(snapshot, settings, target, &planned, &read.nft);
    RunPlan {
        work,
        refusals,
        steering,
        nft,
    }
}

impl RunPlan {
    /// Turns every plan into its operations against what `snapshot` holds (main's routes
    /// are not needed any more: a run drops them first).
    pub(crate) fn diff(&mut self, snapshot: &Snapshot, settings: &Settings) {
        for w in &mut self.work {
            w.diff(snapshot, settings);
        }
    }

    /// The operations for `subject` (once diffed).
    pub fn ops_of(&self, subject: Subject) -> impl Iterator<Item = &Op> {
        self.work
            .iter()
            .filter(move |w| w.subject == subject)
            .flat_map(|w| w.ops.iter())
    }

    /// Whether the run plans `ifindex` and its plan wants no rule (idle, unmanaged).
    pub fn idle(&self, ifindex: u32) -> Option<bool> {
        self.work
            .iter()
            .find(|w| w.subject == Subject::Interface(ifindex))
            .map(|w| w.idle)
    }

    /// Whether the run would write nothing: no operation, no nftables change. Refusals
    /// are not writes.
    pub fn writes_nothing(&self) -> bool {
        self.work
            .iter()
            .all(|w| w.ops.is_empty() && w.plan.is_none())
            && !matches!(self.nft, NftPlan::Change(_))
    }
}
