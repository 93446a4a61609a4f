//! Pre- and post-images of one file diff: applied in memory to the tree's
//! file (no write), or, without a tree, rebuilt from what the hunks hold.
//!
//! Either way every post-image line keeps its real line number, so a finding
//! in a rebuilt image still names the right line of the patched file: gaps
//! between hunks are padded with lines that carry no code (or the synthetic
//! braces that make a hunk inside a function parse as one).

use super::diff::{FileDiff, Hunk, Line, LineKind};

/// The two sides of one file diff and where post-image lines came from.
#[derive(Debug, Default, Clone)]
pub struct Images {
    pub pre: Vec<u8>,
    pub post: Vec<u8>,
    /// Per post-image line (0-based): the patch line it was read from, when
    /// it lies in a hunk.
    pub origin: Vec<Option<usize>>,
    /// Post-image lines (0-based) the patch changed: added lines, and the
    /// line that follows each removal.
    pub changed: Vec<usize>,
    /// Per hunk: (first post-image line, 0-based; patch line of its `@@`).
    pub hunk_starts: Vec<(usize, usize)>,
}

impl Images {
    /// The patch line to show for a post-image line (1-based): its own line
    /// in a hunk, else the `@@` line of the last hunk starting before it.
    pub fn patch_line(&self, line: usize) -> (usize, bool) {
        let index = line.saturating_sub(1);
        if let Some(Some(n)) = self.origin.get(index) {
            return (*n, true);
        }
        let before = self
            .hunk_starts
            .iter()
            .rev()
            .find(|(first, _)| *first <= index)
            .or(self.hunk_starts.first());
        (before.map_or(0, |(_, header)| *header), false)
    }
}

fn with_newline(line: &Line) -> Vec<u8> {
    let mut text = line.text.clone();
    if !line.no_newline {
        text.push(b'\n');
    }
    text
}

/// Lines of `src` with their `\n`.
fn lines_of(src: &[u8]) -> Vec<&[u8]> {
    src.split_inclusive(|&b| b == b'\n').collect()
}

fn content(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\n").unwrap_or(line)
}

/// How far (in lines) a hunk is searched for around the line its header
/// names. `git apply` searches the whole file; the bound keeps a hostile
/// patch of many unmatched hunks from costing lines x hunks.
const MAX_OFFSET: usize = 20_000;

/// Rebuilt images put each line at its header's line number; beyond this
/// a header is hostile (it would pad gigabytes of blank lines), and lines
/// are placed right after the previous hunk instead. The largest kernel
/// source has well under a million lines.
const MAX_LINE: usize = 4_000_000;

/// The hunk's old side matches `pre` at line `at`.
fn matches_at(pre: &[&[u8]], at: usize, old: &[&Line]) -> bool {
    at + old.len() <= pre.len()
        && old
            .iter()
            .zip(&pre[at..])
            .all(|(l, p)| content(p) == l.text.as_slice())
}

/// Where the hunk's old side starts in `pre`: at its header's line shifted
/// by what earlier hunks moved, or the nearest place it matches, as `patch`
/// and `git apply` search.
fn locate(pre: &[&[u8]], hunk: &Hunk, from: usize, shift: isize) -> Option<usize> {
    let old: Vec<&Line> = hunk.lines.iter().filter(|l| l.in_old()).collect();
    // `-0,0` and `-N,0`: insert after line N.
    let stated = if hunk.old_count == 0 {
        hunk.old_start
    } else {
        hunk.old_start.saturating_sub(1)
    };
    let expected = usize::try_from(isize::try_from(stated).unwrap_or(0) + shift).unwrap_or(0);
    let last = pre.len().checked_sub(old.len())?;
    if from > last {
        return None;
    }
    let expected = expected.clamp(from, last);
    let max = (expected - from).max(last - expected).min(MAX_OFFSET);
    (0..=max).find_map(|d| {
        [expected.checked_sub(d), expected.checked_add(d)]
            .into_iter()
            .flatten()
            .find(|&at| at >= from && at <= last && matches_at(pre, at, &old))
    })
}

