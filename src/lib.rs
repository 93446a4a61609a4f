//! kmapcheck: find kmap/page-fault bugs in Linux kernel C.
//!
//! Pipeline, one way: prefilter -> preprocess -> find functions -> parse ->
//! cfg -> dataflow -> rules -> diagnostics. [`Analyzer::check_source`] runs it
//! on one file's bytes; `driver` runs it over trees in parallel.

pub mod baseline;
pub mod catalogue;
pub mod cfg;
pub mod cli;
pub mod config;
pub mod dataflow;
pub mod diag;
pub mod driver;
pub mod fingerprint;
pub mod parse;
pub mod prefilter;
pub mod preprocess;
pub mod report;
pub mod rules;
pub mod select;
pub mod sparse_args;
pub mod suppress;

use std::cell::RefCell;
use std::time::{Duration, Instant};

use anyhow::Result;
use tree_sitter::Parser;

use catalogue::{Catalogue, MapFamily};
use diag::{Diagnostic, LineIndex};
use parse::FunctionSpan;
use prefilter::Prefilter;
use preprocess::Vocabulary;
use rules::{Rule, RuleCx};

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
}

#[derive(Debug, Default)]
pub struct FileReport {
    pub diagnostics: Vec<Diagnostic>,
    pub stats: FileStats,
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

thread_local! {
    static PARSER: RefCell<Parser> = RefCell::new(parse::new_parser());
}

/// The loaded catalogue and rules; shared by all threads.
pub struct Analyzer {
    catalogue: Catalogue,
    prefilter: Prefilter,
    rules: Vec<&'static Rule>,
    options: Options,
}

impl Analyzer {
    /// An analyzer with the built-in catalogue and every rule.
    pub fn new() -> Result<Self> {
        Self::with_rules(rules::RULES.to_vec())
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
        let all = [MapFamily::Local, MapFamily::Atomic, MapFamily::Kmap];
        let families = rules.iter().flat_map(|r| r.needs.iter());
        for family in families.chain(all.iter().filter(|_| options.all_map_families)) {
            needles.extend(catalogue.map_names(*family));
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

    /// Runs every rule on one file's bytes. Never fails: what does not parse
    /// is analyzed as far as it goes and counted as partial.
    pub fn check_source(&self, src: &[u8]) -> FileReport {
        let mut report = FileReport::default();
        self.for_each_function(src, &mut report.stats, &mut |cx, _| {
            for rule in &self.rules {
                report.diagnostics.extend((rule.check)(cx));
            }
        });
        report
            .diagnostics
            .sort_by_key(|d| (d.primary.span.start, d.code));
        report
    }

    /// The CFG of every analyzed function, as text (`--dump-cfg`).
    pub fn dump_cfgs(&self, src: &[u8]) -> String {
        let lines = LineIndex::new(src);
        let mut out = String::new();
        let mut stats = FileStats::default();
        self.for_each_function(src, &mut stats, &mut |cx, span| {
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
        out
    }

    fn for_each_function(
        &self,
        src: &[u8],
        stats: &mut FileStats,
        visit: &mut dyn FnMut(&RuleCx<'_>, &FunctionSpan),
    ) {
        let t = Instant::now();
        let relevant = self.prefilter.may_match(src);
        stats.times.prefilter += t.elapsed();
        if !relevant {
            stats.prefiltered_out = true;
            return;
        }
        let t = Instant::now();
        let vocab = Vocabulary::new(&self.catalogue);
        let mut pre = preprocess::lexical(src);
        let functions = parse::find_functions(&pre, &self.catalogue);
        let hits: Vec<usize> = self.prefilter.hits(&pre).collect();
        let relevant: Vec<&FunctionSpan> = functions
            .iter()
            .filter(|f| {
                let first = hits.partition_point(|&h| h < f.body_start);
                hits.get(first).is_some_and(|&h| h < f.body_end)
            })
            .collect();
        // Identifier rewriting is the costly stage: only bodies we parse need it.
        for span in &relevant {
            preprocess::rewrite_identifiers(&mut pre, span.body_start..span.body_end, &vocab);
        }
        stats.times.preprocess += t.elapsed();
        for span in relevant {
            self.analyze_function(src, &pre, span, stats, visit);
        }
    }

    fn analyze_function(
        &self,
        src: &[u8],
        pre: &[u8],
        span: &FunctionSpan,
        stats: &mut FileStats,
        visit: &mut dyn FnMut(&RuleCx<'_>, &FunctionSpan),
    ) {
        let t = Instant::now();
        let tree = PARSER.with_borrow_mut(|parser| parse::parse_body(parser, pre, span));
        stats.times.parse += t.elapsed();
        stats.functions += 1;
        let Some(tree) = tree else {
            stats.partial += 1;
            return;
        };
        stats.parse_errors += usize::from(tree.root_node().has_error());
        if self.options.compare_raw_parse {
            let raw = PARSER.with_borrow_mut(|parser| parse::parse_body(parser, src, span));
            stats.raw_parse_errors += usize::from(raw.is_none_or(|t| t.root_node().has_error()));
        }
        let text = &pre[span.body_start..span.body_end];
        let t = Instant::now();
        let mut graph = cfg::build::build(&self.catalogue, text, span.body_start, tree.root_node());
        graph.complete &= !span.truncated;
        stats.times.cfg += t.elapsed();
        let t = Instant::now();
        let facts = dataflow::solve(&graph);
        stats.times.dataflow += t.elapsed();
        if graph.complete && facts.converged {
            stats.complete += 1;
        } else {
            stats.partial += 1;
        }
        let t = Instant::now();
        let cx = RuleCx {
            catalogue: &self.catalogue,
            function: &span.name,
            tree: &tree,
            text,
            base: span.body_start,
            cfg: &graph,
            facts: &facts,
        };
        visit(&cx, span);
        stats.times.rules += t.elapsed();
    }
}
