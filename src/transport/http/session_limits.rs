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

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use axum::response::{IntoResponse, Response};
use http::StatusCode;

use super::limits::retry_later;
use super::rejected::rejected;

/// When to come back after a refusal: idle sessions close on their own, and clients that
/// are done close theirs.
const RETRY_AFTER: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy)]
pub struct SessionLimits {
    pub max_total: usize,
    pub max_per_client: usize,
}

/// Who a session counts against: its client's address (`None` when unknown).
pub type Client = Option<IpAddr>;

pub struct SessionCap {
    limits: SessionLimits,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    total: usize,
    per_client: HashMap<Client, usize>,
    /// Streamable HTTP sessions (rmcp's) and whose they are.
    streamable: HashMap<String, Client>,
}

/// Why a session was not opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    ServerFull,
    ClientFull,
}

impl SessionCap {
    pub fn new(limits: SessionLimits) -> Arc<Self> {
        Arc::new(Self {
            limits,
            inner: Mutex::new(Inner::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// A slot for one more session of `client`, or why not.
    pub fn try_open(self: &Arc<Self>, client: Client) -> Result<Slot, Refusal> {
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
    pub fn forget_closed(&self, live: &HashSet<String>) {
        let mut inner = self.lock();
        let closed: Vec<(String, Client)> = inner
            .streamable
            .iter()
            .filter(|(id, _)| !live.contains(*id))
            .map(|(id, client)| (id.clone(), *client))
            .collect();
        for (id, client) in closed {
            inner.streamable.remove(&id);
            inner.release(client);
        }
    }

    #[cfg(test)]
    pub fn open(&self) -> usize {
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
pub struct Slot {
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
    pub fn keep_for(mut self, id: String) {
        if let Some(cap) = self.cap.take() {
            cap.lock().streamable.insert(id, self.client);
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
                     (--max-sessions); retry after the Retry-After delay, when idle sessions \
                     have closed",
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
