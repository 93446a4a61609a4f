//! What the unmap-judging rules (KM004, KM005, KM006) share: each unmap call
//! with the facts before it, resolved the way the dataflow resolved it.

use super::{RuleCx, events};
use crate::catalogue::MapFamily;
use crate::cfg::{EventKind, MapSite, Span};
use crate::dataflow::lattice::Fact;
use crate::dataflow::{UnmapTarget, unmap_target};

pub struct UnmapCall<'a> {
    pub span: Span,
    pub family: MapFamily,
    /// The called name as written (`kunmap_local`).
    pub name: String,
    pub facts: &'a [Fact],
    pub arg: &'a str,
}

impl UnmapCall<'_> {
    /// The mapping this call ends on the path of `fact`.
    pub fn target(&self, cx: &RuleCx<'_>, fact: &Fact) -> Option<UnmapTarget> {
        unmap_target(cx.cfg, fact, self.family, self.arg)
    }
}

/// Every unmap call of the function, in source order of nodes.
pub fn unmap_calls<'a>(cx: &'a RuleCx<'_>) -> Vec<UnmapCall<'a>> {
    events(cx)
        .filter_map(|(node, index, event)| match &event.kind {
            EventKind::Unmap { family, arg } => Some(UnmapCall {
                span: event.span,
                family: *family,
                name: call_name(cx, event.span),
                facts: cx.facts.before(node, index),
                arg,
            }),
            _ => None,
        })
        .collect()
}

/// The called identifier at the start of a call's span.
pub fn call_name(cx: &RuleCx<'_>, span: Span) -> String {
    let start = span.start.saturating_sub(cx.base);
    cx.text[start..]
        .iter()
        .take_while(|b| b.is_ascii_alphanumeric() || **b == b'_')
        .map(|b| char::from(*b))
        .collect()
}

/// How a map site is named in messages: `kaddr` (from `kmap_local_page()`).
pub fn describe(map: &MapSite) -> String {
    match &map.var {
        Some(var) => format!("`{var}` (from `{}()`)", map.name),
        None => format!("the `{}()` mapping", map.name),
    }
}

pub fn family_unmap(family: MapFamily) -> &'static str {
    match family {
        MapFamily::Local => "kunmap_local()",
        MapFamily::Atomic => "kunmap_atomic()",
        MapFamily::Kmap => "kunmap()",
    }
}
