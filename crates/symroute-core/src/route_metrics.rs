//! `route_metrics`: `RTAX_*` metrics (mtu, initcwnd, congctl, ...) set on the mirrored routes,
//! globally and per interface: what knneth/symrouted's `--set-route-metric NAME=VALUE` does.
//!
//! Names are `ip route`'s. Values are refused where the kernel would not keep them as given
//! (it clamps an `mtu` above 65520, an `advmss` above 65495, a `hoplimit` above 255, and
//! drops a 0 from its dumps): a mirrored route must read back as written, or every run would
//! write it again.

use std::fmt;

use crate::model::{metric, Extras, Route};

/// What a metric's value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// An integer in `min..=max`.
    Number { min: u32, max: u32 },
    /// `true` sets it (1), `false` leaves it out.
    Flag,
    /// A congestion control algorithm's name (`congctl`).
    Algorithm,
}

/// The metrics `route_metrics` takes: the ones that describe a path and that the kernel
/// uses without a lock bit (`lock = [...]` locks any but the flags). Left out: `rtt`,
/// `rttvar` (learned per connection, seeds only), `rto_min` (used only when locked, and
/// `ip route` writes it in its own units), `features` (only ECN, set by the kernel with
/// `congctl`).
const METRICS: &[(&str, u16, Kind)] = &[
    (
        "mtu",
        metric::MTU,
        Kind::Number {
            min: 68,
            max: 65520,
        },
    ),
    (
        "advmss",
        metric::ADVMSS,
        Kind::Number { min: 1, max: 65495 },
    ),
    (
        "window",
        metric::WINDOW,
        Kind::Number {
            min: 1,
            max: u32::MAX,
        },
    ),
    (
        "ssthresh",
        metric::SSTHRESH,
        Kind::Number {
            min: 1,
            max: u32::MAX,
        },
    ),
    (
        "cwnd",
        metric::CWND,
        Kind::Number {
            min: 1,
            max: u32::MAX,
        },
    ),
    (
        "reordering",
        metric::REORDERING,
        Kind::Number {
            min: 1,
            max: u32::MAX,
        },
    ),
    (
        "hoplimit",
        metric::HOPLIMIT,
        Kind::Number { min: 1, max: 255 },
    ),
    (
        "initcwnd",
        metric::INITCWND,
        Kind::Number { min: 1, max: 1024 },
    ),
    (
        "initrwnd",
        metric::INITRWND,
        Kind::Number { min: 1, max: 1024 },
    ),
    ("quickack", metric::QUICKACK, Kind::Flag),
    ("fastopen_no_cookie", metric::FASTOPEN_NO_COOKIE, Kind::Flag),
    ("congctl", metric::CC_ALGO, Kind::Algorithm),
];

/// `TCP_CA_NAME_MAX` less its NUL.
const ALGORITHM_NAME_MAX: usize = 15;

/// Metrics to set on mirrored routes. Each entry overrides the copied route's own value:
/// `Some(value)` sets it, `None` (a flag set to `false`) leaves it out.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteMetrics {
    /// By `RTAX_*` id, sorted, each id once.
    numbers: Vec<(u16, Option<u32>)>,
    /// `congctl`.
    congctl: Option<String>,
    /// `lock = [...]`: bit N locks the metric with id N (`RTAX_LOCK`), for metrics this
    /// table sets.
    locked: u32,
}

/// Why a `route_metrics` table was refused: the metric's name and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetricError {
    pub name: String,
    pub message: String,
}

impl RouteMetrics {
    pub fn is_empty(&self) -> bool {
        self.numbers.is_empty() && self.congctl.is_none()
    }

