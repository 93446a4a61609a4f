//! kmapcheck: find kmap/page-fault bugs in Linux kernel C.
//!
//! Pipeline, one way: prefilter -> preprocess -> find functions -> parse ->
//! cfg -> dataflow -> rules -> diagnostics. [`Analyzer::check_source`] runs it
//! on one file's bytes; `driver` runs it over trees in parallel.

pub mod catalogue;
pub mod cfg;
pub mod dataflow;
pub mod diag;
pub mod driver;
pub mod parse;
pub mod prefilter;
pub mod preprocess;
pub mod report;
pub mod rules;

use std::cell::RefCell;
use std::time::{Duration, Instant};

use anyhow::Result;
use tree_sitter::Parser;

use catalogue::Catalogue;
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
    pub times: PhaseTimes,
}

#[derive(Debug, Default)]
pub struct FileReport {
    pub diagnostics: Vec<Diagnostic>,
    pub stats: FileStats,
}

thread_local! {
    static PARSER: RefCell<Parser> = RefCell::new(parse::new_parser());
}

/// The loaded catalogue and rules; shared by all threads.
pub struct Analyzer {
    catalogue: Catalogue,
    prefilter: Prefilter,
    rules: Vec<&'static Rule>,
}

impl Analyzer {
    /// An analyzer with the built-in catalogue and every rule.
    pub fn new() -> Result<Self> {
        Self::with_rules(rules::RULES.to_vec())
    }

    pub fn with_rules(rules: Vec<&'static Rule>) -> Result<Self> {
        let catalogue = Catalogue::builtin()?;
        let mut needles: Vec<&str> = Vec::new();
        for rule in &rules {
            for family in rule.needs {
                needles.extend(catalogue.map_names(*family));
            }
        }
        needles.sort_unstable();
        needles.dedup();
        let prefilter = Prefilter::new(&needles);
        Ok(Self {
            catalogue,
            prefilter,
            rules,
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
            let complete = if cx.cfg.complete {
                "complete"
            } else {
                "partial"
            };
            out.push_str(&format!("fn {} ({complete})\n", span.name));
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
        let pre = preprocess::preprocess(src, &vocab);
        let functions = parse::find_functions(&pre, &self.catalogue);
        let hits: Vec<usize> = self.prefilter.hits(&pre).collect();
        stats.times.preprocess += t.elapsed();
        for span in functions.iter().filter(|f| {
            let first = hits.partition_point(|&h| h < f.body_start);
            hits.get(first).is_some_and(|&h| h < f.body_end)
        }) {
            self.analyze_function(src, &pre, span, stats, visit);
        }
    }

    fn analyze_function(
        &self,
        _src: &[u8],
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
