//! `--format checkpatch`: the layout of scripts/checkpatch.pl with
//! `--show-types`, so scripts and habits built around it work unchanged:
//!
//! ```text
//! WARNING:KMAP_CONVERSION_DROPS_PAGEFAULT_DISABLE: message
//! #22: FILE: mm/foo.c:4:
//! +        ret = copy_from_user(kaddr, src, len);
//!
//! total: 0 errors, 1 warnings, 10 lines checked
//!
//! foo.patch has style problems, please review.
//! ```
//!
//! Several units (a `--git` range) each get checkpatch's dashed header. The
//! one-line (`--terse`/`--emacs`) form is `--format gcc`.

use std::fmt::Write;

use crate::diag::{Diagnostic, Severity};
use crate::rules;

/// One finding located in its patch.
pub struct Finding<'a> {
    pub diag: &'a Diagnostic,
    pub path: &'a str,
    /// Post-image line.
    pub line: usize,
    /// The `#N` line of the patch (or of the file in tree mode).
    pub patch_line: usize,
    /// The line shown under the header: the patch's `+`/` ` line.
    pub quoted: String,
}

/// One checked patch, commit or file.
pub struct Unit<'a> {
    pub name: String,
    pub findings: Vec<Finding<'a>>,
    pub lines_checked: usize,
}

/// Renders every unit as checkpatch would.
pub fn render(units: &[Unit<'_>]) -> String {
    let mut out = String::new();
    let mut any_problem = false;
    for unit in units {
        if units.len() > 1 {
            let dashes = "-".repeat(unit.name.chars().count());
            let _ = writeln!(out, "{dashes}\n{}\n{dashes}", unit.name);
        }
        let (mut errors, mut warnings, mut checks) = (0, 0, 0);
        for f in &unit.findings {
            let level = match f.diag.severity {
                Severity::Error => {
                    errors += 1;
                    "ERROR"
                }
                Severity::Warning => {
                    warnings += 1;
                    "WARNING"
                }
                // checkpatch's lowest level (its --strict "CHECK"): advice.
                Severity::Note => {
                    checks += 1;
                    "CHECK"
                }
            };
            let type_name = rules::by_code(f.diag.code)
                .map_or_else(|| f.diag.code.to_owned(), rules::Rule::type_name);
            let _ = write!(
                out,
                "{level}:{type_name}: {}\n#{}: FILE: {}:{}:\n{}\n\n",
                f.diag.message, f.patch_line, f.path, f.line, f.quoted
            );
        }
        // checkpatch names checks in the total only when it can report them.
        let checks = if checks > 0 {
            format!("{checks} checks, ")
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "total: {errors} errors, {warnings} warnings, {checks}{} lines checked",
            unit.lines_checked
        );
        let clean = unit.findings.is_empty();
        any_problem |= !clean;
        if unit.findings.iter().any(|f| !f.diag.fixes.is_empty()) {
            out.push_str(
                "\nNOTE: For some of the reported defects, kmapcheck may be able to\n      \
                 mechanically convert to the typical style using --fix or --fix-inplace.\n",
            );
        }
        if clean {
            let _ = writeln!(
                out,
                "\n{} has no obvious style problems and is ready for submission.",
                unit.name
            );
        } else {
            let _ = writeln!(out, "\n{} has style problems, please review.", unit.name);
        }
    }
    if any_problem {
        out.push_str(
            "\nNOTE: If any of the errors are false positives, please report\n      \
             them to the kmapcheck maintainers, see docs/patch-mode.md.\n",
        );
    }
    out
}

/// Tree mode (`checkpatch.pl -f`): each file is a unit, its lines shown
/// with `+` as checkpatch shows a file diffed against /dev/null.
pub fn file_units(files: &[crate::driver::FileFindings]) -> Vec<Unit<'_>> {
    files
        .iter()
        .map(|file| {
            let index = crate::diag::LineIndex::new(&file.source);
            let lines: Vec<&[u8]> = file.source.split(|&b| b == b'\n').collect();
            let findings = file
                .diagnostics
                .iter()
                .map(|diag| {
                    let line = index.position(diag.primary.span.start).0;
                    let text = lines.get(line - 1).copied().unwrap_or_default();
                    Finding {
                        diag,
                        path: &file.path,
                        line,
                        patch_line: line,
                        quoted: format!("+{}", super::display_text(text)),
                    }
                })
                .collect();
            Unit {
                name: file.path.clone(),
                findings,
                lines_checked: lines
                    .len()
                    .saturating_sub(usize::from(file.source.ends_with(b"\n"))),
            }
        })
        .collect()
}
