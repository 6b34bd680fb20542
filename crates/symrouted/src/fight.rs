//! Fight detection: when something keeps removing what symroute restores (systemd-networkd
//! with its default `ManageForeignRoutingPolicyRules=yes`, a script that flushes rules), the
//! two would otherwise trade writes forever. After too many repairs of one interface in a
//! short window the daemon leaves that interface alone for a while and says why.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

/// Limits of what counts as a fight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FightPolicy {
    /// Repairs within this time of the first one are one incident: an admin's `ip rule del`
    /// run four times, or a flush whose deletions arrive in several batches, is no fight.
    pub incident: Duration,
    /// Incidents for one interface allowed within `window`; one more is a fight.
    pub repairs: usize,
    pub window: Duration,
    /// First pause; each fight that follows within `window` of the last pause doubles it.
    pub backoff: Duration,
    pub max_backoff: Duration,
}

impl Default for FightPolicy {
    fn default() -> Self {
        FightPolicy {
            incident: Duration::from_secs(1),
            repairs: 5,
            window: Duration::from_secs(120),
            backoff: Duration::from_secs(60),
            max_backoff: Duration::from_secs(15 * 60),
        }
    }
}

#[derive(Debug, Default)]
struct Interface {
    repairs: VecDeque<Instant>,
    paused_until: Option<Instant>,
    /// The pause the next fight gets.
    next_backoff: Option<Duration>,
}

/// A fight that just started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fight {
    pub repairs: usize,
    pub window: Duration,
    pub pause: Duration,
}

/// Repair history by interface index.
#[derive(Debug, Default)]
pub struct FightGuard {
    policy: FightPolicy,
    interfaces: BTreeMap<u32, Interface>,
}

impl FightGuard {
    pub fn new(policy: FightPolicy) -> FightGuard {
        FightGuard {
            policy,
            interfaces: BTreeMap::new(),
        }
    }

    /// Whether the interface is paused at `now`.
    pub fn paused(&self, ifindex: u32, now: Instant) -> bool {
        self.interfaces
            .get(&ifindex)
            .and_then(|i| i.paused_until)
            .is_some_and(|until| now < until)
    }

    /// Records that a run for `ifindex` had to restore state someone else removed. Returns
    /// the fight when this repair is one too many.
    pub fn repaired(&mut self, ifindex: u32, now: Instant) -> Option<Fight> {
        let policy = self.policy;
        let state = self.interfaces.entry(ifindex).or_default();
        while state
            .repairs
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) > policy.window)
        {
            state.repairs.pop_front();
        }
        // A quiet window after the last pause forgives earlier fights.
        if state
            .paused_until
            .is_some_and(|until| now.saturating_duration_since(until) > policy.window)
        {
            state.next_backoff = None;
            state.paused_until = None;
        }
        if state
            .repairs
            .back()
            .is_some_and(|t| now.saturating_duration_since(*t) < policy.incident)
        {
            return None;
        }
        state.repairs.push_back(now);
        if state.repairs.len() <= policy.repairs {
            return None;
        }
        let pause = state.next_backoff.unwrap_or(policy.backoff);
        state.next_backoff = Some((pause * 2).min(policy.max_backoff));
        state.paused_until = Some(now + pause);
        let repairs = state.repairs.len();
        state.repairs.clear();
        Some(Fight {
            repairs,
            window: policy.window,
            pause,
        })
    }

    /// The next moment a pause ends after `now`, for the event loop's timer.
    pub fn next_wakeup(&self, now: Instant) -> Option<Instant> {
        self.interfaces
            .values()
            .filter_map(|i| i.paused_until)
            .filter(|until| *until > now)
            .min()
    }

    /// Forgets interfaces that are gone.
    pub fn retain(&mut self, mut exists: impl FnMut(u32) -> bool) {
        self.interfaces.retain(|ifindex, _| exists(*ifindex));
    }
}

/// Names the most likely fighter, for the error line. systemd-networkd deletes rules and
/// routes it did not create unless told otherwise (see lab notes), so it is named when it
/// runs.
pub fn likely_culprit() -> String {
    let networkd = process_running("systemd-network");
    let cure = "set ManageForeignRoutingPolicyRules=no and ManageForeignRoutes=no in \
                /etc/systemd/networkd.conf.d/symroute.conf";
    if networkd {
        format!(
            "systemd-networkd is running with ManageForeignRoutingPolicyRules/ManageForeignRoutes \
             (on by default): {cure}"
        )
    } else {
        format!(
            "another program removes them: systemd-networkd's ManageForeignRoutingPolicyRules \
             ({cure}), a script running `ip rule flush`, or a second routing manager"
        )
    }
}

/// Whether a process with this `comm` (at most 15 bytes) runs, by reading `/proc`.
fn process_running(comm: &str) -> bool {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return false;
    };
    dir.filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .any(|e| std::fs::read_to_string(e.path().join("comm")).is_ok_and(|c| c.trim_end() == comm))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> FightPolicy {
        FightPolicy {
            incident: Duration::from_millis(500),
            repairs: 3,
            window: Duration::from_secs(10),
            backoff: Duration::from_secs(5),
            max_backoff: Duration::from_secs(12),
        }
    }

    #[test]
    fn occasional_repairs_are_no_fight() {
        let mut guard = FightGuard::new(policy());
        let t0 = Instant::now();
        for i in 0..10 {
            assert_eq!(guard.repaired(3, t0 + Duration::from_secs(6 * i)), None);
        }
        assert!(!guard.paused(3, t0 + Duration::from_secs(60)));
    }

    #[test]
    fn too_many_repairs_pause_that_interface_only() {
        let mut guard = FightGuard::new(policy());
        let t0 = Instant::now();
        let at = |i: u64| t0 + Duration::from_secs(i);
        // A burst of repairs is one incident.
        for ms in 0..100 {
            assert_eq!(guard.repaired(3, t0 + Duration::from_millis(ms)), None);
        }
        for i in 1..3 {
            assert_eq!(guard.repaired(3, at(i)), None);
        }
        let fight = guard.repaired(3, at(3));
        assert_eq!(
            fight,
            Some(Fight {
                repairs: 4,
                window: Duration::from_secs(10),
                pause: Duration::from_secs(5)
            })
        );
        assert!(guard.paused(3, at(4)));
        assert!(!guard.paused(4, at(4)));
        assert!(!guard.paused(3, at(9)));
        assert_eq!(guard.next_wakeup(t0), Some(at(8)));
    }

    #[test]
    fn pauses_double_up_to_the_limit_and_are_forgiven() {
        let mut guard = FightGuard::new(policy());
        let mut t = Instant::now();
        let mut pauses = Vec::new();
        for _ in 0..4 {
            let mut fight = None;
            for _ in 0..4 {
                t += Duration::from_secs(1);
                fight = fight.or(guard.repaired(3, t));
            }
            let pause = fight.expect("a fight").pause;
            pauses.push(pause.as_secs());
            t += pause;
        }
        assert_eq!(pauses, vec![5, 10, 12, 12]);
        // A quiet window later the next fight starts from the first pause again.
        t += Duration::from_secs(11);
        let mut fight = None;
        for _ in 0..4 {
            t += Duration::from_secs(1);
            fight = fight.or(guard.repaired(3, t));
        }
        assert_eq!(fight.map(|f| f.pause.as_secs()), Some(5));
    }
}
