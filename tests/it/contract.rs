//! The API contract: every answer shape of the official SDK (fixtures in `tests/contract/`,
//! copied from `handinger` 0.27.0's types, see the README there) decodes with the bridge's
//! types, and every field the bridge reads comes through. A field the API renames or drops
//! fails here, by name, instead of silently decoding to "absent".

use handinger_mcp::handinger::types::{RawJson, TaskAnswer, TurnList, WorkerAnswer, raw_str};
use handinger_mcp::handinger::types::{ScheduleList, WorkerInfo};
use serde::de::DeserializeOwned;

fn fixture<T: DeserializeOwned>(name: &str) -> T {
    let path = format!("{}/tests/contract/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path} does not decode: {e}"))
}

/// Raw JSON the bridge passes through, parsed for comparison.
fn json(raw: &Option<RawJson>) -> Option<serde_json::Value> {
    raw.as_ref().map(|r| serde_json::from_str(r.get()).unwrap())
}

#[test]
fn the_task_answer_carries_what_create_task_reports() {
    let answer: WorkerAnswer = fixture("worker.json");
    assert_eq!(answer.id.as_deref(), Some("wrk_vk81XUHKHG-qr4"), "id");
    assert_eq!(answer.status.as_deref(), Some("completed"), "status");
    assert_eq!(answer.running, Some(false), "running");
    assert_eq!(
        answer.output_text.as_deref(),
        Some("Sunny, 18 °C."),
        "output_text"
    );
    assert_eq!(
        json(&answer.structured_output),
        Some(serde_json::json!({"verdict": "sunny"})),
        "structured_output"
    );
    assert_eq!(answer.sources.len(), 2, "sources");
    assert_eq!(
        answer.sources[0].title.as_deref(),
        Some("Barcelona forecast")
    );
    assert_eq!(
        answer.sources[0].url.as_deref(),
        Some("https://weather.example/bcn")
    );
    assert_eq!(answer.sources[1].title, None, "a source without a title");
    assert_eq!(answer.files.len(), 2, "files");
    let file = &answer.files[0];
    assert_eq!(file.filename.as_deref(), Some("forecast.csv"), "filename");
    assert_eq!(file.media_type.as_deref(), Some("text/csv"), "mediaType");
    assert_eq!(
        file.url.as_deref(),
        Some("https://handinger.com/files/forecast.csv")
    );
    assert_eq!(file.size, Some(2048.0), "size");
    assert_eq!(answer.files[1].size, None, "size is optional");
    let usage = answer.usage.expect("usage");
    assert_eq!(usage.duration_ms, Some(41250.0), "usage.durationMs");
    assert_eq!(usage.credits, None, "usage.credits is gone since 2026-07");
    assert_eq!(
        answer.url.as_deref(),
        Some("https://v3.handinger.com/worker/wrk_vk81XUHKHG-qr4")
    );
    assert!(answer.error.is_none(), "error is always null");
}

#[test]
fn the_task_lookup_carries_status_title_totals_and_worker() {
    let answer: TaskAnswer = fixture("task_retrieve_response.json");
    assert!(answer.turns.is_none(), "turns moved to their own endpoint");
    let task = answer.task;
    assert_eq!(task.id.as_deref(), Some("tsk_01HZY31W2SZJ8MJ2FQTR3M1K9D"));
    assert_eq!(task.status.as_deref(), Some("completed"), "status");
    assert_eq!(task.title.as_deref(), Some("Weather in Barcelona"), "title");
    assert_eq!(
        task.worker_id.as_deref(),
        Some("wrk_vk81XUHKHG-qr4"),
        "workerId"
    );
    assert_eq!(
        task.url.as_deref(),
        Some("https://v3.handinger.com/task/tsk_01HZY31W2SZJ8MJ2FQTR3M1K9D")
    );
    let totals = task.totals.expect("totals");
    assert_eq!(totals.credits, Some(7.0), "totals.credits");
    assert_eq!(totals.duration_ms, Some(82500.0), "totals.durationMs");
    assert_eq!(totals.turn_count, Some(2), "totals.turnCount");
    assert_eq!(
        task.created_at.as_ref().and_then(raw_str).as_deref(),
        Some("2026-11-29T10:00:00Z"),
        "createdAt"
    );
    assert_eq!(
        task.completed_at.as_ref().and_then(raw_str).as_deref(),
        Some("2026-11-29T10:02:11Z"),
        "completedAt"
    );
}

