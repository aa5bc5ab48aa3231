//! Grants and their tokens: what an approved sign-in becomes, and the rules each token
//! follows.
//!
//! An approved sign-in leaves an authorization code (single use, a minute) that carries
//! the user's Handinger key sealed for the grant it will become. Exchanging it (with the
//! PKCE verifier) makes the grant, an access token (short-lived) and a refresh token.
//! Each refresh takes the refresh token (one use) and hands out a new pair; the used one is
//! remembered for the grant's life, and presenting it again ends the grant (RFC 9700's
//! refresh token rotation with reuse detection: a stolen token and its legitimate holder
//! cannot both keep going). Revoking any token of a grant ends the grant, and with it
//! every token it issued, since each access token is checked against its live grant.

use std::time::Duration;

use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::crypto::{Sealer, random_token, token_digest};
use super::store::{OAuthStore, StoreError, decode, encode};

/// How long an authorization code may wait for its exchange.
pub(crate) const CODE_TTL: Duration = Duration::from_secs(60);
/// The one scope this server grants: running Handinger tasks on the user's key.
pub(crate) const SCOPE: &str = "handinger";

#[derive(Serialize, Deserialize)]
pub(crate) struct CodeRecord {
    pub client_id: String,
    /// The redirect URI the authorization request named (`None`: it named none, and the
    /// client's only registered one was used).
    pub redirect_uri: Option<String>,
    pub challenge: String,
    pub resource: String,
    pub grant: String,
    /// The key, sealed for `grant`.
    pub sealed_key: String,
}

#[derive(Serialize, Deserialize)]
pub(crate) struct GrantRecord {
    pub client_id: String,
    pub resource: String,
    pub sealed_key: String,
}

#[derive(Serialize, Deserialize)]
struct AccessRecord {
    grant: String,
    resource: String,
    scope: String,
    /// Unix milliseconds when its `expires_in` ends. Whole seconds cut up to a second off
    /// the advertised life, which a client's own count does not.
    expires_ms: u64,
}

/// How long past its `expires_in` an access token is still honoured. A client checks its
/// token's life before it sends, and the request then takes its time to arrive (a loaded
/// client, a slow network). Refused on arrival, the Python SDK starts a whole new sign-in in
/// the browser instead of refreshing, and the session it had belongs to the old grant, so
/// the client loses it.
const ACCESS_GRACE: Duration = Duration::from_secs(5);

#[derive(Serialize, Deserialize)]
struct RefreshRecord {
    grant: String,
    client_id: String,
}

/// A token pair as the token endpoint hands it out.
pub(crate) struct Issued {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in: u64,
}

/// What a valid access token stands for.
pub(crate) struct Bearer {
    pub grant: String,
    pub key: SecretString,
    pub scope: String,
}

/// Why a token or code was refused (the RFC 6749 error code and a description).
pub(crate) struct Refusal(pub &'static str, pub String);

pub(crate) enum Failure {
    Refused(Refusal),
    Store(StoreError),
}

impl From<StoreError> for Failure {
    fn from(error: StoreError) -> Self {
        Failure::Store(error)
    }
}

fn refused(code: &'static str, why: &str) -> Failure {
    Failure::Refused(Refusal(code, why.to_owned()))
}

pub(crate) fn now_secs() -> u64 {
    since_epoch().as_secs()
}

fn now_ms() -> u64 {
    u64::try_from(since_epoch().as_millis()).unwrap_or(u64::MAX)
}

fn since_epoch() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

/// The grants and tokens over the store.
pub(crate) struct Grants<'a> {
    pub store: &'a OAuthStore,
    pub sealer: &'a Sealer,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
}

fn grant_context(grant: &str) -> String {
    format!("grant:{grant}")
}

