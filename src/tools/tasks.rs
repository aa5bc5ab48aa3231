//! `create_task` and `get_task`.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use rmcp::handler::server::common::{schema_for_input, schema_for_output};
use rmcp::model::{
    CallToolResponse, CallToolResult, ContentBlock, CreateTaskResult, JsonObject,
    ProgressNotificationParam,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer, tool, tool_router};

use super::args::{CreateTaskArgs, GetTaskArgs};
use super::call::{Call, Reply, boxed_apart};
use super::output::{TaskResult, error_result, outcome_result, owned_outcome_result, task_result};
use super::{HandingerServer, PreparedTask};
use crate::files::upload::AllowedRoots;
use crate::handinger::{ApiError, HandingerClient};
use crate::task_id::TaskId;
use crate::turns::{
    Admitted, RecordedUpstream, Settled, StartRefused, Stop, Turn, TurnOutcome, WaitEnd,
    bound_full, is_terminal_status,
};

/// How long to wait for a client to list its roots.
const ROOTS_TIMEOUT: Duration = Duration::from_secs(5);

/// Between lookups of a task the server does not hold.
const POLL_INTERVAL: Duration = Duration::from_secs(2);

pub(super) fn input_schema<T: schemars::JsonSchema + 'static>() -> std::sync::Arc<JsonObject> {
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
(with a new input) to ask a follow-up on the same task. If the worker needs longer than this \
server waits, the result has status \"running\" and the taskId: collect the answer with \
get_task (taskId, wait) and do not call create_task again for it. If a call's answer never \
arrives (a timeout, a dropped connection), send the same call again with the same taskId and \
input: it joins the turn if it runs, returns its answer if it ended, and never runs it twice. \
Cancelling the call stops the waiting, not the task: Handinger has no way to stop a task, and \
it still finishes. \
Each call spends Handinger credits according to the budget.",
        input_schema = input_schema::<CreateTaskArgs>(),
        output_schema = schema_for_output::<TaskResult>()
    )]
    pub(super) async fn create_task_tool(
        &self,
        call: Call<CreateTaskArgs>,
    ) -> Result<CallToolResponse, ErrorData> {
        self.run_task(call).await
    }

    /// What `create_task` does; the named workers' `ask_<name>` tools run it too, so they
    /// share the policy, the turn registry, the bounded wait, progress and MCP tasks.
    pub(super) async fn run_task(
        &self,
        call: Call<CreateTaskArgs>,
    ) -> Result<CallToolResponse, ErrorData> {
        let Call {
            tool,
            args,
            context,
        } = call;
        // Everything before the wait runs boxed apart, and is gone by the time the wait
        // starts.
        match boxed_apart(self.begin_task(tool, args, &context)).await? {
            Started::Turn(admitted) => {
                let mut result = self
                    .await_turn(admitted.turn, self.services.policy.max_wait, &context)
                    .await;
                if let Some(ago) = admitted.repeat_of {
                    result
                        .content
                        .insert(0, ContentBlock::text(repeat_note(ago)));
                }
                Ok(result.into())
            }
            Started::Answer(answer) => Ok(answer),
        }
    }

    #[tool(
        name = "get_task",
        title = "Check on or collect a Handinger task",
        description = "Look up a Handinger task by the taskId create_task returned. With wait \
(seconds), waits that long for a running task to finish and returns its answer, with sources \
and files when this server started the turn. Otherwise returns the task's status (pending, \
running, completed, error, aborted), totals, dashboard link and every turn with its input \
and answer.",
        input_schema = input_schema::<GetTaskArgs>(),
        output_schema = schema_for_output::<TaskResult>()
    )]
    pub(super) async fn get_task_tool(&self, call: Call<GetTaskArgs>) -> Reply {
        let checked = call
            .args
            .and_then(|args| Ok((TaskId::parse(&args.task_id)?, args.wait.unwrap_or(0))));
        self.api_call(&call.context, checked, |api, (task_id, wait)| {
            self.collect(api, task_id, wait, &call.context)
        })
        .await
    }
}

/// How the start of a `create_task` call ended: with a turn to wait for, or with the
/// call's answer already (an argument or bound refusal, an MCP task handle).
enum Started {
    Turn(Admitted),
    Answer(CallToolResponse),
}

impl From<CallToolResult> for Started {
    fn from(result: CallToolResult) -> Self {
        Started::Answer(result.into())
    }
}

impl From<CallToolResponse> for Started {
    fn from(response: CallToolResponse) -> Self {
        Started::Answer(response)
    }
}

