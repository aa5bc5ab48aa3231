//! OAuth mode (`http --oauth --public-url URL`): clients sign in as the MCP authorization
//! spec (2025-11-25, 2026-07-28) describes, and each user's calls run on the Handinger key
//! they gave once, in the browser.
//!
//! The server is both the resource server and its own authorization server:
//!
//! - [`metadata`] — the discovery documents (RFC 9728 protected resource metadata, RFC 8414
//!   authorization server metadata);
//! - [`clients`] — dynamic client registration (RFC 7591), bounded, and the redirect URI
//!   rules (exact, loopback on any port); [`cimd`] — client ID metadata documents, fetched
//!   through the answer-file guard;
//! - [`authorize`] — the sign-in page and its form ([`page`] renders it, with its CSP);
//! - [`token`] — the token endpoint and revocation (RFC 7009);
//! - [`grants`] — codes, grants, access and refresh tokens (rotation with reuse detection);
//! - [`guard`] — the check on every MCP request, which turns a valid token into the user's
//!   key for the `--key-from-request` path (the token never goes upstream);
//! - [`store`] — where it is all kept: memory, or the Redis of `--store` so replicas share
//!   it; [`crypto`] — token digests, PKCE, and the sealing of the users' keys;
//! - [`cors`] — what browser pages may call: the credential-free endpoints from anywhere,
//!   `/mcp` from the `--allowed-origin` origins;
//! - [`issuer`] — `--oauth-issuer`: the server as a pure resource server for another
//!   authorization server's JWTs, calls on the server's own key;
//! - [`settings`] — the flags.

pub(crate) mod authorize;
pub(crate) mod cimd;
pub(crate) mod clients;
pub(crate) mod cors;
pub(crate) mod crypto;
pub(crate) mod grants;
pub(crate) mod guard;
pub(crate) mod issuer;
pub(crate) mod metadata;
pub(crate) mod page;
pub(crate) mod settings;
pub(crate) mod store;
pub(crate) mod token;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::Router;
use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderValue, StatusCode, header};

use crate::handinger::HandingerClient;
pub(crate) use settings::{OAuthArgs, OAuthSettings};

impl OAuthSettings {
    /// The MCP endpoint's canonical URL: the audience tokens are issued for.
    pub fn resource(&self) -> String {
        format!("{}/mcp", self.public_url)
    }

    /// The scope an access token must carry: this server's own one, or with
    /// `--oauth-issuer` the `--oauth-issuer-scope` (none: any scope is accepted).
    pub fn required_scope(&self) -> Option<&str> {
        match &self.issuer {
            Some(_) => self.issuer_scope.as_deref(),
            None => Some(grants::SCOPE),
        }
    }

    /// `scheme://host[:port]` of the public URL, as a browser's `Origin` header names it.
    pub fn public_origin(&self) -> String {
        reqwest::Url::parse(&self.public_url)
            .map(|url| url.origin().ascii_serialization())
            .unwrap_or_default()
    }
}

/// OAuth mode's state, shared by its endpoints and the guard.
pub(crate) struct OAuth {
    pub settings: OAuthSettings,
    /// The resources tokens may be for: the MCP endpoint, and the server as a whole (the
    /// root metadata document names it).
    pub audiences: Vec<String>,
    pub store: store::OAuthStore,
    pub sealer: crypto::Sealer,
    /// The server's API client, with which each user's key is checked at sign-in.
    pub api: HandingerClient,
    /// `--oauth-issuer`: the external issuer whose JWTs are checked instead.
    pub issuer: Option<issuer::Issuer>,
    registrations: clients::AddressRate,
    /// Sign-ins that reach the key check, per address: the page must not become a way to
    /// test guessed keys against Handinger at speed.
    sign_ins: clients::AddressRate,
    documents: cimd::DocumentCache,
}

/// A client as the endpoints see it.
pub(crate) struct Client {
    pub record: clients::ClientRecord,
    pub verified: bool,
}

impl OAuth {
    /// `redis`: the shared store's connection and OAuth's prefix there, when `--store` is
    /// set.
    pub(crate) fn new(
        settings: OAuthSettings,
        api: HandingerClient,
        redis: Option<(redis::aio::ConnectionManager, String)>,
    ) -> Result<Self, String> {
        let sealer = match &settings.secret {
            Some((current, previous)) => crypto::Sealer::new(current, previous.as_ref()),
            None if redis.is_some() && settings.issuer.is_none() => {
                return Err(format!(
                    "--oauth with --store needs {} (or {}): every replica must open the keys \
                     the others sealed; set it to the same random value on each, e.g. \
                     `openssl rand -hex 32`",
                    settings::SECRET_VAR,
                    settings::SECRET_FILE_VAR
                ));
            }
            None => crypto::Sealer::ephemeral(),
        };
        let store = match redis {
            Some((connection, prefix)) => store::OAuthStore::Redis(connection, prefix),
            None => store::OAuthStore::Memory(store::MemoryStore::new(settings.max_records)),
        };
        let issuer = match &settings.issuer {
            Some(url) => Some(issuer::Issuer::new(url.clone())?),
            None => None,
        };
        Ok(Self {
            issuer,
            audiences: vec![settings.resource(), settings.public_url.clone()],
            registrations: clients::AddressRate::new(settings.registrations_per_minute),
            sign_ins: clients::AddressRate::new(settings.sign_ins_per_minute),
            documents: cimd::DocumentCache::new(settings.max_clients),
            settings,
            store,
            sealer,
            api,
        })
    }

