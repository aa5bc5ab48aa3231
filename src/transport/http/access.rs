//! Who may use the server: the checks every MCP request passes before the protocol sees it.
//!
//! In order: no repeated `Host`, `Origin`, `Authorization` or key header (400), `Host` (and
//! an absolute-form request target's host) and `Origin` (403), the address's budget of
//! failed tokens (429), the bearer token (401, which spends from that budget), the
//! per-user Handinger key when `--key-from-request` is on (401), then the rate limits (429):
//! the client address's, and the client's own (its key, or its address without one). Secrets in the
//! request's headers are marked sensitive on the way through, so no debug output of the
//! request (ours or a library's) can show them.

// Each check's error is the refusal itself, handed straight back to the client: boxing the
// response would only add an allocation to the refusal path.
#![allow(clippy::result_large_err)]

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use secrecy::{ExposeSecret, SecretString};
use subtle::ConstantTimeEq;

use super::hosts::{AllowedHosts, AllowedOrigins};
use super::limits::{self, ClientId, RateLimiter};
use super::rejected::rejected;
use super::rejected::retry_later;
use crate::tools::API_KEY_HEADER;

pub(super) struct Access {
    pub hosts: AllowedHosts,
    pub origins: AllowedOrigins,
    pub token: Option<SecretString>,
    pub key_from_request: bool,
    pub rate: Option<RateLimiter>,
    /// Per client address whatever key it sends (`--address-rate-limit`), so unverified
    /// keys cannot each buy a fresh bucket.
    pub address_rate: Option<RateLimiter>,
    /// Wrong or missing bearer tokens per client address (`--auth-failure-limit`): once an
    /// address has spent them, none of its tokens is even compared until they refill, so
    /// guessing runs at that pace whatever the guesser sends.
    pub auth_failures: Option<RateLimiter>,
}

impl Access {
    fn check_host_and_origin(&self, request: &Request) -> Result<(), Response> {
        let headers = request.headers();
        self.hosts
            .check(
                headers.get(header::HOST).map(HeaderValue::as_bytes),
                request.uri(),
            )
            .and_then(|()| {
                self.origins.check(
                    headers.get(header::ORIGIN).map(HeaderValue::as_bytes),
                    &self.hosts,
                )
            })
            .map_err(|reason| {
                tracing::warn!(%reason, "refused a request");
                let response = (StatusCode::FORBIDDEN, format!("Forbidden: {reason}"));
                rejected("host_or_origin", response.into_response())
            })
    }

    /// Refuses an address that has spent its budget of failed tokens, before its token is
    /// looked at.
    fn check_auth_budget(&self, address: Option<ClientId>) -> Result<(), Response> {
        let (Some(failures), Some(address)) = (&self.auth_failures, address) else {
            return Ok(());
        };
        failures.peek(address).map_err(|wait| {
            let response = retry_later(
                StatusCode::TOO_MANY_REQUESTS,
                wait,
                "Too Many Requests: your address sent more wrong or missing bearer tokens than \
                 this server allows (--auth-failure-limit a minute); no token from it is \
                 checked until the Retry-After delay has passed. Send Authorization: Bearer \
                 <token> with the token the server's operator gave you",
            );
            rejected("auth_failure_limit", response)
        })
    }

    fn check_token(&self, headers: &HeaderMap, address: Option<ClientId>) -> Result<(), Response> {
        let Some(expected) = &self.token else {
            return Ok(());
        };
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            });
        let reason = match presented {
            // Constant time, so the comparison does not reveal how much of a guess was right.
            Some(token)
                if bool::from(token.as_bytes().ct_eq(expected.expose_secret().as_bytes())) =>
            {
                return Ok(());
            }
            Some(_) => "the bearer token is not this server's",
            None => {
                "send Authorization: Bearer <token>, with the token the server's operator set in HANDINGER_MCP_AUTH_TOKEN"
            }
        };
        if let (Some(failures), Some(address)) = (&self.auth_failures, address) {
            // The failure is spent whatever the bucket says: it was checked just before.
            let _ = failures.check(address);
        }
        let mut response =
            (StatusCode::UNAUTHORIZED, format!("Unauthorized: {reason}")).into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"handinger-mcp\""),
        );
        Err(rejected("auth", response))
    }

    /// The client's own key when the server runs calls with per-user keys.
    fn check_user_key<'a>(&self, headers: &'a HeaderMap) -> Result<Option<&'a [u8]>, Response> {
        if !self.key_from_request {
            return Ok(None);
        }
        let given = headers.get(API_KEY_HEADER);
        let key = given
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|k| !k.is_empty());
        match key {
            Some(key) => Ok(Some(key.as_bytes())),
            None => {
                let message = if given.is_some_and(|v| v.to_str().is_err()) {
                    "Unauthorized: the X-Handinger-Api-Key header holds characters no Handinger \
                     key has: send your key (hdg_live_…) as plain text in it"
                } else {
                    "Unauthorized: this server runs every call with its client's own Handinger \
                     key: send yours in the X-Handinger-Api-Key header"
                };
                let mut response = (StatusCode::UNAUTHORIZED, message).into_response();
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("X-Handinger-Api-Key realm=\"handinger-mcp\""),
                );
                Err(rejected("missing_api_key", response))
            }
        }
    }

    fn check_rate(&self, client: ClientId) -> Result<(), Response> {
        let Some(rate) = &self.rate else {
            return Ok(());
        };
        rate.check(client).map_err(|wait| {
            let response = retry_later(
                StatusCode::TOO_MANY_REQUESTS,
                wait,
                "Too Many Requests: this client is over the server's rate limit \
                 (--rate-limit requests a minute); retry after the Retry-After delay",
            );
            rejected("rate_limit", response)
        })
    }
}

