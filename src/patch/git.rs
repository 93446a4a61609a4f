//! Patches and pre-images read through git: commits (`--git REV`, `--git
//! A..B`), the index (`--staged`) and the working tree (`--diff`). git is
//! only read; nothing in the working tree or the index changes.
//!
//! Every command pins the options a user's config could change (diff
//! prefixes, colour, external diff drivers), and diffs are limited to C
//! files: a binary file in the same commit is not kmapcheck's business.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::Tree;

/// The pathspec of the files patch mode checks.
const C_FILES: [&str; 3] = ["--", "*.c", "*.h"];
/// The id of git's empty tree (`git hash-object -t tree /dev/null`).
const EMPTY_TREE: &str = "4b825dc642cb6eb9a060e54bf8d69288fbee4904";
/// Diff options that must not depend on the user's git config.
const DIFF_OPTIONS: [&str; 5] = [
    "--no-color",
    "--no-ext-diff",
    "-M",
    "--src-prefix=a/",
    "--dst-prefix=b/",
];

/// Runs git in `dir`; stdout, or the error git printed.
fn git(dir: &Path, args: &[&str]) -> Result<Vec<u8>, String> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        .output()
        .map_err(|e| format!("cannot run git: {e}"))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(format!(
            "git {}: {}",
            args.first().copied().unwrap_or_default(),
            err.lines().next().unwrap_or("failed")
        ));
    }
    Ok(out.stdout)
}

/// The top of the work tree holding `dir`: git prints paths relative to it.
pub fn toplevel(dir: &Path) -> Result<PathBuf, String> {
    let out = git(dir, &["rev-parse", "--show-toplevel"])?;
    Ok(PathBuf::from(String::from_utf8_lossy(&out).trim()))
}

/// A commit to check: full id and subject.
#[derive(Debug, Clone)]
pub struct Commit {
    pub id: String,
    pub subject: String,
}

impl Commit {
    /// checkpatch's name: `Commit 0123456789ab ("subject")`.
    pub fn name(&self) -> String {
        let short = self.id.get(..12).unwrap_or(&self.id);
        format!("Commit {short} (\"{}\")", self.subject)
    }
}

/// The commits of `spec`: one revision, or every non-merge commit of a
/// range (`A..B`, oldest first), as checkpatch.pl --git does.
pub fn commits(dir: &Path, spec: &str) -> Result<Vec<Commit>, String> {
    if spec.starts_with('-') {
        return Err(format!("--git {spec}: not a revision"));
    }
    let format = "--format=%H%x09%s";
    let out = if spec.contains("..") {
        git(
            dir,
            &[
                "log",
                "--reverse",
                "--no-merges",
                "--no-color",
                format,
                spec,
                "--",
            ],
        )?
    } else {
        git(dir, &["log", "-1", "--no-color", format, spec, "--"])?
    };
    let commits: Vec<Commit> = String::from_utf8_lossy(&out)
        .lines()
        .filter_map(|l| l.split_once('\t'))
        .map(|(id, subject)| Commit {
            id: id.to_owned(),
            subject: subject.to_owned(),
        })
        .collect();
    if commits.is_empty() {
        return Err(format!("--git {spec}: no commits"));
    }
    Ok(commits)
}

/// The commit as a mail, as `git format-patch` writes it, with the diff of
/// its C files only. (`git show`, not format-patch: with a pathspec,
/// `format-patch -1` would pick the last commit touching C files instead;
/// `git show` prints nothing for a commit that touches none.)
pub fn commit_patch(dir: &Path, commit: &Commit) -> Result<Vec<u8>, String> {
    let mut args = vec!["show", "--format=email", "--stat", "--patch"];
    args.extend(DIFF_OPTIONS);
    args.push(&commit.id);
    args.extend(C_FILES);
    git(dir, &args)
}

/// The index against HEAD (`--staged`), or the working tree against HEAD
/// (`--diff`).
pub fn worktree_patch(dir: &Path, staged: bool) -> Result<Vec<u8>, String> {
    let mut args = vec!["diff"];
    if staged {
        args.push("--cached");
    }
    args.extend(DIFF_OPTIONS);
    // Before the first commit there is no HEAD: a pre-commit hook must still
    // work, against git's empty tree (every file is new).
    let head = git(dir, &["rev-parse", "--verify", "-q", "HEAD"]).is_ok();
    args.push(if head { "HEAD" } else { EMPTY_TREE });
    args.extend(C_FILES);
    git(dir, &args)
}

/// Files of one revision, read with `git cat-file`: the pre-images.
pub struct RevTree {
    pub dir: PathBuf,
    pub rev: String,
}

impl Tree for RevTree {
    fn read(&self, path: &str) -> Result<Option<Vec<u8>>, String> {
        let object = format!("{}:{path}", self.rev);
        // `-e` tells "absent" (a file the patch creates, a root commit)
        // apart from a failure to read.
        let exists = Command::new("git")
            .arg("-C")
            .arg(&self.dir)
            .args(["cat-file", "-e", &object])
            .output()
            .map_err(|e| format!("cannot run git: {e}"))?;
        if !exists.status.success() {
            return Ok(None);
        }
        git(&self.dir, &["cat-file", "blob", &object]).map(Some)
    }
}
