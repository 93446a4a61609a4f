//! Fixes as values: byte edits on the original file, rendered as a unified
//! diff (`--fix`, `git apply`-able) or applied in place (`--fix-inplace`).
//!
//! A rule attaches the edits of one finding to `Diagnostic::fixes`; this
//! module never analyzes. Rules offer a fix only where inserting whole lines
//! keeps the meaning: the statement alone on its lines, inside a `{ }` block
//! (a braceless `if` body would swallow the inserted line).

use std::fmt::Write as _;

/// Replace `start..end` of the original file by `text` (an insertion when
/// `start == end`).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Edit {
    pub start: usize,
    pub end: usize,
    pub text: String,
}

/// Two findings' fixes touch the same bytes differently: neither is applied.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("conflicting fixes at bytes {0}..{1}")]
pub struct Conflict(pub usize, pub usize);

/// Sorted, deduplicated edits with no two overlapping. Identical edits from
/// two findings (both wrap the same access) count once; two insertions at
/// one offset keep their order.
pub fn normalize(edits: &[Edit]) -> Result<Vec<Edit>, Conflict> {
    let mut sorted = edits.to_vec();
    sorted.sort();
    sorted.dedup();
    for pair in sorted.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let touching_insertions = a.start == a.end && b.start == b.end;
        if b.start < a.end || (a.start == b.start && !touching_insertions) {
            return Err(Conflict(b.start, a.end.max(b.end)));
        }
    }
    Ok(sorted)
}

/// The file with `edits` applied.
pub fn apply(src: &[u8], edits: &[Edit]) -> Result<Vec<u8>, Conflict> {
    let edits = normalize(edits)?;
    let mut out = Vec::with_capacity(src.len() + 64);
    let mut at = 0;
    for edit in &edits {
        if edit.end > src.len() {
            return Err(Conflict(edit.start, edit.end));
        }
        out.extend_from_slice(&src[at..edit.start]);
        out.extend_from_slice(edit.text.as_bytes());
        at = edit.end;
    }
    out.extend_from_slice(&src[at..]);
    Ok(out)
}

/// Start of the line holding `offset`.
pub fn line_start(src: &[u8], offset: usize) -> usize {
    memchr::memrchr(b'\n', &src[..offset.min(src.len())]).map_or(0, |i| i + 1)
}

/// One past the `\n` ending the line holding `offset` (or the file's end).
pub fn line_end(src: &[u8], offset: usize) -> usize {
    let from = offset.min(src.len());
    memchr::memchr(b'\n', &src[from..]).map_or(src.len(), |i| from + i + 1)
}

/// The leading blanks of the line holding `offset`.
pub fn indentation(src: &[u8], offset: usize) -> String {
    let start = line_start(src, offset);
    let blanks = src[start..]
        .iter()
        .take_while(|b| matches!(b, b' ' | b'\t'))
        .count();
    String::from_utf8_lossy(&src[start..start + blanks]).into_owned()
}

/// Whether `start..end` is alone on its lines: only blanks before it on its
/// first line and only blanks (or a comment) after it on its last.
pub fn alone_on_lines(src: &[u8], start: usize, end: usize) -> bool {
    let before = &src[line_start(src, start)..start];
    let last = line_end(src, end.saturating_sub(1).max(start));
    let after = String::from_utf8_lossy(&src[end.min(last)..last]);
    let after = after.trim();
    before.iter().all(|b| matches!(b, b' ' | b'\t'))
        && (after.is_empty() || after.starts_with("/*") || after.starts_with("//"))
}

/// Edits that put `before;` on a line of its own above the statement at
/// `start..end` and `after;` below it, both with the statement's indentation.
pub fn wrap_lines(src: &[u8], start: usize, end: usize, before: &str, after: &str) -> Vec<Edit> {
    let indent = indentation(src, start);
    let first = line_start(src, start);
    let last = line_end(src, end.saturating_sub(1).max(start));
    // A file without a final newline: the closing line needs its own.
    let newline = if last > 0 && src.get(last - 1) == Some(&b'\n') {
        ""
    } else {
        "\n"
    };
    vec![
        Edit {
            start: first,
            end: first,
            text: format!("{indent}{before}\n"),
        },
        Edit {
            start: last,
            end: last,
            text: format!("{newline}{indent}{after}\n"),
        },
    ]
}

