//! One change to the kernel's routing state, as planned and applied.

use std::fmt;

use super::{Link, Named, Route, Rule};

/// One change to the kernel. A plan's operations are applied in the order
/// `plan::diff` returns them: make before break.
///
/// Rules are boxed: a first build of a million-route table is a million route operations,
/// and an operation sized for a rule (88 bytes) would hold each of them in 96 bytes, not 72.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Create the route, or overwrite the present one with the same key in place.
    ReplaceRoute(Route),
    AddRule(Box<Rule>),
    DelRule(Box<Rule>),
    DelRoute(Route),
}

impl Op {
    pub fn add_rule(rule: Rule) -> Op {
        Op::AddRule(Box::new(rule))
    }

    pub fn del_rule(rule: Rule) -> Op {
        Op::DelRule(Box::new(rule))
    }
}

impl Op {
    /// Phase in the make-before-break order.
    pub(crate) fn phase(&self) -> u8 {
        match self {
            Op::ReplaceRoute(_) => 0,
            Op::AddRule(_) => 1,
            Op::DelRule(_) => 2,
            Op::DelRoute(_) => 3,
        }
    }
}

impl Op {
    /// The operation the way it is logged: `+rule from 10.2.0.9 lookup 1003 priority 32000`.
    pub fn display<'a>(&'a self, links: &'a [Link]) -> Named<'a, Op> {
        Named::new(self, links)
    }
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.display(&[]).fmt(f)
    }
}

impl fmt::Display for Named<'_, Op> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.value {
            Op::ReplaceRoute(r) => write!(f, "+route {}", r.display(self.links)),
            Op::AddRule(r) => write!(f, "+rule {r}"),
            Op::DelRule(r) => write!(f, "-rule {r}"),
            Op::DelRoute(r) => write!(f, "-route {}", r.display(self.links)),
        }
    }
}
