//! The MCP face of the bridge: the server handler, its instructions, and its tools.
//!
//! One file per tool family; this module holds what they share: the server type and the
//! task policy (defaults and guards applied to every call before anything goes upstream).

mod args;
mod keys;
mod output;
mod tasks;

use std::sync::Arc;
use std::time::Duration;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, Implementation, ServerCapabilities, ServerConfig,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, tool_handler};

use crate::handinger::{Budget, HandingerClient, TaskRequest};
use crate::task_id::{TaskId, validate_id};

pub use args::{CreateTaskArgs, GetTaskArgs};
pub use keys::{API_KEY_HEADER, RequestKeys};
pub use output::{TaskAnswer, TaskStatus};

/// What the server tells a client's model about using it, once, at initialization.
const INSTRUCTIONS: &str = "Hand work to Handinger AI workers. create_task runs a task and \
returns the worker's answer with its sources and files, plus a taskId. To follow up on the \
same task (keeping its context), call create_task again with that taskId. Use get_task with \
the taskId to check on a task or read its turns.";

/// Defaults and guards applied to every call.
#[derive(Debug, Clone)]
pub struct TaskPolicy {
    pub default_budget: Budget,
    /// Calls asking for more are refused before anything is sent: a guard on credit spend.
    pub max_budget: Budget,
    /// Worker used when a call names none.
    pub default_worker: Option<String>,
    pub max_wait: Duration,
    pub progress_interval: Duration,
}

impl TaskPolicy {
    /// Applies defaults and guards to `create_task` arguments, choosing the task id.
    /// Refusals explain what to change.
    pub fn prepare(&self, args: CreateTaskArgs) -> Result<(TaskId, TaskRequest), String> {
        if args.input.trim().is_empty() {
            return Err(
                "input is empty: describe the task for the worker in plain language.".into(),
            );
        }
        let budget = args.budget.unwrap_or(self.default_budget);
        if budget > self.max_budget {
            return Err(format!(
                "budget \"{budget}\" is above this server's limit \"{}\" (--max-budget): call again with budget \"{}\" or lower.",
                self.max_budget, self.max_budget
            ));
        }
        let task_id = match args.task_id {
            Some(raw) => TaskId::parse(&raw)?,
            None => TaskId::generate(),
        };
        let worker_id = args.worker_id.or_else(|| self.default_worker.clone());
        if let Some(worker) = &worker_id {
            validate_id(worker, "workerId")?;
        }
        let request = TaskRequest {
            input: args.input,
            budget,
            task_id: task_id.to_string(),
            worker_id,
        };
        Ok((task_id, request))
    }
}

/// The MCP server: one per client connection, cheap to clone.
#[derive(Clone)]
pub struct HandingerServer {
    api: HandingerClient,
    policy: Arc<TaskPolicy>,
    tool_router: ToolRouter<Self>,
    /// Set in HTTP mode with `--key-from-request`: calls run with their client's key.
    request_keys: Option<Arc<RequestKeys>>,
}

impl HandingerServer {
    pub fn new(api: HandingerClient, policy: Arc<TaskPolicy>) -> Self {
        Self {
            api,
            policy,
            tool_router: Self::task_tools(),
            request_keys: None,
        }
    }

    /// The tools this server lists, as a client would see them.
    pub fn tools(&self) -> Vec<rmcp::model::Tool> {
        self.tool_router.list_all()
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for HandingerServer {
    // Logging is deprecated in the newest protocol revision but still part of the ones
    // clients speak today (and of the conformance suite); see `set_level`.
    #[allow(deprecated)]
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(
            ServerCapabilities::builder()
                .enable_tools()
                .enable_logging()
                .build(),
        )
        .with_server_info(
            Implementation::new("handinger-mcp", env!("CARGO_PKG_VERSION")).with_title("Handinger"),
        )
        .with_instructions(INSTRUCTIONS)
    }

    /// Every call passes here: it picks the API key the call runs with and counts the call.
    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let tool = request.name.clone();
        let outcome = match self.for_call(&context) {
            Ok(server) => {
                let call = ToolCallContext::new(&*server, request, context);
                self.tool_router.call(call).await
            }
            Err(message) => Ok(output::error_result(message).into()),
        };
        let known = self.tool_router.has_route(&tool);
        crate::metrics::record_tool_call(
            if known { &tool } else { "unknown" },
            crate::metrics::tool_outcome(&outcome),
        );
        outcome
    }

    /// The bridge sends no log notifications of its own (its logs go to stderr), so any
    /// level a client asks for is already honoured; accepting it keeps clients that set one
    /// (and the MCP conformance suite) working.
    #[allow(deprecated)]
    async fn set_level(
        &self,
        request: rmcp::model::SetLevelRequestParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        tracing::debug!(level = ?request.level, "client set its log level");
        Ok(())
    }
}
