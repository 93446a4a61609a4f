//! Make kernel C palatable to tree-sitter without moving a byte.
//!
//! Every rewrite replaces bytes by spaces (or a same-length word) and keeps
//! newlines, so a byte offset in the preprocessed text is the same offset in
//! the original file: diagnostics never need a source map.
//!
//! - comments and the contents of string and character literals are blanked
//!   (braces inside them would fool the function finder);
//! - preprocessor directives are blanked, and of each `#if`/`#elif`/`#else`
//!   chain only the first branch is kept (the `#else` of an `#if 0`);
//! - annotation macros (`__user`, `__acquires(x)`, ...) from the catalogue are
//!   blanked;
//! - inside function bodies, iterator macros (`list_for_each_entry(...)`) are
//!   renamed `while`, so a loop header followed by a body parses as a loop.

use std::collections::HashSet;

use crate::catalogue::Catalogue;

/// The annotation and iterator vocabulary, looked up once per identifier.
pub struct Vocabulary<'c> {
    bare: HashSet<&'c str>,
    with_args: HashSet<&'c str>,
    catalogue: &'c Catalogue,
}

impl<'c> Vocabulary<'c> {
    pub fn new(catalogue: &'c Catalogue) -> Self {
        Self {
            bare: catalogue
                .bare_annotations
                .iter()
                .map(String::as_str)
                .collect(),
            with_args: catalogue
                .annotations_with_args
                .iter()
                .map(String::as_str)
                .collect(),
            catalogue,
        }
    }
}

/// Returns the preprocessed copy of `src` (same length), fully rewritten.
pub fn preprocess(src: &[u8], vocab: &Vocabulary<'_>) -> Vec<u8> {
    let mut out = lexical(src);
    let len = out.len();
    rewrite_identifiers(&mut out, 0..len, vocab);
    out
}

/// The first stage alone: comments, literals, directives and inactive
/// branches blanked. Enough to find function bodies; the driver then rewrites
/// identifiers only in the bodies it analyzes ([`rewrite_identifiers`]).
pub fn lexical(src: &[u8]) -> Vec<u8> {
    lexical_arms(src, Arms::First, &[]).0
}

/// Which arm of each `#if`/`#elif`/`#else` chain survives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arms {
    /// The first arm (the `#else` of an `#if 0`).
    First,
    /// Arm `n` (0-based) of chains that have more than `n` arms, else their
    /// last: code that the first pass blanked (`!CONFIG_HIGHMEM` inlines, the
    /// xz arm of a compression switch). Needs the arm counts of a first pass.
    Nth(usize),
}

/// The first stage with a choice of arms. Returns the text and the number of
/// arms of each conditional chain, in order of appearance, for later
/// [`Arms::Nth`] passes over the same source.
pub fn lexical_arms(src: &[u8], arms: Arms, known_counts: &[usize]) -> (Vec<u8>, Vec<usize>) {
    let mut out = src.to_vec();
    let mut chains = Chains {
        policy: arms,
        known: known_counts,
        counts: Vec::new(),
    };
    blank_lexical(&mut out, &mut chains);
    (out, chains.counts)
}

/// Arm bookkeeping shared by every conditional of one pass.
struct Chains<'a> {
    policy: Arms,
    known: &'a [usize],
    counts: Vec<usize>,
}

fn blank(buf: &mut [u8], from: usize, to: usize) {
    for b in &mut buf[from..to] {
        if *b != b'\n' {
            *b = b' ';
        }
    }
}

/// One `#if` nesting level: is its enclosing region live, and has one of its
/// branches already been chosen?
struct Conditional {
    parent_live: bool,
    chosen: bool,
    live: bool,
    /// Index of this chain in order of appearance, and of the current arm.
    chain: usize,
    arm: usize,
}

