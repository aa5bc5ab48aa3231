//! The shapes Handinger sends and accepts.
//!
//! Every answer field is optional and unknown fields are ignored: the public spec marks
//! little as required, and a bridge that rejects a whole answer because one field went
//! missing would lose a finished task's result. `null` and "absent" decode the same way.

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;
use serde_json::{Map, Value};

/// JSON the bridge passes through untouched (a worker's structured output): kept as the raw
/// text Handinger sent, never parsed into a tree, so a large answer costs its own size and
/// no more.
pub type RawJson = Box<RawValue>;

// Variants are ordered cheapest first, so `Ord` answers "is this above the cap?". They
// carry no doc comments on purpose: those would turn the schema's plain `enum` into a
// `oneOf` that some clients render poorly; the argument's description explains them.
/// Compute budget of a task.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    schemars::JsonSchema,
    clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
#[schemars(inline)]
pub enum Budget {
    Low,
    Standard,
    High,
    Unlimited,
}

impl Budget {
    pub fn as_str(self) -> &'static str {
        match self {
            Budget::Low => "low",
            Budget::Standard => "standard",
            Budget::High => "high",
            Budget::Unlimited => "unlimited",
        }
    }
}

impl std::fmt::Display for Budget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Body of `POST /api/tasks`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskRequest {
    pub input: String,
    pub budget: Budget,
    /// Always set: the answer carries no task id, so the id we send is the only handle.
    pub task_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_id: Option<String>,
    /// Attachments; with any, the request goes as multipart instead of JSON.
    #[serde(skip)]
    pub files: Vec<super::attachment::Upload>,
}

