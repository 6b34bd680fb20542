//! A route's next hops and metrics, laid out for the common case: a table of 100 000 routes
//! is 100 000 routes with one next hop and no metric, and a heap block for each (a `Vec`
//! per route) was a third of a run's memory and most of its malloc/free time. One next hop
//! is held inline; several (a multipath route), and a preferred source or metrics, which
//! are rare, go behind one pointer.

use std::cmp::Ordering;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::ops::{Deref, DerefMut};

use super::NextHop;

/// The next hops of a route: none (unreachable, blackhole...), one (inline), or several.
#[derive(Debug, Clone, Default)]
pub struct NextHops(Hops);

#[derive(Debug, Clone, Default)]
enum Hops {
    #[default]
    None,
    One(NextHop),
    /// Two or more (fits beside the inline case's fields: no larger than it).
    Many(Box<[NextHop]>),
}

impl NextHops {
    pub fn as_slice(&self) -> &[NextHop] {
        match &self.0 {
            Hops::None => &[],
            Hops::One(nh) => std::slice::from_ref(nh),
            Hops::Many(v) => v,
        }
    }

    pub fn as_mut_slice(&mut self) -> &mut [NextHop] {
        match &mut self.0 {
            Hops::None => &mut [],
            Hops::One(nh) => std::slice::from_mut(nh),
            Hops::Many(v) => v,
        }
    }

    /// The hops as a vector, leaving none (a multipath route's is handed over, not copied).
    pub fn take_vec(&mut self) -> Vec<NextHop> {
        match std::mem::take(&mut self.0) {
            Hops::None => Vec::new(),
            Hops::One(nh) => vec![nh],
            Hops::Many(v) => v.into_vec(),
        }
    }

    /// Keeps the hops `keep` says yes to.
    pub fn retain(&mut self, keep: impl FnMut(&NextHop) -> bool) {
        if let Hops::One(nh) = &self.0 {
            let mut keep = keep;
            if !keep(nh) {
                self.0 = Hops::None;
            }
            return;
        }
        let mut all = self.take_vec();
        all.retain(keep);
        *self = NextHops::from(all);
    }

    pub fn push(&mut self, nh: NextHop) {
        let mut all = self.take_vec();
        all.push(nh);
        *self = NextHops::from(all);
    }

    /// Moves the hops of `other` after these.
    pub fn append(&mut self, other: &mut NextHops) {
        if other.is_empty() {
            return;
        }
        let mut all = self.take_vec();
        all.append(&mut other.take_vec());
        *self = NextHops::from(all);
    }

    /// Sorted, without duplicates (the order routes are compared in).
    pub fn sort_dedup(&mut self) {
        if let Hops::Many(_) = &self.0 {
            let mut all = self.take_vec();
            all.sort_unstable();
            all.dedup();
            *self = NextHops::from(all);
        }
    }

    pub fn clear(&mut self) {
        self.0 = Hops::None;
    }
}

impl From<Vec<NextHop>> for NextHops {
    fn from(mut all: Vec<NextHop>) -> NextHops {
        NextHops(match all.len() {
            0 => Hops::None,
            1 => match all.pop() {
                Some(nh) => Hops::One(nh),
                None => Hops::None,
            },
            _ => Hops::Many(all.into_boxed_slice()),
        })
    }
}

impl From<Option<NextHop>> for NextHops {
    fn from(nh: Option<NextHop>) -> NextHops {
        NextHops(nh.map_or(Hops::None, Hops::One))
    }
}

impl Deref for NextHops {
    type Target = [NextHop];
    fn deref(&self) -> &[NextHop] {
        self.as_slice()
    }
}

impl DerefMut for NextHops {
    fn deref_mut(&mut self) -> &mut [NextHop] {
        self.as_mut_slice()
    }
}

impl<'a> IntoIterator for &'a NextHops {
    type Item = &'a NextHop;
    type IntoIter = std::slice::Iter<'a, NextHop>;
    fn into_iter(self) -> Self::IntoIter {
        self.as_slice().iter()
    }
}

