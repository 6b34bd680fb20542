//! Retries of failed runs. A run can fail for reasons that go away without any event the
//! daemon would hear of (the lock directory not creatable yet, `nft` missing while a package
//! is being installed, a transient kernel refusal), so a failed run is tried again on a timer,
//! with a back-off that doubles up to a ceiling, until it succeeds.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// What failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Key {
    /// The full resync (or an interface that failed in it).
    All,
    /// One interface's run, by index.
    Link(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    pub first: Duration,
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            first: Duration::from_millis(500),
            max: Duration::from_secs(60),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    /// `None` once handed out by [`Retries::take_due`], until the run's outcome is known.
    due: Option<Instant>,
    /// The wait after the next failure.
    next: Duration,
}

#[derive(Debug, Default)]
pub struct Retries {
    policy: RetryPolicy,
    pending: BTreeMap<Key, Pending>,
}

impl Retries {
    pub fn new(policy: RetryPolicy) -> Retries {
        Retries {
            policy,
            pending: BTreeMap::new(),
        }
    }

    /// Records a failure at `now`; returns how long until the next attempt.
    pub fn failed(&mut self, key: Key, now: Instant) -> Duration {
        let policy = self.policy;
        let slot = self.pending.entry(key).or_insert(Pending {
            due: None,
            next: policy.first,
        });
        let wait = slot.next;
        slot.due = Some(now + wait);
        slot.next = (wait * 2).min(policy.max);
        wait
    }

    /// Forgets `key`: its last run succeeded.
    pub fn succeeded(&mut self, key: Key) {
        self.pending.remove(&key);
    }

    /// The earliest pending attempt, for the event loop's timer.
    pub fn next_wakeup(&self) -> Option<Instant> {
        self.pending.values().filter_map(|p| p.due).min()
    }

    /// The keys whose attempt is due at `now`. They keep their back-off until
    /// [`Retries::succeeded`] or [`Retries::failed`] tells how the attempt went.
    pub fn take_due(&mut self, now: Instant) -> Vec<Key> {
        let mut due = Vec::new();
        for (key, pending) in &mut self.pending {
            if pending.due.is_some_and(|at| at <= now) {
                pending.due = None;
                due.push(*key);
            }
        }
        due
    }

    /// Forgets interfaces that are gone.
    pub fn retain_links(&mut self, mut exists: impl FnMut(u32) -> bool) {
        self.pending.retain(|key, _| match key {
            Key::All => true,
            Key::Link(i) => exists(*i),
        });
    }

    pub fn is_pending(&self, key: Key) -> bool {
        self.pending.contains_key(&key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            first: Duration::from_secs(1),
            max: Duration::from_secs(5),
        }
    }

    #[test]
    fn backoff_doubles_up_to_the_ceiling_and_resets_on_success() {
        let mut r = Retries::new(policy());
        let t = Instant::now();
        let waits: Vec<u64> = (0..5)
            .map(|_| r.failed(Key::Link(3), t).as_secs())
            .collect();
        assert_eq!(waits, [1, 2, 4, 5, 5]);
        r.succeeded(Key::Link(3));
        assert_eq!(r.failed(Key::Link(3), t), Duration::from_secs(1));
    }

    #[test]
    fn due_keys_are_handed_out_once() {
        let mut r = Retries::new(policy());
        let t = Instant::now();
        r.failed(Key::All, t);
        r.failed(Key::Link(4), t);
        r.failed(Key::Link(4), t);
        assert_eq!(r.next_wakeup(), Some(t + Duration::from_secs(1)));
        assert!(r.take_due(t).is_empty());
        assert_eq!(r.take_due(t + Duration::from_secs(1)), [Key::All]);
        assert!(r.take_due(t + Duration::from_secs(1)).is_empty());
        assert_eq!(r.take_due(t + Duration::from_secs(2)), [Key::Link(4)]);
        assert_eq!(r.next_wakeup(), None);
        // Still pending until the attempt's outcome is known.
        assert!(r.is_pending(Key::Link(4)));
        r.retain_links(|i| i != 4);
        assert!(!r.is_pending(Key::Link(4)) && r.is_pending(Key::All));
    }
}
