//! What the end-to-end tests check on a host that real daemons configure.

use super::*;

/// Global addresses of `dev` (without prefix length), one family, tentative ones included.
pub fn global_addrs(ns: &Netns, dev: &str, v6: bool) -> Vec<String> {
    let family = if v6 { "-6" } else { "-4" };
    let out = ns
        .try_ip(&format!("{family} -o addr show dev {dev} scope global"))
        .unwrap_or_default();
    addresses_in(&out)
}

/// The addresses (without prefix length) of `ip -o addr` output.
fn addresses_in(out: &str) -> Vec<String> {
    out.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            it.find(|t| *t == "inet" || *t == "inet6")?;
            Some(it.next()?.split('/').next()?.to_string())
        })
        .collect()
}

/// Interface index of `dev`.
pub fn ifindex(ns: &Netns, dev: &str) -> u32 {
    ns.ifindex(dev)
}

/// symroute's rules (protocol 83, shown as `83` or by its name `symroute`), both families,
/// as (source address, table) pairs.
pub fn symroute_rules(ns: &Netns) -> Vec<(String, String)> {
    let mut rules = ns.rules(false);
    rules.extend(ns.rules(true));
    rules
        .iter()
        .filter(|r| r.contains(" proto 83") || r.contains(" proto symroute"))
        .filter_map(|r| {
            let words: Vec<&str> = r.split_whitespace().collect();
            let from = words.iter().position(|w| *w == "from")?;
            let lookup = words.iter().position(|w| *w == "lookup")?;
            Some((
                words.get(from + 1)?.to_string(),
                words.get(lookup + 1)?.to_string(),
            ))
        })
        .collect()
}

/// Everything [`wait_symmetric`] checks, once: each of `devs` has a global IPv4 and IPv6
/// address, a symroute rule for each of them into table 1000+ifindex, that table holds a
/// default route, and the client gets answers from every address. Err says what is missing.
pub fn check_symmetric(lab: &Lab, devs: &[&str]) -> Result<(), String> {
    let rules = symroute_rules(&lab.host);
    let mut addrs = Vec::new();
    for dev in devs {
        let table = (1000 + ifindex(&lab.host, dev)).to_string();
        for v6 in [false, true] {
            let mine = global_addrs(&lab.host, dev, v6);
            if mine.is_empty() {
                return Err(format!(
                    "{dev} has no global IPv{} address yet",
                    if v6 { 6 } else { 4 }
                ));
            }
            for a in mine {
                if !rules.iter().any(|(from, t)| *from == a && *t == table) {
                    return Err(format!(
                        "no symroute rule from {a} lookup {table}: {rules:?}"
                    ));
                }
                addrs.push(a);
            }
            if !lab
                .host
                .routes(&table, v6)
                .iter()
                .any(|r| r.starts_with("default"))
            {
                return Err(format!(
                    "table {table} has no IPv{} default route",
                    if v6 { 6 } else { 4 }
                ));
            }
        }
    }
    for a in &addrs {
        if !ping(&lab.client, a) {
            return Err(format!("client gets no answer from {a}"));
        }
    }
    Ok(())
}

/// Each of `devs` has a global IPv4 address, a symroute rule for each into 1000+ifindex whose
/// table has a default route, the client gets answers from every address, and no rule is
/// left for an address that is gone. For labs that configure no IPv6.
pub fn check_symmetric_v4(host: &Netns, client: &Netns, devs: &[&str]) -> Result<(), String> {
    let rules = symroute_rules(host);
    for dev in devs {
        let table = (1000 + host.ifindex(dev)).to_string();
        let addrs = global_addrs(host, dev, false);
        if addrs.is_empty() {
            return Err(format!("{dev} has no IPv4 address yet"));
        }
        if !host
            .routes(&table, false)
            .iter()
            .any(|r| r.starts_with("default"))
        {
            return Err(format!("table {table} has no default route"));
        }
        for a in addrs {
            if !rules.iter().any(|(from, t)| *from == a && *t == table) {
                return Err(format!("no rule from {a} lookup {table}: {rules:?}"));
            }
            if !ping(client, &a) {
                return Err(format!("client gets no answer from {a}"));
            }
        }
    }
    let stale = stale_rules(host);
    if !stale.is_empty() {
        return Err(format!("stale rules: {stale:?}"));
    }
    Ok(())
}

/// Waits until [`check_symmetric`] holds; panics with the last reason and the host's routing
/// state when `timeout` passes.
pub fn wait_symmetric(lab: &Lab, devs: &[&str], timeout: Duration) {
    wait_for_check(
        &lab.host,
        timeout,
        || check_symmetric(lab, devs),
        String::new,
    );
}

/// Waits until [`check_symmetric_v4`] holds; panics with the last reason, the host's routing
/// state and `logs()` (the DHCP client's, the server's) when `timeout` passes.
pub fn wait_symmetric_v4(
    host: &Netns,
    client: &Netns,
    devs: &[&str],
    timeout: Duration,
    logs: impl Fn() -> String,
) {
    wait_for_check(
        host,
        timeout,
        || check_symmetric_v4(host, client, devs),
        logs,
    );
}

fn wait_for_check(
    host: &Netns,
    timeout: Duration,
    mut check: impl FnMut() -> Result<(), String>,
    logs: impl Fn() -> String,
) {
    let mut last = String::new();
    let ok = wait_until(timeout, || match check() {
        Ok(()) => true,
        Err(e) => {
            last = e;
            false
        }
    });
    assert!(
        ok,
        "not symmetric after {timeout:?}: {last}\n{}{}",
        routing_state(host),
        logs()
    );
}

/// Waits until `client` gets answers to pings and from the host service
/// ([`crate::hosts::unanswered`]) at every one of `addrs`; panics, saying `when`, with what
/// stayed silent and `host`'s routing state after `timeout`.
pub fn wait_answered(client: &Netns, host: &Netns, addrs: &[&str], timeout: Duration, when: &str) {
    let mut silent = Vec::new();
    let answered = wait_until(timeout, || {
        silent = crate::hosts::unanswered(client, addrs);
        silent.is_empty()
    });
    assert!(
        answered,
        "no answer {when} from {silent:?}\n{}",
        routing_state(host)
    );
}

/// Rules of symroute whose source address is on no interface of `ns` any more.
pub fn stale_rules(ns: &Netns) -> Vec<String> {
    let present = addresses_in(&ns.ip("-o addr show scope global"));
    symroute_rules(ns)
        .into_iter()
        .filter(|(from, _)| !present.contains(from))
        .map(|(from, table)| format!("from {from} lookup {table}"))
        .collect()
}

/// Addresses, rules and non-main routes of `ns`, for failure messages.
pub fn routing_state(ns: &Netns) -> String {
    let mut s = String::new();
    for args in [
        "-br addr",
        "-4 rule",
        "-6 rule",
        "-4 route show table all",
        "-6 route show table all",
    ] {
        let out = ns.try_ip(args).unwrap_or_else(|e| e);
        let _ = writeln!(
            s,
            "$ ip {args}\n{}",
            out.lines()
                .filter(|l| !l.contains("table local") && !l.starts_with("multicast"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    s
}
