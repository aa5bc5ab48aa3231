//! The `workers` toolset: `create_worker`, `get_worker`, `update_worker`.
//!
//! A worker is a reusable agent template (instructions, optional output schema); tasks run
//! on it. `update_worker` is a PATCH: only the fields the call gives change, and
//! `outputSchema: null` removes the schema.

use rmcp::handler::server::common::schema_for_output;
use rmcp::{tool, tool_router};
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

use super::HandingerServer;
use super::call::{Call, Reply, answer};
use super::output::timestamp;
use super::reply::{AfterFailure, structured, worker_id};
use super::tasks::input_schema;
use crate::handinger::types::{NewWorker, Visibility, WorkerInfo, WorkerPatch};

/// Arguments of `create_worker`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct CreateWorkerArgs {
    /// The worker's standing instructions (its system prompt): role, method, what to return.
    /// Give them when you know exactly how the worker should behave; otherwise give prompt.
    #[serde(default)]
    pub instructions: Option<String>,
    /// A plain-language description of the worker wanted (e.g. "fact-checks short claims and
    /// returns a verdict with citations"); Handinger writes the instructions from it. Used
    /// when instructions is omitted: give one of the two.
    #[serde(default)]
    pub prompt: Option<String>,
    /// A short name people see in the dashboard, e.g. "Fact checker".
    #[serde(default)]
    pub title: Option<String>,
    /// One sentence on what the worker does, for people and agents choosing a worker.
    #[serde(default)]
    pub summary: Option<String>,
    /// private or public: who on Handinger can see and use the worker. Omit it for
    /// Handinger's default.
    #[serde(default)]
    pub visibility: Option<Visibility>,
    /// A JSON Schema (draft-07) object that every answer must follow; answers then come back
    /// as structuredOutput. Give it when the answers must be machine-readable; omit it for
    /// prose answers.
    #[serde(default)]
    pub output_schema: Option<Map<String, Value>>,
}

/// Arguments of `get_worker`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct GetWorkerArgs {
    /// The worker's id (like wrk_vk81XUHKHG-qr4), as create_worker or create_task returned it.
    pub worker_id: String,
}

/// Arguments of `update_worker`. Only the fields given change.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct UpdateWorkerArgs {
    /// The worker to change (an id like wrk_vk81XUHKHG-qr4).
    pub worker_id: String,
    /// New standing instructions, replacing the old ones. Tasks already running keep the old
    /// instructions. Omit to keep them.
    #[serde(default)]
    pub instructions: Option<String>,
    /// New title. Omit to keep it.
    #[serde(default)]
    pub title: Option<String>,
    /// New one-sentence summary. Omit to keep it.
    #[serde(default)]
    pub summary: Option<String>,
    /// New visibility (private or public). Omit to keep it.
    #[serde(default)]
    pub visibility: Option<Visibility>,
    /// A new output schema (a JSON Schema object), or null to remove the schema so answers
    /// are plain text again. Omit it to keep the current schema.
    #[serde(default, deserialize_with = "present")]
    #[schemars(schema_with = "schema_or_null")]
    pub output_schema: Option<Option<Map<String, Value>>>,
}

/// The schema of update_worker's `outputSchema`: an object, or `null`, which removes the
/// schema. Written as two branches, which the portable-schema rewrite keeps: here `null`
/// and absent mean different things.
fn schema_or_null(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "anyOf": [{"type": "object", "additionalProperties": true}, {"type": "null"}]
    })
}

/// Tells "absent" (the outer `None`, from `default`) from `null` (`Some(None)`).
fn present<'de, D>(deserializer: D) -> Result<Option<Option<Map<String, Value>>>, D::Error>
where
    D: Deserializer<'de>,
{
    Option::<Map<String, Value>>::deserialize(deserializer).map(Some)
}

