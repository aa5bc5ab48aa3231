//! Results of the worker, schedule and admin tools: a short text for the model plus the
//! structured content their output schemas describe, and errors that say what to do next.

use rmcp::model::{CallToolResult, ContentBlock};
use serde::Serialize;

use super::output::error_result;
use crate::handinger::ApiError;
use crate::task_id::validate_id;

/// A successful result: `summary`, then the structured value as JSON (for clients that
/// show only text), and the value as structured content.
pub(super) fn structured<T: Serialize>(summary: String, value: &T) -> CallToolResult {
    let json = serde_json::to_value(value).unwrap_or_default();
    let text = match serde_json::to_string_pretty(&json) {
        Ok(pretty) => format!("{summary}\n\n{pretty}"),
        Err(_) => summary,
    };
    let mut result = CallToolResult::success(vec![ContentBlock::text(text)]);
    result.structured_content = Some(json);
    result
}

/// What an ambiguous write failure means for the caller.
pub(super) enum AfterFailure<'a> {
    /// A read: nothing changed, calling again is fine.
    Read,
    /// A change that is harmless to repeat (PATCH, DELETE).
    Repeatable,
    /// A creation: repeating it after Handinger took it makes a second one. The text says how
    /// to check first.
    Creation { check: &'a str },
}

/// The error result of a failed API call: what failed, Handinger's reason, what to do.
pub(super) fn api_failed(what: &str, error: &ApiError, after: AfterFailure<'_>) -> CallToolResult {
    let mut message = format!("{what} failed: {error}. {}", error.hint());
    if error.request_was_taken() {
        match after {
            AfterFailure::Read => {}
            AfterFailure::Repeatable => message.push_str(
                " Handinger may have applied the change anyway; repeating the call is harmless.",
            ),
            AfterFailure::Creation { check } => {
                message.push_str(&format!(
                    " Handinger may have created it anyway: {check} before calling again."
                ));
            }
        }
    }
    error_result(message)
}

/// What a worker id looks like, for the errors that ask for one.
pub(super) const WORKER_ID_EXAMPLE: &str = "wrk_vk81XUHKHG-qr4";

/// How to see whether a schedule of `worker_id` exists, after a change Handinger may or
/// may not have made.
pub(super) fn list_check(worker_id: &str) -> String {
    format!("check with list_schedules (workerId {worker_id})")
}

/// Checks a required `workerId` argument, giving it back.
pub(super) fn worker_id(raw: String) -> Result<String, String> {
    required_id(&raw, "workerId", WORKER_ID_EXAMPLE).map(|()| raw)
}

/// Checks a required id argument; the error names the argument and the expected shape.
pub(super) fn required_id(raw: &str, field: &str, example: &str) -> Result<(), String> {
    if raw.trim().is_empty() {
        return Err(format!("{field} is empty: pass an id such as {example}."));
    }
    validate_id(raw, field)
}

/// A required, non-blank text argument.
pub(super) fn required_text(raw: &str, field: &str, what: &str) -> Result<(), String> {
    if raw.trim().is_empty() {
        return Err(format!("{field} is empty: {what}."));
    }
    Ok(())
}
