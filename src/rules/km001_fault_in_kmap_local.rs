use super::{Needle, RuleCx, accesses, declare_rule, evidence};
use crate::callgraph::{CallerEvidence, Held};
use crate::catalogue::MapFamily;
use crate::cfg::Span;
use crate::dataflow::lattice::Fact;
use crate::diag::{Diagnostic, Label, Severity};

declare_rule! {
    /// ## What it does
    /// Finds a user-memory access that may fault (`copy_from_user()`,
    /// `get_user()`, `copy_page_from_iter()`, `__copy_from_user_inatomic()`, ...)
    /// made while a `kmap_local_page()`/`kmap_local_folio()`/`kmap_local_pfn()`
    /// mapping is live, with page faults enabled on some path that reaches it,
    /// in a context that shows a fault is not allowed there.
    ///
    /// ## Why is this bad
    /// `kmap_atomic()` silently disabled page faults and preemption;
    /// `kmap_local_*()` does not (Documentation/mm/highmem.rst). Code converted
    /// from the first to the second may still rely on the copy failing fast
    /// instead of faulting. In `shmem_mfill_atomic_pte()` the copy runs with
    /// `mmap_lock` held for read and a failure returns `-ENOENT` so that the
    /// caller retries outside the lock. If the copy faults instead, the fault
    /// handler takes `mmap_lock` again; rwsems are fair, so with a writer
    /// queued (another thread calling `mmap()`) the second read lock waits for
    /// the writer, which waits for the first reader: deadlock. Under a spinlock,
    /// with interrupts or preemption disabled, or in an RCU read-side section,
    /// a fault may sleep in atomic context.
    ///
    /// The rule needs evidence that a fault is not allowed, and says which it found:
    /// 1. the access is an `_inatomic` variant (its author assumed faults were off) — error;
    /// 2. an atomic context is held at the access (`spin_lock*()`, `local_irq_save()`,
    ///    `preempt_disable()`, `rcu_read_lock()`, `pte_offset_map_lock()`, ...) — error;
    /// 3. `mmap_lock` is held at the access, taken in this function — error;
    /// 4. a caller holds `mmap_lock` (or the per-VMA lock) or an atomic context on
    ///    every path to its call of this function, or is called so itself, up to three
    ///    calls above (`caller mfill_atomic_pte() holds mmap_lock at mm/userfaultfd.c:693`)
    ///    — error. Callers are looked up in the files given (the whole tree for `.`);
    ///    a static function is called from its own file only, a call resolves to
    ///    another file only if that file does not define the name, and a call
    ///    through a function pointer names no caller. A caller may take the lock
    ///    through an acquire helper of its file (`uffd_mfill_lock()`), recognized
    ///    from its body or its `__acquires()` annotation;
    /// 5. a failed copy leads to a "retry elsewhere" fallback (`-ENOENT`, `-EAGAIN`) — warning.
    ///
    /// A plain `copy_from_user()` under `kmap_local_page()` with none of these is
    /// correct: faults are allowed there, and the rule stays silent.
    ///
    /// ## Example
    /// ```c
    /// kaddr = kmap_local_folio(folio, 0);
    /// ret = copy_from_user(kaddr, (const void __user *)src, PAGE_SIZE);
    /// kunmap_local(kaddr);
    /// if (unlikely(ret)) {
    ///         ret = -ENOENT;          /* retried outside mmap_lock */
    ///         goto out;
    /// }
    /// ```
    ///
    /// ## Use instead
    /// ```c
    /// kaddr = kmap_local_folio(folio, 0);
    /// pagefault_disable();
    /// ret = copy_from_user(kaddr, (const void __user *)src, PAGE_SIZE);
    /// pagefault_enable();
    /// kunmap_local(kaddr);
    /// ```
    ///
    /// `--fix` makes exactly this edit (a diff for `git apply`;
    /// `--fix-inplace` writes it) when the code already handles a failed
    /// copy: a retry fallback, or an `_inatomic` access. Under a lock with no
    /// fallback a fault-free copy would fail where it used to succeed, so
    /// that fix is left to a human. The access must be a statement alone on
    /// its lines in a `{ }` block.
    ///
    /// ## Known limitations
    /// Callers are followed three calls up. A caller whose dataflow had to be
    /// widened (a very large function) gives no evidence. Acquire helpers are
    /// inferred only within the caller's file (others are catalogue entries,
    /// queries/api/context.toml); an acquire tested in a condition
    /// (`mmap_read_lock_killable()`) does not make one. Callers in headers and
    /// calls written with a space before `(` are not found. `guard()` and
    /// `scoped_guard()` locks are not modelled. Conditions are correlated only when
    /// the same condition text guards both the disable and the enable.
    pub static KM001 = Rule {
        code: "KM001",
        name: "fault-in-kmap-local",
        summary: "user access may fault under kmap_local_*() where faults are not allowed",
        default_severity: Severity::Error,
        needs: &[Needle::Maps(MapFamily::Local)],
        check: check,
        wants_callers: Some(wants_callers),
    };
}

/// Why a fault is not allowed at one access.
enum Evidence<'a> {
    Inatomic,
    Held { site: usize },
    Caller(&'a CallerEvidence),
    Retry { span: Span },
}

/// Accesses on a path with a live local mapping and faults enabled, with
/// those paths' facts.
fn exposed<'a>(cx: &'a RuleCx<'_>) -> impl Iterator<Item = (u32, Vec<&'a Fact>)> + 'a {
    accesses(cx).filter_map(|(node, index, access_id)| {
        let violating: Vec<&Fact> = cx
            .facts
            .before(node, index)
            .iter()
            .filter(|f| {
                !f.local.is_empty() && !f.faults_disabled() && !deliberately_faultable(cx, f)
            })
            .collect();
        (!violating.is_empty()).then_some((access_id, violating))
    })
}

