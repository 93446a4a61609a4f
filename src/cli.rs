//! The command-line definition. It lives in the library, not in main.rs, so
//! that tests can generate the man page and completions from the same clap
//! definition the binary parses with (tests/docs.rs checks they are current).

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

use crate::diag::Severity;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Diagnostics with source snippets (codespan-reporting).
    Human,
    /// `path:line:col: severity: message [CODE]`, one line per finding.
    Gcc,
    /// One JSON document (docs/json.md, docs/json.schema.json).
    Json,
    /// SARIF 2.1.0, for GitHub code scanning and SARIF viewers.
    Sarif,
    /// GitHub Actions workflow commands: annotations on the pull request.
    Github,
    /// GitLab Code Quality report.
    Gitlab,
    /// scripts/checkpatch.pl's layout (`#N: FILE: path:line:`, totals, verdict).
    Checkpatch,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MinSeverity {
    Note,
    Warning,
    Error,
}

impl From<MinSeverity> for Severity {
    fn from(m: MinSeverity) -> Self {
        match m {
            MinSeverity::Note => Severity::Note,
            MinSeverity::Warning => Severity::Warning,
            MinSeverity::Error => Severity::Error,
        }
    }
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum Color {
    Auto,
    Always,
    Never,
}

/// Find kmap/page-fault bugs in Linux kernel C sources.
#[derive(Debug, Parser)]
#[command(
    name = "kmapcheck",
    version,
    after_help = "\
Examples:
  kmapcheck mm/                               check a directory
  kmapcheck --format gcc mm/shmem.c           one line per finding (vim, Emacs)
  kmapcheck --format sarif . > kmapcheck.sarif
  kmapcheck --explain KM001                   what a rule finds and why
  kmapcheck --select KM001 --min-severity error drivers/
  kmapcheck --write-baseline kmapcheck-baseline.json .
  kmapcheck --baseline kmapcheck-baseline.json .      only new findings
  kmapcheck --fix mm/ | git apply             apply the offered fixes
  make C=2 CHECK=kmapcheck mm/                as kbuild's checker, like sparse
  kmapcheck --patch 0001-x.patch --format checkpatch   a patch, as checkpatch.pl
  kmapcheck --git origin/master..HEAD         each commit of a range
  kmapcheck --staged                          the index against HEAD (pre-commit)
  kmapcheck install-hook                      a git pre-commit hook running --staged

Exit status: 0 no findings (or notes only: notes are advice), 1 errors or
warnings, 2 usage or fatal error."
)]
pub struct Args {
    /// Files or directories to check (.c and .h files); default: the current directory.
    pub paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Colour for the human format (NO_COLOR in the environment means never).
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    pub color: Color,
    /// Run only these rules (codes or type names, comma-separated); replaces the config's list.
    #[arg(long, value_name = "RULES", value_delimiter = ',')]
    pub select: Option<Vec<String>>,
    /// Do not run these rules (codes or type names, comma-separated).
    #[arg(long, value_name = "RULES", value_delimiter = ',')]
    pub ignore: Vec<String>,
    /// Report only findings of this severity or higher (default: all, notes included).
    #[arg(long, value_enum, value_name = "SEVERITY")]
    pub min_severity: Option<MinSeverity>,
    /// Read this config file instead of looking for .kmapcheck.toml upward from the paths.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Record the current findings in FILE (by fingerprint) and exit 0.
    #[arg(long, value_name = "FILE", conflicts_with = "baseline")]
    pub write_baseline: Option<PathBuf>,
    /// Report only findings that FILE (from --write-baseline) does not hold.
    #[arg(long, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    /// Print the fixes of the findings that have one as a unified diff
    /// (`git apply`-able) on stdout, instead of the report.
    #[arg(long, conflicts_with = "fix_inplace")]
    pub fix: bool,
    /// Apply the fixes of the findings that have one to the files, then report.
    #[arg(long)]
    pub fix_inplace: bool,
    /// Patch mode: check the patch in FILE (unified diff, git diff, or git
    /// format-patch mails); `-` reads stdin. Repeatable.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["git", "staged", "diff"])]
    pub patch: Vec<PathBuf>,
    /// Patch mode: the tree the patch applies to (default: the current
    /// directory, when the patched files are there; else only the hunks are analysed).
    #[arg(long, value_name = "DIR")]
    pub tree: Option<PathBuf>,
    /// Patch mode: check a commit (REV) or each commit of a range (A..B), read through git.
    #[arg(long, value_name = "REV", conflicts_with_all = ["staged", "diff"])]
    pub git: Option<String>,
    /// Patch mode: check the staged changes (the index against HEAD), for a pre-commit hook.
    #[arg(long, conflicts_with = "diff")]
    pub staged: bool,
    /// Patch mode: check the working tree's changes against HEAD.
    #[arg(long)]
    pub diff: bool,
    /// Patch mode: also report findings the patch did not introduce (present in the pre-image).
    #[arg(long)]
    pub all: bool,
    /// Print files, coverage and time per phase to stderr.
    #[arg(long)]
    pub stats: bool,
    /// Worker threads (0: one per core).
    #[arg(long, short = 'j', default_value_t = 0)]
    pub jobs: usize,
    /// Skip (and name) a file whose analysis takes longer than this many seconds; 0: no limit.
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
    pub file_timeout: f64,
    /// Exit 2 if any input was skipped because of an error (unreadable, binary, over a limit).
    #[arg(long)]
    pub strict: bool,
    /// Print the full explanation of a rule (e.g. KM001) and exit.
    #[arg(long, value_name = "CODE")]
    pub explain: Option<String>,
    /// Print a completion script for SHELL and exit (e.g. `kmapcheck --completions bash > /etc/bash_completion.d/kmapcheck`).
    #[arg(long, value_enum, value_name = "SHELL")]
    pub completions: Option<clap_complete::Shell>,
    /// List the rules and exit.
    #[arg(long)]
    pub list_rules: bool,
    /// Print the control-flow graph of every analyzed function of the given files.
    #[arg(long)]
    pub dump_cfg: bool,
    /// No summary line on stderr (sparse mode: a clean file prints nothing, as with sparse).
    #[arg(long, hide = true)]
    pub no_summary: bool,
    /// Evaluation: analyze every function that calls any kmap family (coverage figures).
    #[arg(long, hide = true)]
    pub coverage_all_maps: bool,
    /// Evaluation: also parse each analyzed body raw and count its parse errors.
    #[arg(long, hide = true)]
    pub compare_raw_parse: bool,
}
