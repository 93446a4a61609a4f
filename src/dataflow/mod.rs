//! Forward dataflow over a [`Cfg`]: page-fault-disable depth, live mappings
//! (as stacks) and held contexts before every event and at every exit. Facts
//! only; rules decide what is a bug.

pub mod lattice;

use std::collections::{HashMap, VecDeque};

use crate::catalogue::{ContextKind, MapFamily};
use crate::cfg::events::identifiers;
use crate::cfg::{Assume, Cfg, ENTRY, EXIT, EventKind, NodeId};
use lattice::{Fact, MAX_DEPTH, State, bit, push_live};

/// Fixpoint iterations allowed per node before giving up on a function.
const MAX_VISITS_PER_NODE: usize = 256;

/// The facts that reach events and exits.
#[derive(Debug, Default)]
pub struct Facts {
    /// Facts just before each event, keyed by (node, index in the node's events).
    before: HashMap<(NodeId, usize), Vec<Fact>>,
    /// For each node with an edge into the exit: the facts leaving along it.
    pub exits: Vec<(NodeId, Vec<Fact>)>,
    /// False if the iteration bound stopped the fixpoint early.
    pub converged: bool,
    /// Widening merged facts somewhere: a held context in a fact may then
    /// be held on some of its paths only (call summaries need exact facts).
    pub widened: bool,
}

impl Facts {
    /// The facts just before event `index` of `node`.
    pub fn before(&self, node: NodeId, index: usize) -> &[Fact] {
        self.before.get(&(node, index)).map_or(&[], Vec::as_slice)
    }
}

/// Solves the dataflow problem of one function.
pub fn solve(cfg: &Cfg) -> Facts {
    solve_until(cfg, None)
}

/// [`solve`], stopped unconverged once `deadline` passes: the visit budget
/// bounds the iterations, but a large graph times many facts per visit can
/// still outlast a per-file time limit.
pub fn solve_until(cfg: &Cfg, deadline: Option<std::time::Instant>) -> Facts {
    solve_from(cfg, Fact::entry(), deadline)
}

/// [`solve_until`] from a given fact at entry (a call summary starts with
/// the caller's contexts held, `AcquireSite::entry`).
pub fn solve_from(cfg: &Cfg, entry: Fact, deadline: Option<std::time::Instant>) -> Facts {
    let mut states = vec![State::default(); cfg.nodes.len()];
    states[ENTRY as usize].join([entry]);
    let mut queue: VecDeque<NodeId> = VecDeque::from([ENTRY]);
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
            if states[edge.to as usize].join(refine(cfg, &out, edge.assume))
                && !queued[edge.to as usize]
            {
                queued[edge.to as usize] = true;
                queue.push_back(edge.to);
            }
        }
    }
    let mut facts = Facts {
        converged,
        widened: states.iter().any(|s| s.widened),
        ..Facts::default()
    };
    for (id, node) in cfg.nodes.iter().enumerate() {
        let id = NodeId::try_from(id).unwrap_or(NodeId::MAX);
        let out = transfer(cfg, id, &states[id as usize], &mut |index, before| {
            facts.before.insert((id, index), before.to_vec());
        });
        for edge in node.succs.iter().filter(|e| e.to == EXIT) {
            let leaving: Vec<Fact> = refine(cfg, &out, edge.assume).collect();
            if !leaving.is_empty() {
                facts.exits.push((id, leaving));
            }
        }
    }
    facts
}

/// The facts that go along an edge: infeasible ones dropped, and a mapping
/// whose variable is NULL on this edge no longer live (it never happened).
fn refine<'a>(
    cfg: &'a Cfg,
    facts: &'a [Fact],
    assume: Option<crate::cfg::Assume>,
) -> impl Iterator<Item = Fact> + 'a {
    facts.iter().cloned().filter_map(move |f| {
        let Some(a) = assume else { return Some(f) };
        let mut f = f.assume(a)?;
        if let Some((var, null_when)) = &cfg.conds[a.cond as usize].null_test
            && *null_when == a.value
        {
            // NULL address, or NULL page: that mapping was not made.
            for (site, map) in cfg.maps.iter().enumerate() {
                if map.var.as_deref() == Some(var.as_str()) || map.page_arg == *var {
                    remove_live(&mut f, u16::try_from(site).unwrap_or(u16::MAX));
                }
            }
        }
        Some(f)
    })
}

