//! `/etc/symroute/symroute.toml`: every key optional, zero configuration is the default.
//! A broken file is one error naming the file, the line and the key, and nothing changes.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::events::validate_interface_name;
use crate::route_metrics::RouteMetrics;
use crate::settings::{InterfaceSettings, Prefix, Settings};
use crate::trust::{self, ReadError};

pub const DEFAULT_CONFIG_PATH: &str = "/etc/symroute/symroute.toml";

/// Larger files are refused unread: a real configuration is a few hundred bytes.
pub const MAX_CONFIG_BYTES: usize = 64 * 1024;

/// The longest `verify_interval`, in seconds: a week.
const MAX_VERIFY_INTERVAL: u64 = 7 * 24 * 3600;

/// A configuration that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{}: {reason}", path.display())]
    Unreadable { path: PathBuf, reason: String },
    /// Someone other than root could have written it (see `trust.rs`).
    #[error("{}: refused: {reason}", path.display())]
    Untrusted { path: PathBuf, reason: String },
    #[error("{}:{line}: {key}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        key: String,
        message: String,
    },
}

/// The file as written; `None` means "not set, use the default".
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    table_base: Option<u32>,
    rule_priority: Option<Priority>,
    ipv4: Option<bool>,
    ipv6: Option<bool>,
    include: Option<Vec<String>>,
    exclude: Option<Vec<String>>,
    prefix_rules: Option<bool>,
    iif_rules: Option<bool>,
    fwmark_mask: Option<u32>,
    exempt: Option<Vec<String>>,
    strict: Option<bool>,
    table_names: Option<bool>,
    metrics_textfile: Option<String>,
    route_metrics: Option<toml::Table>,
    interface: Option<BTreeMap<String, InterfaceFile>>,
    health: Option<crate::health::HealthFile>,
    verify_interval: Option<u64>,
}

/// `[interface.NAME]` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct InterfaceFile {
    route_metrics: Option<toml::Table>,
}

/// `rule_priority`: a number, or `"auto"` (what leaving it out means).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum Priority {
    Fixed(u32),
    Word(String),
}

/// Loads `path`. A missing file at the default path means defaults; a missing file that
/// was asked for explicitly is an error. A file that anyone but root (or the running user)
/// could have written, or one over [`MAX_CONFIG_BYTES`], is refused.
pub fn load(path: &Path, explicit: bool) -> Result<Settings, ConfigError> {
    let text = match trust::read_trusted(path, MAX_CONFIG_BYTES) {
        Ok(text) => text,
        Err(ReadError::NotFound) if !explicit => return Ok(Settings::default()),
        Err(ReadError::NotFound) => {
            return Err(ConfigError::Unreadable {
                path: path.to_path_buf(),
                reason: "No such file or directory".into(),
            })
        }
        Err(ReadError::Io(reason)) => {
            return Err(ConfigError::Unreadable {
                path: path.to_path_buf(),
                reason,
            })
        }
        Err(ReadError::Refused(reason)) => {
            return Err(ConfigError::Untrusted {
                path: path.to_path_buf(),
                reason,
            })
        }
    };
    parse(&text, path)
}

/// The settings every binary starts from: `--config FILE` when given (and then it must
/// exist), else the default path, where a missing file means defaults.
pub fn load_from(explicit: Option<&Path>) -> Result<Settings, ConfigError> {
    match explicit {
        Some(path) => load(path, true),
        None => load(Path::new(DEFAULT_CONFIG_PATH), false),
    }
}

