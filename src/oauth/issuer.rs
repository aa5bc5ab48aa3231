//! `--oauth-issuer URL`: the server as a pure resource server for an organisation's own
//! authorization server (Keycloak, Entra ID, Okta, WorkOS, …).
//!
//! Access tokens are that issuer's JWTs (`jsonwebtoken`, on the aws-lc-rs backend rustls
//! already builds). Each is checked on every request: signed by a key of the issuer's JWKS
//! (asymmetric algorithms only: no `none`, no shared-secret HMAC a JWKS could not hold),
//! `iss` the issuer, `aud` this server's resource, not expired. The JWKS is found through
//! the issuer's metadata (OpenID Connect discovery, then RFC 8414), fetched with bounds
//! ([`MAX_DOCUMENT_BYTES`], [`FETCH_TIMEOUT`]) and fetched again when a token names a key
//! it does not hold, at most once per [`REFETCH_EVERY`] (so unknown `kid`s cannot make the
//! server hammer the issuer). Calls run on the server's own key (`HANDINGER_API_KEY`); the
//! token's subject binds sessions and goes in the logs.

use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use tokio::sync::Mutex;

pub(crate) const MAX_DOCUMENT_BYTES: usize = 256 * 1024;
pub(crate) const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
pub(crate) const REFETCH_EVERY: Duration = Duration::from_secs(60);
/// Clock difference tolerated on `exp` and `nbf`.
const LEEWAY_SECS: u64 = 30;

pub(crate) struct Issuer {
    pub issuer: String,
    http: reqwest::Client,
    keys: Mutex<Option<(JwkSet, Instant)>>,
}

/// Who a valid token speaks for.
pub(crate) struct Subject(pub String);

#[derive(Deserialize)]
struct Claims {
    sub: Option<String>,
    #[serde(default)]
    scope: Option<String>,
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
            keys: Mutex::new(None),
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
        for path in [
            "/.well-known/openid-configuration",
            "/.well-known/oauth-authorization-server",
        ] {
            match self
                .fetch_json::<Metadata>(&format!("{}{path}", self.issuer))
                .await
            {
                Ok(metadata) if metadata.issuer == self.issuer => {
                    return self.fetch_json(&metadata.jwks_uri).await;
                }
                Ok(metadata) => {
                    last = format!(
                        "the issuer's metadata names another issuer ({})",
                        metadata.issuer
                    );
                }
                Err(error) => last = error,
            }
        }
        Err(last)
    }

    /// The key a token's header names, fetching the JWKS when it is not known yet or the
    /// key is missing (at most once per [`REFETCH_EVERY`]).
    async fn key_for(&self, kid: Option<&str>) -> Result<jsonwebtoken::jwk::Jwk, &'static str> {
        let mut keys = self.keys.lock().await;
        let find = |set: &JwkSet| match kid {
            Some(kid) => set.find(kid).cloned(),
            None if set.keys.len() == 1 => set.keys.first().cloned(),
            None => None,
        };
        if let Some((set, _)) = keys.as_ref()
            && let Some(key) = find(set)
        {
            return Ok(key);
        }
        let due = keys
            .as_ref()
            .is_none_or(|(_, fetched)| fetched.elapsed() >= REFETCH_EVERY);
        if !due {
            return Err("the token was signed with a key the issuer does not publish");
        }
        match self.fetch_keys().await {
            Ok(set) => {
                let found = find(&set);
                *keys = Some((set, Instant::now()));
                found.ok_or("the token was signed with a key the issuer does not publish")
            }
            Err(error) => {
                tracing::warn!(%error, "could not fetch the --oauth-issuer's signing keys");
                Err("the issuer's signing keys could not be fetched")
            }
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
        let jwk = self.key_for(header.kid.as_deref()).await?;
        let key = DecodingKey::from_jwk(&jwk).map_err(|_| "the issuer's key is not usable")?;
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(audiences);
        validation.leeway = LEEWAY_SECS;
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
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
        let subject = data.claims.sub.unwrap_or_default();
        Ok((Subject(subject), data.claims.scope))
    }
}
