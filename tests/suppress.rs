//! `kmapcheck: allow` comments through the binary, on fixtures/report/mixed.c:
//! one directive with a reason, one without (silenced, but named on stderr).

mod common;

use common::kmapcheck;

#[test]
fn suppressed_findings_are_gone_counted_and_reasonless_ones_named() {
    let (code, out, err) = kmapcheck(&["--format", "gcc", "--stats", "fixtures/report/mixed.c"]);
    assert_eq!(code, 1);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 2, "{out}");
    assert!(
        lines
            .iter()
            .all(|l| !l.contains(":52:") && !l.contains(":67:")),
        "{out}"
    );
    let warnings: Vec<&str> = err.lines().filter(|l| l.contains("[kmapcheck]")).collect();
    assert_eq!(
        warnings,
        [
            "fixtures/report/mixed.c:67:41: warning: kmapcheck suppression of KM001 has no reason; write `kmapcheck: allow KM001 -- why` [kmapcheck]"
        ]
    );
    assert!(err.contains("suppressed in source: 2"), "{err}");
}

#[test]
fn a_directive_for_another_or_unknown_rule_does_not_silence() {
    let dir = std::env::temp_dir().join(format!("kmapcheck-sup-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let original = std::fs::read_to_string("fixtures/report/mixed.c").unwrap();
    let edited = original.replace("allow KM001 -- src points", "allow KM999 -- src points");
    let path = dir.join("mixed.c");
    std::fs::write(&path, edited).unwrap();
    let (code, out, err) = kmapcheck(&["--format", "gcc", path.to_str().unwrap()]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(code, 1);
    assert_eq!(out.lines().count(), 3, "{out}");
    assert!(
        err.contains(":51:5: warning: kmapcheck suppression: unknown rule `KM999`"),
        "{err}"
    );
}