/// Parses and validates configuration text; `path` only names it in errors.
pub fn parse(text: &str, path: &Path) -> Result<Settings, ConfigError> {
    let file: File = toml::from_str(text).map_err(|e| {
        let offset = e.span().map_or(0, |s| s.start);
        let line = line_of(text, offset);
        // Named with its section, as the checks after parsing name it (`health.interval`).
        let in_section = |key: String| match section_at(text, offset) {
            Some(section) if !key.starts_with('[') => format!("{section}.{key}"),
            _ => key,
        };
        if let Some(key) = missing_value_at(text, offset) {
            let message = format!(
                "the value is missing (write `{key} = VALUE`, or remove the line for the default)"
            );
            return invalid(path, line, in_section(key), message);
        }
        let message = e.message().trim().to_string();
        let key = key_in_message(&message).unwrap_or_else(|| key_at(text, offset));
        invalid(path, line, in_section(key), message)
    })?;
    let defaults = Settings::default();
    let err =
        |key: &str, message: String| invalid(path, line_of_key(text, key), key.into(), message);

    let table_base = file.table_base.unwrap_or(defaults.table_base);
    if !(255..=4_000_000_000).contains(&table_base) {
        return Err(err(
            "table_base",
            format!("{table_base} is out of range 255..=4000000000 (tables 0 and 252-255 are the kernel's)"),
        ));
    }
    let (rule_priority, rule_priority_fixed) = match file.rule_priority {
        None => (defaults.rule_priority, false),
        Some(Priority::Word(word)) if word == "auto" => (defaults.rule_priority, false),
        Some(Priority::Word(word)) => {
            return Err(err(
                "rule_priority",
                format!("{word:?} is neither a number nor \"auto\""),
            ))
        }
        Some(Priority::Fixed(p)) => (p, true),
    };
    if !(2..=32765).contains(&rule_priority) {
        return Err(err(
            "rule_priority",
            format!("{rule_priority} is out of range 2..=32765 (it must come after local and before main)"),
        ));
    }
    let iif_rules = file.iif_rules.unwrap_or(defaults.iif_rules);
    if iif_rules && rule_priority < 3 {
        return Err(err(
            "rule_priority",
            format!("{rule_priority} leaves no room for the fwmark rules of iif_rules (they take rule_priority - 2); use 3 or more"),
        ));
    }
    let fwmark_mask = file.fwmark_mask.unwrap_or(defaults.fwmark_mask);
    if fwmark_mask.count_ones() < 2 {
        return Err(err(
            "fwmark_mask",
            format!(
                "{fwmark_mask:#x} has {} bit(s) set; at least 2 are needed (interface N is marked \
                 with N written into these bits, so N bits cover interfaces 1..2^N-1)",
                fwmark_mask.count_ones()
            ),
        ));
    }
    let include = patterns(file.include.unwrap_or_default(), "include", &err)?;
    let exclude = patterns(file.exclude.unwrap_or_default(), "exclude", &err)?;
    let mut exempt = Vec::new();
    for entry in file.exempt.unwrap_or_default() {
        exempt.push(parse_prefix(&entry).map_err(|m| err("exempt", m))?);
    }
    let metrics_textfile = match file.metrics_textfile.as_deref() {
        None | Some("") => None,
        Some(path) if path.starts_with('/') && path.ends_with(".prom") && !path.contains('\0') => {
            Some(PathBuf::from(path))
        }
        Some(path) => {
            return Err(err(
                "metrics_textfile",
                format!("{path:?} is not an absolute path ending in .prom (node_exporter's textfile collector reads only *.prom)"),
            ));
        }
    };
    let route_metrics = match &file.route_metrics {
        Some(table) => RouteMetrics::parse(table).map_err(|e| {
            let line = line_of_metric(text, None, &e.name);
            invalid(path, line, format!("route_metrics.{}", e.name), e.message)
        })?,
        None => RouteMetrics::default(),
    };
    let mut interfaces = BTreeMap::new();
    for (name, section) in file.interface.unwrap_or_default() {
        if let Err(e) = validate_interface_name(&name) {
            return Err(invalid(
                path,
                line_of_section(text, &name),
                format!("interface.{name}"),
                format!("{e} (the section names one interface, without patterns)"),
            ));
        }
        if name.contains(['*', '?']) {
            return Err(invalid(
                path,
                line_of_section(text, &name),
                format!("interface.{name}"),
                "the section names one interface; patterns are for include and exclude".into(),
            ));
        }
        let route_metrics = match &section.route_metrics {
            Some(table) => RouteMetrics::parse(table).map_err(|e| {
                let line = line_of_metric(text, Some(&name), &e.name);
                let key = format!("interface.{name}.route_metrics.{}", e.name);
                invalid(path, line, key, e.message)
            })?,
            None => RouteMetrics::default(),
        };
        interfaces.insert(name, InterfaceSettings { route_metrics });
    }
    let health = match file.health {
        None => None,
        Some(h) => Some(crate::health::validate(h, rule_priority).map_err(|r| {
            invalid(
                path,
                line_of_section_key(text, "health", r.key),
                format!("health.{}", r.key),
                r.message,
            )
        })?),
    };
    let verify_interval = file
        .verify_interval
        .map_or(defaults.verify_interval, |secs| {
            (secs > 0).then(|| std::time::Duration::from_secs(secs))
        });
    if verify_interval.is_some_and(|d| d.as_secs() > MAX_VERIFY_INTERVAL) {
        return Err(err(
            "verify_interval",
            format!("{} s is more than a week ({MAX_VERIFY_INTERVAL} s); use 0 to turn the verification off", file.verify_interval.unwrap_or_default()),
        ));
    }
    let settings = Settings {
        table_base,
        rule_priority,
        rule_priority_fixed,
        ipv4: file.ipv4.unwrap_or(defaults.ipv4),
        ipv6: file.ipv6.unwrap_or(defaults.ipv6),
        include,
        exclude,
        prefix_rules: file.prefix_rules.unwrap_or(defaults.prefix_rules),
        iif_rules,
        fwmark_mask,
        exempt,
        strict: file.strict.unwrap_or(defaults.strict),
        table_names: file.table_names.unwrap_or(defaults.table_names),
        metrics_textfile,
        route_metrics,
        interfaces,
        health,
        verify_interval,
        ..defaults
    };
    if !settings.ipv4 && !settings.ipv6 {
        return Err(err(
            "ipv6",
            "ipv4 and ipv6 are both off: nothing would be done".into(),
        ));
    }
    Ok(settings)
}

