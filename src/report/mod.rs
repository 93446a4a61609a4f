//! Reporters: pure functions from findings (and sources) to text. They never analyze.

pub mod checkpatch;
pub mod gcc;
pub mod github;
pub mod gitlab;
pub mod human;
pub mod json;
pub mod sarif;

use crate::diag::LineIndex;
use crate::driver::FileFindings;

/// A finding resolved to lines and columns, shared by the text formats.
pub struct Located<'a> {
    pub path: &'a str,
    pub source: &'a [u8],
    pub diag: &'a crate::diag::Diagnostic,
    pub line: usize,
    pub column: usize,
    pub end_line: usize,
    pub end_column: usize,
    /// (line, column) of each secondary label, in label order.
    pub secondary: Vec<(usize, usize)>,
}

/// Every finding of every file, in (path, line, column) order.
pub fn located(files: &[FileFindings]) -> Vec<Located<'_>> {
    let mut out = Vec::new();
    for file in files {
        let index = LineIndex::new(&file.source);
        for diag in &file.diagnostics {
            let (line, column) = index.position(diag.primary.span.start);
            let (end_line, end_column) = index.position(diag.primary.span.end);
            let secondary = diag
                .secondary
                .iter()
                .map(|l| index.position(l.span.start))
                .collect();
            out.push(Located {
                path: &file.path,
                source: &file.source,
                diag,
                line,
                column,
                end_line,
                end_column,
                secondary,
            });
        }
    }
    out
}

/// Source text for display with every byte offset unchanged: invalid UTF-8
/// bytes (Latin-1 kernel files exist) become `?`, one byte each.
pub fn display_text(source: &[u8]) -> String {
    let mut out = String::with_capacity(source.len());
    for chunk in source.utf8_chunks() {
        out.push_str(chunk.valid());
        out.extend(std::iter::repeat_n('?', chunk.invalid().len()));
    }
    out
}
