//! Shared test harness: the real `handinger-mcp` binary driven by rmcp's own client over
//! stdio (here), and beside it:
//! - [`fake`]: the fake Handinger API (also served by the benchmark);
//! - [`http`]: the binary in `http` mode;
//! - [`rpc`]: raw JSON-RPC for tests that speak MCP by hand (also the benchmark's client);
//! - [`stderr`]: a child's stderr, collected as it arrives;
//! - [`snapshots`]: the reviewed `tools/list`, one file per tool;
//! - [`redis`]: a real Redis server for the shared-store tests;
//! - [`poll`]: waiting, bounded, for something that comes true in its own time.

#![allow(dead_code)]

pub mod fake;
pub mod http;
pub mod poll;
pub mod redis;
pub mod rpc;
pub mod snapshots;
pub mod stderr;

use std::process::Stdio;

use rmcp::model::{CallToolRequestParams, CallToolResult, JsonObject};
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceExt};
use serde_json::Value;
use tokio::process::Command;

#[allow(unused_imports)] // not every test file injects faults
pub use fake::{API_KEY, FakeHandinger, Fault};

pub const BINARY: &str = env!("CARGO_BIN_EXE_handinger-mcp");

pub type Client = RunningService<RoleClient, ()>;

/// A reqwest client for tests that speak HTTP by hand. reqwest is built without a TLS
/// crypto provider of its own, so one is installed first, as the binary does.
pub fn http_client() -> reqwest::Client {
    http_client_builder().build().unwrap()
}

/// [`http_client`]'s builder, for tests that set more on it.
pub fn http_client_builder() -> reqwest::ClientBuilder {
    handinger_mcp::handinger::redirect::use_ring_crypto();
    reqwest::Client::builder()
}

/// A running bridge, its rmcp client, and everything it wrote to stderr so far.
pub struct Bridge {
    pub client: Client,
    pub stderr: stderr::Log,
    pub pid: u32,
}

/// The shared store's secret every test replica is given (`--store` needs one).
pub const STORE_SECRET: &str = "test-store-secret-3c9a51f0e2b7";

pub fn command(base_url: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(BINARY);
    cmd.args(args)
        .env_clear()
        .env("HANDINGER_API_KEY", API_KEY)
        .env("HANDINGER_BASE_URL", base_url)
        .env("HANDINGER_MCP_STORE_SECRET", STORE_SECRET)
        .env("RUST_LOG", "debug");
    cmd
}

pub async fn start(base_url: &str, args: &[&str]) -> Bridge {
    start_with(command(base_url, args)).await
}

pub async fn start_with(cmd: Command) -> Bridge {
    let (transport, stderr_pipe) = TokioChildProcess::builder(cmd)
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn handinger-mcp");
    let pid = transport.id().expect("child pid");
    let (stderr, _reader) = stderr::collect(stderr_pipe.expect("stderr is piped"));
    let client = ().serve(transport).await.expect("MCP initialize");
    Bridge {
        client,
        stderr,
        pid,
    }
}

/// The 2026-07-28 lifecycle for rmcp's client: `server/discover`, then self-contained
/// requests. MCP task handles exist only there.
pub fn modern() -> rmcp::service::ClientLifecycleMode {
    rmcp::service::ClientLifecycleMode::Discover {
        preferred_versions: vec![rmcp::model::ProtocolVersion::V_2026_07_28],
    }
}

/// Runs the binary to completion (commands, start-up failures), with stdin closed.
pub async fn run_to_completion(mut cmd: Command) -> std::process::Output {
    cmd.stdin(Stdio::null());
    tokio::time::timeout(std::time::Duration::from_secs(60), cmd.output())
        .await
        .expect("the command finishes instead of hanging")
        .expect("the binary runs")
}

/// Polls `tasks/get` until the MCP task ends, and returns its completed result.
pub async fn completed_mcp_task(client: &rmcp::Peer<RoleClient>, task_id: &str) -> JsonObject {
    use rmcp::model::TaskPayload;
    let payload = finished_mcp_task(client, task_id).await;
    let TaskPayload::Completed { result } = payload else {
        panic!("expected completed, got {payload:?}");
    };
    result
}

/// Polls `tasks/get` until the MCP task ends; its payload.
pub async fn finished_mcp_task(
    client: &rmcp::Peer<RoleClient>,
    task_id: &str,
) -> rmcp::model::TaskPayload {
    use rmcp::model::GetTaskParams;
    let every = std::time::Duration::from_millis(100);
    poll::until(
        &format!("task {task_id} never ended"),
        every,
        || async move {
            let got = client
                .get_task(GetTaskParams::new(task_id.to_owned()))
                .await
                .unwrap();
            if got.task.status().is_terminal() {
                Ok(got.task.payload)
            } else {
                Err(format!("{:?}", got.task.status()))
            }
        },
    )
    .await
}

/// Sends signal `name` (`STOP`, `CONT`, `KILL`…) to process `pid` with kill(1): the faults
/// the replica and store tests inject are real signals.
pub fn signal(pid: u32, name: &str) {
    let status = std::process::Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status()
        .expect("kill(1) runs");
    assert!(status.success(), "kill -{name} {pid} failed");
}

/// Peak resident memory of a process, from /proc (Linux), in bytes.
pub fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

pub fn args(value: Value) -> JsonObject {
    value
        .as_object()
        .cloned()
        .expect("arguments must be an object")
}

pub async fn call(client: &Client, tool: &str, arguments: Value) -> CallToolResult {
    let mut params = CallToolRequestParams::new(tool.to_owned());
    params.arguments = Some(args(arguments));
    client.call_tool(params).await.expect("tools/call answered")
}

/// A whole number from the environment variable `name`, or `default`: how a longer soak or
/// chaos run is sized without editing the test.
pub fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// All text blocks of a result, joined.
pub fn text(result: &CallToolResult) -> String {
    result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.clone()))
        .collect::<Vec<_>>()
        .join("\n")
}

pub fn is_error(result: &CallToolResult) -> bool {
    result.is_error == Some(true)
}

pub fn structured(result: &CallToolResult) -> &Value {
    result
        .structured_content
        .as_ref()
        .expect("structured content")
}

/// `get_task` of a task whose answer files are being copied in the background
/// (`--download-dir`, `--inline-images`), once no copy is pending any more.
pub async fn copies_settled(client: &Client, task_id: &str) -> CallToolResult {
    for _ in 0..600 {
        let result = call(client, "get_task", serde_json::json!({"taskId": task_id})).await;
        if !text(&result).contains("still being fetched") {
            return result;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    panic!("the answer files of {task_id} were still being fetched after 30 s");
}
