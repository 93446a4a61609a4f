//! A finding's identity that survives edits elsewhere in the file: SARIF
//! `partialFingerprints`, GitLab `fingerprint` and the baseline all use it.
//!
//! Line numbers are deliberately left out: adding a line above a finding must
//! not turn it into a "new" one. What stays is the rule, the path, the
//! function and the access line's text with whitespace collapsed, so
//! re-indenting does not change it either.

use std::collections::HashMap;

use crate::diag::Diagnostic;

/// FNV-1a, 64 bits: tiny, dependency-free and stable across Rust versions
/// and platforms, unlike `std::hash` (whose output is not specified).
fn fnv1a(parts: &[&[u8]]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &byte in *part {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        // A separator keeps ("ab", "c") and ("a", "bc") apart.
        hash ^= 0xff;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// The text of the line holding `offset`, whitespace runs collapsed to one space.
pub fn normalized_line(source: &[u8], offset: usize) -> String {
    let offset = offset.min(source.len());
    let start = memchr::memrchr(b'\n', &source[..offset]).map_or(0, |i| i + 1);
    let end = memchr::memchr(b'\n', &source[offset..]).map_or(source.len(), |i| offset + i);
    String::from_utf8_lossy(&source[start..end])
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// 16 hex digits naming the finding `diag` of the file `path` with bytes `source`.
pub fn of(diag: &Diagnostic, path: &str, source: &[u8]) -> String {
    let line = normalized_line(source, diag.primary.span.start);
    let hash = fnv1a(&[
        diag.code.as_bytes(),
        path.as_bytes(),
        diag.function.as_bytes(),
        line.as_bytes(),
    ]);
    format!("{hash:016x}")
}

/// Makes fingerprints unique within a run: the second finding with the same
/// fingerprint (two identical access lines in one function) gets `-2`, and so
/// on. Findings come in (path, offset) order, so the numbering is stable.
#[derive(Debug, Default)]
pub struct Numbering {
    seen: HashMap<String, usize>,
}

impl Numbering {
    pub fn number(&mut self, base: String) -> String {
        let n = self.seen.entry(base.clone()).or_default();
        *n += 1;
        if *n == 1 { base } else { format!("{base}-{n}") }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cfg::Span;
    use crate::diag::{Label, Severity};

    fn diag_at(start: usize) -> Diagnostic {
        Diagnostic {
            code: "KM001",
            severity: Severity::Error,
            message: "m".into(),
            function: "f".into(),
            primary: Label {
                span: Span {
                    start,
                    end: start + 1,
                },
                message: String::new(),
            },
            secondary: vec![],
            notes: vec![],
            help: None,
            fixes: Vec::new(),
        }
    }

    #[test]
    fn survives_line_shifts_and_reindenting_but_not_edits_of_the_line() {
        let before = b"int f(void)\n{\n\tx = copy_from_user(a, b, 1);\n}\n";
        let after = b"// new comment\n\nint f(void)\n{\n        x = copy_from_user(a,  b, 1);\n}\n";
        let edited = b"int f(void)\n{\n\tx = copy_from_user(a, c, 1);\n}\n";
        let at = |src: &[u8]| {
            let pos = src.windows(4).position(|w| w == b"copy").unwrap();
            of(&diag_at(pos), "mm/a.c", src)
        };
        assert_eq!(at(before), at(after));
        assert_ne!(at(before), at(edited));
        assert_ne!(
            of(&diag_at(16), "mm/a.c", before),
            of(&diag_at(16), "mm/b.c", before)
        );
    }

    #[test]
    fn repeated_fingerprints_are_numbered() {
        let mut n = Numbering::default();
        assert_eq!(n.number("ab".into()), "ab");
        assert_eq!(n.number("cd".into()), "cd");
        assert_eq!(n.number("ab".into()), "ab-2");
    }

    #[test]
    fn known_value_stays_fixed() {
        // Pinned: a change here invalidates every user's baseline file.
        assert_eq!(format!("{:016x}", fnv1a(&[b"a"])), "089bc907b544c769");
    }
}
