//! symroute's core: read the kernel's routing state, decide what one interface's policy
//! routing table and rules should be (a pure function of that state), and apply the
//! difference over rtnetlink.
//!
//! The kernel is the only state: every run reads what is there, so running twice changes
//! nothing the second time and a run killed midway is repaired by the next one.
//!
//! The folders follow a run (docs/architecture.md): `model/` (plain data: [`Snapshot`],
//! [`Op`], links, routes, rules), `kernel/` (everything that reads or writes the host),
//! `plan/` (the pure decisions: plans, diff, the nftables table text), `views/` (pure
//! reports over a snapshot: status, doctor, explain), `run/` (lock → read → plan → diff →
//! apply; the pure part, `plan_run`, is what status and doctor display).
//!
//! The modules are private; what the binaries and tests use is re-exported here, plus a few
//! public namespaces: [`model`] (the plain types), [`admin`] (the admin CLI's reads and
//! views), [`monitor`] (the daemon's kernel event source), [`config`], [`lock`], [`logging`]
//! and [`shell`] (what the binaries share: log level, configuration, exit status).

pub mod admin;
pub mod civil;
pub mod config;
mod error;
mod events;
mod glob;
pub mod health;
// The fuzz targets' way in (fuzz/, docs/fuzzing.md); not an API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
pub mod kept;
mod kernel;
pub mod lock;
pub mod logging;
pub mod model;
mod plan;
mod route_metrics;
mod run;
mod settings;
pub mod shell;
mod trust;
mod views;

#[cfg(test)]
mod fixtures;
#[cfg(test)]
mod layers;

pub use error::Error;
pub use events::{action_for, is_known_event, validate_interface_name, Action, ACTIONS};
pub use kernel::convert::{route_message, rule_message};
pub use kernel::monitor;
pub use kernel::names::Names;
pub use kernel::netlink::{Netlink, NetlinkError};
pub use kernel::{links, lookup, ReadError, LARGE_TABLE};
pub use model::{Op, Snapshot};
pub use plan::placement::is_catch_all;
pub use plan::steer::{Candidate, SteerPlan};
pub use route_metrics::RouteMetrics;
pub use run::{reconcile, reconcile_interrupted, reconcile_locked, Mode, Report, Target};
pub use settings::{InterfaceSettings, Settings};
pub use views::doctor::Diagnosis;
pub use views::explain::Explanation;
pub use views::status::Status;
