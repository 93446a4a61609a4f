//! Acquire helpers: functions that return holding a context.
//!
//! `mfill_atomic()` takes mmap_lock (or the per-VMA lock) by calling
//! `uffd_mfill_lock()`, a static function of the same file that locks and
//! returns with the lock held on its success path. Such a helper is
//! recognized from its body: a context held at some exit (the dataflow's
//! exit facts), a page-fault disable not undone, or an `__acquires(...)`
//! annotation naming a catalogue context. A function that only releases
//! (`uffd_mfill_unlock()`) is a release helper. Helpers may call helpers
//! (`uffd_mfill_lock()` calls `uffd_lock_vma()`), so callees are decided
//! first, whatever their depth (a depth cut would decide a helper without
//! its callee and remember the wrong answer); at most [`MAX_ANALYZED`]
//! bodies are parsed per file. Only functions of the scanned file are
//! inferred; helpers of other files are catalogue entries.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use super::scan::{Def, Pass, Scanner, called_names, definitions};
use crate::catalogue::{Api, Catalogue, ContextKind, ContextRef};
use crate::cfg::events::Extra;
use crate::cfg::{Cfg, EventKind, NodeKind};
use crate::dataflow::lattice::bit;
use crate::dataflow::{Facts, bits};

/// Bodies parsed per file to decide helpers: bounds the cost of a caller
/// that calls dozens of local functions.
pub const MAX_ANALYZED: usize = 32;

/// The helpers among `called` (and what they call) defined in the file.
pub(super) fn infer(
    scanner: &Scanner<'_>,
    src: &[u8],
    passes: &mut [Pass],
    called: &HashSet<String>,
    deadline: Option<Instant>,
) -> HashMap<String, Api> {
    let defs = definitions(passes);
    let mut inference = Inference {
        scanner,
        src,
        defs,
        decided: HashMap::new(),
        deadline,
        analyzed: 0,
    };
    let mut names: Vec<&String> = called.iter().collect();
    names.sort();
    for name in names {
        inference.decide(passes, name);
    }
    inference
        .decided
        .into_iter()
        .filter_map(|(name, api)| Some((name, api?)))
        .collect()
}

struct Inference<'s, 'c> {
    scanner: &'s Scanner<'c>,
    src: &'s [u8],
    defs: HashMap<String, Vec<Def>>,
    /// `None`: decided, not a helper (also the mark that breaks recursion).
    decided: HashMap<String, Option<Api>>,
    deadline: Option<Instant>,
    analyzed: usize,
}

impl Inference<'_, '_> {
    fn decide(&mut self, passes: &mut [Pass], name: &str) {
        if self.decided.contains_key(name)
            || self.scanner.catalogue.lookup(name).is_some()
            || self.analyzed >= MAX_ANALYZED
            || self.deadline.is_some_and(|d| Instant::now() >= d)
        {
            return;
        }
        let Some(defs) = self.defs.get(name).cloned() else {
            return;
        };
        self.decided.insert(name.to_owned(), None);
        let mut api = None;
        for def in defs {
            let (body, header) = {
                let pass = &passes[def.pass];
                let f = &pass.functions[def.index];
                (
                    pass.pre[f.body_start..f.body_end].to_vec(),
                    self.src[f.header_start..f.body_start].to_vec(),
                )
            };
            if let Some(found) = self.annotated(&header) {
                api = Some(found);
                break;
            }
            let mut callees: Vec<String> = called_names(&body)
                .into_iter()
                .filter(|c| c != name && self.defs.contains_key(c))
                .collect();
            callees.sort();
            for callee in &callees {
                self.decide(passes, callee);
            }
            let calls_helper = callees
                .iter()
                .any(|c| self.decided.get(c).is_some_and(Option::is_some));
            if !calls_helper && !self.scanner.context_names.is_match(&body) {
                continue;
            }
            let extra = Extra {
                helpers: self
                    .decided
                    .iter()
                    .filter_map(|(n, a)| Some((n.clone(), a.clone()?)))
                    .collect(),
                targets: HashSet::new(),
            };
            self.analyzed += 1;
            let Some((cfg, facts)) = self.scanner.analyze_from(
                &mut passes[def.pass],
                def.index,
                &extra,
                true,
                self.deadline,
            ) else {
                continue;
            };
            // Widened facts union held contexts over paths: a function that
            // releases on every path (alloc_hugetlb_folio()) would look like
            // it returns holding its lock. Only exact facts make a helper.
            if facts.widened || !facts.converged {
                continue;
            }
            // One arm that returns holding the context makes a helper: the
            // other arm may be the config the kernel is built with.
            match from_exits(self.scanner.catalogue, &cfg, &facts) {
                Some(found @ Api::Acquire(_)) => {
                    api = Some(found);
                    break;
                }
                Some(found) => api = api.or(Some(found)),
                None => {}
            }
        }
        self.decided.insert(name.to_owned(), api);
    }