#[test]
fn the_turn_list_carries_each_turns_answer_credits_and_files() {
    let list: TurnList = fixture("task_turn_list.json");
    assert_eq!(
        list.task_id.as_deref(),
        Some("tsk_01HZY31W2SZJ8MJ2FQTR3M1K9D")
    );
    let turns = list.items.expect("items");
    assert_eq!(turns.len(), 2);
    let (first, second) = (&turns[0], &turns[1]);
    assert_eq!(first.seq, Some(1), "seq");
    assert_eq!(first.status.as_deref(), Some("completed"), "status");
    assert_eq!(
        first.input.as_deref(),
        Some("What's the weather today in Barcelona?"),
        "input"
    );
    assert_eq!(
        first.output_text.as_deref(),
        Some("Sunny, 18 °C."),
        "outputText"
    );
    assert_eq!(
        json(&first.structured_output),
        Some(serde_json::json!({"verdict": "sunny"})),
        "structuredOutput"
    );
    assert_eq!(first.credits, Some(3.0), "credits");
    assert_eq!(first.duration_ms, Some(41250.0), "durationMs");
    assert_eq!(first.input_tokens, Some(812.0), "inputTokens");
    assert_eq!(first.output_tokens, Some(96.0), "outputTokens");
    assert_eq!(
        first.started_at.as_ref().and_then(raw_str).as_deref(),
        Some("2026-11-29T10:00:00Z"),
        "startedAt"
    );
    assert!(first.completed_at.is_some(), "completedAt");
    assert!(first.files.is_empty());
    assert_eq!(second.seq, Some(2));
    assert_eq!(second.files.len(), 1, "files of the turn");
    assert_eq!(second.files[0].filename.as_deref(), Some("forecast.csv"));
    assert_eq!(second.files[0].media_type.as_deref(), Some("text/csv"));
    assert!(second.structured_output.is_none());
}

#[test]
fn a_worker_template_carries_what_the_worker_tools_report() {
    let worker: WorkerInfo = fixture("worker_template.json");
    assert_eq!(worker.id.as_deref(), Some("wrk_vk81XUHKHG-qr4"), "id");
    assert_eq!(worker.title.as_deref(), Some("Weather"), "title");
    assert_eq!(
        worker.summary.as_deref(),
        Some("Weather in one line"),
        "summary"
    );
    assert_eq!(
        worker.instructions.as_deref(),
        Some("Answer weather questions with a source."),
        "instructions"
    );
    assert_eq!(worker.visibility.as_deref(), Some("private"), "visibility");
    assert!(worker.output_schema.is_some(), "outputSchema");
    assert!(worker.url.is_some(), "url");
    assert!(worker.created_at.is_some(), "createdAt");
    assert!(worker.updated_at.is_some(), "updatedAt");
}

#[test]
fn the_schedule_list_carries_its_time_zone_and_each_kind() {
    let list: ScheduleList = fixture("schedule_list_response.json");
    assert_eq!(list.timezone.as_deref(), Some("Europe/Madrid"), "timezone");
    assert_eq!(list.worker_id.as_deref(), Some("wrk_vk81XUHKHG-qr4"));
    let kinds: Vec<_> = list
        .schedules
        .iter()
        .map(|s| s.kind.as_deref().unwrap_or_default())
        .collect();
    assert_eq!(kinds, ["scheduled", "delayed", "cron", "interval"], "type");
    let [scheduled, delayed, cron, interval] = &list.schedules[..] else {
        panic!("four schedules");
    };
    assert_eq!(scheduled.id.as_deref(), Some("sch_1"), "id");
    assert_eq!(scheduled.input.as_deref(), Some("Weekly digest"), "input");
    assert_eq!(scheduled.budget.as_deref(), Some("low"), "budget");
    assert!(
        scheduled.date.is_none(),
        "a scheduled one has only nextRunAt"
    );
    assert_eq!(
        scheduled.next_run_at.as_ref().and_then(|v| v.as_str()),
        Some("2026-12-24T09:00:00Z"),
        "nextRunAt"
    );
    assert_eq!(
        delayed.delay_in_seconds,
        Some(serde_json::json!(3600)),
        "delayInSeconds"
    );
    assert_eq!(cron.cron, Some(serde_json::json!("0 9 * * 1-5")), "cron");
    assert_eq!(
        interval.interval_seconds,
        Some(serde_json::json!(86400)),
        "intervalSeconds"
    );
}
