//! The read of a run: everything it needs of the host, read once, before anything is
//! planned (`planned.rs` is pure and asks the host nothing).

use std::collections::BTreeSet;
use std::path::Path;

use crate::error::Error;
use crate::events::Action;
use crate::health::HealthState;
use crate::kernel::netlink::Netlink;
use crate::kernel::{self, Scope, Snapshotted, Tables};
use crate::model::uplinks::Uplinks;
use crate::model::{Link, Snapshot};
use crate::plan::placement;
use crate::plan::steer;
use crate::settings::Settings;

use super::side::{read_nftables, NftRead};
use super::{Mode, Target};

/// What a run read of the host.
#[derive(Debug)]
pub(crate) struct Read {
    pub(crate) snapshot: Snapshot,
    /// Main's uplinks, classified once, by the read that needed them to choose its tables.
    pub(crate) uplinks: Uplinks,
    /// Every default route of main was read (steering is planned only then).
    pub(crate) defaults_read: bool,
    /// The interface a per-interface run is about, with what its event asks for; `None`
    /// when it is gone (only stale state is left to collect) and in other runs.
    pub(crate) link: Option<(Link, Action)>,
    /// Rules of other tools before ours came or went: a per-interface run moves every
    /// interface's rules.
    pub(crate) everyone: bool,
    /// `[health]`'s verdicts as symrouted last wrote them, when fresh.
    pub(crate) health: Option<HealthState>,
    /// `table inet symroute` as installed, when it can matter.
    pub(crate) nft: NftRead,
    /// The tables of interfaces the run may plan that were left unread
    /// ([`kernel::Tables::LeaveLarge`]): the diff walks them once main is dropped.
    pub(crate) left: BTreeSet<u32>,
}

/// Reads what a run of `target` needs. `vanished`: an interface that disappeared during
/// the run being redone (its table is collected too). `state_path`: where symrouted keeps
/// `[health]`'s verdicts. `tables`: whether the interfaces' tables are read (`status` and
/// `doctor` show them) or left for the diff to walk (a run).
pub(crate) async fn read(
    nl: &Netlink,
    settings: &Settings,
    target: &Target,
    mode: Mode,
    vanished: Option<u32>,
    state_path: &Path,
    tables: Tables,
) -> Result<Read, Error> {
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
    let Snapshotted {
        mut snapshot,
        mut uplinks,
        defaults_complete: mut defaults_read,
        mut left,
    } = kernel::snapshot(nl, settings, scope, links, tables).await?;
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
        let all = kernel::snapshot(nl, settings, Scope::All, links, tables).await?;
        (snapshot, uplinks, defaults_read, left) =
            (all.snapshot, all.uplinks, all.defaults_complete, all.left);
        everyone = true;
    }
    let flush = *target == Target::Flush;
    // The steering is planned from all of main only (a veth's run reads main's routes
    // through the veth alone, and its steering is unchanged).
    if defaults_read || flush {
        let table = steer::steer_table(settings);
        let steering_rules = snapshot
            .rules
            .iter()
            .any(|r| r.is_steering(settings.protocol));
        if (settings.health.is_some() || steering_rules) && !snapshot.tables.contains_key(&table) {
            let routes = kernel::routes(nl, Some(table), None).await?;
            snapshot.tables.insert(table, routes);
        }
    }
    let health = settings
        .health
        .as_ref()
        .filter(|_| defaults_read && !flush)
        .and_then(|h| HealthState::read(state_path, HealthState::stale_after(h.interval)));
    let placed = placement::placed(settings, &snapshot.rules);
    let nft = read_nftables(&snapshot, &placed, target, mode);
    Ok(Read {
        snapshot,
        uplinks,
        defaults_read,
        link,
        everyone,
        health,
        nft,
        left,
    })
}

impl Read {
    /// A read that found `snapshot` (all of it, nothing of `[health]` or nftables): for
    /// tests of the plan and of the views over it.
    #[cfg(test)]
    pub(crate) fn of(snapshot: Snapshot, settings: &Settings) -> Read {
        Read {
            uplinks: Uplinks::of(&snapshot, settings.protocol),
            snapshot,
            defaults_read: true,
            link: None,
            everyone: false,
            health: None,
            nft: NftRead::NotAsked,
            left: BTreeSet::new(),
        }
    }
}
