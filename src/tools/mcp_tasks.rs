//! The MCP Tasks extension (`io.modelcontextprotocol/tasks`) mapped onto Handinger tasks.
//!
//! For a client that negotiates the extension, `create_task` answers at once with an MCP
//! task whose id *is* the Handinger taskId, so `tasks/get` works from the turn registry
//! while the server holds the turn, and from `GET /api/tasks/{id}` after that (another
//! replica, a restart). Statuses map honestly: running or pending → working, completed →
//! completed, error or aborted → failed. `tasks/cancel` stops our reporting of the task; it
//! cannot stop the Handinger task, which has no cancel endpoint and keeps running.

use rmcp::model::{DetailedTask, JsonObject, Task, TaskPayload};
use rmcp::service::RequestContext;
use rmcp::task_manager::current_timestamp;
use rmcp::{ErrorData, RoleServer};
use serde_json::json;

use super::HandingerServer;
use super::output::{TaskResult, outcome_result, task_result};
use crate::task_id::TaskId;
use crate::tasks::{Recorded, Turn, TurnOutcome};

/// Suggested `tasks/get` polling interval.
const POLL_INTERVAL_MS: u64 = 2_000;

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
        if let Ok(ttl) = u64::try_from(self.turns.retention().ttl.as_millis()) {
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
                    recorded: Recorded::StillRunning,
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
                    if result.is_error == Some(true) {
                        (failed(&result), "failed".into())
                    } else {
                        (completed(&result), "completed".into())
                    }
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
        if let Some(turn) = self.turns.get(&api, &task_id) {
            return Ok(self.mcp_task_of(&turn));
        }
        let record = api.get_task(&task_id).await.map_err(|error| {
            super::lookup_error(&task_id, &error, |message| {
                ErrorData::invalid_params(message, None)
            })
        })?;
        let mut result = TaskResult::from_record(&task_id, &record);
        if result.status == "completed" {
            let sources = api.latest_sources(&task_id, &record).await;
            result = result.with_sources(&sources);
        }
        let created = record
            .task
            .created_at
            .as_ref()
            .and_then(crate::handinger::types::raw_str)
            .unwrap_or_else(current_timestamp);
        let updated = record
            .task
            .completed_at
            .as_ref()
            .and_then(crate::handinger::types::raw_str)
            .unwrap_or_else(current_timestamp);
        let status = result.status.clone();
        let payload = match status.as_str() {
            "completed" => completed(&task_result(&result, None)),
            "error" | "aborted" => failed(&task_result(
                &result,
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
        if let Some(turn) = self.turns.get(&api, &task_id) {
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

/// A failed task carries a JSON-RPC style error: the tool result's text as the message.
fn failed(result: &rmcp::model::CallToolResult) -> TaskPayload {
    let message = result
        .content
        .iter()
        .filter_map(|c| c.as_text().map(|t| t.text.as_str()))
        .collect::<Vec<_>>()
        .join("\n");
    let error = json!({ "code": -32000, "message": message });
    TaskPayload::Failed {
        error: error.as_object().cloned().unwrap_or_default(),
    }
}
