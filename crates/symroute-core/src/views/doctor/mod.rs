//! `symroute doctor`: checks of the host around symroute, each with a verdict and a fix.
//!
//! The checks ([`diagnose`]) are pure functions over a full [`Snapshot`] and a few facts about
//! the host ([`HostFacts`]: sysctls, systemd-networkd's configuration, installed integrations,
//! table names, and the kernel's lookups of the host's replies), read by
//! [`HostFacts::read`](crate::kernel::host) and `admin::doctor`. They are grouped by what
//! they look at: [`routing`] (symroute's own state), [`replies`] (where the kernel sends
//! replies from the uplinks' addresses), [`sysctl`] (rp_filter, ARP), [`integration`]
//! (nftables, networkd, dispatchers, daemon).

mod facts;
mod health;
mod integration;
mod nat;
mod replies;
mod routing;
mod sysctl;

use crate::model::uplinks::Uplinks;
use serde::Serialize;

pub use crate::model::host::HostFacts;
use crate::model::Snapshot;
use crate::settings::Settings;
use crate::views::status::Status;
use integration::{check_iif_rules, check_integration, check_networkd};
use routing::{check_shadowing, check_sync, check_tables};
use sysctl::{check_arp, check_rp_filter};

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
    /// `sync`, `tables`, `shadowing`, `replies`, `rp_filter`, `iif_rules`, `nat`, `arp`,
    /// `networkd`, `integration` or `health`.
    pub check: &'static str,
    pub verdict: Verdict,
    pub message: String,
    /// What to do about it (absent for `ok` and `skip`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    /// A `skip` because something could not be read without privileges: the command line
    /// also says so on stderr ([`Diagnosis::unseen`]).
    #[serde(skip)]
    pub unseen: bool,
}

/// A check, by the name its findings carry; it makes them, so that `ok` and `skip` come
/// without a fix and `warn` and `fail` with one.
#[derive(Debug, Clone, Copy)]
struct Check(&'static str);

const SYNC: Check = Check("sync");
const TABLES: Check = Check("tables");
const SHADOWING: Check = Check("shadowing");
const REPLIES: Check = Check("replies");
const RP_FILTER: Check = Check("rp_filter");
const IIF_RULES: Check = Check("iif_rules");
const NAT: Check = Check("nat");
const ARP: Check = Check("arp");
const NETWORKD: Check = Check("networkd");
const INTEGRATION: Check = Check("integration");
const HEALTH: Check = Check("health");

impl Check {
    fn finding(self, verdict: Verdict, message: String, fix: Option<String>) -> Finding {
        Finding {
            check: self.0,
            verdict,
            message,
            fix,
            unseen: false,
        }
    }

    /// A `skip` for what could not be read (not root).
    fn unseen(self, message: impl Into<String>) -> Finding {
        Finding {
            unseen: true,
            ..self.skip(message)
        }
    }

    fn ok(self, message: impl Into<String>) -> Finding {
        self.finding(Verdict::Ok, message.into(), None)
    }

    fn skip(self, message: impl Into<String>) -> Finding {
        self.finding(Verdict::Skip, message.into(), None)
    }

    fn warn(self, message: impl Into<String>, fix: impl Into<String>) -> Finding {
        self.finding(Verdict::Warn, message.into(), Some(fix.into()))
    }

    fn fail(self, message: impl Into<String>, fix: impl Into<String>) -> Finding {
        self.finding(Verdict::Fail, message.into(), Some(fix.into()))
    }
}

/// Everything `symroute doctor` reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnosis {
    /// False when any finding is `fail`.
    pub ok: bool,
    pub findings: Vec<Finding>,
}

impl Diagnosis {
    /// The checks skipped because something could not be read without privileges.
    pub fn unseen(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.unseen)
    }
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

/// Runs every check. `status` must be [`status::status`] of the same snapshot, `uplinks`
/// its main's uplinks (classified by the read).
pub fn diagnose(
    snapshot: &Snapshot,
    uplinks: &Uplinks,
    settings: &Settings,
    status: &Status,
    facts: &HostFacts,
) -> Diagnosis {
    let mut findings = Vec::new();
    findings.extend(check_sync(status));
    findings.extend(check_tables(snapshot, settings, status, facts));
    findings.extend(check_shadowing(status, settings));
    findings.extend(replies::check_replies(snapshot, uplinks, settings, facts));
    findings.extend(check_rp_filter(snapshot, settings, status, facts));
    findings.extend(check_iif_rules(snapshot, settings, status, facts));
    findings.extend(nat::check(snapshot, uplinks, settings, facts));
    findings.extend(check_arp(snapshot, facts));
    findings.extend(check_networkd(&facts.networkd));
    findings.extend(check_integration(facts));
    findings.extend(health::check_health(settings, facts));
    Diagnosis {
        ok: findings.iter().all(|f| f.verdict != Verdict::Fail),
        findings,
    }
}

