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
use crate::handinger::{ClientOptions, HandingerClient, LazyHttp};

/// The header a client's own Handinger key arrives in.
pub const API_KEY_HEADER: &str = "x-handinger-api-key";

/// Builds an API client per call from the key in the call's HTTP request. All of them share
/// one connection pool, so per-user keys cost no extra TLS handshakes.
#[derive(Clone)]
pub struct RequestKeys {
    http: LazyHttp,
    options: ClientOptions,
}

impl RequestKeys {
    /// `http` is the server's own clients ([`HandingerServer::shared_http`]): one pool, one
    /// CA store loaded once, and redirect-free like the server's own: the keys are the
    /// clients'.
    pub fn new(options: ClientOptions, http: LazyHttp) -> Result<Self, String> {
        Ok(Self { http, options })
    }

    fn client_for(&self, context: &RequestContext<RoleServer>) -> Result<HandingerClient, String> {
        self.client_for_headers(
            context
                .extensions
                .get::<http::request::Parts>()
                .map(|parts| &parts.headers),
        )
    }

    /// The client for the key in an HTTP request's headers (`None`: no HTTP request).
    pub(super) fn client_for_headers(
        &self,
        headers: Option<&http::HeaderMap>,
    ) -> Result<HandingerClient, String> {
        let key = headers
            .and_then(|headers| headers.get(API_KEY_HEADER))
            .and_then(|value| value.to_str().ok())
            .map(str::trim)
            .filter(|key| !key.is_empty())
            .ok_or_else(|| {
                "this server runs each call with the caller's own Handinger key, and this call \
                 carried none: send your key in the X-Handinger-Api-Key header."
                    .to_string()
            })?;
        HandingerClient::with_http(
            self.http.clone(),
            &SecretString::from(key.to_owned()),
            self.options.clone(),
        )
        // The client's own message names HANDINGER_API_KEY, which is not where this key
        // came from; never echo the key itself.
        .map_err(|_| {
            "the X-Handinger-Api-Key header does not hold a usable key (empty, or characters \
             that cannot go in an HTTP header): send your Handinger API key (hdg_live_…)."
                .to_string()
        })
    }
}

impl HandingerServer {
    /// The HTTP client of the server's own API client, for others to share its
    /// connection pool (per-user keys, the readiness probe).
    pub fn shared_http(&self) -> LazyHttp {
        self.api.lazy_http().clone()
    }

    /// Makes calls run with the key each HTTP request carries instead of the server's.
    pub fn with_request_keys(mut self, keys: RequestKeys) -> Self {
        self.request_keys = Some(std::sync::Arc::new(keys));
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
        match &self.request_keys {
            Some(keys) => keys.client_for(context),
            None => Ok(self.api.clone()),
        }
    }
}
