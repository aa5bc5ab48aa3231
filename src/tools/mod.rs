//! The MCP face of the bridge: the server handler, its instructions, and its tools.
//!
//! This module holds what the tools share: the server type, [`Services`] (what every server
//! is handed from the process) and the task policy applied before anything is sent. One
//! file a job:
//!
//! - `tasks` — `create_task` and `get_task`.
//! - `workers`, `schedules`, `admin` — the optional toolsets (`--toolsets`).
//! - `named` — the named workers' `ask_<name>` tools (`--worker`).
//! - `prompts` — the `delegate_research` prompt.
//! - `args` — the task tools' argument structs (the input schemas derive from them) and
//!   their decoding.
//! - `call` — the skeleton every tool runs on: decode, check, the caller's client, the
//!   error result.
//! - `change` — the irreversible changes (`delete_worker`, `archive_task`,
//!   `cancel_schedule`) as one kind of call.
//! - `effect` — what each tool does, in one table, and so its annotations.
//! - `output` — the task tools' results and their MCP content.
//! - `reply` — the results of the worker, schedule and admin tools.
//! - `resources` — answer files and task records as MCP resources.
//! - `mcp_tasks` — the MCP Tasks extension mapped onto Handinger tasks.
//! - `app_view` — the MCP Apps task view, for clients that declare the extension.
//! - `surface` — which tools a server lists (toolsets, `--read-only`, named workers).
//! - `schema` — the tools' schemas rewritten into what every client's validator accepts.
//! - `keys` — which Handinger key a request runs with (the server's, or the caller's with
//!   `--key-from-request`).
//! - `admission` — whether a call would find a turn slot, asked by HTTP mode before it
//!   accepts the call.

mod admin;
mod admission;
mod app_view;
mod args;
mod call;
mod change;
mod effect;
mod keys;
mod mcp_tasks;
mod named;
mod output;
mod prompts;
mod reply;
mod resources;
mod schedules;
pub(crate) mod schema;
mod surface;
mod tasks;
mod workers;

use std::sync::Arc;
use std::time::Duration;

use rmcp::handler::server::router::prompt::PromptRouter;
use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::{
    CacheScope, CallToolRequestParams, CallToolResponse, CancelTaskParams, GetTaskParams,
    GetTaskResult, Implementation, ListResourceTemplatesResult, ListResourcesResult,
    ListToolsResult, PaginatedRequestParams, PromptsCapability, ProtocolVersion,
    ReadResourceRequestParams, ReadResourceResponse, ResultType, ServerCapabilities, ServerConfig,
    UpdateTaskParams,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, ServerHandler, prompt_handler, tool_handler};

use crate::files::FileLimits;
use crate::files::upload::{self, AllowedRoots};
use crate::handinger::{Budget, HandingerClient, TaskRequest};
use crate::metrics::Metrics;
use crate::task_id::{TaskId, validate_id};
use crate::turns::TurnRegistry;
use tokio_util::sync::CancellationToken;

pub use args::{CreateTaskArgs, GetTaskArgs, decode};
pub use keys::API_KEY_HEADER;
pub use output::TaskResult;
pub use surface::{
    NamedWorker, ToolNameTaken, ToolSettings, ToolSurface, Toolset, ToolsetChoice, WorkerCard,
    parse_toolsets,
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
    /// Longest input accepted, in bytes.
    pub max_input_bytes: usize,
    pub file_limits: FileLimits,
    /// Where local files may be attached from; `None` where local paths make no sense (a
    /// server that does not run on the caller's machine).
    pub local_roots: Option<AllowedRoots>,
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

    /// Refuses a task input over `--max-input-bytes`; `next` says what to do instead.
    pub fn check_input_size(&self, input: &str, next: &str) -> Result<(), String> {
        if input.len() > self.max_input_bytes {
            return Err(format!(
                "input is {} bytes, above this server's limit of {} (--max-input-bytes): {next}.",
                input.len(),
                self.max_input_bytes
            ));
        }
        Ok(())
    }

    /// Applies defaults and guards to `create_task` arguments, choosing the task id and
    /// checking attachments (local paths against `roots`). Refusals explain what to change.
    pub fn prepare(
        &self,
        args: CreateTaskArgs,
        roots: Option<&AllowedRoots>,
    ) -> Result<PreparedTask, String> {
        if args.input.trim().is_empty() {
            return Err(
                "input is empty: describe the task for the worker in plain language.".into(),
            );
        }
        self.check_input_size(
            &args.input,
            "shorten it, or attach the long material as a file (files) and refer to it in the input",
        )?;
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
        let files = upload::prepare(args.files.unwrap_or_default(), roots, &self.file_limits)?;
        Ok(PreparedTask {
            request: TaskRequest {
                input: args.input,
                budget,
                task_id: task_id.to_string(),
                worker_id,
                files,
            },
            task_id,
            explicit_worker,
        })
    }
}

/// What every server shares with the rest of the process, handed in at start-up rather
/// than reached through globals.
#[derive(Clone)]
pub struct Services {
    /// The client with the server's own key (per-user keys derive theirs from it).
    pub api: HandingerClient,
    pub policy: Arc<TaskPolicy>,
    /// Turns in flight and finished answers, shared by all connections.
    pub turns: Arc<TurnRegistry>,
    pub metrics: Arc<Metrics>,
    /// Cancelled when the process stops: waits on long turns then end at once with the
    /// resumable taskId instead of holding the shutdown up.
    pub shutdown: CancellationToken,
}

