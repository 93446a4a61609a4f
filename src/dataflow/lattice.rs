//! The abstract state: a small set of path facts.
//!
//! Instead of joining everything into one may/must summary, a program point
//! keeps up to [`MAX_FACTS`] distinct facts, each exact for the paths it stands
//! for. Identical facts merge, so the set stays small in practice, and a
//! correlated pair `if (c) pagefault_disable(); ... if (c) pagefault_enable();`
//! is never mixed into the infeasible "disabled, then not enabled" path.

use crate::cfg::Assume;

/// Page-fault-disable depth saturates here (an unbalanced disable in a loop).
pub const MAX_DEPTH: u8 = 8;
/// Past this many facts at a point, facts are merged (see [`State::widen`]).
pub const MAX_FACTS: usize = 32;

/// What holds on one bundle of paths reaching a point.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fact {
    /// `pagefault_disable()` depth, counting live `kmap_atomic()` regions.
    pub fault_depth: u8,
    /// Live `kmap_local_*()` mappings (bit = map site; site 63 stands for 63+).
    pub live_local: u64,
    /// Live `kmap_atomic()` mappings.
    pub live_atomic: u64,
    /// Held contexts (bit = acquire site).
    pub held: u64,
    /// Conditions known along these paths, sorted by condition id.
    pub assumptions: Vec<Assume>,
}

impl Fact {
    pub fn entry() -> Self {
        Fact {
            fault_depth: 0,
            live_local: 0,
            live_atomic: 0,
            held: 0,
            assumptions: Vec::new(),
        }
    }

    /// Refines by an edge's assumption; `None` if the path is infeasible.
    pub fn assume(mut self, assume: Assume) -> Option<Self> {
        match self
            .assumptions
            .binary_search_by_key(&assume.cond, |a| a.cond)
        {
            Ok(i) if self.assumptions[i].value != assume.value => None,
            Ok(_) => Some(self),
            Err(i) => {
                self.assumptions.insert(i, assume);
                Some(self)
            }
        }
    }

    pub fn forget(&mut self, conds: u64) {
        self.assumptions
            .retain(|a| a.cond >= 64 || conds & (1 << a.cond) == 0);
    }
}

pub fn bit(site: u16) -> u64 {
    1u64 << site.min(63)
}

/// The facts at a program point (sorted, no duplicates).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    pub facts: Vec<Fact>,
}

impl State {
    /// Adds `facts`; returns whether the state grew.
    pub fn join(&mut self, facts: impl IntoIterator<Item = Fact>) -> bool {
        let before = self.facts.clone();
        self.facts.extend(facts);
        self.normalize();
        self.facts != before
    }

    fn normalize(&mut self) {
        self.facts.sort_unstable();
        self.facts.dedup();
        if self.facts.len() > MAX_FACTS {
            self.widen();
        }
    }

    /// Too many facts: first forget path conditions, then merge facts of equal
    /// depth by union (may-live, may-held), which keeps the depth exact.
    fn widen(&mut self) {
        for fact in &mut self.facts {
            fact.assumptions.clear();
        }
        self.facts.sort_unstable();
        self.facts.dedup();
        if self.facts.len() <= MAX_FACTS {
            return;
        }
        let mut merged: Vec<Fact> = Vec::new();
        for fact in self.facts.drain(..) {
            match merged
                .iter_mut()
                .find(|m| m.fault_depth == fact.fault_depth)
            {
                Some(m) => {
                    m.live_local |= fact.live_local;
                    m.live_atomic |= fact.live_atomic;
                    m.held |= fact.held;
                }
                None => merged.push(fact),
            }
        }
        merged.sort_unstable();
        self.facts = merged;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contradictory_assumption_is_infeasible() {
        let a = Assume {
            cond: 0,
            value: true,
        };
        let fact = Fact::entry().assume(a).unwrap();
        assert!(
            fact.clone()
                .assume(Assume {
                    cond: 0,
                    value: false
                })
                .is_none()
        );
        assert!(fact.assume(a).is_some());
    }

    #[test]
    fn widening_keeps_depths_apart() {
        let mut state = State::default();
        let facts = (0..100u64).map(|i| Fact {
            held: 1 << (i % 64),
            fault_depth: u8::from(i % 2 == 0),
            ..Fact::entry()
        });
        state.join(facts);
        assert_eq!(state.facts.len(), 2);
        assert_eq!(state.facts[0].fault_depth, 0);
        assert_eq!(state.facts[1].fault_depth, 1);
    }
}
