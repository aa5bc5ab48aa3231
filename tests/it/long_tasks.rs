//! Long-running tasks: progress, the bounded wait with a resumable taskId, collection with
//! get_task, cancellation, reconciliation after ambiguous failures, MCP tasks, shutdown.

use crate::common;

use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, CancelTaskParams, ClientCapabilities,
    ClientConfig, GetTaskParams, Implementation, ProgressNotificationParam, TaskStatus,
};
use rmcp::service::ClientServiceExt;
use rmcp::service::{NotificationContext, RunningService};
use rmcp::transport::TokioChildProcess;
use rmcp::{ClientHandler, RoleClient, ServiceExt};
use serde_json::{Value, json};

/// A client that records progress notifications and may declare the MCP tasks extension
/// (then speaking protocol 2026-07-28, the first to define task handles).
#[derive(Clone, Default)]
struct RecordingClient {
    progress: Arc<Mutex<Vec<ProgressNotificationParam>>>,
    tasks: bool,
}

impl ClientHandler for RecordingClient {
    async fn on_progress(
        &self,
        params: ProgressNotificationParam,
        _: NotificationContext<RoleClient>,
    ) {
        self.progress.lock().unwrap().push(params);
    }

    fn get_info(&self) -> ClientConfig {
        let capabilities = if self.tasks {
            ClientCapabilities::builder().enable_tasks().build()
        } else {
            ClientCapabilities::default()
        };
        ClientConfig::new(capabilities, Implementation::new("recording-client", "1"))
    }
}

async fn start_recording(
    base_url: &str,
    args: &[&str],
    handler: RecordingClient,
) -> RunningService<RoleClient, RecordingClient> {
    let transport = TokioChildProcess::builder(command(base_url, args))
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
        .0;
    if handler.tasks {
        // Task handles exist from protocol 2026-07-28 on, which has no initialize.
        return handler
            .serve_with_lifecycle(transport, modern())
            .await
            .expect("MCP discover");
    }
    handler.serve(transport).await.expect("MCP initialize")
}

fn request(tool: &str, arguments: Value) -> CallToolRequestParams {
    let mut params = CallToolRequestParams::new(tool.to_owned());
    params.arguments = Some(args(arguments));
    params
}

/// Calls get_task until the task is no longer running (each call waits up to --max-wait).
async fn collect<S: rmcp::service::Service<RoleClient>>(
    client: &RunningService<RoleClient, S>,
    task_id: &str,
) -> CallToolResult
where
    RunningService<RoleClient, S>: std::ops::Deref<Target = rmcp::Peer<RoleClient>>,
{
    for _ in 0..60 {
        let result = client
            .call_tool(request("get_task", json!({"taskId": task_id, "wait": 30})))
            .await
            .unwrap();
        if structured(&result)["status"] != "running" {
            return result;
        }
    }
    panic!("task {task_id} never finished");
}

#[tokio::test]
async fn progress_notifications_increase_and_arrive_at_the_interval() {
    let fake = FakeHandinger::start().await;
    let handler = RecordingClient::default();
    let client = start_recording(
        &fake.base_url,
        &["--progress-interval", "1"],
        handler.clone(),
    )
    .await;
    // rmcp's client gives every request a progress token of its own.
    let params = request(
        "create_task",
        json!({"input": "research sleep=3500", "budget": "high"}),
    );
    let result = client.call_tool(params).await.unwrap();
    assert_eq!(
        structured(&result)["status"],
        "completed",
        "{}",
        text(&result)
    );

    let progress = handler.progress.lock().unwrap().clone();
    assert!(progress.len() >= 2, "only {} notifications", progress.len());
    for pair in progress.windows(2) {
        assert!(
            pair[1].progress > pair[0].progress,
            "progress must increase: {progress:?}"
        );
        // Values are the server's own elapsed seconds: one per interval, never early.
        assert!(pair[1].progress - pair[0].progress >= 0.9, "{progress:?}");
    }
    let message = progress[0].message.clone().unwrap_or_default();
    assert!(
        message.contains("worker running") && message.contains("budget high"),
        "{message}"
    );
    let token = &progress[0].progress_token;
    assert!(
        progress.iter().all(|p| &p.progress_token == token),
        "one token per call"
    );
}

