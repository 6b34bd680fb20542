//! The event loop: wait for the kernel or NetworkManager, drain everything pending, write
//! main-table route changes from the kept model ([`incremental`]), run the core once per
//! interface touched otherwise.

mod incremental;

use std::collections::{BTreeMap, BTreeSet};
use std::io;
use std::path::PathBuf;
use std::time::Instant;

use symroute_core::kept::Kept;
use symroute_core::lock::{RunLock, LOCK_WAIT};
use symroute_core::model::Uplinks;
use symroute_core::{
    links, reconcile, reconcile_locked, Action, Error, Mode, Netlink, Op, Report, Settings, Target,
};
use tokio::signal::unix::{signal, SignalKind};

use crate::cli::Source;
use crate::dirty::{note, Deleted, Dirty, Echoes, Reason};
use crate::fight::{likely_culprit, FightGuard, FightPolicy};
use crate::follow::Follower;
use crate::health::Health;
use crate::lockwait::LockWaiter;
use crate::metrics::Metrics;
use crate::nm::NmError;
use crate::notify::{notify, reloading, watchdog_interval};
use crate::retry::{Key, Retries, RetryPolicy};
use symroute_core::monitor::{Monitor, MonitorError, Received};

/// How the daemon runs.
#[derive(Debug, Clone)]
pub struct Options {
    pub source: Source,
    pub receive_buffer: usize,
    pub lock_path: PathBuf,
    pub fight: FightPolicy,
    pub retry: RetryPolicy,
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
    /// Each line with the interface it is about ([`Error::interface`]).
    logged: BTreeSet<(Option<String>, String)>,
}

