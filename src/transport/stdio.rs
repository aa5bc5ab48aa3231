//! MCP over stdin/stdout for a local client.
//!
//! Shutdown, whether the client closes stdin or the operator sends SIGTERM/SIGINT, first
//! fires the shutdown token: calls still waiting for a worker then answer at once with
//! their resumable taskId, and rmcp flushes those answers before the process exits.

use std::pin::Pin;
use std::task::{Context, Poll};

use rmcp::ServiceExt;
use tokio::io::{AsyncRead, ReadBuf};
use tokio_util::sync::CancellationToken;

use crate::tools::HandingerServer;

/// Serves one client until it closes stdin or the process is told to stop.
pub async fn serve(server: HandingerServer, shutdown: CancellationToken) -> Result<(), String> {
    let stdin = EofSignal {
        inner: tokio::io::stdin(),
        eof: shutdown.clone(),
    };
    let running = server
        .serve((stdin, tokio::io::stdout()))
        .await
        .map_err(|e| format!("the MCP client did not complete initialization: {e}"))?;
    let cancel = running.cancellation_token();
    let waiting = running.waiting();
    tokio::pin!(waiting);
    tokio::select! {
        outcome = &mut waiting => {
            outcome.map_err(|e| format!("the MCP session ended with an error: {e}"))?;
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
        .map_err(|e| format!("the MCP session ended with an error: {e}"))?;
    Ok(())
}

/// Stdin that fires a token at end of input, so waiting calls answer before the session
/// (which only notices EOF on its next read) winds down.
struct EofSignal<R> {
    inner: R,
    eof: CancellationToken,
}

impl<R: AsyncRead + Unpin> AsyncRead for EofSignal<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let poll = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = &poll
            && buf.filled().len() == before
            && buf.remaining() > 0
        {
            self.eof.cancel();
        }
        poll
    }
}