/// Declares a type Handinger answers with, read leniently: a missing field takes its
/// default, and so does `null` or a value of the wrong type (through [`null_as_default`],
/// on every field), so one odd field never costs the caller a whole answer. The attributes
/// given (docs, more derives, `serde(rename_all)`) are kept.
macro_rules! lenient {
    ($(#[$attr:meta])* pub struct $name:ident { $($fields:tt)* }) => {
        #[serde_with::apply(_ => #[serde(deserialize_with = "crate::handinger::types::null_as_default")])]
        #[derive(Debug, Clone, Default, ::serde::Deserialize)]
        #[serde(default)]
        $(#[$attr])*
        pub struct $name { $($fields)* }
    };
}

lenient! {
    /// The answer of `POST /api/tasks` (Handinger calls it a Worker object).
    #[derive(Serialize)]
    pub struct WorkerAnswer {
        /// The worker's id.
        pub id: Option<String>,
        pub status: Option<String>,
        pub running: Option<bool>,
        pub output_text: Option<String>,
        pub structured_output: Option<RawJson>,
        pub sources: Vec<Source>,
        pub files: Vec<AnswerFile>,
        pub usage: Option<Usage>,
        /// Dashboard link of the worker.
        pub url: Option<String>,
        /// Unspecified shape; anything but `null` means the turn failed.
        pub error: Option<RawJson>,
    }
}

lenient! {
    #[derive(Serialize)]
    pub struct Source {
        pub title: Option<String>,
        pub url: Option<String>,
    }
}

lenient! {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    pub struct AnswerFile {
        pub filename: Option<String>,
        pub media_type: Option<String>,
        pub url: Option<String>,
        pub size: Option<f64>,
    }
}

// Since 2026-07 the POST answer's usage carries only `durationMs`: the credits come from the
// task's turn record (`GET /api/tasks/{taskId}/turns`); older deployments still send them here.
// (A doc comment here would become the tool schemas' description of `usage`.)
lenient! {
    /// Credits and time a turn (or a whole task) consumed.
    #[derive(Copy, PartialEq, Serialize, schemars::JsonSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct Usage {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub credits: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub duration_ms: Option<f64>,
    }
}

/// A task and its turns, as the bridge knows it: [`crate::handinger::HandingerClient::get_task`]
/// builds it from `GET /api/tasks/{taskId}` and `GET /api/tasks/{taskId}/turns`.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
#[serde(default)]
pub struct TaskRecord {
    pub task: TaskSummary,
    /// The task's turns, oldest first (empty when `turns_unavailable` says why).
    pub turns: Vec<TurnRecord>,
    /// Why the turn list could not be read (the endpoint failed, or answered in a shape the
    /// bridge does not know). `turns` is then empty and proves nothing: in particular it
    /// does not show that a turn was never recorded.
    pub turns_unavailable: Option<String>,
}

impl TaskRecord {
    /// The newest turn, by `seq` (the list's last when it has none).
    pub fn latest_turn(&self) -> Option<&TurnRecord> {
        self.turns.iter().max_by_key(|t| t.seq.unwrap_or(i64::MIN))
    }

    /// Whether the task and its newest turn agree on whether the task has ended (true when
    /// either does not say, or the turns could not be read): two reads that straddled a
    /// turn starting or ending do not.
    pub fn agrees(&self) -> bool {
        let ended = |status: Option<&str>| status.map(is_terminal_status);
        match (
            ended(self.task.status.as_deref()),
            ended(self.latest_turn().and_then(|t| t.status.as_deref())),
        ) {
            (Some(task), Some(turn)) => self.turns_unavailable.is_some() || task == turn,
            _ => true,
        }
    }
}

/// Task and turn statuses after which nothing more will change.
pub fn is_terminal_status(status: &str) -> bool {
    matches!(status, "completed" | "error" | "aborted" | "failed")
}

lenient! {
    /// The answer of `GET /api/tasks/{taskId}`: `{task}` today, `{task, turns}` on deployments
    /// older than 2026-07.
    pub struct TaskAnswer {
        pub task: TaskSummary,
        /// Only older deployments embed the turns; `None` when the answer has no turn list.
        pub turns: Option<Vec<TurnRecord>>,
    }
}

lenient! {
    /// The answer of `GET /api/tasks/{taskId}/turns` (2026-07 on): `{items, taskId}`.
    #[serde(rename_all = "camelCase")]
    pub struct TurnList {
        /// `None` when the answer has no list under `items`: an unknown shape, not "no turns".
        pub items: Option<Vec<TurnRecord>>,
        pub task_id: Option<String>,
    }
}

lenient! {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    pub struct TaskSummary {
        pub id: Option<String>,
        pub status: Option<String>,
        pub title: Option<String>,
        pub worker_id: Option<String>,
        pub url: Option<String>,
        pub totals: Option<TaskTotals>,
        pub created_at: Option<RawJson>,
        pub completed_at: Option<RawJson>,
    }
}

lenient! {
    #[derive(Copy, PartialEq, Serialize, schemars::JsonSchema)]
    #[serde(rename_all = "camelCase")]
    pub struct TaskTotals {
        #[serde(skip_serializing_if = "Option::is_none")]
        pub credits: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub duration_ms: Option<f64>,
        #[serde(skip_serializing_if = "Option::is_none")]
        pub turn_count: Option<u64>,
    }
}

lenient! {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    pub struct TurnRecord {
        pub id: Option<String>,
        pub seq: Option<i64>,
        pub role: Option<String>,
        pub status: Option<String>,
        pub input: Option<String>,
        pub output_text: Option<String>,
        pub structured_output: Option<RawJson>,
        pub credits: Option<f64>,
        pub duration_ms: Option<f64>,
        pub input_tokens: Option<f64>,
        pub output_tokens: Option<f64>,
        pub started_at: Option<RawJson>,
        pub completed_at: Option<RawJson>,
        /// The files this turn published.
        pub files: Vec<AnswerFile>,
    }
}

/// Who can see and use a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
#[schemars(inline)]
pub enum Visibility {
    Public,
    Private,
}

/// Body of `POST /api/workers`.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewWorker {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompt: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visibility: Option<Visibility>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Map<String, Value>>,
}

/// Body of `PATCH /api/workers/{id}`: only the fields present change.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct WorkerPatch {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visibility: Option<Visibility>,
    /// Absent: unchanged; `Some(None)`: sent as `null`, which clears the schema.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Option<Map<String, Value>>>,
}

impl WorkerPatch {
    pub fn is_empty(&self) -> bool {
        self.instructions.is_none()
            && self.title.is_none()
            && self.summary.is_none()
            && self.visibility.is_none()
            && self.output_schema.is_none()
    }
}

