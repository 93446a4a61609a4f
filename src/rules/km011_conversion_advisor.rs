use std::ops::Range;

use super::unmap::call_name;
use super::{Needle, RuleCx, declare_rule, events};
use crate::catalogue::{MapFamily, Reliance};
use crate::cfg::{EventKind, NodeId, Span};
use crate::dataflow::lattice::Fact;
use crate::dataflow::{UnmapMatch, bits, unmap_target};
use crate::diag::{Diagnostic, Label, Severity};
use crate::fix::{Edit, alone_on_lines, indentation, line_end, line_start};

declare_rule! {
    /// ## What it does
    /// Off by default (`--select KM011`). For each `kmap_atomic()`,
    /// `kmap_atomic_pfn()` or `kmap_atomic_prot()` region (the map and the
    /// `kunmap_atomic()` calls that end it, along every path) it says whether
    /// the region can be converted to `kmap_local_page()` (`kmap_local_pfn()`,
    /// `kmap_local_page_prot()`) and `kunmap_local()`, as a `note`:
    ///
    /// - **safe**: nothing in the region needs page faults or preemption
    ///   disabled; the fix renames the map and every unmap that ends it;
    /// - **keep page faults disabled**: a user access (`copy_from_user()`,
    ///   `__copy_to_user_inatomic()`, ...) or `pagefault_disabled()` test is in
    ///   the region; the fix also puts `pagefault_disable();` after the map
    ///   and `pagefault_enable();` before each unmap;
    /// - **keep preemption disabled**: per-CPU state (`smp_processor_id()`,
    ///   `this_cpu_*()`, `__this_cpu_*()`, `raw_cpu_*()`, `per_cpu_ptr()`...) or
    ///   an `in_atomic()` test is used in the region and no lock or
    ///   `preempt_disable()` of its own keeps the task on its CPU; the fix
    ///   puts `preempt_disable();`/`preempt_enable();` around it likewise;
    /// - **cannot be converted automatically**: the region is not ended in
    ///   this function on every path (its address is returned or stored, or a
    ///   path leaks it), an unmap does not always end this mapping, a mapping
    ///   made inside it outlives it, or the function did not parse: the note
    ///   says which, and there is no fix.
    ///
    /// The fix inserts lines only where the map and unmap statements are
    /// alone on their lines in a `{ }` block; otherwise the note says why it
    /// offers none. `--fix` prints the fixes as a diff, `--fix-inplace`
    /// applies them. The names and their kmap_local equivalents are data
    /// (queries/api/maps.toml `[local_equivalent]`), as are the per-CPU and
    /// context-test names (queries/api/atomicity.toml).
    ///
    /// ## Why is this bad
    /// `kmap_atomic()` is deprecated (Documentation/mm/highmem.rst): it
    /// disables preemption and page faults for the whole region, a source of
    /// latency, and only `kmap_local_page()` should be used. But "the code
    /// between calls to kmap_atomic() and kunmap_atomic() may implicitly
    /// depend on the side effects of atomic mappings, i.e. disabling page
    /// faults or preemption, or both. In that case, explicit calls to
    /// pagefault_disable() or preempt_disable() or both must be made in
    /// conjunction with the use of kmap_local_page()." A user copy that was
    /// meant to fail fast would fault and sleep instead; a per-CPU counter
    /// would be updated from another CPU after a migration. This rule does the
    /// bookkeeping of a conversion: which regions are plain renames, and which
    /// need the disabling kept. Mapping order does not change: since Linux
    /// 5.11 both calls push on the same per-task mapping stack.
    ///
    /// ## Example
    /// ```c
    /// kaddr = kmap_atomic(page);
    /// left = __copy_from_user_inatomic(kaddr + off, buf, len);
    /// kunmap_atomic(kaddr);
    /// ```
    ///
    /// ## Use instead
    /// ```c
    /// kaddr = kmap_local_page(page);
    /// pagefault_disable();
    /// left = __copy_from_user_inatomic(kaddr + off, buf, len);
    /// pagefault_enable();
    /// kunmap_local(kaddr);
    /// ```
    ///
    /// ## Known limitations
    /// Calls into other functions are not followed: a helper called in the
    /// region that copies from user space or uses per-CPU data itself makes a
    /// "safe" verdict wrong, so review the region before applying the fix
    /// (calls through a function pointer are named in the note). CPU-local
    /// hardware state reached without a per-CPU API (cache maintenance
    /// instructions in arch code) is invisible.
    /// Only the first arm of `#if` blocks is analyzed, so a region containing a
    /// preprocessor conditional gets no fix. A user access under a
    /// `pagefault_disable()` of its own, and a per-CPU use under a spinlock,
    /// `preempt_disable()`, `local_irq_save()` or `local_bh_disable()` held
    /// in the function, do not depend on the atomic mapping; an enclosing
    /// second `kmap_atomic()` is not counted as protection (it may be
    /// converted too). Atomic context the caller provides is not seen either
    /// way (it only makes a conversion safer). A region whose unmap is in a
    /// helper is never fixed.
    pub static KM011 = Rule {
        code: "KM011",
        name: "atomic-conversion",
        summary: "a kmap_atomic() region that can be converted to kmap_local_page() (advice, off by default)",
        default_severity: Severity::Note,
        default_enabled: false,
        needs: &[Needle::Maps(MapFamily::Atomic)],
        check: check,
        wants_callers: None,
    };
}

