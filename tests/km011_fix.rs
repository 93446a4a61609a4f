//! KM011's fixes, applied. For every `fixtures/KM011/*.c`, the file with
//! all offered fixes applied must match its `.fixed` golden (a case without
//! fixes has none; `KMAPCHECK_BLESS=1 cargo test --test km011_fix` rewrites
//! them), still parse, make the default rules report nothing they did not
//! report before, and no longer get a KM011 note for a converted region.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kmapcheck::diag::Diagnostic;
use kmapcheck::rules::{self, km011_conversion_advisor::KM011};
use kmapcheck::{Analyzer, Options, fix};

fn cases() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir("fixtures/KM011")
        .expect("fixtures/KM011 exists")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "c"))
        .collect();
    out.sort();
    out
}

/// Findings per (rule, function): what "nothing new" is measured in, since
/// inserted lines move every line number below them.
fn per_function(diags: &[Diagnostic]) -> BTreeMap<(String, String), usize> {
    let mut out = BTreeMap::new();
    for d in diags {
        *out.entry((d.code.to_owned(), d.function.clone()))
            .or_insert(0) += 1;
    }
    out
}

#[test]
fn fixed_fixtures_parse_and_lose_only_their_converted_regions() {
    let bless = std::env::var_os("KMAPCHECK_BLESS").is_some();
    let advisor = Analyzer::with_rules(vec![&KM011]).unwrap();
    let defaults = Analyzer::new().unwrap();
    // Every function that calls any map family is parsed: the fixed ones
    // call only kmap_local_*() and must still be analyzed.
    let coverage = Analyzer::with_options(
        rules::default_rules(),
        Options {
            all_map_families: true,
            ..Options::default()
        },
    )
    .unwrap();
    let mut failures = Vec::new();
    let (mut fixed_regions, mut inserted) = (0, Vec::new());
    for path in cases() {
        let shown = path.display().to_string();
        let src = std::fs::read(&path).unwrap();
        let notes = advisor.check_source(&src).diagnostics;
        let with_fix: Vec<&Diagnostic> = notes.iter().filter(|d| !d.fixes.is_empty()).collect();
        let edits: Vec<fix::Edit> = with_fix.iter().flat_map(|d| d.fixes.clone()).collect();
        let fixed = match fix::apply(&src, &edits) {
            Ok(f) => f,
            Err(e) => {
                failures.push(format!("{shown}: {e}"));
                continue;
            }
        };
        fixed_regions += with_fix.len();
        inserted.extend(
            edits
                .iter()
                .filter(|e| e.start == e.end)
                .map(|e| e.text.clone()),
        );
        compare_golden(&path, &src, &fixed, bless, &mut failures);
        let before = coverage.check_source(&src).stats;
        let after = coverage.check_source(&fixed).stats;
        if after.parse_errors != 0 || after.functions != before.functions {
            failures.push(format!(
                "{shown}: fixed file: {} function(s) with parse errors, {} analyzed (before: {})",
                after.parse_errors, after.functions, before.functions
            ));
        }
        let old = per_function(&defaults.check_source(&src).diagnostics);
        let new = per_function(&defaults.check_source(&fixed).diagnostics);
        for (key, n) in &new {
            if old.get(key).copied().unwrap_or(0) < *n {
                failures.push(format!("{shown}: fixed file: new {} in `{}`", key.0, key.1));
            }
        }
        // Only KM008 may go (a sleep is legal under kmap_local); another
        // finding that vanishes was hidden by the conversion, not fixed.
        for (key, n) in &old {
            if key.0 != "KM008" && new.get(key).copied().unwrap_or(0) < *n {
                failures.push(format!(
                    "{shown}: fixed file hides {} in `{}`",
                    key.0, key.1
                ));
            }
        }
        let mut expected = per_function(&notes);
        for d in &with_fix {
            if let Some(n) = expected.get_mut(&(d.code.to_owned(), d.function.clone())) {
                *n -= 1;
            }
        }
        expected.retain(|_, n| *n > 0);
        let again = per_function(&advisor.check_source(&fixed).diagnostics);
        if again != expected {
            failures.push(format!(
                "{shown}: KM011 on the fixed file: {again:?}, expected {expected:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    // The fixtures exercise every kind of fix.
    assert!(fixed_regions >= 15, "only {fixed_regions} regions fixed");
    for guard in [
        "pagefault_disable();",
        "preempt_disable();",
        "pagefault_enable();",
    ] {
        assert!(
            inserted.iter().any(|t| t.contains(guard)),
            "no fix inserts {guard}"
        );
    }
}

fn compare_golden(path: &Path, src: &[u8], fixed: &[u8], bless: bool, failures: &mut Vec<String>) {
    let golden = path.with_extension("fixed");
    let changed = fixed != src;
    if bless {
        if changed {
            std::fs::write(&golden, fixed).unwrap();
        } else {
            let _ = std::fs::remove_file(&golden);
        }
        return;
    }
    match std::fs::read(&golden) {
        Ok(want) if want == fixed => {}
        Ok(_) => failures.push(format!(
            "{}: differs from the fixed output (KMAPCHECK_BLESS=1 to accept)",
            golden.display()
        )),
        Err(_) if !changed => {}
        Err(_) => failures.push(format!("{}: missing", golden.display())),
    }
}

/// The command line gives the same result: `--fix-inplace` on a copy
/// writes the golden, and notes alone exit 0.
#[test]
fn fix_inplace_writes_the_golden_and_notes_exit_zero() {
    let dir = std::env::temp_dir().join(format!("kmapcheck-km011-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let copy = dir.join("control_flow.c");
    std::fs::copy("fixtures/KM011/control_flow.c", &copy).unwrap();
    let (code, _, err) =
        common::kmapcheck(&["--select", "KM011", "--fix-inplace", copy.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("note(s)"), "{err}");
    // While blessing, the other test rewrites the golden concurrently.
    if std::env::var_os("KMAPCHECK_BLESS").is_none() {
        let want = std::fs::read("fixtures/KM011/control_flow.fixed").unwrap();
        assert_eq!(std::fs::read(&copy).unwrap(), want);
    }
    // Without --select, KM011 does not run: nothing to report.
    let (code, out, _) = common::kmapcheck(&["fixtures/KM011/safe_rename.c"]);
    assert_eq!((code, out.as_str()), (0, ""));
    let _ = std::fs::remove_dir_all(&dir);
}
