//! What a client's own JSON may cost: messages whose shape (nesting, number of values, a
//! long request id or progress token) would cost far more than their bytes once parsed are
//! refused before they are parsed, over stdio and over both HTTP transports; lines that do
//! not parse at all get a parse error rather than silence. Memory itself is measured by a
//! program (docs/limits.md), not here: these tests hold the refusals.

use crate::common;

use std::time::Duration;

use common::http::start_http;
use common::*;
use serde_json::{Value, json};

/// A bound that turns a hang into a failure.
const HANG: Duration = Duration::from_secs(60);
const PROTOCOL: &str = "2025-06-18";

/// `[[[…0…]]]`, `levels` deep, as text (serde itself would not parse it beyond 127).
fn nested_text(levels: usize) -> String {
    format!("{}0{}", "[".repeat(levels), "]".repeat(levels))
}

fn nested(levels: usize) -> Value {
    serde_json::from_str(&nested_text(levels)).unwrap()
}

fn message_of(answer: &Value) -> &str {
    answer["error"]["message"].as_str().unwrap_or_default()
}

async fn raw_stdio(base_url: &str, args: &[&str]) -> rpc::RawStdio {
    rpc::RawStdio::start(command(base_url, args), PROTOCOL, HANG).await
}

/// The next error that answers no id (JSON-RPC's null id, which MCP writes by leaving the
/// id out), skipping everything else.
async fn error_without_id(raw: &mut rpc::RawStdio) -> Value {
    loop {
        let message = raw
            .next_message()
            .await
            .expect("the server is still running");
        if message.get("error").is_some() && message.get("id").is_none_or(Value::is_null) {
            return message;
        }
    }
}

#[tokio::test]
async fn stdio_lines_too_deep_or_with_too_many_values_are_refused_before_parsing() {
    let fake = FakeHandinger::start().await;
    let mut raw = raw_stdio(
        &fake.base_url,
        &["--max-json-depth", "8", "--max-json-values", "100"],
    )
    .await;
    raw.send(&rpc::tool_call(
        50,
        "create_task",
        json!({"input": "x", "pad": nested(10)}),
    ))
    .await;
    let answer = raw.answer_to(50).await;
    assert_eq!(answer["error"]["code"], -32700, "{answer}");
    assert!(message_of(&answer).contains("--max-json-depth"), "{answer}");

    raw.send(&rpc::tool_call(
        51,
        "create_task",
        json!({"input": "x", "pad": vec![0; 200]}),
    ))
    .await;
    let answer = raw.answer_to(51).await;
    assert_eq!(answer["error"]["code"], -32700, "{answer}");
    assert!(
        message_of(&answer).contains("--max-json-values"),
        "{answer}"
    );

    // Within the bounds, the same server answers as before.
    raw.send(&rpc::tool_call(52, "create_task", json!({"input": "x"})))
        .await;
    let answer = raw.answer_to(52).await;
    assert_eq!(
        answer["result"]["structuredContent"]["status"], "completed",
        "{answer}"
    );
    assert_eq!(fake.posts().len(), 1, "only the call within the bounds ran");
}

#[tokio::test]
async fn stdio_lines_that_do_not_parse_get_a_parse_error() {
    let fake = FakeHandinger::start().await;
    let mut raw = raw_stdio(&fake.base_url, &[]).await;
    // Deeper than serde's own limit: before, this line vanished without an answer.
    let deep = format!(
        r#"{{"jsonrpc":"2.0","id":9,"method":"ping","params":{{"x":{}}}}}"#,
        nested_text(200)
    );
    raw.send_line(&deep).await;
    let answer = raw.answer_to(9).await;
    assert_eq!(answer["error"]["code"], -32700, "{answer}");
    assert!(message_of(&answer).contains("--max-json-depth"), "{answer}");

    // Text that is not JSON: a parse error to a null id, as JSON-RPC asks.
    for garbage in ["this is not json {", r#"{"jsonrpc":"2.0","id":10,"#] {
        raw.send_line(garbage).await;
        let answer = error_without_id(&mut raw).await;
        assert_eq!(answer["error"]["code"], -32700, "{garbage}: {answer}");
        assert!(message_of(&answer).contains("not JSON"), "{answer}");
    }
    raw.send_line(r#"{"jsonrpc":"2.0","id":11,"method":"ping"}"#)
        .await;
    assert!(raw.answer_to(11).await.get("result").is_some());
}

#[tokio::test]
async fn stdio_long_request_ids_and_progress_tokens_are_refused() {
    let fake = FakeHandinger::start().await;
    let mut raw = raw_stdio(&fake.base_url, &["--max-id-bytes", "64"]).await;
    let long = "i".repeat(100);
    raw.send(&rpc::tool_call(
        long.as_str(),
        "create_task",
        json!({"input": "x"}),
    ))
    .await;
    let answer = error_without_id(&mut raw).await;
    assert_eq!(answer["error"]["code"], -32600, "{answer}");
    assert!(message_of(&answer).contains("--max-id-bytes"), "{answer}");

    let mut call = rpc::tool_call(5, "create_task", json!({"input": "x"}));
    call["params"]["_meta"] = json!({"progressToken": "t".repeat(100)});
    raw.send(&call).await;
    let answer = raw.answer_to(5).await;
    assert_eq!(answer["error"]["code"], -32600, "{answer}");
    assert!(message_of(&answer).contains("progress token"), "{answer}");
    assert!(fake.posts().is_empty(), "neither call ran");

    let short = "s".repeat(40);
    raw.send(&rpc::request(short.as_str(), "ping", json!({})))
        .await;
    assert!(raw.answer_to(short.as_str()).await.get("result").is_some());
}

/// The JSON-RPC error in a refused HTTP response, which must be a 400.
async fn refused(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), 400);
    response.json().await.expect("a JSON-RPC error body")
}

