//! `--format github`: GitHub Actions workflow commands, which the runner turns
//! into annotations on the pull request's diff:
//! `::error file=F,line=L,col=C,endLine=E,endColumn=EC,title=KM001::message`.
//!
//! Escaping follows the runner (actions/toolkit `command.ts`): in the message
//! `%`, `\r` and `\n` become `%25`, `%0D` and `%0A`; in property values `:`
//! and `,` are escaped as well (`%3A`, `%2C`), as they delimit properties.

use std::fmt::Write;

use super::located;
use crate::diag::Severity;
use crate::driver::FileFindings;

fn escape_data(s: &str) -> String {
    s.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

fn escape_property(s: &str) -> String {
    escape_data(s).replace(':', "%3A").replace(',', "%2C")
}

/// Renders one workflow command per finding; the message carries the
/// secondary labels, evidence and help as further lines, which the
/// annotation shows below its first line.
pub fn render(files: &[FileFindings]) -> String {
    let mut out = String::new();
    for l in located(files) {
        let command = match l.diag.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "notice",
        };
        let mut message = format!("{} (in function `{}`)", l.diag.message, l.diag.function);
        for (label, (line, col)) in l.diag.secondary.iter().zip(&l.secondary) {
            let _ = write!(message, "\n{}:{line}:{col}: {}", l.path, label.message);
        }
        for note in &l.diag.notes {
            let _ = write!(message, "\n{note}");
        }
        if let Some(help) = &l.diag.help {
            let _ = write!(message, "\nhelp: {help}");
        }
        // The runner ignores columns of a range that spans lines.
        let end_column = if l.end_line == l.line {
            format!(",endColumn={}", l.end_column)
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "::{command} file={},line={},col={},endLine={}{end_column},title={}::{}",
            escape_property(l.path),
            l.line,
            l.column,
            l.end_line,
            escape_property(l.diag.code),
            escape_data(&message)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_as_the_actions_runner_expects() {
        assert_eq!(escape_data("50% a\r\nb"), "50%25 a%0D%0Ab");
        assert_eq!(escape_property("dir,a:b.c"), "dir%2Ca%3Ab.c");
        // `%` first: an escape must not be escaped again.
        assert_eq!(escape_property("%3A"), "%253A");
    }
}
