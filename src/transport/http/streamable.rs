//! `/mcp`: the Streamable HTTP transport, served by rmcp's `StreamableHttpService`.
//!
//! rmcp handles both protocol eras here: the 2025-11-25 `initialize` handshake with
//! sessions (`Mcp-Session-Id`), and 2026-07-28 self-contained requests (`server/discover`
//! and requests carrying their protocol version in `_meta`), which it always serves without
//! a session. `--stateless` turns sessions off for the older era too and answers with plain
//! JSON, unless the handler sends something before the answer (progress notifications for a
//! call with a `progressToken`): rmcp then streams the whole exchange as SSE on that POST.
//!
//! In front of rmcp this module reads the body under the size cap, refuses one whose shape
//! would cost too much to parse ([`crate::transport::message_shape`]), lets a `tools/call` in
//! only with a permit from the call gate (held until its answer has been streamed), opens a
//! session only with a slot under the session cap ([`super::session_limits`]), closing an
//! idle session to make room when the table is full, and binds it to the credentials that
//! opened it ([`super::sessions`]), marks each session busy while a request or its event
//! stream is in progress (so it is never the one closed) and closes it when it sends no
//! request within `--session-first-request-timeout`, refuses a second request with
//! an id still in flight on the session, hands plain tool calls in `--stateless` mode to a
//! shared service ([`super::stateless`]), words the 404 for an expired session so a person
//! reading it knows what happened, and answers a session's `DELETE` with 200 rather than
//! rmcp's 202, and with 404 when the session is unknown or already ended (rmcp ends
//! nothing and says 202 then).

use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use http::{Method, StatusCode, header};
use rmcp::model::RequestId;
use rmcp::transport::streamable_http_server::session::SessionManager;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

use super::limits::{self, CallGate};
use super::rejected;
use super::session_limits::Refusal;
use super::session_limits::{SessionCap, Slot};
use super::sessions::{InFlightGuard, InFlightIds, Owner, Owners, request_id};
use super::stateless::{CallLoops, SSE_KEEP_ALIVE, Sent};
use crate::tools::HandingerServer;
use crate::transport::message_shape::MessageShape;

const SESSION_HEADER: &str = "mcp-session-id";

pub(super) struct StreamableMcp {
    service: StreamableHttpService<HandingerServer, LocalSessionManager>,
    sessions: Arc<LocalSessionManager>,
    /// Who opened each session; requests with other credentials find no session.
    owners: Owners,
    /// Request ids in flight per session.
    in_flight: InFlightIds,
    gate: Arc<CallGate>,
    max_body_bytes: usize,
    shape: MessageShape,
    stateless: bool,
    cap: Arc<SessionCap>,
    /// `--session-first-request-timeout`.
    first_request_timeout: Duration,
    /// Ends the timers of sessions waiting for their first request.
    shutdown: CancellationToken,
    /// `--stateless`: plain tool calls go to a shared service ([`super::stateless`]).
    call_loops: Option<CallLoops>,
    /// Asked whether a tool call would find a turn slot ([`crate::tools::HandingerServer::turn_room`]).
    prototype: HandingerServer,
}

pub(super) struct Options {
    pub stateless: bool,
    pub idle_timeout: Duration,
    pub first_request_timeout: Duration,
    pub max_body_bytes: usize,
    pub shape: MessageShape,
    pub session_cap: Arc<SessionCap>,
}

impl StreamableMcp {
    pub(super) fn new(
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
        let prototype = factory();
        let call_loops = options.stateless.then(|| {
            let factory = factory.clone();
            CallLoops::new(move || factory(), shutdown.clone())
        });
        let service = StreamableHttpService::new(move || Ok(factory()), sessions.clone(), config);
        Self {
            service,
            sessions,
            owners: Owners::default(),
            in_flight: InFlightIds::default(),
            gate,
            max_body_bytes: options.max_body_bytes,
            shape: options.shape,
            stateless: options.stateless,
            cap: options.session_cap,
            first_request_timeout: options.first_request_timeout,
            shutdown,
            call_loops,
            prototype,
        }
    }