/// Applies a node's events to each fact; `observe` sees the facts just
/// before each event that rules look at.
fn transfer(
    cfg: &Cfg,
    id: NodeId,
    state: &State,
    observe: &mut dyn FnMut(usize, &[Fact]),
) -> Vec<Fact> {
    let mut facts = state.facts.clone();
    for (index, event) in cfg.node(id).events.iter().enumerate() {
        // Map events are observed too: KM011 asks what was live when a
        // mapping was made (is it nested in another region?).
        if !matches!(
            event.kind,
            EventKind::Forget { .. }
                | EventKind::Acquire { .. }
                | EventKind::Handoff { .. }
                | EventKind::SetCond { .. }
        ) {
            observe(index, &facts);
        }
        for fact in &mut facts {
            apply(cfg, &event.kind, fact);
        }
    }
    facts
}

fn apply(cfg: &Cfg, event: &EventKind, fact: &mut Fact) {
    match event {
        EventKind::Map { site } => {
            fact.handed_off &= !bit(*site);
            match cfg.maps[*site as usize].family {
                MapFamily::Local => push_live(&mut fact.local, *site),
                // kmap_atomic() disables page faults until its kunmap_atomic().
                MapFamily::Atomic => push_live(&mut fact.atomic, *site),
                MapFamily::Kmap => fact.kmap |= bit(*site),
            }
        }
        EventKind::Handoff { site } => fact.handed_off |= bit(*site),
        EventKind::Unmap { family, arg } => {
            if let Some(target) = unmap_target(cfg, fact, *family, arg) {
                remove_live(fact, target.site);
            }
        }
        EventKind::FaultDisable => fact.pf_depth = (fact.pf_depth + 1).min(MAX_DEPTH),
        EventKind::FaultEnable => fact.pf_depth = fact.pf_depth.saturating_sub(1),
        EventKind::Acquire { site } => fact.held |= bit(*site),
        EventKind::Release { group, kind, arg } => {
            fact.held &= !released(cfg, fact.held, *group, *kind, arg);
        }
        EventKind::Forget { conds } => fact.forget(*conds),
        EventKind::SetCond { cond, value } => {
            fact.forget(bit(*cond));
            let set = Assume {
                cond: *cond,
                value: *value,
            };
            if let Some(updated) = std::mem::replace(fact, Fact::entry()).assume(set) {
                *fact = updated;
            }
        }
        EventKind::Access { .. }
        | EventKind::Sleep { .. }
        | EventKind::Relies { .. }
        | EventKind::Call { .. } => {}
    }
}

fn remove_live(fact: &mut Fact, site: u16) {
    fact.local.retain(|&s| s != site);
    fact.atomic.retain(|&s| s != site);
    fact.kmap &= !bit(site);
}

/// How an unmap call found the mapping it ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UnmapMatch {
    /// Its argument names the variable the address was stored in.
    ByAddress,
    /// Its argument is the page/folio that was mapped.
    ByPage,
    /// Nothing named: the innermost mapping of the unmap's family.
    Innermost,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnmapTarget {
    pub site: u16,
    pub family: MapFamily,
    pub how: UnmapMatch,
}

/// The live mapping an unmap of `family` with argument `arg` ends, as the
/// author meant it: named by address, else by page, else the innermost one
/// of the same family (local mappings are a stack: Documentation/mm/highmem.rst).
pub fn unmap_target(cfg: &Cfg, fact: &Fact, family: MapFamily, arg: &str) -> Option<UnmapTarget> {
    let live = live_sites(fact);
    let find = |pred: &dyn Fn(&crate::cfg::MapSite) -> bool| -> Option<u16> {
        let mut hits: Vec<u16> = live
            .iter()
            .copied()
            .filter(|&s| cfg.maps.get(s as usize).is_some_and(pred))
            .collect();
        // Prefer the unmap's own family, then the innermost mapping.
        hits.sort_by_key(|&s| {
            (
                cfg.maps[s as usize].family != family,
                std::cmp::Reverse(position(fact, s)),
            )
        });
        hits.first().copied()
    };
    let target = |site: u16, how| UnmapTarget {
        site,
        family: cfg.maps[site as usize].family,
        how,
    };
    let names_it = |m: &crate::cfg::MapSite| {
        m.var.as_deref().is_some_and(|v| names_variable(arg, v))
            || m.aliases.iter().any(|a| names_variable(arg, a))
    };
    if let Some(site) = find(&names_it) {
        return Some(target(site, UnmapMatch::ByAddress));
    }
    if !arg.is_empty()
        && let Some(site) = find(&|m| m.page_arg == arg)
    {
        return Some(target(site, UnmapMatch::ByPage));
    }
    let stack = match family {
        MapFamily::Local => &fact.local,
        MapFamily::Atomic => &fact.atomic,
        MapFamily::Kmap => return None,
    };
    stack
        .last()
        .map(|&site| target(site, UnmapMatch::Innermost))
}

