//! The work of a run, interface by interface: each plan turned into its operations, and
//! the companions, exemptions, steering and garbage a run writes besides.

use std::collections::BTreeMap;

use crate::health::HealthState;
use crate::model::Op;
use crate::model::{Link, Route, Rule, Snapshot, MAIN_TABLE};
use crate::plan::diff::{diff, diff_owned};
use crate::plan::steer::{self, SteerPlan};
use crate::plan::{garbage_by_table, plan_exempt, Garbage, InterfacePlan, PlanError, Planner};
use crate::settings::Settings;

/// What a piece of a run's work is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject {
    /// An interface's table and rules, by index.
    Interface(u32),
    /// The exemption rules (`to PREFIX lookup main`).
    Exempt,
    /// `[health]`'s steering rules and table.
    Steering,
    /// What is left of an interface that is gone: a stale table and its rules.
    Stale(u32),
}

/// The operations for one interface, named for logging.
#[derive(Debug)]
pub(crate) struct Work {
    pub(crate) interface: String,
    pub(crate) subject: Subject,
    pub(crate) ops: Vec<Op>,
    /// Planned to have no rule (idle, unmanaged): nothing to install.
    pub(crate) idle: bool,
    /// A plan not yet compared with what is there (then `ops` is empty): diffed once main's
    /// routes are dropped, so a 100 000-route run holds main, the plan and the operations
    /// two at a time, never all three.
    pub(crate) plan: Option<InterfacePlan>,
    /// An uplink planned along with the interface a run is about: a failure to write it
    /// is logged, and does not fail that run.
    pub(crate) companion: bool,
}

impl Work {
    pub(super) fn ops(interface: String, subject: Subject, ops: Vec<Op>) -> Work {
        Work {
            interface,
            subject,
            ops,
            idle: false,
            plan: None,
            companion: false,
        }
    }

    /// Turns a pending plan into its operations.
    pub(super) fn diff(&mut self, snapshot: &Snapshot, settings: &Settings) {
        if let Some(plan) = self.plan.take() {
            let (routes, rules) = present(snapshot, settings, plan.table);
            self.ops = diff_owned(plan.routes, &plan.rules, &routes, &rules);
        }
    }
}

/// What is present for `table` and ours: the rules pointing at it and its routes (borrowed:
/// a 100 000-route table is not copied to be compared).
pub(super) fn present<'a>(
    snapshot: &'a Snapshot,
    settings: &Settings,
    table: u32,
) -> (Vec<&'a Route>, Vec<Rule>) {
    let routes = snapshot.routes_in(settings.protocol, table).collect();
    let rules = snapshot
        .rules_into(settings.protocol, table)
        // A steering rule into an uplink's table is the steering's (`steer_work`).
        .filter(|r| !r.is_steering(settings.protocol))
        .cloned()
        .collect();
    (routes, rules)
}

/// The work of syncing `link`, and its plan's connection mark (`iif_rules`).
pub(super) fn sync_work(
    planner: &Planner<'_>,
    settings: &Settings,
    link: &Link,
) -> Result<(Work, Option<u32>), PlanError> {
    let plan = planner.interface(link)?;
    warn_unmarkable(&plan, settings);
    let mark = plan.mark;
    Ok((
        Work {
            idle: plan.rules.is_empty(),
            plan: Some(plan),
            ..Work::ops(
                link.name.clone(),
                Subject::Interface(link.index),
                Vec::new(),
            )
        },
        mark,
    ))
}

pub(super) fn warn_unmarkable(plan: &InterfacePlan, settings: &Settings) {
    if plan.unmarkable(settings) {
        log::warn!(
            "{name}: iif_rules: its index {index} does not fit in fwmark_mask {mask:#x} (room for \
             indexes 1 to {max}): connections entering {name} are not tied to it (give \
             fwmark_mask more bits)",
            name = plan.name,
            index = plan.ifindex,
            mask = settings.fwmark_mask,
            max = settings.mark_capacity(),
        );
    }
}

/// One warning line about the interfaces (only `only`, when given) that `include` names and
/// `exclude` leaves out: exclude wins, so they are not managed, and the admin likely meant
/// one or the other.
pub(crate) fn warn_included_and_excluded(links: &[Link], settings: &Settings, only: Option<u32>) {
    let both: Vec<String> = links
        .iter()
        .filter(|l| !l.loopback && only.is_none_or(|i| i == l.index))
        .filter_map(|l| {
            let (include, exclude) = settings.included_and_excluded(&l.name)?;
            Some(format!(
                "{} (include {include:?}, exclude {exclude:?})",
                l.name
            ))
        })
        .collect();
    if !both.is_empty() {
        log::warn!(
            "matched by both include and exclude, so not managed (exclude wins): {}",
            both.join(", ")
        );
    }
}