    /// A slot under the session cap for a new session of `client` (an `initialize` here, a
    /// `GET /sse` of the legacy transport): when the cap is reached, first gives back the
    /// slots of sessions rmcp has closed since, then closes an idle one to make room.
    pub(super) async fn session_slot(&self, client: Option<SocketAddr>) -> Result<Slot, Response> {
        let client = client.map(|peer| limits::client_address(peer.ip()));
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
        match self.cap.try_open(client) {
            Err(Refusal::ServerFull) => {}
            opened => return opened.map_err(IntoResponse::into_response),
        }
        // Full, and no session closed by itself: close an idle one to make room.
        let Some(victim) = self.cap.evict() else {
            return Err(Refusal::ServerFull.into_response());
        };
        tracing::info!("closed an idle session to make room for a new one (--max-sessions)");
        self.close(&victim).await;
        self.cap
            .try_open(client)
            .map_err(IntoResponse::into_response)
    }

    /// Closes rmcp's session `id` (one the cap has already let go of).
    async fn close(&self, id: &str) {
        if let Err(error) = self.sessions.close_session(&Arc::from(id)).await {
            tracing::warn!(%error, "could not close a session");
        }
    }

    /// Closes session `id` if it sends no request within `--session-first-request-timeout`
    /// of its `initialize`: a session that is opened and never used should not hold its
    /// place (and its memory) for the whole idle timeout.
    fn close_unless_used(self: &Arc<Self>, id: String) {
        let mcp = Arc::clone(self);
        tokio::spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(mcp.first_request_timeout) => {}
                () = mcp.shutdown.cancelled() => return,
            }
            if mcp.cap.close_if_unused(&id) {
                tracing::info!(
                    "closed a session that sent no request after its initialize \
                     (--session-first-request-timeout)"
                );
                mcp.close(&id).await;
            }
        });
    }

    pub(super) async fn open_sessions(&self) -> usize {
        self.sessions.sessions.read().await.len()
    }
}

/// What [`respond`] decided: an answer, or a plain tool call handed to the shared service
/// in `--stateless` mode, to wait for with its permit (and its id's place, if it named a
/// session).
enum Reply {
    Now(Response),
    FromLoop {
        sent: Sent,
        permit: Option<OwnedSemaphorePermit>,
        in_flight: Option<InFlightGuard>,
    },
}

/// A step of the handler boxed apart from the future axum keeps on the heap for as long as
/// a call is held. Every box made for a future's size on this path is made here: reading,
/// checking and parsing the request (the body, its parsed message, the head) and rmcp's
/// request future are large, and a held call needs neither while it waits. Measured with
/// heaptrack over 1,000 held calls (docs/benchmarks.md, "Memory per held call"): axum's
/// handler future went from 2.8 KiB to 1.1 KiB.
fn boxed_apart<F: Future>(step: F) -> Pin<Box<F>> {
    Box::pin(step)
}

pub(super) async fn handle(State(mcp): State<Arc<StreamableMcp>>, request: Request) -> Response {
    // The held call keeps only the way back.
    match boxed_apart(respond(&mcp, request)).await {
        Reply::Now(response) => response,
        Reply::FromLoop {
            sent,
            permit,
            in_flight,
        } => {
            let (head, body) = sent.answer().await.into_parts();
            let body = match (permit, in_flight) {
                (None, None) => body,
                held => limits::hold_until_sent(body, held),
            };
            Response::from_parts(head, body)
        }
    }
}

