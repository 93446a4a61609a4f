//! The rule registry. A rule is one file: its documentation (doc comments
//! gathered by [`declare_rule!`]), its check, and a fixture folder
//! `fixtures/<CODE>/` with expected output beside each case.

pub mod evidence;
pub mod km001_fault_in_kmap_local;

use tree_sitter::Tree;

use crate::catalogue::{Catalogue, MapFamily};
use crate::cfg::Cfg;
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
}

/// Static description of a rule; `doc` feeds `--explain` and docs/rules/.
pub struct Rule {
    pub code: &'static str,
    pub name: &'static str,
    pub summary: &'static str,
    pub default_severity: Severity,
    pub doc: &'static str,
    /// Files without a map call of these families cannot trigger the rule.
    pub needs: &'static [MapFamily],
    pub check: fn(&RuleCx<'_>) -> Vec<Diagnostic>,
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
            needs: $needs:expr,
            check: $check:expr $(,)?
        };
    ) => {
        $(#[doc = $doc])+
        pub static $ident: $crate::rules::Rule = $crate::rules::Rule {
            code: $code,
            name: $name,
            summary: $summary,
            default_severity: $sev,
            doc: concat!($($doc, "\n"),+),
            needs: $needs,
            check: $check,
        };
    };
}
pub(crate) use declare_rule;

/// Every rule, in code order: one line per rule.
pub static RULES: &[&Rule] = &[&km001_fault_in_kmap_local::KM001];

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

pub fn by_code(code: &str) -> Option<&'static Rule> {
    RULES
        .iter()
        .copied()
        .find(|r| r.code.eq_ignore_ascii_case(code))
}
