//! Per-function control-flow graph over statements.
//!
//! Nodes are statements or branch conditions that carry the catalogue events
//! found in them (maps, unmaps, user accesses, fault and lock changes); edges
//! are typed so that dumps and path explanations can say why control moves.

pub mod build;
pub mod dump;
pub mod events;

use crate::catalogue::{ContextKind, MapFamily, Reliance};

pub type NodeId = u32;

/// Byte range in the original file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Span {
    pub start: usize,
    pub end: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeKind {
    Entry,
    Exit,
    /// A statement (or loop initializer/update) with events.
    Stmt,
    /// The condition of an `if`, loop or `switch`.
    Branch,
    /// A join point: a label, a loop head.
    Join,
}

/// Why control flows along an edge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EdgeKind {
    /// Falls through to the next statement.
    Seq,
    /// Condition true / false.
    True,
    False,
    /// `case`/`default` dispatch from a `switch`.
    Case,
    /// Back to a loop head.
    Back,
    /// `goto label`.
    Goto,
    /// `return`.
    Return,
}

/// Along this edge, the tracked condition `cond` has value `value`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Assume {
    pub cond: u16,
    pub value: bool,
}

#[derive(Clone, Copy, Debug)]
pub struct Edge {
    pub to: NodeId,
    pub kind: EdgeKind,
    pub assume: Option<Assume>,
}

#[derive(Debug)]
pub struct Node {
    pub kind: NodeKind,
    pub span: Span,
    pub events: Vec<Event>,
    pub succs: Vec<Edge>,
}

/// What a call means for the analysis, in evaluation order within a node.
#[derive(Clone, Debug)]
pub enum EventKind {
    /// A mapping begins; `site` indexes `Cfg::maps`.
    Map {
        site: u16,
    },
    /// A mapping ends; `arg` is the normalized first argument.
    Unmap {
        family: MapFamily,
        arg: String,
    },
    FaultDisable,
    FaultEnable,
    /// A context is taken; `site` indexes `Cfg::acquires`.
    Acquire {
        site: u16,
    },
    /// A context of `group` is released; `arg` is the normalized first argument.
    Release {
        group: u16,
        kind: ContextKind,
        arg: String,
    },
    /// A user-memory access; `access` indexes `Cfg::accesses`.
    Access {
        access: u32,
    },
    /// Variables in tracked conditions are assigned: forget these conditions.
    Forget {
        conds: u64,
    },
    /// A call that may sleep; `call` indexes `Cfg::sleeps`.
    Sleep {
        call: u32,
    },
    /// A tracked flag condition is assigned a constant: `disabled = true;`.
    SetCond {
        cond: u16,
        value: bool,
    },
    /// The address of map `site` is passed to a function outside the catalogue.
    Handoff {
        site: u16,
    },
    /// A call that relies on preemption or page faults being disabled
    /// (per-CPU state, context tests); `site` indexes `Cfg::relies`.
    Relies {
        site: u32,
    },
    /// A direct call of a function whose callers are being summarized
    /// (`Extra::targets`); `call` indexes `Cfg::calls`. Changes no fact: the
    /// facts before it are the context the callee runs in.
    Call {
        call: u32,
    },
}

#[derive(Clone, Debug)]
pub struct Event {
    pub kind: EventKind,
    pub span: Span,
}

/// A `kmap*()` call.
#[derive(Clone, Debug)]
pub struct MapSite {
    pub name: String,
    pub family: MapFamily,
    /// The variable that receives the address, if assigned.
    pub var: Option<String>,
    /// The normalized first argument: the page, folio or pfn mapped.
    pub page_arg: String,
    /// The address leaves the function (returned, stored, passed on): an
    /// unmap elsewhere is the caller's business.
    pub escapes: bool,
    /// Locals the address was copied into (`hdr = kaddr + off;`): an unmap
    /// may name them instead of `var`.
    pub aliases: Vec<String>,
    pub span: Span,
}

/// A call of interest that is not a map, access or context change.
#[derive(Clone, Debug)]
pub struct CallSite {
    pub name: String,
    pub span: Span,
}

/// A call that relies on the atomicity of its context (atomicity.toml).
#[derive(Clone, Debug)]
pub struct RelianceSite {
    pub name: String,
    pub on: Reliance,
    pub span: Span,
}

/// A context acquisition (lock, irq/preempt disable, mmap_lock).
#[derive(Clone, Debug)]
pub struct AcquireSite {
    pub name: String,
    pub group: u16,
    pub kind: ContextKind,
    pub arg: String,
    pub span: Span,
    /// Not a call: the context the function's caller holds at entry, in a
    /// call summary (src/callgraph/scan.rs). Any release of its kind ends it.
    pub entry: bool,
}

/// A user access and the syntax around it that rules may need.
#[derive(Clone, Debug)]
pub struct AccessSite {
    pub name: String,
    pub inatomic: bool,
    pub span: Span,
    /// Byte offset of the call node in the parsed body (for tree lookups).
    pub local_start: usize,
    pub local_end: usize,
}

/// A condition text that appears in more than one `if`: a branch on it is
/// remembered along paths, so `if (c) disable(); ... if (c) enable();` correlates.
#[derive(Clone, Debug)]
pub struct CondInfo {
    pub text: String,
    /// `Some(v)`: an `if` on this condition calls `pagefault_disable()` when it is `v`.
    pub guards_fault_disable: Option<bool>,
    /// `Some((var, v))`: the condition tests `var` against NULL and `var` is
    /// NULL when the condition is `v`. A mapping stored in `var` is not live
    /// there (`out: if (kaddr) kunmap_local(kaddr);`).
    pub null_test: Option<(String, bool)>,
}

#[derive(Debug, Default)]
pub struct Cfg {
    pub nodes: Vec<Node>,
    pub maps: Vec<MapSite>,
    pub acquires: Vec<AcquireSite>,
    pub accesses: Vec<AccessSite>,
    pub sleeps: Vec<CallSite>,
    pub relies: Vec<RelianceSite>,
    /// Calls of `Extra::targets`, in the order found.
    pub calls: Vec<CallSite>,
    pub conds: Vec<CondInfo>,
    /// False when part of the body did not parse, nesting was too deep, or a
    /// `goto` had no label: the graph is an approximation.
    pub complete: bool,
}

pub const ENTRY: NodeId = 0;
pub const EXIT: NodeId = 1;

impl Cfg {
    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id as usize]
    }
}
