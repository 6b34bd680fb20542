//! What a run did: its operations per interface, the failures, the steering.

use crate::error::Error;
use crate::model::uplinks::Uplinks;
use crate::model::Link;
use crate::model::Op;
use crate::plan::steer::SteerPlan;

use super::Mode;

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
    /// The classification of main's interfaces the run planned with: the daemon's kept
    /// model plans later changes with it, and judges whether they change it.
    pub uplinks: Uplinks,
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