    pub(crate) fn grants(&self) -> grants::Grants<'_> {
        grants::Grants {
            store: &self.store,
            sealer: &self.sealer,
            access_ttl: self.settings.access_ttl,
            refresh_ttl: self.settings.refresh_ttl,
        }
    }

    /// The registered client `client_id`, if any.
    /// A client id that is a URL is resolved as a metadata document; `Err` says why it
    /// cannot be used.
    pub(crate) async fn client(&self, client_id: &str) -> Result<Option<Client>, String> {
        if cimd::is_document_url(client_id) {
            if client_id.len() > 2048 {
                return Err("The application's client id is longer than 2048 bytes.".into());
            }
            let record = self.documents.resolve(&self.api, client_id).await?;
            return Ok(Some(Client {
                record,
                verified: false,
            }));
        }
        if client_id.len() > 256 {
            return Ok(None);
        }
        let record = self
            .store
            .get(&format!("client:{client_id}"))
            .await
            .map_err(|e| e.0)?;
        Ok(store::decode(record).map(|record| Client {
            record,
            verified: false,
        }))
    }

    /// Starts a client's idle time again: it just signed someone in.
    async fn touch_client(&self, client_id: &str) {
        let key = format!("client:{client_id}");
        if let Ok(Some(record)) = self.store.get(&key).await {
            let _ = self
                .store
                .put(&key, &record, self.settings.client_idle_ttl)
                .await;
            let _ = self
                .store
                .join_bounded(
                    "clients",
                    client_id,
                    self.settings.client_idle_ttl,
                    usize::MAX,
                )
                .await;
        }
    }
}

/// `POST /register` (RFC 7591).
async fn register(State(oauth): State<Arc<OAuth>>, request: axum::extract::Request) -> Response {
    /// Client metadata is a few hundred bytes; anything much larger is not one.
    const MAX_REGISTRATION_BYTES: usize = 64 * 1024;
    let connection = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .cloned();
    let error = |status: StatusCode, code: &str, description: &str| {
        token::oauth_error(status, code, description)
    };
    if let Some(ConnectInfo(peer)) = connection
        && let Err(wait) = oauth.registrations.check(peer.ip())
    {
        let mut response = error(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            "this address registered more clients than this server allows a minute \
             (--oauth-registrations-per-minute); retry after the Retry-After delay",
        );
        if let Ok(value) = HeaderValue::from_str(&wait.to_string()) {
            response.headers_mut().insert(header::RETRY_AFTER, value);
        }
        return response;
    }
    let Ok(body) = axum::body::to_bytes(request.into_body(), MAX_REGISTRATION_BYTES).await else {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_client_metadata",
            "the client metadata is larger than 64 KiB",
        );
    };
    let request: clients::RegistrationRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid_client_metadata",
                "the body is not client metadata as JSON (RFC 7591)",
            );
        }
    };
    let record = match clients::check_registration(request) {
        Ok(record) => record,
        Err((code, why)) => return error(StatusCode::BAD_REQUEST, code, &why),
    };
    let client_id = format!("hmcp_client_{}", crypto::random_token(16));
    let ttl = oauth.settings.client_idle_ttl;
    match oauth
        .store
        .join_bounded("clients", &client_id, ttl, oauth.settings.max_clients)
        .await
    {
        Ok(true) => {}
        Ok(false) => {
            tracing::warn!("refused a client registration: --oauth-max-clients reached");
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                "this server holds as many client registrations as it may \
                 (--oauth-max-clients); try again once unused ones expire",
            );
        }
        Err(e) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                &e.0,
            );
        }
    }
    if let Err(e) = oauth
        .store
        .put(&format!("client:{client_id}"), &store::encode(&record), ttl)
        .await
    {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            &e.0,
        );
    }
    let mut response = (
        StatusCode::CREATED,
        Json(serde_json::json!({
            "client_id": client_id,
            "client_id_issued_at": record.issued_at,
            "client_name": record.client_name,
            "redirect_uris": record.redirect_uris,
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code", "refresh_token"],
            "response_types": ["code"],
        })),
    )
        .into_response();
    page::secure_headers(response.headers_mut());
    response
}

/// The OAuth endpoints, merged beside `/mcp`: with `--oauth-issuer` only the protected
/// resource metadata (the authorization server is the issuer).
pub(crate) fn routes(oauth: Arc<OAuth>) -> Router {
    let mut public = Router::new()
        .route(
            "/.well-known/oauth-protected-resource",
            get(metadata::protected_resource_root),
        )
        .route(
            metadata::RESOURCE_METADATA_PATH,
            get(metadata::protected_resource_mcp),
        );
    let signs_in = oauth.issuer.is_none();
    if signs_in {
        public = public
            .route(
                "/.well-known/oauth-authorization-server",
                get(metadata::authorization_server),
            )
            .route("/token", post(token::token))
            .route("/revoke", post(token::revoke))
            .route("/register", post(register));
    }
    // No ambient credentials on these: any page may read them (not the sign-in page,
    // which is navigated to, never fetched).
    let public = public
        .with_state(oauth.clone())
        .layer(axum::middleware::from_fn_with_state(
            Arc::new(cors::Cors { origins: None }),
            cors::cors,
        ));
    if !signs_in {
        return public;
    }
    public.merge(
        Router::new()
            .route("/authorize", get(authorize::show).post(authorize::submit))
            .route(page::STYLE_PATH, get(page::style))
            .with_state(oauth),
    )
}

/// Wraps the MCP routes: CORS for the `--allowed-origin` origins, then the token check.
pub(crate) fn protect(mcp: Router, oauth: Arc<OAuth>) -> Router {
    let cors = Arc::new(cors::Cors {
        origins: Some(oauth.settings.cors_origins.clone()),
    });
    mcp.layer(axum::middleware::from_fn_with_state(oauth, guard::guard))
        .layer(axum::middleware::from_fn_with_state(cors, cors::cors))
}