#[cfg(test)]
mod tests {
    use super::facts::networkd_key;
    use super::integration::NETWORKD_DROPIN;
    use super::*;
    use crate::fixtures::{
        addr, host, link, route, rule, status_of, synced, with_vpn_catch_all, ETH0, ETH1,
    };
    use crate::model::host::{Conf, Installed};
    use crate::model::MAIN_TABLE;
    use std::collections::BTreeMap;
    use std::os::unix::fs::PermissionsExt;

    use crate::model::{NftInstalled, LOCAL_TABLE};
    use crate::plan::nft as nftables;

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
        let uplinks = Uplinks::of(snapshot, settings.protocol);
        diagnose(
            snapshot,
            &uplinks,
            settings,
            &status_of(snapshot, settings),
            facts,
        )
    }

    /// `diagnose` of the synced sample host under the default settings.
    fn synced_run(facts: &HostFacts) -> Diagnosis {
        let settings = Settings::default();
        run(&synced(host(), &settings), &settings, facts)
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
        let d = synced_run(&good_facts());
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
        let mut facts = good_facts();
        facts.conf.insert("all".into(), conf(1, 2, 1, 0));
        let d = synced_run(&facts);
        assert_eq!(verdicts(&d, "rp_filter"), [Verdict::Ok, Verdict::Ok]);

        // Forwarding on: forwarded traffic whose answer leaves elsewhere is dropped, and
        // symroute's rules cannot help (the kernel checks with the egress as `iif`).
        facts.conf.insert("eth1".into(), conf(0, 0, 0, 1));
        let d = synced_run(&facts);
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
        let mut facts = good_facts();
        assert_eq!(verdicts(&synced_run(&facts), "iif_rules"), [Verdict::Skip]);
        facts.nft_table = Some(NftInstalled::Absent);
        assert_eq!(verdicts(&synced_run(&facts), "iif_rules"), [Verdict::Skip]);
        facts.nft_table = Some(NftInstalled::Present { comment: None });
        let d = synced_run(&facts);
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
        let mut facts = good_facts();
        facts.conf.insert("all".into(), conf(0, 0, 0, 0));
        let d = synced_run(&facts);
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
        let snap = with_vpn_catch_all(synced(host(), &settings));
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
    fn networkd_check_depends_on_install_and_activity() {
        let mut facts = good_facts();
        let d = synced_run(&facts);
        assert_eq!(verdicts(&d, "networkd"), [Verdict::Skip]);

        facts.networkd.binary = Some("/lib/systemd/systemd-networkd".into());
        let d = synced_run(&facts);
        assert_eq!(verdicts(&d, "networkd"), [Verdict::Warn]);
        facts.networkd.active = true;
        let d = synced_run(&facts);
        let f = only(&d, "networkd");
        assert_eq!(f.verdict, Verdict::Fail);
        assert!(f.message.contains("ManageForeignRoutingPolicyRules=yes (the default), ManageForeignRoutes=yes (the default)"), "{}", f.message);
        assert!(f.fix.as_deref().unwrap().contains(NETWORKD_DROPIN));

        facts.networkd.files = vec![(
            NETWORKD_DROPIN.into(),
            "[Network]\nManageForeignRoutingPolicyRules=no\nManageForeignRoutes=no\n".into(),
        )];
        let d = synced_run(&facts);
        assert_eq!(verdicts(&d, "networkd"), [Verdict::Ok]);
    }

    #[test]
    fn integration_missing_broken_or_badly_installed() {
        let mut facts = good_facts();
        facts.nm_dispatcher.clear();
        let d = synced_run(&facts);
        assert_eq!(verdicts(&d, "integration"), [Verdict::Fail]);

        facts.daemon_unit = vec!["/usr/lib/systemd/system/symrouted.service".into()];
        let d = synced_run(&facts);
        assert_eq!(verdicts(&d, "integration"), [Verdict::Ok]);

        let mut nd = script("/etc/networkd-dispatcher/routable.d/50-symroute");
        nd.mode = 0o775;
        let mut nm = script("/etc/NetworkManager/dispatcher.d/50-symroute");
        nm.calls = Some(("/usr/local/sbin/symroute-hook".into(), false));
        facts.networkd_dispatcher = vec![nd];
        facts.nm_dispatcher = vec![nm];
        let d = synced_run(&facts);
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