#[tokio::test]
async fn a_long_task_returns_its_task_id_at_max_wait_and_get_task_collects_it() {
    let fake = FakeHandinger::start().await;
    let bridge = start(&fake.base_url, &["--max-wait", "1"]).await;
    let first = call(
        &bridge.client,
        "create_task",
        json!({"input": "deep research sleep=3000"}),
    )
    .await;
    assert!(!is_error(&first), "{}", text(&first));
    let data = structured(&first);
    assert_eq!(data["status"], "running");
    let task_id = data["taskId"].as_str().unwrap().to_owned();
    assert!(data["nextStep"].as_str().unwrap().contains("get_task"));
    assert!(text(&first).contains(&task_id) && text(&first).contains("get_task"));

    let done = collect(&bridge.client, &task_id).await;
    assert!(!is_error(&done), "{}", text(&done));
    let data = structured(&done);
    assert_eq!(data["status"], "completed");
    assert_eq!(
        data["outputText"],
        "answer to: deep research sleep=3000 (turn 1)"
    );
    assert_eq!(
        data["sources"].as_array().unwrap().len(),
        2,
        "sources survive the early return"
    );
    assert_eq!(data["files"][0]["filename"], "report.csv");
    assert_eq!(
        data["totals"]["turnCount"], 1,
        "the task record adds totals"
    );
    assert_eq!(
        done.content
            .iter()
            .filter(|c| c.as_resource_link().is_some())
            .count(),
        3
    );
    assert_eq!(
        fake.posts().len(),
        1,
        "exactly one POST for the whole story"
    );
}

#[tokio::test]
async fn repeating_create_task_while_the_turn_runs_joins_it_instead_of_posting_again() {
    let fake = FakeHandinger::start().await;
    let bridge = start(&fake.base_url, &["--max-wait", "1"]).await;
    let first = call(
        &bridge.client,
        "create_task",
        json!({"input": "slow sleep=2500"}),
    )
    .await;
    let task_id = structured(&first)["taskId"].as_str().unwrap().to_owned();
    let again = call(
        &bridge.client,
        "create_task",
        json!({"input": "slow sleep=2500", "taskId": task_id}),
    )
    .await;
    assert!(!is_error(&again), "{}", text(&again));
    let other = call(
        &bridge.client,
        "create_task",
        json!({"input": "something else", "taskId": task_id}),
    )
    .await;
    assert!(
        is_error(&other),
        "a different follow-up must wait for the running turn"
    );
    assert!(text(&other).contains("get_task"), "{}", text(&other));
    collect(&bridge.client, &task_id).await;
    assert_eq!(fake.posts().len(), 1);
    assert_eq!(fake.turns(&task_id).len(), 1);
}

#[tokio::test]
async fn a_cancelled_call_leaves_the_server_serving_and_the_task_collectable() {
    let fake = FakeHandinger::start().await;
    let bridge = start(&fake.base_url, &[]).await;
    // Dropping the call's future sends notifications/cancelled.
    let abandoned = tokio::time::timeout(
        Duration::from_millis(700),
        call(
            &bridge.client,
            "create_task",
            json!({"input": "long sleep=2000"}),
        ),
    )
    .await;
    assert!(
        abandoned.is_err(),
        "the call was still waiting when cancelled"
    );

    let quick = call(&bridge.client, "create_task", json!({"input": "quick"})).await;
    assert!(!is_error(&quick), "the server still serves");

    let posts = fake.posts();
    let task_id = posts[0].body["taskId"].as_str().unwrap().to_owned();
    let done = collect(&bridge.client, &task_id).await;
    assert_eq!(
        structured(&done)["outputText"],
        "answer to: long sleep=2000 (turn 1)"
    );
    assert_eq!(fake.posts().len(), 2, "one POST per task, none repeated");
}

#[tokio::test]
async fn a_failure_after_the_turn_was_recorded_ends_in_the_answer_not_an_error() {
    for fault in [Fault::RecordThenStatus(502), Fault::Cut] {
        let fake = FakeHandinger::start().await;
        let bridge = start(&fake.base_url, &[]).await;
        fake.push_fault(fault.clone());
        let result = call(&bridge.client, "create_task", json!({"input": "x"})).await;
        assert!(!is_error(&result), "{fault:?}: {}", text(&result));
        let data = structured(&result);
        assert_eq!(data["status"], "completed", "{fault:?}");
        assert_eq!(
            data["outputText"].as_str().unwrap().lines().next(),
            Some("answer to: x (turn 1)")
        );
        assert!(
            text(&result).contains("failed while waiting"),
            "{}",
            text(&result)
        );
        assert_eq!(fake.posts().len(), 1, "{fault:?}: no resend");
        let task_id = data["taskId"].as_str().unwrap();
        assert_eq!(fake.turns(task_id).len(), 1, "{fault:?}: no duplicate turn");
    }
}

