//! The listener: accepts connections under a cap and serves each with hyper's HTTP/1.1
//! connection builder, with the timeouts that keep slow and idle clients from holding
//! sockets and memory.
//!
//! - **Per address** (`--max-connections-per-client`, `--max-pending-connections-per-client`):
//!   checked first, at accept ([`super::per_address`]), so one address cannot take the
//!   places below from everyone else.
//! - **Cap** (`--max-connections`): beyond it, `--probe-connections` more are let in for
//!   `/healthz` and `/readyz` only (anything else gets 503 and the connection closes), so a
//!   flood never makes a healthy server look dead to its orchestrator; beyond those, a
//!   connection gets a canned 503 and is closed the moment it is accepted, before anything
//!   is read or allocated for it.
//! - **Request head** (`--header-read-timeout`): a new connection must send a complete
//!   request head within it, and a kept-alive one from the first byte of its next request.
//! - **Idle keep-alive** (`--keep-alive-timeout`): how long a connection may sit between
//!   requests. A request in progress (a held tool call, an event stream) is never idle.
//! - **Request body** (`--body-read-timeout`): once the head is in, the whole body must
//!   arrive within it; a slower one ends with 408 ([`super::limits::read_capped`]).
//! - **Answer** (`--write-timeout`): while the connection has bytes to send, the client must
//!   take some within it, or the connection is closed. Without it a client that stops
//!   reading a large answer would hold its call's place (`--max-concurrent-calls`), the
//!   answer and the thread encoding it for as long as it liked.
//! - **Bodies being read** (`--max-body-buffer-bytes`): the bytes of request bodies being
//!   read across all requests; a body that would go beyond it gets 503. A held call keeps
//!   none of its body's share (nor, of its request, more than it uses: see `tools::call`).
//!
//! Timed-out connections are simply closed, as hyper does for its own header timeout: a
//! client that cannot send a request head in time would not read an answer either.
//!
//! hyper's buffers: each HTTP/1.1 connection has a read buffer that grows from 8 KiB with
//! bursts of data, and an 8 KiB buffer for response heads. MCP requests are small JSON-RPC
//! bodies, so the read buffer is held at hyper's minimum (8 KiB), which also bounds request
//! heads to that size (larger ones get 431).

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderValue, Method, Request, StatusCode, header};
use http_body::{Frame, SizeHint};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::per_address::{PerAddress, Place};
use super::rejected::Rejected;
use super::request_body::TimedBody;
use crate::metrics::Metrics;

/// hyper's smallest read buffer limit (its `max_buf_size` refuses less).
const READ_BUFFER_BYTES: usize = 8192;
/// After an accept error that is not about one connection (out of descriptors), wait this
/// long before accepting again, as `axum::serve` does.
const ACCEPT_PAUSE: Duration = Duration::from_secs(1);
/// What a connection refused at accept gets, written without waiting, before it is closed.
const REFUSED: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: text/plain; charset=utf-8\r\n\
retry-after: 1\r\n\
connection: close\r\n\r\n\
Service Unavailable: this server has as many connections open as it allows (--max-connections); retry in a moment\n";

/// The connection bounds (see the module documentation).
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    pub max_connections: usize,
    pub probe_connections: usize,
    pub header_read_timeout: Duration,
    pub body_read_timeout: Duration,
    pub keep_alive_timeout: Duration,
    pub write_timeout: Duration,
    pub max_body_buffer_bytes: usize,
    /// Bounds per client address.
    pub per_client: super::per_address::AddressLimits,
}

