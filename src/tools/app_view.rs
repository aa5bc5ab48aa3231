//! The task view of the MCP Apps extension (`io.modelcontextprotocol/ui`): one HTML page,
//! `ui://handinger/task`, that a host renders in a sandboxed iframe for the results of
//! `create_task`, `get_task` and the `ask_<name>` tools.
//!
//! Offered only to a client that declares the extension (at `initialize`, or in a
//! 2026-07-28 request's own capabilities): only then do those tools carry
//! `_meta.ui.resourceUri` and does `resources/list` name the view. Every other client sees
//! the listing it saw before, byte for byte, and no tool result changes for anyone: the
//! view reads the same structured result the model gets, and the text stays complete.
//!
//! The page itself is in `src/tools/app_view/task_view.html`, written by hand (no build
//! step, no Node): it speaks the extension's postMessage JSON-RPC itself, renders Markdown
//! into DOM nodes (never HTML), and reaches the server only through the host
//! (`tools/call` of `get_task` to follow a running task, of the task tool for a follow-up
//! the user typed, of `archive_task` when listed), so the host's consent applies.

use rmcp::RoleServer;
use rmcp::model::{
    ClientCapabilities, JsonObject, MetaObject, ReadResourceResult, Resource, ResourceContents,
    Tool,
};
use rmcp::service::RequestContext;
use serde_json::{Value, json};

use super::surface::ASK_PREFIX;

/// The extension's identifier in the capabilities' `extensions` map.
pub(super) const EXTENSION_ID: &str = "io.modelcontextprotocol/ui";
/// The type a view is served with; a client that lists `mimeTypes` must name it.
pub(super) const MIME_TYPE: &str = "text/html;profile=mcp-app";
/// The one view this server has.
pub(super) const URI: &str = "ui://handinger/task";

/// The page, self-contained: its script and styles are inline, it loads nothing.
const PAGE: &str = include_str!("app_view/task_view.html");
/// Where the page learns which of the tools it calls this server lists (see [`page`]).
const TOOLS_MARKER: &str = "data-tools=\"\"";

/// Whether the client of this request renders MCP Apps views of our type.
pub(super) fn declared(context: &RequestContext<RoleServer>) -> bool {
    context
        .client_capabilities()
        .is_some_and(|caps| renders_views(&caps))
}

/// The extension declared, and, when the client lists the types it renders, ours among
/// them (the spec makes `mimeTypes` required; a client that leaves it out is taken at its
/// word that it renders apps, the only type there is).
fn renders_views(caps: &ClientCapabilities) -> bool {
    let Some(settings) = caps.extensions.as_ref().and_then(|e| e.get(EXTENSION_ID)) else {
        return false;
    };
    match settings.get("mimeTypes") {
        None => true,
        Some(Value::Array(types)) => types.iter().any(|t| t.as_str() == Some(MIME_TYPE)),
        Some(_) => false,
    }
}

/// Whether results of the tool `name` open the task view.
fn shows_task(name: &str) -> bool {
    matches!(name, "create_task" | "get_task") || name.starts_with(ASK_PREFIX)
}

/// Links the task tools among `tools` to the view (`_meta.ui.resourceUri`), keeping any
/// `_meta` a tool already has.
pub(super) fn link(tools: &mut [Tool]) {
    for tool in tools.iter_mut().filter(|t| shows_task(&t.name)) {
        let meta = tool.meta.get_or_insert_with(MetaObject::default);
        meta.0.insert("ui".into(), json!({ "resourceUri": URI }));
    }
}

/// The view as `resources/list` names it.
pub(super) fn resource() -> Resource {
    Resource::new(URI, "task-view")
        .with_title("Handinger task")
        .with_description(
            "The view of one Handinger task: its progress, answer, sources and files, with a box for a follow-up.",
        )
        .with_mime_type(MIME_TYPE)
}

/// `resources/read` of the view. `listed` says whether this server lists a tool, for the
/// page to offer only the actions the server has (follow-up, archive).
pub(super) fn read(listed: impl Fn(&str) -> bool) -> ReadResourceResult {
    let mut ui = JsonObject::new();
    // Nothing beyond the host: no connections, no remote scripts, styles, fonts or frames.
    ui.insert(
        "csp".into(),
        json!({ "connectDomains": [], "resourceDomains": [], "frameDomains": [] }),
    );
    ui.insert("prefersBorder".into(), Value::Bool(true));
    let mut meta = MetaObject::default();
    meta.0.insert("ui".into(), Value::Object(ui));
    ReadResourceResult::new(vec![ResourceContents::TextResourceContents {
        uri: URI.into(),
        mime_type: Some(MIME_TYPE.into()),
        text: page(listed),
        meta: Some(meta),
    }])
}

/// The page, told which of the tools it may call are listed (a space-separated list on
/// `<body data-tools>`; names are `[a-z0-9_]`, so nothing in it needs escaping).
fn page(listed: impl Fn(&str) -> bool) -> String {
    let tools: Vec<&str> = ["create_task", "get_task", "archive_task"]
        .into_iter()
        .filter(|name| listed(name))
        .collect();
    PAGE.replacen(
        TOOLS_MARKER,
        &format!("data-tools=\"{}\"", tools.join(" ")),
        1,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caps(extensions: Value) -> ClientCapabilities {
        serde_json::from_value(json!({ "extensions": extensions })).unwrap()
    }

    #[test]
    fn only_a_declared_extension_with_our_type_counts() {
        assert!(renders_views(&caps(
            json!({ EXTENSION_ID: { "mimeTypes": [MIME_TYPE] } })
        )));
        assert!(renders_views(&caps(json!({ EXTENSION_ID: {} }))));
        assert!(!renders_views(&caps(
            json!({ EXTENSION_ID: { "mimeTypes": ["text/html"] } })
        )));
        assert!(!renders_views(&caps(
            json!({ EXTENSION_ID: { "mimeTypes": MIME_TYPE } })
        )));
        assert!(!renders_views(&caps(json!({ "io.example/other": {} }))));
        assert!(!renders_views(&ClientCapabilities::default()));
    }

    #[test]
    fn the_page_names_the_listed_tools_and_loads_nothing() {
        let text = page(|name| name != "archive_task");
        assert!(text.contains("data-tools=\"create_task get_task\""));
        assert!(!text.contains(TOOLS_MARKER));
        for remote in ["src=\"http", "href=\"http", "@import", "url(http", "<link"] {
            assert!(!text.contains(remote), "the page loads {remote}");
        }
        // What the answer becomes is built from text nodes: nothing parses HTML or code.
        for parser in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
            "createContextualFragment",
            "DOMParser",
            "eval(",
            "new Function",
        ] {
            assert!(!text.contains(parser), "the page uses {parser}");
        }
    }
}
