//! Plain `tools/call` requests in `--stateless` mode, served by one long-lived rmcp service
//! per protocol version instead of a fresh one per request.
//!
//! rmcp serves each stateless request with a service of its own: a one-shot transport, a
//! peer, a service loop and its tasks, with three bounded channels whose first blocks (32
//! slots of a JSON-RPC message each) are allocated at once: about 43 KB for every call held,
//! more than everything else a held call costs (docs/benchmarks.md). A held `create_task`
//! waits minutes at most but thousands may wait together, so here a tool call that needs
//! none of that per-request machinery goes to a shared service loop instead, as the
//! requests of a session do, and its answer is routed back by id.
//!
//! Only requests whose handling cannot depend on that machinery take this path: a
//! `tools/call` of a protocol revision before 2026-07-28 (named by `MCP-Protocol-Version`,
//! or none, which rmcp reads as 2025-03-26), without per-request protocol metadata, without
//! headers rmcp checks against the body (SEP-2243's `Mcp-Method`, `Mcp-Name`,
//! `Mcp-Param-*`), and with the plain `Accept` and `Content-Type` every client sends.
//! Everything else goes to rmcp as before, and so do all refusals and their wording.
//!
//! The answer is framed as rmcp frames it in this mode: one JSON message when the answer is
//! the first thing the call has to say, an event stream when a progress notification comes
//! first (a call with a progress token), its events in the order the handler sent them and
//! the answer last. Either way a large answer is encoded in chunks as the client takes them
//! ([`json_stream`]), never held whole as JSON.
//!
//! What the shared loop cannot give a request: the handler sees a peer whose client
//! information is the default one for that protocol version, exactly what rmcp builds for
//! each stateless request; a request for the client (roots, sampling) has no client to
//! reach in this mode either way.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures::StreamExt;
use futures::channel::{mpsc, oneshot};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use rmcp::model::{
    ClientCapabilities, ClientJsonRpcMessage, ClientRequest, GetExtensions, GetMeta,
    Implementation, InitializeRequestParams, NumberOrString, ProgressToken, ProtocolVersion,
    RequestId, ServerJsonRpcMessage, ServerNotification,
};
use tokio_util::sync::CancellationToken;

use super::limits::Refusal;
use crate::tools::HandingerServer;
use crate::transport::json_stream;

/// Answers the shared loop may have queued for routing before the router takes them.
const ANSWER_QUEUE: usize = 64;
/// Progress notifications a call's event stream may have waiting for its client; beyond
/// them a tick is dropped rather than holding up the router (and every other call's
/// answer) behind one slow reader. The next tick says as much, and the answer is never
/// dropped.
const PROGRESS_QUEUE: usize = 4;
/// How often an event stream with nothing to say carries a keep-alive comment, so proxies
/// keep it open (rmcp's streams use the same).
pub(super) const SSE_KEEP_ALIVE: Duration = Duration::from_secs(15);
/// The protocol revisions served here, as `MCP-Protocol-Version` names them.
const LEGACY_VERSIONS: [&str; 3] = ["2025-03-26", "2025-06-18", "2025-11-25"];

type Factory = dyn Fn() -> HandingerServer + Send + Sync;
type Waiting = Arc<Mutex<HashMap<i64, Waiter>>>;

/// Where the router hands what the shared loop says about one call.
struct Waiter {
    answer: oneshot::Sender<ServerJsonRpcMessage>,
    /// Set when the call asked for progress.
    progress: Option<mpsc::Sender<ServerJsonRpcMessage>>,
}

pub(super) struct CallLoops {
    factory: Box<Factory>,
    loops: Mutex<HashMap<&'static str, Arc<Loop>>>,
    shutdown: CancellationToken,
}

/// One shared rmcp service and the calls waiting on it.
struct Loop {
    to_service: mpsc::UnboundedSender<ClientJsonRpcMessage>,
    waiting: Waiting,
    next_id: AtomicI64,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl CallLoops {
    pub(super) fn new(
        factory: impl Fn() -> HandingerServer + Send + Sync + 'static,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            factory: Box::new(factory),
            loops: Mutex::new(HashMap::new()),
            shutdown,
        }
    }

