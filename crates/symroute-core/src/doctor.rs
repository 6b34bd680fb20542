//! `symroute doctor`: checks of the host around symroute, each with a verdict and a fix.
//!
//! The checks ([`diagnose`]) are pure functions over a full [`Snapshot`] and a few facts about
//! the host ([`HostFacts`]: sysctls, systemd-networkd's configuration, installed integrations,
//! table names). [`HostFacts::read`] gathers those facts from files below a root directory
//! (`/` in production, a temporary tree in tests); it needs no privileges.

use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::model::{Family, Link};
use crate::nftables::{self, Installed as NftInstalled};
use crate::plan::Snapshot;
use crate::settings::{Prefix, Settings};
use crate::status::{self, ShadowExtent, State, Status};

/// How a check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Ok,
    /// Not relevant on this host.
    Skip,
    /// Likely to bite; `doctor` still exits 0.
    Warn,
    /// Wrong: `doctor` exits 1.
    Fail,
}

impl Verdict {
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Skip => "skip",
            Verdict::Warn => "WARN",
            Verdict::Fail => "FAIL",
        }
    }
}

/// One verdict of one check, about one subject (an interface, a table, a file).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// `sync`, `tables`, `shadowing`, `rp_filter`, `iif_rules`, `arp`, `networkd` or
    /// `integration`.
    pub check: &'static str,
    pub verdict: Verdict,
    pub message: String,
    /// What to do about it (absent for `ok` and `skip`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// Everything `symroute doctor` reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnosis {
    /// False when any finding is `fail`.
    pub ok: bool,
    pub findings: Vec<Finding>,
}

impl Diagnosis {
    pub fn render(&self) -> String {
        let mut out = String::new();
        for f in &self.findings {
            out.push_str(&format!(
                "{:<4}  {:<11} {}\n",
                f.verdict.label(),
                f.check,
                f.message
            ));
            if let Some(fix) = &f.fix {
                for (n, line) in fix.lines().enumerate() {
                    let label = if n == 0 { "fix:" } else { "" };
                    out.push_str(&format!("{:<18}{label:<5}{line}\n", ""));
                }
            }
        }
        let (fails, warns) = self
            .findings
            .iter()
            .fold((0, 0), |(f, w), x| match x.verdict {
                Verdict::Fail => (f + 1, w),
                Verdict::Warn => (f, w + 1),
                _ => (f, w),
            });
        out.push_str(&match (fails, warns) {
            (0, 0) => "no problem found\n".to_string(),
            (0, w) => format!("{w} warning(s), nothing wrong\n"),
            (f, w) => format!("{f} problem(s), {w} warning(s)\n"),
        });
        out
    }
}

/// Settings of one `net.ipv4.conf.NAME` (`NAME` = `all`, `default` or an interface), and
/// `net.ipv6.conf.NAME.forwarding`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Conf {
    pub rp_filter: Option<u32>,
    pub arp_announce: Option<u32>,
    pub arp_ignore: Option<u32>,
    pub arp_filter: Option<u32>,
    pub forwarding: Option<u32>,
    pub ipv6_forwarding: Option<u32>,
}

/// A `Key=` of networkd.conf as it ends up after the main file and the drop-ins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkdKey {
    pub value: bool,
    /// The file that set it last; `None` means systemd's default.
    pub source: Option<PathBuf>,
}

/// systemd-networkd on this host.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Networkd {
    /// Its binary, when installed.
    pub binary: Option<PathBuf>,
    /// Running now, or enabled to start at boot.
    pub active: bool,
    /// networkd.conf and its drop-ins, in the order networkd applies them, with their text.
    pub files: Vec<(PathBuf, String)>,
}

/// An installed file that runs symroute on events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub path: PathBuf,
    pub mode: u32,
    pub uid: u32,
    /// The program the script calls (`HOOK=...`), and whether it is executable.
    pub calls: Option<(PathBuf, bool)>,
}

/// Facts about the host that the kernel snapshot does not hold.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HostFacts {
    /// `net.ipv4.conf.*`, by name.
    pub conf: BTreeMap<String, Conf>,
    pub networkd: Networkd,
    pub nm_dispatcher: Vec<Installed>,
    pub networkd_dispatcher: Vec<Installed>,
    pub daemon_unit: Vec<PathBuf>,
    /// Table names from iproute2's `rt_tables` files other than symroute's own:
    /// `(table, name, file)`.
    pub table_names: Vec<(u32, String, PathBuf)>,
    /// `/usr/sbin/nft` is installed (`iif_rules` needs it to write its table).
    pub nft_binary: bool,
    /// `table inet symroute` as the kernel has it; `None` when it could not be read (that
    /// needs CAP_NET_ADMIN, so the caller fills it in: [`HostFacts::read`] reads files only).
    pub nft_table: Option<NftInstalled>,
}

pub const NM_DISPATCHER_DIRS: [&str; 2] = [
    "etc/NetworkManager/dispatcher.d",
    "usr/lib/NetworkManager/dispatcher.d",
];
pub const NETWORKD_DISPATCHER_DIRS: [&str; 2] =
    ["etc/networkd-dispatcher", "usr/lib/networkd-dispatcher"];
pub const NETWORKD_DISPATCHER_STATES: [&str; 5] =
    ["routable", "configured", "degraded", "off", "no-carrier"];
pub const UNIT_DIRS: [&str; 5] = [
    "etc/systemd/system",
    "run/systemd/system",
    "usr/local/lib/systemd/system",
    "usr/lib/systemd/system",
    "lib/systemd/system",
];
/// Where networkd.conf and networkd.conf.d live, most important first.
pub const NETWORKD_CONF_DIRS: [&str; 4] = [
    "etc/systemd",
    "run/systemd",
    "usr/local/lib/systemd",
    "usr/lib/systemd",
];
const NETWORKD_BINARIES: [&str; 2] = [
    "lib/systemd/systemd-networkd",
    "usr/lib/systemd/systemd-networkd",
];
/// Our own names file (`table_names = true`), not someone else's use of a table.
const OUR_TABLE_NAMES: &str = "symroute.conf";

impl HostFacts {
    /// Reads the facts below `root` for the interfaces in `links`. Anything unreadable is
    /// simply absent: doctor then skips or reports what it could not see.
    pub fn read(root: &Path, links: &[Link]) -> HostFacts {
        let mut conf = BTreeMap::new();
        let names = ["all", "default"]
            .into_iter()
            .map(str::to_string)
            .chain(links.iter().map(|l| l.name.clone()));
        for name in names {
            let dir = root.join("proc/sys/net/ipv4/conf").join(&name);
            let get = |key: &str| read_number(&dir.join(key));
            conf.insert(
                name.clone(),
                Conf {
                    rp_filter: get("rp_filter"),
                    arp_announce: get("arp_announce"),
                    arp_ignore: get("arp_ignore"),
                    arp_filter: get("arp_filter"),
                    forwarding: get("forwarding"),
                    ipv6_forwarding: read_number(
                        &root
                            .join("proc/sys/net/ipv6/conf")
                            .join(&name)
                            .join("forwarding"),
                    ),
                },
            );
        }

        let nm_dispatcher = NM_DISPATCHER_DIRS
            .iter()
            .filter_map(|d| installed(&root.join(d).join("50-symroute"), root))
            .collect();
        let networkd_dispatcher = NETWORKD_DISPATCHER_DIRS
            .iter()
            .flat_map(|d| {
                NETWORKD_DISPATCHER_STATES
                    .iter()
                    .map(move |s| format!("{d}/{s}.d/50-symroute"))
            })
            .filter_map(|p| installed(&root.join(p), root))
            .collect();
        let daemon_unit = UNIT_DIRS
            .iter()
            .map(|d| root.join(d).join("symrouted.service"))
            .filter(|p| p.exists())
            .collect();

        HostFacts {
            conf,
            networkd: read_networkd(root),
            nm_dispatcher,
            networkd_dispatcher,
            daemon_unit,
            table_names: read_table_names(root),
            nft_binary: root.join(nftables::NFT.trim_start_matches('/')).is_file(),
            nft_table: None,
        }
    }
}