/// The MCP server: one per client connection, cheap to clone. The turn registry is shared
/// by all connections, so an answer outlives the call (and the session) that started it.
#[derive(Clone)]
pub struct HandingerServer {
    services: Services,
    tool_router: ToolRouter<Self>,
    prompt_router: PromptRouter<Self>,
    instructions: Arc<str>,
    /// Set in HTTP mode with `--key-from-request`: calls run with their client's key.
    request_keys: bool,
}

impl HandingerServer {
    /// A server listing the tools of `surface` (toolsets, `--read-only`, named workers).
    /// `Err` when a named worker's tool would clash with another tool.
    pub fn new(services: Services, surface: &ToolSurface) -> Result<Self, ToolNameTaken> {
        let mut tool_router = surface.router()?;
        schema::make_portable(&mut tool_router);
        let prompt_router = Self::prompts_for(tool_router.has_route("create_task"));
        Ok(Self {
            services,
            tool_router,
            prompt_router,
            instructions: surface.instructions(INSTRUCTIONS).into(),
            request_keys: false,
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
}

/// How a tool call ended, as the `outcome` label of `/metrics` says it.
fn outcome_word(outcome: &Result<CallToolResponse, ErrorData>) -> &'static str {
    match outcome {
        Ok(CallToolResponse::Complete(result)) if result.is_error == Some(true) => "error",
        Ok(_) => "ok",
        // The request itself was refused (unknown tool, malformed call): no tool ran.
        Err(_) => "rejected",
    }
}

#[tool_handler(router = self.tool_router)]
#[prompt_handler(router = self.prompt_router)]
impl ServerHandler for HandingerServer {
    // Logging is deprecated in the newest protocol revision but still part of the ones
    // clients speak today (and of the conformance suite); see `set_level`.
    #[allow(deprecated)]
    fn get_info(&self) -> ServerConfig {
        let mut capabilities = ServerCapabilities::builder()
            .enable_tools()
            // Answer files are reached through the resource template: resources/list stays
            // rmcp's empty list, as there is no fixed list to offer.
            .enable_resources()
            .enable_logging()
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

    /// The tools, as `#[tool_handler]` would list them; for a client that renders MCP Apps
    /// views, the task tools also name the task view (`app_view`).
    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let mut tools = self.tool_router.list_all();
        let views = app_view::declared(&context);
        if views {
            app_view::link(&mut tools);
        }
        let cache_hints = context
            .protocol_version()
            .is_some_and(|version| version >= ProtocolVersion::V_2026_07_28);
        Ok(ListToolsResult {
            result_type: Some(ResultType::COMPLETE),
            tools,
            meta: None,
            next_cursor: None,
            ttl_ms: cache_hints.then_some(0),
            // A listing that depends on what this client declared is not for anyone else.
            cache_scope: cache_hints.then_some(if views {
                CacheScope::Private
            } else {
                CacheScope::Public
            }),
        })
    }

    /// Empty, as rmcp's default, but for a client that renders MCP Apps views: the task view.
    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        if app_view::declared(&context) {
            return Ok(ListResourcesResult::with_all_items(vec![
                app_view::resource(),
            ]));
        }
        Ok(ListResourcesResult::default())
    }

    /// Every call passes here to be counted for `/metrics`.
    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let tool = request.name.clone();
        let outcome = self
            .tool_router
            .call(ToolCallContext::new(self, request, context))
            .await;
        let known = self.tool_router.has_route(&tool);
        self.services.metrics.record_tool_call(
            if known { &tool } else { "unknown" },
            outcome_word(&outcome),
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

    async fn get_task(
        &self,
        request: GetTaskParams,
        context: RequestContext<RoleServer>,
    ) -> Result<GetTaskResult, ErrorData> {
        // rmcp's task per request is sized by the largest handler: a held call must not pay
        // for a task lookup's.
        call::boxed_apart(self.mcp_get_task(&request.task_id, &context))
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

    async fn list_resource_templates(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourceTemplatesResult, ErrorData> {
        Ok(ListResourceTemplatesResult::with_all_items(
            resources::templates(),
        ))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        // Served to whoever asks (it is the same static page for all): a host may read it
        // in a request that does not repeat its capabilities.
        if request.uri == app_view::URI {
            return Ok(app_view::read(|name| self.tool_router.has_route(name)).into());
        }
        // As `get_task` above.
        call::boxed_apart(self.read_task_resource(&request.uri, &context))
            .await
            .map(Into::into)
    }
}

/// The protocol error for a failed task lookup: `not_found` builds the one for a 404 (its
/// code differs between `resources/read` and `tasks/get`), anything else is internal.
fn lookup_error(
    task_id: &TaskId,
    error: &crate::handinger::ApiError,
    not_found: impl FnOnce(String) -> ErrorData,
) -> ErrorData {
    match error {
        crate::handinger::ApiError::Status { status: 404, .. } => {
            not_found(format!("no task {task_id} on Handinger: check the taskId"))
        }
        other => ErrorData::internal_error(
            format!(
                "could not look task {task_id} up: {other}. {}",
                other.hint()
            ),
            None,
        ),
    }
}