/// What every connection shares.
struct Listener {
    app: Router,
    limits: ConnectionLimits,
    /// Counts refused connections and every response marked [`Rejected`].
    metrics: Arc<Metrics>,
    open: AtomicUsize,
    all_closed: Notify,
    body_budget: Arc<Semaphore>,
    per_address: Arc<PerAddress>,
    full: http1::Builder,
    probes_only: http1::Builder,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Admission {
    Full,
    ProbesOnly,
}

/// Serves `app` on `listener` until `draining` is cancelled, then lets every connection
/// finish its request in progress and returns once all are closed.
pub(super) async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    draining: CancellationToken,
    metrics: Arc<Metrics>,
) {
    warn_if_over_descriptor_limit(&limits);
    let mut full = http1::Builder::new();
    // Our own timers (below) replace hyper's header timeout, which also runs while a
    // kept-alive connection waits for its next request.
    full.max_buf_size(READ_BUFFER_BYTES)
        .header_read_timeout(None);
    let mut probes_only = full.clone();
    probes_only.keep_alive(false);
    let shared = Arc::new(Listener {
        app,
        body_budget: Arc::new(Semaphore::new(
            limits.max_body_buffer_bytes.min(Semaphore::MAX_PERMITS),
        )),
        per_address: PerAddress::new(limits.per_client),
        limits,
        metrics,
        open: AtomicUsize::new(0),
        all_closed: Notify::new(),
        full,
        probes_only,
    });
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = draining.cancelled() => break,
        };
        let (stream, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) if is_about_one_connection(&error) => continue,
            Err(error) => {
                tracing::warn!(%error, "could not accept a connection; pausing accepts for a second");
                tokio::select! {
                    () = tokio::time::sleep(ACCEPT_PAUSE) => continue,
                    () = draining.cancelled() => break,
                }
            }
        };
        let place = match shared
            .per_address
            .admit(super::limits::client_address(peer.ip()))
        {
            Ok(place) => place,
            Err(refusal) => {
                shared
                    .metrics
                    .record_rejection("connection_limit_per_client");
                tracing::debug!(%peer, ?refusal, "refused a connection: its address holds as many as it may");
                let _ = stream.try_write(refusal.canned_answer());
                continue;
            }
        };
        let Some(admission) = shared.admit() else {
            shared.metrics.record_rejection("connection_limit");
            tracing::debug!(%peer, "refused a connection: --max-connections and the probe reserve are in use");
            // Best effort and never waiting: a fresh socket's send buffer has room.
            let _ = stream.try_write(REFUSED);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let open = OpenConnection(shared.clone());
        tokio::spawn(serve_connection(
            open,
            Arc::new(place),
            stream,
            peer,
            admission,
            draining.clone(),
        ));
    }
    drop(listener);
    shared.wait_all_closed().await;
}

/// Descriptors the process needs beyond its connections: the listener, logs, the upstream
/// pool, files being attached or saved.
const SPARE_DESCRIPTORS: u64 = 64;

/// Warns when the process may run out of descriptors before the connection cap is reached:
/// then `accept` fails for everyone, probes included, instead of the cap refusing the
/// surplus. Linux only (`/proc/self/limits`); elsewhere nothing is checked.
fn warn_if_over_descriptor_limit(limits: &ConnectionLimits) {
    let Some(soft) = std::fs::read_to_string("/proc/self/limits")
        .ok()
        .and_then(|text| {
            let line = text.lines().find(|l| l.starts_with("Max open files"))?;
            line.split_whitespace().nth(3)?.parse::<u64>().ok()
        })
    else {
        return;
    };
    let needed = (limits.max_connections + limits.probe_connections) as u64 + SPARE_DESCRIPTORS;
    if needed > soft {
        tracing::warn!(
            descriptor_limit = soft,
            needed,
            "--max-connections plus --probe-connections is above what the descriptor limit \
             allows: raise the limit (ulimit -n, LimitNOFILE=, docker run --ulimit nofile=) or \
             lower --max-connections, or accepts will fail for everyone before the cap applies"
        );
    }
}

/// Errors of `accept` that concern one connection (it was reset before we took it), not
/// the listener.
fn is_about_one_connection(error: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    matches!(
        error.kind(),
        ConnectionRefused | ConnectionAborted | ConnectionReset
    )
}

impl Listener {
    fn admit(&self) -> Option<Admission> {
        let max = self.limits.max_connections;
        let ceiling = max.saturating_add(self.limits.probe_connections);
        let before = self
            .open
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < ceiling).then_some(n + 1)
            })
            .ok()?;
        Some(if before < max {
            Admission::Full
        } else {
            Admission::ProbesOnly
        })
    }

    async fn wait_all_closed(&self) {
        loop {
            let notified = self.all_closed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.open.load(Ordering::Acquire) == 0 {
                return;
            }
            notified.await;
        }
    }
}

/// One open connection's place under the cap.
struct OpenConnection(Arc<Listener>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        if self.0.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.all_closed.notify_waiters();
        }
    }
}

