//! The event loop: wait for the kernel or NetworkManager, drain everything pending, run the
//! core once per touched interface.

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::PathBuf;
use std::time::Instant;

use symroute_core::{
    kernel, reconcile, Action, Error, Mode, Netlink, Op, Report, Settings, Target,
};
use tokio::signal::unix::{signal, SignalKind};

use crate::cli::Source;
use crate::dirty::{note, Dirty, Echoes, Reason};
use crate::fight::{likely_culprit, FightGuard, FightPolicy};
use crate::follow::Follower;
use crate::monitor::{Monitor, MonitorError, Received};
use crate::nm::NmError;
use crate::notify::notify;

/// How the daemon runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub source: Source,
    pub receive_buffer: usize,
    pub lock_path: PathBuf,
    pub fight: FightPolicy,
}

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Monitor(#[from] MonitorError),
    #[error(transparent)]
    Run(#[from] Error),
    #[error(transparent)]
    NetworkManager(#[from] NmError),
    #[error("cannot install signal handlers: {0}")]
    Signals(#[source] io::Error),
}

/// Reloads the configuration on SIGHUP; `None` keeps the settings in force.
pub type Reload = Box<dyn Fn() -> Option<Settings>>;

/// Error lines already logged, so that an interface that keeps failing the same way (a
/// table owned by someone else) is reported once, not on every event.
#[derive(Debug, Default)]
struct Complaints {
    logged: BTreeSet<String>,
}

impl Complaints {
    /// Logs the failures of a run over `scope` (an interface name, or `None` for all).
    fn report(&mut self, scope: Option<&str>, failures: &[Error]) {
        let lines: BTreeSet<String> = failures.iter().map(ToString::to_string).collect();
        for line in &lines {
            if self.logged.contains(line) {
                log::debug!("still failing: {line}");
            } else {
                log::error!("{line}");
            }
        }
        match scope {
            None => self.logged = lines,
            Some(name) => {
                let prefix = format!("{name}:");
                self.logged.retain(|l| !l.starts_with(&prefix));
                self.logged.extend(lines);
            }
        }
    }
}

struct Daemon {
    nl: Netlink,
    monitor: Monitor,
    nm: Option<Follower>,
    settings: Settings,
    lock_path: PathBuf,
    /// Interfaces waiting for a run (also those paused by a fight).
    dirty: Dirty,
    echoes: Echoes,
    fights: FightGuard,
    complaints: Complaints,
}

/// Runs until SIGTERM or SIGINT; the installed state stays in place.
pub async fn run(settings: Settings, options: &Options, reload: Reload) -> Result<(), DaemonError> {
    // First, so that a SIGTERM during startup is an orderly exit too.
    let mut terminate = signal(SignalKind::terminate()).map_err(DaemonError::Signals)?;
    let mut interrupt = signal(SignalKind::interrupt()).map_err(DaemonError::Signals)?;
    let mut hangup = signal(SignalKind::hangup()).map_err(DaemonError::Signals)?;
    let nl = Netlink::connect().map_err(Error::from)?;
    // Subscribe first: whatever changes from here on is either in the first snapshot or
    // waiting in the socket.
    let monitor = Monitor::open(options.receive_buffer, settings.protocol)?;
    let nm = Follower::start(options.source).await?;

    let mut daemon = Daemon {
        nl,
        monitor,
        nm,
        settings,
        lock_path: options.lock_path.clone(),
        dirty: Dirty::default(),
        echoes: Echoes::default(),
        fights: FightGuard::new(options.fight),
        complaints: Complaints::default(),
    };
    daemon.dirty.resync = true;
    daemon.process().await;
    let sources = if daemon.nm.as_ref().is_some_and(Follower::following) {
        "rtnetlink and NetworkManager"
    } else {
        "rtnetlink"
    };
    log::info!("in sync; following {sources}");
    if let Err(e) = notify(&format!("READY=1\nSTATUS=following {sources}")) {
        log::warn!("cannot tell the service manager we are ready: {e}");
    }

    loop {
        let wakeup = daemon.fights.next_wakeup(Instant::now());
        let nm_wake = async {
            match daemon.nm.as_mut() {
                Some(nm) => nm.next().await,
                None => std::future::pending().await,
            }
        };
        let pause_over = async {
            match wakeup {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
            _ = hangup.recv() => {
                if let Some(settings) = reload() {
                    log::info!("configuration reloaded");
                    daemon.monitor.refilter(settings.protocol);
                    daemon.settings = settings;
                }
                daemon.dirty.resync = true;
            }
            ready = daemon.monitor.readable() => ready?,
            wake = nm_wake => {
                let Daemon { nm, dirty, .. } = &mut daemon;
                if let Some(nm) = nm.as_mut() {
                    nm.handle(wake, dirty).await;
                }
            }
            _ = pause_over => {}
        }
        daemon.drain().await?;
        daemon.process().await;
    }
    log::info!("stopping; rules and tables stay in place");
    let _ = notify("STOPPING=1");
    Ok(())
}

impl Daemon {
    /// Reads everything pending from both sources without waiting.
    async fn drain(&mut self) -> Result<(), DaemonError> {
        let Daemon {
            monitor,
            dirty,
            echoes,
            settings,
            ..
        } = self;
        monitor.drain(|received| match received {
            Received::Message { flags, message } => note(dirty, echoes, settings, flags, &message),
            Received::Overrun => {
                if !dirty.resync {
                    log::warn!("rtnetlink receive buffer overrun, events were lost: full resync");
                }
                dirty.resync = true;
            }
        })?;
        // Every echo of the last run was queued before the run returned, so it was read now.
        self.echoes.clear();
        if let Some(nm) = self.nm.as_mut() {
            nm.drain(&mut self.dirty).await;
        }
        Ok(())
    }

    /// Runs the core for everything dirty, each interface once.
    async fn process(&mut self) {
        if self.dirty.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut dirty = self.dirty.take();
        log::debug!("dirty: {dirty:?}");
        if dirty.resync {
            log::debug!("full sync");
            match self.run(&Target::All).await {
                Ok(report) => self.complaints.report(None, &report.failures),
                Err(e) => {
                    log::error!("{e}");
                    // Tried again on the next event; a broken netlink socket ends the
                    // daemon through the monitor.
                    self.dirty.resync = true;
                }
            }
            // A full run covers every interface, paused ones included.
            return;
        }
        let links = match kernel::links(&self.nl).await {
            Ok(links) => links,
            Err(e) => {
                log::error!("{e}");
                self.dirty = dirty;
                return;
            }
        };
        if dirty.every_link {
            for link in links.iter().filter(|l| !l.loopback) {
                dirty.mark(link.index, Reason::Changed);
            }
        }
        for name in std::mem::take(&mut dirty.names) {
            match links.iter().find(|l| l.name == name) {
                Some(link) => dirty.mark(link.index, Reason::Changed),
                None => log::debug!("{name}: no such kernel interface"),
            }
        }
        let by_index: BTreeMap<u32, &str> =
            links.iter().map(|l| (l.index, l.name.as_str())).collect();
        self.fights.retain(|i| by_index.contains_key(&i));
        for (ifindex, reason) in dirty.links {
            let Some(name) = by_index.get(&ifindex) else {
                // Gone already: its deletion event triggers the garbage collection.
                continue;
            };
            if self.fights.paused(ifindex, now) {
                self.dirty.mark(ifindex, reason);
                continue;
            }
            let target = Target::Interface {
                name: name.to_string(),
                action: Action::Sync,
            };
            match self.run(&target).await {
                Ok(report) => {
                    self.complaints.report(Some(name), &[]);
                    if reason == Reason::Healing && restored_something(&report) {
                        self.repaired(ifindex, name);
                    }
                }
                // Renamed or removed meanwhile; its own event follows.
                Err(Error::UnknownInterface(_)) => {}
                Err(e) => self.complaints.report(Some(name), &[e]),
            }
        }
    }

    fn repaired(&mut self, ifindex: u32, name: &str) {
        if let Some(fight) = self.fights.repaired(ifindex, Instant::now()) {
            log::error!(
                "{name}: symroute's rules or routes were removed by someone else and restored {} \
                 times within {} s; leaving {name} alone for {} s. Likely cause: {}",
                fight.repairs,
                fight.window.as_secs(),
                fight.pause.as_secs(),
                likely_culprit()
            );
        }
    }

    async fn run(&mut self, target: &Target) -> Result<Report, Error> {
        let started = Instant::now();
        let report = reconcile(
            &self.nl,
            &self.settings,
            target,
            Mode::Apply,
            &self.lock_path,
        )
        .await?;
        self.echoes
            .expect(report.changes.iter().map(|change| &change.op));
        if report.changes.len() >= BIG_RUN || *target == Target::All {
            release_memory();
        }
        let what = match target {
            Target::Interface { name, .. } => name.as_str(),
            Target::All => "all interfaces",
            Target::Flush => "flush",
        };
        log::debug!(
            "{what}: {} change(s) in {:.1} ms",
            report.changes.len(),
            started.elapsed().as_secs_f64() * 1e3
        );
        Ok(report)
    }
}

/// A run with this many changes (a table of thousands of routes built or emptied), or a full
/// run, allocated enough to be worth handing back to the system once it is over.
const BIG_RUN: usize = 1000;

/// Returns freed heap memory to the kernel, so that an idle daemon stays small after a burst.
fn release_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own free lists; no pointer of ours is involved.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Whether a run put back something (as opposed to only removing).
fn restored_something(report: &Report) -> bool {
    report
        .changes
        .iter()
        .any(|c| matches!(c.op, Op::AddRule(_) | Op::ReplaceRoute(_)))
}

/// One-shot modes: `--once` (sync everything) and `--flush` (remove everything ours).
pub async fn run_once(
    settings: &Settings,
    target: &Target,
    lock_path: &std::path::Path,
) -> Result<Report, Error> {
    let nl = Netlink::connect()?;
    reconcile(&nl, settings, target, Mode::Apply, lock_path).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use symroute_core::Error;

    #[test]
    fn complaints_are_logged_once_and_forgotten_on_success() {
        let mut c = Complaints::default();
        let e = || vec![Error::UnknownInterface("eth1".into())];
        c.report(Some("eth1"), &e());
        assert_eq!(c.logged.len(), 1);
        c.report(Some("eth1"), &e());
        assert_eq!(c.logged.len(), 1);
        c.report(Some("eth0"), &[]);
        assert_eq!(c.logged.len(), 1);
        c.report(Some("eth1"), &[]);
        assert!(c.logged.is_empty());
        c.report(None, &e());
        c.report(None, &[]);
        assert!(c.logged.is_empty());
    }
}
