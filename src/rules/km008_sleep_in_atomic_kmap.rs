use super::{Needle, RuleCx, declare_rule, events};
use crate::callgraph::Held;
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
    /// A `kmap_local_*()` region is atomic too when the function's caller holds
    /// an atomic context (spinlock, irqs or preemption off, RCU, `kmap_atomic()`)
    /// on every path to the call, directly or up to three calls above (error,
    /// naming the caller), or calls it with page faults disabled (warning).
    /// Callers are resolved as KM001 resolves them.
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
    /// into other functions that sleep are not followed (callers are: see above).
    pub static KM008 = Rule {
        code: "KM008",
        name: "sleep-in-atomic-kmap",
        summary: "a call that may sleep inside kmap_atomic() or a fault/preempt-disabled kmap region",
        default_severity: Severity::Error,
        needs: &[Needle::Maps(MapFamily::Atomic), Needle::Maps(MapFamily::Local)],
        check: check,
        wants_callers: Some(wants_callers),
    };
}

/// A sleeping call inside a live mapping and what the function itself
/// shows about the region.
struct Sleeper<'a> {
    call: u32,
    facts: &'a [crate::dataflow::lattice::Fact],
    atomic_map: Option<u16>,
    preempt_site: Option<usize>,
}

fn sleepers<'a>(cx: &'a RuleCx<'_>) -> impl Iterator<Item = Sleeper<'a>> + 'a {
    let preempt = cx.catalogue.group_names.iter().position(|g| g == "preempt");
    events(cx).filter_map(move |(node, index, event)| {
        let EventKind::Sleep { call } = event.kind else {
            return None;
        };
        let facts = cx.facts.before(node, index);
        let atomic_map = facts.iter().find_map(|f| f.atomic.last().copied());
        let preempt_site = facts.iter().filter(|f| f.any_live()).find_map(|f| {
            bits(f.held)
                .find(|&s| preempt.is_some_and(|p| usize::from(cx.cfg.acquires[s].group) == p))
        });
        Some(Sleeper {
            call,
            facts,
            atomic_map,
            preempt_site,
        })
    })
}

/// A sleep under a `kmap_local_*()` mapping that is not atomic by the
/// function's own doing: a caller's context decides.
fn wants_callers(cx: &RuleCx<'_>) -> bool {
    sleepers(cx).any(|s| {
        s.atomic_map.is_none()
            && s.preempt_site.is_none()
            && s.facts.iter().any(|f| !f.local.is_empty())
    })
}

fn check(cx: &RuleCx<'_>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for Sleeper {
        call,
        facts,
        atomic_map,
        preempt_site,
    } in sleepers(cx)
    {
        let sleeper = &cx.cfg.sleeps[call as usize];
        let fault_disabled_local = facts.iter().any(|f| f.pf_depth > 0 && !f.local.is_empty());
        let local = facts.iter().find_map(|f| f.local.last().copied());
        let caller = |kind| {
            local
                .is_some()
                .then(|| cx.callers.iter().find(|e| e.held() == kind))
                .flatten()
        };
        let mut notes = Vec::new();
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
        } else if let Some(caller) = caller(Held::Atomic) {
            notes.push(format!(
                "evidence: {}: the whole region is atomic",
                caller.describe()
            ));
            (
                Severity::Error,
                format!(
                    "in atomic context: its caller holds `{}()` while a mapping is live",
                    caller.context.by
                ),
                Label {
                    span: cx.cfg.maps[local.unwrap_or(0) as usize].span,
                    message: "mapped here, with the caller's atomic context held".to_owned(),
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
        } else if let Some(caller) = caller(Held::FaultsDisabled) {
            notes.push(format!("evidence: {}", caller.describe()));
            (
                Severity::Warning,
                "with page faults disabled by its caller under a kmap_local mapping".to_owned(),
                Label {
                    span: cx.cfg.maps[local.unwrap_or(0) as usize].span,
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
            notes,
            help: Some("move the call out of the region, or use a non-sleeping variant (GFP_ATOMIC, trylock)".to_owned()),
            fixes: Vec::new(),
        });
    }
    out
}
