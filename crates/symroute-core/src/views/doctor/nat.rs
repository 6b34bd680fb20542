//! The `nat` check: published ports (Docker's `-p`, Podman, libvirt port forwards) on a host
//! with several uplinks.
//!
//! A DNAT'ed connection is forwarded: its answer comes from the container's address, which
//! no `from` rule of ours matches, so main routes it through main's default uplink whatever
//! uplink the request came in on, and a strict router there drops it. The copies of routes
//! behind the host cannot help (they are for answers *to* containers); the cure is
//! `iif_rules`, which ties a connection to the interface it entered. It stays opt-in (it needs
//! nftables and takes mark bits other tools may use), so doctor spots the case instead.

use super::{Finding, NAT};
use crate::model::host::HostFacts;
use crate::model::uplinks::Uplinks;
use crate::model::{Family, Snapshot};
use crate::settings::Settings;

/// The one configuration line that makes published ports answer through their uplink.
pub const FIX: &str = "add `iif_rules = true` to /etc/symroute/symroute.toml, then `symroute sync`";

/// Forwarding on, DNAT rules, more than one uplink with an address of ours and `iif_rules`
/// off: published ports reached through an uplink other than main's default are answered
/// through the default.
pub fn check(
    snapshot: &Snapshot,
    uplinks: &Uplinks,
    settings: &Settings,
    facts: &HostFacts,
) -> Vec<Finding> {
    let nat = facts.nat.as_ref();
    let forwarding = facts
        .conf
        .get("all")
        .is_some_and(|c| c.forwarding == Some(1) || c.ipv6_forwarding == Some(1));
    if !forwarding {
        return vec![NAT.ok("the host does not forward: no published ports to answer")];
    }
    let names: Vec<&str> = uplinks
        .indexes()
        .into_iter()
        .filter_map(|i| snapshot.link(i))
        .filter(|l| settings.manages(&l.name))
        .filter(|l| {
            snapshot.addresses.iter().any(|a| {
                a.ifindex == l.index
                    && a.wants_rule()
                    && uplinks.is_uplink(Family::of(&a.addr), l.index)
            })
        })
        .map(|l| l.name.as_str())
        .collect();
    if names.len() < 2 {
        return vec![NAT.ok("one uplink: DNAT'ed connections are answered through it")];
    }
    let Some(nat) = nat else {
        return vec![NAT.unseen(
            "the host forwards, but its NAT rules could not be read (run doctor as root)",
        )];
    };
    if !nat.dnat_seen() {
        return vec![NAT.ok("the host forwards but has no DNAT rule (no published port)")];
    }
    let mut seen: Vec<String> = nat
        .dnat_tables
        .iter()
        .map(|t| format!("nftables table {t}"))
        .collect();
    if nat.legacy_nat {
        seen.push("a legacy iptables nat table".into());
    }
    if settings.iif_rules {
        return vec![NAT.ok(format!(
            "published ports (DNAT in {}) are answered through the uplink they came in \
             through (iif_rules)",
            seen.join(", ")
        ))];
    }
    vec![NAT.warn(
        format!(
            "the host forwards, DNATs (published ports: {}) and has {} uplinks ({}): a \
             connection to a published port that enters through an uplink other than main's \
             default is answered through the default, where a strict router drops it",
            seen.join(", "),
            names.len(),
            names.join(", ")
        ),
        FIX,
    )]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::{addr, link, route, ETH0, ETH1};
    use crate::model::host::{Conf, Nat};
    use crate::model::MAIN_TABLE;
    use crate::views::doctor::Verdict;

    /// Two uplinks with a default route each, eth0 (index 2) and eth1 (index 3).
    fn host(forwarding: u32) -> (Snapshot, HostFacts) {
        let snapshot = Snapshot {
            links: vec![link(ETH0, "eth0"), link(ETH1, "eth1")],
            addresses: vec![addr(ETH0, "10.1.0.2", 24), addr(ETH1, "10.2.0.2", 24)],
            main_routes: vec![
                route(MAIN_TABLE, "0.0.0.0", 0, Some("10.1.0.1"), ETH0, 4),
                route(MAIN_TABLE, "0.0.0.0", 0, Some("10.2.0.1"), ETH1, 4),
            ],
            ..Snapshot::default()
        };
        let mut facts = HostFacts::default();
        facts.conf.insert(
            "all".into(),
            Conf {
                forwarding: Some(forwarding),
                ..Conf::default()
            },
        );
        (snapshot, facts)
    }

    fn with(
        snapshot: &Snapshot,
        settings: &Settings,
        facts: &HostFacts,
        nat: Option<&Nat>,
    ) -> Vec<Finding> {
        let facts = HostFacts {
            nat: nat.cloned(),
            ..facts.clone()
        };
        check(
            snapshot,
            &Uplinks::of(snapshot, settings.protocol),
            settings,
            &facts,
        )
    }

    #[test]
    fn forwarding_dnat_and_two_uplinks_without_iif_rules_is_a_warning_with_the_fix() {
        let (snapshot, facts) = host(1);
        let nat = Nat {
            dnat_tables: vec!["ip nat".into()],
            legacy_nat: false,
        };
        let settings = Settings::default();
        let found = with(&snapshot, &settings, &facts, Some(&nat));
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].verdict, Verdict::Warn);
        assert!(
            found[0].message.contains("2 uplinks (eth0, eth1)"),
            "{}",
            found[0].message
        );
        assert!(found[0].message.contains("nftables table ip nat"));
        assert_eq!(found[0].fix.as_deref(), Some(FIX));

        let on = Settings {
            iif_rules: true,
            ..Settings::default()
        };
        assert_eq!(
            with(&snapshot, &on, &facts, Some(&nat))[0].verdict,
            Verdict::Ok
        );
        // A legacy nat table counts: its rules cannot be seen.
        let legacy = Nat {
            dnat_tables: vec![],
            legacy_nat: true,
        };
        assert_eq!(
            with(&snapshot, &settings, &facts, Some(&legacy))[0].verdict,
            Verdict::Warn
        );
        assert_eq!(
            with(&snapshot, &settings, &facts, None)[0].verdict,
            Verdict::Skip
        );
    }

    #[test]
    fn no_forwarding_no_dnat_or_one_uplink_is_fine() {
        let nat = Nat {
            dnat_tables: vec!["ip nat".into()],
            legacy_nat: false,
        };
        let settings = Settings::default();
        let (snapshot, facts) = host(0);
        assert_eq!(
            with(&snapshot, &settings, &facts, Some(&nat))[0].verdict,
            Verdict::Ok
        );
        let (snapshot, facts) = host(1);
        assert_eq!(
            with(&snapshot, &settings, &facts, Some(&Nat::default()))[0].verdict,
            Verdict::Ok
        );
        let (mut snapshot, facts) = host(1);
        snapshot.main_routes.pop();
        assert_eq!(
            with(&snapshot, &settings, &facts, Some(&nat))[0].verdict,
            Verdict::Ok
        );
    }
}
