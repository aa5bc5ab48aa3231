//! End to end over HTTP: the real binary in `http` mode, rmcp's Streamable HTTP client, raw
//! HTTP for the transport's edges (legacy SSE, refusals, limits), and the fake Handinger API.

use crate::common;

use std::time::Duration;

use common::http::{HttpBridge, run_to_exit, start_http, start_http_with};
use common::*;
use futures::StreamExt;
use serde_json::{Value, json};

const TOKEN: &str = "test-token-0123456789abcdef";
const USER_A: &str = "hdg_live_user_a_111";
const USER_B: &str = "hdg_live_user_b_222";
/// Bounds every wait on the server, so a hang fails instead of stalling the suite.
const PATIENCE: Duration = Duration::from_secs(30);

fn http() -> reqwest::Client {
    common::http_client()
}

/// A JSON-RPC POST to `/mcp` with the headers a Streamable HTTP client sends.
fn rpc(bridge: &HttpBridge, body: Value) -> reqwest::RequestBuilder {
    common::rpc::post(&http(), &bridge.url("/mcp")).json(&body)
}

/// A JSON-RPC POST to `/mcp` once initialized (in `session`, if any).
fn rpc_initialized(
    bridge: &HttpBridge,
    session: Option<&str>,
    body: Value,
) -> reqwest::RequestBuilder {
    common::rpc::post_initialized(&http(), &bridge.url("/mcp"), session, &body)
}

/// A `tools/call` POST to `/mcp` once initialized, outside any session.
fn call_initialized(
    bridge: &HttpBridge,
    id: u64,
    tool: &str,
    arguments: Value,
) -> reqwest::RequestBuilder {
    rpc_initialized(bridge, None, call_body(id, tool, arguments))
}

fn initialize_body() -> Value {
    common::rpc::initialize(1, "2025-11-25", "raw-test")
}

fn call_body(id: u64, tool: &str, arguments: Value) -> Value {
    common::rpc::tool_call(id, tool, arguments)
}

/// The JSON-RPC answer in a response, whether it came as JSON or as an SSE stream.
async fn rpc_answer(response: reqwest::Response) -> Value {
    let text = tokio::time::timeout(PATIENCE, response.text())
        .await
        .expect("answer in time")
        .unwrap();
    common::rpc::http_answer(&text, None).unwrap_or_else(|| panic!("no JSON-RPC answer in: {text}"))
}

fn sse_field(event: &str, name: &str) -> Option<String> {
    let prefix = format!("{name}:");
    let values: Vec<&str> = event
        .lines()
        .filter_map(|line| line.strip_prefix(&prefix))
        .map(|v| v.strip_prefix(' ').unwrap_or(v))
        .collect();
    (!values.is_empty()).then(|| values.join("\n"))
}

