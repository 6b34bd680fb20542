//! Where our rules go among other tools' rules, and which of those tools' tables are ways
//! out.
//!
//! VPN clients route everything with catch-all rules that `ip rule add` places just before
//! the first rule after `local`: wg-quick's `not fwmark 51820 lookup 51820` and `lookup main
//! suppress_prefixlength 0`, Tailscale's `5270: lookup 52`, strongSwan's `220: lookup 220`.
//! Behind such a rule our `from` rules are never reached, and replies from an uplink's
//! address go into the tunnel. Unless `rule_priority` is set in the configuration, our rules
//! go just before the first such rule instead: a reply from an uplink's address leaves
//! through that uplink, and everything else (unbound traffic, a VPN's own marked packets)
//! meets the VPN's rules as before. See docs/design.md, "Rules of other tools".

use crate::model::{rules, Rule, MAIN_TABLE};
use crate::settings::Settings;

/// The lowest priority our `from` rules take: the `fwmark` rules of `iif_rules` sit two
/// below them, and priority 0 is `local`'s.
pub const LOWEST_PRIORITY: u32 = 3;

/// Whether a rule of another tool routes every unmarked packet the host sends
/// ([`rules::is_catch_all`] with our protocol).
pub fn is_catch_all(rule: &Rule, settings: &Settings) -> bool {
    rules::is_catch_all(rule, settings.protocol)
}

/// The priority of our `from` rules among `rules` (every rule of the host): the configured
/// `rule_priority` when it was set, else the default or, when a catch-all rule of another
/// tool ([`is_catch_all`]) comes at or before it, one less than the first such rule's (not
/// below [`LOWEST_PRIORITY`]).
pub fn rule_priority(rules: &[Rule], settings: &Settings) -> u32 {
    if settings.rule_priority_fixed {
        return settings.rule_priority;
    }
    rules
        .iter()
        .filter(|r| r.priority <= settings.rule_priority && is_catch_all(r, settings))
        .map(|r| r.priority.saturating_sub(1).max(LOWEST_PRIORITY))
        .min()
        .map_or(settings.rule_priority, |p| p.min(settings.rule_priority))
}

/// `settings` with `rule_priority` where our rules go among `rules` ([`rule_priority`]):
/// what every plan, diff and view of one snapshot works with, so that the exemption and
/// `fwmark` rules move with the `from` rules.
pub fn placed(settings: &Settings, rules: &[Rule]) -> Settings {
    Settings {
        rule_priority: rule_priority(rules, settings),
        ..settings.clone()
    }
}

