//! What a run writes besides rules and routes: `table inet symroute` (nftables) and the
//! table names of iproute2.

use std::collections::BTreeMap;
use std::path::Path;

use crate::error::Error;
use crate::kernel::nftables;
use crate::model::{Link, NftInstalled as Installed, Snapshot};
use crate::plan::nft;
use crate::settings::Settings;

use super::{Mode, Report, Target};

/// Brings `table inet symroute` in line with the marked interfaces (`iif_rules`), or removes
/// it. The kernel is asked for the installed table (no process) only when it can matter:
/// with `iif_rules` on, on a full run or flush, or while fwmark rules of ours are left; `nft`
/// runs only to change something.
pub(super) fn sync_nftables(
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
