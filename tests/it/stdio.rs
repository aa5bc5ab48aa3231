//! End to end over stdio: the real binary, rmcp's client, a fake Handinger API.

use crate::common;

use std::time::Duration;

use common::*;
use serde_json::{Value, json};

#[tokio::test]
async fn tools_list_matches_the_reviewed_snapshot() {
    let fake = FakeHandinger::start().await;
    let bridge = start(&fake.base_url, &[]).await;
    let tools = bridge.client.list_all_tools().await.unwrap();
    snapshots::assert_listing(&snapshots::DEFAULT, &tools, "tools/list over stdio").await;
    let names: Vec<_> = tools.iter().map(|t| t.name.to_string()).collect();
    assert_eq!(names, ["create_task", "get_task"]);
}

#[tokio::test]
async fn server_info_carries_instructions_about_follow_ups() {
    let fake = FakeHandinger::start().await;
    let bridge = start(&fake.base_url, &[]).await;
    let info = bridge.client.peer_info().expect("server info");
    let instructions = info.instructions.clone().unwrap_or_default();
    assert!(instructions.contains("taskId"), "{instructions}");
}

#[tokio::test]
async fn create_task_returns_answer_links_and_structured_content() {
    let fake = FakeHandinger::start().await;
    let bridge = start(&fake.base_url, &[]).await;
    let result = call(
        &bridge.client,
        "create_task",
        json!({"input": "Weather in Barcelona?"}),
    )
    .await;
    assert!(!is_error(&result), "{}", text(&result));

    let body = text(&result);
    assert!(
        body.starts_with("answer to: Weather in Barcelona? (turn 1)"),
        "{body}"
    );

    let links: Vec<_> = result
        .content
        .iter()
        .filter_map(|c| c.as_resource_link())
        .collect();
    assert_eq!(links.len(), 3, "two sources and one file");
    assert_eq!(links[0].uri, "https://weather.example/bcn");
    assert_eq!(links[0].name, "Barcelona weather");
    assert_eq!(
        links[1].name, "news.example",
        "untitled source is named by its host"
    );
    assert_eq!(links[2].name, "report.csv");
    assert_eq!(links[2].mime_type.as_deref(), Some("text/csv"));
    assert_eq!(links[2].size, Some(42));

    let data = structured(&result);
    let task_id = data["taskId"].as_str().unwrap();
    assert!(
        task_id.starts_with("tsk_") && task_id.len() == 30,
        "{task_id}"
    );
    assert!(
        body.contains(task_id),
        "the taskId is in the text for clients without structured content"
    );
    assert_eq!(data["workerId"], "wrk_fake_created");
    assert_eq!(data["status"], "completed");
    assert_eq!(data["structuredOutput"], json!({"verdict": "sunny"}));
    // Since 2026-07 the POST answer carries no credits (get_task adds them from the turn).
    assert_eq!(data["usage"], json!({"durationMs": 1200.0}));
    assert_eq!(
        data["url"],
        "https://v3.handinger.com/worker/wrk_fake_created"
    );
    assert_eq!(data["sources"].as_array().unwrap().len(), 2);
    assert_eq!(data["files"][0]["mediaType"], "text/csv");

    let posts = fake.posts();
    assert_eq!(posts.len(), 1);
    assert_eq!(
        posts[0].authorization.as_deref(),
        Some(format!("Bearer {API_KEY}").as_str())
    );
    assert_eq!(
        posts[0].body["taskId"], task_id,
        "the bridge always sends its taskId upstream"
    );
    assert_eq!(posts[0].body["budget"], "standard");
    assert!(posts[0].body.get("workerId").is_none());
}

#[tokio::test]
async fn follow_up_by_task_id_adds_a_second_turn_to_the_same_task() {
    let fake = FakeHandinger::start().await;
    let bridge = start(&fake.base_url, &["--worker-id", "wrk_default-1"]).await;
    let first = call(
        &bridge.client,
        "create_task",
        json!({"input": "Plan a trip", "budget": "low"}),
    )
    .await;
    let task_id = structured(&first)["taskId"].as_str().unwrap().to_owned();

    let second = call(
        &bridge.client,
        "create_task",
        json!({"input": "Make it cheaper", "taskId": task_id}),
    )
    .await;
    assert!(!is_error(&second), "{}", text(&second));
    assert!(text(&second).starts_with("answer to: Make it cheaper (turn 2)"));
    assert_eq!(structured(&second)["taskId"], task_id.as_str());

    let turns = fake.turns(&task_id);
    assert_eq!(turns.len(), 2);
    assert_eq!(turns[1].input, "Make it cheaper");
    let posts = fake.posts();
    assert_eq!(posts[0].body["budget"], "low");
    assert_eq!(
        posts[1].body["workerId"], "wrk_default-1",
        "default worker applies"
    );
}

