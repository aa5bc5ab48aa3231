//! The `admin` toolset: `delete_worker` and `archive_task`. Neither can be undone, so they
//! are only served when `--toolsets` names `admin`, and carry the destructive annotation
//! (clients ask the user before calling such tools).

use rmcp::handler::server::common::schema_for_output;
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::Serialize;

use super::HandingerServer;
use super::args::tool_args;
use super::call::{Call, Reply, answer};
use super::reply::{AfterFailure, confirmation, structured, worker_id};
use super::tasks::input_schema;
use crate::task_id::TaskId;

tool_args! {
    /// Arguments of `delete_worker`.
    pub struct DeleteWorkerArgs {
        /// The worker to delete (an id like wrk_vk81XUHKHG-qr4). Check it with get_worker first.
        pub worker_id: String,
    }
}

tool_args! {
    /// Arguments of `archive_task`.
    pub struct ArchiveTaskArgs {
        /// The task to archive, as create_task returned it (tsk_…).
        pub task_id: String,
    }
}

/// What `delete_worker` returns.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeletedWorker {
    pub worker_id: String,
    /// Whether Handinger says the worker is deleted.
    pub deleted: bool,
}

/// What `archive_task` returns.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ArchivedTask {
    pub task_id: String,
    /// Whether Handinger says the task is archived.
    pub archived: bool,
}

#[tool_router(router = admin_tools, vis = "pub(super)")]
impl HandingerServer {
    #[tool(
        name = "delete_worker",
        title = "Delete a Handinger worker",
        description = "Delete a Handinger worker for good, with its standing instructions: \
tasks can no longer run on it. This cannot be undone; call it only when the user asked to \
delete this very worker.",
        input_schema = input_schema::<DeleteWorkerArgs>(),
        output_schema = schema_for_output::<DeletedWorker>()
    )]
    pub(super) async fn delete_worker_tool(&self, call: Call<DeleteWorkerArgs>) -> Reply {
        let worker_id = call.args.and_then(|args| worker_id(args.worker_id));
        self.api_call(&call.context, worker_id, |api, worker_id| async move {
            let what = format!("delete_worker for workerId {worker_id}");
            let done = api.delete_worker(&worker_id).await;
            answer(done, &what, AfterFailure::Repeatable, |done| {
                let (deleted, summary) = confirmation(
                    done.deleted,
                    format!("Deleted worker {worker_id}."),
                    format!("deleting worker {worker_id}: check it with get_worker"),
                );
                tracing::info!(%worker_id, deleted, "delete_worker");
                structured(summary, &DeletedWorker { worker_id, deleted })
            })
        })
        .await
    }

    #[tool(
        name = "archive_task",
        title = "Archive a Handinger task",
        description = "Archive a Handinger task so it leaves the task list. It does not stop a \
running task (Handinger has no way to), and only the task's creator may archive it. Call it \
only when the user asked to archive this task.",
        input_schema = input_schema::<ArchiveTaskArgs>(),
        output_schema = schema_for_output::<ArchivedTask>()
    )]
    pub(super) async fn archive_task_tool(&self, call: Call<ArchiveTaskArgs>) -> Reply {
        let task_id = call.args.and_then(|args| TaskId::parse(&args.task_id));
        self.api_call(&call.context, task_id, |api, task_id| async move {
            let what = format!("archive_task for taskId {task_id}");
            let done = api.archive_task(&task_id).await;
            answer(done, &what, AfterFailure::Repeatable, |done| {
                let (archived, summary) = confirmation(
                    done.archived,
                    format!("Archived task {task_id}."),
                    format!("archiving task {task_id}: check it with get_task"),
                );
                tracing::info!(%task_id, archived, "archive_task");
                let task_id = task_id.to_string();
                structured(summary, &ArchivedTask { task_id, archived })
            })
        })
        .await
    }
}