/// The facts' bit sets (held contexts, hand-offs) index sites up to 63.
const MAX_SITES: usize = 64;

/// What a region needs kept when it becomes a local mapping.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Safe,
    Pagefault,
    Preempt,
    Both,
}

impl Class {
    fn of(pagefault: bool, preempt: bool) -> Self {
        match (pagefault, preempt) {
            (false, false) => Class::Safe,
            (true, false) => Class::Pagefault,
            (false, true) => Class::Preempt,
            (true, true) => Class::Both,
        }
    }

    /// The lines put after the map and before each unmap (innermost last
    /// after the map, first before the unmap, as kmap_atomic() nests them).
    fn guards(self) -> (&'static [&'static str], &'static [&'static str]) {
        match self {
            Class::Safe => (&[], &[]),
            Class::Pagefault => (&["pagefault_disable();"], &["pagefault_enable();"]),
            Class::Preempt => (&["preempt_disable();"], &["preempt_enable();"]),
            Class::Both => (
                &["preempt_disable();", "pagefault_disable();"],
                &["pagefault_enable();", "preempt_enable();"],
            ),
        }
    }

    fn kept(self) -> &'static str {
        match self {
            Class::Safe => "",
            Class::Pagefault => " with page faults kept disabled",
            Class::Preempt => " with preemption kept disabled",
            Class::Both => " with preemption and page faults kept disabled",
        }
    }
}

/// What the function's events say about one atomic map site.
#[derive(Default)]
struct SiteInfo {
    /// Unmap events that end it on some path: (node, event index, span).
    unmaps: Vec<(NodeId, usize, Span)>,
    /// Why no conversion can be offered (first reason found).
    blocked: Option<String>,
    /// Why no lines can be inserted around the region (a plain rename is
    /// still right): an unmap that, on some path, ends no mapping.
    no_insertion: Option<String>,
    /// A user access or fault-count test that relies on faults being off.
    faults: Vec<(String, Span)>,
    /// A per-CPU use or preempt-count test with nothing else keeping preemption off.
    preempt: Vec<(String, Span)>,
    /// Calls that may sleep in the region (KM008's findings).
    sleeps: Vec<String>,
    /// Sites (local or atomic) mapped while this one was live.
    inner: u64,
}

fn bit(site: u16) -> u64 {
    1u64 << site.min(63)
}

