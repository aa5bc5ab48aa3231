//! `handinger-mcp`: a Model Context Protocol server that hands tasks to Handinger AI workers.
//!
//! A tool call flows one way through these modules and back:
//!
//! - [`transport`] — how a client reaches us: [`transport::stdio`] for local clients (framed
//!   by [`transport::framing`]: a size cap per message, no two requests with one id in
//!   flight), [`transport::message_shape`] (what a client message may cost before it is
//!   parsed: nesting, values, id and progress-token length; every transport),
//!   [`transport::http`] for remote ones (Streamable HTTP, legacy SSE, health and
//!   metrics; sessions bound to the credentials that opened them; its bounds are listed in
//!   docs/limits.md).
//! - [`tools`] — the MCP surface: `create_task` and `get_task`, their argument structs
//!   (the tools' input schemas are derived from them, then made portable by
//!   [`tools::schema`]), the task policy (default and maximum budget, default worker) and
//!   the mapping of answers to MCP content; the optional toolsets (workers, schedules,
//!   admin), the named workers' `ask_<name>` tools and the `delegate_research` prompt, and
//!   which of them a server lists (`--toolsets`, `--read-only`, `--worker`). Every tool
//!   runs on one skeleton ([`tools`]' `call` module: decode, check, the caller's client,
//!   the error result; the irreversible changes share one more, `change`), and its
//!   annotations come from one table of what each tool does (`effect`). A server is handed what it shares with the process ([`tools::Shared`]:
//!   the API client, the policy, the registry, the metrics, the shutdown token) and
//!   reaches nothing global; it renders what [`turns`] says is true.
//! - [`turns`] — turns in flight and finished answers (the registry): each POST is owned by
//!   the server, not by the call that started it, so an answer outlives a client's timeout,
//!   a cancellation or `--max-wait` and is collected later with `get_task` (or MCP
//!   `tasks/get`); bounded in turns running upstream and in bytes kept. ("Task" means a
//!   Handinger task, an MCP task, or the tool family; a "turn" is one POST of a task.) It
//!   is also the one source of truth about a task for `get_task`, `tasks/get` and
//!   `resources/read` ([`turns::Known`], [`turns::Settled`]): the turn held here, or
//!   Handinger's record, and which of them wins once a held turn has ended.
//!   [`turns::shared`] is the optional store replicas share (`--store redis://…`):
//!   finished answers, the claim on a running turn that lets one replica join another's,
//!   and the lease whose expiry hands a dead replica's turn to Handinger lookups.
//! - [`files`] — attachments going up (opened without following links below the allowed
//!   roots, checked against the limits, handed to the client as its attachment type) and
//!   answer files coming down (capped per answer, saved and inlined in the background). It
//!   knows nothing of MCP: [`tools`] serves the files as resources.
//! - [`handinger`] — the Handinger API client: auth, body caps, a retry policy that never
//!   resends a POST Handinger may have taken, typed answers that tolerate missing fields
//!   (a structured output too costly as a tree is passed as its text,
//!   [`handinger::structured`]),
//!   and no automatic redirects (downloads follow them by hand, the key never leaving the
//!   API origin; answer files elsewhere only from public https hosts,
//!   [`handinger::fetch_guard`]); its HTTPS clients are built in one place
//!   ([`handinger::HttpClients`]) on a thread of their own at start-up, off the handshake
//!   path. It depends on nothing of ours but task ids: attachments are its own wire type
//!   ([`handinger::attachment`]), which [`files`] produces, and it reports its requests to
//!   the [`handinger::Observer`] it is given (the server's metrics).
//! - [`oauth`] — OAuth mode of `http` (`--oauth`): the resource server's check on every
//!   MCP request, and the authorization server users sign in at with their own Handinger
//!   key (metadata, registration, the sign-in page, tokens, what they store).
//! - [`task_id`] — task ids: generated (`tsk_` + ULID), validated and path-escaped; no id
//!   is ever a dot segment (`.`, `..`) that would turn `/api/tasks/{id}` into the
//!   collection.
//! - [`printable`] — text from outside (upstream error bodies, names) on one line: control
//!   characters, line separators and invisible marks escaped before it is logged or shown.
//! - [`json_shape`] — how deep a JSON text nests and how many values it holds, measured on
//!   its bytes: what its tree would cost, known before one is built (client messages,
//!   workers' structured outputs).
//!
//! The threat model and the test behind each defence: `docs/security.md`.
//!
//! Around them: [`config`] (every flag and environment variable; its errors are
//! [`config::ConfigError`], and what stops a command is a [`StartError`]), [`config_file`]
//! (the same settings from a TOML file), [`logging`] (stderr only), [`metrics`] (the
//! counters of `/metrics`: one value made in [`run`] and handed to the tools, the HTTP
//! layer and, as its observer, the API client), [`shutdown`] (signals; the token that ends
//! waits is made in [`run`] and handed to the tools and the transports) and [`redact`]
//! (URLs shown without their passwords).
//!
//! Dependencies run one way: [`transport`] → [`tools`] → [`turns`] → [`files`] →
//! [`handinger`] → [`task_id`] (and [`json_shape`], which depends on nothing);
//! [`metrics`] knows only [`handinger`]'s observer hooks; [`printable`] knows nothing and
//! anyone may use it.
//!
//! Two commands help a person set the server up rather than serve: `doctor` ([`doctor`]:
//! checks the key, the base URL and proxy, the default worker) and `tools`; [`client_config`]
//! holds what a client needs, the ready-to-paste configuration `doctor` ends with and the
//! tools/list JSON `tools` prints; [`console`] is their stdout, where a closed pipe
//! (`doctor | head`) ends the command quietly.

