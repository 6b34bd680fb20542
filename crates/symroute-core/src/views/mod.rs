//! Pure reports over one [`Snapshot`](crate::model::Snapshot) and the settings: what the
//! admin CLI prints. Nothing here reads the host.

pub mod doctor;
pub mod explain;
pub mod status;
