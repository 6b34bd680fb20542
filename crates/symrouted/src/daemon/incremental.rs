//! The event path: main-table route changes written from the kept model
//! ([`symroute_core::kept`]) without a run, and what falls back to runs.
//!
//! A drained batch's route changes in main are taken by the model (not marked dirty); here
//! they become one batch of writes per table whose part of the plan changed, before the
//! batch's per-interface runs. What the model cannot plan goes to a run: an interface
//! becoming or ceasing to be an uplink (a full run), a table refused by the planner, a
//! write the kernel refused (a run of that interface), and interfaces that are dirty,
//! paused or failing anyway (their own runs read everything).

use std::collections::BTreeSet;
use std::time::Instant;

use symroute_core::model::Uplinks;
use symroute_core::model::{Route, MAIN_TABLE};
use symroute_core::monitor::{Change, Received};
use symroute_core::Report;

/// Changes logged one per line per table and batch, as a run logs them.
const LOGGED_CHANGES: usize = 50;

use super::Daemon;
use crate::dirty::{note, Dirty, Reason};
use crate::retry::Key;

/// What the event path left to the caller.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Done,
    /// Only a full run can plan what changed.
    FullRun,
}

impl Daemon {
    /// Plans and writes what the model took in since the last batch. Interfaces that need a
    /// run after all are marked in `dirty` (the batch being processed).
    pub(super) async fn event_path(&mut self, now: Instant, dirty: &mut Dirty) -> Outcome {
        if !self.kept.has_work() {
            return Outcome::Done;
        }
        if let Err(e) = self.kept.refresh(&self.nl, &self.settings).await {
            log::warn!("{e}: full run");
            self.kept.invalidate();
            return Outcome::FullRun;
        }
        if !self.kept.is_valid() {
            log::debug!("the model cannot tell what the kernel changed: full run");
            return Outcome::FullRun;
        }
        if self.kept.uplinks_changed() {
            log::debug!("an interface became or ceased to be an uplink: full run");
            return Outcome::FullRun;
        }
        let links: Vec<(u32, String)> = self
            .kept
            .links()
            .iter()
            .map(|l| (l.index, l.name.clone()))
            .collect();
        let mut skip: BTreeSet<u32> = dirty.links.keys().copied().collect();
        for (index, name) in &links {
            let paused = self.fights.paused(*index, now);
            if dirty.every_link
                || dirty.names.contains(name)
                || paused
                || self.retries.is_pending(Key::Link(*index))
            {
                skip.insert(*index);
            }
            if paused {
                // Left alone for now; run when the pause ends.
                self.dirty.mark(*index, Reason::Changed);
            }
        }
        let started = Instant::now();
        let planned = self.kept.plan(&self.settings, &skip);
        for ifindex in planned.refused.into_iter().chain(planned.unplanned) {
            dirty.mark(ifindex, Reason::Changed);
        }
        let mut written = 0;
        for mut table in planned.writes {
            let result = self.kept.apply(&self.nl, &table.name, &mut table.ops).await;
            for op in table.ops.iter().take(LOGGED_CHANGES) {
                log::info!("{}: {}", table.name, op.display(self.kept.links()));
            }
            if table.ops.len() > LOGGED_CHANGES {
                log::info!(
                    "{}: ... and {} more changes ({} in all)",
                    table.name,
                    table.ops.len() - LOGGED_CHANGES,
                    table.ops.len()
                );
            }
            self.echoes.expect(&table.ops);
            self.kept.wrote(&self.settings, &table.ops);
            written += table.ops.len();
            if let Err(e) = result {
                // A run of the interface reads the kernel, and reports if it fails too.
                log::debug!("{e}: running {}", table.name);
                dirty.mark(table.ifindex, Reason::Changed);
            }
        }
        if written > 0 {
            self.metrics.event_writes += 1;
            self.metrics.changes += written as u64;
        }
        log::debug!(
            "event path: {written} change(s) in {:.2} ms",
            started.elapsed().as_secs_f64() * 1e3
        );
        Outcome::Done
    }

    /// Reads the model again after a full run; without it the event path stays off and
    /// main-table changes are left to per-interface runs.
    pub(super) async fn reload_model(&mut self, planned_with: &Uplinks) {
        let started = Instant::now();
        let Some(queued) = self.drain_before_load() else {
            self.kept.invalidate();
            return;
        };
        match self.kept.load(&self.nl, &self.settings, planned_with).await {
            Ok(()) => {
                for (route, added) in &queued {
                    self.kept.replan(route, *added);
                }
                log::debug!(
                    "model: {} main route(s) read in {:.1} ms; {} change(s) queued before it \
                     planned again",
                    self.kept.main_len(),
                    started.elapsed().as_secs_f64() * 1e3,
                    queued.len()
                )
            }
            Err(e) => {
                log::warn!(
                    "{e}: main-table changes go to per-interface runs until the next full run"
                );
                self.kept.invalidate();
            }
        }
    }

    /// Drains what is queued before the model is read. Main-table route changes are in the
    /// read already: they are returned, for their prefixes to be planned again rather than
    /// applied on top of the state read (an earlier replace or exclusive insert would undo a
    /// later change the read holds). The rest marks interfaces for runs as usual. `None`
    /// when events were lost (a full run follows).
    fn drain_before_load(&mut self) -> Option<Vec<(Route, bool)>> {
        let Daemon {
            monitor,
            dirty,
            echoes,
            settings,
            ..
        } = self;
        let mut queued = Vec::new();
        let mut lost = false;
        let drained = monitor.drain_now(|received| match received {
            Received::Message {
                flags,
                sender,
                message,
            } => match message {
                Change::Route { route, added } if route.table == MAIN_TABLE => {
                    queued.push((route, added));
                }
                message => note(dirty, echoes, settings, flags, sender, &message),
            },
            Received::Overrun => lost = true,
        });
        if let Err(e) = drained {
            log::warn!("{e}: the model is read again by the next full run");
            lost = true;
        }
        if !self.dirty.is_empty() {
            // Marked while the runs held the loop (a link, an address, another tool's rule):
            // run them now, not with whatever event comes next.
            self.rerun = true;
        }
        if lost {
            // At once: the burst may be over, and no event would come to wake the loop.
            self.again = true;
            self.dirty.resync = true;
            self.rerun = true;
            return None;
        }
        Some(queued)
    }

    /// Counts and logs (once per verification) what a periodic verification changed.
    pub(super) fn verified(&mut self, report: &Report) {
        let count = report.change_count() + usize::from(report.nft.is_some());
        if count == 0 {
            log::debug!("verification: in sync");
            return;
        }
        self.metrics.verify_repairs += count as u64;
        let first = report.lines().next().unwrap_or_default();
        log::warn!("verification: {count} change(s) the event path had missed (first: {first})");
    }
}
