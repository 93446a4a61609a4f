//! Walking tree-sitter trees without recursion.

use std::ops::ControlFlow;

use tree_sitter::Node;

/// Visits `root` and every node below it in pre-order (source order) with an
/// explicit cursor: no recursion, so deeply nested input cannot overflow the
/// stack. `visit` returns `Break` to stop early; its value is returned.
pub fn preorder<'t, B>(
    root: Node<'t>,
    mut visit: impl FnMut(Node<'t>) -> ControlFlow<B>,
) -> Option<B> {
    let mut cursor = root.walk();
    loop {
        if let ControlFlow::Break(value) = visit(cursor.node()) {
            return Some(value);
        }
        if cursor.goto_first_child() {
            continue;
        }
        loop {
            if cursor.node().id() == root.id() {
                return None;
            }
            if cursor.goto_next_sibling() {
                break;
            }
            if !cursor.goto_parent() {
                return None;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visits_a_subtree_in_source_order_and_stops_on_break() {
        let mut parser = crate::parse::new_parser();
        let tree = parser.parse("{ a(b); c(); }", None).unwrap();
        let mut calls = Vec::new();
        preorder(tree.root_node(), |n| {
            if n.kind() == "identifier" {
                calls.push(n.start_byte());
            }
            ControlFlow::<()>::Continue(())
        });
        assert_eq!(calls, [2, 4, 8]);
        let first = preorder(tree.root_node(), |n| {
            if n.kind() == "call_expression" {
                ControlFlow::Break(n.start_byte())
            } else {
                ControlFlow::Continue(())
            }
        });
        assert_eq!(first, Some(2));
    }
}