    /// The protocol version a request may be served here under, or `None` when it must go
    /// to rmcp.
    pub(super) fn eligible(
        headers: &HeaderMap,
        message: &ClientJsonRpcMessage,
    ) -> Option<&'static str> {
        let ClientJsonRpcMessage::Request(request) = message else {
            return None;
        };
        let ClientRequest::CallToolRequest(call) = &request.request else {
            return None;
        };
        if request.request.get_meta().protocol_version().is_some() {
            return None;
        }
        if call.params.input_responses.is_some() || call.params.request_state.is_some() {
            return None;
        }
        let checked_against_body = headers.keys().any(|name| {
            let name = name.as_str();
            name == "mcp-method" || name == "mcp-name" || name.starts_with("mcp-param-")
        });
        if checked_against_body || !plain_media_types(headers) {
            return None;
        }
        let mut versions = headers.get_all("mcp-protocol-version").iter();
        match (versions.next(), versions.next()) {
            (None, _) => Some(LEGACY_VERSIONS[0]),
            (Some(version), None) => LEGACY_VERSIONS
                .into_iter()
                .find(|known| version.as_bytes() == known.as_bytes()),
            _ => None,
        }
    }

    /// Hands one eligible tool call to the shared loop (`version` is what
    /// [`CallLoops::eligible`] returned): what waits for its answer, or the refusal.
    ///
    /// Not an `async fn`: what a held call keeps while it waits is only the way back
    /// ([`Sent`]), not room for the request's head and message.
    #[allow(clippy::result_large_err)] // the error is the response itself, returned at once
    pub(super) fn send(
        &self,
        version: &'static str,
        parts: http::request::Parts,
        message: ClientJsonRpcMessage,
    ) -> Result<Sent, Response> {
        let ClientJsonRpcMessage::Request(mut request) = message else {
            return Err(StatusCode::INTERNAL_SERVER_ERROR.into_response());
        };
        let Some(call_loop) = self.loop_for(version) else {
            return Err(Refusal::ShuttingDown.into_response());
        };
        let id = call_loop.next_id.fetch_add(1, Ordering::Relaxed);
        let asked_as = std::mem::replace(&mut request.id, NumberOrString::Number(id));
        // Progress tokens are the client's, and two clients may pick the same one: in the
        // shared loop the call's token is its own id, put back on every notification.
        let meta = request.request.get_meta_mut();
        let progress_token = meta.get_progress_token();
        let (progress_to, progress) = match progress_token {
            Some(token) => {
                meta.set_progress_token(ProgressToken(NumberOrString::Number(id)));
                let (sender, receiver) = mpsc::channel(PROGRESS_QUEUE);
                (Some(sender), Some(Progress { receiver, token }))
            }
            None => (None, None),
        };
        // As rmcp does: the call's context carries the HTTP request (per-user keys).
        request.request.extensions_mut().insert(parts);
        let (answer_to, answer) = oneshot::channel();
        lock(&call_loop.waiting).insert(
            id,
            Waiter {
                answer: answer_to,
                progress: progress_to,
            },
        );
        let pending = Pending {
            call_loop: call_loop.clone(),
            id,
            answered: false,
        };
        if call_loop
            .to_service
            .unbounded_send(ClientJsonRpcMessage::Request(request))
            .is_err()
        {
            return Err(Refusal::ShuttingDown.into_response());
        }
        Ok(Sent {
            pending,
            answer,
            asked_as,
            progress,
        })
    }

    fn loop_for(&self, version: &'static str) -> Option<Arc<Loop>> {
        if self.shutdown.is_cancelled() {
            return None;
        }
        let mut loops = lock(&self.loops);
        if let Some(call_loop) = loops.get(version) {
            return Some(call_loop.clone());
        }
        let call_loop = Arc::new(self.start(version)?);
        loops.insert(version, call_loop.clone());
        Some(call_loop)
    }

    fn start(&self, version: &'static str) -> Option<Loop> {
        let protocol_version: ProtocolVersion =
            serde_json::from_value(serde_json::Value::String(version.to_owned())).ok()?;
        // What rmcp gives each stateless request: the version, default capabilities and
        // client information.
        let mut peer_info =
            InitializeRequestParams::new(ClientCapabilities::default(), Implementation::default());
        peer_info.protocol_version = protocol_version;
        let (to_service, from_http) = mpsc::unbounded::<ClientJsonRpcMessage>();
        let (to_router, from_service) = mpsc::channel::<ServerJsonRpcMessage>(ANSWER_QUEUE);
        let service = rmcp::service::serve_directly_with_ct(
            (self.factory)(),
            (to_router, from_http),
            Some(peer_info),
            self.shutdown.child_token(),
        );
        tokio::spawn(async move {
            let _ = service.waiting().await;
        });
        let waiting: Waiting = Arc::default();
        tokio::spawn(route_answers(from_service, waiting.clone()));
        Some(Loop {
            to_service,
            waiting,
            next_id: AtomicI64::new(1),
        })
    }
}

