//! The routes of one table, indexed by prefix and kept current route by route: what the
//! daemon's model holds of main (up to a full BGP table) and of each of symroute's tables.
//!
//! Compact on purpose (docs/design.md, "The daemon's event path"): the routes live in two
//! slabs, the common IPv4 route packed in 28 bytes ([`Packed`]) and any other whole (64
//! bytes), chained by prefix through parallel lists of slot numbers, with one hash entry per
//! prefix. A million IPv4 routes are about 28 + 4 + 18 MB, not a `Vec` or a hash entry
//! holding each route in a block of its own.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::net::IpAddr;

use super::packed::Packed;
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
/// Slot numbers with this bit set are in the slab of whole routes.
const WHOLE: u32 = 1 << 31;

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

/// The heads' keys are already hashes of prefixes: spread over 64 bits, not hashed again
/// with SipHash (most of the CPU of a churn's bookkeeping).
#[derive(Default)]
struct Spread(u64);

impl Hasher for Spread {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.write_u32(u32::from(*b) ^ (self.0 as u32));
        }
    }

    fn write_u32(&mut self, n: u32) {
        self.0 = u64::from(n).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

/// The routes of one table, by prefix, in the kernel's order within one key.
#[derive(Debug, Default)]
pub struct TableIndex {
    packed: Vec<Packed>,
    whole: Vec<Route>,
    /// The next slot of the same hash chain, or `NONE`, for each slot of each slab.
    next_packed: Vec<u32>,
    next_whole: Vec<u32>,
    /// First slot of each chain, by a 32-bit hash of the prefix (prefixes whose hashes
    /// collide share a chain and are told apart by comparing them).
    heads: HashMap<u32, u32, BuildHasherDefault<Spread>>,
    free_packed: Vec<u32>,
    free_whole: Vec<u32>,
    len: usize,
    /// How many routes name each preferred source: IPv4 drops the routes of a removed
    /// address silently, and this says without a scan whether any route used it.
    sources: HashMap<IpAddr, u32>,
}

/// A 32-bit hash of a prefix (a multiply-and-fold of its bits: cheap, and well spread for
/// the dense prefixes of a BGP table).
fn hash(prefix: &Prefix) -> u32 {
    let bits: u128 = match prefix.dst {
        IpAddr::V4(a) => u128::from(u32::from(a)),
        IpAddr::V6(a) => u128::from(a) ^ (1 << 127),
    };
    let folded = (bits as u64) ^ ((bits >> 64) as u64).rotate_left(17);
    let mixed = (folded ^ (u64::from(prefix.len) << 56) ^ (u64::from(prefix.tos) << 48))
        .wrapping_mul(0xff51_afd7_ed55_8ccd);
    ((mixed ^ (mixed >> 31)) >> 16) as u32
}

/// A freed whole slot: table 0 is never one a route lives in.
fn hole() -> Route {
    Route::unicast(0, Family::V4.unspecified(), 0)
}

impl TableIndex {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Every route, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = Route> + Clone + '_ {
        self.packed
            .iter()
            .filter(|p| p.table != 0)
            .map(Packed::route)
            .chain(self.whole.iter().filter(|r| r.table != 0).cloned())
    }

    /// Shows every route to `visit`, in no particular order, unpacking none into the heap.
    pub fn for_each(&self, mut visit: impl FnMut(&Route)) {
        for p in self.packed.iter().filter(|p| p.table != 0) {
            visit(&p.route());
        }
        for r in self.whole.iter().filter(|r| r.table != 0) {
            visit(r);
        }
    }

    fn next(&self, slot: u32) -> u32 {
        if slot & WHOLE != 0 {
            self.next_whole[(slot & !WHOLE) as usize]
        } else {
            self.next_packed[slot as usize]
        }
    }

    fn set_next(&mut self, slot: u32, next: u32) {
        if slot & WHOLE != 0 {
            self.next_whole[(slot & !WHOLE) as usize] = next;
        } else {
            self.next_packed[slot as usize] = next;
        }
    }

    /// The route in `slot`.
    fn route(&self, slot: u32) -> Route {
        if slot & WHOLE != 0 {
            self.whole[(slot & !WHOLE) as usize].clone()
        } else {
            self.packed[slot as usize].route()
        }
    }

    /// Whether `slot` holds exactly `route` (without unpacking it).
    fn holds(&self, slot: u32, route: &Route) -> bool {
        if slot & WHOLE != 0 {
            self.whole[(slot & !WHOLE) as usize] == *route
        } else {
            Packed::of(route) == Some(self.packed[slot as usize])
        }
    }

    fn key(&self, slot: u32) -> RouteKey {
        if slot & WHOLE != 0 {
            self.whole[(slot & !WHOLE) as usize].key()
        } else {
            self.packed[slot as usize].route().key()
        }
    }

    /// The slots of the chain `prefix` hashes to, in chain order.
    fn chain(&self, prefix: &Prefix) -> Vec<u32> {
        let mut out = Vec::new();
        let mut at = self.heads.get(&hash(prefix)).copied().unwrap_or(NONE);
        while at != NONE {
            out.push(at);
            at = self.next(at);
        }
        out
    }

    /// The routes with `prefix`, in the kernel's order.
    pub fn prefix(&self, prefix: &Prefix) -> impl Iterator<Item = Route> + '_ {
        let prefix = *prefix;
        self.chain(&prefix)
            .into_iter()
            .map(|i| self.route(i))
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

    /// Stores `route` in a free slot of its slab, chained to nothing yet.
    fn slot_for(&mut self, route: Route) -> u32 {
        self.count_source(&route, true);
        self.len += 1;
        match Packed::of(&route) {
            Some(packed) => match self.free_packed.pop() {
                Some(i) => {
                    self.packed[i as usize] = packed;
                    self.next_packed[i as usize] = NONE;
                    i
                }
                None => {
                    self.packed.push(packed);
                    self.next_packed.push(NONE);
                    (self.packed.len() - 1) as u32
                }
            },
            None => match self.free_whole.pop() {
                Some(i) => {
                    self.whole[i as usize] = route;
                    self.next_whole[i as usize] = NONE;
                    i | WHOLE
                }
                None => {
                    self.whole.push(route);
                    self.next_whole.push(NONE);
                    (self.whole.len() - 1) as u32 | WHOLE
                }
            },
        }
    }

    /// Frees `slot`, returning its route (its chain links are the caller's).
    fn free(&mut self, slot: u32) -> Route {
        self.len -= 1;
        let route = if slot & WHOLE != 0 {
            let i = (slot & !WHOLE) as usize;
            self.next_whole[i] = NONE;
            self.free_whole.push(slot & !WHOLE);
            std::mem::replace(&mut self.whole[i], hole())
        } else {
            let i = slot as usize;
            self.next_packed[i] = NONE;
            self.free_packed.push(slot);
            std::mem::take(&mut self.packed[i]).route()
        };
        self.count_source(&route, false);
        route
    }

    /// Adds `route`; an identical route already there is not added twice (a notification
    /// for what a dump already showed). Returns whether it was added.
    pub fn insert(&mut self, route: Route, place: Place) -> bool {
        let prefix = Prefix::of(&route);
        let chain = self.chain(&prefix);
        if chain.iter().any(|i| self.holds(*i, &route)) {
            return false;
        }
        let key = route.key();
        let h = hash(&prefix);
        let slot = self.slot_for(route);
        let before = match place {
            Place::First => chain.iter().position(|i| self.key(*i) == key),
            Place::Last => None,
        };
        match before {
            Some(0) | None if chain.is_empty() => {
                self.heads.insert(h, slot);
            }
            Some(0) => {
                self.set_next(slot, chain[0]);
                self.heads.insert(h, slot);
            }
            Some(p) => {
                self.set_next(slot, chain[p]);
                self.set_next(chain[p - 1], slot);
            }
            None => {
                let last = chain[chain.len() - 1];
                self.set_next(last, slot);
            }
        }
        true
    }

    /// Makes what points at `slot` in `prefix`'s chain (its head or its predecessor) point
    /// at `to` instead (`NONE`: the chain ends there).
    fn repoint(&mut self, prefix: &Prefix, slot: u32, to: u32) {
        let h = hash(prefix);
        if self.heads.get(&h) == Some(&slot) {
            if to == NONE {
                self.heads.remove(&h);
            } else {
                self.heads.insert(h, to);
            }
        } else if let Some(prev) = self
            .chain(prefix)
            .into_iter()
            .find(|i| self.next(*i) == slot)
        {
            self.set_next(prev, to);
        }
    }

    /// Puts `route` in place of the first route with its key (`NLM_F_REPLACE`); returns the
    /// route it replaced, or adds it when there was none.
    pub fn replace(&mut self, route: Route) -> Option<Route> {
        let key = route.key();
        let prefix = Prefix::of(&route);
        let Some(i) = self
            .chain(&prefix)
            .into_iter()
            .find(|i| self.key(*i) == key)
        else {
            self.insert(route, Place::Last);
            return None;
        };
        // In place when the new route belongs in the old one's slab.
        let old = match (i & WHOLE != 0, Packed::of(&route)) {
            (false, Some(packed)) => {
                std::mem::replace(&mut self.packed[i as usize], packed).route()
            }
            (true, None) => {
                self.count_source(&route, true);
                std::mem::replace(&mut self.whole[(i & !WHOLE) as usize], route)
            }
            // Else into a slot of the other slab, where the old one was in the chain.
            _ => {
                let new = self.slot_for(route);
                self.set_next(new, self.next(i));
                self.repoint(&prefix, i, new);
                return Some(self.free(i));
            }
        };
        self.count_source(&old, false);
        Some(old)
    }

    fn unlink(&mut self, prefix: &Prefix, slot: u32) -> Route {
        self.repoint(prefix, slot, self.next(slot));
        self.free(slot)
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
            .filter(|i| self.key(*i) == key)
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
            let held = self.route(*i);
            wanted.is_empty() || (hops(&held) == wanted && same_value(&held))
        }) {
            return Removed::Gone(self.unlink(&prefix, i));
        }
        // Some next hops of an IPv6 multipath route (IPv4 deletes routes whole; only whole
        // slots hold several).
        if let Some(i) = same_key.iter().copied().find(|i| {
            let held = hops(&self.route(*i));
            i & WHOLE != 0
                && route.family() == Family::V6
                && held.len() > wanted.len()
                && wanted.iter().all(|nh| held.contains(nh))
        }) {
            let slot = &mut self.whole[(i & !WHOLE) as usize];
            let before = slot.clone();
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
            .filter(|i| self.key(*i) == *key)
            .collect();
        slots.into_iter().map(|i| self.unlink(&prefix, i)).collect()
    }

    /// Takes out every route `drop` says yes to, returning them.
    pub fn remove_where(&mut self, mut drop: impl FnMut(&Route) -> bool) -> Vec<Route> {
        let packed = (0..self.packed.len() as u32).filter(|i| self.packed[*i as usize].table != 0);
        let whole = (0..self.whole.len() as u32)
            .filter(|i| self.whole[*i as usize].table != 0)
            .map(|i| i | WHOLE);
        let slots: Vec<(u32, Prefix)> = packed
            .chain(whole)
            .filter_map(|i| {
                let route = self.route(i);
                drop(&route).then(|| (i, Prefix::of(&route)))
            })
            .collect();
        slots
            .into_iter()
            .map(|(i, prefix)| self.unlink(&prefix, i))
            .collect()
    }

    /// The route with exactly `key`, first of its kind.
    pub fn get(&self, key: &RouteKey) -> Option<Route> {
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
        assert_eq!(t.packed.len(), 3);
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
        let left = t.get(&both.key());
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
            std::slice::from_ref(&with_src)
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

    /// What the index must hold: each prefix's routes in the kernel's order.
    #[derive(Default)]
    struct Naive(Vec<Route>);

    impl Naive {
        fn prefix(&self, p: &Prefix) -> Vec<Route> {
            self.0
                .iter()
                .filter(|r| Prefix::of(r) == *p)
                .cloned()
                .collect()
        }

        fn insert(&mut self, route: Route, place: Place) {
            if self.0.contains(&route) {
                return;
            }
            let at = match place {
                Place::First => self.0.iter().position(|r| r.key() == route.key()),
                Place::Last => None,
            };
            match at {
                Some(i) => self.0.insert(i, route),
                None => self.0.push(route),
            }
        }

        fn replace(&mut self, route: Route) -> Option<Route> {
            match self.0.iter().position(|r| r.key() == route.key()) {
                Some(i) => Some(std::mem::replace(&mut self.0[i], route)),
                None => {
                    self.0.push(route);
                    None
                }
            }
        }
    }

    fn any_route() -> impl proptest::strategy::Strategy<Value = Route> {
        use proptest::prelude::*;
        (0u8..4, 0u8..3, 0u32..3, 2u32..4, 0u8..5).prop_map(|(dst, kind, metric, dev, shape)| {
            let v4 = |d: u8| -> IpAddr { IpAddr::from([192, 0, d, 0]) };
            let v6 = |d: u8| -> IpAddr { format!("2001:db8:{d}::").parse().unwrap() };
            let gw = |i: u32| -> IpAddr { IpAddr::from([10, i as u8, 0, 1]) };
            let mut r = match shape {
                0 => Route::unicast(MAIN_TABLE, v4(dst), 24).via(gw(dev), dev),
                1 => Route::unicast(MAIN_TABLE, v4(dst), 24).dev(dev),
                2 => Route::unicast(MAIN_TABLE, v6(dst), 48).dev(dev),
                3 => Route::unicast(MAIN_TABLE, v4(dst), 24)
                    .via(gw(dev), dev)
                    .with_pref_src(IpAddr::from([10, dev as u8, 0, 2])),
                _ => Route::unicast(MAIN_TABLE, v4(dst), 24)
                    .multipath(vec![NextHop::via(gw(2), 2), NextHop::via(gw(3), 3)]),
            };
            r.metric = metric;
            r.kind = if kind == 2 { 2 } else { 1 };
            r
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

        /// Packed and whole slots, freed and reused, relinked across slabs on a replace:
        /// the index lists each prefix as the kernel orders it.
        #[test]
        fn the_index_holds_what_a_list_in_kernel_order_holds(
            steps in proptest::collection::vec((0u8..5, any_route()), 1..60),
        ) {
            let mut t = TableIndex::default();
            let mut naive = Naive::default();
            for (what, route) in steps {
                match what {
                    0 => {
                        t.insert(route.clone(), Place::Last);
                        naive.insert(route, Place::Last);
                    }
                    1 => {
                        t.insert(route.clone(), Place::First);
                        naive.insert(route, Place::First);
                    }
                    2 => {
                        proptest::prop_assert_eq!(t.replace(route.clone()), naive.replace(route));
                    }
                    3 => {
                        let gone = t.remove_key(&route.key());
                        let before = naive.0.len();
                        naive.0.retain(|r| r.key() != route.key());
                        proptest::prop_assert_eq!(gone.len(), before - naive.0.len());
                    }
                    _ => {
                        let dev = route.nexthops.first().map_or(0, |nh| nh.ifindex);
                        t.remove_where(|r| r.uses_link(dev));
                        naive.0.retain(|r| !r.uses_link(dev));
                    }
                }
                proptest::prop_assert_eq!(t.len(), naive.0.len());
                for r in &naive.0 {
                    let p = Prefix::of(r);
                    proptest::prop_assert_eq!(t.prefix(&p).collect::<Vec<_>>(), naive.prefix(&p));
                }
                let mut sources: Vec<IpAddr> = t.sources().copied().collect();
                sources.sort();
                let mut wanted: Vec<IpAddr> = naive.0.iter().filter_map(|r| r.pref_src()).collect();
                wanted.sort();
                wanted.dedup();
                proptest::prop_assert_eq!(sources, wanted);
            }
        }
    }
}
