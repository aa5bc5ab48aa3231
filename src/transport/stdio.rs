//! MCP over stdin/stdout for a local client.

use rmcp::ServiceExt;

use crate::tools::HandingerServer;

/// Serves one client until it closes stdin or the process is told to stop.
pub async fn serve(server: HandingerServer) -> Result<(), String> {
    let running = server
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| format!("the MCP client did not complete initialization: {e}"))?;
    let cancel = running.cancellation_token();
    tokio::select! {
        outcome = running.waiting() => {
            outcome.map_err(|e| format!("the MCP session ended with an error: {e}"))?;
        }
        () = crate::shutdown::signal() => {
            tracing::info!("shutting down");
            cancel.cancel();
        }
    }
    Ok(())
}
