//! `.kmapcheck.toml` and rule selection through the binary: discovery,
//! selection, severity, exclusion, extra API knowledge, and bad configs.

mod common;

use std::path::{Path, PathBuf};

use common::kmapcheck_in as kmapcheck;

fn project(name: &str, config: Option<&str>) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kmapcheck-cfg-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("mm/sub")).unwrap();
    std::fs::create_dir_all(dir.join("drivers/staging")).unwrap();
    let mixed = std::fs::read("fixtures/report/mixed.c").unwrap();
    std::fs::write(dir.join("mm/sub/mixed.c"), &mixed).unwrap();
    std::fs::write(dir.join("drivers/staging/mixed.c"), &mixed).unwrap();
    if let Some(text) = config {
        std::fs::write(dir.join(".kmapcheck.toml"), text).unwrap();
    }
    dir
}

/// Findings as (path, line, severity) from gcc-format output.
fn findings(out: &str) -> Vec<(String, String, String)> {
    out.lines()
        .map(|l| {
            let mut parts = l.splitn(5, ':');
            let path = parts.next().unwrap().to_owned();
            let line = parts.next().unwrap().to_owned();
            let _col = parts.next();
            let severity = parts.next().unwrap().trim().to_owned();
            (path, line, severity)
        })
        .collect()
}

#[test]
fn config_is_found_upward_and_excludes_and_overrides() {
    let dir = project(
        "upward",
        Some(
            "exclude = [\"drivers/staging/**\"]\n[rules]\nseverity = { KMAP_FAULT_IN_KMAP_LOCAL = \"warning\" }\n",
        ),
    );
    // Scanning a subdirectory still finds the config two levels up.
    let (code, out, err) = kmapcheck(&dir.join("mm"), &["--format", "gcc", "sub"]);
    assert_eq!(code, 1, "{err}");
    let got = findings(&out);
    assert!(!got.is_empty());
    assert!(got.iter().all(|f| f.2 == "warning"), "{out}");
    // The excluded directory is skipped, named or walked.
    let (code, out, err) = kmapcheck(&dir, &["--format", "gcc", "."]);
    assert_eq!(code, 1, "{err}");
    assert!(out.lines().all(|l| l.starts_with("./mm/")), "{out}");
    let (code, out, _) = kmapcheck(&dir, &["--format", "gcc", "drivers/staging/mixed.c"]);
    assert_eq!((code, out.as_str()), (0, ""));
}

#[test]
fn min_severity_and_ignore_from_config_and_command_line() {
    let dir = project("select", Some("[rules]\nmin-severity = \"error\"\n"));
    let (_, out, _) = kmapcheck(&dir, &["--format", "gcc", "mm"]);
    let all_errors = findings(&out);
    assert!(all_errors.iter().all(|f| f.2 == "error"), "{out}");
    // The command line's minimum wins over the config's.
    let (_, out, _) = kmapcheck(
        &dir,
        &["--format", "gcc", "--min-severity", "warning", "mm"],
    );
    assert!(findings(&out).len() > all_errors.len(), "{out}");
    let (code, out, _) = kmapcheck(&dir, &["--ignore", "KM001", "--format", "gcc", "mm"]);
    assert_eq!((code, out.as_str()), (0, ""));
    // --stats counts what --min-severity dropped.
    let (_, _, err) = kmapcheck(&dir, &["--stats", "--format", "gcc", "mm"]);
    assert!(err.contains("below --min-severity: 1"), "{err}");
}

#[test]
fn explicit_config_and_disagreeing_configs() {
    let dir = project("explicit", None);
    let other = dir.join("other.toml");
    std::fs::write(&other, "[rules]\nignore = [\"KM001\"]\n").unwrap();
    let (code, _, err) = kmapcheck(&dir, &["--config", "other.toml", "mm"]);
    assert_eq!(code, 0, "{err}");
    std::fs::write(dir.join("mm/.kmapcheck.toml"), "").unwrap();
    let (code, _, err) = kmapcheck(&dir, &["mm", "drivers"]);
    assert_eq!(code, 2);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("different .kmapcheck.toml files"), "{err}");
}

