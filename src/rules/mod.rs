//! The rule registry. A rule is one file: its documentation (doc comments
//! gathered by [`declare_rule!`]), its check, and a fixture folder
//! `fixtures/<CODE>/` with expected output beside each case.

pub mod conversion;
pub mod evidence;
pub mod km001_fault_in_kmap_local;
pub mod km002_conversion_drops_pagefault_disable;
pub mod km003_conversion_drops_preempt_disable;
pub mod km004_unmap_order;
pub mod km005_wrong_unmap_argument;
pub mod km006_unmap_family_mismatch;
pub mod km007_leaked_mapping;
pub mod km008_sleep_in_atomic_kmap;
pub mod km009_unbalanced_disable;
pub mod km010_inatomic_with_faults_enabled;
pub mod km011_conversion_advisor;
pub mod unmap;
pub mod wrap;

use tree_sitter::Tree;

use crate::callgraph::CallerEvidence;
use crate::catalogue::{Catalogue, MapFamily};
use crate::cfg::{Cfg, EdgeKind, Event, EventKind, NodeId, NodeKind, Span};
use crate::dataflow::Facts;
use crate::diag::{Diagnostic, Severity};

/// Everything a rule may read about one function. Rules do no I/O.
pub struct RuleCx<'a> {
    pub catalogue: &'a Catalogue,
    pub function: &'a str,
    pub tree: &'a Tree,
    /// The parsed (preprocessed) body text; tree offsets index it.
    pub text: &'a [u8],
    /// Offset of `text` in the file.
    pub base: usize,
    pub cfg: &'a Cfg,
    pub facts: &'a Facts,
    /// The function's header as written (annotations such as `__acquires()`
    /// are blank in `text`, and rules may need them).
    pub header: &'a str,
    /// The whole original file (spans index it): rules that offer fixes
    /// check the lines they edit as written, comments and directives included.
    pub source: &'a [u8],
    /// Patch mode: what the same function did before the patch (KM002,
    /// KM003 compare); `None` when checking a tree.
    pub pre_image: Option<&'a conversion::PreImage>,
    /// What its callers hold where they call it (src/callgraph); empty when
    /// no caller with a context was found, or before the call summary ran.
    pub callers: &'a [CallerEvidence],
}

/// A class of catalogue names a rule needs to see before it can fire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Needle {
    /// A map call of this family.
    Maps(MapFamily),
    /// An `_inatomic` user access.
    InatomicAccess,
}

/// Every map family: the needles of rules about any mapping.
pub const ALL_MAPS: &[Needle] = &[
    Needle::Maps(MapFamily::Local),
    Needle::Maps(MapFamily::Atomic),
    Needle::Maps(MapFamily::Kmap),
];

/// Where a finding about an exit path points: the `return` statement of an
/// exiting node, or the closing brace when the path falls off the end.
pub fn exit_span(cx: &RuleCx<'_>, node: NodeId) -> Span {
    let exit = cx.cfg.node(node);
    if exit.kind == NodeKind::Stmt && exit.succs.iter().any(|e| e.kind == EdgeKind::Return) {
        return exit.span;
    }
    let end = cx.cfg.node(crate::cfg::EXIT).span.end;
    Span {
        start: end.saturating_sub(1),
        end,
    }
}

