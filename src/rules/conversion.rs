//! What a `kmap_atomic()` → `kmap_local_*()` conversion can silently drop,
//! as facts about a function's pre-image that KM002 and KM003 compare with
//! its post-image.
//!
//! `kmap_atomic()` disables page faults and preemption until its
//! `kunmap_atomic()`; `kmap_local_*()` does neither
//! (Documentation/mm/highmem.rst). Code inside the old region may have
//! relied on either side effect without saying so: a user copy expected to
//! fail fast instead of faulting, a `smp_processor_id()` expected to stay
//! valid. Patch mode runs the CFG and dataflow on the pre-image, records the
//! calls made while a `kmap_atomic()` mapping was live, and hands the summary
//! to the same function's post-image as `RuleCx::pre_image`.

use std::collections::HashMap;
use std::ops::Range;

use super::{RuleCx, events};
use crate::catalogue::{ContextKind, MapFamily, Reliance};
use crate::cfg::{EventKind, NodeId};
use crate::dataflow::lattice::Fact;

/// A call made inside a `kmap_atomic()` region of the pre-image.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Call {
    pub name: String,
    /// The call's text without whitespace: `copy_from_user(kaddr,src,n)`.
    pub text: String,
    /// The same access also ran under a sleeping `kmap()` with page faults
    /// enabled on another path (`if (allow_pagefault) kmap(); else
    /// kmap_atomic();`): the author chose the atomic mapping where the
    /// access must not fault.
    pub chosen_atomic: bool,
}

/// One function of a pre-image, as KM002 and KM003 need it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PreImage {
    /// `kmap_atomic*()` call sites.
    pub atomic_maps: usize,
    /// `kmap_local_*()` call sites.
    pub local_maps: usize,
    /// User accesses made while a `kmap_atomic()` mapping was live on some
    /// path: page faults were disabled there.
    pub faultless_accesses: Vec<Call>,
    /// Per-CPU uses made while a `kmap_atomic()` mapping was live:
    /// preemption was disabled there.
    pub pinned_percpu: Vec<Call>,
}

impl PreImage {
    /// Two definitions with one name (`#if` arms) count as one function.
    fn merge(&mut self, other: PreImage) {
        self.atomic_maps += other.atomic_maps;
        self.local_maps += other.local_maps;
        self.faultless_accesses.extend(other.faultless_accesses);
        self.pinned_percpu.extend(other.pinned_percpu);
    }
}

/// Pre-image summaries by function name.
#[derive(Debug, Default)]
pub struct PreImages(HashMap<String, PreImage>);

impl PreImages {
    pub fn get(&self, function: &str) -> Option<&PreImage> {
        self.0.get(function)
    }

    /// `new` is `old` renamed by the patch: it gets `old`'s summary.
    pub fn alias(&mut self, old: &str, new: &str) {
        if let Some(summary) = self.0.get(old).cloned() {
            self.0.entry(new.to_owned()).or_default().merge(summary);
        }
    }

    pub fn insert(&mut self, function: String, summary: PreImage) {
        self.0.entry(function).or_default().merge(summary);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The call text at `range` of the parsed body, whitespace removed.
pub fn call_text(cx: &RuleCx<'_>, range: Range<usize>) -> String {
    String::from_utf8_lossy(cx.text.get(range).unwrap_or_default())
        .split_whitespace()
        .collect()
}

/// Summarizes one function of a pre-image.
pub fn summarize(cx: &RuleCx<'_>) -> PreImage {
    let count = |family| cx.cfg.maps.iter().filter(|m| m.family == family).count();
    let mut summary = PreImage {
        atomic_maps: count(MapFamily::Atomic),
        local_maps: count(MapFamily::Local),
        ..PreImage::default()
    };
    if summary.atomic_maps == 0 {
        return summary;
    }
    for (node, index, event) in events(cx) {
        let under_atomic = || {
            cx.facts
                .before(node, index)
                .iter()
                .any(|f| !f.atomic.is_empty())
        };
        match event.kind {
            EventKind::Access { access } => {
                let site = &cx.cfg.accesses[access as usize];
                if under_atomic() {
                    let chosen_atomic = cx
                        .facts
                        .before(node, index)
                        .iter()
                        .any(|f| f.atomic.is_empty() && f.kmap != 0 && !f.faults_disabled());
                    summary.faultless_accesses.push(Call {
                        name: site.name.clone(),
                        text: call_text(cx, site.local_start..site.local_end),
                        chosen_atomic,
                    });
                }
            }
            EventKind::Relies { site } => {
                let site = &cx.cfg.relies[site as usize];
                if site.on == Reliance::Preempt && under_atomic() {
                    let local = site.span.start - cx.base..site.span.end - cx.base;
                    summary.pinned_percpu.push(Call {
                        name: site.name.clone(),
                        text: call_text(cx, local),
                        chosen_atomic: false,
                    });
                }
            }
            _ => {}
        }
    }
    summary
}

/// Is this function a conversion: its pre-image mapped with `kmap_atomic()`
/// and the patch added `kmap_local_*()` calls?
pub fn converted<'a>(cx: &RuleCx<'a>) -> Option<&'a PreImage> {
    let pre = cx.pre_image?;
    let local_now = cx
        .cfg
        .maps
        .iter()
        .filter(|m| m.family == MapFamily::Local)
        .count();
    (pre.atomic_maps > 0 && local_now > pre.local_maps).then_some(pre)
}

/// The pre-image call this post-image call stands for: the same text, or
/// else the same function (the conversion may have renamed the variable).
pub fn counterpart<'a>(before: &'a [Call], name: &str, text: &str) -> Option<&'a Call> {
    before
        .iter()
        .find(|c| c.text == text)
        .or_else(|| before.iter().find(|c| c.name == name))
}

/// Facts at an event reached with a `kmap_local_*()` mapping live.
pub fn in_local_region<'f>(
    cx: &'f RuleCx<'_>,
    node: NodeId,
    index: usize,
) -> impl Iterator<Item = &'f Fact> + 'f {
    cx.facts
        .before(node, index)
        .iter()
        .filter(|f| !f.local.is_empty())
}

/// The acquire sites held in `held` that make the context atomic.
pub fn atomic_sites<'f>(cx: &'f RuleCx<'_>, held: u64) -> impl Iterator<Item = usize> + 'f {
    (0..cx.cfg.acquires.len().min(64))
        .filter(move |s| held & (1 << s) != 0)
        .filter(|s| cx.cfg.acquires[*s].kind == ContextKind::Atomic)
}
