//! The kernel API catalogue: which calls map, unmap, access user memory, or
//! change the context (page faults, preemption, locks). It is data, loaded from
//! `queries/api/*.toml` (compiled in), so teaching kmapcheck a new API is one
//! line in a TOML file plus a fixture, never a new match arm.

use std::collections::HashMap;

use anyhow::{Context, Result};
use serde::Deserialize;

/// Which kind of temporary mapping a map/unmap call belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MapFamily {
    /// `kmap_local_*()`: faults and preemption stay enabled.
    Local,
    /// `kmap_atomic*()`: disables page faults and preemption.
    Atomic,
    /// `kmap()`: may sleep, changes no context.
    Kmap,
}

/// What holding a context forbids.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ContextKind {
    /// Sleeping is forbidden (spinlock, irqs off, preemption off, RCU read side).
    Atomic,
    /// `mmap_lock` is held: a fault would take it again.
    Mmap,
}

/// What code inside a `kmap_atomic()` region may rely on besides the
/// mapping (queries/api/atomicity.toml; KM011 reads it).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reliance {
    /// Preemption disabled: per-CPU state, preempt-count tests.
    Preempt,
    /// Page faults disabled: fault-count tests (user accesses are `Access`).
    Pagefault,
}

/// The meaning of one API name.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Api {
    Map(MapFamily),
    Unmap(MapFamily),
    Access {
        inatomic: bool,
    },
    FaultDisable,
    FaultEnable,
    Acquire(ContextRef),
    Release(ContextRef),
    /// May sleep.
    Sleep,
    /// May sleep when an argument holds a blocking GFP flag.
    SleepWithGfp,
    /// Relies on the preemption or page-fault disabling of an atomic context.
    Relies(Reliance),
}

