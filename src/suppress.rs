//! In-source suppression: a reviewed finding is silenced by a comment on its
//! line or the line above, with the reason a reviewer needs:
//!
//! ```c
//! /* kmapcheck: allow KM001 -- src is a pinned kernel bounce buffer */
//! if (copy_from_user(kaddr, src, len))  // kmapcheck: allow(KM001): same
//! ```
//!
//! Rules are named by code or type name, several separated by commas. A
//! directive without a reason still silences the finding (a build must not
//! break over a comment) but earns a warning line on stderr, so the missing
//! reason shows up in review and CI logs.

use std::collections::BTreeSet;

use crate::diag::LineIndex;
use crate::driver::FileFindings;
use crate::select;

/// One `kmapcheck: allow` comment.
#[derive(Debug, PartialEq, Eq)]
pub struct Directive {
    /// Byte column (0-based) of `kmapcheck:` in its line.
    pub column: usize,
    pub rules: Vec<String>,
    pub reason: Option<String>,
}

/// Reads a directive from one source line, if the line has one inside a comment.
pub fn parse_line(line: &str) -> Option<Directive> {
    let column = line.find("kmapcheck:")?;
    let before = &line[..column];
    let in_comment =
        before.contains("/*") || before.contains("//") || before.trim_start().starts_with('*');
    if !in_comment {
        return None;
    }
    let rest = line[column + "kmapcheck:".len()..].trim_start();
    let rest = rest.strip_prefix("allow")?;
    let (rules, reason) = if let Some(inner) = rest.strip_prefix('(') {
        let (rules, after) = inner.split_once(')')?;
        (rules, after.trim_start().strip_prefix(':'))
    } else if rest.starts_with(char::is_whitespace) {
        match rest.split_once("--") {
            Some((rules, reason)) => (rules, Some(reason)),
            None => (rest.split("*/").next().unwrap_or(rest), None),
        }
    } else {
        return None;
    };
    let rules: Vec<String> = rules
        .split([',', ' ', '\t'])
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
        .collect();
    if rules.is_empty() {
        return None;
    }
    let reason = reason
        .map(|r| r.split("*/").next().unwrap_or(r).trim().to_owned())
        .filter(|r| !r.is_empty());
    Some(Directive {
        column,
        rules,
        reason,
    })
}

/// What suppression did to a run.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Findings silenced by a directive.
    pub suppressed: usize,
    /// One stderr line per directive without a reason, or naming an
    /// unknown rule, that silenced or was meant to silence a finding.
    pub warnings: Vec<String>,
}

/// The text of 1-based line `n` of `source`, if it exists.
fn line_text<'a>(source: &'a [u8], starts: &[usize], n: usize) -> Option<&'a str> {
    let start = *starts.get(n.checked_sub(1)?)?;
    let end = starts.get(n).map_or(source.len(), |&s| s.saturating_sub(1));
    std::str::from_utf8(&source[start..end]).ok()
}

/// Removes suppressed findings (and files left without any).
pub fn apply(files: &mut Vec<FileFindings>) -> Outcome {
    let mut outcome = Outcome::default();
    // (path, line, message): a directive is named once however many findings it covers.
    let mut warned: BTreeSet<(String, usize, String)> = BTreeSet::new();
    for file in files.iter_mut() {
        let index = LineIndex::new(&file.source);
        let mut starts = vec![0];
        starts.extend(memchr::memchr_iter(b'\n', &file.source).map(|i| i + 1));
        let before = file.diagnostics.len();
        file.diagnostics.retain(|d| {
            let (line, _) = index.position(d.primary.span.start);
            for n in [line, line.saturating_sub(1)] {
                let Some(directive) =
                    line_text(&file.source, &starts, n).and_then(parse_line)
                else {
                    continue;
                };
                let mut matched = false;
                for name in &directive.rules {
                    match select::resolve(name) {
                        Ok(rule) => matched |= rule.code == d.code,
                        Err(e) => {
                            warned.insert((file.path.clone(), n, format!(
                                "{}:{n}:{}: warning: kmapcheck suppression: {e} [kmapcheck]",
                                file.path,
                                directive.column + 1
                            )));
                        }
                    }
                }
                if !matched {
                    continue;
                }
                if directive.reason.is_none() {
                    warned.insert((file.path.clone(), n, format!(
                        "{}:{n}:{}: warning: kmapcheck suppression of {} has no reason; write `kmapcheck: allow {} -- why` [kmapcheck]",
                        file.path,
                        directive.column + 1,
                        d.code,
                        d.code
                    )));
                }
                return false;
            }
            true
        });
        outcome.suppressed += before - file.diagnostics.len();
    }
    files.retain(|f| !f.diagnostics.is_empty());
    outcome.warnings = warned.into_iter().map(|(_, _, w)| w).collect();
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules_and_reason(line: &str) -> Option<(Vec<String>, Option<String>)> {
        parse_line(line).map(|d| (d.rules, d.reason))
    }

    #[test]
    fn both_documented_forms_parse() {
        assert_eq!(
            rules_and_reason("\t/* kmapcheck: allow KM001 -- pinned buffer */"),
            Some((vec!["KM001".into()], Some("pinned buffer".into())))
        );
        assert_eq!(
            rules_and_reason("x(); // kmapcheck: allow(KM001, KMAP_FAULT_IN_KMAP_LOCAL): why"),
            Some((
                vec!["KM001".into(), "KMAP_FAULT_IN_KMAP_LOCAL".into()],
                Some("why".into())
            ))
        );
        assert_eq!(
            rules_and_reason(" * kmapcheck: allow KM001 -- inside a block comment"),
            Some((vec!["KM001".into()], Some("inside a block comment".into())))
        );
    }

    #[test]
    fn missing_reasons_and_non_directives() {
        assert_eq!(
            rules_and_reason("/* kmapcheck: allow KM001 */"),
            Some((vec!["KM001".into()], None))
        );
        assert_eq!(
            rules_and_reason("// kmapcheck: allow(KM001)"),
            Some((vec!["KM001".into()], None))
        );
        assert_eq!(
            rules_and_reason("/* kmapcheck: allow KM001 --  */"),
            Some((vec!["KM001".into()], None))
        );
        // Not in a comment, no rule, or another word.
        assert_eq!(
            rules_and_reason("s = \"kmapcheck: allow KM001 -- x\";"),
            None
        );
        assert_eq!(rules_and_reason("// kmapcheck: allow -- x"), None);
        assert_eq!(rules_and_reason("// kmapcheck: allowed KM001"), None);
    }
}
