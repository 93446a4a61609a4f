use super::unmap::{describe, family_unmap, unmap_calls};
use super::{ALL_MAPS, RuleCx, declare_rule, exit_span};
use crate::catalogue::MapFamily;
use crate::cfg::Span;
use crate::dataflow::lattice::bit;
use crate::diag::{Diagnostic, Label, Severity};

declare_rule! {
    /// ## What it does
    /// Finds a path from a map call to a function exit (an early `return`, an
    /// error `goto`, falling off the end) on which the mapping is still live,
    /// in a function that unmaps it on its other paths.
    ///
    /// ## Why is this bad
    /// A leaked `kmap_atomic()` leaves page faults and preemption disabled for
    /// the rest of the task; a leaked `kmap_local_page()` keeps its slot in the
    /// per-task mapping stack, so every later local mapping of the task is
    /// off by one and the stack overflows after a few calls
    /// (Documentation/mm/highmem.rst); a leaked `kmap()` pins a pkmap entry
    /// until the pkmap area is exhausted and `kmap()` sleeps forever. Error
    /// paths added later are the usual culprit.
    ///
    /// ## Example
    /// ```c
    /// kaddr = kmap_local_page(page);
    /// if (hdr->magic != MAGIC)
    ///         return -EINVAL;         /* kaddr still mapped */
    /// ...
    /// kunmap_local(kaddr);
    /// ```
    ///
    /// ## Use instead
    /// ```c
    /// if (hdr->magic != MAGIC) {
    ///         kunmap_local(kaddr);
    ///         return -EINVAL;
    /// }
    /// ```
    ///
    /// ## Known limitations
    /// A mapping whose address is returned, stored or aliased is the caller's
    /// and is not followed. A mapping that the function never unmaps on any
    /// path is not reported (it may be released by a helper). Severity is
    /// `error` for local and atomic mappings, `warning` for `kmap()`, when
    /// the address was passed to another function on the leaking path, and
    /// when every unmap sits in a rejoining `if` (no return or goto) that the
    /// map is outside of (`if (use_sg) kunmap_atomic(buf);` at a common exit:
    /// the author thought the mapping conditional; the leaking path may be
    /// infeasible).
    pub static KM007 = Rule {
        code: "KM007",
        name: "leaked-mapping",
        summary: "a path returns with a kmap mapping still live while other paths unmap it",
        default_severity: Severity::Error,
        needs: ALL_MAPS,
        check: check,
        wants_callers: None,
    };
}

fn check(cx: &RuleCx<'_>) -> Vec<Diagnostic> {
    // Sites some unmap of this function ends: the function owns their
    // release. `unconditional`: some unmap of the site is not guarded by an
    // `if` that leaves the map outside it.
    let mut released = 0u64;
    let mut unconditional = 0u64;
    for call in unmap_calls(cx) {
        // The sites this call ends on some path, each judged once (the tree
        // walk of guarded_apart() is not per fact).
        let targets = call
            .facts
            .iter()
            .filter_map(|fact| call.target(cx, fact))
            .fold(0u64, |acc, t| acc | bit(t.site));
        released |= targets;
        for site in (0..64u16).filter(|&s| targets & bit(s) != 0) {
            let map = &cx.cfg.maps[site as usize];
            if !guarded_apart(cx, call.span, map.span) {
                unconditional |= bit(site);
            }
        }
    }
    let mut exits: Vec<_> = cx.facts.exits.iter().collect();
    exits.sort_by_key(|(node, _)| cx.cfg.node(*node).span.start);
    let mut reported = 0u64;
    let mut out = Vec::new();
    for (node, facts) in exits {
        for fact in facts {
            let live = fact
                .local
                .iter()
                .chain(&fact.atomic)
                .copied()
                .chain((0..64u16).filter(|&s| fact.kmap & bit(s) != 0));
            for site in live {
                let map = &cx.cfg.maps[site as usize];
                if map.escapes || released & bit(site) == 0 || reported & bit(site) != 0 {
                    continue;
                }
                reported |= bit(site);
                let doubt = if fact.handed_off & bit(site) != 0 {
                    Some(
                        "on this path the address was passed to another function, which may have unmapped it",
                    )
                } else if unconditional & bit(site) == 0 {
                    Some(
                        "the function unmaps it only under a condition the map is not under: check that this path is feasible",
                    )
                } else {
                    None
                };
                out.push(diagnostic(cx, *node, site, doubt));
            }
        }
    }
    out
}

