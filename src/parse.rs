//! Find function bodies in preprocessed text and parse the ones that matter.
//!
//! Kernel headers often do not parse as C (macro-wrapped definitions such as
//! `SYSCALL_DEFINE3(...)`), so function boundaries come from braces, not from
//! the grammar: after preprocessing, comments, literals and directives are
//! blank, so a top-level `{` that follows `)` opens a function body. Only
//! bodies that contain a catalogue name are handed to tree-sitter, which parses
//! a lone `{ ... }` as a top-level compound statement.

use std::ops::ControlFlow;
use std::time::Instant;

use tree_sitter::{ParseOptions, ParseState, Parser, Tree};

use crate::catalogue::Catalogue;
use crate::preprocess::matching_paren;

/// A function definition found in the preprocessed text.
#[derive(Clone, Debug)]
pub struct FunctionSpan {
    pub name: String,
    /// Byte offset where the header (return type, name, parameters) begins.
    pub header_start: usize,
    /// Byte offset of the `{` that opens the body.
    pub body_start: usize,
    /// Byte offset just past the closing `}` (the end of file if truncated).
    pub body_end: usize,
    /// The body has no closing brace (truncated or unbalanced input).
    pub truncated: bool,
    /// Declared `static`: callable from its own file only.
    pub is_static: bool,
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Every top-level `{ ... }` that follows a `)`: the function definitions.
pub fn find_functions(pre: &[u8], catalogue: &Catalogue) -> Vec<FunctionSpan> {
    let mut out = Vec::new();
    let mut depth = 0usize;
    let mut item_start = 0usize;
    let mut open = 0usize;
    let mut is_function = false;
    for pos in memchr::memchr3_iter(b'{', b'}', b';', pre) {
        match pre[pos] {
            b'{' => {
                if depth == 0 {
                    open = pos;
                    is_function = pre[item_start..pos]
                        .iter()
                        .rev()
                        .find(|b| !b.is_ascii_whitespace())
                        == Some(&b')');
                }
                depth += 1;
            }
            b'}' => {
                if depth == 0 {
                    continue; // stray brace: unbalanced input, skip it
                }
                depth -= 1;
                if depth == 0 {
                    if is_function {
                        let name = function_name(&pre[item_start..open], catalogue);
                        out.push(FunctionSpan {
                            name,
                            header_start: item_start,
                            body_start: open,
                            body_end: pos + 1,
                            truncated: false,
                            is_static: is_static(&pre[item_start..open]),
                        });
                    }
                    item_start = pos + 1;
                }
            }
            _ => {
                if depth == 0 {
                    item_start = pos + 1;
                }
            }
        }
    }
    if depth > 0 && is_function {
        let name = function_name(&pre[item_start..open], catalogue);
        out.push(FunctionSpan {
            name,
            header_start: item_start,
            body_start: open,
            body_end: pre.len(),
            truncated: true,
            is_static: is_static(&pre[item_start..open]),
        });
    }
    out
}

/// The declared name in a function header: the identifier before the first
/// top-level `(`; for `SYSCALL_DEFINE3(name, ...)`-style wrappers, argument 1.
fn function_name(header: &[u8], catalogue: &Catalogue) -> String {
    let mut i = 0;
    while i < header.len() {
        if header[i] == b'(' {
            let mut end = i;
            while end > 0 && header[end - 1].is_ascii_whitespace() {
                end -= 1;
            }
            let mut start = end;
            while start > 0 && is_ident_byte(header[start - 1]) {
                start -= 1;
            }
            let ident = String::from_utf8_lossy(&header[start..end]).into_owned();
            if ident.is_empty() {
                // `void (*f)(...)` style or a parenthesized declarator: look inside.
                let close = matching_paren(header, i).unwrap_or(header.len());
                i = close.max(i + 1);
                continue;
            }
            if catalogue.definition_wrappers.contains(&ident) {
                let args = &header[i + 1..];
                let name: String = args
                    .iter()
                    .skip_while(|b| b.is_ascii_whitespace())
                    .take_while(|b| is_ident_byte(**b))
                    .map(|b| char::from(*b))
                    .collect();
                return name;
            }
            return ident;
        }
        i += 1;
    }
    "<unknown>".to_owned()
}

/// Does a (preprocessed) function header declare it `static`?
fn is_static(header: &[u8]) -> bool {
    header
        .split(|b| !is_ident_byte(*b))
        .any(|word| word == b"static")
}

/// Bodies larger than this are not parsed. The largest top-level brace group
/// in the 6.12 files that mention kmap is 80 KB; on hostile input tree-sitter's
/// error recovery takes up to ~2 KB of memory per byte, so this bounds one
/// parse to ~500 MB.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// Parses one function body. `None` if tree-sitter gives up: `deadline`
/// passed (checked from tree-sitter's progress callback) or cancellation.
pub fn parse_body(
    parser: &mut Parser,
    pre: &[u8],
    span: &FunctionSpan,
    deadline: Option<Instant>,
) -> Option<Tree> {
    let text = &pre[span.body_start..span.body_end];
    let Some(deadline) = deadline else {
        return parser.parse(text, None);
    };
    let mut past_deadline = |_: &ParseState| {
        if Instant::now() >= deadline {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    };
    let options = ParseOptions::new().progress_callback(&mut past_deadline);
    let tree = parser.parse_with_options(
        &mut |i, _| text.get(i..).unwrap_or_default(),
        None,
        Some(options),
    );
    if tree.is_none() {
        // A cancelled parser resumes the old parse on its next call unless reset.
        parser.reset();
    }
    tree
}

/// A parser for C, one per thread.
pub fn new_parser() -> Parser {
    let mut parser = Parser::new();
    parser.set_language(&tree_sitter_c::LANGUAGE.into()).expect(
        "tree-sitter-c is ABI-compatible with the tree-sitter crate (checked by tests/meta.rs)",
    );
    parser
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_functions_and_names() {
        let cat = Catalogue::builtin().unwrap();
        let src = b"struct s { int a; };\nstatic int x = { 1 };\nint foo(int a)\n{\n\tif (a) { }\n}\nSYSCALL_DEFINE2(bar, int, a, int, b)\n{\n}\n";
        let fns = find_functions(src, &cat);
        let names: Vec<_> = fns.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["foo", "bar"]);
    }

    #[test]
    fn truncated_body_is_reported() {
        let cat = Catalogue::builtin().unwrap();
        let fns = find_functions(b"int foo(void)\n{\n\tif (x) {\n", &cat);
        assert_eq!(fns.len(), 1);
        assert!(fns[0].truncated);
    }
}
