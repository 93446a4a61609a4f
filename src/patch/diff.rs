//! Parse unified diffs: `diff -u`, `git diff` and `git format-patch` mails
//! (an mbox of several patches too) into files, hunks and lines, keeping the
//! line number of every patch line so findings can point back into the patch
//! (`#N:` in the checkpatch format).
//!
//! Content lines stay bytes: kernel files in Latin-1 exist, and their hunks
//! must reach the analyzer unchanged. Paths must be UTF-8, relative, and stay
//! inside the tree: a patch is untrusted input that names files to read.

/// A parse failure at one line of the patch (1-based).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{line}: {message}")]
pub struct PatchError {
    pub line: usize,
    pub message: String,
}

fn fail<T>(line: usize, message: impl Into<String>) -> Result<T, PatchError> {
    Err(PatchError {
        line,
        message: message.into(),
    })
}

/// One mail of an mbox, or the whole input when it is a plain diff.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Patch {
    /// The `Subject:` of the mail, without its `[PATCH ...]` tag.
    pub subject: Option<String>,
    pub files: Vec<FileDiff>,
}

/// The changes to one file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FileDiff {
    /// Path before the change (prefix `a/` stripped); `None` for a new file.
    pub old_path: Option<String>,
    /// Path after the change; `None` for a deleted file.
    pub new_path: Option<String>,
    /// Line of the `diff --git` (or `---`) header.
    pub header_line: usize,
    pub hunks: Vec<Hunk>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Hunk {
    /// Line of the `@@` header.
    pub header_line: usize,
    pub old_start: usize,
    pub old_count: usize,
    pub new_start: usize,
    pub new_count: usize,
    /// The text git prints after the second `@@`: the enclosing function's
    /// header line in the pre-image, when git found one.
    pub section: String,
    pub lines: Vec<Line>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    Context,
    Removed,
    Added,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    pub kind: LineKind,
    /// The content without the one-byte prefix and without the newline.
    pub text: Vec<u8>,
    /// Followed by `\ No newline at end of file`.
    pub no_newline: bool,
    /// 1-based line of the patch.
    pub patch_line: usize,
}

impl Line {
    pub fn in_old(&self) -> bool {
        self.kind != LineKind::Added
    }
    pub fn in_new(&self) -> bool {
        self.kind != LineKind::Removed
    }
}

impl FileDiff {
    /// The path findings are reported on: the post-image's, or the
    /// pre-image's for a deletion.
    pub fn path(&self) -> &str {
        self.new_path
            .as_deref()
            .or(self.old_path.as_deref())
            .unwrap_or("")
    }
}

/// Number of hunk body lines (context, removed, added), as checkpatch
/// counts "lines checked".
pub fn hunk_lines(patches: &[Patch]) -> usize {
    patches
        .iter()
        .flat_map(|p| &p.files)
        .flat_map(|f| &f.hunks)
        .map(|h| h.lines.len())
        .sum()
}

/// The input split into lines without their `\n` (a trailing `\r` kept).
fn split(input: &[u8]) -> Vec<&[u8]> {
    let mut lines: Vec<&[u8]> = input.split(|&b| b == b'\n').collect();
    if input.ends_with(b"\n") {
        lines.pop();
    }
    lines
}

fn trim_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Parses a whole input. An input with no file diff at all is an error
/// (checkpatch: "Does not appear to be a unified-diff format patch").
pub fn parse(input: &[u8]) -> Result<Vec<Patch>, PatchError> {
    let lines = split(input);
    let mut parser = Parser {
        lines: &lines,
        at: 0,
        patches: vec![Patch::default()],
        in_mail_header: false,
    };
    parser.run()?;
    let mut patches = parser.patches;
    if patches.iter().all(|p| p.files.is_empty()) {
        return fail(
            1,
            "no diff found: not a unified diff, git diff or git format-patch mail",
        );
    }
    // A cover letter or a mail without a diff holds nothing to check.
    patches.retain(|p| !p.files.is_empty());
    Ok(patches)
}

