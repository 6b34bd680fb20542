//! The errors a run can end with, each naming what it was about.

use crate::events::NameError;
use crate::kernel::{ApplyError, ReadError};
use crate::lock::LockError;
use crate::netlink::NetlinkError;
use crate::plan::PlanError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}: no such interface")]
    UnknownInterface(String),
    #[error(transparent)]
    InvalidName(#[from] NameError),
    #[error(transparent)]
    Connect(#[from] NetlinkError),
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error(transparent)]
    Apply(#[from] ApplyError),
    #[error(transparent)]
    Lock(#[from] LockError),
}