fn read_number(path: &Path) -> Option<u32> {
    std::fs::read_to_string(path)
        .ok()
        .and_then(|t| t.trim().parse().ok())
}

fn installed(path: &Path, root: &Path) -> Option<Installed> {
    let meta = std::fs::metadata(path).ok()?;
    let calls = std::fs::read_to_string(path).ok().and_then(|text| {
        let hook = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("HOOK="))?
            .trim()
            .trim_matches(['"', '\''])
            .to_string();
        if !hook.starts_with('/') {
            return None;
        }
        let on_root = root.join(hook.trim_start_matches('/'));
        let executable = std::fs::metadata(&on_root)
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0);
        Some((PathBuf::from(hook), executable))
    });
    Some(Installed {
        path: path.to_path_buf(),
        mode: meta.permissions().mode() & 0o7777,
        uid: meta.uid(),
        calls,
    })
}

fn read_networkd(root: &Path) -> Networkd {
    let binary = NETWORKD_BINARIES
        .iter()
        .map(|b| root.join(b))
        .find(|p| p.is_file());
    let mut files = Vec::new();
    if let Some(main) = NETWORKD_CONF_DIRS
        .iter()
        .map(|d| root.join(d).join("networkd.conf"))
        .find(|p| p.exists())
    {
        files.push(main);
    }
    // Drop-ins: a name in a more important directory masks the same name in later ones;
    // all of them apply in the order of their names.
    let mut dropins: BTreeMap<String, PathBuf> = BTreeMap::new();
    for dir in NETWORKD_CONF_DIRS {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join("networkd.conf.d")) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.ends_with(".conf") {
                dropins.entry(name).or_insert_with(|| entry.path());
            }
        }
    }
    files.extend(dropins.into_values());
    let files = files
        .into_iter()
        .map(|p| {
            // A drop-in linked to /dev/null masks; reading it gives "" which sets nothing.
            let text = std::fs::read_to_string(&p).unwrap_or_default();
            (p, text)
        })
        .collect();

    let running = std::fs::read_dir(root.join("proc")).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
                && std::fs::read_to_string(e.path().join("comm"))
                    .is_ok_and(|c| c.trim() == "systemd-network")
        })
    });
    let enabled = std::fs::read_dir(root.join("etc/systemd/system")).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            e.file_name().to_string_lossy().ends_with(".wants")
                && e.path().join("systemd-networkd.service").exists()
        })
    });
    Networkd {
        binary,
        active: running || enabled,
        files,
    }
}

fn read_table_names(root: &Path) -> Vec<(u32, String, PathBuf)> {
    let mut files = Vec::new();
    for dir in ["etc/iproute2", "usr/share/iproute2", "usr/lib/iproute2"] {
        files.push(root.join(dir).join("rt_tables"));
        if let Ok(entries) = std::fs::read_dir(root.join(dir).join("rt_tables.d")) {
            let mut more: Vec<PathBuf> = entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.extension().is_some_and(|e| e == "conf")
                        && p.file_name().is_some_and(|n| n != OUR_TABLE_NAMES)
                })
                .collect();
            more.sort();
            files.extend(more);
        }
    }
    let mut names = Vec::new();
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        for (table, name) in parse_table_names(&text) {
            names.push((table, name, file.clone()));
        }
    }
    names
}

/// `ID NAME` lines of an iproute2 `rt_tables` file (decimal or `0x` hex ids).
pub fn parse_table_names(text: &str) -> Vec<(u32, String)> {
    text.lines()
        .filter_map(|line| {
            let line = line.split('#').next().unwrap_or("");
            let mut words = line.split_whitespace();
            let id = words.next()?;
            let name = words.next()?;
            let id = match id.strip_prefix("0x") {
                Some(hex) => u32::from_str_radix(hex, 16).ok()?,
                None => id.parse().ok()?,
            };
            Some((id, name.to_string()))
        })
        .collect()
}

/// systemd's `parse_boolean`.
fn parse_bool(value: &str) -> Option<bool> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "yes" | "y" | "true" | "t" | "on" => Some(true),
        "0" | "no" | "n" | "false" | "f" | "off" => Some(false),
        _ => None,
    }
}

/// The value of `[Network] KEY=` after every file, as networkd computes it: later
/// assignments win, an empty assignment resets to the default (yes), an unparsable value is
/// ignored.
pub fn networkd_key(files: &[(PathBuf, String)], key: &str) -> NetworkdKey {
    let mut result = NetworkdKey {
        value: true,
        source: None,
    };
    for (path, text) in files {
        let mut section = String::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
                section = name.trim().to_string();
                continue;
            }
            let Some((k, v)) = line.split_once('=') else {
                continue;
            };
            if section != "Network" || k.trim() != key {
                continue;
            }
            let v = v.trim();
            if v.is_empty() {
                result = NetworkdKey {
                    value: true,
                    source: Some(path.clone()),
                };
            } else if let Some(value) = parse_bool(v) {
                result = NetworkdKey {
                    value,
                    source: Some(path.clone()),
                };
            }
        }
    }
    result
}

/// Runs every check. `status` must be [`status::status`] of the same snapshot.
pub fn diagnose(
    snapshot: &Snapshot,
    settings: &Settings,
    status: &Status,
    facts: &HostFacts,
) -> Diagnosis {
    let mut findings = Vec::new();
    findings.extend(check_sync(status));
    findings.extend(check_tables(snapshot, settings, status, facts));
    findings.extend(check_shadowing(status, settings));
    findings.extend(check_rp_filter(snapshot, settings, status, facts));
    findings.extend(check_iif_rules(snapshot, settings, status, facts));
    findings.extend(check_arp(snapshot, facts));
    findings.extend(check_networkd(&facts.networkd));
    findings.extend(check_integration(facts));
    Diagnosis {
        ok: findings.iter().all(|f| f.verdict != Verdict::Fail),
        findings,
    }
}

fn finding(check: &'static str, verdict: Verdict, message: String, fix: Option<String>) -> Finding {
    Finding {
        check,
        verdict,
        message,
        fix,
    }
}

fn check_sync(status: &Status) -> Vec<Finding> {
    if status.in_sync {
        return vec![finding(
            "sync",
            Verdict::Ok,
            "every interface's table and rules are as a sync would make them".into(),
            None,
        )];
    }
    let mut out = Vec::new();
    for i in &status.interfaces {
        match i.state {
            State::Pending => out.push(finding(
                "sync",
                Verdict::Fail,
                format!(
                    "{}: {} change(s) pending, first: {}",
                    i.ifname,
                    i.pending.len(),
                    i.pending.first().map_or("", String::as_str)
                ),
                Some(format!(
                    "symroute sync {} (and check that an event integration is installed)",
                    i.ifname
                )),
            )),
            State::Refused => out.push(finding(
                "sync",
                Verdict::Fail,
                i.error
                    .clone()
                    .unwrap_or_else(|| format!("{}: refused", i.ifname)),
                Some("see the `tables` findings for a free table_base".into()),
            )),
            _ => {}
        }
    }
    if !status.exempt.pending.is_empty() {
        out.push(finding(
            "sync",
            Verdict::Fail,
            format!(
                "exemption rules: {} change(s) pending, first: {}",
                status.exempt.pending.len(),
                status.exempt.pending[0]
            ),
            Some("symroute sync".into()),
        ));
    }
    for s in &status.stale {
        out.push(finding(
            "sync",
            Verdict::Fail,
            format!(
                "stale: {} rule(s) of ours point at table {}, whose interface is gone",
                s.rules.len(),
                s.table
            ),
            Some("symroute sync (collects state of vanished interfaces)".into()),
        ));
    }
    out
}

