//! Findings as values: what rules return and reporters render.

use serde::{Deserialize, Serialize};

use crate::cfg::Span;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Advice, not a bug (KM011's conversion notes): shown, but a run with
    /// only notes exits 0.
    Note,
    Warning,
    Error,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
            Severity::Note => "note",
        }
    }

    /// Does a finding of this severity make the run fail (exit 1)? Notes
    /// are advice: they never do.
    pub fn fails_run(self) -> bool {
        self >= Severity::Warning
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Label {
    pub span: Span,
    pub message: String,
}

/// One finding in one file; byte ranges index the original file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub code: &'static str,
    pub severity: Severity,
    pub message: String,
    pub function: String,
    pub primary: Label,
    pub secondary: Vec<Label>,
    pub notes: Vec<String>,
    pub help: Option<String>,
    /// Edits that fix the finding (`--fix`), on the original file; empty when
    /// the rule cannot offer a fix that is safe to apply blindly.
    pub fixes: Vec<crate::fix::Edit>,
}

/// Line starts of a file, for offset -> (line, column), both 1-based.
#[derive(Debug)]
pub struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    pub fn new(src: &[u8]) -> Self {
        let mut starts = vec![0];
        starts.extend(memchr::memchr_iter(b'\n', src).map(|i| i + 1));
        Self { starts }
    }

    /// 1-based line and byte column of `offset`.
    pub fn position(&self, offset: usize) -> (usize, usize) {
        let line = self.starts.partition_point(|&s| s <= offset).max(1);
        (line, offset - self.starts[line - 1] + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_are_one_based() {
        let idx = LineIndex::new(b"ab\ncd\n");
        assert_eq!(idx.position(0), (1, 1));
        assert_eq!(idx.position(4), (2, 2));
        assert_eq!(idx.position(6), (3, 1));
    }
}
