//! Limits that keep one client (or many) from exhausting the server: the request body cap
//! (and the answers to bodies too slow or over the budget of [`super::request_body`]), the
//! per-client rate limit, and the bound on tool calls running at once.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use http::{HeaderMap, StatusCode, header};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::rejected::{rejected, retry_later};
use super::request_body::BodyError;
use crate::transport::message_shape::MessageShape;

/// Above this many tracked clients, buckets that have refilled completely (clients that
/// have gone quiet) are dropped, so the table cannot grow without bound.
const PRUNE_ABOVE: usize = 10_000;

/// Who a request counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum ClientId {
    /// A per-user Handinger key, as a keyed hash: the key itself is never kept.
    Key(u64),
    Ip(std::net::IpAddr),
}

/// The address a client counts as, for the limits per address (rate, sessions): an IPv6
/// client by its /64 network, since one host is routinely given a whole /64 and could
/// otherwise switch addresses to escape them; an IPv4 address written as IPv6 as itself.
pub(super) fn client_address(ip: std::net::IpAddr) -> std::net::IpAddr {
    use std::net::{IpAddr, Ipv6Addr};
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        },
    }
}

/// A token bucket per client: `per_minute` requests a minute, in bursts of as many.
pub(super) struct RateLimiter {
    per_minute: u32,
    buckets: Mutex<HashMap<ClientId, Bucket>>,
    /// Random per process, so key fingerprints mean nothing outside it.
    hasher: RandomState,
}

struct Bucket {
    tokens: f64,
    updated: Instant,
}

impl RateLimiter {
    /// `None` when the limit is off (0).
    pub(super) fn new(per_minute: u32) -> Option<Self> {
        (per_minute > 0).then(|| Self {
            per_minute,
            buckets: Mutex::new(HashMap::new()),
            hasher: RandomState::new(),
        })
    }

    pub(super) fn key_id(&self, key: &[u8]) -> ClientId {
        ClientId::Key(self.hasher.hash_one(key))
    }

    /// Takes one request from the client's bucket, or says how long until one is free.
    pub(super) fn check(&self, client: ClientId) -> Result<(), Duration> {
        let capacity = f64::from(self.per_minute);
        let per_second = capacity / 60.0;
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() > PRUNE_ABOVE {
            buckets.retain(|_, b| {
                b.tokens + now.duration_since(b.updated).as_secs_f64() * per_second < capacity
            });
        }
        let bucket = buckets.entry(client).or_insert(Bucket {
            tokens: capacity,
            updated: now,
        });
        let refilled = now.duration_since(bucket.updated).as_secs_f64() * per_second;
        bucket.tokens = (bucket.tokens + refilled).min(capacity);
        bucket.updated = now;
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - bucket.tokens) / per_second))
        }
    }
}

impl RateLimiter {
    /// Whether the client's bucket holds a request, without taking it (a client never seen
    /// has a full one), or how long until it does.
    pub(super) fn peek(&self, client: ClientId) -> Result<(), Duration> {
        let buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(bucket) = buckets.get(&client) else {
            return Ok(());
        };
        let per_second = f64::from(self.per_minute) / 60.0;
        let tokens = bucket.tokens + bucket.updated.elapsed().as_secs_f64() * per_second;
        if tokens >= 1.0 {
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - tokens) / per_second))
        }
    }
}

/// Bounds the tool calls running at once across all clients.
pub(super) struct CallGate {
    permits: Arc<Semaphore>,
    size: u32,
    closing: AtomicBool,
}

/// Why a tool call was not let in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    Busy,
    ShuttingDown,
}

