//! Fixes that wrap one statement in a disable/enable pair (KM001, KM002,
//! KM003): which statements can be wrapped safely, and the edits.

use std::ops::Range;

use super::RuleCx;

/// The statement holding the call at `range` of the parsed body, when a
/// fix may wrap it in whole lines: an expression statement alone on its
/// lines directly inside a `{ }` block. A declaration is left alone (a call
/// inserted above it would mix code and declarations). Also returns the
/// block's node id.
pub fn wrappable_statement(cx: &RuleCx<'_>, range: Range<usize>) -> Option<(Range<usize>, usize)> {
    let mut node = cx
        .tree
        .root_node()
        .descendant_for_byte_range(range.start, range.end)?;
    // A bounded climb from one call: never a per-node walk.
    for _ in 0..16 {
        if node.kind() == "expression_statement" {
            let parent = node.parent()?;
            let (start, end) = (node.start_byte(), node.end_byte());
            return (parent.kind() == "compound_statement"
                && crate::fix::alone_on_lines(cx.text, start, end))
            .then_some((start..end, parent.id()));
        }
        if matches!(
            node.kind(),
            "compound_statement" | "if_statement" | "declaration" | "for_statement"
        ) {
            return None;
        }
        node = node.parent()?;
    }
    None
}

/// Edits (in file offsets) that put `before();` and `after();` around the
/// statement at `stmt` (offsets in the parsed body).
pub fn wrap_fix(
    cx: &RuleCx<'_>,
    stmt: Range<usize>,
    before: &str,
    after: &str,
) -> Vec<crate::fix::Edit> {
    crate::fix::wrap_lines(cx.text, stmt.start, stmt.end, before, after)
        .into_iter()
        .map(|e| crate::fix::Edit {
            start: e.start + cx.base,
            end: e.end + cx.base,
            text: e.text,
        })
        .collect()
}
