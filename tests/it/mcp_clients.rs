//! What clients written by others run into: MCP task handles only where the protocol version
//! defines them, tool errors that stay tool results under MCP tasks, schemas every validator
//! accepts silently, `DELETE /mcp` answered with a status SDKs take as done (and 404 for a
//! session the server does not hold), and stateless
//! mode's logs and answers as documented. (The official Python SDK itself drives the binary
//! in `python_clients.rs`.)

use crate::common;

use std::time::Duration;

use common::http::start_http;
use common::*;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ClientCapabilities, ClientConfig,
    Implementation, TaskPayload,
};
use rmcp::service::{ClientServiceExt, RunningService};
use rmcp::{RoleClient, ServiceExt};
use serde_json::{Value, json};

const TASKS_EXTENSION: &str = "io.modelcontextprotocol/tasks";
/// Bounds every wait on the server, so a hang fails instead of stalling the suite.
const PATIENCE: Duration = Duration::from_secs(30);

/// A client that declares the MCP tasks extension, whatever protocol it speaks.
#[derive(Clone, Default)]
struct TasksClient;

impl rmcp::ClientHandler for TasksClient {
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::builder().enable_tasks().build(),
            Implementation::new("tasks-client", "1"),
        )
    }
}

fn request(tool: &str, arguments: Value) -> CallToolRequestParams {
    let mut params = CallToolRequestParams::new(tool.to_owned());
    params.arguments = Some(args(arguments));
    params
}

async fn tasks_client(
    base_url: &str,
    modern_protocol: bool,
) -> RunningService<RoleClient, TasksClient> {
    let transport = rmcp::transport::TokioChildProcess::new(command(base_url, &[])).unwrap();
    if modern_protocol {
        TasksClient
            .serve_with_lifecycle(transport, modern())
            .await
            .expect("MCP discover")
    } else {
        TasksClient.serve(transport).await.expect("MCP initialize")
    }
}

fn completed_result(payload: TaskPayload) -> CallToolResult {
    let TaskPayload::Completed { result } = payload else {
        panic!("expected the task to end completed, got {payload:?}");
    };
    serde_json::from_value(Value::Object(result)).expect("a tool result")
}

#[tokio::test]
async fn a_2025_11_25_session_declaring_the_tasks_extension_gets_ordinary_results() {
    let fake = FakeHandinger::start().await;
    let client = tasks_client(&fake.base_url, false).await;
    let negotiated = client.peer_info().unwrap().protocol_version.to_string();
    assert!(negotiated.as_str() < "2026-07-28", "{negotiated}");

    let response = client
        .call_tool_once(request("create_task", json!({"input": "plain please"})))
        .await
        .unwrap();
    let CallToolResponse::Complete(result) = response else {
        panic!("a {negotiated} session must get the tool result, got {response:?}");
    };
    assert!(!is_error(&result), "{}", text(&result));
    assert_eq!(
        structured(&result)["outputText"],
        "answer to: plain please (turn 1)"
    );
    assert_eq!(fake.posts().len(), 1);
}

/// The JSON-RPC answer of a Streamable HTTP POST, whether it came as JSON or as SSE.
async fn rpc_answer(response: reqwest::Response) -> Value {
    let text = tokio::time::timeout(PATIENCE, response.text())
        .await
        .expect("answer in time")
        .unwrap();
    rpc::http_answer(&text, None).unwrap_or_else(|| panic!("no JSON-RPC answer in: {text}"))
}

fn post(url: &str, body: &Value) -> reqwest::RequestBuilder {
    rpc::post(&common::http_client(), url).json(body)
}

/// A POST once initialized, in `session` if any.
fn post_initialized(url: &str, session: Option<&str>, body: &Value) -> reqwest::RequestBuilder {
    rpc::post_initialized(&common::http_client(), url, session, body)
}

/// A raw 2025-11-25 session over HTTP whose initialize lists the tasks extension, as MCP
/// Inspector sends it. Returns the session id.
async fn raw_legacy_session(url: &str) -> String {
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {"extensions": {TASKS_EXTENSION: {}}},
        "clientInfo": {"name": "inspector-like", "version": "1"}}});
    let response = post(url, &init).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let session = response.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let answer = rpc_answer(response).await;
    assert_eq!(answer["result"]["protocolVersion"], "2025-11-25");
    // The server offers the extension; it just does not use it on this session.
    assert!(
        answer["result"]["capabilities"]["extensions"][TASKS_EXTENSION].is_object(),
        "{answer}"
    );
    let initialized = rpc::initialized();
    let response = post_initialized(url, Some(&session), &initialized)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    session
}