#[tokio::test]
async fn two_long_tasks_do_not_block_each_other_or_a_quick_call() {
    let fake = FakeHandinger::start().await;
    let bridge = Arc::new(start(&fake.base_url, &[]).await);
    let slow = |input: &'static str| {
        let bridge = bridge.clone();
        tokio::spawn(
            async move { call(&bridge.client, "create_task", json!({"input": input})).await },
        )
    };
    let first = slow("first sleep=3000");
    let second = slow("second sleep=3000");
    // Wait until both slow turns are running upstream.
    while fake.posts().len() < 2 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let quick = call(&bridge.client, "create_task", json!({"input": "quick"})).await;
    assert!(!is_error(&quick));
    let running: Vec<_> = fake
        .state
        .lock()
        .unwrap()
        .tasks
        .values()
        .flatten()
        .filter(|t| t.status == "running")
        .map(|t| t.input.clone())
        .collect();
    assert_eq!(
        running.len(),
        2,
        "the quick call finished while both slow ones ran: {running:?}"
    );
    for (handle, input) in [(first, "first"), (second, "second")] {
        let result = handle.await.unwrap();
        assert!(
            text(&result).starts_with(&format!("answer to: {input}")),
            "{}",
            text(&result)
        );
    }
}

#[tokio::test]
async fn mcp_tasks_clients_get_a_task_at_once_and_poll_it_to_the_answer() {
    let fake = FakeHandinger::start().await;
    let handler = RecordingClient {
        tasks: true,
        ..Default::default()
    };
    let client = start_recording(&fake.base_url, &[], handler).await;
    let response = client
        .call_tool_once(request(
            "create_task",
            json!({"input": "report sleep=1500"}),
        ))
        .await
        .unwrap();
    let CallToolResponse::Task(created) = response else {
        panic!("expected an MCP task, got {response:?}");
    };
    assert_eq!(created.task.status, TaskStatus::Working);
    let task_id = created.task.task_id.clone();
    assert!(
        task_id.starts_with("tsk_"),
        "the MCP task id is the Handinger taskId"
    );

    let result = completed_mcp_task(&client, &task_id).await;
    let result: CallToolResult = serde_json::from_value(Value::Object(result)).unwrap();
    assert_eq!(
        structured(&result)["outputText"],
        "answer to: report sleep=1500 (turn 1)"
    );
    assert_eq!(fake.turns(&task_id).len(), 1);

    // Cancelling says so honestly: the MCP task is cancelled, the Handinger task goes on.
    let response = client
        .call_tool_once(request(
            "create_task",
            json!({"input": "another sleep=1500"}),
        ))
        .await
        .unwrap();
    let CallToolResponse::Task(second) = response else {
        panic!("expected a task")
    };
    client
        .cancel_task(CancelTaskParams::new(second.task.task_id.clone()))
        .await
        .unwrap();
    let got = client
        .get_task(GetTaskParams::new(second.task.task_id.clone()))
        .await
        .unwrap();
    assert_eq!(got.task.status(), TaskStatus::Cancelled);
    assert!(
        got.task
            .task
            .status_message
            .unwrap_or_default()
            .contains("keeps running")
    );

    // A task the server never held is looked up on Handinger.
    fake.state
        .lock()
        .unwrap()
        .tasks
        .insert("tsk_from_elsewhere".into(), vec![]);
    let got = client
        .get_task(GetTaskParams::new("tsk_from_elsewhere"))
        .await
        .unwrap();
    assert_eq!(
        got.task.status(),
        TaskStatus::Working,
        "a pending Handinger task is working"
    );
}