/// Refuses a request that repeats a header the checks read: each check looks at one value,
/// and a second one (good, then evil) must not leave it to chance which value another layer
/// or a proxy acts on.
fn check_single_values(headers: &HeaderMap) -> Result<(), Response> {
    for name in [
        header::HOST.as_str(),
        header::ORIGIN.as_str(),
        header::AUTHORIZATION.as_str(),
        API_KEY_HEADER,
    ] {
        if headers.get_all(name).iter().nth(1).is_some() {
            tracing::warn!(header = name, "refused a request with a repeated header");
            let response = (
                StatusCode::BAD_REQUEST,
                format!("Bad Request: the request has more than one {name} header; send it once"),
            );
            return Err(rejected("duplicate_header", response.into_response()));
        }
    }
    Ok(())
}

/// Marks the headers that carry secrets as sensitive: their `Debug` output is then redacted.
fn mark_secrets(headers: &mut HeaderMap) {
    for name in [header::AUTHORIZATION.as_str(), API_KEY_HEADER] {
        if let Some(value) = headers.get_mut(name) {
            value.set_sensitive(true);
        }
    }
}

/// The full gate for the MCP endpoints (`/mcp`, `/sse`, `/message`).
pub(super) async fn mcp_gate(
    State(access): State<Arc<Access>>,
    mut request: Request,
    next: Next,
) -> Response {
    let checked = access.check_caller(&mut request);
    match checked.and_then(|()| access.check_client(&request)) {
        Ok(()) => next.run(request).await,
        Err(response) => response,
    }
}

fn address_over_limit(wait: std::time::Duration) -> Response {
    let response = retry_later(
        StatusCode::TOO_MANY_REQUESTS,
        wait,
        "Too Many Requests: your address is over this server's rate limit per client address \
         (--address-rate-limit requests a minute, whatever keys are sent); retry after the \
         Retry-After delay",
    );
    rejected("address_rate_limit", response)
}

/// The gate for operational endpoints that show data (`/metrics`): host, origin and token,
/// but no per-user key or rate limit, so a scraper needs only the token.
pub(super) async fn ops_gate(
    State(access): State<Arc<Access>>,
    mut request: Request,
    next: Next,
) -> Response {
    if let Err(response) = access.check_caller(&mut request) {
        return response;
    }
    next.run(request).await
}

impl Access {
    /// Whether the caller of `/readyz` may read why the server is not ready (the reason
    /// names the API's or the store's address): a caller that would pass `/metrics`' gate.
    /// A request with `Authorization` is checked as `/metrics` checks it, and one that
    /// fails gets the same refusal, so `/readyz` is no cheaper place to guess the token.
    /// Without it (orchestrators send none, nor a Host this server knows), details only
    /// when no token is set and the Host and Origin are allowed; the answer is then the
    /// generic reason, never a refusal, so probes keep working.
    pub(super) fn may_see_details(&self, request: &mut Request) -> Result<bool, Response> {
        if request.headers().contains_key(header::AUTHORIZATION) {
            self.check_caller(request)?;
            return Ok(true);
        }
        let headers = request.headers();
        Ok(self.token.is_none()
            && check_single_values(headers).is_ok()
            && self
                .hosts
                .check(
                    headers.get(header::HOST).map(HeaderValue::as_bytes),
                    request.uri(),
                )
                .is_ok()
            && self
                .origins
                .check(
                    headers.get(header::ORIGIN).map(HeaderValue::as_bytes),
                    &self.hosts,
                )
                .is_ok())
    }

    /// What the MCP endpoints check beyond [`Self::check_caller`]: the client's own key
    /// (with `--key-from-request`), then the rate limits, by address and by key.
    fn check_client(&self, request: &Request) -> Result<(), Response> {
        let client = self
            .check_user_key(request.headers())?
            .and_then(|key| self.rate.as_ref().map(|rate| rate.key_id(key)));
        let address = client_address(request);
        if let (Some(limiter), Some(address)) = (&self.address_rate, address) {
            limiter.check(address).map_err(address_over_limit)?;
        }
        match client.or(address) {
            Some(client) => self.check_rate(client),
            None => Ok(()),
        }
    }

    /// What every guarded endpoint checks first: secrets hidden from logs, then host and
    /// origin, then the address's budget of failed tokens and the bearer token.
    fn check_caller(&self, request: &mut Request) -> Result<(), Response> {
        mark_secrets(request.headers_mut());
        check_single_values(request.headers())?;
        self.check_host_and_origin(request)?;
        if self.token.is_none() {
            return Ok(());
        }
        let address = client_address(request);
        self.check_auth_budget(address)?;
        self.check_token(request.headers(), address)
    }
}

/// The client address a request counts against, for the limits per address.
fn client_address(request: &Request) -> Option<ClientId> {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| ClientId::Ip(limits::client_address(peer.ip())))
}