// Compared, ordered and hashed as the slice they read as, whatever the representation.
impl PartialEq for NextHops {
    fn eq(&self, other: &NextHops) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for NextHops {}

impl PartialOrd for NextHops {
    fn partial_cmp(&self, other: &NextHops) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for NextHops {
    fn cmp(&self, other: &NextHops) -> Ordering {
        self.as_slice().cmp(other.as_slice())
    }
}

impl Hash for NextHops {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_slice().hash(state);
    }
}

impl PartialEq<Vec<NextHop>> for NextHops {
    fn eq(&self, other: &Vec<NextHop>) -> bool {
        self.as_slice() == other.as_slice()
    }
}

/// What few routes have: a preferred source (`src ADDR`), numeric `RTAX_*` metrics (mtu,
/// advmss, ...) and a congestion control algorithm (`congctl`, `RTAX_CC_ALGO`). Held behind
/// one pointer, and not at all when there is none of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Extras(Option<Box<Rare>>);

#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Rare {
    pref_src: Option<IpAddr>,
    /// Sorted by id.
    metrics: Vec<(u16, u32)>,
    congctl: Option<Box<str>>,
}

impl Extras {
    /// `metrics` sorted by id here.
    pub fn new(pref_src: Option<IpAddr>, metrics: Vec<(u16, u32)>) -> Extras {
        Extras::with_congctl(pref_src, metrics, None)
    }

    /// [`Extras::new`] with a congestion control algorithm.
    pub fn with_congctl(
        pref_src: Option<IpAddr>,
        mut metrics: Vec<(u16, u32)>,
        congctl: Option<Box<str>>,
    ) -> Extras {
        if pref_src.is_none() && metrics.is_empty() && congctl.is_none() {
            return Extras(None);
        }
        metrics.sort_unstable();
        Extras(Some(Box::new(Rare {
            pref_src,
            metrics,
            congctl,
        })))
    }

    pub fn pref_src(&self) -> Option<IpAddr> {
        self.0.as_ref().and_then(|r| r.pref_src)
    }

    /// `RTAX_*` id and value of every numeric metric, sorted by id.
    pub fn metrics(&self) -> &[(u16, u32)] {
        self.0.as_ref().map_or(&[], |r| r.metrics.as_slice())
    }

    /// The congestion control algorithm (`congctl NAME`).
    pub fn congctl(&self) -> Option<&str> {
        self.0.as_ref().and_then(|r| r.congctl.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hop(ifindex: u32) -> NextHop {
        NextHop::dev(ifindex)
    }

    #[test]
    fn representations_compare_as_slices() {
        let mut one = NextHops::from(vec![hop(3)]);
        let mut two = NextHops::from(vec![hop(3), hop(2)]);
        assert_eq!(one, vec![hop(3)]);
        two.retain(|nh| nh.ifindex == 3);
        assert_eq!(one, two);
        one.append(&mut NextHops::from(vec![hop(2), hop(3)]));
        one.sort_dedup();
        assert_eq!(one, vec![hop(2), hop(3)]);
        assert!(one < two, "ordered like the vectors");
        one.retain(|_| false);
        assert!(one.is_empty());
        assert_eq!(Extras::new(None, vec![]), Extras::default());
        assert_eq!(
            Extras::new(None, vec![(8, 1), (2, 3)]).metrics(),
            [(2, 3), (8, 1)]
        );
    }

    #[test]
    fn a_route_with_one_next_hop_holds_no_heap_block() {
        // The point of this layout: sizes stay what the memory figures assume.
        assert!(std::mem::size_of::<NextHops>() <= 24);
        assert!(std::mem::size_of::<Extras>() <= 8);
        assert!(std::mem::size_of::<super::super::Route>() <= 64);
        assert!(std::mem::size_of::<super::super::Op>() <= 96);
    }
}
