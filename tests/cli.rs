//! The command line as users and CI see it: exit codes, formats, bad input.

mod common;

use common::kmapcheck;

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("kmapcheck-cli-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn seed_bug_exits_1_and_clean_file_exits_0() {
    let (code, out, _) = kmapcheck(&["--color", "never", "fixtures/KM001/seed_mfill_retry.c"]);
    assert_eq!(code, 1);
    assert!(out.contains("warning[KM001]"), "{out}");
    assert!(out.contains("kmap_local_folio"), "{out}");
    let (code, out, _) = kmapcheck(&["fixtures/KM001/seed_mfill_fixed.c"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.is_empty());
}

#[test]
fn bad_flag_and_unknown_rule_exit_2() {
    let (code, _, err) = kmapcheck(&["--no-such-flag"]);
    assert_eq!(code, 2);
    assert!(err.contains("--no-such-flag"), "{err}");
    let (code, _, err) = kmapcheck(&["--format", "yaml", "."]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = kmapcheck(&["--explain", "KM999"]);
    assert_eq!(code, 2);
    assert!(err.contains("KM999"), "{err}");
}

#[test]
fn explain_prints_the_rule_documentation() {
    let (code, out, _) = kmapcheck(&["--explain", "km001"]);
    assert_eq!(code, 0);
    assert!(out.contains("## Why is this bad"), "{out}");
    assert!(out.contains("mmap_lock"), "{out}");
}

#[test]
fn json_is_one_sorted_document_with_stats() {
    let (code, out, _) = kmapcheck(&["--format", "json", "fixtures/KM001"]);
    assert_eq!(code, 1);
    let doc: serde_json::Value = serde_json::from_str(&out).expect("valid JSON");
    assert_eq!(doc["version"], 1);
    let findings = doc["findings"].as_array().unwrap();
    assert!(findings.len() > 20);
    let keys: Vec<(String, u64, u64)> = findings
        .iter()
        .map(|f| {
            (
                f["path"].as_str().unwrap().to_owned(),
                f["line"].as_u64().unwrap(),
                f["column"].as_u64().unwrap(),
            )
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    for f in findings {
        for field in ["rule", "severity", "path", "function", "message"] {
            assert!(f[field].is_string(), "{field} in {f}");
        }
        assert!(f["path"].as_str().unwrap().starts_with("fixtures/KM001/"));
        assert!(f["notes"].is_array());
    }
    assert!(doc["stats"]["functions_analyzed"].as_u64().unwrap() > 20);
}

#[test]
fn output_is_identical_whatever_the_thread_count() {
    let one = kmapcheck(&["--format", "json", "--jobs", "1", "fixtures"]);
    let many = kmapcheck(&["--format", "json", "--jobs", "8", "fixtures"]);
    assert_eq!(one, many);
}

#[test]
fn bad_inputs_are_named_and_skipped_and_the_scan_goes_on() {
    let dir = temp_dir("bad");
    std::fs::write(dir.join("binary.c"), b"kmap_local_page\0\x01\x02").unwrap();
    std::fs::write(dir.join("notes.txt"), b"kmap_local_page").unwrap();
    let mut latin1 = b"/* caf\xe9 */\n".to_vec();
    latin1.extend(std::fs::read("fixtures/KM001/evidence_spinlock.c").unwrap());
    std::fs::write(dir.join("latin1.c"), latin1).unwrap();
    std::fs::write(dir.join("truncated.c"), b"int f(void)\n{\n\tvoid *p = kmap_local_page(pg);\n\tspin_lock(&l);\n\tif (copy_from_user(p, u, 4)").unwrap();
    let missing = dir.join("missing.c");
    let txt = dir.join("notes.txt");
    let (code, out, err) = kmapcheck(&[
        "--color",
        "never",
        dir.to_str().unwrap(),
        missing.to_str().unwrap(),
        txt.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{out}\n{err}");
    assert!(err.contains("binary.c: binary file"), "{err}");
    assert!(err.contains("missing.c:"), "{err}");
    assert!(err.contains("notes.txt: not a C source"), "{err}");
    assert!(out.contains("latin1.c:"), "{out}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn exit_codes_0_clean_1_findings_2_error_and_strict_counts_skips() {
    let dir = temp_dir("strict");
    std::fs::write(dir.join("binary.c"), b"kmap_local_page\0").unwrap();
    std::fs::copy("fixtures/KM001/seed_mfill_fixed.c", dir.join("clean.c")).unwrap();
    let d = dir.to_str().unwrap();
    let (code, _, err) = kmapcheck(&[d]);
    assert_eq!(code, 0, "a skipped file alone is not a finding: {err}");
    assert!(
        err.contains("in 1 file(s) checked, 1 input(s) skipped because of errors"),
        "{err}"
    );
    let (code, _, err) = kmapcheck(&["--strict", d]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = kmapcheck(&["--strict", "--format", "json", d]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("skipped because of errors"), "{err}");
    std::fs::remove_file(dir.join("binary.c")).unwrap();
    let (code, _, err) = kmapcheck(&["--strict", d]);
    assert_eq!(code, 0, "{err}");
    assert!(!err.contains("skipped"), "{err}");
    let (code, _, _) = kmapcheck(&["--strict", d, "fixtures/KM001/seed_mfill_retry.c"]);
    assert_eq!(code, 1);
    let (code, _, err) = kmapcheck(&["--file-timeout", "-1", d]);
    assert_eq!(code, 2, "{err}");
}

/// `--fix-inplace` writes only files that resolve inside the checked paths:
/// a symlink in the tree that points elsewhere is not followed by the walk,
/// and would be refused by the write (main.rs `inside_roots`) if it were.
#[cfg(unix)]
#[test]
fn fix_inplace_refuses_files_outside_the_checked_paths() {
    let base = std::env::temp_dir().join(format!("kmapcheck-fixroots-{}", std::process::id()));
    let (inside, outside) = (base.join("tree"), base.join("elsewhere"));
    std::fs::create_dir_all(&inside).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    let seed = std::fs::read("fixtures/KM001/seed_mfill_retry.c").unwrap();
    std::fs::write(outside.join("seed.c"), &seed).unwrap();
    std::fs::write(inside.join("own.c"), &seed).unwrap();
    std::os::unix::fs::symlink(outside.join("seed.c"), inside.join("link.c")).unwrap();
    let (code, _, err) =
        common::kmapcheck(&["--fix-inplace", "--format", "gcc", inside.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("in 1 file(s) checked"), "{err}");
    assert_eq!(
        std::fs::read(outside.join("seed.c")).unwrap(),
        seed,
        "wrote outside"
    );
    let own = std::fs::read_to_string(inside.join("own.c")).unwrap();
    assert!(
        own.contains("pagefault_disable();"),
        "the file inside was not fixed"
    );
    let _ = std::fs::remove_dir_all(&base);
}
