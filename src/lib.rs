//! `handinger-mcp`: a Model Context Protocol server that hands tasks to Handinger AI workers.
//!
//! A tool call flows one way through these modules and back:
//!
//! - [`transport`] — how a client reaches us: [`transport::stdio`] for local clients (framed
//!   by [`transport::framing`]: a size cap per message, no two requests with one id in
//!   flight), [`transport::http`] for remote ones (Streamable HTTP, legacy SSE, health and
//!   metrics; sessions bound to the credentials that opened them; its bounds are listed in
//!   docs/limits.md).
//! - [`tools`] — the MCP surface: `create_task` and `get_task`, their argument structs
//!   (the tools' input schemas are derived from them, then made portable by
//!   [`tools::schema`]), the task policy (default and maximum budget, default worker) and
//!   the mapping of answers to MCP content; the optional toolsets (workers, schedules,
//!   admin), the named workers' `ask_<name>` tools and the `delegate_research` prompt, and
//!   which of them a server lists (`--toolsets`, `--read-only`, `--worker`). Every tool that
//!   calls Handinger runs on one skeleton ([`tools`]' `call` module: decode, check, the
//!   caller's client, the error result).
//! - [`turns`] — turns in flight and finished answers (the registry): each POST is owned by
//!   the server, not by the call that started it, so an answer outlives a client's timeout,
//!   a cancellation or `--max-wait` and is collected later with `get_task` (or MCP
//!   `tasks/get`); bounded in turns running upstream and in bytes kept. ("Task" means a
//!   Handinger task, an MCP task, or the tool family; a "turn" is one POST of a task.)
//!   [`turns::shared`] is the optional store replicas share (`--store redis://…`):
//!   finished answers, the claim on a running turn that lets one replica join another's,
//!   and the lease whose expiry hands a dead replica's turn to Handinger lookups.
//! - [`files`] — attachments going up (opened without following links below the allowed
//!   roots, checked against the limits, handed to the client as its attachment type) and
//!   answer files coming down (capped per answer, saved and inlined in the background). It
//!   knows nothing of MCP: [`tools`] serves the files as resources.
//! - [`handinger`] — the Handinger API client: auth, body caps, a retry policy that never
//!   resends a POST Handinger may have taken, typed answers that tolerate missing fields,
//!   and no automatic redirects (downloads follow them by hand, the key never leaving the
//!   API origin; answer files elsewhere only from public https hosts,
//!   [`handinger::fetch_guard`]); its HTTPS clients are built in one place
//!   ([`handinger::HttpClients`]) on a thread of their own at start-up, off the handshake
//!   path. It depends on nothing of ours but task ids: attachments are its own wire type
//!   ([`handinger::attachment`]), which [`files`] produces.
//! - [`task_id`] — task ids: generated (`tsk_` + ULID), validated and path-escaped.
//!
//! The threat model and the test behind each defence: `docs/security.md`.
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
pub mod tools;
pub mod transport;
pub mod turns;

use std::sync::Arc;

use config::{Cli, Command, Settings};
use handinger::HandingerClient;
use tools::HandingerServer;
use turns::TurnRegistry;

/// Runs the command line; the error is a message for the user.
pub async fn run(cli: Cli, settings: Settings) -> Result<(), String> {
    let max_wait = settings.policy.max_wait;
    let api = HandingerClient::new(&settings.api_key, settings.client.clone())?;
    let store = match &settings.store {
        Some(url) => {
            use secrecy::ExposeSecret;
            Some(turns::shared::SharedStore::connect(
                url.expose_secret(),
                settings.retention.ttl,
                settings.retention.max_bytes,
            )?)
        }
        None => None,
    };
    let turns = Arc::new(
        TurnRegistry::new(
            settings.retention,
            settings.turn_limits,
            settings.answer_files,
        )
        .with_store(store),
    );
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
            let shutdown = turns.shutdown_token().clone();
            transport::stdio::serve(server, shutdown, settings.max_message_bytes).await
        }
        Command::Http(args) => {
            let http = args.validate(max_wait)?;
            let server = server(&api, &policy, &turns, key, tools).await?;
            transport::http::serve(http, server, settings.client).await
        }
        Command::Doctor => {
            let store = turns.shared().map(|store| &**store);
            doctor::run(&api, key, &policy, &tools, store).await
        }
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
