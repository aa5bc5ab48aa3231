//! Tool arguments: the Rust structs the tools' input schemas are derived from.
//!
//! Arguments are decoded by [`decode`] rather than by rmcp's `Parameters<T>` so that a bad
//! argument comes back as a tool error the model can read and correct (as the MCP spec
//! recommends), not as an opaque protocol error.

use rmcp::model::JsonObject;
use serde::de::DeserializeOwned;

/// Declares a tool's argument struct: strict (an unknown field is refused, so a misspelt
/// one is not silently dropped) and camelCase, as every tool's arguments are.
///
/// A field that more than one tool takes (`input`, `budget`, `taskId`, `files`;
/// `instructions`, `title`, `summary`, `visibility`) is written as its description and its
/// name only: its type and decoding are declared once, here, so the tools cannot drift
/// apart, while each tool still words the description its schema shows. Any other field
/// is written out in full. Fields keep the order they are written in: serde's "expected
/// one of" list and the schema's `required` follow it.
macro_rules! tool_args {
    ($(#[$attr:meta])* pub struct $name:ident { $($fields:tt)* }) => {
        tool_args!(@fields [$(#[$attr])* pub struct $name] [] $($fields)*);
    };
    (@fields [$($head:tt)*] [$($done:tt)*]) => {
        #[derive(Debug, ::serde::Deserialize, ::schemars::JsonSchema)]
        #[serde(deny_unknown_fields, rename_all = "camelCase")]
        $($head)* { $($done)* }
    };
    // The shared fields: the description, then the name.
    (@fields $head:tt [$($done:tt)*] $(#[$doc:meta])* input, $($rest:tt)*) => {
        tool_args!(@fields $head [$($done)* $(#[$doc])* pub input: String,] $($rest)*);
    };
    (@fields $head:tt [$($done:tt)*] $(#[$doc:meta])* budget, $($rest:tt)*) => {
        tool_args!(@optional $head [$($done)*] [$(#[$doc])*]
            budget: $crate::handinger::Budget, $($rest)*);
    };
    (@fields $head:tt [$($done:tt)*] $(#[$doc:meta])* task_id, $($rest:tt)*) => {
        tool_args!(@optional $head [$($done)*] [$(#[$doc])*]
            task_id: String, $($rest)*);
    };
    (@fields $head:tt [$($done:tt)*] $(#[$doc:meta])* files, $($rest:tt)*) => {
        tool_args!(@optional $head [$($done)*] [$(#[$doc])*]
            files: Vec<$crate::files::upload::FileArg>, $($rest)*);
    };
    (@fields $head:tt [$($done:tt)*] $(#[$doc:meta])* instructions, $($rest:tt)*) => {
        tool_args!(@optional $head [$($done)*] [$(#[$doc])*]
            instructions: String, $($rest)*);
    };
    (@fields $head:tt [$($done:tt)*] $(#[$doc:meta])* title, $($rest:tt)*) => {
        tool_args!(@optional $head [$($done)*] [$(#[$doc])*]
            title: String, $($rest)*);
    };
    (@fields $head:tt [$($done:tt)*] $(#[$doc:meta])* summary, $($rest:tt)*) => {
        tool_args!(@optional $head [$($done)*] [$(#[$doc])*]
            summary: String, $($rest)*);
    };
    (@fields $head:tt [$($done:tt)*] $(#[$doc:meta])* visibility, $($rest:tt)*) => {
        tool_args!(@optional $head [$($done)*] [$(#[$doc])*]
            visibility: $crate::handinger::types::Visibility, $($rest)*);
    };
    // Any other field, written out in full.
    (@fields $head:tt [$($done:tt)*]
        $(#[$meta:meta])* $vis:vis $field:ident: $ty:ty, $($rest:tt)*) => {
        tool_args!(@fields $head [$($done)* $(#[$meta])* $vis $field: $ty,] $($rest)*);
    };
    // A shared field that may be left out.
    (@optional $head:tt [$($done:tt)*] [$($doc:tt)*] $field:ident: $ty:ty, $($rest:tt)*) => {
        tool_args!(@fields $head
            [$($done)* $($doc)* #[serde(default)] pub $field: Option<$ty>,] $($rest)*);
    };
}
pub(super) use tool_args;

tool_args! {
    /// Arguments of `create_task`.
    pub struct CreateTaskArgs {
        /// What the worker should do, in plain language, with everything it needs to know. For a
        /// follow-up turn, just the follow-up message: the worker keeps the task's context.
        input,
        /// Compute budget. low: quick lookups; standard: most tasks; high: multi-step research;
        /// unlimited: long-running work with no spend cap. Omit it to use the server's default.
        budget,
        /// Continue an earlier task: pass the taskId of a previous create_task result to add a
        /// follow-up turn that keeps the conversation. Omit it to start a new task, or give a
        /// new id of your own (tsk_ then letters, digits, - or _) so that the call can be sent
        /// again safely if its answer is lost.
        task_id,
        /// Run on a specific Handinger worker (an id like wrk_vk81XUHKHG-qr4). Omit it to use the
        /// server's configured worker, or to let Handinger set up a worker from the input.
        #[serde(default)]
        pub worker_id: Option<String>,
        /// Files to put in the worker's workspace before it starts: each either {"path"} (a
        /// local file inside a directory the user allowed) or {"name", "content" (base64),
        /// "mediaType"}. Use it for "summarise this PDF" or "fix this spreadsheet".
        files,
    }
}

impl CreateTaskArgs {
    /// Whether any attachment is a local path (which needs the allowed roots).
    pub fn has_local_paths(&self) -> bool {
        self.files
            .as_ref()
            .is_some_and(|files| files.iter().any(|f| f.path.is_some()))
    }
}

tool_args! {
    /// Arguments of `get_task`.
    pub struct GetTaskArgs {
        /// The taskId returned by create_task.
        pub task_id: String,
        /// Seconds to wait for a running task to finish before answering (capped by the
        /// server's --max-wait). Use it to collect a task create_task reported as running.
        #[serde(default)]
        pub wait: Option<u64>,
    }
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
