//! The daemon's health for a fleet: counters and gauges written as a node_exporter textfile
//! (`metrics_textfile` in the configuration; Debian's collector directory is
//! /var/lib/prometheus/node-exporter/). [`Metrics::render`] is pure (Prometheus text
//! exposition format 0.0.4); [`Metrics::write`] replaces the file atomically, so the collector
//! never reads half a file.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write as _};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Metrics {
    /// Reconcile runs (one interface or all), failed or not.
    pub syncs: u64,
    /// Changes the kernel confirmed (rules, routes, the nftables table).
    pub changes: u64,
    /// Runs that put back rules or routes someone else had deleted.
    pub repairs: u64,
    /// Fights detected: repairs of one interface too many times within the window.
    pub fights: u64,
    /// Runs that failed, or refused an interface.
    pub failures: u64,
    /// Batches of main-table route changes written on the event path (no run).
    pub event_writes: u64,
    /// Changes a periodic verification (`verify_interval`) made: what the event path missed.
    pub verify_repairs: u64,
    /// Unix time of the last run that ended without a failure.
    pub last_success: Option<f64>,
    /// Per interface: whether its last run left it in sync.
    pub in_sync: BTreeMap<String, bool>,
    /// `[health]`: per (interface, family) the last verdict and round.
    pub health: BTreeMap<(String, &'static str), UplinkGauges>,
}

/// A health series: its name, type, help text and value of one uplink (none: no sample).
type HealthSeries = (
    &'static str,
    &'static str,
    &'static str,
    fn(&UplinkGauges) -> Option<f64>,
);

/// One uplink's health in one family, as exported.
#[derive(Debug, Clone, PartialEq)]
pub struct UplinkGauges {
    pub up: bool,
    pub loss: f64,
    pub rtt_ms: Option<f64>,
    pub transitions: u64,
}

/// A label value as the text format wants it: `\`, `"` and newlines escaped.
pub fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

impl Metrics {
    /// A run ended: `changes` confirmed, `failures` interfaces refused or failed.
    pub fn ran(&mut self, changes: usize, failures: usize) {
        self.syncs += 1;
        self.changes += changes as u64;
        if failures == 0 {
            self.last_success = Some(now());
        } else {
            self.failures += 1;
        }
    }

    /// A run that could not even start or finish (netlink, lock).
    pub fn run_failed(&mut self) {
        self.syncs += 1;
        self.failures += 1;
    }

    pub fn interface(&mut self, name: &str, in_sync: bool) {
        self.in_sync.insert(name.to_string(), in_sync);
    }

    /// Forgets interfaces that are gone.
    pub fn retain_interfaces(&mut self, keep: impl Fn(&str) -> bool) {
        self.in_sync.retain(|name, _| keep(name));
    }