/// Spawns the binary by hand, sends a slow create_task, then ends the session with `end`.
/// The waiting call must still be answered with its resumable taskId before the exit.
async fn waiting_call_survives(end: &str) {
    let fake = FakeHandinger::start().await;
    let mut raw = rpc::RawStdio::spawn(command(&fake.base_url, &[]), Duration::from_secs(20));
    for message in [
        rpc::initialize(1, "2025-11-25", "raw"),
        rpc::initialized(),
        rpc::tool_call(2, "create_task", json!({"input": "slow sleep=30000"})),
    ] {
        raw.send(&message).await;
    }
    poll::until_true("the create_task POST reaches Handinger", || {
        !fake.posts().is_empty()
    })
    .await;
    match end {
        "eof" => raw.close_stdin(),
        signal => {
            let pid = raw.child.id().unwrap().to_string();
            let status = std::process::Command::new("kill")
                .args([signal, &pid])
                .status()
                .unwrap();
            assert!(status.success());
        }
    }
    let mut answer = None;
    while let Some(message) = raw.next_message().await {
        if message["id"] == 2 {
            answer = Some(message);
        }
    }
    let answer = answer.unwrap_or_else(|| panic!("{end}: the waiting call got no answer"));
    let data = &answer["result"]["structuredContent"];
    assert_eq!(data["status"], "running", "{end}: {answer}");
    assert_eq!(data["taskId"], fake.posts()[0].body["taskId"], "{end}");
    let status = raw.exit_status().await;
    assert!(status.success(), "{end}: a graceful exit, got {status:?}");
}

#[tokio::test]
async fn stdin_eof_answers_waiting_calls_with_their_task_id() {
    waiting_call_survives("eof").await;
}

#[tokio::test]
async fn sigterm_answers_waiting_calls_with_their_task_id() {
    waiting_call_survives("-TERM").await;
}

/// Another replica (or this one after a restart) holds nothing for the task, so get_task
/// follows it through `GET /api/tasks/{id}` until it finishes.
#[tokio::test]
async fn get_task_on_another_replica_follows_the_task_upstream() {
    let fake = FakeHandinger::start().await;
    let first = start(&fake.base_url, &["--max-wait", "1"]).await;
    let started = call(
        &first.client,
        "create_task",
        json!({"input": "audit sleep=2500"}),
    )
    .await;
    assert_eq!(structured(&started)["status"], "running");
    let task_id = structured(&started)["taskId"].as_str().unwrap().to_owned();

    let second = start(&fake.base_url, &[]).await;
    let done = call(
        &second.client,
        "get_task",
        json!({"taskId": task_id, "wait": 30}),
    )
    .await;
    assert!(!is_error(&done), "{}", text(&done));
    let data = structured(&done);
    assert_eq!(data["status"], "completed");
    assert_eq!(data["outputText"], "answer to: audit sleep=2500 (turn 1)");
    assert_eq!(data["turns"].as_array().unwrap().len(), 1);
    assert_eq!(fake.posts().len(), 1, "the second replica only looked");
    assert!(
        fake.received().iter().filter(|r| r.method == "GET").count() >= 2,
        "it polled while the task ran"
    );
}

/// The task and its turns are two reads: a turn posted between them once gave "completed"
/// with an empty answer (the task read before the POST, the turns after). A record whose
/// parts disagree is read again.
#[tokio::test]
async fn a_lookup_straddling_a_new_turn_is_read_again() {
    let fake = FakeHandinger::start().await;
    let a = start(&fake.base_url, &["--max-wait", "1"]).await;
    let b = start(&fake.base_url, &[]).await;
    let task = "tsk_torn_read";
    let first = call(
        &a.client,
        "create_task",
        json!({"input": "first", "taskId": task}),
    )
    .await;
    assert!(!is_error(&first), "{}", text(&first));

    fake.state.lock().unwrap().hold_turn_list = Some(Arc::new(tokio::sync::Notify::new()));
    let looked = call(&b.client, "get_task", json!({"taskId": task}));
    let posted = async {
        let turn_lists = || {
            fake.received()
                .iter()
                .filter(|r| r.path.ends_with("/turns"))
                .count()
        };
        let before = turn_lists();
        common::poll::until_true("B asked for the turns", || turn_lists() > before).await;
        call(
            &a.client,
            "create_task",
            json!({"input": "second sleep=3000", "taskId": task}),
        )
        .await
    };
    let (looked, posted) = tokio::join!(looked, posted);
    assert_eq!(
        structured(&posted)["status"],
        "running",
        "{}",
        text(&posted)
    );
    let data = structured(&looked);
    assert_eq!(data["status"], "running", "{}", text(&looked));
}
