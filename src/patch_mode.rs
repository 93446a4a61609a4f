//! The command side of patch mode (`--patch`, `--git`, `--staged`,
//! `--diff`) and `kmapcheck install-hook`: read the inputs, run
//! `kmapcheck::patch`, filter like tree mode, print, exit 0/1/2.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};

use kmapcheck::cli::{Args, Format};
use kmapcheck::driver::{FileFindings, RunResult, RunStats};
use kmapcheck::patch::{self, Checked, DirTree, Tree, git};
use kmapcheck::{Analyzer, report, rules, select, suppress};

/// Does this command line ask for patch mode?
pub fn requested(args: &Args) -> bool {
    !args.patch.is_empty() || args.git.is_some() || args.staged || args.diff
}

/// `kmapcheck install-hook [--force]`.
pub fn install_hook(rest: &[std::ffi::OsString]) -> u8 {
    let force = rest.iter().any(|a| a == "--force" || a == "-f");
    if let Some(bad) = rest.iter().find(|a| *a != "--force" && *a != "-f") {
        eprintln!(
            "kmapcheck: error: install-hook: unknown argument `{}` (only --force)",
            bad.to_string_lossy()
        );
        return 2;
    }
    match patch::hook::install(Path::new("."), force) {
        Ok(hook) => {
            eprintln!("kmapcheck: installed {}", hook.display());
            0
        }
        Err(e) => {
            eprintln!("kmapcheck: error: install-hook: {e}");
            2
        }
    }
}

fn read_patch(path: &Path) -> Result<(String, Vec<u8>)> {
    if path == Path::new("-") {
        let mut input = Vec::new();
        std::io::stdin()
            .read_to_end(&mut input)
            .context("-: cannot read stdin")?;
        return Ok((patch::stdin_name(&input), input));
    }
    let shown = path.display().to_string();
    // Reading a FIFO would block forever: only regular files.
    let meta = std::fs::metadata(path).with_context(|| format!("{shown}: cannot read"))?;
    anyhow::ensure!(meta.is_file(), "{shown}: not a regular file");
    anyhow::ensure!(
        meta.len() <= kmapcheck::driver::MAX_FILE_BYTES,
        "{shown}: over the {} MiB input limit",
        kmapcheck::driver::MAX_FILE_BYTES >> 20
    );
    let input = std::fs::read(path).with_context(|| format!("{shown}: cannot read"))?;
    Ok((shown, input))
}

/// A unit with nothing to check (a commit that touches no C file).
fn empty(name: String) -> Checked {
    Checked {
        name,
        input: Vec::new(),
        files: Vec::new(),
        lines_checked: 0,
        notes: Vec::new(),
        stats: RunStats::default(),
    }
}

fn has_diff(input: &[u8]) -> bool {
    input.starts_with(b"diff --git ") || memchr::memmem::find(input, b"\ndiff --git ").is_some()
}

/// Every unit the command line names, checked.
fn check_units(args: &Args, analyzer: &Analyzer) -> Result<Vec<Checked>> {
    let options = patch::Options { all: args.all };
    let mut units = Vec::new();
    for path in &args.patch {
        let (name, input) = read_patch(path)?;
        let tree = match &args.tree {
            Some(dir) => Some(DirTree::new(dir).map_err(|e| anyhow!("--tree {e}"))?),
            None => {
                // checkpatch runs from the tree the patch applies to: use the
                // current directory when it holds the files the patch changes.
                let patches = patch::diff::parse(&input).map_err(|e| anyhow!("{name}:{e}"))?;
                DirTree::new(Path::new("."))
                    .ok()
                    .filter(|t| t.holds(&patches))
            }
        };
        let tree = tree.as_ref().map(|t| t as &dyn Tree);
        let checked = patch::check(analyzer, name.clone(), input, tree, options)
            .map_err(|e| anyhow!("{name}:{e}"))?;
        units.push(checked);
    }
    if let Some(spec) = &args.git {
        let top = git::toplevel(Path::new(".")).map_err(|e| anyhow!(e))?;
        for commit in git::commits(&top, spec).map_err(|e| anyhow!(e))? {
            let input = git::commit_patch(&top, &commit).map_err(|e| anyhow!(e))?;
            let name = commit.name();
            if !has_diff(&input) {
                units.push(empty(name));
                continue;
            }
            let tree = git::RevTree {
                dir: top.clone(),
                rev: format!("{}^", commit.id),
            };
            let checked = patch::check(analyzer, name.clone(), input, Some(&tree), options)
                .map_err(|e| anyhow!("{name}:{e}"))?;
            units.push(checked);
        }
    }
    if args.staged || args.diff {
        let top = git::toplevel(Path::new(".")).map_err(|e| anyhow!(e))?;
        let input = git::worktree_patch(&top, args.staged).map_err(|e| anyhow!(e))?;
        let name = if args.staged {
            "Staged changes"
        } else {
            "Working tree changes"
        }
        .to_owned();
        if has_diff(&input) {
            let tree = git::RevTree {
                dir: top,
                rev: "HEAD".to_owned(),
            };
            let checked = patch::check(analyzer, name.clone(), input, Some(&tree), options)
                .map_err(|e| anyhow!("{name}:{e}"))?;
            units.push(checked);
        } else {
            units.push(empty(name));
        }
    }
    Ok(units)
}