lenient! {
    /// A worker as Handinger describes it: the WorkerTemplate that `POST` and `PATCH` answer,
    /// or the Worker (current state, latest answer) that `GET` answers. The two shapes differ in
    /// field case, so both spellings are read.
    #[serde(rename_all = "camelCase")]
    pub struct WorkerInfo {
        pub id: Option<String>,
        pub title: Option<String>,
        pub summary: Option<String>,
        pub instructions: Option<String>,
        pub visibility: Option<String>,
        #[serde(alias = "output_schema")]
        pub output_schema: Option<Value>,
        pub url: Option<String>,
        pub status: Option<String>,
        pub running: Option<bool>,
        #[serde(alias = "output_text")]
        pub output_text: Option<String>,
        #[serde(alias = "created_at")]
        pub created_at: Option<Value>,
        #[serde(alias = "updated_at")]
        pub updated_at: Option<Value>,
    }
}

/// When a schedule runs a task. Exactly one kind per schedule.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum When {
    /// Once, at a date and time: ISO 8601 with a time zone, e.g. 2026-12-01T09:00:00Z.
    Scheduled { date: String },
    /// Once, this many seconds from now (1 to 31536000, a year).
    Delayed {
        #[serde(rename = "delayInSeconds")]
        #[schemars(range(min = 1, max = 31_536_000))]
        delay_in_seconds: u64,
    },
    /// Repeatedly, on a cron expression (five fields: minute hour day-of-month month
    /// day-of-week, e.g. "0 9 * * 1-5" for 09:00 on weekdays), in the time zone
    /// list_schedules reports for the worker.
    Cron { cron: String },
    /// Repeatedly, every this many seconds.
    Interval {
        #[serde(rename = "intervalSeconds")]
        #[schemars(range(min = 1))]
        interval_seconds: u64,
    },
}

/// Longest delay Handinger accepts: a year.
pub const MAX_DELAY_SECONDS: u64 = 31_536_000;

/// Body of `POST /api/workers/{id}/schedules`.
#[derive(Debug, Clone, Serialize)]
pub struct NewSchedule {
    pub input: String,
    pub budget: Budget,
    pub when: When,
}

lenient! {
    /// A schedule as Handinger answers it: `id, input, budget, nextRunAt, type` plus its when
    /// field (read both nested under `when` and flattened beside `type`).
    #[serde(rename_all = "camelCase")]
    pub struct ScheduleInfo {
        pub id: Option<String>,
        pub input: Option<String>,
        pub budget: Option<String>,
        pub next_run_at: Option<Value>,
        #[serde(rename = "type")]
        pub kind: Option<String>,
        pub when: Option<Value>,
        pub date: Option<Value>,
        pub delay_in_seconds: Option<Value>,
        pub cron: Option<Value>,
        pub interval_seconds: Option<Value>,
    }
}

lenient! {
    /// The answer of `GET /api/workers/{id}/schedules`.
    #[serde(rename_all = "camelCase")]
    pub struct ScheduleList {
        pub schedules: Vec<ScheduleInfo>,
        pub worker_id: Option<String>,
        /// The IANA time zone the worker's cron expressions run in (2026-07 on).
        pub timezone: Option<String>,
    }
}

lenient! {
    /// `{deleted}`, `{cancelled}`, `{archived}`: whichever flag the endpoint answers with.
    pub struct Done {
        pub deleted: Option<bool>,
        pub cancelled: Option<bool>,
        pub archived: Option<bool>,
    }
}

/// Handinger's error body: `{"error": "..."}`.
#[derive(Debug, Deserialize)]
pub struct ErrorBody {
    pub error: Option<Value>,
}

/// A raw JSON string's text (`"2026-11-29T10:00:00Z"` → `2026-11-29T10:00:00Z`); `None`
/// for any other JSON.
pub fn raw_str(raw: &RawJson) -> Option<String> {
    serde_json::from_str(raw.get()).ok()
}

fn text_bytes(text: &Option<String>) -> usize {
    text.as_ref().map_or(0, String::len)
}

fn raw_bytes(raw: &Option<RawJson>) -> usize {
    raw.as_ref().map_or(0, |r| r.get().len())
}

impl WorkerAnswer {
    /// The bytes this answer holds (strings and raw JSON), for the turn registry's budget.
    pub fn retained_bytes(&self) -> usize {
        text_bytes(&self.id)
            + text_bytes(&self.status)
            + text_bytes(&self.output_text)
            + raw_bytes(&self.structured_output)
            + self
                .sources
                .iter()
                .map(Source::retained_bytes)
                .sum::<usize>()
            + self
                .files
                .iter()
                .map(AnswerFile::retained_bytes)
                .sum::<usize>()
            + text_bytes(&self.url)
            + raw_bytes(&self.error)
    }
}

