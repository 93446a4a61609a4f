//! kmapcheck: find kmap/page-fault bugs in Linux kernel C.
//!
//! Pipeline, one way: prefilter -> preprocess -> find functions -> parse ->
//! cfg -> dataflow -> rules -> diagnostics. [`Analyzer::check_source`] runs it
//! on one file's bytes; `driver` runs it over trees in parallel.

pub mod baseline;
pub mod callgraph;
pub mod catalogue;
pub mod cfg;
pub mod cli;
pub mod config;
pub mod dataflow;
pub mod diag;
pub mod driver;
pub mod fingerprint;
pub mod fix;
pub mod parse;
pub mod patch;
pub mod prefilter;
pub mod preprocess;
pub mod report;
pub mod rules;
pub mod select;
pub mod sparse_args;
pub mod suppress;
pub mod syntax;

use std::cell::RefCell;
use std::time::{Duration, Instant};

use anyhow::Result;
use tree_sitter::Parser;

use callgraph::{FileEvidence, FileId, Want};
use catalogue::{Catalogue, MapFamily};
use diag::{Diagnostic, LineIndex};
use parse::FunctionSpan;
use prefilter::Prefilter;
use preprocess::{Arms, Vocabulary};
use rules::{Needle, Rule, RuleCx};

/// Time spent per pipeline phase (summed over threads in a run).
#[derive(Clone, Copy, Debug, Default)]
pub struct PhaseTimes {
    pub prefilter: Duration,
    pub preprocess: Duration,
    pub parse: Duration,
    pub cfg: Duration,
    pub dataflow: Duration,
    pub rules: Duration,
}

impl PhaseTimes {
    pub fn add(&mut self, other: &PhaseTimes) {
        self.prefilter += other.prefilter;
        self.preprocess += other.preprocess;
        self.parse += other.parse;
        self.cfg += other.cfg;
        self.dataflow += other.dataflow;
        self.rules += other.rules;
    }
}

/// What happened to one file.
#[derive(Clone, Debug, Default)]
pub struct FileStats {
    /// The prefilter found no catalogue name: not parsed.
    pub prefiltered_out: bool,
    pub functions: usize,
    /// Functions whose body parsed without error and whose graph is exact.
    pub complete: usize,
    /// Functions analyzed on a recovered parse or approximate graph.
    pub partial: usize,
    /// Functions whose preprocessed body still has tree-sitter ERROR/MISSING nodes.
    pub parse_errors: usize,
    /// With `Options::compare_raw_parse`: functions whose unpreprocessed body has them.
    pub raw_parse_errors: usize,
    pub times: PhaseTimes,
}

/// Knobs for evaluation runs; the defaults are what users get.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Analyze every function that calls any map family (kmap, kmap_atomic,
    /// kmap_local), not only what the enabled rules need: for coverage figures.
    pub all_map_families: bool,
    /// Also parse each analyzed body without preprocessing and count its errors,
    /// to measure what preprocessing buys.
    pub compare_raw_parse: bool,
    /// Give up on a file after this long (`--file-timeout`); `None`: no limit.
    pub file_timeout: Option<Duration>,
}

/// Why the pipeline gave up on a file. The driver skips the whole file and
/// names it with this reason: a partial result would look like a clean one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Limit {
    /// `Options::file_timeout` ran out; `during` says where ("function `f`").
    Timeout { after: Duration, during: String },
    /// A function body larger than [`parse::MAX_BODY_BYTES`]: not parsed,
    /// because tree-sitter's error recovery can take ~2 KB of memory and
    /// ~13 us per byte of hostile input.
    BodyTooLarge { function: String, bytes: usize },
}

impl std::fmt::Display for Limit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Limit::Timeout { after, during } => write!(
                f,
                "analysis exceeded the {} s time limit (--file-timeout) in {during}",
                after.as_secs_f64()
            ),
            Limit::BodyTooLarge { function, bytes } => write!(
                f,
                "function `{function}` has a {bytes}-byte body, over the {}-byte limit",
                parse::MAX_BODY_BYTES
            ),
        }
    }
}

