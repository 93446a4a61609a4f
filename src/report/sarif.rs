//! `--format sarif`: SARIF 2.1.0 (OASIS), for GitHub code scanning
//! (`github/codeql-action/upload-sarif`) and other SARIF viewers. One run;
//! the tool driver lists every rule with its documentation so a viewer can
//! show it beside the finding. tests/formats.rs validates the output against
//! the official schema (tests/schemas/sarif-schema-2.1.0.json).

use serde::Serialize;

use crate::cfg::Span;
use crate::diag::{Diagnostic, LineIndex, Severity};
use crate::driver::FileFindings;
use crate::fingerprint;
use crate::rules::Rule;

/// Where a rule's documentation lives (`docs/rules/<CODE>.md`, generated from
/// the rule source), from `repository` in Cargo.toml.
pub const RULE_DOCS_BASE: &str = concat!(env!("CARGO_PKG_REPOSITORY"), "/blob/main/docs/rules/");

#[derive(Serialize)]
struct Log<'a> {
    #[serde(rename = "$schema")]
    schema: &'static str,
    version: &'static str,
    runs: [Run<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Run<'a> {
    tool: Tool<'a>,
    /// Our columns are computed in code points, not SARIF's default UTF-16 units.
    column_kind: &'static str,
    results: Vec<SarifResult<'a>>,
}

#[derive(Serialize)]
struct Tool<'a> {
    driver: Driver<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Driver<'a> {
    name: &'static str,
    version: &'static str,
    information_uri: &'static str,
    rules: Vec<ReportingDescriptor<'a>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ReportingDescriptor<'a> {
    id: &'a str,
    name: &'a str,
    short_description: Text,
    full_description: Text,
    help: Markdown,
    help_uri: String,
    default_configuration: Configuration,
    properties: RuleProperties,
}

#[derive(Serialize)]
struct Text {
    text: String,
}

#[derive(Serialize)]
struct Markdown {
    text: String,
    markdown: String,
}

#[derive(Serialize)]
struct Configuration {
    level: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RuleProperties {
    /// The checkpatch-style name `--select`/`--ignore` also accept.
    type_name: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SarifResult<'a> {
    rule_id: &'a str,
    rule_index: usize,
    level: &'static str,
    message: Text,
    locations: [Location<'a>; 1],
    #[serde(skip_serializing_if = "Vec::is_empty")]
    related_locations: Vec<RelatedLocation<'a>>,
    partial_fingerprints: PartialFingerprints,
    // `fixes` belongs here once `Diagnostic` carries a machine-applicable
    // edit; until then no finding has one and the property is absent.
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Location<'a> {
    physical_location: PhysicalLocation<'a>,
    logical_locations: [LogicalLocation<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RelatedLocation<'a> {
    id: usize,
    physical_location: PhysicalLocation<'a>,
    message: Text,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PhysicalLocation<'a> {
    artifact_location: ArtifactLocation<'a>,
    region: Region,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ArtifactLocation<'a> {
    uri: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    uri_base_id: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Region {
    start_line: usize,
    start_column: usize,
    end_line: usize,
    end_column: usize,
}

#[derive(Serialize)]
struct LogicalLocation<'a> {
    name: &'a str,
    kind: &'static str,
}

/// The `/v1` in the key names the algorithm (src/fingerprint.rs): a future
/// change of it can then be told apart from a new finding.
#[derive(Serialize)]
struct PartialFingerprints {
    #[serde(rename = "kmapcheck/v1")]
    v1: String,
}

fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Note => "note",
    }
}

/// A path as a URI reference: relative paths stay relative (to `%SRCROOT%`,
/// the checkout, which is where code scanning resolves them), absolute ones
/// become `file://` URIs; bytes outside RFC 3986's path characters are
/// percent-encoded.
fn artifact(path: &str) -> ArtifactLocation<'static> {
    let path = path.replace('\\', "/");
    let mut uri = String::with_capacity(path.len());
    for byte in path.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/!$&'()*+,;=:@".contains(&byte) {
            uri.push(char::from(byte));
        } else {
            uri.push_str(&format!("%{byte:02X}"));
        }
    }
    if path.starts_with('/') {
        ArtifactLocation {
            uri: format!("file://{uri}"),
            uri_base_id: None,
        }
    } else {
        ArtifactLocation {
            uri,
            uri_base_id: Some("%SRCROOT%"),
        }
    }
}