/// Is the unmap at `unmap` inside an `if` branch that does not also hold the
/// map at `map` (`if (use_sg) kunmap_atomic(buffer);` after an unconditional
/// map)? Then the author believed the mapping conditional, and a path around
/// the `if` may be infeasible.
fn guarded_apart(cx: &RuleCx<'_>, unmap: Span, map: Span) -> bool {
    let local = |offset: usize| offset.saturating_sub(cx.base);
    // Root to unmap by a cursor descent: `Node::parent()` per level was
    // quadratic in the nesting depth (tests/hostile.rs, KM011's case).
    let chain = crate::syntax::ancestors(cx.tree.root_node(), local(unmap.start), local(unmap.end));
    for pair in chain.windows(2).rev() {
        let (parent, node) = (pair[0], pair[1]);
        if parent.kind() == "if_statement"
            && parent
                .child_by_field_name("condition")
                .is_none_or(|c| c.id() != node.id())
        {
            let holds_map =
                parent.start_byte() <= local(map.start) && local(map.end) <= parent.end_byte();
            // An early exit (`if (bad) { kunmap_local(p); return -EINVAL; }`)
            // is the error path of a mapping that exists: a leak elsewhere is
            // certain. A cleanup that rejoins (`out: if (use_sg) kunmap(...)`)
            // is the author saying the mapping may not exist.
            return !holds_map && !exits(node);
        }
    }
    false
}

/// Does this branch leave the function or jump (`return`, `goto`)?
fn exits(branch: tree_sitter::Node<'_>) -> bool {
    let mut stack = vec![branch];
    while let Some(n) = stack.pop() {
        if matches!(n.kind(), "return_statement" | "goto_statement") {
            return true;
        }
        let mut cursor = n.walk();
        stack.extend(n.named_children(&mut cursor));
    }
    false
}

fn diagnostic(cx: &RuleCx<'_>, node: u32, site: u16, doubt: Option<&str>) -> Diagnostic {
    let map = &cx.cfg.maps[site as usize];
    let span = exit_span(cx, node);
    // A function that was given the address on this path may have released
    // it: then this is a question for the reviewer, not a certain leak.
    let severity = if map.family == MapFamily::Kmap || doubt.is_some() {
        Severity::Warning
    } else {
        Severity::Error
    };
    let mut notes: Vec<String> = doubt.iter().map(|d| (*d).to_owned()).collect();
    if map.family == MapFamily::Atomic {
        notes.push(
            "a leaked kmap_atomic() also leaves page faults and preemption disabled".to_owned(),
        );
    }
    let release = match map.family {
        MapFamily::Kmap => format!("kunmap({})", map.page_arg),
        _ => format!(
            "{}({})",
            family_unmap(map.family).trim_end_matches("()"),
            map.var.as_deref().unwrap_or("addr")
        ),
    };
    Diagnostic {
        code: KM007.code,
        severity,
        message: format!(
            "{} is still mapped when the function returns here",
            describe(map)
        ),
        function: cx.function.to_owned(),
        primary: Label {
            span,
            message: "returns with the mapping live on this path".to_owned(),
        },
        secondary: vec![Label {
            span: map.span,
            message: "mapped here; other paths unmap it".to_owned(),
        }],
        notes,
        help: Some(format!("call `{release}` before this exit")),
        fixes: Vec::new(),
    }
}