/// Tables in symroute's range used by someone else: foreign routes in them, foreign rules
/// pointing at them, a name for them in iproute2's files.
fn check_tables(
    snapshot: &Snapshot,
    settings: &Settings,
    status: &Status,
    facts: &HostFacts,
) -> Vec<Finding> {
    // Interfaces that get (or would get) a table: the ones that matter.
    let wanted: Vec<(&str, u32, u32)> = status
        .interfaces
        .iter()
        .filter(|i| i.managed && !i.addresses.is_empty())
        .map(|i| (i.ifname.as_str(), i.ifindex, i.table))
        .collect();
    let mut out = Vec::new();
    let mut suggestion = None;
    let mut fix = |snapshot: &Snapshot| {
        suggestion
            .get_or_insert_with(|| {
                let indexes: Vec<u32> = wanted.iter().map(|w| w.1).collect();
                match free_table_base(snapshot, settings, facts, &indexes) {
                    Some(base) => format!(
                        "set `table_base = {base}` in /etc/symroute/symroute.toml (tables \
                         {base}+ifindex are free), then `symroute sync`"
                    ),
                    None => "set table_base in /etc/symroute/symroute.toml to a free range".into(),
                }
            })
            .clone()
    };
    for (name, _, table) in &wanted {
        let foreign_route = snapshot
            .table(*table)
            .iter()
            .find(|r| r.protocol != settings.protocol);
        let foreign_rule = snapshot
            .rules
            .iter()
            .find(|r| r.protocol != settings.protocol && r.table == *table);
        if let Some(route) = foreign_route {
            out.push(finding(
                "tables",
                Verdict::Fail,
                format!(
                    "table {table} (for {name}) holds someone else's route: {} proto {}",
                    status::route_text(route, &snapshot.links),
                    route.protocol
                ),
                Some(fix(snapshot)),
            ));
        } else if let Some(rule) = foreign_rule {
            out.push(finding(
                "tables",
                Verdict::Fail,
                format!(
                    "table {table} (for {name}) is used by someone else's rule: {} proto {}",
                    status::rule_text(rule),
                    rule.protocol
                ),
                Some(fix(snapshot)),
            ));
        }
        for (_, tname, file) in facts.table_names.iter().filter(|n| n.0 == *table) {
            out.push(finding(
                "tables",
                Verdict::Warn,
                format!(
                    "table {table} (for {name}) is named {tname:?} in {}: another tool may use it",
                    file.display()
                ),
                Some(fix(snapshot)),
            ));
        }
    }
    if out.is_empty() {
        let tables: Vec<String> = wanted.iter().map(|w| w.2.to_string()).collect();
        out.push(finding(
            "tables",
            Verdict::Ok,
            if tables.is_empty() {
                "no interface needs a table yet".into()
            } else {
                format!("tables {} are used by symroute alone", tables.join(", "))
            },
            None,
        ));
    }
    out
}

/// The lowest multiple of 1000 from 1000 up whose tables `base + ifindex` hold nothing,
/// have no rule pointing at them and no name.
pub fn free_table_base(
    snapshot: &Snapshot,
    settings: &Settings,
    facts: &HostFacts,
    indexes: &[u32],
) -> Option<u32> {
    let used: BTreeSet<u32> = snapshot
        .tables
        .iter()
        .filter(|(_, routes)| routes.iter().any(|r| r.protocol != settings.protocol))
        .map(|(t, _)| *t)
        .chain(
            snapshot
                .rules
                .iter()
                .filter(|r| r.protocol != settings.protocol)
                .map(|r| r.table),
        )
        .chain(facts.table_names.iter().map(|n| n.0))
        .collect();
    (1..4_000_000u32)
        .map(|k| k * 1000)
        .filter(|b| *b != settings.table_base)
        .find(|base| {
            indexes
                .iter()
                .all(|i| base.checked_add(*i).is_some_and(|t| !used.contains(&t)))
        })
}

fn check_shadowing(status: &Status, settings: &Settings) -> Vec<Finding> {
    let mut out = Vec::new();
    for i in &status.interfaces {
        for s in &i.shadowed_by {
            let (verdict, how) = match s.extent {
                ShadowExtent::Full => (Verdict::Fail, "takes all traffic"),
                ShadowExtent::Partial => (Verdict::Warn, "takes some traffic"),
            };
            let move_ours = if s.priority > 2 {
                format!(
                    " or set `rule_priority = {}` in /etc/symroute/symroute.toml",
                    s.priority - 1
                )
            } else {
                String::new()
            };
            out.push(finding(
                "shadowing",
                verdict,
                format!(
                    "{}: `{}` (table {}) {how} before ours, `{}`",
                    i.ifname, s.rule, s.table, s.ours
                ),
                Some(format!(
                    "give that rule a priority above {}{move_ours}, if it is not meant to win",
                    settings.rule_priority
                )),
            ));
        }
    }
    if out.is_empty() {
        out.push(finding(
            "shadowing",
            Verdict::Ok,
            "no foreign rule comes before ours with a catch-all table".into(),
            None,
        ));
    }
    out
}

fn effective(facts: &HostFacts, name: &str, pick: fn(&Conf) -> Option<u32>) -> Option<u32> {
    let all = facts.conf.get("all").and_then(pick);
    let dev = facts.conf.get(name).and_then(pick);
    match (all, dev) {
        (Some(a), Some(d)) => Some(a.max(d)),
        (a, d) => a.or(d),
    }
}

/// Whether `name` forwards IPv4: its own `forwarding` (writing `all.forwarding` sets every
/// device's), else `all`'s.
fn forwarding(facts: &HostFacts, name: &str) -> Option<u32> {
    forwarding_of(facts, name, Family::V4)
}

fn forwarding_of(facts: &HostFacts, name: &str, family: Family) -> Option<u32> {
    let pick = |c: &Conf| match family {
        Family::V4 => c.forwarding,
        Family::V6 => c.ipv6_forwarding,
    };
    facts
        .conf
        .get(name)
        .and_then(pick)
        .or_else(|| facts.conf.get("all").and_then(pick))
}

/// Interfaces (not loopback) with a global IPv4 address, with those addresses.
fn ipv4_interfaces(snapshot: &Snapshot) -> Vec<(&Link, Vec<Prefix>, Vec<std::net::IpAddr>)> {
    snapshot
        .links
        .iter()
        .filter(|l| !l.loopback)
        .filter_map(|l| {
            let addrs: Vec<_> = snapshot
                .addresses
                .iter()
                .filter(|a| a.ifindex == l.index && a.wants_rule())
                .filter(|a| Family::of(&a.addr) == Family::V4)
                .collect();
            if addrs.is_empty() {
                return None;
            }
            Some((
                l,
                addrs
                    .iter()
                    .map(|a| Prefix::new(a.addr, a.prefix_len))
                    .collect(),
                addrs.iter().map(|a| a.addr).collect(),
            ))
        })
        .collect()
}

