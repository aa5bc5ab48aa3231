//! The resource server's check on every MCP request (`/mcp` with or without sessions,
//! stateless, `/sse` and `/message`): a live access token issued for this server.
//!
//! A request without one gets 401 with `WWW-Authenticate: Bearer resource_metadata=…`, which
//! is where an MCP client starts its sign-in. A valid token is replaced, before anything
//! else sees the request, by what `--key-from-request` reads: the user's Handinger key in
//! `X-Handinger-Api-Key` (any such header the client sent is dropped). The token itself
//! never goes further, and never upstream. `Authorization` becomes the grant's id, so a
//! session is bound to the sign-in that opened it (the sessions' owner digest covers that
//! header) and survives the client's refreshes, while another user's token, or a
//! later sign-in, finds it unknown.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

use super::OAuth;
use super::metadata::RESOURCE_METADATA_PATH;
use crate::tools::API_KEY_HEADER;

fn challenge(oauth: &OAuth, status: StatusCode, error: Option<(&str, &str)>) -> Response {
    let metadata = format!("{}{RESOURCE_METADATA_PATH}", oauth.settings.public_url);
    let scope = oauth
        .settings
        .required_scope()
        .map(|scope| format!(", scope=\"{scope}\""))
        .unwrap_or_default();
    let value = match error {
        Some((code, description)) => format!(
            "Bearer error=\"{code}\", error_description=\"{description}\", \
             resource_metadata=\"{metadata}\"{scope}"
        ),
        None => format!("Bearer resource_metadata=\"{metadata}\"{scope}"),
    };
    let message = match error {
        Some((_, description)) => format!("Unauthorized: {description}; sign in again"),
        None => "Unauthorized: sign in with OAuth (this server's authorization server is \
                 named in the resource metadata of WWW-Authenticate)"
            .to_owned(),
    };
    let mut response = (status, message).into_response();
    if let Ok(value) = HeaderValue::from_str(&value) {
        response
            .headers_mut()
            .insert(header::WWW_AUTHENTICATE, value);
    }
    response
}

pub(crate) async fn guard(
    State(oauth): State<Arc<OAuth>>,
    mut request: Request,
    next: Next,
) -> Response {
    let headers = request.headers_mut();
    if headers
        .get_all(header::AUTHORIZATION)
        .iter()
        .nth(1)
        .is_some()
    {
        return (
            StatusCode::BAD_REQUEST,
            "Bad Request: the request has more than one authorization header; send it once",
        )
            .into_response();
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.trim().split_once(' ')?;
            scheme
                .eq_ignore_ascii_case("bearer")
                .then(|| token.trim().to_owned())
        });
    let Some(token) = token else {
        return challenge(&oauth, StatusCode::UNAUTHORIZED, None);
    };
    if let Some(issuer) = &oauth.issuer {
        // The organisation's own token: checked, then the call runs on the server's key.
        let (subject, scopes) = match issuer.check(&token, &oauth.audiences).await {
            Ok(checked) => checked,
            Err(why) => {
                tracing::info!(reason = why, "refused an access token");
                return challenge(
                    &oauth,
                    StatusCode::UNAUTHORIZED,
                    Some(("invalid_token", why)),
                );
            }
        };
        if let Some(required) = oauth.settings.issuer_scope.as_deref()
            && !scopes
                .as_deref()
                .is_some_and(|scopes| scopes.split(' ').any(|s| s == required))
        {
            return challenge(
                &oauth,
                StatusCode::FORBIDDEN,
                Some((
                    "insufficient_scope",
                    "the token lacks the scope this server requires",
                )),
            );
        }
        tracing::debug!(user = %crate::printable::one_line(&subject.0), "request of a signed-in user");
        headers.remove(API_KEY_HEADER);
        // Sessions are bound to the subject (its digest: any text fits a header then).
        let owner = format!("OAuth-Subject {}", super::crypto::token_digest(&subject.0));
        if let Ok(mut owner) = HeaderValue::from_str(&owner) {
            owner.set_sensitive(true);
            headers.insert(header::AUTHORIZATION, owner);
        }
        return next.run(request).await;
    }
    let bearer = match oauth.grants().check_access(&token, &oauth.audiences).await {
        Ok(Ok(bearer)) => bearer,
        Ok(Err(why)) => {
            tracing::info!(reason = why, "refused an access token");
            return challenge(
                &oauth,
                StatusCode::UNAUTHORIZED,
                Some(("invalid_token", why)),
            );
        }
        Err(error) => {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("Service Unavailable: {}", error.0),
            )
                .into_response();
        }
    };
    if !bearer.scope.split(' ').any(|s| s == super::grants::SCOPE) {
        return challenge(
            &oauth,
            StatusCode::FORBIDDEN,
            Some(("insufficient_scope", "the token lacks the handinger scope")),
        );
    }
    use secrecy::ExposeSecret as _;
    let Ok(mut key) = HeaderValue::from_str(bearer.key.expose_secret()) else {
        return challenge(
            &oauth,
            StatusCode::UNAUTHORIZED,
            Some(("invalid_token", "the key behind the token cannot be sent")),
        );
    };
    key.set_sensitive(true);
    headers.remove(API_KEY_HEADER);
    headers.insert(API_KEY_HEADER, key);
    if let Ok(mut grant) = HeaderValue::from_str(&format!("OAuth-Grant {}", bearer.grant)) {
        grant.set_sensitive(true);
        headers.insert(header::AUTHORIZATION, grant);
    }
    next.run(request).await
}
