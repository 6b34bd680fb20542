//! The run lock, taken without ever blocking the event loop: while a hook (or anything else)
//! holds it, the daemon keeps reading events, answering signals and pinging the watchdog,
//! and tries again on a timer.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use symroute_core::lock::{self, RunLock, LOCK_WAIT};

const FIRST_PAUSE: Duration = Duration::from_millis(20);
const LONGEST_PAUSE: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct LockWaiter {
    path: PathBuf,
    pause: Duration,
    /// Since when the lock has been wanted and not had.
    since: Option<Instant>,
    retry_at: Option<Instant>,
    complained: bool,
}

impl LockWaiter {
    pub fn new(path: PathBuf) -> LockWaiter {
        LockWaiter {
            path,
            pause: FIRST_PAUSE,
            since: None,
            retry_at: None,
            complained: false,
        }
    }

    /// The lock if it is free now; otherwise `None` and a retry is scheduled
    /// ([`LockWaiter::retry_at`]).
    pub fn try_take(&mut self, now: Instant) -> Option<RunLock> {
        match RunLock::try_acquire(&self.path) {
            Ok(Some(lock)) => {
                if let (true, Some(since)) = (self.complained, self.since) {
                    log::info!(
                        "{}: got the lock after {:.1} s",
                        self.path.display(),
                        now.duration_since(since).as_secs_f64()
                    );
                }
                self.pause = FIRST_PAUSE;
                self.since = None;
                self.retry_at = None;
                self.complained = false;
                Some(lock)
            }
            Ok(None) => {
                let since = *self.since.get_or_insert(now);
                if !self.complained && now.duration_since(since) >= LOCK_WAIT {
                    log::warn!(
                        "{}: held{} for more than {} s; still waiting (events are still read)",
                        self.path.display(),
                        lock::holder(&self.path),
                        LOCK_WAIT.as_secs()
                    );
                    self.complained = true;
                }
                self.schedule(now);
                None
            }
            Err(e) => {
                self.since.get_or_insert(now);
                if self.complained {
                    log::debug!("{e}; retrying");
                } else {
                    log::error!("{e}; retrying every {} s", LONGEST_PAUSE.as_secs());
                    self.complained = true;
                }
                self.pause = LONGEST_PAUSE;
                self.schedule(now);
                None
            }
        }
    }

    fn schedule(&mut self, now: Instant) {
        self.retry_at = Some(now + self.pause);
        self.pause = (self.pause * 2).min(LONGEST_PAUSE);
    }

    /// When to try again, while the lock is wanted and not had.
    pub fn retry_at(&self) -> Option<Instant> {
        self.retry_at
    }

    /// How long the lock has been wanted and not had.
    pub fn waiting_for(&self, now: Instant) -> Option<Duration> {
        self.since.map(|since| now.duration_since(since))
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_lock_schedules_growing_retries_and_free_lock_resets() {
        let dir = std::env::temp_dir().join(format!("symrouted-lockwait-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let path = dir.join("lock");
        let mut waiter = LockWaiter::new(path.clone());
        let now = Instant::now();
        let held = waiter.try_take(now).expect("free lock");
        assert_eq!(waiter.retry_at(), None);
        assert!(waiter.try_take(now).is_none());
        assert_eq!(waiter.retry_at(), Some(now + FIRST_PAUSE));
        assert!(waiter.try_take(now).is_none());
        assert_eq!(waiter.retry_at(), Some(now + FIRST_PAUSE * 2));
        for _ in 0..20 {
            assert!(waiter.try_take(now).is_none());
        }
        assert_eq!(waiter.retry_at(), Some(now + LONGEST_PAUSE));
        assert_eq!(waiter.waiting_for(now), Some(Duration::ZERO));
        drop(held);
        assert!(waiter.try_take(now).is_some());
        assert_eq!(waiter.retry_at(), None);
        assert_eq!(waiter.waiting_for(now), None);
        let _ = std::fs::remove_dir_all(dir);
    }
}