const SYSCTL_PERSIST: &str = "(persist it in /etc/sysctl.d/)";

fn check_rp_filter(
    snapshot: &Snapshot,
    settings: &Settings,
    status: &Status,
    facts: &HostFacts,
) -> Vec<Finding> {
    let uplinks = ipv4_interfaces(snapshot);
    if uplinks.len() < 2 {
        return vec![finding(
            "rp_filter",
            Verdict::Skip,
            "fewer than two interfaces with IPv4 addresses: no asymmetric path".into(),
            None,
        )];
    }
    let mut out = Vec::new();
    for (link, _, _) in &uplinks {
        let name = &link.name;
        let Some(rp) = effective(facts, name, |c| c.rp_filter) else {
            continue;
        };
        if rp != 1 {
            continue;
        }
        let managed = settings.manages(name);
        let forwarding = forwarding(facts, name) == Some(1);
        let loosen = format!(
            "sysctl -w net.ipv4.conf.all.rp_filter=2 net.ipv4.conf.{name}.rp_filter=2 {SYSCTL_PERSIST}"
        );
        if !managed {
            out.push(finding(
                "rp_filter",
                Verdict::Fail,
                format!(
                    "{name}: rp_filter=1 (strict) on an interface symroute leaves alone \
                     (include/exclude): traffic to its addresses from sources that main routes \
                     through another interface is dropped"
                ),
                Some(format!("let symroute manage {name}, or loosen: {loosen}")),
            ));
        } else if forwarding {
            out.push(finding(
                "rp_filter",
                Verdict::Fail,
                format!(
                    "{name}: rp_filter=1 (strict) and the host forwards: forwarded or DNAT'ed \
                     traffic entering {name} is dropped whenever main would route its answer \
                     through another interface (the kernel checks a forwarded request's \
                     reverse path in main: neither symroute's rules nor iif_rules' marks \
                     change that)"
                ),
                Some(format!("loosen: {loosen}")),
            ));
        } else {
            let covered = status
                .interfaces
                .iter()
                .find(|i| &i.ifname == name)
                .is_some_and(|i| i.addresses.iter().all(|a| a.covered));
            out.push(finding(
                "rp_filter",
                Verdict::Ok,
                if covered {
                    format!(
                        "{name}: rp_filter=1 (strict) is fine: symroute's rules make the \
                         reverse-path check use {name}'s table"
                    )
                } else {
                    format!(
                        "{name}: rp_filter=1 (strict) needs symroute's rules for {name} \
                         (see `sync`)"
                    )
                },
                None,
            ));
        }
    }
    if out.is_empty() {
        out.push(finding(
            "rp_filter",
            Verdict::Ok,
            "no interface with strict reverse-path filtering".into(),
            None,
        ));
    }
    out
}

/// With `iif_rules`, connections are marked with the interface they came in through and their
/// answers routed by its table: each marked interface needs an index that fits in
/// `fwmark_mask`, `nft` must be there to write `table inet symroute`, the table must be
/// current, and no one else's rule may test the same mark bits.
fn check_iif_rules(
    snapshot: &Snapshot,
    settings: &Settings,
    status: &Status,
    facts: &HostFacts,
) -> Vec<Finding> {
    if !settings.iif_rules {
        if let Some(NftInstalled::Present { .. }) = facts.nft_table {
            return vec![finding(
                "iif_rules",
                Verdict::Warn,
                format!(
                    "iif_rules is off, but table {} is still installed",
                    nftables::TABLE
                ),
                Some("symroute sync (removes it)".into()),
            )];
        }
        return vec![finding(
            "iif_rules",
            Verdict::Skip,
            "iif_rules is off".into(),
            None,
        )];
    }
    let mut out = Vec::new();
    let mask = settings.fwmark_mask;
    for i in status
        .interfaces
        .iter()
        .filter(|i| i.managed && !i.addresses.is_empty() && settings.mark_for(i.ifindex).is_none())
    {
        out.push(finding(
            "iif_rules",
            Verdict::Fail,
            format!(
                "{}: its index {} does not fit in fwmark_mask {mask:#x} (room for indexes 1 to \
                 {}): connections entering {} are not marked, so forwarded and DNAT'ed \
                 traffic is not answered through it",
                i.ifname,
                i.ifindex,
                settings.mark_capacity(),
                i.ifname
            ),
            Some(
                "give fwmark_mask more bits (bits no other tool on this host uses), then \
                 `symroute sync`"
                    .into(),
            ),
        ));
    }
    if !facts.nft_binary {
        out.push(finding(
            "iif_rules",
            Verdict::Fail,
            format!(
                "iif_rules needs nftables to mark connections, but {} is missing",
                nftables::NFT
            ),
            Some("install nftables (apt install nftables, dnf install nftables), then `symroute sync`".into()),
        ));
    }
    let marked = nftables::marked_links(snapshot, settings, &BTreeMap::new());
    let wanted = nftables::table(&marked, settings);
    match &facts.nft_table {
        None => out.push(finding(
            "iif_rules",
            Verdict::Skip,
            format!(
                "table {} could not be read (that needs CAP_NET_ADMIN: run doctor as root)",
                nftables::TABLE
            ),
            None,
        )),
        Some(installed) => {
            if let Some(change) = nftables::change(wanted.as_ref(), installed) {
                let what = match (&change, installed) {
                    (_, NftInstalled::Absent) => "missing",
                    (nftables::NftChange::Delete, _) => "installed though no interface is marked",
                    _ => "not what a sync would make it",
                };
                out.push(finding(
                    "iif_rules",
                    Verdict::Fail,
                    format!(
                        "table {} is {what}: connections are not (all) marked as iif_rules wants",
                        nftables::TABLE
                    ),
                    Some(format!("symroute sync ({})", change.line())),
                ));
            }
        }
    }
    // Someone else's rule that tests mark bits of ours sees symroute's marks (and may set them).
    for rule in snapshot.rules.iter().filter(|r| {
        r.protocol != settings.protocol
            && r.fwmark
                .is_some_and(|(value, rule_mask)| value & rule_mask & mask != 0)
    }) {
        out.push(finding(
            "iif_rules",
            Verdict::Warn,
            format!(
                "`{}` (protocol {}) tests mark bits that fwmark_mask {mask:#x} gives to symroute: \
                 another tool uses them too",
                status::rule_text(rule),
                rule.protocol
            ),
            Some("set fwmark_mask to bits no other tool on this host uses".into()),
        ));
    }
    if out.is_empty() {
        let names: Vec<&str> = marked.iter().map(|m| m.name.as_str()).collect();
        out.push(finding(
            "iif_rules",
            Verdict::Ok,
            if names.is_empty() {
                "no interface with rules yet: nothing to mark".into()
            } else {
                format!(
                    "connections entering {} are marked (fwmark_mask {mask:#x}) and answered \
                     through the interface they came in through",
                    names.join(", ")
                )
            },
            None,
        ));
    }
    out
}

