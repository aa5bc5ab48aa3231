//! The `admin` toolset: `delete_worker` and `archive_task`. Neither can be undone, so they
//! are only served when `--toolsets` names `admin`, and carry the destructive annotation
//! (clients ask the user before calling such tools).

use rmcp::handler::server::common::schema_for_output;
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, JsonObject};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::HandingerServer;
use super::call::answer;
use super::reply::{AfterFailure, required_id, structured};
use super::tasks::input_schema;
use crate::task_id::TaskId;

/// Arguments of `delete_worker`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct DeleteWorkerArgs {
    /// The worker to delete (an id like wrk_vk81XUHKHG-qr4). Check it with get_worker first.
    pub worker_id: String,
}

/// Arguments of `archive_task`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct ArchiveTaskArgs {
    /// The task to archive, as create_task returned it (tsk_…).
    pub task_id: String,
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
        output_schema = schema_for_output::<DeletedWorker>(),
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    pub(super) async fn delete_worker_tool(
        &self,
        Parameters(arguments): Parameters<JsonObject>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let check = |args: DeleteWorkerArgs| {
            required_id(&args.worker_id, "workerId", "wrk_vk81XUHKHG-qr4").map(|()| args.worker_id)
        };
        self.api_call("delete_worker", arguments, &context, check, |api, worker_id| async move {
            let what = format!("delete_worker for workerId {worker_id}");
            answer(api.delete_worker(&worker_id).await, || what, AfterFailure::Repeatable, |done| {
                let deleted = done.deleted.unwrap_or(true);
                tracing::info!(%worker_id, deleted, "delete_worker");
                let summary = if deleted {
                    format!("Deleted worker {worker_id}.")
                } else {
                    format!(
                        "Handinger did not confirm deleting worker {worker_id}: check it with get_worker."
                    )
                };
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
        output_schema = schema_for_output::<ArchivedTask>(),
        annotations(
            read_only_hint = false,
            destructive_hint = true,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    pub(super) async fn archive_task_tool(
        &self,
        Parameters(arguments): Parameters<JsonObject>,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResult, ErrorData> {
        let check = |args: ArchiveTaskArgs| TaskId::parse(&args.task_id);
        self.api_call("archive_task", arguments, &context, check, |api, task_id| async move {
            answer(
                api.archive_task(&task_id).await,
                || format!("archive_task for taskId {task_id}"),
                AfterFailure::Repeatable,
                |done| {
                    let archived = done.archived.unwrap_or(true);
                    tracing::info!(%task_id, archived, "archive_task");
                    let summary = if archived {
                        format!("Archived task {task_id}.")
                    } else {
                        format!(
                            "Handinger did not confirm archiving task {task_id}: check it with get_task."
                        )
                    };
                    let task_id = task_id.to_string();
                    structured(summary, &ArchivedTask { task_id, archived })
                },
            )
        })
        .await
    }
}