impl CallGate {
    pub(super) fn new(size: u32) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(size as usize)),
            size,
            closing: AtomicBool::new(false),
        }
    }

    /// A permit for one tool call, held until its answer has been sent.
    pub(super) fn try_enter(&self) -> Result<OwnedSemaphorePermit, Refusal> {
        if self.closing.load(Ordering::Acquire) {
            return Err(Refusal::ShuttingDown);
        }
        self.permits
            .clone()
            .try_acquire_owned()
            .map_err(|_| Refusal::Busy)
    }

    pub(super) fn in_flight(&self) -> usize {
        (self.size as usize).saturating_sub(self.permits.available_permits())
    }

    /// Lets no new call in, then waits up to `grace` for the calls in flight to finish.
    /// Returns how many are still running.
    pub(super) async fn drain(&self, grace: Duration) -> usize {
        self.closing.store(true, Ordering::Release);
        let all = self.permits.acquire_many(self.size);
        match tokio::time::timeout(grace, all).await {
            Ok(_) => 0,
            Err(_) => self.in_flight(),
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (reason, message) = match self {
            Refusal::Busy => (
                "busy",
                "Service Unavailable: this server is running as many tool calls as it allows \
                 (--max-concurrent-calls); retry after the Retry-After delay",
            ),
            Refusal::ShuttingDown => (
                "shutting_down",
                "Service Unavailable: this server is shutting down; retry after the \
                 Retry-After delay (a replica or the restarted server will answer)",
            ),
        };
        let response = retry_later(
            StatusCode::SERVICE_UNAVAILABLE,
            Duration::from_secs(1),
            message,
        );
        rejected(reason, response)
    }
}

/// Reads a request body of at most `limit` bytes; anything larger gets 413.
#[allow(clippy::result_large_err)] // the error is the response itself, returned at once
pub(super) async fn read_capped(
    body: Body,
    headers: &HeaderMap,
    limit: usize,
) -> Result<Bytes, Response> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large(limit));
    }
    let mut stream = body.into_data_stream();
    let mut buffer = BytesMut::with_capacity(declared.unwrap_or(0).min(limit as u64) as usize);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(body_error)?;
        if buffer.len() + chunk.len() > limit {
            return Err(too_large(limit));
        }
        buffer.extend_from_slice(&chunk);
    }
    Ok(buffer.freeze())
}

/// The answer to a body that could not be read: too slow (408), over the server's budget
/// for bodies held (503), or cut off (400).
fn body_error(error: axum::Error) -> Response {
    match error.into_inner().downcast_ref::<BodyError>() {
        Some(BodyError::TimedOut(timeout)) => {
            let response = (
                StatusCode::REQUEST_TIMEOUT,
                format!(
                    "Request Timeout: the request body did not arrive within {}s \
                     (--body-read-timeout); send the whole body at once",
                    timeout.as_secs()
                ),
            );
            rejected("body_timeout", response.into_response())
        }
        Some(BodyError::OverBudget) => {
            let response = retry_later(
                StatusCode::SERVICE_UNAVAILABLE,
                Duration::from_secs(1),
                "Service Unavailable: this server is holding as many request bodies as it \
                 allows (--max-body-buffer-bytes); retry after the Retry-After delay",
            );
            rejected("body_buffer_full", response)
        }
        _ => (
            StatusCode::BAD_REQUEST,
            "Bad Request: the request body was cut off",
        )
            .into_response(),
    }
}

fn too_large(limit: usize) -> Response {
    let response = (
        StatusCode::PAYLOAD_TOO_LARGE,
        format!(
            "Payload Too Large: request bodies are limited to {limit} bytes on this server \
             (--max-body-bytes)"
        ),
    );
    rejected("body_too_large", response.into_response())
}

/// Refuses a body whose shape would cost too much to parse ([`MessageShape`]), before
/// anything parses it: `400` with the JSON-RPC error stdio would answer (to the request's
/// id when it can be read from the body's start, else to null), as the Streamable HTTP
/// transport answers input it cannot accept.
#[allow(clippy::result_large_err)] // the error is the response itself, returned at once
pub(super) fn check_shape(shape: &MessageShape, body: &[u8]) -> Result<(), Response> {
    let refused = match shape.check(body) {
        Ok(()) => return Ok(()),
        Err(refused) => refused,
    };
    let answer = refused.answer(crate::transport::framing::leading_id(body));
    let response = (StatusCode::BAD_REQUEST, axum::Json(answer)).into_response();
    Err(rejected("message_shape", response))
}

/// Whether a JSON-RPC body is a `tools/call` request (what the call gate counts). Anything
/// that does not parse is left for the protocol layer to refuse.
pub(super) fn is_tool_call(body: &[u8]) -> bool {
    is_method(body, "tools/call")
}

/// Whether a JSON-RPC body is an `initialize` request (what opens a session).
pub(super) fn is_initialize(body: &[u8]) -> bool {
    is_method(body, "initialize")
}

