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
            field(
                &mut out,
                "addresses",
                i.addresses
                    .iter()
                    .map(|a| {
                        let c = if a.covered { "covered" } else { "NOT covered" };
                        format!("{}/{} {c}", a.local, a.prefixlen)
                    })
                    .collect(),
            );
            lines(&mut out, "rules", i.rules.iter().map(|r| r.text.as_str()));
            // Not copied line by line: an uplink's table can hold 100 000 routes.
            lines(&mut out, "routes", i.routes.iter().map(|r| r.text.as_str()));
            lines(&mut out, "pending", i.pending.iter().map(String::as_str));
            lines(&mut out, "foreign", i.foreign.iter().map(String::as_str));
            field(
                &mut out,
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
                lines(&mut out, "error", std::iter::once(e.as_str()));
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
                    &mut out,
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
            if let Some(e) = &st.error {
                out.push_str(&format!("  {:<10} {e}\n", "error"));
            }
        }
        if let Some(nft) = &self.nftables {
            out.push_str("nftables (table inet symroute):\n");
            if let Some(p) = &nft.pending {
                out.push_str(&format!("  {:<10} {p}\n", "pending"));
            }
            if let Some(e) = &nft.error {
                out.push_str(&format!("  {:<10} {e}\n", "unknown"));
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

    /// Whether a sync would write something outside the interfaces' tables and rules.
    fn pending_elsewhere(&self) -> Vec<String> {
        let mut out = Vec::new();
        if !self.exempt.pending.is_empty() {
            out.push("exemption rules".into());
        }
        if self
            .steering
            .as_ref()
            .is_some_and(|s| !s.pending.is_empty())
        {
            out.push("steering".into());
        }
        if self.nftables.as_ref().is_some_and(|n| n.pending.is_some()) {
            out.push("nftables".into());
        }
        out.extend(
            self.stale
                .iter()
                .map(|s| format!("stale table {}", s.table)),
        );
        out
    }

    /// The last line: whether everything (or, with a scope, the interface asked about) is
    /// in sync, and what to do when it is not: run a sync when it would write something,
    /// and what it refuses (one line naming it) when it would refuse something. A scoped
    /// status speaks of its interface and of what its sync writes besides, and of anything
    /// else out of sync as such.
    fn verdict(&self) -> String {
        let contested = "someone else's rule uses symroute's table (see foreign; `symroute \
                         doctor` says how to fix it)";
        let refused = |first: &str, count: usize| match count {
            1 => format!("a sync refuses {first}"),
            n => format!("a sync refuses {first} (and {} more: see error)", n - 1),
        };
        let Some(scope) = &self.scope else {
            let writes = self.interfaces.iter().any(|i| i.state == State::Pending)
                || !self.pending_elsewhere().is_empty();
            return match (self.in_sync, writes, self.refusals.first()) {
                (true, ..) => "in sync".into(),
                (false, true, None) => "not in sync: run `symroute sync`".into(),
                (false, true, Some(first)) => format!(
                    "not in sync: run `symroute sync`, but {}",
                    refused(first, self.refusals.len())
                ),
                (false, false, Some(first)) => {
                    format!("not in sync: {}", refused(first, self.refusals.len()))
                }
                (false, false, None) => format!("not in sync: {contested}"),
            };
        };
        let also = match self.sync_also_writes.as_slice() {
            [] => String::new(),
            names => format!(" (it also writes the tables of {})", names.join(", ")),
        };
        let first = self.interfaces.first();
        let own = match first.map(|i| i.state) {
            Some(State::Pending) => {
                format!("{scope}: not in sync: run `symroute sync {scope}`{also}")
            }
            Some(State::Refused) => format!(
                "{scope}: not in sync: {}",
                refused(first.and_then(|i| i.error.as_deref()).unwrap_or(scope), 1)
            ),
            Some(State::Contested) => format!("{scope}: not in sync: {contested}"),
            Some(_) if !also.is_empty() => {
                format!("{scope}: not in sync: run `symroute sync {scope}`{also}")
            }
            Some(state) => format!("{scope}: {}", state.as_str()),
            None => format!("{scope}: no such interface"),
        };
        let mut elsewhere: Vec<String> = self
            .others_not_in_sync
            .iter()
            .filter(|o| !self.sync_also_writes.contains(o))
            .cloned()
            .collect();
        elsewhere.extend(self.pending_elsewhere());
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

/// [`lines`] of owned lines.
fn field(out: &mut String, label: &str, owned: Vec<String>) {
    lines(out, label, owned.iter().map(String::as_str));
}

/// `  LABEL      line`, then `             line` for the others: one block of `status`.
fn lines<'a>(out: &mut String, label: &str, lines: impl Iterator<Item = &'a str>) {
    let first = format!("  {label:<10} ");
    let rest = " ".repeat(first.len());
    for (n, line) in lines.enumerate() {
        out.push_str(if n == 0 { &first } else { &rest });
        out.push_str(line);
        out.push('\n');
    }
}