/// Applies `file`'s hunks to the tree's pre-image; `Err` names the first
/// hunk (by its `@@` line) that does not apply.
pub fn apply(pre: &[u8], file: &FileDiff) -> Result<Images, String> {
    let pre_lines = lines_of(pre);
    let mut images = Images {
        pre: pre.to_vec(),
        ..Images::default()
    };
    let mut copied = 0usize;
    let mut shift: isize = 0;
    for hunk in &file.hunks {
        let Some(at) = locate(&pre_lines, hunk, copied, shift) else {
            return Err(format!(
                "the hunk at patch line {} does not apply to the tree's {}",
                hunk.header_line,
                file.old_path.as_deref().unwrap_or(file.path())
            ));
        };
        let stated = if hunk.old_count == 0 {
            hunk.old_start
        } else {
            hunk.old_start.saturating_sub(1)
        };
        shift = isize::try_from(at).unwrap_or(0) - isize::try_from(stated).unwrap_or(0);
        for line in &pre_lines[copied..at] {
            images.post.extend_from_slice(line);
            images.origin.push(None);
        }
        images
            .hunk_starts
            .push((images.origin.len(), hunk.header_line));
        let mut old_at = at;
        for line in &hunk.lines {
            match line.kind {
                LineKind::Context => {
                    // The tree's bytes: identical content, its own newline.
                    images.post.extend_from_slice(pre_lines[old_at]);
                    images.origin.push(Some(line.patch_line));
                    old_at += 1;
                }
                LineKind::Removed => {
                    images.changed.push(images.origin.len());
                    old_at += 1;
                }
                LineKind::Added => {
                    images.changed.push(images.origin.len());
                    images.post.extend(with_newline(line));
                    images.origin.push(Some(line.patch_line));
                }
            }
        }
        copied = old_at;
    }
    for line in &pre_lines[copied..] {
        images.post.extend_from_slice(line);
        images.origin.push(None);
    }
    Ok(images)
}

/// Without a tree: both images rebuilt from the hunks alone, each line at
/// its real line number.
pub fn from_hunks(file: &FileDiff) -> Images {
    let pre = rebuild(file, Side::Old);
    let post = rebuild(file, Side::New);
    let mut images = Images {
        pre: pre.text,
        post: post.text,
        origin: post.origin,
        changed: Vec::new(),
        hunk_starts: post.hunk_starts,
    };
    let mut line = 0usize;
    for hunk in &file.hunks {
        if hunk.new_start <= MAX_LINE {
            line = line.max(hunk.new_start.saturating_sub(1));
        }
        for l in &hunk.lines {
            match l.kind {
                LineKind::Context => line += 1,
                LineKind::Removed => images.changed.push(line),
                LineKind::Added => {
                    images.changed.push(line);
                    line += 1;
                }
            }
        }
    }
    images
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Old,
    New,
}

struct Rebuilt {
    text: Vec<u8>,
    origin: Vec<Option<usize>>,
    hunk_starts: Vec<(usize, usize)>,
}

