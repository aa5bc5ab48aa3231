//! MCP over stdin/stdout for a local client.
//!
//! Shutdown, whether the client closes stdin or the operator sends SIGTERM/SIGINT, first
//! fires the shutdown token: calls still waiting for a worker then answer at once with
//! their resumable taskId, and rmcp flushes those answers before the process exits.

use rmcp::ServiceExt;
use tokio_util::sync::CancellationToken;

use super::ServeError;
use crate::tools::HandingerServer;

/// Serves one client until it closes stdin or the process is told to stop. Lines longer
/// than `max_message_bytes` are answered with an error (see [`super::framing`]).
pub(crate) async fn serve(
    server: HandingerServer,
    shutdown: CancellationToken,
    max_message_bytes: usize,
    shape: super::message_shape::MessageShape,
) -> Result<(), ServeError> {
    // End of input fires the shutdown token, so waiting calls answer before the session
    // (which only notices the end on its next read) winds down.
    let transport = super::framing::transport(
        tokio::io::stdin(),
        tokio::io::stdout(),
        max_message_bytes,
        shape,
        shutdown.clone(),
    );
    let running = server.serve(transport).await.map_err(|e| {
        ServeError::Stopped(format!(
            "the MCP client did not complete initialization: {e}"
        ))
    })?;
    let cancel = running.cancellation_token();
    let waiting = running.waiting();
    tokio::pin!(waiting);
    tokio::select! {
        outcome = &mut waiting => {
            outcome.map_err(|e| ServeError::Stopped(format!("the MCP session ended with an error: {e}")))?;
            return Ok(());
        }
        () = crate::shutdown::signal() => {
            tracing::info!("shutting down: answering waiting calls with their taskId");
            shutdown.cancel();
        }
    }
    // Let the handlers turn the shutdown into answers before the session stops.
    tokio::task::yield_now().await;
    cancel.cancel();
    waiting
        .await
        .map_err(|e| ServeError::Stopped(format!("the MCP session ended with an error: {e}")))?;
    Ok(())
}