/// A worker as the worker tools report it.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub(super) struct WorkerView {
    /// Pass this as workerId to create_task, update_worker or create_schedule.
    pub worker_id: Option<String>,
    pub title: Option<String>,
    pub summary: Option<String>,
    /// The worker's standing instructions (its system prompt).
    pub instructions: Option<String>,
    /// private or public.
    pub visibility: Option<String>,
    /// The JSON Schema every answer follows; absent when answers are plain text.
    pub output_schema: Option<Map<String, Value>>,
    /// The worker's page in the Handinger dashboard.
    pub url: Option<String>,
    /// Status of the worker's latest task (get_worker only).
    pub status: Option<String>,
    /// The latest task's answer (get_worker only).
    pub last_output_text: Option<String>,
    /// When the worker was created, as Handinger reports it (a date, or unix seconds).
    pub created_at: Option<String>,
    /// When the worker last changed, as Handinger reports it.
    pub updated_at: Option<String>,
}

impl WorkerView {
    fn new(info: WorkerInfo, asked_id: Option<&str>) -> Self {
        WorkerView {
            worker_id: info.id.or_else(|| asked_id.map(str::to_owned)),
            title: info.title,
            summary: info.summary,
            instructions: info.instructions,
            visibility: info.visibility,
            // Handinger's schemas are objects; anything else is not a schema to report.
            output_schema: match info.output_schema {
                Some(Value::Object(schema)) => Some(schema),
                _ => None,
            },
            url: info.url,
            status: info.status,
            last_output_text: info.output_text,
            created_at: timestamp(info.created_at.as_ref()),
            updated_at: timestamp(info.updated_at.as_ref()),
        }
    }

    /// One line naming the worker, for the text block.
    fn headline(&self, verb: &str) -> String {
        let id = self.worker_id.as_deref().unwrap_or("(no id returned)");
        let mut line = format!("{verb} worker {id}");
        if let Some(title) = &self.title {
            line.push_str(&format!(" \"{title}\""));
        }
        if let Some(url) = &self.url {
            line.push_str(&format!(" ({url})"));
        }
        line.push('.');
        line
    }
}

#[tool_router(router = worker_tools, vis = "pub(super)")]
impl HandingerServer {
    #[tool(
        name = "create_worker",
        title = "Create a Handinger worker",
        description = "Create a reusable Handinger worker: an agent with standing instructions \
(or a prompt Handinger writes them from) and, optionally, an output schema so every answer \
comes back as structured data. Returns its workerId: pass it as workerId to create_task to \
run tasks on it. Use it when the user wants a worker to use again; for a one-off task call \
create_task without a worker instead.",
        input_schema = input_schema::<CreateWorkerArgs>(),
        output_schema = schema_for_output::<WorkerView>()
    )]
    pub(super) async fn create_worker_tool(&self, call: Call<CreateWorkerArgs>) -> Reply {
        let worker = call.args.and_then(new_worker);
        self.api_call(&call.context, worker, |api, worker| async move {
            answer(
                api.create_worker(&worker).await,
                "create_worker",
                AfterFailure::Creation {
                    check: "look for it in the Handinger dashboard (there is no list of workers to check here)",
                },
                |info| {
                    let view = WorkerView::new(info, None);
                    tracing::info!(worker_id = ?view.worker_id, "create_worker");
                    structured(view.headline("Created"), &view)
                },
            )
        })
        .await
    }

    #[tool(
        name = "get_worker",
        title = "Look up a Handinger worker",
        description = "Look up a Handinger worker by its workerId: its title, summary, standing \
instructions, visibility, output schema, dashboard link, and the status and answer of its \
latest task.",
        input_schema = input_schema::<GetWorkerArgs>(),
        output_schema = schema_for_output::<WorkerView>()
    )]
    pub(super) async fn get_worker_tool(&self, call: Call<GetWorkerArgs>) -> Reply {
        let worker_id = call.args.and_then(|args| worker_id(args.worker_id));
        self.api_call(&call.context, worker_id, |api, worker_id| async move {
            let what = format!("get_worker for workerId {worker_id}");
            let found = api.get_worker(&worker_id).await;
            answer(found, &what, AfterFailure::Read, |info| {
                let view = WorkerView::new(info, Some(&worker_id));
                structured(view.headline("Found"), &view)
            })
        })
        .await
    }

    #[tool(
        name = "update_worker",
        title = "Change a Handinger worker",
        description = "Change a Handinger worker: only the fields given change (instructions, \
title, summary, visibility, outputSchema); outputSchema null removes the schema. Tasks already \
running keep the old instructions. Returns the worker as it is now.",
        input_schema = input_schema::<UpdateWorkerArgs>(),
        output_schema = schema_for_output::<WorkerView>()
    )]
    pub(super) async fn update_worker_tool(&self, call: Call<UpdateWorkerArgs>) -> Reply {
        let patch = call.args.and_then(worker_patch);
        self.api_call(&call.context, patch, |api, (worker_id, patch)| async move {
            let what = format!("update_worker for workerId {worker_id}");
            let updated = api.update_worker(&worker_id, &patch).await;
            answer(updated, &what, AfterFailure::Repeatable, |info| {
                tracing::info!(%worker_id, "update_worker");
                let view = WorkerView::new(info, Some(&worker_id));
                structured(view.headline("Updated"), &view)
            })
        })
        .await
    }
}

