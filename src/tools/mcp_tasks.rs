//! The MCP Tasks extension (`io.modelcontextprotocol/tasks`) mapped onto Handinger tasks.
//!
//! For a request that declares the extension under a protocol version that defines task
//! handles (2026-07-28 and later, see [`offers_task_handles`]), `create_task` answers at once
//! with an MCP task whose id *is* the Handinger taskId, so `tasks/get` works from the turn
//! registry while the server holds the turn, and from `GET /api/tasks/{id}` after that
//! (another replica, a restart). Statuses follow the extension: running or pending →
//! working; an answer → completed carrying the tool result, also when that result has
//! `isError` (an upstream failure, a Handinger task that ended in error or aborted), since
//! the extension keeps `failed` for JSON-RPC errors and the tool result carries what a
//! client needs (the taskId, whether resending is safe). `tasks/cancel` stops our reporting
//! of the task; it cannot stop the Handinger task, which has no cancel endpoint and keeps
//! running.

use rmcp::model::{DetailedTask, JsonObject, ProtocolVersion, Task, TaskPayload};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};

use super::HandingerServer;
use super::output::{TaskResult, outcome_result, task_result};
use crate::task_id::TaskId;
use crate::turns::{Known, RecordedUpstream, Turn, TurnOutcome};

/// Suggested `tasks/get` polling interval.
const POLL_INTERVAL_MS: u64 = 2_000;

/// Whether a `tools/call` may be answered with a task handle (`resultType: "task"`): the
/// request declares the tasks extension *and* is made under a protocol version that defines
/// that result shape. The extension exists since 2026-07-28; a 2025-11-25 session that lists
/// it at `initialize` (MCP Inspector does by default) cannot parse a handle, so it gets the
/// ordinary tool result, as a client without the extension does.
pub(super) fn offers_task_handles(context: &RequestContext<RoleServer>) -> bool {
    let declared = context
        .client_capabilities()
        .is_some_and(|caps| caps.supports_tasks());
    // ISO dates compare lexically as they do in time; rmcp compares versions the same way.
    let defines_handles = context
        .protocol_version()
        .is_some_and(|version| version.as_str() >= ProtocolVersion::V_2026_07_28.as_str());
    declared && defines_handles
}

impl HandingerServer {
    /// The MCP view of a turn the server holds.
    pub(super) fn mcp_task_of(&self, turn: &Turn) -> DetailedTask {
        let updated = turn.finished_at().unwrap_or(&turn.created_at).to_owned();
        let mut task = Task::new(
            turn.task_id.to_string(),
            Default::default(),
            turn.created_at.clone(),
            updated,
        )
        .with_poll_interval_ms(POLL_INTERVAL_MS);
        if let Ok(ttl) = u64::try_from(self.services.turns.retention().ttl.as_millis()) {
            task = task.with_ttl_ms(ttl);
        }
        let (payload, message) = if turn.is_cancelled() {
            (
                TaskPayload::Cancelled,
                format!(
                    "No longer followed here; the Handinger task itself cannot be stopped and keeps running. Collect it with the get_task tool (taskId {}).",
                    turn.task_id
                ),
            )
        } else {
            match turn.outcome().as_deref() {
                None
                | Some(TurnOutcome::Failed {
                    recorded: RecordedUpstream::StillRunning,
                    ..
                }) => (
                    TaskPayload::Working,
                    format!(
                        "worker running, {} s elapsed, budget {}",
                        turn.started.elapsed().as_secs(),
                        turn.budget
                    ),
                ),
                Some(outcome) => {
                    let result = outcome_result(&turn.task_id, outcome);
                    let message = if result.is_error == Some(true) {
                        "completed with a tool error: see the result"
                    } else {
                        "completed"
                    };
                    (completed(&result), message.into())
                }
            }
        };
        DetailedTask::new(task.with_status_message(message), payload)
    }

    pub(super) async fn mcp_get_task(
        &self,
        raw_id: &str,
        context: &RequestContext<RoleServer>,
    ) -> Result<DetailedTask, ErrorData> {
        let (task_id, api) = self.mcp_ids(raw_id, context)?;
        let known = self
            .services
            .turns
            .lookup(&api, &task_id)
            .await
            .map_err(|error| {
                super::lookup_error(&task_id, &error, |message| {
                    ErrorData::invalid_params(message, None)
                })
            })?;
        let record = match known {
            Known::Held(turn) => return Ok(self.mcp_task_of(&turn)),
            Known::Recorded(record) => *record,
        };
        let mut result = TaskResult::from_record(&task_id, &record);
        if result.status == "completed" {
            let sources = api.latest_sources(&task_id, &record).await;
            result = result.with_sources(&sources);
        }
        // Handinger's times as given, or now where it gave none.
        let time = |raw: &Option<_>| {
            raw.as_ref()
                .and_then(crate::handinger::types::raw_str)
                .unwrap_or_else(crate::turns::now_rfc3339)
        };
        let created = time(&record.task.created_at);
        let updated = time(&record.task.completed_at);
        let status = result.status.clone();
        // A Handinger task that ended in error or aborted is still a finished tool call: its
        // result (an error result naming the status) is what the extension's `completed`
        // carries; `failed` would drop it for a bare JSON-RPC error.
        let payload = match status.as_str() {
            "completed" => completed(&task_result(result, None)),
            "error" | "aborted" => completed(&task_result(
                result,
                Some(format!("Task {task_id} ended with status {status}.")),
            )),
            _ => TaskPayload::Working,
        };
        let task = Task::new(task_id.to_string(), Default::default(), created, updated)
            .with_poll_interval_ms(POLL_INTERVAL_MS)
            .with_status_message(format!("Handinger task {status}"));
        Ok(DetailedTask::new(task, payload))
    }

    pub(super) fn mcp_cancel_task(
        &self,
        raw_id: &str,
        context: &RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        let (task_id, api) = self.mcp_ids(raw_id, context)?;
        if let Some(turn) = self.services.turns.get(&api, &task_id) {
            tracing::info!(%task_id, "MCP task cancelled; the Handinger task keeps running");
            turn.mark_cancelled();
        }
        Ok(())
    }

    fn mcp_ids(
        &self,
        raw_id: &str,
        context: &RequestContext<RoleServer>,
    ) -> Result<(TaskId, crate::handinger::HandingerClient), ErrorData> {
        let task_id = TaskId::parse(raw_id).map_err(|e| ErrorData::invalid_params(e, None))?;
        let api = self
            .api_for(context)
            .map_err(|e| ErrorData::invalid_request(e, None))?;
        Ok((task_id, api))
    }
}

fn completed(result: &rmcp::model::CallToolResult) -> TaskPayload {
    match serde_json::to_value(result) {
        Ok(serde_json::Value::Object(result)) => TaskPayload::Completed { result },
        _ => TaskPayload::Completed {
            result: JsonObject::new(),
        },
    }
}
