//! The MCP face of the bridge: the server handler, its instructions, and its tools.
//!
//! One file per concern: `args` (argument structs; the input schemas derive from them),
//! `output` (the result struct and its content blocks), `tasks` (the task tools),
//! `mcp_tasks` (the MCP Tasks extension mapped onto Handinger tasks). The optional toolsets
//! have a file each (`workers`, `schedules`, `admin`), as do the named workers' `ask_<name>`
//! tools (`named`) and the prompts (`prompts`); `surface` decides which of them a server
//! lists, and `reply` shapes their results. This module holds what they share: the server
//! type and the task policy applied before anything is sent.

mod admin;
mod args;
mod mcp_tasks;
mod named;
mod output;
mod prompts;
mod reply;
mod schedules;
mod surface;
mod tasks;
mod workers;

use std::sync::Arc;
use std::time::Duration;

use rmcp::handler::server::router::prompt::PromptRouter;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::{
    CancelTaskParams, GetTaskParams, GetTaskResult, Implementation, PromptsCapability,
    ServerCapabilities, ServerConfig, UpdateTaskParams,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, prompt_handler, tool_handler};

use crate::handinger::{Budget, HandingerClient, TaskRequest};
use crate::task_id::{TaskId, validate_id};
use crate::tasks::TurnRegistry;

pub use args::{CreateTaskArgs, GetTaskArgs};
pub use output::TaskResult;
pub use surface::{
    NamedWorker, ToolSettings, ToolSurface, Toolset, ToolsetChoice, WorkerCard, parse_toolsets,
};

/// What the server tells a client's model about using it, once, at initialization.
const INSTRUCTIONS: &str = "Hand work to Handinger AI workers. create_task runs a task and \
returns the worker's answer with its sources and files, plus a taskId. To follow up on the \
same task (keeping its context), call create_task again with that taskId. Long tasks return \
status \"running\" instead of an answer: then call get_task with the taskId and a wait to \
collect it; the task keeps running meanwhile, so never start it again.";

/// Defaults and guards applied to every call.
#[derive(Debug, Clone)]
pub struct TaskPolicy {
    pub default_budget: Budget,
    /// Calls asking for more are refused before anything is sent: a guard on credit spend.
    pub max_budget: Budget,
    /// Worker used when a call names none.
    pub default_worker: Option<String>,
    /// Longest a tool call waits for an answer before returning the resumable taskId.
    pub max_wait: Duration,
    pub progress_interval: Duration,
}

/// A `create_task` call that passed the policy.
pub struct PreparedTask {
    pub task_id: TaskId,
    pub request: TaskRequest,
    /// The call named its worker (so a remembered one must not replace it).
    pub explicit_worker: bool,
}

impl TaskPolicy {
    /// The budget a call asked for, or the default; refused above `--max-budget`.
    pub fn budget(&self, asked: Option<Budget>) -> Result<Budget, String> {
        let budget = asked.unwrap_or(self.default_budget);
        if budget > self.max_budget {
            return Err(format!(
                "budget \"{budget}\" is above this server's limit \"{}\" (--max-budget): call again with budget \"{}\" or lower.",
                self.max_budget, self.max_budget
            ));
        }
        Ok(budget)
    }

    /// Applies defaults and guards to `create_task` arguments, choosing the task id.
    /// Refusals explain what to change.
    pub fn prepare(&self, args: CreateTaskArgs) -> Result<PreparedTask, String> {
        if args.input.trim().is_empty() {
            return Err(
                "input is empty: describe the task for the worker in plain language.".into(),
            );
        }
        let budget = self.budget(args.budget)?;
        let task_id = match args.task_id {
            Some(raw) => TaskId::parse(&raw)?,
            None => TaskId::generate(),
        };
        let explicit_worker = args.worker_id.is_some();
        let worker_id = args.worker_id.or_else(|| self.default_worker.clone());
        if let Some(worker) = &worker_id {
            validate_id(worker, "workerId")?;
        }
        Ok(PreparedTask {
            request: TaskRequest {
                input: args.input,
                budget,
                task_id: task_id.to_string(),
                worker_id,
            },
            task_id,
            explicit_worker,
        })
    }
}

/// The MCP server: one per client connection, cheap to clone. The turn registry is shared
/// by all connections, so an answer outlives the call (and the session) that started it.
#[derive(Clone)]
pub struct HandingerServer {
    api: HandingerClient,
    policy: Arc<TaskPolicy>,
    turns: Arc<TurnRegistry>,
    tool_router: ToolRouter<Self>,
    prompt_router: PromptRouter<Self>,
    instructions: Arc<str>,
}

impl HandingerServer {
    /// A server listing the tools of `surface` (toolsets, `--read-only`, named workers).
    /// `Err` when a named worker's tool would clash with another tool.
    pub fn new(
        api: HandingerClient,
        policy: Arc<TaskPolicy>,
        turns: Arc<TurnRegistry>,
        surface: &ToolSurface,
    ) -> Result<Self, String> {
        let tool_router = surface.router()?;
        let prompt_router = Self::prompts_for(tool_router.has_route("create_task"));
        Ok(Self {
            api,
            policy,
            turns,
            tool_router,
            prompt_router,
            instructions: surface.instructions(INSTRUCTIONS).into(),
        })
    }

    /// The tools this server lists, as a client would see them.
    pub fn tools(&self) -> Vec<rmcp::model::Tool> {
        self.tool_router.list_all()
    }

    /// The prompts this server lists.
    pub fn prompts(&self) -> Vec<rmcp::model::Prompt> {
        self.prompt_router.list_all()
    }

    /// The Handinger client a call runs with.
    fn api_for(&self, _context: &RequestContext<RoleServer>) -> Result<HandingerClient, String> {
        Ok(self.api.clone())
    }
}

#[tool_handler(router = self.tool_router)]
#[prompt_handler(router = self.prompt_router)]
impl ServerHandler for HandingerServer {
    fn get_info(&self) -> ServerConfig {
        let mut capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_tasks()
            .build();
        if !self.prompt_router.map.is_empty() {
            capabilities.prompts = Some(PromptsCapability::default());
        }
        ServerConfig::new(capabilities)
            .with_server_info(
                Implementation::new("handinger-mcp", env!("CARGO_PKG_VERSION"))
                    .with_title("Handinger"),
            )
            .with_instructions(self.instructions.as_ref())
    }

    async fn get_task(
        &self,
        request: GetTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, ErrorData> {
        self.mcp_get_task(&request.task_id, &context)
            .await
            .map(GetTaskResult::new)
    }

    async fn cancel_task(
        &self,
        request: CancelTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        self.mcp_cancel_task(&request.task_id, &context)
    }

    async fn update_task(
        &self,
        _request: UpdateTaskParams,
        _context: RequestContext<RoleServer>,
    ) -> Result<(), ErrorData> {
        Err(ErrorData::invalid_params(
            "Handinger tasks never ask for input, so there is nothing to update",
            None,
        ))
    }
}
