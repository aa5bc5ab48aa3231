//! The authorization endpoint: the sign-in page (GET) and its form (POST).
//!
//! GET checks the client and its redirect URI first; until both are known good, every
//! problem is a page here, never a redirect (so the endpoint cannot send a browser to a
//! place the client did not register). Then the other parameters: `response_type=code`,
//! PKCE `S256`, the resource (this server) and the scope; problems with those go back to
//! the client's redirect URI as RFC 6749 errors. What the request asks is sealed into the
//! form, bound to a cookie set with the page: the form is its own CSRF token, and a form
//! posted from anywhere else (without it, or without the cookie) is refused.
//!
//! POST checks the form, then the key, with one cheap read at Handinger
//! (`GET /api/tasks/<fresh id>`, as `doctor` does: 404 means accepted); a wrong, revoked or
//! read-only key gets the page again with a message. Only then is a code issued and the
//! browser sent back with `code`, `state` and `iss` (RFC 9207).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq as _;

use super::OAuth;
use super::crypto::{random_token, token_digest};
use super::page::{self, Consent};
use crate::handinger::ApiError;
use crate::task_id::TaskId;

/// How long a sign-in page may stay open before its form is refused.
const PENDING_SECS: u64 = 600;
const COOKIE: &str = "hmcp_signin";
const PENDING_CONTEXT: &str = "pending sign-in";
/// Longest key accepted in the form; Handinger's are far shorter.
const MAX_KEY_BYTES: usize = 512;

#[derive(Serialize, Deserialize)]
struct Pending {
    client_id: String,
    redirect_uri: String,
    state: Option<String>,
    challenge: String,
    resource: String,
    /// SHA-256 of the cookie set with the page.
    cookie: String,
    expires: u64,
    client_name: Option<String>,
    verified: bool,
    /// Whether the request named its redirect URI: the token request must then repeat it
    /// (RFC 6749 §4.1.3); one that relied on the only registered URI need not.
    #[serde(default)]
    redirect_given: bool,
}

fn problem(status: StatusCode, message: &str) -> Response {
    page::respond(status, page::problem(message), None)
}

/// The origin (or, for a private-use scheme, `scheme:`) of a redirect URI, for the CSP.
fn redirect_target(redirect_uri: &str) -> (String, String) {
    match reqwest::Url::parse(redirect_uri) {
        Ok(url) if url.scheme() == "http" || url.scheme() == "https" => {
            let origin = url.origin().ascii_serialization();
            let host = url.host_str().unwrap_or_default().to_owned();
            (origin, host)
        }
        Ok(url) => (format!("{}:", url.scheme()), format!("{}:", url.scheme())),
        Err(_) => ("'none'".into(), String::new()),
    }
}

/// Sends the browser back to the client with `params`, `state` and `iss`.
fn back_to_client(
    oauth: &OAuth,
    redirect_uri: &str,
    state: Option<&str>,
    params: &[(&str, &str)],
) -> Response {
    let Ok(mut url) = reqwest::Url::parse(redirect_uri) else {
        return problem(StatusCode::BAD_REQUEST, "the redirect URI is not a URI");
    };
    {
        let mut query = url.query_pairs_mut();
        for (name, value) in params {
            query.append_pair(name, value);
        }
        if let Some(state) = state {
            query.append_pair("state", state);
        }
        query.append_pair("iss", &oauth.settings.public_url);
    }
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(location) = HeaderValue::from_str(url.as_str()) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    page::secure_headers(response.headers_mut());
    response
}

fn error_back(
    oauth: &OAuth,
    redirect_uri: &str,
    state: Option<&str>,
    error: &str,
    description: &str,
) -> Response {
    back_to_client(
        oauth,
        redirect_uri,
        state,
        &[("error", error), ("error_description", description)],
    )
}

