//! CORS for browser-based clients (MCP Inspector's direct mode, web IDEs, in-browser
//! agents), in OAuth mode.
//!
//! The discovery documents, registration, token and revocation endpoints carry no ambient
//! credentials (no cookies; what they need is in the request itself), so they answer any
//! origin. The MCP endpoints answer only the `--allowed-origin` origins (which the Origin
//! check before them allows too), and expose `Mcp-Session-Id` (a page must read it to go on
//! with its session) and `WWW-Authenticate` (to find the metadata after a 401). Preflights
//! are answered here, before the token check: they carry no token.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Method, StatusCode, header};

const ALLOWED_METHODS: &str = "GET, POST, DELETE, OPTIONS";
const ALLOWED_HEADERS: &str = "authorization, content-type, accept, mcp-session-id, \
                               mcp-protocol-version, last-event-id";
const EXPOSED_HEADERS: &str = "mcp-session-id, www-authenticate, mcp-protocol-version";

pub(crate) struct Cors {
    /// `None`: any origin (the credential-free endpoints).
    pub origins: Option<Vec<String>>,
}

impl Cors {
    fn allows(&self, origin: &str) -> bool {
        match &self.origins {
            None => true,
            Some(list) => list.iter().any(|o| o.eq_ignore_ascii_case(origin)),
        }
    }
}

/// Normalises `--allowed-origin` values as browsers send them: no trailing slash.
pub(crate) fn origins(raw: &[String]) -> Vec<String> {
    raw.iter()
        .map(|o| o.trim().trim_end_matches('/').to_owned())
        .filter(|o| !o.is_empty())
        .collect()
}

pub(crate) async fn cors(State(cors): State<Arc<Cors>>, request: Request, next: Next) -> Response {
    let origin = request
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let Some(origin) = origin else {
        return next.run(request).await;
    };
    let allowed = cors.allows(&origin);
    let preflight = request.method() == Method::OPTIONS
        && request
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        if !allowed {
            return (
                StatusCode::FORBIDDEN,
                "Forbidden: this origin may not call this server from a browser; its operator \
                 can allow it with --allowed-origin",
            )
                .into_response();
        }
        let mut response = StatusCode::NO_CONTENT.into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static(ALLOWED_METHODS),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static(ALLOWED_HEADERS),
        );
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from_static("600"),
        );
        allow(&cors, headers, &origin);
        return response;
    }
    let mut response = next.run(request).await;
    if allowed {
        let headers = response.headers_mut();
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static(EXPOSED_HEADERS),
        );
        allow(&cors, headers, &origin);
    }
    response
}

fn allow(cors: &Cors, headers: &mut http::HeaderMap, origin: &str) {
    if cors.origins.is_none() {
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
    } else if let Ok(value) = HeaderValue::from_str(origin) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, value);
        headers.append(header::VARY, HeaderValue::from_static("origin"));
    }
}