pub mod client_config;
pub mod config;
pub mod config_file;
pub mod console;
pub mod doctor;
pub mod files;
pub mod handinger;
pub mod json_shape;
pub mod logging;
pub mod metrics;
pub mod oauth;
pub mod printable;
pub mod redact;
pub mod shutdown;
pub mod task_id;
pub mod tools;
pub mod transport;
pub mod turns;

use std::sync::Arc;

use config::{Cli, Command, Settings};
use handinger::HandingerClient;
use tokio_util::sync::CancellationToken;
use tools::HandingerServer;
use turns::TurnRegistry;

/// Why a command could not run, or stopped; each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Key(#[from] handinger::KeyError),
    /// The shared turn store (`--store`) could not be set up.
    #[error("{0}")]
    Store(String),
    /// The tools cannot be listed as configured (a named worker's tool clashes).
    #[error("{0}")]
    Tools(String),
    /// A transport could not serve (the port is taken) or stopped with an error.
    #[error("{0}")]
    Serve(String),
    /// `doctor` found problems; the report above says which.
    #[error(transparent)]
    Doctor(#[from] doctor::Problems),
}

/// Runs the command line.
pub async fn run(cli: Cli, settings: Settings) -> Result<(), StartError> {
    let max_wait = settings.policy.max_wait;
    let metrics = Arc::new(metrics::Metrics::default());
    let api = HandingerClient::new(
        settings.api_key.as_ref(),
        settings.client.clone(),
        metrics.clone(),
    )?
    .with_max_structured_values(settings.max_structured_values);
    let store = match &settings.store {
        Some((url, secret)) => {
            use secrecy::ExposeSecret;
            let connected = turns::shared::SharedStore::connect(
                url.expose_secret(),
                secret,
                settings.retention,
                settings.store_lease,
            );
            Some(connected.map_err(StartError::Store)?)
        }
        None => None,
    };
    let turns = Arc::new(
        TurnRegistry::new(
            settings.retention,
            settings.turn_limits,
            settings.answer_files,
        )
        .with_store(store.clone()),
    );
    let mut policy = settings.policy;
    if matches!(cli.command, Some(Command::Http(_))) {
        // The server does not run on the caller's machine: its files are not theirs to send.
        policy.local_roots = None;
    }
    let shared = tools::Shared {
        api: api.clone(),
        policy: Arc::new(policy),
        turns,
        metrics: metrics.clone(),
        shutdown: CancellationToken::new(),
    };
    let key_given = settings.api_key.is_some();
    let tools = settings.tools;
    match cli.command.unwrap_or(Command::Stdio) {
        Command::Stdio => {
            let shutdown = shared.shutdown.clone();
            let server = server(shared, key_given, tools).await?;
            transport::stdio::serve(
                server,
                shutdown,
                settings.max_message_bytes,
                settings.message_shape,
            )
            .await
            .map_err(StartError::Serve)
        }
        Command::Http(args) => {
            let http = (*args)
                .validate(max_wait)
                .map_err(config::ConfigError::Invalid)?;
            let process = transport::http::Process {
                api: api.clone(),
                store,
                metrics,
                shutdown: shared.shutdown.clone(),
                message_shape: settings.message_shape,
            };
            let server = server(shared, key_given, tools).await?;
            transport::http::serve(http, server, process)
                .await
                .map_err(StartError::Serve)
        }
        Command::Doctor => {
            let store = store.as_deref();
            Ok(doctor::run(&api, key_given, &shared.policy, &tools, store).await?)
        }
        Command::Tools => {
            let server = server(shared, key_given, tools).await?;
            client_config::print_tools(&server).map_err(StartError::Serve)
        }
    }
}

/// The MCP server for these settings. The named workers' descriptions come from Handinger,
/// which needs a real key: without one (`tools` runs without) they are described from their
/// names.
async fn server(
    shared: tools::Shared,
    key_given: bool,
    tools: tools::ToolSettings,
) -> Result<HandingerServer, StartError> {
    let surface = tools.describe(key_given.then_some(&shared.api)).await;
    HandingerServer::new(shared, &surface).map_err(StartError::Tools)
}