/// Whether a rule of ours in `rules` is somewhere other than where `settings` (already
/// [`placed`]) puts it: a catch-all rule of another tool came or went, and every interface's
/// rules have to move, not only those of the interface a run is about.
pub fn misplaced(rules: &[Rule], settings: &Settings) -> bool {
    rules
        .iter()
        .filter(|r| r.protocol == settings.protocol)
        .any(|r| {
            let wanted = if r.fwmark.is_some() {
                settings.mark_priority()
            } else if r.table == MAIN_TABLE {
                settings.exempt_priority()
            } else {
                settings.rule_priority
            };
            r.priority != wanted
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::ip;
    use crate::model::rules::DEFAULT_TABLE;
    use crate::model::{Family, RuleExtra, RuleVerdict, LOCAL_TABLE};

    fn settings() -> Settings {
        Settings::default()
    }

    fn vpn_tables(rules: &[Rule], settings: &Settings) -> Vec<(Family, u32)> {
        rules::vpn_tables(rules, settings.protocol)
    }

    fn foreign(priority: u32, table: u32) -> Rule {
        Rule::lookup(table, priority).with_protocol(4)
    }

    /// wg-quick's pair as `ip rule add` places them when our rules are at 32000 already
    /// (the first free priority below the first rule after `local`).
    fn wg_quick(family: Family) -> Vec<Rule> {
        let not_marked = Rule {
            fwmark: Some((51820, u32::MAX)),
            extra: RuleExtra {
                invert: true,
                ..RuleExtra::default()
            },
            ..foreign(31999, 51820).with_family(family)
        };
        let suppress = Rule {
            suppress_prefixlen: Some(0),
            ..foreign(31998, MAIN_TABLE).with_family(family)
        };
        vec![not_marked, suppress]
    }

    /// tailscaled's rules: 5210-5250 for its own marked packets, 5270 for everything.
    fn tailscale(family: Family) -> Vec<Rule> {
        let marked = |priority, table, action| Rule {
            fwmark: Some((0x80000, 0xff0000)),
            extra: RuleExtra {
                action,
                ..RuleExtra::default()
            },
            ..foreign(priority, table).with_family(family)
        };
        vec![
            marked(5210, MAIN_TABLE, RuleVerdict::Lookup),
            marked(5230, DEFAULT_TABLE, RuleVerdict::Lookup),
            marked(5250, 0, RuleVerdict::Refuse),
            foreign(5270, 52).with_family(family),
        ]
    }

    fn local_main_default() -> Vec<Rule> {
        vec![
            foreign(0, LOCAL_TABLE).with_protocol(2),
            foreign(32766, MAIN_TABLE).with_protocol(2),
            foreign(32767, DEFAULT_TABLE).with_protocol(2),
        ]
    }

    #[test]
    fn without_foreign_catch_all_rules_ours_stay_at_rule_priority() {
        assert_eq!(rule_priority(&local_main_default(), &settings()), 32000);
        assert!(vpn_tables(&local_main_default(), &settings()).is_empty());
        // Rules with a source, a destination, an input interface or a needed mark are an
        // explicit policy or a tool's own packets, not a catch-all.
        let mut rules = local_main_default();
        rules.push(foreign(100, 100).with_src(ip("192.168.9.0"), 24));
        rules.push(foreign(101, 101).with_dst(ip("10.50.0.0"), 16));
        rules.push(Rule {
            iif: Some("eth2".into()),
            ..foreign(102, 102)
        });
        rules.push(Rule {
            fwmark: Some((0x200, 0xf00)),
            ..foreign(9, 2004)
        });
        rules.push(Rule {
            extra: RuleExtra {
                narrow: true,
                ..RuleExtra::default()
            },
            ..foreign(103, 103)
        });
        rules.push(Rule {
            extra: RuleExtra {
                action: RuleVerdict::Other,
                ..RuleExtra::default()
            },
            ..foreign(104, 0)
        });
        assert_eq!(rule_priority(&rules, &settings()), 32000);
    }

    #[test]
    fn ours_go_just_before_wg_quick_and_tailscale_and_strongswan() {
        let mut rules = local_main_default();
        rules.extend(wg_quick(Family::V4));
        rules.extend(wg_quick(Family::V6));
        assert_eq!(rule_priority(&rules, &settings()), 31997);
        let placed = placed(&settings(), &rules);
        assert_eq!(
            (placed.exempt_priority(), placed.mark_priority()),
            (31996, 31995)
        );
        assert_eq!(
            vpn_tables(&rules, &settings()),
            [(Family::V4, 51820), (Family::V6, 51820)]
        );

        let mut rules = local_main_default();
        rules.extend(tailscale(Family::V4));
        // Before `lookup 52`, after the rules of tailscaled's own marked packets.
        assert_eq!(rule_priority(&rules, &settings()), 5269);
        assert_eq!(vpn_tables(&rules, &settings()), [(Family::V4, 52)]);

        let mut rules = local_main_default();
        rules.push(foreign(220, 220));
        assert_eq!(rule_priority(&rules, &settings()), 219);
        assert_eq!(vpn_tables(&rules, &settings()), [(Family::V4, 220)]);

        // A kill switch is never passed; a catch-all after our ceiling is not either (but
        // its table is a VPN table all the same).
        let mut rules = local_main_default();
        rules.push(Rule {
            extra: RuleExtra {
                action: RuleVerdict::Refuse,
                ..RuleExtra::default()
            },
            ..foreign(1000, 0)
        });
        rules.push(foreign(32100, 77));
        assert_eq!(rule_priority(&rules, &settings()), 32000);
        assert_eq!(vpn_tables(&rules, &settings()), [(Family::V4, 77)]);
    }

    #[test]
    fn a_configured_priority_is_kept_and_the_lowest_is_three() {
        let mut rules = local_main_default();
        rules.extend(wg_quick(Family::V4));
        let fixed = Settings {
            rule_priority: 32000,
            rule_priority_fixed: true,
            ..settings()
        };
        assert_eq!(rule_priority(&rules, &fixed), 32000);
        rules.push(foreign(2, 9));
        assert_eq!(rule_priority(&rules, &settings()), LOWEST_PRIORITY);
    }

    #[test]
    fn rules_of_ours_elsewhere_are_misplaced() {
        let mut rules = local_main_default();
        rules.extend(wg_quick(Family::V4));
        let placed = placed(&settings(), &rules);
        let ours = |priority| {
            Rule::lookup(1003, priority)
                .with_src(ip("10.2.0.2"), 32)
                .with_protocol(83)
        };
        rules.push(ours(31997));
        assert!(!misplaced(&rules, &placed));
        rules.push(ours(32000));
        assert!(misplaced(&rules, &placed));
        // Our own rules are never catch-alls of someone else's.
        let mark = Rule {
            fwmark: Some((0x0300_0000, 0xff00_0000)),
            src: None,
            ..ours(31995)
        };
        assert!(!is_catch_all(&mark, &placed));
    }
}
