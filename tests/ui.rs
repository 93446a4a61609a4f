//! UI tests: every `fixtures/KM0NN/*.c` is checked and its human output
//! compared with the sibling `.stderr` file (a case without one must stay
//! silent). `// expect: KM0NN severity` markers in the C are checked too, and
//! missing and noisy findings are reported apart.
//!
//! A folder `fixtures/KM0NN/<case>/` is one case of several files checked
//! in one run (a caller in one file, its callee in another), with its
//! expected output in `fixtures/KM0NN/<case>.stderr`.
//!
//! `KMAPCHECK_BLESS=1 cargo test --test ui` rewrites the expected files.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use kmapcheck::Analyzer;
use kmapcheck::diag::LineIndex;
use kmapcheck::driver::FileFindings;
use kmapcheck::report;
use kmapcheck::rules;

/// The analyzer a fixture runs under: the default rules, plus its folder's
/// rule when that one is off by default (KM011 runs only when selected).
fn analyzer_for(path: &Path) -> Analyzer {
    let mut enabled = rules::default_rules();
    let folder = path
        .parent()
        .and_then(Path::file_name)
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Some(rule) = rules::by_code(&folder).filter(|r| !r.default_enabled) {
        enabled.push(rule);
    }
    Analyzer::with_rules(enabled).unwrap()
}

fn rule_fixtures() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for dir in std::fs::read_dir("fixtures")
        .expect("fixtures/ exists")
        .flatten()
    {
        let name = dir.file_name().to_string_lossy().into_owned();
        if !name.starts_with("KM") {
            continue;
        }
        for file in std::fs::read_dir(dir.path())
            .expect("readable fixture folder")
            .flatten()
        {
            if file.path().extension().is_some_and(|e| e == "c") || file.path().is_dir() {
                out.push(file.path());
            }
        }
    }
    out.sort();
    out
}

/// (line, code, severity) of each `expect:` marker.
fn markers(source: &str) -> BTreeSet<(usize, String, String)> {
    let mut out = BTreeSet::new();
    for (i, line) in source.lines().enumerate() {
        let mut rest = line;
        while let Some(pos) = rest.find("expect: ") {
            let mut words = rest[pos + 8..].split_whitespace();
            let code = words.next().unwrap_or_default().to_owned();
            let severity = words
                .next()
                .unwrap_or_default()
                .trim_end_matches("*/")
                .to_owned();
            out.insert((i + 1, code, severity));
            rest = &rest[pos + 8..];
        }
    }
    out
}

#[test]
fn fixtures_match_expected_output_and_markers() {
    let bless = std::env::var_os("KMAPCHECK_BLESS").is_some();
    let fixtures = rule_fixtures();
    assert!(
        fixtures.len() >= 20,
        "fixtures went missing: {}",
        fixtures.len()
    );
    let mut failures = Vec::new();
    for path in &fixtures {
        let analyzer = analyzer_for(path);
        let (files, checked) = if path.is_dir() {
            check_folder(&analyzer, path)
        } else {
            check_file(&analyzer, path)
        };
        for file in &files {
            let index = LineIndex::new(&file.source);
            let got: BTreeSet<_> = file
                .diagnostics
                .iter()
                .map(|d| {
                    (
                        index.position(d.primary.span.start).0,
                        d.code.to_owned(),
                        d.severity.as_str().to_owned(),
                    )
                })
                .collect();
            let want = checked
                .iter()
                .find(|(shown, _)| *shown == file.path)
                .map(|(_, m)| m.clone())
                .unwrap_or_default();
            for m in want.difference(&got) {
                failures.push(format!("{}:{}: missing {} {}", file.path, m.0, m.1, m.2));
            }
            for m in got.difference(&want) {
                failures.push(format!("{}:{}: noisy {} {}", file.path, m.0, m.1, m.2));
            }
        }
        // Markers in files without findings are missing findings.
        for (shown, want) in &checked {
            if !files.iter().any(|f| f.path == *shown) {
                for m in want {
                    failures.push(format!("{shown}:{}: missing {} {}", m.0, m.1, m.2));
                }
            }
        }
        let rendered = String::from_utf8(report::human::render(&files, false)).unwrap();
        let expected_path = path.with_extension("stderr");
        compare(&expected_path, &rendered, bless, &mut failures);
    }
    assert!(
        failures.is_empty(),
        "{} fixture problem(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

type Markers = BTreeSet<(usize, String, String)>;

/// One file alone: `check_source`, where callers in the same file count.
fn check_file(analyzer: &Analyzer, path: &Path) -> (Vec<FileFindings>, Vec<(String, Markers)>) {
    let source = std::fs::read(path).unwrap();
    let report = analyzer.check_source(&source);
    let shown = path.to_string_lossy().replace('\\', "/");
    let markers = markers(&String::from_utf8_lossy(&source));
    let files = if report.diagnostics.is_empty() {
        Vec::new()
    } else {
        vec![FileFindings {
            path: shown.clone(),
            source,
            diagnostics: report.diagnostics,
        }]
    };
    (files, vec![(shown, markers)])
}

/// A folder: its files in one run of the driver, as `kmapcheck DIR` does.
fn check_folder(analyzer: &Analyzer, dir: &Path) -> (Vec<FileFindings>, Vec<(String, Markers)>) {
    let result = kmapcheck::driver::run(analyzer, &[dir.to_path_buf()], false, 1).unwrap();
    let mut checked = Vec::new();
    for file in std::fs::read_dir(dir).unwrap().flatten() {
        let path = file.path();
        if path.extension().is_some_and(|e| e == "c") {
            let source = std::fs::read_to_string(&path).unwrap();
            checked.push((path.to_string_lossy().replace('\\', "/"), markers(&source)));
        }
    }
    (result.files, checked)
}

fn compare(expected_path: &Path, rendered: &str, bless: bool, failures: &mut Vec<String>) {
    let expected = std::fs::read_to_string(expected_path).ok();
    if bless {
        if rendered.is_empty() {
            let _ = std::fs::remove_file(expected_path);
        } else {
            std::fs::write(expected_path, rendered).unwrap();
        }
        return;
    }
    match expected {
        None if rendered.is_empty() => {}
        None => failures.push(format!(
            "{}: no expected file, but the case reports:\n{rendered}",
            expected_path.display()
        )),
        Some(e) if e == rendered => {}
        Some(e) => failures.push(format!(
            "{}: output differs (KMAPCHECK_BLESS=1 to accept)\n--- expected\n{e}\n--- got\n{rendered}",
            expected_path.display()
        )),
    }
}

#[test]
fn marker_parser_reads_both_comment_styles() {
    let m = markers("a(); /* expect: KM001 error */\nb(); // expect: KM001 warning\n");
    assert!(m.contains(&(1, "KM001".into(), "error".into())));
    assert!(m.contains(&(2, "KM001".into(), "warning".into())));
}
