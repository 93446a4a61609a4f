//! Which rules run and which findings are kept: `--select`/`--ignore` (or the
//! config's `[rules]`) by code or checkpatch-style type name, per-rule
//! severity overrides, and `--min-severity`.

use crate::diag::Severity;
use crate::driver::FileFindings;
use crate::rules::{RULES, Rule};

#[derive(Debug, thiserror::Error)]
pub enum SelectError {
    #[error(
        "unknown rule `{}` (see --list-rules for codes and type names)",
        .0.escape_debug()
    )]
    UnknownRule(String),
}

/// The rule a user-given name means: a code (`KM001`) or a type name
/// (`KMAP_FAULT_IN_KMAP_LOCAL`), in any case.
pub fn resolve(name: &str) -> Result<&'static Rule, SelectError> {
    let name = name.trim();
    RULES
        .iter()
        .copied()
        .find(|r| r.code.eq_ignore_ascii_case(name) || r.type_name().eq_ignore_ascii_case(name))
        .ok_or_else(|| SelectError::UnknownRule(name.to_owned()))
}

/// What the user asked for, from the config file and the command line.
#[derive(Debug, Default)]
pub struct Request<'a> {
    /// `None`: every rule enabled by default (not KM011). The command
    /// line's list replaces the config's.
    pub select: Option<&'a [String]>,
    /// Both lists apply: the config's and the command line's.
    pub ignore: Vec<&'a str>,
    pub severity: Vec<(&'a str, Severity)>,
    pub min_severity: Option<Severity>,
}

/// A resolved selection.
pub struct Selection {
    enabled: Vec<&'static Rule>,
    overrides: Vec<(&'static str, Severity)>,
    min_severity: Severity,
}

impl Selection {
    pub fn new(request: &Request<'_>) -> Result<Self, SelectError> {
        let mut enabled: Vec<&'static Rule> = match request.select {
            None => crate::rules::default_rules(),
            Some(names) => {
                let mut rules = Vec::new();
                for name in names {
                    let rule = resolve(name)?;
                    if !rules.iter().any(|r: &&Rule| r.code == rule.code) {
                        rules.push(rule);
                    }
                }
                rules
            }
        };
        for name in &request.ignore {
            let rule = resolve(name)?;
            enabled.retain(|r| r.code != rule.code);
        }
        // Keep registry order whatever order the user named the rules in.
        enabled.sort_by_key(|r| r.code);
        let mut overrides = Vec::new();
        for (name, severity) in &request.severity {
            overrides.push((resolve(name)?.code, *severity));
        }
        Ok(Self {
            enabled,
            overrides,
            min_severity: request.min_severity.unwrap_or(Severity::Note),
        })
    }

    /// The rules to run.
    pub fn rules(&self) -> Vec<&'static Rule> {
        self.enabled.clone()
    }

    /// Applies severity overrides, then drops findings below the minimum
    /// severity and files left without findings; returns how many were dropped.
    pub fn apply(&self, files: &mut Vec<FileFindings>) -> usize {
        let mut dropped = 0;
        for file in files.iter_mut() {
            for d in &mut file.diagnostics {
                if let Some((_, severity)) = self.overrides.iter().find(|(c, _)| *c == d.code) {
                    d.severity = *severity;
                }
            }
            let before = file.diagnostics.len();
            file.diagnostics.retain(|d| d.severity >= self.min_severity);
            dropped += before - file.diagnostics.len();
        }
        files.retain(|f| !f.diagnostics.is_empty());
        dropped
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_type_names_resolve_in_any_case() {
        assert_eq!(resolve("km001").unwrap().code, "KM001");
        assert_eq!(resolve("kmap_fault_in_kmap_local").unwrap().code, "KM001");
        assert!(matches!(resolve("KM999"), Err(SelectError::UnknownRule(n)) if n == "KM999"));
    }

    #[test]
    fn ignore_wins_over_select() {
        let select = vec!["KM001".to_owned()];
        let s = Selection::new(&Request {
            select: Some(&select),
            ignore: vec!["KMAP_FAULT_IN_KMAP_LOCAL"],
            ..Request::default()
        })
        .unwrap();
        assert!(s.rules().is_empty());
        let all = Selection::new(&Request::default()).unwrap();
        assert_eq!(all.rules().len(), crate::rules::default_rules().len());
        assert!(all.rules().iter().all(|r| r.default_enabled));
    }
}
