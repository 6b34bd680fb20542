//! Uplink health probing (`[health]`): one task per uplink and family sends a round of ICMP
//! echoes to the targets every `interval` (from the uplink's address, through its device:
//! [`ping`]); the event loop counts each round against the uplink's verdict ([`verdict`]),
//! writes the verdicts to the state file every run reads to plan the steering, and marks
//! the uplink dirty on a transition, so its run steers. Probing never blocks the event loop:
//! each task waits on its own socket.
//! See docs/design.md, "Health and outbound steering".

mod ping;
mod verdict;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use symroute_core::health::{
    state_path, unix_now, HealthSettings, HealthState, UplinkHealth, Verdict,
};
use symroute_core::model::Family;
use symroute_core::Candidate;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use ping::Pinger;
pub use verdict::{Round, Track};

type Key = (u32, Family);

/// What a probe task reports after each round.
#[derive(Debug)]
pub enum Probed {
    Round(Key, Round),
    /// The socket could not be opened or used; the message says why.
    Broken(Key, String),
}

struct Prober {
    source: IpAddr,
    name: String,
    task: JoinHandle<()>,
}

impl Drop for Prober {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub struct Health {
    settings: HealthSettings,
    state_path: PathBuf,
    tracks: BTreeMap<Key, Track>,
    probers: BTreeMap<Key, Prober>,
    tx: mpsc::UnboundedSender<Probed>,
    rx: mpsc::UnboundedReceiver<Probed>,
    /// Complaints already logged (socket errors, state file errors), so each is logged once.
    complained: BTreeSet<String>,
}

impl Health {
    /// Starts from the verdicts of the state file beside the run lock when it is fresh (the
    /// daemon was restarted, or killed, during an outage: steering stays as it was).
    pub fn new(settings: HealthSettings, lock_path: &Path) -> Health {
        let state_path = state_path(lock_path);
        let mut tracks = BTreeMap::new();
        if let Some(state) =
            HealthState::read(&state_path, HealthState::stale_after(settings.interval))
        {
            for u in state.uplinks {
                tracks.insert((u.ifindex, u.family), Track::new(u));
            }
        }
        let (tx, rx) = mpsc::unbounded_channel();
        Health {
            settings,
            state_path,
            tracks,
            probers: BTreeMap::new(),
            tx,
            rx,
            complained: BTreeSet::new(),
        }
    }

    pub fn settings(&self) -> &HealthSettings {
        &self.settings
    }

    /// Probes exactly the uplinks steering can use (what the last run planned from all of
    /// main): new ones get a task, gone ones lose theirs and their verdict.
    pub fn follow(&mut self, candidates: &[Candidate]) {
        let wanted: BTreeMap<Key, &Candidate> = candidates
            .iter()
            .filter(|c| self.settings.targets_of(c.family).next().is_some())
            .map(|c| ((c.ifindex, c.family), c))
            .collect();
        let before = self.tracks.len();
        self.probers.retain(|key, p| {
            wanted
                .get(key)
                .is_some_and(|c| c.source == p.source && c.name == p.name)
        });
        self.tracks.retain(|key, _| wanted.contains_key(key));
        let mut changed = before != self.tracks.len();
        for (key, c) in wanted {
            if self.probers.contains_key(&key) {
                continue;
            }
            let track = self.tracks.entry(key).or_insert_with(|| {
                changed = true;
                Track::new(UplinkHealth {
                    interface: c.name.clone(),
                    ifindex: c.ifindex,
                    family: c.family,
                    verdict: Verdict::Up,
                    loss: 0.0,
                    rtt_ms: None,
                    since: unix_now(),
                    transitions: 0,
                    rounds: 0,
                })
            });
            track.health.interface = c.name.clone();
            let targets: Vec<IpAddr> = self.settings.targets_of(c.family).collect();
            let task = tokio::spawn(probe(
                key,
                c.source,
                c.name.clone(),
                targets,
                self.settings.interval,
                self.settings.timeout,
                self.tx.clone(),
            ));
            log::debug!("{}: probing from {}", c.name, c.source);
            self.probers.insert(
                key,
                Prober {
                    source: c.source,
                    name: c.name.clone(),
                    task,
                },
            );
        }
        if changed {
            self.write();
        }
    }

    /// The next report of a probe task.
    pub async fn next(&mut self) -> Probed {
        match self.rx.recv().await {
            Some(probed) => probed,
            // Never: this holds a sender itself.
            None => std::future::pending().await,
        }
    }

