//! Small things a newcomer hit, each driven against the real binary: a closed stdout ends
//! a command quietly, a refused per-request key gets advice about the header it came in,
//! and a task result labels its link for what it is.

use crate::common;

use std::process::Output;

use common::http::start_http;
use common::*;
use serde_json::json;

/// The exit status of a command killed by SIGPIPE, as shells report it (128 + 13): what
/// `yes | head` gives, and what a command whose stdout closed ends with.
const CLOSED_STDOUT: i32 = 141;

/// Runs `cmd` with its stdout a pipe whose reading end is already closed: every write to
/// stdout fails with EPIPE, as in `handinger-mcp doctor | head -n 5` once head has its lines.
async fn run_with_closed_stdout(mut cmd: tokio::process::Command) -> Output {
    use std::process::Stdio;
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    // Spawned by hand: `output()` would replace stdout with a pipe of its own.
    let child = cmd
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary runs");
    tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the command finishes instead of hanging")
        .unwrap()
}

fn quiet_end(what: &str, output: &Output) {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("panicked") && !stderr.contains("Broken pipe"),
        "{what}: {stderr}"
    );
    assert_eq!(
        output.status.code(),
        Some(CLOSED_STDOUT),
        "{what}: {:?}\n{stderr}",
        output.status
    );
}

#[tokio::test]
async fn a_closed_stdout_ends_doctor_and_tools_quietly() {
    let fake = FakeHandinger::start().await;
    let doctor = run_with_closed_stdout(command(&fake.base_url, &["doctor"])).await;
    quiet_end("doctor", &doctor);
    // Doctor stops at its first line: nothing is asked of Handinger for a reader who left.
    assert!(fake.received().is_empty(), "{:?}", fake.received().len());
    let tools = run_with_closed_stdout(command(&fake.base_url, &["tools"])).await;
    quiet_end("tools", &tools);
}

#[tokio::test]
async fn a_refused_request_key_gets_advice_about_the_header_it_came_in() {
    let fake = FakeHandinger::start().await;
    let bridge = start_http(&fake.base_url, &["--key-from-request"]).await;
    let client = bridge
        .client(None, &[("x-handinger-api-key", "hdg_live_not_a_key")])
        .await;
    for (tool, arguments) in [
        ("create_task", json!({"input": "hello"})),
        (
            "get_task",
            json!({"taskId": "tsk_01JZ0000000000000000000000"}),
        ),
    ] {
        let result = call(&client, tool, arguments).await;
        let shown = text(&result);
        assert!(is_error(&result), "{tool}: {shown}");
        assert!(shown.contains("HTTP 401"), "{tool}: {shown}");
        assert!(
            shown.contains("X-Handinger-Api-Key") && !shown.contains("HANDINGER_API_KEY"),
            "{tool}: the advice names the header the key came in: {shown}"
        );
        assert!(
            !shown.contains("restart"),
            "{tool}: no restart fixes a caller's key: {shown}"
        );
    }
}

#[tokio::test]
async fn a_task_result_labels_the_worker_page_as_the_workers_and_the_task_page_as_the_dashboard() {
    let fake = FakeHandinger::start().await;
    let bridge = start(&fake.base_url, &[]).await;
    let created = call(&bridge.client, "create_task", json!({"input": "hello"})).await;
    let shown = text(&created);
    assert!(!is_error(&created), "{shown}");
    assert!(
        !shown.contains("dashboard: https://v3.handinger.com/worker/"),
        "the worker's page is labelled as the task's dashboard: {shown}"
    );
    assert!(
        shown.contains("worker's page: https://v3.handinger.com/worker/"),
        "{shown}"
    );
    let task_id = structured(&created)["taskId"].as_str().unwrap().to_owned();

    // A server that did not run the turn reads the task record, which has the task's page.
    let other = start(&fake.base_url, &[]).await;
    let looked_up = call(&other.client, "get_task", json!({"taskId": task_id})).await;
    let shown = text(&looked_up);
    assert!(
        shown.contains(&format!(
            "dashboard: https://v3.handinger.com/task/{task_id}"
        )),
        "{shown}"
    );
    assert!(!shown.contains("worker's page"), "one link: {shown}");
}

/// The official TypeScript SDK, asking for progress on calls whose answer comes just as a
/// progress tick is due, over legacy SSE, a Streamable HTTP session and stateless HTTP:
/// every tick arrives before its call's answer, so the SDK does not report a tick for a
/// request it has already seen answered ("unknown token").
///
/// The server's gap after a tick makes that rare, not impossible: a client, or a server,
/// held up for longer than the gap on a loaded machine still sends or reads both at once.
/// So a run may see one unknown token in 64 calls outside the stalls Node notices in itself;
/// without the gap every run saw between 2 and 18. Beside seven other tests on two cores
/// it saw 2 even with the gap, so it runs alone: `.ci/test` runs it after the others
/// (`cargo test --test it -- --ignored`).
#[tokio::test]
#[ignore = "timing-sensitive: .ci/test runs it alone, after the other tests"]
async fn no_progress_tick_follows_its_answer_for_the_typescript_sdk() {
    // Before the fix about one call in ten over legacy SSE saw a tick after its answer
    // (the 2 of 20); sixty-four calls there, sixteen at a time, caught it in every
    // run. The transports run at once, each on its own server.
    futures::future::join_all([
        typescript_progress_scenario("sse", &[], 64),
        typescript_progress_scenario("streamable", &[], 16),
        typescript_progress_scenario("stateless", &["--stateless"], 16),
    ])
    .await;
}

/// `calls` `create_task` calls of tests/ts/progress.mjs over `transport`, sixteen at a
/// time, each answered just as its first progress tick is due. An unknown token the script
/// saw while Node itself was stalled for longer than the server's gap (a loaded machine) is
/// reported apart, as `stalled`: the gap cannot help a client that reads nothing for longer.
async fn typescript_progress_scenario(transport: &str, flags: &[&str], calls: usize) {
    let sdk = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(".ci/node-clients/node_modules/@modelcontextprotocol/sdk");
    assert!(
        sdk.exists(),
        "the official TypeScript MCP SDK is not installed: run `bash .ci/ts-clients.sh`"
    );
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ts/progress.mjs");
    let fake = FakeHandinger::start().await;
    // The answer is due at the first tick.
    fake.set_turn_duration(std::time::Duration::from_millis(1_000));
    let mut args = vec!["--progress-interval", "1"];
    args.extend_from_slice(flags);
    let bridge = start_http(&fake.base_url, &args).await;
    let output = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        tokio::process::Command::new("node")
            .arg(&script)
            .env("SDK_DIR", &sdk)
            .env("MCP_BASE", bridge.url(""))
            .env("TRANSPORT", transport)
            .env("CALLS", calls.to_string())
            .env("AT_ONCE", "16")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the TypeScript progress scenario hung")
    .expect("run node (install Node.js 20+)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{transport}: {stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: serde_json::Value =
        serde_json::from_str(stdout.lines().last().unwrap_or_default()).unwrap();
    eprintln!("{transport}: {seen}");
    assert_eq!(seen["answers"], calls, "{transport}: {seen}");
    assert!(
        seen["unknown"].as_u64().unwrap() <= 1,
        "{transport}: ticks after their answers: {seen}"
    );
    assert_eq!(seen["other"], json!([]), "{transport}: {seen}");
    assert_eq!(fake.posts().len(), calls, "{transport}: one POST a call");
}
