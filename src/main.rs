//! The `kmapcheck` command: parse arguments, run the driver, print, exit 0/1/2.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};

use kmapcheck::diag::Severity;
use kmapcheck::driver::{self, RunResult};
use kmapcheck::{Analyzer, Options, report, rules};

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Format {
    /// Diagnostics with source snippets (codespan-reporting).
    Human,
    /// One JSON document (docs/json.md).
    Json,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum Color {
    Auto,
    Always,
    Never,
}

/// Find kmap/page-fault bugs in Linux kernel C sources.
///
/// Examples:
///   kmapcheck mm/                      check a directory
///   kmapcheck --format json . > out.json
///   kmapcheck --explain KM001
#[derive(Debug, Parser)]
#[command(name = "kmapcheck", version, verbatim_doc_comment)]
struct Args {
    /// Files or directories to check (.c and .h files); default: the current directory.
    paths: Vec<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// Colour for the human format (NO_COLOR in the environment means never).
    #[arg(long, value_enum, default_value_t = Color::Auto)]
    color: Color,
    /// Print files, coverage and time per phase to stderr.
    #[arg(long)]
    stats: bool,
    /// Worker threads (0: one per core).
    #[arg(long, short = 'j', default_value_t = 0)]
    jobs: usize,
    /// Skip (and name) a file whose analysis takes longer than this many seconds; 0: no limit.
    #[arg(long, value_name = "SECONDS", default_value_t = 5.0)]
    file_timeout: f64,
    /// Exit 2 if any input was skipped because of an error (unreadable, binary, over a limit).
    #[arg(long)]
    strict: bool,
    /// Print the full explanation of a rule (e.g. KM001) and exit.
    #[arg(long, value_name = "CODE")]
    explain: Option<String>,
    /// List the rules and exit.
    #[arg(long)]
    list_rules: bool,
    /// Print the control-flow graph of every analyzed function of the given files.
    #[arg(long)]
    dump_cfg: bool,
    /// Evaluation: analyze every function that calls any kmap family (coverage figures).
    #[arg(long, hide = true)]
    coverage_all_maps: bool,
    /// Evaluation: also parse each analyzed body raw and count its parse errors.
    #[arg(long, hide = true)]
    compare_raw_parse: bool,
}

fn main() -> ExitCode {
    let args = match Args::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match run(&args) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("kmapcheck: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(args: &Args) -> Result<u8> {
    let mut stdout = std::io::stdout().lock();
    if args.list_rules {
        for rule in rules::RULES {
            writeln!(
                stdout,
                "{}  {:<22} {:<8} {}",
                rule.code,
                rule.name,
                rule.default_severity.as_str(),
                rule.summary
            )?;
        }
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
    let options = Options {
        all_map_families: args.coverage_all_maps,
        compare_raw_parse: args.compare_raw_parse,
        file_timeout: file_timeout(args.file_timeout)?,
    };
    let analyzer = Analyzer::with_options(rules::RULES.to_vec(), options)?;
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
    let implicit_root = args.paths.is_empty();
    let paths = if implicit_root {
        vec![PathBuf::from(".")]
    } else {
        args.paths.clone()
    };
    let result = driver::run(&analyzer, &paths, implicit_root, args.jobs)?;
    for problem in &result.problems {
        eprintln!("kmapcheck: {problem}");
    }
    match args.format {
        Format::Human => {
            let color = match args.color {
                Color::Always => true,
                Color::Never => false,
                Color::Auto => {
                    std::env::var_os("NO_COLOR").is_none() && std::io::stdout().is_terminal()
                }
            };
            stdout.write_all(&report::human::render(&result.files, color))?;
        }
        Format::Json => {
            stdout.write_all(report::json::render(&result.files, &result.stats).as_bytes())?
        }
    }
    // In every format: the one line that says whether inputs were skipped.
    eprintln!("{}", summary(&result));
    stdout.flush()?;
    if args.stats {
        print_stats(&result);
    }
    if args.strict && !result.problems.is_empty() {
        return Ok(2);
    }
    Ok(u8::from(
        result.files.iter().any(|f| !f.diagnostics.is_empty()),
    ))
}

fn file_timeout(seconds: f64) -> Result<Option<std::time::Duration>> {
    if seconds == 0.0 {
        return Ok(None);
    }
    std::time::Duration::try_from_secs_f64(seconds)
        .map(Some)
        .with_context(|| format!("--file-timeout {seconds}: not a number of seconds"))
}

fn summary(result: &RunResult) -> String {
    let all = result.files.iter().flat_map(|f| &f.diagnostics);
    let errors = all
        .clone()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let warnings = all.filter(|d| d.severity == Severity::Warning).count();
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
        "kmapcheck: {errors} error(s), {warnings} warning(s) in {} file(s) checked{skipped}",
        result.stats.files_seen - result.stats.files_skipped
    )
}

fn print_stats(result: &RunResult) {
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
    eprintln!("time (wall):         {:.1} ms", ms(s.wall));
    eprintln!("time (summed over threads):");
    eprintln!("  read+prefilter:    {:.1} ms", ms(s.times.prefilter));
    eprintln!("  preprocess:        {:.1} ms", ms(s.times.preprocess));
    eprintln!("  parse:             {:.1} ms", ms(s.times.parse));
    eprintln!("  cfg:               {:.1} ms", ms(s.times.cfg));
    eprintln!("  dataflow:          {:.1} ms", ms(s.times.dataflow));
    eprintln!("  rules:             {:.1} ms", ms(s.times.rules));
}
