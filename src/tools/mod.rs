//! The MCP face of the bridge: the server handler, its instructions, and its tools.
//!
//! One file per tool family; this module holds what they share: the server type and the
//! task policy (defaults and guards applied to every call before anything goes upstream).

mod args;
mod output;
mod tasks;

use std::sync::Arc;
use std::time::Duration;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{Implementation, ServerCapabilities, ServerConfig};
use rmcp::{ServerHandler, tool_handler};

use crate::handinger::{Budget, HandingerClient, TaskRequest};
use crate::task_id::{TaskId, validate_id};

pub use args::{CreateTaskArgs, GetTaskArgs};
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
}

impl HandingerServer {
    pub fn new(api: HandingerClient, policy: Arc<TaskPolicy>) -> Self {
        Self {
            api,
            policy,
            tool_router: Self::task_tools(),
        }
    }

    /// The tools this server lists, as a client would see them.
    pub fn tools(&self) -> Vec<rmcp::model::Tool> {
        self.tool_router.list_all()
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for HandingerServer {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(
                Implementation::new("handinger-mcp", env!("CARGO_PKG_VERSION"))
                    .with_title("Handinger"),
            )
            .with_instructions(INSTRUCTIONS)
    }
}
