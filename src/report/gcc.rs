//! `--format gcc`: `path:line:col: severity: message [CODE]`, one line per
//! finding, the shape gcc and sparse print. Vim's quickfix (`:cfile`, the
//! default `errorformat`), Emacs `compile-mode` and `make C=1` logs parse it
//! without configuration; secondary labels are left out on purpose, since an
//! extra `note:` line would be read as a finding of its own by some of them.

use std::fmt::Write;

use super::located;
use crate::driver::FileFindings;

/// Renders every finding, one line each, in (path, line, column) order.
pub fn render(files: &[FileFindings]) -> String {
    let mut out = String::new();
    for l in located(files) {
        let _ = writeln!(
            out,
            "{}:{}:{}: {}: {} [{}]",
            l.path,
            l.line,
            l.column,
            l.diag.severity.as_str(),
            l.diag.message,
            l.diag.code
        );
    }
    out
}
