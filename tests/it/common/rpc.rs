//! Raw JSON-RPC, for the tests that speak MCP by hand and for the benchmark
//! (`benches/bridge.rs` includes this file): the messages, their framing (one JSON text a
//! line on stdio; a POST with the Streamable HTTP headers), picking the answer to a request
//! out of what comes back, and a stdio client on those pieces in two flavours: [`RawStdio`]
//! (async, every read bounded: for tests) and [`BlockingStdio`] (blocking reads and writes
//! on the child's pipes: for the benchmark, so that no scheduler hop lands inside a timed
//! call).
//!
//! Tests that must send something malformed write their lines by hand.

use std::time::Duration;

use serde_json::{Value, json};

pub fn request(id: impl Into<Value>, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id.into(), "method": method, "params": params})
}

pub fn notification(method: &str) -> Value {
    json!({"jsonrpc": "2.0", "method": method})
}

/// An `initialize` request from a client with no capabilities.
pub fn initialize(id: impl Into<Value>, protocol_version: &str, client: &str) -> Value {
    request(
        id,
        "initialize",
        initialize_params(protocol_version, client),
    )
}

pub fn initialize_params(protocol_version: &str, client: &str) -> Value {
    json!({"protocolVersion": protocol_version, "capabilities": {},
           "clientInfo": {"name": client, "version": "1"}})
}

/// The notification that ends the handshake, after `initialize` is answered.
pub fn initialized() -> Value {
    notification("notifications/initialized")
}

pub fn tool_call(id: impl Into<Value>, tool: &str, arguments: Value) -> Value {
    request(
        id,
        "tools/call",
        json!({"name": tool, "arguments": arguments}),
    )
}

/// A message framed for stdio: its JSON and a newline.
pub fn line(message: &Value) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(message).expect("JSON");
    bytes.push(b'\n');
    bytes
}

/// Whether `message` is the response to request `id`, not a request or notification of
/// the server's.
pub fn answers(message: &Value, id: &Value) -> bool {
    message.get("method").is_none() && message.get("id") == Some(id)
}

/// What a Streamable HTTP client accepts: a JSON answer or an event stream.
pub const ACCEPT: &str = "application/json, text/event-stream";

/// A POST to an MCP endpoint with the headers a Streamable HTTP client sends; the caller
/// adds the body and any session or protocol-version header.
pub fn post(http: &reqwest::Client, url: &str) -> reqwest::RequestBuilder {
    http.post(url)
        .header("content-type", "application/json")
        .header("accept", ACCEPT)
}

/// The protocol version the raw HTTP clients announce once initialized.
pub const HTTP_PROTOCOL: &str = "2025-11-25";

/// A POST of `body` once initialized: [`post`]'s headers, `mcp-protocol-version`
/// ([`HTTP_PROTOCOL`]) and, in a session, the session's id.
pub fn post_initialized(
    http: &reqwest::Client,
    url: &str,
    session: Option<&str>,
    body: &Value,
) -> reqwest::RequestBuilder {
    let mut request = post(http, url).header("mcp-protocol-version", HTTP_PROTOCOL);
    if let Some(session) = session {
        request = request.header("mcp-session-id", session);
    }
    request.json(body)
}

/// The JSON-RPC answer in a Streamable HTTP response body: the body itself when it is
/// JSON, else the first `data:` line of its event stream that answers `id` (with `None`,
/// the first that is a result or an error).
pub fn http_answer(body: &str, id: Option<&Value>) -> Option<Value> {
    if let Ok(answer) = serde_json::from_str::<Value>(body) {
        return Some(answer);
    }
    body.lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .filter_map(|data| serde_json::from_str::<Value>(data.trim()).ok())
        .find(|message| match id {
            Some(id) => message["id"] == *id,
            None => message.get("result").is_some() || message.get("error").is_some(),
        })
}

/// An async JSON-RPC client on a child's stdio, one line each way; the child is killed
/// when this is dropped.
pub struct RawStdio {
    pub child: tokio::process::Child,
    /// `None` once closed.
    stdin: Option<tokio::process::ChildStdin>,
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::process::ChildStdout>>,
    /// Longest wait for a line: a hang fails instead of stalling the suite.
    patience: Duration,
}

impl RawStdio {
    /// Spawns `cmd` with its stdin and stdout piped (stderr discarded) and completes the
    /// handshake with request id 1.
    pub async fn start(
        cmd: tokio::process::Command,
        protocol_version: &str,
        patience: Duration,
    ) -> Self {
        let mut raw = Self::spawn(cmd, patience);
        raw.send(&initialize(1, protocol_version, "raw")).await;
        let answer = raw.answer_to(1).await;
        assert!(answer.get("result").is_some(), "initialize: {answer}");
        raw.send(&initialized()).await;
        raw
    }

