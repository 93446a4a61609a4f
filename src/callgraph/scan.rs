//! Phase 1 of the call summary, for one file: the contexts held at each call
//! of a set of names. Only bodies that call one of the names are parsed, and
//! every `#if` arm is looked at (a caller may exist only in an `#else`).

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use aho_corasick::{AhoCorasick, MatchKind};

use super::helpers;
use super::{CallSiteSummary, FileCalls, Held, HeldContext};
use crate::catalogue::{Catalogue, ContextKind, MapFamily};
use crate::cfg::events::Extra;
use crate::cfg::{Cfg, EventKind, Span};
use crate::dataflow::lattice::Fact;
use crate::dataflow::{self, Facts, bits};
use crate::diag::LineIndex;
use crate::parse::{self, FunctionSpan};
use crate::preprocess::{self, Arms, Vocabulary};

/// What a run's scans share: the catalogue and its automata.
pub struct Scanner<'c> {
    pub(super) catalogue: &'c Catalogue,
    vocab: Vocabulary<'c>,
    /// Context-changing names: a body without one is no helper.
    pub(super) context_names: AhoCorasick,
    /// Per-file limit, as `--file-timeout` for the main pass.
    timeout: Option<std::time::Duration>,
}

/// One lexical pass over a file (one choice of `#if` arms).
pub(super) struct Pass {
    pub pre: Vec<u8>,
    pub functions: Vec<FunctionSpan>,
    /// Bodies whose identifiers were already rewritten.
    rewritten: HashSet<usize>,
}

/// A function definition: which pass holds it, and where.
#[derive(Clone, Copy, Debug)]
pub(super) struct Def {
    pub pass: usize,
    pub index: usize,
}

/// Offsets of whole-identifier matches of `ac` in `text` that are calls.
pub(super) fn call_hits<'a>(
    ac: &'a AhoCorasick,
    text: &'a [u8],
) -> impl Iterator<Item = (usize, usize)> + 'a {
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    ac.find_iter(text).filter_map(move |m| {
        let before_ok = m.start() == 0 || !ident(text[m.start() - 1]);
        let after = text[m.end()..]
            .iter()
            .find(|b| !b.is_ascii_whitespace())
            .copied();
        (before_ok && after == Some(b'(')).then_some((m.start(), m.pattern().as_usize()))
    })
}

/// Names called in `body`: identifiers followed by `(`.
pub(super) fn called_names(body: &[u8]) -> HashSet<String> {
    let mut out = HashSet::new();
    for open in memchr::memchr_iter(b'(', body) {
        let mut end = open;
        while end > 0 && body[end - 1].is_ascii_whitespace() {
            end -= 1;
        }
        let mut start = end;
        while start > 0 && (body[start - 1].is_ascii_alphanumeric() || body[start - 1] == b'_') {
            start -= 1;
        }
        if end > start {
            out.insert(String::from_utf8_lossy(&body[start..end]).into_owned());
        }
    }
    out
}

impl<'c> Scanner<'c> {
    pub fn new(catalogue: &'c Catalogue, timeout: Option<std::time::Duration>) -> Self {
        let context_names = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(catalogue.context_names())
            .expect("catalogue names are short literals; the automaton always builds");
        Self {
            catalogue,
            vocab: Vocabulary::new(catalogue),
            context_names,
            timeout,
        }
    }