impl HandingerServer {
    /// `create_task` up to its wait: the arguments checked against the policy (the local
    /// files read off the runtime), then the turn started with this caller's client.
    async fn begin_task(
        &self,
        tool: Cow<'static, str>,
        args: Result<CreateTaskArgs, String>,
        context: &RequestContext<RoleServer>,
    ) -> Result<Started, ErrorData> {
        let args = match args {
            Ok(args) => args,
            Err(message) => return Ok(error_result(message).into()),
        };
        let roots = if args.has_local_paths() {
            self.local_roots(context).await
        } else {
            None
        };
        let prepared = if args.files.as_ref().is_some_and(|files| !files.is_empty()) {
            // Opening and reading files can block (a slow disk, a FIFO): never on the
            // runtime, which on stdio is a single thread serving everything else too.
            let policy = self.services.policy.clone();
            tokio::task::spawn_blocking(move || policy.prepare(args, roots.as_ref()))
                .await
                .unwrap_or_else(|e| {
                    Err(format!(
                        "checking the attached files failed ({e}); nothing was sent to Handinger, so calling {tool} again is safe"
                    ))
                })
        } else {
            self.services.policy.prepare(args, roots.as_ref())
        };
        self.api_call(context, prepared, |api, prepared| {
            self.start_turn(&tool, api, prepared, context)
        })
        .await
    }

    /// Starts a checked `create_task` turn on Handinger: the turn to wait for, a refusal
    /// that says why nothing was sent, or, for a client of MCP tasks, the task handle.
    async fn start_turn(
        &self,
        tool: &str,
        api: HandingerClient,
        prepared: PreparedTask,
        context: &RequestContext<RoleServer>,
    ) -> Started {
        let task_id = prepared.task_id.clone();
        if context.ct.is_cancelled() {
            // The caller has gone (it cancelled, or its connection closed while this call
            // waited to run): a turn posted now would be one nobody asked for any more.
            return error_result(format!(
                "The call was cancelled before anything was sent to Handinger for task {task_id}; calling {tool} again is safe."
            ))
            .into();
        }
        tracing::info!(%task_id, budget = %prepared.request.budget, tool, "create_task");
        let admitted = match self
            .services
            .turns
            .start(
                &api,
                prepared.task_id,
                prepared.request,
                prepared.explicit_worker,
            )
            .await
        {
            Ok(admitted) => admitted,
            Err(StartRefused::Busy { running_for }) => {
                return error_result(format!(
                    "Task {task_id} already has a turn running ({} s so far) with a different input. Collect it first with get_task (taskId \"{task_id}\", wait), then send the follow-up.",
                    running_for.as_secs()
                ))
                .into();
            }
            Err(StartRefused::Store(error)) => {
                return error_result(format!(
                    "{error}. Nothing was sent to Handinger: without the shared store this server cannot tell whether another replica already runs task {task_id}. Try again when the store is back (its /readyz shows when)."
                ))
                .into();
            }
            Err(StartRefused::Full { limit, per_key }) => {
                return error_result(format!(
                    "{}. Wait for one to finish (collect running ones with get_task), then call {tool} again.",
                    bound_full(limit, per_key)
                ))
                .into();
            }
        };
        if super::mcp_tasks::offers_task_handles(context) {
            let task = self.mcp_task_of(&admitted.turn).task;
            return CallToolResponse::Task(CreateTaskResult::new(task)).into();
        }
        Started::Turn(admitted)
    }

    /// The directories local files may come from: the configured ones plus the client's
    /// roots, when it shares them. `None` where local paths are not allowed at all.
    async fn local_roots(&self, context: &RequestContext<RoleServer>) -> Option<AllowedRoots> {
        let configured = self.services.policy.local_roots.as_ref()?;
        let shares_roots = context
            .client_capabilities()
            .is_some_and(|caps| caps.roots.is_some());
        if !shares_roots {
            return Some(configured.clone());
        }
        // Roots are deprecated in the newest protocol revision (SEP-2577) but are how today's
        // clients (VS Code, Claude Code) say which folders the user opened.
        #[allow(deprecated)]
        let listed = tokio::time::timeout(ROOTS_TIMEOUT, context.peer.list_roots()).await;
        #[allow(deprecated)]
        match listed {
            Ok(Ok(result)) => {
                Some(configured.with_client_roots(result.roots.iter().map(|r| r.uri.as_str())))
            }
            _ => {
                tracing::warn!("the client did not list its roots; using --allow-dir only");
                Some(configured.clone())
            }
        }
    }