struct Parser<'a> {
    lines: &'a [&'a [u8]],
    at: usize,
    patches: Vec<Patch>,
    in_mail_header: bool,
}

impl Parser<'_> {
    fn line(&self, i: usize) -> Option<&[u8]> {
        self.lines.get(i).map(|l| trim_cr(l))
    }

    fn patch(&mut self) -> &mut Patch {
        if self.patches.is_empty() {
            self.patches.push(Patch::default());
        }
        let last = self.patches.len() - 1;
        &mut self.patches[last]
    }

    fn run(&mut self) -> Result<(), PatchError> {
        while let Some(line) = self.line(self.at) {
            let number = self.at + 1;
            if is_mbox_separator(line) {
                if self
                    .patches
                    .last()
                    .is_some_and(|p| !p.files.is_empty() || p.subject.is_some())
                {
                    self.patches.push(Patch::default());
                }
                self.in_mail_header = true;
                self.at += 1;
                continue;
            }
            if self.in_mail_header {
                if line.is_empty() {
                    self.in_mail_header = false;
                } else if let Some(subject) = line.strip_prefix(b"Subject:") {
                    let mut text = String::from_utf8_lossy(subject).trim().to_owned();
                    // RFC 5322 folding: continuation lines start with blanks.
                    while let Some(next) = self.line(self.at + 1)
                        && next.starts_with(b" ") | next.starts_with(b"\t")
                    {
                        text.push(' ');
                        text.push_str(String::from_utf8_lossy(next).trim());
                        self.at += 1;
                    }
                    self.patch().subject = Some(strip_patch_tag(&text));
                }
                self.at += 1;
                continue;
            }
            if line.starts_with(b"diff --git ") {
                self.git_file(number)?;
                continue;
            }
            if line.starts_with(b"--- ")
                && self
                    .line(self.at + 1)
                    .is_some_and(|l| l.starts_with(b"+++ "))
            {
                let mut file = FileDiff {
                    header_line: number,
                    ..FileDiff::default()
                };
                self.old_new(&mut file)?;
                self.hunks(&mut file)?;
                self.patch().files.push(file);
                continue;
            }
            if line.starts_with(b"Binary files ") || line == b"GIT binary patch" {
                return fail(number, "binary diff: kmapcheck reads text diffs only");
            }
            if line.starts_with(b"@@ ") {
                return fail(number, "hunk without a `--- a/FILE` / `+++ b/FILE` header");
            }
            self.at += 1;
        }
        Ok(())
    }

    /// `diff --git a/X b/Y`, its extended headers, then `---`/`+++` and hunks.
    fn git_file(&mut self, number: usize) -> Result<(), PatchError> {
        let header = self.line(self.at).unwrap_or_default();
        let mut file = FileDiff {
            header_line: number,
            ..FileDiff::default()
        };
        // The paths of the header line are ambiguous when they hold spaces;
        // they only matter when no ---/+++ or rename line follows (a mode
        // change, a pure rename).
        let (a, b) = git_header_paths(&header[b"diff --git ".len()..]);
        let mut old = a.map(|p| strip_and_check(&p, number)).transpose()?;
        let mut new = b.map(|p| strip_and_check(&p, number)).transpose()?;
        self.at += 1;
        while let Some(line) = self.line(self.at) {
            let n = self.at + 1;
            if line.starts_with(b"diff --git ")
                || line.starts_with(b"@@ ")
                || is_mbox_separator(line)
            {
                break;
            }
            if line.starts_with(b"--- ") {
                self.old_new(&mut file)?;
                old.clone_from(&file.old_path);
                new.clone_from(&file.new_path);
                break;
            }
            if line.starts_with(b"Binary files ") || line == b"GIT binary patch" {
                return fail(n, "binary diff: kmapcheck reads text diffs only");
            }
            if let Some(p) = line
                .strip_prefix(b"rename from ")
                .or_else(|| line.strip_prefix(b"copy from "))
            {
                old = Some(check_path(&unquote(p, n)?, n)?);
            } else if let Some(p) = line
                .strip_prefix(b"rename to ")
                .or_else(|| line.strip_prefix(b"copy to "))
            {
                new = Some(check_path(&unquote(p, n)?, n)?);
            } else if line.starts_with(b"new file mode") {
                old = None;
            } else if line.starts_with(b"deleted file mode") {
                new = None;
            } else if !is_extended_header(line) {
                break;
            }
            self.at += 1;
        }
        file.old_path = old;
        file.new_path = new;
        self.hunks(&mut file)?;
        self.patch().files.push(file);
        Ok(())
    }

    /// The `--- ` and `+++ ` lines at `self.at`.
    fn old_new(&mut self, file: &mut FileDiff) -> Result<(), PatchError> {
        let n = self.at + 1;
        let old = self.line(self.at).unwrap_or_default();
        let new = self.line(self.at + 1).unwrap_or_default();
        if !new.starts_with(b"+++ ") {
            return fail(n + 1, "`--- ` line without its `+++ ` line");
        }
        file.old_path = header_path(&old[4..], n)?;
        file.new_path = header_path(&new[4..], n + 1)?;
        if file.old_path.is_none() && file.new_path.is_none() {
            return fail(n, "both sides of the diff are /dev/null");
        }
        self.at += 2;
        Ok(())
    }

    /// The hunks from `self.at` on, until something that is not a hunk.
    fn hunks(&mut self, file: &mut FileDiff) -> Result<(), PatchError> {
        while let Some(line) = self.line(self.at) {
            if !line.starts_with(b"@@ ") {
                // Lines a hunk header promised fewer of: the counts are wrong.
                // A run of content-like lines after a hunk is an overrun when
                // it holds a change or runs into the next hunk; a trailing
                // context-like line alone (mail text) is not.
                let is_content = |l: &[u8]| {
                    (l.starts_with(b"+") && !l.starts_with(b"+++ "))
                        || (l.starts_with(b"-")
                            && !l.starts_with(b"--- ")
                            && l != b"-- "
                            && l != b"--")
                        || l.starts_with(b" ")
                };
                let mut end = self.at;
                let mut changes = false;
                while let Some(l) = self.line(end).filter(|l| is_content(l)) {
                    changes |= !l.starts_with(b" ");
                    end += 1;
                }
                let into_hunk = self.line(end).is_some_and(|l| l.starts_with(b"@@ "));
                let looks_like_content = end > self.at && (changes || into_hunk);
                if looks_like_content && !file.hunks.is_empty() {
                    let header = file.hunks.last().map_or(0, |h| h.header_line);
                    return fail(
                        self.at + 1,
                        format!(
                            "line outside any hunk: the hunk at line {header} has more lines than its header counts"
                        ),
                    );
                }
                break;
            }
            let hunk = self.hunk()?;
            file.hunks.push(hunk);
        }
        Ok(())
    }

    fn hunk(&mut self) -> Result<Hunk, PatchError> {
        let number = self.at + 1;
        let header = self.line(self.at).unwrap_or_default();
        let Some(mut hunk) = parse_hunk_header(header) else {
            return fail(
                number,
                "malformed hunk header (want `@@ -OLD[,N] +NEW[,M] @@`)",
            );
        };
        hunk.header_line = number;
        self.at += 1;
        let (mut old_left, mut new_left) = (hunk.old_count, hunk.new_count);
        while old_left > 0 || new_left > 0 {
            let n = self.at + 1;
            let Some(raw) = self.lines.get(self.at) else {
                return fail(
                    n.saturating_sub(1).max(number),
                    format!(
                        "truncated hunk (header at line {number}): the patch ends {old_left} old and {new_left} new line(s) short"
                    ),
                );
            };
            // Mailers strip the blank of an empty context line; git apply
            // accepts it too.
            let (kind, text) = match raw.first() {
                Some(b' ') => (LineKind::Context, &raw[1..]),
                None => (LineKind::Context, &raw[..]),
                Some(b'\r') if raw.len() == 1 => (LineKind::Context, &raw[..0]),
                Some(b'-') => (LineKind::Removed, &raw[1..]),
                Some(b'+') => (LineKind::Added, &raw[1..]),
                Some(b'\\') => {
                    self.mark_no_newline(&mut hunk);
                    self.at += 1;
                    continue;
                }
                Some(_) => {
                    return fail(
                        n,
                        format!(
                            "truncated hunk (header at line {number}): expected {old_left} more old and {new_left} more new line(s)"
                        ),
                    );
                }
            };
            let fits = match kind {
                LineKind::Context => old_left > 0 && new_left > 0,
                LineKind::Removed => old_left > 0,
                LineKind::Added => new_left > 0,
            };
            if !fits {
                return fail(
                    n,
                    format!("hunk (header at line {number}) has more lines than its header counts"),
                );
            }
            if kind != LineKind::Added {
                old_left -= 1;
            }
            if kind != LineKind::Removed {
                new_left -= 1;
            }
            hunk.lines.push(Line {
                kind,
                text: text.to_vec(),
                no_newline: false,
                patch_line: n,
            });
            self.at += 1;
        }
        if self.line(self.at).is_some_and(|l| l.starts_with(b"\\")) {
            self.mark_no_newline(&mut hunk);
            self.at += 1;
        }
        Ok(hunk)
    }

    fn mark_no_newline(&self, hunk: &mut Hunk) {
        if let Some(last) = hunk.lines.last_mut() {
            last.no_newline = true;
        }
    }
}

