use super::unmap::{describe, unmap_calls};
use super::{Needle, RuleCx, declare_rule};
use crate::catalogue::MapFamily;
use crate::diag::{Diagnostic, Label, Severity};

declare_rule! {
    /// ## What it does
    /// Finds a `kunmap_local()` (or `kunmap_atomic()`) that ends a mapping
    /// while a mapping made after it is still live, on some path.
    ///
    /// ## Why is this bad
    /// `kmap_local_*()` and `kmap_atomic()` mappings live in a small per-CPU /
    /// per-task stack of fixmap slots (Documentation/mm/highmem.rst: "nested
    /// kmap_local_page() and kmap_atomic() mappings are allowed to a certain
    /// extent ... and must be released in reverse order"). Unmapping the outer
    /// mapping first pops the wrong slot: the inner address may then point at
    /// another page, and debug kernels warn in `kunmap_local_indexed()`.
    ///
    /// ## Example
    /// ```c
    /// vfrom = kmap_local_page(from);
    /// vto = kmap_local_page(to);
    /// copy_page(vto, vfrom);
    /// kunmap_local(vfrom);    /* vto is still live: wrong order */
    /// kunmap_local(vto);
    /// ```
    ///
    /// ## Use instead
    /// ```c
    /// kunmap_local(vto);
    /// kunmap_local(vfrom);
    /// ```
    ///
    /// ## Known limitations
    /// Mappings stored in struct fields or arrays are not judged (their order
    /// spans calls or loop iterations). When more than 32 distinct path facts
    /// meet at one point, mapping order is merged away and the rule stays
    /// silent there. Unmaps are matched to maps
    /// by the variable named in the argument (or the page), else to the
    /// innermost live mapping.
    pub static KM004 = Rule {
        code: "KM004",
        name: "unmap-order",
        summary: "kmap_local/kmap_atomic mappings unmapped out of reverse order",
        default_severity: Severity::Error,
        needs: &[Needle::Maps(MapFamily::Local), Needle::Maps(MapFamily::Atomic)],
        check: check,
        wants_callers: None,
    };
}

fn check(cx: &RuleCx<'_>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for call in unmap_calls(cx) {
        let violation = call
            .facts
            .iter()
            .filter(|f| !f.order_lost)
            .find_map(|fact| {
                let target = call.target(cx, fact)?;
                let stack = match target.family {
                    MapFamily::Local => &fact.local,
                    MapFamily::Atomic => &fact.atomic,
                    MapFamily::Kmap => return None,
                };
                // A different family is KM006's finding, not an order problem.
                if target.family != call.family {
                    return None;
                }
                let innermost = *stack.last()?;
                // Mappings kept in struct fields or arrays (`d->src_addr`,
                // `pointers[i]`) outlive one pass of the code or stand for many
                // mappings: their order is not this function's alone to judge.
                let owned = |site: u16| !cx.cfg.maps[site as usize].escapes;
                (innermost != target.site && owned(innermost) && owned(target.site))
                    .then_some((target.site, innermost))
            });
        let Some((outer, inner)) = violation else {
            continue;
        };
        let (outer, inner) = (&cx.cfg.maps[outer as usize], &cx.cfg.maps[inner as usize]);
        out.push(Diagnostic {
            code: KM004.code,
            severity: Severity::Error,
            message: format!(
                "`{}()` ends {} while {}, mapped after it, is still live",
                call.name,
                describe(outer),
                describe(inner)
            ),
            function: cx.function.to_owned(),
            primary: Label {
                span: call.span,
                message: "unmapped out of reverse order here".to_owned(),
            },
            secondary: vec![
                Label {
                    span: outer.span,
                    message: "this mapping is unmapped first".to_owned(),
                },
                Label {
                    span: inner.span,
                    message: "but this one, mapped later, is still live".to_owned(),
                },
            ],
            notes: vec![
                "local and atomic kmaps are a stack: they must be released in reverse order"
                    .to_owned(),
            ],
            help: Some(format!(
                "unmap {} before {}",
                inner.var.as_deref().unwrap_or("the inner mapping"),
                outer.var.as_deref().unwrap_or("the outer mapping")
            )),
            fixes: Vec::new(),
        });
    }
    out
}