/// A call handed to the shared loop, waiting for its answer.
pub(super) struct Sent {
    pending: Pending,
    answer: oneshot::Receiver<ServerJsonRpcMessage>,
    /// The id the client chose, put back on the answer.
    asked_as: RequestId,
    /// The call's progress notifications, when it asked for them.
    progress: Option<Progress>,
}

/// A call's progress notifications on their way, and the token its client chose.
struct Progress {
    receiver: mpsc::Receiver<ServerJsonRpcMessage>,
    token: ProgressToken,
}

/// What a call has to say first, which decides how its answer is framed.
enum First {
    Answer(Result<ServerJsonRpcMessage, oneshot::Canceled>),
    Tick(ServerJsonRpcMessage),
}

impl Sent {
    pub(super) async fn answer(mut self) -> Response {
        let first = match &mut self.progress {
            None => First::Answer((&mut self.answer).await),
            // Biased: a tick the router handed over before the answer goes out before it.
            Some(progress) => tokio::select! {
                biased;
                Some(tick) = progress.receiver.next() => First::Tick(tick),
                answer = &mut self.answer => First::Answer(answer),
            },
        };
        match first {
            First::Answer(Ok(message)) => {
                self.pending.answered = true;
                json_answer(message, self.asked_as).await
            }
            // The loop ended: the server is shutting down.
            First::Answer(Err(_)) => Refusal::ShuttingDown.into_response(),
            First::Tick(tick) => event_stream(self, tick),
        }
    }
}

/// Hands each message of the shared loop to the call it is for: answers, and progress
/// notifications of calls that asked for them (by the token [`CallLoops::send`] gave).
async fn route_answers(mut answers: mpsc::Receiver<ServerJsonRpcMessage>, waiting: Waiting) {
    while let Some(message) = answers.next().await {
        let id = match &message {
            ServerJsonRpcMessage::Response(response) => Some(&response.id),
            ServerJsonRpcMessage::Error(error) => error.id.as_ref(),
            ServerJsonRpcMessage::Notification(notification) => {
                if let ServerNotification::ProgressNotification(progress) =
                    &notification.notification
                    && let NumberOrString::Number(id) = progress.params.progress_token.0
                {
                    pass_tick(&waiting, id, message);
                } else {
                    tracing::debug!(
                        "dropped a notification of the shared stateless service: no call asked \
                         for it"
                    );
                }
                continue;
            }
            ServerJsonRpcMessage::Request(_) => None,
        };
        let Some(NumberOrString::Number(id)) = id else {
            // A request for the client (roots, sampling) has no client to reach here.
            tracing::debug!(
                "dropped a message of the shared stateless service with no call to answer"
            );
            continue;
        };
        // Removing the waiter drops its progress sender too: its stream sees every tick
        // sent before the answer, then the end of them.
        if let Some(waiter) = lock(&waiting).remove(id) {
            let _ = waiter.answer.send(message);
        }
    }
    // The loop ended: every call still waiting learns it from its dropped sender.
    lock(&waiting).clear();
}

fn pass_tick(waiting: &Waiting, id: i64, tick: ServerJsonRpcMessage) {
    let mut waiting = lock(waiting);
    let Some(progress) = waiting.get_mut(&id).and_then(|w| w.progress.as_mut()) else {
        return;
    };
    if progress.try_send(tick).is_err() {
        tracing::debug!("dropped a progress notification: its client is not reading them");
    }
}