    /// What `get_task` answers: the answer this server (or the shared store) holds, waited
    /// for up to `wait` seconds and completed with the task record, or the task followed on
    /// Handinger when nothing is held.
    async fn collect(
        &self,
        api: HandingerClient,
        task_id: TaskId,
        wait: u64,
        context: &RequestContext<RoleServer>,
    ) -> CallToolResult {
        let wait = Duration::from_secs(wait).min(self.services.policy.max_wait);
        let Some(turn) = self.services.turns.find(&api, &task_id).await else {
            return self.poll_task(&api, &task_id, wait, context).await;
        };
        let Some(outcome) = self.await_outcome(&turn, wait, context).await else {
            return running_result(&turn);
        };
        match self.services.turns.settle(&api, &turn, &outcome).await {
            Settled::AsHeld => {
                // As in await_turn: let go of the turn before the answer is copied.
                drop(turn);
                owned_outcome_result(&task_id, outcome)
            }
            Settled::Upstream => self.poll_task(&api, &task_id, wait, context).await,
            Settled::Failed { record, recorded } => {
                let TurnOutcome::Failed { error, .. } = outcome.as_ref() else {
                    return outcome_result(&task_id, &outcome);
                };
                failed_latest_turn(&task_id, error, recorded, record.as_deref())
            }
            Settled::Completed { record, credits } => {
                let TurnOutcome::Answered { answer, copies } = outcome.as_ref() else {
                    return outcome_result(&task_id, &outcome);
                };
                // The held answer has the sources and files; the record adds the title,
                // totals, turn history and credits.
                let mut result = TaskResult::from_answer(&task_id, answer, &copies.snapshot());
                if let Some(usage) = result.usage.as_mut().filter(|u| u.credits.is_none()) {
                    usage.credits = credits;
                }
                let overview = TaskResult::from_record(&task_id, &record);
                result.url = overview.url.or(result.url);
                result.title = overview.title;
                result.totals = overview.totals;
                result.turns = overview.turns;
                result.note = latest_input_note(&record);
                // As above: the result has its own copy of the answer now.
                drop(turn);
                drop(outcome);
                task_result(result, None)
            }
        }
    }

    /// Waits for a turn the server holds, sending progress, at most `limit`; the outcome,
    /// or `None` while it still runs.
    async fn await_outcome(
        &self,
        turn: &Turn,
        limit: Duration,
        context: &RequestContext<RoleServer>,
    ) -> Option<Arc<TurnOutcome>> {
        let stop = Stop {
            request: &context.ct,
            shutdown: &self.services.shutdown,
        };
        let end = turn
            .wait(
                limit,
                self.services.policy.progress_interval,
                &stop,
                |elapsed| {
                    let message = format!(
                        "worker running, {} s elapsed, budget {}",
                        elapsed.as_secs(),
                        turn.budget
                    );
                    // Once per progress interval: inline, every held call would keep its size.
                    boxed_apart(send_progress(context, elapsed, message))
                },
            )
            .await;
        match end {
            WaitEnd::Finished(outcome) => Some(outcome),
            WaitEnd::StillRunning | WaitEnd::ShuttingDown | WaitEnd::Cancelled => None,
        }
    }

    /// The result of waiting for a turn: its answer, or the resumable "running" result.
    /// The turn is taken by value: the call's hold on it keeps the outcome (and the answer)
    /// alive, and it is let go before the answer is copied ([`owned_outcome_result`]).
    async fn await_turn(
        &self,
        turn: Arc<Turn>,
        limit: Duration,
        context: &RequestContext<RoleServer>,
    ) -> CallToolResult {
        match self.await_outcome(&turn, limit, context).await {
            Some(outcome) => {
                let task_id = turn.task_id.clone();
                drop(turn);
                owned_outcome_result(&task_id, outcome)
            }
            None => running_result(&turn),
        }
    }

    /// Follows a task the server does not hold (started elsewhere, or before a restart)
    /// until it ends or `limit` passes. The first look and the last read the whole record
    /// (task and turns); the polls between read only the task's status.
    async fn poll_task(
        &self,
        api: &HandingerClient,
        task_id: &TaskId,
        limit: Duration,
        context: &RequestContext<RoleServer>,
    ) -> CallToolResult {
        let started = tokio::time::Instant::now();
        let deadline = started + limit;
        let mut record = match api.get_task(task_id).await {
            Ok(record) => record,
            Err(error) => return lookup_failed(task_id, &error),
        };
        loop {
            let result = TaskResult::from_record(task_id, &record);
            let now = tokio::time::Instant::now();
            if is_terminal_status(&result.status) || now >= deadline {
                let problem = matches!(result.status.as_str(), "error" | "aborted")
                    .then(|| format!("Task {task_id} ended with status {}.", result.status));
                let sources = api.latest_sources(task_id, &record).await;
                let mut result = result.with_sources(&sources);
                result.note = latest_input_note(&record);
                return task_result(result, problem);
            }
            let elapsed = now - started;
            send_progress(
                context,
                elapsed,
                format!("task {}, {} s waited", result.status, elapsed.as_secs()),
            )
            .await;
            tokio::select! {
                biased;
                () = self.services.shutdown.cancelled() => return task_result(result, None),
                () = context.ct.cancelled() => return task_result(result, None),
                () = tokio::time::sleep_until(deadline.min(now + POLL_INTERVAL)) => {}
            }
            let summary = match api.get_task_summary(task_id).await {
                Ok(summary) => summary,
                Err(error) => return lookup_failed(task_id, &error),
            };
            let ended = summary.status.as_deref().is_some_and(is_terminal_status);
            if ended || tokio::time::Instant::now() >= deadline {
                record = match api.get_task(task_id).await {
                    Ok(record) => record,
                    Err(error) => return lookup_failed(task_id, &error),
                };
            } else {
                record.task = summary;
            }
        }
    }
}