async fn serve_connection(
    open: OpenConnection,
    place: Arc<Place>,
    stream: TcpStream,
    peer: SocketAddr,
    admission: Admission,
    draining: CancellationToken,
) {
    let listener = open.0.clone();
    let state = Arc::new(ConnectionState::new());
    let io = TokioIo::new(Watched {
        stream,
        state: state.clone(),
        stalled: false,
    });
    let service = ConnectionService {
        listener: listener.clone(),
        state: state.clone(),
        place,
        peer,
        probes_only: admission == Admission::ProbesOnly,
    };
    let builder = match admission {
        Admission::Full => &listener.full,
        Admission::ProbesOnly => &listener.probes_only,
    };
    let connection = builder.serve_connection(io, service);
    tokio::pin!(connection);
    let mut draining_seen = false;
    loop {
        let deadline = state.deadline(&listener.limits);
        let changed = state.changed.notified();
        tokio::select! {
            outcome = connection.as_mut() => {
                if let Err(error) = outcome {
                    tracing::debug!(%peer, %error, "connection ended with an error");
                }
                break;
            }
            () = draining.cancelled(), if !draining_seen => {
                draining_seen = true;
                // Finishes the request in progress, then closes; an idle one closes now.
                connection.as_mut().graceful_shutdown();
            }
            () = sleep_until(deadline) => {
                if state.deadline(&listener.limits).is_some_and(|d| d <= Instant::now()) {
                    listener.metrics.record_rejection("connection_timeout");
                    tracing::debug!(%peer, "closing a connection that sent no complete request head in time, sat idle too long, or took nothing of its answer for --write-timeout");
                    break;
                }
            }
            () = changed => {}
        }
    }
    drop(open);
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Where a connection is between its requests, for its timers.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// Waiting for a request head to complete, since then (accepted, or the first byte of a
    /// kept-alive connection's next request arrived).
    Head(Instant),
    /// This many requests in progress (read, handled, or their answer still streaming).
    Busy(usize),
    /// Nothing in progress since then, nothing received since.
    Idle(Instant),
}

struct ConnectionState {
    phase: Mutex<Phase>,
    /// Since when the socket has refused bytes the connection has to send (the client's
    /// receive window is full), if it does now.
    write_stalled: Mutex<Option<Instant>>,
    changed: Notify,
}

impl ConnectionState {
    fn new() -> Self {
        Self {
            phase: Mutex::new(Phase::Head(Instant::now())),
            write_stalled: Mutex::new(None),
            changed: Notify::new(),
        }
    }

    fn phase(&self) -> MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn deadline(&self, limits: &ConnectionLimits) -> Option<Instant> {
        let phase = match *self.phase() {
            Phase::Head(since) => Some(since + limits.header_read_timeout),
            Phase::Busy(_) => None,
            Phase::Idle(since) => Some(since + limits.keep_alive_timeout),
        };
        let stalled = *self
            .write_stalled
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let write = stalled.map(|since| since + limits.write_timeout);
        match (phase, write) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// The socket refused bytes (`true`) or took some again (`false`).
    fn write_stalled(&self, stalled: bool) {
        *self
            .write_stalled
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = stalled.then(Instant::now);
        self.changed.notify_one();
    }

    fn received(&self) {
        let mut phase = self.phase();
        if let Phase::Idle(_) = *phase {
            *phase = Phase::Head(Instant::now());
            drop(phase);
            self.changed.notify_one();
        }
    }

    fn request_started(&self) {
        let mut phase = self.phase();
        *phase = match *phase {
            Phase::Busy(n) => Phase::Busy(n + 1),
            Phase::Head(_) | Phase::Idle(_) => Phase::Busy(1),
        };
        drop(phase);
        self.changed.notify_one();
    }

    fn request_ended(&self) {
        let mut phase = self.phase();
        *phase = match *phase {
            Phase::Busy(n) if n > 1 => Phase::Busy(n - 1),
            _ => Phase::Idle(Instant::now()),
        };
        drop(phase);
        self.changed.notify_one();
    }
}

/// The socket, telling the connection's timers when a request's first bytes arrive and
/// when writing stalls and resumes.
struct Watched {
    stream: TcpStream,
    state: Arc<ConnectionState>,
    /// Whether the last write was refused; the state is told only when this changes, so an
    /// answer flowing normally costs no lock per write.
    stalled: bool,
}

impl Watched {
    fn track<T>(&mut self, polled: Poll<std::io::Result<T>>) -> Poll<std::io::Result<T>> {
        let stalled = polled.is_pending();
        if stalled != self.stalled {
            self.stalled = stalled;
            self.state.write_stalled(stalled);
        }
        polled
    }
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.state.received();
        }
        polled
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.track(polled)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.track(polled)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_flush(cx);
        this.track(polled)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// Marks a request in progress from its head until its answer has been sent (or dropped).
struct InProgress(Arc<ConnectionState>);

impl InProgress {
    fn start(state: Arc<ConnectionState>) -> Self {
        state.request_started();
        Self(state)
    }
}

impl Drop for InProgress {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

#[derive(Clone)]
struct ConnectionService {
    listener: Arc<Listener>,
    state: Arc<ConnectionState>,
    /// Its place under its address's bounds: half-open until the first request head.
    place: Arc<Place>,
    peer: SocketAddr,
    probes_only: bool,
}

impl hyper::service::Service<Request<Incoming>> for ConnectionService {
    type Response = Response<TrackedBody>;
    type Error = Infallible;
    type Future = Respond;

