//! Answer files and task transcripts as MCP resources, for clients that cannot fetch a
//! file URL themselves:
//!
//! - `handinger://tasks/{taskId}/files/{name}`: the bytes of a file a worker produced
//!   (text for textual types, base64 otherwise).
//! - `handinger://tasks/{taskId}`: the task record (status, totals, turns) as JSON.

use base64::Engine as _;
use bytes::Bytes;
use rmcp::model::{ReadResourceResult, ResourceContents, ResourceTemplate};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};

use super::HandingerServer;
use super::output::{TaskResult, file_name};
use crate::handinger::ApiError;
use crate::handinger::types::AnswerFile;
use crate::task_id::TaskId;
use crate::turns::{Known, TurnOutcome};

const PREFIX: &str = "handinger://tasks/";

pub(super) fn templates() -> Vec<ResourceTemplate> {
    vec![
        ResourceTemplate::new("handinger://tasks/{taskId}/files/{name}", "task-file")
            .with_title("A file a Handinger worker produced")
            .with_description(
                "The bytes of a file from a create_task or get_task result, by the task's id and the file's name.",
            ),
        ResourceTemplate::new("handinger://tasks/{taskId}", "task")
            .with_title("A Handinger task record")
            .with_description("Status, totals and every turn of a task, as JSON.")
            .with_mime_type("application/json"),
    ]
}

impl HandingerServer {
    pub(super) async fn read_task_resource(
        &self,
        uri: &str,
        context: &RequestContext<RoleServer>,
    ) -> Result<ReadResourceResult, ErrorData> {
        let not_ours = || {
            ErrorData::resource_not_found(
                format!(
                    "{uri} is not a resource of this server; use handinger://tasks/{{taskId}} or handinger://tasks/{{taskId}}/files/{{name}}"
                ),
                None,
            )
        };
        let rest = uri.strip_prefix(PREFIX).ok_or_else(not_ours)?;
        let (raw_id, file) = match rest.split_once("/files/") {
            Some((id, name)) => (id, Some(decode(name))),
            None => (rest, None),
        };
        let task_id =
            TaskId::parse(&decode(raw_id)).map_err(|e| ErrorData::invalid_params(e, None))?;
        let api = self
            .api_for(context)
            .map_err(|e| ErrorData::invalid_request(e, None))?;
        let contents = match file {
            None => {
                let record = api
                    .get_task(&task_id)
                    .await
                    .map_err(|e| lookup_error(&task_id, &e))?;
                let view = TaskResult::from_record(&task_id, &record);
                let json = serde_json::to_string_pretty(&view)
                    .map_err(|e| ErrorData::internal_error(e.to_string(), None))?;
                ResourceContents::TextResourceContents {
                    uri: uri.to_owned(),
                    mime_type: Some("application/json".into()),
                    text: json,
                    meta: None,
                }
            }
            Some(name) => {
                let file = self.find_file(&api, &task_id, &name).await?;
                let url = file.url.clone().unwrap_or_default();
                let (bytes, served_type) = api
                    .download(&url, self.services.policy.file_limits.max_file_bytes)
                    .await
                    .map_err(|e| {
                        ErrorData::internal_error(
                            format!(
                                "could not fetch {name} of task {task_id}: {e}. {}",
                                e.hint()
                            ),
                            None,
                        )
                    })?;
                resource_contents(uri, bytes, file.media_type.or(served_type))
            }
        };
        Ok(ReadResourceResult::new(vec![contents]))
    }