pub(super) fn remove_work(snapshot: &Snapshot, settings: &Settings, link: &Link) -> Work {
    let (routes, rules) = present(snapshot, settings, settings.table_for(link.index));
    Work {
        idle: true,
        ..Work::ops(
            link.name.clone(),
            Subject::Interface(link.index),
            diff_owned(Vec::new(), &[], &routes, &rules),
        )
    }
}

/// The exemption rules (`to PREFIX lookup main`): global, not tied to one interface.
pub(super) fn exempt_work(snapshot: &Snapshot, settings: &Settings, flush: bool) -> Work {
    let wanted = if flush {
        Vec::new()
    } else {
        plan_exempt(settings)
    };
    let present: Vec<Rule> = snapshot
        .rules_into(settings.protocol, MAIN_TABLE)
        .filter(|r| !r.is_steering(settings.protocol))
        .cloned()
        .collect();
    Work::ops(
        "exempt".into(),
        Subject::Exempt,
        diff(&[], &wanted, &[], &present),
    )
}

/// Stale state of interfaces that are gone, one [`Work`] per stale table.
pub(super) fn garbage_work(snapshot: &Snapshot, settings: &Settings) -> Vec<Work> {
    garbage_by_table(snapshot, settings)
        .into_iter()
        .map(|g: Garbage| {
            // The interface is gone: its name is too.
            let name = match settings.interface_of_table(g.table) {
                Some(ifindex) => snapshot.link_name(ifindex),
                None => format!("table {}", g.table),
            };
            Work::ops(
                name,
                Subject::Stale(g.table),
                diff(&[], &[], &g.routes, &g.rules),
            )
        })
        .collect()
}

/// The steering of `[health]` (`plan/steer.rs`) from symrouted's verdicts (`state`), as
/// one [`Work`]; with `[health]` gone or on flush, the removal of what is left of it.
/// `None` when there is nothing to look at.
pub(super) fn steer_work(
    snapshot: &Snapshot,
    settings: &Settings,
    flush: bool,
    state: Option<&HealthState>,
) -> Result<Option<(Work, Option<SteerPlan>)>, PlanError> {
    let table = steer::steer_table(settings);
    let health = settings.health.as_ref().filter(|_| !flush);
    let steering_rules = snapshot
        .rules
        .iter()
        .any(|r| r.is_steering(settings.protocol));
    if health.is_none() && !steering_rules && !snapshot.tables.contains_key(&table) {
        return Ok(None);
    }
    let (present_routes, present_rules) = steer::present(snapshot, settings);
    let plan = match health {
        Some(health) => {
            let plan = steer::plan(snapshot, settings, health, state);
            if !plan.routes.is_empty() {
                if let Some(foreign) = snapshot
                    .table(table)
                    .iter()
                    .find(|r| r.protocol != settings.protocol)
                {
                    return Err(PlanError::ForeignTable {
                        interface: "steering".into(),
                        table,
                        route: foreign.display(&snapshot.links).to_string(),
                        protocol: foreign.protocol,
                    });
                }
            }
            Some(plan)
        }
        None => None,
    };
    let (routes, rules) = plan
        .as_ref()
        .map_or((&[][..], &[][..]), |p| (&p.routes[..], &p.rules[..]));
    let ops = diff(routes, rules, &present_routes, &present_rules);
    Ok(Some((
        Work::ops("steering".into(), Subject::Steering, ops),
        plan,
    )))
}

/// The interfaces a per-interface run plans besides the interface it is about: those whose
/// tables the snapshot read because they depend on it (uplinks holding copies through it,
/// macvlans on it).
pub(super) fn companions<'a>(
    snapshot: &'a Snapshot,
    settings: &Settings,
    planned: &BTreeMap<u32, Option<u32>>,
) -> Vec<&'a Link> {
    snapshot
        .links
        .iter()
        .filter(|l| !planned.contains_key(&l.index))
        .filter(|l| snapshot.tables.contains_key(&settings.table_for(l.index)))
        .collect()
}