    /// `__acquires(&mm->mmap_lock)` on the definition.
    fn annotated(&self, header: &[u8]) -> Option<Api> {
        let header = String::from_utf8_lossy(header);
        let at = header.find("__acquires(")?;
        let arg = header[at + "__acquires(".len()..].split(')').next()?;
        let ctx = self.scanner.catalogue.annotated_context(arg)?;
        Some(Api::Acquire(ContextRef {
            group: ctx.group,
            kind: ctx.kind,
            arg_contains: None,
        }))
    }
}

/// What a function's exits say it does to its caller's context.
fn from_exits(catalogue: &Catalogue, cfg: &Cfg, facts: &Facts) -> Option<Api> {
    let exits = || facts.exits.iter().flat_map(|(_, f)| f);
    // An acquire tested in a condition (`if (mmap_write_lock_killable(mm))`)
    // may have failed: the dataflow holds it on both edges, so the error
    // path would look like a return with the lock held (__bprm_mm_init()).
    // Only unconditional acquires make a helper.
    let tested: u64 = cfg
        .nodes
        .iter()
        .filter(|n| n.kind == NodeKind::Branch)
        .flat_map(|n| &n.events)
        .fold(0, |acc, e| match e.kind {
            EventKind::Acquire { site } => acc | bit(site),
            _ => acc,
        });
    // A function that releases its caller's lock and takes it again
    // (jffs2_find_gc_block() drops and retakes erase_completion_lock) ends
    // with a lock held that it did not add: no helper of that kind. The
    // analysis starts with entry sites held (`AcquireSite::entry`): an exit
    // without the entry site of a kind released the caller's context.
    let kept_entry = |kind: ContextKind| {
        exits().all(|f| {
            bits(f.held).any(|s| {
                cfg.acquires
                    .get(s)
                    .is_some_and(|a| a.entry && a.kind == kind)
            })
        })
    };
    // mmap_lock first: it is what a fault would take again.
    for kind in [ContextKind::Mmap, ContextKind::Atomic] {
        if !kept_entry(kind) {
            continue;
        }
        let held = exits().find_map(|f| {
            bits(f.held & !tested).find(|&s| {
                cfg.acquires
                    .get(s)
                    .is_some_and(|a| a.kind == kind && !a.entry)
            })
        });
        if let Some(site) = held {
            return Some(Api::Acquire(ContextRef {
                group: cfg.acquires[site].group,
                kind,
                arg_contains: None,
            }));
        }
    }
    if exits().any(|f| f.pf_depth > 0) {
        return Some(Api::FaultDisable);
    }
    // Releases what it never took: it releases its caller's context.
    let acquired: HashSet<u16> = cfg
        .acquires
        .iter()
        .filter(|a| !a.entry)
        .map(|a| a.group)
        .collect();
    let events = || cfg.nodes.iter().flat_map(|n| &n.events);
    if let Some(group) = events().find_map(|e| match e.kind {
        EventKind::Release { group, .. } if !acquired.contains(&group) => Some(group),
        _ => None,
    }) {
        let kind = catalogue
            .group_kinds
            .get(usize::from(group))
            .copied()
            .unwrap_or(ContextKind::Atomic);
        return Some(Api::Release(ContextRef {
            group,
            kind,
            arg_contains: None,
        }));
    }
    let disables = events().any(|e| matches!(e.kind, EventKind::FaultDisable));
    if !disables && events().any(|e| matches!(e.kind, EventKind::FaultEnable)) {
        return Some(Api::FaultEnable);
    }
    None
}
