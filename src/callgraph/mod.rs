//! Context from callers: which contexts hold where a function is called.
//!
//! A function that maps a page and copies from user space may be correct
//! alone and a deadlock in its only caller (the seed: `mfill_atomic()` holds
//! mmap_lock two calls above `shmem_mfill_atomic_pte()`). Summarizing every
//! call site of the tree would mean parsing the whole kernel, so the summary
//! is asked for, not precomputed:
//!
//! 1. the per-file pass names the functions whose findings lack evidence
//!    ([`Want`]) and records, for every file, the hashes of the identifiers
//!    it calls ([`CallIndex`], built from bytes already in memory);
//! 2. [`summarize`] looks up the files that may call a wanted name (the
//!    index: no second read of the tree), scans only those ([`scan`]), and
//!    repeats with callers that hold nothing themselves, up to [`MAX_DEPTH`];
//! 3. the files of wanted functions that got evidence are checked again with
//!    it (`RuleCx::callers`).
//!
//! Resolution follows C linkage: a static function is called from its own
//! file only; a call resolves across files only to a non-static definition,
//! and only from a file that does not define the name itself. Calls through
//! function pointers name no function and give no evidence.

pub mod helpers;
pub mod scan;

use std::collections::{HashMap, HashSet};

/// Callers followed above a wanted function (caller, its caller, ...).
pub const MAX_DEPTH: usize = 3;

/// FNV-1a of an identifier read backwards (the index hashes while it scans
/// back from a `(`): the currency of [`CallIndex`]. Never 0 (an empty slot).
pub fn name_hash(name: &[u8]) -> u32 {
    name.iter()
        .rev()
        .fold(FNV_OFFSET, |h, &b| fnv_step(h, b))
        .max(1)
}

const FNV_OFFSET: u32 = 0x811c_9dc5;

fn fnv_step(h: u32, b: u8) -> u32 {
    (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
}

/// Identifier bytes, as a table: the index asks once per byte scanned.
static IDENT: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        let b = i as u8;
        t[i] = b.is_ascii_alphanumeric() || b == b'_';
        i += 1;
    }
    t
};

/// The identifiers a file calls (followed by `(`), as sorted hashes. Built
/// from the raw bytes (comments and strings included: a superset is fine,
/// a hit only means the file is scanned), ~1 KB per kernel file.
///
/// This runs on every byte of the tree, so it is kept cheap: only a name
/// written against its `(` counts (kernel style, which checkpatch enforces;
/// it also skips `if (`, `for (`, `while (`), names ending in an upper-case
/// letter (macros) are left out, and duplicates are dropped in a reused
/// open-addressing table instead of sorting every hit.
#[derive(Clone, Debug, Default)]
pub struct CallIndex(Vec<u32>);

