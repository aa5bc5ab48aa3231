//! The turn registry's bounds, seen from a client: inputs have a size cap, turns running
//! upstream have a count cap (per server and per key) that a turn keeps until its POST ends,
//! and finished answers have a byte budget beyond which the oldest go first. Each limit is
//! set small by its flag.

use crate::common;

use common::*;
use serde_json::json;

/// Whether the bridge looked the task's sources up on Handinger: it does only for an answer
/// it no longer holds.
fn asked_upstream_for_sources(fake: &FakeHandinger) -> bool {
    fake.received()
        .iter()
        .any(|r| r.method == "GET" && r.path.starts_with("/api/workers/"))
}

#[tokio::test]
async fn an_input_over_the_cap_is_refused_before_anything_is_sent() {
    let fake = FakeHandinger::start().await;
    fake.add_worker("wrk_sched");
    let bridge = start(
        &fake.base_url,
        &["--max-input-bytes", "64", "--toolsets", "tasks,schedules"],
    )
    .await;
    let task: fn(String) -> serde_json::Value = |input| json!({"input": input});
    // A schedule's input is the task input of each of its runs: the same cap holds.
    let schedule: fn(String) -> serde_json::Value = |input| {
        json!({"workerId": "wrk_sched", "input": input,
               "when": {"type": "delayed", "delayInSeconds": 60}})
    };
    for (tool, args) in [("create_task", task), ("create_schedule", schedule)] {
        let result = call(&bridge.client, tool, args("x".repeat(65))).await;
        assert!(is_error(&result), "{tool}: {}", text(&result));
        let message = text(&result);
        for needle in ["65 bytes", "64", "--max-input-bytes"] {
            assert!(
                message.contains(needle),
                "{tool}: {needle:?} missing from {message}"
            );
        }
        if tool == "create_task" {
            assert!(message.contains("file"), "{message}");
        }
        assert!(fake.received().is_empty(), "{tool}: nothing went upstream");
    }

    for (tool, args) in [("create_task", task), ("create_schedule", schedule)] {
        let fits = call(&bridge.client, tool, args("x".repeat(64))).await;
        assert!(!is_error(&fits), "{tool}: {}", text(&fits));
    }
}

#[tokio::test]
async fn finished_answers_beyond_the_byte_budget_go_oldest_first() {
    let fake = FakeHandinger::start().await;
    // Each answer echoes its ~3 KB input: two fit in 8 KiB, three do not.
    let bridge = start(&fake.base_url, &["--max-retained-bytes", "8192"]).await;
    let mut task_ids = Vec::new();
    for n in 0..3 {
        let input = format!("{n} {}", "y".repeat(3000));
        let result = call(&bridge.client, "create_task", json!({"input": input})).await;
        assert!(!is_error(&result), "{}", text(&result));
        task_ids.push(structured(&result)["taskId"].as_str().unwrap().to_owned());
    }

    // The newest answer is still held: get_task serves its sources without asking.
    let newest = call(&bridge.client, "get_task", json!({"taskId": task_ids[2]})).await;
    assert_eq!(structured(&newest)["sources"].as_array().unwrap().len(), 2);
    assert!(!asked_upstream_for_sources(&fake), "the newest is held");

    // The oldest was evicted: get_task rebuilds it from Handinger, all of it.
    let oldest = call(&bridge.client, "get_task", json!({"taskId": task_ids[0]})).await;
    assert!(!is_error(&oldest), "{}", text(&oldest));
    assert!(
        structured(&oldest)["outputText"]
            .as_str()
            .unwrap()
            .starts_with("answer to: 0 "),
        "{}",
        text(&oldest)
    );
    assert!(asked_upstream_for_sources(&fake), "the oldest was evicted");
    assert_eq!(fake.posts().len(), 3, "collecting never posts");
}

/// `--max-turns-in-flight 1`: a second task is refused while the first runs upstream, even
/// after the first call stopped waiting (`--max-wait 1`), and accepted once it has ended.
#[tokio::test]
async fn a_running_turn_holds_its_slot_after_its_caller_stopped_waiting() {
    let fake = FakeHandinger::start().await;
    let bridge = start(
        &fake.base_url,
        &["--max-turns-in-flight", "1", "--max-wait", "1"],
    )
    .await;
    let first = call(
        &bridge.client,
        "create_task",
        json!({"input": "long sleep=2500"}),
    )
    .await;
    assert_eq!(structured(&first)["status"], "running", "{}", text(&first));
    let task_id = structured(&first)["taskId"].as_str().unwrap().to_owned();

    let refused = call(&bridge.client, "create_task", json!({"input": "another"})).await;
    assert!(is_error(&refused));
    let message = text(&refused);
    for needle in [
        "1 Handinger tasks",
        "--max-turns-in-flight",
        "nothing was sent",
    ] {
        assert!(
            message.contains(needle),
            "{needle:?} missing from {message}"
        );
    }
    assert_eq!(fake.posts().len(), 1, "the refused call sent nothing");

    // Joining the running turn is not a new turn: it is let in.
    let joined = call(
        &bridge.client,
        "create_task",
        json!({"input": "long sleep=2500", "taskId": task_id}),
    )
    .await;
    assert!(!is_error(&joined), "{}", text(&joined));

    let collected = call(
        &bridge.client,
        "get_task",
        json!({"taskId": task_id, "wait": 30}),
    )
    .await;
    assert_eq!(structured(&collected)["status"], "completed");
    let after = call(&bridge.client, "create_task", json!({"input": "another"})).await;
    assert!(!is_error(&after), "{}", text(&after));
    assert_eq!(fake.posts().len(), 2);
}