    /// The calls of `names` in `src`, with the contexts held at each.
    pub fn scan(&self, src: &[u8], names: &[String]) -> FileCalls {
        let deadline = self.timeout.and_then(|t| Instant::now().checked_add(t));
        let Ok(targets) = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostLongest)
            .build(names)
        else {
            return FileCalls::default();
        };
        let mut passes = lexical_passes(src, self.catalogue, &targets);
        let mut out = FileCalls {
            defined: passes
                .iter()
                .flat_map(|p| p.functions.iter().map(|f| f.name.clone()))
                .collect(),
            sites: Vec::new(),
        };
        let callers = distinct_callers(&passes, &targets);
        if callers.is_empty() {
            return out;
        }
        // Only a helper called before the last target call can hold a
        // context there: the rest of the body is not searched for helpers
        // (a large caller such as binder_transaction() calls dozens).
        let mut called = HashSet::new();
        for (def, last_call) in &callers {
            let pass = &passes[def.pass];
            let f = &pass.functions[def.index];
            called.extend(called_names(&pass.pre[f.body_start..*last_call]));
        }
        let extra = Extra {
            helpers: helpers::infer(self, src, &mut passes, &called, deadline),
            targets: names.iter().cloned().collect(),
        };
        let lines = LineIndex::new(src);
        for (def, _) in callers {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            let Some((cfg, facts)) =
                self.analyze_from(&mut passes[def.pass], def.index, &extra, true, deadline)
            else {
                continue;
            };
            let pass = &passes[def.pass];
            let span = &pass.functions[def.index];
            let caller_static = span.is_static;
            // Widened facts (a large caller such as binder_transaction())
            // union held contexts over paths and loop iterations, so they
            // would name a lock taken after the call: such a caller gives
            // no evidence, and passes none through.
            if facts.widened || !facts.converged {
                continue;
            }
            let every_path = true;
            for (id, node) in cfg.nodes.iter().enumerate() {
                let id = crate::cfg::NodeId::try_from(id).unwrap_or(crate::cfg::NodeId::MAX);
                for (index, event) in node.events.iter().enumerate() {
                    let EventKind::Call { call } = event.kind else {
                        continue;
                    };
                    let before = facts.before(id, index);
                    // No facts: unreachable code, which holds nothing.
                    if before.is_empty() {
                        continue;
                    }
                    let site = CallSiteSummary {
                        callee: cfg.calls[call as usize].name.clone(),
                        caller: span.name.clone(),
                        caller_static,
                        line: lines.position(event.span.start).0,
                        held: held_at(
                            self.catalogue,
                            &cfg,
                            before,
                            every_path,
                            event.span,
                            src,
                            &lines,
                        ),
                        passes: passes_at(&cfg, before, every_path),
                    };
                    if !out.sites.contains(&site) {
                        out.sites.push(site);
                    }
                }
            }
        }
        out
    }

    /// Parses one body of a pass and solves its dataflow; with
    /// `entry_contexts`, the dataflow starts with a caller's mmap_lock and
    /// atomic context held (`AcquireSite::entry`), to see whether they
    /// survive to each call or exit.
    pub(super) fn analyze_from(
        &self,
        pass: &mut Pass,
        index: usize,
        extra: &Extra,
        entry_contexts: bool,
        deadline: Option<Instant>,
    ) -> Option<(Cfg, Facts)> {
        let span = pass.functions.get(index)?.clone();
        if span.body_end - span.body_start > parse::MAX_BODY_BYTES {
            return None;
        }
        if pass.rewritten.insert(index) {
            preprocess::rewrite_identifiers(
                &mut pass.pre,
                span.body_start..span.body_end,
                &self.vocab,
            );
        }
        let tree = crate::PARSER
            .with_borrow_mut(|parser| parse::parse_body(parser, &pass.pre, &span, deadline))?;
        let text = &pass.pre[span.body_start..span.body_end];
        let mut cfg = crate::cfg::build::build_with(
            self.catalogue,
            extra,
            text,
            span.body_start,
            tree.root_node(),
        );
        let mut entry = Fact::entry();
        if entry_contexts {
            for kind in [ContextKind::Mmap, ContextKind::Atomic] {
                let site = u16::try_from(cfg.acquires.len()).unwrap_or(u16::MAX);
                cfg.acquires.push(crate::cfg::AcquireSite {
                    name: String::new(),
                    group: u16::MAX,
                    kind,
                    arg: String::new(),
                    span: Span {
                        start: span.body_start,
                        end: span.body_start,
                    },
                    entry: true,
                });
                entry.held |= crate::dataflow::lattice::bit(site);
            }
        }
        let facts = dataflow::solve_from(&cfg, entry, deadline);
        Some((cfg, facts))
    }
}

/// The first-arm pass, then, if it blanked a call of a target (a caller in
/// an `#else`), one per further arm index, as the main pass does. Helpers
/// are looked for in the passes made for callers only: each pass costs a
/// full lexical scan of the file.
fn lexical_passes(src: &[u8], catalogue: &Catalogue, targets: &AhoCorasick) -> Vec<Pass> {
    let (pre, counts) = preprocess::lexical_arms(src, Arms::First, &[]);
    let blanked = call_hits(targets, src).count() > call_hits(targets, &pre).count();
    let most = if blanked {
        counts.iter().copied().max().unwrap_or(1)
    } else {
        1
    };
    let most = most.min(crate::MAX_ARM_PASSES);
    let mut texts = vec![pre];
    for arm in 1..most {
        texts.push(preprocess::lexical_arms(src, Arms::Nth(arm), &counts).0);
    }
    texts
        .into_iter()
        .map(|pre| Pass {
            functions: parse::find_functions(&pre, catalogue),
            pre,
            rewritten: HashSet::new(),
        })
        .collect()
}

/// Functions (of any pass, identical bodies once) that call a target, with
/// the offset of their last such call.
fn distinct_callers(passes: &[Pass], targets: &AhoCorasick) -> Vec<(Def, usize)> {
    let mut seen: HashSet<(usize, usize, u64)> = HashSet::new();
    let mut out = Vec::new();
    for (p, pass) in passes.iter().enumerate() {
        let hits: Vec<usize> = call_hits(targets, &pass.pre).map(|(at, _)| at).collect();
        for (index, f) in pass.functions.iter().enumerate() {
            let first = hits.partition_point(|&h| h < f.body_start);
            let end = hits.partition_point(|&h| h < f.body_end);
            if first == end {
                continue;
            }
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            std::hash::Hash::hash(&pass.pre[f.body_start..f.body_end], &mut hasher);
            let key = (f.body_start, f.body_end, std::hash::Hasher::finish(&hasher));
            if seen.insert(key) {
                out.push((Def { pass: p, index }, hits[end - 1]));
            }
        }
    }
    out
}