    /// Spawns `cmd` with its stdin and stdout piped (stderr discarded), sending nothing.
    pub fn spawn(mut cmd: tokio::process::Command, patience: Duration) -> Self {
        use tokio::io::AsyncBufReadExt;
        let mut child = cmd
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn handinger-mcp");
        let stdin = child.stdin.take();
        let lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        RawStdio {
            child,
            stdin,
            lines,
            patience,
        }
    }

    pub async fn send(&mut self, message: &Value) {
        self.send_line(&message.to_string()).await;
    }

    /// Sends `text` as one line, as it is: it need not be valid JSON-RPC.
    pub async fn send_line(&mut self, text: &str) {
        use tokio::io::AsyncWriteExt;
        let stdin = self.stdin.as_mut().expect("stdin is still open");
        stdin.write_all(text.as_bytes()).await.unwrap();
        stdin.write_all(b"\n").await.unwrap();
    }

    /// Closes the child's stdin: the end of the session.
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// The next message on stdout, `None` once it closes. Anything on stdout that is not
    /// JSON fails the test: stdout carries only JSON-RPC.
    pub async fn next_message(&mut self) -> Option<Value> {
        let line = tokio::time::timeout(self.patience, self.lines.next_line())
            .await
            .expect("a message or the end of stdout instead of silence")
            .expect("read stdout")?;
        let message = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("non-JSON on stdout: {line:?} ({e})"));
        Some(message)
    }

    /// The next message answering `id` (skipping notifications and other answers).
    pub async fn answer_to(&mut self, id: impl Into<Value>) -> Value {
        let id = id.into();
        loop {
            let message = self
                .next_message()
                .await
                .expect("the server is still running");
            if answers(&message, &id) {
                return message;
            }
        }
    }

    /// Waits (within the patience) for the child to exit.
    pub async fn exit_status(&mut self) -> std::process::ExitStatus {
        tokio::time::timeout(self.patience, self.child.wait())
            .await
            .expect("the server exits")
            .expect("wait for the server")
    }
}

/// A blocking JSON-RPC client on a child's stdio, one line each way, numbering its
/// requests from 1.
pub struct BlockingStdio {
    stdin: std::process::ChildStdin,
    stdout: std::io::BufReader<std::process::ChildStdout>,
    next_id: u64,
    /// Reused for every line read.
    line: String,
}

impl BlockingStdio {
    /// Takes the child's piped stdin and stdout. Dropping the client closes its stdin.
    pub fn new(child: &mut std::process::Child) -> Self {
        BlockingStdio {
            stdin: child.stdin.take().expect("stdin"),
            stdout: std::io::BufReader::new(child.stdout.take().expect("stdout")),
            next_id: 0,
            line: String::new(),
        }
    }

    /// Sends a request and reads until its response; returns the parsed response.
    pub fn request(&mut self, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        self.send(&request(id, method, params));
        self.read_response(&Value::from(id))
    }

    pub fn send(&mut self, message: &Value) {
        use std::io::Write;
        self.stdin
            .write_all(&line(message))
            .expect("write to the bridge");
        self.stdin.flush().expect("flush to the bridge");
    }

    /// Reads until the response to `id`, skipping notifications and lines that are not JSON.
    fn read_response(&mut self, id: &Value) -> Value {
        use std::io::BufRead;
        loop {
            self.line.clear();
            let n = self
                .stdout
                .read_line(&mut self.line)
                .expect("read from the bridge");
            assert!(n > 0, "the bridge closed stdout");
            let message: Value = match serde_json::from_str(&self.line) {
                Ok(message) => message,
                Err(_) => continue,
            };
            if answers(&message, id) {
                return message;
            }
        }
    }

    /// `initialize` (which must succeed), then `notifications/initialized`.
    pub fn initialize(&mut self, protocol_version: &str, client: &str) {
        let answer = self.request("initialize", initialize_params(protocol_version, client));
        assert!(answer.get("result").is_some(), "initialize: {answer}");
        self.send(&initialized());
    }
}

/// The text parts of a raw `tools/call` result, one a line.
pub fn result_text(result: &Value) -> String {
    result["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Whether a raw `tools/call` result is a tool error.
pub fn is_error_result(result: &Value) -> bool {
    result["isError"] == json!(true)
}
