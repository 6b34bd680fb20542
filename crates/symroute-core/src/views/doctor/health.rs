//! `[health]`: the daemon that probes, the sysctls its probes and balance depend on.

use super::{Finding, HEALTH};
use crate::health::SteerMode;
use crate::model::host::HostFacts;
use crate::settings::Settings;

/// The daemon must run (the hook alone cannot probe: without fresh verdicts every uplink
/// counts as up), its ping sockets must be allowed for root's group, and balance spreads
/// connections to one server only when the multipath hash includes ports.
pub(super) fn check_health(settings: &Settings, facts: &HostFacts) -> Vec<Finding> {
    let Some(health) = &settings.health else {
        return vec![HEALTH.skip("no [health] section")];
    };
    let facts = &facts.health;
    let mut out = Vec::new();
    if facts.daemon_running {
        out.push(HEALTH.ok("symrouted runs and probes the uplinks"));
    } else {
        out.push(HEALTH.warn(
            "[health] is set but symrouted is not running: nothing probes the uplinks, so \
             no uplink is ever found down and new connections are not steered",
            "systemctl enable --now symrouted",
        ));
    }
    match facts.ping_group_range {
        Some((low, high)) if low > 0 || high < low => out.push(HEALTH.fail(
            format!(
                "net.ipv4.ping_group_range is \"{low} {high}\": symrouted's probes (ping \
                 sockets) are refused for root's group 0"
            ),
            "echo 'net.ipv4.ping_group_range = 0 0' >/etc/sysctl.d/60-symroute-health.conf && \
             systemctl restart systemd-sysctl (root's group; a wider range must include 0)",
        )),
        _ => {}
    }
    if health.mode == SteerMode::Balance {
        let (v4, v6) = facts.multipath_hash_policy;
        let weak: Vec<&str> = [("net.ipv4", v4), ("net.ipv6", v6)]
            .into_iter()
            .filter(|(_, p)| *p == Some(0))
            .map(|(k, _)| k)
            .collect();
        if !weak.is_empty() {
            out.push(HEALTH.warn(
                format!(
                    "mode = \"balance\" with {} fib_multipath_hash_policy = 0: new connections \
                     are spread by address only, so all of them to one server take one uplink",
                    weak.join(" and ")
                ),
                "sysctl -w net.ipv4.fib_multipath_hash_policy=1 \
                 net.ipv6.fib_multipath_hash_policy=1 (and keep it in /etc/sysctl.d)",
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::host::HealthFacts;
    use crate::views::doctor::Verdict;

    fn settings(mode: &str) -> Settings {
        crate::config::parse(
            &format!("[health]\ntargets = [\"192.0.2.1\"]\nmode = \"{mode}\"\n"),
            std::path::Path::new("/etc/symroute/symroute.toml"),
        )
        .unwrap()
    }

    fn facts(running: bool, range: (u32, u32), policy: u32) -> HostFacts {
        HostFacts {
            health: HealthFacts {
                daemon_running: running,
                ping_group_range: Some(range),
                multipath_hash_policy: (Some(policy), Some(policy)),
            },
            ..HostFacts::default()
        }
    }

    fn verdicts(found: &[Finding]) -> Vec<Verdict> {
        found.iter().map(|f| f.verdict).collect()
    }

    #[test]
    fn without_health_nothing_is_checked() {
        let found = check_health(&Settings::default(), &facts(false, (1, 0), 0));
        assert_eq!(verdicts(&found), [Verdict::Skip]);
    }

    #[test]
    fn health_without_the_daemon_warns() {
        let found = check_health(&settings("failover"), &facts(false, (0, 2147483647), 0));
        assert_eq!(verdicts(&found), [Verdict::Warn]);
        assert!(found[0].message.contains("symrouted is not running"));
        let found = check_health(&settings("failover"), &facts(true, (0, 2147483647), 0));
        assert_eq!(verdicts(&found), [Verdict::Ok]);
    }

    #[test]
    fn ping_sockets_refused_fail_and_balance_without_port_hashing_warns() {
        let found = check_health(&settings("balance"), &facts(true, (1, 0), 0));
        assert_eq!(
            verdicts(&found),
            [Verdict::Ok, Verdict::Fail, Verdict::Warn]
        );
        let found = check_health(&settings("balance"), &facts(true, (0, 10), 1));
        assert_eq!(verdicts(&found), [Verdict::Ok]);
    }
}
