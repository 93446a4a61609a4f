//! Walk the inputs, run the per-file pipeline in parallel, collect results in
//! a deterministic order. The only module that touches rayon; a file that
//! cannot be read is reported and skipped, never fatal.
//!
//! Nothing is opened before its type is known: the walk's file type (lstat)
//! or a `stat` of an explicit path must say "regular file", and the open
//! itself is non-blocking, so a FIFO or device named `x.c` (or a file replaced
//! by one mid-scan) is named and skipped instead of hanging the scan.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rayon::prelude::*;
use walkdir::WalkDir;

use crate::callgraph::{
    self, CallIndex, Corpus, FileCalls, FileEvidence, FileId, ScanRequest, Want,
};
use crate::diag::Diagnostic;
use crate::{Analyzer, FileStats, PhaseTimes};

/// Larger inputs are skipped, by size, before they are read: memory stays
/// bounded (a file is held twice, original and preprocessed). The largest
/// file in linux 6.12 is a 24 MB generated register header.
pub const MAX_FILE_BYTES: u64 = 64 * 1024 * 1024;

/// One analyzed file with findings; its bytes are kept for rendering.
pub struct FileFindings {
    pub path: String,
    pub source: Vec<u8>,
    pub diagnostics: Vec<Diagnostic>,
}

/// Totals over a run.
#[derive(Clone, Debug, Default)]
pub struct RunStats {
    pub files_seen: usize,
    pub prefiltered_out: usize,
    pub files_analyzed: usize,
    pub files_skipped: usize,
    pub functions: usize,
    pub complete: usize,
    pub partial: usize,
    pub parse_errors: usize,
    pub raw_parse_errors: usize,
    pub times: PhaseTimes,
    pub wall: Duration,
    /// Functions that asked for caller context, files scanned for their
    /// callers (all levels), and files checked again with what was found.
    pub caller_wants: usize,
    pub caller_files_scanned: usize,
    pub caller_files_rechecked: usize,
    /// Wall time of the caller summary (phase 2 and the rechecks).
    pub callers_wall: Duration,
}

impl RunStats {
    /// Counts one analyzed file (not `files_seen`: callers count inputs).
    pub fn add_file(&mut self, s: &FileStats) {
        if s.prefiltered_out {
            self.prefiltered_out += 1;
        } else {
            self.files_analyzed += 1;
        }
        self.functions += s.functions;
        self.complete += s.complete;
        self.partial += s.partial;
        self.parse_errors += s.parse_errors;
        self.raw_parse_errors += s.raw_parse_errors;
        self.times.add(&s.times);
    }

    /// Adds the per-file counters and times of `other` (not the caller
    /// summary's, which belong to one run).
    pub fn add(&mut self, other: &RunStats) {
        self.files_seen += other.files_seen;
        self.files_analyzed += other.files_analyzed;
        self.prefiltered_out += other.prefiltered_out;
        self.files_skipped += other.files_skipped;
        self.functions += other.functions;
        self.complete += other.complete;
        self.partial += other.partial;
        self.parse_errors += other.parse_errors;
        self.raw_parse_errors += other.raw_parse_errors;
        self.times.add(&other.times);
        self.wall += other.wall;
    }
}

pub struct RunResult {
    /// Sorted by path; diagnostics sorted by offset.
    pub files: Vec<FileFindings>,
    /// "path: reason" for every skipped input, in path order.
    pub problems: Vec<String>,
    pub stats: RunStats,
}

/// The walked inputs, not yet read: [`run`] is [`Inputs::walk`] then
/// [`Inputs::check`]. Tests change files between the two, as a concurrent
/// writer could.
pub struct Inputs(Vec<Input>);

/// What a non-regular file is, for the line that names it.
fn not_regular(file_type: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if file_type.is_fifo() {
        "a named pipe (FIFO), not opened, skipped"
    } else if file_type.is_char_device() || file_type.is_block_device() {
        "a device node, not opened, skipped"
    } else if file_type.is_socket() {
        "a socket, not opened, skipped"
    } else {
        "not a regular file, skipped"
    }
}

fn is_c_source(path: &Path) -> bool {
    matches!(path.extension().and_then(|e| e.to_str()), Some("c" | "h"))
}

/// The display form of a path: as given, but `./x` for the default `.` root is `x`.
fn display(path: &Path, implicit_root: bool) -> String {
    let s = path.to_string_lossy();
    if implicit_root {
        s.strip_prefix("./").unwrap_or(&s).to_owned()
    } else {
        s.into_owned()
    }
}

