//! The MCP Apps task view (`ui://handinger/task`): offered only to clients that declare the
//! `io.modelcontextprotocol/ui` extension, and working in a real browser.
//!
//! - The listing: a declaring client (at `initialize` over stdio, or per request in the
//!   2026-07-28 shape) gets the task tools linked to the view and the view listed; its
//!   listing is otherwise the reviewed snapshot, byte for byte, and so is everyone else's.
//!   What the extension adds is itself a reviewed snapshot, `tests/snapshots/app_view.json`
//!   (`UPDATE_SNAPSHOTS=1 cargo test --test it app_view::` rewrites it).
//! - The browser: `tests/python/app_view.py` runs headless Chromium (Playwright, pinned in
//!   `.ci/requirements-clients.txt`) on a test host page that loads the view in a sandboxed
//!   iframe and proxies its tool calls to the real binary over HTTP, against the fake.
//!   Screenshots of each state, light and dark, go to `docs/app-view/` with
//!   `UPDATE_SCREENSHOTS=1`, else to a scratch directory (they are taken either way).

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::http::start_http;
use common::snapshots;
use common::*;
use rmcp::model::{ClientCapabilities, ClientConfig, ReadResourceRequestParams, Tool};
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};

const UI: &str = "io.modelcontextprotocol/ui";
const MIME: &str = "text/html;profile=mcp-app";
const VIEW: &str = "ui://handinger/task";
/// Bounds the browser scenario (Chromium's start, a few tasks of seconds): only a hang.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(240);

/// Client information declaring the extension with our type.
fn declaring() -> ClientConfig {
    let mut info = ClientConfig::default();
    let mut extensions = rmcp::model::ExtensionCapabilities::new();
    extensions.insert(
        UI.into(),
        json!({ "mimeTypes": [MIME] }).as_object().unwrap().clone(),
    );
    info.capabilities = ClientCapabilities::builder()
        .enable_extensions_with(extensions)
        .build();
    info
}

/// The binary over stdio with `args`, initialized by a client with `info`.
async fn stdio_client(
    fake: &FakeHandinger,
    args: &[&str],
    info: ClientConfig,
    modern_lifecycle: bool,
) -> rmcp::service::RunningService<RoleClient, ClientConfig> {
    let transport = TokioChildProcess::builder(command(&fake.base_url, args))
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn handinger-mcp")
        .0;
    if modern_lifecycle {
        rmcp::service::ClientServiceExt::serve_with_lifecycle(info, transport, modern())
            .await
            .expect("MCP discover")
    } else {
        info.serve(transport).await.expect("MCP initialize")
    }
}

fn as_json(tools: &[Tool]) -> Vec<Value> {
    tools
        .iter()
        .map(|t| serde_json::to_value(t).unwrap())
        .collect()
}

/// The listing with every tool's `_meta.ui` taken out (and `_meta` when nothing is left).
fn without_ui(mut tools: Vec<Value>) -> Vec<Value> {
    for tool in &mut tools {
        let object = tool.as_object_mut().unwrap();
        if let Some(Value::Object(meta)) = object.get_mut("_meta") {
            meta.remove("ui");
            if meta.is_empty() {
                object.remove("_meta");
            }
        }
    }
    tools
}

/// What the extension adds to a listing: each tool's `_meta`, and the resources listed.
fn additions(tools: &[Value], resources: &Value) -> Value {
    let metas: serde_json::Map<String, Value> = tools
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap().to_owned(),
                t.get("_meta").cloned().unwrap_or(Value::Null),
            )
        })
        .collect();
    json!({ "tools": metas, "resources": resources })
}

