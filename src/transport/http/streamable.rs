//! `/mcp`: the Streamable HTTP transport, served by rmcp's `StreamableHttpService`.
//!
//! rmcp handles both protocol eras here: the 2025-11-25 `initialize` handshake with
//! sessions (`Mcp-Session-Id`), and 2026-07-28 self-contained requests (`server/discover`
//! and requests carrying their protocol version in `_meta`), which it always serves without
//! a session. `--stateless` turns sessions off for the older era too and answers with plain
//! JSON.
//!
//! In front of rmcp this module reads the body under the size cap, lets a `tools/call` in
//! only with a permit from the call gate (held until its answer has been streamed), opens a
//! session only with a slot under the session cap ([`super::sessions`]), hands plain tool
//! calls in `--stateless` mode to a shared service ([`super::stateless`]), and words the 404
//! for an expired session so a person reading it knows what happened.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use http::{Method, StatusCode, header};
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio_util::sync::CancellationToken;

use super::limits::{self, CallGate};
use super::sessions::{SessionCap, Slot};
use super::stateless::SharedCalls;
use crate::tools::HandingerServer;

/// How often an idle event stream carries a keep-alive comment, so proxies keep it open.
const SSE_KEEP_ALIVE: Duration = Duration::from_secs(15);

pub struct StreamableMcp {
    service: StreamableHttpService<HandingerServer, LocalSessionManager>,
    sessions: Arc<LocalSessionManager>,
    gate: Arc<CallGate>,
    max_body_bytes: usize,
    stateless: bool,
    cap: Arc<SessionCap>,
    /// `--stateless`: plain tool calls go to a shared service ([`super::stateless`]).
    shared: Option<SharedCalls>,
}

pub struct Options {
    pub stateless: bool,
    pub idle_timeout: Duration,
    pub max_body_bytes: usize,
    pub session_cap: Arc<SessionCap>,
}

impl StreamableMcp {
    pub fn new(
        factory: impl Fn() -> HandingerServer + Send + Sync + 'static,
        gate: Arc<CallGate>,
        options: Options,
        shutdown: CancellationToken,
    ) -> Self {
        let mut sessions = LocalSessionManager::default();
        // rmcp closes a session after this long without a message either way.
        sessions.session_config.keep_alive = Some(options.idle_timeout);
        let sessions = Arc::new(sessions);
        let config = StreamableHttpServerConfig::default()
            .with_legacy_session_mode(!options.stateless)
            .with_json_response(options.stateless)
            .with_sse_keep_alive(Some(SSE_KEEP_ALIVE))
            .with_max_request_body_bytes(options.max_body_bytes)
            // Host and Origin are checked in front of every endpoint (see `access`), with
            // the operator's lists; a second, differently configured check here would only
            // disagree with it.
            .disable_allowed_hosts()
            .disable_allowed_origins()
            .with_cancellation_token(shutdown.clone());
        let factory = Arc::new(factory);
        let shared = options.stateless.then(|| {
            let factory = factory.clone();
            SharedCalls::new(move || factory(), shutdown.clone())
        });
        let service = StreamableHttpService::new(move || Ok(factory()), sessions.clone(), config);
        Self {
            service,
            sessions,
            gate,
            max_body_bytes: options.max_body_bytes,
            stateless: options.stateless,
            cap: options.session_cap,
            shared,
        }
    }

    /// A slot under the session cap for an `initialize` from `client`: when the cap is
    /// reached, first gives back the slots of sessions rmcp has closed since.
    async fn session_slot(&self, client: Option<SocketAddr>) -> Result<Slot, Response> {
        let client = client.map(|peer| peer.ip());
        if let Ok(slot) = self.cap.try_open(client) {
            return Ok(slot);
        }
        let live: HashSet<String> = self
            .sessions
            .sessions
            .read()
            .await
            .keys()
            .map(ToString::to_string)
            .collect();
        self.cap.forget_closed(&live);
        self.cap
            .try_open(client)
            .map_err(IntoResponse::into_response)
    }

    pub async fn open_sessions(&self) -> usize {
        self.sessions.sessions.read().await.len()
    }
}

pub async fn handle(State(mcp): State<Arc<StreamableMcp>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let mut permit = None;
    let mut session_slot = None;
    let body = if parts.method == Method::POST {
        let bytes = match limits::read_capped(body, &parts.headers, mcp.max_body_bytes).await {
            Ok(bytes) => bytes,
            Err(response) => return response,
        };
        if limits::is_tool_call(&bytes) {
            match mcp.gate.try_enter() {
                Ok(entered) => permit = Some(entered),
                Err(refusal) => return refusal.into_response(),
            }
            if let Some(shared) = &mcp.shared
                && let Ok(message) = serde_json::from_slice(&bytes)
                && let Some(version) = SharedCalls::eligible(&parts.headers, &message)
            {
                // Everything the call needs is in `message` now; the raw body would only sit
                // in memory while the call is held.
                drop(bytes);
                let response = shared.call(version, parts, message).await;
                let (head, body) = response.into_parts();
                let body = match permit {
                    Some(permit) => limits::hold_until_sent(body, permit),
                    None => body,
                };
                return Response::from_parts(head, body);
            }
        } else if !mcp.stateless
            && !parts.headers.contains_key("mcp-session-id")
            && limits::is_initialize(&bytes)
        {
            let client = parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(peer)| *peer);
            match mcp.session_slot(client).await {
                Ok(slot) => session_slot = Some(slot),
                Err(refusal) => return refusal,
            }
        }
        Body::from(bytes)
    } else {
        body
    };
    let had_session = parts.headers.contains_key("mcp-session-id");
    // Boxed: rmcp's request future is large, and without the box this handler's own future
    // (which axum keeps on the heap for as long as a call is held) would be as large on the
    // shared-service path too.
    let response = Box::pin(mcp.service.handle(Request::from_parts(parts, body))).await;
    let (head, body) = response.into_parts();
    // The slot stays with the session rmcp opened; without one (a refused initialize) it
    // goes back here.
    if let Some(slot) = session_slot
        && head.status.is_success()
        && let Some(id) = head
            .headers
            .get("mcp-session-id")
            .and_then(|v| v.to_str().ok())
    {
        slot.keep_for(id.to_owned());
    }
    // rmcp's own 404 for a session it does not know is a bare line of text; JSON 404s are
    // protocol answers (an unknown method) and pass through untouched.
    if head.status == StatusCode::NOT_FOUND
        && had_session
        && !head.headers.contains_key(header::CONTENT_TYPE)
    {
        return session_gone();
    }
    let body = Body::new(body);
    let body = match permit {
        Some(permit) => limits::hold_until_sent(body, permit),
        None => body,
    };
    Response::from_parts(head, body)
}

fn session_gone() -> Response {
    (
        StatusCode::NOT_FOUND,
        "Not Found: this MCP session has expired (idle longer than the server's \
         --session-idle-timeout) or never existed here (the server restarted, or another \
         replica holds it): start a new session with an initialize request",
    )
        .into_response()
}