#[tokio::test]
async fn a_raw_2025_11_25_http_session_declaring_the_extension_gets_the_tool_result() {
    let fake = FakeHandinger::start().await;
    let bridge = start_http(&fake.base_url, &[]).await;
    let url = bridge.url("/mcp");
    let session = raw_legacy_session(&url).await;

    let call = rpc::tool_call(2, "create_task", json!({"input": "from the inspector"}));
    let response = post_initialized(&url, Some(&session), &call)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let answer = rpc_answer(response).await;
    let result = &answer["result"];
    assert!(result.get("resultType").is_none(), "{answer}");
    assert!(
        result.get("task").is_none() && result.get("taskId").is_none(),
        "{answer}"
    );
    assert_ne!(result["isError"], true, "{answer}");
    assert_eq!(
        result["structuredContent"]["outputText"],
        "answer to: from the inspector (turn 1)"
    );
    assert_eq!(result["content"][0]["type"], "text");
}

#[tokio::test]
async fn a_tool_error_under_mcp_tasks_completes_with_the_tool_result_and_its_advice() {
    let fake = FakeHandinger::start().await;
    // Handinger fails the POST before taking it: a tool error that says resending is safe.
    fake.push_fault(Fault::Status {
        status: 500,
        message: "upstream exploded".into(),
        retry_after: None,
    });
    let client = tasks_client(&fake.base_url, true).await;
    let response = client
        .call_tool_once(request("create_task", json!({"input": "doomed"})))
        .await
        .unwrap();
    let CallToolResponse::Task(created) = response else {
        panic!("a 2026-07-28 request declaring the extension gets a task, got {response:?}");
    };
    let result = completed_result(finished_mcp_task(&client, &created.task.task_id).await);
    assert!(is_error(&result), "the tool result keeps isError");
    let message = text(&result);
    assert!(message.contains("create_task failed"), "{message}");
    assert!(message.contains("again is safe"), "{message}");
}

#[tokio::test]
async fn a_handinger_task_that_ended_in_error_is_a_completed_mcp_task_with_an_error_result() {
    let fake = FakeHandinger::start().await;
    fake.state.lock().unwrap().tasks.insert(
        "tsk_went_wrong".into(),
        vec![common::fake::TurnRecord {
            input: "try it".into(),
            status: "error".into(),
            output: None,
            files: serde_json::json!([]),
        }],
    );
    let client = tasks_client(&fake.base_url, true).await;
    let result = completed_result(finished_mcp_task(&client, "tsk_went_wrong").await);
    assert!(is_error(&result));
    assert!(
        text(&result).contains("ended with status error"),
        "{}",
        text(&result)
    );
    assert_eq!(structured(&result)["taskId"], "tsk_went_wrong");
}

