//! Build a [`Cfg`] from a parsed function body.
//!
//! Statements are lowered with "pending edges": each statement receives the
//! dangling edges that reach it and returns the ones that leave it, so
//! fall-through, `break`, `continue`, `goto` and `return` all become explicit
//! edges. Recursion follows statement nesting only and is cut at
//! [`MAX_NESTING`] (the rest is kept as one opaque statement, and the graph is
//! marked incomplete), so hostile input cannot overflow the stack.

use std::collections::{HashMap, HashSet};

use std::ops::ControlFlow;

use tree_sitter::Node as TsNode;

use super::events::{EventCx, Extra, collect, identifiers};
use super::{Assume, Cfg, CondInfo, EXIT, Edge, EdgeKind, EventKind, Node, NodeId, NodeKind, Span};
use crate::catalogue::Catalogue;
use crate::syntax::preorder;

/// Deeper statement nesting than this is summarized, not lowered.
pub const MAX_NESTING: usize = 128;

/// Edges waiting for the node that follows.
type Pending = Vec<(NodeId, EdgeKind, Option<Assume>)>;

/// Builds the graph of one body. `root` is the tree's root: the body parsed as
/// a top-level compound statement (plus whatever error recovery produced).
pub fn build(catalogue: &Catalogue, text: &[u8], base: usize, root: TsNode<'_>) -> Cfg {
    build_with(catalogue, &Extra::default(), text, base, root)
}

/// [`build`], with names the catalogue does not know: acquire helpers
/// inferred from the file, and calls to record as [`super::EventKind::Call`].
pub fn build_with(
    catalogue: &Catalogue,
    extra: &Extra,
    text: &[u8],
    base: usize,
    root: TsNode<'_>,
) -> Cfg {
    let probe = EventCx {
        catalogue,
        extra,
        text,
        base,
        cond_idents: &[],
        cond_texts: &[],
    };
    let (conds, cond_idents) = tracked_conditions(&probe, root);
    let cond_texts = conds.clone();
    let cx = EventCx {
        catalogue,
        extra,
        text,
        base,
        cond_idents: &cond_idents,
        cond_texts: &cond_texts,
    };
    let mut b = Builder {
        cx: &cx,
        cfg: Cfg {
            complete: !root.has_error(),
            conds: Vec::new(),
            ..Cfg::default()
        },
        cond_ids: HashMap::new(),
        labels: HashMap::new(),
        gotos: Vec::new(),
        breaks: Vec::new(),
        continues: Vec::new(),
        depth: 0,
        fault_disables: vec![0],
    };
    for (i, text) in conds.into_iter().enumerate() {
        b.cond_ids
            .insert(text.clone(), u16::try_from(i).unwrap_or(u16::MAX));
        b.cfg.conds.push(CondInfo {
            null_test: null_test(&text),
            text,
            guards_fault_disable: None,
        });
    }
    let whole = cx.span(root);
    b.node(
        NodeKind::Entry,
        Span {
            start: whole.start,
            end: whole.start,
        },
        Vec::new(),
    );
    b.node(
        NodeKind::Exit,
        Span {
            start: whole.end,
            end: whole.end,
        },
        Vec::new(),
    );
    let out = b.sequence(root, vec![(super::ENTRY, EdgeKind::Seq, None)]);
    b.connect(out, EXIT);
    mark_escapes(&cx, root, &mut b.cfg);
    for (pending, label) in std::mem::take(&mut b.gotos) {
        match b.labels.get(&label) {
            Some(&target) => b.connect_as(pending, target, EdgeKind::Goto),
            None => {
                b.cfg.complete = false;
                b.connect_as(pending, EXIT, EdgeKind::Goto);
            }
        }
    }
    b.cfg
}

