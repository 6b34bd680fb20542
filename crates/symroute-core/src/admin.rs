//! What the admin command line (`symroute status|doctor|explain`) asks of the host, each a
//! read through `kernel` followed by its pure view.

use std::path::Path;

use crate::health::{self, HealthState};
use crate::kernel::netlink::Netlink;
use crate::kernel::{self, nftables, Scope};
use crate::model::host::HostFacts;
use crate::model::{Answer, Probe, Query, Snapshot};
use crate::plan::placement;
use crate::views::doctor::{self, Diagnosis};
use crate::views::explain::{self, Explanation};
use crate::views::replies;
use crate::views::status::{self, Status};
use crate::{Error, Settings};

/// Everything: every link, address, rule and table.
pub async fn full_snapshot(nl: &Netlink, settings: &Settings) -> Result<Snapshot, Error> {
    let links = kernel::links(nl).await?;
    let (snapshot, _uplinks, _) = kernel::snapshot(nl, settings, Scope::All, links).await?;
    Ok(snapshot)
}

/// `symroute status [INTERFACE]`.
pub async fn status(
    nl: &Netlink,
    settings: &Settings,
    interface: Option<&str>,
) -> Result<Status, Error> {
    let snapshot = full_snapshot(nl, settings).await?;
    let only = match interface {
        Some(name) => match snapshot.link_by_name(name) {
            Some(link) => Some(link.index),
            None => return Err(Error::UnknownInterface(name.to_string())),
        },
        None => None,
    };
    crate::run::warn_included_and_excluded(&snapshot.links, settings, only);
    // Where our rules go among the other tools' rules, as a run would place them.
    let settings = &placement::placed(settings, &snapshot.rules);
    let mut report = status::status(&snapshot, settings);
    report.add_health(&snapshot, settings, health_state(settings).as_ref());
    if let Some(name) = interface {
        if !report.retain_interface(name) {
            return Err(Error::UnknownInterface(name.to_string()));
        }
    }
    Ok(report)
}

/// symrouted's verdicts (`[health]`), when fresh.
fn health_state(settings: &Settings) -> Option<HealthState> {
    let interval = settings.health.as_ref()?.interval;
    HealthState::read(
        &health::state_path(Path::new(crate::lock::DEFAULT_LOCK_PATH)),
        HealthState::stale_after(interval),
    )
}

/// `symroute doctor`: the full snapshot and the host's facts, judged.
pub async fn doctor(nl: &Netlink, settings: &Settings) -> Result<Diagnosis, Error> {
    let snapshot = full_snapshot(nl, settings).await?;
    // Where our rules go among the other tools' rules, as a run would place them.
    let settings = &placement::placed(settings, &snapshot.rules);
    let report = status::status(&snapshot, settings);
    let mut facts = HostFacts::read(Path::new("/"), &snapshot.links);
    // Needs CAP_NET_ADMIN; unknown otherwise. Not asked when nf_tables is not even loaded
    // and nothing needs it (asking would load it).
    if settings.iif_rules || kernel::nat::nf_tables_present(Path::new("/")) {
        facts.nft_table = nftables::read_installed().ok();
    }
    facts.nat = kernel::nat::read(Path::new("/"));
    facts.replies = ask_replies(nl, &snapshot, settings).await;
    let diagnosis = doctor::diagnose(&snapshot, settings, &report, &facts);
    // Also on stderr, one line each: `--json` readers and scripts see the findings only.
    for finding in diagnosis.unseen() {
        log::warn!("{}: {}", finding.check, finding.message);
    }
    Ok(diagnosis)
}

/// The kernel's lookups of the host's replies from its uplinks' addresses
/// ([`replies::probes`]); `None` when the kernel could not be asked.
async fn ask_replies(
    nl: &Netlink,
    snapshot: &Snapshot,
    settings: &Settings,
) -> Option<Vec<(Probe, Answer)>> {
    let mut out = Vec::new();
    for probe in replies::probes(snapshot, settings) {
        match kernel::lookup(nl, &probe.query, None, None).await {
            Ok(answer) => out.push((probe, answer)),
            Err(e) => {
                log::warn!("cannot ask the kernel how replies are routed: {e}");
                return None;
            }
        }
    }
    Some(out)
}

/// `symroute explain FROM TO [--iif NAME]`: the kernel's lookup of the packet and, for a
/// forwarded one, of its answer (symmetric when the answer goes back the same way).
pub async fn explain(
    nl: &Netlink,
    settings: &Settings,
    query: &Query,
) -> Result<Explanation, Error> {
    let snapshot = full_snapshot(nl, settings).await?;
    // Where our rules go among the other tools' rules, as a run would place them.
    let settings = &placement::placed(settings, &snapshot.rules);
    let iif_index = match &query.iif {
        Some(name) => match snapshot.link_by_name(name) {
            Some(link) => Some(link.index),
            None => return Err(Error::UnknownInterface(name.clone())),
        },
        None => None,
    };
    let answer = kernel::lookup(nl, query, iif_index, None)
        .await
        .map_err(Error::Connect)?;
    let reply = match explain::reply_query(&snapshot, settings, query, &answer) {
        Some((reply, reply_iif)) => Some(
            kernel::lookup(nl, &reply, reply_iif, None)
                .await
                .map_err(Error::Connect)?,
        ),
        None => None,
    };
    Ok(explain::explain(
        &snapshot,
        settings,
        query,
        &answer,
        reply.as_ref(),
    ))
}
