//! KM001's `--fix` (wrap the access in pagefault_disable()/enable(), offered
//! only where the code handles the copy failing): applied to every KM001
//! fixture, the fixed file still parses, the fixed findings are gone, and
//! no other finding appears.

use kmapcheck::Analyzer;
use kmapcheck::fix;

#[test]
fn km001_fixes_leave_fixtures_clean_and_parsing() {
    let analyzer = Analyzer::new().unwrap();
    let mut fixed_files = 0;
    let mut failures = Vec::new();
    let mut paths: Vec<_> = std::fs::read_dir("fixtures/KM001")
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "c"))
        .collect();
    paths.sort();
    for path in paths {
        let source = std::fs::read(&path).unwrap();
        let before = analyzer.check_source(&source);
        let edits: Vec<fix::Edit> = before
            .diagnostics
            .iter()
            .filter(|d| d.code == "KM001")
            .flat_map(|d| d.fixes.iter().cloned())
            .collect();
        if edits.is_empty() {
            continue;
        }
        let with_fix = before
            .diagnostics
            .iter()
            .filter(|d| !d.fixes.is_empty())
            .count();
        fixed_files += 1;
        let fixed = fix::apply(&source, &edits).unwrap();
        let after = analyzer.check_source(&fixed);
        let name = path.display();
        if after.stats.parse_errors > before.stats.parse_errors {
            failures.push(format!("{name}: the fixed file has parse errors"));
        }
        let count = |r: &kmapcheck::FileReport, code: &str| {
            r.diagnostics.iter().filter(|d| d.code == code).count()
        };
        if count(&after, "KM001") != count(&before, "KM001") - with_fix {
            failures.push(format!(
                "{name}: {} KM001 finding(s) before, {with_fix} fixed, {} after",
                count(&before, "KM001"),
                count(&after, "KM001")
            ));
        }
        for d in &after.diagnostics {
            if d.code != "KM001" && count(&before, d.code) < count(&after, d.code) {
                failures.push(format!(
                    "{name}: the fix introduced {}: {}",
                    d.code, d.message
                ));
            }
        }
        // The diff of the same edits names the file and applies as a patch.
        let diff = fix::unified_diff("x.c", &source, &edits).unwrap();
        let inserted = |call: &str| {
            diff.lines()
                .any(|l| l.starts_with('+') && l.trim_start_matches(['+', '\t', ' ']) == call)
        };
        if !inserted("pagefault_disable();") || !inserted("pagefault_enable();") {
            failures.push(format!("{name}: diff without the inserted line:\n{diff}"));
        }
    }
    assert!(
        fixed_files >= 2,
        "only {fixed_files} KM001 fixture(s) got a fix"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