async fn metrics(bridge: &HttpBridge, bearer: Option<&str>) -> String {
    let mut request = http().get(bridge.url("/metrics"));
    if let Some(token) = bearer {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.text().await.unwrap()
}

#[tokio::test]
async fn streamable_http_session_lists_tools_and_runs_tasks() {
    let fake = FakeHandinger::start().await;
    let bridge = start_http(&fake.base_url, &[]).await;
    let client = bridge.client(None, &[]).await;

    let info = client.peer_info().expect("server info");
    assert_eq!(info.server_info.as_ref().unwrap().name, "handinger-mcp");
    assert!(info.capabilities.tools.is_some());
    assert!(
        info.instructions
            .as_deref()
            .unwrap_or("")
            .contains("taskId")
    );

    let tools = client.list_all_tools().await.unwrap();
    let names: Vec<_> = tools.iter().map(|t| t.name.to_string()).collect();
    assert_eq!(names, ["create_task", "get_task"]);

    let created = call(
        &client,
        "create_task",
        json!({"input": "Weather in Barcelona?"}),
    )
    .await;
    assert!(!is_error(&created), "{}", text(&created));
    assert!(text(&created).starts_with("answer to: Weather in Barcelona? (turn 1)"));
    let task_id = structured(&created)["taskId"].as_str().unwrap().to_owned();

    let status = call(&client, "get_task", json!({"taskId": task_id})).await;
    assert!(!is_error(&status), "{}", text(&status));
    assert_eq!(structured(&status)["totals"]["turnCount"], 1);

    let posts = fake.posts();
    assert_eq!(posts.len(), 1);
    assert_eq!(
        posts[0].authorization.as_deref(),
        Some(format!("Bearer {API_KEY}").as_str()),
        "without --key-from-request the server's own key is used"
    );

    let text = metrics(&bridge, None).await;
    assert!(
        text.contains("handinger_mcp_tool_calls_total{tool=\"create_task\",outcome=\"ok\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("handinger_mcp_tool_calls_total{tool=\"get_task\",outcome=\"ok\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("handinger_mcp_upstream_request_duration_seconds_count{method=\"POST\",outcome=\"ok\"} 1"),
        "{text}"
    );
    assert!(text.contains("handinger_mcp_turns_in_flight 0"), "{text}");
    assert!(
        text.contains("handinger_mcp_open_sessions{transport=\"streamable_http\"} 1"),
        "{text}"
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn upstream_failures_come_back_as_tool_errors_and_are_counted() {
    let fake = FakeHandinger::start().await;
    fake.push_fault(Fault::Status {
        status: 403,
        message: "No access to this worker".into(),
        retry_after: None,
    });
    let bridge = start_http(&fake.base_url, &[]).await;
    let client = bridge.client(None, &[]).await;
    let result = call(&client, "create_task", json!({"input": "forbidden"})).await;
    assert!(is_error(&result));
    assert!(
        text(&result).contains("No access to this worker"),
        "{}",
        text(&result)
    );
    let text = metrics(&bridge, None).await;
    assert!(
        text.contains("handinger_mcp_tool_calls_total{tool=\"create_task\",outcome=\"error\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("handinger_mcp_upstream_request_duration_seconds_count{method=\"POST\",outcome=\"error\"} 1"),
        "{text}"
    );
    client.cancel().await.unwrap();
}

#[tokio::test]
async fn stateless_mode_answers_plain_json_without_sessions() {
    let fake = FakeHandinger::start().await;
    let bridge = start_http(&fake.base_url, &["--stateless"]).await;

    let response = rpc(&bridge, initialize_body()).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("mcp-session-id").is_none());
    assert_eq!(response.headers()["content-type"], "application/json");
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["result"]["serverInfo"]["name"], "handinger-mcp");

    // Every request stands alone: a tool call needs no session and answers in one JSON body.
    let response = call_initialized(&bridge, 2, "create_task", json!({"input": "hello"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let answer: Value = response.json().await.unwrap();
    let task_id = answer["result"]["structuredContent"]["taskId"]
        .as_str()
        .expect("taskId")
        .to_owned();

    // So any replica can answer a lookup: get_task goes to Handinger, not to a session.
    let client = bridge.client(None, &[]).await;
    let status = call(&client, "get_task", json!({"taskId": task_id})).await;
    assert!(!is_error(&status), "{}", text(&status));
    assert_eq!(structured(&status)["turns"][0]["input"], "hello");

    let response = http().get(bridge.url("/sse")).send().await.unwrap();
    assert_eq!(response.status(), 404);
    assert!(response.text().await.unwrap().contains("--stateless"));
}

#[tokio::test]
async fn discover_of_the_2026_07_28_era_needs_no_session() {
    let fake = FakeHandinger::start().await;
    let bridge = start_http(&fake.base_url, &[]).await;
    let meta = json!({
        "io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientInfo": {"name": "discover-test", "version": "1"},
        "io.modelcontextprotocol/clientCapabilities": {}
    });

    let response = rpc(
        &bridge,
        json!({"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": meta}}),
    )
    .header("mcp-protocol-version", "2026-07-28")
    .header("mcp-method", "server/discover")
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers().get("mcp-session-id").is_none());
    let answer = rpc_answer(response).await;
    let result = &answer["result"];
    let versions: Vec<&str> = result["supportedVersions"]
        .as_array()
        .expect("supportedVersions")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(
        versions.contains(&"2026-07-28") && versions.contains(&"2025-11-25"),
        "{versions:?}"
    );
    assert!(result["capabilities"]["tools"].is_object(), "{answer}");
    assert_eq!(
        result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "handinger-mcp"
    );

    // A self-contained request of the same era lists the tools, still without a session.
    let response = rpc(
        &bridge,
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list", "params": {"_meta": meta}}),
    )
    .header("mcp-protocol-version", "2026-07-28")
    .header("mcp-method", "tools/list")
    .send()
    .await
    .unwrap();
    assert_eq!(response.status(), 200);
    let answer = rpc_answer(response).await;
    assert_eq!(
        answer["result"]["tools"][0]["name"], "create_task",
        "{answer}"
    );
}

/// Reads server-sent events from a raw `GET /sse`, one at a time.
struct EventReader {
    stream: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

impl EventReader {
    /// The next event as (event name, data), skipping keep-alive comments.
    async fn next(&mut self) -> (String, String) {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(data) = sse_field(&block, "data") {
                    let name = sse_field(&block, "event").unwrap_or_else(|| "message".into());
                    return (name, data);
                }
                continue;
            }
            let chunk = tokio::time::timeout(PATIENCE, self.stream.next())
                .await
                .expect("an event in time")
                .expect("the event stream is open")
                .unwrap();
            self.buffer
                .push_str(&String::from_utf8_lossy(&chunk).replace("\r\n", "\n"));
        }
    }

    /// The next `message` event, parsed.
    async fn message(&mut self) -> Value {
        let (name, data) = self.next().await;
        assert_eq!(name, "message", "{data}");
        serde_json::from_str(&data).unwrap()
    }
}

#[tokio::test]
async fn legacy_sse_round_trip() {
    let fake = FakeHandinger::start().await;
    let bridge = start_http(&fake.base_url, &[]).await;

    let response = http()
        .get(bridge.url("/sse"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut events = EventReader {
        stream: response.bytes_stream().boxed(),
        buffer: String::new(),
    };
    let (name, endpoint) = events.next().await;
    assert_eq!(name, "endpoint");
    assert!(endpoint.starts_with("/message?sessionId="), "{endpoint}");
    let post = |body: Value| {
        http()
            .post(bridge.url(&endpoint))
            .header("content-type", "application/json")
            .json(&body)
            .send()
    };

    let mut init = initialize_body();
    init["params"]["protocolVersion"] = json!("2024-11-05");
    assert_eq!(post(init).await.unwrap().status(), 202);
    let answer = events.message().await;
    assert_eq!(answer["id"], 1);
    assert_eq!(answer["result"]["protocolVersion"], "2024-11-05");
    assert_eq!(answer["result"]["serverInfo"]["name"], "handinger-mcp");
    let initialized = common::rpc::initialized();
    assert_eq!(post(initialized).await.unwrap().status(), 202);

    let status = metrics(&bridge, None).await;
    assert!(
        status.contains("handinger_mcp_open_sessions{transport=\"sse\"} 1"),
        "{status}"
    );

    let call = call_body(2, "create_task", json!({"input": "over SSE"}));
    assert_eq!(post(call).await.unwrap().status(), 202);
    let answer = events.message().await;
    assert_eq!(answer["id"], 2);
    let result = &answer["result"];
    assert_ne!(result["isError"], true, "{answer}");
    assert!(
        result["structuredContent"]["taskId"]
            .as_str()
            .unwrap()
            .starts_with("tsk_")
    );
    assert_eq!(fake.posts()[0].body["input"], "over SSE");

    let response = http()
        .post(bridge.url("/message?sessionId=nope"))
        .header("content-type", "application/json")
        .json(&json!({"jsonrpc": "2.0", "id": 3, "method": "ping"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    assert!(response.text().await.unwrap().contains("GET /sse"));
}

#[tokio::test]
async fn a_bearer_token_guards_every_mcp_endpoint_and_metrics() {
    let fake = FakeHandinger::start().await;
    // At trace level, so the log check at the end covers everything that could print.
    let mut cmd = command(
        &fake.base_url,
        &["http", "--listen", "127.0.0.1:0", "--auth-token", TOKEN],
    );
    cmd.env("RUST_LOG", "trace");
    let bridge = start_http_with(cmd).await;

    let response = rpc(&bridge, initialize_body()).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert!(
        response.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("Authorization: Bearer")
    );

    let response = rpc(&bridge, initialize_body())
        .bearer_auth("test-token-0123456789abcdeX")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    for path in ["/sse", "/metrics"] {
        let response = http().get(bridge.url(path)).send().await.unwrap();
        assert_eq!(response.status(), 401, "{path}");
    }
    let response = http().get(bridge.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200, "probes need no token");

    assert!(
        bridge
            .try_client(Some("wrong-token-0123456789"), &[])
            .await
            .is_err()
    );
    let client = bridge.client(Some(TOKEN), &[]).await;
    let result = call(&client, "create_task", json!({"input": "with a token"})).await;
    assert!(!is_error(&result), "{}", text(&result));
    // Every refusal above is counted under its reason, whichever layer refused it.
    let text = metrics(&bridge, Some(TOKEN)).await;
    let refused: u64 = text
        .lines()
        .find_map(|line| line.strip_prefix("handinger_mcp_http_rejected_total{reason=\"auth\"} "))
        .and_then(|count| count.parse().ok())
        .unwrap_or_else(|| panic!("no auth refusals counted: {text}"));
    assert!(
        refused >= 5,
        "5 requests were refused for their token: {text}"
    );

    client.cancel().await.unwrap();
    assert!(
        !bridge.log().contains(TOKEN),
        "the token never reaches the log"
    );
}

#[tokio::test]
async fn foreign_hosts_and_origins_are_refused() {
    let fake = FakeHandinger::start().await;
    let bridge = start_http(
        &fake.base_url,
        &[
            "--allowed-host",
            "mcp.example.com",
            "--allowed-origin",
            "https://app.example.com",
        ],
    )
    .await;
    let port = bridge.authority().rsplit(':').next().unwrap().to_owned();

    let status = |host: Option<String>, origin: Option<&str>| {
        let mut request = rpc(&bridge, initialize_body());
        if let Some(host) = host {
            request = request.header("host", host);
        }
        if let Some(origin) = origin {
            request = request.header("origin", origin);
        }
        async move { request.send().await.unwrap().status().as_u16() }
    };

    assert_eq!(status(Some("evil.example.com".into()), None).await, 403);
    assert_eq!(
        status(Some(format!("evil.example.com:{port}")), None).await,
        403
    );
    assert_eq!(status(None, Some("http://evil.example.com")).await, 403);
    assert_eq!(status(None, Some("null")).await, 403);
    assert_eq!(status(Some(format!("localhost:{port}")), None).await, 200);
    assert_eq!(status(Some("mcp.example.com".into()), None).await, 200);
    let local_origin = format!("http://localhost:{port}");
    assert_eq!(status(None, Some(&local_origin)).await, 200);
    assert_eq!(status(None, Some("https://app.example.com")).await, 200);

    let response = http()
        .get(bridge.url("/sse"))
        .header("origin", "http://evil.example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        403,
        "the legacy transport is guarded too"
    );
    assert!(response.text().await.unwrap().contains("--allowed-origin"));
}

#[tokio::test]
async fn bodies_over_the_cap_get_413() {
    let fake = FakeHandinger::start().await;
    let bridge = start_http(&fake.base_url, &["--max-body-bytes", "2048"]).await;
    let big = call_body(1, "create_task", json!({"input": "x".repeat(4096)}));
    let response = rpc(&bridge, big).send().await.unwrap();
    assert_eq!(response.status(), 413);
    assert!(response.text().await.unwrap().contains("--max-body-bytes"));
    assert!(fake.posts().is_empty());
}

#[tokio::test]
async fn a_client_over_its_rate_limit_gets_429_with_retry_after() {
    let fake = FakeHandinger::start().await;
    let bridge = start_http(&fake.base_url, &["--rate-limit", "2"]).await;
    for _ in 0..2 {
        let response = rpc(&bridge, initialize_body()).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }
    let response = rpc(&bridge, initialize_body()).send().await.unwrap();
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry_after), "{retry_after}");
    assert!(response.text().await.unwrap().contains("--rate-limit"));
    let response = http().get(bridge.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200, "probes are not rate limited");
}

#[tokio::test]
async fn tool_calls_beyond_the_concurrency_bound_get_503() {
    let fake = FakeHandinger::start().await;
    fake.set_turn_duration(Duration::from_secs(3));
    let bridge = start_http(
        &fake.base_url,
        &["--stateless", "--max-concurrent-calls", "1"],
    )
    .await;
    let slow =
        tokio::spawn(call_initialized(&bridge, 1, "create_task", json!({"input": "slow"})).send());
    wait_for(|| fake.posts().len() == 1).await;

    let response = call_initialized(&bridge, 2, "get_task", json!({"taskId": "tsk_1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("--max-concurrent-calls")
    );
    let list = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/list"});
    let response = rpc_initialized(&bridge, None, list).send().await.unwrap();
    assert_eq!(response.status(), 200, "only tool calls are bounded");

    let first = slow.await.unwrap().unwrap();
    assert_eq!(first.status(), 200);
    assert!(rpc_answer(first).await["result"]["structuredContent"]["taskId"].is_string());
    // Its permit went back with its answer.
    let response = call_initialized(&bridge, 4, "get_task", json!({"taskId": "tsk_1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

async fn wait_for(condition: impl FnMut() -> bool) {
    poll::until_true("condition never held", condition).await
}

#[tokio::test]
async fn per_user_keys_reach_handinger_and_the_server_key_stays_unused() {
    let fake = FakeHandinger::start().await;
    fake.accept_key(USER_A);
    fake.accept_key(USER_B);
    // The harness still exports HANDINGER_API_KEY: it must not be used. Trace logging is
    // on so that the log check at the end covers everything the server and its libraries
    // could print.
    // The switch comes from the environment here, as in a container ("1" counts as on).
    let mut cmd = command(&fake.base_url, &["http", "--listen", "127.0.0.1:0"]);
    cmd.env("RUST_LOG", "trace")
        .env("HANDINGER_MCP_KEY_FROM_REQUEST", "1");
    let bridge = start_http_with(cmd).await;

    let response = rpc(&bridge, initialize_body()).send().await.unwrap();
    assert_eq!(response.status(), 401);
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("X-Handinger-Api-Key")
    );
    // A key header that is not text is named as such, not as missing.
    let garbled = reqwest::header::HeaderValue::from_bytes(b"hdg_live_\xff").unwrap();
    let response = rpc(&bridge, initialize_body())
        .header("x-handinger-api-key", garbled)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let message = response.text().await.unwrap();
    assert!(message.contains("plain text"), "{message}");

    let alice = bridge
        .client(None, &[("x-handinger-api-key", USER_A)])
        .await;
    let bob = bridge
        .client(None, &[("x-handinger-api-key", USER_B)])
        .await;
    let first = call(&alice, "create_task", json!({"input": "alice's task"})).await;
    assert!(!is_error(&first), "{}", text(&first));
    let second = call(&bob, "create_task", json!({"input": "bob's task"})).await;
    assert!(!is_error(&second), "{}", text(&second));
    let task_id = structured(&first)["taskId"].as_str().unwrap().to_owned();
    let status = call(&alice, "get_task", json!({"taskId": task_id})).await;
    assert!(!is_error(&status), "{}", text(&status));

    let received = fake.received();
    let auth_of = |input: &str| {
        received
            .iter()
            .find(|r| r.body["input"] == input)
            .and_then(|r| r.authorization.clone())
    };
    assert_eq!(auth_of("alice's task"), Some(format!("Bearer {USER_A}")));
    assert_eq!(auth_of("bob's task"), Some(format!("Bearer {USER_B}")));
    let lookup = received.iter().find(|r| r.method == "GET").unwrap();
    assert_eq!(lookup.authorization, Some(format!("Bearer {USER_A}")));
    assert!(
        received
            .iter()
            .all(|r| r.authorization != Some(format!("Bearer {API_KEY}"))),
        "the server's own key is never sent"
    );

    // The legacy transport runs calls with the key of the POST that carried them too.
    let response = http().get(bridge.url("/sse")).send().await.unwrap();
    assert_eq!(response.status(), 401, "no key, no event stream");
    let response = http()
        .get(bridge.url("/sse"))
        .header("x-handinger-api-key", USER_B)
        .send()
        .await
        .unwrap();
    let mut events = EventReader {
        stream: response.bytes_stream().boxed(),
        buffer: String::new(),
    };
    let (_, endpoint) = events.next().await;
    let post = |body: Value| {
        http()
            .post(bridge.url(&endpoint))
            .header("x-handinger-api-key", USER_B)
            .json(&body)
            .send()
    };
    assert_eq!(post(initialize_body()).await.unwrap().status(), 202);
    events.message().await;
    let initialized = common::rpc::initialized();
    assert_eq!(post(initialized).await.unwrap().status(), 202);
    let call = call_body(2, "create_task", json!({"input": "bob over sse"}));
    assert_eq!(post(call).await.unwrap().status(), 202);
    let answer = events.message().await;
    assert_ne!(answer["result"]["isError"], true, "{answer}");
    let received = fake.received();
    let over_sse = received.iter().find(|r| r.body["input"] == "bob over sse");
    assert_eq!(
        over_sse.and_then(|r| r.authorization.clone()),
        Some(format!("Bearer {USER_B}"))
    );

    alice.cancel().await.unwrap();
    bob.cancel().await.unwrap();
    let log = bridge.log();
    for secret in [USER_A, USER_B, API_KEY] {
        assert!(!log.contains(secret), "a key reached the log");
    }
}

#[tokio::test]
async fn listening_beyond_loopback_without_a_token_is_refused_at_start_up() {
    let fake = FakeHandinger::start().await;
    let (status, stderr) =
        run_to_exit(command(&fake.base_url, &["http", "--listen", "0.0.0.0:0"])).await;
    assert!(!status.success());
    assert!(
        stderr.contains("refusing to listen on 0.0.0.0:0"),
        "{stderr}"
    );
    assert!(stderr.contains("HANDINGER_MCP_AUTH_TOKEN"), "{stderr}");
    assert!(!stderr.contains("listening on"), "{stderr}");
}

#[tokio::test]
async fn idle_sessions_of_both_transports_expire_with_a_404() {
    let fake = FakeHandinger::start().await;
    let bridge = start_http(
        &fake.base_url,
        &["--session-idle-timeout", "2", "--max-wait", "1"],
    )
    .await;
    let response = rpc(&bridge, initialize_body()).send().await.unwrap();
    let session = response.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    rpc_answer(response).await;
    let legacy = http().get(bridge.url("/sse")).send().await.unwrap();
    let mut events = EventReader {
        stream: legacy.bytes_stream().boxed(),
        buffer: String::new(),
    };
    let (_, endpoint) = events.next().await;

    // Watch the session counts rather than the sessions themselves: any request to a
    // session would count as activity and keep it open.
    let every = Duration::from_millis(200);
    poll::until("the sessions never expired", every, || async {
        let text = metrics(&bridge, None).await;
        let expired = text.contains("handinger_mcp_open_sessions{transport=\"streamable_http\"} 0")
            && text.contains("handinger_mcp_open_sessions{transport=\"sse\"} 0");
        if expired { Ok(()) } else { Err(text) }
    })
    .await;
    let ended = tokio::time::timeout(PATIENCE, events.stream.next())
        .await
        .expect("the idle SSE stream ends");
    assert!(ended.is_none(), "the idle SSE stream ends");
    let response = http()
        .post(bridge.url(&endpoint))
        .header("content-type", "application/json")
        .json(&json!({"jsonrpc": "2.0", "id": 3, "method": "ping"}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let expired = rpc_initialized(
        &bridge,
        Some(&session),
        json!({"jsonrpc": "2.0", "id": 2, "method": "ping"}),
    )
    .send()
    .await
    .unwrap();
    assert_eq!(expired.status(), 404);
    assert!(expired.text().await.unwrap().contains("initialize"));
}

#[tokio::test]
async fn probes_report_liveness_and_upstream_reachability() {
    let fake = FakeHandinger::start().await;
    let bridge = start_http(&fake.base_url, &[]).await;
    let response = http().get(bridge.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let response = http().get(bridge.url("/readyz")).send().await.unwrap();
    assert_eq!(
        response.status(),
        200,
        "any answer from the API counts as reachable"
    );

    // Port 9 (discard) on loopback: nothing answers there.
    let unreachable = start_http("http://127.0.0.1:9", &[]).await;
    let response = http().get(unreachable.url("/readyz")).send().await.unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.text().await.unwrap().contains("cannot reach"));
}

#[tokio::test]
async fn sigterm_lets_a_call_in_flight_finish_then_exits_0() {
    let fake = FakeHandinger::start().await;
    fake.set_turn_duration(Duration::from_secs(2));
    let mut bridge = start_http(&fake.base_url, &["--stateless"]).await;

    let call = tokio::spawn(
        call_initialized(&bridge, 1, "create_task", json!({"input": "finish me"})).send(),
    );
    wait_for(|| fake.posts().len() == 1).await;
    bridge.terminate();

    let answer = rpc_answer(call.await.unwrap().unwrap()).await;
    assert!(
        answer["result"]["structuredContent"]["taskId"].is_string(),
        "the call in flight got its answer: {answer}"
    );
    let status = bridge.wait().await;
    assert!(status.success(), "{status}: {}", bridge.log());
    assert!(bridge.log().contains("stopped"));
}

#[tokio::test]
async fn sigterm_closes_open_sessions_and_streams_and_exits_0() {
    let fake = FakeHandinger::start().await;
    let mut bridge = start_http(&fake.base_url, &[]).await;
    let client = bridge.client(None, &[]).await;
    client.list_all_tools().await.unwrap();
    let sse = http().get(bridge.url("/sse")).send().await.unwrap();
    assert_eq!(sse.status(), 200);

    bridge.terminate();
    let status = bridge.wait().await;
    assert!(status.success(), "{status}: {}", bridge.log());
    drop(client);
}

/// Progress notifications reach a Streamable HTTP client on the call's stream.
#[tokio::test]
async fn progress_arrives_over_the_stream() {
    use rmcp::model::ProgressNotificationParam;
    use rmcp::service::NotificationContext;
    use rmcp::transport::StreamableHttpClientTransport;
    use rmcp::{ClientHandler, RoleClient, ServiceExt};
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Progress(Arc<Mutex<Vec<ProgressNotificationParam>>>);
    impl ClientHandler for Progress {
        async fn on_progress(
            &self,
            params: ProgressNotificationParam,
            _: NotificationContext<RoleClient>,
        ) {
            self.0.lock().unwrap().push(params);
        }
    }

    let fake = FakeHandinger::start().await;
    let bridge = start_http(&fake.base_url, &["--progress-interval", "1"]).await;
    let progress = Progress::default();
    let client = progress
        .clone()
        .serve(StreamableHttpClientTransport::with_client(
            common::http_client(),
            rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig::with_uri(
                bridge.url("/mcp"),
            ),
        ))
        .await
        .unwrap();
    let mut params = rmcp::model::CallToolRequestParams::new("create_task");
    params.arguments = Some(args(json!({"input": "study sleep=2500", "budget": "high"})));
    let result = client.call_tool(params).await.unwrap();
    assert_eq!(structured(&result)["status"], "completed");
    let seen = progress.0.lock().unwrap().clone();
    assert!(seen.len() >= 2, "{seen:?}");
    assert!(seen.windows(2).all(|w| w[1].progress > w[0].progress));
    assert!(
        seen[0]
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("budget high")
    );
}

/// SIGTERM: quick calls get a moment, then a call waiting on a long turn is answered with
/// its resumable taskId instead of vanishing, and the process exits 0.
#[tokio::test]
async fn sigterm_answers_a_waiting_call_with_its_task_id() {
    let fake = FakeHandinger::start().await;
    let mut bridge = start_http(&fake.base_url, &["--stateless"]).await;
    let call = tokio::spawn(
        call_initialized(
            &bridge,
            1,
            "create_task",
            json!({"input": "long sleep=60000"}),
        )
        .send(),
    );
    wait_for(|| fake.posts().len() == 1).await;
    bridge.terminate();
    let answer = rpc_answer(call.await.unwrap().unwrap()).await;
    let data = &answer["result"]["structuredContent"];
    assert_eq!(data["status"], "running", "{answer}");
    assert_eq!(data["taskId"], fake.posts()[0].body["taskId"]);
    let status = bridge.wait().await;
    assert!(status.success(), "{status}: {}", bridge.log());
}

/// Over HTTP, files travel inline; a local path names the server's disk, not the caller's,
/// so it is refused, even with --allow-dir set, and nothing is sent.
#[tokio::test]
async fn inline_files_work_over_http_and_local_paths_do_not() {
    let fake = FakeHandinger::start().await;
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("server-secret.txt");
    std::fs::write(&secret, b"server only").unwrap();
    let bridge = start_http(
        &fake.base_url,
        &["--allow-dir", dir.path().to_str().unwrap()],
    )
    .await;
    let client = bridge.client(None, &[]).await;

    let refused = call(
        &client,
        "create_task",
        json!({"input": "x", "files": [{"path": secret.to_str().unwrap()}]}),
    )
    .await;
    assert!(is_error(&refused));
    assert!(text(&refused).contains("inline"), "{}", text(&refused));
    assert!(fake.posts().is_empty());

    let sent = call(
        &client,
        "create_task",
        json!({"input": "fix it", "files": [{"name": "sheet.csv", "content": "YSxi"}]}),
    )
    .await;
    assert!(!is_error(&sent), "{}", text(&sent));
    let upload = &fake.posts()[0].uploads[0];
    assert_eq!(upload.filename.as_deref(), Some("sheet.csv"));
    assert_eq!(upload.head, b"a,b");
}

/// An answer larger than the bridge encodes into one buffer (64 KiB) is sent in chunks as
/// it is encoded (docs/limits.md, "What a shape costs"): the client still gets one JSON body
/// whose `Content-Length` is its length, the answer whole in the text block and in
/// `outputText`, escapes and all.
#[tokio::test]
async fn stateless_mode_sends_a_large_answer_whole_with_its_length() {
    let fake = FakeHandinger::start().await;
    let bridge = start_http(&fake.base_url, &["--stateless"]).await;
    let input = "quote \" backslash \\ newline \n é 🦀 ".repeat(5_000);
    let response = call_initialized(&bridge, 2, "create_task", json!({"input": input}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    let length: usize = response.headers()["content-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let body = response.bytes().await.unwrap();
    assert_eq!(body.len(), length);
    assert!(
        length > 2 * input.len(),
        "{length}: the answer is in it twice"
    );
    let answer: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["id"], 2);
    let expected = format!("answer to: {input} (turn 1)");
    let result = &answer["result"];
    assert_eq!(result["structuredContent"]["outputText"], expected.as_str());
    let text = result["content"][0]["text"].as_str().unwrap();
    assert!(
        text.starts_with(&expected),
        "{}",
        text.chars().take(200).collect::<String>()
    );
    assert!(text.ends_with("or to get_task]"));
}

/// The `data:` events of an event-stream body, each parsed as JSON (keep-alive comments
/// and blank lines skipped).
fn sse_events(body: &str) -> Vec<Value> {
    body.split("\n\n")
        .filter_map(|event| {
            let data: String = event
                .lines()
                .filter_map(|line| line.strip_prefix("data:"))
                .map(str::trim_start)
                .collect();
            (!data.is_empty()).then(|| serde_json::from_str(&data).unwrap())
        })
        .collect()
}

/// A stateless call that asks for progress gets its ticks, with its own token, and then its
/// answer, on one event stream: never a tick after the answer, never another call's tick
/// (two clients chose the same token), and a large answer arrives whole and exact.
#[tokio::test]
async fn stateless_calls_with_progress_get_their_own_ticks_then_the_whole_answer() {
    let fake = FakeHandinger::start().await;
    fake.set_turn_duration(Duration::from_millis(2_600));
    let bridge = start_http(&fake.base_url, &["--stateless", "--progress-interval", "1"]).await;
    let bridge = &bridge;
    let call = |id: u64, input: String| {
        let mut body = call_body(id, "create_task", json!({"input": input}));
        body["params"]["_meta"] = json!({"progressToken": "same-token"});
        async move {
            let response = rpc_initialized(bridge, None, body).send().await.unwrap();
            assert_eq!(response.status(), 200);
            assert_eq!(response.headers()["content-type"], "text/event-stream");
            let body = tokio::time::timeout(PATIENCE, response.text())
                .await
                .unwrap()
                .unwrap();
            sse_events(&body)
        }
    };
    let large = "quote \" backslash \\ newline \n é 🦀 ".repeat(5_000);
    let (first, second) = tokio::join!(call(7, large.clone()), call(8, "small".to_owned()));
    for (events, id, input) in [(first, 7, large.as_str()), (second, 8, "small")] {
        let (answer, ticks) = events.split_last().expect("events");
        assert_eq!(answer["id"], id, "the answer comes last");
        assert_eq!(
            answer["result"]["structuredContent"]["outputText"],
            format!("answer to: {input} (turn 1)").as_str()
        );
        // Two ticks each (at 1 s and 2 s): a call given the other's ticks would have four.
        assert!(
            (1..=3).contains(&ticks.len()),
            "a 2.6 s turn reports progress each second, to its own call: {ticks:?}"
        );
        let mut last = 0.0;
        for tick in ticks {
            assert_eq!(tick["method"], "notifications/progress", "{tick}");
            assert_eq!(tick["params"]["progressToken"], "same-token");
            let progress = tick["params"]["progress"].as_f64().unwrap();
            assert!(progress > last, "progress only grows: {ticks:?}");
            last = progress;
        }
    }
    assert_eq!(fake.posts().len(), 2);
}
