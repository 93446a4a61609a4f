//! `--format gitlab`: a GitLab Code Quality report (a JSON array of Code
//! Climate issues), uploaded with `artifacts: reports: codequality:`.
//! GitLab compares the fingerprints of a merge request's report with the
//! target branch's to show only new findings, so they must survive line
//! shifts: they are the same as SARIF's `partialFingerprints`.

use serde::Serialize;

use super::located;
use crate::diag::Severity;
use crate::driver::FileFindings;
use crate::fingerprint;

#[derive(Serialize)]
struct Issue<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    check_name: &'a str,
    description: String,
    categories: [&'static str; 1],
    severity: &'static str,
    fingerprint: String,
    location: Location<'a>,
}

#[derive(Serialize)]
struct Location<'a> {
    path: &'a str,
    lines: Lines,
}

#[derive(Serialize)]
struct Lines {
    begin: usize,
    end: usize,
}

/// Renders the report array (with a trailing newline).
pub fn render(files: &[FileFindings]) -> String {
    // GitLab keeps one issue per fingerprint: repeated ones are numbered.
    let mut numbering = fingerprint::Numbering::default();
    let issues: Vec<Issue<'_>> = located(files)
        .into_iter()
        .map(|l| {
            let fingerprint = numbering.number(fingerprint::of(l.diag, l.path, l.source));
            Issue {
                kind: "issue",
                check_name: l.diag.code,
                description: format!(
                    "{}: {} (in function `{}`)",
                    l.diag.code, l.diag.message, l.diag.function
                ),
                categories: ["Bug Risk"],
                // GitLab's scale is info < minor < major < critical < blocker;
                // a possible deadlock is critical, a suspicion major, advice info.
                severity: match l.diag.severity {
                    Severity::Error => "critical",
                    Severity::Warning => "major",
                    Severity::Note => "info",
                },
                fingerprint,
                location: Location {
                    path: l.path,
                    lines: Lines {
                        begin: l.line,
                        end: l.end_line,
                    },
                },
            }
        })
        .collect();
    let mut out =
        serde_json::to_string_pretty(&issues).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    out.push('\n');
    out
}
