//! Patch mode end to end: every `fixtures/patch/*.patch` and `*.mbox` is
//! checked against the pre-image tree `fixtures/patch/tree/` in every
//! format, and the output compared with `fixtures/patch/expected/<case>.<format>`
//! (an absent file means "prints nothing"); `<case>.stderr` holds the exit
//! status and stderr of the human run. Cases named `*.notree.*` run without
//! `--tree` (the hunks alone), `*.all.*` with `--all`.
//!
//! `KMAPCHECK_BLESS=1 cargo test --test patch` rewrites the expected files.

mod common;

use std::path::{Path, PathBuf};

use kmapcheck::patch::{self, DirTree, Tree};
use kmapcheck::{Analyzer, fix};

const FORMATS: [&str; 7] = [
    "human",
    "gcc",
    "json",
    "checkpatch",
    "sarif",
    "github",
    "gitlab",
];

fn cases() -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir("fixtures/patch")
        .expect("fixtures/patch exists")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "patch" || e == "mbox"))
        .collect();
    out.sort();
    out
}

fn args_for(case: &Path) -> Vec<String> {
    let name = case.file_name().unwrap().to_string_lossy().into_owned();
    let mut args = vec!["--patch".to_owned(), case.to_string_lossy().into_owned()];
    if !name.contains(".notree.") {
        args.extend(["--tree".to_owned(), "fixtures/patch/tree".to_owned()]);
    }
    if name.contains(".all.") {
        args.push("--all".to_owned());
    }
    args
}

fn compare(expected: &Path, got: &str, bless: bool, failures: &mut Vec<String>) {
    if bless {
        if got.is_empty() {
            let _ = std::fs::remove_file(expected);
        } else {
            std::fs::write(expected, got).unwrap();
        }
        return;
    }
    let want = std::fs::read_to_string(expected).unwrap_or_default();
    if want != got {
        failures.push(format!(
            "{}: output differs (KMAPCHECK_BLESS=1 to accept)\n--- expected\n{want}\n--- got\n{got}",
            expected.display()
        ));
    }
}

