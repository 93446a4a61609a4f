//! The abstract state: a small set of path facts.
//!
//! Instead of joining everything into one may/must summary, a program point
//! keeps up to [`MAX_FACTS`] distinct facts, each exact for the paths it stands
//! for. Identical facts merge, so the set stays small in practice, and a
//! correlated pair `if (c) pagefault_disable(); ... if (c) pagefault_enable();`
//! is never mixed into the infeasible "disabled, then not enabled" path.

use crate::cfg::Assume;

/// `pagefault_disable()` depth saturates here (an unbalanced disable in a loop).
pub const MAX_DEPTH: u8 = 8;
/// Past this many facts at a point, facts are merged (see [`State::widen`]).
pub const MAX_FACTS: usize = 32;
/// Live mappings per family beyond this are not tracked (a map in a loop
/// without its unmap would otherwise grow the stack forever).
pub const MAX_LIVE: usize = 8;

/// What holds on one bundle of paths reaching a point.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fact {
    /// Depth of explicit `pagefault_disable()` calls.
    pub pf_depth: u8,
    /// Live `kmap_local_*()` mappings, in map order: local mappings are a
    /// per-thread stack, so the order matters (Documentation/mm/highmem.rst).
    pub local: Vec<u16>,
    /// Live `kmap_atomic()` mappings, in map order; each disables page faults.
    pub atomic: Vec<u16>,
    /// Live `kmap()` mappings (bit = map site; not a stack).
    pub kmap: u64,
    /// Widening merged different stacks: their order is no longer known.
    pub order_lost: bool,
    /// Map sites whose address was passed to a function on this path (it
    /// may have been released there).
    pub handed_off: u64,
    /// Held contexts (bit = acquire site).
    pub held: u64,
    /// Conditions known along these paths, sorted by condition id.
    pub assumptions: Vec<Assume>,
}

impl Fact {
    pub fn entry() -> Self {
        Fact {
            pf_depth: 0,
            local: Vec::new(),
            atomic: Vec::new(),
            kmap: 0,
            order_lost: false,
            handed_off: 0,
            held: 0,
            assumptions: Vec::new(),
        }
    }

    /// Page faults are disabled: by `pagefault_disable()` or a live `kmap_atomic()`.
    pub fn faults_disabled(&self) -> bool {
        self.pf_depth > 0 || !self.atomic.is_empty()
    }

    /// The live `kmap_local_*()` sites as a bit set.
    pub fn live_local(&self) -> u64 {
        self.local.iter().fold(0, |acc, &s| acc | bit(s))
    }

    /// Is any mapping of any family live?
    pub fn any_live(&self) -> bool {
        !self.local.is_empty() || !self.atomic.is_empty() || self.kmap != 0
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

/// Pushes a map site on a mapping stack (once: a loop re-mapping the same
/// site without unmapping is one leak, not an unbounded stack).
pub fn push_live(stack: &mut Vec<u16>, site: u16) {
    if !stack.contains(&site) && stack.len() < MAX_LIVE {
        stack.push(site);
    }
}

pub fn bit(site: u16) -> u64 {
    1u64 << site.min(63)
}

/// The facts at a program point (sorted, no duplicates).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct State {
    pub facts: Vec<Fact>,
    /// Widening merged facts here: held contexts are "on some path" only.
    pub widened: bool,
}

impl State {
    /// Adds `facts`; returns whether the state grew.
    pub fn join(&mut self, facts: impl IntoIterator<Item = Fact>) -> bool {
        // Facts are kept sorted, so a new fact is found by binary search; the
        // old state is only copied when widening may change it.
        let mut added: Vec<Fact> = facts
            .into_iter()
            .filter(|f| self.facts.binary_search(f).is_err())
            .collect();
        added.sort_unstable();
        added.dedup();
        if added.is_empty() {
            return false;
        }
        let old = (self.facts.len() + added.len() > MAX_FACTS).then(|| self.facts.clone());
        self.facts.extend(added);
        self.normalize();
        old.is_none_or(|old| self.facts != old)
    }

    fn normalize(&mut self) {
        self.facts.sort_unstable();
        self.facts.dedup();
        if self.facts.len() > MAX_FACTS {
            self.widened = true;
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
            let same_shape = |m: &Fact| {
                m.pf_depth == fact.pf_depth && m.atomic.is_empty() == fact.atomic.is_empty()
            };
            match merged.iter_mut().find(|m| same_shape(m)) {
                Some(m) => {
                    m.order_lost |=
                        fact.order_lost || m.local != fact.local || m.atomic != fact.atomic;
                    union_stack(&mut m.local, &fact.local);
                    union_stack(&mut m.atomic, &fact.atomic);
                    m.kmap |= fact.kmap;
                    m.handed_off |= fact.handed_off;
                    m.held |= fact.held;
                }
                None => merged.push(fact),
            }
        }
        merged.sort_unstable();
        self.facts = merged;
    }
}

fn union_stack(into: &mut Vec<u16>, from: &[u16]) {
    for &s in from {
        push_live(into, s);
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
            pf_depth: u8::from(i % 2 == 0),
            ..Fact::entry()
        });
        state.join(facts);
        assert_eq!(state.facts.len(), 2);
        assert_eq!(state.facts[0].pf_depth, 0);
        assert_eq!(state.facts[1].pf_depth, 1);
    }

    #[test]
    fn widening_different_stacks_loses_their_order() {
        let mut state = State::default();
        let facts = (0..40u16).map(|i| Fact {
            local: vec![i % 3, 7],
            held: 1 << i,
            ..Fact::entry()
        });
        state.join(facts);
        assert!(state.facts.iter().all(|f| f.order_lost));
    }
}