    fn call(&self, request: Request<Incoming>) -> Self::Future {
        let in_progress = InProgress::start(self.state.clone());
        self.place.head_received();
        if self.probes_only && !is_probe(&request) {
            self.listener.metrics.record_rejection("connection_limit");
            return Respond::Ready {
                response: Some(probes_only_refusal()),
                in_progress: Some(in_progress),
            };
        }
        let (mut parts, body) = request.into_parts();
        detach(&mut parts);
        parts.extensions.insert(ConnectInfo(self.peer));
        let body = TimedBody::new(
            body,
            self.listener.limits.body_read_timeout,
            self.listener.body_budget.clone(),
        );
        let mut app = self.listener.app.clone();
        let routed = tower_service::Service::call(&mut app, Request::from_parts(parts, body));
        Respond::Routed {
            routed,
            in_progress: Some(in_progress),
            metrics: self.listener.metrics.clone(),
        }
    }
}

/// Copies a request head's header values and URI out of hyper's read buffer.
///
/// hyper hands them out as slices of that buffer, and the request's head lives as long as
/// the request (rmcp keeps it in the call's context, for per-user keys): a held tool call
/// or an open event stream would pin the buffer, and hyper, which keeps reading while a
/// request is in progress to notice a client hanging up, would then allocate a second one,
/// 8 KiB more per held call. Once nothing points into it, hyper reuses the first.
fn detach(parts: &mut http::request::Parts) {
    for value in parts.headers.values_mut() {
        if let Ok(mut owned) = HeaderValue::from_bytes(value.as_bytes()) {
            owned.set_sensitive(value.is_sensitive());
            *value = owned;
        }
    }
    if let Ok(uri) = http::Uri::try_from(parts.uri.to_string()) {
        parts.uri = uri;
    }
}

fn is_probe<B>(request: &Request<B>) -> bool {
    request.method() == Method::GET && matches!(request.uri().path(), "/healthz" | "/readyz")
}

fn probes_only_refusal() -> Response {
    let mut response = super::rejected::retry_later(
        StatusCode::SERVICE_UNAVAILABLE,
        Duration::from_secs(1),
        "Service Unavailable: this server has as many connections open as it allows \
         (--max-connections); this one is kept for health probes. Retry after the \
         Retry-After delay",
    );
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}

pin_project_lite::pin_project! {
    /// The router's answer, with the request marked in progress until its body is sent.
    #[project = RespondProjection]
    pub(super) enum Respond {
        Routed {
            #[pin]
            routed: axum::routing::future::RouteFuture<Infallible>,
            in_progress: Option<InProgress>,
            metrics: Arc<Metrics>,
        },
        Ready {
            response: Option<Response>,
            in_progress: Option<InProgress>,
        },
    }
}

impl Future for Respond {
    type Output = Result<Response<TrackedBody>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let (response, in_progress) = match self.project() {
            RespondProjection::Routed {
                routed,
                in_progress,
                metrics,
            } => {
                let Ok(response) = std::task::ready!(routed.poll(cx));
                if let Some(Rejected(reason)) = response.extensions().get() {
                    metrics.record_rejection(reason);
                }
                (response, in_progress.take())
            }
            RespondProjection::Ready {
                response,
                in_progress,
            } => (
                response
                    .take()
                    .unwrap_or_else(|| StatusCode::INTERNAL_SERVER_ERROR.into_response()),
                in_progress.take(),
            ),
        };
        Poll::Ready(Ok(response.map(|body| TrackedBody {
            inner: body,
            _in_progress: in_progress,
        })))
    }
}

/// A response body that keeps its request marked in progress until it is sent or dropped.
pub(super) struct TrackedBody {
    inner: Body,
    _in_progress: Option<InProgress>,
}

impl http_body::Body for TrackedBody {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}
