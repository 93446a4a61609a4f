//! Turn the calls inside one statement or condition into catalogue events.

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;

use tree_sitter::Node as TsNode;

use super::{
    AccessSite, AcquireSite, CallSite, Cfg, Event, EventKind, MapSite, RelianceSite, Span,
};
use crate::catalogue::{Api, Catalogue};
use crate::syntax::preorder;

/// Names a graph is built with beyond the catalogue, for call summaries.
#[derive(Debug, Default)]
pub struct Extra {
    /// Functions of the file inferred to return holding a context (an
    /// acquire helper such as `uffd_mfill_lock()`): their calls are acquires.
    pub helpers: HashMap<String, Api>,
    /// Functions whose call sites are summarized: their calls become
    /// `EventKind::Call` events, so the dataflow records the context there.
    pub targets: HashSet<String>,
}

/// What event extraction needs besides the node.
pub struct EventCx<'a> {
    pub catalogue: &'a Catalogue,
    pub extra: &'a Extra,
    /// The parsed text (the function body slice of the preprocessed file).
    pub text: &'a [u8],
    /// Offset of `text` in the file.
    pub base: usize,
    /// Identifiers of each tracked condition, indexed by condition id.
    pub cond_idents: &'a [Vec<String>],
    /// Text of each tracked condition, indexed by condition id.
    pub cond_texts: &'a [String],
}

impl EventCx<'_> {
    pub fn span(&self, node: TsNode<'_>) -> Span {
        Span {
            start: self.base + node.start_byte(),
            end: self.base + node.end_byte(),
        }
    }

    pub fn raw(&self, node: TsNode<'_>) -> &str {
        std::str::from_utf8(&self.text[node.start_byte()..node.end_byte()]).unwrap_or("")
    }

    /// Node text without whitespace: `& mm->mmap_lock` and `&mm->mmap_lock` agree.
    pub fn normalized(&self, node: TsNode<'_>) -> String {
        self.raw(node).split_whitespace().collect()
    }

    pub fn first_arg(&self, call: TsNode<'_>) -> String {
        call.child_by_field_name("arguments")
            .and_then(|args| args.named_child(0))
            .map(|a| self.normalized(a))
            .unwrap_or_default()
    }

    /// The conditions whose identifiers include one of `lhs`'s identifiers.
    fn conds_touched_by(&self, lhs: TsNode<'_>) -> u64 {
        let text = self.raw(lhs);
        let mut mask = 0u64;
        for (i, idents) in self.cond_idents.iter().enumerate().take(64) {
            if idents.iter().any(|id| identifiers(text).any(|t| t == id)) {
                mask |= 1 << i;
            }
        }
        mask
    }
}

/// The identifiers of a piece of C text.
pub fn identifiers(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|t| t.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_'))
}

/// The variable a call's result is stored in: `v = call()`, `T *v = call()`,
/// also through casts and `call() + offset`.
fn receiving_variable(cx: &EventCx<'_>, call: TsNode<'_>) -> Option<String> {
    let mut child = call;
    let mut parent = call.parent()?;
    loop {
        match parent.kind() {
            "cast_expression" | "parenthesized_expression" | "binary_expression" => {}
            "assignment_expression" => {
                let left = parent.child_by_field_name("left")?;
                return (left.id() != child.id()).then(|| cx.normalized(left));
            }
            "init_declarator" => {
                let mut decl = parent.child_by_field_name("declarator")?;
                while let Some(inner) = decl.child_by_field_name("declarator") {
                    decl = inner;
                }
                return Some(cx.normalized(decl));
            }
            _ => return None,
        }
        child = parent;
        parent = parent.parent()?;
    }
}