    /// Reads `{ mtu = 1400, initcwnd = 10, congctl = "bbr", quickack = true }`, and
    /// `lock = ["mtu"]` for `mtu lock 1400`.
    pub fn parse(table: &toml::Table) -> Result<RouteMetrics, MetricError> {
        let mut metrics = RouteMetrics::default();
        for (name, value) in table {
            let err = |message: String| MetricError {
                name: name.clone(),
                message,
            };
            if name == "lock" {
                continue;
            }
            let Some((_, id, kind)) = METRICS.iter().find(|(n, _, _)| n == name) else {
                let mut known: Vec<&str> = METRICS.iter().map(|(n, _, _)| *n).collect();
                known.push("lock");
                return Err(err(format!(
                    "unknown route metric (known: {})",
                    known.join(", ")
                )));
            };
            match (kind, value) {
                (Kind::Number { min, max }, toml::Value::Integer(v)) => {
                    let v = u32::try_from(*v)
                        .ok()
                        .filter(|v| (*min..=*max).contains(v))
                        .ok_or_else(|| err(format!("{v} is out of range {min}..={max}")))?;
                    metrics.numbers.push((*id, Some(v)));
                }
                (Kind::Flag, toml::Value::Boolean(on)) => {
                    metrics.numbers.push((*id, on.then_some(1)));
                }
                (Kind::Algorithm, toml::Value::String(algorithm)) => {
                    let fine = !algorithm.is_empty()
                        && algorithm.len() <= ALGORITHM_NAME_MAX
                        && algorithm
                            .chars()
                            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
                    if !fine {
                        return Err(err(format!(
                            "{algorithm:?} is not a congestion control algorithm name (up to \
                             {ALGORITHM_NAME_MAX} letters, digits, '_' or '-', such as \"cubic\" \
                             or \"bbr\")"
                        )));
                    }
                    metrics.congctl = Some(algorithm.clone());
                }
                (kind, other) => {
                    let wanted = match kind {
                        Kind::Number { min, max } => format!("an integer {min}..={max}"),
                        Kind::Flag => "true or false".into(),
                        Kind::Algorithm => "an algorithm name in quotes, such as \"bbr\"".into(),
                    };
                    let shown = match other {
                        toml::Value::String(text) => format!("{text:?}"),
                        toml::Value::Integer(v) => v.to_string(),
                        toml::Value::Float(v) => v.to_string(),
                        toml::Value::Boolean(v) => v.to_string(),
                        other => format!("a {}", other.type_str()),
                    };
                    return Err(err(format!("{shown} is not {wanted}")));
                }
            }
        }
        metrics.numbers.sort_unstable();
        if let Some(lock) = table.get("lock") {
            metrics.locked = metrics.lock_bits(lock)?;
        }
        Ok(metrics)
    }

    /// The `RTAX_LOCK` bits of `lock = ["mtu", ...]`: metrics this table sets, that the
    /// kernel can lock (numbers and `congctl`, as `ip route`'s `lock` goes).
    fn lock_bits(&self, lock: &toml::Value) -> Result<u32, MetricError> {
        let err = |message: String| MetricError {
            name: "lock".into(),
            message,
        };
        let toml::Value::Array(names) = lock else {
            return Err(err(
                "must be a list of metric names, such as [\"mtu\"]".into()
            ));
        };
        let mut bits = 0;
        for name in names {
            let toml::Value::String(name) = name else {
                return Err(err(format!(
                    "a {} is not a metric name in quotes",
                    name.type_str()
                )));
            };
            let Some((_, id, kind)) = METRICS.iter().find(|(n, _, _)| n == name) else {
                return Err(err(format!("{name:?} is not a route metric")));
            };
            if *kind == Kind::Flag {
                return Err(err(format!("{name} cannot be locked")));
            }
            let set = match kind {
                Kind::Algorithm => self.congctl.is_some(),
                _ => self.numbers.iter().any(|(n, _)| n == id),
            };
            if !set {
                return Err(err(format!(
                    "{name} is locked but not set here (set it beside the lock)"
                )));
            }
            bits |= 1 << id;
        }
        Ok(bits)
    }

    /// These metrics with `over`'s on top (a per-interface table over the global one).
    pub fn overlaid(&self, over: &RouteMetrics) -> RouteMetrics {
        let mut numbers = over.numbers.clone();
        let mut locked = over.locked;
        for (id, value) in &self.numbers {
            if !over.numbers.iter().any(|(o, _)| o == id) {
                numbers.push((*id, *value));
                locked |= self.locked & (1 << id);
            }
        }
        numbers.sort_unstable();
        let congctl = match (&over.congctl, &self.congctl) {
            (Some(name), _) => Some(name.clone()),
            (None, Some(name)) => {
                locked |= self.locked & (1 << metric::CC_ALGO);
                Some(name.clone())
            }
            (None, None) => None,
        };
        RouteMetrics {
            numbers,
            congctl,
            locked,
        }
    }