fn check_arp(snapshot: &Snapshot, facts: &HostFacts) -> Vec<Finding> {
    let uplinks = ipv4_interfaces(snapshot);
    if uplinks.len() < 2 {
        return vec![finding(
            "arp",
            Verdict::Skip,
            "fewer than two interfaces with IPv4 addresses".into(),
            None,
        )];
    }
    let mut out = Vec::new();
    // Interfaces sharing a subnet: ARP flux makes traffic for one arrive on the other.
    let mut reported = BTreeSet::new();
    for (a, a_prefixes, _) in &uplinks {
        for (b, _, b_addrs) in &uplinks {
            if a.index >= b.index {
                continue;
            }
            let Some(shared) = a_prefixes
                .iter()
                .find(|p| b_addrs.iter().any(|addr| p.contains(addr)))
            else {
                continue;
            };
            let weak: Vec<&str> = [a, b]
                .iter()
                .filter(|l| {
                    let ignore = effective(facts, &l.name, |c| c.arp_ignore).unwrap_or(0);
                    let filter = effective(facts, &l.name, |c| c.arp_filter).unwrap_or(0);
                    ignore == 0 && filter == 0
                })
                .map(|l| l.name.as_str())
                .collect();
            if weak.is_empty() {
                continue;
            }
            reported.insert(a.index);
            reported.insert(b.index);
            out.push(finding(
                "arp",
                Verdict::Fail,
                format!(
                    "{} and {} share {shared}, and {} answer ARP for any local address \
                     (arp_ignore=0): the other NIC's address is answered from both (ARP flux), \
                     so its traffic can arrive on the wrong interface",
                    a.name,
                    b.name,
                    weak.join(" and ")
                ),
                Some(format!(
                    "sysctl -w net.ipv4.conf.all.arp_ignore=1 net.ipv4.conf.all.arp_announce=2 \
                     {SYSCTL_PERSIST}"
                )),
            ));
        }
    }
    let loose: Vec<&str> = uplinks
        .iter()
        .filter(|(l, _, _)| !reported.contains(&l.index))
        .filter(|(l, _, _)| effective(facts, &l.name, |c| c.arp_announce).is_some_and(|v| v < 2))
        .map(|(l, _, _)| l.name.as_str())
        .collect();
    if !loose.is_empty() {
        out.push(finding(
            "arp",
            Verdict::Warn,
            format!(
                "{}: arp_announce below 2 on a multi-homed host: ARP requests may carry \
                 another interface's address as sender, which routers with strict rp_filter \
                 or ARP inspection ignore",
                loose.join(", ")
            ),
            Some(format!(
                "sysctl -w net.ipv4.conf.all.arp_announce=2 {SYSCTL_PERSIST}"
            )),
        ));
    }
    if out.is_empty() {
        out.push(finding(
            "arp",
            Verdict::Ok,
            "ARP announces the interface's own address; no NICs share a subnet unguarded".into(),
            None,
        ));
    }
    out
}

pub const NETWORKD_DROPIN: &str = "/etc/systemd/networkd.conf.d/symroute.conf";

fn check_networkd(networkd: &Networkd) -> Vec<Finding> {
    let Some(binary) = &networkd.binary else {
        return vec![finding(
            "networkd",
            Verdict::Skip,
            "systemd-networkd is not installed".into(),
            None,
        )];
    };
    let keys = ["ManageForeignRoutingPolicyRules", "ManageForeignRoutes"];
    let on: Vec<String> = keys
        .iter()
        .map(|k| (k, networkd_key(&networkd.files, k)))
        .filter(|(_, v)| v.value)
        .map(|(k, v)| match v.source {
            Some(file) => format!("{k}=yes (set in {})", file.display()),
            None => format!("{k}=yes (the default)"),
        })
        .collect();
    if on.is_empty() {
        return vec![finding(
            "networkd",
            Verdict::Ok,
            "systemd-networkd leaves foreign rules and routes alone".into(),
            None,
        )];
    }
    let (verdict, how) = if networkd.active {
        (Verdict::Fail, "runs")
    } else {
        (Verdict::Warn, "is installed (not running or enabled now)")
    };
    vec![finding(
        "networkd",
        verdict,
        format!(
            "systemd-networkd ({}) {how} with {}: it deletes symroute's rules and routes \
             whenever it configures a link",
            binary.display(),
            on.join(", ")
        ),
        Some(format!(
            "install {NETWORKD_DROPIN} with\n  [Network]\n  ManageForeignRoutingPolicyRules=no\n  \
             ManageForeignRoutes=no\n(shipped as packaging/networkd/symroute.conf), then restart \
             systemd-networkd and run `symroute sync`"
        )),
    )]
}

