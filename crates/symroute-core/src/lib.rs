//! symroute's core: read the kernel's routing state, decide what one interface's policy
//! routing table and rules should be (a pure function of that state), and apply the
//! difference over rtnetlink.
//!
//! The kernel is the only state: every run reads what is there, so running twice changes
//! nothing the second time and a run killed midway is repaired by the next one.

pub mod config;
pub mod convert;
pub mod diff;
pub mod doctor;
pub mod error;
pub mod events;
pub mod explain;
pub mod kernel;
pub mod lock;
pub mod logging;
pub mod model;
pub mod netlink;
pub mod nftables;
pub mod plan;
pub mod run;
pub mod settings;
pub mod status;
pub mod uplinks;

pub use diff::Op;
pub use error::Error;
pub use events::{action_for, validate_interface_name, Action};
pub use netlink::Netlink;
pub use plan::{plan_interface, InterfacePlan, Snapshot};
pub use run::{reconcile, reconcile_skipping, Mode, Report, Target};
pub use settings::Settings;
