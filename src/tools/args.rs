//! Tool arguments: the Rust structs the tools' input schemas are derived from.
//!
//! Arguments are decoded by [`decode`] rather than by rmcp's `Parameters<T>` so that a bad
//! argument comes back as a tool error the model can read and correct (as the MCP spec
//! recommends), not as an opaque protocol error.
//!
//! Every tool's argument struct is strict (`deny_unknown_fields`: a misspelt field is
//! refused, not silently dropped) and camelCase. A field that more than one tool takes
//! (`input`, `budget`, `taskId`, `files`; `instructions`, `title`, `summary`, `visibility`)
//! has the same type in each, optional but for `input`, while each tool words its own
//! description; the tool snapshots (tests/it/tool_snapshots.rs) show any drift. Fields keep
//! the order they are written in: serde's "expected one of" list and the schema's
//! `required` follow it.

use rmcp::model::JsonObject;
use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::files::upload::FileArg;
use crate::handinger::Budget;

/// Arguments of `create_task`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct CreateTaskArgs {
    /// What the worker should do, in plain language, with everything it needs to know. For a
    /// follow-up turn, just the follow-up message: the worker keeps the task's context.
    pub input: String,
    /// Compute budget. low: quick lookups; standard: most tasks; high: multi-step research;
    /// unlimited: long-running work with no spend cap. Omit it to use the server's default.
    #[serde(default)]
    pub budget: Option<Budget>,
    /// Continue an earlier task: pass the taskId of a previous create_task result to add a
    /// follow-up turn that keeps the conversation. Omit it to start a new task, or give a
    /// new id of your own (tsk_ then letters, digits, - or _) so that the call can be sent
    /// again safely if its answer is lost.
    #[serde(default)]
    pub task_id: Option<String>,
    /// Run on a specific Handinger worker (an id like wrk_vk81XUHKHG-qr4). Omit it to use the
    /// server's configured worker, or to let Handinger set up a worker from the input.
    #[serde(default)]
    pub worker_id: Option<String>,
    /// Files to put in the worker's workspace before it starts: each either {"path"} (a
    /// local file inside a directory the user allowed) or {"name", "content" (base64),
    /// "mediaType"}. Use it for "summarise this PDF" or "fix this spreadsheet".
    #[serde(default)]
    pub files: Option<Vec<FileArg>>,
}

impl CreateTaskArgs {
    /// Whether any attachment is a local path (which needs the allowed roots).
    pub fn has_local_paths(&self) -> bool {
        self.files
            .as_ref()
            .is_some_and(|files| files.iter().any(|f| f.path.is_some()))
    }
}

/// Arguments of `get_task`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct GetTaskArgs {
    /// The taskId returned by create_task.
    pub task_id: String,
    /// Seconds to wait for a running task to finish before answering (capped by the
    /// server's --max-wait). Use it to collect a task create_task reported as running.
    #[serde(default)]
    pub wait: Option<u64>,
}

/// Decodes a tool's arguments, or says in one sentence what is wrong with them (and where:
/// `outputSchema: invalid type …`).
pub fn decode<T: DeserializeOwned>(tool: &str, arguments: JsonObject) -> Result<T, String> {
    serde_path_to_error::deserialize(serde_json::Value::Object(arguments)).map_err(|e| {
        let path = e.path().to_string();
        let at = if path == "." {
            String::new()
        } else {
            format!("{path}: ")
        };
        let e = e.into_inner();
        format!("Invalid arguments for {tool}: {at}{e}. Fix the arguments and call {tool} again.")
    })
}

/// A JSON object literal as tool arguments, for the unit tests.
#[cfg(test)]
pub(super) fn object(value: serde_json::Value) -> JsonObject {
    value.as_object().cloned().unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unknown_budget_and_unknown_field_are_explained() {
        let err = decode::<CreateTaskArgs>(
            "create_task",
            object(json!({"input": "x", "budget": "huge"})),
        )
        .unwrap_err();
        assert!(err.contains("huge") && err.contains("standard"), "{err}");
        let err =
            decode::<CreateTaskArgs>("create_task", object(json!({"input": "x", "task_id": "t"})))
                .unwrap_err();
        assert!(err.contains("taskId"), "{err}");
    }

    /// The shared fields keep each tool's field order, which serde's error lists follow.
    #[test]
    fn shared_fields_keep_each_tools_order() {
        let unknown = |tool: &str, args| match tool {
            "ask" => decode::<super::super::named::AskWorkerArgs>("ask_x", object(args)).err(),
            "create_worker" => {
                decode::<super::super::workers::CreateWorkerArgs>(tool, object(args)).err()
            }
            _ => decode::<super::super::workers::UpdateWorkerArgs>(tool, object(args)).err(),
        };
        let err = unknown("ask", json!({"input": "x", "workerId": "w"})).unwrap();
        assert!(
            err.contains(
                "unknown field `workerId`, expected one of `input`, `budget`, `taskId`, `files`"
            ),
            "{err}"
        );
        let err = unknown("create_worker", json!({"workerId": "w"})).unwrap();
        assert!(
            err.contains("expected one of `instructions`, `prompt`, `title`, `summary`, `visibility`, `outputSchema`"),
            "{err}"
        );
        let err = unknown("update_worker", json!({"workerId": "w", "prompt": "p"})).unwrap();
        assert!(
            err.contains("expected one of `workerId`, `instructions`, `title`, `summary`, `visibility`, `outputSchema`"),
            "{err}"
        );
        let err = decode::<CreateTaskArgs>("create_task", object(json!({"input": "x", "x": 1})))
            .unwrap_err();
        assert!(
            err.contains("expected one of `input`, `budget`, `taskId`, `workerId`, `files`"),
            "{err}"
        );
    }

    #[test]
    fn missing_input_is_explained() {
        let err = decode::<CreateTaskArgs>("create_task", object(json!({}))).unwrap_err();
        assert!(err.contains("input"), "{err}");
    }
}
