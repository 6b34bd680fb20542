//! What one run read from the host: the input of every plan and view.

use std::collections::BTreeMap;

use super::{link_name, Address, Link, Route, Rule};

/// What symroute read from the kernel for one run. Anything not read is simply absent: a
/// per-interface run reads only that interface's addresses and main-table routes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub links: Vec<Link>,
    pub addresses: Vec<Address>,
    /// Main-table routes (at least every one through the interfaces being planned).
    pub main_routes: Vec<Route>,
    /// Every policy rule of both families, ours and others'.
    pub rules: Vec<Rule>,
    /// Contents of the tables symroute looked into: its own, those of stale rules, and
    /// those other tools' catch-all rules look up (`model::rules::vpn_tables`).
    pub tables: BTreeMap<u32, Vec<Route>>,
}

impl Snapshot {
    pub fn link(&self, ifindex: u32) -> Option<&Link> {
        self.links.iter().find(|l| l.index == ifindex)
    }

    pub fn link_by_name(&self, name: &str) -> Option<&Link> {
        self.links.iter().find(|l| l.name == name)
    }

    pub fn table(&self, table: u32) -> &[Route] {
        self.tables.get(&table).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The name of interface `ifindex`, or `if{ifindex}` when it is gone.
    pub fn link_name(&self, ifindex: u32) -> String {
        link_name(&self.links, ifindex)
    }

    /// The rules of `protocol` (symroute's: `settings.protocol`) that look up `table`.
    pub fn rules_into(&self, protocol: u8, table: u32) -> impl Iterator<Item = &Rule> {
        self.rules
            .iter()
            .filter(move |r| r.protocol == protocol && r.table == table)
    }

    /// The routes of `protocol` (symroute's: `settings.protocol`) in `table`.
    pub fn routes_in(&self, protocol: u8, table: u32) -> impl Iterator<Item = &Route> {
        self.table(table)
            .iter()
            .filter(move |r| r.protocol == protocol)
    }
}
