//! Pure reports over one [`Snapshot`](crate::model::Snapshot) and the settings: what the
//! admin CLI prints. Nothing here reads the host.
//!
//! [`status`], [`explain`] and [`doctor`] are the three reports; [`iproute`] (rules and
//! routes in `ip -j`'s shape), [`rule_walk`] (how the kernel's rules lead a packet to a
//! table) and [`replies`] (the host's replies from its uplinks' addresses, judged from the
//! kernel's lookups the caller made) are what they share.

pub mod doctor;
pub mod explain;
pub mod iproute;
pub mod replies;
pub mod rule_walk;
pub mod status;
