//! Whether an interface may have been left without an IPv4 address for a moment: IPv4 then
//! flushes every route through it, in every table, without a notification (and a multipath
//! route keeps its next hop through it, dead, until an address comes back).
//!
//! Judged from the IPv4 address notifications taken in since the addresses were last read,
//! in the order the kernel sent them. That read can be ahead of them: it may already show an
//! address whose notification comes later (a DHCP client's new lease, added right after the
//! old one went), which then must not count as held when the old one went.

use std::net::IpAddr;

/// An IPv4 address notification of one interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum V4Event {
    Added(IpAddr),
    /// `None`: the notification did not say which.
    Removed(Option<IpAddr>),
}

/// Whether the interface may have had no IPv4 address at some point of `events`, when it
/// had `read` when last read.
pub(super) fn lost_all_v4(read: &[IpAddr], events: &[V4Event]) -> bool {
    let mut held: Vec<IpAddr> = read.to_vec();
    for (n, event) in events.iter().enumerate() {
        match event {
            V4Event::Added(a) => {
                if !held.contains(a) {
                    held.push(*a);
                }
            }
            V4Event::Removed(None) => return true,
            V4Event::Removed(Some(a)) => {
                held.retain(|b| b != a);
                let later = &events[n + 1..];
                if held.iter().all(|h| later.contains(&V4Event::Added(*h))) {
                    return true;
                }
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::V4Event::{Added, Removed};
    use super::*;
    use crate::fixtures::ip as a;

    #[test]
    fn the_only_address_removed_and_added_back_is_a_moment_without() {
        let events = [Removed(Some(a("10.2.0.2"))), Added(a("10.2.0.2"))];
        // Read before, between and after the two.
        assert!(lost_all_v4(&[a("10.2.0.2")], &events));
        assert!(lost_all_v4(&[], &events));
        assert!(lost_all_v4(&[a("10.2.0.2")], &events[..1]));
    }

    #[test]
    fn a_new_lease_read_ahead_of_its_notification_does_not_count_as_held() {
        // Renumbered to 10.2.0.50; the read already showed the new address.
        let events = [Removed(Some(a("10.2.0.2"))), Added(a("10.2.0.50"))];
        assert!(lost_all_v4(&[a("10.2.0.2"), a("10.2.0.50")], &events));
        assert!(lost_all_v4(&[a("10.2.0.50")], &events));
    }

    #[test]
    fn another_address_held_throughout_keeps_the_routes() {
        // A VIP removed beside the interface's own address.
        let events = [Removed(Some(a("10.2.0.71")))];
        assert!(!lost_all_v4(&[a("10.2.0.2"), a("10.2.0.71")], &events));
        // One added before the other went, as the notifications say.
        let events = [Added(a("10.2.0.50")), Removed(Some(a("10.2.0.2")))];
        assert!(!lost_all_v4(&[a("10.2.0.2")], &events));
        // Addresses only added.
        assert!(!lost_all_v4(&[], &[Added(a("10.2.0.2"))]));
    }

    #[test]
    fn a_removal_that_names_no_address_may_have_been_the_last() {
        assert!(lost_all_v4(
            &[a("10.2.0.2"), a("10.2.0.3")],
            &[Removed(None)]
        ));
    }
}