/// Static description of a rule; `doc` feeds `--explain` and docs/rules/.
pub struct Rule {
    pub code: &'static str,
    pub name: &'static str,
    pub summary: &'static str,
    pub default_severity: Severity,
    /// Runs without `--select`/config `select` naming it. Advisory rules
    /// (KM011) are off by default and run only when selected.
    pub default_enabled: bool,
    pub doc: &'static str,
    /// Files and functions without one of these names cannot trigger the
    /// rule: they feed the prefilter and the choice of bodies to parse.
    pub needs: &'static [Needle],
    pub check: fn(&RuleCx<'_>) -> Vec<Diagnostic>,
    /// Would context from callers decide a finding here (a candidate without
    /// evidence of its own)? Such functions get a call summary.
    pub wants_callers: Option<fn(&RuleCx<'_>) -> bool>,
}

/// Declares a rule: `///` doc lines become `Rule::doc` through `concat!`.
macro_rules! declare_rule {
    (
        $(#[doc = $doc:literal])+
        pub static $ident:ident = Rule {
            code: $code:literal,
            name: $name:literal,
            summary: $summary:literal,
            default_severity: $sev:expr,
            $(default_enabled: $enabled:expr,)?
            needs: $needs:expr,
            check: $check:expr,
            wants_callers: $wants:expr $(,)?
        };
    ) => {
        $(#[doc = $doc])+
        pub static $ident: $crate::rules::Rule = $crate::rules::Rule {
            code: $code,
            name: $name,
            summary: $summary,
            default_severity: $sev,
            // `true` unless the rule says otherwise.
            default_enabled: true $(&& $enabled)?,
            doc: concat!($($doc, "\n"),+),
            needs: $needs,
            check: $check,
            wants_callers: $wants,
        };
    };
}
pub(crate) use declare_rule;

/// Every rule, in code order: one line per rule.
pub static RULES: &[&Rule] = &[
    &km001_fault_in_kmap_local::KM001,
    &km002_conversion_drops_pagefault_disable::KM002,
    &km003_conversion_drops_preempt_disable::KM003,
    &km004_unmap_order::KM004,
    &km005_wrong_unmap_argument::KM005,
    &km006_unmap_family_mismatch::KM006,
    &km007_leaked_mapping::KM007,
    &km008_sleep_in_atomic_kmap::KM008,
    &km009_unbalanced_disable::KM009,
    &km010_inatomic_with_faults_enabled::KM010,
    &km011_conversion_advisor::KM011,
];

/// When one bug triggers several rules at the same place, the most specific
/// is reported once: earlier in this list wins.
pub static SPECIFICITY: &[&str] = &[
    "KM006", "KM005", "KM004", "KM002", "KM003", "KM001", "KM008", "KM010", "KM009", "KM007",
    "KM011",
];

/// Rank of a rule in [`SPECIFICITY`] (unknown codes last).
pub fn specificity(code: &str) -> usize {
    SPECIFICITY
        .iter()
        .position(|c| *c == code)
        .unwrap_or(SPECIFICITY.len())
}

/// Every event of the function with its node and index, in node order.
pub fn events<'a>(cx: &'a RuleCx<'_>) -> impl Iterator<Item = (NodeId, usize, &'a Event)> + 'a {
    cx.cfg.nodes.iter().enumerate().flat_map(|(id, node)| {
        let id = NodeId::try_from(id).unwrap_or(NodeId::MAX);
        node.events.iter().enumerate().map(move |(i, e)| (id, i, e))
    })
}

/// The user accesses: (node, event index, access id).
pub fn accesses<'a>(cx: &'a RuleCx<'_>) -> impl Iterator<Item = (NodeId, usize, u32)> + 'a {
    events(cx).filter_map(|(n, i, e)| match e.kind {
        EventKind::Access { access } => Some((n, i, access)),
        _ => None,
    })
}

impl Rule {
    /// The rule's documentation as Markdown: what `--explain` prints and
    /// docs/rules/<CODE>.md holds (generated, checked by tests/meta.rs).
    pub fn explanation(&self) -> String {
        let body: Vec<&str> = self
            .doc
            .lines()
            .map(|l| l.strip_prefix(' ').unwrap_or(l))
            .collect();
        format!(
            "# {}: {}

{}
",
            self.code,
            self.summary,
            body.join("\n")
        )
    }
}

impl Rule {
    /// The checkpatch-style type name (`KMAP_FAULT_IN_KMAP_LOCAL`), derived
    /// from `name` so a new rule cannot forget it; `--select`/`--ignore`,
    /// `.kmapcheck.toml` and suppression comments accept it beside the code.
    pub fn type_name(&self) -> String {
        format!("KMAP_{}", self.name.to_ascii_uppercase().replace('-', "_"))
    }
}

/// The rules that run when nothing is selected: every rule not marked
/// `default_enabled: false`.
pub fn default_rules() -> Vec<&'static Rule> {
    RULES
        .iter()
        .copied()
        .filter(|r| r.default_enabled)
        .collect()
}

pub fn by_code(code: &str) -> Option<&'static Rule> {
    RULES
        .iter()
        .copied()
        .find(|r| r.code.eq_ignore_ascii_case(code))
}
