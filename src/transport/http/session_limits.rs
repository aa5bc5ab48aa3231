//! The bound on open MCP sessions: in total, and per client address.
//!
//! A session costs tens of KiB (rmcp's session worker, its channels, the server clone) and
//! lives until its client closes it or `--session-idle-timeout` passes, so without a bound a
//! few thousand `initialize` requests hold the server's memory for half an hour. A client
//! here is its address, not its key: `X-Handinger-Api-Key` is not verified until a call
//! reaches Handinger, so counting per key would let any string open more sessions.
//!
//! Both transports take a [`Slot`] before opening a session. A legacy SSE session keeps its
//! slot until its event stream ends. A Streamable HTTP session is rmcp's, which closes it on
//! its own; its slot is kept under its session id and given back when rmcp no longer has
//! that session (checked only when a new session would be refused, so the common path never
//! scans).
//!
//! A full table does not lock newcomers out (ten addresses, or one proxy, filling it with
//! `initialize` would otherwise refuse every new client for the whole idle timeout): the
//! cap picks a Streamable HTTP session to close instead ([`SessionCap::evict`]), from the
//! address holding the most sessions (so an address filling the table pays for it, not
//! the clients beside it), never-used ones first, then the longest idle. A session with a
//! request in progress or its event stream open is never picked; when every session is
//! busy the newcomer is refused. A session that sends no request within
//! `--session-first-request-timeout` of its `initialize` is closed then
//! ([`SessionCap::close_if_unused`]).

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use axum::response::{IntoResponse, Response};
use http::StatusCode;

use super::rejected::rejected;
use super::rejected::retry_later;

/// When to come back after a refusal: idle sessions close on their own, and clients that
/// are done close theirs.
const RETRY_AFTER: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    pub max_total: usize,
    pub max_per_client: usize,
}

/// Who a session counts against: its client's address (`None` when unknown).
pub(super) type Client = Option<IpAddr>;

pub(super) struct SessionCap {
    limits: SessionLimits,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    total: usize,
    per_client: HashMap<Client, usize>,
    /// Streamable HTTP sessions (rmcp's): whose they are and how they are used.
    streamable: HashMap<String, Tracked>,
}

/// What the cap knows of a Streamable HTTP session, to choose one to close.
struct Tracked {
    client: Client,
    /// Whether a request (not a notification), or its event stream, has come since its
    /// `initialize`.
    used: bool,
    /// Requests in progress and event streams open on it.
    busy: usize,
    /// When it last had something in progress (or was opened).
    last_active: Instant,
}

/// Why a session was not opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refusal {
    ServerFull,
    ClientFull,
}

