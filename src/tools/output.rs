//! Tool results: the structured shape both task tools return (their output schemas are
//! derived from it) and its mapping to MCP content blocks a model reads.

use std::sync::Arc;

use rmcp::model::{CallToolResult, ContentBlock, Resource};
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::files::answer::LocalCopy;
use crate::handinger::types::{
    AnswerFile, RawJson, Source, TaskRecord, TaskTotals, TurnRecord, Usage, raw_str,
};
use crate::handinger::{ApiError, WorkerAnswer};
use crate::task_id::TaskId;
use crate::turns::{RecordedUpstream, TurnOutcome};

/// A task as `create_task` and `get_task` report it.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskResult {
    /// Pass this as taskId to create_task for a follow-up turn, or to get_task.
    pub task_id: String,
    /// completed, running or pending; failed, error or aborted when it went wrong.
    pub status: String,
    /// The Handinger worker that runs the task.
    pub worker_id: Option<String>,
    /// The worker's answer (empty while it is still running).
    pub output_text: String,
    /// The worker's structured answer, when the worker has an output schema (an object; a
    /// value of another kind comes as {"value": …}).
    #[schemars(with = "Option<Map<String, Value>>")]
    pub structured_output: Option<RawJson>,
    /// Web pages the worker used.
    pub sources: Vec<SourceLink>,
    /// Files the worker produced.
    pub files: Vec<FileLink>,
    /// Credits and time the turn consumed.
    pub usage: Option<Usage>,
    /// The task's or worker's page in the Handinger dashboard.
    pub url: Option<String>,
    /// What to do next, when the answer is not complete yet.
    pub next_step: Option<String>,
    /// The task's title (from a task lookup).
    pub title: Option<String>,
    /// Totals over all turns (from a task lookup).
    pub totals: Option<TaskTotals>,
    /// Every turn, oldest first (from a task lookup; answers there carry no sources or files).
    pub turns: Option<Vec<TurnView>>,
    /// Small images to show inline (`--inline-images`): media type and base64 bytes. Not
    /// part of the structured result, which stays small.
    #[serde(skip)]
    #[schemars(skip)]
    pub images: Vec<(String, String)>,
    /// Why answer files were not saved, inlined or fetched (`--download-dir`,
    /// `--inline-images`, the per-answer caps, refused URLs and names), one line per file,
    /// shown in the text.
    #[serde(skip)]
    #[schemars(skip)]
    pub file_notes: Vec<String>,
    /// What the bridge has to say about the answer (how it was obtained), shown after it in
    /// the text: the structured result stays the worker's own.
    #[serde(skip)]
    #[schemars(skip)]
    pub note: Option<String>,
    /// `url` is the worker's page (all a task POST's answer gives), not the task's: the
    /// text then labels it as the worker's, never as the task's dashboard.
    #[serde(skip)]
    #[schemars(skip)]
    pub url_is_workers: bool,
}

#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SourceLink {
    pub title: Option<String>,
    pub url: String,
}

#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct FileLink {
    pub filename: Option<String>,
    pub media_type: Option<String>,
    pub url: String,
    pub size: Option<u64>,
    /// The same file as an MCP resource of this server (resources/read).
    pub resource_uri: String,
    /// Where the server saved a copy (--download-dir).
    pub local_path: Option<String>,
}

