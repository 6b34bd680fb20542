//! What a run writes besides rules and routes: `table inet symroute` (nftables) and the
//! table names of iproute2.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::Error;
use crate::kernel::nftables::{self, NftError};
use crate::model::{Link, NftChange, NftInstalled as Installed, Snapshot};
use crate::plan::nft;
use crate::settings::Settings;

use super::{Mode, Target};

/// `table inet symroute` as a run found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum NftRead {
    /// Not asked: nothing of the run can depend on it (no `iif_rules`, no fwmark rule of
    /// ours left, not a full run or flush), or it cannot be there (no nf_tables).
    NotAsked,
    Installed(Installed),
    /// It could not be read; what a sync would change in it is unknown (a dry run or a
    /// view, which may run without CAP_NET_ADMIN).
    Unknown(String),
    /// It could not be read, and the run fails for it once its rules are written.
    Failed(NftError),
}

/// What a run does to `table inet symroute`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NftPlan {
    /// Nothing: it is as wanted, or nothing could have changed it.
    Unchanged,
    Change(NftChange),
    /// It could not be read (the line says why): what a sync would change is unknown.
    Unknown(String),
    /// It could not be read, which fails the run.
    Failed(NftError),
}

/// Reads the installed `table inet symroute` when it can matter: with `iif_rules` on, on a
/// full run or flush, or while fwmark rules of ours are left. The kernel is asked (no
/// process); `nft` runs only to change something.
pub(super) fn read_nftables(
    snapshot: &Snapshot,
    settings: &Settings,
    target: &Target,
    mode: Mode,
) -> NftRead {
    let flush = *target == Target::Flush;
    let leftovers = snapshot
        .rules
        .iter()
        .any(|r| r.protocol == settings.protocol && r.fwmark.is_some());
    // Without nf_tables in the kernel there is no table to remove (and asking would load it).
    let full_run = *target == Target::All && crate::kernel::nat::nf_tables_present(Path::new("/"));
    if !(settings.iif_rules || flush || leftovers || full_run) {
        return NftRead::NotAsked;
    }
    match nftables::read_installed() {
        Ok(installed) => NftRead::Installed(installed),
        Err(e) if mode == Mode::DryRun => {
            if settings.iif_rules {
                // Said by whoever shows the plan (a dry run's warning, status's section,
                // doctor's finding), once.
                NftRead::Unknown(format!("{e}: what a sync would change in it is unknown"))
            } else {
                log::debug!("{e}");
                NftRead::NotAsked
            }
        }
        // Nothing was asked for and nothing can be seen: nothing to remove.
        Err(e) if !settings.iif_rules && !flush && !leftovers => {
            log::debug!("{e}");
            NftRead::NotAsked
        }
        // Without nf_tables nothing of ours can be there to flush.
        Err(e) if flush && !leftovers => {
            log::debug!("{e}");
            NftRead::Installed(Installed::Absent)
        }
        Err(e) => NftRead::Failed(e),
    }
}

/// What `table inet symroute` should become once the run is done: the table of the marked
/// interfaces (`iif_rules`, with the marks of `planned`), or none.
pub(super) fn plan_nftables(
    snapshot: &Snapshot,
    settings: &Settings,
    target: &Target,
    planned: &BTreeMap<u32, Option<u32>>,
    read: &NftRead,
) -> NftPlan {
    let installed = match read {
        NftRead::NotAsked => return NftPlan::Unchanged,
        NftRead::Unknown(line) => return NftPlan::Unknown(line.clone()),
        NftRead::Failed(e) => return NftPlan::Failed(e.clone()),
        NftRead::Installed(installed) => installed,
    };
    let wanted = if *target == Target::Flush {
        None
    } else {
        nft::table(&nft::marked_links(snapshot, settings, planned), settings)
    };
    match nft::change(wanted.as_ref(), installed) {
        Some(change) => NftPlan::Change(change),
        None => NftPlan::Unchanged,
    }
}

/// Makes `change` (once the rules that route the marks exist), and returns its line.
pub(super) fn apply_nftables(change: &NftChange, mode: Mode) -> Result<String, Error> {
    let line = change.line();
    if mode == Mode::Apply {
        nftables::apply(change)?;
        log::info!("{line}");
    }
    Ok(line)
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
pub(super) fn write_table_names(path: &Path, names: &[(u32, String)]) -> std::io::Result<()> {
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
