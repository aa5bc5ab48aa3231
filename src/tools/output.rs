//! Tool results: the structured shape both task tools return (their output schemas are
//! derived from it) and its mapping to MCP content blocks a model reads.

use rmcp::model::{CallToolResult, ContentBlock, Resource};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::files::answer::LocalCopy;
use crate::handinger::types::{AnswerFile, Source, TaskRecord, TaskTotals, Turn, Usage};
use crate::handinger::{ApiError, WorkerAnswer};
use crate::task_id::TaskId;
use crate::tasks::{Recorded, TurnOutcome};

/// A task as `create_task` and `get_task` report it.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskResult {
    /// Pass this as taskId to create_task for a follow-up turn, or to get_task.
    pub task_id: String,
    /// completed, running or pending; failed, error or aborted when it went wrong.
    pub status: String,
    /// The Handinger worker that runs the task.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub worker_id: Option<String>,
    /// The worker's answer (empty while it is still running).
    pub output_text: String,
    /// The worker's structured answer, when the worker has an output schema (an object; a
    /// value of another kind comes as {"value": …}).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub structured_output: Option<Map<String, Value>>,
    /// Web pages the worker used.
    pub sources: Vec<SourceLink>,
    /// Files the worker produced.
    pub files: Vec<FileLink>,
    /// Credits and time the turn consumed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// The task's or worker's page in the Handinger dashboard.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// What to do next, when the answer is not complete yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_step: Option<String>,
    /// The task's title (from a task lookup).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// Totals over all turns (from a task lookup).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub totals: Option<TaskTotals>,
    /// Every turn, oldest first (from a task lookup; answers there carry no sources or files).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub turns: Option<Vec<TurnView>>,
    /// Small images to show inline (`--inline-images`): media type and base64 bytes. Not
    /// part of the structured result, which stays small.
    #[serde(skip)]
    #[schemars(skip)]
    pub images: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SourceLink {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    pub url: String,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileLink {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filename: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<u64>,
    /// The same file as an MCP resource of this server (resources/read).
    pub resource_uri: String,
    /// Where the server saved a copy (--download-dir).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_path: Option<String>,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TurnView {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seq: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_text: Option<String>,
    /// The turn's structured answer, when the worker has an output schema (an object; a
    /// value of another kind comes as {"value": …}).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub structured_output: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub credits: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<f64>,
    /// When the turn started, as Handinger reports it (a date, or unix seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub started_at: Option<String>,
    /// When the turn completed, as Handinger reports it; absent while it runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<String>,
}

impl TaskResult {
    /// From the answer of `POST /api/tasks` and what was done with its files.
    pub fn from_answer(task_id: &TaskId, answer: &WorkerAnswer, copies: &[LocalCopy]) -> Self {
        let files = answer
            .files
            .iter()
            .filter_map(|f| FileLink::from_file(task_id, f, copies))
            .collect();
        let images = copies.iter().filter_map(|c| c.image.clone()).collect();
        TaskResult {
            files,
            images,
            task_id: task_id.to_string(),
            status: if answer.error.is_some() {
                "failed".into()
            } else {
                answer.status.clone().unwrap_or_else(|| "completed".into())
            },
            worker_id: answer.id.clone(),
            output_text: answer.output_text.clone().unwrap_or_default(),
            structured_output: structured_object(answer.structured_output.clone()),
            sources: answer
                .sources
                .iter()
                .filter_map(SourceLink::from_source)
                .collect(),
            usage: answer.usage,
            url: answer.url.clone(),
            ..Default::default()
        }
    }

    /// From `GET /api/tasks/{taskId}`: the latest turn's answer, and every turn.
    pub fn from_record(task_id: &TaskId, record: &TaskRecord) -> Self {
        let task = &record.task;
        let mut turns: Vec<TurnView> = record.turns.iter().map(TurnView::from).collect();
        turns.sort_by_key(|t| t.seq.unwrap_or(i64::MAX));
        let latest = turns.last();
        let status = task
            .status
            .clone()
            .or_else(|| latest.and_then(|t| t.status.clone()))
            .unwrap_or_else(|| "unknown".into());
        let running = !crate::tasks::is_terminal_status(&status);
        TaskResult {
            task_id: task.id.clone().unwrap_or_else(|| task_id.to_string()),
            worker_id: task.worker_id.clone(),
            output_text: latest
                .and_then(|t| t.output_text.clone())
                .unwrap_or_default(),
            structured_output: latest.and_then(|t| t.structured_output.clone()),
            usage: latest.map(|t| Usage {
                credits: t.credits,
                duration_ms: t.duration_ms,
            }),
            url: task.url.clone(),
            next_step: running.then(|| collect_hint(task_id)),
            title: task.title.clone(),
            totals: task.totals,
            turns: Some(turns),
            status,
            ..Default::default()
        }
    }

    /// For a turn still running when the wait ended.
    pub fn running(task_id: &TaskId, elapsed_secs: u64) -> Self {
        TaskResult {
            task_id: task_id.to_string(),
            status: "running".into(),
            next_step: Some(format!(
                "The worker is still running ({elapsed_secs} s so far) and keeps running on Handinger. {}",
                collect_hint(task_id)
            )),
            ..Default::default()
        }
    }
}

fn collect_hint(task_id: &TaskId) -> String {
    format!("Call get_task with taskId \"{task_id}\" and wait (seconds) to collect the answer.")
}

impl SourceLink {
    fn from_source(source: &Source) -> Option<Self> {
        Some(SourceLink {
            url: source.url.clone().filter(|u| !u.is_empty())?,
            title: source.title.clone(),
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
    fn from_file(task_id: &TaskId, file: &AnswerFile, copies: &[LocalCopy]) -> Option<Self> {
        let url = file.url.clone().filter(|u| !u.is_empty())?;
        let name = file_name(file.filename.as_deref(), &url);
        let local_path = copies
            .iter()
            .find(|c| c.url == url)
            .and_then(|c| c.path.as_ref())
            .map(|p| p.display().to_string());
        Some(FileLink {
            resource_uri: file_resource_uri(task_id, &name),
            filename: file.filename.clone(),
            media_type: file.media_type.clone(),
            size: file.size.filter(|s| *s >= 0.0).map(|s| s as u64),
            local_path,
            url,
        })
    }

    fn name(&self) -> String {
        file_name(self.filename.as_deref(), &self.url)
    }
}

/// A structured answer as the output schema describes it: an object. Handinger's answers are
/// objects (or null); anything else is kept, wrapped, rather than dropped.
pub fn structured_object(value: Option<Value>) -> Option<Map<String, Value>> {
    match value? {
        Value::Null => None,
        Value::Object(object) => Some(object),
        other => Some(Map::from_iter([("value".to_owned(), other)])),
    }
}

/// A timestamp as Handinger gave it, as text: a date string as is, unix seconds as digits.
/// Other shapes are outside the API's contract and left out.
pub fn timestamp(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// A file's name: the answer's filename, or the URL's last segment.
pub fn file_name(filename: Option<&str>, url: &str) -> String {
    filename
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .unwrap_or_else(|| last_segment(url).to_owned())
}

/// `handinger://tasks/{taskId}/files/{name}`, the name escaped as one path segment.
pub fn file_resource_uri(task_id: &TaskId, name: &str) -> String {
    const SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    format!(
        "handinger://tasks/{}/files/{}",
        task_id.path_segment(),
        percent_encoding::utf8_percent_encode(name, SEGMENT)
    )
}

impl From<&Turn> for TurnView {
    fn from(turn: &Turn) -> Self {
        TurnView {
            seq: turn.seq,
            status: turn.status.clone(),
            input: turn.input.clone(),
            output_text: turn.output_text.clone(),
            structured_output: structured_object(turn.structured_output.clone()),
            credits: turn.credits,
            duration_ms: turn.duration_ms,
            started_at: timestamp(turn.started_at.as_ref()),
            completed_at: timestamp(turn.completed_at.as_ref()),
        }
    }
}

/// The tool result for a task: a text block (the answer, or what is going on), a
/// `resource_link` per source and file, and the structured result. `problem` makes it an
/// error result whose text leads with the problem.
pub fn task_result(result: &TaskResult, problem: Option<String>) -> CallToolResult {
    let mut text = match (&problem, result.output_text.is_empty()) {
        (Some(problem), true) => problem.clone(),
        (Some(problem), false) => format!("{problem}\n\n{}", result.output_text),
        (None, false) => result.output_text.clone(),
        (None, true) => match &result.next_step {
            Some(next) => format!("Task {} is {}. {next}", result.task_id, result.status),
            None => format!(
                "Task {} is {}; the worker gave no text answer.",
                result.task_id, result.status
            ),
        },
    };
    text.push_str(&footer(result));
    let mut content = Vec::with_capacity(1 + result.sources.len() + result.files.len());
    content.push(ContentBlock::text(text));
    for source in &result.sources {
        let mut link = Resource::new(source.url.clone(), source.name());
        if let Some(title) = &source.title {
            link = link.with_title(title.clone());
        }
        content.push(ContentBlock::resource_link(link));
    }
    for file in &result.files {
        let mut link = Resource::new(file.url.clone(), file.name()).with_description(format!(
            "Also readable through this server as {}",
            file.resource_uri
        ));
        if let Some(media_type) = &file.media_type {
            link = link.with_mime_type(media_type.clone());
        }
        if let Some(size) = file.size {
            link = link.with_size(size);
        }
        content.push(ContentBlock::resource_link(link));
        if let Some(path) = &file.local_path
            && let Ok(uri) = reqwest::Url::from_file_path(path)
        {
            let saved = Resource::new(uri.to_string(), file.name())
                .with_description("Saved copy (--download-dir)");
            content.push(ContentBlock::resource_link(saved));
        }
    }
    for (media_type, data) in &result.images {
        content.push(ContentBlock::image(data.clone(), media_type.clone()));
    }
    let mut call_result = if problem.is_some() {
        CallToolResult::error(content)
    } else {
        CallToolResult::success(content)
    };
    call_result.structured_content = serde_json::to_value(result).ok();
    call_result
}

/// The bracketed last line: the handle for follow-ups, plus turn history and dashboard.
fn footer(result: &TaskResult) -> String {
    let mut footer = format!("\n\n[taskId: {}", result.task_id);
    if let Some(turns) = result.turns.as_ref().filter(|t| t.len() > 1) {
        footer.push_str(&format!(", {} turns", turns.len()));
    }
    if let Some(url) = &result.url {
        footer.push_str(&format!(", dashboard: {url}"));
    }
    footer.push_str(" — pass it back as taskId for a follow-up, or to get_task]");
    footer
}

/// The tool result for a finished turn.
pub fn outcome_result(task_id: &TaskId, outcome: &TurnOutcome) -> CallToolResult {
    match outcome {
        TurnOutcome::Answered { answer, copies } => {
            let result = TaskResult::from_answer(task_id, answer, copies);
            let problem = answer
                .error
                .as_ref()
                .map(|e| format!("The worker reported an error: {}", compact(e)));
            task_result(&result, problem)
        }
        TurnOutcome::Recovered { record, cause } => {
            let mut result = TaskResult::from_record(task_id, record);
            let failed = matches!(result.status.as_str(), "error" | "aborted" | "failed");
            let note = format!(
                "(The connection to Handinger failed while waiting ({cause}), but the turn ran: this is its answer from the task record, which carries no sources or files; see the dashboard for those.)"
            );
            if failed {
                task_result(
                    &result,
                    Some(format!(
                        "The task ended with status {}. {note}",
                        result.status
                    )),
                )
            } else {
                result.output_text = format!("{}\n\n{note}", result.output_text);
                task_result(&result, None)
            }
        }
        TurnOutcome::Failed { error, recorded } => match recorded {
            Recorded::StillRunning => task_result(&TaskResult::running(task_id, 0), None),
            _ => create_failed(task_id, error, *recorded),
        },
    }
}

/// An error result: what failed, Handinger's reason, and what to do next.
pub fn error_result(message: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message.into())])
}

fn create_failed(task_id: &TaskId, error: &ApiError, recorded: Recorded) -> CallToolResult {
    let next = match recorded {
        Recorded::No => format!(
            "Handinger did not record this turn, so calling create_task again is safe (taskId {task_id})."
        ),
        _ => format!(
            "Handinger may have recorded this turn: do not resend it. Check it with get_task (taskId {task_id}) first."
        ),
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