/// Kinds of the caller's own caller's context still held at a call: the
/// entry sites survive (`held_at`'s quantifier), and for faults disabled, no
/// enable anywhere in the body (a depth has no site to follow).
fn passes_at(cfg: &Cfg, facts: &[Fact], every_path: bool) -> Vec<Held> {
    // A path that released the caller's lock and took it again itself (the
    // retry loop of mfill_atomic_hugetlb()) still holds the kind: a path
    // counts if it holds the entry site or a site of its own.
    let entry_held = |f: &Fact, kind: ContextKind| {
        bits(f.held).any(|s| cfg.acquires.get(s).is_some_and(|a| a.kind == kind))
    };
    let holds = |kind| {
        if every_path {
            facts.iter().all(|f| entry_held(f, kind))
        } else {
            facts.iter().any(|f| entry_held(f, kind))
        }
    };
    let mut out = Vec::new();
    if holds(ContextKind::Mmap) {
        out.push(Held::Mmap);
    }
    if holds(ContextKind::Atomic) {
        out.push(Held::Atomic);
    }
    let enables = cfg.nodes.iter().flat_map(|n| &n.events).any(|e| {
        matches!(
            e.kind,
            EventKind::FaultEnable
                | EventKind::Unmap {
                    family: MapFamily::Atomic,
                    ..
                }
        )
    });
    if !enables {
        out.push(Held::FaultsDisabled);
    }
    out
}

/// The contexts held before a call: on every path (every fact), or with
/// `every_path` false on some path (some fact).
fn held_at(
    catalogue: &Catalogue,
    cfg: &Cfg,
    facts: &[Fact],
    every_path: bool,
    call: Span,
    src: &[u8],
    lines: &LineIndex,
) -> Vec<HeldContext> {
    let site_of = |f: &Fact, kind: ContextKind| {
        bits(f.held).find(|&s| {
            cfg.acquires
                .get(s)
                .is_some_and(|a| a.kind == kind && !a.entry)
        })
    };
    let quantifier = |holds: &dyn Fn(&Fact) -> bool| -> Option<&Fact> {
        if every_path {
            facts.iter().all(holds).then(|| &facts[0])
        } else {
            facts.iter().find(|f| holds(f))
        }
    };
    let mut out = Vec::new();
    if let Some(f) = quantifier(&|f| site_of(f, ContextKind::Mmap).is_some())
        && let Some(s) = site_of(f, ContextKind::Mmap)
    {
        let a = &cfg.acquires[s];
        out.push(HeldContext {
            held: Held::Mmap,
            what: catalogue.held_name(a.group).to_owned(),
            by: a.name.clone(),
            line: lines.position(a.span.start).0,
        });
    }
    if let Some(f) =
        quantifier(&|f| site_of(f, ContextKind::Atomic).is_some() || !f.atomic.is_empty())
    {
        let (by, span) = match (site_of(f, ContextKind::Atomic), f.atomic.first()) {
            (Some(s), _) => (cfg.acquires[s].name.clone(), cfg.acquires[s].span),
            (None, Some(&m)) => {
                let m = &cfg.maps[m as usize];
                (m.name.clone(), m.span)
            }
            (None, None) => return out,
        };
        out.push(HeldContext {
            held: Held::Atomic,
            what: "atomic context".to_owned(),
            by,
            line: lines.position(span.start).0,
        });
    }
    if quantifier(&Fact::faults_disabled).is_some() {
        // The disable closest before the call names it (no site is kept
        // for pagefault_disable(): it is a depth, not a set).
        let disable = cfg
            .nodes
            .iter()
            .flat_map(|n| &n.events)
            .filter(|e| {
                matches!(e.kind, EventKind::FaultDisable | EventKind::Map { .. })
                    && e.span.start < call.start
            })
            .max_by_key(|e| e.span.start);
        let (by, line) = disable.map_or(("pagefault_disable".to_owned(), 0), |e| {
            let name: String = src[e.span.start..e.span.end]
                .iter()
                .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
                .map(|b| char::from(*b))
                .collect();
            (name, lines.position(e.span.start).0)
        });
        out.push(HeldContext {
            held: Held::FaultsDisabled,
            what: "page faults disabled".to_owned(),
            by,
            line,
        });
    }
    out
}

/// Definitions by name over all passes, identical bodies once.
pub(super) fn definitions(passes: &[Pass]) -> HashMap<String, Vec<Def>> {
    let mut out: HashMap<String, Vec<Def>> = HashMap::new();
    for (p, pass) in passes.iter().enumerate() {
        for (index, f) in pass.functions.iter().enumerate() {
            let defs = out.entry(f.name.clone()).or_default();
            let same = defs.iter().any(|d| {
                let g = &passes[d.pass].functions[d.index];
                g.body_start == f.body_start
                    && passes[d.pass].pre[g.body_start..g.body_end]
                        == pass.pre[f.body_start..f.body_end]
            });
            if !same {
                defs.push(Def { pass: p, index });
            }
        }
    }
    out
}
