//! Syntactic evidence shared by rules: does a failed user copy lead to a
//! "retry elsewhere" fallback (`-ENOENT`, `-EAGAIN`)?
//!
//! The seed bug's author wrote `if (unlikely(ret)) { ret = -ENOENT; ... }`
//! after the copy: the caller then retries the copy outside mmap_lock. That
//! only works if the copy fails fast instead of faulting, so it is evidence
//! that page faults were meant to be disabled.

use std::ops::ControlFlow;

use tree_sitter::Node as TsNode;

use super::RuleCx;
use crate::cfg::Span;
use crate::cfg::events::identifiers;
use crate::syntax::preorder;

/// How far the search for the test of a stored result goes.
const MAX_LEVELS: usize = 4;
const MAX_SIBLINGS: usize = 16;
/// The label (at the acquire) and note that name a held context as
/// evidence that a fault is forbidden (KM001, KM002).
pub fn held_context(acquire: &crate::cfg::AcquireSite) -> (crate::diag::Label, String) {
    use crate::catalogue::ContextKind;
    let (label, note) = match acquire.kind {
        ContextKind::Mmap => (
            format!("`{}()` takes mmap_lock here; it is still held at the access", acquire.name),
            "evidence: mmap_lock is held: the fault handler takes it again and deadlocks behind a queued writer".to_owned(),
        ),
        ContextKind::Atomic => (
            format!("`{}()` here makes the access atomic context", acquire.name),
            format!("evidence: atomic context (`{}()` held): resolving a fault may sleep", acquire.name),
        ),
    };
    let label = crate::diag::Label {
        span: acquire.span,
        message: label,
    };
    (label, note)
}

/// The span of the retry code that a failure of the call at
/// `local_start..local_end` (offsets in the parsed text) leads to.
pub fn retry_fallback(cx: &RuleCx<'_>, local_start: usize, local_end: usize) -> Option<Span> {
    let root = cx.tree.root_node();
    let mut call = root.descendant_for_byte_range(local_start, local_end)?;
    while call.kind() != "call_expression"
        || call.start_byte() != local_start
        || call.end_byte() != local_end
    {
        call = call.parent()?;
    }
    let mut negated = false;
    let mut child = call;
    let mut parent = call.parent()?;
    loop {
        match parent.kind() {
            "parenthesized_expression" | "argument_list" | "cast_expression" => {}
            "call_expression" => {
                let f = parent.child_by_field_name("function").map(|f| text(cx, f));
                if !matches!(f.as_deref(), Some("likely" | "unlikely")) {
                    return None;
                }
            }
            "unary_expression" => {
                if text_of_op(cx, parent) == "!" {
                    negated = !negated;
                }
            }
            "binary_expression" => {
                if text_of_op(cx, parent) == "==" {
                    negated = !negated;
                }
            }
            "if_statement" => {
                let cond = parent.child_by_field_name("condition")?;
                if cond.id() != child.id() {
                    return None;
                }
                return retry_in_branch(cx, parent, negated);
            }
            "assignment_expression" => {
                let left = parent.child_by_field_name("left")?;
                return (left.id() != child.id())
                    .then(|| later_test(cx, parent, &text(cx, left)))?;
            }
            "init_declarator" => {
                let mut decl = parent.child_by_field_name("declarator")?;
                while let Some(inner) = decl.child_by_field_name("declarator") {
                    decl = inner;
                }
                return later_test(cx, parent, &text(cx, decl));
            }
            _ => return None,
        }
        child = parent;
        parent = parent.parent()?;
    }
}

fn text(cx: &RuleCx<'_>, n: TsNode<'_>) -> String {
    String::from_utf8_lossy(&cx.text[n.start_byte()..n.end_byte()])
        .split_whitespace()
        .collect()
}

fn text_of_op(cx: &RuleCx<'_>, n: TsNode<'_>) -> String {
    n.child_by_field_name("operator")
        .map(|op| text(cx, op))
        .unwrap_or_default()
}

/// After `var = copy(...)`, the first `if` that tests `var` decides.
fn later_test(cx: &RuleCx<'_>, from: TsNode<'_>, var: &str) -> Option<Span> {
    let mut stmt = from;
    for _ in 0..MAX_LEVELS + 4 {
        let parent = stmt.parent()?;
        if matches!(
            parent.kind(),
            "compound_statement" | "case_statement" | "translation_unit"
        ) {
            break;
        }
        stmt = parent;
    }
    for _ in 0..MAX_LEVELS {
        let mut next = stmt.next_named_sibling();
        let mut seen = 0;
        while let Some(s) = next {
            if seen == MAX_SIBLINGS {
                return None;
            }
            seen += 1;
            if s.kind() == "if_statement"
                && let Some(cond) = s.child_by_field_name("condition")
                && identifiers(&text(cx, cond)).any(|t| t == var)
            {
                let key = text(cx, cond);
                let negated = condition_negated(&key, var);
                return retry_in_branch(cx, s, negated);
            }
            if assigns(cx, s, var) {
                return None;
            }
            next = s.next_named_sibling();
        }
        stmt = stmt.parent()?;
        if stmt.kind() == "translation_unit" {
            return None;
        }
    }
    None
}

/// Is the failure (non-zero) case the `else` side of this test of `var`?
fn condition_negated(cond: &str, var: &str) -> bool {
    let inner = cond.trim_start_matches('(').trim_end_matches(')');
    let inner = inner
        .strip_prefix("unlikely(")
        .or_else(|| inner.strip_prefix("likely("))
        .unwrap_or(inner);
    inner.starts_with(&format!("!{var}")) || inner.contains(&format!("{var}==0"))
}

fn assigns(cx: &RuleCx<'_>, stmt: TsNode<'_>, var: &str) -> bool {
    let t = text(cx, stmt);
    t.starts_with(&format!("{var}=")) && !t.starts_with(&format!("{var}=="))
}

/// Does the failure branch of `if_stmt` set or return a retry code?
fn retry_in_branch(cx: &RuleCx<'_>, if_stmt: TsNode<'_>, negated: bool) -> Option<Span> {
    let branch = if negated {
        let alt = if_stmt.child_by_field_name("alternative")?;
        if alt.kind() == "else_clause" {
            alt.named_child(0)?
        } else {
            alt
        }
    } else {
        if_stmt.child_by_field_name("consequence")?
    };
    preorder(branch, |n| {
        if n.kind() == "identifier" && cx.catalogue.is_retry_code(&text(cx, n)) {
            let before = cx.text[..n.start_byte()]
                .iter()
                .rev()
                .find(|b| !b.is_ascii_whitespace());
            if before == Some(&b'-') {
                return ControlFlow::Break(Span {
                    start: cx.base + n.start_byte() - 1,
                    end: cx.base + n.end_byte(),
                });
            }
        }
        ControlFlow::Continue(())
    })
}