/// Blanks comments, literal contents, directives and inactive branches.
fn blank_lexical(buf: &mut [u8], chains: &mut Chains<'_>) {
    let len = buf.len();
    let mut stack: Vec<Conditional> = Vec::new();
    let live = |stack: &Vec<Conditional>| stack.last().is_none_or(|c| c.live);
    let mut i = 0;
    let mut line_start = true;
    while i < len {
        let b = buf[i];
        if b == b'\n' {
            line_start = true;
            i += 1;
            continue;
        }
        if line_start && (b == b' ' || b == b'\t' || b == b'\r' || b == 0x0c) {
            i += 1;
            continue;
        }
        if line_start && b == b'#' {
            let end = directive_end(buf, i);
            let directive = directive_word(&buf[i + 1..end]);
            apply_directive(&mut stack, chains, &directive, &buf[i + 1..end]);
            blank(buf, i, end);
            i = end;
            continue;
        }
        line_start = false;
        if !live(&stack) {
            // Inactive branch: not lexed (it may hold prose with stray quotes).
            let end = memchr::memchr(b'\n', &buf[i..]).map_or(len, |p| i + p);
            blank(buf, i, end);
            i = end;
            continue;
        }
        match b {
            b'/' if buf.get(i + 1) == Some(&b'/') => {
                let end = line_comment_end(buf, i);
                blank(buf, i, end);
                i = end;
            }
            b'/' if buf.get(i + 1) == Some(&b'*') => {
                let end = memchr::memmem::find(&buf[i + 2..], b"*/").map_or(len, |p| i + 2 + p + 2);
                blank(buf, i, end);
                i = end;
            }
            b'"' | b'\'' => {
                let end = literal_end(buf, i, b);
                // Keep the quotes so the parser still sees a literal.
                let inner_end = if end > i + 1 && buf[end - 1] == b {
                    end - 1
                } else {
                    end
                };
                blank(buf, i + 1, inner_end);
                i = end;
            }
            _ => i += 1,
        }
    }
}

/// End of a directive: the newline that is not escaped by a backslash.
/// Comments inside a directive are blanked with it.
fn directive_end(buf: &[u8], start: usize) -> usize {
    let mut i = start;
    while i < buf.len() {
        match buf[i] {
            b'\\' if buf.get(i + 1) == Some(&b'\n') => i += 2,
            b'\\' if buf.get(i + 1) == Some(&b'\r') && buf.get(i + 2) == Some(&b'\n') => i += 3,
            b'/' if buf.get(i + 1) == Some(&b'*') => {
                i = memchr::memmem::find(&buf[i + 2..], b"*/").map_or(buf.len(), |p| i + 2 + p + 2);
            }
            b'\n' => return i,
            _ => i += 1,
        }
    }
    buf.len()
}

fn line_comment_end(buf: &[u8], start: usize) -> usize {
    let mut i = start;
    while i < buf.len() {
        match buf[i] {
            b'\\' if buf.get(i + 1) == Some(&b'\n') => i += 2,
            b'\n' => return i,
            _ => i += 1,
        }
    }
    buf.len()
}

/// End (exclusive) of a string or char literal; an unterminated literal ends
/// at the end of its line, as the compiler would report it.
fn literal_end(buf: &[u8], start: usize, quote: u8) -> usize {
    let mut i = start + 1;
    while i < buf.len() {
        match buf[i] {
            b'\\' => i += 2,
            b'\n' => return i,
            c if c == quote => return i + 1,
            _ => i += 1,
        }
    }
    buf.len()
}

fn directive_word(body: &[u8]) -> String {
    let trimmed: Vec<u8> = body
        .iter()
        .copied()
        .skip_while(|b| *b == b' ' || *b == b'\t')
        .collect();
    trimmed
        .iter()
        .take_while(|b| b.is_ascii_alphabetic())
        .map(|b| char::from(*b))
        .collect()
}

/// `#if 0` (and `#if false`) is the one condition we can decide without a config.
fn is_false_condition(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body);
    let rest = text
        .trim_start()
        .trim_start_matches(|c: char| c.is_ascii_alphabetic());
    let cond: String = rest
        .split("/*")
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    cond == "0" || cond == "false" || cond == "(0)"
}