impl SessionCap {
    pub(super) fn new(limits: SessionLimits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            inner: Mutex::new(Inner::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A slot for one more session of `client`, or why not.
    pub(super) fn try_open(self: &Arc<Self>, client: Client) -> Result<Slot, Refusal> {
        let mut inner = self.lock();
        if inner.total >= self.limits.max_total {
            return Err(Refusal::ServerFull);
        }
        let held = inner.per_client.entry(client).or_default();
        if *held >= self.limits.max_per_client {
            return Err(Refusal::ClientFull);
        }
        *held += 1;
        inner.total += 1;
        Ok(Slot {
            cap: Some(self.clone()),
            client,
        })
    }

    /// Gives back the slots of Streamable HTTP sessions rmcp no longer has.
    pub(super) fn forget_closed(&self, live: &HashSet<String>) {
        let mut inner = self.lock();
        let closed: Vec<(String, Client)> = inner
            .streamable
            .iter()
            .filter(|(id, _)| !live.contains(*id))
            .map(|(id, tracked)| (id.clone(), tracked.client))
            .collect();
        for (id, client) in closed {
            inner.streamable.remove(&id);
            inner.release(client);
        }
    }

    /// Gives back the slot of Streamable HTTP session `id` (ended by its client).
    pub(super) fn forget(&self, id: &str) {
        let mut inner = self.lock();
        if let Some(tracked) = inner.streamable.remove(id) {
            inner.release(tracked.client);
        }
    }

    /// Marks Streamable HTTP session `id` busy until the returned guard is dropped (when
    /// the answer, or the event stream, has been sent); `request` says whether this is a
    /// request or stream (which makes the session used) rather than a notification or a
    /// response. `None` for a session the cap does not track.
    pub(super) fn activity(self: &Arc<Self>, id: &str, request: bool) -> Option<Activity> {
        let mut inner = self.lock();
        let tracked = inner.streamable.get_mut(id)?;
        tracked.busy += 1;
        tracked.used |= request;
        tracked.last_active = Instant::now();
        Some(Activity {
            cap: self.clone(),
            id: id.to_owned(),
        })
    }

    /// Makes room for one session when the table is full: takes a Streamable HTTP session
    /// off the table and returns its id, for the caller to close. The victim is idle (no
    /// request in progress, no stream open) and belongs to the address holding the most
    /// sessions; of its sessions, a never-used one goes first, then the longest idle.
    /// `None` when every session is busy.
    pub(super) fn evict(&self) -> Option<String> {
        let mut inner = self.lock();
        let victim = inner
            .streamable
            .iter()
            .filter(|(_, tracked)| tracked.busy == 0)
            .max_by_key(|(_, tracked)| {
                let held = inner.per_client.get(&tracked.client).copied().unwrap_or(0);
                // Longest idle first: the earliest `last_active` is the greatest key.
                (held, !tracked.used, std::cmp::Reverse(tracked.last_active))
            })
            .map(|(id, _)| id.clone())?;
        if let Some(tracked) = inner.streamable.remove(&victim) {
            inner.release(tracked.client);
        }
        Some(victim)
    }

    /// Takes Streamable HTTP session `id` off the table if it has had no request since its
    /// `initialize` and has nothing in progress; returns whether it did, for the caller to
    /// close it.
    pub(super) fn close_if_unused(&self, id: &str) -> bool {
        let mut inner = self.lock();
        let unused = inner
            .streamable
            .get(id)
            .is_some_and(|tracked| !tracked.used && tracked.busy == 0);
        if unused && let Some(tracked) = inner.streamable.remove(id) {
            inner.release(tracked.client);
        }
        unused
    }

    #[cfg(test)]
    pub(super) fn open(&self) -> usize {
        self.lock().total
    }
}

impl Inner {
    fn release(&mut self, client: Client) {
        self.total = self.total.saturating_sub(1);
        if let Some(held) = self.per_client.get_mut(&client) {
            *held -= 1;
            if *held == 0 {
                self.per_client.remove(&client);
            }
        }
    }
}

/// One session's place under the cap, given back when dropped (or, for a Streamable HTTP
/// session, once rmcp has closed it: see [`Slot::keep_for`]).
pub(super) struct Slot {
    cap: Option<Arc<SessionCap>>,
    client: Client,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot")
            .field("client", &self.client)
            .finish()
    }
}

impl Slot {
    /// Keeps the slot for rmcp's session `id` until rmcp no longer has it.
    pub(super) fn keep_for(mut self, id: String) {
        if let Some(cap) = self.cap.take() {
            let tracked = Tracked {
                client: self.client,
                used: false,
                busy: 0,
                last_active: Instant::now(),
            };
            cap.lock().streamable.insert(id, tracked);
        }
    }
}

/// A request in progress (or an event stream open) on a Streamable HTTP session: the
/// session is not idle until this is dropped.
pub(super) struct Activity {
    cap: Arc<SessionCap>,
    id: String,
}

impl Drop for Activity {
    fn drop(&mut self) {
        let mut inner = self.cap.lock();
        if let Some(tracked) = inner.streamable.get_mut(&self.id) {
            tracked.busy = tracked.busy.saturating_sub(1);
            tracked.last_active = Instant::now();
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(cap) = self.cap.take() {
            cap.lock().release(self.client);
        }
    }
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let (reason, response) = match self {
            Refusal::ServerFull => (
                "session_limit",
                retry_later(
                    StatusCode::SERVICE_UNAVAILABLE,
                    RETRY_AFTER,
                    "Service Unavailable: this server holds as many MCP sessions as it allows \
                     (--max-sessions), and every one is busy; retry after the Retry-After \
                     delay",
                ),
            ),
            Refusal::ClientFull => (
                "client_session_limit",
                retry_later(
                    StatusCode::TOO_MANY_REQUESTS,
                    RETRY_AFTER,
                    "Too Many Requests: your address holds as many MCP sessions as this server \
                     allows one client (--max-sessions-per-client): close the sessions you no \
                     longer use (HTTP DELETE /mcp with their Mcp-Session-Id, or end their /sse \
                     stream) or reuse one, then retry after the Retry-After delay",
                ),
            ),
        };
        rejected(reason, response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cap(total: usize, per_client: usize) -> Arc<SessionCap> {
        SessionCap::new(SessionLimits {
            max_total: total,
            max_per_client: per_client,
        })
    }

    fn ip(last: u8) -> Client {
        Some(IpAddr::from([10, 0, 0, last]))
    }

    #[test]
    fn per_client_then_total() {
        let cap = cap(3, 2);
        let a1 = cap.try_open(ip(1)).unwrap();
        let _a2 = cap.try_open(ip(1)).unwrap();
        assert_eq!(cap.try_open(ip(1)).unwrap_err(), Refusal::ClientFull);
        let _b1 = cap.try_open(ip(2)).unwrap();
        assert_eq!(cap.try_open(ip(3)).unwrap_err(), Refusal::ServerFull);
        drop(a1);
        assert!(cap.try_open(ip(1)).is_ok(), "a dropped slot is given back");
    }

    #[test]
    fn a_full_table_gives_up_an_idle_session_of_its_biggest_holder() {
        let cap = cap(4, 3);
        for (id, client) in [("a1", ip(1)), ("b1", ip(2)), ("b2", ip(2)), ("b3", ip(2))] {
            cap.try_open(client).unwrap().keep_for(id.into());
        }
        let _b1_busy = cap.activity("b1", true).unwrap();
        drop(cap.activity("b3", true).unwrap());
        assert_eq!(cap.try_open(ip(3)).unwrap_err(), Refusal::ServerFull);
        // b2 was never used: it goes before b3, and b1 is busy.
        assert_eq!(cap.evict().as_deref(), Some("b2"));
        assert_eq!(cap.open(), 3);
        cap.try_open(ip(3)).unwrap().keep_for("c1".into());
        assert_eq!(cap.evict().as_deref(), Some("b3"), "b still holds the most");
        let _all_busy = [
            cap.activity("a1", false).unwrap(),
            cap.activity("c1", false).unwrap(),
        ];
        assert_eq!(cap.evict(), None, "busy sessions are never closed");
    }

    #[test]
    fn only_unused_idle_sessions_close_early() {
        let cap = cap(3, 3);
        for id in ["fresh", "used", "busy"] {
            cap.try_open(ip(1)).unwrap().keep_for(id.into());
        }
        drop(cap.activity("used", true).unwrap());
        let _busy = cap.activity("busy", false).unwrap();
        assert!(!cap.close_if_unused("used"));
        assert!(!cap.close_if_unused("busy"));
        assert!(cap.close_if_unused("fresh"));
        assert!(!cap.close_if_unused("fresh"), "once");
        assert_eq!(cap.open(), 2);
    }

    #[test]
    fn streamable_slots_last_until_rmcp_closes_the_session() {
        let cap = cap(1, 1);
        cap.try_open(ip(1)).unwrap().keep_for("s1".into());
        assert_eq!(cap.try_open(ip(1)).unwrap_err(), Refusal::ServerFull);
        cap.forget_closed(&HashSet::from(["s1".to_owned()]));
        assert_eq!(cap.open(), 1, "a live session keeps its slot");
        cap.forget_closed(&HashSet::new());
        assert_eq!(cap.open(), 0);
        assert!(cap.try_open(ip(1)).is_ok());
    }
}
