//! Workers, their schedules, and archiving a task: the endpoints behind the `workers`,
//! `schedules` and `admin` toolsets.
//!
//! Requests are sent through [`HandingerClient::send_json`] (writes: resent only when
//! Handinger certainly did not take them) and [`HandingerClient::get_json`] (reads: retried
//! with backoff). Every id goes into the path escaped ([`path_segment`]) even though the tools
//! validate it first. Answers tolerate missing, null and unknown fields, as the task answers do.

use reqwest::Method;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::client::HandingerClient;
use super::error::ApiError;
use super::types::{Budget, lenient};
use crate::task_id::{TaskId, path_segment};

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

fn worker_path(worker_id: &str) -> String {
    format!("/api/workers/{}", path_segment(worker_id))
}

impl HandingerClient {
    /// `POST /api/workers`.
    pub async fn create_worker(&self, worker: &NewWorker) -> Result<WorkerInfo, ApiError> {
        self.send_json(Method::POST, "/api/workers", Some(worker))
            .await
    }

    /// `GET /api/workers/{id}?taskId=` (2026-07 on): the worker's state for one task, in the
    /// shape of a task answer. It is the only record of a finished turn's sources besides
    /// the POST answer (turn records carry none).
    pub async fn get_worker_for_task(
        &self,
        worker_id: &str,
        task_id: &TaskId,
    ) -> Result<crate::handinger::WorkerAnswer, ApiError> {
        let url = format!(
            "{}?taskId={}",
            self.url(&worker_path(worker_id)),
            task_id.path_segment()
        );
        self.get_json(&url).await
    }

    /// `GET /api/workers/{id}`: the worker's current state.
    pub async fn get_worker(&self, worker_id: &str) -> Result<WorkerInfo, ApiError> {
        self.get_json(&self.url(&worker_path(worker_id))).await
    }

    /// `PATCH /api/workers/{id}`: changes only the fields the patch carries.
    pub async fn update_worker(
        &self,
        worker_id: &str,
        patch: &WorkerPatch,
    ) -> Result<WorkerInfo, ApiError> {
        self.send_json(Method::PATCH, &worker_path(worker_id), Some(patch))
            .await
    }

    /// `DELETE /api/workers/{id}` → `{deleted}`.
    pub async fn delete_worker(&self, worker_id: &str) -> Result<Done, ApiError> {
        self.send_json(Method::DELETE, &worker_path(worker_id), None::<&()>)
            .await
    }

    /// `POST /api/workers/{id}/schedules`.
    pub async fn create_schedule(
        &self,
        worker_id: &str,
        schedule: &NewSchedule,
    ) -> Result<ScheduleInfo, ApiError> {
        let path = format!("{}/schedules", worker_path(worker_id));
        self.send_json(Method::POST, &path, Some(schedule)).await
    }

    /// `GET /api/workers/{id}/schedules`.
    pub async fn list_schedules(&self, worker_id: &str) -> Result<ScheduleList, ApiError> {
        let path = format!("{}/schedules", worker_path(worker_id));
        self.get_json(&self.url(&path)).await
    }

    /// `DELETE /api/workers/{id}/schedules/{scheduleId}` → `{cancelled}`.
    pub async fn cancel_schedule(
        &self,
        worker_id: &str,
        schedule_id: &str,
    ) -> Result<Done, ApiError> {
        let path = format!(
            "{}/schedules/{}",
            worker_path(worker_id),
            path_segment(schedule_id)
        );
        self.send_json(Method::DELETE, &path, None::<&()>).await
    }

    /// `DELETE /api/tasks/{id}` → `{archived}`. Handinger only archives; it cannot stop a task.
    pub async fn archive_task(&self, task_id: &TaskId) -> Result<Done, ApiError> {
        let path = format!("/api/tasks/{}", task_id.path_segment());
        self.send_json(Method::DELETE, &path, None::<&()>).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