async fn respond(mcp: &Arc<StreamableMcp>, request: Request) -> Reply {
    let (parts, body) = request.into_parts();
    // A session is answered only for the credentials that opened it, before anything else
    // happens for the request: someone else's request reserves no id in it and takes no
    // place in the gates.
    let owner = Owner::of(&parts.headers);
    let session = parts.headers.get(SESSION_HEADER).cloned();
    if let Some(id) = &session
        && !mcp.owners.allows(id.to_str().unwrap_or_default(), owner)
    {
        return Reply::Now(session_gone());
    }
    let session_id = session.as_ref().and_then(|id| id.to_str().ok());
    // rmcp answers a DELETE of a session it does not hold with 202 as if it had ended one;
    // the spec (and the TypeScript SDK's servers) say 404. (Without sessions, rmcp's 405
    // says there is nothing to delete here at all.)
    if parts.method == Method::DELETE
        && !mcp.stateless
        && let Some(id) = session_id
        && !mcp
            .sessions
            .has_session(&Arc::from(id))
            .await
            .unwrap_or(false)
    {
        return Reply::Now(session_gone());
    }
    let mut permit = None;
    let mut in_flight = None;
    let mut session_slot = None;
    // A GET opens the session's event stream: the session is in use while it is open.
    let mut activity = match (session_id, &parts.method) {
        (Some(id), &Method::GET) => mcp.cap.activity(id, true),
        _ => None,
    };
    let body = if parts.method == Method::POST {
        let bytes = match limits::read_capped(body, &parts.headers, mcp.max_body_bytes).await {
            Ok(bytes) => bytes,
            Err(response) => return Reply::Now(response),
        };
        // Before anything below (or rmcp) parses the body.
        if let Err(response) = limits::check_shape(&mcp.shape, &bytes) {
            return Reply::Now(response);
        }
        let id = request_id(&bytes);
        if let Some(session) = session_id {
            activity = mcp.cap.activity(session, id.is_some());
            if let Some(id) = &id {
                match mcp.in_flight.enter(session, id) {
                    Some(guard) => in_flight = Some(guard),
                    None => return Reply::Now(duplicate_id(id)),
                }
            }
        }
        if limits::is_tool_call(&bytes) {
            match mcp.gate.try_enter() {
                Ok(entered) => permit = Some(entered),
                Err(refusal) => return Reply::Now(refusal.into_response()),
            }
            if let Err(refusal) =
                rejected::no_turn_room(mcp.prototype.turn_room_for_body(&bytes, &parts.headers))
            {
                return Reply::Now(refusal);
            }
            if let Some(call_loops) = &mcp.call_loops
                && let Ok(message) = serde_json::from_slice(&bytes)
                && let Some(version) = CallLoops::eligible(&parts.headers, &message)
            {
                return match call_loops.send(version, parts, message) {
                    Ok(sent) => Reply::FromLoop {
                        sent,
                        permit,
                        in_flight,
                    },
                    Err(refusal) => Reply::Now(refusal),
                };
            }
        } else if !mcp.stateless
            && !parts.headers.contains_key(SESSION_HEADER)
            && limits::is_initialize(&bytes)
        {
            let client = parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|ConnectInfo(peer)| *peer);
            match mcp.session_slot(client).await {
                Ok(slot) => session_slot = Some(slot),
                Err(refusal) => return Reply::Now(refusal),
            }
        }
        Body::from(bytes)
    } else {
        body
    };
    let had_session = session.is_some();
    let is_delete = parts.method == Method::DELETE;
    // Else the shared-service path's handler future would be as large as rmcp's.
    let response = boxed_apart(mcp.service.handle(Request::from_parts(parts, body))).await;
    let (mut head, body) = response.into_parts();
    if !had_session && let Some(id) = head.headers.get(SESSION_HEADER) {
        let id = id.to_str().unwrap_or_default().to_owned();
        {
            let live = mcp.sessions.sessions.read().await;
            mcp.owners
                .bind(&id, owner, |known| live.contains_key(known));
        }
        // The slot stays with the session rmcp opened; without one (a refused initialize)
        // it goes back here.
        if let Some(slot) = session_slot
            && head.status.is_success()
        {
            slot.keep_for(id.clone());
            mcp.close_unless_used(id);
        }
    }
    // rmcp answers a session's DELETE with 202 Accepted, but the session is gone by then, and
    // the Python SDK (and fastmcp on it) log "Session termination failed: 202" on every close
    // for anything but 200 or 204. 200 is what every SDK takes as done.
    if is_delete && head.status == StatusCode::ACCEPTED {
        head.status = StatusCode::OK;
        if let Some(id) = session_id {
            mcp.cap.forget(id);
        }
    }
    // rmcp's own 404 for a session it does not know is a bare line of text; JSON 404s are
    // protocol answers (an unknown method) and pass through untouched.
    if head.status == StatusCode::NOT_FOUND
        && had_session
        && !head.headers.contains_key(header::CONTENT_TYPE)
    {
        return Reply::Now(session_gone());
    }
    let body = Body::new(body);
    let body = match (permit, in_flight, activity) {
        (None, None, None) => body,
        held => limits::hold_until_sent(body, held),
    };
    Reply::Now(Response::from_parts(head, body))
}

/// The JSON-RPC error for a request whose id is still in flight on its session: the same
/// answer stdio gives ([`crate::transport::framing::duplicate_id`]).
fn duplicate_id(id: &RequestId) -> Response {
    (
        StatusCode::OK,
        axum::Json(crate::transport::framing::duplicate_id(id)),
    )
        .into_response()
}

fn session_gone() -> Response {
    (
        StatusCode::NOT_FOUND,
        "Not Found: this MCP session has ended (idle longer than the server's \
         --session-idle-timeout, no request within --session-first-request-timeout of its \
         initialize, closed while idle to make room when the server held --max-sessions, or \
         deleted) or never existed here (the server restarted, or another replica holds it): \
         start a new session with an initialize request",
    )
        .into_response()
}
