//! Sessions belong to whoever opened them.
//!
//! A session id is not a credential: with per-user keys (`--key-from-request`) or a shared
//! token, anyone who learned another client's `Mcp-Session-Id` (or legacy `sessionId`)
//! could otherwise resume its event stream and read its answers, cancel its calls or
//! delete it. So each session remembers a digest of the credentials that opened it (the
//! `Authorization` and `X-Handinger-Api-Key` headers), and a request on that session with
//! other credentials is answered exactly like a request on an unknown session (404), with
//! nothing else happening.
//!
//! The digest is a keyed hash with a key drawn at random per process: it identifies the
//! credentials without holding them, and cannot be computed outside this process.

use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use http::{HeaderMap, header};
use rmcp::model::RequestId;

use crate::tools::API_KEY_HEADER;

/// Who opened a session: a digest of the credentials its requests carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Owner(u64);

impl Owner {
    /// The owner a request speaks for.
    pub(super) fn of(headers: &HeaderMap) -> Self {
        static KEY: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
        let mut hasher = KEY.get_or_init(Default::default).build_hasher();
        for name in [header::AUTHORIZATION.as_str(), API_KEY_HEADER] {
            // Each value with its length, so ("ab", "") and ("a", "b") differ.
            let value = headers
                .get(name)
                .map(|v| v.as_bytes().trim_ascii())
                .unwrap_or_default();
            hasher.write_usize(value.len());
            hasher.write(value);
        }
        Owner(hasher.finish())
    }
}

/// The owners of the Streamable HTTP sessions, by session id.
#[derive(Default)]
pub(super) struct Owners {
    by_session: Mutex<HashMap<String, Owner>>,
}

impl Owners {
    /// Whether `owner` may use session `id`. A session this map does not know is left to
    /// the transport, which answers an unknown one with 404 itself.
    pub(super) fn allows(&self, id: &str, owner: Owner) -> bool {
        let map = self
            .by_session
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        map.get(id).is_none_or(|known| *known == owner)
    }

    /// Records the owner of a new session, and forgets sessions that are gone (`live` says
    /// which still exist), so the map stays as large as the session table.
    pub(super) fn bind(&self, id: &str, owner: Owner, live: impl Fn(&str) -> bool) {
        let mut map = self
            .by_session
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        map.retain(|known, _| live(known));
        map.entry(id.to_owned()).or_insert(owner);
    }
}

/// The requests in flight on each Streamable HTTP session, by JSON-RPC id: a second
/// request with the id of one still running is refused before it reaches the session (both
/// would run upstream, and only one answer could come back).
#[derive(Default)]
pub(super) struct InFlightIds {
    ids: Arc<Mutex<HashSet<(String, RequestId)>>>,
}

/// Holds an id as in flight until dropped (when its answer has been sent).
pub(super) struct InFlightGuard {
    ids: Arc<Mutex<HashSet<(String, RequestId)>>>,
    key: (String, RequestId),
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let mut ids = self.ids.lock().unwrap_or_else(PoisonError::into_inner);
        ids.remove(&self.key);
    }
}

impl InFlightIds {
    /// Registers request `id` on `session`; `None` when it is in flight.
    pub(super) fn enter(&self, session: &str, id: &RequestId) -> Option<InFlightGuard> {
        let key = (session.to_owned(), id.clone());
        let mut ids = self.ids.lock().unwrap_or_else(PoisonError::into_inner);
        ids.insert(key.clone()).then(|| InFlightGuard {
            ids: self.ids.clone(),
            key,
        })
    }
}

/// The id of a JSON-RPC request body, or `None` for anything else (notifications,
/// responses, batches). The string "1" and the number 1 stay two ids.
pub(super) fn request_id(body: &[u8]) -> Option<RequestId> {
    #[derive(serde::Deserialize)]
    struct Peek {
        method: Option<serde::de::IgnoredAny>,
        // Only ids JSON-RPC allows (a number or a string): rmcp refuses any other.
        id: Option<RequestId>,
    }
    let peek: Peek = serde_json::from_slice(body).ok()?;
    peek.method?;
    peek.id
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(
                http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                value.parse().unwrap(),
            );
        }
        map
    }

    #[test]
    fn other_credentials_are_another_owner() {
        let alice = Owner::of(&headers(&[("x-handinger-api-key", "hdg_a")]));
        let bob = Owner::of(&headers(&[("x-handinger-api-key", "hdg_b")]));
        let token = Owner::of(&headers(&[("authorization", "Bearer hdg_a")]));
        assert_ne!(alice, bob);
        assert_ne!(alice, token);
        let owners = Owners::default();
        owners.bind("s1", alice, |_| true);
        assert!(owners.allows("s1", alice));
        assert!(!owners.allows("s1", bob));
        assert!(owners.allows("unknown", bob));
        owners.bind("s2", bob, |id| id != "s1");
        assert!(owners.allows("s1", bob), "a gone session is forgotten");
    }
}
