//! The bridge against both shapes of Handinger's task lookup: today's (`{task}`, turns from
//! `GET /api/tasks/{id}/turns`) and the one before 2026-07 (`{task, turns}`, no turns
//! endpoint). What must hold on both: an ambiguous POST failure after the turn was recorded
//! ends in the recovered answer with one POST in all; a fresh server shows every turn with
//! its output, its credits and its files; and a turn list that cannot be read never makes
//! the bridge call a resend safe.

use crate::common;

use common::fake::{SCHEDULE_TIME_ZONE, TURN_CREDITS};
use common::*;
use rmcp::model::{ReadResourceRequestParams, ResourceContents};
use serde_json::json;

#[derive(Debug, Clone, Copy)]
enum Shape {
    Current,
    Legacy,
}

async fn fake(shape: Shape) -> FakeHandinger {
    let fake = FakeHandinger::start().await;
    if let Shape::Legacy = shape {
        fake.use_legacy_task_shape();
    }
    fake
}

/// The resend advice must agree with itself: never "safe" next to "may have recorded".
fn assert_never_calls_a_resend_safe(message: &str) {
    assert!(!message.contains("safe"), "{message}");
    for needle in ["do not resend", "get_task"] {
        assert!(
            message.contains(needle),
            "{needle:?} missing from {message}"
        );
    }
}

async fn ambiguous_failures_end_in_the_answer_with_one_post(shape: Shape) {
    let fake = fake(shape).await;
    let bridge = start(&fake.base_url, &[]).await;
    for (n, fault) in [
        Fault::Cut,
        Fault::RecordThenStatus(502),
        Fault::RecordThenMalformed,
    ]
    .into_iter()
    .enumerate()
    {
        let kind = fault.kind();
        fake.push_fault(fault);
        let task_id = format!("tsk_ambiguous_{n}");
        let result = call(
            &bridge.client,
            "create_task",
            json!({"input": format!("question {n}"), "taskId": task_id}),
        )
        .await;
        assert!(!is_error(&result), "{shape:?} {kind}: {}", text(&result));
        let data = structured(&result);
        assert_eq!(data["status"], "completed", "{shape:?} {kind}");
        assert!(
            data["outputText"]
                .as_str()
                .unwrap()
                .starts_with(&format!("answer to: question {n} (turn 1)")),
            "{shape:?} {kind}: {data}"
        );
        // The turn record carries the credits and the files the POST answer would have, and
        // the worker's state for the task its sources.
        assert_eq!(data["usage"]["credits"], json!(TURN_CREDITS as f64));
        assert_eq!(data["files"][0]["filename"], "report.csv");
        assert_eq!(data["sources"].as_array().map(Vec::len), Some(2), "{data}");
        let posts: Vec<_> = fake
            .posts()
            .into_iter()
            .filter(|p| p.body["taskId"] == task_id.as_str())
            .collect();
        assert_eq!(posts.len(), 1, "{shape:?} {kind}: one POST, never two");
        assert_eq!(fake.turns(&task_id).len(), 1, "{shape:?} {kind}");
    }
}

#[tokio::test]
async fn ambiguous_failures_after_recording_recover_the_answer_current_shape() {
    ambiguous_failures_end_in_the_answer_with_one_post(Shape::Current).await;
}

#[tokio::test]
async fn ambiguous_failures_after_recording_recover_the_answer_legacy_shape() {
    ambiguous_failures_end_in_the_answer_with_one_post(Shape::Legacy).await;
}

async fn a_fresh_server_shows_every_turn(shape: Shape) {
    let fake = fake(shape).await;
    let file_url = format!("{}/files/notes.txt", fake.base_url);
    fake.set_answer_files(json!([
        {"filename": "notes.txt", "mediaType": "text/plain", "url": file_url, "size": 5}
    ]));
    fake.serve_file_bytes("notes.txt", "text/plain", b"hello");
    let task_id = "tsk_two_turns";
    {
        let first = start(&fake.base_url, &[]).await;
        for input in ["first question", "second question"] {
            let result = call(
                &first.client,
                "create_task",
                json!({"input": input, "taskId": task_id}),
            )
            .await;
            assert!(!is_error(&result), "{}", text(&result));
        }
    }

    // Another process: it holds nothing of the task, so everything comes from Handinger.
    let fresh = start(&fake.base_url, &[]).await;
    let result = call(&fresh.client, "get_task", json!({"taskId": task_id})).await;
    assert!(!is_error(&result), "{shape:?}: {}", text(&result));
    let data = structured(&result);
    assert_eq!(data["status"], "completed");
    assert_eq!(
        data["outputText"], "answer to: second question (turn 2)",
        "{shape:?}: the latest turn's answer"
    );
    assert!(
        text(&result).contains("answer to: second question (turn 2)"),
        "{shape:?}: {}",
        text(&result)
    );
    let turns = data["turns"].as_array().unwrap();
    assert_eq!(turns.len(), 2, "{shape:?}: {data}");
    for (turn, input) in turns.iter().zip(["first question", "second question"]) {
        assert_eq!(turn["input"], input);
        assert!(
            turn["outputText"]
                .as_str()
                .unwrap()
                .starts_with(&format!("answer to: {input}")),
            "{turn}"
        );
        assert_eq!(turn["credits"], json!(TURN_CREDITS as f64));
    }
    assert_eq!(data["totals"]["credits"], json!(2.0 * TURN_CREDITS as f64));
    assert_eq!(
        data["sources"][0]["url"], "https://weather.example/bcn",
        "{shape:?}: the latest turn's sources, from the worker's state for the task"
    );
    assert_eq!(data["usage"]["credits"], json!(TURN_CREDITS as f64));

    // The answer file, found through the turn records and fetched.
    let uri = data["files"][0]["resourceUri"].as_str().unwrap().to_owned();
    assert_eq!(uri, format!("handinger://tasks/{task_id}/files/notes.txt"));
    let read = fresh
        .client
        .read_resource(ReadResourceRequestParams::new(uri))
        .await
        .expect("resources/read of an answer file on a fresh server");
    match &read.contents[0] {
        ResourceContents::TextResourceContents { text, .. } => assert_eq!(text, "hello"),
        other => panic!("expected text contents, got {other:?}"),
    }
}