thread_local! {
    /// Per-thread dedup table, cleared per file (slot 0 = empty).
    static SEEN: std::cell::RefCell<Vec<u32>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl CallIndex {
    pub fn new(src: &[u8]) -> Self {
        SEEN.with_borrow_mut(|table| {
            // Distinct callees are far fewer than bytes / 64 in kernel C.
            let size = (src.len() / 64).next_power_of_two().clamp(256, 1 << 16);
            table.clear();
            table.resize(size, 0);
            let mask = size - 1;
            let mut hashes = Vec::new();
            for open in memchr::memchr_iter(b'(', src) {
                // `IS_ERR(`, `BUG_ON(`, `READ_ONCE(`: macros, a good share of
                // all calls, and never a function whose callers are wanted.
                if open == 0
                    || !IDENT[usize::from(src[open - 1])]
                    || src[open - 1].is_ascii_uppercase()
                {
                    continue;
                }
                let mut start = open;
                let mut h = FNV_OFFSET;
                while start > 0 && IDENT[usize::from(src[start - 1])] {
                    start -= 1;
                    h = fnv_step(h, src[start]);
                }
                // Shorter names are keywords and macros (`do`), never wanted.
                if open - start < 3 {
                    continue;
                }
                let h = h.max(1);
                let mut slot = (h as usize) & mask;
                loop {
                    match table[slot] {
                        0 => {
                            table[slot] = h;
                            hashes.push(h);
                            // A full table stops dedup, not correctness.
                            if hashes.len() * 2 > size {
                                table.fill(0);
                            }
                            break;
                        }
                        x if x == h => break,
                        _ => slot = (slot + 1) & mask,
                    }
                }
            }
            hashes.sort_unstable();
            hashes.dedup();
            Self(hashes)
        })
    }

    /// May the file call `name`? (False positives are hash collisions.)
    pub fn may_call(&self, name: &str) -> bool {
        self.0.binary_search(&name_hash(name.as_bytes())).is_ok()
    }
}

/// A few names looked up in many [`CallIndex`]es at once: one pass over the
/// run's ~3 million index entries per level, not one per name.
pub struct NameSet {
    /// (hash, position of the name in the caller's list), sorted.
    hashes: Vec<(u32, usize)>,
}

impl NameSet {
    pub fn new(names: &[String]) -> Self {
        let mut hashes: Vec<(u32, usize)> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (name_hash(n.as_bytes()), i))
            .collect();
        hashes.sort_unstable();
        Self { hashes }
    }

    /// Positions of the names `index` may call.
    pub fn called_in<'a>(&'a self, index: &'a CallIndex) -> impl Iterator<Item = usize> + 'a {
        let (mut i, mut j) = (0, 0);
        let (a, b) = (&self.hashes, &index.0);
        std::iter::from_fn(move || {
            // Merge of two sorted lists; a name's hash may repeat in `a`.
            while i < a.len() && j < b.len() {
                match a[i].0.cmp(&b[j]) {
                    std::cmp::Ordering::Less => i += 1,
                    std::cmp::Ordering::Greater => j += 1,
                    std::cmp::Ordering::Equal => {
                        i += 1;
                        return Some(a[i - 1].1);
                    }
                }
            }
            None
        })
    }
}

/// What holding a context means for a callee.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Held {
    /// mmap_lock (or the per-VMA lock): a fault takes it again.
    Mmap,
    /// Spinlock, irqs or preemption off, RCU, kmap_atomic: no sleeping.
    Atomic,
    /// `pagefault_disable()` or a live `kmap_atomic()`: accesses fail fast.
    FaultsDisabled,
}

/// A function the per-file pass wants caller context for.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Want {
    pub function: String,
    pub is_static: bool,
}

/// A context a caller holds on every path to one call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldContext {
    pub held: Held,
    /// How findings name it: "mmap_lock", "the per-VMA lock", "atomic context".
    pub what: String,
    /// The call that took it (`mmap_read_lock`, an inferred helper).
    pub by: String,
    /// Line of that call in the caller's file.
    pub line: usize,
}

/// One call of a summarized name, as the caller's dataflow saw it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallSiteSummary {
    pub callee: String,
    pub caller: String,
    pub caller_static: bool,
    /// Line of the call in the caller's file.
    pub line: usize,
    /// Contexts the caller itself holds at the call (see `scan::held_at`).
    pub held: Vec<HeldContext>,
    /// Kinds of context held by the caller's own caller at its entry that
    /// are still held at the call: nothing of the kind was released on the
    /// way (its dataflow starts with them held, `AcquireSite::entry`).
    pub passes: Vec<Held>,
}

/// What scanning one file found.
#[derive(Clone, Debug, Default)]
pub struct FileCalls {
    /// Every function the file defines (any `#if` arm): a call in this file
    /// to one of these names resolves here, not to another file.
    pub defined: HashSet<String>,
    pub sites: Vec<CallSiteSummary>,
}

/// A file in the run; ids are the driver's (single-file checks use 0).
pub type FileId = usize;

/// One call on the way from the holder down to the function.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hop {
    /// The calling function.
    pub function: String,
    /// Its file as shown to the user; `None` in a single-source check.
    pub path: Option<String>,
    /// Line of the call.
    pub line: usize,
}

/// Evidence from callers for one function: `chain[0]` calls it, each next
/// hop calls the previous one, and the last holds `context` at its call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallerEvidence {
    pub context: HeldContext,
    pub chain: Vec<Hop>,
    /// Direct call sites found in the scanned inputs, and how many of them
    /// hold this kind of context (themselves or through their callers).
    pub sites_found: usize,
    pub sites_holding: usize,
}

impl CallerEvidence {
    pub fn held(&self) -> Held {
        self.context.held
    }

