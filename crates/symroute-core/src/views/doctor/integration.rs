//! Checks of what runs symroute and what it works with: `iif_rules`' nftables table,
//! systemd-networkd's foreign-state settings, the installed dispatchers and daemon.

use std::collections::BTreeMap;

use super::facts::networkd_key;
use super::{Finding, Verdict, IIF_RULES, INTEGRATION, NETWORKD};
use crate::model::host::{HostFacts, Networkd};
use crate::model::nft::{NFT, TABLE};
use crate::model::{NftChange, NftInstalled, Snapshot};
use crate::plan::nft;
use crate::settings::Settings;
use crate::views::iproute::rule_text;
use crate::views::status::Status;

/// With `iif_rules`, connections are marked with the interface they came in through and their
/// answers routed by its table: each marked interface needs an index that fits in
/// `fwmark_mask`, `nft` must be there to write `table inet symroute`, the table must be
/// current, and no one else's rule may test the same mark bits.
pub(super) fn check_iif_rules(
    snapshot: &Snapshot,
    settings: &Settings,
    status: &Status,
    facts: &HostFacts,
) -> Vec<Finding> {
    if !settings.iif_rules {
        if let Some(NftInstalled::Present { .. }) = facts.nft_table {
            return vec![IIF_RULES.warn(
                format!("iif_rules is off, but table {} is still installed", TABLE),
                "symroute sync (removes it)",
            )];
        }
        return vec![IIF_RULES.skip("iif_rules is off")];
    }
    let mut out = Vec::new();
    let mask = settings.fwmark_mask;
    for i in status
        .interfaces
        .iter()
        .filter(|i| i.managed && !i.addresses.is_empty() && settings.mark_for(i.ifindex).is_none())
    {
        out.push(IIF_RULES.fail(
            format!(
                "{}: its index {} does not fit in fwmark_mask {mask:#x} (room for indexes 1 to \
                 {}): connections entering {} are not marked, so forwarded and DNAT'ed \
                 traffic is not answered through it",
                i.ifname,
                i.ifindex,
                settings.mark_capacity(),
                i.ifname
            ),
            "give fwmark_mask more bits (bits no other tool on this host uses), then \
             `symroute sync`",
        ));
    }
    if !facts.nft_binary {
        out.push(IIF_RULES.fail(
            format!(
                "iif_rules needs nftables to mark connections, but {} is missing",
                NFT
            ),
            "install nftables (apt install nftables, dnf install nftables), then `symroute sync`",
        ));
    }
    let marked = nft::marked_links(snapshot, settings, &BTreeMap::new());
    let wanted = nft::table(&marked, settings);
    match &facts.nft_table {
        None => out.push(IIF_RULES.unseen(format!(
            "table {} could not be read (that needs CAP_NET_ADMIN: run doctor as root)",
            TABLE
        ))),
        Some(installed) => {
            if let Some(change) = nft::change(wanted.as_ref(), installed) {
                let what = match (&change, installed) {
                    (_, NftInstalled::Absent) => "missing",
                    (NftChange::Delete, _) => "installed though no interface is marked",
                    _ => "not what a sync would make it",
                };
                out.push(IIF_RULES.fail(
                    format!(
                        "table {} is {what}: connections are not (all) marked as iif_rules wants",
                        TABLE
                    ),
                    format!("symroute sync ({})", change.line()),
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
        out.push(IIF_RULES.warn(
            format!(
                "`{}` (protocol {}) tests mark bits that fwmark_mask {mask:#x} gives to symroute: \
                 another tool uses them too",
                rule_text(rule),
                rule.protocol
            ),
            "set fwmark_mask to bits no other tool on this host uses",
        ));
    }
    if out.is_empty() {
        let names: Vec<&str> = marked.iter().map(|m| m.name.as_str()).collect();
        out.push(IIF_RULES.ok(if names.is_empty() {
            "no interface with rules yet: nothing to mark".into()
        } else {
            format!(
                "connections entering {} are marked (fwmark_mask {mask:#x}) and answered \
                 through the interface they came in through",
                names.join(", ")
            )
        }));
    }
    out
}

pub const NETWORKD_DROPIN: &str = "/etc/systemd/networkd.conf.d/symroute.conf";

pub(super) fn check_networkd(networkd: &Networkd) -> Vec<Finding> {
    let Some(binary) = &networkd.binary else {
        return vec![NETWORKD.skip("systemd-networkd is not installed")];
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
        return vec![NETWORKD.ok("systemd-networkd leaves foreign rules and routes alone")];
    }
    let (verdict, how) = if networkd.active {
        (Verdict::Fail, "runs")
    } else {
        (Verdict::Warn, "is installed (not running or enabled now)")
    };
    vec![NETWORKD.finding(
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

pub(super) fn check_integration(facts: &HostFacts) -> Vec<Finding> {
    let mut out = Vec::new();
    let scripts = facts
        .nm_dispatcher
        .iter()
        .map(|i| (i, false))
        .chain(facts.networkd_dispatcher.iter().map(|i| (i, true)));
    for (script, networkd_dispatcher) in scripts {
        let path = script.path.display();
        if let Some((hook, false)) = &script.calls {
            out.push(INTEGRATION.fail(
                format!(
                    "{path} calls {}, which is missing or not executable: every event is \
                     silently ignored",
                    hook.display()
                ),
                "reinstall symroute (sudo make install)",
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
            out.push(INTEGRATION.fail(
                format!(
                    "{path} has mode {:04o} and owner uid {}: {need}",
                    script.mode, script.uid
                ),
                format!("chown root:root {path} && chmod 0755 {path}"),
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
        out.push(INTEGRATION.fail(
            "nothing runs symroute when interfaces change: no NetworkManager dispatcher script \
             (dispatcher.d/50-symroute), no networkd-dispatcher scripts and no symrouted.service",
            "sudo make install (installs the scripts for the network manager in use), or \
             install and enable symrouted.service",
        ));
    } else if out.is_empty() {
        out.push(INTEGRATION.ok(format!("installed: {}", found.join("; "))));
    }
    out
}
