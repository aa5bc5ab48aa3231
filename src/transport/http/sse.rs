//! `/sse` and `/message`: the legacy HTTP+SSE transport (protocol 2024-11-05), for clients
//! that speak nothing newer.
//!
//! `GET /sse` opens an event stream whose first event, `endpoint`, names the URL to post to
//! (`/message?sessionId=…`); each JSON-RPC message the client posts there is answered with
//! `202 Accepted`, and the server's replies and notifications come back as `message` events
//! on the stream. rmcp no longer ships this transport, so it is built here on rmcp's own
//! primitives: each session is a pair of channels served as an ordinary rmcp transport
//! (a `Sink` of server messages and a `Stream` of client messages), so the protocol itself
//! is rmcp's, exactly as on stdio and Streamable HTTP.
//!
//! A session lives as long as its event stream: when the client disconnects, the server
//! shuts down, or no message has passed either way for `--session-idle-timeout` (as with
//! Streamable HTTP sessions), or no request (other than `initialize`) has come within
//! `--session-first-request-timeout` of its opening, the session and its MCP service end,
//! and posts to it get 404.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Query, Request, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::channel::mpsc;
use futures::{SinkExt, StreamExt};
use http::{HeaderMap, StatusCode};
use rmcp::ServiceExt;
use rmcp::model::{
    ClientJsonRpcMessage, ClientRequest, GetExtensions, RequestId, ServerJsonRpcMessage,
};
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

use super::limits::{self, CallGate};
use super::rejected;
use super::session_limits::Slot;
use super::sessions::Owner;
use super::streamable::StreamableMcp;
use crate::tools::HandingerServer;
use crate::transport::framing::InFlight;
use crate::transport::message_shape::MessageShape;

/// Messages buffered per direction before the sender waits.
const CHANNEL_CAPACITY: usize = 32;
/// How often an idle event stream carries a keep-alive comment, so proxies keep it open.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

type Factory = dyn Fn() -> HandingerServer + Send + Sync;

pub(super) struct LegacySse {
    factory: Box<Factory>,
    /// Asked whether a tool call would find a turn slot ([`crate::tools::HandingerServer::turn_room`]).
    prototype: HandingerServer,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
    gate: Arc<CallGate>,
    max_body_bytes: usize,
    shape: MessageShape,
    idle_timeout: Duration,
    first_request_timeout: Duration,
    shutdown: CancellationToken,
    /// Where a new session gets its place under the session cap (closing an idle
    /// Streamable HTTP session to make room when the table is full).
    room: Arc<StreamableMcp>,
}

struct Session {
    /// Who opened it: posts with other credentials find no session.
    owner: Owner,
    to_server: mpsc::Sender<ClientJsonRpcMessage>,
    /// Permits of this session's tool calls, released when their answers go out.
    calls: Mutex<HashMap<RequestId, OwnedSemaphorePermit>>,
    /// Ids of requests not answered yet: a second request with one of them is refused.
    in_flight: InFlight,
    /// When a message last passed, either way.
    last_active: Mutex<Instant>,
    /// Whether a request other than `initialize` has come.
    used: AtomicBool,
}

impl Session {
    fn touch(&self) {
        *lock(&self.last_active) = Instant::now();
    }

    /// Resolves once the session has been idle for `timeout`.
    async fn idle_for(&self, timeout: Duration) {
        loop {
            let due = *lock(&self.last_active) + timeout;
            if Instant::now() >= due {
                return;
            }
            tokio::time::sleep_until(due.into()).await;
        }
    }

