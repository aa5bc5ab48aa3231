//! `handinger-mcp`: a Model Context Protocol server that hands tasks to Handinger AI workers.
//!
//! A tool call flows one way through these modules and back (each folder lists its files,
//! a line a file, at the top of its `mod.rs`):
//!
//! - [`transport`] — how a client reaches us: stdio for local clients, HTTP (Streamable
//!   HTTP, legacy SSE, probes and metrics) for remote ones.
//! - [`tools`] — the MCP surface: the tools, their arguments and results, which of them a
//!   server lists, and the [`tools::Services`] every server is handed (it reaches nothing
//!   global).
//! - [`turns`] — turns in flight and finished answers: each POST is owned by the server,
//!   not by the call that started it, so an answer outlives the call and is collected later;
//!   the one source of truth about a task; and the store replicas share (`--store`).
//! - [`files`] — attachments going up and answer files coming down; no MCP types.
//! - [`handinger`] — the Handinger API client; it depends on nothing of ours but task ids.
//! - [`oauth`] — OAuth mode of `http` (`--oauth`): the resource server's check on every MCP
//!   request, and the authorization server users sign in at with their own Handinger key.
//! - [`task_id`] — task ids: generated, validated and path-escaped.
//! - [`json_shape`] — what a JSON text's tree would cost, measured on its bytes.
//! - [`printable`] — outside text on one line, safe to log or show.
//! - [`env_secret`] — secrets from the environment or a mounted file.
//!
//! Dependencies run one way: [`transport`] → [`tools`] → [`turns`] → [`files`] →
//! [`handinger`] → [`task_id`] (and [`json_shape`], which depends on nothing);
//! [`metrics`] knows only [`handinger`]'s observer hooks; [`printable`] knows nothing and
//! anyone may use it.
//!
//! Around them: [`config`] and [`config_file`] (every flag, environment variable and file
//! setting; a bad one is a [`config::ConfigError`], and what stops a command a
//! [`StartError`]), [`logging`] (stderr only), [`metrics`] (the counters of `/metrics`,
//! made in [`run`] and handed to whoever counts), [`shutdown`] (signals), [`redact`] (URLs
//! without their passwords), and the commands that help a person set up rather than serve:
//! [`doctor`], [`client_config`] (what `doctor` and `tools` print) and [`console`] (their
//! stdout). The threat model and the test behind each defence: `docs/security.md`; the
//! map of the repository: `docs/architecture.md`.

#![warn(unreachable_pub)]

pub(crate) mod client_config;
pub mod config;
pub mod config_file;
pub(crate) mod console;
pub(crate) mod doctor;
pub(crate) mod env_secret;
pub mod files;
pub mod handinger;
pub(crate) mod json_shape;
pub mod logging;
pub mod metrics;
pub(crate) mod oauth;
pub(crate) mod printable;
pub(crate) mod redact;
pub(crate) mod shutdown;
pub(crate) mod task_id;
pub mod tools;
pub(crate) mod transport;
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
    #[error(transparent)]
    Store(#[from] turns::store::StoreError),
    /// The tools cannot be listed as configured (a named worker's tool clashes).
    #[error(transparent)]
    Tools(#[from] tools::ToolNameTaken),
    /// A transport could not serve (the port is taken) or stopped with an error.
    #[error(transparent)]
    Serve(#[from] transport::ServeError),
    /// `tools` could not write the tool list.
    #[error("could not write the tools as JSON: {0}")]
    ToolsJson(#[from] serde_json::Error),
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
            let connected = turns::store::TurnStore::connect(
                url.expose_secret(),
                secret,
                settings.retention,
                settings.store_lease,
            );
            Some(connected?)
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
    let services = tools::Services {
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
            let shutdown = services.shutdown.clone();
            let server = server(services, key_given, tools).await?;
            transport::stdio::serve(
                server,
                shutdown,
                settings.max_message_bytes,
                settings.message_shape,
            )
            .await?;
            Ok(())
        }
        Command::Http(args) => {
            let http = (*args)
                .validate(max_wait)
                .map_err(config::ConfigError::Invalid)?;
            let http_services = transport::http::HttpServices {
                api: api.clone(),
                store,
                metrics,
                shutdown: services.shutdown.clone(),
                message_shape: settings.message_shape,
            };
            let server = server(services, key_given, tools).await?;
            transport::http::serve(http, server, http_services).await?;
            Ok(())
        }
        Command::Doctor => {
            let store = store.as_deref();
            Ok(doctor::run(&api, key_given, &services.policy, &tools, store).await?)
        }
        Command::Tools => {
            let server = server(services, key_given, tools).await?;
            client_config::print_tools(&server)?;
            Ok(())
        }
    }
}

/// The MCP server for these settings. The named workers' descriptions come from Handinger,
/// which needs a real key: without one (`tools` runs without) they are described from their
/// names.
async fn server(
    services: tools::Services,
    key_given: bool,
    tools: tools::ToolSettings,
) -> Result<HandingerServer, StartError> {
    let surface = tools.describe(key_given.then_some(&services.api)).await;
    Ok(HandingerServer::new(services, &surface)?)
}
