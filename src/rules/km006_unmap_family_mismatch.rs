use super::unmap::{describe, family_unmap, unmap_calls};
use super::{ALL_MAPS, RuleCx, declare_rule};
use crate::catalogue::MapFamily;
use crate::dataflow::UnmapMatch;
use crate::diag::{Diagnostic, Label, Severity};

declare_rule! {
    /// ## What it does
    /// Finds a mapping released by the unmap of another family: a
    /// `kmap_local_*()` address given to `kunmap_atomic()` or `kunmap()`, a
    /// `kmap_atomic()` address given to `kunmap_local()`, a `kmap()` page given
    /// to `kunmap_local()`.
    ///
    /// ## Why is this bad
    /// Each family keeps different state (Documentation/mm/highmem.rst):
    /// `kunmap_atomic()` also re-enables page faults and preemption that
    /// `kmap_atomic()` disabled, so pairing it with `kmap_local_page()`
    /// unbalances both counters; `kunmap_local()` after `kmap_atomic()` leaves
    /// them disabled for the rest of the task; `kunmap()` drops a pkmap
    /// reference that `kmap_local_page()` never took. This is a typical slip of
    /// a half-done kmap_atomic() -> kmap_local_page() conversion.
    ///
    /// ## Example
    /// ```c
    /// kaddr = kmap_local_page(page);
    /// memset(kaddr, 0, PAGE_SIZE);
    /// kunmap_atomic(kaddr);
    /// ```
    ///
    /// ## Use instead
    /// ```c
    /// kunmap_local(kaddr);
    /// ```
    ///
    /// ## Known limitations
    /// An unmap is matched to a mapping by the variable or page it names; an
    /// unmap that names neither is assumed to match its own family.
    pub static KM006 = Rule {
        code: "KM006",
        name: "unmap-family-mismatch",
        summary: "mapping released by the unmap call of another kmap family",
        default_severity: Severity::Error,
        needs: ALL_MAPS,
        check: check,
        wants_callers: None,
    };
}

fn check(cx: &RuleCx<'_>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for call in unmap_calls(cx) {
        let mismatch = call.facts.iter().find_map(|fact| {
            let target = call.target(cx, fact)?;
            (target.family != call.family && target.how != UnmapMatch::Innermost)
                .then_some(target.site)
        });
        let Some(site) = mismatch else { continue };
        let map = &cx.cfg.maps[site as usize];
        let fix_arg = match map.family {
            MapFamily::Kmap => map.page_arg.clone(),
            _ => map.var.clone().unwrap_or_else(|| call.arg.to_owned()),
        };
        let fix = family_unmap(map.family).trim_end_matches("()");
        out.push(Diagnostic {
            code: KM006.code,
            severity: Severity::Error,
            message: format!(
                "{} is released with `{}()`, which belongs to another kmap family",
                describe(map),
                call.name
            ),
            function: cx.function.to_owned(),
            primary: Label {
                span: call.span,
                message: format!("`{}()` releases a `{}()` mapping", call.name, map.name),
            },
            secondary: vec![Label {
                span: map.span,
                message: format!("mapped with `{}()`", map.name),
            }],
            notes: vec![format!(
                "`{}()` must be released with `{}`",
                map.name,
                family_unmap(map.family)
            )],
            help: Some(format!("call `{fix}({fix_arg})`")),
            fixes: Vec::new(),
        });
    }
    out
}