/// Leads the result of a call that repeated the input of the task's latest turn: the
/// answer is that turn's, and nothing was posted (`--repeat-window`).
fn repeat_note(ago: Duration) -> String {
    format!(
        "(This input is the same as the task's latest turn, which ended {} s ago: this is that turn's answer, and nothing new was sent to Handinger. To ask it again as a new turn, change the input.)",
        ago.as_secs()
    )
}

fn running_result(turn: &Turn) -> CallToolResult {
    task_result(
        TaskResult::running(&turn.task_id, turn.started.elapsed().as_secs()),
        None,
    )
}

/// A progress notification, when the call asked for them (its `progressToken`). Progress is
/// the seconds waited so far: it only grows, and there is no known total.
async fn send_progress(context: &RequestContext<RoleServer>, elapsed: Duration, message: String) {
    let Some(token) = context.meta.get_progress_token() else {
        return;
    };
    let mut param = ProgressNotificationParam::new(token, elapsed.as_secs_f64());
    param.message = Some(message);
    if let Err(error) = context.peer.notify_progress(param).await {
        tracing::debug!(%error, "could not send a progress notification");
    }
}

/// `get_task` when the task's latest turn failed: its failure and the advice on resending
/// lead, and never an earlier turn's answer as if it were this one's. Handinger's record,
/// when it has the task, adds the earlier turns (their answers stay readable there).
fn failed_latest_turn(
    task_id: &TaskId,
    error: &ApiError,
    recorded: RecordedUpstream,
    record: Option<&crate::handinger::TaskRecord>,
) -> CallToolResult {
    let next = match recorded {
        RecordedUpstream::No => format!(
            "Handinger did not record this turn, so calling create_task again with it is safe (taskId {task_id})."
        ),
        _ => format!(
            "Handinger may have recorded this turn: do not resend it yet; call get_task (taskId {task_id}, wait) again to see whether it appears."
        ),
    };
    let mut problem = format!(
        "The latest turn of task {task_id} failed: {error}. {} {next}",
        error.hint()
    );
    let Some(record) = record else {
        return error_result(problem);
    };
    let earlier = record.turns.len();
    if earlier > 0 {
        problem.push_str(&format!(
            " The task's {earlier} earlier turn(s), with their answers, are listed in turns."
        ));
    }
    let result = TaskResult {
        status: "failed".into(),
        ..TaskResult::from_record(task_id, record).without_answer()
    };
    task_result(result, Some(problem))
}

fn lookup_failed(task_id: &TaskId, error: &ApiError) -> CallToolResult {
    let lost = if error.status() == Some(404) {
        // Nothing runs it here or on any replica (the store was asked first): a create_task
        // whose answer never came was not sent.
        " If you called create_task with this taskId and never got its answer, nothing was recorded: calling create_task again with the same taskId and input is safe."
    } else {
        ""
    };
    error_result(format!(
        "get_task failed for taskId {task_id}: {error}. {}{lost}",
        error.hint()
    ))
}

/// Names the input of the task's newest turn, so a caller whose create_task never answered
/// can tell whether its turn is this one; one that is not was never recorded.
fn latest_input_note(record: &crate::handinger::TaskRecord) -> Option<String> {
    const SHOWN: usize = 120;
    let input = record.latest_turn()?.input.as_deref()?;
    let shown = match input.char_indices().nth(SHOWN) {
        Some((end, _)) => format!("{}…", &input[..end]),
        None => input.to_owned(),
    };
    Some(format!(
        "(Latest turn's input: {shown:?}. A create_task on this task that never answered and asked something else was not recorded: send it again with the same taskId and input; a repeat never runs a turn twice.)"
    ))
}
