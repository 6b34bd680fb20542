//! The `[health]` section of symroute.toml: what to probe through every uplink, how often,
//! when an uplink counts as down or up again, and how new outbound traffic is steered.
//! Without the section nothing is probed or steered.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use serde::Deserialize;

use crate::glob::glob_match;
use crate::model::Family;

/// Priority of the first steering rule by default: after the `from` rules (32000), so that
/// answers stay symmetric, and before main (32766), clear of wg-quick's 32764/32765 pair
/// (same priorities would order the rules by who came first).
pub const DEFAULT_STEER_PRIORITY: u32 = 32700;
/// The weight of an uplink no `weights` entry names.
pub const DEFAULT_WEIGHT: u32 = 1;
/// The kernel's largest nexthop weight (`rtnh_hops` is one byte: weight - 1).
pub const MAX_WEIGHT: u32 = 256;

/// How healthy uplinks carry new outbound traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SteerMode {
    /// Main decides while its preferred uplink is up; otherwise the best healthy uplink.
    Failover,
    /// New flows spread over every healthy uplink by weight.
    Balance,
}

impl SteerMode {
    pub fn name(self) -> &'static str {
        match self {
            SteerMode::Failover => "failover",
            SteerMode::Balance => "balance",
        }
    }
}

/// `[health]`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthSettings {
    /// Probed through every uplink of the same family.
    pub targets: Vec<IpAddr>,
    /// Between the starts of two probe rounds.
    pub interval: Duration,
    /// How long a round waits for answers (at most `interval`).
    pub timeout: Duration,
    /// Consecutive failed rounds after which an uplink is down.
    pub down: u32,
    /// Consecutive good rounds after which a down uplink is up again.
    pub up: u32,
    /// How many targets of a family must answer for a round to be good (at most the number
    /// of targets of that family).
    pub min_targets: u32,
    pub mode: SteerMode,
    /// The steering rules take this priority and the next one.
    pub priority: u32,
    /// `[health.weights]`: interface name or pattern → weight in balance mode.
    pub weights: BTreeMap<String, u32>,
}

impl HealthSettings {
    /// The targets of one family.
    pub fn targets_of(&self, family: Family) -> impl Iterator<Item = IpAddr> + '_ {
        self.targets
            .iter()
            .copied()
            .filter(move |t| Family::of(t) == family)
    }

    /// Targets of `family` that must answer for a round to be good.
    pub fn needed(&self, family: Family) -> u32 {
        let count = u32::try_from(self.targets_of(family).count()).unwrap_or(u32::MAX);
        self.min_targets.min(count)
    }

    /// The section in one line, for `symroute plan`:
    /// `failover, targets 192.0.2.1 2001:db8::1, interval 1 s, timeout 1 s, down 3, up 3,
    /// min_targets 1, priority 32700`, then the weights of balance.
    pub fn line(&self) -> String {
        let targets: Vec<String> = self.targets.iter().map(ToString::to_string).collect();
        let mut line = format!(
            "{}, targets {}, interval {} s, timeout {} s, down {}, up {}, min_targets {}, priority {}",
            self.mode.name(),
            targets.join(" "),
            self.interval.as_secs_f64(),
            self.timeout.as_secs_f64(),
            self.down,
            self.up,
            self.min_targets,
            self.priority
        );
        if self.mode == SteerMode::Balance {
            let weights: Vec<String> = self
                .weights
                .iter()
                .map(|(p, w)| format!("{p}={w}"))
                .collect();
            if weights.is_empty() {
                line += ", every weight 1";
            } else {
                line += &format!(", weights {} (others 1)", weights.join(" "));
            }
        }
        line
    }

    /// The weight of interface `name`: its own entry, else the most specific pattern that
    /// matches it (most characters other than `*` and `?`; equal ones: the first in
    /// alphabetical order), else [`DEFAULT_WEIGHT`].
    pub fn weight_of(&self, name: &str) -> u32 {
        if let Some(w) = self.weights.get(name) {
            return *w;
        }
        self.weights
            .iter()
            .filter(|(pattern, _)| glob_match(pattern, name))
            .max_by_key(|(pattern, _)| {
                (
                    pattern.chars().filter(|c| *c != '*' && *c != '?').count(),
                    std::cmp::Reverse(pattern.as_str()),
                )
            })
            .map_or(DEFAULT_WEIGHT, |(_, w)| *w)
    }
}

