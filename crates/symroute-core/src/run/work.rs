//! The work of a run, interface by interface: each plan turned into its operations, and
//! the companions, exemptions, steering and garbage a run writes besides.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;

use crate::health::HealthState;
use crate::kernel::netlink::Netlink;
use crate::kernel::{self, ReadError, Walked};
use crate::model::Op;
use crate::model::{Link, Rule, Snapshot, MAIN_TABLE};
use crate::plan::diff::{diff, Comparison};
use crate::plan::steer::{self, SteerPlan};
use crate::plan::{garbage_by_table, plan_exempt, Garbage, InterfacePlan, PlanError, Planner};
use crate::settings::Settings;

use super::planned::Effect;

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
    /// routes are dropped, against its table walked then (a run does not read it before),
    /// so a 1 000 000-route run holds main and the plan, or the plan and the operations,
    /// never the table as it is beside them.
    pub(crate) plan: Option<InterfacePlan>,
    /// For a plan that gets rules: what its refusal does when its table turns out to hold
    /// a route of another protocol (found as the diff walks it, not at planning), and how
    /// many refusals planning had made before it (where it goes among them).
    pub(crate) refusal: Option<(Effect, usize)>,
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
            refusal: None,
            companion: false,
        }
    }

    /// Turns a pending plan into its operations, walking its table as it is (from `tables`)
    /// against it; or, when a plan that gets rules finds a route of another protocol there,
    /// its refusal (the same [`PlanError::ForeignTable`] planning makes over a snapshot
    /// holding the table), and no operation.
    pub(super) fn diff(
        &mut self,
        tables: &TableSource<'_>,
        settings: &Settings,
    ) -> Result<Option<PlanError>, ReadError> {
        let Some(plan) = self.plan.take() else {
            return Ok(None);
        };
        // Only an interface that would get something is refused (`interface_plan`).
        let refusable = !plan.rules.is_empty();
        let mut comparison = Comparison::new(plan.routes);
        let mut foreign = None;
        tables.walk(plan.table, |walked| match walked {
            Walked::Again => {
                comparison.restart();
                ControlFlow::Continue(())
            }
            Walked::Route(route) if route.protocol == settings.protocol => {
                comparison.present(route);
                ControlFlow::Continue(())
            }
            Walked::Route(route) if refusable => {
                foreign = Some(route.clone());
                ControlFlow::Break(())
            }
            Walked::Route(_) => ControlFlow::Continue(()),
        })?;
        if let Some(route) = foreign {
            return Ok(Some(PlanError::ForeignTable {
                interface: plan.name,
                table: plan.table,
                route: route.display(&tables.snapshot.links).to_string(),
                protocol: route.protocol,
            }));
        }
        let rules = present_rules(tables.snapshot, settings, plan.table);
        self.ops = comparison.ops(&plan.rules, &rules);
        Ok(None)
    }
}

/// Where the diff finds the tables as they are: in the snapshot, or, for those the read
/// left (`left`), walked in the kernel.
pub(crate) struct TableSource<'a> {
    pub(crate) snapshot: &'a Snapshot,
    pub(crate) kernel: Option<(&'a Netlink, &'a BTreeSet<u32>)>,
}

impl TableSource<'_> {
    fn walk(
        &self,
        table: u32,
        mut visit: impl FnMut(Walked<'_>) -> ControlFlow<()>,
    ) -> Result<(), ReadError> {
        match self.kernel {
            Some((nl, left)) if left.contains(&table) => kernel::walk_table(nl, table, visit),
            _ => {
                for route in self.snapshot.table(table) {
                    if visit(Walked::Route(route)).is_break() {
                        break;
                    }
                }
                Ok(())
            }
        }
    }
}

/// Our rules pointing at `table`.
fn present_rules(snapshot: &Snapshot, settings: &Settings, table: u32) -> Vec<Rule> {
    snapshot
        .rules_into(settings.protocol, table)
        // A steering rule into an uplink's table is the steering's (`steer_work`).
        .filter(|r| !r.is_steering(settings.protocol))
        .cloned()
        .collect()
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

/// The removal of everything of ours for `link`: a plan of nothing, diffed like the others.
pub(super) fn remove_work(settings: &Settings, link: &Link) -> Work {
    Work {
        idle: true,
        plan: Some(InterfacePlan {
            ifindex: link.index,
            name: link.name.clone(),
            table: settings.table_for(link.index),
            routes: Vec::new(),
            rules: Vec::new(),
            mark: None,
        }),
        ..Work::ops(
            link.name.clone(),
            Subject::Interface(link.index),
            Vec::new(),
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
/// tables the read chose because they depend on it (uplinks holding copies through it,
/// macvlans on it), read into the snapshot or `left` for the diff.
pub(super) fn companions<'a>(
    snapshot: &'a Snapshot,
    settings: &Settings,
    planned: &BTreeMap<u32, Option<u32>>,
    left: &BTreeSet<u32>,
) -> Vec<&'a Link> {
    snapshot
        .links
        .iter()
        .filter(|l| !planned.contains_key(&l.index))
        .filter(|l| {
            let table = settings.table_for(l.index);
            snapshot.tables.contains_key(&table) || left.contains(&table)
        })
        .collect()
}
