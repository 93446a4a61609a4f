//! Walk the inputs, run the per-file pipeline in parallel, collect results in
//! a deterministic order. The only module that touches rayon; a file that
//! cannot be read is reported and skipped, never fatal.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rayon::prelude::*;
use walkdir::WalkDir;

use crate::diag::Diagnostic;
use crate::{Analyzer, FileStats, PhaseTimes};

/// Larger inputs are skipped: no kernel source comes close, and memory stays bounded.
pub const MAX_FILE_BYTES: u64 = 256 * 1024 * 1024;

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
    pub walk: Duration,
    pub wall: Duration,
}

pub struct RunResult {
    /// Sorted by path; diagnostics sorted by offset.
    pub files: Vec<FileFindings>,
    /// "path: reason" for every skipped input, in path order.
    pub problems: Vec<String>,
    pub stats: RunStats,
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

/// Expands the inputs into C files; problems found while walking are returned too.
fn collect_inputs(paths: &[PathBuf], implicit_root: bool) -> (Vec<(String, PathBuf)>, Vec<String>) {
    let mut files = Vec::new();
    let mut problems = Vec::new();
    for root in paths {
        let meta = match std::fs::metadata(root) {
            Ok(m) => m,
            Err(e) => {
                problems.push(format!("{}: {e}", root.display()));
                continue;
            }
        };
        if !meta.is_dir() {
            if !meta.is_file() {
                problems.push(format!("{}: not a regular file, skipped", root.display()));
            } else if is_c_source(root) {
                files.push((display(root, implicit_root), root.clone()));
            } else {
                problems.push(format!(
                    "{}: not a C source (.c or .h), skipped",
                    root.display()
                ));
            }
            continue;
        }
        for entry in WalkDir::new(root).follow_links(false) {
            match entry {
                Ok(e) if e.file_type().is_file() && is_c_source(e.path()) => {
                    files.push((display(e.path(), implicit_root), e.into_path()));
                }
                Ok(e)
                    if !e.file_type().is_dir()
                        && !e.file_type().is_symlink()
                        && is_c_source(e.path()) =>
                {
                    problems.push(format!(
                        "{}: not a regular file, skipped",
                        e.path().display()
                    ));
                }
                Ok(_) => {}
                Err(e) => problems.push(e.to_string()),
            }
        }
    }
    (files, problems)
}

enum Outcome {
    Analyzed {
        findings: Option<FileFindings>,
        stats: FileStats,
    },
    Skipped(String),
}

fn check_one(analyzer: &Analyzer, shown: String, path: &Path) -> Outcome {
    let source = match std::fs::metadata(path) {
        Ok(m) if m.len() > MAX_FILE_BYTES => {
            return Outcome::Skipped(format!(
                "{shown}: {} bytes, larger than the {MAX_FILE_BYTES}-byte limit, skipped",
                m.len()
            ));
        }
        Ok(m) if !m.is_file() => {
            return Outcome::Skipped(format!("{shown}: not a regular file, skipped"));
        }
        Ok(_) => std::fs::read(path),
        Err(e) => Err(e),
    };
    let source = match source {
        Ok(s) => s,
        Err(e) => return Outcome::Skipped(format!("{shown}: cannot read: {e}")),
    };
    if memchr::memchr(0, &source).is_some() {
        return Outcome::Skipped(format!(
            "{shown}: binary file (contains NUL bytes), skipped"
        ));
    }
    let report = analyzer.check_source(&source);
    let findings = (!report.diagnostics.is_empty()).then_some(FileFindings {
        path: shown,
        source,
        diagnostics: report.diagnostics,
    });
    Outcome::Analyzed {
        findings,
        stats: report.stats,
    }
}

/// Checks every C file under `paths` with `jobs` threads (0: one per core).
pub fn run(
    analyzer: &Analyzer,
    paths: &[PathBuf],
    implicit_root: bool,
    jobs: usize,
) -> anyhow::Result<RunResult> {
    let start = Instant::now();
    let (inputs, mut problems) = collect_inputs(paths, implicit_root);
    let walk = start.elapsed();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(jobs).build()?;
    let outcomes: Vec<Outcome> = pool.install(|| {
        inputs
            .par_iter()
            .map(|(shown, path)| check_one(analyzer, shown.clone(), path))
            .collect()
    });
    let mut stats = RunStats {
        files_seen: inputs.len(),
        walk,
        ..RunStats::default()
    };
    let mut files = Vec::new();
    for outcome in outcomes {
        match outcome {
            Outcome::Skipped(why) => {
                stats.files_skipped += 1;
                problems.push(why);
            }
            Outcome::Analyzed { findings, stats: s } => {
                if s.prefiltered_out {
                    stats.prefiltered_out += 1;
                } else {
                    stats.files_analyzed += 1;
                }
                stats.functions += s.functions;
                stats.complete += s.complete;
                stats.partial += s.partial;
                stats.parse_errors += s.parse_errors;
                stats.raw_parse_errors += s.raw_parse_errors;
                stats.times.add(&s.times);
                files.extend(findings);
            }
        }
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    problems.sort();
    stats.wall = start.elapsed();
    Ok(RunResult {
        files,
        problems,
        stats,
    })
}