fn check(cx: &RuleCx<'_>) -> Vec<Diagnostic> {
    let maps = &cx.cfg.maps;
    let atomic: Vec<u16> = (0..maps.len())
        .filter(|&s| maps[s].family == MapFamily::Atomic)
        .filter_map(|s| u16::try_from(s).ok())
        // The definitions of the API themselves (kmap_atomic() calling
        // kmap_atomic_prot()) are not regions to convert.
        .filter(|_| !cx.catalogue.local_equivalent.contains_key(cx.function))
        // kmap_atomic_idx() and other atomic names without a local
        // equivalent make no mapping to convert.
        .filter(|&s| {
            cx.catalogue
                .local_equivalent
                .contains_key(&maps[s as usize].name)
        })
        .collect();
    if atomic.is_empty() {
        return Vec::new();
    }
    let lines = Lines::new(cx);
    let mut info: Vec<SiteInfo> = (0..maps.len()).map(|_| SiteInfo::default()).collect();
    let whole_function = if !cx.cfg.complete || !cx.facts.converged {
        Some("the function did not parse completely, so its paths are not known".to_owned())
    } else if maps.len() > MAX_SITES {
        Some(format!("the function has more than {MAX_SITES} map calls"))
    } else {
        None
    };
    // Sites ended by one unmap call on different paths must convert together.
    let mut group: Vec<usize> = (0..maps.len()).collect();
    let is_atomic = |s: u16| atomic.contains(&s);
    for (node, index, event) in events(cx) {
        let facts = cx.facts.before(node, index);
        match &event.kind {
            EventKind::Unmap { family, arg } => {
                let resolved: Vec<_> = facts
                    .iter()
                    .map(|f| unmap_target(cx.cfg, f, *family, arg))
                    .collect();
                let targets: Vec<Option<u16>> =
                    resolved.iter().map(|t| t.map(|t| t.site)).collect();
                let ended: Vec<u16> = targets.iter().flatten().copied().collect();
                let ours: Vec<u16> = ended.iter().copied().filter(|&s| is_atomic(s)).collect();
                let Some(&first) = ours.first() else { continue };
                for &s in &ours {
                    union(&mut group, usize::from(first), usize::from(s));
                    let unmaps = &mut info[usize::from(s)].unmaps;
                    if !unmaps.iter().any(|u| (u.0, u.1) == (node, index)) {
                        unmaps.push((node, index, event.span));
                    }
                }
                // Line numbers only for messages: counted when needed.
                let line = || lines.at(event.span.start);
                // Ending another kind of mapping on some path, or ending
                // nothing on some path and a mapping it does not name (the
                // innermost, by default) on another: which mapping this
                // unmap ends is a guess, and so would be the conversion.
                let guessed = resolved
                    .iter()
                    .flatten()
                    .any(|t| t.how == UnmapMatch::Innermost);
                let other = targets.iter().flatten().any(|&s| !is_atomic(s));
                if other || (guessed && targets.contains(&None)) {
                    let why = format!(
                        "the unmap at line {} does not end this mapping on every path",
                        line()
                    );
                    for &s in &ours {
                        block(&mut info[usize::from(s)], why.clone());
                    }
                } else if targets.contains(&None) {
                    // `if (p) kunmap_atomic(p);` before a re-map in a loop:
                    // on the first pass it ends nothing. Renaming it is
                    // still right; a pagefault_enable() before it is not.
                    let why = format!("the unmap at line {} ends no mapping on some path", line());
                    for &s in &ours {
                        info[usize::from(s)].no_insertion.get_or_insert(why.clone());
                    }
                }
                if !cx
                    .catalogue
                    .local_equivalent
                    .contains_key(&call_name(cx, event.span))
                {
                    let why = format!("the unmap at line {} has no kmap_local equivalent", line());
                    for &s in &ours {
                        block(&mut info[usize::from(s)], why.clone());
                    }
                }
                for (fact, target) in facts.iter().zip(&targets) {
                    if let Some(site) = target.filter(|&s| is_atomic(s)) {
                        check_order(cx, &mut info, fact, site, &line);
                    }
                }
            }
            EventKind::Map { site } => {
                for fact in facts {
                    let live = fact.local.iter().chain(&fact.atomic);
                    for &outer in live {
                        if outer == *site {
                            block(
                                &mut info[usize::from(outer)],
                                "it is mapped again (in a loop?) while still mapped".to_owned(),
                            );
                        } else {
                            info[usize::from(outer)].inner |= bit(*site);
                        }
                    }
                }
            }
            EventKind::Access { access } => {
                let access = &cx.cfg.accesses[*access as usize];
                // A pagefault_disable() of the function's own covers it.
                for fact in facts.iter().filter(|f| f.pf_depth == 0) {
                    for &s in &fact.atomic {
                        push_use(&mut info[usize::from(s)].faults, &access.name, access.span);
                    }
                }
            }
            EventKind::Relies { site } => {
                let call = &cx.cfg.relies[*site as usize];
                for fact in facts {
                    let needs = match call.on {
                        Reliance::Pagefault => fact.pf_depth == 0,
                        Reliance::Preempt => !keeps_preempt_off(cx, fact),
                    };
                    if !needs {
                        continue;
                    }
                    for &s in &fact.atomic {
                        let uses = match call.on {
                            Reliance::Pagefault => &mut info[usize::from(s)].faults,
                            Reliance::Preempt => &mut info[usize::from(s)].preempt,
                        };
                        push_use(uses, &call.name, call.span);
                    }
                }
            }
            EventKind::Sleep { call } => {
                let name = &cx.cfg.sleeps[*call as usize].name;
                for fact in facts {
                    for &s in &fact.atomic {
                        let sleeps = &mut info[usize::from(s)].sleeps;
                        if !sleeps.contains(name) {
                            sleeps.push(name.clone());
                        }
                    }
                }
            }
            _ => {}
        }
    }
    for (_, facts) in &cx.facts.exits {
        for fact in facts {
            for &s in fact.atomic.iter().filter(|&&s| is_atomic(s)) {
                let reason = if maps[usize::from(s)].escapes {
                    "its address leaves the function (returned or stored), so its unmap is elsewhere"
                } else {
                    "it is still mapped on a path out of the function (unmapped elsewhere, or leaked)"
                };
                block(&mut info[usize::from(s)], reason.to_owned());
            }
        }
    }
    let mut out = Vec::new();
    let mut done = Vec::new();
    for &site in &atomic {
        let root = find(&mut group, usize::from(site));
        if done.contains(&root) {
            continue;
        }
        done.push(root);
        let members: Vec<u16> = atomic
            .iter()
            .copied()
            .filter(|&s| find(&mut group, usize::from(s)) == root)
            .collect();
        out.push(region(
            cx,
            &lines,
            &info,
            &members,
            whole_function.as_deref(),
        ));
    }
    out
}

