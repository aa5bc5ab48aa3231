//! The irreversible changes (`delete_worker`, `archive_task`, `cancel_schedule`) as one
//! kind of call: each is a DELETE that Handinger answers with a flag saying whether it
//! happened, harmless to repeat after an unclear failure, reported as a confirmation and
//! logged. Only what differs between them (the request, the flag, the words) is per change.

use rmcp::model::CallToolResult;
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};
use schemars::JsonSchema;
use serde::Serialize;

use super::HandingerServer;
use super::call::answer;
use super::reply::{AfterFailure, list_check, structured};
use crate::handinger::types::Done;
use crate::handinger::{ApiError, HandingerClient};
use crate::task_id::TaskId;

/// One irreversible change, its arguments checked.
pub(super) enum Change {
    DeleteWorker {
        worker_id: String,
    },
    ArchiveTask {
        task_id: TaskId,
    },
    CancelSchedule {
        worker_id: String,
        schedule_id: String,
    },
}

/// What `delete_worker` returns.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct DeletedWorker {
    pub worker_id: String,
    /// Whether Handinger says the worker is deleted.
    pub deleted: bool,
}

/// What `archive_task` returns.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct ArchivedTask {
    pub task_id: String,
    /// Whether Handinger says the task is archived.
    pub archived: bool,
}

/// What `cancel_schedule` returns.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct CancelledSchedule {
    pub worker_id: String,
    pub schedule_id: String,
    /// Whether Handinger says the schedule is cancelled.
    pub cancelled: bool,
}

impl HandingerServer {
    /// Makes `change` with this caller's client and reports what Handinger says of it.
    pub(super) async fn apply(
        &self,
        context: &RequestContext<RoleServer>,
        change: Result<Change, String>,
    ) -> Result<CallToolResult, ErrorData> {
        self.api_call(context, change, |api, change| async move {
            let done = change.send(&api).await;
            let what = change.what();
            answer(done, &what, AfterFailure::Repeatable, |done| {
                tracing::info!(change = %what, confirmed = change.confirmed(&done), "irreversible change");
                change.reply(&done)
            })
        })
        .await
    }
}

impl Change {
    async fn send(&self, api: &HandingerClient) -> Result<Done, ApiError> {
        match self {
            Change::DeleteWorker { worker_id } => api.delete_worker(worker_id).await,
            Change::ArchiveTask { task_id } => api.archive_task(task_id).await,
            Change::CancelSchedule {
                worker_id,
                schedule_id,
            } => api.cancel_schedule(worker_id, schedule_id).await,
        }
    }

    /// The call and what it acts on, for its error result.
    fn what(&self) -> String {
        match self {
            Change::DeleteWorker { worker_id } => {
                format!("delete_worker for workerId {worker_id}")
            }
            Change::ArchiveTask { task_id } => format!("archive_task for taskId {task_id}"),
            Change::CancelSchedule {
                worker_id,
                schedule_id,
            } => format!("cancel_schedule for scheduleId {schedule_id} on workerId {worker_id}"),
        }
    }

    /// Whether Handinger says the change happened: its flag for this change, and a missing
    /// flag counts as done.
    fn confirmed(&self, done: &Done) -> bool {
        match self {
            Change::DeleteWorker { .. } => done.deleted,
            Change::ArchiveTask { .. } => done.archived,
            Change::CancelSchedule { .. } => done.cancelled,
        }
        .unwrap_or(true)
    }

    /// The result, by [`Self::confirmed`]: the summary says the change is done, or that
    /// Handinger did not confirm it and how to check.
    fn reply(self, done: &Done) -> CallToolResult {
        let confirmed = self.confirmed(done);
        let (did, doing) = match &self {
            Change::DeleteWorker { worker_id } => (
                format!("Deleted worker {worker_id}."),
                format!("deleting worker {worker_id}: check it with get_worker"),
            ),
            Change::ArchiveTask { task_id } => (
                format!("Archived task {task_id}."),
                format!("archiving task {task_id}: check it with get_task"),
            ),
            Change::CancelSchedule {
                worker_id,
                schedule_id,
            } => (
                format!("Cancelled schedule {schedule_id} of worker {worker_id}."),
                format!(
                    "cancelling schedule {schedule_id}: {}",
                    list_check(worker_id)
                ),
            ),
        };
        let summary = if confirmed {
            did
        } else {
            format!("Handinger did not confirm {doing}.")
        };
        match self {
            Change::DeleteWorker { worker_id } => {
                let view = DeletedWorker {
                    worker_id,
                    deleted: confirmed,
                };
                structured(summary, &view)
            }
            Change::ArchiveTask { task_id } => {
                let view = ArchivedTask {
                    task_id: task_id.to_string(),
                    archived: confirmed,
                };
                structured(summary, &view)
            }
            Change::CancelSchedule {
                worker_id,
                schedule_id,
            } => {
                let view = CancelledSchedule {
                    worker_id,
                    schedule_id,
                    cancelled: confirmed,
                };
                structured(summary, &view)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn summary(change: Change, done: Done) -> String {
        let result = change.reply(&done);
        let text = result.content[0].as_text().unwrap().text.clone();
        text.lines().next().unwrap().to_owned()
    }

    #[test]
    fn a_change_counts_as_done_unless_handinger_says_otherwise() {
        let delete = || Change::DeleteWorker {
            worker_id: "w".into(),
        };
        assert_eq!(summary(delete(), Done::default()), "Deleted worker w.");
        let said = |deleted| Done {
            deleted: Some(deleted),
            ..Done::default()
        };
        assert_eq!(summary(delete(), said(true)), "Deleted worker w.");
        assert_eq!(
            summary(delete(), said(false)),
            "Handinger did not confirm deleting worker w: check it with get_worker."
        );
        let other_flag = Done {
            cancelled: Some(false),
            ..Done::default()
        };
        assert_eq!(summary(delete(), other_flag), "Deleted worker w.");
    }

    #[test]
    fn an_unconfirmed_cancel_says_how_to_check() {
        let cancel = Change::CancelSchedule {
            worker_id: "wrk_1".into(),
            schedule_id: "sch_1".into(),
        };
        let result = cancel.reply(&Done {
            cancelled: Some(false),
            ..Done::default()
        });
        let text = result.content[0].as_text().unwrap().text.clone();
        assert!(
            text.starts_with("Handinger did not confirm cancelling schedule sch_1: check with list_schedules (workerId wrk_1).\n\n"),
            "{text}"
        );
        let structured = result.structured_content.unwrap();
        assert_eq!(structured["cancelled"], false);
    }
}