impl Grants<'_> {
    /// Records the code of an approved sign-in; the code itself goes to the client.
    pub(crate) async fn issue_code(
        &self,
        client_id: &str,
        redirect_uri: Option<&str>,
        challenge: &str,
        resource: &str,
        key: &str,
    ) -> Result<String, StoreError> {
        let grant = random_token(16);
        let record = CodeRecord {
            client_id: client_id.to_owned(),
            redirect_uri: redirect_uri.map(str::to_owned),
            challenge: challenge.to_owned(),
            resource: resource.to_owned(),
            sealed_key: self.sealer.seal(key.as_bytes(), &grant_context(&grant)),
            grant,
        };
        let code = random_token(32);
        let key = format!("code:{}", token_digest(&code));
        self.store.put(&key, &encode(&record), CODE_TTL).await?;
        Ok(code)
    }

    /// RFC 6749 §4.1.3 with PKCE: the code once, for the client and redirect URI it was
    /// issued to, with the verifier of its challenge.
    pub(crate) async fn exchange_code(
        &self,
        code: &str,
        client_id: &str,
        redirect_uri: Option<&str>,
        verifier: Option<&str>,
        resource: Option<&str>,
    ) -> Result<Issued, Failure> {
        let digest = token_digest(code);
        let Some(record) = decode::<CodeRecord>(self.store.take(&format!("code:{digest}")).await?)
        else {
            // A code used twice was probably stolen: end what the first use made.
            if let Some(grant) = self.store.get(&format!("code-used:{digest}")).await? {
                let grant = String::from_utf8_lossy(&grant).into_owned();
                self.end_grant(&grant).await?;
            }
            return Err(refused(
                "invalid_grant",
                "the authorization code is unknown, used or expired: sign in again",
            ));
        };
        if record.client_id != client_id {
            return Err(refused(
                "invalid_grant",
                "the authorization code was issued to another client",
            ));
        }
        if record.redirect_uri.is_some() && redirect_uri != record.redirect_uri.as_deref() {
            return Err(refused(
                "invalid_grant",
                "redirect_uri is not the one the authorization request named",
            ));
        }
        let Some(verifier) = verifier else {
            return Err(refused(
                "invalid_request",
                "code_verifier is missing: send the PKCE verifier of the code_challenge",
            ));
        };
        if !super::crypto::pkce_matches(verifier, &record.challenge) {
            return Err(refused(
                "invalid_grant",
                "code_verifier does not match the code_challenge (PKCE S256)",
            ));
        }
        if resource.is_some_and(|r| r != record.resource) {
            return Err(refused(
                "invalid_target",
                "resource is not the one the authorization request named",
            ));
        }
        self.store
            .put(
                &format!("code-used:{digest}"),
                record.grant.as_bytes(),
                CODE_TTL,
            )
            .await?;
        let grant = GrantRecord {
            client_id: record.client_id,
            resource: record.resource,
            sealed_key: record.sealed_key,
        };
        self.store
            .put(
                &format!("grant:{}", record.grant),
                &encode(&grant),
                self.refresh_ttl,
            )
            .await?;
        Ok(self.issue_pair(&record.grant, &grant).await?)
    }

    /// RFC 6749 §6 with rotation and reuse detection.
    pub(crate) async fn refresh(
        &self,
        refresh_token: &str,
        client_id: &str,
        resource: Option<&str>,
    ) -> Result<Issued, Failure> {
        let digest = token_digest(refresh_token);
        let taken = self.store.take(&format!("rt:{digest}")).await?;
        let Some(record) = decode::<RefreshRecord>(taken) else {
            if let Some(grant) = self.store.get(&format!("rt-used:{digest}")).await? {
                let grant = String::from_utf8_lossy(&grant).into_owned();
                tracing::warn!(
                    "a refresh token was presented again after it was used: ending its grant"
                );
                self.end_grant(&grant).await?;
                return Err(refused(
                    "invalid_grant",
                    "this refresh token was already used, so the sign-in it belonged to has \
                     been ended: sign in again",
                ));
            }
            return Err(refused(
                "invalid_grant",
                "the refresh token is unknown, revoked or expired: sign in again",
            ));
        };
        self.store
            .put(
                &format!("rt-used:{digest}"),
                record.grant.as_bytes(),
                self.refresh_ttl,
            )
            .await?;
        if record.client_id != client_id {
            self.end_grant(&record.grant).await?;
            return Err(refused(
                "invalid_grant",
                "the refresh token was issued to another client",
            ));
        }
        let Some(mut grant) =
            decode::<GrantRecord>(self.store.get(&format!("grant:{}", record.grant)).await?)
        else {
            return Err(refused(
                "invalid_grant",
                "the sign-in this refresh token belonged to has ended: sign in again",
            ));
        };
        if resource.is_some_and(|r| r != grant.resource) {
            return Err(refused(
                "invalid_target",
                "resource is not the one this grant was issued for",
            ));
        }
        // Sealed under a previous secret: sealed again under the current one.
        let context = grant_context(&record.grant);
        if let Ok((key, true)) = self.sealer.open(&grant.sealed_key, &context) {
            grant.sealed_key = self.sealer.seal(&key, &context);
        }
        self.store
            .put(
                &format!("grant:{}", record.grant),
                &encode(&grant),
                self.refresh_ttl,
            )
            .await?;
        Ok(self.issue_pair(&record.grant, &grant).await?)
    }

    async fn issue_pair(&self, grant_id: &str, grant: &GrantRecord) -> Result<Issued, StoreError> {
        let access_token = format!("hmcp_at_{}", random_token(32));
        let refresh_token = format!("hmcp_rt_{}", random_token(32));
        let access = AccessRecord {
            grant: grant_id.to_owned(),
            resource: grant.resource.clone(),
            scope: SCOPE.to_owned(),
            expires_ms: now_ms().saturating_add(self.access_ttl.as_secs() * 1000),
        };
        // Kept through the grace, and a second beyond so the record outlives the check.
        self.store
            .put(
                &format!("at:{}", token_digest(&access_token)),
                &encode(&access),
                self.access_ttl + ACCESS_GRACE + Duration::from_secs(1),
            )
            .await?;
        let refresh = RefreshRecord {
            grant: grant_id.to_owned(),
            client_id: grant.client_id.clone(),
        };
        self.store
            .put(
                &format!("rt:{}", token_digest(&refresh_token)),
                &encode(&refresh),
                self.refresh_ttl,
            )
            .await?;
        Ok(Issued {
            access_token,
            refresh_token,
            expires_in: self.access_ttl.as_secs(),
        })
    }

    /// The grant and key behind an access token, if it is live and for one of `audiences`.
    pub(crate) async fn check_access(
        &self,
        token: &str,
        audiences: &[String],
    ) -> Result<Result<Bearer, &'static str>, StoreError> {
        let digest = token_digest(token);
        let Some(access) = decode::<AccessRecord>(self.store.get(&format!("at:{digest}")).await?)
        else {
            return Ok(Err("the access token is unknown, revoked or expired"));
        };
        if access
            .expires_ms
            .saturating_add(ACCESS_GRACE.as_millis() as u64)
            <= now_ms()
        {
            return Ok(Err("the access token has expired"));
        }
        if !audiences.contains(&access.resource) {
            return Ok(Err("the access token was issued for another resource"));
        }
        let Some(grant) =
            decode::<GrantRecord>(self.store.get(&format!("grant:{}", access.grant)).await?)
        else {
            return Ok(Err("the sign-in behind the access token has ended"));
        };
        let Ok((key, _)) = self
            .sealer
            .open(&grant.sealed_key, &grant_context(&access.grant))
        else {
            return Ok(Err(
                "the key behind the access token cannot be opened with this server's secret",
            ));
        };
        let Ok(key) = String::from_utf8(key) else {
            return Ok(Err("the key behind the access token is not text"));
        };
        Ok(Ok(Bearer {
            grant: access.grant,
            key: SecretString::from(key),
            scope: access.scope,
        }))
    }

    /// RFC 7009: revoking an access or refresh token ends its grant. Unknown tokens are no
    /// error (the RFC says so: the client's goal is reached either way).
    pub(crate) async fn revoke(&self, token: &str) -> Result<(), StoreError> {
        let digest = token_digest(token);
        #[derive(Deserialize)]
        struct AnyRecord {
            grant: String,
        }
        for kind in ["at", "rt"] {
            let key = format!("{kind}:{digest}");
            if let Some(record) = decode::<AnyRecord>(self.store.get(&key).await?) {
                self.store.delete(&key).await?;
                self.end_grant(&record.grant).await?;
            }
        }
        Ok(())
    }

    /// Ends a grant: every access token it issued stops at its next check, and its refresh
    /// tokens find no grant to renew.
    async fn end_grant(&self, grant: &str) -> Result<(), StoreError> {
        self.store.delete(&format!("grant:{grant}")).await
    }
}