/// At an unmap that ends `site` on the path of `fact`: a mapping made inside
/// the region must be gone already (the mapping stack stays ordered).
fn check_order(
    cx: &RuleCx<'_>,
    info: &mut [SiteInfo],
    fact: &Fact,
    site: u16,
    line: &dyn Fn() -> usize,
) {
    if fact.order_lost {
        block(
            &mut info[usize::from(site)],
            "the order of its nested mappings could not be followed".to_owned(),
        );
        return;
    }
    let inner = info[usize::from(site)].inner;
    let outlives = fact
        .local
        .iter()
        .chain(&fact.atomic)
        .find(|&&t| t != site && inner & bit(t) != 0);
    if let Some(&t) = outlives {
        let name = &cx.cfg.maps[usize::from(t)].name;
        block(
            &mut info[usize::from(site)],
            format!(
                "the `{name}()` mapping made inside it is still live at its unmap (line {}): the mapping stack is not released in order",
                line()
            ),
        );
        // The inner one too: converted alone, it would move to the local
        // stack the dataflow follows apart, and KM004 would stop seeing the
        // disorder that the kernel's one shared stack still has.
        let outer = &cx.cfg.maps[usize::from(site)].name;
        block(
            &mut info[usize::from(t)],
            format!(
                "it outlives the `{outer}()` mapping it was made inside (unmapped at line {}): the mapping stack is not released in order",
                line()
            ),
        );
    }
}

/// Is preemption kept off at this fact by something other than a mapping:
/// a held lock, `preempt_disable()`, irqs or bottom halves off?
fn keeps_preempt_off(cx: &RuleCx<'_>, fact: &Fact) -> bool {
    bits(fact.held).any(|s| {
        cx.cfg
            .acquires
            .get(s)
            .is_some_and(|a| cx.catalogue.keeps_preempt_off.contains(&a.group))
    })
}

fn push_use(uses: &mut Vec<(String, Span)>, name: &str, span: Span) {
    if !uses.iter().any(|(_, s)| *s == span) {
        uses.push((name.to_owned(), span));
    }
}

fn block(info: &mut SiteInfo, reason: String) {
    info.blocked.get_or_insert(reason);
}

fn find(group: &mut [usize], mut x: usize) -> usize {
    while group[x] != x {
        group[x] = group[group[x]];
        x = group[x];
    }
    x
}

fn union(group: &mut [usize], a: usize, b: usize) {
    let (ra, rb) = (find(group, a), find(group, b));
    if ra != rb {
        group[ra.max(rb)] = ra.min(rb);
    }
}

/// Line numbers for messages, counted only when a message needs one: the
/// function's first line once (lazily), then within the body. Counting
/// from the file's start for every message would be quadratic on a file
/// of many regions.
struct Lines<'a> {
    source: &'a [u8],
    base: usize,
    base_line: std::cell::OnceCell<usize>,
}

impl<'a> Lines<'a> {
    fn new(cx: &RuleCx<'a>) -> Self {
        Self {
            source: cx.source,
            base: cx.base.min(cx.source.len()),
            base_line: std::cell::OnceCell::new(),
        }
    }