/// Marks map sites whose address leaves the function: returned, stored in
/// a field or array, or taken by address. A copy into another local
/// (`hdr = kaddr + off;`) is an alias, not an escape: the mapping escapes
/// only if an alias does, and an unmap may name the alias. Passing the
/// address as a call argument (`memcpy(kaddr, ...)`) is use, not escape.
fn mark_escapes(cx: &EventCx<'_>, root: TsNode<'_>, cfg: &mut Cfg) {
    if cfg.maps.iter().all(|m| m.escapes) {
        return;
    }
    let mut escaped: HashSet<String> = HashSet::new();
    // (alias, source): `alias = source...` with a plain local on the left.
    let mut aliases: Vec<(String, String)> = Vec::new();
    preorder(root, |n| {
        let (flowing, target) = match n.kind() {
            "return_statement" => (n.named_child(0), None),
            "assignment_expression" => (
                n.child_by_field_name("right"),
                n.child_by_field_name("left").map(|l| cx.normalized(l)),
            ),
            "init_declarator" => (n.child_by_field_name("value"), declared_name(cx, n)),
            "pointer_expression" if cx.raw(n).starts_with('&') => {
                (n.child_by_field_name("argument"), None)
            }
            _ => (None, None),
        };
        if let Some(value) = flowing {
            for ident in identifiers_outside_calls(cx, value) {
                match target.as_deref() {
                    Some(t) if t == ident => {}
                    Some(t) if super::events::is_plain_identifier(t) => {
                        aliases.push((t.to_owned(), ident))
                    }
                    _ => {
                        escaped.insert(ident);
                    }
                }
            }
        }
        ControlFlow::<()>::Continue(())
    });
    for map in &mut cfg.maps {
        let Some(var) = map.var.clone() else { continue };
        // Two levels of copies cover `p = kaddr; q = p + off;`.
        let mut names = vec![var];
        for _ in 0..2 {
            let more: Vec<String> = aliases
                .iter()
                .filter(|(alias, source)| names.contains(source) && !names.contains(alias))
                .map(|(alias, _)| alias.clone())
                .collect();
            names.extend(more);
        }
        if names.iter().any(|n| escaped.contains(n)) {
            map.escapes = true;
        }
        map.aliases = names.split_off(1);
    }
}

/// The name an `init_declarator` declares (`*hdr` in `struct h *hdr = ...`).
fn declared_name(cx: &EventCx<'_>, n: TsNode<'_>) -> Option<String> {
    let mut decl = n.child_by_field_name("declarator")?;
    while let Some(inner) = decl.child_by_field_name("declarator") {
        decl = inner;
    }
    Some(cx.normalized(decl))
}

/// Identifiers whose own value an expression yields: `kaddr`, `(char *)kaddr`,
/// `kaddr + off`, `c ? kaddr : NULL`. Reading through one (`t->type`,
/// `p[0]`, `*p`) or passing it to a call (`memcpy(kaddr, ...)`) is use, not
/// escape.
fn identifiers_outside_calls(cx: &EventCx<'_>, expr: TsNode<'_>) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![expr];
    while let Some(n) = stack.pop() {
        match n.kind() {
            "identifier" => out.push(cx.normalized(n)),
            "cast_expression"
            | "binary_expression"
            | "parenthesized_expression"
            | "conditional_expression"
            | "comma_expression" => {
                let mut cursor = n.walk();
                stack.extend(n.named_children(&mut cursor));
            }
            _ => {}
        }
    }
    out
}