impl Complaints {
    /// Logs the failures of a run over `scope` (an interface name, or `None` for all).
    fn report(&mut self, scope: Option<&str>, failures: &[Error]) {
        let lines: BTreeSet<(Option<String>, String)> = failures
            .iter()
            .map(|f| (f.interface().map(str::to_string), f.to_string()))
            .collect();
        for entry in &lines {
            if self.logged.contains(entry) {
                log::debug!("still failing: {}", entry.1);
            } else {
                log::error!("{}", entry.1);
            }
        }
        match scope {
            None => self.logged = lines,
            Some(name) => {
                self.logged
                    .retain(|(interface, _)| interface.as_deref() != Some(name));
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
    lock: LockWaiter,
    /// The run lock, while [`Daemon::process`] runs.
    held: Option<RunLock>,
    /// Interfaces waiting for a run (also those paused by a fight).
    dirty: Dirty,
    echoes: Echoes,
    fights: FightGuard,
    complaints: Complaints,
    /// Failed runs waiting for their next attempt.
    retries: Retries,
    metrics: Metrics,
    /// What the metrics file holds, and the last error writing it (logged once).
    published: Option<Metrics>,
    publish_error: Option<String>,
    /// `[health]`: the probes and verdicts.
    health: Option<Health>,
    lock_path: PathBuf,
    /// The host as the last full run read it, kept current from notifications.
    kept: Kept,
    /// The pending full run is a periodic verification (`verify_interval`).
    verifying: bool,
    /// A full run is due at once: main's uplinks changed while the last one ran.
    again: bool,
    /// Events were lost while the model was read after a full run: the loop runs again
    /// without waiting for an event (the burst that overran may be over).
    rerun: bool,
    /// The first full run's model is read after READY=1, not before: the host is in sync
    /// once that run is done, and what waits for the unit need not wait for a second read
    /// of a large main as well. Until then, events go to per-interface runs.
    model_after_ready: bool,
    /// The uplinks of the full run whose model is still to be read.
    model_due: Option<Uplinks>,
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
    let mut monitor = Monitor::open(options.receive_buffer, settings.protocol)?;
    // Our own route echoes are dropped in the kernel; the hook's arrive, for the model.
    monitor.set_writer(settings.protocol, nl.port());
    let nm = Follower::start(options.source).await?;

    let mut daemon = Daemon {
        nl,
        monitor,
        nm,
        settings,
        lock: LockWaiter::new(options.lock_path.clone()),
        held: None,
        dirty: Dirty::default(),
        echoes: Echoes::default(),
        fights: FightGuard::new(options.fight),
        complaints: Complaints::default(),
        retries: Retries::new(options.retry),
        metrics: Metrics::default(),
        published: None,
        publish_error: None,
        health: None,
        lock_path: options.lock_path.clone(),
        kept: Kept::default(),
        verifying: false,
        again: false,
        rerun: false,
        model_after_ready: true,
        model_due: None,
    };
    daemon.follow_health_settings();
    daemon.dirty.resync = true;
    let started = Instant::now();
    daemon.process().await;
    daemon.publish();
    let mut sources = daemon.sources();
    let mut ready = false;
    // Half the interval, as sd_watchdog_enabled(3) advises; pinged from this loop only, so
    // that a loop stuck anywhere stops the pings and systemd restarts the daemon.
    let mut watchdog = watchdog_interval().map(|usec| {
        let mut tick = tokio::time::interval(usec / 2);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick
    });
    let verifier = |every: Option<std::time::Duration>| {
        every.map(|every| {
            let mut tick = tokio::time::interval_at((Instant::now() + every).into(), every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick
        })
    };
    let mut verify_every = daemon.settings.verify_interval;
    let mut verify = verifier(verify_every);

    loop {
        // Ready once the first full sync is done, or when the run lock stays taken: systemd
        // must not time out the start because someone else holds the lock.
        if !ready {
            let waiting = daemon.lock.waiting_for(Instant::now());
            if waiting.is_none() || started.elapsed() >= LOCK_WAIT {
                daemon.announce_ready(sources, waiting.is_some());
                ready = true;
            }
        }
        let now = Instant::now();
        let lock_retry = daemon.lock.retry_at();
        let wakeup = [daemon.fights.next_wakeup(now), daemon.retries.next_wakeup()]
            .into_iter()
            .flatten()
            .min();
        let mut reloaded = false;
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
        let lock_free = async {
            match lock_retry {
                Some(at) => tokio::time::sleep_until(at.into()).await,
                None => std::future::pending().await,
            }
        };
        let probed = async {
            match daemon.health.as_mut() {
                Some(health) => health.next().await,
                None => std::future::pending().await,
            }
        };
        let verify_due = async {
            match verify.as_mut() {
                Some(tick) => {
                    tick.tick().await;
                }
                None => std::future::pending().await,
            }
        };
        let watchdog_due = async {
            match watchdog.as_mut() {
                Some(tick) => {
                    tick.tick().await;
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
            _ = hangup.recv() => {
                if let Err(e) = reloading() {
                    log::warn!("cannot tell the service manager we are reloading: {e}");
                }
                reloaded = true;
                if let Some(settings) = reload() {
                    log::info!("configuration reloaded");
                    daemon.monitor.refilter(settings.protocol);
                    daemon.settings = settings;
                    daemon.follow_health_settings();
                    // The file may have moved: write it again.
                    daemon.published = None;
                }
                daemon.kept.invalidate();
                daemon.dirty.resync = true;
            }
            ready = daemon.monitor.readable() => ready?,
            wake = nm_wake => {
                let Daemon { nm, dirty, .. } = &mut daemon;
                if let Some(nm) = nm.as_mut() {
                    nm.handle(wake, dirty).await;
                }
            }
            _ = watchdog_due => {
                if let Err(e) = notify("WATCHDOG=1") {
                    log::debug!("cannot ping the watchdog: {e}");
                }
            }
            probed = probed => daemon.probed(probed),
            _ = verify_due => {
                log::debug!("periodic verification");
                daemon.verifying = daemon.dirty.is_empty();
                daemon.dirty.resync = true;
            }
            _ = pause_over => daemon.retry_due(),
            _ = std::future::ready(()), if daemon.rerun => daemon.rerun = false,
            _ = lock_free => {}
        }
        daemon.drain().await?;
        daemon.process().await;
        daemon.publish();
        // NetworkManager followed from now on (the bus appeared), or no longer.
        let now_following = daemon.sources();
        if ready && now_following != sources {
            sources = now_following;
            if let Err(e) = notify(&format!("STATUS=following {sources}")) {
                log::debug!("cannot tell the service manager our status: {e}");
            }
        }
        if reloaded && verify_every != daemon.settings.verify_interval {
            verify_every = daemon.settings.verify_interval;
            verify = verifier(verify_every);
        }
        if reloaded {
            if let Err(e) = notify(&format!("READY=1\nSTATUS=following {sources}")) {
                log::warn!("cannot tell the service manager the reload is done: {e}");
            }
        }
    }
    log::info!("stopping; rules and tables stay in place");
    let _ = notify("STOPPING=1");
    Ok(())
}

impl Daemon {
    /// What the daemon follows now, for STATUS= and the log.
    fn sources(&self) -> &'static str {
        if self.nm.as_ref().is_some_and(Follower::following) {
            "rtnetlink and NetworkManager"
        } else {
            "rtnetlink"
        }
    }

    /// Starts, restarts or stops probing as `[health]` says; the full run that follows
    /// tells the probes which uplinks there are.
    fn follow_health_settings(&mut self) {
        let wanted = self.settings.health.clone();
        match (&self.health, wanted) {
            (Some(h), Some(w)) if *h.settings() == w => {}
            (_, Some(w)) => {
                self.health = Some(Health::new(w, &self.lock_path));
                self.dirty.resync = true;
            }
            (Some(_), None) => {
                self.health = None;
                Health::remove_state(&self.lock_path);
                self.metrics.health.clear();
            }
            (None, None) => {}
        }
    }

    /// A probe round ended: its verdict counted, and on a transition the uplink's run
    /// (which plans the steering) is due.
    fn probed(&mut self, probed: crate::health::Probed) {
        let Some(health) = self.health.as_mut() else {
            return;
        };
        if let Some(ifindex) = health.count(probed) {
            self.dirty.mark(ifindex, Reason::Changed);
        }
        self.metrics.follow_health(health.uplinks());
    }

    fn announce_ready(&self, sources: &str, lock_waiting: bool) {
        let status = if lock_waiting {
            log::warn!(
                "following {sources}; the first sync waits for {}",
                self.lock.path().display()
            );
            format!(
                "following {sources}; waiting for {}",
                self.lock.path().display()
            )
        } else {
            log::info!("in sync; following {sources}");
            format!("following {sources}")
        };
        if let Err(e) = notify(&format!("READY=1\nSTATUS={status}")) {
            log::warn!("cannot tell the service manager we are ready: {e}");
        }
    }

    /// Reads everything pending from both sources without waiting.
    async fn drain(&mut self) -> Result<(), DaemonError> {
        let Daemon {
            monitor,
            dirty,
            echoes,
            settings,
            kept,
            ..
        } = self;
        monitor.drain(|received| match received {
            Received::Message {
                flags,
                sender,
                message,
            } => {
                // Main-table route changes go to the model when it is kept; the rest (and
                // everything while it is not) marks interfaces for runs.
                if !kept.note(settings, flags, &message) {
                    note(dirty, echoes, settings, flags, sender, &message);
                }
            }
            Received::Overrun => {
                if !dirty.resync {
                    log::warn!("rtnetlink receive buffer overrun, events were lost: full resync");
                }
                kept.invalidate();
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

    /// Marks dirty whatever failed before and is due for another attempt.
    fn retry_due(&mut self) {
        for key in self.retries.take_due(Instant::now()) {
            log::debug!("retrying {key:?}");
            match key {
                Key::All => self.dirty.resync = true,
                Key::Link(ifindex) => self.dirty.mark(ifindex, Reason::Changed),
            }
        }
    }

    /// Runs the core for everything dirty, each interface once, under the run lock. Never
    /// waits for the lock: when another run has it, everything stays dirty and is tried
    /// again on the lock's timer.
    async fn process(&mut self) {
        if self.dirty.is_empty() && !self.kept.has_work() && self.model_due.is_none() {
            return;
        }
        let Some(lock) = self.lock.try_take(Instant::now()) else {
            return;
        };
        self.held = Some(lock);
        if let Some(uplinks) = self.model_due.take() {
            self.reload_model(&uplinks).await;
            self.again |= self.kept.uplinks_changed();
        }
        self.process_locked().await;
        if !self.kept.is_valid()
            && self.model_due.is_none()
            && !self.dirty.resync
            && self.retries.next_wakeup().is_none()
        {
            // The model was dropped after a failed run that has succeeded since: a full run
            // reads it again, instead of leaving the event path off until the verification.
            self.again = true;
        }
        // Bounded: main that keeps changing its uplinks under each run is followed by the
        // next events, not in a loop here.
        for _ in 0..2 {
            if !std::mem::take(&mut self.again) {
                break;
            }
            self.dirty.resync = true;
            self.process_locked().await;
        }
        self.again = false;
        if self.kept.has_work() && !self.dirty.resync {
            // Prefixes changed while the model was read (or still to plan): now, not with
            // the next event.
            self.process_locked().await;
        }
        self.held = None;
    }

    async fn process_locked(&mut self) {
        let now = Instant::now();
        let mut dirty = self.dirty.take();
        log::debug!("dirty: {dirty:?}");
        if !dirty.resync && self.event_path(now, &mut dirty).await == incremental::Outcome::FullRun
        {
            dirty.resync = true;
        }
        if dirty.resync {
            self.resync(dirty, now).await;
            return;
        }
        let links = match links(&self.nl).await {
            Ok(links) => links,
            Err(e) => {
                log::error!("{e}");
                self.dirty = dirty;
                self.retries.failed(Key::All, now);
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
        self.retries.retain_links(|i| by_index.contains_key(&i));
        // Paused interfaces are left alone also as the companions of another's run.
        let paused: BTreeSet<u32> = by_index
            .keys()
            .copied()
            .filter(|i| self.fights.paused(*i, now))
            .collect();
        let mut deleted = std::mem::take(&mut dirty.deleted);
        // Interfaces whose deletions stay to be counted when a later run restores them.
        let mut pending: BTreeSet<u32> = BTreeSet::new();
        self.metrics
            .retain_interfaces(|name| by_index.values().any(|n| *n == name));
        for (ifindex, reason) in dirty.links {
            let Some(name) = by_index.get(&ifindex) else {
                // Gone already: its deletion event triggers the garbage collection.
                continue;
            };
            if paused.contains(&ifindex) {
                self.dirty.mark(ifindex, reason);
                pending.insert(ifindex);
                continue;
            }
            let target = Target::Interface {
                name: name.to_string(),
                action: Action::Sync,
            };
            match self.run(&target, &paused).await {
                Ok(report) => {
                    if reason == Reason::Healing {
                        let table = self.settings.table_for(ifindex);
                        if let Err(e) = self.kept.reread_table(&self.nl, table) {
                            log::warn!("{e}: the event path reads the host again");
                            self.kept.invalidate();
                        }
                    }
                    self.metrics.interface(name, report.failures.is_empty());
                    self.complaints.report(Some(name), &[]);
                    self.retries.succeeded(Key::Link(ifindex));
                    // Against every interface's deletions: a run also syncs the uplinks
                    // that depend on its interface, and may restore what was theirs.
                    self.count_repairs(&report, &mut deleted);
                    // Not put back by a run that read the kernel: not wanted any more.
                    deleted.remove(&ifindex);
                }
                // Renamed or removed meanwhile; its own event follows.
                Err(Error::UnknownInterface(_)) => {}
                Err(e) => {
                    self.metrics.interface(name, false);
                    self.complaints.report(Some(name), &[e]);
                    let wait = self.retries.failed(Key::Link(ifindex), now);
                    log::debug!("{name}: next attempt in {:.1} s", wait.as_secs_f64());
                    pending.insert(ifindex);
                }
            }
        }
        for (ifindex, d) in deleted {
            if pending.contains(&ifindex) {
                self.dirty.deleted.entry(ifindex).or_default().extend(d);
            }
        }
    }

    /// The full run, with interfaces paused by a fight left alone: they stay dirty, and are
    /// run (and what they had deleted counted) when their pause ends.
    async fn resync(&mut self, mut dirty: Dirty, now: Instant) {
        log::debug!("full sync");
        self.rerun = false;
        let links = match links(&self.nl).await {
            Ok(links) => links,
            Err(e) => {
                log::error!("{e}");
                self.dirty.resync = true;
                self.retries.failed(Key::All, now);
                return;
            }
        };
        let paused: BTreeSet<u32> = links
            .iter()
            .map(|l| l.index)
            .filter(|i| self.fights.paused(*i, now))
            .collect();
        for ifindex in &paused {
            let reason = dirty.links.get(ifindex).copied().unwrap_or(Reason::Changed);
            let deleted = dirty.deleted.remove(ifindex).unwrap_or_default();
            self.keep_for_later(*ifindex, reason, deleted);
        }
        match self.run(&Target::All, &paused).await {
            Ok(report) => {
                self.metrics
                    .retain_interfaces(|name| links.iter().any(|l| l.name == name));
                for link in links
                    .iter()
                    .filter(|l| !l.loopback && !paused.contains(&l.index))
                {
                    let failed = report
                        .failures
                        .iter()
                        .any(|f| f.interface() == Some(link.name.as_str()));
                    self.metrics.interface(&link.name, !failed);
                }
                self.complaints.report(None, &report.failures);
                if report.failures.is_empty() {
                    self.retries.succeeded(Key::All);
                } else {
                    self.retries.failed(Key::All, now);
                }
                // A full run covers every interface but the paused ones.
                self.retries.retain_links(|i| paused.contains(&i));
                self.count_repairs(&report, &mut dirty.deleted);
                if std::mem::take(&mut self.verifying) {
                    self.verified(&report);
                }
                // The report of a first build holds every route written: it goes before the
                // model is read, so the two never peak together.
                let uplinks = report.uplinks.clone();
                drop(report);
                release_memory();
                if std::mem::take(&mut self.model_after_ready) {
                    // Read by the loop's next turn, once READY=1 is sent.
                    self.model_due = Some(uplinks);
                    self.rerun = true;
                } else {
                    self.model_due = None;
                    self.reload_model(&uplinks).await;
                    // Main changed between the run's read and the model's: once more.
                    self.again |= self.kept.uplinks_changed();
                }
            }
            Err(e) => {
                log::error!("{e}");
                self.kept.invalidate();
                self.dirty.resync = true;
                for (ifindex, deleted) in dirty.deleted {
                    self.dirty
                        .deleted
                        .entry(ifindex)
                        .or_default()
                        .extend(deleted);
                }
                let wait = self.retries.failed(Key::All, now);
                log::debug!("full sync: next attempt in {:.1} s", wait.as_secs_f64());
            }
        }
    }

    /// Writes the metrics file (`metrics_textfile`) when the metrics changed.
    fn publish(&mut self) {
        let Some(path) = self.settings.metrics_textfile.clone() else {
            return;
        };
        if self.published.as_ref() == Some(&self.metrics) {
            return;
        }
        match self.metrics.write(&path) {
            Ok(()) => {
                self.published = Some(self.metrics.clone());
                self.publish_error = None;
            }
            Err(e) => {
                let line = format!("cannot write metrics to {}: {e}", path.display());
                if self.publish_error.as_ref() != Some(&line) {
                    log::warn!("{line}");
                    self.publish_error = Some(line);
                }
            }
        }
    }

    fn keep_for_later(&mut self, ifindex: u32, reason: Reason, deleted: Deleted) {
        self.dirty.mark(ifindex, reason);
        if !deleted.rules.is_empty() || !deleted.routes.is_empty() {
            self.dirty
                .deleted
                .entry(ifindex)
                .or_default()
                .extend(deleted);
        }
    }

    /// Counts, per interface, a run that put back objects someone else deleted. A run that
    /// only follows the kernel (removing the rule of an address that is gone after the hook
    /// already did, or rebuilding routes the kernel flushed) repairs nothing.
    /// Interfaces counted are taken out of `deleted`.
    fn count_repairs(&mut self, report: &Report, deleted: &mut BTreeMap<u32, Deleted>) {
        let mut repaired: BTreeMap<u32, &str> = BTreeMap::new();
        for change in report.changes() {
            let table = match &change.op {
                Op::AddRule(r) => r.table,
                Op::ReplaceRoute(r) => r.table,
                _ => continue,
            };
            let Some(ifindex) = self.settings.interface_of_table(table) else {
                continue;
            };
            if deleted
                .get(&ifindex)
                .is_some_and(|d| d.restored_by(change.op))
            {
                repaired.entry(ifindex).or_insert(change.interface);
            }
        }
        for (ifindex, name) in repaired {
            deleted.remove(&ifindex);
            self.repaired(ifindex, name);
        }
    }

    fn repaired(&mut self, ifindex: u32, name: &str) {
        self.metrics.repairs += 1;
        if let Some(fight) = self.fights.repaired(ifindex, Instant::now()) {
            self.metrics.fights += 1;
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

    async fn run(&mut self, target: &Target, skip: &BTreeSet<u32>) -> Result<Report, Error> {
        let started = Instant::now();
        let report = match reconcile_locked(
            &self.nl,
            &self.settings,
            target,
            Mode::Apply,
            self.held.as_ref(),
            skip,
        )
        .await
        {
            Ok(report) => report,
            Err(e) => {
                // Renamed or removed meanwhile: its own event follows, nothing failed.
                if !matches!(e, Error::UnknownInterface(_)) {
                    self.metrics.run_failed();
                }
                if matches!(e, Error::Apply(_)) {
                    // Writes before the failure were made but are not reported: the model
                    // no longer knows our tables. Read again once nothing fails any more.
                    self.kept.invalidate();
                }
                return Err(e);
            }
        };
        self.metrics.ran(
            report.change_count() + usize::from(report.nft.is_some()),
            report.failures.len(),
        );
        self.echoes.expect(report.changes().map(|change| change.op));
        if let (Some(health), Some(steering)) = (self.health.as_mut(), report.steering.as_ref()) {
            health.follow(&steering.candidates);
            self.metrics.follow_health(health.uplinks());
        }
        self.kept
            .wrote(&self.settings, report.changes().map(|change| change.op));
        if report.change_count() >= BIG_RUN || *target == Target::All {
            release_memory();
        }
        let what = match target {
            Target::Interface { name, .. } => name.as_str(),
            Target::All => "all interfaces",
            Target::Flush => "flush",
        };
        log::debug!(
            "{what}: {} change(s) in {:.1} ms",
            report.change_count(),
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
