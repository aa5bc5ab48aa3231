//! `--oauth-issuer URL`: the server as a pure resource server for an organisation's own
//! authorization server (Keycloak, Entra ID, Okta, WorkOS, …).
//!
//! Access tokens are that issuer's JWTs (`jsonwebtoken`, on the ring backend rustls
//! already builds). Each is checked on every request: signed by a key of the issuer's JWKS
//! (asymmetric algorithms only: no `none`, no shared-secret HMAC a JWKS could not hold),
//! `iss` the issuer, `aud` this server's resource, not expired. The JWKS is found through
//! the issuer's metadata (OpenID Connect discovery, then RFC 8414), fetched with bounds
//! ([`MAX_DOCUMENT_BYTES`], [`FETCH_TIMEOUT`]) and fetched again when a token names a key
//! it does not hold, at most once per [`REFETCH_EVERY`] (so unknown `kid`s cannot make the
//! server hammer the issuer), and [`RETRY_AFTER_FAILURE`] after a failed fetch. A request
//! whose key is held never waits on a fetch. Calls run on the server's own key
//! (`HANDINGER_API_KEY`); the token's subject (required) binds sessions and goes in the logs.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Deserializer};
use tokio::sync::Mutex;

pub(crate) const MAX_DOCUMENT_BYTES: usize = 256 * 1024;
pub(crate) const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
pub(crate) const REFETCH_EVERY: Duration = Duration::from_secs(60);
/// How long after a failed fetch the next may start: an issuer that is down is not asked
/// again by every request that arrives meanwhile.
pub(crate) const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(10);
/// Clock difference tolerated on `exp` and `nbf`.
const LEEWAY_SECS: u64 = 30;

pub(crate) struct Issuer {
    pub issuer: String,
    http: reqwest::Client,
    /// The issuer's keys, decoded once when fetched: read by every request, written only by
    /// a fetch.
    keys: RwLock<HeldKeys>,
    /// When the last fetch started and whether it failed: one fetch at a time, and the
    /// requests waiting on it see its outcome instead of fetching again.
    fetched: Mutex<Option<(Instant, bool)>>,
}

/// The issuer's keys as fetched last, each with its `kid`: shared, so a reader holds the
/// lock only to clone the `Arc`.
type HeldKeys = Arc<Vec<(Option<String>, DecodingKey)>>;

/// Who a valid token speaks for.
pub(crate) struct Subject(pub String);

#[derive(Deserialize)]
struct Claims {
    sub: String,
    /// `scope` (RFC 9068, space-separated) or `scp` (Entra ID, Okta: often an array).
    #[serde(default, alias = "scp", deserialize_with = "scopes")]
    scope: Option<String>,
}

/// A scope claim as a space-separated string, from a string or an array of strings; any
/// other shape counts as no scope rather than an invalid token.
fn scopes<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Scope {
        Text(String),
        List(Vec<String>),
        Other(serde::de::IgnoredAny),
    }
    Ok(match Scope::deserialize(deserializer)? {
        Scope::Text(text) => Some(text),
        Scope::List(list) => Some(list.join(" ")),
        Scope::Other(_) => None,
    })
}

impl Issuer {
    pub(crate) fn new(issuer: String) -> Result<Self, String> {
        crate::handinger::redirect::use_ring_crypto();
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(FETCH_TIMEOUT)
            .build()
            .map_err(|e| format!("could not set up the client for --oauth-issuer: {e}"))?;
        Ok(Self {
            issuer,
            http,
            keys: RwLock::default(),
            fetched: Mutex::new(None),
        })
    }

    async fn fetch_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, String> {
        let mut response = self
            .http
            .get(url)
            .send()
            .await
            .map_err(|e| format!("{url} could not be fetched: {e}"))?;
        if !response.status().is_success() {
            return Err(format!(
                "{url} answered HTTP {}",
                response.status().as_u16()
            ));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| format!("{url} could not be read: {e}"))?
        {
            body.extend_from_slice(&chunk);
            if body.len() > MAX_DOCUMENT_BYTES {
                return Err(format!("{url} is larger than {MAX_DOCUMENT_BYTES} bytes"));
            }
        }
        serde_json::from_slice(&body).map_err(|_| format!("{url} is not the JSON expected"))
    }

    async fn fetch_keys(&self) -> Result<JwkSet, String> {
        #[derive(Deserialize)]
        struct Metadata {
            issuer: String,
            jwks_uri: String,
        }
        let mut last = String::new();
        for url in discovery_urls(&self.issuer)? {
            match self.fetch_json::<Metadata>(&url).await {
                Ok(metadata) if metadata.issuer == self.issuer => {
                    if !https_or_loopback(&metadata.jwks_uri) {
                        return Err(format!(
                            "the issuer's jwks_uri is not https: {}",
                            crate::printable::one_line(&metadata.jwks_uri)
                        ));
                    }
                    return self.fetch_json(&metadata.jwks_uri).await;
                }
                Ok(metadata) => {
                    last = format!(
                        "the issuer's metadata names another issuer ({})",
                        crate::printable::one_line(&metadata.issuer)
                    );
                }
                Err(error) => last = error,
            }
        }
        Err(last)
    }

