//! Workers, their schedules, and archiving a task: the endpoints behind the `workers`,
//! `schedules` and `admin` toolsets.
//!
//! Requests are sent through [`HandingerClient::send_json`] (writes: resent only when
//! Handinger certainly did not take them) and [`HandingerClient::get_json`] (reads: retried
//! with backoff). Every id goes into the path checked and escaped ([`checked_segment`]) even
//! though the tools validate it first: a worker id also comes from upstream answers (the
//! task record's `workerId`), and none may turn a path into a collection endpoint. Their bodies and answers are in [`super::types`].

use reqwest::Method;

use super::client::HandingerClient;
use super::error::ApiError;
use super::types::{
    Done, NewSchedule, NewWorker, ScheduleInfo, ScheduleList, WorkerInfo, WorkerPatch,
};
use crate::task_id::{TaskId, checked_segment};

/// One id as one path segment, or the request is not made.
fn segment(raw: &str, field: &str) -> Result<String, ApiError> {
    checked_segment(raw, field).map_err(|detail| ApiError::InvalidId { detail })
}

fn worker_path(worker_id: &str) -> Result<String, ApiError> {
    Ok(format!("/api/workers/{}", segment(worker_id, "workerId")?))
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
            self.url(&worker_path(worker_id)?),
            task_id.path_segment()
        );
        self.get_json(&url).await
    }

    /// `GET /api/workers/{id}`: the worker's current state.
    pub async fn get_worker(&self, worker_id: &str) -> Result<WorkerInfo, ApiError> {
        self.get_json(&self.url(&worker_path(worker_id)?)).await
    }

    /// `PATCH /api/workers/{id}`: changes only the fields the patch carries.
    pub async fn update_worker(
        &self,
        worker_id: &str,
        patch: &WorkerPatch,
    ) -> Result<WorkerInfo, ApiError> {
        self.send_json(Method::PATCH, &worker_path(worker_id)?, Some(patch))
            .await
    }

    /// `DELETE /api/workers/{id}` → `{deleted}`.
    pub async fn delete_worker(&self, worker_id: &str) -> Result<Done, ApiError> {
        self.send_json(Method::DELETE, &worker_path(worker_id)?, None::<&()>)
            .await
    }

    /// `POST /api/workers/{id}/schedules`.
    pub async fn create_schedule(
        &self,
        worker_id: &str,
        schedule: &NewSchedule,
    ) -> Result<ScheduleInfo, ApiError> {
        let path = format!("{}/schedules", worker_path(worker_id)?);
        self.send_json(Method::POST, &path, Some(schedule)).await
    }

    /// `GET /api/workers/{id}/schedules`.
    pub async fn list_schedules(&self, worker_id: &str) -> Result<ScheduleList, ApiError> {
        let path = format!("{}/schedules", worker_path(worker_id)?);
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
            worker_path(worker_id)?,
            segment(schedule_id, "scheduleId")?
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

    #[test]
    fn no_worker_or_schedule_path_is_a_collection() {
        for bad in [".", "..", ""] {
            assert!(worker_path(bad).is_err(), "{bad:?}");
            assert!(segment(bad, "scheduleId").is_err(), "{bad:?}");
        }
        assert_eq!(worker_path("wrk_1").unwrap(), "/api/workers/wrk_1");
    }
}