#[tokio::test]
async fn get_task_reports_status_totals_and_turns() {
    let fake = FakeHandinger::start().await;
    let bridge = start(&fake.base_url, &[]).await;
    let first = call(&bridge.client, "create_task", json!({"input": "one"})).await;
    let task_id = structured(&first)["taskId"].as_str().unwrap().to_owned();
    call(
        &bridge.client,
        "create_task",
        json!({"input": "two", "taskId": task_id}),
    )
    .await;

    let result = call(&bridge.client, "get_task", json!({"taskId": task_id})).await;
    assert!(!is_error(&result), "{}", text(&result));
    let data = structured(&result);
    assert_eq!(data["status"], "completed");
    assert_eq!(data["totals"]["turnCount"], 2);
    assert_eq!(data["turns"][1]["input"], "two");
    assert_eq!(data["turns"][1]["outputText"], "answer to: two (turn 2)");
    assert!(text(&result).contains("answer to: two (turn 2)"));
    assert!(text(&result).contains("https://v3.handinger.com/task/"));
}

#[tokio::test]
async fn get_task_of_an_unknown_task_explains_the_404() {
    let fake = FakeHandinger::start().await;
    let bridge = start(&fake.base_url, &[]).await;
    let result = call(&bridge.client, "get_task", json!({"taskId": "tsk_nope"})).await;
    assert!(is_error(&result));
    let message = text(&result);
    assert!(
        message.contains("404") && message.contains("Task not found"),
        "{message}"
    );
}

#[tokio::test]
async fn crafted_task_ids_never_reach_another_endpoint() {
    let fake = FakeHandinger::start().await;
    let bridge = start(&fake.base_url, &[]).await;
    for crafted in [
        "../workers/wrk_1",
        "tsk_1/../../workers",
        "tsk_1?archive=1",
        "tsk#x",
        "..",
    ] {
        let result = call(&bridge.client, "get_task", json!({"taskId": crafted})).await;
        assert!(is_error(&result), "{crafted} accepted");
        let result = call(
            &bridge.client,
            "create_task",
            json!({"input": "x", "taskId": crafted}),
        )
        .await;
        assert!(is_error(&result), "{crafted} accepted");
    }
    assert!(fake.received().is_empty(), "{:?}", fake.received());
}

#[tokio::test]
async fn invalid_arguments_are_refused_before_any_upstream_call() {
    let fake = FakeHandinger::start().await;
    let bridge = start(&fake.base_url, &["--max-budget", "standard"]).await;
    let cases = [
        (json!({"input": ""}), "input is empty"),
        (json!({"input": "   "}), "input is empty"),
        (json!({}), "missing field `input`"),
        (
            json!({"input": "x", "budget": "huge"}),
            "unknown variant `huge`",
        ),
        (
            json!({"input": "x", "budget": "high"}),
            "above this server's limit",
        ),
        (
            json!({"input": "x", "task_id": "tsk_1"}),
            "unknown field `task_id`",
        ),
        (json!({"input": 42}), "invalid type"),
        (json!({"input": "x", "workerId": "wrk/../x"}), "workerId"),
    ];
    for (arguments, expected) in cases {
        let result = call(&bridge.client, "create_task", arguments.clone()).await;
        assert!(is_error(&result), "{arguments} accepted");
        let message = text(&result);
        assert!(message.contains(expected), "{arguments}: {message}");
    }
    assert!(fake.received().is_empty());
    // The server is still fine afterwards.
    let ok = call(&bridge.client, "create_task", json!({"input": "x"})).await;
    assert!(!is_error(&ok));
}

