//! `--write-baseline` / `--baseline` through the binary: known findings stay
//! known across line shifts and re-indenting; new and edited ones come back.

mod common;

use std::path::PathBuf;

use common::kmapcheck_in as kmapcheck;

fn project(name: &str) -> (PathBuf, String) {
    let dir = std::env::temp_dir().join(format!("kmapcheck-bl-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let source = std::fs::read_to_string("fixtures/report/mixed.c").unwrap();
    std::fs::write(dir.join("mixed.c"), &source).unwrap();
    (dir, source)
}

#[test]
fn baseline_hides_known_findings_across_line_shifts_but_not_new_ones() {
    let (dir, source) = project("shift");
    let (code, out, err) = kmapcheck(&dir, &["--write-baseline", "base.json", "mixed.c"]);
    assert_eq!((code, out.as_str()), (0, ""), "{err}");
    assert!(
        err.contains("wrote 2 finding(s) to baseline base.json"),
        "{err}"
    );
    let (code, out, _) = kmapcheck(
        &dir,
        &["--baseline", "base.json", "--format", "gcc", "mixed.c"],
    );
    assert_eq!((code, out.as_str()), (0, ""));

    // Lines above, re-indented body: still known.
    let shifted = format!(
        "/* a\n * b */\n\n{}",
        source.replace("\n\tvoid *kaddr;", "\n    void *kaddr;")
    );
    std::fs::write(dir.join("mixed.c"), &shifted).unwrap();
    let (code, out, err) = kmapcheck(
        &dir,
        &[
            "--baseline",
            "base.json",
            "--format",
            "gcc",
            "--stats",
            "mixed.c",
        ],
    );
    assert_eq!((code, out.as_str()), (0, ""));
    assert!(err.contains("in the baseline:   2"), "{err}");

    // A new finding (a copy of a known function under a new name) and an
    // edited access line are reported; the untouched one is not.
    let new_fn = source[source.find("static int rpt_fill_locked").unwrap()..]
        .split("\n}\n")
        .next()
        .unwrap()
        .replace("rpt_fill_locked", "rpt_fill_locked_again");
    let edited = format!(
        "{}\n{new_fn}\n}}\n",
        shifted.replace(
            "ret = copy_from_user(vaddr,",
            "ret = copy_from_user(vaddr ,"
        )
    );
    std::fs::write(dir.join("mixed.c"), &edited).unwrap();
    let (code, out, _) = kmapcheck(
        &dir,
        &["--baseline", "base.json", "--format", "gcc", "mixed.c"],
    );
    assert_eq!(code, 1);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[0].contains("kmap_local_folio"), "{out}");
    let new_access = edited
        .lines()
        .collect::<Vec<_>>()
        .iter()
        .rposition(|l| l.contains("copy_from_user(kaddr, src, len)"))
        .unwrap();
    assert!(
        lines[1].starts_with(&format!("mixed.c:{}:", new_access + 1)),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn bad_baselines_exit_2_with_one_line() {
    let (dir, _) = project("bad");
    std::fs::write(dir.join("sarif.json"), r#"{"version":"2.1.0","runs":[]}"#).unwrap();
    for (file, wanted) in [
        ("missing.json", "missing.json: cannot read baseline"),
        ("sarif.json", "sarif.json: not a kmapcheck baseline"),
    ] {
        let (code, _, err) = kmapcheck(&dir, &["--baseline", file, "mixed.c"]);
        assert_eq!(code, 2, "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(wanted), "{err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