/// `From <40 hex> Mon Sep 17 00:00:00 2001`, what git format-patch writes
/// first (and mbox's general `From ` line).
fn is_mbox_separator(line: &[u8]) -> bool {
    let Some(rest) = line.strip_prefix(b"From ") else {
        return false;
    };
    let word = rest.split(|&b| b == b' ').next().unwrap_or_default();
    (word.len() == 40 && word.iter().all(u8::is_ascii_hexdigit))
        || rest.ends_with(b"Mon Sep 17 00:00:00 2001")
}

fn strip_patch_tag(subject: &str) -> String {
    let s = subject.trim();
    if s.starts_with('[')
        && let Some(end) = s.find(']')
    {
        return s[end + 1..].trim().to_owned();
    }
    s.to_owned()
}

fn is_extended_header(line: &[u8]) -> bool {
    const HEADERS: &[&[u8]] = &[
        b"index ",
        b"old mode ",
        b"new mode ",
        b"similarity index ",
        b"dissimilarity index ",
    ];
    HEADERS.iter().any(|h| line.starts_with(h))
}

/// `@@ -a,b +c,d @@ section`; a missing count is 1.
fn parse_hunk_header(line: &[u8]) -> Option<Hunk> {
    let text = std::str::from_utf8(line).ok()?;
    let rest = text.strip_prefix("@@ -")?;
    let (ranges, section) = rest.split_once(" @@")?;
    let (old, new) = ranges.split_once(" +")?;
    let range = |r: &str| -> Option<(usize, usize)> {
        match r.split_once(',') {
            Some((s, c)) => Some((s.parse().ok()?, c.parse().ok()?)),
            None => Some((r.parse().ok()?, 1)),
        }
    };
    let (old_start, old_count) = range(old)?;
    let (new_start, new_count) = range(new)?;
    Some(Hunk {
        old_start,
        old_count,
        new_start,
        new_count,
        section: section.trim().to_owned(),
        ..Hunk::default()
    })
}

