use super::unmap::unmap_calls;
use super::{ALL_MAPS, RuleCx, declare_rule, events, exit_span};
use crate::cfg::{EventKind, Span};
use crate::dataflow::bits;
use crate::dataflow::lattice::Fact;
use crate::diag::{Diagnostic, Label, Severity};

declare_rule! {
    /// ## What it does
    /// In a function that maps pages, finds a path that returns with
    /// `pagefault_disable()` or `preempt_disable()` still in effect, and a
    /// `pagefault_enable()` reached on a path where this function did not
    /// disable page faults (an enable in a function with no disable at all is
    /// judged only inside a mapping the function makes and unmaps itself:
    /// elsewhere it is a release helper pairing with its caller). Functions annotated `__acquires()`/`__releases()`
    /// are documented helpers and are skipped, and so is a function that
    /// returns with faults (or preemption) disabled on every path and never
    /// re-enables them: a map-like helper by design.
    ///
    /// ## Why is this bad
    /// Both are counters in the task (`current->pagefault_disabled`) or the
    /// preempt count: an unmatched disable leaves every later user access of
    /// the task failing with -EFAULT (or the task unpreemptible), an unmatched
    /// enable underflows the counter and re-enables faults in a caller that
    /// relied on them being off. kmap_atomic() -> kmap_local_page()
    /// conversions that move the disable into a branch are the usual source.
    ///
    /// ## Example
    /// ```c
    /// pagefault_disable();
    /// left = __copy_from_user_inatomic(kaddr, src, len);
    /// if (left)
    ///         return -EFAULT;         /* faults stay disabled */
    /// pagefault_enable();
    /// ```
    ///
    /// ## Use instead
    /// ```c
    /// pagefault_disable();
    /// left = __copy_from_user_inatomic(kaddr, src, len);
    /// pagefault_enable();
    /// if (left)
    ///         return -EFAULT;
    /// ```
    ///
    /// ## Known limitations
    /// Conditions are correlated only when the same condition text guards the
    /// disable and the enable. Only functions that call a kmap function are
    /// analyzed.
    pub static KM009 = Rule {
        code: "KM009",
        name: "unbalanced-disable",
        summary: "pagefault_disable()/preempt_disable() not balanced on some path",
        default_severity: Severity::Error,
        needs: ALL_MAPS,
        check: check,
        wants_callers: None,
    };
}

/// A finding before it becomes a diagnostic: where, what it pairs with, why.
struct Unbalanced {
    span: Span,
    secondary: Option<(Span, &'static str)>,
    message: &'static str,
}

fn check(cx: &RuleCx<'_>) -> Vec<Diagnostic> {
    const HELPER_ANNOTATIONS: [&str; 4] = [
        "__acquires",
        "__releases",
        "__cond_acquires",
        "__cond_releases",
    ];
    // Functions analyzed for another rule's sake (an _inatomic access) but
    // that map nothing are out of this rule's scope.
    if cx.cfg.maps.is_empty() || HELPER_ANNOTATIONS.iter().any(|a| cx.header.contains(a)) {
        return Vec::new();
    }
    let preempt = cx.catalogue.group_names.iter().position(|g| g == "preempt");
    let is_preempt = |group: u16| preempt.is_some_and(|p| usize::from(group) == p);
    let mut first_disable = None;
    let mut has_enable = false;
    let mut releases_preempt = false;
    let mut inside_own_mapping = false;
    let mut found = Vec::new();
    for (node, index, event) in events(cx) {
        match &event.kind {
            EventKind::FaultDisable => {
                first_disable.get_or_insert(event.span);
            }
            EventKind::FaultEnable => {
                has_enable = true;
                let facts = cx.facts.before(node, index);
                if facts.iter().any(|f| f.pf_depth == 0) {
                    inside_own_mapping |= facts.iter().any(|f| f.pf_depth == 0 && f.any_live());
                    found.push(Unbalanced {
                        span: event.span,
                        secondary: None,
                        message: "`pagefault_enable()` on a path where this function did not disable page faults",
                    });
                }
            }
            EventKind::Release { group, .. } if is_preempt(*group) => releases_preempt = true,
            _ => {}
        }
    }
    // Without a disable of its own, an enable pairs with a caller's: a
    // release helper (mm/zsmalloc.c __zs_unmap_object() ends what
    // __zs_map_object() began). Not so when the enable sits inside a
    // mapping the function made and unmaps itself: that region lost its
    // disable.
    if first_disable.is_none() && !(inside_own_mapping && maps_and_unmaps_itself(cx)) {
        found.clear();
    }
    let mut exits: Vec<_> = cx.facts.exits.iter().collect();
    exits.sort_by_key(|(node, _)| cx.cfg.node(*node).span.start);
    let all = exits.iter().flat_map(|(_, facts)| facts.iter());
    // Returning with faults disabled on every path, with no enable at all, is
    // the design of a map-like helper (mm/zsmalloc.c __zs_map_object()
    // "matches kmap_atomic() return conditions"); a path that differs is not.
    let consistent_pf = !has_enable && all.clone().all(|f| f.pf_depth > 0);
    let pf_leak = exits
        .iter()
        .find(|(_, facts)| facts.iter().any(|f| f.pf_depth > 0));
    if let (Some((node, _)), Some(disable), false) = (pf_leak, first_disable, consistent_pf) {
        found.push(Unbalanced {
            span: exit_span(cx, *node),
            secondary: Some((disable, "page faults disabled here")),
            message: "returns with page faults still disabled (pagefault_disable() without pagefault_enable())",
        });
    }
    let held_preempt = |f: &Fact| bits(f.held).find(|&s| is_preempt(cx.cfg.acquires[s].group));
    let consistent_preempt = !releases_preempt && all.clone().all(|f| held_preempt(f).is_some());
    let preempt_leak = exits.iter().find_map(|(node, facts)| {
        facts
            .iter()
            .find_map(held_preempt)
            .map(|site| (*node, site))
    });
    if let (Some((node, site)), false) = (preempt_leak, consistent_preempt) {
        found.push(Unbalanced {
            span: exit_span(cx, node),
            secondary: Some((cx.cfg.acquires[site].span, "preemption disabled here")),
            message: "returns with preemption still disabled",
        });
    }
    diagnostics(cx, found)
}

fn diagnostics(cx: &RuleCx<'_>, found: Vec<Unbalanced>) -> Vec<Diagnostic> {
    found
        .into_iter()
        .map(|u| Diagnostic {
            code: KM009.code,
            severity: Severity::Error,
            message: u.message.to_owned(),
            function: cx.function.to_owned(),
            primary: Label {
                span: u.span,
                message: "unbalanced on this path".to_owned(),
            },
            secondary: u
                .secondary
                .map(|(span, message)| Label {
                    span,
                    message: message.to_owned(),
                })
                .into_iter()
                .collect(),
            notes: vec![
                "pagefault_disable() and preempt_disable() nest as counters: every path must undo what it did"
                    .to_owned(),
            ],
            help: Some(
                "pair every disable with its enable on all paths, or annotate a deliberate helper with __acquires()"
                    .to_owned(),
            ),
            fixes: Vec::new(),
        })
        .collect()
}

/// Does some unmap of this function end a mapping this function made?
fn maps_and_unmaps_itself(cx: &RuleCx<'_>) -> bool {
    unmap_calls(cx).iter().any(|call| {
        call.facts
            .iter()
            .any(|fact| call.target(cx, fact).is_some())
    })
}
