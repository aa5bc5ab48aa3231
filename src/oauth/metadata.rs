//! The discovery documents: Protected Resource Metadata (RFC 9728), at the root and in the
//! path-suffixed form for `/mcp`, and Authorization Server Metadata (RFC 8414).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};

use super::OAuth;
use super::grants::SCOPE;

/// Where the protected resource metadata of `/mcp` is published.
pub(crate) const RESOURCE_METADATA_PATH: &str = "/.well-known/oauth-protected-resource/mcp";

fn resource_document(oauth: &OAuth, resource: String) -> Response {
    let mut response = Json(serde_json::json!({
        "resource": resource,
        "authorization_servers": [oauth.settings.issuer.as_ref().unwrap_or(&oauth.settings.public_url)],
        "scopes_supported": oauth.settings.required_scope().into_iter().collect::<Vec<_>>(),
        "bearer_methods_supported": ["header"],
        "resource_name": "Handinger MCP",
    }))
    .into_response();
    super::page::secure_headers(response.headers_mut());
    response
}

/// `/.well-known/oauth-protected-resource/mcp`: the MCP endpoint's metadata.
pub(crate) async fn protected_resource_mcp(State(oauth): State<Arc<OAuth>>) -> Response {
    resource_document(&oauth, oauth.settings.resource())
}

/// `/.well-known/oauth-protected-resource`: the server's (tokens for it are accepted too).
pub(crate) async fn protected_resource_root(State(oauth): State<Arc<OAuth>>) -> Response {
    resource_document(&oauth, oauth.settings.public_url.clone())
}

pub(crate) async fn authorization_server(State(oauth): State<Arc<OAuth>>) -> Response {
    let base = &oauth.settings.public_url;
    let mut response = Json(serde_json::json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}/authorize"),
        "token_endpoint": format!("{base}/token"),
        "registration_endpoint": format!("{base}/register"),
        "revocation_endpoint": format!("{base}/revoke"),
        "scopes_supported": [SCOPE],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["none"],
        "revocation_endpoint_auth_methods_supported": ["none"],
        "authorization_response_iss_parameter_supported": true,
        "client_id_metadata_document_supported": true,
    }))
    .into_response();
    super::page::secure_headers(response.headers_mut());
    response
}
