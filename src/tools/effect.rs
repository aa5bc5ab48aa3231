//! What each tool does to Handinger, told to clients as the tool's MCP annotations.
//!
//! Every tool is one of three kinds, and the kind alone decides its annotations, so they
//! are written here once, with the kind of every tool in one table ([`EFFECTS`]): the
//! place to see which tools change or remove things. (rmcp's `#[tool]` attribute takes
//! annotations only as a literal `annotations(...)` list, not as an expression, so they
//! are applied to each toolset's router instead, by [`annotate`].) Clients read the
//! annotations to decide what to confirm with the user, and `--read-only` serves only the
//! tools whose annotations say they only read.

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::ToolAnnotations;

/// What calling a tool does. Every tool reaches Handinger, an open world of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Effect {
    /// Looks something up: changes nothing, so calling again is harmless.
    Reads,
    /// Makes something new (a task turn, a worker, a schedule): each call makes (and may
    /// bill) another one.
    Creates,
    /// Changes or removes something that exists: what it replaces is lost, and calling
    /// again changes nothing more.
    Changes,
}

/// The effect of every `#[tool]` of the toolsets. (The `ask_<name>` tools of the named
/// workers are built at start-up and take [`Effect::Creates`] there.)
const EFFECTS: &[(&str, Effect)] = &[
    ("create_task", Effect::Creates),
    ("get_task", Effect::Reads),
    ("create_worker", Effect::Creates),
    ("get_worker", Effect::Reads),
    ("update_worker", Effect::Changes),
    ("create_schedule", Effect::Creates),
    ("list_schedules", Effect::Reads),
    ("cancel_schedule", Effect::Changes),
    ("delete_worker", Effect::Changes),
    ("archive_task", Effect::Changes),
];

impl Effect {
    pub(super) fn annotations(self) -> ToolAnnotations {
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

/// `router` with each tool annotated with its effect from [`EFFECTS`]. A tool missing from
/// the table is a programming error, which every test that starts a server catches.
pub(super) fn annotate<S>(mut router: ToolRouter<S>) -> ToolRouter<S> {
    for (name, route) in router.map.iter_mut() {
        let Some((_, effect)) = EFFECTS.iter().find(|(tool, _)| tool == name) else {
            panic!("the tool {name} has no Effect: add it to EFFECTS in tools/effect.rs");
        };
        route.attr.annotations = Some(effect.annotations());
    }
    router
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::HandingerServer;

    /// Every entry of the table names a tool that exists (a renamed tool leaves no stale
    /// entry behind), and every tool has one (`annotate` panics otherwise).
    #[test]
    fn the_table_and_the_tools_agree() {
        let mut tools = Vec::new();
        for router in [
            HandingerServer::task_tools(),
            HandingerServer::worker_tools(),
            HandingerServer::schedule_tools(),
            HandingerServer::admin_tools(),
        ] {
            let router = annotate(router);
            tools.extend(router.map.into_keys().map(|name| name.into_owned()));
        }
        for (tool, _) in EFFECTS {
            assert!(tools.iter().any(|t| t == tool), "{tool} is no tool");
        }
    }
}