/// One side of the diff from its hunks. A hunk that starts inside a function
/// (its first code line is indented, or it closes more braces than it opens)
/// gets a synthetic header on the padding line above it, named after the
/// function git printed in the `@@` line, and every brace left open is
/// closed on the padding below: the pipeline then finds a function there.
fn rebuild(file: &FileDiff, side: Side) -> Rebuilt {
    let mut out = Rebuilt {
        text: Vec::new(),
        origin: Vec::new(),
        hunk_starts: Vec::new(),
    };
    let mut depth = 0usize;
    // The function the text so far leaves open, when known by name.
    let mut open_function: Option<String> = None;
    for hunk in &file.hunks {
        let lines: Vec<&Line> = hunk
            .lines
            .iter()
            .filter(|l| {
                if side == Side::Old {
                    l.in_old()
                } else {
                    l.in_new()
                }
            })
            .collect();
        if lines.is_empty() {
            continue;
        }
        let stated = match side {
            Side::Old => hunk.old_start,
            Side::New => hunk.new_start,
        };
        let start = if stated > MAX_LINE {
            0
        } else {
            stated.saturating_sub(1)
        }
        .max(out.origin.len());
        let gap = start - out.origin.len();
        let (min, _) = brace_depths(&lines);
        let inside = starts_inside_function(&lines) || min < 0;
        let open = if inside {
            usize::try_from(-min).unwrap_or(0).max(1)
        } else {
            0
        };
        let name = function_name(&hunk.section, hunk.header_line);
        // A later hunk of the function the previous one left open (git names
        // it in the section; a diff without sections says nothing): one
        // function, its unseen lines padded, so a mapping in one hunk and
        // the access in the next stay on one graph.
        let continues = depth > 0
            && inside
            && (hunk.section.is_empty() || open_function.as_deref() == Some(name.as_str()));
        let header = inside.then(|| format!("void {name}(void) {}", "{".repeat(open)));
        let close = "}".repeat(depth);
        let mut pad: Vec<String> = vec![String::new(); gap];
        match (gap, header) {
            (0, _) => {} // no room: an adjacent hunk continues the same code
            _ if continues => {}
            (1, h) => {
                pad[0] = format!("{close} {}", h.unwrap_or_default());
                depth = open;
            }
            (_, h) => {
                pad[0] = close;
                pad[gap - 1] = h.unwrap_or_default();
                depth = open;
            }
        }
        if inside && !continues && gap > 0 {
            open_function = Some(name);
        }
        for p in pad {
            out.text.extend_from_slice(p.trim().as_bytes());
            out.text.push(b'\n');
            out.origin.push(None);
        }
        out.hunk_starts.push((out.origin.len(), hunk.header_line));
        let (_, net) = brace_depths(&lines);
        for line in &lines {
            out.text.extend(with_newline(line));
            if line.no_newline {
                out.text.push(b'\n');
            }
            out.origin
                .push((side == Side::New).then_some(line.patch_line));
        }
        depth = usize::try_from(isize::try_from(depth).unwrap_or(0) + net).unwrap_or(0);
        if !inside && depth > 0 {
            // The hunk opened a function itself: its header is the last
            // unindented line naming a call.
            open_function = lines
                .iter()
                .rev()
                .map(|l| String::from_utf8_lossy(&l.text))
                .find(|t| t.contains('(') && !t.starts_with(char::is_whitespace))
                .map(|t| function_name(&t, hunk.header_line));
        }
        if depth == 0 {
            open_function = None;
        }
    }
    if depth > 0 {
        out.text.extend("}".repeat(depth).as_bytes());
        out.text.push(b'\n');
    }
    out
}