#[tokio::test]
async fn only_a_client_declaring_the_extension_sees_the_view() {
    let fake = FakeHandinger::start().await;
    fake.add_described_worker("wrk_fc-1", "Fact checker", "Checks claims.");
    let args = [
        "--worker",
        "fact_checker=wrk_fc-1",
        "--toolsets",
        "all,admin",
    ];

    let plain = stdio_client(&fake, &args, ClientConfig::default(), false).await;
    let plain_tools = as_json(&plain.list_all_tools().await.unwrap());
    let plain_resources = plain.list_all_resources().await.unwrap();
    assert!(plain_resources.is_empty(), "{plain_resources:?}");
    assert!(
        plain_tools.iter().all(|t| t.get("_meta").is_none()),
        "a client without the extension sees _meta: {plain_tools:#?}"
    );

    for modern_lifecycle in [false, true] {
        let client = stdio_client(&fake, &args, declaring(), modern_lifecycle).await;
        let tools = as_json(&client.list_all_tools().await.unwrap());
        let resources = serde_json::to_value(client.list_all_resources().await.unwrap()).unwrap();
        assert_eq!(
            without_ui(tools.clone()),
            plain_tools,
            "the extension changes nothing but _meta.ui (modern: {modern_lifecycle})"
        );
        let added = additions(&tools, &resources);
        let path = snapshots::dir().join("app_view.json");
        let text = serde_json::to_string_pretty(&added).unwrap() + "\n";
        if snapshots::updating() && !modern_lifecycle {
            std::fs::write(&path, &text).unwrap();
        }
        let recorded = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(
            text,
            recorded,
            "{} differs (modern: {modern_lifecycle}); review it, then run `UPDATE_SNAPSHOTS=1 cargo test --test it app_view::` to accept",
            path.display()
        );

        // The view itself: its type, the CSP it needs (nothing beyond the host).
        let read = client
            .read_resource(ReadResourceRequestParams::new(VIEW))
            .await
            .unwrap();
        let content = serde_json::to_value(&read.contents[0]).unwrap();
        assert_eq!(content["mimeType"], MIME);
        assert_eq!(
            content["_meta"]["ui"]["csp"],
            json!({ "connectDomains": [], "resourceDomains": [], "frameDomains": [] })
        );
        let html = content["text"].as_str().unwrap();
        assert!(
            html.contains("data-tools=\"create_task get_task archive_task\""),
            "the page is told which tools it may call"
        );
        client.cancel().await.unwrap();
    }
    plain.cancel().await.unwrap();
}

/// Whether the task tools a client over HTTP lists are linked to the view.
async fn linked_over_http(url: String, modern_lifecycle: bool) -> bool {
    let transport = rmcp::transport::StreamableHttpClientTransport::with_client(
        common::http_client(),
        rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig::with_uri(url),
    );
    let client = if modern_lifecycle {
        rmcp::service::ClientServiceExt::serve_with_lifecycle(declaring(), transport, modern())
            .await
            .expect("MCP discover")
    } else {
        declaring().serve(transport).await.expect("MCP initialize")
    };
    let tools = client.list_all_tools().await.unwrap();
    let linked = tools
        .iter()
        .find(|t| t.name == "create_task")
        .and_then(|t| t.meta.as_ref())
        .is_some_and(|meta| meta.0.contains_key("ui"));
    client.cancel().await.unwrap();
    linked
}

/// Over HTTP the view follows what each request can show of its client: a session
/// remembers the client's capabilities, a 2026-07-28 request carries its own, and a plain
/// stateless request of an older revision carries none, so it sees no view.
#[tokio::test]
async fn over_http_the_view_is_offered_where_the_request_shows_the_declaration() {
    let fake = FakeHandinger::start().await;
    let sessions = start_http(&fake.base_url, &[]).await;
    assert!(
        linked_over_http(sessions.url("/mcp"), false).await,
        "session"
    );
    let stateless = start_http(&fake.base_url, &["--stateless"]).await;
    assert!(
        linked_over_http(stateless.url("/mcp"), true).await,
        "stateless, 2026-07-28"
    );
    assert!(
        !linked_over_http(stateless.url("/mcp"), false).await,
        "stateless before 2026-07-28: no request carries the declaration"
    );
}