#[tokio::test]
async fn a_fresh_server_shows_every_turn_current_shape() {
    a_fresh_server_shows_every_turn(Shape::Current).await;
}

#[tokio::test]
async fn a_fresh_server_shows_every_turn_legacy_shape() {
    a_fresh_server_shows_every_turn(Shape::Legacy).await;
}

/// A held answer gets its credits from the turn record when get_task collects it.
#[tokio::test]
async fn get_task_adds_the_credits_the_post_answer_no_longer_carries() {
    let fake = fake(Shape::Current).await;
    let bridge = start(&fake.base_url, &[]).await;
    let created = call(&bridge.client, "create_task", json!({"input": "costly"})).await;
    assert!(structured(&created)["usage"].get("credits").is_none());
    let task_id = structured(&created)["taskId"].as_str().unwrap().to_owned();
    let collected = call(&bridge.client, "get_task", json!({"taskId": task_id})).await;
    let data = structured(&collected);
    assert_eq!(data["usage"]["credits"], json!(TURN_CREDITS as f64));
    // Sources come from the held answer, which is the only place that has them.
    assert_eq!(data["sources"].as_array().unwrap().len(), 2);
}

/// The turn list fails (503 on every attempt) or answers in a shape the bridge does not know:
/// the bridge cannot tell whether its turn was recorded, and says so.
#[tokio::test]
async fn a_turn_list_that_cannot_be_read_never_calls_a_resend_safe() {
    let fake = fake(Shape::Current).await;
    let bridge = start(&fake.base_url, &[]).await;

    fake.push_fault(Fault::RecordThenStatus(502));
    fake.state.lock().unwrap().failing_turn_lists = 100;
    let failing = call(&bridge.client, "create_task", json!({"input": "one"})).await;
    assert!(is_error(&failing), "{}", text(&failing));
    assert_never_calls_a_resend_safe(&text(&failing));

    {
        let mut state = fake.state.lock().unwrap();
        state.failing_turn_lists = 0;
        state.unknown_turn_list_shape = true;
    }
    fake.push_fault(Fault::RecordThenStatus(502));
    let unknown = call(&bridge.client, "create_task", json!({"input": "two"})).await;
    assert!(is_error(&unknown), "{}", text(&unknown));
    assert_never_calls_a_resend_safe(&text(&unknown));

    assert_eq!(fake.posts().len(), 2, "one POST per call, none resent");
}

/// A 500 before anything was recorded: the lookup proves it, so the advice is "safe", and
/// nothing in the same message says the turn may be running.
#[tokio::test]
async fn a_failure_before_recording_gives_one_consistent_advice() {
    for shape in [Shape::Current, Shape::Legacy] {
        let fake = fake(shape).await;
        let bridge = start(&fake.base_url, &[]).await;
        fake.push_fault(Fault::Status {
            status: 500,
            message: "Internal error".into(),
            retry_after: None,
        });
        let result = call(&bridge.client, "create_task", json!({"input": "x"})).await;
        assert!(is_error(&result));
        let message = text(&result);
        assert!(message.contains("did not record"), "{shape:?}: {message}");
        assert!(message.contains("safe"), "{shape:?}: {message}");
        for contradiction in ["may still be running", "may have recorded", "do not resend"] {
            assert!(!message.contains(contradiction), "{shape:?}: {message}");
        }
        assert_eq!(fake.posts().len(), 1);
    }
}

/// Schedules as the API answers them today: the list names the time zone cron runs in, and
/// a one-off schedule comes back with only `nextRunAt`.
#[tokio::test]
async fn schedules_show_their_time_zone_and_a_one_off_date() {
    let fake = fake(Shape::Current).await;
    fake.add_worker("wrk_sched");
    let bridge = start(&fake.base_url, &["--toolsets", "tasks,schedules"]).await;
    let created = call(
        &bridge.client,
        "create_schedule",
        json!({"workerId": "wrk_sched", "input": "report",
               "when": {"type": "scheduled", "date": "2026-12-24T09:00:00Z"}}),
    )
    .await;
    assert!(!is_error(&created), "{}", text(&created));
    let schedule = &structured(&created)["schedule"];
    assert_eq!(
        schedule["when"],
        json!({"type": "scheduled", "date": "2026-12-24T09:00:00Z"})
    );
    let listed = call(
        &bridge.client,
        "list_schedules",
        json!({"workerId": "wrk_sched"}),
    )
    .await;
    let data = structured(&listed);
    assert_eq!(data["timezone"], SCHEDULE_TIME_ZONE);
    assert!(
        text(&listed).contains(SCHEDULE_TIME_ZONE),
        "{}",
        text(&listed)
    );
    assert_eq!(data["schedules"].as_array().map(Vec::len), Some(1));
}
