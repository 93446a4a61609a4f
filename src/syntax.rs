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

/// The nodes from `root` down to the smallest one covering `start..end`,
/// found by descending with a cursor: `Node::parent()` costs the depth on
/// every call, and asking it per level would be quadratic.
pub fn ancestors(root: Node<'_>, start: usize, end: usize) -> Vec<Node<'_>> {
    let mut chain = vec![root];
    let mut cursor = root.walk();
    loop {
        if cursor.goto_first_child_for_byte(start).is_none() {
            break;
        }
        // The first child ending after `start`; it or a sibling may cover the range.
        let mut found = false;
        loop {
            let node = cursor.node();
            if node.start_byte() <= start && end <= node.end_byte() {
                chain.push(node);
                found = true;
                break;
            }
            if node.start_byte() > start || !cursor.goto_next_sibling() {
                break;
            }
        }
        if !found {
            break;
        }
    }
    chain
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

    #[test]
    fn ancestors_descend_to_the_smallest_covering_node() {
        let mut parser = crate::parse::new_parser();
        let tree = parser.parse("{ if (x) { a(b); } }", None).unwrap();
        let call = 11..15;
        let chain = ancestors(tree.root_node(), call.start, call.end);
        let kinds: Vec<&str> = chain.iter().map(|n| n.kind()).collect();
        assert_eq!(kinds.last(), Some(&"call_expression"), "{kinds:?}");
        assert!(kinds.contains(&"if_statement"), "{kinds:?}");
        assert_eq!(kinds[0], "translation_unit");
    }
}