/// Each upstream fault becomes an error result that says what to do; the next call works.
#[tokio::test]
async fn upstream_faults_become_actionable_errors_and_the_next_call_works() {
    let fake = FakeHandinger::start().await;
    let bridge = start(&fake.base_url, &["--max-response-bytes", "4096"]).await;
    let status = |status: u16, message: &str, retry_after| Fault::Status {
        status,
        message: message.into(),
        retry_after,
    };
    let cases: Vec<(Fault, &[&str], usize)> = vec![
        (
            status(401, "Invalid API key", None),
            &["401", "Invalid API key", "HANDINGER_API_KEY", "safe"],
            1,
        ),
        (
            status(403, "No access to worker", None),
            &["403", "No access to worker", "no access"],
            1,
        ),
        (
            status(422, "budget: invalid", None),
            &["422", "budget: invalid"],
            1,
        ),
        (
            status(429, "Slow down", Some(120)),
            &["429", "wait 120 s"],
            1,
        ),
        // Not recorded upstream: the lookup after the 500 finds no task, so resending is safe.
        (
            status(500, "Internal error", None),
            &["500", "Internal error", "did not record", "safe"],
            1,
        ),
        (
            Fault::Malformed,
            &["not valid JSON", "HANDINGER_BASE_URL"],
            1,
        ),
        (
            Fault::Huge(10_000),
            &["4096-byte cap", "--max-response-bytes"],
            1,
        ),
    ];
    for (fault, expected, posts) in cases {
        let before = fake.posts().len();
        fake.push_fault(fault.clone());
        let result = call(&bridge.client, "create_task", json!({"input": "x"})).await;
        assert!(is_error(&result), "{fault:?} gave a success");
        let message = text(&result);
        for needle in expected {
            assert!(
                message.contains(needle),
                "{fault:?}: {needle:?} missing from {message}"
            );
        }
        assert!(!message.contains(API_KEY));
        assert_eq!(fake.posts().len() - before, posts, "{fault:?}: POST resent");

        let ok = call(&bridge.client, "create_task", json!({"input": "after"})).await;
        assert!(!is_error(&ok), "call after {fault:?} failed: {}", text(&ok));
    }
}

#[tokio::test]
async fn a_short_rate_limit_is_waited_out_and_resent_once() {
    let fake = FakeHandinger::start().await;
    let bridge = start(&fake.base_url, &[]).await;
    fake.push_fault(Fault::Status {
        status: 429,
        message: "Slow down".into(),
        retry_after: Some(1),
    });
    let result = call(&bridge.client, "create_task", json!({"input": "x"})).await;
    assert!(!is_error(&result), "{}", text(&result));
    let posts = fake.posts();
    assert_eq!(posts.len(), 2, "one 429, one resend");
    assert_eq!(posts[0].body["taskId"], posts[1].body["taskId"]);
    let task_id = posts[0].body["taskId"].as_str().unwrap();
    assert_eq!(fake.turns(task_id).len(), 1, "exactly one turn upstream");
}

#[tokio::test]
async fn an_unreachable_api_is_reported_as_safe_to_retry() {
    // Bind and drop a listener to get a port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let bridge = start(&format!("http://127.0.0.1:{port}"), &[]).await;
    let result = call(&bridge.client, "create_task", json!({"input": "x"})).await;
    assert!(is_error(&result));
    let message = text(&result);
    assert!(message.contains("could not connect"), "{message}");
    assert!(message.contains("safe"), "{message}");
}

#[tokio::test]
async fn missing_key_exits_at_once_naming_the_variable() {
    let output = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::process::Command::new(BINARY).env_clear().output(),
    )
    .await
    .expect("exits instead of hanging")
    .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("HANDINGER_API_KEY"), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(output.stdout.is_empty());
}

/// stdout carries only JSON-RPC, even around a garbage line, which gets a parse error
/// without an id; well-formed JSON that is not a message gets an Invalid Request error.
#[tokio::test]
async fn stdout_carries_only_json_rpc_and_survives_garbage() {
    let fake = FakeHandinger::start().await;
    let mut raw = rpc::RawStdio::spawn(command(&fake.base_url, &[]), Duration::from_secs(20));
    let lines = [
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        "this is not json {",
        r#"{"hello":"world"}"#,
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"create_task","arguments":{"input":"hi"}}}"#,
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"no_such_tool","arguments":{}}}"#,
    ];
    for line in lines {
        raw.send_line(line).await;
    }
    let mut seen = Vec::new();
    while seen
        .iter()
        .filter(|m: &&Value| m.get("id").is_some_and(|id| id == 2 || id == 3))
        .count()
        < 2
    {
        let message = raw.next_message().await.expect("stdout stays open");
        assert_eq!(message["jsonrpc"], "2.0", "{message}");
        seen.push(message);
    }
    let by_id = |id: i64| seen.iter().find(|m| m["id"] == id).cloned().unwrap();
    assert!(by_id(1)["result"]["serverInfo"]["name"] == "handinger-mcp");
    assert_eq!(
        by_id(2)["result"]["structuredContent"]["status"],
        "completed"
    );
    assert!(by_id(3).get("error").is_some() || by_id(3)["result"]["isError"] == true);
    assert!(
        seen.iter().any(|m| m["error"]["code"] == -32600),
        "the non-message JSON got an Invalid Request error: {seen:?}"
    );
    raw.close_stdin();
    let status = raw.exit_status().await;
    assert!(status.success(), "stdin EOF is a clean exit");
}