#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TurnView {
    pub seq: Option<i64>,
    pub status: Option<String>,
    pub input: Option<String>,
    pub output_text: Option<String>,
    /// The turn's structured answer, when the worker has an output schema (an object; a
    /// value of another kind comes as {"value": …}).
    #[schemars(with = "Option<Map<String, Value>>")]
    pub structured_output: Option<RawJson>,
    pub credits: Option<f64>,
    pub duration_ms: Option<f64>,
    /// When the turn started, as Handinger reports it (a date, or unix seconds).
    pub started_at: Option<String>,
    /// When the turn completed, as Handinger reports it; absent while it runs.
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
        let file_notes = copies
            .iter()
            .filter_map(|copy| {
                let problem = match (&copy.problem, copy.pending) {
                    (Some(problem), _) => problem,
                    (None, true) => PENDING_NOTE,
                    (None, false) => return None,
                };
                let name = answer
                    .files
                    .iter()
                    .find(|f| f.url.as_deref() == Some(copy.url.as_str()))
                    .map(|f| file_name(f.filename.as_deref(), &copy.url))
                    .unwrap_or_else(|| copy.url.clone());
                Some(format!("{name:?}: {problem}"))
            })
            .collect();
        TaskResult {
            files,
            images,
            file_notes,
            task_id: task_id.to_string(),
            status: if answer.error.is_some() {
                "failed".into()
            } else {
                answer.status.clone().unwrap_or_else(|| "completed".into())
            },
            worker_id: answer.id.clone(),
            output_text: answer.output_text.clone().unwrap_or_default(),
            structured_output: structured_object(answer.structured_output.as_ref()),
            sources: answer
                .sources
                .iter()
                .filter_map(SourceLink::from_source)
                .collect(),
            usage: answer.usage,
            url: answer.url.clone(),
            url_is_workers: true,
            ..Default::default()
        }
    }

    /// From the task record: the latest turn's answer and files, and every turn.
    pub fn from_record(task_id: &TaskId, record: &TaskRecord) -> Self {
        let task = &record.task;
        let turns: Vec<TurnView> = record.turns.iter().map(TurnView::from).collect();
        let latest = record.latest_turn();
        let status = task
            .status
            .clone()
            .or_else(|| latest.and_then(|t| t.status.clone()))
            .unwrap_or_else(|| "unknown".into());
        let running = !crate::turns::is_terminal_status(&status);
        let next_step = match (&record.turns_unavailable, running) {
            (Some(why), _) => Some(format!(
                "The task's turns could not be read ({why}); call get_task again to see its answer."
            )),
            (None, true) => Some(collect_hint(task_id)),
            (None, false) => None,
        };
        TaskResult {
            task_id: task.id.clone().unwrap_or_else(|| task_id.to_string()),
            worker_id: task.worker_id.clone(),
            output_text: latest
                .and_then(|t| t.output_text.clone())
                .unwrap_or_default(),
            structured_output: latest.and_then(|t| t.structured_output.clone()),
            files: latest
                .map(|t| {
                    t.files
                        .iter()
                        .filter_map(|f| FileLink::from_file(task_id, f, &[]))
                        .collect()
                })
                .unwrap_or_default(),
            usage: latest.map(Usage::from),
            url: task.url.clone(),
            next_step,
            title: task.title.clone(),
            totals: task.totals,
            turns: Some(turns),
            status,
            ..Default::default()
        }
    }

    /// With the latest turn's sources (see
    /// [`crate::handinger::HandingerClient::latest_sources`]).
    pub fn with_sources(mut self, sources: &[Source]) -> Self {
        self.sources = sources.iter().filter_map(SourceLink::from_source).collect();
        self
    }

    /// The task without its latest answer: for when the latest turn is not the one that
    /// answered (it failed), so no earlier answer passes for it. The turns stay.
    pub fn without_answer(self) -> Self {
        TaskResult {
            output_text: String::new(),
            structured_output: None,
            sources: Vec::new(),
            files: Vec::new(),
            usage: None,
            next_step: None,
            images: Vec::new(),
            file_notes: Vec::new(),
            note: None,
            ..self
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
/// objects (or null); anything else is kept, wrapped as `{"value": …}`, rather than dropped.
/// The raw text is passed through (or wrapped as text), never parsed into a tree.
pub(super) fn structured_object(raw: Option<&RawJson>) -> Option<RawJson> {
    let text = raw?.get();
    if text.starts_with('{') {
        return raw.cloned();
    }
    (text != "null")
        .then(|| serde_json::value::RawValue::from_string(format!("{{\"value\":{text}}}")).ok())
        .flatten()
}

/// A timestamp as Handinger gave it, as text: a date string as is, unix seconds as digits.
/// Other shapes are outside the API's contract and left out.
pub(super) fn timestamp(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// [`timestamp`] of a raw JSON value.
fn raw_timestamp(raw: Option<&RawJson>) -> Option<String> {
    let raw = raw?;
    raw_str(raw).or_else(|| {
        raw.get()
            .parse::<f64>()
            .is_ok()
            .then(|| raw.get().to_owned())
    })
}

/// What a copy still being fetched says in the result.
const PENDING_NOTE: &str = "still being fetched in the background: call get_task with this taskId later to see the saved copy";

/// A file's name: the answer's filename, or the URL's last segment.
pub(super) fn file_name(filename: Option<&str>, url: &str) -> String {
    filename
        .filter(|n| !n.is_empty())
        .map(str::to_owned)
        .unwrap_or_else(|| last_segment(url).to_owned())
}

/// `handinger://tasks/{taskId}/files/{name}`, the name escaped as one path segment.
pub(super) fn file_resource_uri(task_id: &TaskId, name: &str) -> String {
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

impl From<&TurnRecord> for Usage {
    /// A turn's credits and time, as its record reports them.
    fn from(turn: &TurnRecord) -> Self {
        Usage {
            credits: turn.credits,
            duration_ms: turn.duration_ms,
        }
    }
}

impl From<&TurnRecord> for TurnView {
    fn from(turn: &TurnRecord) -> Self {
        TurnView {
            seq: turn.seq,
            status: turn.status.clone(),
            input: turn.input.clone(),
            output_text: turn.output_text.clone(),
            structured_output: structured_object(turn.structured_output.as_ref()),
            credits: turn.credits,
            duration_ms: turn.duration_ms,
            started_at: raw_timestamp(turn.started_at.as_ref()),
            completed_at: raw_timestamp(turn.completed_at.as_ref()),
        }
    }
}

/// The tool result for a task: a text block (the answer, or what is going on), a
/// `resource_link` per source and file, and the structured result. `problem` makes it an
/// error result whose text leads with the problem.
///
/// The result is taken by value so that the answer is copied once, into the text block:
/// `outputText` of the structured content is the result's own string, moved in. (Encoding
/// the whole result with `to_value` copied the answer a second time, next to the result's.)
pub(super) fn task_result(mut result: TaskResult, problem: Option<String>) -> CallToolResult {
    let mut text = match (&problem, result.output_text.is_empty()) {
        (Some(problem), true) => problem.clone(),
        (Some(problem), false) => {
            // Room for the notes and footer too, so the answer's copy is not moved to grow.
            let mut text = String::with_capacity(problem.len() + result.output_text.len() + 512);
            text.push_str(problem);
            text.push_str("\n\n");
            text.push_str(&result.output_text);
            text
        }
        (None, false) => {
            let mut text = String::with_capacity(result.output_text.len() + 512);
            text.push_str(&result.output_text);
            text
        }
        (None, true) => match &result.next_step {
            Some(next) => format!("Task {} is {}. {next}", result.task_id, result.status),
            None => format!(
                "Task {} is {}; the worker gave no text answer.",
                result.task_id, result.status
            ),
        },
    };
    if let Some(note) = &result.note {
        text.push_str("\n\n");
        text.push_str(note);
    }
    if let Some(why) = result
        .structured_output
        .as_ref()
        .and_then(crate::handinger::structured::passed_as_text)
    {
        text.push_str("\n\n(");
        text.push_str(&why);
        text.push_str(" of structuredOutput.)");
    }
    if !result.file_notes.is_empty() {
        text.push_str("\n\nAnswer files not kept (yet):");
        for note in &result.file_notes {
            text.push_str("\n- ");
            text.push_str(note);
        }
    }
    text.push_str(&footer(&result));
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
    for (media_type, data) in std::mem::take(&mut result.images) {
        content.push(ContentBlock::image(data, media_type));
    }
    let mut call_result = if problem.is_some() {
        CallToolResult::error(content)
    } else {
        CallToolResult::success(content)
    };
    call_result.structured_content = structured_content(result);
    call_result
}

/// The result as structured content: everything but the answer text is encoded as usual
/// (small), then the text is moved into `outputText`, the place `to_value` gave it, so the
/// content is byte for byte what `to_value(&result)` makes without copying the answer.
fn structured_content(mut result: TaskResult) -> Option<Value> {
    let output_text = std::mem::take(&mut result.output_text);
    let mut value = serde_json::to_value(&result).ok()?;
    if let Some(slot) = value.get_mut("outputText") {
        *slot = Value::String(output_text);
    }
    Some(value)
}

/// The bracketed last line: the handle for follow-ups, plus turn history and one link:
/// the task's dashboard page, or the worker's page when that is all the answer gave.
fn footer(result: &TaskResult) -> String {
    let mut footer = format!("\n\n[taskId: {}", result.task_id);
    if let Some(turns) = result.turns.as_ref().filter(|t| t.len() > 1) {
        footer.push_str(&format!(", {} turns", turns.len()));
    }
    if let Some(url) = &result.url {
        let label = if result.url_is_workers {
            "worker's page"
        } else {
            "dashboard"
        };
        footer.push_str(&format!(", {label}: {url}"));
    }
    footer.push_str(" — pass it back as taskId for a follow-up, or to get_task]");
    footer
}

/// The tool result for a finished turn.
pub(super) fn outcome_result(task_id: &TaskId, outcome: &TurnOutcome) -> CallToolResult {
    match outcome_parts(task_id, outcome) {
        Ok((result, problem)) => task_result(result, problem),
        Err(failed) => failed,
    }
}

/// [`outcome_result`] for a call that holds the outcome by itself: it lets go of it once
/// the result has its own copy of the answer, before the text block copies it again. When
/// the answer is no longer kept for `get_task` (pushed out of `--max-retained-bytes`), this
/// was its last holder, and the call holds two copies (what the wire needs), not three.
pub(super) fn owned_outcome_result(task_id: &TaskId, outcome: Arc<TurnOutcome>) -> CallToolResult {
    let parts = outcome_parts(task_id, &outcome);
    drop(outcome);
    match parts {
        Ok((result, problem)) => task_result(result, problem),
        Err(failed) => failed,
    }
}

/// What a finished turn's result is made of: the task result and the problem it leads
/// with, or, for a turn that failed, the error result itself.
fn outcome_parts(
    task_id: &TaskId,
    outcome: &TurnOutcome,
) -> Result<(TaskResult, Option<String>), CallToolResult> {
    match outcome {
        TurnOutcome::Answered { answer, copies } => {
            let result = TaskResult::from_answer(task_id, answer, &copies.snapshot());
            let problem = answer
                .error
                .as_ref()
                .map(|e| format!("The worker reported an error: {}", compact(e)));
            Ok((result, problem))
        }
        TurnOutcome::Recovered {
            record,
            sources,
            cause,
        } => {
            let mut result = TaskResult::from_record(task_id, record).with_sources(sources);
            let failed = matches!(result.status.as_str(), "error" | "aborted" | "failed");
            let note = if result.sources.is_empty() {
                format!(
                    "(The connection to Handinger failed while waiting ({cause}), but the turn ran: this is its answer from the task record, which carries no sources; see the dashboard for those.)"
                )
            } else {
                format!(
                    "(The connection to Handinger failed while waiting ({cause}), but the turn ran: this is its answer from the task record.)"
                )
            };
            if failed {
                let problem = format!("The task ended with status {}. {note}", result.status);
                Ok((result, Some(problem)))
            } else {
                result.note = Some(note);
                Ok((result, None))
            }
        }
        TurnOutcome::Failed { error, recorded } => Err(match recorded {
            RecordedUpstream::StillRunning => task_result(TaskResult::running(task_id, 0), None),
            _ => create_failed(task_id, error, *recorded),
        }),
    }
}

/// An error result: what failed, Handinger's reason, and what to do next.
pub(super) fn error_result(message: impl Into<String>) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(message.into())])
}

/// A turn that failed: what failed, Handinger's reason, and one consistent piece of advice
/// on resending, from what the bridge established about the turn (not from the error alone:
/// a 500 after which the task lookup found nothing is "not recorded", so resending is safe).
fn create_failed(task_id: &TaskId, error: &ApiError, recorded: RecordedUpstream) -> CallToolResult {
    let next = match recorded {
        RecordedUpstream::No => format!(
            "Handinger did not record this turn, so calling create_task again is safe (taskId {task_id})."
        ),
        _ => format!(
            "Handinger may have recorded this turn and may still be running it: do not resend it. Check it with get_task (taskId {task_id}) first."
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

/// A worker's error in one line: its text, or its `message`, or its JSON.
fn compact(raw: &RawJson) -> String {
    if let Some(text) = raw_str(raw) {
        return text;
    }
    #[derive(serde::Deserialize)]
    struct WithMessage {
        message: String,
    }
    serde_json::from_str::<WithMessage>(raw.get())
        .map(|m| m.message)
        .unwrap_or_else(|_| raw.get().to_owned())
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
