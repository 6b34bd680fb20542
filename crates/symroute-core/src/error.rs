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

    /// The interface the failure is about, where it is about one (the daemon's per-interface
    /// metrics and retries key on it).
    pub fn interface(&self) -> Option<&str> {
        match self {
            Error::UnknownInterface(name) => Some(name),
            Error::Plan(e) => Some(e.interface()),
            Error::Apply(ApplyError { interface, .. }) => Some(interface),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_names_its_interface_only_where_it_is_about_one() {
        let apply = Error::Apply(ApplyError {
            interface: "eth1".into(),
            op: "add rule".into(),
            source: NetlinkError::Errno(libc::EEXIST),
            hint: None,
        });
        assert_eq!(apply.interface(), Some("eth1"));
        assert_eq!(
            Error::UnknownInterface("eth9".into()).interface(),
            Some("eth9")
        );
        let read = Error::Read(ReadError {
            what: "links".into(),
            source: NetlinkError::Closed,
        });
        assert_eq!(read.interface(), None);
    }
}
