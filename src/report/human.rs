//! The default format: codespan-reporting diagnostics, as rustc draws them.

use codespan_reporting::diagnostic::{
    Diagnostic as CsDiagnostic, Label as CsLabel, Severity as CsSeverity,
};
use codespan_reporting::files::SimpleFiles;
use codespan_reporting::term::termcolor::{Buffer, WriteColor};
use codespan_reporting::term::{self, Config, Styles, StylesWriter};

use super::display_text;
use crate::diag::Severity;
use crate::driver::FileFindings;

/// Renders every finding; ANSI colours when `color`.
pub fn render(files: &[FileFindings], color: bool) -> Vec<u8> {
    let mut db = SimpleFiles::new();
    let config = Config::default();
    let styles = Styles::default();
    let mut buffer = if color {
        Buffer::ansi()
    } else {
        Buffer::no_color()
    };
    for file in files {
        let id = db.add(file.path.as_str(), display_text(&file.source));
        for d in &file.diagnostics {
            let severity = match d.severity {
                Severity::Error => CsSeverity::Error,
                Severity::Warning => CsSeverity::Warning,
                Severity::Note => CsSeverity::Note,
            };
            let mut labels = vec![
                CsLabel::primary(id, d.primary.span.start..d.primary.span.end)
                    .with_message(&d.primary.message),
            ];
            labels.extend(d.secondary.iter().map(|l| {
                CsLabel::secondary(id, l.span.start..l.span.end).with_message(&l.message)
            }));
            let mut notes = vec![format!("in function `{}`", d.function)];
            notes.extend(d.notes.iter().cloned());
            notes.extend(d.help.iter().map(|h| format!("help: {h}")));
            let diagnostic = CsDiagnostic::new(severity)
                .with_code(d.code)
                .with_message(&d.message)
                .with_labels(labels)
                .with_notes(notes);
            let mut writer = StylesWriter::new(&mut buffer, &styles);
            // The files database holds every file we render: rendering cannot miss one.
            let _ = term::emit_to_write_style(&mut writer, &config, &db, &diagnostic);
        }
    }
    if color {
        let _ = buffer.reset();
    }
    buffer.into_inner()
}