    fn is_locked(&self, id: u16) -> bool {
        self.locked & (1 << id) != 0
    }

    /// Sets these metrics on `route` (a copy of main's), over the values it had.
    pub fn apply(&self, route: &mut Route) {
        if self.is_empty() {
            return;
        }
        // A metric set here is locked or not as set here; main's others keep their bits.
        let mut lock = route
            .metrics()
            .iter()
            .find(|(id, _)| *id == metric::LOCK)
            .map_or(0, |(_, bits)| *bits);
        let ours = self
            .numbers
            .iter()
            .map(|(id, _)| *id)
            .chain(self.congctl.as_ref().map(|_| metric::CC_ALGO));
        for id in ours {
            lock = (lock & !(1 << id)) | (self.locked & (1 << id));
        }
        let mut numbers: Vec<(u16, u32)> = route
            .metrics()
            .iter()
            .copied()
            .filter(|(id, _)| *id != metric::LOCK)
            .filter(|(id, _)| !self.numbers.iter().any(|(ours, _)| ours == id))
            .collect();
        numbers.extend(
            self.numbers
                .iter()
                .filter_map(|(id, value)| value.map(|v| (*id, v))),
        );
        if lock != 0 {
            numbers.push((metric::LOCK, lock));
        }
        let congctl = self.congctl.as_deref().or(route.congctl()).map(Box::from);
        route.extras = Extras::with_congctl(route.pref_src(), numbers, congctl);
    }
}

