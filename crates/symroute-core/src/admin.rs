//! What the admin command line (`symroute status|doctor|explain`) asks of the host, each a
//! read through `kernel` followed by its pure view.

use std::collections::BTreeSet;
use std::path::Path;

use crate::health;
use crate::kernel::netlink::Netlink;
use crate::kernel::{self, Scope, Tables};
use crate::model::host::HostFacts;
use crate::model::uplinks::{dependents, Uplinks};
use crate::model::{Answer, Probe, Query, Snapshot};
use crate::plan::placement;
use crate::run::{self, NftPlan, NftRead, Read, RunPlan};
use crate::views::doctor::{self, Diagnosis};
use crate::views::explain::{self, Explanation};
use crate::views::replies;
use crate::views::status::{self, Listing, Status};
use crate::{Error, Mode, Settings, Target};

/// Everything: every link, address, rule and table, with main's uplinks (classified once,
/// by the read).
pub async fn full_snapshot(
    nl: &Netlink,
    settings: &Settings,
) -> Result<(Snapshot, Uplinks), Error> {
    let links = kernel::links(nl).await?;
    let read = kernel::snapshot(nl, settings, Scope::All, links, Tables::Read).await?;
    Ok((read.snapshot, read.uplinks))
}

/// The read of `symroute sync` (all of it), its plan and its operations: what status and
/// doctor show. `settings` come back placed among the other tools' rules, as the run
/// places them.
async fn sync_plan(nl: &Netlink, settings: &Settings) -> Result<(Read, Settings, RunPlan), Error> {
    let state_path = health::state_path(Path::new(crate::lock::DEFAULT_LOCK_PATH));
    let read = run::read(
        nl,
        settings,
        &Target::All,
        Mode::DryRun,
        None,
        &state_path,
        Tables::Read,
    )
    .await?;
    let settings = placement::placed(settings, &read.snapshot.rules);
    let mut plan = run::plan_run(&read, &settings, &Target::All, &BTreeSet::new());
    plan.diff(&read, &settings, None)?;
    Ok((read, settings, plan))
}

/// `symroute status [INTERFACE]`.
pub async fn status(
    nl: &Netlink,
    settings: &Settings,
    interface: Option<&str>,
) -> Result<Status, Error> {
    let (read, settings, plan) = sync_plan(nl, settings).await?;
    let snapshot = &read.snapshot;
    let only = match interface {
        Some(name) => match snapshot.link_by_name(name) {
            Some(link) => Some(link),
            None => return Err(Error::UnknownInterface(name.to_string())),
        },
        None => None,
    };
    run::warn_included_and_excluded(&snapshot.links, &settings, only.map(|l| l.index));
    if let NftPlan::Unknown(why) = &plan.nft {
        log::warn!("{why}");
    }
    let listing = only.map_or(Listing::Every, |l| Listing::Interface(l.index));
    let mut report = status::status(snapshot, &settings, &plan, read.health.as_ref(), listing);
    if let Some(link) = only {
        // What `symroute sync NAME` plans along with it: every other interface when our
        // rules move, as its run moves them all.
        let companions: Vec<String> = if placement::misplaced(&snapshot.rules, &settings) {
            snapshot.links.iter().map(|l| l.name.clone()).collect()
        } else {
            dependents(
                &read.uplinks,
                &snapshot.main_routes,
                &snapshot.links,
                link.index,
                settings.strict,
                |other| {
                    let table = settings.table_for(other.index);
                    Ok::<_, Error>(
                        snapshot
                            .table(table)
                            .iter()
                            .any(|r| r.uses_link(link.index)),
                    )
                },
            )?
            .into_iter()
            .map(|i| snapshot.link_name(i))
            .collect()
        };
        if !report.retain_interface(&link.name, &companions) {
            return Err(Error::UnknownInterface(link.name.clone()));
        }
    }
    Ok(report)
}

/// `symroute doctor`: the full snapshot, the sync's plan and the host's facts, judged.
pub async fn doctor(nl: &Netlink, settings: &Settings) -> Result<Diagnosis, Error> {
    let (read, settings, plan) = sync_plan(nl, settings).await?;
    let snapshot = &read.snapshot;
    let settings = &settings;
    // Its findings name interfaces and operations, never the routes of their tables.
    let report = status::status(
        snapshot,
        settings,
        &plan,
        read.health.as_ref(),
        Listing::NoRoutes,
    );
    let mut facts = HostFacts::read(Path::new("/"), &snapshot.links);
    // As the read found it (it needs CAP_NET_ADMIN; unknown otherwise). Not asked when
    // nf_tables is not even loaded and nothing needs it (asking would load it).
    facts.nft_table = match &read.nft {
        NftRead::Installed(installed) => Some(installed.clone()),
        _ => None,
    };
    facts.nat = kernel::nat::read(Path::new("/"));
    facts.replies = ask_replies(nl, snapshot, &read.uplinks, settings).await;
    let diagnosis = doctor::diagnose(snapshot, &read.uplinks, settings, &report, &facts);
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
    uplinks: &Uplinks,
    settings: &Settings,
) -> Option<Vec<(Probe, Answer)>> {
    let mut out = Vec::new();
    for probe in replies::probes(snapshot, uplinks, settings) {
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
    let (snapshot, uplinks) = full_snapshot(nl, settings).await?;
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
        &uplinks,
        settings,
        query,
        &answer,
        reply.as_ref(),
    ))
}