fn apply_directive(stack: &mut Vec<Conditional>, chains: &mut Chains<'_>, word: &str, body: &[u8]) {
    let parent_live = stack.last().is_none_or(|c| c.live);
    match word {
        "if" | "ifdef" | "ifndef" => {
            let chain = chains.counts.len();
            chains.counts.push(1);
            let decided_false = word == "if" && is_false_condition(body);
            let take = match (chains.policy, chains.known.get(chain)) {
                (Arms::Nth(n), Some(&total)) if total > 1 => n == 0 && !decided_false,
                _ => !decided_false,
            };
            stack.push(Conditional {
                parent_live,
                chosen: take,
                live: parent_live && take,
                chain,
                arm: 0,
            });
        }
        "elif" | "elifdef" | "elifndef" | "else" => {
            if let Some(top) = stack.last_mut() {
                top.arm += 1;
                if let Some(count) = chains.counts.get_mut(top.chain) {
                    *count += 1;
                }
                let decided_false = word == "elif" && is_false_condition(body);
                let take = match (chains.policy, chains.known.get(top.chain)) {
                    (Arms::Nth(n), Some(&total)) => top.arm == n.min(total - 1) && !decided_false,
                    _ => !top.chosen && !decided_false,
                };
                top.chosen |= take;
                top.live = top.parent_live && take;
            }
        }
        "endif" => {
            stack.pop();
        }
        _ => {}
    }
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// End (exclusive) of the balanced parenthesis group starting at `open`.
pub fn matching_paren(buf: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, &b) in buf.iter().enumerate().skip(open) {
        match b {
            b'(' => depth += 1,
            b')' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i + 1);
                }
            }
            b'{' | b'}' | b';' => return None,
            _ => {}
        }
    }
    None
}