fn patterns(
    list: Vec<String>,
    key: &str,
    err: &impl Fn(&str, String) -> ConfigError,
) -> Result<Vec<String>, ConfigError> {
    for p in &list {
        if p.is_empty() || p.len() > 15 || p.chars().any(|c| c == '/' || c.is_whitespace()) {
            return Err(err(key, format!("{p:?} is not an interface name pattern")));
        }
    }
    Ok(list)
}

/// `10.0.0.0/8` or `fd00::/64`; host bits must be zero, as the kernel requires in rules.
pub fn parse_prefix(text: &str) -> Result<Prefix, String> {
    let (addr, len) = text
        .split_once('/')
        .ok_or_else(|| format!("{text:?} is not a prefix (ADDRESS/LENGTH)"))?;
    let addr: IpAddr = addr
        .parse()
        .map_err(|_| format!("{text:?}: {addr:?} is not an IP address"))?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let len: u8 = len
        .parse()
        .ok()
        .filter(|l| *l <= max)
        .ok_or_else(|| format!("{text:?}: prefix length must be 0..={max}"))?;
    let prefix = Prefix::new(addr, len);
    if prefix.addr != addr {
        return Err(format!(
            "{text:?} has host bits set (did you mean {prefix}?)"
        ));
    }
    Ok(prefix)
}

fn invalid(path: &Path, line: usize, key: String, message: String) -> ConfigError {
    ConfigError::Invalid {
        path: path.to_path_buf(),
        line,
        key,
        message,
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// The key on the line holding `offset`, for errors the parser reports at a value.
fn key_at(text: &str, offset: usize) -> String {
    let start = text[..offset.min(text.len())]
        .rfind('\n')
        .map_or(0, |i| i + 1);
    let line = text[start..].lines().next().unwrap_or("");
    match line.split_once('=') {
        Some((key, _)) => key.trim().to_string(),
        None => line.trim().to_string(),
    }
}

/// The key whose value is missing when the parser stopped at `offset` right after `KEY =`
/// (`table_base =` at the end of a line, `{ mtu = }`): the parser's own words for it are
/// about quoting strings, which misleads. Keys of an inline table are named with the key
/// that holds it (`route_metrics.mtu`).
fn missing_value_at(text: &str, offset: usize) -> Option<String> {
    let offset = offset.min(text.len());
    let start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let before = text[start..offset].trim_end();
    let before = before.strip_suffix('=')?;
    // A value of the wrong type is reported at the value itself, also right after `=`:
    // missing means nothing follows but a comment or the end of an inline table.
    let after = text[offset..].lines().next().unwrap_or("").trim_start();
    if !(after.is_empty() || after.starts_with(['#', '}', ','])) {
        return None;
    }
    let key_of = |s: &str| {
        let word: String = s
            .trim_end()
            .chars()
            .rev()
            .take_while(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | '"'))
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect();
        Some(word.trim_matches('"').to_string()).filter(|w| !w.is_empty())
    };
    let key = key_of(before)?;
    match before.rfind('{') {
        Some(brace) => match before[..brace].trim_end().strip_suffix('=') {
            Some(outer) => Some(format!("{}.{key}", key_of(outer)?)),
            None => Some(key),
        },
        None => Some(key),
    }
}

fn key_in_message(message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    rest.split('`').next().map(str::to_string)
}

/// The `[...]` section holding `offset` (`interface.eth1`), if any.
fn section_at(text: &str, offset: usize) -> Option<String> {
    let header = text[..offset.min(text.len())]
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('['))?;
    let inner = header.trim().strip_prefix('[')?.strip_suffix(']')?;
    Some(
        inner
            .chars()
            .filter(|c| *c != '"' && !c.is_whitespace())
            .collect(),
    )
}

