use std::collections::BTreeMap;

use super::conversion::{atomic_sites, converted, counterpart, in_local_region};
use super::wrap::{wrap_fix, wrappable_statement};
use super::{Needle, RuleCx, declare_rule, events};
use crate::catalogue::{MapFamily, Reliance};
use crate::cfg::{EventKind, Span};
use crate::diag::{Diagnostic, Label, Severity};

declare_rule! {
    /// ## What it does
    /// Patch mode only (`--patch`, `--git`, `--staged`, `--diff`). Finds a
    /// `kmap_atomic()` → `kmap_local_*()` conversion whose region uses per-CPU
    /// state (`smp_processor_id()`, `this_cpu_ptr()`, `__this_cpu_*()`,
    /// `per_cpu_ptr(.., smp_processor_id())`, ...; the list is
    /// queries/api/atomicity.toml `[preempt]`) that was used inside the `kmap_atomic()`
    /// region before, when nothing in the post-image disables preemption
    /// there: no `preempt_disable()`, `get_cpu()`, spinlock or irq-disable is
    /// held, and no `migrate_disable()` precedes it.
    ///
    /// ## Why is this bad
    /// `kmap_atomic()` disabled preemption as a side effect; `kmap_local_*()`
    /// does not (Documentation/mm/highmem.rst): on 64-bit kernels it changes
    /// no context at all. A per-CPU buffer picked with `smp_processor_id()`
    /// inside the old region could not be reused by another task on the same
    /// CPU; after the conversion the task may be preempted mid-use (the buffer
    /// is then clobbered) or migrated (the CPU number is stale), and
    /// `CONFIG_DEBUG_PREEMPT` reports `smp_processor_id()` in preemptible code.
    /// `--fix` wraps the per-CPU uses in `preempt_disable()`/`preempt_enable()`.
    ///
    /// ## Example
    /// ```c
    /// -	dst = kmap_atomic(page);
    /// +	dst = kmap_local_page(page);
    ///  	buf = per_cpu_ptr(scratch, smp_processor_id());
    ///  	memcpy(dst, buf, len);
    /// -	kunmap_atomic(dst);
    /// +	kunmap_local(dst);
    /// ```
    ///
    /// ## Use instead
    /// ```c
    /// 	dst = kmap_local_page(page);
    /// 	preempt_disable();
    /// 	buf = per_cpu_ptr(scratch, smp_processor_id());
    /// 	memcpy(dst, buf, len);
    /// 	preempt_enable();
    /// 	kunmap_local(dst);
    /// ```
    ///
    /// ## Known limitations
    /// Only the per-CPU calls themselves are seen: a CPU number or per-CPU
    /// pointer computed before the region and used inside it is not. A
    /// `migrate_disable()` is trusted anywhere before the use. The fix wraps
    /// the statements holding per-CPU calls and the plain statements after
    /// them that use what they assigned; a use past a branch or a `return`
    /// must be moved inside by hand.
    pub static KM003 = Rule {
        code: "KM003",
        name: "conversion-drops-preempt-disable",
        summary: "kmap_atomic() -> kmap_local_*() conversion leaves per-CPU state preemptible",
        default_severity: Severity::Error,
        needs: &[Needle::Maps(MapFamily::Local), Needle::Maps(MapFamily::Atomic)],
        check: check,
        wants_callers: None,
    };
}

/// One per-CPU use left preemptible: (call index, body-local range).
struct Use {
    call: usize,
    local: std::ops::Range<usize>,
}

fn check(cx: &RuleCx<'_>) -> Vec<Diagnostic> {
    let Some(pre) = converted(cx) else {
        return Vec::new();
    };
    // Uses grouped by the innermost live mapping: one finding per region.
    let mut regions: BTreeMap<u16, Vec<Use>> = BTreeMap::new();
    for (node, index, event) in events(cx) {
        let EventKind::Relies { site: call } = event.kind else {
            continue;
        };
        let site = &cx.cfg.relies[call as usize];
        if site.on != Reliance::Preempt {
            continue;
        }
        let local = site.span.start - cx.base..site.span.end - cx.base;
        let text = super::conversion::call_text(cx, local.clone());
        if counterpart(&pre.pinned_percpu, &site.name, &text).is_none() {
            continue;
        }
        let Some(map) = in_local_region(cx, node, index)
            .filter(|f| atomic_sites(cx, f.held).next().is_none())
            .filter_map(|f| f.local.last().copied())
            .max()
        else {
            continue;
        };
        if pinned(cx, local.start) {
            continue;
        }
        regions.entry(map).or_default().push(Use {
            call: call as usize,
            local,
        });
    }
    regions
        .into_iter()
        .filter_map(|(map, uses)| diagnostic(cx, map, &uses))
        .collect()
}

