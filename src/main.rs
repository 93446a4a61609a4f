//! The `kmapcheck` command: parse arguments, run the driver, print, exit 0/1/2.

use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser};

use kmapcheck::catalogue::Catalogue;
use kmapcheck::cli::{Args, Color, Format};
use kmapcheck::diag::Severity;
use kmapcheck::driver::{self, RunResult};
use kmapcheck::{
    Analyzer, Options, baseline, config, fix, report, rules, select, sparse_args, suppress,
};

mod patch_mode;

fn main() -> ExitCode {
    let argv: Vec<OsString> = std::env::args_os().skip(1).collect();
    if argv.first().is_some_and(|a| a == "install-hook") {
        return ExitCode::from(patch_mode::install_hook(&argv[1..]));
    }
    if sparse_args::is_sparse_style(&argv) {
        return run_sparse(&argv);
    }
    let args = match Args::try_parse() {
        Ok(a) => a,
        // --help and --version: clap prints them in full.
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        // A usage error: one line naming it, as for every other fatal error
        // (clap's tip and usage block would drown it in CI logs).
        Err(e) => {
            let text = e.render().to_string();
            let first = text.lines().next().unwrap_or("error: bad arguments");
            eprintln!("kmapcheck: {first} (see --help)");
            return ExitCode::from(2);
        }
    };
    match run(&args, &mut std::io::stdout().lock()) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("kmapcheck: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// `make C=1 CHECK=kmapcheck`: findings in gcc form on stderr, as sparse
/// prints them, and exit 0 unless KMAPCHECK_SPARSE_EXIT=1 (docs/make-check.md).
fn run_sparse(argv: &[OsString]) -> ExitCode {
    let invocation = sparse_args::parse(argv);
    // No .c operand: nothing to check (and never the default `.`).
    if invocation.files.is_empty() {
        return ExitCode::SUCCESS;
    }
    let mut args = Args::parse_from(["kmapcheck", "--format", "gcc", "--no-summary"]);
    args.paths = invocation.files;
    match run(&args, &mut std::io::stderr().lock()) {
        Ok(1) if std::env::var_os(sparse_args::EXIT_ENV).is_some_and(|v| v == "1") => {
            ExitCode::from(1)
        }
        Ok(0 | 1) => ExitCode::SUCCESS,
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("kmapcheck: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Runs one command; the report goes to `stdout` (stderr in sparse mode).
fn run(args: &Args, stdout: &mut dyn Write) -> Result<u8> {
    if let Some(shell) = args.completions {
        clap_complete::generate(shell, &mut Args::command(), "kmapcheck", stdout);
        return Ok(0);
    }
    if args.list_rules {
        stdout.write_all(list_rules().as_bytes())?;
        return Ok(0);
    }
    if let Some(code) = &args.explain {
        let Some(rule) = rules::by_code(code) else {
            eprintln!("kmapcheck: error: unknown rule `{code}` (see --list-rules)");
            return Ok(2);
        };
        write!(stdout, "{}", rule.explanation())?;
        return Ok(0);
    }
    let implicit_root = args.paths.is_empty();
    let paths = if implicit_root {
        vec![PathBuf::from(".")]
    } else {
        args.paths.clone()
    };
    let config_path = match &args.config {
        Some(path) => Some(path.clone()),
        None => config::discover(&paths)?,
    };
    let mut loaded = config_path.as_deref().map(config::load).transpose()?;
    let extra_api = loaded.as_mut().and_then(|l| l.config.api.take());
    let rules_config = loaded.as_ref().map(|l| &l.config.rules);
    let request = select::Request {
        select: args
            .select
            .as_deref()
            .or_else(|| rules_config.and_then(|r| r.select.as_deref())),
        ignore: rules_config
            .into_iter()
            .flat_map(|r| &r.ignore)
            .chain(&args.ignore)
            .map(String::as_str)
            .collect(),
        severity: rules_config
            .into_iter()
            .flat_map(|r| &r.severity)
            .map(|(name, severity)| (name.as_str(), *severity))
            .collect(),
        min_severity: args
            .min_severity
            .map(Severity::from)
            .or_else(|| rules_config.and_then(|r| r.min_severity)),
    };
    let selection = select::Selection::new(&request).map_err(|e| match &loaded {
        Some(l) if args.select.is_none() => anyhow::anyhow!("{}: {e}", l.path.display()),
        _ => e.into(),
    })?;
    // Read before the scan: a bad baseline should fail in milliseconds.
    let known = args
        .baseline
        .as_deref()
        .map(baseline::Baseline::load)
        .transpose()?;
    let mut catalogue = Catalogue::builtin()?;
    if let (Some(l), Some(api)) = (&loaded, extra_api) {
        catalogue
            .merge(api)
            .with_context(|| format!("{}: [api]", l.path.display()))?;
    }
    let options = Options {
        all_map_families: args.coverage_all_maps,
        compare_raw_parse: args.compare_raw_parse,
        file_timeout: file_timeout(args.file_timeout)?,
    };
    let analyzer = Analyzer::with_catalogue(selection.rules(), options, catalogue)?;
    if patch_mode::requested(args) {
        return patch_mode::run(args, &analyzer, &selection, stdout);
    }
    if args.dump_cfg {
        for path in &args.paths {
            // Reading a FIFO would block forever: only regular files.
            let meta = std::fs::metadata(path)
                .with_context(|| format!("{}: cannot read", path.display()))?;
            anyhow::ensure!(meta.is_file(), "{}: not a regular file", path.display());
            let src =
                std::fs::read(path).with_context(|| format!("{}: cannot read", path.display()))?;
            writeln!(stdout, "# {}\n{}", path.display(), analyzer.dump_cfgs(&src))?;
        }
        return Ok(0);
    }
    let exclude = loaded.as_ref().map(config::Exclude::new).transpose()?;
    let mut result = driver::run_excluding(&analyzer, &paths, implicit_root, args.jobs, &|p| {
        exclude.as_ref().is_some_and(|e| e.is_excluded(p))
    })?;
    for problem in &result.problems {
        eprintln!("kmapcheck: {problem}");
    }
    let below_min_severity = selection.apply(&mut result.files);
    let suppression = suppress::apply(&mut result.files);
    for warning in &suppression.warnings {
        eprintln!("{warning}");
    }
    if let Some(path) = &args.write_baseline {
        let n = baseline::write(path, &result.files)?;
        eprintln!(
            "kmapcheck: wrote {n} finding(s) to baseline {}",
            path.display()
        );
        return Ok(0);
    }
    let baselined = known.map_or(0, |b| b.filter(&mut result.files));
    let dropped = Dropped {
        below_min_severity,
        suppressed: suppression.suppressed,
        baselined,
    };
    if args.fix || args.fix_inplace {
        write_fixes(&result.files, args.fix_inplace, &paths, stdout)?;
    }
    match args.format {
        _ if args.fix => {}
        Format::Human => {
            stdout.write_all(&report::human::render(&result.files, use_color(args.color)))?;
        }
        Format::Checkpatch => {
            let units = report::checkpatch::file_units(&result.files);
            stdout.write_all(report::checkpatch::render(&units).as_bytes())?;
        }
        Format::Json => {
            stdout.write_all(report::json::render(&result.files, &result.stats).as_bytes())?;
        }
        Format::Gcc => stdout.write_all(report::gcc::render(&result.files).as_bytes())?,
        Format::Sarif => {
            stdout.write_all(report::sarif::render(&result.files, rules::RULES).as_bytes())?;
        }
        Format::Github => stdout.write_all(report::github::render(&result.files).as_bytes())?,
        Format::Gitlab => stdout.write_all(report::gitlab::render(&result.files).as_bytes())?,
    }
    // In every format: the one line that says whether inputs were skipped
    // (skipped inputs are also named one per line above it).
    if !args.no_summary {
        eprintln!("{}", summary(&result));
    }
    stdout.flush()?;
    if args.stats {
        print_stats(&result, &dropped);
    }
    if args.strict && !result.problems.is_empty() {
        return Ok(2);
    }
    // Notes are advice (KM011): they are reported, but do not fail the run.
    Ok(u8::from(
        result
            .files
            .iter()
            .flat_map(|f| &f.diagnostics)
            .any(|d| d.severity.fails_run()),
    ))
}

fn use_color(color: Color) -> bool {
    match color {
        Color::Always => true,
        Color::Never => false,
        Color::Auto => std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal(),
    }
}

/// `--fix`: one unified diff of every file's fixes on `stdout`;
/// `--fix-inplace`: the fixed files written back; then a line on stderr
/// saying how many findings had a fix. A file whose fixes conflict is named
/// and left alone.
fn write_fixes(
    files: &[driver::FileFindings],
    inplace: bool,
    roots: &[PathBuf],
    stdout: &mut dyn Write,
) -> Result<()> {
    // Resolved once: a file is written only if its resolved path lies in a
    // resolved root (a symlink in the tree pointing elsewhere is refused).
    let roots: Vec<PathBuf> = roots.iter().filter_map(|r| r.canonicalize().ok()).collect();
    let mut fixed = 0;
    for file in files {
        let with_fix: Vec<_> = file
            .diagnostics
            .iter()
            .filter(|d| !d.fixes.is_empty())
            .collect();
        if with_fix.is_empty() {
            continue;
        }
        let edits: Vec<fix::Edit> = with_fix
            .iter()
            .flat_map(|d| d.fixes.iter().cloned())
            .collect();
        if inplace && !inside_roots(Path::new(&file.path), &roots) {
            eprintln!(
                "kmapcheck: {}: not fixed: the file resolves outside the checked paths",
                file.path
            );
            continue;
        }
        let outcome = if inplace {
            fix::apply(&file.source, &edits).map(|new| {
                std::fs::write(&file.path, new)
                    .with_context(|| format!("{}: cannot write the fixed file", file.path))
            })
        } else {
            fix::unified_diff(&diff_path(&file.path), &file.source, &edits)
                .map(|diff| stdout.write_all(diff.as_bytes()).map_err(Into::into))
        };
        match outcome {
            Ok(written) => {
                written?;
                fixed += with_fix.len();
            }
            Err(conflict) => eprintln!("kmapcheck: {}: not fixed: {conflict}", file.path),
        }
    }
    let done = if inplace {
        "fixed"
    } else {
        "offered fixes for"
    };
    eprintln!("kmapcheck: {done} {fixed} finding(s)");
    Ok(())
}

/// The path a `--fix` diff names, as `git apply` run from the current
/// directory wants it: relative, without `./` (which git rejects).
fn diff_path(path: &str) -> String {
    let p = Path::new(path);
    let relative = std::env::current_dir()
        .ok()
        .and_then(|cwd| p.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .unwrap_or_else(|| p.to_path_buf());
    let parts: Vec<_> = relative
        .components()
        .filter(|c| !matches!(c, std::path::Component::CurDir))
        .collect();
    parts
        .iter()
        .collect::<PathBuf>()
        .to_string_lossy()
        .into_owned()
}

/// Whether `path`, symlinks resolved, is one of `roots` or lies below one.
fn inside_roots(path: &Path, roots: &[PathBuf]) -> bool {
    path.canonicalize()
        .is_ok_and(|p| roots.iter().any(|r| p.starts_with(r)))
}

fn file_timeout(seconds: f64) -> Result<Option<std::time::Duration>> {
    if seconds == 0.0 {
        return Ok(None);
    }
    std::time::Duration::try_from_secs_f64(seconds)
        .map(Some)
        .with_context(|| format!("--file-timeout {seconds}: not a number of seconds"))
}

/// Findings left out of the report, by reason; `--stats` shows them.
#[derive(Debug, Default)]
struct Dropped {
    below_min_severity: usize,
    /// By `kmapcheck: allow` comments.
    suppressed: usize,
    /// Known to the `--baseline` file.
    baselined: usize,
}

/// `--list-rules`: a table whose columns fit their longest entry.
fn list_rules() -> String {
    let rows: Vec<[String; 6]> = rules::RULES
        .iter()
        .map(|r| {
            [
                r.code.to_owned(),
                r.name.to_owned(),
                r.type_name(),
                r.default_severity.as_str().to_owned(),
                // Off by default: runs only when named by --select or config.
                if r.default_enabled { "on" } else { "off" }.to_owned(),
                r.summary.to_owned(),
            ]
        })
        .collect();
    let header = ["CODE", "NAME", "TYPE", "SEVERITY", "DEFAULT", "SUMMARY"].map(str::to_owned);
    let widths: Vec<usize> = (0..5)
        .map(|i| {
            rows.iter()
                .chain([&header])
                .map(|r| r[i].len())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in [&header].into_iter().chain(&rows) {
        for (cell, width) in row.iter().zip(&widths) {
            out.push_str(&format!("{cell:<width$}  "));
        }
        out.push_str(&row[5]);
        out.push('\n');
    }
    out
}

fn summary(result: &RunResult) -> String {
    let all = result.files.iter().flat_map(|f| &f.diagnostics);
    let errors = all
        .clone()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let warnings = all
        .clone()
        .filter(|d| d.severity == Severity::Warning)
        .count();
    let notes = all.filter(|d| d.severity == Severity::Note).count();
    // Every problem line is an input that was not checked: say so, so that a
    // clean summary is never printed over an incomplete scan.
    let skipped = if result.problems.is_empty() {
        String::new()
    } else {
        format!(
            ", {} input(s) skipped because of errors (named above)",
            result.problems.len()
        )
    };
    format!(
        "kmapcheck: {errors} error(s), {warnings} warning(s), {notes} note(s) in {} file(s) checked{skipped}",
        result.stats.files_seen - result.stats.files_skipped
    )
}

fn print_stats(result: &RunResult, dropped: &Dropped) {
    let s = &result.stats;
    let ms = |d: std::time::Duration| d.as_secs_f64() * 1000.0;
    let pct = |n: usize| {
        if s.functions == 0 {
            100.0
        } else {
            100.0 * n as f64 / s.functions as f64
        }
    };
    eprintln!("files seen:          {}", s.files_seen);
    eprintln!("  prefiltered out:   {}", s.prefiltered_out);
    eprintln!("  analyzed:          {}", s.files_analyzed);
    eprintln!("  skipped (errors):  {}", s.files_skipped);
    eprintln!("functions analyzed:  {}", s.functions);
    eprintln!(
        "  complete CFG:      {} ({:.1}%)",
        s.complete,
        pct(s.complete)
    );
    eprintln!(
        "  partial:           {} ({:.1}%)",
        s.partial,
        pct(s.partial)
    );
    eprintln!(
        "  with parse errors: {} after preprocessing",
        s.parse_errors
    );
    if s.raw_parse_errors > 0 {
        eprintln!("  (raw, without preprocessing: {})", s.raw_parse_errors);
    }
    let reported: usize = result.files.iter().map(|f| f.diagnostics.len()).sum();
    eprintln!("findings reported:   {reported}");
    eprintln!("  below --min-severity: {}", dropped.below_min_severity);
    eprintln!("  suppressed in source: {}", dropped.suppressed);
    eprintln!("  in the baseline:   {}", dropped.baselined);
    eprintln!("time (wall):         {:.1} ms", ms(s.wall));
    eprintln!("time (summed over threads):");
    eprintln!("  read+prefilter:    {:.1} ms", ms(s.times.prefilter));
    eprintln!("  preprocess:        {:.1} ms", ms(s.times.preprocess));
    eprintln!("  parse:             {:.1} ms", ms(s.times.parse));
    eprintln!("  cfg:               {:.1} ms", ms(s.times.cfg));
    eprintln!("  dataflow:          {:.1} ms", ms(s.times.dataflow));
    eprintln!("  rules:             {:.1} ms", ms(s.times.rules));
    eprintln!(
        "callers (wall):      {:.1} ms: {} function(s) asked, {} file scan(s), {} file(s) rechecked",
        ms(s.callers_wall),
        s.caller_wants,
        s.caller_files_scanned,
        s.caller_files_rechecked
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diff_paths_are_relative_without_dot() {
        assert_eq!(diff_path("./mm/x.c"), "mm/x.c");
        assert_eq!(diff_path("mm/./x.c"), "mm/x.c");
        assert_eq!(diff_path("mm/x.c"), "mm/x.c");
        let cwd = std::env::current_dir().unwrap();
        assert_eq!(diff_path(&cwd.join("mm/x.c").to_string_lossy()), "mm/x.c");
    }

    #[cfg(unix)]
    #[test]
    fn inside_roots_resolves_symlinks() {
        let base = std::env::temp_dir().join(format!("kmapcheck-roots-{}", std::process::id()));
        let (root, away) = (base.join("root"), base.join("away"));
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&away).unwrap();
        std::fs::write(root.join("a.c"), "").unwrap();
        std::fs::write(away.join("b.c"), "").unwrap();
        std::os::unix::fs::symlink(away.join("b.c"), root.join("link.c")).unwrap();
        let roots = [root.canonicalize().unwrap()];
        assert!(inside_roots(&root.join("a.c"), &roots));
        assert!(!inside_roots(&root.join("link.c"), &roots));
        assert!(!inside_roots(&root.join("../away/b.c"), &roots));
        assert!(!inside_roots(&root.join("missing.c"), &roots));
        let _ = std::fs::remove_dir_all(&base);
    }
}