impl Source {
    pub fn retained_bytes(&self) -> usize {
        text_bytes(&self.title) + text_bytes(&self.url) + 48
    }
}

impl AnswerFile {
    pub fn retained_bytes(&self) -> usize {
        text_bytes(&self.filename) + text_bytes(&self.media_type) + text_bytes(&self.url) + 80
    }
}

impl TaskRecord {
    /// The bytes this record holds, for the turn registry's budget.
    pub fn retained_bytes(&self) -> usize {
        let task = &self.task;
        let turns: usize = self
            .turns
            .iter()
            .map(|t| {
                text_bytes(&t.id)
                    + text_bytes(&t.role)
                    + text_bytes(&t.status)
                    + text_bytes(&t.input)
                    + text_bytes(&t.output_text)
                    + raw_bytes(&t.structured_output)
                    + t.files
                        .iter()
                        .map(AnswerFile::retained_bytes)
                        .sum::<usize>()
                    + 160
            })
            .sum();
        turns
            + text_bytes(&task.id)
            + text_bytes(&task.status)
            + text_bytes(&task.title)
            + text_bytes(&task.worker_id)
            + text_bytes(&task.url)
            + text_bytes(&self.turns_unavailable)
            + 128
    }
}

/// Reads `null` as the field's default, and a value of the wrong type too: one odd field
/// must not cost the caller a finished answer. Every field of an answer shape reads through
/// it (each struct is declared with `lenient!`); an `Option<RawJson>` field keeps any JSON but
/// `null` as its raw text.
pub(super) fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + serde::de::DeserializeOwned,
{
    // Through the raw text, not a `Value`: a tree of a hostile field (millions of tiny
    // array elements) would cost many times its size before being thrown away.
    let raw = RawJson::deserialize(deserializer)?;
    Ok(serde_json::from_str(raw.get()).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn worker_answer_tolerates_nulls_and_wrong_types() {
        let answer: WorkerAnswer = serde_json::from_str(
            r#"{"id":"wrk_1","output_text":null,"sources":null,"files":"nope",
                "usage":{"credits":"x","durationMs":12},"extra":{"a":1}}"#,
        )
        .unwrap();
        assert_eq!(answer.id.as_deref(), Some("wrk_1"));
        assert!(answer.output_text.is_none());
        assert!(answer.sources.is_empty());
        assert!(answer.files.is_empty());
        assert_eq!(answer.usage.unwrap().duration_ms, Some(12.0));
        assert_eq!(answer.usage.unwrap().credits, None);
    }

    #[test]
    fn budgets_order_by_cost() {
        assert!(Budget::Low < Budget::Standard);
        assert!(Budget::High < Budget::Unlimited);
    }

    #[test]
    fn patch_sends_only_given_fields_and_null_clears_the_schema() {
        let patch = WorkerPatch {
            title: Some("New".into()),
            output_schema: Some(None),
            ..Default::default()
        };
        assert_eq!(
            serde_json::to_value(&patch).unwrap(),
            json!({"title": "New", "outputSchema": null})
        );
        assert!(WorkerPatch::default().is_empty());
    }

    #[test]
    fn when_has_the_documented_wire_shape() {
        let when: When =
            serde_json::from_value(json!({"type": "delayed", "delayInSeconds": 60})).unwrap();
        assert_eq!(
            when,
            When::Delayed {
                delay_in_seconds: 60
            }
        );
        assert_eq!(
            serde_json::to_value(When::Interval {
                interval_seconds: 3600
            })
            .unwrap(),
            json!({"type": "interval", "intervalSeconds": 3600})
        );
        assert!(serde_json::from_value::<When>(json!({"type": "weekly"})).is_err());
        assert!(
            serde_json::from_value::<When>(json!({"type": "cron", "cron": "* * * * *", "x": 1}))
                .is_err()
        );
    }

    #[test]
    fn worker_info_reads_both_spellings() {
        let info: WorkerInfo = serde_json::from_value(json!({
            "id": "wrk_1", "title": "T", "output_text": "hi", "created_at": 1,
            "outputSchema": null, "summary": 5
        }))
        .unwrap();
        assert_eq!(info.output_text.as_deref(), Some("hi"));
        assert_eq!(info.created_at, Some(json!(1)));
        assert!(info.summary.is_none());
    }
}