#[test]
fn bad_configs_exit_2_with_one_line_naming_the_problem() {
    for (config, wanted) in [
        ("exlcude = []\n", "unknown field `exlcude`"),
        ("[rules]\nselect = [\"KM999\"]\n", "unknown rule `KM999`"),
        ("[api]\nfuncs = []\n", "unknown field `funcs`"),
        (
            "[[api.context]]\ngroup = \"g\"\nkind = \"sleepy\"\nacquire = []\nrelease = []\n",
            "sleepy",
        ),
        ("exclude = [\"a/[b\"]\n", "exclude pattern `a/[b`"),
        (
            "[[api.access]]\ninatomic = false\nnames = [\"kunmap_local\"]\n",
            "`kunmap_local` is already in the built-in catalogue",
        ),
        // User text with a newline stays on the error's one line (the first
        // is the config fuzz target's crash input, reduced).
        ("exclude = [\"*}\\n*\"]\n", "exclude pattern `*}\\n*`"),
        ("[rules]\nselect = [\"KM\\n1\"]\n", "unknown rule `KM\\n1`"),
        (
            include_str!("regressions/config-multiline-glob-error.toml"),
            "unopened alternate group",
        ),
    ] {
        let dir = project("bad", Some(config));
        let (code, out, err) = kmapcheck(&dir, &["mm"]);
        assert_eq!(code, 2, "{config}: {out}{err}");
        assert_eq!(err.lines().count(), 1, "{config}: {err}");
        assert!(err.contains(wanted), "{config}: {err}");
        assert!(err.contains(".kmapcheck.toml"), "{config}: {err}");
    }
}

/// Out-of-tree code: its own copy helper and its own lock are unknown to the
/// built-in catalogue; the config teaches them. (The iterator entry goes
/// through the loader too, but a macro call followed by a block is a loop
/// even without it; src/catalogue.rs tests `is_iterator` directly.)
#[test]
fn extra_api_knowledge_makes_out_of_tree_code_checkable() {
    let source = "\
static int oot_fill(struct oot_dev *d, struct page *page, const void __user *src)
{
\tvoid *kaddr;
\tint ret = 0;

\toot_lock(d);
\toot_for_each_slot(d, slot) {
\t\tkaddr = kmap_local_page(page);
\t\tif (oot_copy_in(kaddr, src, 8))
\t\t\tret = -EFAULT;
\t\tkunmap_local(kaddr);
\t}
\toot_unlock(d);
\treturn ret;
}
";
    let dir = project("api", None);
    std::fs::write(dir.join("mm/oot.c"), source).unwrap();
    let (code, out, _) = kmapcheck(&dir, &["--format", "gcc", "mm/oot.c"]);
    assert_eq!(
        (code, out.as_str()),
        (0, ""),
        "no finding without the config"
    );
    std::fs::write(
        dir.join(".kmapcheck.toml"),
        r#"
[api]
iterators = ["oot_for_each_slot"]

[[api.access]]
inatomic = false
names = ["oot_copy_in"]

[[api.context]]
group = "oot"
kind = "atomic"
acquire = ["oot_lock"]
release = ["oot_unlock"]
"#,
    )
    .unwrap();
    let (code, out, err) = kmapcheck(&dir, &["--format", "gcc", "mm/oot.c"]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        out,
        "mm/oot.c:9:7: error: `oot_copy_in()` may fault under `kmap_local_page()`: pagefault_disable() is missing [KM001]\n"
    );
}

#[test]
fn bad_flags_exit_2_with_one_line_naming_the_flag() {
    let cwd = Path::new(".");
    for (args, wanted) in [
        (&["--no-such-flag"][..], "--no-such-flag"),
        (&["--format", "yaml", "."], "yaml"),
        (&["--min-severity", "info", "."], "info"),
        (
            &["--baseline", "a", "--write-baseline", "b", "."],
            "--write-baseline",
        ),
        (&["--select", "KM999", "fixtures"], "KM999"),
    ] {
        let (code, out, err) = kmapcheck(cwd, args);
        assert_eq!(code, 2, "{args:?}: {out}{err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.starts_with("kmapcheck: error: "), "{args:?}: {err}");
        assert!(err.contains(wanted), "{args:?}: {err}");
    }
}
