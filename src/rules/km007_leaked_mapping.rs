use super::unmap::{describe, family_unmap, unmap_calls};
use super::{Needle, RuleCx, declare_rule};
use crate::catalogue::MapFamily;
use crate::cfg::{EdgeKind, NodeKind, Span};
use crate::dataflow::lattice::bit;
use crate::diag::{Diagnostic, Label, Severity};

declare_rule! {
    /// ## What it does
    /// Finds a path from a map call to a function exit (an early `return`, an
    /// error `goto`, falling off the end) on which the mapping is still live,
    /// in a function that unmaps it on its other paths.
    ///
    /// ## Why is this bad
    /// A leaked `kmap_atomic()` leaves page faults and preemption disabled for
    /// the rest of the task; a leaked `kmap_local_page()` keeps its slot in the
    /// per-task mapping stack, so every later local mapping of the task is
    /// off by one and the stack overflows after a few calls
    /// (Documentation/mm/highmem.rst); a leaked `kmap()` pins a pkmap entry
    /// until the pkmap area is exhausted and `kmap()` sleeps forever. Error
    /// paths added later are the usual culprit.
    ///
    /// ## Example
    /// ```c
    /// kaddr = kmap_local_page(page);
    /// if (hdr->magic != MAGIC)
    ///         return -EINVAL;         /* kaddr still mapped */
    /// ...
    /// kunmap_local(kaddr);
    /// ```
    ///
    /// ## Use instead
    /// ```c
    /// if (hdr->magic != MAGIC) {
    ///         kunmap_local(kaddr);
    ///         return -EINVAL;
    /// }
    /// ```
    ///
    /// ## Known limitations
    /// A mapping whose address is returned, stored or aliased is the caller's
    /// and is not followed. A mapping that the function never unmaps on any
    /// path is not reported (it may be released by a helper). Severity is
    /// `error` for local and atomic mappings, `warning` for `kmap()` and when
    /// the address was passed to another function on the leaking path.
    pub static KM007 = Rule {
        code: "KM007",
        name: "leaked-mapping",
        summary: "a path returns with a kmap mapping still live while other paths unmap it",
        default_severity: Severity::Error,
        needs: &[
            Needle::Maps(MapFamily::Local),
            Needle::Maps(MapFamily::Atomic),
            Needle::Maps(MapFamily::Kmap),
        ],
        check: check,
    };
}

fn check(cx: &RuleCx<'_>) -> Vec<Diagnostic> {
    // Sites some unmap of this function ends: the function owns their release.
    let mut released = 0u64;
    for call in unmap_calls(cx) {
        for fact in call.facts {
            if let Some(target) = call.target(cx, fact) {
                released |= bit(target.site);
            }
        }
    }
    let mut exits: Vec<_> = cx.facts.exits.iter().collect();
    exits.sort_by_key(|(node, _)| cx.cfg.node(*node).span.start);
    let mut reported = 0u64;
    let mut out = Vec::new();
    for (node, facts) in exits {
        for fact in facts {
            let live = fact
                .local
                .iter()
                .chain(&fact.atomic)
                .copied()
                .chain((0..64u16).filter(|&s| fact.kmap & bit(s) != 0));
            for site in live {
                let map = &cx.cfg.maps[site as usize];
                if map.escapes || released & bit(site) == 0 || reported & bit(site) != 0 {
                    continue;
                }
                reported |= bit(site);
                out.push(diagnostic(
                    cx,
                    *node,
                    site,
                    fact.handed_off & bit(site) != 0,
                ));
            }
        }
    }
    out
}

fn diagnostic(cx: &RuleCx<'_>, node: u32, site: u16, handed_off: bool) -> Diagnostic {
    let map = &cx.cfg.maps[site as usize];
    let exit = cx.cfg.node(node);
    let returns =
        exit.kind == NodeKind::Stmt && exit.succs.iter().any(|e| e.kind == EdgeKind::Return);
    // Falling off the end: point at the closing brace.
    let span = if returns {
        exit.span
    } else {
        let end = cx.cfg.node(crate::cfg::EXIT).span.end;
        Span {
            start: end.saturating_sub(1),
            end,
        }
    };
    // A function that was given the address on this path may have released
    // it: then this is a question for the reviewer, not a certain leak.
    let severity = if map.family == MapFamily::Kmap || handed_off {
        Severity::Warning
    } else {
        Severity::Error
    };
    let mut notes = Vec::new();
    if handed_off {
        notes.push(
            "on this path the address was passed to another function, which may have unmapped it"
                .to_owned(),
        );
    }
    if map.family == MapFamily::Atomic {
        notes.push(
            "a leaked kmap_atomic() also leaves page faults and preemption disabled".to_owned(),
        );
    }
    let release = match map.family {
        MapFamily::Kmap => format!("kunmap({})", map.page_arg),
        _ => format!(
            "{}({})",
            family_unmap(map.family).trim_end_matches("()"),
            map.var.as_deref().unwrap_or("addr")
        ),
    };
    Diagnostic {
        code: KM007.code,
        severity,
        message: format!(
            "{} is still mapped when the function returns here",
            describe(map)
        ),
        function: cx.function.to_owned(),
        primary: Label {
            span,
            message: "returns with the mapping live on this path".to_owned(),
        },
        secondary: vec![Label {
            span: map.span,
            message: "mapped here; other paths unmap it".to_owned(),
        }],
        notes,
        help: Some(format!("call `{release}` before this exit")),
    }
}
