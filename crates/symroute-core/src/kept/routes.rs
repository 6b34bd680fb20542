//! The routes of one table, indexed by prefix and kept current route by route: what the
//! daemon's model holds of main (up to a full BGP table) and of each of symroute's tables.
//!
//! Compact on purpose (docs/design.md, "The daemon's event path"): the routes live in one slab
//! (64 bytes each), chained by prefix through a parallel list of slot numbers, with one hash
//! entry per prefix. A million routes are about 64 + 4 + 16 MB, not a `Vec` or a hash entry
//! holding each route in a block of its own.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::net::IpAddr;

use crate::model::{Family, NextHop, Route, RouteKey};

/// What routes of a table share when one lookup chooses among them: destination, length
/// and TOS (the metric only ranks them).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Prefix {
    pub dst: IpAddr,
    pub len: u8,
    pub tos: u8,
}

impl Prefix {
    pub fn of(route: &Route) -> Prefix {
        Prefix {
            dst: route.dst,
            len: route.dst_len,
            tos: route.tos,
        }
    }
}

const NONE: u32 = u32::MAX;

/// How a route enters the index when others share its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// After them (`NLM_F_APPEND`, and every route of a dump, which comes in kernel order).
    Last,
    /// Before them (`ip route prepend`, or a new key).
    First,
}

/// What a deletion found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removed {
    /// The route that left the table (a multipath route that lost some next hops is
    /// reported as the route it was, and stays with the rest).
    Gone(Route),
    /// Nothing matched: the index never held it (a notification from before the index was
    /// read, for a route already gone then).
    Nothing,
}

/// The routes of one table, by prefix, in the kernel's order within one key.
#[derive(Debug, Default)]
pub struct TableIndex {
    slots: Vec<Route>,
    /// The next slot of the same hash chain, or `NONE`.
    next: Vec<u32>,
    /// First slot of each chain, by a 32-bit hash of the prefix (8 bytes an entry; prefixes
    /// whose hashes collide share a chain and are told apart by comparing them).
    heads: HashMap<u32, u32>,
    free: Vec<u32>,
    len: usize,
    /// How many routes name each preferred source: IPv4 drops the routes of a removed
    /// address silently, and this says without a scan whether any route used it.
    sources: HashMap<IpAddr, u32>,
}

fn hash(prefix: &Prefix) -> u32 {
    let mut h = DefaultHasher::new();
    prefix.hash(&mut h);
    h.finish() as u32
}

/// A freed slot: table 0 is never one a route lives in.
fn hole() -> Route {
    Route::unicast(0, Family::V4.unspecified(), 0)
}