/// Condition texts used by two or more `if`s, with the identifiers in each.
fn tracked_conditions(cx: &EventCx<'_>, root: TsNode<'_>) -> (Vec<String>, Vec<Vec<String>>) {
    let mut counts: HashMap<String, usize> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    // Flags set to constants (`disabled = true;`): a test of one correlates
    // with the assignment even when it is tested once.
    let mut flags: HashSet<String> = HashSet::new();
    preorder(root, |n| {
        if let Some(flag) = constant_assignment(cx, n) {
            flags.insert(flag.0);
        }
        // A case label is a test `E == V` of its switch's scrutinee. (Found
        // from the switch downwards: Node::parent() walks from the root, so
        // asking each case for its switch is quadratic in nesting depth.)
        if n.kind() == "switch_statement"
            && let (Some(cond), Some(body)) = (
                n.child_by_field_name("condition"),
                n.child_by_field_name("body"),
            )
        {
            let scrutinee = condition_key(cx, cond).0;
            let mut cases = body.walk();
            for case in body.named_children(&mut cases) {
                let Some(value) = (case.kind() == "case_statement")
                    .then(|| case.child_by_field_name("value"))
                    .flatten()
                else {
                    continue;
                };
                let text = format!("{scrutinee}=={}", cx.normalized(value));
                let count = counts.entry(text.clone()).or_insert(0);
                if *count == 0 {
                    order.push(text);
                }
                *count += 1;
            }
        }
        if n.kind() == "if_statement"
            && let Some(cond) = n.child_by_field_name("condition")
        {
            let (text, _) = condition_key(cx, cond);
            let count = counts.entry(text.clone()).or_insert(0);
            if *count == 0 {
                order.push(text);
            }
            *count += 1;
        }
        ControlFlow::<()>::Continue(())
    });
    let tracked: Vec<String> = order
        .into_iter()
        .filter(|t| counts[t] >= 2 || flags.contains(t))
        .take(64)
        .collect();
    let idents = tracked
        .iter()
        .map(|t| identifiers(t).map(str::to_owned).collect())
        .collect();
    (tracked, idents)
}

/// `v = true;`, `bool v = false;`, `v = 0;`: the variable and the value.
pub fn constant_assignment(cx: &EventCx<'_>, n: TsNode<'_>) -> Option<(String, bool)> {
    let (lhs, rhs) = match n.kind() {
        "assignment_expression"
            if n.child_by_field_name("operator")
                .is_some_and(|o| cx.raw(o) == "=") =>
        {
            (
                n.child_by_field_name("left")?,
                n.child_by_field_name("right")?,
            )
        }
        "init_declarator" => (
            n.child_by_field_name("declarator")?,
            n.child_by_field_name("value")?,
        ),
        _ => return None,
    };
    let name = cx.normalized(lhs);
    if !super::events::is_plain_identifier(&name) {
        return None;
    }
    let value = match cx.normalized(rhs).as_str() {
        "true" | "1" => true,
        "false" | "0" | "NULL" => false,
        _ => return None,
    };
    Some((name, value))
}

/// `v`, `v != NULL`, `v == NULL` (after `condition_key`): the variable and
/// the condition value for which it is NULL.
fn null_test(key: &str) -> Option<(String, bool)> {
    use super::events::is_plain_identifier;
    if is_plain_identifier(key) && !matches!(key, "true" | "false") {
        return Some((key.to_owned(), false));
    }
    if let Some(var) = key
        .strip_suffix("!=NULL")
        .filter(|v| is_plain_identifier(v))
    {
        return Some((var.to_owned(), false));
    }
    if let Some(var) = key
        .strip_suffix("==NULL")
        .filter(|v| is_plain_identifier(v))
    {
        return Some((var.to_owned(), true));
    }
    None
}

/// A condition without parentheses, `likely()`/`unlikely()` and leading `!`s:
/// returns (text, negated).
fn condition_key(cx: &EventCx<'_>, cond: TsNode<'_>) -> (String, bool) {
    let mut text: String = cx.normalized(cond);
    let mut negated = false;
    loop {
        if let Some(inner) = strip_wrapper(&text, "") {
            text = inner;
        } else if let Some(inner) =
            strip_wrapper(&text, "unlikely").or_else(|| strip_wrapper(&text, "likely"))
        {
            text = inner;
        } else if let Some(rest) = text.strip_prefix('!').filter(|r| !r.starts_with('=')) {
            negated = !negated;
            text = rest.to_owned();
        } else {
            return (text, negated);
        }
    }
}

