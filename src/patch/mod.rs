//! Patch mode: a diff, mbox or commit -> pre- and post-image of each changed
//! C file -> the per-file pipeline on both -> the findings the patch
//! introduced, on the post-image.
//!
//! Data flows one way: `diff` parses, `apply` builds images, this module
//! runs the [`Analyzer`] twice per file and compares, `git` reads commits
//! and the index. Nothing here prints; `main.rs` and `report/` do.

pub mod apply;
pub mod diff;
pub mod git;
pub mod hook;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::diag::Diagnostic;
use crate::driver::{FileFindings, RunStats};
use crate::report::checkpatch;
use crate::{Analyzer, fingerprint, parse, preprocess};
use apply::Images;
pub use diff::PatchError;

/// Where pre-images come from.
pub trait Tree {
    /// The file at `path` (already checked to be relative and `..`-free);
    /// `Ok(None)` when it does not exist.
    fn read(&self, path: &str) -> Result<Option<Vec<u8>>, String>;
}

/// A directory holding the tree the patch applies to (`--tree`).
pub struct DirTree {
    root: PathBuf,
    canonical: PathBuf,
}

impl DirTree {
    pub fn new(root: &Path) -> Result<Self, String> {
        let canonical = root
            .canonicalize()
            .map_err(|e| format!("{}: {e}", root.display()))?;
        Ok(Self {
            root: root.to_owned(),
            canonical,
        })
    }

    /// Do all the files the patch modifies exist here? (The default tree is
    /// the current directory only then, as checkpatch assumes it runs from
    /// the kernel tree the patch applies to.)
    pub fn holds(&self, patches: &[diff::Patch]) -> bool {
        let mut old = patches
            .iter()
            .flat_map(|p| &p.files)
            .filter_map(|f| f.old_path.as_deref())
            .peekable();
        old.peek().is_some() && old.all(|p| self.root.join(p).is_file())
    }
}

impl Tree for DirTree {
    fn read(&self, path: &str) -> Result<Option<Vec<u8>>, String> {
        let full = self.root.join(path);
        let Ok(meta) = std::fs::metadata(&full) else {
            return Ok(None);
        };
        // Only regular files (a FIFO would block), and no symlink out of the tree.
        if !meta.is_file() {
            return Err(format!("{}: not a regular file", full.display()));
        }
        let real = full
            .canonicalize()
            .map_err(|e| format!("{}: {e}", full.display()))?;
        if !real.starts_with(&self.canonical) {
            return Err(format!(
                "{}: a symlink out of the tree, refused",
                full.display()
            ));
        }
        std::fs::read(&full)
            .map(Some)
            .map_err(|e| format!("{}: {e}", full.display()))
    }
}

/// What patch mode may report.
#[derive(Clone, Copy, Debug, Default)]
pub struct Options {
    /// Also report findings already present in the pre-image (`--all`).
    pub all: bool,
}

/// One changed C file and its findings on the post-image.
pub struct CheckedFile {
    pub findings: FileFindings,
    pub images: Images,
    /// Only the hunks were analyzed.
    pub limited: bool,
}

/// One checked unit: a patch file, stdin, or a commit.
pub struct Checked {
    /// checkpatch's name for it: the file name, `Commit abc ("subject")`.
    pub name: String,
    pub input: Vec<u8>,
    pub files: Vec<CheckedFile>,
    /// Hunk lines, as checkpatch's "lines checked".
    pub lines_checked: usize,
    /// Things the user should know (limited context, skipped files), without
    /// the `kmapcheck: ` prefix.
    pub notes: Vec<String>,
    pub stats: RunStats,
}

/// Note attached to every finding of a file analyzed from its hunks alone.
pub const LIMITED_NOTE: &str = "context was limited to the patch's hunks (no tree to apply it to): evidence outside them is not seen";
/// Note attached, with `--all`, to a finding the pre-image already had.
pub const PRE_EXISTING_NOTE: &str =
    "pre-existing: the same finding is in the pre-image, so this patch did not introduce it";

/// Rules about what holds when a function returns (a mapping leaked, a
/// disable left unbalanced): from hunks alone, the release is often in the
/// lines the patch did not show, so their findings would be noise.
const NEEDS_WHOLE_FUNCTION: [&str; 2] = ["KM007", "KM009"];

fn is_c_source(path: &str) -> bool {
    path.ends_with(".c") || path.ends_with(".h")
}

