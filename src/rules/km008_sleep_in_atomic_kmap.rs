use super::{Needle, RuleCx, declare_rule, events};
use crate::catalogue::MapFamily;
use crate::cfg::EventKind;
use crate::dataflow::bits;
use crate::diag::{Diagnostic, Label, Severity};

declare_rule! {
    /// ## What it does
    /// Finds a call that may sleep (`mutex_lock()`, `down()`, `msleep()`,
    /// `schedule()`, `cond_resched()`, `might_sleep()`, `wait_event*()`,
    /// `flush_work()`, `kmalloc(GFP_KERNEL)` and other blocking allocations...)
    /// inside a `kmap_atomic()` region, or with `preempt_disable()` held while a
    /// mapping is live (error), or under `pagefault_disable()` with a
    /// `kmap_local_*()` mapping live (warning).
    ///
    /// ## Why is this bad
    /// `kmap_atomic()` disables preemption and page faults until
    /// `kunmap_atomic()` (Documentation/mm/highmem.rst): the region is atomic,
    /// and sleeping there is "BUG: scheduling while atomic". Code converted to
    /// `kmap_local_page()` may sleep, unless the conversion kept a
    /// `pagefault_disable()` or `preempt_disable()` that still forbids it.
    /// `copy_from_user()` is not a sleeping call here: with faults disabled it
    /// fails fast, which is why the region disables them.
    ///
    /// ## Example
    /// ```c
    /// kaddr = kmap_atomic(page);
    /// buf = kmalloc(len, GFP_KERNEL);
    /// ```
    ///
    /// ## Use instead
    /// ```c
    /// buf = kmalloc(len, GFP_KERNEL);     /* before mapping */
    /// kaddr = kmap_local_page(page);      /* or GFP_ATOMIC inside */
    /// ```
    ///
    /// ## Known limitations
    /// Only calls listed in queries/api/sleep.toml are known to sleep; calls
    /// into other functions that sleep are not followed.
    pub static KM008 = Rule {
        code: "KM008",
        name: "sleep-in-atomic-kmap",
        summary: "a call that may sleep inside kmap_atomic() or a fault/preempt-disabled kmap region",
        default_severity: Severity::Error,
        needs: &[Needle::Maps(MapFamily::Atomic), Needle::Maps(MapFamily::Local)],
        check: check,
    };
}

fn check(cx: &RuleCx<'_>) -> Vec<Diagnostic> {
    let preempt = cx.catalogue.group_names.iter().position(|g| g == "preempt");
    let mut out = Vec::new();
    for (node, index, event) in events(cx) {
        let EventKind::Sleep { call } = event.kind else {
            continue;
        };
        let facts = cx.facts.before(node, index);
        let sleeper = &cx.cfg.sleeps[call as usize];
        let atomic_map = facts.iter().find_map(|f| f.atomic.last().copied());
        let preempt_site = facts.iter().filter(|f| f.any_live()).find_map(|f| {
            bits(f.held)
                .find(|&s| preempt.is_some_and(|p| usize::from(cx.cfg.acquires[s].group) == p))
        });
        let fault_disabled_local = facts.iter().any(|f| f.pf_depth > 0 && !f.local.is_empty());
        let (severity, why, label) = if let Some(site) = atomic_map {
            let map = &cx.cfg.maps[site as usize];
            (
                Severity::Error,
                format!(
                    "inside a `{}()` region (atomic: preemption and page faults disabled)",
                    map.name
                ),
                Label {
                    span: map.span,
                    message: "atomic mapping taken here".to_owned(),
                },
            )
        } else if let Some(site) = preempt_site {
            let acquire = &cx.cfg.acquires[site];
            (
                Severity::Error,
                format!(
                    "with preemption disabled by `{}()` while a mapping is live",
                    acquire.name
                ),
                Label {
                    span: acquire.span,
                    message: "preemption disabled here".to_owned(),
                },
            )
        } else if fault_disabled_local {
            let map = facts
                .iter()
                .find_map(|f| f.local.last().copied())
                .unwrap_or(0);
            (
                Severity::Warning,
                "with page faults disabled under a kmap_local mapping".to_owned(),
                Label {
                    span: cx.cfg.maps[map as usize].span,
                    message: "mapped here".to_owned(),
                },
            )
        } else {
            continue;
        };
        out.push(Diagnostic {
            code: KM008.code,
            severity,
            message: format!("`{}()` may sleep {why}", sleeper.name),
            function: cx.function.to_owned(),
            primary: Label { span: sleeper.span, message: "may sleep here".to_owned() },
            secondary: vec![label],
            notes: Vec::new(),
            help: Some("move the call out of the region, or use a non-sleeping variant (GFP_ATOMIC, trylock)".to_owned()),
            fixes: Vec::new(),
        });
    }
    out
}