pub(crate) async fn show(
    State(oauth): State<Arc<OAuth>>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let get = |name: &str| {
        query
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.is_empty())
    };
    let Some(client_id) = get("client_id") else {
        return problem(
            StatusCode::BAD_REQUEST,
            "The request names no application (client_id is missing).",
        );
    };
    let client = match oauth.client(client_id).await {
        Ok(Some(client)) => client,
        Ok(None) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "The application is not registered with this server (unknown client_id), or \
                 its registration expired: let it register again.",
            );
        }
        Err(error) if super::cimd::is_document_url(client_id) => {
            return problem(StatusCode::BAD_REQUEST, &error);
        }
        Err(error) => return problem(StatusCode::SERVICE_UNAVAILABLE, &error),
    };
    let redirect_given = get("redirect_uri").is_some();
    let redirect_uri = match get("redirect_uri") {
        Some(uri) if super::clients::redirect_allowed(&client.record.redirect_uris, uri) => {
            uri.to_owned()
        }
        Some(_) => {
            return problem(
                StatusCode::BAD_REQUEST,
                "The address the application asks to return to is not one it registered \
                 (redirect_uri): nothing was sent to it.",
            );
        }
        None if client.record.redirect_uris.len() == 1 => client.record.redirect_uris[0].clone(),
        None => {
            return problem(
                StatusCode::BAD_REQUEST,
                "The request names no redirect_uri, and the application registered several.",
            );
        }
    };
    let state = get("state");
    if get("response_type") != Some("code") {
        return error_back(
            &oauth,
            &redirect_uri,
            state,
            "unsupported_response_type",
            "only response_type=code is supported",
        );
    }
    let challenge = match (get("code_challenge"), get("code_challenge_method")) {
        (Some(challenge), Some("S256")) if challenge.len() == 43 => challenge.to_owned(),
        _ => {
            return error_back(
                &oauth,
                &redirect_uri,
                state,
                "invalid_request",
                "PKCE is required: send code_challenge with code_challenge_method=S256",
            );
        }
    };
    let resource = match get("resource") {
        None => oauth.settings.resource(),
        Some(resource) if oauth.audiences.iter().any(|a| a == resource) => resource.to_owned(),
        Some(_) => {
            return error_back(
                &oauth,
                &redirect_uri,
                state,
                "invalid_target",
                "this server issues tokens only for its own resource",
            );
        }
    };
    if let Some(scope) = get("scope")
        && scope
            .split(' ')
            .any(|s| !s.is_empty() && s != super::grants::SCOPE)
    {
        return error_back(
            &oauth,
            &redirect_uri,
            state,
            "invalid_scope",
            "the only scope is handinger",
        );
    }
    let cookie = random_token(32);
    let pending = Pending {
        client_id: client_id.to_owned(),
        redirect_uri: redirect_uri.clone(),
        state: state.map(str::to_owned),
        challenge,
        resource,
        cookie: token_digest(&cookie),
        expires: super::grants::now_secs() + PENDING_SECS,
        client_name: client.record.client_name.clone(),
        verified: client.verified,
        redirect_given,
    };
    let sealed = oauth
        .sealer
        .seal(&super::store::encode(&pending), PENDING_CONTEXT);
    let mut response = render(&oauth, &pending, &sealed, None, StatusCode::OK);
    let secure = if oauth.settings.public_url.starts_with("https:") {
        "; Secure"
    } else {
        ""
    };
    if let Ok(value) = HeaderValue::from_str(&format!(
        "{COOKIE}={cookie}; Path=/authorize; HttpOnly; SameSite=Strict; Max-Age={PENDING_SECS}{secure}"
    )) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

fn render(
    _oauth: &OAuth,
    pending: &Pending,
    sealed: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    let (target, host) = redirect_target(&pending.redirect_uri);
    let html = page::consent(&Consent {
        client_name: pending.client_name.as_deref(),
        verified: pending.verified,
        redirect_host: &host,
        request: sealed,
        error,
    });
    page::respond(status, html, Some(&target))
}

fn cookie_value(headers: &HeaderMap) -> Option<String> {
    let header = headers.get(header::COOKIE)?.to_str().ok()?;
    header.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == COOKIE).then(|| value.to_owned())
    })
}