    /// Resolves after `timeout` if no request other than `initialize` came by then.
    async fn unused_after(&self, timeout: Duration) {
        tokio::time::sleep(timeout).await;
        if self.used.load(Ordering::Acquire) {
            std::future::pending::<()>().await;
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How long a legacy SSE session may sit idle, and wait for its first request.
pub(super) struct SessionTimeouts {
    pub idle: Duration,
    pub first_request: Duration,
}

impl LegacySse {
    pub(super) fn new(
        factory: impl Fn() -> HandingerServer + Send + Sync + 'static,
        gate: Arc<CallGate>,
        (max_body_bytes, shape): (usize, MessageShape),
        SessionTimeouts {
            idle: idle_timeout,
            first_request: first_request_timeout,
        }: SessionTimeouts,
        shutdown: CancellationToken,
        room: Arc<StreamableMcp>,
    ) -> Self {
        Self {
            prototype: factory(),
            factory: Box::new(factory),
            sessions: Mutex::new(HashMap::new()),
            gate,
            max_body_bytes,
            shape,
            idle_timeout,
            first_request_timeout,
            shutdown,
            room,
        }
    }

    pub(super) fn open_sessions(&self) -> usize {
        lock(&self.sessions).len()
    }
}

/// Removes the session when its event stream goes away, for whatever reason.
struct SessionGuard {
    sse: Arc<LegacySse>,
    id: String,
    stop: CancellationToken,
    /// The session's place under the session cap, given back with it.
    _slot: Slot,
}

impl Drop for SessionGuard {
    fn drop(&mut self) {
        lock(&self.sse.sessions).remove(&self.id);
        self.stop.cancel();
        tracing::debug!(session = %self.id, "legacy SSE session closed");
    }
}

/// `GET /sse`: opens a session and its event stream.
pub(super) async fn open(
    State(sse): State<Arc<LegacySse>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Response {
    if sse.shutdown.is_cancelled() {
        return limits::Refusal::ShuttingDown.into_response();
    }
    let slot = match sse.room.session_slot(Some(peer)).await {
        Ok(slot) => slot,
        Err(refusal) => return refusal,
    };
    // 80 random bits from a CSPRNG (ulid draws them from `rand::rng()`): the session id is
    // the only handle on a session, so it must not be guessable.
    let id = ulid::Ulid::generate().to_string();
    let (to_server, from_client) = mpsc::channel::<ClientJsonRpcMessage>(CHANNEL_CAPACITY);
    let (to_client, from_server) = mpsc::channel::<ServerJsonRpcMessage>(CHANNEL_CAPACITY);
    let session = Arc::new(Session {
        owner: Owner::of(&headers),
        to_server,
        calls: Mutex::new(HashMap::new()),
        in_flight: InFlight::default(),
        last_active: Mutex::new(Instant::now()),
        used: AtomicBool::new(false),
    });
    lock(&sse.sessions).insert(id.clone(), session.clone());
    let stop = sse.shutdown.child_token();

    let server = (sse.factory)();
    let service_stop = stop.clone();
    let watched = session.clone();
    let idle_timeout = sse.idle_timeout;
    let first_request_timeout = sse.first_request_timeout;
    tokio::spawn(async move {
        let serve = async {
            match server
                .serve_with_ct((to_client, from_client), service_stop.clone())
                .await
            {
                Ok(running) => {
                    let _ = running.waiting().await;
                }
                Err(error) => {
                    // Session ids stay out of info logs: they identify a live session.
                    tracing::info!(%error, "legacy SSE client did not complete initialization");
                }
            }
        };
        tokio::select! {
            () = serve => {}
            () = watched.idle_for(idle_timeout) => {
                tracing::info!("closing an idle legacy SSE session");
            }
            () = watched.unused_after(first_request_timeout) => {
                tracing::info!(
                    "closing a legacy SSE session that sent no request after its initialize \
                     (--session-first-request-timeout)"
                );
            }
        }
        // The service is gone: end the event stream too, which closes the session.
        service_stop.cancel();
    });

    tracing::debug!(session = %id, "legacy SSE session opened");
    let endpoint = Event::default()
        .event("endpoint")
        .data(format!("/message?sessionId={id}"));
    let guard = SessionGuard {
        sse: sse.clone(),
        id,
        stop: stop.clone(),
        _slot: slot,
    };
    let messages = from_server.filter_map(move |message| {
        let _alive = &guard;
        session.touch();
        release_answered_call(&session, &message);
        let event = match serde_json::to_string(&message) {
            Ok(json) => Some(Ok::<_, Infallible>(
                Event::default().event("message").data(json),
            )),
            Err(error) => {
                tracing::error!(%error, "could not encode a message for a legacy SSE client");
                None
            }
        };
        futures::future::ready(event)
    });
    let stream = futures::stream::once(futures::future::ready(Ok(endpoint)))
        .chain(messages)
        .take_until(stop.cancelled_owned());
    Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response()
}

/// A tool call's permit goes back once its answer (or error) is on its way to the client.
fn release_answered_call(session: &Session, message: &ServerJsonRpcMessage) {
    let id = match message {
        ServerJsonRpcMessage::Response(response) => Some(&response.id),
        ServerJsonRpcMessage::Error(error) => error.id.as_ref(),
        _ => None,
    };
    if let Some(id) = id {
        lock(&session.calls).remove(id);
    }
    session.in_flight.answered(message);
}

#[derive(serde::Deserialize)]
pub(super) struct SessionQuery {
    #[serde(rename = "sessionId")]
    session_id: Option<String>,
}

/// `POST /message?sessionId=…`: hands one client message to its session.
pub(super) async fn message(
    State(sse): State<Arc<LegacySse>>,
    Query(query): Query<SessionQuery>,
    request: Request,
) -> Response {
    let Some(id) = query.session_id else {
        return (
            StatusCode::BAD_REQUEST,
            "Bad Request: the sessionId query parameter is missing: post to the endpoint URL \
             the /sse event stream sent",
        )
            .into_response();
    };
    let owner = Owner::of(request.headers());
    let Some(session) = lock(&sse.sessions)
        .get(&id)
        .filter(|session| session.owner == owner)
        .cloned()
    else {
        return session_unknown();
    };
    session.touch();
    let (parts, body) = request.into_parts();
    let bytes = match limits::read_capped(body, &parts.headers, sse.max_body_bytes).await {
        Ok(bytes) => bytes,
        Err(response) => return response,
    };
    if let Err(response) = limits::check_shape(&sse.shape, &bytes) {
        return response;
    }
    let mut message: ClientJsonRpcMessage = match serde_json::from_slice(&bytes) {
        Ok(message) => message,
        Err(error) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("Bad Request: the body is not a JSON-RPC message of MCP ({error})"),
            )
                .into_response();
        }
    };
    session.in_flight.cancelled(&message);
    if let ClientJsonRpcMessage::Request(request) = &message
        && !matches!(request.request, ClientRequest::InitializeRequest(_))
    {
        session.used.store(true, Ordering::Release);
    }
    if let ClientJsonRpcMessage::Request(request) = &message
        && !session.in_flight.enter(&request.id)
    {
        return (
            StatusCode::CONFLICT,
            format!(
                "Conflict: a request with id {} is still in flight on this session; this one \
                 was not run: give each request its own id",
                request.id
            ),
        )
            .into_response();
    }
    if let ClientJsonRpcMessage::Request(request) = &message
        && let ClientRequest::CallToolRequest(call) = &request.request
    {
        let task_id = call
            .params
            .arguments
            .as_ref()
            .and_then(|arguments| arguments.get("taskId"))
            .and_then(serde_json::Value::as_str);
        // The call gate first, then the turn bounds, in the order /mcp asks them, so a
        // call refused under load gets the same answer on either transport.
        let permit = match sse.gate.try_enter() {
            Ok(permit) => permit,
            Err(refusal) => {
                session.in_flight.leave(&request.id);
                return refusal.into_response();
            }
        };
        if let Err(refusal) = rejected::no_turn_room(sse.prototype.turn_room(
            &call.params.name,
            task_id,
            &parts.headers,
        )) {
            session.in_flight.leave(&request.id);
            return refusal;
        }
        lock(&session.calls).insert(request.id.clone(), permit);
    }
    // As on /mcp: the call's context carries the HTTP request, for per-user keys.
    match &mut message {
        ClientJsonRpcMessage::Request(request) => {
            request.request.extensions_mut().insert(parts);
        }
        ClientJsonRpcMessage::Notification(notification) => {
            notification.notification.extensions_mut().insert(parts);
        }
        _ => {}
    }
    if session.to_server.clone().send(message).await.is_err() {
        return session_unknown();
    }
    StatusCode::ACCEPTED.into_response()
}

fn session_unknown() -> Response {
    (
        StatusCode::NOT_FOUND,
        "Not Found: no such SSE session (its event stream closed, or the server restarted): \
         open a new one with GET /sse",
    )
        .into_response()
}

/// Both legacy endpoints in `--stateless` mode, where there are no sessions to hold.
pub(super) async fn unavailable() -> Response {
    (
        StatusCode::NOT_FOUND,
        "Not Found: the legacy SSE transport needs sessions, which this server runs without \
         (--stateless): use Streamable HTTP at /mcp",
    )
        .into_response()
}
