//! `status`'s view of `[health]`: each uplink's verdicts (from symrouted's state file) and
//! the steering rules, with what a sync would change in them.

use serde::Serialize;

use crate::health::{HealthState, UplinkHealth, Verdict};
use crate::model::{Family, Snapshot};
use crate::plan::steer;
use crate::run::{RunPlan, Subject};
use crate::settings::Settings;
use crate::views::iproute::{RouteView, RuleView};

use super::{op_lines, Status};

/// One family's verdict (`"health"` of an interface in `--json`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FamilyHealth {
    /// `up` or `down`.
    pub state: &'static str,
    /// Share of the last round's targets that did not answer, 0 to 1.
    pub loss: f64,
    pub rtt_ms: Option<f64>,
    /// Unix time of the last transition (or of the first round).
    pub since: f64,
    /// A probe round has been counted; `false`: `state` is only the assumption that the
    /// uplink is up (the probes were refused, or none has finished yet).
    pub probed: bool,
}

/// An interface's health: the worst of its families at the top, each family below.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HealthView {
    pub state: &'static str,
    pub loss: f64,
    pub rtt_ms: Option<f64>,
    pub since: f64,
    /// Every family has been probed ([`FamilyHealth::probed`]).
    pub probed: bool,
    pub ipv4: Option<FamilyHealth>,
    pub ipv6: Option<FamilyHealth>,
}

// Verdicts compare exactly as read; f64 has no NaN here (parsed from "%.3f" numbers).
impl Eq for HealthView {}

fn family_health(u: &UplinkHealth) -> FamilyHealth {
    FamilyHealth {
        state: u.verdict.name(),
        loss: u.loss,
        rtt_ms: u.rtt_ms,
        since: u.since,
        probed: u.rounds > 0,
    }
}

impl HealthView {
    fn of(state: &HealthState, ifindex: u32) -> Option<HealthView> {
        let v4 = state.of(ifindex, Family::V4);
        let v6 = state.of(ifindex, Family::V6);
        let all: Vec<&UplinkHealth> = v4.into_iter().chain(v6).collect();
        let first = all.first()?;
        let down = all.iter().any(|u| u.verdict == Verdict::Down);
        Some(HealthView {
            state: if down { "down" } else { "up" },
            loss: all.iter().map(|u| u.loss).fold(0.0, f64::max),
            rtt_ms: all.iter().find_map(|u| u.rtt_ms),
            since: all.iter().map(|u| u.since).fold(first.since, f64::max),
            probed: all.iter().all(|u| u.rounds > 0),
            ipv4: v4.map(family_health),
            ipv6: v6.map(family_health),
        })
    }
}

/// The steering rules (and balance's table) and what a sync would change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SteeringStatus {
    /// `failover` or `balance`; `none` when `[health]` is gone and steering is left over.
    pub mode: &'static str,
    /// Whether symrouted's verdicts were found (fresh); without them every uplink counts as
    /// up.
    pub probed: bool,
    /// One line per family: what the steering does now.
    pub summary: Vec<String>,
    pub rules: Vec<RuleView>,
    pub routes: Vec<RouteView>,
    pub pending: Vec<String>,
    /// Why a sync refuses the steering (its table holds another tool's route).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Status {
    /// Adds the verdicts of `state` to the interfaces, and the steering `plan` makes (or
    /// removes, without `[health]`).
    pub(super) fn add_health(
        &mut self,
        snapshot: &Snapshot,
        settings: &Settings,
        state: Option<&HealthState>,
        plan: &RunPlan,
    ) {
        if let Some(state) = state {
            for i in &mut self.interfaces {
                i.health = HealthView::of(state, i.ifindex);
            }
        }
        let error = plan
            .refusals
            .iter()
            .find(|r| r.ifindex.is_none())
            .map(|r| r.error.to_string());
        let (present_routes, present_rules) = steer::present(snapshot, settings);
        let pending = op_lines(plan.ops_of(Subject::Steering), &snapshot.links);
        let mode = match &settings.health {
            Some(h) => h.mode.name(),
            None if present_rules.is_empty() && present_routes.is_empty() && pending.is_empty() => {
                return
            }
            None => "none",
        };
        self.steering = Some(SteeringStatus {
            mode,
            probed: state.is_some(),
            summary: plan
                .steering
                .as_ref()
                .map(|p| p.summary.clone())
                .unwrap_or_default(),
            rules: present_rules.iter().map(RuleView::new).collect(),
            routes: present_routes
                .iter()
                .map(|r| RouteView::new(r, &snapshot.links))
                .collect(),
            pending,
            error,
        });
    }
}

/// A unix time as `2026-12-07 14:20:05 UTC` (the state file's times).
pub fn when(unix: f64) -> String {
    crate::civil::date_time(unix)
}