/// `name(inner)` -> `inner` when the parentheses enclose the whole text.
fn strip_wrapper(text: &str, name: &str) -> Option<String> {
    let rest = text
        .strip_prefix(name)?
        .strip_prefix('(')?
        .strip_suffix(')')?;
    let mut depth = 0i32;
    for c in rest.chars() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth -= 1;
                if depth < 0 {
                    return None;
                }
            }
            _ => {}
        }
    }
    (depth == 0).then(|| rest.to_owned())
}

struct Builder<'a> {
    cx: &'a EventCx<'a>,
    cfg: Cfg,
    cond_ids: HashMap<String, u16>,
    labels: HashMap<String, NodeId>,
    gotos: Vec<(Pending, String)>,
    /// Innermost loop or switch last: the edges that `break` out of it.
    breaks: Vec<Pending>,
    /// Innermost loop last: where `continue` goes.
    continues: Vec<NodeId>,
    /// Prefix counts of `pagefault_disable()` events over nodes in creation order.
    fault_disables: Vec<usize>,
    depth: usize,
}

impl Builder<'_> {
    fn node(&mut self, kind: NodeKind, span: Span, events: Vec<super::Event>) -> NodeId {
        let id = NodeId::try_from(self.cfg.nodes.len()).unwrap_or(NodeId::MAX);
        self.cfg.nodes.push(Node {
            kind,
            span,
            events,
            succs: Vec::new(),
        });
        id
    }

    fn connect(&mut self, pending: Pending, to: NodeId) {
        for (from, kind, assume) in pending {
            self.cfg.nodes[from as usize]
                .succs
                .push(Edge { to, kind, assume });
        }
    }

    fn connect_as(&mut self, pending: Pending, to: NodeId, kind: EdgeKind) {
        for (from, _, assume) in pending {
            self.cfg.nodes[from as usize]
                .succs
                .push(Edge { to, kind, assume });
        }
    }

    /// A statement without control flow: one node if it has events, else none.
    fn simple(&mut self, n: TsNode<'_>, pending: Pending) -> Pending {
        let events = collect(self.cx, n, &mut self.cfg);
        if events.is_empty() {
            return pending;
        }
        let id = self.node(NodeKind::Stmt, self.cx.span(n), events);
        self.connect(pending, id);
        vec![(id, EdgeKind::Seq, None)]
    }

    fn join(&mut self, n: TsNode<'_>, pending: Pending) -> NodeId {
        let span = self.cx.span(n);
        let id = self.node(
            NodeKind::Join,
            Span {
                start: span.start,
                end: span.start,
            },
            Vec::new(),
        );
        self.connect(pending, id);
        id
    }

    fn sequence(&mut self, parent: TsNode<'_>, mut pending: Pending) -> Pending {
        let mut cursor = parent.walk();
        for child in parent.named_children(&mut cursor) {
            pending = self.stmt(child, pending);
        }
        pending
    }

    /// The branch node for a condition, and the assumptions of its two edges.
    fn branch(
        &mut self,
        cond: TsNode<'_>,
        pending: Pending,
    ) -> (NodeId, Option<Assume>, Option<Assume>) {
        let events = collect(self.cx, cond, &mut self.cfg);
        let id = self.node(NodeKind::Branch, self.cx.span(cond), events);
        self.connect(pending, id);
        let (key, negated) = condition_key(self.cx, cond);
        // A NULL test of a mapped address is worth remembering on its edges
        // even when it is used once.
        if !self.cond_ids.contains_key(&key)
            && let Some(test) = null_test(&key)
            && self
                .cfg
                .maps
                .iter()
                .any(|m| m.var.as_deref() == Some(test.0.as_str()) || m.page_arg == test.0)
        {
            let id = u16::try_from(self.cfg.conds.len()).unwrap_or(u16::MAX);
            self.cond_ids.insert(key.clone(), id);
            self.cfg.conds.push(CondInfo {
                text: key.clone(),
                guards_fault_disable: None,
                null_test: Some(test),
            });
        }
        match self.cond_ids.get(&key) {
            Some(&cond) => (
                id,
                Some(Assume {
                    cond,
                    value: !negated,
                }),
                Some(Assume {
                    cond,
                    value: negated,
                }),
            ),
            None => (id, None, None),
        }
    }

    fn stmt(&mut self, n: TsNode<'_>, pending: Pending) -> Pending {
        if self.depth >= MAX_NESTING {
            self.cfg.complete = false;
            return self.simple(n, pending);
        }
        self.depth += 1;
        let out = self.stmt_inner(n, pending);
        self.depth -= 1;
        out
    }

    fn stmt_inner(&mut self, n: TsNode<'_>, pending: Pending) -> Pending {
        match n.kind() {
            "compound_statement" | "translation_unit" => self.sequence(n, pending),
            "ERROR" => {
                self.cfg.complete = false;
                self.sequence(n, pending)
            }
            "if_statement" => self.if_statement(n, pending),
            "while_statement" => self.while_statement(n, pending),
            "do_statement" => self.do_statement(n, pending),
            "for_statement" => self.for_statement(n, pending),
            "switch_statement" => self.switch_statement(n, pending),
            "case_statement" => {
                // Outside a switch only after error recovery: keep its statements.
                self.cfg.complete = false;
                self.case_body(n, pending)
            }
            "break_statement" => {
                match self.breaks.last_mut() {
                    Some(targets) => targets.extend(pending),
                    None => self.cfg.complete = false,
                }
                Vec::new()
            }
            "continue_statement" => {
                match self.continues.last().copied() {
                    Some(target) => self.connect_as(pending, target, EdgeKind::Back),
                    None => self.cfg.complete = false,
                }
                Vec::new()
            }
            "return_statement" => {
                let events = collect(self.cx, n, &mut self.cfg);
                let id = self.node(NodeKind::Stmt, self.cx.span(n), events);
                self.connect(pending, id);
                self.connect_as(vec![(id, EdgeKind::Return, None)], EXIT, EdgeKind::Return);
                Vec::new()
            }
            "goto_statement" => {
                let label = n
                    .child_by_field_name("label")
                    .map(|l| self.cx.normalized(l))
                    .unwrap_or_default();
                self.gotos.push((pending, label));
                Vec::new()
            }
            "labeled_statement" => {
                let label = n
                    .child_by_field_name("label")
                    .map(|l| self.cx.normalized(l))
                    .unwrap_or_default();
                let id = self.join(n, pending);
                self.labels.insert(label, id);
                let mut out = vec![(id, EdgeKind::Seq, None)];
                let mut cursor = n.walk();
                for child in n.named_children(&mut cursor).skip(1) {
                    out = self.stmt(child, out);
                }
                out
            }
            "attributed_statement" => {
                let mut out = pending;
                let mut cursor = n.walk();
                for child in n
                    .named_children(&mut cursor)
                    .filter(|c| c.kind() != "attribute_declaration")
                {
                    out = self.stmt(child, out);
                }
                out
            }
            "comment" | ";" => pending,
            _ => self.simple(n, pending),
        }
    }

    fn if_statement(&mut self, n: TsNode<'_>, pending: Pending) -> Pending {
        let Some(cond) = n.child_by_field_name("condition") else {
            return self.simple(n, pending);
        };
        let (id, on_true, on_false) = self.branch(cond, pending);
        let before = self.cfg.nodes.len();
        let mut out = match n.child_by_field_name("consequence") {
            Some(cons) => self.stmt(cons, vec![(id, EdgeKind::True, on_true)]),
            None => vec![(id, EdgeKind::True, on_true)],
        };
        let disables_when_true = self.any_fault_disable(before);
        let before = self.cfg.nodes.len();
        let alternative = n.child_by_field_name("alternative").map(|alt| {
            if alt.kind() == "else_clause" {
                alt.named_child(0).unwrap_or(alt)
            } else {
                alt
            }
        });
        match alternative {
            Some(alt) => out.extend(self.stmt(alt, vec![(id, EdgeKind::False, on_false)])),
            None => out.push((id, EdgeKind::False, on_false)),
        }
        let disables_when_false = self.any_fault_disable(before);
        if let Some(assume) = on_true {
            let info = &mut self.cfg.conds[assume.cond as usize];
            if disables_when_true != disables_when_false && info.guards_fault_disable.is_none() {
                info.guards_fault_disable = Some(if disables_when_true {
                    assume.value
                } else {
                    !assume.value
                });
            }
        }
        out
    }

    /// Did the nodes created since `first` call `pagefault_disable()`?
    /// (`fault_disables[i]` counts the disables in the first `i` nodes, so
    /// this is O(1) however many `if`s a function has.)
    fn any_fault_disable(&mut self, first: usize) -> bool {
        self.count_fault_disables();
        self.fault_disables[self.cfg.nodes.len()] > self.fault_disables[first]
    }

    fn count_fault_disables(&mut self) {
        for i in self.fault_disables.len() - 1..self.cfg.nodes.len() {
            let here = self.cfg.nodes[i]
                .events
                .iter()
                .filter(|e| matches!(e.kind, EventKind::FaultDisable))
                .count();
            let total = self.fault_disables[i] + here;
            self.fault_disables.push(total);
        }
    }

    fn constant(&self, cond: TsNode<'_>) -> Option<bool> {
        let (text, negated) = condition_key(self.cx, cond);
        match text.as_str() {
            "1" | "true" => Some(!negated),
            "0" | "false" => Some(negated),
            _ => None,
        }
    }

    fn loop_body(
        &mut self,
        body: Option<TsNode<'_>>,
        pending: Pending,
        continue_to: NodeId,
    ) -> (Pending, Pending) {
        self.breaks.push(Vec::new());
        self.continues.push(continue_to);
        let out = match body {
            Some(body) => self.stmt(body, pending),
            None => pending,
        };
        self.continues.pop();
        let breaks = self.breaks.pop().unwrap_or_default();
        (out, breaks)
    }

    fn while_statement(&mut self, n: TsNode<'_>, pending: Pending) -> Pending {
        let Some(cond) = n.child_by_field_name("condition") else {
            return self.simple(n, pending);
        };
        let constant = self.constant(cond);
        let (head, on_true, on_false) = self.branch(cond, pending);
        let (body_out, mut out) = self.loop_body(
            n.child_by_field_name("body"),
            vec![(head, EdgeKind::True, on_true)],
            head,
        );
        self.connect_as(body_out, head, EdgeKind::Back);
        if constant != Some(true) {
            out.push((head, EdgeKind::False, on_false));
        }
        out
    }

    fn do_statement(&mut self, n: TsNode<'_>, pending: Pending) -> Pending {
        let head = self.join(n, pending);
        let cond = n.child_by_field_name("condition");
        // `continue` jumps to the condition, which is built after the body.
        let cond_join = self.node(NodeKind::Join, self.cx.span(n), Vec::new());
        let (body_out, mut out) = self.loop_body(
            n.child_by_field_name("body"),
            vec![(head, EdgeKind::Seq, None)],
            cond_join,
        );
        self.connect(body_out, cond_join);
        let Some(cond) = cond else {
            out.push((cond_join, EdgeKind::Seq, None));
            return out;
        };
        let constant = self.constant(cond);
        let (branch, on_true, on_false) = self.branch(cond, vec![(cond_join, EdgeKind::Seq, None)]);
        if constant != Some(false) {
            self.connect_as(
                vec![(branch, EdgeKind::True, on_true)],
                head,
                EdgeKind::Back,
            );
        }
        if constant != Some(true) {
            out.push((branch, EdgeKind::False, on_false));
        }
        out
    }

    fn for_statement(&mut self, n: TsNode<'_>, pending: Pending) -> Pending {
        let mut pending = pending;
        if let Some(init) = n.child_by_field_name("initializer") {
            pending = self.simple(init, pending);
        }
        let head = self.join(n, pending);
        let cond = n.child_by_field_name("condition");
        let constant = cond.and_then(|c| self.constant(c));
        let (entry, exit) = match cond {
            Some(cond) => {
                let (branch, on_true, on_false) =
                    self.branch(cond, vec![(head, EdgeKind::Seq, None)]);
                (
                    vec![(branch, EdgeKind::True, on_true)],
                    Some((branch, EdgeKind::False, on_false)),
                )
            }
            None => (vec![(head, EdgeKind::Seq, None)], None),
        };
        let update_join = self.node(NodeKind::Join, self.cx.span(n), Vec::new());
        let (body_out, mut out) = self.loop_body(n.child_by_field_name("body"), entry, update_join);
        self.connect(body_out, update_join);
        let mut after_update = vec![(update_join, EdgeKind::Seq, None)];
        if let Some(update) = n.child_by_field_name("update") {
            after_update = self.simple(update, after_update);
        }
        self.connect_as(after_update, head, EdgeKind::Back);
        if let Some(exit) = exit.filter(|_| constant != Some(true)) {
            out.push(exit);
        }
        out
    }

    /// A `switch` is lowered as a chain of `E == V` tests, one per case in
    /// source order, so that a later `if (E == V)` correlates with the case
    /// that was taken (`case ATOMIC: pagefault_disable(); fallthrough; ...
    /// if (mode == ATOMIC) pagefault_enable();`).
    fn switch_statement(&mut self, n: TsNode<'_>, pending: Pending) -> Pending {
        let Some(cond) = n.child_by_field_name("condition") else {
            return self.simple(n, pending);
        };
        let events = collect(self.cx, cond, &mut self.cfg);
        let dispatch = self.node(NodeKind::Branch, self.cx.span(cond), events);
        self.connect(pending, dispatch);
        let (scrutinee, _) = condition_key(self.cx, cond);
        let children: Vec<TsNode<'_>> = match n.child_by_field_name("body") {
            Some(body) => {
                let mut cursor = body.walk();
                body.named_children(&mut cursor).collect()
            }
            None => Vec::new(),
        };
        // The dispatch chain: each case's entry edges, then what no case takes.
        let mut not_taken: Pending = vec![(dispatch, EdgeKind::Seq, None)];
        let mut entries: Vec<Pending> = Vec::new();
        for child in &children {
            let value = (child.kind() == "case_statement")
                .then(|| child.child_by_field_name("value"))
                .flatten();
            let Some(value) = value else {
                entries.push(Vec::new());
                continue;
            };
            let test = self.node(NodeKind::Branch, self.cx.span(value), Vec::new());
            self.connect(std::mem::take(&mut not_taken), test);
            let key = format!("{scrutinee}=={}", self.cx.normalized(value));
            let cond = self.cond_ids.get(&key).copied();
            let assume = |value| cond.map(|cond| Assume { cond, value });
            entries.push(vec![(test, EdgeKind::Case, assume(true))]);
            not_taken = vec![(test, EdgeKind::False, assume(false))];
        }
        let has_default = children
            .iter()
            .any(|c| c.kind() == "case_statement" && c.child_by_field_name("value").is_none());
        self.breaks.push(Vec::new());
        let mut fall: Pending = Vec::new();
        for (child, mut entry) in children.iter().zip(entries) {
            if child.kind() == "case_statement" {
                if child.child_by_field_name("value").is_none() {
                    entry = std::mem::take(&mut not_taken);
                }
                fall.extend(entry);
                fall = self.case_body(*child, fall);
            } else {
                // Statements before the first case are unreachable except by goto.
                fall = self.stmt(*child, fall);
            }
        }
        let mut out = self.breaks.pop().unwrap_or_default();
        out.extend(fall);
        if !has_default {
            out.extend(not_taken);
        }
        out
    }

    fn case_body(&mut self, case: TsNode<'_>, pending: Pending) -> Pending {
        let value = case.child_by_field_name("value").map(|v| v.id());
        let mut out = pending;
        let mut cursor = case.walk();
        for child in case.named_children(&mut cursor) {
            if Some(child.id()) != value {
                out = self.stmt(child, out);
            }
        }
        out
    }
}
