//! `create_task` and `get_task`.

use rmcp::handler::server::common::{schema_for_input, schema_for_output};
use rmcp::handler::server::wrapper::Parameters;
use rmcp::model::{CallToolResult, JsonObject};
use rmcp::{ErrorData, tool, tool_router};

use super::HandingerServer;
use super::args::{CreateTaskArgs, GetTaskArgs, decode};
use super::output::{
    TaskAnswer, TaskStatus, answer_result, create_failed, error_result, status_result,
};
use crate::task_id::TaskId;

fn input_schema<T: schemars::JsonSchema + 'static>() -> std::sync::Arc<JsonObject> {
    // The argument structs are fixed at compile time and are objects; a failure here is a
    // programming error caught by the snapshot test, never by user input.
    schema_for_input::<T>().unwrap_or_else(|e| panic!("tool input schema: {e}"))
}

#[tool_router(router = task_tools, vis = "pub(super)")]
impl HandingerServer {
    #[tool(
        name = "create_task",
        title = "Run a Handinger task",
        description = "Give a task to a Handinger AI worker and wait for its answer: the answer \
text, the sources it used and the files it produced, plus a taskId. Pass that taskId back \
(with a new input) to ask a follow-up on the same task. Each call spends Handinger credits \
according to the budget.",
        input_schema = input_schema::<CreateTaskArgs>(),
        output_schema = schema_for_output::<TaskAnswer>(),
        annotations(
            read_only_hint = false,
            destructive_hint = false,
            idempotent_hint = false,
            open_world_hint = true
        )
    )]
    pub(super) async fn create_task(
        &self,
        Parameters(arguments): Parameters<JsonObject>,
    ) -> Result<CallToolResult, ErrorData> {
        let prepared = decode::<CreateTaskArgs>("create_task", arguments)
            .and_then(|args| self.policy.prepare(args));
        let (task_id, request) = match prepared {
            Ok(prepared) => prepared,
            Err(message) => return Ok(error_result(message)),
        };
        tracing::info!(%task_id, budget = %request.budget, "create_task");
        Ok(match self.api.create_task(&request).await {
            Ok(mut answer) => {
                let worker_error = answer.error.take();
                let result = TaskAnswer::from_worker(&task_id, answer);
                answer_result(&result, worker_error.as_ref())
            }
            Err(error) => create_failed(&task_id, &error),
        })
    }

    #[tool(
        name = "get_task",
        title = "Check a Handinger task",
        description = "Look up a Handinger task by the taskId create_task returned: its status \
(pending, running, completed, error, aborted), totals, dashboard link, and every turn with its \
input and answer.",
        input_schema = input_schema::<GetTaskArgs>(),
        output_schema = schema_for_output::<TaskStatus>(),
        annotations(
            read_only_hint = true,
            destructive_hint = false,
            idempotent_hint = true,
            open_world_hint = true
        )
    )]
    pub(super) async fn get_task(
        &self,
        Parameters(arguments): Parameters<JsonObject>,
    ) -> Result<CallToolResult, ErrorData> {
        let task_id = match decode::<GetTaskArgs>("get_task", arguments)
            .and_then(|args| TaskId::parse(&args.task_id))
        {
            Ok(id) => id,
            Err(message) => return Ok(error_result(message)),
        };
        Ok(match self.api.get_task(&task_id).await {
            Ok(record) => status_result(&TaskStatus::from_record(&task_id, record)),
            Err(error) => error_result(format!(
                "get_task failed for taskId {task_id}: {error}. {}",
                error.hint()
            )),
        })
    }
}