#[tokio::test]
async fn delete_mcp_ends_the_session_with_200() {
    let fake = FakeHandinger::start().await;
    let bridge = start_http(&fake.base_url, &[]).await;
    let url = bridge.url("/mcp");
    let session = raw_legacy_session(&url).await;

    let response = common::http_client()
        .delete(&url)
        .header("mcp-session-id", &session)
        .header("mcp-protocol-version", "2025-11-25")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    // And the session is really gone.
    let ping = json!({"jsonrpc": "2.0", "id": 3, "method": "ping"});
    let response = post_initialized(&url, Some(&session), &ping)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

/// The spec answers a `DELETE` of a session the server does not hold with 404, as the
/// TypeScript SDK's servers do; a client that deletes twice, or deletes a session that
/// expired, learns it is gone instead of being told it was just ended.
#[tokio::test]
async fn delete_of_an_unknown_or_ended_session_is_404() {
    let fake = FakeHandinger::start().await;
    let bridge = start_http(&fake.base_url, &[]).await;
    let url = bridge.url("/mcp");
    let delete = |session: String| {
        common::http_client()
            .delete(&url)
            .header("mcp-session-id", session)
            .header("mcp-protocol-version", "2025-11-25")
            .send()
    };

    let response = delete("never-issued-by-this-server".into()).await.unwrap();
    assert_eq!(response.status(), 404);
    let said = response.text().await.unwrap();
    assert!(said.contains("initialize"), "{said}");

    let session = raw_legacy_session(&url).await;
    assert_eq!(delete(session.clone()).await.unwrap().status(), 200);
    let response = delete(session).await.unwrap();
    assert_eq!(
        response.status(),
        404,
        "a second DELETE finds nothing to end"
    );
}

#[tokio::test]
async fn stateless_mode_logs_no_sse_url_and_streams_a_call_only_when_it_reports_progress() {
    let fake = FakeHandinger::start().await;
    let bridge = start_http(&fake.base_url, &["--stateless", "--progress-interval", "1"]).await;
    let log = bridge.log();
    let announced = log
        .lines()
        .find(|line| line.contains("listening on"))
        .expect("the listening line");
    assert!(!announced.contains("/sse"), "{announced}");
    let response = common::http_client()
        .get(bridge.url("/sse"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);

    let url = bridge.url("/mcp");
    let call = |id: u64, input: &str, meta: Value| {
        json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": "create_task", "arguments": {"input": input}, "_meta": meta}})
    };
    let content_type = |response: &reqwest::Response| {
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned()
    };

    // No progress token: one JSON body, even for a turn that takes a while.
    let response = post_initialized(&url, None, &call(1, "quiet sleep=1500", json!({})))
        .send()
        .await
        .unwrap();
    assert_eq!(content_type(&response), "application/json");
    let answer = rpc_answer(response).await;
    assert_eq!(answer["result"]["structuredContent"]["status"], "completed");

    // A progress token on a turn longer than the interval: the progress notifications and
    // the answer come as an event stream, as Streamable HTTP allows.
    let response = post_initialized(
        &url,
        None,
        &call(2, "chatty sleep=2500", json!({"progressToken": "p1"})),
    )
    .send()
    .await
    .unwrap();
    assert!(
        content_type(&response).starts_with("text/event-stream"),
        "{}",
        content_type(&response)
    );
    let body = tokio::time::timeout(PATIENCE, response.text())
        .await
        .unwrap()
        .unwrap();
    assert!(body.contains("notifications/progress"), "{body}");
    assert!(body.contains("\"id\":2"), "{body}");
}

/// Every place in a schema where a client's validator would warn: a `type` array, a `null`
/// in an `enum`, a `format` on a number, a schema without any keyword that constrains it.
fn unportable(schema: &Value, path: &str, found: &mut Vec<String>) {
    let Value::Object(object) = schema else {
        found.push(format!("{path}: boolean schema {schema}"));
        return;
    };
    if object.get("type").is_some_and(Value::is_array) {
        found.push(format!("{path}: type array"));
    }
    if object
        .get("enum")
        .and_then(Value::as_array)
        .is_some_and(|values| values.iter().any(Value::is_null))
    {
        found.push(format!("{path}: null in enum"));
    }
    if object.contains_key("format")
        && matches!(
            object.get("type").and_then(Value::as_str),
            Some("integer" | "number")
        )
    {
        found.push(format!("{path}: format on a number"));
    }
    let constrained = ["type", "$ref", "anyOf", "oneOf", "allOf", "enum", "const"]
        .iter()
        .any(|keyword| object.contains_key(*keyword));
    if !constrained {
        found.push(format!("{path}: no type"));
    }
    for (keyword, value) in object {
        match (keyword.as_str(), value) {
            ("properties" | "$defs", Value::Object(map)) => {
                for (name, sub) in map {
                    unportable(sub, &format!("{path}/{keyword}/{name}"), found);
                }
            }
            ("items", sub) => unportable(sub, &format!("{path}/items"), found),
            ("anyOf" | "oneOf" | "allOf", Value::Array(list)) => {
                for (i, sub) in list.iter().enumerate() {
                    unportable(sub, &format!("{path}/{keyword}/{i}"), found);
                }
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn every_tool_schema_is_portable() {
    let fake = FakeHandinger::start().await;
    fake.add_described_worker("wrk_fc-1", "Fact checker", "Checks claims.");
    let output = run_to_completion(command(
        &fake.base_url,
        &[
            "--toolsets",
            "all,admin",
            "--worker",
            "fc=wrk_fc-1",
            "tools",
        ],
    ))
    .await;
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let listed: Value = serde_json::from_slice(&output.stdout).unwrap();
    let tools = listed["tools"].as_array().expect("a tools/list result");
    let names: Vec<&str> = tools.iter().filter_map(|t| t["name"].as_str()).collect();
    for expected in [
        "create_task",
        "update_worker",
        "create_schedule",
        "archive_task",
        "ask_fc",
    ] {
        assert!(
            names.contains(&expected),
            "{expected} missing from {names:?}"
        );
    }
    let mut found = Vec::new();
    for tool in tools {
        for kind in ["inputSchema", "outputSchema"] {
            if let Some(schema) = tool.get(kind) {
                unportable(schema, &format!("{}.{kind}", tool["name"]), &mut found);
            }
        }
    }
    assert!(
        found.is_empty(),
        "unportable schemas:\n{}",
        found.join("\n")
    );
    // The linter itself finds what schemars writes unrewritten.
    let mut raw = Vec::new();
    unportable(
        &json!({"type": "object", "properties": {
            "size": {"type": ["integer", "null"], "format": "uint64"},
            "budget": {"enum": ["low", null]},
            "any": {"description": "free-form"}}}),
        "",
        &mut raw,
    );
    assert_eq!(raw.len(), 3, "{raw:?}");
}