/// Lines of context around each change, as `diff -u` and git use.
const CONTEXT: usize = 3;

/// A git-style unified diff of `path` from `old` to the result of `edits`,
/// built from the edits themselves (no diff algorithm: the changed lines are
/// known). Empty when the edits change nothing.
pub fn unified_diff(path: &str, old: &[u8], edits: &[Edit]) -> Result<String, Conflict> {
    let edits = normalize(edits)?;
    if edits.is_empty() {
        return Ok(String::new());
    }
    let old_lines = split_lines(old);
    // Each edit as (first old line, old line count, new lines); edits on
    // shared lines are merged into one change.
    let mut changes: Vec<(usize, usize, Vec<u8>)> = Vec::new();
    let mut i = 0;
    while i < edits.len() {
        let first_byte = line_start(old, edits[i].start);
        let mut last_byte = changed_until(old, &edits[i]);
        let mut j = i + 1;
        while j < edits.len() && edits[j].start < last_byte {
            last_byte = last_byte.max(changed_until(old, &edits[j]));
            j += 1;
        }
        let mut new = Vec::new();
        let mut at = first_byte;
        for edit in &edits[i..j] {
            new.extend_from_slice(&old[at..edit.start]);
            new.extend_from_slice(edit.text.as_bytes());
            at = edit.end;
        }
        new.extend_from_slice(&old[at..last_byte]);
        let first_line = line_index(&old_lines, first_byte);
        let count = line_index(&old_lines, last_byte) - first_line;
        changes.push((first_line, count, new));
        i = j;
    }
    let mut out = format!("diff --git a/{path} b/{path}\n--- a/{path}\n+++ b/{path}\n");
    let mut k = 0;
    let mut shift: isize = 0;
    while k < changes.len() {
        // Changes closer than twice the context share a hunk.
        let mut end = k + 1;
        while end < changes.len()
            && changes[end].0 <= changes[end - 1].0 + changes[end - 1].1 + 2 * CONTEXT
        {
            end += 1;
        }
        let from = changes[k].0.saturating_sub(CONTEXT);
        let last = changes[end - 1].0 + changes[end - 1].1;
        let to = (last + CONTEXT).min(old_lines.len());
        let mut body = String::new();
        let (mut old_count, mut new_count) = (0, 0);
        let mut line = from;
        for (first, count, new) in &changes[k..end] {
            for l in &old_lines[line..*first] {
                push_line(&mut body, ' ', l);
                old_count += 1;
                new_count += 1;
            }
            for l in &old_lines[*first..first + count] {
                push_line(&mut body, '-', l);
                old_count += 1;
            }
            for l in split_lines(new) {
                push_line(&mut body, '+', l);
                new_count += 1;
            }
            line = first + count;
        }
        for l in &old_lines[line..to] {
            push_line(&mut body, ' ', l);
            old_count += 1;
            new_count += 1;
        }
        let new_from = from as isize + shift;
        let _ = writeln!(
            out,
            "@@ -{} +{} @@",
            range(from, old_count),
            range(new_from.max(0) as usize, new_count)
        );
        out.push_str(&body);
        shift += new_count as isize - old_count as isize;
        k = end;
    }
    Ok(out)
}

/// One past the last old byte an edit's lines cover (whole lines).
fn changed_until(old: &[u8], edit: &Edit) -> usize {
    if edit.end > edit.start {
        line_end(old, edit.end - 1)
    } else if edit.start == line_start(old, edit.start) {
        // An insertion at a line start changes no old line.
        edit.start
    } else {
        line_end(old, edit.start)
    }
}

