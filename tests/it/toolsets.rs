//! The tool surface beyond the default: toolsets, `--read-only`, the worker, schedule and
//! admin tools, named workers (`ask_<name>`), the config file and the prompt. End to end:
//! the real binary, rmcp's client, the fake Handinger API.

use crate::common;

use std::process::Output;
use std::time::Duration;

use common::*;
use rmcp::model::{GetPromptRequestParams, Tool};
use serde_json::{Value, json};

const ALL_TOOLSETS: &str = "tasks,workers,schedules,admin";

async fn tool_list(bridge: &Bridge) -> Vec<Tool> {
    bridge.client.list_all_tools().await.expect("tools/list")
}

fn names(tools: &[Tool]) -> Vec<String> {
    tools.iter().map(|t| t.name.to_string()).collect()
}

fn tool<'a>(tools: &'a [Tool], name: &str) -> &'a Tool {
    tools
        .iter()
        .find(|t| t.name == name)
        .unwrap_or_else(|| panic!("no tool {name} in {:?}", names(tools)))
}

fn stderr_of(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Waits (bounded) until the bridge's stderr contains `needle`: logs arrive through a pipe.
async fn stderr_mentions(bridge: &Bridge, needle: &str) -> bool {
    for _ in 0..100 {
        if bridge.stderr.lock().unwrap().contains(needle) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

/// A config file in a fresh directory; removed with the returned guard.
struct TempConfig {
    dir: std::path::PathBuf,
    path: std::path::PathBuf,
}

impl TempConfig {
    fn new(text: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "handinger-mcp-toolsets-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let dir = dir.with_extension(format!(
            "{}",
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("handinger-mcp.toml");
        std::fs::write(&path, text).unwrap();
        TempConfig { dir, path }
    }

    fn path(&self) -> &str {
        self.path.to_str().unwrap()
    }
}

impl Drop for TempConfig {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn tool_lists_follow_the_toolsets_and_read_only() {
    let fake = FakeHandinger::start().await;
    let cases: [(&[&str], &[&str]); 9] = [
        (&[], &["create_task", "get_task"]),
        (
            &["--toolsets", "workers"],
            &["create_worker", "get_worker", "update_worker"],
        ),
        (
            &["--toolsets", "schedules"],
            &["cancel_schedule", "create_schedule", "list_schedules"],
        ),
        (&["--toolsets", "admin"], &["archive_task", "delete_worker"]),
        (
            &["--toolsets", "tasks,workers"],
            &[
                "create_task",
                "create_worker",
                "get_task",
                "get_worker",
                "update_worker",
            ],
        ),
        (&["--read-only"], &["get_task"]),
        // `all` leaves out the tools that cannot be undone; they come only by name.
        (
            &["--toolsets", "all"],
            &[
                "cancel_schedule",
                "create_schedule",
                "create_task",
                "create_worker",
                "get_task",
                "get_worker",
                "list_schedules",
                "update_worker",
            ],
        ),
        (
            &["--toolsets", "all,admin"],
            &[
                "archive_task",
                "cancel_schedule",
                "create_schedule",
                "create_task",
                "create_worker",
                "delete_worker",
                "get_task",
                "get_worker",
                "list_schedules",
                "update_worker",
            ],
        ),
        (
            &["--toolsets", "all", "--read-only"],
            &["get_task", "get_worker", "list_schedules"],
        ),
    ];
    for (args, expected) in cases {
        let bridge = start(&fake.base_url, args).await;
        let tools = tool_list(&bridge).await;
        assert_eq!(names(&tools), expected, "with {args:?}");
        for tool in &tools {
            let annotations = tool.annotations.as_ref().expect("annotations");
            assert!(
                tool.output_schema.is_some(),
                "{} has an output schema",
                tool.name
            );
            if args.contains(&"--read-only") {
                assert_eq!(annotations.read_only_hint, Some(true), "{}", tool.name);
            }
        }
        let info = bridge.client.peer_info().expect("server info");
        assert_eq!(
            info.capabilities.prompts.is_some(),
            names(&tools).contains(&"create_task".to_owned()),
            "prompts are advertised exactly when create_task is served ({args:?})"
        );
    }
    // The environment variable works like the flag.
    let mut cmd = command(&fake.base_url, &[]);
    cmd.env("HANDINGER_MCP_TOOLSETS", "schedules, tasks");
    let bridge = start_with(cmd).await;
    assert_eq!(
        names(&tool_list(&bridge).await),
        [
            "cancel_schedule",
            "create_schedule",
            "create_task",
            "get_task",
            "list_schedules"
        ]
    );
    assert!(fake.received().is_empty(), "listing tools calls nothing");
}

#[tokio::test]
async fn all_toolsets_match_the_reviewed_snapshot() {
    let fake = FakeHandinger::start().await;
    let bridge = start(&fake.base_url, &["--toolsets", ALL_TOOLSETS]).await;
    let tools = tool_list(&bridge).await;
    let listing = &snapshots::ALL_TOOLSETS;
    assert_eq!(listing.args, ["--toolsets", ALL_TOOLSETS]);
    snapshots::assert_listing(listing, &tools, "tools/list over stdio").await;

    // `handinger-mcp tools` prints the same for the same settings, with no key or call.
    let mut cmd = tokio::process::Command::new(BINARY);
    cmd.args(["tools", "--toolsets", ALL_TOOLSETS])
        .env_clear()
        .env("HANDINGER_BASE_URL", &fake.base_url);
    let output = run_to_completion(cmd).await;
    assert!(output.status.success(), "{}", stderr_of(&output));
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    let expected = snapshots::expected_json(listing).await;
    assert_eq!(printed, json!({ "tools": expected }));
    assert!(fake.received().is_empty());
}

#[tokio::test]
async fn worker_round_trip_sends_only_the_fields_given() {
    let fake = FakeHandinger::start().await;
    let bridge = start(&fake.base_url, &["--toolsets", "workers"]).await;
    let schema = json!({
        "type": "object",
        "properties": {"verdict": {"type": "string", "enum": ["true", "false", "unclear"]}},
        "required": ["verdict"]
    });
    let created = call(
        &bridge.client,
        "create_worker",
        json!({
            "instructions": "Fact-check the claim. Cite sources.",
            "title": "Fact checker",
            "summary": "Fact-checks short claims",
            "visibility": "private",
            "outputSchema": schema
        }),
    )
    .await;
    assert!(!is_error(&created), "{}", text(&created));
    let worker_id = structured(&created)["workerId"]
        .as_str()
        .expect("workerId")
        .to_owned();
    assert_eq!(structured(&created)["title"], "Fact checker");
    assert_eq!(structured(&created)["outputSchema"], schema);
    assert!(text(&created).contains(&worker_id));
    let writes = fake.writes();
    assert_eq!(writes.len(), 1);
    assert_eq!(
        (writes[0].method.as_str(), writes[0].path.as_str()),
        ("POST", "/api/workers")
    );
    assert_eq!(
        writes[0].body,
        json!({
            "instructions": "Fact-check the claim. Cite sources.",
            "title": "Fact checker",
            "summary": "Fact-checks short claims",
            "visibility": "private",
            "outputSchema": schema
        }),
        "only the given fields are sent"
    );
    assert_eq!(
        writes[0].authorization.as_deref(),
        Some(format!("Bearer {API_KEY}").as_str())
    );

    let found = call(&bridge.client, "get_worker", json!({"workerId": worker_id})).await;
    assert!(!is_error(&found), "{}", text(&found));
    assert_eq!(structured(&found)["workerId"], worker_id.as_str());
    assert_eq!(structured(&found)["title"], "Fact checker");
    assert_eq!(structured(&found)["summary"], "Fact-checks short claims");
    assert_eq!(structured(&found)["lastOutputText"], "last answer");

    let renamed = call(
        &bridge.client,
        "update_worker",
        json!({"workerId": worker_id, "title": "Claim checker"}),
    )
    .await;
    assert!(!is_error(&renamed), "{}", text(&renamed));
    assert_eq!(structured(&renamed)["title"], "Claim checker");
    assert_eq!(
        structured(&renamed)["outputSchema"],
        schema,
        "fields not sent are unchanged"
    );
    let patch = fake.writes().pop().unwrap();
    assert_eq!(patch.method, "PATCH");
    assert_eq!(patch.path, format!("/api/workers/{worker_id}"));
    assert_eq!(patch.body, json!({"title": "Claim checker"}));

    let cleared = call(
        &bridge.client,
        "update_worker",
        json!({"workerId": worker_id, "outputSchema": null}),
    )
    .await;
    assert!(!is_error(&cleared), "{}", text(&cleared));
    assert_eq!(
        fake.writes().pop().unwrap().body,
        json!({"outputSchema": null})
    );
    assert_eq!(structured(&cleared)["outputSchema"], Value::Null);
    let template = fake.template(&worker_id).unwrap();
    assert_eq!(
        template["outputSchema"],
        Value::Null,
        "null cleared the schema"
    );
    assert_eq!(template["title"], "Claim checker");
    assert_eq!(
        template["instructions"],
        "Fact-check the claim. Cite sources."
    );
}

#[tokio::test]
async fn bad_worker_arguments_are_refused_before_anything_is_sent() {
    let fake = FakeHandinger::start().await;
    let bridge = start(&fake.base_url, &["--toolsets", "workers"]).await;
    let cases = [
        ("create_worker", json!({"title": "Nameless"}), "prompt"),
        (
            "create_worker",
            json!({"prompt": "x", "outputSchema": [1]}),
            "outputSchema",
        ),
        (
            "create_worker",
            json!({"prompt": "x", "visibility": "secret"}),
            "secret",
        ),
        (
            "get_worker",
            json!({"workerId": "../tasks/tsk_1"}),
            "workerId",
        ),
        ("get_worker", json!({"workerId": ""}), "workerId is empty"),
        (
            "update_worker",
            json!({"workerId": "wrk_1"}),
            "nothing to change",
        ),
        (
            "update_worker",
            json!({"workerId": "wrk_1", "prompt": "x"}),
            "prompt",
        ),
    ];
    for (tool, arguments, says) in cases {
        let result = call(&bridge.client, tool, arguments.clone()).await;
        assert!(is_error(&result), "{tool} {arguments}");
        assert!(
            text(&result).contains(says),
            "{tool} {arguments}: {}",
            text(&result)
        );
    }
    assert!(fake.received().is_empty(), "{:?}", fake.received());

    // Handinger's own refusal comes back as an actionable tool error.
    let missing = call(
        &bridge.client,
        "get_worker",
        json!({"workerId": "wrk_gone-1"}),
    )
    .await;
    assert!(is_error(&missing));
    let message = text(&missing);
    assert!(
        message.contains("404") && message.contains("wrk_gone-1"),
        "{message}"
    );
    assert!(message.contains("check the taskId/workerId"), "{message}");
}

#[tokio::test]
async fn writes_are_resent_only_when_handinger_certainly_did_not_take_them() {
    let fake = FakeHandinger::start().await;
    let bridge = start(&fake.base_url, &["--toolsets", "workers,schedules"]).await;

    // A 5xx after sending is ambiguous: one POST, and the error says to check first.
    fake.push_write_fault(503, None);
    let failed = call(
        &bridge.client,
        "create_worker",
        json!({"prompt": "Writes haiku"}),
    )
    .await;
    assert!(is_error(&failed));
    let message = text(&failed);
    assert!(message.contains("503"), "{message}");
    assert!(message.contains("may have created it anyway"), "{message}");
    assert_eq!(fake.writes().len(), 1, "not resent");

    // A 429 was not taken: resent after Retry-After, and the resend succeeds.
    fake.push_write_fault(429, Some(0));
    let created = call(
        &bridge.client,
        "create_worker",
        json!({"prompt": "Writes haiku"}),
    )
    .await;
    assert!(!is_error(&created), "{}", text(&created));
    assert_eq!(fake.writes().len(), 3, "the 429 and its resend");
    let worker_id = structured(&created)["workerId"]
        .as_str()
        .unwrap()
        .to_owned();

    fake.push_write_fault(500, None);
    let failed = call(
        &bridge.client,
        "update_worker",
        json!({"workerId": worker_id, "summary": "Short poems"}),
    )
    .await;
    assert!(is_error(&failed));
    assert!(text(&failed).contains("harmless"), "{}", text(&failed));
    assert_eq!(fake.writes().len(), 4, "PATCH not resent");

    fake.push_write_fault(502, None);
    let failed = call(
        &bridge.client,
        "create_schedule",
        json!({"workerId": worker_id, "input": "A haiku a day",
               "when": {"type": "interval", "intervalSeconds": 86400}}),
    )
    .await;
    assert!(
        text(&failed).contains("list_schedules"),
        "{}",
        text(&failed)
    );
    assert_eq!(fake.writes().len(), 5, "schedule POST not resent");

    // Nothing listening: certainly not sent, and the error says calling again is safe.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = start(
        &format!("http://127.0.0.1:{port}"),
        &["--toolsets", "workers"],
    )
    .await;
    let failed = call(&dead.client, "create_worker", json!({"prompt": "x"})).await;
    assert!(is_error(&failed));
    let message = text(&failed);
    assert!(message.contains("nothing reached Handinger"), "{message}");
    assert!(!message.contains("may have created"), "{message}");
}

#[tokio::test]
async fn schedules_of_each_kind_are_created_listed_and_cancelled() {
    let fake = FakeHandinger::start().await;
    fake.add_described_worker("wrk_sched-1", "Digest", "Writes a digest");
    let bridge = start(&fake.base_url, &["--toolsets", "schedules"]).await;
    let kinds = [
        json!({"type": "scheduled", "date": "2026-12-01T09:00:00Z"}),
        json!({"type": "delayed", "delayInSeconds": 3600}),
        json!({"type": "cron", "cron": "0 9 * * 1-5"}),
        json!({"type": "interval", "intervalSeconds": 86400}),
    ];
    let mut ids = Vec::new();
    for when in &kinds {
        let result = call(
            &bridge.client,
            "create_schedule",
            json!({"workerId": "wrk_sched-1", "input": "Summarise the news", "when": when}),
        )
        .await;
        assert!(!is_error(&result), "{when}: {}", text(&result));
        let schedule = &structured(&result)["schedule"];
        assert_eq!(schedule["type"], when["type"]);
        assert_eq!(schedule["when"], *when, "the timing is reported back");
        assert_eq!(schedule["nextRunAt"], "2026-12-01T09:00:00Z");
        ids.push(schedule["scheduleId"].as_str().unwrap().to_owned());
        let sent = fake.writes().pop().unwrap();
        assert_eq!(sent.method, "POST");
        assert_eq!(sent.path, "/api/workers/wrk_sched-1/schedules");
        assert_eq!(
            sent.body,
            json!({"input": "Summarise the news", "budget": "standard", "when": when}),
            "the server's default budget is sent"
        );
    }

    let listed = call(
        &bridge.client,
        "list_schedules",
        json!({"workerId": "wrk_sched-1"}),
    )
    .await;
    assert!(!is_error(&listed), "{}", text(&listed));
    assert_eq!(
        structured(&listed)["schedules"].as_array().unwrap().len(),
        4
    );
    assert!(text(&listed).contains("4 schedules"));

    let cancelled = call(
        &bridge.client,
        "cancel_schedule",
        json!({"workerId": "wrk_sched-1", "scheduleId": ids[2]}),
    )
    .await;
    assert!(!is_error(&cancelled), "{}", text(&cancelled));
    assert_eq!(structured(&cancelled)["cancelled"], true);
    let sent = fake.writes().pop().unwrap();
    assert_eq!(sent.method, "DELETE");
    assert_eq!(
        sent.path,
        format!("/api/workers/wrk_sched-1/schedules/{}", ids[2])
    );
    let listed = call(
        &bridge.client,
        "list_schedules",
        json!({"workerId": "wrk_sched-1"}),
    )
    .await;
    let left: Vec<&str> = structured(&listed)["schedules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["scheduleId"].as_str().unwrap())
        .collect();
    assert_eq!(left, [&ids[0], &ids[1], &ids[3]]);

    let tools = tool_list(&bridge).await;
    let cancel = tool(&tools, "cancel_schedule").annotations.clone().unwrap();
    assert_eq!(cancel.destructive_hint, Some(true));
}

#[tokio::test]
async fn schedule_mistakes_are_refused_with_nothing_sent() {
    let fake = FakeHandinger::start().await;
    fake.add_worker("wrk_sched-1");
    let bridge = start(
        &fake.base_url,
        &["--toolsets", "schedules", "--max-budget", "standard"],
    )
    .await;
    let schedule = |when: Value| json!({"workerId": "wrk_sched-1", "input": "Go", "when": when});
    let cases = [
        (
            schedule(json!({"type": "delayed", "delayInSeconds": 0})),
            "delayInSeconds is 0",
        ),
        (
            schedule(json!({"type": "delayed", "delayInSeconds": 31_536_001})),
            "1 to 31536000",
        ),
        (
            schedule(json!({"type": "weekly", "day": "monday"})),
            "weekly",
        ),
        (
            schedule(json!({"type": "cron", "cron": "every day"})),
            "five fields",
        ),
        (
            schedule(json!({"type": "scheduled", "date": "tomorrow"})),
            "ISO 8601",
        ),
        (
            schedule(json!({"type": "interval", "intervalSeconds": 0})),
            "at least 1",
        ),
        (json!({"workerId": "wrk_sched-1", "input": "Go"}), "when"),
        (
            json!({"workerId": "wrk_sched-1", "input": "Go", "budget": "high",
                   "when": {"type": "cron", "cron": "0 9 * * *"}}),
            "--max-budget",
        ),
        (
            json!({"workerId": "wrk/x", "input": "Go", "when": {"type": "cron", "cron": "0 9 * * *"}}),
            "workerId",
        ),
        (
            json!({"workerId": "wrk_sched-1", "input": " ", "when": {"type": "cron", "cron": "0 9 * * *"}}),
            "input is empty",
        ),
    ];
    for (arguments, says) in cases {
        let result = call(&bridge.client, "create_schedule", arguments.clone()).await;
        assert!(is_error(&result), "{arguments}");
        assert!(
            text(&result).contains(says),
            "{arguments}: {}",
            text(&result)
        );
    }
    let bad_cancel = call(
        &bridge.client,
        "cancel_schedule",
        json!({"workerId": "wrk_sched-1", "scheduleId": "sch_1?x=1"}),
    )
    .await;
    assert!(is_error(&bad_cancel) && text(&bad_cancel).contains("scheduleId"));
    assert!(fake.received().is_empty(), "{:?}", fake.received());
}

#[tokio::test]
async fn admin_tools_are_absent_by_default_and_destructive_when_enabled() {
    let fake = FakeHandinger::start().await;
    let bridge = start(&fake.base_url, &["--toolsets", "all,admin"]).await;
    let tools = tool_list(&bridge).await;
    for name in ["delete_worker", "archive_task"] {
        let annotations = tool(&tools, name).annotations.clone().unwrap();
        assert_eq!(annotations.destructive_hint, Some(true), "{name}");
        assert_eq!(annotations.read_only_hint, Some(false), "{name}");
    }

    let task = call(
        &bridge.client,
        "create_task",
        json!({"input": "Draft a memo"}),
    )
    .await;
    let task_id = structured(&task)["taskId"].as_str().unwrap().to_owned();
    let archived = call(&bridge.client, "archive_task", json!({"taskId": task_id})).await;
    assert!(!is_error(&archived), "{}", text(&archived));
    assert_eq!(structured(&archived)["archived"], true);
    let sent = fake.writes().pop().unwrap();
    assert_eq!(
        (sent.method.as_str(), sent.path.as_str()),
        ("DELETE", format!("/api/tasks/{task_id}").as_str())
    );
    assert!(fake.state.lock().unwrap().archived.contains(&task_id));

    let created = call(
        &bridge.client,
        "create_worker",
        json!({"prompt": "Writes haiku"}),
    )
    .await;
    let worker_id = structured(&created)["workerId"]
        .as_str()
        .unwrap()
        .to_owned();
    let deleted = call(
        &bridge.client,
        "delete_worker",
        json!({"workerId": worker_id}),
    )
    .await;
    assert!(!is_error(&deleted), "{}", text(&deleted));
    assert_eq!(structured(&deleted)["deleted"], true);
    let sent = fake.writes().pop().unwrap();
    assert_eq!(
        (sent.method.as_str(), sent.path.as_str()),
        ("DELETE", format!("/api/workers/{worker_id}").as_str())
    );
    let gone = call(&bridge.client, "get_worker", json!({"workerId": worker_id})).await;
    assert!(is_error(&gone) && text(&gone).contains("404"));

    let bad = call(
        &bridge.client,
        "archive_task",
        json!({"taskId": "../workers/x"}),
    )
    .await;
    assert!(is_error(&bad) && text(&bad).contains("taskId"));

    // Without `admin`, the tools are neither listed nor callable.
    let default = start(&fake.base_url, &["--toolsets", "tasks,workers,schedules"]).await;
    let listed = names(&tool_list(&default).await);
    assert!(
        !listed
            .iter()
            .any(|n| n == "delete_worker" || n == "archive_task"),
        "{listed:?}"
    );
    let before = fake.received().len();
    let mut params = rmcp::model::CallToolRequestParams::new("delete_worker");
    params.arguments = Some(args(json!({"workerId": "wrk_1"})));
    assert!(
        default.client.call_tool(params).await.is_err(),
        "unknown tool"
    );
    assert_eq!(fake.received().len(), before, "nothing was sent");
}

#[tokio::test]
async fn named_worker_is_its_own_tool_described_by_its_title_and_summary() {
    let fake = FakeHandinger::start().await;
    fake.add_described_worker(
        "wrk_fc-1",
        "Fact checker",
        "Fact-checks short claims and returns a verdict with citations.",
    );
    let bridge = start(&fake.base_url, &["--worker", "fact_checker=wrk_fc-1"]).await;
    let tools = tool_list(&bridge).await;
    assert_eq!(
        names(&tools),
        ["ask_fact_checker", "create_task", "get_task"]
    );
    let ask = tool(&tools, "ask_fact_checker");
    let description = ask.description.as_deref().unwrap();
    assert!(
        description.starts_with(
            "Fact checker: Fact-checks short claims and returns a verdict with citations."
        ),
        "{description}"
    );
    assert_eq!(ask.title.as_deref(), Some("Fact checker"));
    let properties = ask.input_schema["properties"].as_object().unwrap();
    let mut arguments: Vec<&str> = properties.keys().map(String::as_str).collect();
    arguments.sort_unstable();
    assert_eq!(arguments, ["budget", "files", "input", "taskId"]);
    assert_eq!(ask.input_schema["required"], json!(["input"]));
    assert_eq!(
        ask.output_schema,
        tool(&tools, "create_task").output_schema,
        "the same result as create_task"
    );
    let annotations = ask.annotations.clone().unwrap();
    assert_eq!(annotations.read_only_hint, Some(false));
    assert_eq!(annotations.destructive_hint, Some(false));
    let instructions = bridge
        .client
        .peer_info()
        .unwrap()
        .instructions
        .clone()
        .unwrap();
    assert!(instructions.contains("ask_<name>"), "{instructions}");
    let lookups = fake.received();
    assert_eq!(lookups.len(), 1, "one lookup at start: {lookups:?}");
    assert_eq!(lookups[0].path, "/api/workers/wrk_fc-1");

    let first = call(
        &bridge.client,
        "ask_fact_checker",
        json!({"input": "The Eiffel Tower is in Rome.", "budget": "low"}),
    )
    .await;
    assert!(!is_error(&first), "{}", text(&first));
    assert!(text(&first).starts_with("answer to: The Eiffel Tower is in Rome. (turn 1)"));
    let task_id = structured(&first)["taskId"].as_str().unwrap().to_owned();
    assert_eq!(structured(&first)["workerId"], "wrk_fc-1");
    let posts = fake.posts();
    assert_eq!(posts[0].body["workerId"], "wrk_fc-1");
    assert_eq!(posts[0].body["budget"], "low");
    assert_eq!(posts[0].body["taskId"], task_id.as_str());

    let follow_up = call(
        &bridge.client,
        "ask_fact_checker",
        json!({"input": "And in Paris?", "taskId": task_id}),
    )
    .await;
    assert!(text(&follow_up).starts_with("answer to: And in Paris? (turn 2)"));
    assert_eq!(fake.turns(&task_id).len(), 2);

    // The worker is fixed: a call cannot move it, and bad arguments send nothing.
    let before = fake.received().len();
    for (arguments, says) in [
        (json!({"input": "x", "workerId": "wrk_other"}), "workerId"),
        (json!({"input": " "}), "input is empty"),
        (json!({"input": "x", "budget": "unlimited"}), "--max-budget"),
    ] {
        let result = call(&bridge.client, "ask_fact_checker", arguments.clone()).await;
        assert!(is_error(&result), "{arguments}");
        assert!(
            text(&result).contains(says),
            "{arguments}: {}",
            text(&result)
        );
    }
    assert_eq!(fake.received().len(), before);
}

#[tokio::test]
async fn named_worker_tool_waits_and_collects_like_create_task() {
    let fake = FakeHandinger::start().await;
    fake.add_described_worker("wrk_slow-1", "Slow researcher", "Takes its time.");
    let bridge = start(
        &fake.base_url,
        &["--worker", "researcher=wrk_slow-1", "--max-wait", "1"],
    )
    .await;
    let running = call(
        &bridge.client,
        "ask_researcher",
        json!({"input": "Survey the field sleep=2500"}),
    )
    .await;
    assert!(!is_error(&running), "{}", text(&running));
    let data = structured(&running);
    assert_eq!(data["status"], "running");
    let task_id = data["taskId"].as_str().unwrap().to_owned();
    assert!(data["nextStep"].as_str().unwrap().contains("get_task"));

    // Each get_task waits at most --max-wait (1 s here); ask until the answer is in.
    let mut collected = None;
    for _ in 0..60 {
        let result = call(
            &bridge.client,
            "get_task",
            json!({"taskId": task_id, "wait": 30}),
        )
        .await;
        if structured(&result)["status"] != "running" {
            collected = Some(result);
            break;
        }
    }
    let collected = collected.expect("the turn finished");
    assert!(!is_error(&collected), "{}", text(&collected));
    assert_eq!(structured(&collected)["status"], "completed");
    assert!(text(&collected).starts_with("answer to: Survey the field sleep=2500 (turn 1)"));
    assert_eq!(fake.posts().len(), 1, "the turn was posted once");
}

#[tokio::test]
async fn named_worker_falls_back_to_its_name_when_the_lookup_fails() {
    let fake = FakeHandinger::start().await;
    let mut cmd = command(&fake.base_url, &[]);
    cmd.env("HANDINGER_MCP_WORKERS", "fact_checker=wrk_missing-1");
    let bridge = start_with(cmd).await;
    let tools = tool_list(&bridge).await;
    let ask = tool(&tools, "ask_fact_checker");
    let description = ask.description.as_deref().unwrap();
    assert!(
        description.starts_with("The Handinger worker \"fact checker\" (wrk_missing-1)."),
        "{description}"
    );
    assert_eq!(ask.title.as_deref(), Some("Ask fact_checker"));
    assert!(
        stderr_mentions(&bridge, "could not fetch the worker's title and summary").await,
        "a warning explains the fallback: {}",
        bridge.stderr.lock().unwrap()
    );
    let result = call(
        &bridge.client,
        "ask_fact_checker",
        json!({"input": "Check this"}),
    )
    .await;
    assert_eq!(fake.posts()[0].body["workerId"], "wrk_missing-1");
    assert!(!is_error(&result), "{}", text(&result));
}

#[tokio::test]
async fn read_only_serves_no_named_worker_tools() {
    let fake = FakeHandinger::start().await;
    fake.add_worker("wrk_fc-1");
    let bridge = start(
        &fake.base_url,
        &["--read-only", "--worker", "fact_checker=wrk_fc-1"],
    )
    .await;
    assert_eq!(names(&tool_list(&bridge).await), ["get_task"]);
    assert!(stderr_mentions(&bridge, "--read-only").await);

    // Named workers alone still get get_task, which their results point to.
    let bridge = start(
        &fake.base_url,
        &["--toolsets", "workers", "--worker", "fact_checker=wrk_fc-1"],
    )
    .await;
    assert_eq!(
        names(&tool_list(&bridge).await),
        [
            "ask_fact_checker",
            "create_worker",
            "get_task",
            "get_worker",
            "update_worker"
        ]
    );
}

#[tokio::test]
async fn bad_settings_stop_the_server_at_start_with_a_clear_message() {
    let fake = FakeHandinger::start().await;
    // (arguments, environment, what stderr must say)
    type Case<'a> = (&'a [&'a str], &'a [(&'a str, &'a str)], &'a [&'a str]);
    let cases: [Case; 6] = [
        (
            &["--worker", "fact checker=wrk_1"],
            &[],
            &["\"fact checker\"", "MCP tool names", "letters, digits"],
        ),
        (&["--worker", "fact_checker"], &[], &["NAME=WORKER_ID"]),
        (&["--worker", "x=wrk/1"], &[], &["worker id", "'/'"]),
        (
            &["--worker", "a=wrk_1", "--worker", "a=wrk_2"],
            &[],
            &["\"a\"", "twice", "ask_a"],
        ),
        (
            &[],
            &[("HANDINGER_MCP_WORKERS", "dup=wrk_1,dup=wrk_2")],
            &["\"dup\"", "twice"],
        ),
        (
            &["--toolsets", "tasks,repos"],
            &[],
            &["repos", "tasks, workers, schedules, admin"],
        ),
    ];
    for (args, env, says) in cases {
        let mut cmd = command(&fake.base_url, args);
        for (name, value) in env {
            cmd.env(name, value);
        }
        let output = run_to_completion(cmd).await;
        let stderr = stderr_of(&output);
        assert!(!output.status.success(), "{args:?} {env:?} started");
        for needle in says {
            assert!(stderr.contains(needle), "{args:?} {env:?}: {stderr}");
        }
    }
    assert!(fake.received().is_empty(), "nothing was sent");
}

#[tokio::test]
async fn config_file_is_read_and_flags_override_it() {
    let fake = FakeHandinger::start().await;
    fake.add_described_worker("wrk_help-1", "Helper", "Helps.");
    let config = TempConfig::new(
        "# handinger-mcp settings\n\
         toolsets = [\"tasks\", \"workers\"]\n\
         max-budget = \"low\"\n\
         default_budget = \"low\"\n\
         \n\
         [workers]\n\
         helper = \"wrk_help-1\"\n",
    );

    let bridge = start(&fake.base_url, &["--config", config.path()]).await;
    assert_eq!(
        names(&tool_list(&bridge).await),
        [
            "ask_helper",
            "create_task",
            "create_worker",
            "get_task",
            "get_worker",
            "update_worker"
        ]
    );
    let refused = call(
        &bridge.client,
        "create_task",
        json!({"input": "x", "budget": "high"}),
    )
    .await;
    assert!(
        text(&refused).contains("limit \"low\""),
        "{}",
        text(&refused)
    );

    // Flags (and environment variables) win over the file, setting by setting.
    let mut cmd = command(
        &fake.base_url,
        &["--max-budget", "high", "--toolsets", "tasks"],
    );
    cmd.env("HANDINGER_MCP_CONFIG", config.path());
    let bridge = start_with(cmd).await;
    assert_eq!(
        names(&tool_list(&bridge).await),
        ["ask_helper", "create_task", "get_task"]
    );
    let accepted = call(
        &bridge.client,
        "create_task",
        json!({"input": "y", "budget": "high"}),
    )
    .await;
    assert!(!is_error(&accepted), "{}", text(&accepted));
    let posts = fake.posts();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].body["budget"], "high");

    // A mistake in the file names the file and the setting.
    let bad = TempConfig::new("max-wiat = 10\n");
    let output = run_to_completion(command(&fake.base_url, &["--config", bad.path()])).await;
    let stderr = stderr_of(&output);
    assert!(!output.status.success());
    assert!(
        stderr.contains("max-wiat") && stderr.contains(bad.path()),
        "{stderr}"
    );
    let output = run_to_completion(command(
        &fake.base_url,
        &["--config", "/nonexistent/handinger.toml"],
    ))
    .await;
    assert!(stderr_of(&output).contains("could not read the config file"));
}

#[tokio::test]
async fn delegate_research_prompt_asks_for_a_complete_create_task_call() {
    let fake = FakeHandinger::start().await;
    let bridge = start(&fake.base_url, &["--max-budget", "high"]).await;
    let prompts = bridge.client.list_all_prompts().await.unwrap();
    assert_eq!(prompts.len(), 1);
    assert_eq!(prompts[0].name, "delegate_research");
    let arguments = prompts[0].arguments.clone().unwrap();
    let topic = arguments.iter().find(|a| a.name == "topic").unwrap();
    assert_eq!(topic.required, Some(true));
    let budget = arguments.iter().find(|a| a.name == "budget").unwrap();
    assert_eq!(budget.required, Some(false));

    let mut params = GetPromptRequestParams::new("delegate_research");
    params.arguments = Some(args(
        json!({"topic": "EU battery recycling rules", "budget": "high"}),
    ));
    let prompt = bridge.client.get_prompt(params).await.unwrap();
    assert_eq!(prompt.messages.len(), 1);
    let message = prompt.messages[0].content.as_text().unwrap().text.clone();
    assert!(message.contains("EU battery recycling rules"), "{message}");
    assert!(
        message.contains("create_task") && message.contains("budget \"high\""),
        "{message}"
    );
    assert!(message.contains("get_task"), "{message}");

    let mut params = GetPromptRequestParams::new("delegate_research");
    params.arguments = Some(args(json!({"topic": "x", "budget": "unlimited"})));
    let error = bridge.client.get_prompt(params).await.unwrap_err();
    assert!(error.to_string().contains("--max-budget"), "{error}");
    assert!(fake.received().is_empty(), "a prompt sends nothing");
}

#[tokio::test]
async fn doctor_checks_the_named_workers_and_keeps_the_tool_settings() {
    let fake = FakeHandinger::start().await;
    fake.add_described_worker("wrk_fc-1", "Fact checker", "Checks claims.");
    let output = run_to_completion(command(
        &fake.base_url,
        &[
            "doctor",
            "--toolsets",
            "tasks,workers",
            "--worker",
            "fact_checker=wrk_fc-1",
            "--worker",
            "gone=wrk_gone-1",
        ],
    ))
    .await;
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(!output.status.success(), "{stdout}");
    assert!(
        stdout.contains(
            "ok       named worker: ask_fact_checker: wrk_fc-1 exists (\"Fact checker\")"
        ),
        "{stdout}"
    );
    let problem = stdout
        .lines()
        .find(|l| l.starts_with("PROBLEM  named worker: ask_gone"))
        .unwrap_or_else(|| panic!("no problem line for ask_gone in {stdout}"));
    assert!(
        problem.contains("404") && problem.contains("--worker gone="),
        "{problem}"
    );
    let code_line = stdout
        .lines()
        .find(|l| l.starts_with("claude mcp add handinger"))
        .expect("a Claude Code command");
    assert!(
        code_line.contains("HANDINGER_MCP_TOOLSETS=tasks,workers"),
        "{code_line}"
    );
    assert!(
        code_line.contains("HANDINGER_MCP_WORKERS=fact_checker=wrk_fc-1,gone=wrk_gone-1"),
        "{code_line}"
    );
}

/// A client that declares the MCP tasks extension (speaking 2026-07-28, which defines it).
#[derive(Clone, Default)]
struct TasksClient;

impl rmcp::ClientHandler for TasksClient {
    fn get_info(&self) -> rmcp::model::ClientConfig {
        rmcp::model::ClientConfig::new(
            rmcp::model::ClientCapabilities::builder()
                .enable_tasks()
                .build(),
            rmcp::model::Implementation::new("tasks-client", "1"),
        )
    }
}

#[tokio::test]
async fn named_worker_tool_answers_mcp_tasks_like_create_task() {
    use rmcp::model::CallToolResponse;

    let fake = FakeHandinger::start().await;
    fake.add_described_worker("wrk_fc-1", "Fact checker", "Checks claims.");
    let transport = rmcp::transport::TokioChildProcess::new(command(
        &fake.base_url,
        &["--worker", "fc=wrk_fc-1"],
    ))
    .unwrap();
    let client =
        rmcp::service::ClientServiceExt::serve_with_lifecycle(TasksClient, transport, modern())
            .await
            .expect("MCP discover");
    let mut params = rmcp::model::CallToolRequestParams::new("ask_fc");
    params.arguments = Some(args(json!({"input": "Is water wet? sleep=300"})));
    let response = client.call_tool_once(params).await.unwrap();
    let CallToolResponse::Task(created) = response else {
        panic!("expected an MCP task, got {response:?}");
    };
    let task_id = created.task.task_id.clone();
    let result = completed_mcp_task(&client, &task_id).await;
    assert_eq!(result["structuredContent"]["workerId"], "wrk_fc-1");
    assert_eq!(fake.posts()[0].body["workerId"], "wrk_fc-1");
    assert_eq!(fake.turns(&task_id).len(), 1);
}
