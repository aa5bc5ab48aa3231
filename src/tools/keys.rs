//! Which Handinger key a tool call runs with.
//!
//! By default every call uses the server's own key (`HANDINGER_API_KEY`). In HTTP mode with
//! `--key-from-request`, each client sends its own key in the `X-Handinger-Api-Key` header
//! and each call runs with the key of the HTTP request that carried it. The key lives in
//! that request (rmcp puts the request's `http::request::Parts` into the call's context) and
//! in the API client built for that one call; it is never stored, logged or shared with
//! another client's calls.

use rmcp::RoleServer;
use rmcp::service::RequestContext;
use secrecy::SecretString;

use super::HandingerServer;
use crate::handinger::HandingerClient;

/// The header a client's own Handinger key arrives in.
pub const API_KEY_HEADER: &str = "x-handinger-api-key";

/// Picks the key of an HTTP request's headers (`None`: no HTTP request); `Err` (a message
/// for the client) without one.
fn request_key(headers: Option<&http::HeaderMap>) -> Result<SecretString, String> {
    headers
        .and_then(|headers| headers.get(API_KEY_HEADER))
        .and_then(|value| value.to_str().ok())
        .map(str::trim)
        .filter(|key| !key.is_empty())
        .map(|key| SecretString::from(key.to_owned()))
        .ok_or_else(|| {
            "this server runs each call with the caller's own Handinger key, and this call \
             carried none: send your key in the X-Handinger-Api-Key header."
                .to_string()
        })
}

impl HandingerServer {
    /// Makes calls run with the key each HTTP request carries instead of the server's.
    /// Their clients share the server's connection pool (one CA store loaded once, no
    /// extra TLS handshakes) and, like the server's, never follow a redirect: the keys are
    /// the clients'.
    pub fn with_request_keys(mut self) -> Self {
        self.request_keys = true;
        self
    }

    /// The Handinger client a request runs with: the server's own, or, with per-user
    /// keys, one carrying the calling request's key. Every tool call, task lookup and
    /// resource read goes through here, so nothing can pick up the wrong key; without a key
    /// the request fails closed.
    pub(super) fn api_for(
        &self,
        context: &RequestContext<RoleServer>,
    ) -> Result<HandingerClient, String> {
        let parts = context.extensions.get::<http::request::Parts>();
        self.api_for_headers(parts.map(|parts| &parts.headers))
    }

    /// The key scope a call carried by an HTTP request with `headers` runs under (see
    /// [`HandingerClient::scope`]), without building its client; `None` without a key.
    pub(super) fn scope_for_headers(&self, headers: &http::HeaderMap) -> Option<u64> {
        if !self.request_keys {
            return Some(self.services.api.scope());
        }
        request_key(Some(headers))
            .ok()
            .map(|key| HandingerClient::scope_of(&key))
    }

    /// [`Self::api_for`] from the headers of the HTTP request that carries a call (`None`:
    /// no HTTP request).
    fn api_for_headers(
        &self,
        headers: Option<&http::HeaderMap>,
    ) -> Result<HandingerClient, String> {
        if !self.request_keys {
            return Ok(self.services.api.clone());
        }
        self.services
            .api
            .with_key(&request_key(headers)?)
            // The client's own message names HANDINGER_API_KEY, which is not where this key
            // came from; never echo the key itself.
            .map_err(|_| {
                "the X-Handinger-Api-Key header does not hold a usable key (empty, or \
                 characters that cannot go in an HTTP header): send your Handinger API key \
                 (hdg_live_…)."
                    .to_string()
            })
    }
}
