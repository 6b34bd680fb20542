//! Reading and seeding a lab host's routing state the way the scenario tests check it: the
//! table symroute gives an interface, every rule, and foreign state that must never change.

use crate::{Lab, Netns};

/// The table symroute gives `dev` with the default `table_base`: 1000 + its index.
pub fn table_of(ns: &Netns, dev: &str) -> String {
    (1000 + ns.ifindex(dev)).to_string()
}

/// Every rule of both families, for "nothing else changed" comparisons.
pub fn all_rules(ns: &Netns) -> Vec<String> {
    let mut rules = ns.rules(false);
    rules.extend(ns.rules(true));
    rules
}

/// A foreign rule per family and a foreign table that no test may ever see changed. The
/// table's route goes through no uplink, so the kernel keeps it when a test takes an uplink's
/// address or link away.
pub fn add_foreign_state(lab: &Lab) {
    lab.host
        .ip("rule add priority 100 from 10.9.9.9 lookup 200");
    lab.host
        .ip("-6 rule add priority 100 from fd09::9 lookup 200");
    lab.host.ip("route add blackhole 198.51.100.0/24 table 200");
}

/// Panics unless what [`add_foreign_state`] added is all still there.
pub fn assert_foreign_state(lab: &Lab) {
    let rules = all_rules(&lab.host);
    for want in ["from 10.9.9.9 lookup 200", "from fd09::9 lookup 200"] {
        assert!(rules.iter().any(|r| r.contains(want)), "{rules:?}");
    }
    let table = lab.host.routes("200", false);
    assert_eq!(table.len(), 1, "{table:?}");
    assert!(
        table[0].starts_with("blackhole 198.51.100.0/24"),
        "{table:?}"
    );
}

/// The interface and gateway `ip route get DST [mark MARK]` picks on `host`, e.g.
/// `("wg0", None)` or `("eth0", Some("10.1.0.1"))`: where the host's own traffic goes.
pub fn route_get(host: &Netns, dst: &str, mark: Option<&str>) -> (String, Option<String>) {
    let mark = mark.map(|m| format!(" mark {m}")).unwrap_or_default();
    let out = host.ip(&format!("route get {dst}{mark}"));
    let words: Vec<&str> = out.split_whitespace().collect();
    let after = |key: &str| {
        words
            .iter()
            .position(|w| *w == key)
            .and_then(|i| words.get(i + 1))
            .map(|w| w.to_string())
    };
    (after("dev").unwrap_or_default(), after("via"))
}