/// The path of a `---`/`+++` line: `/dev/null` is `None`; a tab ends the
/// path (`diff -u` appends a timestamp).
fn header_path(raw: &[u8], line: usize) -> Result<Option<String>, PatchError> {
    let raw = raw.split(|&b| b == b'\t').next().unwrap_or_default();
    let path = unquote(raw, line)?;
    if path == "/dev/null" {
        return Ok(None);
    }
    strip_and_check(&path, line).map(Some)
}

/// Drops the first path component (`a/`, `b/`, `linux-6.1/`), as `git apply`
/// and `patch -p1` do, then checks what is left.
fn strip_and_check(path: &str, line: usize) -> Result<String, PatchError> {
    if path.starts_with('/') {
        return fail(
            line,
            format!("absolute path `{path}` refused: a patch may only name files inside the tree"),
        );
    }
    let stripped = match path.split_once('/') {
        Some((_, rest)) if !rest.is_empty() => rest,
        _ => path,
    };
    check_path(stripped, line)
}

/// A relative path with no `..`: it cannot leave the tree it is joined to.
fn check_path(path: &str, line: usize) -> Result<String, PatchError> {
    if path.starts_with('/') {
        return fail(
            line,
            format!("absolute path `{path}` refused: a patch may only name files inside the tree"),
        );
    }
    let parts: Vec<&str> = path
        .split('/')
        .filter(|p| !p.is_empty() && *p != ".")
        .collect();
    if parts.contains(&"..") {
        return fail(
            line,
            format!("path `{path}` refused: `..` would leave the tree"),
        );
    }
    if parts.is_empty() {
        return fail(line, "empty file name");
    }
    Ok(parts.join("/"))
}