/// `[health]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthFile {
    targets: Option<Vec<String>>,
    interval: Option<f64>,
    timeout: Option<f64>,
    down: Option<i64>,
    up: Option<i64>,
    min_targets: Option<i64>,
    mode: Option<String>,
    priority: Option<i64>,
    weights: Option<BTreeMap<String, i64>>,
}

/// A `[health]` value that cannot be used: the key (without `health.`) and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub key: &'static str,
    pub message: String,
}

fn refuse(key: &'static str, message: String) -> Refused {
    Refused { key, message }
}

/// Validates `[health]`; `rule_priority` is where the `from` rules sit (steering comes after).
pub fn validate(file: HealthFile, rule_priority: u32) -> Result<HealthSettings, Refused> {
    let texts = file.targets.unwrap_or_default();
    if texts.is_empty() {
        return Err(refuse(
            "targets",
            "is empty or missing: at least one address to probe is needed".into(),
        ));
    }
    let mut targets = Vec::new();
    for text in &texts {
        let addr: IpAddr = text
            .parse()
            .map_err(|_| refuse("targets", format!("{text:?} is not an IP address")))?;
        if addr.is_unspecified() || addr.is_loopback() || addr.is_multicast() {
            return Err(refuse(
                "targets",
                format!("{text:?} is not an address beyond the uplinks (unspecified, loopback or multicast)"),
            ));
        }
        if !targets.contains(&addr) {
            targets.push(addr);
        }
    }
    let interval = seconds("interval", file.interval.unwrap_or(1.0), 0.1, 3600.0)?;
    let timeout = match file.timeout {
        Some(t) => seconds("timeout", t, 0.01, interval.as_secs_f64())?,
        None => interval.min(Duration::from_secs(1)),
    };
    let count = |key: &'static str, value: Option<i64>, default: i64, max: i64| match value
        .unwrap_or(default)
    {
        v if (1..=max).contains(&v) => Ok(v as u32),
        v => Err(refuse(key, format!("{v} is out of range 1..={max}"))),
    };
    let down = count("down", file.down, 3, 1000)?;
    let up = count("up", file.up, 3, 1000)?;
    let min_targets = count("min_targets", file.min_targets, 1, targets.len() as i64)?;
    let mode = match file.mode.as_deref().unwrap_or("failover") {
        "failover" => SteerMode::Failover,
        "balance" => SteerMode::Balance,
        other => {
            return Err(refuse(
                "mode",
                format!("{other:?} is neither \"failover\" nor \"balance\""),
            ))
        }
    };
    let lowest = i64::from(rule_priority) + 1;
    let priority = match file
        .priority
        .unwrap_or(i64::from(DEFAULT_STEER_PRIORITY).max(lowest))
    {
        p if (lowest..=32764).contains(&p) => p as u32,
        p => {
            return Err(refuse(
                "priority",
                format!(
                    "{p} is out of range {lowest}..=32764 (the steering rules take it and the \
                     next one, after the from rules at rule_priority and before main at 32766)"
                ),
            ))
        }
    };
    let mut weights = BTreeMap::new();
    for (pattern, weight) in file.weights.unwrap_or_default() {
        if pattern.is_empty()
            || pattern.len() > 15
            || pattern.chars().any(|c| c == '/' || c.is_whitespace())
        {
            return Err(refuse(
                "weights",
                format!("{pattern:?} is not an interface name pattern"),
            ));
        }
        if !(1..=i64::from(MAX_WEIGHT)).contains(&weight) {
            return Err(refuse(
                "weights",
                format!("{pattern}: {weight} is out of range 1..={MAX_WEIGHT}"),
            ));
        }
        weights.insert(pattern, weight as u32);
    }
    Ok(HealthSettings {
        targets,
        interval,
        timeout,
        down,
        up,
        min_targets,
        mode,
        priority,
        weights,
    })
}