impl TableIndex {
    pub fn with_capacity(n: usize) -> TableIndex {
        TableIndex {
            slots: Vec::with_capacity(n),
            next: Vec::with_capacity(n),
            heads: HashMap::with_capacity(n),
            free: Vec::new(),
            len: 0,
            sources: HashMap::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every route, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Route> + Clone {
        self.slots.iter().filter(|r| r.table != 0)
    }

    /// The slots of the chain `prefix` hashes to, in chain order.
    fn chain(&self, prefix: &Prefix) -> Vec<u32> {
        let mut out = Vec::new();
        let mut at = self.heads.get(&hash(prefix)).copied().unwrap_or(NONE);
        while at != NONE {
            out.push(at);
            at = self.next[at as usize];
        }
        out
    }

    /// The routes with `prefix`, in the kernel's order.
    pub fn prefix(&self, prefix: &Prefix) -> impl Iterator<Item = &Route> + '_ {
        let prefix = *prefix;
        self.chain(&prefix)
            .into_iter()
            .map(|i| &self.slots[i as usize])
            .filter(move |r| Prefix::of(r) == prefix)
    }

    fn count_source(&mut self, route: &Route, add: bool) {
        let Some(src) = route.pref_src() else { return };
        if add {
            *self.sources.entry(src).or_default() += 1;
        } else if let Some(n) = self.sources.get_mut(&src) {
            *n -= 1;
            if *n == 0 {
                self.sources.remove(&src);
            }
        }
    }

    /// Every preferred source a route of the table names.
    pub fn sources(&self) -> impl Iterator<Item = &IpAddr> {
        self.sources.keys()
    }

    fn slot_for(&mut self, route: Route) -> u32 {
        self.count_source(&route, true);
        self.len += 1;
        match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = route;
                self.next[i as usize] = NONE;
                i
            }
            None => {
                self.slots.push(route);
                self.next.push(NONE);
                (self.slots.len() - 1) as u32
            }
        }
    }

    /// Adds `route`; an identical route already there is not added twice (a notification
    /// for what a dump already showed). Returns whether it was added.
    pub fn insert(&mut self, route: Route, place: Place) -> bool {
        let prefix = Prefix::of(&route);
        let chain = self.chain(&prefix);
        if chain.iter().any(|i| self.slots[*i as usize] == route) {
            return false;
        }
        let key = route.key();
        let h = hash(&prefix);
        let slot = self.slot_for(route);
        let before = match place {
            Place::First => chain
                .iter()
                .position(|i| self.slots[*i as usize].key() == key),
            Place::Last => None,
        };
        match before {
            Some(0) | None if chain.is_empty() => {
                self.heads.insert(h, slot);
            }
            Some(0) => {
                self.next[slot as usize] = chain[0];
                self.heads.insert(h, slot);
            }
            Some(p) => {
                self.next[slot as usize] = chain[p];
                self.next[chain[p - 1] as usize] = slot;
            }
            None => {
                let last = chain[chain.len() - 1];
                self.next[last as usize] = slot;
            }
        }
        true
    }

    /// Puts `route` in place of the first route with its key (`NLM_F_REPLACE`); returns the
    /// route it replaced, or adds it when there was none.
    pub fn replace(&mut self, route: Route) -> Option<Route> {
        let key = route.key();
        let prefix = Prefix::of(&route);
        match self
            .chain(&prefix)
            .into_iter()
            .find(|i| self.slots[*i as usize].key() == key)
        {
            Some(i) => {
                self.count_source(&route, true);
                let old = std::mem::replace(&mut self.slots[i as usize], route);
                self.count_source(&old, false);
                Some(old)
            }
            None => {
                self.insert(route, Place::Last);
                None
            }
        }
    }

    fn unlink(&mut self, prefix: &Prefix, slot: u32) -> Route {
        let h = hash(prefix);
        let next = self.next[slot as usize];
        if self.heads.get(&h) == Some(&slot) {
            if next == NONE {
                self.heads.remove(&h);
            } else {
                self.heads.insert(h, next);
            }
        } else if let Some(prev) = self
            .chain(prefix)
            .into_iter()
            .find(|i| self.next[*i as usize] == slot)
        {
            self.next[prev as usize] = next;
        }
        self.next[slot as usize] = NONE;
        self.free.push(slot);
        self.len -= 1;
        let route = std::mem::replace(&mut self.slots[slot as usize], hole());
        self.count_source(&route, false);
        route
    }

    /// Takes out what a deletion notification names: the route with its key, next hops and
    /// the rest of its value (IPv4 keeps routes under one key that differ only in their
    /// preferred source, say), or (a deleted next hop of an IPv6 multipath route, which the
    /// kernel reports alone) those next hops of the route with its key; a deletion without
    /// next hops takes the first route with its key. A deletion of a route that is not held
    /// (read again after it went) takes nothing.
    pub fn remove(&mut self, route: &Route) -> Removed {
        let key = route.key();
        let prefix = Prefix::of(route);
        let same_key: Vec<u32> = self
            .chain(&prefix)
            .into_iter()
            .filter(|i| self.slots[*i as usize].key() == key)
            .collect();
        let hops = |r: &Route| -> Vec<NextHop> {
            let mut v = r.nexthops.to_vec();
            v.iter_mut().for_each(|nh| nh.hops = 0);
            v.sort();
            v
        };
        let wanted = hops(route);
        let same_value = |held: &Route| {
            (
                held.protocol,
                held.scope,
                held.kind,
                held.pref,
                &held.extras,
            ) == (
                route.protocol,
                route.scope,
                route.kind,
                route.pref,
                &route.extras,
            )
        };
        if let Some(i) = same_key.iter().copied().find(|i| {
            let held = &self.slots[*i as usize];
            wanted.is_empty() || (hops(held) == wanted && same_value(held))
        }) {
            return Removed::Gone(self.unlink(&prefix, i));
        }
        // Some next hops of an IPv6 multipath route (IPv4 deletes routes whole).
        if let Some(i) = same_key.iter().copied().find(|i| {
            let held = hops(&self.slots[*i as usize]);
            route.family() == Family::V6
                && held.len() > wanted.len()
                && wanted.iter().all(|nh| held.contains(nh))
        }) {
            let before = self.slots[i as usize].clone();
            let slot = &mut self.slots[i as usize];
            slot.nexthops.retain(|nh| {
                let mut plain = nh.clone();
                plain.hops = 0;
                !wanted.contains(&plain)
            });
            if let [single] = slot.nexthops.as_mut_slice() {
                single.hops = 0;
            }
            return Removed::Gone(before);
        }
        Removed::Nothing
    }

    /// Takes out every route with `key`, returning them.
    pub fn remove_key(&mut self, key: &RouteKey) -> Vec<Route> {
        let prefix = Prefix {
            dst: key.dst,
            len: key.dst_len,
            tos: key.tos,
        };
        let slots: Vec<u32> = self
            .chain(&prefix)
            .into_iter()
            .filter(|i| self.slots[*i as usize].key() == *key)
            .collect();
        slots.into_iter().map(|i| self.unlink(&prefix, i)).collect()
    }

    /// Takes out every route `drop` says yes to, returning them.
    pub fn remove_where(&mut self, mut drop: impl FnMut(&Route) -> bool) -> Vec<Route> {
        let slots: Vec<u32> = (0..self.slots.len() as u32)
            .filter(|i| {
                let r = &self.slots[*i as usize];
                r.table != 0 && drop(r)
            })
            .collect();
        slots
            .into_iter()
            .map(|i| {
                let prefix = Prefix::of(&self.slots[i as usize]);
                self.unlink(&prefix, i)
            })
            .collect()
    }

    /// The route with exactly `key`, first of its kind.
    pub fn get(&self, key: &RouteKey) -> Option<&Route> {
        let prefix = Prefix {
            dst: key.dst,
            len: key.dst_len,
            tos: key.tos,
        };
        self.prefix(&prefix).find(|r| r.key() == *key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::MAIN_TABLE;

    fn via(dst: &str, ifindex: u32, gw: &str) -> Route {
        Route::unicast(MAIN_TABLE, dst.parse().unwrap(), 24).via(gw.parse().unwrap(), ifindex)
    }

    fn listed(t: &TableIndex, dst: &str) -> Vec<u32> {
        let p = Prefix {
            dst: dst.parse().unwrap(),
            len: 24,
            tos: 0,
        };
        t.prefix(&p).map(|r| r.nexthops[0].ifindex).collect()
    }

    #[test]
    fn keeps_kernel_order_within_a_key_and_replaces_the_first() {
        let mut t = TableIndex::default();
        t.insert(via("192.0.2.0", 2, "10.1.0.1"), Place::Last);
        t.insert(via("192.0.2.0", 3, "10.2.0.1"), Place::Last);
        t.insert(via("192.0.2.0", 4, "10.3.0.1"), Place::First);
        t.insert(via("192.0.2.0", 4, "10.3.0.1"), Place::Last);
        assert_eq!(listed(&t, "192.0.2.0"), [4, 2, 3]);
        let old = t.replace(via("192.0.2.0", 5, "10.5.0.1"));
        assert_eq!(old.map(|r| r.nexthops[0].ifindex), Some(4));
        assert_eq!(listed(&t, "192.0.2.0"), [5, 2, 3]);
        assert_eq!(
            t.remove(&via("192.0.2.0", 2, "10.1.0.1")),
            Removed::Gone(via("192.0.2.0", 2, "10.1.0.1"))
        );
        assert_eq!(listed(&t, "192.0.2.0"), [5, 3]);
        assert_eq!(t.remove(&via("192.0.2.0", 9, "10.1.0.1")), Removed::Nothing);
        assert_eq!(t.len(), 2);
        // Freed slots are reused and holes never listed.
        t.insert(via("198.51.100.0", 2, "10.1.0.1"), Place::Last);
        assert_eq!(t.iter().count(), 3);
        assert_eq!(t.slots.len(), 3);
    }

    #[test]
    fn a_deleted_next_hop_leaves_the_rest_of_a_multipath_route() {
        let mut t = TableIndex::default();
        let both = Route::unicast(MAIN_TABLE, "2001:db8::".parse().unwrap(), 64).multipath(vec![
            NextHop::via("fe80::1".parse().unwrap(), 2),
            NextHop::via("fe80::2".parse().unwrap(), 3),
        ]);
        t.insert(both.clone(), Place::Last);
        let one = Route::unicast(MAIN_TABLE, "2001:db8::".parse().unwrap(), 64)
            .via("fe80::2".parse().unwrap(), 3);
        assert_eq!(t.remove(&one), Removed::Gone(both.clone()));
        let left = t.get(&both.key()).cloned();
        assert_eq!(
            left.map(|r| r.nexthops.to_vec()),
            Some(vec![NextHop::via("fe80::1".parse().unwrap(), 2)])
        );
    }

    #[test]
    fn a_deletion_takes_the_route_it_names_not_one_that_shares_its_next_hops() {
        // IPv4 keeps both under one key (`ip route replace` of the first, then `ip route
        // append` of the other); a deletion read after the first went (the model read the
        // table again in between) takes nothing.
        let with_src =
            via("198.51.100.0", 3, "10.2.0.1").with_pref_src("10.2.0.50".parse().unwrap());
        let plain = via("198.51.100.0", 3, "10.2.0.1");
        let mut t = TableIndex::default();
        t.insert(with_src.clone(), Place::Last);
        t.insert(plain.clone(), Place::Last);
        assert_eq!(t.remove(&plain), Removed::Gone(plain.clone()));
        assert_eq!(
            t.prefix(&Prefix::of(&with_src)).collect::<Vec<_>>(),
            [&with_src]
        );
        assert_eq!(t.remove(&with_src), Removed::Gone(with_src.clone()));
        t.insert(plain.clone(), Place::Last);
        assert_eq!(t.remove(&with_src), Removed::Nothing);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn remove_where_unlinks_from_the_middle_of_chains() {
        let mut t = TableIndex::default();
        for i in 0..50u32 {
            t.insert(
                via(&format!("192.0.{i}.0"), 2 + i % 3, "10.1.0.1"),
                Place::Last,
            );
        }
        let gone = t.remove_where(|r| r.uses_link(3));
        assert_eq!(gone.len(), 17);
        assert_eq!(t.len(), 33);
        assert!(t.iter().all(|r| !r.uses_link(3)));
        for i in 0..50u32 {
            assert_eq!(
                listed(&t, &format!("192.0.{i}.0")).len(),
                usize::from(i % 3 != 1)
            );
        }
    }

    #[test]
    fn preferred_sources_are_counted_through_every_change() {
        let src = |a: &str| -> IpAddr { a.parse().unwrap() };
        let with = |dst: &str, a: &str| via(dst, 2, "10.1.0.1").with_pref_src(src(a));
        let mut t = TableIndex::default();
        t.insert(with("198.51.100.0", "10.1.0.2"), Place::Last);
        t.insert(with("203.0.113.0", "10.1.0.2"), Place::Last);
        t.insert(via("192.0.2.0", 2, "10.1.0.1"), Place::Last);
        let sources = |t: &TableIndex| {
            let mut v: Vec<IpAddr> = t.sources().copied().collect();
            v.sort();
            v
        };
        assert_eq!(sources(&t), vec![src("10.1.0.2")]);
        t.replace(with("198.51.100.0", "10.1.0.50"));
        assert_eq!(sources(&t), vec![src("10.1.0.2"), src("10.1.0.50")]);
        t.remove(&with("203.0.113.0", "10.1.0.2"));
        assert_eq!(sources(&t), vec![src("10.1.0.50")]);
        t.remove_where(|r| r.pref_src().is_some());
        assert!(sources(&t).is_empty());
    }
}