/// Paths of `diff --git a/X b/Y`: split at ` b/`, unquoting when quoted.
fn git_header_paths(rest: &[u8]) -> (Option<String>, Option<String>) {
    let text = String::from_utf8_lossy(rest);
    if text.starts_with('"') {
        // "a/x y" "b/x y"
        let parts: Vec<&str> = text.split("\" \"").collect();
        if let [a, b] = parts.as_slice() {
            let a = unquote(format!("{a}\"").as_bytes(), 0).ok();
            let b = unquote(format!("\"{b}").as_bytes(), 0).ok();
            return (a, b);
        }
        return (None, None);
    }
    match text.split_once(" b/") {
        Some((a, b)) => (Some(a.to_owned()), Some(format!("b/{b}"))),
        None => (None, None),
    }
}

/// A path as git writes it: plain, or C-quoted (`"a/t\303\251st.c"`) when it
/// holds special bytes. The result must be UTF-8.
fn unquote(raw: &[u8], line: usize) -> Result<String, PatchError> {
    let raw = trim_cr(raw);
    let bytes = if raw.len() >= 2 && raw.starts_with(b"\"") && raw.ends_with(b"\"") {
        let inner = &raw[1..raw.len() - 1];
        let mut out = Vec::with_capacity(inner.len());
        let mut i = 0;
        while i < inner.len() {
            if inner[i] != b'\\' {
                out.push(inner[i]);
                i += 1;
                continue;
            }
            let Some(&c) = inner.get(i + 1) else {
                return fail(line, "bad escape in a quoted path");
            };
            i += 2;
            out.push(match c {
                b'n' => b'\n',
                b't' => b'\t',
                b'"' | b'\\' => c,
                b'0'..=b'7' => {
                    let digits = inner.get(i - 1..i + 2).unwrap_or_default();
                    let value = std::str::from_utf8(digits)
                        .ok()
                        .and_then(|d| u8::from_str_radix(d, 8).ok());
                    let Some(v) = value else {
                        return fail(line, "bad octal escape in a quoted path");
                    };
                    i += 2;
                    v
                }
                _ => return fail(line, "bad escape in a quoted path"),
            });
        }
        out
    } else {
        raw.to_vec()
    };
    String::from_utf8(bytes).map_err(|_| PatchError {
        line,
        message: "file name is not UTF-8".to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GIT: &str = "\
From 0123456789abcdef0123456789abcdef01234567 Mon Sep 17 00:00:00 2001
From: A <a@example.com>
Subject: [PATCH 1/2] mm: convert foo
 to kmap_local

body
---
diff --git a/mm/foo.c b/mm/foo.c
index 1..2 100644
--- a/mm/foo.c
+++ b/mm/foo.c
@@ -1,3 +1,3 @@ int foo(void)
 a
-b
+c
 d
\\ No newline at end of file
-- 
2.40.0

From 0123456789abcdef0123456789abcdef01234568 Mon Sep 17 00:00:00 2001
Subject: [PATCH 2/2] mm: rename

diff --git a/mm/old.c b/mm/new.c
similarity index 100%
rename from mm/old.c
rename to mm/new.c
diff --git a/mm/n.c b/mm/n.c
new file mode 100644
--- /dev/null
+++ b/mm/n.c
@@ -0,0 +1 @@
+x
";

    #[test]
    fn mbox_with_two_patches_renames_and_new_files() {
        let patches = parse(GIT.as_bytes()).unwrap();
        assert_eq!(patches.len(), 2);
        assert_eq!(
            patches[0].subject.as_deref(),
            Some("mm: convert foo to kmap_local")
        );
        let foo = &patches[0].files[0];
        assert_eq!(foo.old_path.as_deref(), Some("mm/foo.c"));
        let hunk = &foo.hunks[0];
        assert_eq!((hunk.old_start, hunk.new_count), (1, 3));
        assert_eq!(hunk.section, "int foo(void)");
        assert_eq!(hunk.lines[2].kind, LineKind::Added);
        assert_eq!(hunk.lines[2].patch_line, 15);
        assert!(hunk.lines[3].no_newline);
        let rename = &patches[1].files[0];
        assert_eq!(rename.old_path.as_deref(), Some("mm/old.c"));
        assert_eq!(rename.new_path.as_deref(), Some("mm/new.c"));
        assert!(rename.hunks.is_empty());
        let new = &patches[1].files[1];
        assert_eq!(new.old_path, None);
        assert_eq!(new.new_path.as_deref(), Some("mm/n.c"));
        assert_eq!(hunk_lines(&patches), 5);
    }

    #[test]
    fn plain_diff_u_with_timestamps() {
        let p = "--- linux-6.1/mm/x.c\t2024-01-01\n+++ linux-6.12/mm/x.c\t2024-01-02\n@@ -1 +1 @@\n-a\n+b\n";
        let patches = parse(p.as_bytes()).unwrap();
        assert_eq!(patches[0].files[0].new_path.as_deref(), Some("mm/x.c"));
    }

    fn error(p: &str) -> PatchError {
        parse(p.as_bytes()).unwrap_err()
    }

    #[test]
    fn malformed_inputs_name_the_line() {
        let head = "--- a/x.c\n+++ b/x.c\n";
        assert_eq!(error(&format!("{head}@@ -1,3 +1,3 @@\n a\n-b\n")).line, 5);
        assert!(
            error(&format!("{head}@@ -1,2 +1,2 @@\n a\nzzz\n"))
                .message
                .contains("truncated")
        );
        let long = error(&format!("{head}@@ -1 +1 @@\n-a\n+b\n+c\n"));
        assert_eq!(long.line, 6);
        assert!(long.message.contains("more lines"));
        assert_eq!(error(&format!("{head}@@ -x +1 @@\n")).line, 3);
        let bin = error(
            "diff --git a/x.bin b/x.bin\nindex 1..2\nBinary files a/x.bin and b/x.bin differ\n",
        );
        assert_eq!(bin.line, 3);
        assert!(error("hello\n").message.contains("no diff"));
        assert!(
            error("--- a/../etc/passwd\n+++ b/../etc/passwd\n@@ -1 +1 @@\n-a\n+b\n")
                .message
                .contains("..")
        );
        assert!(
            error("--- /etc/passwd\n+++ /etc/passwd\n@@ -1 +1 @@\n-a\n+b\n")
                .message
                .contains("absolute")
        );
        let bad_name = parse(b"--- a/x\xff.c\n+++ b/x\xff.c\n@@ -1 +1 @@\n-a\n+b\n").unwrap_err();
        assert!(bad_name.message.contains("UTF-8"));
    }

    #[test]
    fn latin1_content_is_kept_as_bytes() {
        let p = b"--- a/x.c\n+++ b/x.c\n@@ -1 +1 @@\n-caf\xe9\n+caf\xe8\n";
        let patches = parse(p).unwrap();
        assert_eq!(patches[0].files[0].hunks[0].lines[1].text, b"caf\xe8");
    }

    #[test]
    fn quoted_paths() {
        assert_eq!(
            unquote(br#""a/t\303\251st.c""#, 1).unwrap(),
            "a/t\u{e9}st.c"
        );
    }
}
