use super::conversion::{converted, counterpart, in_local_region};
use super::wrap::{wrap_fix, wrappable_statement};
use super::{Needle, RuleCx, accesses, declare_rule, evidence};
use crate::catalogue::MapFamily;
use crate::dataflow::lattice::Fact;
use crate::diag::{Diagnostic, Label, Severity};

declare_rule! {
    /// ## What it does
    /// Patch mode only (`--patch`, `--git`, `--staged`, `--diff`). Finds a
    /// `kmap_atomic()` → `kmap_local_*()` conversion in a patch (in one
    /// function, `kmap_atomic*()`/`kunmap_atomic()` removed and
    /// `kmap_local_*()`/`kunmap_local()` added) after which a user access that
    /// ran inside the `kmap_atomic()` region, with page faults disabled, runs
    /// inside the `kmap_local_*()` region with page faults enabled.
    ///
    /// ## Why is this bad
    /// `kmap_atomic()` disabled page faults as a side effect; `kmap_local_*()`
    /// does not (Documentation/mm/highmem.rst). A `copy_from_user()` that used
    /// to fail fast on a non-resident page now faults it in, which may sleep
    /// and takes `mmap_lock`. That is fine in most converted functions, and a
    /// deadlock or a sleep in atomic context in the others: the seed bug,
    /// `shmem_mfill_atomic_pte()`, holds `mmap_lock` and expects the copy to
    /// fail so that its caller retries outside the lock. Maintainers ask the
    /// same question on every such conversion: may this context sleep and fault?
    ///
    /// The finding is an error when the post-image shows why a fault is not
    /// allowed (KM001's evidence: an `_inatomic` access, an atomic context or
    /// `mmap_lock` held, a failed copy falling back to a retry code) or the
    /// pre-image shows it (the access ran under `kmap()` on one path and
    /// under `kmap_atomic()` on another: `if (allow_pagefault) kmap(); else
    /// kmap_atomic();`, upstream's `copy_huge_page_from_user()`), and a
    /// warning asking the reviewer to confirm otherwise. A conversion that
    /// wraps the access in `pagefault_disable()`/`pagefault_enable()` (on the
    /// path that needs it) is silent. `--fix` inserts that pair around the
    /// access statement, except where the old code chose on a condition: the
    /// disable must then be conditional too, which is left to the author.
    ///
    /// ## Example
    /// ```c
    /// -	kaddr = kmap_atomic(page);
    /// +	kaddr = kmap_local_page(page);
    ///  	ret = copy_from_user(kaddr, src, len);
    /// -	kunmap_atomic(kaddr);
    /// +	kunmap_local(kaddr);
    ///  	if (ret)
    ///  		return -EAGAIN;         /* the caller retries without the lock */
    /// ```
    ///
    /// ## Use instead
    /// ```c
    /// 	kaddr = kmap_local_page(page);
    /// 	pagefault_disable();
    /// 	ret = copy_from_user(kaddr, src, len);
    /// 	pagefault_enable();
    /// 	kunmap_local(kaddr);
    /// ```
    ///
    /// ## Known limitations
    /// Pre- and post-image functions are paired by name, and accesses by call
    /// text (else by callee name), so a conversion that also renames the
    /// function is not seen. Without `--tree`, only the hunks are analyzed:
    /// evidence outside them (a lock taken above the hunk) is missed, and the
    /// finding says that context was limited. Context held by callers is not seen.
    pub static KM002 = Rule {
        code: "KM002",
        name: "conversion-drops-pagefault-disable",
        summary: "kmap_atomic() -> kmap_local_*() conversion lets a user access fault",
        default_severity: Severity::Error,
        needs: &[Needle::Maps(MapFamily::Local), Needle::Maps(MapFamily::Atomic)],
        check: check,
        wants_callers: None,
    };
}