#[tokio::test]
async fn the_key_never_reaches_logs_or_results_even_at_trace() {
    let fake = FakeHandinger::start().await;
    let mut cmd = command(&fake.base_url, &[]);
    cmd.env("RUST_LOG", "trace");
    let bridge = start_with(cmd).await;
    let mut results = Vec::new();
    results.push(call(&bridge.client, "create_task", json!({"input": "x"})).await);
    fake.push_fault(Fault::Status {
        status: 401,
        message: "Invalid API key".into(),
        retry_after: None,
    });
    results.push(call(&bridge.client, "create_task", json!({"input": "y"})).await);
    let task_id = structured(&results[0])["taskId"]
        .as_str()
        .unwrap()
        .to_owned();
    results.push(call(&bridge.client, "get_task", json!({"taskId": task_id})).await);
    bridge.client.cancel().await.unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let stderr = bridge.stderr.lock().unwrap().clone();
    assert!(
        stderr.contains("TRACE") || stderr.contains("DEBUG"),
        "trace logging was on: {stderr}"
    );
    assert!(!stderr.contains(API_KEY), "the key leaked into stderr");
    assert!(
        !stderr.contains("test_5f9c2e1d0a"),
        "part of the key leaked into stderr"
    );
    for result in &results {
        assert!(!serde_json::to_string(result).unwrap().contains(API_KEY));
    }
}

/// When the POST fails after sending and the lookup fails too, nobody knows whether the turn
/// exists: the error says not to resend and to check with get_task.
#[tokio::test]
async fn an_unresolvable_failure_says_not_to_resend() {
    let fake = FakeHandinger::start().await;
    let bridge = start(&fake.base_url, &[]).await;
    fake.push_fault(Fault::Status {
        status: 503,
        message: "Unavailable".into(),
        retry_after: None,
    });
    fake.state.lock().unwrap().failing_lookups = 10;
    let result = call(&bridge.client, "create_task", json!({"input": "x"})).await;
    assert!(is_error(&result));
    let message = text(&result);
    for needle in ["503", "may have recorded", "do not resend", "get_task"] {
        assert!(
            message.contains(needle),
            "{needle:?} missing from {message}"
        );
    }
    assert_eq!(fake.posts().len(), 1);
}

/// Client configurations often pass "" for an optional setting: it means "not given".
#[tokio::test]
async fn empty_setting_variables_count_as_unset() {
    let fake = FakeHandinger::start().await;
    let mut cmd = command(&fake.base_url, &[]);
    cmd.env("HANDINGER_MCP_DEFAULT_BUDGET", "")
        .env("HANDINGER_MCP_WORKER_ID", "")
        .env("HANDINGER_MCP_MAX_WAIT", "");
    let bridge = start_with(cmd).await;
    let result = call(&bridge.client, "create_task", json!({"input": "x"})).await;
    assert!(!is_error(&result), "{}", text(&result));
    let post = &fake.posts()[0];
    assert_eq!(post.body["budget"], "standard");
    assert!(post.body.get("workerId").is_none());
}

/// An answer larger than the bridge encodes into one buffer (64 KiB) goes out in chunks as
/// it is encoded (docs/limits.md, "What a shape costs"): still one line, the answer whole in
/// the text block and in `outputText`, escapes and all, and the next message after it.
#[tokio::test]
async fn a_large_answer_goes_out_whole_on_one_line() {
    let fake = FakeHandinger::start().await;
    let bridge = start(&fake.base_url, &[]).await;
    let input = "quote \" backslash \\ newline \n é 🦀 ".repeat(5_000);
    let result = call(&bridge.client, "create_task", json!({"input": input})).await;
    assert!(
        !is_error(&result),
        "{}",
        text(&result).chars().take(200).collect::<String>()
    );
    let expected = format!("answer to: {input} (turn 1)");
    let structured = result
        .structured_content
        .as_ref()
        .expect("structured content");
    assert_eq!(structured["outputText"], expected.as_str());
    let message = text(&result);
    assert!(
        message.starts_with(&expected),
        "{}",
        message.chars().take(200).collect::<String>()
    );
    assert!(message.ends_with("or to get_task]"));
    let after = call(&bridge.client, "create_task", json!({"input": "after"})).await;
    assert!(
        text(&after).starts_with("answer to: after"),
        "{}",
        text(&after)
    );
}