/// The clock of one file's analysis.
#[derive(Clone, Copy)]
struct Deadline {
    at: Option<Instant>,
    limit: Duration,
}

impl Deadline {
    fn start(limit: Option<Duration>) -> Self {
        Self {
            at: limit.and_then(|l| Instant::now().checked_add(l)),
            limit: limit.unwrap_or_default(),
        }
    }

    fn passed(self) -> bool {
        self.at.is_some_and(|at| Instant::now() >= at)
    }

    /// `Err` once the time is up; `function` is where we are, if in one.
    fn check(self, function: Option<&str>) -> Result<(), Limit> {
        if self.passed() {
            return Err(Limit::Timeout {
                after: self.limit,
                during: function.map_or("preprocessing".to_owned(), |f| format!("function `{f}`")),
            });
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
pub struct FileReport {
    pub diagnostics: Vec<Diagnostic>,
    pub stats: FileStats,
    /// Set when a limit stopped the analysis: the diagnostics are incomplete.
    pub limit: Option<Limit>,
    /// Functions whose findings depend on what their callers hold
    /// (`Rule::wants_callers`) and that got no caller evidence yet.
    pub wants: Vec<Want>,
}

/// Offset (in the parsed text) of the first ERROR or MISSING node, if any.
fn first_error(tree: &tree_sitter::Tree) -> Option<usize> {
    let mut node = tree.root_node();
    if !node.has_error() {
        return None;
    }
    loop {
        if node.is_error() || node.is_missing() {
            return Some(node.start_byte());
        }
        let mut cursor = node.walk();
        let next = node
            .children(&mut cursor)
            .find(|c| c.has_error() || c.is_missing());
        match next {
            Some(child) => node = child,
            None => return Some(node.start_byte()),
        }
    }
}

/// Passes over the arms of `#if` chains per file: the first arm, then arm 1,
/// 2, 3 (a chain with more arms contributes its last to the later passes).
pub(crate) const MAX_ARM_PASSES: usize = 4;

thread_local! {
    pub(crate) static PARSER: RefCell<Parser> = RefCell::new(parse::new_parser());
}

/// The loaded catalogue and rules; shared by all threads.
pub struct Analyzer {
    catalogue: Catalogue,
    prefilter: Prefilter,
    rules: Vec<&'static Rule>,
    options: Options,
}

impl Analyzer {
    /// An analyzer with the built-in catalogue and the rules enabled by
    /// default (what a run without `--select` gets).
    pub fn new() -> Result<Self> {
        Self::with_rules(rules::default_rules())
    }

    pub fn with_rules(rules: Vec<&'static Rule>) -> Result<Self> {
        Self::with_options(rules, Options::default())
    }

    pub fn with_options(rules: Vec<&'static Rule>, options: Options) -> Result<Self> {
        Self::with_catalogue(rules, options, Catalogue::builtin()?)
    }

    /// An analyzer with a catalogue built by the caller: the built-in one
    /// with a project's extra API merged in (`.kmapcheck.toml`).
    pub fn with_catalogue(
        rules: Vec<&'static Rule>,
        options: Options,
        catalogue: Catalogue,
    ) -> Result<Self> {
        let mut needles: Vec<&str> = Vec::new();
        let all_maps = [MapFamily::Local, MapFamily::Atomic, MapFamily::Kmap].map(Needle::Maps);
        let extra = all_maps.iter().filter(|_| options.all_map_families);
        for needle in rules.iter().flat_map(|r| r.needs.iter()).chain(extra) {
            match needle {
                Needle::Maps(family) => needles.extend(catalogue.map_names(*family)),
                Needle::InatomicAccess => needles.extend(catalogue.inatomic_access_names()),
            }
        }
        needles.sort_unstable();
        needles.dedup();
        let prefilter = Prefilter::new(&needles);
        Ok(Self {
            catalogue,
            prefilter,
            rules,
            options,
        })
    }

    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    /// Runs every rule on one file's bytes, with the callers this file holds
    /// (a single source is its own whole program: see [`callgraph`]). Never
    /// fails: what does not parse is analyzed as far as it goes and counted
    /// as partial; a file that hits a [`Limit`] says so in `FileReport::limit`.
    pub fn check_source(&self, src: &[u8]) -> FileReport {
        self.check_patched_source(src, &rules::conversion::PreImages::default())
    }

    /// [`Analyzer::check_source`] on a patch's post-image: each function sees
    /// the summary of its pre-image (by name) in `RuleCx::pre_image`, and the
    /// callers the post-image file holds.
    pub fn check_patched_source(
        &self,
        src: &[u8],
        pre_images: &rules::conversion::PreImages,
    ) -> FileReport {
        let first = self.check_with(src, pre_images, &FileEvidence::new());
        if first.wants.is_empty() || first.limit.is_some() {
            return first;
        }
        let mut corpus = callgraph::OneSource::new(self.caller_scanner(), src);
        let wants: Vec<(FileId, Want)> = first.wants.iter().map(|w| (0, w.clone())).collect();
        let evidence = callgraph::summarize(&wants, &mut corpus);
        match evidence.get(&0) {
            Some(evidence) => {
                let mut again = self.check_with(src, pre_images, evidence);
                if again.limit.is_some() {
                    return first;
                }
                again.stats = first.stats;
                again.wants = first.wants;
                again
            }
            None => first,
        }
    }

    /// The scanner phase 2 of the call summary uses, with this run's limits.
    pub fn caller_scanner(&self) -> callgraph::scan::Scanner<'_> {
        callgraph::scan::Scanner::new(&self.catalogue, self.options.file_timeout)
    }

    /// `first` again with caller evidence: its findings are replaced, its
    /// statistics kept (the functions were counted once).
    pub fn recheck(&self, src: &[u8], evidence: &FileEvidence, first: FileReport) -> FileReport {
        let mut again = self.check_source_with(src, evidence);
        if again.limit.is_some() {
            return first;
        }
        again.stats = first.stats;
        again.wants = first.wants;
        again
    }

    /// Runs every rule on one file's bytes with the given caller evidence
    /// and names the functions that want more ([`FileReport::wants`]).
    pub fn check_source_with(&self, src: &[u8], evidence: &FileEvidence) -> FileReport {
        self.check_with(src, &rules::conversion::PreImages::default(), evidence)
    }

    fn check_with(
        &self,
        src: &[u8],
        pre_images: &rules::conversion::PreImages,
        evidence: &FileEvidence,
    ) -> FileReport {
        let mut report = FileReport::default();
        let mut diagnostics = Vec::new();
        let mut wants: Vec<Want> = Vec::new();
        let wanting: Vec<fn(&RuleCx<'_>) -> bool> =
            self.rules.iter().filter_map(|r| r.wants_callers).collect();
        report.limit = self
            .for_each_function(src, &mut report.stats, &mut |cx, span| {
                let callers = evidence.get(&span.name).map_or(&[][..], Vec::as_slice);
                let cx = RuleCx {
                    callers,
                    pre_image: pre_images.get(&span.name),
                    ..*cx
                };
                for rule in &self.rules {
                    diagnostics.extend((rule.check)(&cx));
                }
                if callers.is_empty() && wanting.iter().any(|w| w(&cx)) {
                    let want = Want {
                        function: span.name.clone(),
                        is_static: span.is_static,
                    };
                    if !wants.contains(&want) {
                        wants.push(want);
                    }
                }
            })
            .err();
        report.wants = wants;
        report.diagnostics = diagnostics;
        report
            .diagnostics
            .sort_by_key(|d| (d.primary.span.start, rules::specificity(d.code)));
        // One bug, one finding: the most specific rule at a place wins.
        report.diagnostics.dedup_by_key(|d| d.primary.span.start);
        report
    }

    /// Patch mode, on a pre-image: [`Analyzer::check_source`] and, in the
    /// same pass, the summary of every analyzed function (KM002/KM003 read
    /// it on the post-image).
    pub fn check_pre_image(&self, src: &[u8]) -> (FileReport, rules::conversion::PreImages) {
        let mut summaries = rules::conversion::PreImages::default();
        let mut report = FileReport::default();
        let mut diagnostics = Vec::new();
        // A time limit leaves both partial: the caller names the limit.
        report.limit = self
            .for_each_function(src, &mut report.stats, &mut |cx, span| {
                summaries.insert(span.name.clone(), rules::conversion::summarize(cx));
                for rule in &self.rules {
                    diagnostics.extend((rule.check)(cx));
                }
            })
            .err();
        report.diagnostics = diagnostics;
        report
            .diagnostics
            .sort_by_key(|d| (d.primary.span.start, rules::specificity(d.code)));
        report.diagnostics.dedup_by_key(|d| d.primary.span.start);
        (report, summaries)
    }

    /// The CFG of every analyzed function, as text (`--dump-cfg`).
    pub fn dump_cfgs(&self, src: &[u8]) -> String {
        let lines = LineIndex::new(src);
        let mut out = String::new();
        let mut stats = FileStats::default();
        let limit = self.for_each_function(src, &mut stats, &mut |cx, span| {
            let status = match first_error(cx.tree) {
                Some(offset) => format!(
                    "partial: parse error at line {}",
                    lines.position(cx.base + offset).0
                ),
                None if cx.cfg.complete => "complete".to_owned(),
                None => "partial".to_owned(),
            };
            out.push_str(&format!("fn {} ({status})\n", span.name));
            out.push_str(&cfg::dump::dump(cx.cfg, &|o| lines.position(o).0));
        });
        if let Err(limit) = limit {
            out.push_str(&format!("stopped: {limit}\n"));
        }
        out
    }

    fn for_each_function(
        &self,
        src: &[u8],
        stats: &mut FileStats,
        visit: &mut dyn FnMut(&RuleCx<'_>, &FunctionSpan),
    ) -> Result<(), Limit> {
        let deadline = Deadline::start(self.options.file_timeout);
        let t = Instant::now();
        let relevant = self.prefilter.may_match(src);
        stats.times.prefilter += t.elapsed();
        if !relevant {
            stats.prefiltered_out = true;
            return Ok(());
        }
        let vocab = Vocabulary::new(&self.catalogue);
        let t = Instant::now();
        let (pre, arm_counts) = preprocess::lexical_arms(src, Arms::First, &[]);
        // Later arms can only matter if the first pass blanked a catalogue
        // name (in an inactive arm, or in a comment: a cheap superset).
        let blanked = self.prefilter.hits(src).count() > self.prefilter.hits(&pre).count();
        stats.times.preprocess += t.elapsed();
        let seen = self.analyze_text(src, pre, &[], &vocab, stats, deadline, visit)?;
        if !blanked {
            return Ok(());
        }
        // Code only in a later #elif/#else arm (the !CONFIG_HIGHMEM inline,
        // the xz arm of a compression switch) gets a pass per arm index, up
        // to MAX_ARM_PASSES; bodies an earlier pass analyzed unchanged are
        // not analyzed twice.
        let most_arms = arm_counts
            .iter()
            .copied()
            .max()
            .unwrap_or(1)
            .min(MAX_ARM_PASSES);
        let mut seen = seen;
        for arm in 1..most_arms {
            let t = Instant::now();
            let (pre_arm, _) = preprocess::lexical_arms(src, Arms::Nth(arm), &arm_counts);
            stats.times.preprocess += t.elapsed();
            let more = self.analyze_text(src, pre_arm, &seen, &vocab, stats, deadline, visit)?;
            seen.extend(more);
        }
        Ok(())
    }

    /// Analyzes the relevant functions of one lexical pass, except those in
    /// `skip` (body range and text hash); returns what it analyzed.
    #[expect(
        clippy::too_many_arguments,
        reason = "one pass of the per-file pipeline; all are its inputs"
    )]
    fn analyze_text(
        &self,
        src: &[u8],
        mut pre: Vec<u8>,
        skip: &[(usize, usize, u64)],
        vocab: &Vocabulary<'_>,
        stats: &mut FileStats,
        deadline: Deadline,
        visit: &mut dyn FnMut(&RuleCx<'_>, &FunctionSpan),
    ) -> Result<Vec<(usize, usize, u64)>, Limit> {
        let t = Instant::now();
        deadline.check(None)?;
        let functions = parse::find_functions(&pre, &self.catalogue);
        let hits: Vec<usize> = self.prefilter.hits(&pre).collect();
        let key = |f: &FunctionSpan| {
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            std::hash::Hash::hash(&pre[f.body_start..f.body_end], &mut hasher);
            (f.body_start, f.body_end, std::hash::Hasher::finish(&hasher))
        };
        let relevant: Vec<(&FunctionSpan, (usize, usize, u64))> = functions
            .iter()
            .filter(|f| {
                let first = hits.partition_point(|&h| h < f.body_start);
                hits.get(first).is_some_and(|&h| h < f.body_end)
            })
            .map(|f| (f, key(f)))
            .filter(|(_, k)| !skip.contains(k))
            .collect();
        // Identifier rewriting is the costly stage: only bodies we parse need it.
        for (span, _) in &relevant {
            deadline.check(Some(&span.name))?;
            preprocess::rewrite_identifiers(&mut pre, span.body_start..span.body_end, vocab);
        }
        stats.times.preprocess += t.elapsed();
        // Size first, for every function: a file with an oversized body is
        // refused before any time is spent on the others.
        if let Some((span, _)) = relevant
            .iter()
            .find(|(s, _)| s.body_end - s.body_start > parse::MAX_BODY_BYTES)
        {
            return Err(Limit::BodyTooLarge {
                function: span.name.clone(),
                bytes: span.body_end - span.body_start,
            });
        }
        for (span, _) in &relevant {
            deadline.check(Some(&span.name))?;
            self.analyze_function(src, &pre, span, stats, deadline, visit)?;
        }
        Ok(relevant.into_iter().map(|(_, k)| k).collect())
    }

    fn analyze_function(
        &self,
        src: &[u8],
        pre: &[u8],
        span: &FunctionSpan,
        stats: &mut FileStats,
        deadline: Deadline,
        visit: &mut dyn FnMut(&RuleCx<'_>, &FunctionSpan),
    ) -> Result<(), Limit> {
        let t = Instant::now();
        let tree =
            PARSER.with_borrow_mut(|parser| parse::parse_body(parser, pre, span, deadline.at));
        stats.times.parse += t.elapsed();
        stats.functions += 1;
        deadline.check(Some(&span.name))?;
        let Some(tree) = tree else {
            stats.partial += 1;
            return Ok(());
        };
        stats.parse_errors += usize::from(tree.root_node().has_error());
        if self.options.compare_raw_parse {
            let raw =
                PARSER.with_borrow_mut(|parser| parse::parse_body(parser, src, span, deadline.at));
            stats.raw_parse_errors += usize::from(raw.is_none_or(|t| t.root_node().has_error()));
        }
        let text = &pre[span.body_start..span.body_end];
        let t = Instant::now();
        let mut graph = cfg::build::build(&self.catalogue, text, span.body_start, tree.root_node());
        graph.complete &= !span.truncated;
        stats.times.cfg += t.elapsed();
        deadline.check(Some(&span.name))?;
        let t = Instant::now();
        let facts = dataflow::solve_until(&graph, deadline.at);
        stats.times.dataflow += t.elapsed();
        deadline.check(Some(&span.name))?;
        if graph.complete && facts.converged {
            stats.complete += 1;
        } else {
            stats.partial += 1;
        }
        let t = Instant::now();
        let header = std::str::from_utf8(&src[span.header_start..span.body_start]).unwrap_or("");
        let cx = RuleCx {
            header,
            source: src,
            catalogue: &self.catalogue,
            function: &span.name,
            tree: &tree,
            text,
            base: span.body_start,
            cfg: &graph,
            facts: &facts,
            pre_image: None,
            callers: &[],
        };
        visit(&cx, span);
        stats.times.rules += t.elapsed();
        Ok(())
    }
}