/// Every live map site, innermost of each stack last.
fn live_sites(fact: &Fact) -> Vec<u16> {
    let mut sites: Vec<u16> = fact.local.iter().chain(&fact.atomic).copied().collect();
    sites.extend((0..64u16).filter(|&s| fact.kmap & bit(s) != 0));
    sites
}

/// Position of a site in its stack (kmap sites: 0).
fn position(fact: &Fact, site: u16) -> usize {
    fact.local
        .iter()
        .position(|&s| s == site)
        .or_else(|| fact.atomic.iter().position(|&s| s == site))
        .unwrap_or(0)
}

/// Does an unmap/release argument name the variable a map stored into?
pub fn names_variable(arg: &str, var: &str) -> bool {
    let arg = strip_casts(arg);
    arg == var
        || arg
            .strip_prefix(var)
            .is_some_and(|rest| !rest.starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_'))
        || variables(arg).any(|t| t == var)
}

/// `(void *)addr` -> `addr`: a cast does not change which mapping is named.
fn strip_casts(mut arg: &str) -> &str {
    while let Some(rest) = arg.strip_prefix('(') {
        let Some(close) = rest.find(')') else { break };
        let inside = &rest[..close];
        // A cast names a type: words and `*` only.
        let after = &rest[close + 1..];
        // `(kaddr)` alone is a parenthesized name, not a cast.
        if inside.is_empty()
            || after.is_empty()
            || !inside
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '*')
        {
            break;
        }
        arg = after;
    }
    arg
}

/// The identifiers of an expression that name variables: not the field
/// names after `->` or `.` (`req->src` does not name a local `src`).
fn variables(text: &str) -> impl Iterator<Item = &str> {
    identifiers(text).filter(move |t| {
        let at = t.as_ptr() as usize - text.as_ptr() as usize;
        let before = text[..at].trim_end();
        !(before.ends_with("->") || before.ends_with('.'))
    })
}

/// The held sites a release ends: same group and argument, else the whole
/// group; with none of its group held here, a caller's context at entry of
/// the same kind (the caller's lock is the one released).
fn released(cfg: &Cfg, held: u64, group: u16, kind: ContextKind, arg: &str) -> u64 {
    let local = released_in_group(cfg, held, group, arg);
    if local != 0 {
        return local;
    }
    bits(held)
        .filter(|&s| {
            cfg.acquires
                .get(s)
                .is_some_and(|a| a.entry && a.kind == kind)
        })
        .fold(0u64, |acc, s| acc | (1u64 << s.min(63)))
}

fn released_in_group(cfg: &Cfg, held: u64, group: u16, arg: &str) -> u64 {
    let in_group: Vec<usize> = bits(held)
        .filter(|&s| {
            cfg.acquires
                .get(s)
                .is_some_and(|a| a.group == group && !a.entry)
        })
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

pub fn bits(set: u64) -> impl DoubleEndedIterator<Item = usize> {
    (0..64).filter(move |i| set & (1u64 << i) != 0)
}

#[cfg(test)]
mod tests {
    use super::names_variable;

    #[test]
    fn field_names_and_casts() {
        assert!(names_variable("kaddr", "kaddr"));
        assert!(names_variable("kaddr+off", "kaddr"));
        assert!(names_variable("(void*)kaddr", "kaddr"));
        assert!(names_variable("(kaddr)", "kaddr"));
        assert!(names_variable("(void*)d->src_addr", "d->src_addr"));
        assert!(!names_variable("req->src", "src"));
        assert!(!names_variable("s.src", "src"));
    }
}