fn check_integration(facts: &HostFacts) -> Vec<Finding> {
    let mut out = Vec::new();
    let scripts = facts
        .nm_dispatcher
        .iter()
        .map(|i| (i, false))
        .chain(facts.networkd_dispatcher.iter().map(|i| (i, true)));
    for (script, networkd_dispatcher) in scripts {
        let path = script.path.display();
        if let Some((hook, false)) = &script.calls {
            out.push(finding(
                "integration",
                Verdict::Fail,
                format!(
                    "{path} calls {}, which is missing or not executable: every event is \
                     silently ignored",
                    hook.display()
                ),
                Some("reinstall symroute (sudo make install)".into()),
            ));
        }
        let bad_mode = if networkd_dispatcher {
            script.mode != 0o755 || script.uid != 0
        } else {
            script.mode & 0o111 == 0 || script.mode & 0o022 != 0 || script.uid != 0
        };
        if bad_mode {
            let need = if networkd_dispatcher {
                "networkd-dispatcher runs only scripts owned by root with mode exactly 0755"
            } else {
                "NetworkManager runs only executable scripts owned by root and not writable by others"
            };
            out.push(finding(
                "integration",
                Verdict::Fail,
                format!(
                    "{path} has mode {:04o} and owner uid {}: {need}",
                    script.mode, script.uid
                ),
                Some(format!("chown root:root {path} && chmod 0755 {path}")),
            ));
        }
    }
    let mut found: Vec<String> = Vec::new();
    if let Some(i) = facts.nm_dispatcher.first() {
        found.push(format!(
            "NetworkManager dispatcher script {}",
            i.path.display()
        ));
    }
    if let Some(i) = facts.networkd_dispatcher.first() {
        found.push(format!(
            "networkd-dispatcher scripts ({} state folder(s), e.g. {})",
            facts.networkd_dispatcher.len(),
            i.path.display()
        ));
    }
    if let Some(u) = facts.daemon_unit.first() {
        found.push(format!("daemon unit {}", u.display()));
    }
    if found.is_empty() {
        out.push(finding(
            "integration",
            Verdict::Fail,
            "nothing runs symroute when interfaces change: no NetworkManager dispatcher script \
             (dispatcher.d/50-symroute), no networkd-dispatcher scripts and no symrouted.service"
                .into(),
            Some(
                "sudo make install (installs the scripts for the network manager in use), or \
                 install and enable symrouted.service"
                    .into(),
            ),
        ));
    } else if out.is_empty() {
        out.push(finding(
            "integration",
            Verdict::Ok,
            format!("installed: {}", found.join("; ")),
            None,
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MAIN_TABLE;
    use crate::status::tests::{addr, host, link, route, rule, synced, ETH0, ETH1};
    use crate::status::{status, LOCAL_TABLE};

    fn conf(rp: u32, announce: u32, ignore: u32, forwarding: u32) -> Conf {
        Conf {
            rp_filter: Some(rp),
            arp_announce: Some(announce),
            arp_ignore: Some(ignore),
            arp_filter: Some(0),
            forwarding: Some(forwarding),
            ipv6_forwarding: Some(forwarding),
        }
    }

    fn script(path: &str) -> Installed {
        Installed {
            path: path.into(),
            mode: 0o755,
            uid: 0,
            calls: Some(("/usr/local/sbin/symroute-hook".into(), true)),
        }
    }

    /// A well-configured host: synced, loose ARP settings fixed, NM script installed.
    fn good_facts() -> HostFacts {
        let mut conf_map = BTreeMap::new();
        conf_map.insert("all".into(), conf(0, 2, 1, 0));
        conf_map.insert("default".into(), conf(0, 0, 0, 0));
        conf_map.insert("eth0".into(), conf(0, 0, 0, 0));
        conf_map.insert("eth1".into(), conf(0, 0, 0, 0));
        HostFacts {
            conf: conf_map,
            nm_dispatcher: vec![script("/etc/NetworkManager/dispatcher.d/50-symroute")],
            ..HostFacts::default()
        }
    }

    fn run(snapshot: &Snapshot, settings: &Settings, facts: &HostFacts) -> Diagnosis {
        diagnose(snapshot, settings, &status(snapshot, settings), facts)
    }

    fn verdicts(d: &Diagnosis, check: &str) -> Vec<Verdict> {
        d.findings
            .iter()
            .filter(|f| f.check == check)
            .map(|f| f.verdict)
            .collect()
    }

    fn only<'a>(d: &'a Diagnosis, check: &str) -> &'a Finding {
        let found: Vec<&Finding> = d.findings.iter().filter(|f| f.check == check).collect();
        assert_eq!(found.len(), 1, "{found:#?}");
        found[0]
    }

    #[test]
    fn healthy_host_passes() {
        let settings = Settings::default();
        let d = run(&synced(host(), &settings), &settings, &good_facts());
        assert!(d.ok, "{}", d.render());
        assert!(
            d.findings
                .iter()
                .all(|f| matches!(f.verdict, Verdict::Ok | Verdict::Skip)),
            "{}",
            d.render()
        );
        assert!(d.render().ends_with("no problem found\n"));
    }

    #[test]
    fn out_of_sync_host_fails_with_sync_as_the_fix() {
        let d = run(&host(), &Settings::default(), &good_facts());
        assert!(!d.ok);
        let sync: Vec<&Finding> = d.findings.iter().filter(|f| f.check == "sync").collect();
        assert_eq!(sync.len(), 2);
        assert!(sync[0].message.starts_with("eth0: 3 change(s) pending"));
        assert_eq!(
            sync[1].fix.as_deref().unwrap().split(' ').nth(1),
            Some("sync")
        );
    }

    #[test]
    fn strict_rp_filter_is_fine_for_local_traffic_but_not_for_forwarding() {
        let settings = Settings::default();
        let snap = synced(host(), &settings);
        let mut facts = good_facts();
        facts.conf.insert("all".into(), conf(1, 2, 1, 0));
        let d = run(&snap, &settings, &facts);
        assert_eq!(verdicts(&d, "rp_filter"), [Verdict::Ok, Verdict::Ok]);

        // Forwarding on: forwarded traffic whose answer leaves elsewhere is dropped, and
        // symroute's rules cannot help (the kernel checks with the egress as `iif`).
        facts.conf.insert("eth1".into(), conf(0, 0, 0, 1));
        let d = run(&snap, &settings, &facts);
        assert_eq!(verdicts(&d, "rp_filter"), [Verdict::Ok, Verdict::Fail]);
        assert!(!d.ok);
        let fail = d
            .findings
            .iter()
            .find(|f| f.verdict == Verdict::Fail)
            .unwrap();
        assert!(fail
            .message
            .starts_with("eth1: rp_filter=1 (strict) and the host forwards"));
        assert_eq!(
            fail.fix.as_deref(),
            Some(
                "loosen: sysctl -w net.ipv4.conf.all.rp_filter=2 net.ipv4.conf.eth1.rp_filter=2 \
                 (persist it in /etc/sysctl.d/)"
            )
        );
    }

    /// The table a sync installs for the snapshot's interfaces with rules.
    fn installed_table(snap: &Snapshot, settings: &Settings) -> NftInstalled {
        let marked = nftables::marked_links(snap, settings, &BTreeMap::new());
        NftInstalled::Present {
            comment: nftables::table(&marked, settings).map(|t| t.comment),
        }
    }

    fn iif_findings(d: &Diagnosis) -> Vec<&Finding> {
        d.findings
            .iter()
            .filter(|f| f.check == "iif_rules")
            .collect()
    }

    #[test]
    fn iif_rules_need_nft_and_a_current_table() {
        let settings = Settings {
            iif_rules: true,
            ..Settings::default()
        };
        let snap = synced(host(), &settings);
        let mut facts = good_facts();
        facts.nft_binary = true;
        facts.nft_table = Some(installed_table(&snap, &settings));
        let d = run(&snap, &settings, &facts);
        assert_eq!(
            only(&d, "iif_rules").message,
            "connections entering eth0, eth1 are marked (fwmark_mask 0xff000000) and answered \
             through the interface they came in through"
        );
        assert!(d.ok, "{}", d.render());

        // Not installed (someone ran `nft flush ruleset`), or from another configuration.
        for table in [
            NftInstalled::Absent,
            NftInstalled::Present {
                comment: Some("symroute iif_rules 0000000000000000".into()),
            },
        ] {
            facts.nft_table = Some(table);
            let d = run(&snap, &settings, &facts);
            let f = only(&d, "iif_rules");
            assert_eq!(f.verdict, Verdict::Fail);
            assert!(
                f.message.starts_with("table inet symroute is "),
                "{}",
                f.message
            );
            assert_eq!(
                f.fix.as_deref(),
                Some("symroute sync (nft: replace table inet symroute (2 interfaces))")
            );
        }
        // Unknown without privileges; nft missing is a failure of its own.
        facts.nft_table = None;
        facts.nft_binary = false;
        let d = run(&snap, &settings, &facts);
        assert_eq!(verdicts(&d, "iif_rules"), [Verdict::Fail, Verdict::Skip]);
        assert_eq!(
            iif_findings(&d)[0].message,
            "iif_rules needs nftables to mark connections, but /usr/sbin/nft is missing"
        );
        assert!(iif_findings(&d)[1].message.contains("CAP_NET_ADMIN"));
    }

    #[test]
    fn iif_rules_report_unmarkable_interfaces_and_foreign_users_of_the_mark_bits() {
        let settings = Settings {
            iif_rules: true,
            fwmark_mask: 0x0300_0000,
            ..Settings::default()
        };
        let mut snap = host();
        snap.links.push(link(7, "ppp0"));
        snap.addresses.push(addr(7, "192.0.2.7", 32));
        // Tailscale's rule keeps to its own byte; the other one tests symroute's bits.
        let mut tailscale = rule(5210, None, MAIN_TABLE, 4);
        tailscale.fwmark = Some((0x80000, 0xff0000));
        let mut clash = rule(100, None, 77, 4);
        clash.fwmark = Some((0x0100_0000, 0x0100_0000));
        snap.rules.extend([tailscale, clash]);
        let snap = synced(snap, &settings);
        let mut facts = good_facts();
        facts.nft_binary = true;
        facts.nft_table = Some(installed_table(&snap, &settings));
        let d = run(&snap, &settings, &facts);
        let f = iif_findings(&d);
        assert_eq!(f.len(), 2, "{f:#?}");
        assert_eq!(f[0].verdict, Verdict::Fail);
        assert!(f[0].message.starts_with(
            "ppp0: its index 7 does not fit in fwmark_mask 0x3000000 (room for indexes 1 to 3)"
        ));
        assert_eq!(f[1].verdict, Verdict::Warn);
        assert_eq!(
            f[1].message,
            "`from all fwmark 0x1000000/0x1000000 lookup 77 priority 100` (protocol 4) tests \
             mark bits that fwmark_mask 0x3000000 gives to symroute: another tool uses them too"
        );
    }

    #[test]
    fn iif_rules_off_skips_unless_the_table_is_left_behind() {
        let settings = Settings::default();
        let snap = synced(host(), &settings);
        let mut facts = good_facts();
        assert_eq!(
            verdicts(&run(&snap, &settings, &facts), "iif_rules"),
            [Verdict::Skip]
        );
        facts.nft_table = Some(NftInstalled::Absent);
        assert_eq!(
            verdicts(&run(&snap, &settings, &facts), "iif_rules"),
            [Verdict::Skip]
        );
        facts.nft_table = Some(NftInstalled::Present { comment: None });
        let d = run(&snap, &settings, &facts);
        assert_eq!(verdicts(&d, "iif_rules"), [Verdict::Warn]);
        assert_eq!(
            only(&d, "iif_rules").fix.as_deref(),
            Some("symroute sync (removes it)")
        );
    }

    #[test]
    fn strict_rp_filter_on_an_excluded_interface_fails() {
        let settings = Settings {
            exclude: vec!["eth1".into()],
            ..Settings::default()
        };
        let mut facts = good_facts();
        facts.conf.insert("eth1".into(), conf(1, 0, 0, 0));
        let d = run(&synced(host(), &settings), &settings, &facts);
        assert_eq!(verdicts(&d, "rp_filter"), [Verdict::Fail]);
        assert!(only(&d, "rp_filter").message.contains("leaves alone"));
    }

    #[test]
    fn single_homed_host_skips_rp_filter_and_arp() {
        let settings = Settings::default();
        let mut snap = host();
        snap.addresses.retain(|a| a.ifindex != ETH1);
        let d = run(&synced(snap, &settings), &settings, &good_facts());
        assert_eq!(verdicts(&d, "rp_filter"), [Verdict::Skip]);
        assert_eq!(verdicts(&d, "arp"), [Verdict::Skip]);
    }

    #[test]
    fn arp_announce_below_two_warns_on_multi_homed_hosts() {
        let settings = Settings::default();
        let mut facts = good_facts();
        facts.conf.insert("all".into(), conf(0, 0, 0, 0));
        let d = run(&synced(host(), &settings), &settings, &facts);
        let f = only(&d, "arp");
        assert_eq!(f.verdict, Verdict::Warn);
        assert!(f.message.starts_with("eth0, eth1: arp_announce below 2"));
        assert!(f.fix.as_deref().unwrap().contains("arp_announce=2"));
        assert!(d.ok, "a warning alone is not a failure");
    }

    #[test]
    fn same_subnet_nics_without_arp_ignore_fail() {
        let settings = Settings::default();
        let mut snap = host();
        snap.addresses.push(addr(ETH0, "10.2.0.7", 24));
        let mut facts = good_facts();
        facts.conf.insert("all".into(), conf(0, 2, 0, 0));
        let d = run(&synced(snap.clone(), &settings), &settings, &facts);
        let f = only(&d, "arp");
        assert_eq!(f.verdict, Verdict::Fail);
        assert!(
            f.message.starts_with("eth0 and eth1 share 10.1.0.0/24")
                || f.message.starts_with("eth0 and eth1 share 10.2.0.0/24"),
            "{}",
            f.message
        );
        assert!(f.fix.as_deref().unwrap().contains("arp_ignore=1"));
        // arp_ignore=1 on all (max with the device) guards both.
        facts.conf.insert("all".into(), conf(0, 2, 1, 0));
        let d = run(&synced(snap, &settings), &settings, &facts);
        assert_eq!(verdicts(&d, "arp"), [Verdict::Ok]);
    }

    #[test]
    fn foreign_table_fails_and_suggests_a_free_base() {
        let settings = Settings::default();
        let mut snap = host();
        snap.tables.insert(
            1003,
            vec![route(1003, "203.0.113.0", 24, Some("10.2.0.1"), ETH1, 4)],
        );
        // 2000 range is taken too: a rule points at 2002.
        snap.rules.push(rule(500, Some(("10.9.0.0", 16)), 2002, 4));
        let d = run(&snap, &settings, &good_facts());
        let f = only(&d, "tables");
        assert_eq!(f.verdict, Verdict::Fail);
        assert!(
            f.message
                .starts_with("table 1003 (for eth1) holds someone else's route: 203.0.113.0/24"),
            "{}",
            f.message
        );
        assert!(
            f.fix
                .as_deref()
                .unwrap()
                .starts_with("set `table_base = 3000`"),
            "{:?}",
            f.fix
        );
    }

    #[test]
    fn foreign_rule_or_name_for_our_table() {
        let settings = Settings::default();
        let mut snap = synced(host(), &settings);
        snap.rules.push(rule(100, Some(("10.9.9.9", 32)), 1002, 4));
        let mut facts = good_facts();
        facts
            .table_names
            .push((1003, "vpn".into(), "/etc/iproute2/rt_tables".into()));
        let d = run(&snap, &settings, &facts);
        assert_eq!(verdicts(&d, "tables"), [Verdict::Fail, Verdict::Warn]);
        assert!(d.findings.iter().any(|f| f.message
            == "table 1003 (for eth1) is named \"vpn\" in /etc/iproute2/rt_tables: another tool may use it"));
    }

    #[test]
    fn shadowing_catch_all_fails_partial_warns() {
        let settings = Settings::default();
        let mut snap = synced(host(), &settings);
        snap.rules.push(rule(100, None, 51820, 4));
        snap.tables.insert(
            51820,
            vec![route(51820, "0.0.0.0", 0, Some("10.2.0.1"), ETH1, 4)],
        );
        let d = run(&snap, &settings, &good_facts());
        assert_eq!(verdicts(&d, "shadowing"), [Verdict::Fail, Verdict::Fail]);
        assert!(d.findings[..].iter().any(|f| f.message
            == "eth1: `from all lookup 51820 priority 100` (table 51820) takes all traffic before ours, `from 10.2.0.2 lookup 1003 priority 32000`"));
        // Rules that end in tables without routes, the local table and main after ours are
        // normal.
        let snap = synced(host(), &settings);
        assert!(snap.rules.iter().any(|r| r.table == LOCAL_TABLE));
        assert!(snap.rules.iter().any(|r| r.table == MAIN_TABLE));
        let d = run(&snap, &settings, &good_facts());
        assert_eq!(verdicts(&d, "shadowing"), [Verdict::Ok]);
    }

    #[test]
    fn networkd_keys_follow_file_order_and_defaults() {
        let files = |list: &[(&str, &str)]| -> Vec<(PathBuf, String)> {
            list.iter()
                .map(|(p, t)| (PathBuf::from(p), t.to_string()))
                .collect()
        };
        let k = "ManageForeignRoutingPolicyRules";
        assert_eq!(
            networkd_key(&[], k),
            NetworkdKey {
                value: true,
                source: None
            }
        );
        let f = files(&[
            (
                "/etc/systemd/networkd.conf",
                "[Network]\n#ManageForeignRoutingPolicyRules=no\n",
            ),
            (
                "/etc/systemd/networkd.conf.d/symroute.conf",
                "[Network]\nManageForeignRoutingPolicyRules = no\n",
            ),
        ]);
        assert_eq!(
            networkd_key(&f, k),
            NetworkdKey {
                value: false,
                source: Some("/etc/systemd/networkd.conf.d/symroute.conf".into())
            }
        );
        // A later drop-in turns it back on; a key in another section does not count; an
        // unparsable value is ignored; an empty one resets to yes.
        let f = files(&[
            ("/a.conf", "[Network]\nManageForeignRoutingPolicyRules=off\n"),
            ("/b.conf", "[DHCPv4]\nManageForeignRoutingPolicyRules=yes\n[Network]\nManageForeignRoutingPolicyRules=maybe\n"),
        ]);
        assert!(!networkd_key(&f, k).value);
        let f = files(&[
            ("/a.conf", "[Network]\nManageForeignRoutingPolicyRules=no\n"),
            ("/z.conf", "[Network]\nManageForeignRoutingPolicyRules=\n"),
        ]);
        assert_eq!(
            networkd_key(&f, k),
            NetworkdKey {
                value: true,
                source: Some("/z.conf".into())
            }
        );
    }

    #[test]
    fn networkd_check_depends_on_install_and_activity() {
        let settings = Settings::default();
        let snap = synced(host(), &settings);
        let mut facts = good_facts();
        let d = run(&snap, &settings, &facts);
        assert_eq!(verdicts(&d, "networkd"), [Verdict::Skip]);

        facts.networkd.binary = Some("/lib/systemd/systemd-networkd".into());
        let d = run(&snap, &settings, &facts);
        assert_eq!(verdicts(&d, "networkd"), [Verdict::Warn]);
        facts.networkd.active = true;
        let d = run(&snap, &settings, &facts);
        let f = only(&d, "networkd");
        assert_eq!(f.verdict, Verdict::Fail);
        assert!(f.message.contains("ManageForeignRoutingPolicyRules=yes (the default), ManageForeignRoutes=yes (the default)"), "{}", f.message);
        assert!(f.fix.as_deref().unwrap().contains(NETWORKD_DROPIN));

        facts.networkd.files = vec![(
            NETWORKD_DROPIN.into(),
            "[Network]\nManageForeignRoutingPolicyRules=no\nManageForeignRoutes=no\n".into(),
        )];
        let d = run(&snap, &settings, &facts);
        assert_eq!(verdicts(&d, "networkd"), [Verdict::Ok]);
    }

    #[test]
    fn integration_missing_broken_or_badly_installed() {
        let settings = Settings::default();
        let snap = synced(host(), &settings);
        let mut facts = good_facts();
        facts.nm_dispatcher.clear();
        let d = run(&snap, &settings, &facts);
        assert_eq!(verdicts(&d, "integration"), [Verdict::Fail]);

        facts.daemon_unit = vec!["/usr/lib/systemd/system/symrouted.service".into()];
        let d = run(&snap, &settings, &facts);
        assert_eq!(verdicts(&d, "integration"), [Verdict::Ok]);

        let mut nd = script("/etc/networkd-dispatcher/routable.d/50-symroute");
        nd.mode = 0o775;
        let mut nm = script("/etc/NetworkManager/dispatcher.d/50-symroute");
        nm.calls = Some(("/usr/local/sbin/symroute-hook".into(), false));
        facts.networkd_dispatcher = vec![nd];
        facts.nm_dispatcher = vec![nm];
        let d = run(&snap, &settings, &facts);
        assert_eq!(verdicts(&d, "integration"), [Verdict::Fail, Verdict::Fail]);
        assert!(d.findings.iter().any(|f| f.message.contains("mode 0775")));
        assert!(d
            .findings
            .iter()
            .any(|f| f.message.contains("silently ignored")));
    }

    #[test]
    fn json_shape() {
        let d = run(&host(), &Settings::default(), &HostFacts::default());
        let json = serde_json::to_value(&d).unwrap();
        assert_eq!(json["ok"], false);
        assert_eq!(json["findings"][0]["check"], "sync");
        assert_eq!(json["findings"][0]["verdict"], "fail");
        assert!(json["findings"][0]["fix"].is_string());
    }

    #[test]
    fn facts_are_read_from_files_below_a_root() {
        let root = std::env::temp_dir().join(format!("symroute-doctor-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let r = root.as_path();
        let write = |p: &str, text: &str| {
            let path = r.join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, text).unwrap();
            path
        };
        write("proc/sys/net/ipv4/conf/all/rp_filter", "1\n");
        write("proc/sys/net/ipv4/conf/eth1/arp_announce", "2\n");
        write("proc/sys/net/ipv6/conf/eth1/forwarding", "1\n");
        write("lib/systemd/systemd-networkd", "");
        write("etc/systemd/networkd.conf", "[Network]\n");
        write(
            "usr/lib/systemd/networkd.conf.d/symroute.conf",
            "[Network]\nManageForeignRoutes=no\n",
        );
        write(
            "etc/systemd/networkd.conf.d/symroute.conf",
            "[Network]\nManageForeignRoutingPolicyRules=no\n",
        );
        write("usr/lib/systemd/networkd.conf.d/10-other.conf", "");
        write(
            "etc/iproute2/rt_tables",
            "255 local\n254 main\n# 1 comment\n0x3ea\tvpn\n",
        );
        write(
            "etc/iproute2/rt_tables.d/symroute.conf",
            "1003 symroute-eth1\n",
        );
        let hook = write("usr/local/sbin/symroute-hook", "");
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
        write(
            "etc/NetworkManager/dispatcher.d/50-symroute",
            "#!/bin/sh\nHOOK=/usr/local/sbin/symroute-hook\n",
        );
        write(
            "etc/networkd-dispatcher/off.d/50-symroute",
            "#!/bin/sh\nHOOK=/usr/sbin/symroute-hook\n",
        );
        write("lib/systemd/system/symrouted.service", "");
        let facts = HostFacts::read(r, &[link(ETH1, "eth1")]);

        assert_eq!(facts.conf["all"].rp_filter, Some(1));
        assert_eq!(facts.conf["eth1"].arp_announce, Some(2));
        assert_eq!(facts.conf["eth1"].rp_filter, None);
        assert_eq!(facts.conf["eth1"].ipv6_forwarding, Some(1));
        assert!(facts.networkd.binary.is_some());
        let files: Vec<String> = facts
            .networkd
            .files
            .iter()
            .map(|(p, _)| p.strip_prefix(r).unwrap().display().to_string())
            .collect();
        // The /etc drop-in masks the /usr/lib one of the same name.
        assert_eq!(
            files,
            [
                "etc/systemd/networkd.conf",
                "usr/lib/systemd/networkd.conf.d/10-other.conf",
                "etc/systemd/networkd.conf.d/symroute.conf"
            ]
        );
        assert!(!networkd_key(&facts.networkd.files, "ManageForeignRoutingPolicyRules").value);
        assert!(networkd_key(&facts.networkd.files, "ManageForeignRoutes").value);
        let names: Vec<(u32, &str)> = facts
            .table_names
            .iter()
            .map(|(t, n, _)| (*t, n.as_str()))
            .collect();
        assert_eq!(names, [(255, "local"), (254, "main"), (1002, "vpn")]);
        assert_eq!(facts.nm_dispatcher.len(), 1);
        assert_eq!(
            facts.nm_dispatcher[0].calls,
            Some(("/usr/local/sbin/symroute-hook".into(), true))
        );
        assert_eq!(
            facts.networkd_dispatcher[0].calls,
            Some(("/usr/sbin/symroute-hook".into(), false))
        );
        assert_eq!(facts.daemon_unit.len(), 1);
        let _ = std::fs::remove_dir_all(&root);
    }
}
