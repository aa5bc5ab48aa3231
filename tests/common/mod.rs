//! Shared test harness: the fake Handinger API and the real `handinger-mcp` binary driven
//! by rmcp's own client over stdio.

#![allow(dead_code)]

pub mod fake;
pub mod http;

use std::process::Stdio;
use std::sync::{Arc, Mutex};

use rmcp::model::{CallToolRequestParams, CallToolResult, JsonObject};
use rmcp::service::RunningService;
use rmcp::transport::TokioChildProcess;
use rmcp::{RoleClient, ServiceExt};
use serde_json::Value;
use tokio::io::AsyncReadExt;
use tokio::process::Command;

pub use fake::{API_KEY, FakeHandinger, Fault};

pub const BINARY: &str = env!("CARGO_BIN_EXE_handinger-mcp");

pub type Client = RunningService<RoleClient, ()>;

/// A running bridge, its rmcp client, and everything it wrote to stderr so far.
pub struct Bridge {
    pub client: Client,
    pub stderr: Arc<Mutex<String>>,
}

pub fn command(base_url: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(BINARY);
    cmd.args(args)
        .env_clear()
        .env("HANDINGER_API_KEY", API_KEY)
        .env("HANDINGER_BASE_URL", base_url)
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
    let stderr = Arc::new(Mutex::new(String::new()));
    if let Some(mut pipe) = stderr_pipe {
        let sink = stderr.clone();
        tokio::spawn(async move {
            let mut buf = vec![0u8; 8192];
            while let Ok(n) = pipe.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
    }
    let client = ().serve(transport).await.expect("MCP initialize");
    Bridge { client, stderr }
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
