//! Entry points for the fuzz targets in `fuzz/` (a crate outside the workspace): the
//! decoders of what the kernel sends, reached without making `kernel/` public. Compiled only
//! with the `fuzzing` feature; not an API. See docs/fuzzing.md.
//!
//! Each function feeds its bytes to the code the binaries run on the same bytes, and checks
//! what must hold of any input, so a fuzzer finds wrong answers as well as panics.

use crate::kernel::monitor::{parse_datagram, Change, Received};
use crate::kernel::rtnl::messages;
use crate::kernel::{wire, wire_rules};
use crate::model::{Route, Rule, RuleExtra};

/// A dump's answer as the run's reads decode it (`kernel/mod.rs`): routes, links and
/// addresses by `kernel/wire.rs`, rules by `kernel/wire_rules.rs`. Every route decoded must
/// come back the same from the bytes the run writes for it (its copy in an interface's
/// table is encoded from it), and so must every rule of the kind the run writes.
pub fn dump_answer(bytes: &[u8]) {
    for answer in messages(bytes) {
        match answer.kind {
            wire::RTM_NEWROUTE => {
                if let Some(route) = wire::route_from(answer.payload) {
                    assert_route_round_trips(&route);
                }
            }
            wire::RTM_NEWLINK => {
                let _ = wire::link_from(&answer);
            }
            wire::RTM_NEWADDR => {
                let _ = wire::address_from(&answer);
            }
            wire_rules::RTM_NEWRULE => {
                if let Some(rule) = wire_rules::rule_from(answer.payload) {
                    assert_rule_round_trips(&rule);
                }
            }
            _ => {}
        }
    }
}

/// Encodes `rule` as the run writes it and decodes that again: the same rule, when it is
/// one the run could have written (a plain lookup: nothing of [`RuleExtra`] set).
fn assert_rule_round_trips(rule: &Rule) {
    if rule.extra != RuleExtra::default() {
        return;
    }
    let mut buf = Vec::new();
    wire_rules::rule_message(&mut buf, wire_rules::RTM_NEWRULE, 0, rule);
    let again = messages(&buf)
        .next()
        .and_then(|answer| wire_rules::rule_from(answer.payload));
    assert_eq!(again.as_ref(), Some(rule), "encoded as {buf:?}");
}

/// Encodes `route` as the run writes it and decodes that again: the same route.
fn assert_route_round_trips(route: &Route) {
    let mut buf = Vec::new();
    wire::route_message(&mut buf, wire::RTM_NEWROUTE, 0, route);
    let again = messages(&buf)
        .next()
        .and_then(|answer| wire::route_from(answer.payload));
    assert_eq!(again.as_ref(), Some(route), "encoded as {buf:?}");
}

/// A datagram of the daemon's event socket, split and decoded as `Monitor::drain` does.
/// Every route change it reports must round-trip like a dumped route.
pub fn monitor_datagram(bytes: &[u8]) {
    parse_datagram(bytes, &mut |received| {
        if let Received::Message {
            message: Change::Route { route, .. },
            ..
        } = received
        {
            assert_route_round_trips(&route);
        }
    });
}
