//! What each tool does to Handinger, told to clients as the tool's MCP annotations.
//!
//! Every tool is one of three kinds, and the kind alone decides its annotations, so they
//! are written here once. rmcp's `#[tool]` attribute only takes annotations as literal
//! `annotations(...)` lists (not an expression), so each toolset names its tools' kinds in
//! a table beside its tools, and [`annotate`] applies it. Clients read the annotations to
//! decide what to confirm with the user, and `--read-only` serves only the tools whose
//! annotations say they read.

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::ToolAnnotations;

/// What calling a tool does. Every tool reaches Handinger, an open world of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Looks something up: changes nothing, so calling again is harmless.
    Reads,
    /// Makes something new (a task turn, a worker, a schedule): each call makes (and may
    /// bill) another one.
    Creates,
    /// Changes or removes something that exists: what it replaces is lost, and calling
    /// again changes nothing more.
    Changes,
}

impl Effect {
    pub fn annotations(self) -> ToolAnnotations {
        let (read_only, destructive, idempotent) = match self {
            Effect::Reads => (true, false, true),
            Effect::Creates => (false, false, false),
            Effect::Changes => (false, true, true),
        };
        ToolAnnotations::new()
            .read_only(read_only)
            .destructive(destructive)
            .idempotent(idempotent)
            .open_world(true)
    }
}

/// `router` with each tool annotated with its effect from `effects`. A tool missing from
/// the table, or a table entry naming no tool, is a programming error that every test
/// building a server catches.
pub fn annotate<S>(mut router: ToolRouter<S>, effects: &[(&str, Effect)]) -> ToolRouter<S> {
    for (name, route) in router.map.iter_mut() {
        let Some((_, effect)) = effects.iter().find(|(tool, _)| tool == name) else {
            panic!("the tool {name} has no Effect: add it to its toolset's EFFECTS");
        };
        route.attr.annotations = Some(effect.annotations());
    }
    for (tool, _) in effects {
        assert!(
            router.map.contains_key(*tool),
            "EFFECTS names {tool}, which is no tool here"
        );
    }
    router
}