fn seconds(key: &'static str, value: f64, min: f64, max: f64) -> Result<Duration, Refused> {
    if value.is_finite() && value >= min && value <= max {
        Ok(Duration::from_secs_f64(value))
    } else {
        Err(refuse(
            key,
            format!("{value} is out of range {min}..={max} (seconds)"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn health(text: &str) -> Result<HealthSettings, Refused> {
        validate(toml::from_str(text).unwrap(), 32000)
    }

    #[test]
    fn defaults_and_every_key() {
        let h = health("targets = [\"192.0.2.1\", \"2001:db8::1\"]").unwrap();
        assert_eq!(h.interval, Duration::from_secs(1));
        assert_eq!(h.timeout, Duration::from_secs(1));
        assert_eq!((h.down, h.up, h.min_targets), (3, 3, 1));
        assert_eq!(h.mode, SteerMode::Failover);
        assert_eq!(h.priority, DEFAULT_STEER_PRIORITY);
        let h = health(
            "targets = [\"192.0.2.1\", \"198.51.100.1\"]\ninterval = 0.5\ntimeout = 0.2\n\
             down = 2\nup = 4\nmin_targets = 2\nmode = \"balance\"\npriority = 32100\n\
             weights = { eth0 = 3, \"wl*\" = 2 }",
        )
        .unwrap();
        assert_eq!(h.interval, Duration::from_millis(500));
        assert_eq!(h.timeout, Duration::from_millis(200));
        assert_eq!((h.down, h.up, h.min_targets), (2, 4, 2));
        assert_eq!(h.mode, SteerMode::Balance);
        assert_eq!(h.priority, 32100);
        assert_eq!(h.weight_of("eth0"), 3);
        assert_eq!(h.weight_of("wlan0"), 2);
        assert_eq!(h.weight_of("eth1"), 1);
        assert_eq!(h.needed(Family::V4), 2);
        assert_eq!(h.needed(Family::V6), 0);
        assert_eq!(
            health("targets = [\"192.0.2.1\"]\ninterval = 2")
                .unwrap()
                .interval,
            Duration::from_secs(2)
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        let refused = |text: &str| health(text).unwrap_err();
        let r = refused("targets = [\"x\"]");
        assert_eq!(
            (r.key, r.message.as_str()),
            ("targets", "\"x\" is not an IP address")
        );
        assert_eq!(refused("targets = []").key, "targets");
        assert_eq!(refused("interval = 1").key, "targets");
        assert_eq!(refused("targets = [\"127.0.0.1\"]").key, "targets");
        let t = "targets = [\"192.0.2.1\"]\n";
        assert_eq!(refused(&format!("{t}interval = 0.05")).key, "interval");
        assert_eq!(refused(&format!("{t}timeout = 2")).key, "timeout");
        assert_eq!(refused(&format!("{t}down = 0")).key, "down");
        assert_eq!(refused(&format!("{t}up = -1")).key, "up");
        assert_eq!(refused(&format!("{t}min_targets = 2")).key, "min_targets");
        assert_eq!(refused(&format!("{t}mode = \"random\"")).key, "mode");
        assert_eq!(refused(&format!("{t}priority = 32000")).key, "priority");
        assert_eq!(refused(&format!("{t}priority = 32765")).key, "priority");
        assert_eq!(
            refused(&format!("{t}weights = {{ eth0 = 0 }}")).key,
            "weights"
        );
        assert_eq!(
            refused(&format!("{t}weights = {{ eth0 = 257 }}")).key,
            "weights"
        );
    }

    #[test]
    fn exact_weight_wins_over_patterns() {
        let h = health("targets = [\"192.0.2.1\"]\nweights = { \"eth*\" = 2, \"eth1*\" = 5, eth10 = 7, \"*\" = 9 }").unwrap();
        assert_eq!(h.weight_of("eth10"), 7);
        assert_eq!(h.weight_of("eth11"), 5);
        assert_eq!(h.weight_of("eth2"), 2);
        assert_eq!(h.weight_of("ppp0"), 9);
    }
}