fn skip_spaces(buf: &[u8], mut i: usize) -> usize {
    while i < buf.len() && buf[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// Keywords that look like calls (`while (x) {`) and must never be renamed.
const C_KEYWORDS: [&str; 8] = [
    "while",
    "switch",
    "return",
    "sizeof",
    "typeof",
    "_Generic",
    "__typeof__",
    "_Static_assert",
];

/// Keywords that take a type in parentheses and parse fine as they are.
const TYPE_TAKING_KEYWORDS: [&str; 12] = [
    "sizeof",
    "typeof",
    "__typeof__",
    "__typeof",
    "_Alignof",
    "alignof",
    "offsetof",
    "__builtin_offsetof",
    "__builtin_types_compatible_p",
    "va_arg",
    "_Generic",
    "__alignof__",
];

/// First words that make a macro argument a type (`min_t(unsigned int, ...)`,
/// `list_entry(p, struct page, lru)`).
const TYPE_WORDS: [&str; 17] = [
    "struct", "union", "enum", "unsigned", "signed", "const", "volatile", "short", "long", "char",
    "int", "float", "double", "void", "bool", "_Bool", "__u8",
];

/// The groups of one body, found in one pass: what `rewrite_identifiers`
/// asks for every identifier. Asking [`matching_paren`] and rescanning the
/// arguments per call instead costs O(n^2) on nested calls (`f(f(f(...`, a
/// fuzzer's and a generated file's favourite) and never finishes on 1 MB.
#[derive(Default)]
struct Groups {
    /// `(` offset -> end (exclusive) of its group, as `matching_paren` finds it.
    close: std::collections::HashMap<usize, usize>,
    /// `(` offset -> offsets of its top-level commas.
    commas: std::collections::HashMap<usize, Vec<usize>>,
}

impl Groups {
    fn scan(buf: &[u8], range: std::ops::Range<usize>) -> Self {
        let mut groups = Groups::default();
        // Open `(` and `[` (offset, byte); `{`, `}` and `;` end every open
        // group, as in `matching_paren`, so they can never be matched.
        let mut open: Vec<(usize, u8)> = Vec::new();
        for i in range {
            match buf[i] {
                b @ (b'(' | b'[') => open.push((i, b)),
                b']' if open.last().is_some_and(|&(_, b)| b == b'[') => {
                    open.pop();
                }
                b')' => {
                    while let Some((o, b)) = open.pop() {
                        if b == b'(' {
                            groups.close.insert(o, i + 1);
                            break;
                        }
                    }
                }
                b',' => {
                    if let Some(&(o, b'(')) = open.last() {
                        groups.commas.entry(o).or_default().push(i);
                    }
                }
                b'{' | b'}' | b';' => open.clear(),
                _ => {}
            }
        }
        groups
    }
}

/// Macros such as `min_t()` and `container_of()` take a type as an argument,
/// which no C parser accepts in a call. A type argument is rewritten to
/// underscores of the same length: a valid identifier.
fn rewrite_type_arguments(buf: &mut [u8], open: usize, close: usize, commas: &[usize]) {
    let mut arg_start = open + 1;
    for &comma in commas {
        rewrite_if_type(buf, arg_start, comma);
        arg_start = comma + 1;
    }
    rewrite_if_type(buf, arg_start, close - 1);
}

fn rewrite_if_type(buf: &mut [u8], start: usize, end: usize) {
    let arg = &buf[start..end];
    let Some(first) = arg.iter().position(|b| !b.is_ascii_whitespace()) else {
        return;
    };
    let last = arg
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .unwrap_or(first);
    let word_end = arg[first..]
        .iter()
        .position(|&b| !is_ident_byte(b))
        .map_or(arg.len(), |p| first + p);
    let is_type_word =
        std::str::from_utf8(&arg[first..word_end]).is_ok_and(|w| TYPE_WORDS.contains(&w));
    let only_type_chars = arg[first..=last]
        .iter()
        .all(|&b| is_ident_byte(b) || b == b'*' || b.is_ascii_whitespace());
    if is_type_word && only_type_chars {
        for b in &mut buf[start + first..=start + last] {
            *b = b'_';
        }
    }
}

/// Blanks annotations and renames iterator macros in `range`, which starts
/// outside any body (depth 0) or at a body's `{`. Also rewrites type arguments.
pub fn rewrite_identifiers(buf: &mut [u8], range: std::ops::Range<usize>, vocab: &Vocabulary<'_>) {
    let mut depth = 0usize;
    let mut i = range.start;
    let groups = Groups::scan(buf, range.clone());
    let buf = &mut buf[..range.end];
    while i < buf.len() {
        let b = buf[i];
        if b == b'{' {
            depth += 1;
            i += 1;
            continue;
        }
        if b == b'}' {
            depth = depth.saturating_sub(1);
            i += 1;
            continue;
        }
        if !is_ident_start(b) || (i > 0 && is_ident_byte(buf[i - 1])) {
            i += 1;
            continue;
        }
        let start = i;
        while i < buf.len() && is_ident_byte(buf[i]) {
            i += 1;
        }
        let Ok(word) = std::str::from_utf8(&buf[start..i]) else {
            continue;
        };
        if vocab.bare.contains(word) {
            blank(buf, start, i);
        } else if vocab.with_args.contains(word) {
            let open = skip_spaces(buf, i);
            let end = if buf.get(open) == Some(&b'(') {
                groups.close.get(&open).copied().unwrap_or(i)
            } else {
                i
            };
            blank(buf, start, end);
            i = end;
        } else if depth > 0 {
            let open = skip_spaces(buf, i);
            if buf.get(open) != Some(&b'(') {
                continue;
            }
            let Some(&close) = groups.close.get(&open) else {
                continue;
            };
            let is_iterator = word.len() >= 5 && vocab.catalogue.is_iterator(word);
            let is_keyword = C_KEYWORDS.contains(&word);
            let takes_types = !TYPE_TAKING_KEYWORDS.contains(&word);
            if word.len() >= 5 && !is_keyword {
                let next = skip_spaces(buf, close);
                // A loop header is followed by its body, never by `;` or an
                // operator. Any other macro call followed by a block
                // (`skb_walk_frags(skb, it) {`, `scoped_guard(...) {`) is
                // loop-like too: a call cannot be followed by `{` in C.
                let body_follows = match buf.get(next) {
                    Some(b'{') => true,
                    Some(&c) => is_iterator && is_ident_start(c),
                    None => false,
                };
                if body_follows {
                    buf[start..start + 5].copy_from_slice(b"while");
                    blank(buf, start + 5, i);
                }
            }
            if takes_types {
                let commas = groups.commas.get(&open).map_or(&[][..], Vec::as_slice);
                rewrite_type_arguments(buf, open, close, commas);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pre(src: &str) -> String {
        let cat = Catalogue::builtin().unwrap();
        let vocab = Vocabulary::new(&cat);
        String::from_utf8(preprocess(src.as_bytes(), &vocab)).unwrap()
    }

    #[test]
    fn keeps_length_and_newlines() {
        let src = "int f(void __user *p) /* c */\n{\n#ifdef X\n\ta();\n#else\n\tb();\n#endif\n}\n";
        let out = pre(src);
        assert_eq!(out.len(), src.len());
        assert_eq!(out.matches('\n').count(), src.matches('\n').count());
        assert!(out.contains("a();"));
        assert!(!out.contains("b();"));
        assert!(!out.contains("__user"));
    }

    #[test]
    fn later_arm_passes_keep_what_the_first_blanked() {
        let src = b"#ifdef A\nint a;\n#elif B\nint b;\n#else\nint c;\n#endif\n#ifndef G\nint g;\n#endif\n";
        let (first, counts) = lexical_arms(src, Arms::First, &[]);
        assert_eq!(counts, [3, 1]);
        let (second, _) = lexical_arms(src, Arms::Nth(1), &counts);
        let (last, _) = lexical_arms(src, Arms::Nth(2), &counts);
        let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
        let (first, second, last) = (text(first), text(second), text(last));
        assert!(first.contains("int a;") && !first.contains("int b;") && !first.contains("int c;"));
        assert!(
            second.contains("int b;") && !second.contains("int a;") && !second.contains("int c;")
        );
        assert!(last.contains("int c;") && !last.contains("int a;") && !last.contains("int b;"));
        assert!(
            last.contains("int g;"),
            "single-arm chains are kept in every pass"
        );
    }

    #[test]
    fn if_zero_keeps_else_branch() {
        let out = pre("#if 0\nold();\n#else\nnew();\n#endif\n");
        assert!(!out.contains("old"));
        assert!(out.contains("new();"));
    }

    #[test]
    fn iterator_becomes_while_only_in_bodies() {
        let out = pre("void f(void)\n{\n\tlist_for_each_entry(p, &h, node) {\n\t\tx();\n\t}\n}\n");
        assert!(out.contains("while              (p, &h, node) {"));
        let decl = pre("static int walk_for_each_page(int a)\n{\n}\n");
        assert!(decl.contains("walk_for_each_page"));
    }

    #[test]
    fn braces_in_literals_and_comments_are_blanked() {
        let out = pre("char *s = \"{\"; char c = '}'; /* { */\n");
        assert_eq!(out.matches('{').count(), 0);
        assert_eq!(out.matches('}').count(), 0);
    }

    #[test]
    fn any_macro_call_followed_by_a_block_is_a_loop_but_keywords_are_not() {
        let out =
            pre("void f(void)\n{\n\tring_walk(r, it) {\n\t}\n\tswitch (x) {\n\t}\n\tfoo(x);\n}\n");
        assert!(out.contains("while    (r, it) {"), "{out}");
        assert!(out.contains("switch (x) {"), "{out}");
        assert!(out.contains("foo(x);"), "{out}");
    }

    #[test]
    fn type_arguments_become_identifiers() {
        let out = pre(
            "void f(void)\n{\n\tn = min_t(unsigned int, a, b);\n\tp = list_entry(q, struct page, lru);\n\ts = sizeof(struct page);\n\tx = y(a * b);\n}\n",
        );
        assert!(out.contains("min_t(____________, a, b)"), "{out}");
        assert!(out.contains("list_entry(q, ___________, lru)"), "{out}");
        assert!(out.contains("sizeof(struct page)"), "{out}");
        assert!(out.contains("y(a * b)"), "{out}");
    }

    #[test]
    fn annotation_with_arguments_is_blanked() {
        let out = pre("int f(void) __acquires(&l->lock)\n{\n}\n");
        assert!(out.starts_with("int f(void)  "));
        assert!(!out.contains("lock"));
    }
}
