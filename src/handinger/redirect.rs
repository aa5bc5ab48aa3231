//! Redirects: never followed by the HTTP stack, followed by hand only for file downloads.
//!
//! reqwest's own redirect handling cannot be trusted with the API key: on a chain that
//! leaves the API's origin and comes back to the foreign host, later hops were sent with
//! the original headers again, `Authorization` included. So every client here is built
//! with `redirect::Policy::none()`:
//!
//! - API calls (task POSTs, lookups, worker and schedule calls) follow no redirect at all;
//!   a redirect answer is an error that says so ([`refusal`]).
//! - Answer-file downloads follow up to [`MAX_HOPS`] redirects by hand, deciding each hop
//!   afresh: the key goes along only while every hop so far stayed on the API's origin, and
//!   a hop anywhere else must pass the file-host check ([`super::fetch_guard`]).

use std::time::Duration;

use reqwest::header;

use super::fetch_guard::FileHosts;

/// Most redirects one download follows.
pub const MAX_HOPS: usize = 5;

/// How long to wait for a TCP/TLS connection before calling the request unsent.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The clients one process uses: one for the API (credentials, the system proxy) and one
/// for answer files on other hosts (no credentials ever, only public addresses unless the
/// operator allowed a host, and no proxy, so the address checked is the address connected
/// to). Cheap to clone; clones share connection pools.
#[derive(Clone)]
pub struct HttpClients {
    pub api: reqwest::Client,
    pub files: reqwest::Client,
}

impl HttpClients {
    /// The one place HTTP clients are built. Loading the system's CA store makes this slow
    /// (see [`super::lazy_http`], which runs it off the start-up path).
    pub fn new(file_hosts: &FileHosts) -> Result<Self, reqwest::Error> {
        use_ring_crypto();
        let api = builder().build()?;
        let files = builder()
            .no_proxy()
            .dns_resolver(file_hosts.resolver())
            .build()?;
        Ok(Self { api, files })
    }
}

/// Makes ring the process's TLS crypto provider, once: reqwest is built without a provider
/// of its own (its default, aws-lc-rs, would be a second backend beside redis's), and it
/// needs one installed before a client is built. Idempotent, and harmless when another
/// provider was installed first.
pub fn use_ring_crypto() {
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .user_agent(concat!("handinger-mcp/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(CONNECT_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
}

/// Where a redirect answer points, resolved against the URL that gave it; `None` when the
/// answer is not a redirect.
pub fn target(response: &reqwest::Response) -> Option<Result<reqwest::Url, String>> {
    if !matches!(response.status().as_u16(), 301 | 302 | 303 | 307 | 308) {
        return None;
    }
    let location = response
        .headers()
        .get(header::LOCATION)
        .and_then(|v| v.to_str().ok());
    Some(match location {
        Some(location) => response.url().join(location).map_err(|e| {
            format!(
                "HTTP {} redirect to an unusable location ({e})",
                response.status().as_u16()
            )
        }),
        None => Err(format!(
            "HTTP {} redirect without a Location",
            response.status().as_u16()
        )),
    })
}

/// The message of an API answer that is a redirect: it is not followed, since the request
/// carries the key. Names only the target's origin (a full URL could carry a token).
pub fn refusal(response: &reqwest::Response) -> Option<String> {
    let target = target(response)?;
    let whereto = match target {
        Ok(url) => url.origin().ascii_serialization(),
        Err(_) => "an unusable location".into(),
    };
    Some(format!(
        "it answered with a redirect to {whereto}, which the bridge does not follow on API \
         calls (they carry the API key): set HANDINGER_BASE_URL to the address the API \
         answers at directly"
    ))
}