/// `start,count` of a hunk header, 1-based; an empty side names the line before.
fn range(start: usize, count: usize) -> String {
    if count == 0 {
        format!("{start},0")
    } else if count == 1 {
        format!("{}", start + 1)
    } else {
        format!("{},{count}", start + 1)
    }
}

fn push_line(out: &mut String, mark: char, line: &[u8]) {
    out.push(mark);
    let text = String::from_utf8_lossy(line);
    match text.strip_suffix('\n') {
        Some(l) => {
            out.push_str(l);
            out.push('\n');
        }
        None => {
            out.push_str(&text);
            out.push_str("\n\\ No newline at end of file\n");
        }
    }
}

/// Lines with their `\n`.
fn split_lines(src: &[u8]) -> Vec<&[u8]> {
    src.split_inclusive(|&b| b == b'\n').collect()
}

/// Index of the line starting at `offset` (or the count, at the end).
fn line_index(lines: &[&[u8]], offset: usize) -> usize {
    let mut at = 0;
    for (i, l) in lines.iter().enumerate() {
        if at >= offset {
            return i;
        }
        at += l.len();
    }
    lines.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &[u8] = b"int f(void)\n{\n\tint a;\n\n\tret = copy(x);\n\treturn ret;\n}\n";

    fn wrapped() -> Vec<Edit> {
        let start = SRC.windows(3).position(|w| w == b"ret").unwrap();
        let end = start + "ret = copy(x);".len();
        wrap_lines(
            SRC,
            start,
            end,
            "pagefault_disable();",
            "pagefault_enable();",
        )
    }

    #[test]
    fn wrapping_keeps_indentation() {
        let fixed = apply(SRC, &wrapped()).unwrap();
        assert_eq!(
            String::from_utf8(fixed).unwrap(),
            "int f(void)\n{\n\tint a;\n\n\tpagefault_disable();\n\tret = copy(x);\n\tpagefault_enable();\n\treturn ret;\n}\n"
        );
    }

    #[test]
    fn diff_of_a_wrap() {
        let diff = unified_diff("mm/x.c", SRC, &wrapped()).unwrap();
        assert_eq!(
            diff,
            "diff --git a/mm/x.c b/mm/x.c\n--- a/mm/x.c\n+++ b/mm/x.c\n\
             @@ -2,6 +2,8 @@\n {\n \tint a;\n \n+\tpagefault_disable();\n \tret = copy(x);\n\
             +\tpagefault_enable();\n \treturn ret;\n }\n"
        );
    }

    #[test]
    fn replacement_diff_counts_lines() {
        let start = SRC.windows(4).position(|w| w == b"copy").unwrap();
        let edits = [Edit {
            start,
            end: start + 4,
            text: "copy_local".to_owned(),
        }];
        let diff = unified_diff("a.c", SRC, &edits).unwrap();
        assert!(diff.contains("@@ -2,6 +2,6 @@\n"), "{diff}");
        assert!(diff.contains("-\tret = copy(x);\n+\tret = copy_local(x);\n"));
    }

    #[test]
    fn duplicate_edits_count_once_and_overlaps_conflict() {
        let mut edits = wrapped();
        edits.extend(wrapped());
        assert_eq!(normalize(&edits).unwrap().len(), 2);
        let clash = [
            Edit {
                start: 2,
                end: 5,
                text: "x".into(),
            },
            Edit {
                start: 4,
                end: 6,
                text: "y".into(),
            },
        ];
        assert_eq!(apply(SRC, &clash), Err(Conflict(4, 6)));
    }

    #[test]
    fn alone_on_lines_sees_neighbours() {
        let src = b"\tif (x) a = f();\n\tb = g(); /* why */\n";
        let a = 9;
        assert!(!alone_on_lines(src, a, a + 8));
        let b = src.windows(1).rposition(|w| w == b"b").unwrap();
        assert!(alone_on_lines(src, b, b + 9));
    }
}