/// An exposed access without evidence of its own that would make it an
/// error: what callers hold decides it.
fn wants_callers(cx: &RuleCx<'_>) -> bool {
    exposed(cx).any(|(access, violating)| {
        !cx.cfg.accesses[access as usize].inatomic && violating.iter().all(|f| f.held == 0)
    })
}

fn check(cx: &RuleCx<'_>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (access_id, violating) in exposed(cx) {
        let access = &cx.cfg.accesses[access_id as usize];
        let mut evidence = Vec::new();
        if access.inatomic {
            evidence.push(Evidence::Inatomic);
        }
        let held = violating.iter().fold(0u64, |acc, f| acc | f.held);
        for site in (0..cx.cfg.acquires.len().min(64)).filter(|s| held & (1 << s) != 0) {
            evidence.push(Evidence::Held { site });
        }
        if evidence.is_empty() {
            // mmap_lock first: it is the seed's deadlock.
            let from_callers = [Held::Mmap, Held::Atomic]
                .iter()
                .find_map(|&kind| cx.callers.iter().find(|e| e.held() == kind));
            evidence.extend(from_callers.map(Evidence::Caller));
        }
        if let Some(span) = evidence::retry_fallback(cx, access.local_start, access.local_end) {
            evidence.push(Evidence::Retry { span });
        }
        if evidence.is_empty() {
            continue;
        }
        // The innermost live mapping is the one the access most likely writes.
        let map = violating
            .iter()
            .filter_map(|f| f.local.last())
            .max()
            .copied()
            .unwrap_or(0);
        out.push(diagnostic(
            cx,
            access_id,
            &cx.cfg.maps[map as usize],
            &evidence,
        ));
    }
    out
}

/// A path that skipped a `pagefault_disable()` guarded by a condition that also
/// guards the matching enable: the author chose to allow faults on it.
fn deliberately_faultable(cx: &RuleCx<'_>, fact: &Fact) -> bool {
    fact.assumptions
        .iter()
        .any(|a| cx.cfg.conds[a.cond as usize].guards_fault_disable == Some(!a.value))
}

fn diagnostic(
    cx: &RuleCx<'_>,
    access: u32,
    map: &crate::cfg::MapSite,
    evidence: &[Evidence],
) -> Diagnostic {
    let access = &cx.cfg.accesses[access as usize];
    let mut secondary = vec![Label {
        span: map.span,
        message: format!(
            "mapped by `{}()`, which does not disable page faults",
            map.name
        ),
    }];
    let mut notes = Vec::new();
    let mut severity = Severity::Warning;
    for ev in evidence {
        match ev {
            Evidence::Inatomic => {
                severity = Severity::Error;
                notes.push(format!(
                    "evidence: `{}()` is an _inatomic access: its caller must have disabled page faults",
                    access.name
                ));
            }
            Evidence::Held { site } => {
                severity = Severity::Error;
                let (label, note) = evidence::held_context(&cx.cfg.acquires[*site]);
                secondary.push(label);
                notes.push(note);
            }
            Evidence::Caller(caller) => {
                severity = Severity::Error;
                let why = match caller.held() {
                    Held::Mmap => {
                        "the fault handler takes it again and deadlocks behind a queued writer"
                    }
                    Held::Atomic | Held::FaultsDisabled => "resolving a fault may sleep",
                };
                notes.push(format!("evidence: {}: {why}", caller.describe()));
            }
            Evidence::Retry { span } => {
                secondary.push(Label {
                    span: *span,
                    message:
                        "a failed copy falls back to a retry here: the copy was meant to fail fast"
                            .to_owned(),
                });
                notes.push("evidence: a failed copy returns a retry code, so it was expected to fail instead of faulting".to_owned());
            }
        }
    }
    Diagnostic {
        code: KM001.code,
        severity,
        message: format!(
            "`{}()` may fault under `{}()`: pagefault_disable() is missing",
            access.name, map.name
        ),
        function: cx.function.to_owned(),
        primary: Label {
            span: access.span,
            message: "page faults are enabled here on some path".to_owned(),
        },
        secondary,
        notes,
        help: Some(format!(
            "wrap the access: `pagefault_disable(); {}(...); pagefault_enable();` and handle the failure",
            access.name
        )),
        fixes: fix(cx, access, evidence),
    }
}

/// `--fix` wraps the access in `pagefault_disable()`/`pagefault_enable()`
/// (the seed's upstream fix) only where the code already handles the copy
/// failing: a retry fallback, or an `_inatomic` access, which is written to
/// fail. Under a lock without a fallback, a fault-free copy would turn the
/// deadlock into a spurious -EFAULT: that needs a human.
fn fix(
    cx: &RuleCx<'_>,
    access: &crate::cfg::AccessSite,
    evidence: &[Evidence],
) -> Vec<crate::fix::Edit> {
    let handles_failure = evidence
        .iter()
        .any(|e| matches!(e, Evidence::Retry { .. } | Evidence::Inatomic));
    if !handles_failure {
        return Vec::new();
    }
    super::wrap::wrappable_statement(cx, access.local_start..access.local_end)
        .map(|(stmt, _)| {
            super::wrap::wrap_fix(cx, stmt, "pagefault_disable();", "pagefault_enable();")
        })
        .unwrap_or_default()
}
