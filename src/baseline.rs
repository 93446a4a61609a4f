//! Baselines: adopt kmapcheck on a tree with known findings and fail CI only
//! on new ones. `--write-baseline FILE` records today's findings,
//! `--baseline FILE` leaves them out of later reports.
//!
//! Findings are matched by fingerprint (src/fingerprint.rs: rule, path,
//! function and the access line's normalized text, numbered when repeated),
//! the value SARIF's `partialFingerprints` carries: a finding survives lines
//! added above it, and comes back if its line is edited.

use std::collections::HashSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::driver::FileFindings;
use crate::fingerprint;

/// Bumped when the file's shape or the fingerprint algorithm changes.
const VERSION: u32 = 1;

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    version: u32,
    /// The `partialFingerprints` key the fingerprints belong to.
    fingerprint_kind: String,
    findings: Vec<Entry>,
}

/// One finding; all but `fingerprint` are for the people reviewing the file.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    fingerprint: String,
    rule: String,
    path: String,
    function: String,
    message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum BaselineError {
    #[error("{path}: cannot read baseline: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: cannot write baseline: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not a kmapcheck baseline: {message}")]
    Invalid { path: String, message: String },
    #[error(
        "{path}: baseline version {found}, this kmapcheck reads version {VERSION}; write it again with --write-baseline"
    )]
    Version { path: String, found: u32 },
}

/// Fingerprints of every finding, in report order.
fn fingerprints(files: &[FileFindings]) -> Vec<String> {
    let mut numbering = fingerprint::Numbering::default();
    files
        .iter()
        .flat_map(|f| {
            f.diagnostics
                .iter()
                .map(|d| fingerprint::of(d, &f.path, &f.source))
        })
        .map(|fp| numbering.number(fp))
        .collect()
}

/// The baseline document for `files` (with a trailing newline).
pub fn render(files: &[FileFindings]) -> String {
    let mut prints = fingerprints(files).into_iter();
    let findings = files
        .iter()
        .flat_map(|f| f.diagnostics.iter().map(move |d| (f, d)))
        .map(|(f, d)| Entry {
            fingerprint: prints.next().unwrap_or_default(),
            rule: d.code.to_owned(),
            path: f.path.clone(),
            function: d.function.clone(),
            message: d.message.clone(),
        })
        .collect();
    let file = File {
        version: VERSION,
        fingerprint_kind: "kmapcheck/v1".to_owned(),
        findings,
    };
    let mut out =
        serde_json::to_string_pretty(&file).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    out.push('\n');
    out
}

/// Writes the baseline for `files` to `path`; returns how many findings it holds.
pub fn write(path: &Path, files: &[FileFindings]) -> Result<usize, BaselineError> {
    std::fs::write(path, render(files)).map_err(|source| BaselineError::Write {
        path: path.display().to_string(),
        source,
    })?;
    Ok(files.iter().map(|f| f.diagnostics.len()).sum())
}

/// A loaded baseline: the fingerprints of known findings.
#[derive(Debug)]
pub struct Baseline {
    known: HashSet<String>,
}

impl Baseline {
    pub fn parse(path: &Path, text: &str) -> Result<Self, BaselineError> {
        let invalid = |message: String| BaselineError::Invalid {
            path: path.display().to_string(),
            message,
        };
        // Check the version before the shape, so an old file gets the useful error.
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| invalid(e.to_string()))?;
        let found = value.get("version").and_then(serde_json::Value::as_u64);
        if found != Some(u64::from(VERSION)) {
            return match found.and_then(|v| u32::try_from(v).ok()) {
                Some(found) => Err(BaselineError::Version {
                    path: path.display().to_string(),
                    found,
                }),
                None => Err(invalid("no \"version\" number".to_owned())),
            };
        }
        let file: File = serde_json::from_value(value).map_err(|e| invalid(e.to_string()))?;
        Ok(Self {
            known: file.findings.into_iter().map(|e| e.fingerprint).collect(),
        })
    }

    pub fn load(path: &Path) -> Result<Self, BaselineError> {
        let text = std::fs::read_to_string(path).map_err(|source| BaselineError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse(path, &text)
    }

    /// Removes the known findings (and files left without any); returns how many.
    pub fn filter(&self, files: &mut Vec<FileFindings>) -> usize {
        let mut prints = fingerprints(files).into_iter();
        let mut removed = 0;
        for file in files.iter_mut() {
            file.diagnostics.retain(|_| {
                let known = prints.next().is_some_and(|fp| self.known.contains(&fp));
                removed += usize::from(known);
                !known
            });
        }
        files.retain(|f| !f.diagnostics.is_empty());
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_versions_and_shapes_are_named() {
        let p = Path::new("b.json");
        let old = r#"{"version": 0, "fingerprint_kind": "x", "findings": []}"#;
        assert!(matches!(
            Baseline::parse(p, old),
            Err(BaselineError::Version { found: 0, .. })
        ));
        let sarif = r#"{"version": "2.1.0", "runs": []}"#;
        assert!(matches!(
            Baseline::parse(p, sarif),
            Err(BaselineError::Invalid { .. })
        ));
        let extra = r#"{"version": 1, "fingerprint_kind": "x", "findings": [], "more": 1}"#;
        assert!(matches!(
            Baseline::parse(p, extra),
            Err(BaselineError::Invalid { .. })
        ));
    }
}