#[tokio::test]
async fn the_per_key_bound_refuses_with_its_own_advice() {
    let fake = FakeHandinger::start().await;
    let bridge = start(
        &fake.base_url,
        &["--max-turns-in-flight-per-key", "1", "--max-wait", "1"],
    )
    .await;
    let first = call(
        &bridge.client,
        "create_task",
        json!({"input": "long sleep=2000"}),
    )
    .await;
    assert_eq!(structured(&first)["status"], "running");
    let refused = call(&bridge.client, "create_task", json!({"input": "another"})).await;
    assert!(is_error(&refused));
    assert!(
        text(&refused).contains("for this API key (--max-turns-in-flight-per-key)"),
        "{}",
        text(&refused)
    );
    assert_eq!(fake.posts().len(), 1);
}

/// A 15 MB answer whose structured output is 7.5 million zeros. Parsed into a tree on
/// arrival and kept as one, it peaked at over 700 MB; kept as raw text but made a tree to
/// answer (rmcp's structured content is a `serde_json::Value`), ~280 MB in the release
/// build; beyond `--max-structured-values` it is never a tree.
#[tokio::test]
async fn a_structured_output_of_tiny_elements_is_not_kept_as_a_tree() {
    let fake = FakeHandinger::start().await;
    let bridge = start(&fake.base_url, &["--max-response-bytes", "20000000"]).await;
    fake.push_fault(Fault::ZerosStructured(7_500_000));
    let result = call(&bridge.client, "create_task", json!({"input": "zeros"})).await;
    assert!(!is_error(&result), "{}", text(&result));
    // Far beyond --max-structured-values: passed whole, as its JSON text.
    let output = &structured(&result)["structuredOutput"];
    assert_eq!(
        output["json"].as_str().map(str::len),
        Some(2 * 7_500_000 + 1),
        "passed through whole"
    );
    let peak = peak_rss(bridge.pid).unwrap();
    assert!(peak < 512 << 20, "peak RSS {} MiB", peak >> 20);
}

/// A structured output with more values than `--max-structured-values` is never made a
/// tree: it comes as `{"structuredOutputAsText": why, "json": its text}`, and the text of
/// the result says so; `get_task` shows it the same way. Smaller ones are structured data.
#[tokio::test]
async fn a_structured_output_beyond_the_value_bound_is_passed_as_its_text() {
    let fake = FakeHandinger::start().await;
    let bridge = start(&fake.base_url, &["--max-structured-values", "1000"]).await;
    fake.push_fault(Fault::ZerosStructured(5000));
    let result = call(&bridge.client, "create_task", json!({"input": "zeros"})).await;
    assert!(!is_error(&result), "{}", text(&result));
    let output = structured(&result)["structuredOutput"].clone();
    let why = output["structuredOutputAsText"]
        .as_str()
        .unwrap_or_default();
    assert!(why.contains("--max-structured-values"), "{output}");
    let zeros: serde_json::Value =
        serde_json::from_str(output["json"].as_str().expect("the JSON as text")).unwrap();
    assert_eq!(zeros.as_array().map(Vec::len), Some(5000));
    assert!(
        text(&result).contains("--max-structured-values"),
        "{}",
        text(&result)
    );

    let task_id = structured(&result)["taskId"].as_str().unwrap().to_owned();
    let again = call(&bridge.client, "get_task", json!({"taskId": task_id})).await;
    assert_eq!(structured(&again)["structuredOutput"], output);

    let small = call(&bridge.client, "create_task", json!({"input": "x"})).await;
    assert_eq!(structured(&small)["structuredOutput"]["verdict"], "sunny");
}

/// Five answer files whose host never answers and one that does: the answer comes back at
/// once (not "running" until the downloads end), the copies are fetched in the background
/// two at a time, and each stalled one gives up after the request timeout with a reason.
#[tokio::test]
async fn answer_files_are_fetched_after_the_answer_is_returned() {
    let fake = FakeHandinger::start().await;
    fake.serve_file_bytes("quick.txt", "text/plain", b"quick");
    let mut files: Vec<_> = (0..5)
        .map(|n| {
            json!({"filename": format!("stalled{n}.txt"), "mediaType": "text/plain",
                   "url": format!("{}/stalled/{n}.txt", fake.base_url), "size": 5})
        })
        .collect();
    files.push(json!({"filename": "quick.txt", "mediaType": "text/plain",
                      "url": format!("{}/files/quick.txt", fake.base_url), "size": 5}));
    fake.set_answer_files(serde_json::Value::Array(files));
    let dir = tempfile::tempdir().unwrap();
    let bridge = start(
        &fake.base_url,
        &[
            "--download-dir",
            dir.path().to_str().unwrap(),
            "--max-wait",
            "2",
            "--request-timeout",
            "1",
            "--max-parallel-downloads",
            "2",
        ],
    )
    .await;
    let created = call(&bridge.client, "create_task", json!({"input": "files"})).await;
    assert!(!is_error(&created), "{}", text(&created));
    assert_eq!(
        structured(&created)["status"],
        "completed",
        "the answer does not wait for its files: {}",
        text(&created)
    );
    assert!(
        text(&created).contains("still being fetched"),
        "{}",
        text(&created)
    );
    let task_id = structured(&created)["taskId"].as_str().unwrap().to_owned();

    let settled = copies_settled(&bridge.client, &task_id).await;
    let data = structured(&settled);
    let quick = data["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["filename"] == "quick.txt")
        .unwrap();
    let saved = quick["localPath"]
        .as_str()
        .expect("the quick file was saved");
    assert_eq!(std::fs::read(saved).unwrap(), b"quick");
    let message = text(&settled);
    for n in 0..5 {
        assert!(
            message.contains(&format!("\"stalled{n}.txt\": could not fetch it")),
            "{message}"
        );
    }
}
