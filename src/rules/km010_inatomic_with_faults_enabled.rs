use super::{Needle, RuleCx, accesses, declare_rule};
use crate::catalogue::ContextKind;
use crate::dataflow::bits;
use crate::diag::{Diagnostic, Label, Severity};

declare_rule! {
    /// ## What it does
    /// Finds `__copy_from_user_inatomic()`, `__copy_to_user_inatomic()` and the
    /// other `_inatomic` user accesses called on a path where page faults are
    /// enabled (no `pagefault_disable()`, no live `kmap_atomic()`) and no atomic
    /// context is held, with or without a kmap. (Under a live
    /// `kmap_local_*()` mapping, KM001 reports the same access more precisely.)
    ///
    /// ## Why is this bad
    /// The `_inatomic` variants skip `might_fault()` and exist for callers that
    /// have disabled page faults: the copy then fails fast instead of
    /// sleeping. Called with faults enabled, the access may fault and sleep
    /// where its author assumed it could not, typically after a kmap_atomic()
    /// that disabled faults implicitly was converted or removed.
    /// drivers/gpu/drm/i915/gem/i915_gem_execbuffer.c shows the intended
    /// pattern: `pagefault_disable(); __copy_from_user_inatomic(...);
    /// pagefault_enable();` with a slow path that copies with faults enabled.
    ///
    /// ## Example
    /// ```c
    /// left = __copy_from_user_inatomic(dst, src, len);
    /// ```
    ///
    /// ## Use instead
    /// ```c
    /// pagefault_disable();
    /// left = __copy_from_user_inatomic(dst, src, len);
    /// pagefault_enable();
    /// if (left)
    ///         left = copy_from_user(dst, src, len);   /* may fault: slow path */
    /// ```
    ///
    /// ## Known limitations
    /// Context held by callers is not seen: a helper that documents "called
    /// with page faults disabled" is reported as a warning, to be checked
    /// against its callers.
    pub static KM010 = Rule {
        code: "KM010",
        name: "inatomic-with-faults-enabled",
        summary: "an _inatomic user access on a path where page faults are enabled",
        default_severity: Severity::Warning,
        needs: &[Needle::InatomicAccess],
        check: check,
        wants_callers: None,
    };
}

fn check(cx: &RuleCx<'_>) -> Vec<Diagnostic> {
    let mut out = Vec::new();
    for (node, index, access_id) in accesses(cx) {
        let access = &cx.cfg.accesses[access_id as usize];
        if !access.inatomic {
            continue;
        }
        let enabled = cx.facts.before(node, index).iter().any(|f| {
            !f.faults_disabled()
                && f.local.is_empty()
                && !bits(f.held).any(|s| cx.cfg.acquires[s].kind == ContextKind::Atomic)
        });
        if !enabled {
            continue;
        }
        out.push(Diagnostic {
            code: KM010.code,
            severity: Severity::Warning,
            message: format!("`{}()` is called with page faults enabled on some path", access.name),
            function: cx.function.to_owned(),
            primary: Label {
                span: access.span,
                message: "no pagefault_disable(), kmap_atomic() or atomic context on this path".to_owned(),
            },
            secondary: Vec::new(),
            notes: vec!["_inatomic accesses expect their caller to have disabled page faults".to_owned()],
            help: Some(format!(
                "wrap it in pagefault_disable()/pagefault_enable(), or use `{}()` if faulting is allowed here",
                access.name.trim_start_matches('_').replace("_inatomic", "")
            )),
            fixes: Vec::new(),
        });
    }
    out
}
