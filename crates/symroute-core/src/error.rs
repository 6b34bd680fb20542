//! The errors a run can end with, each naming what it was about.

use crate::config::ConfigError;
use crate::events::NameError;
use crate::kernel::netlink::NetlinkError;
use crate::kernel::nftables::NftError;
use crate::kernel::{ApplyError, ReadError};
use crate::lock::LockError;
use crate::plan::PlanError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}: no such interface")]
    UnknownInterface(String),
    #[error(transparent)]
    InvalidName(#[from] NameError),
    #[error(transparent)]
    Config(#[from] ConfigError),
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
    #[error(transparent)]
    Nft(#[from] NftError),
}

impl Error {
    /// Whether the fault is in what the caller asked for (exit status 2) rather than in what
    /// happened while doing it (exit status 1).
    pub fn is_usage(&self) -> bool {
        matches!(self, Error::InvalidName(_) | Error::Config(_))
    }
}

/// `Network is unreachable (errno 101)`: the system's text, with the errno an admin can grep
/// for.
pub fn errno_text(errno: i32) -> String {
    let text = std::io::Error::from_raw_os_error(errno).to_string();
    // io::Error appends " (os error N)".
    let text = text.split(" (os error").next().unwrap_or(&text).to_string();
    format!("{text} (errno {errno})")
}