/// The answer of a call that reported progress before it: `text/event-stream`, the ticks as
/// they come (with the client's own token back on them), keep-alive comments between, and
/// the answer as the last event, encoded in chunks when large. Dropping the body (the
/// client went away) before the answer cancels the call, as on the JSON path.
fn event_stream(sent: Sent, first: ServerJsonRpcMessage) -> Response {
    let Sent {
        pending,
        answer,
        asked_as,
        progress,
    } = sent;
    let Some(Progress { receiver, token }) = progress else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    let state = Events {
        pending,
        answer,
        asked_as,
        ticks: receiver,
        token,
        first: Some(first),
        keep_alive: tokio::time::interval_at(
            tokio::time::Instant::now() + SSE_KEEP_ALIVE,
            SSE_KEEP_ALIVE,
        ),
        phase: Phase::Ticks,
    };
    let body = futures::stream::unfold(state, Events::next).map(Ok::<_, std::convert::Infallible>);
    let mut response = Response::new(Body::from_stream(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// An event stream being written.
struct Events {
    pending: Pending,
    answer: oneshot::Receiver<ServerJsonRpcMessage>,
    asked_as: RequestId,
    ticks: mpsc::Receiver<ServerJsonRpcMessage>,
    token: ProgressToken,
    first: Option<ServerJsonRpcMessage>,
    keep_alive: tokio::time::Interval,
    phase: Phase,
}

enum Phase {
    Ticks,
    /// The answer's JSON in chunks, after its event's `data: ` prefix went out.
    Answer(tokio::sync::mpsc::Receiver<Bytes>),
    Done,
}

impl Events {
    async fn next(mut self) -> Option<(Bytes, Self)> {
        match &mut self.phase {
            Phase::Ticks => {}
            Phase::Answer(chunks) => {
                return match chunks.recv().await {
                    Some(chunk) => Some((chunk, self)),
                    None => {
                        self.phase = Phase::Done;
                        Some((Bytes::from_static(b"\n\n"), self))
                    }
                };
            }
            Phase::Done => return None,
        }
        if let Some(tick) = self.first.take() {
            return self.tick(tick);
        }
        tokio::select! {
            biased;
            Some(tick) = self.ticks.next() => self.tick(tick),
            answer = &mut self.answer => {
                // Without an answer the loop ended (shutdown): the stream just ends.
                let mut message = answer.ok()?;
                self.pending.answered = true;
                answered_as(&mut message, self.asked_as.clone());
                self.answer_event(message).await
            }
            _ = self.keep_alive.tick() => Some((Bytes::from_static(b":\n\n"), self)),
        }
    }

    fn tick(mut self, mut tick: ServerJsonRpcMessage) -> Option<(Bytes, Self)> {
        if let ServerJsonRpcMessage::Notification(notification) = &mut tick
            && let ServerNotification::ProgressNotification(progress) =
                &mut notification.notification
        {
            progress.params.progress_token = self.token.clone();
        }
        self.keep_alive.reset();
        match serde_json::to_vec(&tick) {
            Ok(json) => Some((event(&json), self)),
            Err(error) => {
                tracing::debug!(%error, "could not encode a progress notification");
                Some((Bytes::from_static(b":\n\n"), self))
            }
        }
    }

    async fn answer_event(mut self, message: ServerJsonRpcMessage) -> Option<(Bytes, Self)> {
        match json_stream::small(&message) {
            Ok(Some(json)) => {
                self.phase = Phase::Done;
                Some((event(&json), self))
            }
            Ok(None) => match json_stream::large(message).await {
                Ok((_, chunks)) => {
                    self.phase = Phase::Answer(chunks);
                    Some((Bytes::from_static(b"data: "), self))
                }
                Err(error) => {
                    tracing::error!(%error, "could not encode a tool call's answer");
                    None
                }
            },
            Err(error) => {
                tracing::error!(%error, "could not encode a tool call's answer");
                None
            }
        }
    }
}

/// One `message` event holding one JSON text. serde_json writes no raw line break (they
/// are escaped inside strings), so the text is one `data:` line.
fn event(json: &[u8]) -> Bytes {
    let mut framed = Vec::with_capacity(json.len() + 8);
    framed.extend_from_slice(b"data: ");
    framed.extend_from_slice(json);
    framed.extend_from_slice(b"\n\n");
    Bytes::from(framed)
}

/// A call on its way: if its HTTP request goes away first (the client disconnected), the
/// handler is cancelled, as rmcp cancels a stateless request's handler.
struct Pending {
    call_loop: Arc<Loop>,
    id: i64,
    answered: bool,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if self.answered {
            return;
        }
        lock(&self.call_loop.waiting).remove(&self.id);
        let cancelled = serde_json::json!({
            "jsonrpc": "2.0",
            "method": "notifications/cancelled",
            "params": {"requestId": self.id, "reason": "the client disconnected"}
        });
        if let Ok(cancelled) = serde_json::from_value::<ClientJsonRpcMessage>(cancelled) {
            let _ = self.call_loop.to_service.unbounded_send(cancelled);
        }
    }
}

/// Puts the id the client chose back on the answer (the shared loop knew it by its own).
fn answered_as(message: &mut ServerJsonRpcMessage, asked_as: RequestId) {
    match message {
        ServerJsonRpcMessage::Response(response) => response.id = asked_as,
        ServerJsonRpcMessage::Error(error) => error.id = Some(asked_as),
        _ => {}
    }
}

/// The answer as rmcp sends it in this mode: the JSON-RPC message, with the id the client
/// chose, as `application/json`. A large answer is sent in chunks as it is encoded, with
/// its length counted first, so its JSON is never held whole ([`json_stream`]).
async fn json_answer(mut message: ServerJsonRpcMessage, asked_as: RequestId) -> Response {
    answered_as(&mut message, asked_as);
    let (body, length) = match json_stream::small(&message) {
        Ok(Some(body)) => (Body::from(body), None),
        Ok(None) => match json_stream::large(message).await {
            Ok((length, mut chunks)) => {
                let stream = futures::stream::poll_fn(move |cx| chunks.poll_recv(cx))
                    .map(Ok::<_, std::convert::Infallible>);
                (Body::from_stream(stream), Some(length))
            }
            Err(error) => return encoding_failed(&error),
        },
        Err(error) => return encoding_failed(&error),
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    if let Some(length) = length {
        // The same framing as a buffered body: the client sees no difference.
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    response
}

fn encoding_failed(error: &serde_json::Error) -> Response {
    tracing::error!(%error, "could not encode a tool call's answer");
    StatusCode::INTERNAL_SERVER_ERROR.into_response()
}

/// `Accept` names both media types Streamable HTTP needs and `Content-Type` is JSON, in the
/// plain form clients send; anything fancier (weights, parameters) is left to rmcp's parser.
fn plain_media_types(headers: &HeaderMap) -> bool {
    let mut json = false;
    let mut sse = false;
    for value in headers.get_all(header::ACCEPT) {
        let Ok(value) = value.to_str() else {
            return false;
        };
        for essence in value.split(',').map(str::trim) {
            if essence.contains(';') {
                return false;
            }
            json |= essence.eq_ignore_ascii_case("application/json");
            sse |= essence.eq_ignore_ascii_case("text/event-stream");
        }
    }
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().trim());
    json && sse && content_type.is_some_and(|c| c.eq_ignore_ascii_case("application/json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        pairs
            .iter()
            .map(|(k, v)| {
                (
                    http::HeaderName::from_static(k),
                    HeaderValue::from_static(v),
                )
            })
            .collect()
    }

    fn message(value: serde_json::Value) -> ClientJsonRpcMessage {
        serde_json::from_value(value).unwrap()
    }

    const PLAIN: [(&str, &str); 3] = [
        ("accept", "application/json, text/event-stream"),
        ("content-type", "application/json"),
        ("mcp-protocol-version", "2025-11-25"),
    ];

    fn call(params: serde_json::Value) -> ClientJsonRpcMessage {
        message(
            serde_json::json!({"jsonrpc": "2.0", "id": "x", "method": "tools/call", "params": params}),
        )
    }

    #[test]
    fn plain_tool_calls_of_legacy_revisions_are_eligible() {
        let plain = call(serde_json::json!({"name": "create_task", "arguments": {"input": "a"}}));
        assert_eq!(
            CallLoops::eligible(&headers(&PLAIN), &plain),
            Some("2025-11-25")
        );
        assert_eq!(
            CallLoops::eligible(&headers(&PLAIN[..2]), &plain),
            Some("2025-03-26"),
            "no header means 2025-03-26, as rmcp reads it"
        );
        let with_progress = call(
            serde_json::json!({"name": "create_task", "arguments": {}, "_meta": {"progressToken": 1}}),
        );
        assert_eq!(
            CallLoops::eligible(&headers(&PLAIN), &with_progress),
            Some("2025-11-25"),
            "progress goes out on the call's own event stream"
        );
    }

    #[test]
    fn anything_needing_rmcps_own_handling_is_not() {
        let plain = call(serde_json::json!({"name": "create_task", "arguments": {"input": "a"}}));
        let list = message(serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}));
        assert_eq!(CallLoops::eligible(&headers(&PLAIN), &list), None);
        let mut newer = headers(&PLAIN);
        newer.insert(
            "mcp-protocol-version",
            HeaderValue::from_static("2026-07-28"),
        );
        assert_eq!(CallLoops::eligible(&newer, &plain), None);
        let mut checked = headers(&PLAIN);
        checked.insert("mcp-method", HeaderValue::from_static("tools/call"));
        assert_eq!(CallLoops::eligible(&checked, &plain), None);
        let mut weighted = headers(&PLAIN);
        weighted.insert(
            "accept",
            HeaderValue::from_static("application/json;q=0, text/event-stream"),
        );
        assert_eq!(CallLoops::eligible(&weighted, &plain), None);
        assert_eq!(CallLoops::eligible(&headers(&PLAIN[1..]), &plain), None);
    }
}