/// Events of every call in `node`'s subtree, in evaluation order (arguments
/// before the call that receives them). Sites are appended to `cfg`.
pub fn collect(cx: &EventCx<'_>, node: TsNode<'_>, cfg: &mut Cfg) -> Vec<Event> {
    let mut found: Vec<(usize, usize, Event)> = Vec::new();
    // Explicit pre-order walk: no recursion, so deep nesting cannot overflow.
    preorder(node, |n| {
        match n.kind() {
            "call_expression" => {
                if let Some(event) = call_event(cx, n, cfg) {
                    found.push((n.end_byte(), n.start_byte(), event));
                } else {
                    for event in handoffs(cx, n, cfg) {
                        found.push((n.end_byte(), n.start_byte(), event));
                    }
                }
            }
            "assignment_expression" | "update_expression" | "init_declarator"
                if !cx.cond_idents.is_empty() =>
            {
                let lhs = n
                    .child_by_field_name("left")
                    .or_else(|| n.child_by_field_name("argument"))
                    .or_else(|| n.child_by_field_name("declarator"));
                if let Some(lhs) = lhs {
                    let conds = cx.conds_touched_by(lhs);
                    // `flag = true;` on a tracked flag sets it along the path.
                    let set = super::build::constant_assignment(cx, n).and_then(|(name, value)| {
                        let cond = cx.cond_texts.iter().position(|t| *t == name)?;
                        Some(EventKind::SetCond {
                            cond: u16::try_from(cond).ok()?,
                            value,
                        })
                    });
                    if let Some(kind) = set {
                        found.push((
                            n.end_byte(),
                            n.start_byte(),
                            Event {
                                kind,
                                span: cx.span(n),
                            },
                        ));
                    } else if conds != 0 {
                        let kind = EventKind::Forget { conds };
                        found.push((
                            n.end_byte(),
                            n.start_byte(),
                            Event {
                                kind,
                                span: cx.span(n),
                            },
                        ));
                    }
                }
            }
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
    found.sort_by_key(|(end, start, _)| (*end, std::cmp::Reverse(*start)));
    found.into_iter().map(|(_, _, e)| e).collect()
}

fn sleep_event(cx: &EventCx<'_>, call: TsNode<'_>, name: &str, cfg: &mut Cfg) -> EventKind {
    let index = u32::try_from(cfg.sleeps.len()).unwrap_or(u32::MAX);
    cfg.sleeps.push(CallSite {
        name: name.to_owned(),
        span: cx.span(call),
    });
    EventKind::Sleep { call: index }
}

pub fn is_plain_identifier(text: &str) -> bool {
    text.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A call outside the catalogue that is given a mapped address may keep or
/// release it (`z_erofs_lz4_handle_overlap(rq, headpage, ...)` unmaps on
/// error): one `Handoff` per map site whose variable is an argument.
fn handoffs(cx: &EventCx<'_>, call: TsNode<'_>, cfg: &Cfg) -> Vec<Event> {
    if cfg.maps.iter().all(|m| m.var.is_none()) {
        return Vec::new();
    }
    let Some(args) = call.child_by_field_name("arguments") else {
        return Vec::new();
    };
    let passed = argument_names(cx, args);
    cfg.maps
        .iter()
        .enumerate()
        .filter(|(_, m)| m.var.as_deref().is_some_and(|v| passed.contains(&v)))
        .map(|(site, _)| Event {
            kind: EventKind::Handoff {
                site: u16::try_from(site).unwrap_or(u16::MAX),
            },
            span: cx.span(call),
        })
        .collect()
}

/// The variables a call passes itself: `kaddr`, `kaddr + off`, `(void *)kaddr`,
/// `&kaddr`. Nested calls are not entered (they are visited as calls of their
/// own), which keeps `f(f(f(...)))` linear.
fn argument_names<'a>(cx: &'a EventCx<'a>, args: TsNode<'_>) -> Vec<&'a str> {
    let mut names = Vec::new();
    let mut cursor = args.walk();
    let mut stack: Vec<TsNode<'_>> = args.named_children(&mut cursor).collect();
    while let Some(n) = stack.pop() {
        match n.kind() {
            "identifier" => names.push(cx.raw(n)),
            "cast_expression"
            | "binary_expression"
            | "parenthesized_expression"
            | "pointer_expression"
            | "conditional_expression"
            | "unary_expression" => {
                let mut cursor = n.walk();
                stack.extend(n.named_children(&mut cursor));
            }
            _ => {}
        }
    }
    names
}

fn call_event(cx: &EventCx<'_>, call: TsNode<'_>, cfg: &mut Cfg) -> Option<Event> {
    let function = call.child_by_field_name("function")?;
    if function.kind() != "identifier" {
        return None;
    }
    let name = cx.raw(function);
    let span = cx.span(call);
    let Some(api) = cx
        .catalogue
        .lookup(name)
        .or_else(|| cx.extra.helpers.get(name))
    else {
        if !cx.extra.targets.contains(name) {
            return None;
        }
        let index = u32::try_from(cfg.calls.len()).unwrap_or(u32::MAX);
        cfg.calls.push(CallSite {
            name: name.to_owned(),
            span,
        });
        return Some(Event {
            kind: EventKind::Call { call: index },
            span,
        });
    };
    let kind = match api {
        Api::Map(family) => {
            let site = u16::try_from(cfg.maps.len()).unwrap_or(u16::MAX);
            let var = receiving_variable(cx, call);
            // A result used directly (returned, passed to a call) or stored
            // through a pointer leaves the function's hands.
            let escapes = var.as_deref().is_none_or(|v| !is_plain_identifier(v));
            cfg.maps.push(MapSite {
                name: name.to_owned(),
                family: *family,
                var,
                page_arg: cx.first_arg(call),
                escapes,
                aliases: Vec::new(),
                span,
            });
            EventKind::Map { site }
        }
        Api::Unmap(family) => EventKind::Unmap {
            family: *family,
            arg: cx.first_arg(call),
        },
        Api::Access { inatomic } => {
            let access = u32::try_from(cfg.accesses.len()).unwrap_or(u32::MAX);
            cfg.accesses.push(AccessSite {
                name: name.to_owned(),
                inatomic: *inatomic,
                span,
                local_start: call.start_byte(),
                local_end: call.end_byte(),
            });
            EventKind::Access { access }
        }
        Api::Sleep => sleep_event(cx, call, name, cfg),
        Api::SleepWithGfp => {
            let args = call
                .child_by_field_name("arguments")
                .map(|a| cx.raw(a))
                .unwrap_or("");
            let blocking =
                identifiers(args).any(|t| cx.catalogue.blocking_gfp.iter().any(|g| g == t));
            if !blocking {
                return None;
            }
            sleep_event(cx, call, name, cfg)
        }
        Api::Relies(on) => {
            let site = u32::try_from(cfg.relies.len()).unwrap_or(u32::MAX);
            cfg.relies.push(RelianceSite {
                name: name.to_owned(),
                on: *on,
                span,
            });
            EventKind::Relies { site }
        }
        Api::FaultDisable => EventKind::FaultDisable,
        Api::FaultEnable => EventKind::FaultEnable,
        Api::Acquire(ctx) => {
            let arg = cx.first_arg(call);
            if ctx
                .arg_contains
                .as_ref()
                .is_some_and(|needle| !arg.contains(needle.as_str()))
            {
                return None;
            }
            let site = u16::try_from(cfg.acquires.len()).unwrap_or(u16::MAX);
            cfg.acquires.push(AcquireSite {
                name: name.to_owned(),
                group: ctx.group,
                kind: ctx.kind,
                arg,
                span,
                entry: false,
            });
            EventKind::Acquire { site }
        }
        Api::Release(ctx) => {
            let arg = cx.first_arg(call);
            if ctx
                .arg_contains
                .as_ref()
                .is_some_and(|needle| !arg.contains(needle.as_str()))
            {
                return None;
            }
            EventKind::Release {
                group: ctx.group,
                kind: ctx.kind,
                arg,
            }
        }
    };
    Some(Event { kind, span })
}