#[tokio::test]
async fn http_bodies_of_a_costly_shape_are_refused_before_parsing() {
    let fake = FakeHandinger::start().await;
    let bridge = start_http(
        &fake.base_url,
        &[
            "--stateless",
            "--max-json-depth",
            "8",
            "--max-json-values",
            "100",
            "--max-id-bytes",
            "64",
        ],
    )
    .await;
    let http = common::http_client();
    let url = bridge.url("/mcp");
    let post = |body: Value| rpc::post_initialized(&http, &url, None, &body).send();

    let wide = rpc::request(1, "ping", json!({"x": vec![0; 200]}));
    let answer = refused(post(wide).await.unwrap()).await;
    assert_eq!(answer["error"]["code"], -32700, "{answer}");
    assert_eq!(answer["id"], 1, "{answer}");
    assert!(
        message_of(&answer).contains("--max-json-values"),
        "{answer}"
    );

    let deep = rpc::tool_call(2, "create_task", json!({"input": "x", "pad": nested(10)}));
    let answer = refused(post(deep).await.unwrap()).await;
    assert!(message_of(&answer).contains("--max-json-depth"), "{answer}");

    let mut call = rpc::tool_call(3, "create_task", json!({"input": "x"}));
    call["params"]["_meta"] = json!({"progressToken": "t".repeat(100)});
    let answer = refused(post(call).await.unwrap()).await;
    assert_eq!(answer["error"]["code"], -32600, "{answer}");
    assert_eq!(answer["id"], 3, "{answer}");
    assert!(message_of(&answer).contains("--max-id-bytes"), "{answer}");

    let long_id = rpc::tool_call("i".repeat(100), "create_task", json!({"input": "x"}));
    let answer = refused(post(long_id).await.unwrap()).await;
    assert!(answer.get("id").is_none_or(Value::is_null), "{answer}");
    assert!(message_of(&answer).contains("--max-id-bytes"), "{answer}");
    assert!(fake.posts().is_empty(), "no refused call ran");

    let fine = rpc::tool_call(4, "create_task", json!({"input": "x"}));
    let response = post(fine).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(fake.posts().len(), 1);
}

#[tokio::test]
async fn legacy_sse_messages_of_a_costly_shape_are_refused_before_parsing() {
    let fake = FakeHandinger::start().await;
    let bridge = start_http(&fake.base_url, &["--max-json-values", "100"]).await;
    let http = common::http_client();
    let mut stream = http.get(bridge.url("/sse")).send().await.unwrap();
    let mut seen = String::new();
    let endpoint = loop {
        let chunk = tokio::time::timeout(HANG, stream.chunk())
            .await
            .unwrap()
            .unwrap()
            .expect("the endpoint event");
        seen.push_str(&String::from_utf8_lossy(&chunk));
        if let Some(line) = seen.lines().find(|l| l.starts_with("data: /message")) {
            break line.trim_start_matches("data: ").to_owned();
        }
    };
    let wide = rpc::request(7, "ping", json!({"x": vec![0; 200]}));
    let response = http
        .post(bridge.url(&endpoint))
        .json(&wide)
        .send()
        .await
        .unwrap();
    let answer = refused(response).await;
    assert_eq!(answer["error"]["code"], -32700, "{answer}");
    assert!(
        message_of(&answer).contains("--max-json-values"),
        "{answer}"
    );
}
