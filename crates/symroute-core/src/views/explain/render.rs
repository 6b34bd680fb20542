//! `symroute explain`'s text: the packet, the rule, the table, the route and the egress, a
//! line each, the answer's path indented below, and the verdict last.

use super::Explanation;

impl Explanation {
    pub fn render(&self) -> String {
        let mut out = self.render_path("");
        if let Some(reply) = &self.reply {
            out.push_str("answer:\n");
            out.push_str(&reply.render_path("  "));
        }
        out.push_str(&format!("{:<8} {}\n", "verdict", self.verdict));
        out
    }

    /// Every line but the verdict, each starting with `indent`.
    fn render_path(&self, indent: &str) -> String {
        let mut out = String::new();
        let mut line = |label: &str, value: String| {
            out.push_str(&format!("{indent}{label:<8} {value}\n"));
        };
        let iif = self
            .iif
            .as_ref()
            .map_or_else(String::new, |i| format!(" entering {i}"));
        let owner = self
            .owner
            .as_ref()
            .map_or_else(String::new, |o| format!(" (address of {o})"));
        let mark = self
            .mark
            .as_ref()
            .map_or_else(String::new, |m| format!(", mark {m}"));
        line(
            "packet",
            format!("from {}{owner} to {}{iif}{mark}", self.from, self.to),
        );
        if let Some(rule) = &self.rule {
            let mut notes = Vec::new();
            if rule.ours {
                notes.push("symroute's");
            }
            if !rule.certain {
                notes.push("likely");
            }
            let notes = if notes.is_empty() {
                String::new()
            } else {
                format!(" ({})", notes.join(", "))
            };
            line("rule", format!("{}{notes}", rule.rule.text));
        }
        if let Some(table) = &self.table {
            let whose = self
                .table_of
                .as_ref()
                .map_or_else(String::new, |i| format!(" (symroute's table for {i})"));
            line("table", format!("{table}{whose}"));
        }
        if let Some(route) = &self.route {
            line("route", route.text.clone());
        }
        if let Some(dev) = &self.dev {
            let via = self
                .gateway
                .map_or_else(String::new, |g| format!(" via {g}"));
            let src = self
                .prefsrc
                .map_or_else(String::new, |s| format!(" src {s}"));
            let tunnel = if self.into_tunnel { " (a tunnel)" } else { "" };
            line("egress", format!("{dev}{via}{src}{tunnel}"));
        }
        if let Some(error) = &self.error {
            line("error", error.clone());
        }
        out
    }
}