/// Checks `create_worker` arguments before anything is sent.
fn new_worker(args: CreateWorkerArgs) -> Result<NewWorker, String> {
    let given = |text: &Option<String>| text.as_deref().is_some_and(|t| !t.trim().is_empty());
    if !given(&args.instructions) && !given(&args.prompt) {
        return Err("create_worker needs instructions (the worker's standing instructions) or prompt (a description Handinger writes them from): give one of the two.".into());
    }
    Ok(NewWorker {
        instructions: args.instructions,
        prompt: args.prompt,
        title: args.title,
        summary: args.summary,
        visibility: args.visibility,
        output_schema: args.output_schema,
    })
}

/// Checks `update_worker` arguments: a valid id and at least one change.
fn worker_patch(args: UpdateWorkerArgs) -> Result<(String, WorkerPatch), String> {
    let worker_id = worker_id(args.worker_id)?;
    let patch = WorkerPatch {
        instructions: args.instructions,
        title: args.title,
        summary: args.summary,
        visibility: args.visibility,
        output_schema: args.output_schema,
    };
    if patch.is_empty() {
        return Err("update_worker was given nothing to change: pass at least one of instructions, title, summary, visibility or outputSchema (null removes the schema).".into());
    }
    Ok((worker_id, patch))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::args::{decode, object};
    use serde_json::json;

    #[test]
    fn output_schema_absent_null_and_given_are_told_apart() {
        let absent: UpdateWorkerArgs = decode(
            "update_worker",
            object(json!({"workerId": "wrk_1", "title": "T"})),
        )
        .unwrap();
        assert_eq!(absent.output_schema, None);
        let null: UpdateWorkerArgs = decode(
            "update_worker",
            object(json!({"workerId": "wrk_1", "outputSchema": null})),
        )
        .unwrap();
        assert_eq!(null.output_schema, Some(None));
        let (_, patch) = worker_patch(null).unwrap();
        assert_eq!(
            serde_json::to_value(&patch).unwrap(),
            json!({"outputSchema": null})
        );
    }

    #[test]
    fn bad_worker_arguments_are_explained() {
        let err = new_worker(
            decode("create_worker", object(json!({"title": "No instructions"}))).unwrap(),
        )
        .unwrap_err();
        assert!(
            err.contains("instructions") && err.contains("prompt"),
            "{err}"
        );
        let err =
            worker_patch(decode("update_worker", object(json!({"workerId": "wrk_1"}))).unwrap())
                .unwrap_err();
        assert!(err.contains("nothing to change"), "{err}");
        let err = worker_patch(
            decode(
                "update_worker",
                object(json!({"workerId": "../tasks/x", "title": "T"})),
            )
            .unwrap(),
        )
        .unwrap_err();
        assert!(err.contains("workerId"), "{err}");
        let err = decode::<CreateWorkerArgs>(
            "create_worker",
            object(json!({"prompt": "p", "outputSchema": "not an object"})),
        )
        .unwrap_err();
        assert!(err.contains("Invalid arguments for create_worker"), "{err}");
    }
}