    /// Counts a report; returns the interface whose verdict changed.
    pub fn count(&mut self, probed: Probed) -> Option<u32> {
        let (key, round) = match probed {
            Probed::Round(key, round) => (key, round),
            Probed::Broken(key, why) => {
                let name = self.probers.get(&key).map_or("?", |p| p.name.as_str());
                let line = format!("{name}: cannot probe: {why}");
                if self.complained.insert(line.clone()) {
                    log::error!("{line}");
                }
                return None;
            }
        };
        let track = self.tracks.get_mut(&key)?;
        let needed = self.settings.needed(key.1);
        let changed = track.count(&round, needed, self.settings.down, self.settings.up);
        if let Some(verdict) = changed {
            let h = &track.health;
            log::warn!(
                "{}: {} {} ({} of {} targets answered in the last round)",
                h.interface,
                match key.1 {
                    Family::V4 => "IPv4",
                    Family::V6 => "IPv6",
                },
                match verdict {
                    Verdict::Up => "is up again",
                    Verdict::Down => "is down",
                },
                round.answered,
                round.sent
            );
        }
        self.write();
        changed.map(|_| key.0)
    }

    pub fn uplinks(&self) -> impl Iterator<Item = &UplinkHealth> {
        self.tracks.values().map(|t| &t.health)
    }

    /// Writes the verdicts for every run to read.
    fn write(&mut self) {
        let state = HealthState {
            updated: unix_now(),
            uplinks: self.uplinks().cloned().collect(),
        };
        if let Err(e) = state.write(&self.state_path) {
            let line = format!("cannot write {}: {e}", self.state_path.display());
            if self.complained.insert(line.clone()) {
                log::error!("{line}");
            }
        }
    }

    /// `[health]` removed: no verdicts are left for the runs to steer by.
    pub fn remove_state(lock_path: &Path) {
        let path = state_path(lock_path);
        if let Err(e) = std::fs::remove_file(&path) {
            if e.kind() != std::io::ErrorKind::NotFound {
                log::warn!("cannot remove {}: {e}", path.display());
            }
        }
    }
}

/// Probes `targets` from `source` through `device` every `interval` until aborted.
async fn probe(
    key: Key,
    source: IpAddr,
    device: String,
    targets: Vec<IpAddr>,
    interval: Duration,
    timeout: Duration,
    tx: mpsc::UnboundedSender<Probed>,
) {
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut pinger = None;
    // Sequence numbers start where a restarted daemon's would not (answers to an earlier
    // instance's echoes go to its socket anyway; this only makes captures readable).
    let mut seq = (std::process::id() as u16).wrapping_mul(31);
    loop {
        tick.tick().await;
        if pinger.is_none() {
            match Pinger::open(source, &device) {
                Ok(p) => pinger = Some(p),
                Err(e) => {
                    let why = match e.raw_os_error() {
                        // Debian 12 leaves the kernel's "1 0" (no group); upstream systemd's
                        // 50-default.conf sets "0 2147483647".
                        Some(libc::EACCES) => format!(
                            "{e}: ping sockets are not allowed for root's group \
                             (net.ipv4.ping_group_range must include 0, e.g. \"0 0\" in \
                             /etc/sysctl.d; see symroute.toml(5))"
                        ),
                        Some(libc::EAFNOSUPPORT) => format!(
                            "{e}: the service may not open IP sockets (install the drop-in \
                             /usr/share/symroute/symrouted-health.conf; see symroute.toml(5))"
                        ),
                        _ => e.to_string(),
                    };
                    if tx.send(Probed::Broken(key, why)).is_err() {
                        return;
                    }
                    continue;
                }
            }
        }
        let Some(p) = pinger.as_ref() else { continue };
        let round = probe_round(p, &targets, timeout, &mut seq).await;
        if tx.send(Probed::Round(key, round)).is_err() {
            return;
        }
    }
}

/// One echo to each target, then answers until all came or `timeout` passed.
async fn probe_round(p: &Pinger, targets: &[IpAddr], timeout: Duration, seq: &mut u16) -> Round {
    let started = Instant::now();
    let mut sent: Vec<(IpAddr, u16)> = Vec::new();
    for target in targets {
        *seq = seq.wrapping_add(1);
        match p.send(*target, *seq) {
            Ok(()) => sent.push((*target, *seq)),
            // No route through the device, or the path refused at once: lost.
            Err(e) => log::debug!("echo to {target}: {e}"),
        }
    }
    let mut answered: BTreeSet<usize> = BTreeSet::new();
    let mut rtts = Vec::new();
    let deadline = started + timeout;
    while answered.len() < sent.len() {
        match tokio::time::timeout_at(deadline, p.receive()).await {
            Ok(Ok((from, s))) => {
                if let Some(i) = sent.iter().position(|(a, q)| *a == from && *q == s) {
                    if answered.insert(i) {
                        rtts.push(started.elapsed().as_secs_f64() * 1e3);
                    }
                }
            }
            Ok(Err(e)) => log::debug!("ping socket: {e}"),
            Err(_) => break,
        }
    }
    Round {
        sent: targets.len() as u32,
        answered: answered.len() as u32,
        rtts,
    }
}
