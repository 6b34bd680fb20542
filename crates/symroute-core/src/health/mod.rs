//! Uplink health (`[health]`): its settings and the state file symrouted keeps the verdicts
//! in. Probing is symrouted's (`crates/symrouted/src/health/`); steering from the verdicts
//! is planned in `plan/steer.rs`. See docs/design.md, "Health and outbound steering".

mod settings;
mod state;

pub use settings::{
    validate, HealthFile, HealthSettings, Refused, SteerMode, DEFAULT_STEER_PRIORITY,
    DEFAULT_WEIGHT, MAX_WEIGHT,
};
pub use state::{state_path, unix_now, HealthState, UplinkHealth, Verdict, STATE_FILE_NAME};
