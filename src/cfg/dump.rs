//! A stable text rendering of a [`Cfg`], for `--dump-cfg` and snapshot tests.

use std::fmt::Write;

use super::{Cfg, EventKind, NodeKind};

/// One line per node: id, kind, source line, events, then `-> target (kind)`.
pub fn dump(cfg: &Cfg, line_of: &dyn Fn(usize) -> usize) -> String {
    let mut out = String::new();
    for (id, node) in cfg.nodes.iter().enumerate() {
        let kind = match node.kind {
            NodeKind::Entry => "entry",
            NodeKind::Exit => "exit",
            NodeKind::Stmt => "stmt",
            NodeKind::Branch => "branch",
            NodeKind::Join => "join",
        };
        let _ = write!(out, "n{id} {kind} L{}", line_of(node.span.start));
        for event in &node.events {
            let text = match &event.kind {
                EventKind::Map { site } => format!("map:{}", cfg.maps[*site as usize].name),
                EventKind::Unmap { arg, .. } => format!("unmap({arg})"),
                EventKind::FaultDisable => "pf_disable".to_owned(),
                EventKind::FaultEnable => "pf_enable".to_owned(),
                EventKind::Acquire { site } => {
                    format!("acquire:{}", cfg.acquires[*site as usize].name)
                }
                EventKind::Release { arg, .. } => format!("release({arg})"),
                EventKind::Access { access } => {
                    format!("access:{}", cfg.accesses[*access as usize].name)
                }
                EventKind::Forget { conds } => format!("forget:{conds:#x}"),
                EventKind::Sleep { call } => format!("sleep:{}", cfg.sleeps[*call as usize].name),
                EventKind::Handoff { site } => format!("handoff:{site}"),
                EventKind::Relies { site } => {
                    format!("relies:{}", cfg.relies[*site as usize].name)
                }
                EventKind::Call { call } => format!("call:{}", cfg.calls[*call as usize].name),
                EventKind::SetCond { cond, value } => {
                    format!("set:{}={value}", cfg.conds[*cond as usize].text)
                }
            };
            let _ = write!(out, " [{text}]");
        }
        for edge in &node.succs {
            let _ = write!(out, " -> n{} {:?}", edge.to, edge.kind);
            if let Some(a) = edge.assume {
                let _ = write!(out, "({}={})", cfg.conds[a.cond as usize].text, a.value);
            }
        }
        out.push('\n');
    }
    out
}