    /// Takes the verdicts of `[health]` (and forgets uplinks no longer probed).
    pub fn follow_health<'a>(
        &mut self,
        uplinks: impl Iterator<Item = &'a symroute_core::health::UplinkHealth>,
    ) {
        use symroute_core::model::Family;
        self.health = uplinks
            .map(|u| {
                let family = match u.family {
                    Family::V4 => "ipv4",
                    Family::V6 => "ipv6",
                };
                (
                    (u.interface.clone(), family),
                    UplinkGauges {
                        up: u.verdict == symroute_core::health::Verdict::Up,
                        loss: u.loss,
                        rtt_ms: u.rtt_ms,
                        transitions: u.transitions,
                    },
                )
            })
            .collect();
    }

    fn render_health(&self, out: &mut String) {
        if self.health.is_empty() {
            return;
        }
        let series: [HealthSeries; 4] = [
            (
                "uplink_up",
                "gauge",
                "Whether the uplink's probes pass (1) or it is down (0), per family.",
                |g| Some(f64::from(u8::from(g.up))),
            ),
            (
                "uplink_probe_loss_ratio",
                "gauge",
                "Share of the last probe round's targets that did not answer.",
                |g| Some(g.loss),
            ),
            (
                "uplink_probe_rtt_seconds",
                "gauge",
                "Mean round-trip time of the last probe round's answers.",
                |g| g.rtt_ms.map(|ms| ms / 1e3),
            ),
            (
                "uplink_transitions_total",
                "counter",
                "Up/down transitions of the uplink since symrouted started.",
                |g| Some(g.transitions as f64),
            ),
        ];
        for (name, kind, help, value) in series {
            let _ = writeln!(out, "# HELP symroute_{name} {help}");
            let _ = writeln!(out, "# TYPE symroute_{name} {kind}");
            for ((interface, family), g) in &self.health {
                if let Some(v) = value(g) {
                    let _ = writeln!(
                        out,
                        "symroute_{name}{{interface=\"{}\",family=\"{family}\"}} {v}",
                        escape_label(interface)
                    );
                }
            }
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let counters = [
            ("syncs", "Reconcile runs of symrouted.", self.syncs),
            (
                "changes_applied",
                "Rule, route and nftables changes the kernel confirmed.",
                self.changes,
            ),
            (
                "repairs",
                "Runs that put back rules or routes someone else deleted.",
                self.repairs,
            ),
            (
                "fights",
                "Interfaces left alone for a while because something kept deleting their rules.",
                self.fights,
            ),
            (
                "failures",
                "Runs that failed or refused an interface.",
                self.failures,
            ),
            (
                "event_writes",
                "Batches of main-table route changes mirrored without a run.",
                self.event_writes,
            ),
            (
                "verify_repairs",
                "Changes made by a periodic verification: what the event path had missed.",
                self.verify_repairs,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP symroute_{name}_total {help}");
            let _ = writeln!(out, "# TYPE symroute_{name}_total counter");
            let _ = writeln!(out, "symroute_{name}_total {value}");
        }
        let _ = writeln!(
            out,
            "# HELP symroute_last_success_timestamp_seconds Unix time of the last run without a failure."
        );
        let _ = writeln!(out, "# TYPE symroute_last_success_timestamp_seconds gauge");
        if let Some(t) = self.last_success {
            let _ = writeln!(out, "symroute_last_success_timestamp_seconds {t:.3}");
        }
        let _ = writeln!(
            out,
            "# HELP symroute_interface_in_sync Whether the interface's last run left it in sync (1) or not (0)."
        );
        let _ = writeln!(out, "# TYPE symroute_interface_in_sync gauge");
        for (name, ok) in &self.in_sync {
            let _ = writeln!(
                out,
                "symroute_interface_in_sync{{interface=\"{}\"}} {}",
                escape_label(name),
                u8::from(*ok)
            );
        }
        self.render_health(&mut out);
        out
    }

    /// Writes [`Metrics::render`] to `path` through a temporary file in the same folder and a
    /// rename, mode 0644.
    pub fn write(&self, path: &Path) -> io::Result<()> {
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        let dir = dir.unwrap_or(Path::new("."));
        let name = path
            .file_name()
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?;
        // Not *.prom: node_exporter reads only those, never a half-written temporary file.
        let tmp: PathBuf = dir.join(format!(
            ".{}.{}.tmp",
            name.to_string_lossy(),
            std::process::id()
        ));
        let result = (|| {
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o644)
                .open(&tmp)?;
            file.set_permissions(std::fs::Permissions::from_mode(0o644))?;
            file.write_all(self.render().as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&tmp, path)
        })();
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every line is a comment (`# HELP name text`, `# TYPE name counter|gauge`) or a sample
    /// `name{labels} value` whose name was typed before.
    fn check_text_format(text: &str) -> Result<(), String> {
        let mut typed = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let mut w = rest.split(' ');
                let (Some(name), Some(kind), None) = (w.next(), w.next(), w.next()) else {
                    return Err(format!("bad TYPE: {line}"));
                };
                if !["counter", "gauge"].contains(&kind) {
                    return Err(format!("bad type: {line}"));
                }
                typed.push(name.to_string());
            } else if line.starts_with("# HELP ") {
            } else {
                let (series, value) = line.rsplit_once(' ').ok_or(format!("no value: {line}"))?;
                value
                    .parse::<f64>()
                    .map_err(|_| format!("bad value: {line}"))?;
                let name = series.split('{').next().unwrap_or_default();
                if !typed.iter().any(|t| t == name) {
                    return Err(format!("untyped sample: {line}"));
                }
            }
        }
        Ok(())
    }

    #[test]
    fn renders_counters_gauges_and_escaped_labels() {
        let mut m = Metrics::default();
        m.ran(3, 0);
        m.ran(0, 1);
        m.run_failed();
        m.repairs = 2;
        m.fights = 1;
        m.interface("eth1", true);
        m.interface("we\"ird\\\n", false);
        let text = m.render();
        check_text_format(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(text.contains("\nsymroute_syncs_total 3\n"), "{text}");
        assert!(text.contains("\nsymroute_changes_applied_total 3\n"));
        assert!(text.contains("\nsymroute_failures_total 2\n"));
        assert!(text.contains("\nsymroute_repairs_total 2\n"));
        assert!(text.contains("\nsymroute_fights_total 1\n"));
        assert!(text.contains("\nsymroute_verify_repairs_total 0\n"));
        assert!(text.contains("\nsymroute_last_success_timestamp_seconds "));
        assert!(text.contains("symroute_interface_in_sync{interface=\"eth1\"} 1\n"));
        assert!(text.contains("symroute_interface_in_sync{interface=\"we\\\"ird\\\\\\n\"} 0\n"));
        assert!(text.ends_with('\n'));
    }

    #[test]
    fn health_gauges_per_uplink_and_family() {
        let mut m = Metrics::default();
        m.health.insert(
            ("eth0".into(), "ipv4"),
            UplinkGauges {
                up: false,
                loss: 1.0,
                rtt_ms: None,
                transitions: 1,
            },
        );
        m.health.insert(
            ("eth1".into(), "ipv6"),
            UplinkGauges {
                up: true,
                loss: 0.0,
                rtt_ms: Some(2.5),
                transitions: 0,
            },
        );
        let text = m.render();
        check_text_format(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(text.contains("symroute_uplink_up{interface=\"eth0\",family=\"ipv4\"} 0\n"));
        assert!(text.contains("symroute_uplink_up{interface=\"eth1\",family=\"ipv6\"} 1\n"));
        assert!(text.contains(
            "symroute_uplink_probe_rtt_seconds{interface=\"eth1\",family=\"ipv6\"} 0.0025\n"
        ));
        assert!(!text.contains("symroute_uplink_probe_rtt_seconds{interface=\"eth0\""));
        assert!(text
            .contains("symroute_uplink_transitions_total{interface=\"eth0\",family=\"ipv4\"} 1\n"));
    }

    #[test]
    fn no_success_yet_means_no_timestamp_sample() {
        let mut m = Metrics::default();
        m.run_failed();
        let text = m.render();
        check_text_format(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert!(!text.contains("\nsymroute_last_success_timestamp_seconds "));
    }

    #[test]
    fn write_replaces_the_file_atomically_with_mode_0644() {
        let dir = std::env::temp_dir().join(format!("symroute-metrics-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("symroute.prom");
        let mut m = Metrics::default();
        m.write(&path).unwrap();
        m.ran(5, 0);
        m.write(&path).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(text.contains("symroute_changes_applied_total 5"));
        assert_eq!(mode, 0o644);
        assert_eq!(left.len(), 1, "temporary file left behind");
    }
}