pub(crate) async fn submit(
    State(oauth): State<Arc<OAuth>>,
    connection: Option<axum::Extension<axum::extract::ConnectInfo<std::net::SocketAddr>>>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<HashMap<String, String>>,
) -> Response {
    const NOT_VALID: &str = "This sign-in form is not valid here (it did not come from this \
                             server's page, or that page is too old). Start again from your \
                             application.";
    let Some(sealed) = form.get("request").filter(|r| !r.is_empty()) else {
        tracing::warn!("refused a sign-in form without its request token (CSRF)");
        return problem(StatusCode::FORBIDDEN, NOT_VALID);
    };
    let Some(pending) = oauth
        .sealer
        .open(sealed, PENDING_CONTEXT)
        .ok()
        .and_then(|(plain, _)| serde_json::from_slice::<Pending>(&plain).ok())
    else {
        tracing::warn!("refused a sign-in form whose request token does not open (CSRF)");
        return problem(StatusCode::FORBIDDEN, NOT_VALID);
    };
    let cookie_matches = cookie_value(&headers).is_some_and(|cookie| {
        bool::from(
            token_digest(&cookie)
                .as_bytes()
                .ct_eq(pending.cookie.as_bytes()),
        )
    });
    if !cookie_matches || pending.expires <= super::grants::now_secs() {
        tracing::warn!("refused a sign-in form without its page's cookie, or too old (CSRF)");
        return problem(StatusCode::FORBIDDEN, NOT_VALID);
    }
    // Browsers send `Origin: null` for this page's own form (its Referrer-Policy is
    // no-referrer); any other origin is another site's page.
    if let Some(origin) = headers.get(header::ORIGIN)
        && origin.as_bytes() != b"null"
        && origin.as_bytes() != oauth.settings.public_origin().as_bytes()
    {
        tracing::warn!("refused a sign-in form posted from another origin");
        return problem(StatusCode::FORBIDDEN, NOT_VALID);
    }
    if form.get("action").map(String::as_str) != Some("approve") {
        return error_back(
            &oauth,
            &pending.redirect_uri,
            pending.state.as_deref(),
            "access_denied",
            "the user denied the request",
        );
    }
    let key = form.get("api_key").map(|k| k.trim()).unwrap_or_default();
    let again = |message: &str, status| render(&oauth, &pending, sealed, Some(message), status);
    if key.is_empty() {
        return again("Enter your Handinger API key.", StatusCode::BAD_REQUEST);
    }
    if key.len() > MAX_KEY_BYTES || !key.bytes().all(|b| b.is_ascii_graphic()) {
        return again(
            "That is not a Handinger API key: paste the key (it starts with hdg_live_) \
             without spaces or line breaks.",
            StatusCode::BAD_REQUEST,
        );
    }
    if let Some(axum::Extension(axum::extract::ConnectInfo(peer))) = connection
        && oauth.sign_ins.check(peer.ip()).is_err()
    {
        tracing::warn!("refused a sign-in: --oauth-sign-ins-per-minute reached for an address");
        return again(
            "Too many sign-in attempts from your address: wait a minute, then try again.",
            StatusCode::TOO_MANY_REQUESTS,
        );
    }
    if let Err((message, status)) = verify_key(&oauth, key).await {
        return again(&message, status);
    }
    let grants = oauth.grants();
    match grants
        .issue_code(
            &pending.client_id,
            pending
                .redirect_given
                .then_some(pending.redirect_uri.as_str()),
            &pending.challenge,
            &pending.resource,
            key,
        )
        .await
    {
        Ok(code) => {
            oauth.touch_client(&pending.client_id).await;
            back_to_client(
                &oauth,
                &pending.redirect_uri,
                pending.state.as_deref(),
                &[("code", &code)],
            )
        }
        Err(error) => again(&error.0, StatusCode::SERVICE_UNAVAILABLE),
    }
}

/// One cheap authenticated read with the key: a fresh task id nobody used, so Handinger
/// answers 404 when it takes the key.
async fn verify_key(oauth: &OAuth, key: &str) -> Result<(), (String, StatusCode)> {
    let client = oauth
        .api
        .with_key(&SecretString::from(key.to_owned()))
        .map_err(|_| {
            (
                "That is not a Handinger API key: paste the key as it was given.".to_owned(),
                StatusCode::BAD_REQUEST,
            )
        })?;
    let fresh = TaskId::generate();
    match client.probe(&["api", "tasks", fresh.as_str()]).await {
        Ok(_) | Err(ApiError::Status { status: 404, .. }) => Ok(()),
        Err(ApiError::Status { status: 401, .. }) => Err((
            "Handinger did not accept this key: it is wrong or was revoked. Check it in the \
             Handinger dashboard, or create a new one."
                .to_owned(),
            StatusCode::UNAUTHORIZED,
        )),
        Err(ApiError::Status { status: 403, .. }) => Err((
            "This key cannot run tasks (it is read-only, or has no API access): use a key \
             with API access."
                .to_owned(),
            StatusCode::FORBIDDEN,
        )),
        Err(error) => {
            tracing::warn!(%error, "could not check a key at sign-in");
            Err((
                "Handinger could not be reached to check the key; try again in a moment."
                    .to_owned(),
                StatusCode::BAD_GATEWAY,
            ))
        }
    }
}
