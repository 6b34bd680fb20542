//! The health of every probed uplink as symrouted last saw it, in a file under the run
//! directory (`/run/symroute/health`). The daemon writes it after every probe round; every
//! run (the hook's, the CLI's, the daemon's own) reads it to plan the steering, so all of
//! them compute the same rules from the same kernel and the same verdicts and none undoes
//! another's. `symroute status` shows it.
//!
//! A file not rewritten for [`HealthState::stale_after`] is ignored (the daemon is gone, so
//! nobody probes): every uplink then counts as up, which is what main alone would do.

use std::io::{self, Write as _};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::model::Family;

/// Its name in the run directory (beside the run lock).
pub const STATE_FILE_NAME: &str = "health";

/// The file beside the run lock at `lock_path`.
pub fn state_path(lock_path: &Path) -> PathBuf {
    lock_path.with_file_name(STATE_FILE_NAME)
}

/// An uplink's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Up,
    Down,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Verdict::Up => "up",
            Verdict::Down => "down",
        }
    }
}

/// One uplink's health in one family.
#[derive(Debug, Clone, PartialEq)]
pub struct UplinkHealth {
    pub interface: String,
    pub ifindex: u32,
    pub family: Family,
    pub verdict: Verdict,
    /// Share of the last round's targets that did not answer, 0 to 1.
    pub loss: f64,
    /// Mean round-trip time of the last round's answers; `None` when none came.
    pub rtt_ms: Option<f64>,
    /// Unix time of the last transition (or of the first round).
    pub since: f64,
    /// Transitions since the daemon started.
    pub transitions: u64,
    /// Probe rounds counted (0: none yet, as when the probes are refused: the verdict is
    /// then only the assumption that the uplink is up).
    pub rounds: u64,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct HealthState {
    /// Unix time the daemon wrote it.
    pub updated: f64,
    pub uplinks: Vec<UplinkHealth>,
}

pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

fn family_name(family: Family) -> &'static str {
    match family {
        Family::V4 => "ipv4",
        Family::V6 => "ipv6",
    }
}

impl HealthState {
    /// How old a file may be and still be believed: ten probe intervals, at least 30 s (a
    /// daemon restarted by systemd after a crash finds the verdicts it had).
    pub fn stale_after(interval: Duration) -> Duration {
        (interval * 10).max(Duration::from_secs(30))
    }

    /// Whether `ifindex` was found down in `family`. Unknown uplinks count as up.
    pub fn is_down(&self, ifindex: u32, family: Family) -> bool {
        self.uplinks
            .iter()
            .any(|u| u.ifindex == ifindex && u.family == family && u.verdict == Verdict::Down)
    }

    pub fn of(&self, ifindex: u32, family: Family) -> Option<&UplinkHealth> {
        self.uplinks
            .iter()
            .find(|u| u.ifindex == ifindex && u.family == family)
    }

    pub fn render(&self) -> String {
        let mut text =
            String::from("# symroute uplink health, written by symrouted after each probe round\n");
        text += &format!("updated {:.3}\n", self.updated);
        for u in &self.uplinks {
            let rtt = u.rtt_ms.map_or("-".to_string(), |r| format!("{r:.3}"));
            text += &format!(
                "uplink {} {} {} {} loss={:.3} rtt_ms={rtt} since={:.3} transitions={} rounds={}\n",
                u.interface,
                u.ifindex,
                family_name(u.family),
                u.verdict.name(),
                u.loss,
                u.since,
                u.transitions,
                u.rounds
            );
        }
        text
    }

    /// Parses [`HealthState::render`]'s text; lines it does not understand are skipped.
    pub fn parse(text: &str) -> HealthState {
        let mut state = HealthState::default();
        for line in text.lines() {
            let words: Vec<&str> = line.split_whitespace().collect();
            match words.as_slice() {
                ["updated", t] => {
                    state.updated = t
                        .parse()
                        .ok()
                        .filter(|t: &f64| t.is_finite())
                        .unwrap_or(0.0)
                }
                ["uplink", name, index, family, verdict, rest @ ..] => {
                    let Ok(ifindex) = index.parse() else { continue };
                    let family = match *family {
                        "ipv4" => Family::V4,
                        "ipv6" => Family::V6,
                        _ => continue,
                    };
                    let verdict = match *verdict {
                        "up" => Verdict::Up,
                        "down" => Verdict::Down,
                        _ => continue,
                    };
                    let field = |key: &str| {
                        rest.iter()
                            .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
                    };
                    // Only finite numbers: a hand-edited "NaN" must not reach the views.
                    let number = |key: &str| {
                        field(key)
                            .and_then(|v| v.parse::<f64>().ok())
                            .filter(|v| v.is_finite())
                    };
                    state.uplinks.push(UplinkHealth {
                        interface: name.to_string(),
                        ifindex,
                        family,
                        verdict,
                        loss: number("loss").unwrap_or(0.0),
                        rtt_ms: number("rtt_ms"),
                        since: number("since").unwrap_or(0.0),
                        transitions: field("transitions")
                            .and_then(|v| v.parse().ok())
                            .unwrap_or(0),
                        // Written before rounds were counted: by a daemon that probed.
                        rounds: field("rounds").and_then(|v| v.parse().ok()).unwrap_or(1),
                    });
                }
                _ => {}
            }
        }
        state
    }

    /// The state at `path` if it was written within `fresh`; `None` when it is missing,
    /// unreadable or stale.
    pub fn read(path: &Path, fresh: Duration) -> Option<HealthState> {
        let text = std::fs::read_to_string(path).ok()?;
        let state = HealthState::parse(&text);
        let age = unix_now() - state.updated;
        (age <= fresh.as_secs_f64()).then_some(state)
    }

    /// Replaces the file at `path` atomically (readers never see half of it), mode 0644.
    pub fn write(&self, path: &Path) -> io::Result<()> {
        let tmp = path.with_extension("tmp");
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        file.write_all(self.render().as_bytes())?;
        file.set_permissions(std::fs::Permissions::from_mode(0o644))?;
        drop(file);
        std::fs::rename(&tmp, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_and_parses_back() {
        let state = HealthState {
            updated: 1_700_000_000.5,
            uplinks: vec![
                UplinkHealth {
                    interface: "eth0".into(),
                    ifindex: 2,
                    family: Family::V4,
                    verdict: Verdict::Down,
                    loss: 1.0,
                    rtt_ms: None,
                    since: 1_699_999_990.25,
                    transitions: 1,
                    rounds: 7,
                },
                UplinkHealth {
                    interface: "eth1".into(),
                    ifindex: 3,
                    family: Family::V6,
                    verdict: Verdict::Up,
                    loss: 0.5,
                    rtt_ms: Some(1.25),
                    since: 1_699_999_000.0,
                    transitions: 0,
                    rounds: 0,
                },
            ],
        };
        assert_eq!(HealthState::parse(&state.render()), state);
        assert!(state.is_down(2, Family::V4));
        assert!(!state.is_down(2, Family::V6));
        assert!(!state.is_down(3, Family::V6));
    }

    #[test]
    fn garbage_lines_are_skipped() {
        let s = HealthState::parse("uplink eth0 x ipv4 down\nuplink eth0 2 ipv9 down\nhello\n");
        assert!(s.uplinks.is_empty());
        let s = HealthState::parse("updated NaN\nuplink eth0 2 ipv4 up loss=NaN rtt_ms=inf\n");
        assert_eq!(s.updated, 0.0);
        assert_eq!((s.uplinks[0].loss, s.uplinks[0].rtt_ms), (0.0, None));
    }
}
