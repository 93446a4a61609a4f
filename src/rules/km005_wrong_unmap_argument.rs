use super::unmap::{describe, unmap_calls};
use super::{ALL_MAPS, RuleCx, declare_rule};
use crate::catalogue::MapFamily;
use crate::dataflow::UnmapMatch;
use crate::diag::{Diagnostic, Label, Severity};

declare_rule! {
    /// ## What it does
    /// Finds `kunmap_local(page)` / `kunmap_atomic(page)` given the `struct
    /// page *` (or folio) that was mapped instead of the mapped address, and
    /// `kunmap(addr)` given the address that `kmap()` returned instead of the page.
    ///
    /// ## Why is this bad
    /// The two APIs take opposite arguments (Documentation/mm/highmem.rst):
    /// `kunmap_local()` and `kunmap_atomic()` take an address inside the mapped
    /// page (they find the fixmap slot from it), `kunmap()` takes the page (it
    /// drops the page's pkmap reference count). Given the wrong one, the slot
    /// or count is never released: on 32-bit highmem kernels the mapping leaks
    /// until the pkmap area is exhausted and `kmap()` sleeps forever.
    ///
    /// ## Example
    /// ```c
    /// kaddr = kmap_local_page(page);
    /// memcpy(buf, kaddr, len);
    /// kunmap_local(page);
    /// ```
    ///
    /// ## Use instead
    /// ```c
    /// kunmap_local(kaddr);    /* or any address inside the page */
    /// ```
    ///
    /// ## Known limitations
    /// The argument is compared as text with the map call's first argument and
    /// with the variable that received the address.
    pub static KM005 = Rule {
        code: "KM005",
        name: "wrong-unmap-argument",
        summary: "unmap given the page instead of the address (or kunmap() the address)",
        default_severity: Severity::Error,
        needs: ALL_MAPS,
        check: check,
        wants_callers: None,
    };
}

fn check(cx: &RuleCx<'_>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for call in unmap_calls(cx) {
        let wrong = call.facts.iter().find_map(|fact| {
            let target = call.target(cx, fact)?;
            let wrong = target.family == call.family
                && match call.family {
                    MapFamily::Local | MapFamily::Atomic => target.how == UnmapMatch::ByPage,
                    MapFamily::Kmap => target.how == UnmapMatch::ByAddress,
                };
            wrong.then_some(target.site)
        });
        let Some(site) = wrong else { continue };
        let map = &cx.cfg.maps[site as usize];
        let (takes, given, fix) = if call.family == MapFamily::Kmap {
            ("the page", "the mapped address", map.page_arg.clone())
        } else {
            (
                "the mapped address",
                "the page",
                map.var.clone().unwrap_or_else(|| "the address".to_owned()),
            )
        };
        out.push(Diagnostic {
            code: KM005.code,
            severity: Severity::Error,
            message: format!(
                "`{}()` takes {takes}, but is given {given} of {}",
                call.name,
                describe(map)
            ),
            function: cx.function.to_owned(),
            primary: Label {
                span: call.span,
                message: format!("{given} passed here"),
            },
            secondary: vec![Label {
                span: map.span,
                message: "mapped here".to_owned(),
            }],
            notes: vec![
                "kunmap_local() and kunmap_atomic() take an address inside the mapping; kunmap() takes the page"
                    .to_owned(),
            ],
            help: Some(format!("call `{}({fix})`", call.name)),
            fixes: Vec::new(),
        });
    }
    out
}