/// The function named in a hunk's section (`static int foo(struct page *p)`
/// gives `foo`), or a name made from the hunk's line.
fn function_name(section: &str, header_line: usize) -> String {
    let name = section.split('(').next().and_then(|head| {
        head.rsplit(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .next()
            .filter(|n| n.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_'))
    });
    if section.contains('(')
        && let Some(name) = name
    {
        return name.to_owned();
    }
    format!("hunk_at_patch_line_{header_line}")
}

/// Kernel style: code inside a function is indented; top-level lines are
/// not. The first line that is not blank or comment decides.
fn starts_inside_function(lines: &[&Line]) -> bool {
    let first = lines.iter().map(|l| l.text.as_slice()).find(|t| {
        let code = t.trim_ascii();
        !code.is_empty()
            && !code.starts_with(b"*")
            && !code.starts_with(b"/*")
            && !code.starts_with(b"//")
    });
    first.is_some_and(|t| matches!(t.first(), Some(b' ' | b'\t' | b'}')))
}

/// (lowest running depth, net depth) of the braces in `lines`, outside
/// comments and literals.
fn brace_depths(lines: &[&Line]) -> (isize, isize) {
    let (mut depth, mut min) = (0isize, 0isize);
    let mut in_comment = false;
    for line in lines {
        let t = &line.text;
        let mut i = 0;
        while i < t.len() {
            if in_comment {
                if t[i..].starts_with(b"*/") {
                    in_comment = false;
                    i += 1;
                }
            } else {
                match t[i] {
                    b'/' if t.get(i + 1) == Some(&b'*') => {
                        in_comment = true;
                        i += 1;
                    }
                    b'/' if t.get(i + 1) == Some(&b'/') => break,
                    quote @ (b'"' | b'\'') => {
                        i += 1;
                        while i < t.len() && t[i] != quote {
                            i += usize::from(t[i] == b'\\') + 1;
                        }
                    }
                    b'{' => depth += 1,
                    b'}' => {
                        depth -= 1;
                        min = min.min(depth);
                    }
                    _ => {}
                }
            }
            i += 1;
        }
    }
    (min, depth)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::patch::diff::parse;

    const PATCH: &str = "\
--- a/f.c
+++ b/f.c
@@ -2,4 +2,4 @@ int foo(int a)
 {
-\tx = kmap_atomic(p);
+\tx = kmap_local_page(p);
 \tuse(x);
 \tkunmap(x);
@@ -10,2 +10,3 @@ int bar(void)
 \tb();
+\tc();
 }
";

    #[test]
    fn applies_with_an_offset_and_keeps_origins() {
        let file = &parse(PATCH.as_bytes()).unwrap()[0].files[0];
        let pre = b"// added line shifts everything\nint foo(int a)\n{\n\tx = kmap_atomic(p);\n\tuse(x);\n\tkunmap(x);\n}\n\nint bar(void)\n{\n\ta();\n\tb();\n}\n";
        let images = apply(pre, file).unwrap();
        let post = String::from_utf8(images.post.clone()).unwrap();
        assert!(post.contains("\tx = kmap_local_page(p);\n"));
        assert!(post.contains("\tb();\n\tc();\n}\n"));
        assert_eq!(images.patch_line(4), (6, true));
        assert_eq!(images.patch_line(2), (3, false));
        assert!(apply(b"nothing here\n", file).is_err());
    }

    #[test]
    fn rebuilt_images_keep_line_numbers_and_parse_as_functions() {
        let file = &parse(PATCH.as_bytes()).unwrap()[0].files[0];
        let images = from_hunks(file);
        let post = String::from_utf8(images.post.clone()).unwrap();
        let lines: Vec<&str> = post.lines().collect();
        assert_eq!(lines[2], "\tx = kmap_local_page(p);");
        assert_eq!(lines[9], "\tb();");
        assert_eq!(lines[10], "\tc();");
        // The second hunk starts inside bar(): a synthetic header above it.
        assert_eq!(lines[5], "}");
        assert_eq!(lines[8], "void bar(void) {");
        assert_eq!(images.changed, vec![2, 2, 10]);
        let pre = String::from_utf8(images.pre).unwrap();
        assert_eq!(pre.lines().nth(2), Some("\tx = kmap_atomic(p);"));
    }

    #[test]
    fn hunks_of_one_function_stay_one_function() {
        // difflib-style hunks: no section; the second starts with a comment.
        let p = "--- a/f.c\n+++ b/f.c\n@@ -3,2 +3,2 @@\n \tint ret;\n-\tx = kmap_atomic(p);\n+\tx = kmap_local_page(p);\n@@ -10,3 +10,3 @@\n \t * comment\n-\tkunmap_atomic(x);\n+\tkunmap_local(x);\n }\n";
        let file = &parse(p.as_bytes()).unwrap()[0].files[0];
        let post = String::from_utf8(from_hunks(file).post).unwrap();
        assert_eq!(post.matches("(void)").count(), 1, "{post}");
        assert!(
            post.lines()
                .nth(1)
                .is_some_and(|l| l.starts_with("void hunk_at_patch_line_3(void) {"))
        );
        assert!(!post.lines().any(|l| l.trim() == "}}"), "{post}");
    }

    #[test]
    fn hostile_line_numbers_do_not_pad_gigabytes() {
        let p = "--- a/f.c\n+++ b/f.c\n@@ -999999999,1 +999999999,1 @@\n-a\n+b\n";
        let file = &parse(p.as_bytes()).unwrap()[0].files[0];
        let images = from_hunks(file);
        assert!(images.post.len() < 16 && images.pre.len() < 16);
        assert_eq!(images.changed, vec![0, 0]);
    }

    #[test]
    fn names_from_sections() {
        assert_eq!(function_name("static int foo(struct page *p,", 3), "foo");
        assert_eq!(function_name("struct x {", 3), "hunk_at_patch_line_3");
    }
}