/// A lock group and what it forbids; `arg_contains` restricts a generic call
/// (`down_read`) to the argument that makes it relevant (`mmap_lock`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContextRef {
    pub group: u16,
    pub kind: ContextKind,
    pub arg_contains: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MapsFile {
    map: Vec<MapEntry>,
    /// Atomic map/unmap name -> its kmap_local equivalent (KM011).
    #[serde(default)]
    local_equivalent: HashMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AtomicityFile {
    preempt: RelianceEntry,
    pin: PinEntry,
    pagefault: RelianceEntry,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PinEntry {
    disable: Vec<String>,
    enable: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RelianceEntry {
    names: Vec<String>,
    prefixes: Vec<String>,
    #[serde(default)]
    kept_by: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MapEntry {
    names: Vec<String>,
    family: MapFamily,
    unmap: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UaccessFile {
    access: Vec<AccessEntry>,
    nofault: Vec<String>,
    retry_codes: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AccessEntry {
    inatomic: bool,
    names: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContextFile {
    fault_disable: Vec<String>,
    fault_enable: Vec<String>,
    context: Vec<ContextEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ContextEntry {
    group: String,
    kind: ContextKind,
    #[serde(default)]
    arg_contains: Option<String>,
    /// How a finding names this context when a caller holds it
    /// ("the per-VMA lock"); default: "mmap_lock" or "atomic context".
    #[serde(default)]
    held: Option<String>,
    /// Substrings of a `__acquires(...)` argument that name this context:
    /// an annotated function is an acquire helper of this group.
    #[serde(default)]
    annotation: Vec<String>,
    acquire: Vec<String>,
    release: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SleepFile {
    sleeps: Vec<String>,
    sleeps_with_gfp: Vec<String>,
    blocking_gfp: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct IteratorsFile {
    contains: Vec<String>,
    names: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MacrosFile {
    bare: Vec<String>,
    with_args: Vec<String>,
    definition_wrappers: Vec<String>,
}

/// API knowledge for code the built-in catalogue cannot know (out-of-tree
/// modules, a subsystem's own wrappers): the `[api]` table of
/// `.kmapcheck.toml`. Its entries have the shapes of uaccess.toml,
/// context.toml and iterators.toml and go through the same loader.
#[derive(Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExtraApi {
    #[serde(default)]
    access: Vec<AccessEntry>,
    #[serde(default)]
    context: Vec<ContextEntry>,
    /// Iterator macros, as `names` in iterators.toml.
    #[serde(default)]
    iterators: Vec<String>,
}

/// A name the user's catalogue gives a meaning the built-in one already gives
/// another: silently redefining `spin_lock` would change every finding.
#[derive(Debug, thiserror::Error)]
#[error(
    "`{}` is already in the built-in catalogue as {existing}; extra API may only add names",
    .name.escape_debug()
)]
pub struct MergeError {
    pub name: String,
    pub existing: String,
}

/// The built-in catalogue sources, in load order: (file name, text).
pub const BUILTIN: [(&str, &str); 7] = [
    (
        "queries/api/maps.toml",
        include_str!("../queries/api/maps.toml"),
    ),
    (
        "queries/api/uaccess.toml",
        include_str!("../queries/api/uaccess.toml"),
    ),
    (
        "queries/api/context.toml",
        include_str!("../queries/api/context.toml"),
    ),
    (
        "queries/api/sleep.toml",
        include_str!("../queries/api/sleep.toml"),
    ),
    (
        "queries/api/iterators.toml",
        include_str!("../queries/api/iterators.toml"),
    ),
    (
        "queries/api/macros.toml",
        include_str!("../queries/api/macros.toml"),
    ),
    (
        "queries/api/atomicity.toml",
        include_str!("../queries/api/atomicity.toml"),
    ),
];

/// Everything the pipeline knows about kernel APIs.
#[derive(Debug, Default)]
pub struct Catalogue {
    apis: HashMap<String, Api>,
    /// Names of the lock groups, indexed by `ContextRef::group`.
    pub group_names: Vec<String>,
    /// How findings name a held context of each group (see context.toml).
    pub group_held: Vec<String>,
    /// What holding each group forbids.
    pub group_kinds: Vec<ContextKind>,
    /// `__acquires(...)` argument substrings and the context they name.
    pub annotations: Vec<(String, ContextRef)>,
    /// Error codes whose return means "retry elsewhere" (without the minus).
    pub retry_codes: Vec<String>,
    /// Calls that never fault (documented in uaccess.toml); kept for `explain`.
    pub nofault: Vec<String>,
    pub iterator_substrings: Vec<String>,
    pub iterator_names: Vec<String>,
    pub bare_annotations: Vec<String>,
    pub annotations_with_args: Vec<String>,
    pub definition_wrappers: Vec<String>,
    /// GFP flags that let an allocator sleep.
    pub blocking_gfp: Vec<String>,
    /// Atomic map/unmap name -> kmap_local equivalent (KM011's fixes).
    pub local_equivalent: HashMap<String, String>,
    /// Name prefixes that mean [`Api::Relies`] (`this_cpu_`), checked when
    /// a name is not in the table.
    reliance_prefixes: Vec<(String, Api)>,
    /// Lock groups whose holding keeps preemption off by itself (indexes
    /// into `group_names`): a per-CPU use under them does not rely on a
    /// kmap_atomic().
    pub keeps_preempt_off: Vec<u16>,
    /// Calls that pin the task to its CPU (`migrate_disable()`) and their ends.
    pub cpu_pin: Vec<String>,
    pub cpu_unpin: Vec<String>,
}

impl Catalogue {
    /// The catalogue compiled into the binary.
    pub fn builtin() -> Result<Self> {
        let mut cat = Catalogue::default();
        let [maps, uaccess, context, sleep, iterators, macros, atomicity] = BUILTIN;
        cat.load_maps(parse(maps)?);
        cat.load_uaccess(parse(uaccess)?);
        cat.load_context(parse(context)?);
        cat.load_sleep(parse(sleep)?);
        let it: IteratorsFile = parse(iterators)?;
        cat.iterator_substrings = it.contains;
        cat.iterator_names = it.names;
        let m: MacrosFile = parse(macros)?;
        cat.bare_annotations = m.bare;
        cat.annotations_with_args = m.with_args;
        cat.definition_wrappers = m.definition_wrappers;
        cat.load_atomicity(parse(atomicity)?)
            .context("queries/api/atomicity.toml: invalid catalogue")?;
        Ok(cat)
    }

    /// Adds the user's API knowledge; a name may be repeated with the meaning
    /// it already has, never given another.
    pub fn merge(&mut self, extra: ExtraApi) -> Result<(), MergeError> {
        let mut added = Catalogue::default();
        added.group_names.clone_from(&self.group_names);
        added.group_held.clone_from(&self.group_held);
        added.group_kinds.clone_from(&self.group_kinds);
        added.load_uaccess(UaccessFile {
            access: extra.access,
            nofault: Vec::new(),
            retry_codes: Vec::new(),
        });
        added.load_context(ContextFile {
            fault_disable: Vec::new(),
            fault_enable: Vec::new(),
            context: extra.context,
        });
        for (name, api) in &added.apis {
            match self.apis.get(name) {
                Some(existing) if !same_meaning(existing, api) => {
                    return Err(MergeError {
                        name: name.clone(),
                        existing: describe(existing).to_owned(),
                    });
                }
                _ => {}
            }
        }
        // A repeated name keeps its built-in entry (and lock group).
        for (name, api) in added.apis {
            self.apis.entry(name).or_insert(api);
        }
        self.group_names = added.group_names;
        self.group_held = added.group_held;
        self.group_kinds = added.group_kinds;
        self.annotations.extend(added.annotations);
        self.iterator_names.extend(extra.iterators);
        Ok(())
    }

    /// After context.toml: `kept_by` names its lock groups.
    fn load_atomicity(&mut self, file: AtomicityFile) -> Result<()> {
        self.cpu_pin = file.pin.disable;
        self.cpu_unpin = file.pin.enable;
        for (entry, reliance) in [
            (file.preempt, Reliance::Preempt),
            (file.pagefault, Reliance::Pagefault),
        ] {
            for name in entry.names {
                self.apis.insert(name, Api::Relies(reliance));
            }
            for prefix in entry.prefixes {
                self.reliance_prefixes.push((prefix, Api::Relies(reliance)));
            }
            anyhow::ensure!(
                reliance == Reliance::Preempt || entry.kept_by.is_empty(),
                "kept_by: only [preempt] names lock groups"
            );
            for group in &entry.kept_by {
                let index = self
                    .group_names
                    .iter()
                    .position(|n| n == group)
                    .and_then(|g| u16::try_from(g).ok())
                    .with_context(|| format!("kept_by: no context group `{group}`"))?;
                self.keeps_preempt_off.push(index);
            }
        }
        Ok(())
    }

    fn load_maps(&mut self, file: MapsFile) {
        self.local_equivalent = file.local_equivalent;
        for entry in file.map {
            for name in entry.names {
                self.apis.insert(name, Api::Map(entry.family));
            }
            for name in entry.unmap {
                self.apis.insert(name, Api::Unmap(entry.family));
            }
        }
    }

    fn load_uaccess(&mut self, file: UaccessFile) {
        for entry in file.access {
            for name in entry.names {
                self.apis.insert(
                    name,
                    Api::Access {
                        inatomic: entry.inatomic,
                    },
                );
            }
        }
        // nofault names are deliberately absent from `apis`: they are not accesses.
        self.nofault = file.nofault;
        self.retry_codes = file.retry_codes;
    }

    fn load_context(&mut self, file: ContextFile) {
        for name in file.fault_disable {
            self.apis.insert(name, Api::FaultDisable);
        }
        for name in file.fault_enable {
            self.apis.insert(name, Api::FaultEnable);
        }
        for entry in file.context {
            let group = u16::try_from(self.group_names.len()).unwrap_or(u16::MAX);
            self.group_names.push(entry.group);
            self.group_kinds.push(entry.kind);
            self.group_held.push(entry.held.unwrap_or_else(|| {
                match entry.kind {
                    ContextKind::Mmap => "mmap_lock",
                    ContextKind::Atomic => "atomic context",
                }
                .to_owned()
            }));
            let ctx = ContextRef {
                group,
                kind: entry.kind,
                arg_contains: entry.arg_contains,
            };
            for needle in entry.annotation {
                self.annotations.push((needle, ctx.clone()));
            }
            for name in entry.acquire {
                self.apis.insert(name, Api::Acquire(ctx.clone()));
            }
            for name in entry.release {
                self.apis.insert(name, Api::Release(ctx.clone()));
            }
        }
    }

    fn load_sleep(&mut self, file: SleepFile) {
        for name in file.sleeps {
            self.apis.insert(name, Api::Sleep);
        }
        for name in file.sleeps_with_gfp {
            self.apis.insert(name, Api::SleepWithGfp);
        }
        self.blocking_gfp = file.blocking_gfp;
    }

    /// Names of the `_inatomic` user accesses: the prefilter's needles for
    /// rules that look at them without a mapping.
    pub fn inatomic_access_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .apis
            .iter()
            .filter(|(_, api)| **api == Api::Access { inatomic: true })
            .map(|(name, _)| name.as_str())
            .collect();
        names.sort_unstable();
        names
    }

    /// Names that take or release a context or change page faults: a
    /// function whose body calls none of them is not an acquire helper.
    pub fn context_names(&self) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .apis
            .iter()
            .filter(|(_, api)| {
                matches!(
                    api,
                    Api::Acquire(_) | Api::Release(_) | Api::FaultDisable | Api::FaultEnable
                )
            })
            .map(|(name, _)| name.as_str())
            .collect();
        names.sort_unstable();
        names
    }

    /// The context a `__acquires(arg)` annotation names, if the catalogue knows it.
    pub fn annotated_context(&self, arg: &str) -> Option<&ContextRef> {
        self.annotations
            .iter()
            .find(|(needle, _)| arg.contains(needle.as_str()))
            .map(|(_, ctx)| ctx)
    }

    /// What a called name means, if the catalogue knows it.
    pub fn lookup(&self, name: &str) -> Option<&Api> {
        self.apis.get(name).or_else(|| {
            self.reliance_prefixes
                .iter()
                .find(|(prefix, _)| name.starts_with(prefix.as_str()))
                .map(|(_, api)| api)
        })
    }

    /// Names of every map call of `family`: the prefilter's needles.
    pub fn map_names(&self, family: MapFamily) -> Vec<&str> {
        let mut names: Vec<&str> = self
            .apis
            .iter()
            .filter(|(_, api)| **api == Api::Map(family))
            .map(|(name, _)| name.as_str())
            .collect();
        names.sort_unstable();
        names
    }

    /// Is `name` a kernel iterator macro (a loop header followed by a body)?
    pub fn is_iterator(&self, name: &str) -> bool {
        self.iterator_names.iter().any(|n| n == name)
            || self
                .iterator_substrings
                .iter()
                .any(|s| name.contains(s.as_str()))
    }

    /// How a finding names a held context of `group`.
    pub fn held_name(&self, group: u16) -> &str {
        self.group_held
            .get(usize::from(group))
            .map_or("a lock", String::as_str)
    }

    pub fn is_retry_code(&self, ident: &str) -> bool {
        self.retry_codes.iter().any(|c| c == ident)
    }
}

fn describe(api: &Api) -> &'static str {
    match api {
        Api::Map(_) => "a map call",
        Api::Unmap(_) => "an unmap call",
        Api::Access { inatomic: false } => "a user access",
        Api::Access { inatomic: true } => "an _inatomic user access",
        Api::FaultDisable => "a page-fault disable",
        Api::FaultEnable => "a page-fault enable",
        Api::Acquire(c) if c.kind == ContextKind::Atomic => "an atomic-context acquire",
        Api::Acquire(_) => "an mmap_lock acquire",
        Api::Release(c) if c.kind == ContextKind::Atomic => "an atomic-context release",
        Api::Release(_) => "an mmap_lock release",
        Api::Sleep => "a call that may sleep",
        Api::SleepWithGfp => "an allocation that may sleep",
        Api::Relies(Reliance::Preempt) => "a per-CPU use",
        Api::Relies(Reliance::Pagefault) => "a page-fault-count test",
    }
}

/// Equal meanings; lock group numbers differ between a built-in and a user
/// entry for the same lock, so contexts compare by kind and argument.
fn same_meaning(a: &Api, b: &Api) -> bool {
    match (a, b) {
        (Api::Acquire(x), Api::Acquire(y)) | (Api::Release(x), Api::Release(y)) => {
            x.kind == y.kind && x.arg_contains == y.arg_contains
        }
        _ => a == b,
    }
}

fn parse<T: for<'de> Deserialize<'de>>((file, text): (&str, &str)) -> Result<T> {
    toml::from_str(text).with_context(|| format!("{file}: invalid catalogue"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalogue_loads_and_knows_the_seed_apis() {
        let cat = Catalogue::builtin().unwrap();
        assert_eq!(
            cat.lookup("kmap_local_folio"),
            Some(&Api::Map(MapFamily::Local))
        );
        assert_eq!(
            cat.lookup("copy_from_user"),
            Some(&Api::Access { inatomic: false })
        );
        assert_eq!(cat.lookup("pagefault_disable"), Some(&Api::FaultDisable));
        assert!(cat.lookup("copy_from_user_nofault").is_none());
        assert!(cat.is_iterator("list_for_each_entry_safe"));
        assert!(cat.is_retry_code("ENOENT"));
    }

    #[test]
    fn atomic_names_have_local_equivalents_of_the_local_family() {
        let cat = Catalogue::builtin().unwrap();
        assert_eq!(
            cat.lookup("this_cpu_inc"),
            Some(&Api::Relies(Reliance::Preempt))
        );
        assert_eq!(
            cat.lookup("smp_processor_id"),
            Some(&Api::Relies(Reliance::Preempt))
        );
        assert!(cat.lookup("this_cpu").is_none());
        assert!(!cat.keeps_preempt_off.is_empty());
        assert_eq!(cat.local_equivalent["kmap_atomic"], "kmap_local_page");
        for (atomic, local) in &cat.local_equivalent {
            let (from, to) = (cat.lookup(atomic), cat.lookup(local));
            let ok = matches!(
                (from, to),
                (
                    Some(Api::Map(MapFamily::Atomic)),
                    Some(Api::Map(MapFamily::Local))
                ) | (
                    Some(Api::Unmap(MapFamily::Atomic)),
                    Some(Api::Unmap(MapFamily::Local))
                )
            );
            assert!(ok, "{atomic} -> {local}: not an atomic -> local pair");
        }
    }

    #[test]
    fn extra_api_merges_through_the_same_loader() {
        let mut cat = Catalogue::builtin().unwrap();
        let groups = cat.group_names.len();
        let extra: ExtraApi = toml::from_str(
            r#"
            iterators = ["zz_walk_pages"]
            [[access]]
            inatomic = true
            names = ["zz_copy_in", "__copy_from_user_inatomic"]
            [[context]]
            group = "zz_lock"
            kind = "mmap"
            acquire = ["zz_lock"]
            release = ["zz_unlock"]
            "#,
        )
        .unwrap();
        cat.merge(extra).unwrap();
        assert_eq!(
            cat.lookup("zz_copy_in"),
            Some(&Api::Access { inatomic: true })
        );
        let Some(Api::Acquire(ctx)) = cat.lookup("zz_lock") else {
            panic!("zz_lock is not an acquire");
        };
        assert_eq!(
            (ctx.kind, usize::from(ctx.group)),
            (ContextKind::Mmap, groups)
        );
        assert_eq!(cat.group_names[groups], "zz_lock");
        assert!(cat.is_iterator("zz_walk_pages"));
    }

    #[test]
    fn extra_api_cannot_redefine_a_builtin_name() {
        let mut cat = Catalogue::builtin().unwrap();
        let extra: ExtraApi =
            toml::from_str("[[access]]\ninatomic = false\nnames = [\"pagefault_disable\"]\n")
                .unwrap();
        let err = cat.merge(extra).unwrap_err();
        assert_eq!(err.name, "pagefault_disable");
    }
}
