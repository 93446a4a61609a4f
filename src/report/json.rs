//! `--format json`: one document, schema version 1 (docs/json.md).

use serde::Serialize;

use super::located;
use crate::driver::{FileFindings, RunStats};

#[derive(Serialize)]
struct Document<'a> {
    version: u32,
    findings: Vec<Finding<'a>>,
    stats: Stats,
}

#[derive(Serialize)]
struct Finding<'a> {
    rule: &'a str,
    severity: &'a str,
    path: &'a str,
    line: usize,
    column: usize,
    end_line: usize,
    end_column: usize,
    function: &'a str,
    message: &'a str,
    notes: Vec<String>,
}

#[derive(Serialize)]
struct Stats {
    files_seen: usize,
    files_prefiltered_out: usize,
    files_analyzed: usize,
    files_skipped: usize,
    functions_analyzed: usize,
    functions_complete: usize,
    functions_partial: usize,
    functions_with_parse_errors: usize,
}

/// Renders the JSON document (with a trailing newline).
pub fn render(files: &[FileFindings], stats: &RunStats) -> String {
    let findings = located(files)
        .into_iter()
        .map(|l| {
            let mut notes: Vec<String> = l
                .diag
                .secondary
                .iter()
                .zip(&l.secondary)
                .map(|(label, (line, col))| format!("{}:{line}:{col}: {}", l.path, label.message))
                .collect();
            notes.extend(l.diag.notes.iter().cloned());
            notes.extend(l.diag.help.iter().map(|h| format!("help: {h}")));
            Finding {
                rule: l.diag.code,
                severity: l.diag.severity.as_str(),
                path: l.path,
                line: l.line,
                column: l.column,
                end_line: l.end_line,
                end_column: l.end_column,
                function: &l.diag.function,
                message: &l.diag.message,
                notes,
            }
        })
        .collect();
    let doc = Document {
        version: 1,
        findings,
        stats: Stats {
            files_seen: stats.files_seen,
            files_prefiltered_out: stats.prefiltered_out,
            files_analyzed: stats.files_analyzed,
            files_skipped: stats.files_skipped,
            functions_analyzed: stats.functions,
            functions_complete: stats.complete,
            functions_partial: stats.partial,
            functions_with_parse_errors: stats.parse_errors,
        },
    };
    let mut out =
        serde_json::to_string_pretty(&doc).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    out.push('\n');
    out
}