/// A `migrate_disable()` before the use with no `migrate_enable()` between.
fn pinned(cx: &RuleCx<'_>, at: usize) -> bool {
    let before = String::from_utf8_lossy(&cx.text[..at.min(cx.text.len())]);
    let last = |names: &[String]| {
        names
            .iter()
            .filter_map(|n| before.rfind(&format!("{n}(")))
            .max()
    };
    match (last(&cx.catalogue.cpu_pin), last(&cx.catalogue.cpu_unpin)) {
        (Some(pin), Some(unpin)) => pin > unpin,
        (Some(_), None) => true,
        _ => false,
    }
}

fn diagnostic(cx: &RuleCx<'_>, map: u16, uses: &[Use]) -> Option<Diagnostic> {
    let first = uses.first()?;
    let map = cx.cfg.maps.get(map as usize)?;
    let call = &cx.cfg.relies[first.call];
    let mut secondary = vec![Label {
        span: map.span,
        message: format!(
            "mapped by `{}()`, which, unlike kmap_atomic(), leaves preemption enabled",
            map.name
        ),
    }];
    secondary.extend(uses[1..].iter().map(|u| {
        let other = &cx.cfg.relies[u.call];
        Label {
            span: Span {
                start: other.span.start,
                end: other.span.end,
            },
            message: format!("`{}()` is preemptible here too", other.name),
        }
    }));
    Some(Diagnostic {
        code: KM003.code,
        severity: Severity::Error,
        message: format!(
            "`{}()` relied on kmap_atomic()'s implicit preempt_disable(); under `{}()` the task may be preempted or migrated",
            call.name, map.name
        ),
        function: cx.function.to_owned(),
        primary: Label {
            span: call.span,
            message: "preemption is enabled here after the conversion".to_owned(),
        },
        secondary,
        notes: vec![format!(
            "before this patch `{}()` ran inside kmap_atomic(), with preemption disabled",
            call.name
        )],
        help: Some(
            "disable preemption around the per-CPU use: `preempt_disable(); ... preempt_enable();` (or get_cpu()/put_cpu())"
                .to_owned(),
        ),
        fixes: fix(cx, uses),
    })
}

/// One `preempt_disable()`/`preempt_enable()` pair around every statement
/// holding a use, when they are all wrappable statements of one block.
fn fix(cx: &RuleCx<'_>, uses: &[Use]) -> Vec<crate::fix::Edit> {
    let statements: Option<Vec<_>> = uses
        .iter()
        .map(|u| wrappable_statement(cx, u.local.clone()))
        .collect();
    let Some(statements) = statements else {
        return Vec::new();
    };
    let (Some((first, block)), Some((last, _))) = (statements.first(), statements.last()) else {
        return Vec::new();
    };
    if statements.iter().any(|(_, b)| b != block) {
        return Vec::new();
    }
    let end = extend_over_uses(cx, &statements).unwrap_or(last.end);
    wrap_fix(
        cx,
        first.start..end,
        "preempt_disable();",
        "preempt_enable();",
    )
}

/// `s = per_cpu_ptr(.., smp_processor_id());` hands out a per-CPU pointer
/// that the next statements use: the protected section must run to the
/// last of the following sibling statements that names a variable the
/// wrapped statements assign. Only plain expression statements are crossed
/// (a `return`, `goto` or branch must not leave preemption disabled).
fn extend_over_uses(
    cx: &RuleCx<'_>,
    statements: &[(std::ops::Range<usize>, usize)],
) -> Option<usize> {
    let root = cx.tree.root_node();
    let mut assigned: Vec<String> = Vec::new();
    for (range, _) in statements {
        let text = String::from_utf8_lossy(&cx.text[range.clone()]);
        if let Some((left, right)) = text.split_once('=')
            && !right.starts_with('=')
        {
            let name = left.trim();
            if crate::cfg::events::is_plain_identifier(name) {
                assigned.push(name.to_owned());
            }
        }
    }
    let (last, _) = statements.last()?;
    let mut node = root.descendant_for_byte_range(last.start, last.end)?;
    while node.kind() != "expression_statement" {
        node = node.parent()?;
    }
    let mut end = None;
    let mut next = node.next_named_sibling();
    while let Some(sibling) = next {
        let plain = sibling.kind() == "expression_statement"
            && crate::fix::alone_on_lines(cx.text, sibling.start_byte(), sibling.end_byte());
        if !plain {
            break;
        }
        let text = String::from_utf8_lossy(&cx.text[sibling.start_byte()..sibling.end_byte()]);
        if crate::cfg::events::identifiers(&text).any(|t| assigned.iter().any(|a| a == t)) {
            end = Some(sibling.end_byte());
        }
        next = sibling.next_named_sibling();
    }
    end
}
