//! `symroute status`'s text: one block per managed interface, one line per other one, then
//! the exemption rules, stale tables and the overall verdict.

use super::{ShadowExtent, State, Status};

impl Status {
    /// Human-readable report, one block per managed interface, one line per other one.
    pub fn render(&self, verbose: bool) -> String {
        let mut out = String::new();
        for i in &self.interfaces {
            let updown = if i.up { "up" } else { "down" };
            let quiet = matches!(i.state, State::Unmanaged | State::Idle)
                && i.foreign.is_empty()
                && i.rules.is_empty()
                && i.routes.is_empty();
            if quiet && !verbose {
                let why = if i.managed {
                    "idle (no address that gets a rule)"
                } else {
                    "unmanaged"
                };
                out.push_str(&format!(
                    "{} (index {}, {updown}): {why}\n",
                    i.ifname, i.ifindex
                ));
                continue;
            }
            out.push_str(&format!(
                "{} (index {}, {updown}): table {}, {}\n",
                i.ifname,
                i.ifindex,
                i.table,
                i.state.as_str()
            ));
            let mut field = |label: &str, lines: Vec<String>| {
                for (n, line) in lines.iter().enumerate() {
                    let label = if n == 0 { label } else { "" };
                    out.push_str(&format!("  {label:<10} {line}\n"));
                }
            };
            field(
                "addresses",
                i.addresses
                    .iter()
                    .map(|a| {
                        let c = if a.covered { "covered" } else { "NOT covered" };
                        format!("{}/{} {c}", a.local, a.prefixlen)
                    })
                    .collect(),
            );
            field("rules", i.rules.iter().map(|r| r.text.clone()).collect());
            field("routes", i.routes.iter().map(|r| r.text.clone()).collect());
            field("pending", i.pending.clone());
            field("foreign", i.foreign.clone());
            field(
                "shadowed",
                i.shadowed_by
                    .iter()
                    .map(|s| {
                        let extent = match s.extent {
                            ShadowExtent::Full => "all of its traffic",
                            ShadowExtent::Partial => "some of its traffic",
                        };
                        format!("{} takes {extent} before {}", s.rule, s.ours)
                    })
                    .collect(),
            );
            if let Some(e) = &i.error {
                field("error", vec![e.clone()]);
            }
            if let Some(h) = &i.health {
                let family = |name: &str, f: &Option<super::FamilyHealth>| {
                    f.as_ref().map(|f| {
                        if !f.probed {
                            return format!(
                                "{name} {} (not probed yet: no probe round has finished; \
                                 symrouted's log says why)",
                                f.state
                            );
                        }
                        let rtt = f
                            .rtt_ms
                            .map_or("no answer".to_string(), |r| format!("rtt {r:.1} ms"));
                        format!(
                            "{name} {} ({rtt}, loss {:.0} %, since {})",
                            f.state,
                            f.loss * 100.0,
                            super::health::when(f.since)
                        )
                    })
                };
                field(
                    "health",
                    family("IPv4", &h.ipv4)
                        .into_iter()
                        .chain(family("IPv6", &h.ipv6))
                        .collect(),
                );
            }
        }
        if !self.exempt.rules.is_empty() || !self.exempt.pending.is_empty() {
            out.push_str("exempt:\n");
            for r in &self.exempt.rules {
                out.push_str(&format!("  {:<10} {}\n", "rule", r.text));
            }
            for p in &self.exempt.pending {
                out.push_str(&format!("  {:<10} {p}\n", "pending"));
            }
        }
        if let Some(st) = &self.steering {
            let probed = if st.probed {
                ""
            } else {
                ", no verdicts from symrouted (every uplink counts as up)"
            };
            out.push_str(&format!("steering ({}{probed}):\n", st.mode));
            for l in &st.summary {
                out.push_str(&format!("  {:<10} {l}\n", ""));
            }
            for r in &st.rules {
                out.push_str(&format!("  {:<10} {}\n", "rule", r.text));
            }
            for r in &st.routes {
                out.push_str(&format!("  {:<10} {}\n", "route", r.text));
            }
            for p in &st.pending {
                out.push_str(&format!("  {:<10} {p}\n", "pending"));
            }
        }
        for s in &self.stale {
            let whose = s
                .ifindex
                .map_or_else(String::new, |i| format!(" (of vanished if{i})"));
            out.push_str(&format!("stale table {}{whose}:\n", s.table));
            for p in &s.pending {
                out.push_str(&format!("  {:<10} {p}\n", "pending"));
            }
        }
        out.push_str(&self.verdict());
        out.push('\n');
        out
    }

    /// The last line: whether everything (or, with a scope, the interface asked about) is
    /// in sync, and what to do when it is not. A scoped status speaks of its interface, and
    /// of anything else out of sync as such.
    fn verdict(&self) -> String {
        let contested = "someone else's rule uses symroute's table (see foreign; `symroute \
                         doctor` says how to fix it)";
        let Some(scope) = &self.scope else {
            let fixable = self
                .interfaces
                .iter()
                .any(|i| matches!(i.state, State::Pending | State::Refused))
                || !self.exempt.pending.is_empty()
                || !self.stale.is_empty();
            return if self.in_sync {
                "in sync".into()
            } else if fixable {
                "not in sync: run `symroute sync`".into()
            } else {
                format!("not in sync: {contested}")
            };
        };
        let own = match self.interfaces.first().map(|i| i.state) {
            Some(State::Pending) => format!("{scope}: not in sync: run `symroute sync {scope}`"),
            Some(State::Refused) => format!("{scope}: refused (see error)"),
            Some(State::Contested) => format!("{scope}: not in sync: {contested}"),
            Some(state) => format!("{scope}: {}", state.as_str()),
            None => format!("{scope}: no such interface"),
        };
        let mut elsewhere = self.others_not_in_sync.clone();
        if !self.exempt.pending.is_empty() {
            elsewhere.push("exemption rules".into());
        }
        elsewhere.extend(
            self.stale
                .iter()
                .map(|s| format!("stale table {}", s.table)),
        );
        if elsewhere.is_empty() {
            own
        } else {
            format!(
                "{own} (elsewhere not in sync: {}; run `symroute status`)",
                elsewhere.join(", ")
            )
        }
    }
}