/// Whether `line` is the header `[interface.NAME]` or `[interface.NAME.route_metrics]`
/// (the name quoted or not).
fn header_of(line: &str, name: &str) -> bool {
    let Some(inner) = line
        .trim()
        .strip_prefix('[')
        .and_then(|l| l.strip_suffix(']'))
    else {
        return false;
    };
    let inner: String = inner
        .chars()
        .filter(|c| *c != '"' && !c.is_whitespace())
        .collect();
    inner == format!("interface.{name}") || inner == format!("interface.{name}.route_metrics")
}

/// The line of `[interface.NAME]` (or of the first line naming the interface).
fn line_of_section(text: &str, name: &str) -> usize {
    text.lines()
        .position(|l| header_of(l, name))
        .map_or(1, |i| i + 1)
}

/// The line that sets metric `name` of `route_metrics`: the global table (`section`
/// `None`, before any `[...]` header but its own) or `[interface.NAME]`'s, inline
/// (`route_metrics = { mtu = 1400 }`) or as a table of its own (`[...route_metrics]`).
fn line_of_metric(text: &str, section: Option<&str>, name: &str) -> usize {
    let lines: Vec<&str> = text.lines().collect();
    let is_header = |l: &str| l.trim_start().starts_with('[');
    let in_section = |l: &str| match section {
        None => l.trim() == "[route_metrics]",
        Some(interface) => header_of(l, interface),
    };
    let mut inside = section.is_none();
    let mut fallback = None;
    for (i, line) in lines.iter().enumerate() {
        if is_header(line) {
            inside = in_section(line);
            if inside && fallback.is_none() {
                fallback = Some(i + 1);
            }
            continue;
        }
        if !inside {
            continue;
        }
        let sets = |key: &str| {
            line.split([',', '{'])
                .any(|part| part.split_once('=').is_some_and(|(k, _)| k.trim() == key))
        };
        if sets(name) {
            return i + 1;
        }
        if sets("route_metrics") && fallback.is_none() {
            fallback = Some(i + 1);
        }
    }
    fallback.unwrap_or(1)
}

/// The line of `key` inside `[section]` (or of the header, or of `section.key = ...`).
fn line_of_section_key(text: &str, section: &str, key: &str) -> usize {
    let mut inside = false;
    let mut header = None;
    for (i, line) in text.lines().enumerate() {
        let l = line.trim();
        if let Some(name) = l.strip_prefix('[').and_then(|s| s.strip_suffix(']')) {
            let name = name.trim();
            inside = name == section;
            if inside && header.is_none() {
                header = Some(i + 1);
            }
            if name == format!("{section}.{key}") {
                return i + 1;
            }
            continue;
        }
        if let Some((k, _)) = l.split_once('=') {
            let k = k.trim();
            if (inside && k == key) || k == format!("{section}.{key}") {
                return i + 1;
            }
        }
    }
    header.unwrap_or(1)
}