/// One item of the walk: a C file to check, or a problem to report.
enum Input {
    File { shown: String, path: PathBuf },
    Problem(String),
}

/// Says whether a path (a file or a whole directory) is left out of the walk.
pub type ExcludeFn<'a> = &'a (dyn Fn(&Path) -> bool + Sync);

/// The inputs expanded into C files, in walk order.
fn walk_inputs<'a>(
    paths: &'a [PathBuf],
    implicit_root: bool,
    exclude: ExcludeFn<'a>,
) -> impl Iterator<Item = Input> + Send + 'a {
    paths
        .iter()
        // Named files are excluded too: pre-commit and `make C=1` name them.
        .filter(move |root| !exclude(root))
        .flat_map(move |root| -> Box<dyn Iterator<Item = Input> + Send> {
            let meta = match std::fs::metadata(root) {
                Ok(m) => m,
                Err(e) => {
                    return Box::new(std::iter::once(Input::Problem(format!(
                        "{}: {e}, skipped",
                        root.display()
                    ))));
                }
            };
            if !meta.is_dir() {
                let input = if !meta.is_file() {
                    let why = not_regular(meta.file_type());
                    Input::Problem(format!("{}: {why}", root.display()))
                } else if is_c_source(root) {
                    Input::File {
                        shown: display(root, implicit_root),
                        path: root.clone(),
                    }
                } else {
                    Input::Problem(format!(
                        "{}: not a C source (.c or .h), skipped",
                        root.display()
                    ))
                };
                return Box::new(std::iter::once(input));
            }
            Box::new(
                WalkDir::new(root)
                    .follow_links(false)
                    .into_iter()
                    // Pruning here skips an excluded directory without reading it.
                    .filter_entry(move |e| e.depth() == 0 || !exclude(e.path()))
                    .filter_map(move |entry| match entry {
                        Ok(e) if e.file_type().is_file() && is_c_source(e.path()) => {
                            Some(Input::File {
                                shown: display(e.path(), implicit_root),
                                path: e.into_path(),
                            })
                        }
                        // Symlinks are not followed (a target inside the tree
                        // would be reported twice, like ripgrep and git we do
                        // not follow), but a broken one or a loop is named.
                        Ok(e) if e.file_type().is_symlink() && is_c_source(e.path()) => {
                            std::fs::metadata(e.path()).err().map(|err| {
                                Input::Problem(format!(
                                    "{}: unresolvable symlink ({err}), skipped",
                                    e.path().display()
                                ))
                            })
                        }
                        Ok(e) if !e.file_type().is_dir() && is_c_source(e.path()) => {
                            Some(Input::Problem(format!(
                                "{}: {}",
                                e.path().display(),
                                not_regular(e.file_type())
                            )))
                        }
                        Ok(_) => None,
                        Err(e) => Some(Input::Problem(e.to_string())),
                    }),
            )
        })
}

#[expect(
    clippy::large_enum_variant,
    reason = "one per input, built once and moved once into a Vec: boxing would allocate per file"
)]
enum Outcome {
    Analyzed {
        findings: Option<FileFindings>,
        stats: FileStats,
        /// What the file calls, for the caller summary.
        index: CallIndex,
        /// Its functions that want caller context.
        wants: Vec<Want>,
    },
    /// A file that was seen but could not be checked.
    Skipped(String),
    /// A problem with an input path or the walk itself.
    Problem(String),
}

/// Reads a file with one open and one fstat: no separate stat per file.
/// The walk saw a regular file, but it may have been replaced since: the open
/// is non-blocking (a FIFO without writer would block forever) and the fstat
/// decides.
fn read_source(path: &Path) -> std::io::Result<Result<Vec<u8>, String>> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Ok(Err(not_regular(meta.file_type()).to_owned()));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Ok(Err(format!(
            "{} bytes, larger than the {MAX_FILE_BYTES}-byte limit, skipped",
            meta.len()
        )));
    }
    let mut source = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0) + 1);
    // A file that grows while we read it is cut at the limit, not read forever.
    file.take(MAX_FILE_BYTES).read_to_end(&mut source)?;
    Ok(Ok(source))
}

