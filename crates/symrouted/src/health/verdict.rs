//! Hysteresis (pure): an uplink goes down after `down` failed rounds in a row and up again
//! after `up` good ones, so a flapping target cannot make the steering flap faster.

use symroute_core::health::{unix_now, UplinkHealth, Verdict};

/// One probe round of one uplink in one family.
#[derive(Debug, Clone, PartialEq)]
pub struct Round {
    pub sent: u32,
    pub answered: u32,
    /// Round-trip times of the answers, in ms.
    pub rtts: Vec<f64>,
}

/// What the daemon knows of one uplink in one family.
#[derive(Debug, Clone, PartialEq)]
pub struct Track {
    pub health: UplinkHealth,
    /// Rounds in a row against the current verdict.
    streak: u32,
}

impl Track {
    pub fn new(health: UplinkHealth) -> Track {
        Track { health, streak: 0 }
    }

    /// Counts `round` (good when at least `needed` targets answered); returns the new verdict
    /// when it changed.
    pub fn count(&mut self, round: &Round, needed: u32, down: u32, up: u32) -> Option<Verdict> {
        let h = &mut self.health;
        h.rounds += 1;
        h.loss = if round.sent == 0 {
            1.0
        } else {
            f64::from(round.sent.saturating_sub(round.answered)) / f64::from(round.sent)
        };
        h.rtt_ms = (!round.rtts.is_empty())
            .then(|| round.rtts.iter().sum::<f64>() / round.rtts.len() as f64);
        let good = round.answered >= needed.max(1);
        let (against, limit, next) = match h.verdict {
            Verdict::Up => (!good, down, Verdict::Down),
            Verdict::Down => (good, up, Verdict::Up),
        };
        if !against {
            self.streak = 0;
            return None;
        }
        self.streak += 1;
        if self.streak < limit {
            return None;
        }
        self.streak = 0;
        h.verdict = next;
        h.since = unix_now();
        h.transitions += 1;
        Some(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use symroute_core::model::Family;

    fn track() -> Track {
        Track::new(UplinkHealth {
            interface: "eth0".into(),
            ifindex: 2,
            family: Family::V4,
            verdict: Verdict::Up,
            loss: 0.0,
            rtt_ms: None,
            since: 0.0,
            transitions: 0,
            rounds: 0,
        })
    }

    fn round(answered: u32) -> Round {
        Round {
            sent: 2,
            answered,
            rtts: vec![1.0; answered as usize],
        }
    }

    #[test]
    fn down_after_down_failed_rounds_up_after_up_good_ones() {
        let mut t = track();
        assert_eq!(t.count(&round(0), 1, 3, 2), None);
        assert_eq!(t.count(&round(0), 1, 3, 2), None);
        assert_eq!(t.health.loss, 1.0);
        assert_eq!(t.count(&round(0), 1, 3, 2), Some(Verdict::Down));
        assert_eq!(t.health.transitions, 1);
        assert_eq!(t.count(&round(1), 1, 3, 2), None);
        assert_eq!(t.health.loss, 0.5);
        assert_eq!(t.count(&round(2), 1, 3, 2), Some(Verdict::Up));
        assert_eq!(t.health.rtt_ms, Some(1.0));
    }

    #[test]
    fn a_flapping_target_does_not_flap_the_verdict() {
        let mut t = track();
        for i in 0..20 {
            assert_eq!(t.count(&round(i % 2), 1, 2, 2), None, "round {i}");
        }
        // min_targets 2: one answer of two is a failed round.
        assert_eq!(t.count(&round(1), 2, 2, 2), None);
        assert_eq!(t.count(&round(1), 2, 2, 2), Some(Verdict::Down));
    }
}
