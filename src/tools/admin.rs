//! The `admin` toolset: `delete_worker` and `archive_task`. Neither can be undone, so they
//! are only served when `--toolsets` names `admin`, and carry the destructive annotation
//! (clients ask the user before calling such tools).

use rmcp::handler::server::common::schema_for_output;
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::Deserialize;

use super::HandingerServer;
use super::call::{Call, Reply};
use super::change::{ArchivedTask, Change, DeletedWorker};
use super::reply::worker_id;
use super::tasks::input_schema;
use crate::task_id::TaskId;

/// Arguments of `delete_worker`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct DeleteWorkerArgs {
    /// The worker to delete (an id like wrk_vk81XUHKHG-qr4). Check it with get_worker first.
    pub worker_id: String,
}

/// Arguments of `archive_task`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct ArchiveTaskArgs {
    /// The task to archive, as create_task returned it (tsk_…).
    pub task_id: String,
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
        let change = call.args.and_then(|args| {
            let worker_id = worker_id(args.worker_id)?;
            Ok(Change::DeleteWorker { worker_id })
        });
        self.apply(&call.context, change).await
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
        let change = call.args.and_then(|args| {
            let task_id = TaskId::parse(&args.task_id)?;
            Ok(Change::ArchiveTask { task_id })
        });
        self.apply(&call.context, change).await
    }
}
