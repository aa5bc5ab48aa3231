//! `handinger-mcp`: a Model Context Protocol server that hands tasks to Handinger AI workers.
//!
//! A tool call flows one way through these modules and back:
//!
//! - [`transport`] — how a client reaches us: [`transport::stdio`] for local clients,
//!   [`transport::http`] for remote ones (Streamable HTTP, legacy SSE, health and metrics;
//!   its bounds are listed in docs/limits.md).
//! - [`tools`] — the MCP surface: `create_task` and `get_task`, their argument structs
//!   (the tools' input schemas are derived from them), the task policy (default and
//!   maximum budget, default worker) and the mapping of answers to MCP content; the
//!   optional toolsets (workers, schedules, admin), the named workers' `ask_<name>` tools
//!   and the `delegate_research` prompt, and which of them a server lists (`--toolsets`,
//!   `--read-only`, `--worker`).
//! - [`tasks`] — turns in flight: each POST is owned by the server, not by the call that
//!   started it, so an answer outlives a client's timeout, a cancellation or `--max-wait`
//!   and is collected later with `get_task` (or MCP `tasks/get`).
//! - [`files`] — attachments going up (checked against the allowed roots and limits, then
//!   streamed) and answer files coming down (saved, inlined, served as resources).
//! - [`handinger`] — the Handinger API client: auth, body caps, a retry policy that never
//!   resends a POST Handinger may have taken, typed answers that tolerate missing fields;
//!   its HTTPS client is built on a thread of its own at start-up, off the handshake path.
//! - [`task_id`] — task ids: generated (`tsk_` + ULID), validated and path-escaped.
//!
//! Around them: [`config`] (every flag and environment variable), [`config_file`] (the
//! same settings from a TOML file), [`logging`] (stderr only), [`metrics`] (counters for
//! `/metrics`) and [`shutdown`] (signals).
//!
//! Two commands help a person set the server up rather than serve: `doctor` ([`doctor`]:
//! checks the key, the base URL and proxy, the default worker) and `tools`; [`client_config`]
//! holds what a client needs, the ready-to-paste configuration `doctor` ends with and the
//! tools/list JSON `tools` prints.

pub mod client_config;
pub mod config;
pub mod config_file;
pub mod doctor;
pub mod files;
pub mod handinger;
pub mod logging;
pub mod metrics;
pub mod shutdown;
pub mod task_id;
pub mod tasks;
pub mod tools;
pub mod transport;

use std::sync::Arc;

use config::{Cli, Command, Settings};
use handinger::HandingerClient;
use tasks::TurnRegistry;
use tools::HandingerServer;

/// Runs the command line; the error is a message for the user.
pub async fn run(cli: Cli, settings: Settings) -> Result<(), String> {
    let max_wait = settings.policy.max_wait;
    let api = HandingerClient::new(&settings.api_key, settings.client.clone())?;
    let turns = Arc::new(TurnRegistry::new(settings.retention, settings.answer_files));
    let mut policy = settings.policy;
    if matches!(cli.command, Some(Command::Http(_))) {
        // The server does not run on the caller's machine: its files are not theirs to send.
        policy.local_roots = None;
    }
    let policy = Arc::new(policy);
    let key = &settings.api_key;
    let tools = settings.tools;
    match cli.command.unwrap_or(Command::Stdio) {
        Command::Stdio => {
            let server = server(&api, &policy, &turns, key, tools).await?;
            transport::stdio::serve(server, turns.shutdown_token().clone()).await
        }
        Command::Http(args) => {
            let http = args.validate(max_wait)?;
            let server = server(&api, &policy, &turns, key, tools).await?;
            transport::http::serve(http, server, settings.client).await
        }
        Command::Doctor => doctor::run(&api, key, &policy, &tools).await,
        Command::Tools => {
            client_config::print_tools(&server(&api, &policy, &turns, key, tools).await?)
        }
    }
}

/// The MCP server for these settings. The named workers' descriptions come from Handinger,
/// which needs a real key: without one (`tools` runs without) they are described from their
/// names.
async fn server(
    api: &HandingerClient,
    policy: &Arc<tools::TaskPolicy>,
    turns: &Arc<TurnRegistry>,
    key: &secrecy::SecretString,
    tools: tools::ToolSettings,
) -> Result<HandingerServer, String> {
    use secrecy::ExposeSecret;
    let key_given = key.expose_secret() != config::PLACEHOLDER_API_KEY;
    let surface = tools.describe(key_given.then_some(api)).await;
    HandingerServer::new(api.clone(), policy.clone(), turns.clone(), &surface)
}