/// 1-based line and code-point column of `offset`; an invalid UTF-8 byte
/// counts as one column, as in the human format's display text.
fn position(index: &LineIndex, source: &[u8], offset: usize) -> (usize, usize) {
    let (line, byte_col) = index.position(offset);
    let start = offset - (byte_col - 1);
    let column = source[start..offset]
        .utf8_chunks()
        .map(|c| c.valid().chars().count() + c.invalid().len())
        .sum::<usize>()
        + 1;
    (line, column)
}

fn region(index: &LineIndex, source: &[u8], span: Span) -> Region {
    let (start_line, start_column) = position(index, source, span.start);
    let (end_line, end_column) = position(index, source, span.end);
    Region {
        start_line,
        start_column,
        end_line,
        end_column,
    }
}

fn descriptor(rule: &Rule) -> ReportingDescriptor<'_> {
    let explanation = rule.explanation();
    ReportingDescriptor {
        id: rule.code,
        name: rule.name,
        short_description: Text {
            text: rule.summary.to_owned(),
        },
        full_description: Text {
            text: explanation.clone(),
        },
        help: Markdown {
            text: explanation.clone(),
            markdown: explanation,
        },
        help_uri: format!("{RULE_DOCS_BASE}{}.md", rule.code),
        default_configuration: Configuration {
            level: level(rule.default_severity),
        },
        properties: RuleProperties {
            type_name: rule.type_name(),
        },
    }
}

/// The message text: the headline, then evidence and help on their own lines.
fn message(d: &Diagnostic) -> String {
    let mut text = d.message.clone();
    for note in &d.notes {
        text.push('\n');
        text.push_str(note);
    }
    if let Some(help) = &d.help {
        text.push_str("\nhelp: ");
        text.push_str(help);
    }
    text
}

/// Renders the SARIF log (with a trailing newline). `rules` is the tool's
/// rule table (every rule, enabled or not); results point into it.
pub fn render(files: &[FileFindings], rules: &[&Rule]) -> String {
    let mut numbering = fingerprint::Numbering::default();
    let mut results = Vec::new();
    for file in files {
        let index = LineIndex::new(&file.source);
        for d in &file.diagnostics {
            let physical = |span| PhysicalLocation {
                artifact_location: artifact(&file.path),
                region: region(&index, &file.source, span),
            };
            results.push(SarifResult {
                rule_id: d.code,
                rule_index: rules.iter().position(|r| r.code == d.code).unwrap_or(0),
                level: level(d.severity),
                message: Text { text: message(d) },
                locations: [Location {
                    physical_location: physical(d.primary.span),
                    logical_locations: [LogicalLocation {
                        name: &d.function,
                        kind: "function",
                    }],
                }],
                related_locations: d
                    .secondary
                    .iter()
                    .enumerate()
                    .map(|(id, label)| RelatedLocation {
                        id,
                        physical_location: physical(label.span),
                        message: Text {
                            text: label.message.clone(),
                        },
                    })
                    .collect(),
                partial_fingerprints: PartialFingerprints {
                    v1: numbering.number(fingerprint::of(d, &file.path, &file.source)),
                },
            });
        }
    }
    let log = Log {
        schema: "https://json.schemastore.org/sarif-2.1.0.json",
        version: "2.1.0",
        runs: [Run {
            tool: Tool {
                driver: Driver {
                    name: "kmapcheck",
                    version: env!("CARGO_PKG_VERSION"),
                    information_uri: env!("CARGO_PKG_REPOSITORY"),
                    rules: rules.iter().map(|r| descriptor(r)).collect(),
                },
            },
            column_kind: "unicodeCodePoints",
            results,
        }],
    };
    let mut out =
        serde_json::to_string_pretty(&log).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_become_uri_references() {
        let rel = artifact("drivers/a b/x%.c");
        assert_eq!(rel.uri, "drivers/a%20b/x%25.c");
        assert_eq!(rel.uri_base_id, Some("%SRCROOT%"));
        let abs = artifact("/src/linux/mm/shmem.c");
        assert_eq!(abs.uri, "file:///src/linux/mm/shmem.c");
        assert_eq!(abs.uri_base_id, None);
    }

    #[test]
    fn columns_count_code_points() {
        let src = "/* café */ x;\n".as_bytes();
        let index = LineIndex::new(src);
        let x = src.iter().position(|&b| b == b'x').unwrap();
        assert_eq!(position(&index, src, x), (1, 12));
    }
}
