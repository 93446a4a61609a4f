//! Forward dataflow over a [`Cfg`]: page-fault-disable depth, live mappings and
//! held contexts at every user access. Facts only; rules decide what is a bug.

pub mod lattice;

use std::collections::VecDeque;

use crate::catalogue::MapFamily;
use crate::cfg::events::identifiers;
use crate::cfg::{Cfg, ENTRY, EventKind};
use lattice::{Fact, MAX_DEPTH, State, bit};

/// Fixpoint iterations allowed per node before giving up on a function.
const MAX_VISITS_PER_NODE: usize = 256;

/// The facts that reach each user access (indexed like `Cfg::accesses`).
#[derive(Debug, Default)]
pub struct Facts {
    pub at_access: Vec<Vec<Fact>>,
    /// False if the iteration bound stopped the fixpoint early.
    pub converged: bool,
}

/// Solves the dataflow problem of one function.
pub fn solve(cfg: &Cfg) -> Facts {
    solve_until(cfg, None)
}

/// [`solve`], stopped unconverged once `deadline` passes: the visit budget
/// bounds the iterations, but a large graph times many facts per visit can
/// still outlast a per-file time limit.
pub fn solve_until(cfg: &Cfg, deadline: Option<std::time::Instant>) -> Facts {
    let mut states = vec![State::default(); cfg.nodes.len()];
    states[ENTRY as usize].join([Fact::entry()]);
    let mut queue: VecDeque<u32> = VecDeque::from([ENTRY]);
    let mut queued = vec![false; cfg.nodes.len()];
    queued[ENTRY as usize] = true;
    let budget = cfg.nodes.len().saturating_mul(MAX_VISITS_PER_NODE);
    let mut visits = 0usize;
    let mut converged = true;
    while let Some(id) = queue.pop_front() {
        queued[id as usize] = false;
        visits += 1;
        let out_of_time =
            visits.is_multiple_of(1024) && deadline.is_some_and(|d| std::time::Instant::now() >= d);
        if visits > budget || out_of_time {
            converged = false;
            break;
        }
        let out = transfer(cfg, id, &states[id as usize], &mut |_, _| {});
        for edge in &cfg.node(id).succs {
            let refined = out.iter().cloned().filter_map(|f| match edge.assume {
                Some(a) => f.assume(a),
                None => Some(f),
            });
            if states[edge.to as usize].join(refined) && !queued[edge.to as usize] {
                queued[edge.to as usize] = true;
                queue.push_back(edge.to);
            }
        }
    }
    let mut at_access = vec![Vec::new(); cfg.accesses.len()];
    for id in 0..cfg.nodes.len() {
        let id = u32::try_from(id).unwrap_or(u32::MAX);
        transfer(cfg, id, &states[id as usize], &mut |access, facts| {
            at_access[access as usize].extend_from_slice(facts);
        });
    }
    Facts {
        at_access,
        converged,
    }
}

/// Applies a node's events to each fact; `on_access` sees the facts just
/// before each user access.
fn transfer(
    cfg: &Cfg,
    id: u32,
    state: &State,
    on_access: &mut dyn FnMut(u32, &[Fact]),
) -> Vec<Fact> {
    let mut facts = state.facts.clone();
    for event in &cfg.node(id).events {
        if let EventKind::Access { access } = event.kind {
            on_access(access, &facts);
            continue;
        }
        for fact in &mut facts {
            apply(cfg, &event.kind, fact);
        }
    }
    facts
}

fn apply(cfg: &Cfg, event: &EventKind, fact: &mut Fact) {
    match event {
        EventKind::Map { site } => match cfg.maps[*site as usize].family {
            MapFamily::Local => fact.live_local |= bit(*site),
            // kmap_atomic() disables page faults until its kunmap_atomic().
            MapFamily::Atomic => {
                fact.live_atomic |= bit(*site);
                fact.fault_depth = (fact.fault_depth + 1).min(MAX_DEPTH);
            }
            MapFamily::Kmap => {}
        },
        EventKind::Unmap { family, arg } => match family {
            MapFamily::Local => fact.live_local &= !unmapped(cfg, fact.live_local, arg),
            MapFamily::Atomic => {
                let gone = unmapped(cfg, fact.live_atomic, arg);
                if gone != 0 {
                    fact.live_atomic &= !gone;
                    fact.fault_depth = fact.fault_depth.saturating_sub(1);
                }
            }
            MapFamily::Kmap => {}
        },
        EventKind::FaultDisable => fact.fault_depth = (fact.fault_depth + 1).min(MAX_DEPTH),
        EventKind::FaultEnable => fact.fault_depth = fact.fault_depth.saturating_sub(1),
        EventKind::Acquire { site } => fact.held |= bit(*site),
        EventKind::Release { group, arg } => fact.held &= !released(cfg, fact.held, *group, arg),
        EventKind::Forget { conds } => fact.forget(*conds),
        EventKind::Access { .. } => {}
    }
}

/// Does an unmap/release argument name the variable a map stored into?
fn names_variable(arg: &str, var: &str) -> bool {
    arg == var
        || arg
            .strip_prefix(var)
            .is_some_and(|rest| !rest.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_'))
        || identifiers(arg).any(|t| t == var)
}

/// The live map sites an unmap ends: those whose variable it names, else the
/// most recent one (local mappings are a stack: Documentation/mm/highmem.rst).
fn unmapped(cfg: &Cfg, live: u64, arg: &str) -> u64 {
    let named = bits(live)
        .filter(|&s| {
            cfg.maps
                .get(s)
                .and_then(|m| m.var.as_deref())
                .is_some_and(|v| names_variable(arg, v))
        })
        .fold(0u64, |acc, s| acc | bit(u16::try_from(s).unwrap_or(63)));
    if named != 0 {
        return named;
    }
    bits(live)
        .last()
        .map_or(0, |s| bit(u16::try_from(s).unwrap_or(63)))
}

/// The held sites a release ends: same group and argument, else the whole group.
fn released(cfg: &Cfg, held: u64, group: u16, arg: &str) -> u64 {
    let in_group: Vec<usize> = bits(held)
        .filter(|&s| cfg.acquires.get(s).is_some_and(|a| a.group == group))
        .collect();
    let same_arg = in_group
        .iter()
        .filter(|&&s| cfg.acquires[s].arg == arg)
        .fold(0u64, |acc, &s| acc | (1u64 << s.min(63)));
    if same_arg != 0 {
        return same_arg;
    }
    in_group
        .iter()
        .fold(0u64, |acc, &s| acc | (1u64 << s.min(63)))
}

fn bits(set: u64) -> impl DoubleEndedIterator<Item = usize> {
    (0..64).filter(move |i| set & (1u64 << i) != 0)
}
