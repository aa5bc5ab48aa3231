//! Named workers: one `ask_<name>` tool per `--worker NAME=WORKER_ID`.
//!
//! The tool is built at start-up (its name and description come from the settings and from
//! Handinger), so it is a dynamic route rather than a `#[tool]` method. A call runs exactly
//! the `create_task` path with the worker fixed: same policy, turn registry, bounded wait,
//! progress and MCP tasks.

use rmcp::handler::server::common::schema_for_output;
use rmcp::handler::server::router::tool::ToolRoute;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::Tool;
use schemars::JsonSchema;
use serde::Deserialize;

use super::HandingerServer;
use super::args::CreateTaskArgs;
use super::call::Call;
use super::effect::Effect;
use super::output::TaskResult;
use super::surface::WorkerCard;
use super::tasks::input_schema;
use crate::files::upload::FileArg;
use crate::handinger::Budget;

/// Arguments of an `ask_<name>` tool.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct AskWorkerArgs {
    /// What you want from this worker, in plain language, with everything it needs to know.
    /// For a follow-up, just the follow-up message: the worker keeps the task's context.
    pub input: String,
    /// Compute budget. low: quick lookups; standard: most tasks; high: multi-step research;
    /// unlimited: long-running work with no spend cap. Omit it to use the server's default.
    #[serde(default)]
    pub budget: Option<Budget>,
    /// Continue an earlier conversation with this worker: the taskId of a previous result.
    /// Omit it to start a new task.
    #[serde(default)]
    pub task_id: Option<String>,
    /// Files to put in the worker's workspace before it starts: each either {"path"} (a
    /// local file inside a directory the user allowed) or {"name", "content" (base64),
    /// "mediaType"}.
    #[serde(default)]
    pub files: Option<Vec<FileArg>>,
}

impl AskWorkerArgs {
    /// The `create_task` arguments that run this on `worker_id`.
    fn on_worker(self, worker_id: String) -> CreateTaskArgs {
        CreateTaskArgs {
            input: self.input,
            budget: self.budget,
            task_id: self.task_id,
            worker_id: Some(worker_id),
            files: self.files,
        }
    }
}

impl HandingerServer {
    /// The `ask_<name>` tool of one named worker.
    pub(super) fn ask_route(card: &WorkerCard) -> ToolRoute<HandingerServer> {
        let tool_name = card.worker.tool_name();
        let description = format!(
            "{about}\n\nRuns a task on this Handinger worker ({worker_id}) and waits for its \
answer, with the sources it used, the files it produced and a taskId. To follow up on the \
same task, call {tool_name} again with that taskId and the new input. If the result has \
status \"running\", collect it with get_task (taskId, wait) instead of calling again. Each \
call spends Handinger credits according to the budget.",
            about = card.about(),
            worker_id = card.worker.worker_id,
        );
        let title = card
            .title
            .clone()
            .unwrap_or_else(|| format!("Ask {}", card.worker.name));
        let tool = Tool::new(tool_name, description, input_schema::<AskWorkerArgs>())
            .with_title(title)
            .with_raw_output_schema(schema_for_output::<TaskResult>())
            .with_annotations(Effect::Creates.annotations());
        let worker_id = card.worker.worker_id.clone();
        ToolRoute::new_dyn(
            tool,
            move |context: ToolCallContext<'_, HandingerServer>| {
                let (call, server) = Call::<AskWorkerArgs>::take(context);
                let call = call.map(|args| args.on_worker(worker_id.clone()));
                Box::pin(server.run_task(call))
            },
        )
    }
}