    /// `mm/userfaultfd.c:816`, or `line 816` without a path.
    pub fn place(path: Option<&str>, line: usize) -> String {
        match path {
            Some(p) => format!("{p}:{line}"),
            None => format!("line {line}"),
        }
    }

    /// "caller `f()` holds mmap_lock at a.c:12 (...)": the sentence KM001
    /// and KM008 put in their finding.
    pub fn describe(&self) -> String {
        let Some(first) = self.chain.first() else {
            return String::new();
        };
        let last = self.chain.last().unwrap_or(first);
        let mut out = format!(
            "caller `{}()` holds {} at {}",
            first.function,
            self.context.what,
            Self::place(first.path.as_deref(), first.line)
        );
        let taken = Self::place(last.path.as_deref(), self.context.line);
        if self.chain.len() == 1 {
            out.push_str(&format!(" (taken by `{}()` at {taken})", self.context.by));
        } else {
            let via: Vec<String> = self.chain[1..]
                .iter()
                .map(|h| {
                    format!(
                        "`{}()` at {}",
                        h.function,
                        Self::place(h.path.as_deref(), h.line)
                    )
                })
                .collect();
            out.push_str(&format!(
                ": called by {}; `{}()` takes it with `{}()` at {taken}",
                via.join(", called by "),
                last.function,
                self.context.by
            ));
        }
        if self.sites_found > 1 {
            out.push_str(&format!(
                " ({} of {} call sites found hold it)",
                self.sites_holding, self.sites_found
            ));
        }
        out
    }
}

/// Caller evidence per function name, for one file.
pub type FileEvidence = HashMap<String, Vec<CallerEvidence>>;

/// A function whose callers are looked up: its name and where it is defined.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct Query {
    name: String,
    file: FileId,
    is_static: bool,
}

/// Which files to scan for which names.
pub type ScanRequest = Vec<(FileId, Vec<String>)>;

/// How [`summarize`] reaches the inputs; the driver implements it with the
/// index and rayon, a single-source check with the one text it has.
pub trait Corpus {
    /// For each name, the files that may call it (from [`CallIndex`]).
    fn files_calling(&self, names: &[String]) -> Vec<Vec<FileId>>;
    /// Scans each file for the calls of its names.
    fn scan(&mut self, request: ScanRequest) -> Vec<(FileId, FileCalls)>;
    /// The file's path as shown, if there is one.
    fn path(&self, file: FileId) -> Option<String>;
}

/// A single source as the whole program: `check_source` on one file, where
/// callers in the same file count the same way.
pub struct OneSource<'s> {
    scanner: scan::Scanner<'s>,
    src: &'s [u8],
    index: CallIndex,
}

impl<'s> OneSource<'s> {
    pub fn new(scanner: scan::Scanner<'s>, src: &'s [u8]) -> Self {
        Self {
            scanner,
            src,
            index: CallIndex::new(src),
        }
    }
}

impl Corpus for OneSource<'_> {
    fn files_calling(&self, names: &[String]) -> Vec<Vec<FileId>> {
        names
            .iter()
            .map(|n| {
                if self.index.may_call(n) {
                    vec![0]
                } else {
                    Vec::new()
                }
            })
            .collect()
    }

    fn scan(&mut self, request: ScanRequest) -> Vec<(FileId, FileCalls)> {
        request
            .into_iter()
            .map(|(file, names)| (file, self.scanner.scan(self.src, &names)))
            .collect()
    }

    fn path(&self, _file: FileId) -> Option<String> {
        None
    }
}

/// Call sites found for one query: (file of the call, site, query of the caller).
type Sites = Vec<(FileId, CallSiteSummary, Query)>;