/// The interpreter with the SDK and Playwright, or a failure naming the installer.
fn python() -> PathBuf {
    if let Some(python) = std::env::var_os("HANDINGER_MCP_TEST_PYTHON") {
        return python.into();
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/venv-clients/bin/python");
    assert!(
        venv.exists(),
        "the MCP Python SDK and Playwright are not installed: run `bash .ci/python-clients.sh` \
         (it installs them into .ci/venv-clients), or point HANDINGER_MCP_TEST_PYTHON at an \
         interpreter that has them"
    );
    venv
}

fn chromium() {
    assert!(
        Path::new("/usr/bin/chromium").exists(),
        "Chromium is not installed: run `bash .ci/browser.sh` (Debian's chromium)"
    );
}

#[tokio::test]
async fn task_view_in_chromium_follows_the_task_renders_it_safely_and_sends_one_follow_up() {
    let python = python();
    chromium();
    let fake = FakeHandinger::start().await;
    // The scenario's first create_task meets this: the failed turn's view.
    fake.push_fault(Fault::Status {
        status: 500,
        message: "upstream exploded".into(),
        retry_after: None,
    });
    // A short wait, so the slow turn comes back "running" and the view follows it.
    fake.add_described_worker("wrk_checker-1", "Checker", "Checks claims.");
    // The admin toolset, for the view's archive action; a named worker, for ask_checker.
    let bridge = start_http(
        &fake.base_url,
        &[
            "--max-wait",
            "1",
            "--toolsets",
            "tasks,admin",
            "--worker",
            "checker=wrk_checker-1",
        ],
    )
    .await;
    let screenshots = if std::env::var_os("UPDATE_SCREENSHOTS").is_some() {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/app-view")
    } else {
        Path::new(env!("CARGO_TARGET_TMPDIR")).join("app-view")
    };
    let shots: Vec<_> = ["failed", "running", "completed", "follow-up"]
        .into_iter()
        .flat_map(|state| ["light", "dark"].map(|theme| format!("task-view-{state}-{theme}.png")))
        .map(|name| screenshots.join(name))
        .collect();
    // Gone before the run, so the check below sees this run's screenshots, not a past one's.
    for shot in &shots {
        let _ = std::fs::remove_file(shot);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/app_view.py");
    let mut cmd = tokio::process::Command::new(python);
    cmd.arg(&script)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::var_os("HOME").unwrap_or_default())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("MCP_URL", bridge.url("/mcp"))
        .env("SCREENSHOT_DIR", &screenshots)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(SCENARIO_TIMEOUT, cmd.output())
        .await
        .expect("the browser scenario hung")
        .expect("run python");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let task_id = stdout
        .lines()
        .find_map(|line| line.strip_prefix("app-view: ok "))
        .unwrap_or_else(|| {
            panic!(
                "the browser scenario failed ({}):\n{stdout}\n{stderr}\n{}",
                output.status,
                bridge.log()
            )
        })
        .trim()
        .to_owned();

    // The follow-up from the box is the task's second turn, sent once; the view posted
    // nothing else: the failed POST, the first turn, the follow-up, and the ask_checker
    // task's two turns (the second from its view's box).
    let turns = fake.turns(&task_id);
    assert_eq!(turns.len(), 2, "{turns:?}");
    assert_eq!(turns[1].input, "And tomorrow?");
    let posts: Vec<_> = fake
        .posts()
        .into_iter()
        .filter(|p| p.path == "/api/tasks")
        .collect();
    assert_eq!(posts.len(), 5, "{posts:?}");
    let asked: Vec<_> = fake
        .all_turns()
        .into_values()
        .filter(|turns| turns[0].input == "Check this claim")
        .collect();
    assert_eq!(asked.len(), 1, "one ask_checker task");
    assert_eq!(asked[0].len(), 2, "its follow-up is its second turn");
    let archived: Vec<_> = fake
        .writes()
        .into_iter()
        .filter(|w| w.method == "DELETE")
        .map(|w| w.path)
        .collect();
    assert_eq!(archived, [format!("/api/tasks/{task_id}")]);
    for shot in &shots {
        assert!(shot.exists(), "no screenshot {}", shot.display());
    }
}