/// Checks one unit. `tree: None` analyzes the hunks alone.
pub fn check(
    analyzer: &Analyzer,
    name: String,
    input: Vec<u8>,
    tree: Option<&dyn Tree>,
    options: Options,
) -> Result<Checked, PatchError> {
    let started = std::time::Instant::now();
    let patches = diff::parse(&input)?;
    let mut checked = Checked {
        name,
        lines_checked: diff::hunk_lines(&patches),
        input: Vec::new(),
        files: Vec::new(),
        notes: Vec::new(),
        stats: RunStats::default(),
    };
    // Post-images of earlier mails of the same mbox: a series changes one
    // file several times, each mail on top of the one before.
    let mut overlay: HashMap<String, Option<Vec<u8>>> = HashMap::new();
    for patch in &patches {
        for file in &patch.files {
            let Some(new_path) = file.new_path.as_deref() else {
                continue; // deleted: nothing left to check
            };
            if !is_c_source(new_path) {
                continue;
            }
            checked.stats.files_seen += 1;
            let pre = match file.old_path.as_deref() {
                None => Ok(Some(Vec::new())),
                Some(old) => match overlay.get(old) {
                    Some(image) => Ok(image.clone()),
                    None => tree.map_or(Ok(None), |t| t.read(old)),
                },
            }
            .map_err(|message| PatchError {
                line: file.header_line,
                message,
            })?;
            let (images, limited) = match pre {
                Some(pre) => match apply::apply(&pre, file) {
                    Ok(images) => (images, false),
                    Err(why) => {
                        checked
                            .notes
                            .push(format!("{new_path}: {why}; analysing its hunks alone"));
                        (apply::from_hunks(file), true)
                    }
                },
                None => {
                    if tree.is_some() {
                        checked.notes.push(format!(
                            "{new_path}: not in the tree; analysing its hunks alone"
                        ));
                    }
                    (apply::from_hunks(file), true)
                }
            };
            if let Some(old) = file.old_path.as_deref()
                && old != new_path
            {
                overlay.insert(old.to_owned(), None);
            }
            if !limited {
                overlay.insert(new_path.to_owned(), Some(images.post.clone()));
            }
            let diagnostics = analyze(analyzer, new_path, &images, limited, options, &mut checked);
            checked.files.push(CheckedFile {
                findings: FileFindings {
                    path: new_path.to_owned(),
                    source: images.post.clone(),
                    diagnostics,
                },
                images,
                limited,
            });
        }
    }
    if tree.is_none() && !checked.files.is_empty() {
        checked.notes.push(
            "no tree to apply the patch to (--tree): only the hunks were analysed, so context was limited".to_owned(),
        );
    }
    checked.input = input;
    checked.stats.wall = started.elapsed();
    Ok(checked)
}

/// The findings a change from `pre` to `post` introduces in the file `path`,
/// every function counted as changed (tests check fixed post-images with it).
pub fn check_images(analyzer: &Analyzer, path: &str, pre: &[u8], post: &[u8]) -> Vec<Diagnostic> {
    let lines = memchr::memchr_iter(b'\n', post).count() + 1;
    let images = Images {
        pre: pre.to_vec(),
        post: post.to_vec(),
        changed: (0..lines).collect(),
        ..Images::default()
    };
    let mut scratch = Checked {
        name: String::new(),
        input: Vec::new(),
        files: Vec::new(),
        lines_checked: 0,
        notes: Vec::new(),
        stats: RunStats::default(),
    };
    analyze(
        analyzer,
        path,
        &images,
        false,
        Options::default(),
        &mut scratch,
    )
}

/// The post-image findings of one file that the patch introduced, in the
/// functions it changed.
fn analyze(
    analyzer: &Analyzer,
    path: &str,
    images: &Images,
    limited: bool,
    options: Options,
    checked: &mut Checked,
) -> Vec<Diagnostic> {
    // Only the changed functions (and their pre-image namesakes) are
    // analysed: the others' bodies are blanked, same length, so the
    // prefilter skips them and every offset stays true.
    let changed = changed_functions(analyzer, images);
    let renamed = renamed_function(analyzer, images, &changed);
    let names: std::collections::HashSet<&str> = changed
        .iter()
        .map(|f| f.name.as_str())
        .chain(renamed.as_ref().map(|(old, _)| old.as_str()))
        .collect();
    let starts: std::collections::HashSet<usize> = changed.iter().map(|f| f.body_start).collect();
    let pre = masked(analyzer, &images.pre, |f| names.contains(f.name.as_str()));
    let post = masked(analyzer, &images.post, |f| starts.contains(&f.body_start));
    let (pre_report, mut summaries) = analyzer.check_pre_image(&pre);
    if let Some((old, new)) = &renamed {
        summaries.alias(old, new);
    }
    let post_report = analyzer.check_patched_source(&post, &summaries);
    for report in [&pre_report, &post_report] {
        if let Some(limit) = &report.limit {
            checked
                .notes
                .push(format!("{path}: {limit}; findings may be incomplete"));
        }
    }
    checked.stats.add_file(&post_report.stats);

    // Fingerprints leave line numbers out: moving a finding is not introducing it.
    let mut before: HashMap<String, usize> = HashMap::new();
    for d in &pre_report.diagnostics {
        *before
            .entry(fingerprint::of(d, path, &images.pre))
            .or_default() += 1;
    }
    let mut out = Vec::new();
    for mut d in post_report.diagnostics {
        if !changed
            .iter()
            .any(|f| (f.header_start..f.body_end).contains(&d.primary.span.start))
        {
            continue;
        }
        if limited && NEEDS_WHOLE_FUNCTION.contains(&d.code) {
            continue;
        }
        let known = before
            .get_mut(&fingerprint::of(&d, path, &images.post))
            .filter(|n| **n > 0);
        if let Some(n) = known {
            *n -= 1;
            if !options.all {
                continue;
            }
            d.notes.push(PRE_EXISTING_NOTE.to_owned());
        }
        if limited {
            d.notes.push(LIMITED_NOTE.to_owned());
        }
        out.push(d);
    }
    out
}