fn is_method(body: &[u8], name: &str) -> bool {
    #[derive(serde::Deserialize)]
    struct Peek<'a> {
        #[serde(borrow)]
        method: Option<std::borrow::Cow<'a, str>>,
    }
    serde_json::from_slice::<Peek<'_>>(body).is_ok_and(|m| m.method.as_deref() == Some(name))
}

/// Keeps `guard` alive until `body` has been sent (or dropped): a tool call's permit is
/// held for as long as its answer is being streamed.
pub(super) fn hold_until_sent<G: Send + Sync + 'static>(body: Body, guard: G) -> Body {
    Body::from_stream(body.into_data_stream().map(move |chunk| {
        let _held = &guard;
        chunk
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn ipv6_clients_count_by_their_network() {
        let ip = |text: &str| text.parse::<std::net::IpAddr>().unwrap();
        assert_eq!(client_address(ip("2001:db8::1")), ip("2001:db8::"));
        assert_eq!(
            client_address(ip("2001:db8::ffff:1")),
            client_address(ip("2001:db8::2")),
            "one /64, one client"
        );
        assert_ne!(
            client_address(ip("2001:db8:0:1::1")),
            client_address(ip("2001:db8::1"))
        );
        assert_eq!(client_address(ip("::ffff:192.0.2.7")), ip("192.0.2.7"));
        assert_eq!(client_address(ip("192.0.2.7")), ip("192.0.2.7"));
    }

    #[test]
    fn rate_limit_allows_a_burst_then_names_the_wait() {
        let limiter = RateLimiter::new(2).unwrap();
        let client = ClientId::Ip("127.0.0.1".parse().unwrap());
        assert!(limiter.check(client).is_ok());
        assert!(limiter.check(client).is_ok());
        let wait = limiter.check(client).unwrap_err();
        assert!(
            wait > Duration::from_secs(25) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        let other = ClientId::Ip("127.0.0.2".parse().unwrap());
        assert!(
            limiter.check(other).is_ok(),
            "clients have their own buckets"
        );
    }

    #[test]
    fn peeking_takes_nothing() {
        let limiter = RateLimiter::new(1).unwrap();
        let client = ClientId::Ip("127.0.0.1".parse().unwrap());
        assert!(limiter.peek(client).is_ok());
        assert!(limiter.peek(client).is_ok());
        assert!(limiter.check(client).is_ok());
        let wait = limiter.peek(client).unwrap_err();
        assert!(wait > Duration::from_secs(55), "{wait:?}");
    }

    #[test]
    fn zero_turns_the_rate_limit_off() {
        assert!(RateLimiter::new(0).is_none());
    }

    #[test]
    fn key_ids_are_stable_within_a_process_and_distinct() {
        let limiter = RateLimiter::new(1).unwrap();
        assert_eq!(limiter.key_id(b"a"), limiter.key_id(b"a"));
        assert_ne!(limiter.key_id(b"a"), limiter.key_id(b"b"));
    }

    #[tokio::test]
    async fn gate_refuses_beyond_its_size_and_while_draining() {
        let gate = CallGate::new(1);
        let permit = gate.try_enter().unwrap();
        assert_eq!(gate.try_enter().unwrap_err(), Refusal::Busy);
        assert_eq!(gate.in_flight(), 1);
        drop(permit);
        assert_eq!(gate.drain(Duration::from_secs(5)).await, 0);
        assert_eq!(gate.try_enter().unwrap_err(), Refusal::ShuttingDown);
    }

    #[test]
    fn tool_calls_are_recognised() {
        assert!(is_tool_call(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{}}"#
        ));
        assert!(!is_tool_call(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#
        ));
        assert!(!is_tool_call(b"[1,2]"));
        assert!(!is_tool_call(b"not json"));
    }

    #[tokio::test]
    async fn bodies_over_the_cap_are_refused() {
        let headers = HeaderMap::new();
        let ok = read_capped(Body::from("12345"), &headers, 5).await.unwrap();
        assert_eq!(&ok[..], b"12345");
        let err = read_capped(Body::from("123456"), &headers, 5)
            .await
            .unwrap_err();
        assert_eq!(err.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let mut declared = HeaderMap::new();
        declared.insert(header::CONTENT_LENGTH, HeaderValue::from(6));
        let err = read_capped(Body::empty(), &declared, 5).await.unwrap_err();
        assert_eq!(err.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
}
