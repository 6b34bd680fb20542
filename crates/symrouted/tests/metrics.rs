//! symrouted's node_exporter textfile (`metrics_textfile`) on a running lab host: it appears,
//! reads as Prometheus text format, and its repairs and fights counters move when someone
//! keeps deleting a rule that the daemon puts back.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use common::{config_file, fight_rule, has_rule, rule_spec, table_of, Symrouted};
use symroute_testlab::daemons::TempDir;
use symroute_testlab::{root_lab, wait_until, HOST_ETH1_V4};

const SETTLE: Duration = Duration::from_secs(30);

/// The samples of a textfile, by series (`name{labels}`), after a strict check of every
/// line: `# HELP name text`, `# TYPE name counter|gauge` before its samples, then
/// `name[{label="value",...}] number`, names `[a-zA-Z_:][a-zA-Z0-9_:]*`.
fn parse_textfile(text: &str) -> Result<BTreeMap<String, f64>, String> {
    let valid_name = |n: &str| {
        let mut chars = n.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    if !text.ends_with('\n') {
        return Err("no final newline".into());
    }
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut helped = Vec::new();
    let mut samples = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').ok_or(format!("HELP: {line}"))?;
            if !valid_name(name) || help.is_empty() {
                return Err(format!("HELP: {line}"));
            }
            helped.push(name.to_string());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').ok_or(format!("TYPE: {line}"))?;
            if !valid_name(name) || !["counter", "gauge"].contains(&kind) {
                return Err(format!("TYPE: {line}"));
            }
            if types.insert(name.to_string(), kind.to_string()).is_some() {
                return Err(format!("TYPE twice: {line}"));
            }
        } else if line.starts_with('#') || line.is_empty() {
            return Err(format!("stray line: {line:?}"));
        } else {
            let (series, value) = line.rsplit_once(' ').ok_or(format!("sample: {line}"))?;
            let value: f64 = value.parse().map_err(|_| format!("value: {line}"))?;
            let name = match series.split_once('{') {
                Some((name, labels)) => {
                    let labels = labels.strip_suffix('}').ok_or(format!("labels: {line}"))?;
                    for pair in labels.split("\",").filter(|p| !p.is_empty()) {
                        let (key, v) = pair.split_once("=\"").ok_or(format!("label: {line}"))?;
                        if !valid_name(key) || v.trim_end_matches('"').contains('\n') {
                            return Err(format!("label: {line}"));
                        }
                    }
                    name
                }
                None => series,
            };
            let kind = types
                .get(name)
                .ok_or(format!("sample before TYPE: {line}"))?;
            if kind == "counter" && (!name.ends_with("_total") || value < 0.0) {
                return Err(format!("counter: {line}"));
            }
            if !helped.iter().any(|h| h == name) {
                return Err(format!("no HELP: {line}"));
            }
            if samples.insert(series.to_string(), value).is_some() {
                return Err(format!("series twice: {line}"));
            }
        }
    }
    Ok(samples)
}

fn read(path: &Path) -> BTreeMap<String, f64> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    parse_textfile(&text).unwrap_or_else(|e| panic!("{}: {e}\n{text}", path.display()))
}

#[test]
fn textfile_appears_parses_and_counts_repairs_and_fights() {
    let Some(lab) = root_lab() else { return };
    let host = &lab.host;
    let dir = TempDir::new("metrics");
    let exporter = dir.mkdir("node-exporter");
    let prom = exporter.join("symroute.prom");
    let text = format!("metrics_textfile = \"{}\"\n", prom.display());
    let config = config_file(&dir, "symroute.toml", &text);
    let mut daemon = Symrouted::start(
        host,
        &[
            "--source",
            "netlink",
            "--fight-pause",
            "2",
            "--config",
            &config,
        ],
    );
    assert!(
        wait_until(SETTLE, || prom.exists()),
        "no {}",
        prom.display()
    );
    let mode = std::fs::metadata(&prom).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o644);
    let first = read(&prom);
    assert!(first["symroute_syncs_total"] >= 1.0, "{first:?}");
    assert!(first["symroute_changes_applied_total"] >= 4.0, "{first:?}");
    assert_eq!(first["symroute_failures_total"], 0.0, "{first:?}");
    assert_eq!(first["symroute_repairs_total"], 0.0, "{first:?}");
    assert!(first["symroute_last_success_timestamp_seconds"] > 1.0e9);
    assert_eq!(first["symroute_interface_in_sync{interface=\"eth1\"}"], 1.0);
    assert_eq!(first["symroute_interface_in_sync{interface=\"eth0\"}"], 1.0);

    // Deleted once: put back, one repair.
    let t1 = table_of(host, "eth1");
    host.ip(&format!("rule del {}", rule_spec(HOST_ETH1_V4, &t1)));
    assert!(
        wait_until(SETTLE, || has_rule(host, HOST_ETH1_V4, &t1)
            && read(&prom)["symroute_repairs_total"] >= 1.0),
        "no repair counted: {:?}",
        read(&prom)
    );

    // Deleted again and again: a fight.
    let (fought, _) = fight_rule(host, HOST_ETH1_V4, &t1, SETTLE, || {
        read(&prom)["symroute_fights_total"] >= 1.0
    });
    let after = read(&prom);
    assert!(fought, "no fight counted: {after:?}\n{}", daemon.log());
    assert!(after["symroute_repairs_total"] >= 2.0, "{after:?}");
    assert!(after["symroute_syncs_total"] > first["symroute_syncs_total"]);
    // Every line still well formed, no temporary file left next to it.
    let left: Vec<_> = std::fs::read_dir(&exporter)
        .expect("readdir")
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    assert_eq!(left.len(), 1, "{left:?}");
    daemon.assert_running();
    let _ = daemon.terminate();
}

#[test]
fn the_text_format_check_rejects_what_prometheus_rejects() {
    assert!(parse_textfile("# HELP a_total x\n# TYPE a_total counter\na_total 1\n").is_ok());
    for bad in [
        "a_total 1\n",
        "# TYPE a_total counter\na_total 1\n",
        "# HELP a_total x\n# TYPE a_total counter\na_total one\n",
        "# HELP a x\n# TYPE a counter\na 1\n",
        "# HELP a x\n# TYPE a gauge\na{b=\"c\"} 1",
        "# HELP a x\n# TYPE a summary\na 1\n",
    ] {
        assert!(parse_textfile(bad).is_err(), "accepted {bad:?}");
    }
}