/// The functions a source defines (found as the pipeline finds them).
fn functions(analyzer: &Analyzer, src: &[u8]) -> Vec<parse::FunctionSpan> {
    let (pre, _) = preprocess::lexical_arms(src, preprocess::Arms::First, &[]);
    parse::find_functions(&pre, analyzer.catalogue())
}

/// A function the patch renamed while converting it (6.12's
/// `copy_folio_from_user()` was 6.1's `copy_huge_page_from_user()`): when
/// exactly one function of the file vanished and exactly one changed
/// function is new, they are one function, and the new one keeps the old
/// one's pre-image. Anything less clear-cut pairs nothing.
fn renamed_function(
    analyzer: &Analyzer,
    images: &Images,
    changed: &[parse::FunctionSpan],
) -> Option<(String, String)> {
    let pre: std::collections::HashSet<String> = functions(analyzer, &images.pre)
        .into_iter()
        .map(|f| f.name)
        .collect();
    let post: std::collections::HashSet<String> = functions(analyzer, &images.post)
        .into_iter()
        .map(|f| f.name)
        .collect();
    let mut vanished = pre.difference(&post);
    let mut new = changed.iter().filter(|f| !pre.contains(&f.name));
    match (vanished.next(), vanished.next(), new.next(), new.next()) {
        (Some(old), None, Some(f), None) => Some((old.clone(), f.name.clone())),
        _ => None,
    }
}

/// The post-image functions that hold a changed line.
fn changed_functions(analyzer: &Analyzer, images: &Images) -> Vec<parse::FunctionSpan> {
    let mut starts = vec![0usize];
    starts.extend(memchr::memchr_iter(b'\n', &images.post).map(|i| i + 1));
    let mut offsets: Vec<usize> = images
        .changed
        .iter()
        .filter_map(|&l| starts.get(l).copied())
        .collect();
    offsets.sort_unstable();
    // Sorted offsets: one binary search per function, not a scan.
    functions(analyzer, &images.post)
        .into_iter()
        .filter(|f| {
            let first = offsets.partition_point(|&o| o < f.header_start);
            offsets.get(first).is_some_and(|&o| o < f.body_end)
        })
        .collect()
}

/// `src` with the body of every function `keep` refuses blanked to `{ }`
/// and spaces (newlines kept): same length, same lines.
fn masked(analyzer: &Analyzer, src: &[u8], keep: impl Fn(&parse::FunctionSpan) -> bool) -> Vec<u8> {
    let mut out = src.to_vec();
    for f in functions(analyzer, src).iter().filter(|f| !keep(f)) {
        let inner = (f.body_start + 1)..f.body_end.saturating_sub(1).max(f.body_start + 1);
        for b in out.get_mut(inner).into_iter().flatten() {
            if *b != b'\n' {
                *b = b' ';
            }
        }
    }
    out
}

/// The findings of `checked` in the shape the checkpatch reporter prints:
/// each with its patch line and the line of the patch (or the file) shown.
pub fn checkpatch_unit(checked: &Checked) -> checkpatch::Unit<'_> {
    let input_lines: Vec<&[u8]> = checked.input.split(|&b| b == b'\n').collect();
    let mut findings = Vec::new();
    for file in &checked.files {
        let index = crate::diag::LineIndex::new(&file.findings.source);
        let post_lines: Vec<&[u8]> = file.findings.source.split(|&b| b == b'\n').collect();
        for diag in &file.findings.diagnostics {
            let line = index.position(diag.primary.span.start).0;
            let (patch_line, in_hunk) = file.images.patch_line(line);
            let raw = if in_hunk {
                input_lines.get(patch_line.saturating_sub(1)).copied()
            } else {
                None
            };
            let quoted = match raw {
                Some(r) => String::from_utf8_lossy(r.strip_suffix(b"\r").unwrap_or(r)).into_owned(),
                // Outside the hunks (a whole-function finding): the file's
                // line, marked as context.
                None => format!(
                    " {}",
                    String::from_utf8_lossy(post_lines.get(line - 1).copied().unwrap_or_default())
                ),
            };
            findings.push(checkpatch::Finding {
                diag,
                path: &file.findings.path,
                line,
                patch_line,
                quoted,
            });
        }
    }
    findings.sort_by_key(|f| (f.patch_line, f.line, f.diag.primary.span.start));
    checkpatch::Unit {
        name: checked.name.clone(),
        findings,
        lines_checked: checked.lines_checked,
    }
}

/// checkpatch's name for a patch read from stdin: `"Subject"` when the
/// input is a mail, else `Your patch`.
pub fn stdin_name(input: &[u8]) -> String {
    let subject = input
        .split(|&b| b == b'\n')
        .rev()
        .find_map(|l| l.strip_prefix(b"Subject:"));
    match subject {
        Some(s) => format!("\"{}\"", String::from_utf8_lossy(s).trim()),
        None => "Your patch".to_owned(),
    }
}
