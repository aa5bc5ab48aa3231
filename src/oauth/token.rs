//! The token endpoint (authorization code and refresh token grants) and revocation
//! (RFC 7009). Form-encoded requests; JSON answers that are never cached.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::StatusCode;

use super::OAuth;
use super::grants::{Failure, Refusal};

fn no_store(mut response: Response) -> Response {
    super::page::secure_headers(response.headers_mut());
    response
}

/// An RFC 6749 §5.2 error.
pub(crate) fn oauth_error(status: StatusCode, error: &str, description: &str) -> Response {
    no_store(
        (
            status,
            Json(serde_json::json!({"error": error, "error_description": description})),
        )
            .into_response(),
    )
}

fn failure(failure: Failure) -> Response {
    match failure {
        Failure::Refused(Refusal(code, why)) => {
            let status = if code == "invalid_client" {
                StatusCode::UNAUTHORIZED
            } else {
                StatusCode::BAD_REQUEST
            };
            oauth_error(status, code, &why)
        }
        Failure::Store(error) => oauth_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            &error.0,
        ),
    }
}

pub(crate) async fn token(
    State(oauth): State<Arc<OAuth>>,
    axum::Form(form): axum::Form<HashMap<String, String>>,
) -> Response {
    let get = |name: &str| form.get(name).map(String::as_str).filter(|v| !v.is_empty());
    let Some(client_id) = get("client_id") else {
        return oauth_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            "client_id is missing: this server's clients are public and send their client_id",
        );
    };
    match oauth.client(client_id).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return oauth_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                "unknown client_id, or its registration expired: register again",
            );
        }
        Err(error) if super::cimd::is_document_url(client_id) => {
            return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", &error);
        }
        Err(error) => {
            return oauth_error(
                StatusCode::SERVICE_UNAVAILABLE,
                "temporarily_unavailable",
                &error,
            );
        }
    }
    let grants = oauth.grants();
    let issued = match get("grant_type") {
        Some("authorization_code") => {
            let Some(code) = get("code") else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "code is missing",
                );
            };
            grants
                .exchange_code(
                    code,
                    client_id,
                    get("redirect_uri"),
                    get("code_verifier"),
                    get("resource"),
                )
                .await
        }
        Some("refresh_token") => {
            let Some(refresh_token) = get("refresh_token") else {
                return oauth_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    "refresh_token is missing",
                );
            };
            grants
                .refresh(refresh_token, client_id, get("resource"))
                .await
        }
        _ => {
            return oauth_error(
                StatusCode::BAD_REQUEST,
                "unsupported_grant_type",
                "grant_type must be authorization_code or refresh_token",
            );
        }
    };
    match issued {
        Ok(issued) => no_store(
            Json(serde_json::json!({
                "access_token": issued.access_token,
                "token_type": "Bearer",
                "expires_in": issued.expires_in,
                "refresh_token": issued.refresh_token,
                "scope": super::grants::SCOPE,
            }))
            .into_response(),
        ),
        Err(error) => failure(error),
    }
}

pub(crate) async fn revoke(
    State(oauth): State<Arc<OAuth>>,
    axum::Form(form): axum::Form<HashMap<String, String>>,
) -> Response {
    let Some(token) = form.get("token").filter(|t| !t.is_empty()) else {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "token is missing",
        );
    };
    match oauth.grants().revoke(token).await {
        Ok(()) => no_store(StatusCode::OK.into_response()),
        Err(error) => oauth_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "temporarily_unavailable",
            &error.0,
        ),
    }
}