/// Phase 2: evidence from callers for every wanted function, per file.
pub fn summarize(
    wants: &[(FileId, Want)],
    corpus: &mut dyn Corpus,
) -> HashMap<FileId, FileEvidence> {
    let mut asked: HashSet<Query> = HashSet::new();
    let mut sites: HashMap<Query, Sites> = HashMap::new();
    let mut open: Vec<Query> = wants
        .iter()
        .map(|(file, w)| Query {
            name: w.function.clone(),
            file: *file,
            is_static: w.is_static,
        })
        .collect();
    for level in 0..MAX_DEPTH {
        open.retain(|q| asked.insert(q.clone()));
        if open.is_empty() {
            break;
        }
        let names: Vec<String> = open.iter().map(|q| q.name.clone()).collect();
        let mut per_file: HashMap<FileId, HashSet<String>> = HashMap::new();
        for (q, files) in open.iter().zip(corpus.files_calling(&names)) {
            // A static function is called from its own file only.
            for f in files.into_iter().filter(|&f| !q.is_static || f == q.file) {
                per_file.entry(f).or_default().insert(q.name.clone());
            }
        }
        let mut request: ScanRequest = per_file
            .into_iter()
            .map(|(f, names)| {
                let mut names: Vec<String> = names.into_iter().collect();
                names.sort();
                (f, names)
            })
            .collect();
        request.sort();
        let mut next = Vec::new();
        for (file, calls) in corpus.scan(request) {
            for site in calls.sites {
                let resolves = |q: &&Query| {
                    q.name == site.callee
                        && (q.file == file || (!q.is_static && !calls.defined.contains(&q.name)))
                };
                let caller = Query {
                    name: site.caller.clone(),
                    file,
                    is_static: site.caller_static,
                };
                for q in open.iter().filter(resolves) {
                    if site.held.is_empty() && level + 1 < MAX_DEPTH {
                        next.push(caller.clone());
                    }
                    sites
                        .entry(q.clone())
                        .or_default()
                        .push((file, site.clone(), caller.clone()));
                }
            }
        }
        open = next;
    }
    let mut out: HashMap<FileId, FileEvidence> = HashMap::new();
    for (file, want) in wants {
        let q = Query {
            name: want.function.clone(),
            file: *file,
            is_static: want.is_static,
        };
        let evidence = evidence_for(&q, &sites, corpus, &mut Vec::new());
        if !evidence.is_empty() {
            out.entry(*file)
                .or_default()
                .insert(want.function.clone(), evidence);
        }
    }
    out
}

/// The shortest chain per kind of held context above `q`, with counts.
fn evidence_for(
    q: &Query,
    sites: &HashMap<Query, Sites>,
    corpus: &dyn Corpus,
    path: &mut Vec<Query>,
) -> Vec<CallerEvidence> {
    let Some(found) = sites.get(q) else {
        return Vec::new();
    };
    if path.contains(q) || path.len() >= MAX_DEPTH {
        return Vec::new();
    }
    path.push(q.clone());
    let mut best: HashMap<Held, (CallerEvidence, usize)> = HashMap::new();
    for (file, site, caller) in found {
        let hop = Hop {
            function: site.caller.clone(),
            path: corpus.path(*file),
            line: site.line,
        };
        let mut chains: Vec<CallerEvidence> = site
            .held
            .iter()
            .map(|h| CallerEvidence {
                context: h.clone(),
                chain: vec![hop.clone()],
                sites_found: 0,
                sites_holding: 0,
            })
            .collect();
        if site.held.is_empty() {
            for mut above in evidence_for(caller, sites, corpus, path) {
                if !site.passes.contains(&above.held()) {
                    continue;
                }
                above.chain.insert(0, hop.clone());
                chains.push(above);
            }
        }
        let mut kinds_here = HashSet::new();
        for chain in chains {
            let kind = chain.held();
            let first_for_site = kinds_here.insert(kind);
            let entry = best.entry(kind).or_insert((chain.clone(), 0));
            if first_for_site {
                entry.1 += 1;
            }
            if chain.chain.len() < entry.0.chain.len() {
                entry.0 = chain;
            }
        }
    }
    path.pop();
    let mut out: Vec<CallerEvidence> = best
        .into_values()
        .map(|(mut e, holding)| {
            e.sites_found = found.len();
            e.sites_holding = holding;
            e
        })
        .collect();
    out.sort_by_key(CallerEvidence::held);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_finds_called_names_only() {
        let idx = CallIndex::new(b"int x = foo(a); bar = baz;\nqux(\nif (x) spaced (y);");
        assert!(idx.may_call("foo"));
        assert!(!idx.may_call("spaced"));
        assert!(idx.may_call("qux"));
        assert!(!idx.may_call("bar"));
        assert!(!idx.may_call("baz"));
        let names = ["qux", "bar", "foo", "foo"].map(String::from);
        let mut hits: Vec<usize> = NameSet::new(&names).called_in(&idx).collect();
        hits.sort_unstable();
        assert_eq!(hits, [0, 2, 3]);
    }
}