    /// The 1-based line of a file offset.
    fn at(&self, offset: usize) -> usize {
        let count = |from: usize, to: usize| {
            memchr::memchr_iter(b'\n', &self.source[from..to.max(from)]).count()
        };
        let base_line = *self.base_line.get_or_init(|| count(0, self.base) + 1);
        let offset = offset.min(self.source.len());
        if offset < self.base {
            return count(0, offset) + 1;
        }
        base_line + count(self.base, offset)
    }
}

/// The finding for one region: atomic sites `members` that share unmaps.
fn region(
    cx: &RuleCx<'_>,
    lines: &Lines<'_>,
    info: &[SiteInfo],
    members: &[u16],
    whole_function: Option<&str>,
) -> Diagnostic {
    let maps = &cx.cfg.maps;
    let first = &maps[usize::from(members[0])];
    let site_infos = || members.iter().map(|&s| &info[usize::from(s)]);
    let mut unmaps: Vec<Span> = site_infos()
        .flat_map(|i| i.unmaps.iter().map(|u| u.2))
        .collect();
    unmaps.sort();
    unmaps.dedup();
    // The region's extent in the file, maps and unmaps together. (An unmap
    // may come before the map in the file: a backward goto.)
    let spans = members
        .iter()
        .map(|&s| maps[usize::from(s)].span)
        .chain(unmaps.iter().copied());
    let from = spans.clone().map(|s| s.start).min().unwrap_or(0);
    let to = spans.map(|s| s.end).max().unwrap_or(from);
    let blocked = whole_function
        .map(str::to_owned)
        .or_else(|| site_infos().find_map(|i| i.blocked.clone()))
        .or_else(|| {
            unmaps
                .is_empty()
                .then(|| "no unmap in this function ends it".to_owned())
        })
        .or_else(|| {
            // An `#if` in the region hides code that the analysis of one
            // arm did not see (arch/um: `#ifdef CONFIG_64BIT
            // pagefault_disable(); #else kmap_atomic() #endif`).
            has_directive(cx.source, from, to).then(|| {
                "the region contains a preprocessor conditional (#if), and only one arm of it was analyzed".to_owned()
            })
        });
    let mut faults: Vec<(String, Span)> = site_infos().flat_map(|i| i.faults.clone()).collect();
    let mut preempt: Vec<(String, Span)> = site_infos().flat_map(|i| i.preempt.clone()).collect();
    for uses in [&mut faults, &mut preempt] {
        uses.sort_by_key(|(_, s)| *s);
        uses.dedup_by_key(|(_, s)| *s);
    }
    let local = |name: &str| {
        cx.catalogue
            .local_equivalent
            .get(name)
            .cloned()
            .unwrap_or_default()
    };
    let mut secondary: Vec<Label> = members[1..]
        .iter()
        .map(|&s| Label {
            span: maps[usize::from(s)].span,
            message: "also mapped here, and ended by the same unmap".to_owned(),
        })
        .collect();
    secondary.extend(unmaps.iter().map(|&span| Label {
        span,
        message: "unmapped here".to_owned(),
    }));
    secondary.extend(faults.iter().map(|(name, span)| Label {
        span: *span,
        message: format!("`{name}()` relies on page faults being disabled"),
    }));
    secondary.extend(preempt.iter().map(|(name, span)| Label {
        span: *span,
        message: format!("`{name}()` relies on preemption being disabled (per-CPU state)"),
    }));
    let mut notes = Vec::new();
    let class = Class::of(!faults.is_empty(), !preempt.is_empty());
    let mut diag = Diagnostic {
        code: KM011.code,
        severity: Severity::Note,
        message: String::new(),
        function: cx.function.to_owned(),
        primary: Label {
            span: first.span,
            message: "atomic mapping made here".to_owned(),
        },
        secondary,
        notes: Vec::new(),
        help: None,
        fixes: Vec::new(),
    };
    if let Some(reason) = blocked {
        diag.message = format!(
            "`{}()` region cannot be converted to `{}()` automatically: {reason}",
            first.name,
            local(&first.name)
        );
        diag.help = Some(
            "convert it by hand, keeping pagefault_disable()/preempt_disable() where the region relies on them"
                .to_owned(),
        );
        return diag;
    }
    diag.message = format!(
        "`{}()` region can be converted to `{}()`{}",
        first.name,
        local(&first.name),
        class.kept()
    );
    if !faults.is_empty() {
        notes.push(format!(
            "kmap_atomic() disables page faults, so {} fails fast here instead of faulting; kmap_local_page() does not: keep them disabled with pagefault_disable()",
            names(&faults)
        ));
    }
    if !preempt.is_empty() {
        notes.push(format!(
            "kmap_atomic() disables preemption, and {} needs the task to stay on its CPU; kmap_local_page() does not: keep preempt_disable() (or migrate_disable() if staying on the CPU is all it needs)",
            names(&preempt)
        ));
    }
    let sleeps: Vec<String> = site_infos().flat_map(|i| i.sleeps.clone()).collect();
    if !sleeps.is_empty() {
        notes.push(format!(
            "`{}()` may sleep, which kmap_atomic() forbids (KM008){}",
            sleeps[0],
            if class == Class::Safe {
                "; after the conversion it is allowed"
            } else {
                "; the kept disabling still forbids it"
            }
        ));
    }
    let indirect = indirect_calls(cx, from, to);
    if !indirect.is_empty() {
        notes.push(format!(
            "the region calls `{}` through a pointer, which kmapcheck does not follow: check that the callee needs neither page faults nor preemption disabled",
            indirect.join("`, `")
        ));
    }
    let no_insertion = site_infos().find_map(|i| i.no_insertion.clone());
    let outcome = match no_insertion {
        Some(why) if class != Class::Safe => Err(why),
        _ => fixes(cx, lines, members, &unmaps, class),
    };
    match outcome {
        Ok(edits) => {
            diag.fixes = edits;
            let unmap = unmaps
                .first()
                .map(|&s| local(&call_name(cx, s)))
                .unwrap_or_default();
            diag.help = Some(format!(
                "use `{}()` and `{unmap}()`{} (`--fix` does it)",
                local(&first.name),
                match class {
                    Class::Safe => String::new(),
                    _ => format!(
                        ", with `{}` after the map and `{}` before each unmap",
                        class.guards().0.join(" "),
                        class.guards().1.join(" ")
                    ),
                }
            ));
        }
        Err(why) => notes.push(format!("no automatic fix: {why}")),
    }
    diag.notes = notes;
    diag
}

