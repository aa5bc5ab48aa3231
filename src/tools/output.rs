//! Tool results: the structured shapes (output schemas are derived from them) and their
//! mapping to MCP content blocks a model reads.

use rmcp::model::{CallToolResult, ContentBlock, Resource};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

use crate::handinger::types::{AnswerFile, Source, TaskRecord, TaskTotals, Turn, Usage};
use crate::handinger::{ApiError, WorkerAnswer};
use crate::task_id::TaskId;

/// Structured result of `create_task` (and of `get_task` when it collects a full answer).
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskAnswer {
    /// Pass this as taskId to create_task for a follow-up turn, or to get_task.
    pub task_id: String,
    /// The Handinger worker that ran the task.
    pub worker_id: Option<String>,
    /// completed, running, pending, or failed.
    pub status: String,
    /// The worker's answer.
    pub output_text: String,
    /// The worker's structured answer, when the worker has an output schema.
    pub structured_output: Option<Value>,
    /// Web pages the worker used.
    pub sources: Vec<SourceLink>,
    /// Files the worker produced.
    pub files: Vec<FileLink>,
    /// Credits and time this turn consumed.
    pub usage: Option<Usage>,
    /// The worker's page in the Handinger dashboard.
    pub url: Option<String>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SourceLink {
    pub title: Option<String>,
    pub url: String,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileLink {
    pub filename: Option<String>,
    pub media_type: Option<String>,
    pub url: String,
    pub size: Option<u64>,
}

impl TaskAnswer {
    pub fn from_worker(task_id: &TaskId, answer: WorkerAnswer) -> Self {
        let failed = answer.error.is_some();
        TaskAnswer {
            task_id: task_id.to_string(),
            worker_id: answer.id,
            status: if failed {
                "failed".into()
            } else {
                answer.status.unwrap_or_else(|| "completed".into())
            },
            output_text: answer.output_text.unwrap_or_default(),
            structured_output: answer.structured_output,
            sources: answer
                .sources
                .into_iter()
                .filter_map(SourceLink::from_source)
                .collect(),
            files: answer
                .files
                .into_iter()
                .filter_map(FileLink::from_file)
                .collect(),
            usage: answer.usage,
            url: answer.url,
        }
    }
}

impl SourceLink {
    fn from_source(source: Source) -> Option<Self> {
        Some(SourceLink {
            url: source.url.filter(|u| !u.is_empty())?,
            title: source.title,
        })
    }

    /// The link's name: the page title, or the host when there is none.
    fn name(&self) -> String {
        self.title
            .clone()
            .filter(|t| !t.trim().is_empty())
            .unwrap_or_else(|| host_of(&self.url).unwrap_or(&self.url).to_owned())
    }
}

impl FileLink {
    fn from_file(file: AnswerFile) -> Option<Self> {
        Some(FileLink {
            url: file.url.filter(|u| !u.is_empty())?,
            filename: file.filename,
            media_type: file.media_type,
            size: file.size.filter(|s| *s >= 0.0).map(|s| s as u64),
        })
    }

    fn name(&self) -> String {
        self.filename
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| last_segment(&self.url).to_owned())
    }
}

/// `create_task`'s tool result: the answer text, a link per source and file, and the
/// structured answer. A worker-reported error makes it an error result.
pub fn answer_result(answer: &TaskAnswer, worker_error: Option<&Value>) -> CallToolResult {
    let mut text = match worker_error {
        Some(error) => format!("The worker reported an error: {}", compact(error)),
        None if answer.output_text.is_empty() => {
            "The worker finished without a text answer.".into()
        }
        None => answer.output_text.clone(),
    };
    text.push_str(&format!(
        "\n\n[taskId: {} — pass it as taskId to create_task for a follow-up, or to get_task]",
        answer.task_id
    ));
    let mut content = Vec::with_capacity(1 + answer.sources.len() + answer.files.len());
    content.push(ContentBlock::text(text));
    for source in &answer.sources {
        let mut link = Resource::new(source.url.clone(), source.name());
        if let Some(title) = &source.title {
            link = link.with_title(title.clone());
        }
        content.push(ContentBlock::resource_link(link));
    }
    for file in &answer.files {
        let mut link = Resource::new(file.url.clone(), file.name());
        if let Some(media_type) = &file.media_type {
            link = link.with_mime_type(media_type.clone());
        }
        if let Some(size) = file.size {
            link = link.with_size(size);
        }
        content.push(ContentBlock::resource_link(link));
    }
    let mut result = if worker_error.is_some() {
        CallToolResult::error(content)
    } else {
        CallToolResult::success(content)
    };
    result.structured_content = serde_json::to_value(answer).ok();
    result
}

/// Structured result of `get_task` when it reports the task record.
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskStatus {
    pub task_id: String,
    /// pending, running, completed, error, or aborted.
    pub status: String,
    pub title: Option<String>,
    pub worker_id: Option<String>,
    /// The task's page in the Handinger dashboard.
    pub url: Option<String>,
    pub totals: Option<TaskTotals>,
    // The two timestamps need their doc comments: a schema property without one is the bare
    // `true` schema, which the TypeScript MCP SDK (and the clients built on it) refuse.
    /// When the task was created, as Handinger reports it.
    pub created_at: Option<Value>,
    /// When the task completed (null while it has not), as Handinger reports it.
    pub completed_at: Option<Value>,
    /// The task's turns, oldest first.
    pub turns: Vec<TurnView>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TurnView {
    pub seq: Option<i64>,
    pub role: Option<String>,
    pub status: Option<String>,
    pub input: Option<String>,
    pub output_text: Option<String>,
    pub structured_output: Option<Value>,
    pub credits: Option<f64>,
    pub duration_ms: Option<f64>,
    pub started_at: Option<Value>,
    pub completed_at: Option<Value>,
}

impl TaskStatus {
    pub fn from_record(task_id: &TaskId, record: TaskRecord) -> Self {
        let task = record.task;
        let mut turns: Vec<TurnView> = record.turns.into_iter().map(TurnView::from).collect();
        turns.sort_by_key(|t| t.seq.unwrap_or(i64::MAX));
        TaskStatus {
            task_id: task.id.unwrap_or_else(|| task_id.to_string()),
            status: task.status.unwrap_or_else(|| "unknown".into()),
            title: task.title,
            worker_id: task.worker_id,
            url: task.url,
            totals: task.totals,
            created_at: task.created_at,
            completed_at: task.completed_at,
            turns,
        }
    }

    /// A short report for the model: status, totals, and the latest answer.
    pub fn summary(&self) -> String {
        let mut text = format!("Task {} is {}", self.task_id, self.status);
        if let Some(title) = self.title.as_deref().filter(|t| !t.is_empty()) {
            text.push_str(&format!(" ({title})"));
        }
        text.push('.');
        if let Some(totals) = &self.totals {
            if let Some(turns) = totals.turn_count {
                text.push_str(&format!(" Turns: {turns}."));
            }
            if let Some(credits) = totals.credits {
                text.push_str(&format!(" Credits: {credits}."));
            }
        }
        if let Some(url) = &self.url {
            text.push_str(&format!(" Dashboard: {url}"));
        }
        let latest = self.turns.iter().rev().find_map(|t| {
            t.output_text
                .as_deref()
                .filter(|o| !o.is_empty())
                .map(|o| (t.seq, o))
        });
        if let Some((seq, output)) = latest {
            let seq = seq.map(|s| format!(" (turn {s})")).unwrap_or_default();
            text.push_str(&format!("\n\nLatest answer{seq}:\n{output}"));
        }
        text
    }
}

impl From<Turn> for TurnView {
    fn from(turn: Turn) -> Self {
        TurnView {
            seq: turn.seq,
            role: turn.role,
            status: turn.status,
            input: turn.input,
            output_text: turn.output_text,
            structured_output: turn.structured_output,
            credits: turn.credits,
            duration_ms: turn.duration_ms,
            started_at: turn.started_at,
            completed_at: turn.completed_at,
        }
    }
}

pub fn status_result(status: &TaskStatus) -> CallToolResult {
    let mut result = CallToolResult::success(vec![ContentBlock::text(status.summary())]);
    result.structured_content = serde_json::to_value(status).ok();
    result
}

/// An error result: what failed, Handinger's reason, and what to do next.
pub fn error_result(message: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message.into())])
}

/// The error of a failed `POST /api/tasks`, with whether resending is safe.
pub fn create_failed(task_id: &TaskId, error: &ApiError) -> CallToolResult {
    let next = if error.request_was_taken() {
        format!(
            "Handinger may have recorded this turn: do not resend it. Check it with get_task (taskId {task_id}) first."
        )
    } else {
        format!(
            "Handinger did not start the turn, so calling create_task again is safe (taskId {task_id})."
        )
    };
    error_result(format!(
        "create_task failed: {error}. {} {next}",
        error.hint()
    ))
}

fn host_of(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host = authority.rsplit('@').next()?;
    (!host.is_empty()).then_some(host)
}

fn last_segment(url: &str) -> &str {
    let path = url.split(['?', '#']).next().unwrap_or(url);
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or(url)
}

fn compact(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Object(map) => map
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| value.to_string()),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_names_fall_back_to_host_and_last_segment() {
        assert_eq!(
            host_of("https://user@example.com:8080/a?b"),
            Some("example.com:8080")
        );
        assert_eq!(
            last_segment("https://x.test/files/report.pdf?sig=1"),
            "report.pdf"
        );
    }
}