fn line_of_key(text: &str, key: &str) -> usize {
    text.lines()
        .position(|l| l.split_once('=').is_some_and(|(k, _)| k.trim() == key))
        .map_or(1, |i| i + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Settings, ConfigError> {
        parse(text, Path::new("/etc/symroute/symroute.toml"))
    }

    fn error_of(text: &str) -> String {
        parse_str(text).unwrap_err().to_string()
    }

    /// Asserts that `text` is refused with an error naming `line` and `key`.
    fn assert_refused_at(text: &str, line: usize, key: &str) {
        let e = error_of(text);
        let at = format!("/etc/symroute/symroute.toml:{line}: {key}: ");
        assert!(e.starts_with(&at), "{e}");
    }

    #[test]
    fn empty_file_is_the_default() {
        assert_eq!(parse_str("").unwrap(), Settings::default());
        assert_eq!(
            parse_str("# only a comment\n").unwrap(),
            Settings::default()
        );
    }

    #[test]
    fn rule_priority_is_automatic_unless_a_number_is_given() {
        let auto = parse_str("rule_priority = \"auto\"\n").unwrap();
        assert_eq!(auto, Settings::default());
        assert!(!auto.rule_priority_fixed);
        let fixed = parse_str("rule_priority = 32000\n").unwrap();
        assert!(fixed.rule_priority_fixed && fixed.rule_priority == 32000);
        assert_refused_at(
            "ipv4 = true\nrule_priority = \"high\"\n",
            2,
            "rule_priority",
        );
        assert!(error_of("rule_priority = \"high\"").contains("neither a number nor \"auto\""));
        assert_refused_at("rule_priority = -5\n", 1, "rule_priority");
    }

    #[test]
    fn every_key_is_read() {
        let s = parse_str(
            "table_base = 2000\nrule_priority = 1000\nipv4 = true\nipv6 = false\n\
             include = [\"eth*\", \"wl?0\"]\nexclude = [\"docker*\"]\nprefix_rules = true\n\
             iif_rules = true\nfwmark_mask = 0x7f000000\n\
             exempt = [\"172.17.0.0/16\", \"fd00:1::/64\"]\nstrict = true\ntable_names = true\n",
        )
        .unwrap();
        assert_eq!(s.table_base, 2000);
        assert_eq!(s.rule_priority, 1000);
        assert!(s.ipv4 && !s.ipv6);
        assert_eq!(s.include, ["eth*", "wl?0"]);
        assert_eq!(s.exclude, ["docker*"]);
        assert!(s.prefix_rules && s.iif_rules && s.strict && s.table_names);
        assert_eq!(s.fwmark_mask, 0x7f00_0000);
        assert_eq!(
            s.exempt.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["172.17.0.0/16", "fd00:1::/64"]
        );
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        assert_eq!(
            error_of("ipv4 = true\ntabel_base = 2000\n"),
            format!(
                "/etc/symroute/symroute.toml:2: tabel_base: {}",
                "unknown field `tabel_base`, expected one of `table_base`, `rule_priority`, `ipv4`, `ipv6`, `include`, `exclude`, `prefix_rules`, `iif_rules`, `fwmark_mask`, `exempt`, `strict`, `table_names`, `metrics_textfile`, `route_metrics`, `interface`, `health`, `verify_interval`"
            )
        );
    }

    #[test]
    fn wrong_type_names_the_key() {
        assert_refused_at("\n\ntable_base = \"high\"\n", 3, "table_base");
        assert_refused_at("strict = 1\n", 1, "strict");
    }

    #[test]
    fn verify_interval_is_ten_minutes_by_default_and_off_at_zero() {
        let secs = |text: &str| {
            parse_str(text)
                .unwrap()
                .verify_interval
                .map(|d| d.as_secs())
        };
        assert_eq!(secs(""), Some(600));
        assert_eq!(secs("verify_interval = 30\n"), Some(30));
        assert_eq!(secs("verify_interval = 0\n"), None);
        let e = parse_str("verify_interval = 99999999\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains(":1: verify_interval: "), "{e}");
    }

    #[test]
    fn metrics_textfile_is_off_when_empty_and_must_be_an_absolute_prom_file() {
        let parse = |t: &str| super::parse(t, Path::new("/etc/symroute/symroute.toml"));
        assert_eq!(
            parse("metrics_textfile = \"\"\n").unwrap().metrics_textfile,
            None
        );
        assert_eq!(
            parse("metrics_textfile = \"/var/lib/prometheus/node-exporter/symroute.prom\"\n")
                .unwrap()
                .metrics_textfile,
            Some(PathBuf::from(
                "/var/lib/prometheus/node-exporter/symroute.prom"
            ))
        );
        for bad in ["symroute.prom", "/tmp/symroute.txt"] {
            let e = parse(&format!("metrics_textfile = \"{bad}\"\n"))
                .unwrap_err()
                .to_string();
            assert!(e.contains(":1: metrics_textfile: "), "{e}");
        }
    }

    #[test]
    fn route_metrics_globally_and_per_interface() {
        let s = parse_str(
            "route_metrics = { mtu = 1400, initcwnd = 10 }\n\n[interface.eth1]\n\
             route_metrics = { mtu = 1300, congctl = \"reno\" }\n\n\
             [interface.\"eth0.100\".route_metrics]\nquickack = true\n",
        )
        .unwrap();
        assert_eq!(s.route_metrics.to_string(), "mtu 1400 initcwnd 10");
        assert_eq!(
            s.route_metrics_for("eth1").to_string(),
            "mtu 1300 initcwnd 10 congctl reno"
        );
        assert_eq!(
            s.route_metrics_for("eth0.100").to_string(),
            "mtu 1400 initcwnd 10 quickack 1"
        );
        assert_eq!(
            s.route_metrics_for("eth2").to_string(),
            "mtu 1400 initcwnd 10"
        );
        assert!(s.sets_route_metrics() && !Settings::default().sets_route_metrics());
    }

    #[test]
    fn bad_route_metrics_name_the_key_and_line() {
        assert_eq!(
            error_of("ipv4 = true\nroute_metrics = { initcwnd = 10, mtu = 70000 }\n"),
            "/etc/symroute/symroute.toml:2: route_metrics.mtu: 70000 is out of range 68..=65520"
        );
        assert_refused_at(
            "route_metrics = { mtu = 1400 }\n[interface.eth1]\nstrict = true\n",
            3,
            "interface.eth1.strict",
        );
        assert_refused_at(
            "route_metrics = { mtu = 1400 }\n[interface.eth10]\nroute_metrics = { mtu = 1 }\n",
            3,
            "interface.eth10.route_metrics.mtu",
        );
        assert_refused_at(
            "[interface.eth1.route_metrics]\ncwnd = 2\nfastopen = true\n",
            3,
            "interface.eth1.route_metrics.fastopen",
        );
        assert_refused_at(
            "[route_metrics]\nmtu = 1400\nmss = 3\n",
            3,
            "route_metrics.mss",
        );
        assert_refused_at(
            "[interface.\"eth*\"]\nroute_metrics = {}\n",
            1,
            "interface.eth*",
        );
        assert_refused_at(
            "[interface.\"a/b\"]\nroute_metrics = {}\n",
            1,
            "interface.a/b",
        );
    }

    #[test]
    fn health_is_read_and_its_bad_values_name_the_key_and_line() {
        assert_eq!(parse_str("").unwrap().health, None);
        let s = parse_str(
            "strict = true\n[health]\ntargets = [\"192.0.2.1\", \"2001:db8::1\"]\n\
             interval = 0.5\nmode = \"balance\"\n[health.weights]\neth0 = 2\n",
        )
        .unwrap();
        let h = s.health.unwrap();
        assert_eq!(h.targets.len(), 2);
        assert_eq!(h.weight_of("eth0"), 2);
        assert_eq!(
            error_of("ipv4 = true\n[health]\ntargets = [\"x\"]\n"),
            "/etc/symroute/symroute.toml:3: health.targets: \"x\" is not an IP address"
        );
        assert_refused_at(
            "[health]\ntargets = [\"192.0.2.1\"]\ninterval = 0.01\n",
            3,
            "health.interval",
        );
        assert_refused_at(
            "[health]\ntargets = [\"192.0.2.1\"]\ndown = 0\n",
            3,
            "health.down",
        );
        assert_refused_at(
            "[health]\ntargets = [\"192.0.2.1\"]\ntagets = 1\n",
            3,
            "health.tagets",
        );
        assert_refused_at(
            "[health]\ntargets = [\"192.0.2.1\"]\nup = \"x\"\n",
            3,
            "health.up",
        );
        assert_refused_at("[health]\ninterval = 1\n", 1, "health.targets");
        assert_refused_at(
            "[health]\ntargets = [\"192.0.2.1\"]\n[health.weights]\neth0 = 0\n",
            3,
            "health.weights",
        );
    }

    #[test]
    fn a_missing_value_is_called_missing() {
        for text in [
            "ipv4 = true\ntable_base =\n",
            "ipv4 = true\ntable_base = # later\n",
            "ipv4 = true\ntable_base =",
        ] {
            assert_eq!(
                error_of(text),
                "/etc/symroute/symroute.toml:2: table_base: the value is missing (write \
                 `table_base = VALUE`, or remove the line for the default)",
                "{text:?}"
            );
        }
        assert!(error_of("route_metrics = { mtu = }\n")
            .starts_with("/etc/symroute/symroute.toml:1: route_metrics.mtu: the value is missing"));
        // In a section: named as the checks name it.
        assert!(error_of("[health]\ninterval =\n")
            .starts_with("/etc/symroute/symroute.toml:2: health.interval: the value is missing"));
    }

    #[test]
    fn syntax_error_names_the_line() {
        assert_refused_at("ipv4 = true\nipv6 = \n", 2, "ipv6");
    }

    #[test]
    fn out_of_range_values_are_refused() {
        assert!(error_of("table_base = 100").contains(":1: table_base: 100 is out of range"));
        assert!(error_of("rule_priority = 32766").contains("rule_priority: 32766 is out of range"));
        assert!(error_of("rule_priority = 0").contains("rule_priority"));
        assert!(error_of("ipv4 = false\nipv6 = false").contains(":2: ipv6: "));
    }

    #[test]
    fn fwmark_mask_needs_two_bits_and_iif_rules_room_below_rule_priority() {
        assert_eq!(
            error_of("ipv4 = true\nfwmark_mask = 0x10000\n"),
            "/etc/symroute/symroute.toml:2: fwmark_mask: 0x10000 has 1 bit(s) set; at least 2 \
             are needed (interface N is marked with N written into these bits, so N bits cover \
             interfaces 1..2^N-1)"
        );
        assert!(error_of("fwmark_mask = 0").contains(":1: fwmark_mask: 0x0 has 0 bit(s)"));
        assert_refused_at("fwmark_mask = 0x100000000", 1, "fwmark_mask");
        assert_refused_at("fwmark_mask = -1", 1, "fwmark_mask");
        assert_eq!(
            parse_str("fwmark_mask = 0x3000").unwrap().fwmark_mask,
            0x3000
        );
        assert!(parse_str("rule_priority = 2").is_ok());
        assert!(error_of("rule_priority = 2\niif_rules = true")
            .contains(":1: rule_priority: 2 leaves no room for the fwmark rules of iif_rules"));
    }

    #[test]
    fn bad_prefixes_and_patterns_are_refused() {
        assert!(error_of("exempt = [\"10.0.0.1/8\"]")
            .contains("host bits set (did you mean 10.0.0.0/8?)"));
        assert!(error_of("exempt = [\"10.0.0.0\"]").contains("not a prefix"));
        assert!(error_of("exempt = [\"10.0.0.0/33\"]").contains("prefix length"));
        assert!(error_of("exempt = [\"tenet/8\"]").contains("not an IP address"));
        assert!(
            error_of("include = [\"\"]").contains("include: \"\" is not an interface name pattern")
        );
        assert!(error_of("exclude = [\"a b\"]").contains("exclude"));
    }

    #[test]
    fn missing_default_file_is_defaults_but_missing_explicit_file_is_an_error() {
        let nowhere = Path::new("/nonexistent/symroute.toml");
        assert_eq!(load(nowhere, false).unwrap(), Settings::default());
        let e = load(nowhere, true).unwrap_err().to_string();
        assert!(e.starts_with("/nonexistent/symroute.toml: "), "{e}");
    }

    #[test]
    fn group_writable_file_is_refused_naming_it_and_why() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("symroute-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.join("symroute.toml");
        std::fs::write(&path, "ipv4 = true\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o664)).unwrap();
        let e = load(&path, false).unwrap_err();
        assert!(matches!(e, ConfigError::Untrusted { .. }));
        assert_eq!(
            e.to_string(),
            format!(
                "{}: refused: it is writable by its group (mode 0664); remove that with chmod go-w",
                path.display()
            )
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(load(&path, true).unwrap().ipv4);
        let _ = std::fs::remove_dir_all(dir);
    }
}