/// Runs patch mode; the report goes to `stdout`.
pub fn run(
    args: &Args,
    analyzer: &Analyzer,
    selection: &select::Selection,
    stdout: &mut dyn Write,
) -> Result<u8> {
    if !args.paths.is_empty() {
        bail!("patch mode (--patch, --git, --staged, --diff) takes no paths; use --tree DIR");
    }
    if args.fix_inplace && !args.diff {
        bail!(
            "--fix-inplace in patch mode needs --diff (the working tree is then the post-image); \
             otherwise use --fix and `git apply` the diff after applying the patch"
        );
    }
    if args.baseline.is_some() || args.write_baseline.is_some() {
        bail!(
            "--baseline is for tree mode: patch mode already reports only what a patch introduces"
        );
    }
    let mut units = check_units(args, analyzer)?;
    for unit in &units {
        for note in &unit.notes {
            eprintln!("kmapcheck: note: {}: {note}", unit.name);
        }
    }
    let mut dropped = crate::Dropped::default();
    // The same filters as tree mode: --select/--ignore/--min-severity,
    // severity overrides, and `kmapcheck: allow` comments in the post-image.
    for unit in &mut units {
        for file in &mut unit.files {
            let keep = FileFindings {
                path: file.findings.path.clone(),
                source: file.images.post.clone(),
                diagnostics: Vec::new(),
            };
            let mut one = vec![std::mem::replace(&mut file.findings, keep)];
            dropped.below_min_severity += selection.apply(&mut one);
            let suppression = suppress::apply(&mut one);
            dropped.suppressed += suppression.suppressed;
            for warning in &suppression.warnings {
                eprintln!("{warning}");
            }
            if let Some(findings) = one.pop() {
                file.findings = findings;
            }
        }
    }
    let mut stats = RunStats::default();
    for unit in &units {
        stats.add(&unit.stats);
    }
    let findings = units
        .iter()
        .any(|u| u.files.iter().any(|f| !f.findings.diagnostics.is_empty()));
    if args.fix || args.fix_inplace {
        let root = if args.fix_inplace {
            Some(git::toplevel(Path::new(".")).map_err(|e| anyhow!(e))?)
        } else {
            None
        };
        let files: Vec<FileFindings> = units
            .iter()
            .flat_map(|u| &u.files)
            .filter(|f| !f.findings.diagnostics.is_empty())
            .map(|f| FileFindings {
                path: root.as_ref().map_or_else(
                    || f.findings.path.clone(),
                    |r: &PathBuf| r.join(&f.findings.path).display().to_string(),
                ),
                source: f.findings.source.clone(),
                diagnostics: f.findings.diagnostics.clone(),
            })
            .collect();
        let roots: Vec<PathBuf> = root.iter().cloned().collect();
        crate::write_fixes(&files, args.fix_inplace, &roots, stdout)?;
        if args.fix {
            stdout.flush()?;
            return Ok(u8::from(findings));
        }
    }
    let files: Vec<FileFindings> = units
        .iter()
        .flat_map(|u| &u.files)
        .filter(|f| !f.findings.diagnostics.is_empty())
        .map(|f| FileFindings {
            path: f.findings.path.clone(),
            source: f.findings.source.clone(),
            diagnostics: f.findings.diagnostics.clone(),
        })
        .collect();
    match args.format {
        Format::Checkpatch => {
            let rendered: Vec<_> = units.iter().map(patch::checkpatch_unit).collect();
            stdout.write_all(report::checkpatch::render(&rendered).as_bytes())?;
        }
        Format::Human => {
            let color = crate::use_color(args.color);
            stdout.write_all(&report::human::render(&files, color))?;
        }
        Format::Json => stdout.write_all(report::json::render(&files, &stats).as_bytes())?,
        Format::Gcc => stdout.write_all(report::gcc::render(&files).as_bytes())?,
        Format::Sarif => {
            stdout.write_all(report::sarif::render(&files, rules::RULES).as_bytes())?;
        }
        Format::Github => stdout.write_all(report::github::render(&files).as_bytes())?,
        Format::Gitlab => stdout.write_all(report::gitlab::render(&files).as_bytes())?,
    }
    stdout.flush()?;
    let result = RunResult {
        files,
        problems: Vec::new(),
        stats,
    };
    if !args.no_summary {
        eprintln!("{}", crate::summary(&result));
    }
    if args.stats {
        crate::print_stats(&result, &dropped);
    }
    Ok(u8::from(findings))
}