/// Calls in `from..to` (file offsets) through a function pointer: a
/// parameter called by name (`op(vaddr, len)`, the parameter is in the
/// header), a field (`ops->update(...)`) or a dereference (`(*fn)(...)`).
/// Such a callee may rely on the region's atomicity, unseen.
fn indirect_calls(cx: &RuleCx<'_>, from: usize, to: usize) -> Vec<String> {
    let params = parameter_names(cx.header, cx.function);
    let (from, to) = (from.saturating_sub(cx.base), to.saturating_sub(cx.base));
    let mut out: Vec<String> = Vec::new();
    crate::syntax::preorder(cx.tree.root_node(), |n| {
        if n.kind() == "call_expression"
            && from <= n.start_byte()
            && n.end_byte() <= to
            && let Some(function) = n.child_by_field_name("function")
        {
            let text = std::str::from_utf8(&cx.text[function.start_byte()..function.end_byte()])
                .unwrap_or("");
            let pointer = match function.kind() {
                "identifier" => params.contains(&text),
                "field_expression" | "parenthesized_expression" | "pointer_expression" => true,
                _ => false,
            };
            let text: String = text.split_whitespace().collect();
            if pointer && !out.contains(&text) {
                out.push(text);
            }
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    out
}

/// The names of the parameters in a function header: in each top-level
/// parameter, the name in `(*name)` or else the last identifier
/// (`void (*op)(void *, size_t)`, `xdr_skb_read_actor copy_actor`).
fn parameter_names<'h>(header: &'h str, function: &str) -> Vec<&'h str> {
    let Some(open) = header
        .find(function)
        .and_then(|at| header[at..].find('(').map(|p| at + p + 1))
    else {
        return Vec::new();
    };
    let mut names = Vec::new();
    let (mut depth, mut start) = (0usize, open);
    for (i, c) in header[open..].char_indices() {
        let at = open + i;
        let end = match c {
            '(' => {
                depth += 1;
                None
            }
            ')' if depth == 0 => Some(at),
            ')' => {
                depth -= 1;
                None
            }
            ',' if depth == 0 => Some(at),
            _ => None,
        };
        if let Some(end) = end {
            let param = &header[start..end];
            let name = param
                .find("(*")
                .and_then(|p| crate::cfg::events::identifiers(&param[p..]).next())
                .or_else(|| crate::cfg::events::identifiers(param).last());
            names.extend(name);
            if c == ')' {
                break;
            }
            start = end + 1;
        }
    }
    names
}

/// `copy_from_user()` or `copy_from_user()` and 2 more.
fn names(uses: &[(String, Span)]) -> String {
    let mut distinct: Vec<&str> = uses.iter().map(|(n, _)| n.as_str()).collect();
    distinct.dedup();
    match distinct.len() {
        1 => format!("`{}()`", distinct[0]),
        n => format!("`{}()` (and {} more)", distinct[0], n - 1),
    }
}

/// The edits of a conversion, or why none is offered.
fn fixes(
    cx: &RuleCx<'_>,
    lines: &Lines<'_>,
    members: &[u16],
    unmaps: &[Span],
    class: Class,
) -> Result<Vec<Edit>, String> {
    let maps = &cx.cfg.maps;
    let src = cx.source;
    let rename = |span: Span, name: &str| -> Result<Edit, String> {
        let to = cx
            .catalogue
            .local_equivalent
            .get(name)
            .ok_or_else(|| format!("`{name}()` has no kmap_local equivalent"))?;
        let end = span.start + name.len();
        // The call as written must start with the name (not a macro argument).
        if src.get(span.start..end) != Some(name.as_bytes()) {
            return Err(format!("`{name}()` is not written as a plain call"));
        }
        Ok(Edit {
            start: span.start,
            end,
            text: to.clone(),
        })
    };
    let mut edits = Vec::new();
    let (after_map, before_unmap) = class.guards();
    for &s in members {
        let map = &maps[usize::from(s)];
        edits.push(rename(map.span, &map.name)?);
        if !after_map.is_empty() {
            let (last, declaration) = map_statement_end(cx, lines, map.span)?;
            let mut at = line_end(src, last - 1);
            // Declarations, a blank line, then code (checkpatch's "Missing a
            // blank line after declarations"): the new lines open the code.
            if declaration
                && src[at..line_end(src, at)]
                    .iter()
                    .all(u8::is_ascii_whitespace)
            {
                at = line_end(src, at);
            }
            edits.push(insert_lines(src, at, last, after_map));
        }
    }
    for &span in unmaps {
        let name = call_name(cx, span);
        edits.push(rename(span, &name)?);
        if !before_unmap.is_empty() {
            let stmt = statement(cx, span, false)
                .map_err(|why| format!("`{name}()` at line {} {why}", lines.at(span.start)))?;
            edits.push(insert_lines(
                src,
                line_start(src, stmt.start),
                stmt.start,
                before_unmap,
            ));
        }
    }
    Ok(edits)
}

/// [`alone_on_lines`], and a comment after the statement ends on its line
/// (a line inserted below must not land inside the comment).
fn alone(src: &[u8], start: usize, end: usize) -> bool {
    if !alone_on_lines(src, start, end) {
        return false;
    }
    let rest = &src[end.min(src.len())..line_end(src, end.saturating_sub(1).max(start))];
    let opened = rest.windows(2).filter(|w| w == b"/*").count();
    let closed = rest.windows(2).filter(|w| w == b"*/").count();
    opened <= closed
}

/// Whole lines holding `lines`, at `at`, indented like the statement at `like`.
fn insert_lines(src: &[u8], at: usize, like: usize, lines: &[&str]) -> Edit {
    let indent = indentation(src, like);
    Edit {
        start: at,
        end: at,
        text: lines.iter().map(|l| format!("{indent}{l}\n")).collect(),
    }
}

/// Does a line in `from..to` of the original start with `#` (a directive)?
fn has_directive(src: &[u8], from: usize, to: usize) -> bool {
    let to = to.min(src.len());
    let mut at = line_start(src, from.min(to));
    while at < to {
        let next = line_end(src, at);
        let line = &src[at..next];
        if line
            .iter()
            .find(|b| !matches!(b, b' ' | b'\t'))
            .is_some_and(|&b| b == b'#')
        {
            return true;
        }
        at = next;
    }
    false
}

/// Where the lines after a map statement may go: the end of the statement,
/// or of the declarations that directly follow a declaring map (code after
/// them would mix declarations and code, which kbuild warns about).
/// Also says whether the map declares its variable.
fn map_statement_end(
    cx: &RuleCx<'_>,
    lines: &Lines<'_>,
    call: Span,
) -> Result<(usize, bool), String> {
    let line = lines.at(call.start);
    let stmt = statement(cx, call, true).map_err(|why| format!("the map at line {line} {why}"))?;
    let mut end = stmt.end;
    if stmt.declaration {
        for next in &stmt.following_declarations {
            let relied_on = cx
                .cfg
                .accesses
                .iter()
                .map(|a| a.span)
                .chain(cx.cfg.relies.iter().map(|r| r.span))
                .any(|s| stmt.end <= s.start && s.end <= next.end);
            if relied_on {
                return Err(format!(
                    "the declarations after the map at line {line} already need the disabling"
                ));
            }
            if !alone(cx.source, next.start, next.end) {
                return Err(format!(
                    "a declaration after the map at line {line} shares its line"
                ));
            }
            end = next.end;
        }
    }
    Ok((end, stmt.declaration))
}

/// A statement holding a map or unmap call, in file offsets.
struct Statement {
    start: usize,
    end: usize,
    declaration: bool,
    /// Declarations that directly follow it in its block.
    following_declarations: Vec<Range<usize>>,
}

/// The statement a map (`x = kmap_atomic(p);`, `T *x = kmap_atomic(p);`)
/// or unmap (`kunmap_atomic(x);`) call makes up, if it is alone on its lines
/// in a `{ }` block; else why a line cannot be put beside it.
fn statement(cx: &RuleCx<'_>, call: Span, map: bool) -> Result<Statement, String> {
    let local = |o: usize| o.saturating_sub(cx.base);
    let chain = crate::syntax::ancestors(cx.tree.root_node(), local(call.start), local(call.end));
    let Some(at) = chain.iter().rposition(|n| {
        n.kind() == "call_expression"
            && n.start_byte() == local(call.start)
            && n.end_byte() == local(call.end)
    }) else {
        return Err("is not a plain call".to_owned());
    };
    let mut i = at;
    // Through casts, parentheses and `+ offset` to the assignment.
    while map
        && i > 0
        && matches!(
            chain[i - 1].kind(),
            "cast_expression" | "parenthesized_expression" | "binary_expression"
        )
    {
        i -= 1;
    }
    let kind = |up: usize| i.checked_sub(up).map(|k| chain[k].kind());
    let (stmt_at, declaration) = match (kind(1), kind(2)) {
        (Some("expression_statement"), _) if !map => (i - 1, false),
        (Some("assignment_expression"), Some("expression_statement")) if map => (i - 2, false),
        (Some("init_declarator"), Some("declaration")) if map => (i - 2, true),
        _ => return Err("is not a statement of its own".to_owned()),
    };
    let stmt = chain[stmt_at];
    // `out: kunmap_atomic(p);` (the label on a line of its own, checked
    // below): a line put before the statement goes after the label, where
    // the goto still reaches it. Statements of a `case` are a block too.
    let mut up = stmt_at;
    while up > 0 && chain[up - 1].kind() == "labeled_statement" {
        up -= 1;
    }
    let Some(block) = up.checked_sub(1).map(|b| chain[b]) else {
        return Err("is not in a block".to_owned());
    };
    if !matches!(block.kind(), "compound_statement" | "case_statement") {
        return Err("is not in a `{ }` block (a braceless `if`/loop body?)".to_owned());
    }
    let (start, end) = (cx.base + stmt.start_byte(), cx.base + stmt.end_byte());
    if !alone(cx.source, start, end) {
        return Err("shares its line with other code".to_owned());
    }
    let mut following_declarations = Vec::new();
    if declaration {
        let mut cursor = block.walk();
        let mut after = false;
        for child in block.named_children(&mut cursor) {
            if child.id() == chain[up].id() {
                after = true;
            } else if after && child.kind() == "declaration" {
                following_declarations
                    .push(cx.base + child.start_byte()..cx.base + child.end_byte());
            } else if after {
                break;
            }
        }
    }
    Ok(Statement {
        start,
        end,
        declaration,
        following_declarations,
    })
}

#[cfg(test)]
mod tests {
    use super::{has_directive, parameter_names};

    #[test]
    fn parameter_names_include_function_pointers_and_typedefs() {
        let header = "static void dma_maint(struct page *page, size_t len,\n\tvoid (*op)(const void *, size_t, int), xdr_actor copy_actor)\n";
        assert_eq!(
            parameter_names(header, "dma_maint"),
            ["page", "len", "op", "copy_actor"]
        );
        assert!(parameter_names("int f(void)", "g").is_empty());
    }

    #[test]
    fn directives_are_found_only_at_line_starts() {
        let src = b"a = kmap_atomic(p);\n  #ifdef X\nb();\n#endif\nc = x # y;\n";
        assert!(has_directive(src, 0, src.len()));
        let later = src.len() - "c = x # y;\n".len();
        assert!(!has_directive(src, later, src.len()));
    }
}
