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

/// The kernel's own answer to `ip [-6] route get TO [from FROM] [mark MARK]` in `ns`: the
/// device, and the table when it is not main (`None` for main), e.g. `("wg0",
/// Some("51820"))` or `("eth0", None)`: where the host's traffic goes.
pub fn route_get(
    ns: &Netns,
    to: &str,
    from: Option<&str>,
    mark: Option<&str>,
) -> (String, Option<String>) {
    let mut args = format!("route get {to}");
    if let Some(from) = from {
        args += &format!(" from {from}");
    }
    if let Some(mark) = mark {
        args += &format!(" mark {mark}");
    }
    let out = ns.ip(&args);
    let word_after = |key: &str| {
        out.split_whitespace()
            .skip_while(|w| *w != key)
            .nth(1)
            .map(str::to_string)
    };
    (word_after("dev").unwrap_or_default(), word_after("table"))
}