    /// The key a token's header names, fetching the JWKS when it is not known yet or the
    /// key is missing (at most once per [`REFETCH_EVERY`], [`RETRY_AFTER_FAILURE`] after a
    /// failure).
    async fn key_for(&self, kid: Option<&str>) -> Result<DecodingKey, &'static str> {
        const UNKNOWN: &str = "the token was signed with a key the issuer does not publish";
        if let Some(key) = self.held(kid) {
            return Ok(key);
        }
        let mut fetched = self.fetched.lock().await;
        // Another request may have fetched while this one waited.
        if let Some(key) = self.held(kid) {
            return Ok(key);
        }
        match *fetched {
            Some((at, false)) if at.elapsed() < REFETCH_EVERY => return Err(UNKNOWN),
            Some((at, true)) if at.elapsed() < RETRY_AFTER_FAILURE => {
                return Err("the issuer's signing keys could not be fetched");
            }
            _ => {}
        }
        let outcome = self.fetch_keys().await;
        *fetched = Some((Instant::now(), outcome.is_err()));
        match outcome {
            Ok(set) => {
                let decoded = set
                    .keys
                    .iter()
                    .filter_map(|jwk| {
                        let key = DecodingKey::from_jwk(jwk).ok()?;
                        Some((jwk.common.key_id.clone(), key))
                    })
                    .collect();
                *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(decoded);
                self.held(kid).ok_or(UNKNOWN)
            }
            Err(error) => {
                tracing::warn!(error = %crate::printable::one_line(&error), "could not fetch the --oauth-issuer's signing keys");
                Err("the issuer's signing keys could not be fetched")
            }
        }
    }

    /// The held key `kid` names, or the only key when the token names none.
    fn held(&self, kid: Option<&str>) -> Option<DecodingKey> {
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner()).clone();
        match kid {
            Some(kid) => keys
                .iter()
                .find(|(id, _)| id.as_deref() == Some(kid))
                .map(|(_, key)| key.clone()),
            None if keys.len() == 1 => keys.first().map(|(_, key)| key.clone()),
            None => None,
        }
    }

    /// Checks a JWT access token for one of `audiences`.
    pub(crate) async fn check(
        &self,
        token: &str,
        audiences: &[String],
    ) -> Result<(Subject, Option<String>), &'static str> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| "the token is not a JWT")?;
        let asymmetric = matches!(
            header.alg,
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
                | Algorithm::ES256
                | Algorithm::ES384
                | Algorithm::EdDSA
        );
        if !asymmetric {
            return Err("the token's signature algorithm is not accepted");
        }
        let key = self.key_for(header.kid.as_deref()).await?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(audiences);
        validation.leeway = LEEWAY_SECS;
        // `sub` too: sessions are bound to it, and tokens without one would share them.
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind;
            match e.kind() {
                ErrorKind::ExpiredSignature => "the token has expired",
                ErrorKind::InvalidAudience => "the token was issued for another resource",
                ErrorKind::InvalidIssuer => "the token was issued by another issuer",
                ErrorKind::InvalidSignature => "the token's signature does not verify",
                _ => "the token is not valid",
            }
        })?;
        if data.claims.sub.is_empty() {
            return Err("the token names no subject (an empty sub)");
        }
        Ok((Subject(data.claims.sub), data.claims.scope))
    }
}

/// Where the issuer's metadata is: OpenID Connect discovery (the issuer, then
/// `/.well-known/openid-configuration`), then RFC 8414 (the well-known segment between the
/// host and the issuer's path).
fn discovery_urls(issuer: &str) -> Result<[String; 2], String> {
    let url = reqwest::Url::parse(issuer)
        .map_err(|_| format!("--oauth-issuer {issuer:?} is not a URL"))?;
    let origin = url.origin().ascii_serialization();
    let path = url.path().trim_end_matches('/');
    Ok([
        format!("{origin}{path}/.well-known/openid-configuration"),
        format!("{origin}/.well-known/oauth-authorization-server{path}"),
    ])
}

/// Whether the keys may be fetched from `url`: https, or plain http on a loopback host (an
/// issuer on this machine), like the issuer itself.
fn https_or_loopback(url: &str) -> bool {
    reqwest::Url::parse(url).is_ok_and(|url| match url.scheme() {
        "https" => true,
        "http" => super::clients::is_loopback(&url),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_urls_keep_the_issuers_path_and_drop_a_trailing_slash() {
        assert_eq!(
            discovery_urls("https://login.example.com/realms/staff/").unwrap(),
            [
                "https://login.example.com/realms/staff/.well-known/openid-configuration",
                "https://login.example.com/.well-known/oauth-authorization-server/realms/staff",
            ]
        );
        assert_eq!(
            discovery_urls("https://tenant.auth0.com/").unwrap(),
            [
                "https://tenant.auth0.com/.well-known/openid-configuration",
                "https://tenant.auth0.com/.well-known/oauth-authorization-server",
            ]
        );
    }

    #[test]
    fn scopes_come_as_a_string_a_list_or_scp() {
        let scope = |json: &str| serde_json::from_str::<Claims>(json).unwrap().scope;
        assert_eq!(
            scope(r#"{"sub":"a","scope":"x y"}"#).as_deref(),
            Some("x y")
        );
        assert_eq!(
            scope(r#"{"sub":"a","scp":["x","y"]}"#).as_deref(),
            Some("x y")
        );
        assert_eq!(scope(r#"{"sub":"a","scope":7}"#), None);
        assert_eq!(scope(r#"{"sub":"a"}"#), None);
    }

    #[test]
    fn keys_come_from_https_or_this_machine_only() {
        assert!(https_or_loopback("https://login.example.com/keys"));
        assert!(https_or_loopback("http://127.0.0.1:8080/keys"));
        assert!(!https_or_loopback("http://login.example.com/keys"));
        assert!(!https_or_loopback("file:///etc/keys"));
    }
}
