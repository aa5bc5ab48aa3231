//! `handinger-mcp`: a Model Context Protocol server that hands tasks to Handinger AI workers.
//!
//! A tool call flows one way through these modules and back:
//!
//! - [`transport`] — how a client reaches us: [`transport::stdio`] for local clients,
//!   [`transport::http`] for remote ones (Streamable HTTP, legacy SSE, health and metrics).
//! - [`tools`] — the MCP surface: `create_task` and `get_task`, their argument structs
//!   (the tools' input schemas are derived from them), the task policy (default and
//!   maximum budget, default worker) and the mapping of answers to MCP content.
//! - [`handinger`] — the Handinger API client: auth, body caps, a retry policy that never
//!   resends a POST Handinger may have taken, typed answers that tolerate missing fields.
//! - [`task_id`] — task ids: generated (`tsk_` + ULID), validated and path-escaped.
//!
//! Around them: [`config`] (every flag and environment variable), [`logging`] (stderr
//! only), [`metrics`] (counters for `/metrics`) and [`shutdown`] (signals).

pub mod config;
pub mod handinger;
pub mod logging;
pub mod metrics;
pub mod shutdown;
pub mod task_id;
pub mod tools;
pub mod transport;

use std::sync::Arc;

use config::{Cli, Command, Settings};
use handinger::HandingerClient;
use tools::HandingerServer;

/// Runs the command line; the error is a message for the user.
pub async fn run(cli: Cli, settings: Settings) -> Result<(), String> {
    let max_wait = settings.policy.max_wait;
    let api = HandingerClient::new(&settings.api_key, settings.client.clone())?;
    let server = HandingerServer::new(api, Arc::new(settings.policy));
    match cli.command.unwrap_or(Command::Stdio) {
        Command::Stdio => transport::stdio::serve(server).await,
        Command::Http(args) => {
            transport::http::serve(args.validate(max_wait)?, server, settings.client).await
        }
    }
}
