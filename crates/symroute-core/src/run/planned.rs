//! The pure half of a run: from what it read ([`Read`]), the settings and its target, every
//! operation it would write and every refusal, in the order they are written. The run
//! applies this; `status` and `doctor` display it, so that they say "in sync" exactly when
//! a sync would write nothing.

use std::collections::{BTreeMap, BTreeSet};

use crate::events::Action;
use crate::kernel::netlink::Netlink;
use crate::kernel::ReadError;
use crate::model::{Link, Op};
use crate::plan::steer::SteerPlan;
use crate::plan::{PlanError, Planner};
use crate::settings::Settings;

use super::read::Read;
use super::side::{plan_nftables, NftPlan};
use super::work::{
    companions, exempt_work, garbage_work, remove_work, steer_work, sync_work, Subject,
    TableSource, Work,
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
    /// What `nft` was planned from: the run's target and the interfaces it plans, with
    /// their marks (planned again without those the diff refuses).
    target: Target,
    planned: BTreeMap<u32, Option<u32>>,
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
                    Ok((mut w, mark)) => {
                        w.refusal = Some((Effect::Failure, refusals.len()));
                        work.push(w);
                        planned.insert(link.index, mark);
                    }
                    Err(e) => refusals.push(refuse(e, Some(link.index), Effect::Failure)),
                }
            }
        }
        (Target::Flush, _) => {
            work.extend(snapshot.links.iter().map(|l| remove_work(settings, l)));
        }
        // A down-class event is a sync: the kernel, not the event, says what is gone.
        (_, Some((link, Action::Sync | Action::Settle))) => {
            match sync_work(&planner, settings, link) {
                Ok((mut w, mark)) => {
                    w.refusal = Some((Effect::FailsRun, refusals.len()));
                    work.push(w);
                    planned.insert(link.index, mark);
                }
                Err(e) => refusals.push(refuse(e, Some(link.index), Effect::FailsRun)),
            }
        }
        (_, Some((link, _))) => {
            work.push(remove_work(settings, link));
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
            companions(snapshot, settings, &planned, &read.left)
        };
        for uplink in others.into_iter().filter(|l| !skip.contains(&l.index)) {
            match sync_work(&planner, settings, uplink) {
                Ok((mut w, mark)) => {
                    w.companion = true;
                    w.refusal = Some((Effect::Quiet, refusals.len()));
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
        target: target.clone(),
        planned,
    }
}

impl RunPlan {
    /// Turns every plan into its operations against the tables as they are: those `read`
    /// holds, and, with `nl`, those it left ([`Read::left`]) walked in the kernel now (main's
    /// routes are not needed any more: a run drops them first). A plan whose table turns
    /// out to hold a route of another protocol becomes its refusal, where planning would
    /// have put it among the others, and writes nothing.
    pub(crate) fn diff(
        &mut self,
        read: &Read,
        settings: &Settings,
        nl: Option<&Netlink>,
    ) -> Result<(), ReadError> {
        let tables = TableSource {
            snapshot: &read.snapshot,
            kernel: nl.map(|nl| (nl, &read.left)),
        };
        let mut found: Vec<(usize, Refusal)> = Vec::new();
        let mut kept = Vec::with_capacity(self.work.len());
        for mut w in std::mem::take(&mut self.work) {
            match w.diff(&tables, settings)? {
                None => kept.push(w),
                Some(error) => {
                    let (effect, at) = w.refusal.unwrap_or((Effect::Failure, usize::MAX));
                    let ifindex = match w.subject {
                        Subject::Interface(i) => Some(i),
                        _ => None,
                    };
                    if let Some(i) = ifindex {
                        self.planned.remove(&i);
                    }
                    found.push((
                        at,
                        Refusal {
                            error,
                            ifindex,
                            effect,
                        },
                    ));
                }
            }
        }
        self.work = kept;
        if found.is_empty() {
            return Ok(());
        }
        let planned_before = std::mem::take(&mut self.refusals);
        let mut found = found.into_iter().peekable();
        for (i, refusal) in planned_before.into_iter().enumerate() {
            while let Some((_, r)) = found.next_if(|(at, _)| *at <= i) {
                self.refusals.push(r);
            }
            self.refusals.push(refusal);
        }
        self.refusals.extend(found.map(|(_, r)| r));
        // Its mark goes with it, as when planning refuses it.
        self.nft = plan_nftables(
            &read.snapshot,
            settings,
            &self.target,
            &self.planned,
            &read.nft,
        );
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{self, ETH0, ETH1};
    use crate::plan::placement;

    /// The plan and its operations when the read left `table` (as a run's does) and then
    /// finds `routes` in it, beside those a status shows (the table read before planning).
    fn left_and_read(
        target: &Target,
        link: Option<(Link, Action)>,
        table: u32,
        routes: Vec<crate::model::Route>,
    ) -> (RunPlan, RunPlan) {
        let settings = Settings::default();
        let snapshot = fixtures::synced(fixtures::host(), &settings);
        let settings = placement::placed(&settings, &snapshot.rules);
        let mut read = Read::of(snapshot, &settings);
        read.link = link;
        read.snapshot.tables.remove(&table);
        let mut run = plan_run(&read, &settings, target, &BTreeSet::new());
        read.snapshot.tables.insert(table, routes);
        let mut status = plan_run(&read, &settings, target, &BTreeSet::new());
        run.diff(&read, &settings, None).unwrap();
        status.diff(&read, &settings, None).unwrap();
        (run, status)
    }

    fn foreign_in_1003() -> Vec<crate::model::Route> {
        vec![
            fixtures::route(1003, "10.2.0.0", 24, None, ETH1, 83),
            fixtures::route(1003, "10.9.0.0", 24, Some("10.2.0.1"), ETH1, 4),
        ]
    }

    #[test]
    fn a_foreign_route_found_as_the_table_is_walked_refuses_it_as_planning_would() {
        let (run, status) = left_and_read(&Target::All, None, 1003, foreign_in_1003());
        assert_eq!(run.refusals, status.refusals);
        assert!(matches!(
            run.refusals.as_slice(),
            [Refusal {
                error: PlanError::ForeignTable { table: 1003, .. },
                ifindex: Some(ETH1),
                effect: Effect::Failure,
            }]
        ));
        assert_eq!(run.ops_of(Subject::Interface(ETH1)).count(), 0);
        assert_eq!(run.idle(ETH1), None);
        assert!(run.idle(ETH0).is_some());
        let ops = |plan: &RunPlan| plan.work.iter().map(|w| w.ops.clone()).collect::<Vec<_>>();
        assert_eq!(ops(&run), ops(&status));
    }

    #[test]
    fn the_interface_a_run_is_about_refused_as_its_table_is_walked_fails_the_run() {
        let eth1 = fixtures::link(ETH1, "eth1");
        let target = Target::Interface {
            name: "eth1".into(),
            action: Action::Sync,
        };
        let (run, status) =
            left_and_read(&target, Some((eth1, Action::Sync)), 1003, foreign_in_1003());
        // Refused at planning, the interface is planned again as a companion of itself
        // (its table was read) and refused quietly too; the run fails on the first.
        assert_eq!(run.refusals[..], status.refusals[..1]);
        assert_eq!(run.refusals[0].effect, Effect::FailsRun);
        assert_eq!(run.ops_of(Subject::Interface(ETH1)).count(), 0);
    }

    #[test]
    fn a_table_of_ours_walked_after_planning_is_diffed_as_one_read_before() {
        let mut table = foreign_in_1003();
        table[1].protocol = 83;
        let (run, status) = left_and_read(&Target::All, None, 1003, table);
        assert!(run.refusals.is_empty());
        let ops: Vec<&Op> = run.ops_of(Subject::Interface(ETH1)).collect();
        assert_eq!(
            ops,
            status.ops_of(Subject::Interface(ETH1)).collect::<Vec<_>>()
        );
        assert!(!ops.is_empty());
    }
}