fn check_one(analyzer: &Analyzer, shown: String, path: &Path) -> Outcome {
    let source = match read_source(path) {
        Ok(Ok(s)) => s,
        Ok(Err(why)) => return Outcome::Skipped(format!("{shown}: {why}")),
        Err(e) => return Outcome::Skipped(format!("{shown}: cannot read: {e}")),
    };
    if memchr::memchr(0, &source).is_some() {
        return Outcome::Skipped(format!(
            "{shown}: binary file (contains NUL bytes), skipped"
        ));
    }
    // Callers are resolved over the whole run afterwards (`caller_pass`),
    // so the file is checked without caller evidence here.
    let report = analyzer.check_source_with(&source, &FileEvidence::new());
    if let Some(limit) = report.limit {
        return Outcome::Skipped(format!("{shown}: {limit}, skipped"));
    }
    // Built while the bytes are in memory: the caller summary then reads
    // only the files that may call a wanted name, not the tree again.
    // Headers are not indexed: they define callers only as static inline
    // wrappers, and they are half of the tree's bytes.
    let index = if path.extension().is_some_and(|e| e == "c") {
        CallIndex::new(&source)
    } else {
        CallIndex::default()
    };
    let findings = (!report.diagnostics.is_empty()).then_some(FileFindings {
        path: shown,
        source,
        diagnostics: report.diagnostics,
    });
    Outcome::Analyzed {
        findings,
        stats: report.stats,
        index,
        wants: report.wants,
    }
}

/// The run's files as the caller summary sees them: the index of each
/// checked file, read again only when the summary asks.
struct RunCorpus<'a> {
    inputs: &'a [Input],
    indexes: Vec<Option<CallIndex>>,
    scanner: callgraph::scan::Scanner<'a>,
    pool: &'a rayon::ThreadPool,
    scanned: usize,
}

impl Corpus for RunCorpus<'_> {
    fn files_calling(&self, names: &[String]) -> Vec<Vec<FileId>> {
        let wanted = callgraph::NameSet::new(names);
        let hits: Vec<(usize, FileId)> = self.pool.install(|| {
            self.indexes
                .par_iter()
                .enumerate()
                .flat_map_iter(|(file, index)| {
                    index
                        .iter()
                        .flat_map(|i| wanted.called_in(i))
                        .map(move |name| (name, file))
                        .collect::<Vec<_>>()
                })
                .collect()
        });
        let mut out = vec![Vec::new(); names.len()];
        for (name, file) in hits {
            out[name].push(file);
        }
        out
    }

    fn scan(&mut self, request: ScanRequest) -> Vec<(FileId, FileCalls)> {
        self.scanned += request.len();
        let (inputs, scanner) = (self.inputs, &self.scanner);
        self.pool.install(|| {
            request
                .into_par_iter()
                .filter_map(|(file, names)| {
                    let Input::File { path, .. } = &inputs[file] else {
                        return None;
                    };
                    // A file that changed into something unreadable since the
                    // first pass gives no callers; the first pass named it.
                    let source = read_source(path).ok()?.ok()?;
                    Some((file, scanner.scan(&source, &names)))
                })
                .collect()
        })
    }

    fn path(&self, file: FileId) -> Option<String> {
        match &self.inputs[file] {
            Input::File { shown, .. } => Some(shown.clone()),
            Input::Problem(_) => None,
        }
    }
}

/// Phase 2 of the caller summary over the whole run, then the files of the
/// functions that got caller evidence are checked again with it.
fn caller_pass(
    analyzer: &Analyzer,
    inputs: &[Input],
    outcomes: &mut [Outcome],
    pool: &rayon::ThreadPool,
    stats: &mut RunStats,
) {
    let start = Instant::now();
    let mut wants: Vec<(FileId, Want)> = Vec::new();
    let mut indexes = Vec::with_capacity(outcomes.len());
    for (file, outcome) in outcomes.iter_mut().enumerate() {
        match outcome {
            Outcome::Analyzed {
                index, wants: w, ..
            } => {
                wants.extend(std::mem::take(w).into_iter().map(|w| (file, w)));
                indexes.push(Some(std::mem::take(index)));
            }
            _ => indexes.push(None),
        }
    }
    stats.caller_wants = wants.len();
    if wants.is_empty() {
        return;
    }
    let mut corpus = RunCorpus {
        inputs,
        indexes,
        scanner: analyzer.caller_scanner(),
        pool,
        scanned: 0,
    };
    let evidence = callgraph::summarize(&wants, &mut corpus);
    stats.caller_files_scanned = corpus.scanned;
    drop(corpus);
    let mut evidence: Vec<(FileId, FileEvidence)> = evidence.into_iter().collect();
    evidence.sort_by_key(|(file, _)| *file);
    stats.caller_files_rechecked = evidence.len();
    let rechecked: Vec<(FileId, Option<FileFindings>)> = pool.install(|| {
        evidence
            .into_par_iter()
            .filter_map(|(file, evidence)| {
                let Input::File { shown, path } = &inputs[file] else {
                    return None;
                };
                let source = read_source(path).ok()?.ok()?;
                let report = analyzer.check_source_with(&source, &evidence);
                if report.limit.is_some() {
                    return None;
                }
                let findings = (!report.diagnostics.is_empty()).then(|| FileFindings {
                    path: shown.clone(),
                    source,
                    diagnostics: report.diagnostics,
                });
                Some((file, findings))
            })
            .collect()
    });
    for (file, new) in rechecked {
        if let Outcome::Analyzed { findings, .. } = &mut outcomes[file] {
            *findings = new;
        }
    }
    stats.callers_wall = start.elapsed();
}

