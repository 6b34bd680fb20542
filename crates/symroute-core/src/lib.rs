//! symroute's core: read the kernel's routing state, decide what one interface's policy
//! routing table and rules should be (a pure function of that state), and apply the
//! difference over rtnetlink.
//!
//! The kernel is the only state: every run reads what is there, so running twice changes
//! nothing the second time and a run killed midway is repaired by the next one.
//!
//! The folders follow a run (docs/architecture.md):
//! - [`model`]: plain data — [`Snapshot`], [`Op`], links, routes, rules.
//! - [`kernel`]: everything that reads or writes the host (netlink, nftables, files).
//! - [`plan`]: the pure decisions — plans, [`diff`], the nftables table text.
//! - [`views`]: pure reports over a snapshot — status, doctor, explain.
//! - [`run`]: one run, lock → read → plan → diff → apply; [`admin`]: the admin CLI's reads
//!   and views; [`shell`]: what the binaries share (log level, configuration, exit status).

pub mod admin;
pub mod config;
pub mod error;
pub mod events;
pub mod kernel;
pub mod lock;
pub mod logging;
pub mod model;
pub mod plan;
pub mod run;
pub mod settings;
pub mod shell;
pub mod trust;
pub mod views;

#[cfg(test)]
mod fixtures;

pub use error::Error;
pub use events::{action_for, validate_interface_name, Action};
pub use kernel::netlink::Netlink;
pub use model::{Op, Snapshot};
pub use plan::{plan_interface, InterfacePlan};
pub use run::{reconcile, reconcile_locked, Mode, Report, Target};
pub use settings::Settings;

// The modules' paths before the folders, kept so that code written against them still builds.
pub use kernel::{convert, netlink};
pub use plan::diff;
pub use views::{doctor, explain, status};

/// `table inet symroute` (`iif_rules`): its text ([`plan::nft`]) and its reading and
/// writing ([`kernel::nftables`]), under the module's path before the folders.
pub mod nftables {
    pub use crate::kernel::nftables::*;
    pub use crate::model::nft::*;
    pub use crate::model::{NftChange, NftInstalled as Installed, NftTable};
    pub use crate::plan::nft::*;
}