impl fmt::Display for RouteMetrics {
    /// `mtu 1400 initcwnd 10 congctl bbr`, as `ip route` writes them; a flag set to false
    /// is `quickack 0`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut sep = |f: &mut fmt::Formatter<'_>| {
            let s = if first { "" } else { " " };
            first = false;
            write!(f, "{s}")
        };
        let lock = |id: u16| if self.is_locked(id) { "lock " } else { "" };
        for (id, value) in &self.numbers {
            sep(f)?;
            let name = metric::name(*id).unwrap_or("?");
            write!(f, "{name} {}{}", lock(*id), value.unwrap_or(0))?;
        }
        if let Some(congctl) = &self.congctl {
            sep(f)?;
            write!(f, "congctl {}{congctl}", lock(metric::CC_ALGO))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    fn parse(text: &str) -> Result<RouteMetrics, MetricError> {
        let table: toml::Table = text.parse().unwrap();
        RouteMetrics::parse(&table)
    }

    fn error(text: &str) -> String {
        let e = parse(text).unwrap_err();
        format!("{}: {}", e.name, e.message)
    }

    #[test]
    fn every_offered_metric_is_read() {
        let m = parse(
            "mtu = 1400\nadvmss = 1360\nwindow = 65535\nssthresh = 20\ncwnd = 10\n\
             reordering = 3\nhoplimit = 64\ninitcwnd = 10\ninitrwnd = 20\nquickack = true\n\
             fastopen_no_cookie = false\ncongctl = \"bbr\"\n",
        )
        .unwrap();
        assert_eq!(
            m.to_string(),
            "mtu 1400 window 65535 ssthresh 20 cwnd 10 advmss 1360 reordering 3 hoplimit 64 \
             initcwnd 10 initrwnd 20 quickack 1 fastopen_no_cookie 0 congctl bbr"
        );
        assert!(parse("").unwrap().is_empty());
    }

    #[test]
    fn unknown_names_and_bad_values_name_the_metric() {
        assert!(error("mtuu = 1400").starts_with("mtuu: unknown route metric (known: mtu, "));
        assert_eq!(
            error("mtu = 70000"),
            "mtu: 70000 is out of range 68..=65520"
        );
        assert_eq!(error("mtu = -1"), "mtu: -1 is out of range 68..=65520");
        assert_eq!(
            error("initcwnd = 0"),
            "initcwnd: 0 is out of range 1..=1024"
        );
        assert_eq!(
            error("hoplimit = 256"),
            "hoplimit: 256 is out of range 1..=255"
        );
        assert_eq!(
            error("mtu = \"1400\""),
            "mtu: \"1400\" is not an integer 68..=65520"
        );
        assert_eq!(error("quickack = 1"), "quickack: 1 is not true or false");
        assert!(error("congctl = \"b b r\"").starts_with("congctl: \"b b r\" is not a congestion"));
        assert!(error("congctl = 1").starts_with("congctl: 1 is not an algorithm name"));
    }

    #[test]
    fn locks_go_with_the_values_they_lock() {
        let global =
            parse("mtu = 1400\ncongctl = \"reno\"\nlock = [\"mtu\", \"congctl\"]").unwrap();
        assert_eq!(global.to_string(), "mtu lock 1400 congctl lock reno");
        let eth1 = parse("mtu = 1300\ninitcwnd = 10\nlock = [\"initcwnd\"]").unwrap();
        let both = global.overlaid(&eth1);
        assert_eq!(
            both.to_string(),
            "mtu 1300 initcwnd lock 10 congctl lock reno"
        );
        // Main's route had advmss locked: that stays; its mtu lock goes with its mtu.
        let mut route =
            fixtures::route(1003, "10.9.0.0", 16, Some("10.2.0.1"), 3, 0).with_metrics(vec![
                (metric::LOCK, 1 << metric::MTU | 1 << metric::ADVMSS),
                (metric::MTU, 1500),
                (metric::ADVMSS, 1460),
            ]);
        both.apply(&mut route);
        assert_eq!(
            route.metrics(),
            [
                (
                    metric::LOCK,
                    1 << metric::ADVMSS | 1 << metric::INITCWND | 1 << metric::CC_ALGO
                ),
                (metric::MTU, 1300),
                (metric::ADVMSS, 1460),
                (metric::INITCWND, 10),
            ]
        );
        route = route.with_congctl(Some("reno"));
        assert!(
            route
                .to_string()
                .ends_with(" mtu 1300 advmss lock 1460 initcwnd lock 10 congctl lock reno"),
            "{route}"
        );
        assert_eq!(
            error("lock = [\"mtu\"]"),
            "lock: mtu is locked but not set here (set it beside the lock)"
        );
        assert_eq!(
            error("quickack = true\nlock = [\"quickack\"]"),
            "lock: quickack cannot be locked"
        );
        assert_eq!(
            error("lock = \"mtu\""),
            "lock: must be a list of metric names, such as [\"mtu\"]"
        );
        assert_eq!(
            error("lock = [\"mss\"]"),
            "lock: \"mss\" is not a route metric"
        );
    }

    #[test]
    fn the_interface_wins_over_the_global_which_wins_over_the_route() {
        let global = parse("mtu = 1400\ninitcwnd = 10\ncongctl = \"cubic\"").unwrap();
        let eth1 = parse("mtu = 1300\nquickack = true").unwrap();
        let both = global.overlaid(&eth1);
        assert_eq!(
            both.to_string(),
            "mtu 1300 initcwnd 10 quickack 1 congctl cubic"
        );
        let mut route = fixtures::route(1003, "10.9.0.0", 16, Some("10.2.0.1"), 3, 0)
            .with_metrics(vec![(metric::MTU, 1500), (metric::ADVMSS, 1460)])
            .with_congctl(Some("reno"));
        both.apply(&mut route);
        assert_eq!(
            route.metrics(),
            [
                (metric::MTU, 1300),
                (metric::ADVMSS, 1460),
                (metric::INITCWND, 10),
                (metric::QUICKACK, 1)
            ]
        );
        assert_eq!(route.congctl(), Some("cubic"));
        // A flag set to false takes the route's own value away.
        parse("quickack = false").unwrap().apply(&mut route);
        assert!(!route
            .metrics()
            .iter()
            .any(|(id, _)| *id == metric::QUICKACK));
        assert_eq!(route.congctl(), Some("cubic"));
    }
}