#[test]
fn patch_fixtures_match_expected_output_in_every_format() {
    let bless = std::env::var_os("KMAPCHECK_BLESS").is_some();
    let expected_dir = Path::new("fixtures/patch/expected");
    std::fs::create_dir_all(expected_dir).unwrap();
    let cases = cases();
    assert!(
        cases.len() >= 15,
        "patch fixtures went missing: {}",
        cases.len()
    );
    let mut failures = Vec::new();
    for case in &cases {
        let stem = case.file_name().unwrap().to_string_lossy().into_owned();
        let args = args_for(case);
        for format in FORMATS {
            let mut full: Vec<&str> = args.iter().map(String::as_str).collect();
            full.extend(["--format", format, "--color", "never"]);
            let (code, stdout, stderr) = common::kmapcheck(&full);
            let path = expected_dir.join(format!("{stem}.{format}"));
            compare(&path, &stdout, bless, &mut failures);
            if format == "human" {
                let status = format!("exit status: {code}\n{stderr}");
                compare(
                    &expected_dir.join(format!("{stem}.stderr")),
                    &status,
                    bless,
                    &mut failures,
                );
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn malformed_patches_fail_with_the_patch_line_and_exit_2() {
    for case in cases() {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        if !name.starts_with("malformed_") {
            continue;
        }
        let (code, stdout, stderr) = common::kmapcheck(&["--patch", &case.to_string_lossy()]);
        assert_eq!(code, 2, "{name}: {stderr}");
        assert!(stdout.is_empty(), "{name}");
        let prefix = format!("kmapcheck: error: {}:", case.display());
        assert!(stderr.starts_with(&prefix), "{name}: {stderr}");
        let line = stderr[prefix.len()..].split(':').next().unwrap_or_default();
        assert!(
            line.parse::<usize>().is_ok_and(|n| n >= 1),
            "{name}: no line in {stderr}"
        );
    }
}

#[test]
fn stdin_is_read_with_dash_and_named_like_checkpatch() {
    let input = std::fs::read("fixtures/patch/missing_pagefault_disable.patch").unwrap();
    let mut child = common::command()
        .args([
            "--patch",
            "-",
            "--tree",
            "fixtures/patch/tree",
            "--format",
            "checkpatch",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), &input).unwrap();
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout.contains("\nYour patch has style problems, please review.\n"),
        "{stdout}"
    );
    assert!(stdout.contains("#11: FILE: mm/convert.c:13:\n"), "{stdout}");
}

/// Every offered fix, applied to its fixture's post-image, leaves code that
/// still parses and on which KM002/KM003 are silent.
#[test]
fn fixes_apply_to_the_post_image_and_leave_it_clean() {
    let analyzer = Analyzer::new().unwrap();
    let tree = DirTree::new(Path::new("fixtures/patch/tree")).unwrap();
    let mut fixed_any = 0;
    for case in [
        "several_functions_and_files.patch",
        "evidence_errors.patch",
        "percpu.patch",
    ] {
        let input = std::fs::read(Path::new("fixtures/patch").join(case)).unwrap();
        let checked = patch::check(
            &analyzer,
            case.to_owned(),
            input,
            Some(&tree as &dyn Tree),
            patch::Options::default(),
        )
        .unwrap();
        for file in &checked.files {
            let edits: Vec<fix::Edit> = file
                .findings
                .diagnostics
                .iter()
                .flat_map(|d| d.fixes.iter().cloned())
                .collect();
            if edits.is_empty() {
                continue;
            }
            fixed_any += 1;
            let fixed = fix::apply(&file.findings.source, &edits).unwrap();
            let report = analyzer.check_source(&fixed);
            assert_eq!(
                report.stats.parse_errors, 0,
                "{case}: {}",
                file.findings.path
            );
            let again =
                patch::check_images(&analyzer, &file.findings.path, &file.images.pre, &fixed);
            let left: Vec<_> = again
                .iter()
                .filter(|d| matches!(d.code, "KM002" | "KM003"))
                .map(|d| d.message.clone())
                .collect();
            assert!(
                left.is_empty(),
                "{case}: {}: still {left:?}",
                file.findings.path
            );
            // The diff --fix prints is the same change.
            let diff =
                fix::unified_diff(&file.findings.path, &file.findings.source, &edits).unwrap();
            assert!(
                diff.contains("+\tpagefault_disable();\n")
                    || diff.contains("+\tpreempt_disable();\n")
            );
        }
    }
    assert!(fixed_any >= 3, "fixes went missing: {fixed_any}");
}

#[test]
fn git_modes_read_commits_the_index_and_the_working_tree() {
    let dir = std::env::temp_dir().join(format!("kmapcheck-git-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("mm")).unwrap();
    let git = |args: &[&str]| {
        let out = std::process::Command::new("git")
            .args(["-c", "user.name=T", "-c", "user.email=t@example.org"])
            .args(args)
            .current_dir(&dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    git(&["init", "-q"]);
    std::fs::copy("fixtures/patch/tree/mm/convert.c", dir.join("mm/convert.c")).unwrap();
    git(&["add", "."]);
    // Before the first commit (no HEAD): every staged file is new, and the
    // pre-existing KM001 in peek_user_word() is new too.
    let (code, stdout, stderr) = common::kmapcheck_in(&dir, &["--staged", "--format", "gcc"]);
    assert_eq!((code, stdout.lines().count()), (1, 1), "{stdout}{stderr}");
    git(&["commit", "-qm", "base"]);
    git(&[
        "apply",
        "--",
        &std::fs::canonicalize("fixtures/patch/evidence_errors.patch")
            .unwrap()
            .to_string_lossy(),
    ]);
    // Working tree only: --diff sees it, --staged does not.
    let (code, stdout, _) = common::kmapcheck_in(&dir, &["--diff", "--format", "gcc"]);
    assert_eq!((code, stdout.lines().count()), (1, 2), "{stdout}");
    let (code, stdout, _) = common::kmapcheck_in(&dir, &["--staged", "--format", "gcc"]);
    assert_eq!((code, stdout.as_str()), (0, ""));
    git(&["add", "."]);
    let (code, stdout, _) = common::kmapcheck_in(&dir, &["--staged", "--format", "gcc"]);
    assert_eq!((code, stdout.lines().count()), (1, 2), "{stdout}");
    git(&["commit", "-qm", "mm: convert to kmap_local_page()"]);
    std::fs::write(dir.join("notes.txt"), "no C here\n").unwrap();
    git(&["add", "."]);
    git(&["commit", "-qm", "docs: notes"]);
    let (code, stdout, _) =
        common::kmapcheck_in(&dir, &["--git", "HEAD~2..HEAD", "--format", "checkpatch"]);
    assert_eq!(code, 1);
    assert!(
        stdout.contains("(\"mm: convert to kmap_local_page()\") has style problems"),
        "{stdout}"
    );
    assert!(
        stdout.contains("(\"docs: notes\") has no obvious style problems"),
        "{stdout}"
    );
    assert!(stdout.starts_with("----"), "{stdout}");
    let (code, stdout, _) =
        common::kmapcheck_in(&dir, &["--git", "HEAD", "--format", "checkpatch"]);
    assert_eq!(code, 0, "{stdout}");
    assert!(
        !stdout.starts_with("----"),
        "one commit: no dashed header: {stdout}"
    );
    // install-hook: refuses to replace a hook without --force.
    let (code, _, stderr) = common::kmapcheck_in(&dir, &["install-hook"]);
    assert_eq!(code, 0, "{stderr}");
    let hook = std::fs::read_to_string(dir.join(".git/hooks/pre-commit")).unwrap();
    assert!(hook.contains("--staged"), "{hook}");
    let (code, _, stderr) = common::kmapcheck_in(&dir, &["install-hook"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--force"), "{stderr}");
    assert_eq!(
        common::kmapcheck_in(&dir, &["install-hook", "--force"]).0,
        0
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// checkpatch runs from the tree the patch applies to: so does patch mode
/// when the current directory holds the patched files.
#[test]
fn the_current_directory_is_the_default_tree_when_it_holds_the_files() {
    let tree = Path::new("fixtures/patch/tree");
    let patch = std::fs::canonicalize("fixtures/patch/evidence_errors.patch").unwrap();
    let patch = patch.to_string_lossy();
    let (code, stdout, stderr) =
        common::kmapcheck_in(tree, &["--patch", &patch, "--format", "gcc"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(!stderr.contains("hunks"), "the tree was not used: {stderr}");
    let with_tree =
        std::fs::read_to_string("fixtures/patch/expected/evidence_errors.patch.gcc").unwrap();
    assert_eq!(stdout, with_tree);
    // Elsewhere, the hunks alone, and stderr says so.
    let (_, _, stderr) = common::kmapcheck(&["--patch", &patch, "--format", "gcc"]);
    assert!(stderr.contains("only the hunks were analysed"), "{stderr}");
}

/// A patch of thousands of hunks over a large file stays linear: every
/// per-hunk and per-function step is a lookup, not a scan (application,
/// rebuilt images, changed functions, masking).
#[test]
fn many_hunks_on_a_large_file_stay_fast() {
    const N: usize = 5_000;
    let dir = std::env::temp_dir().join(format!("kmapcheck-many-hunks-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("mm")).unwrap();
    let mut pre = String::new();
    let mut patch = String::from("--- a/mm/big.c\n+++ b/mm/big.c\n");
    for i in 0..N {
        pre.push_str(&format!("static int f{i}(void)\n{{\n\treturn {i};\n}}\n\n"));
        let line = i * 5 + 1;
        patch.push_str(&format!(
            "@@ -{line},4 +{line},4 @@\n static int f{i}(void)\n {{\n-\treturn {i};\n+\treturn -{i};\n }}\n"
        ));
    }
    std::fs::write(dir.join("mm/big.c"), &pre).unwrap();
    std::fs::write(dir.join("big.patch"), &patch).unwrap();
    let started = std::time::Instant::now();
    for tree in [Some(dir.to_string_lossy().into_owned()), None] {
        let patch = dir.join("big.patch").to_string_lossy().into_owned();
        let mut args = vec!["--patch", patch.as_str(), "--format", "gcc"];
        if let Some(t) = &tree {
            args.extend(["--tree", t.as_str()]);
        }
        let (code, _, stderr) = common::kmapcheck(&args);
        assert_eq!(code, 0, "{stderr}");
    }
    let elapsed = started.elapsed();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(elapsed.as_secs() < 20, "{N} hunks took {elapsed:?}");
}