fn check(cx: &RuleCx<'_>) -> Vec<Diagnostic> {
    let Some(pre) = converted(cx) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (node, index, access_id) in accesses(cx) {
        let access = &cx.cfg.accesses[access_id as usize];
        let faulting: Vec<&Fact> = in_local_region(cx, node, index)
            .filter(|f| !f.faults_disabled() && !deliberately_faultable(cx, f))
            .collect();
        if faulting.is_empty() {
            continue;
        }
        let text = super::conversion::call_text(cx, access.local_start..access.local_end);
        let Some(before) = counterpart(&pre.faultless_accesses, &access.name, &text) else {
            continue; // not under kmap_atomic() before: KM001's business
        };
        let map = faulting
            .iter()
            .filter_map(|f| f.local.last())
            .max()
            .map_or(0, |&m| m as usize);
        let Some(map) = cx.cfg.maps.get(map) else {
            continue;
        };
        let mut secondary = vec![Label {
            span: map.span,
            message: format!(
                "mapped by `{}()`, which, unlike kmap_atomic(), leaves page faults enabled",
                map.name
            ),
        }];
        let mut notes = vec![format!(
            "before this patch `{}()` ran inside kmap_atomic(), with page faults disabled",
            access.name
        )];
        if access.inatomic {
            notes.push(format!(
                "evidence: `{}()` is an _inatomic access: its caller must have disabled page faults",
                access.name
            ));
        }
        if before.chosen_atomic {
            notes.push(format!(
                "evidence: before this patch `{}()` ran under kmap() where faults were allowed and under kmap_atomic() on the other path: that path was chosen so it could not fault",
                access.name
            ));
        }
        let held = faulting.iter().fold(0u64, |acc, f| acc | f.held);
        for site in (0..cx.cfg.acquires.len().min(64)).filter(|s| held & (1 << s) != 0) {
            let (label, note) = evidence::held_context(&cx.cfg.acquires[site]);
            secondary.push(label);
            notes.push(note);
        }
        if let Some(span) = evidence::retry_fallback(cx, access.local_start, access.local_end) {
            secondary.push(Label {
                span,
                message:
                    "a failed copy falls back to a retry here: the copy was meant to fail fast"
                        .to_owned(),
            });
            notes.push("evidence: a failed copy returns a retry code, so it was expected to fail instead of faulting".to_owned());
        }
        let has_evidence = notes.len() > 1;
        let (severity, message) = if has_evidence {
            (
                Severity::Error,
                format!(
                    "`{}()` may fault under `{}()`: the conversion from kmap_atomic() dropped pagefault_disable()",
                    access.name, map.name
                ),
            )
        } else {
            (
                Severity::Warning,
                format!(
                    "`{}()` ran with page faults disabled under kmap_atomic(); under `{}()` it may fault: confirm the context may sleep and fault",
                    access.name, map.name
                ),
            )
        };
        // Where the old code chose between kmap() and kmap_atomic() on a
        // condition, an unconditional disable would also forbid faults on
        // the path that allowed them: the fix needs that condition, by hand.
        let fixes = wrappable_statement(cx, access.local_start..access.local_end)
            .filter(|_| !before.chosen_atomic)
            .map(|(stmt, _)| wrap_fix(cx, stmt, "pagefault_disable();", "pagefault_enable();"))
            .unwrap_or_default();
        out.push(Diagnostic {
            code: KM002.code,
            severity,
            message,
            function: cx.function.to_owned(),
            primary: Label {
                span: access.span,
                message: "page faults are enabled here after the conversion".to_owned(),
            },
            secondary,
            notes,
            help: Some(format!(
                "if the context must not fault, wrap the access: `pagefault_disable(); {}(...); pagefault_enable();` and handle the failure",
                access.name
            )),
            fixes,
        });
    }
    out
}

/// A path that skipped a `pagefault_disable()` guarded by a condition that
/// also guards the matching enable: the author chose to allow faults on it.
fn deliberately_faultable(cx: &RuleCx<'_>, fact: &Fact) -> bool {
    fact.assumptions
        .iter()
        .any(|a| cx.cfg.conds[a.cond as usize].guards_fault_disable == Some(!a.value))
}