/// Checks every C file under `paths` with `jobs` threads (0: one per core).
pub fn run(
    analyzer: &Analyzer,
    paths: &[PathBuf],
    implicit_root: bool,
    jobs: usize,
) -> anyhow::Result<RunResult> {
    run_excluding(analyzer, paths, implicit_root, jobs, &|_| false)
}

/// [`run`], leaving out the paths `exclude` accepts (`.kmapcheck.toml` globs).
pub fn run_excluding(
    analyzer: &Analyzer,
    paths: &[PathBuf],
    implicit_root: bool,
    jobs: usize,
    exclude: ExcludeFn<'_>,
) -> anyhow::Result<RunResult> {
    let start = Instant::now();
    let mut result = Inputs::walk_excluding(paths, implicit_root, exclude).check(analyzer, jobs)?;
    result.stats.wall = start.elapsed();
    Ok(result)
}

impl Inputs {
    /// Expands `paths` into C files, without opening any.
    pub fn walk(paths: &[PathBuf], implicit_root: bool) -> Self {
        Self::walk_excluding(paths, implicit_root, &|_| false)
    }

    /// [`Inputs::walk`], leaving out the paths `exclude` accepts.
    pub fn walk_excluding(paths: &[PathBuf], implicit_root: bool, exclude: ExcludeFn<'_>) -> Self {
        // Walk first, then check in parallel: measured on linux 6.12, streaming
        // the walk into the pool (par_bridge, with or without a walker thread)
        // was 1.4x slower than this, as par_bridge balances work poorly.
        Self(walk_inputs(paths, implicit_root, exclude).collect())
    }

    /// Reads and checks the walked files with `jobs` threads (0: one per core).
    pub fn check(self, analyzer: &Analyzer, jobs: usize) -> anyhow::Result<RunResult> {
        let start = Instant::now();
        let pool = rayon::ThreadPoolBuilder::new().num_threads(jobs).build()?;
        let inputs = self.0;
        let mut outcomes: Vec<Outcome> = pool.install(|| {
            inputs
                .par_iter()
                .map(|input| match input {
                    Input::File { shown, path } => check_one(analyzer, shown.clone(), path),
                    Input::Problem(p) => Outcome::Problem(p.clone()),
                })
                .collect()
        });
        let mut caller_stats = RunStats::default();
        caller_pass(analyzer, &inputs, &mut outcomes, &pool, &mut caller_stats);
        let mut result = collect(outcomes);
        result.stats.caller_wants = caller_stats.caller_wants;
        result.stats.caller_files_scanned = caller_stats.caller_files_scanned;
        result.stats.caller_files_rechecked = caller_stats.caller_files_rechecked;
        result.stats.callers_wall = caller_stats.callers_wall;
        result.stats.wall = start.elapsed();
        Ok(result)
    }
}

/// Totals and sorted output of the per-file outcomes.
fn collect(outcomes: Vec<Outcome>) -> RunResult {
    let mut stats = RunStats::default();
    let mut problems = Vec::new();
    let mut files = Vec::new();
    for outcome in outcomes {
        match outcome {
            Outcome::Problem(p) => problems.push(p),
            Outcome::Skipped(why) => {
                stats.files_seen += 1;
                stats.files_skipped += 1;
                problems.push(why);
            }
            Outcome::Analyzed {
                findings, stats: s, ..
            } => {
                stats.files_seen += 1;
                stats.add_file(&s);
                files.extend(findings);
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    problems.sort();
    RunResult {
        files,
        problems,
        stats,
    }
}