    /// The answer file called `name`: from the answer this server holds, else from the
    /// task record's turns.
    async fn find_file(
        &self,
        api: &crate::handinger::HandingerClient,
        task_id: &TaskId,
        name: &str,
    ) -> Result<AnswerFile, ErrorData> {
        let matches = |file: &&AnswerFile| {
            file.url
                .as_deref()
                .is_some_and(|url| file_name(file.filename.as_deref(), url) == name)
        };
        let lookup_failed = |e: ApiError| lookup_error(task_id, &e);
        let record = match self.services.turns.lookup(api, task_id).await {
            Ok(Known::Held(turn)) => {
                if let Some(TurnOutcome::Answered { answer, .. }) = turn.outcome().as_deref()
                    && let Some(file) = answer.files.iter().find(matches)
                {
                    return Ok(file.clone());
                }
                // Not in the held answer: an earlier turn's file, in the record.
                api.get_task(task_id).await.map_err(lookup_failed)?
            }
            Ok(Known::Recorded(record)) => *record,
            Err(error) => return Err(lookup_failed(error)),
        };
        if let Some(why) = &record.turns_unavailable {
            return Err(ErrorData::internal_error(
                format!("could not find {name:?} of task {task_id}: {why}. Try again in a moment."),
                None,
            ));
        }
        record
            .turns
            .iter()
            .rev()
            .flat_map(|turn| turn.files.iter())
            .find(matches)
            .cloned()
            .ok_or_else(|| {
                ErrorData::resource_not_found(
                    format!("task {task_id} has no file named {name:?}; its turns list these files: {}. Use a name from that list (get_task shows them as resourceUri).", listed_names(&record)),
                    None,
                )
            })
    }
}

/// The names of the files the task's turns published (the first few: the list comes from
/// upstream and ends up in an error message), for an error that says what exists.
fn listed_names(record: &crate::handinger::TaskRecord) -> String {
    const SHOWN: usize = 20;
    let names: Vec<String> = record
        .turns
        .iter()
        .flat_map(|turn| turn.files.iter())
        .filter_map(|f| {
            Some(format!(
                "{:?}",
                file_name(f.filename.as_deref(), f.url.as_deref()?)
            ))
        })
        .take(SHOWN)
        .collect();
    if names.is_empty() {
        "none".into()
    } else {
        names.join(", ")
    }
}

fn decode(segment: &str) -> String {
    percent_encoding::percent_decode_str(segment)
        .decode_utf8_lossy()
        .into_owned()
}

fn lookup_error(task_id: &TaskId, error: &ApiError) -> ErrorData {
    super::lookup_error(task_id, error, |message| {
        ErrorData::resource_not_found(message, None)
    })
}

/// Resource contents for fetched bytes: text for textual types that are valid UTF-8,
/// base64 otherwise. The type is the one the answer declared; no sniffing beyond it.
fn resource_contents(uri: &str, bytes: Bytes, media_type: Option<String>) -> ResourceContents {
    let media_type = media_type.unwrap_or_else(|| "application/octet-stream".into());
    if is_textual(&media_type)
        && let Ok(text) = String::from_utf8(bytes.to_vec())
    {
        return ResourceContents::TextResourceContents {
            uri: uri.to_owned(),
            mime_type: Some(media_type),
            text,
            meta: None,
        };
    }
    ResourceContents::BlobResourceContents {
        uri: uri.to_owned(),
        mime_type: Some(media_type),
        blob: base64::engine::general_purpose::STANDARD.encode(&bytes),
        meta: None,
    }
}

fn is_textual(media_type: &str) -> bool {
    let essence = media_type.split(';').next().unwrap_or_default().trim();
    essence.starts_with("text/")
        || essence.ends_with("+json")
        || essence.ends_with("+xml")
        || matches!(
            essence,
            "application/json" | "application/xml" | "application/javascript" | "application/yaml"
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_types_become_text_and_others_blobs() {
        let text = resource_contents("u", Bytes::from_static(b"a,b"), Some("text/csv".into()));
        assert!(matches!(
            text,
            ResourceContents::TextResourceContents { .. }
        ));
        let blob = resource_contents(
            "u",
            Bytes::from_static(b"\x89PNG"),
            Some("image/png".into()),
        );
        assert!(matches!(
            blob,
            ResourceContents::BlobResourceContents { .. }
        ));
        let bad_utf8 =
            resource_contents("u", Bytes::from_static(b"\xff"), Some("text/plain".into()));
        assert!(matches!(
            bad_utf8,
            ResourceContents::BlobResourceContents { .. }
        ));
    }
}
