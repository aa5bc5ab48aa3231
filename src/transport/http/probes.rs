//! Operational endpoints: `/healthz` (the process answers), `/readyz` (it should get
//! traffic: not shutting down, Handinger is reachable and so is the shared turn store when
//! `--store` names one) and `/metrics` (Prometheus).

use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use tokio_util::sync::CancellationToken;

use super::sse::LegacySse;
use super::streamable::StreamableMcp;
use crate::metrics::{self, OpenSessions};

/// How long one upstream check's verdict is reused: probes from several sources (kubelet,
/// load balancer) then cost Handinger at most one request per interval.
const READY_CACHE: Duration = Duration::from_secs(5);
/// Longest a readiness check waits for Handinger.
const READY_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Probes {
    pub streamable: Arc<StreamableMcp>,
    pub sse: Arc<LegacySse>,
    pub shutdown: CancellationToken,
    upstream: Upstream,
    /// The shared turn store: without it `create_task` refuses to post, so a replica that
    /// cannot reach it should get no traffic.
    store: Option<Arc<crate::turns::shared::SharedStore>>,
}

struct Upstream {
    http: crate::handinger::LazyHttp,
    url: String,
    last: Mutex<Option<(Instant, Result<(), String>)>>,
}

impl Probes {
    pub fn new(
        streamable: Arc<StreamableMcp>,
        sse: Arc<LegacySse>,
        shutdown: CancellationToken,
        base_url: &str,
        http: crate::handinger::LazyHttp,
    ) -> Result<Self, String> {
        Ok(Self {
            streamable,
            sse,
            shutdown,
            upstream: Upstream {
                http,
                // Unauthenticated on purpose: any HTTP answer (401 included) shows the API
                // is reachable, and no key needs to travel for it.
                url: format!("{base_url}/api/tasks"),
                last: Mutex::new(None),
            },
            store: None,
        })
    }

    /// Makes readiness depend on the shared turn store too.
    pub fn with_store(mut self, store: Option<Arc<crate::turns::shared::SharedStore>>) -> Self {
        self.store = store;
        self
    }
}

impl Upstream {
    async fn reachable(&self) -> Result<(), String> {
        if let Some((at, verdict)) = self
            .last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            && at.elapsed() < READY_CACHE
        {
            return verdict.clone();
        }
        let verdict = match self.http.get().await {
            Err(setup) => Err(setup),
            Ok(http) => match http.api.get(&self.url).timeout(READY_TIMEOUT).send().await {
                Ok(_) => Ok(()),
                Err(error) => Err(format!(
                    "cannot reach the Handinger API at {}: {}",
                    self.url,
                    innermost_cause(&error)
                )),
            },
        };
        *self.last.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((Instant::now(), verdict.clone()));
        verdict
    }
}

/// The error's innermost cause ("Connection refused"), which says more than reqwest's own
/// summary line.
fn innermost_cause(error: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text = cause.to_string();
        source = cause.source();
    }
    text
}

pub async fn healthz() -> &'static str {
    "ok\n"
}

pub async fn readyz(State(probes): State<Arc<Probes>>) -> Response {
    if probes.shutdown.is_cancelled() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: shutting down\n",
        )
            .into_response();
    }
    if let Some(store) = &probes.store
        && let Err(reason) = store.ping().await
    {
        tracing::warn!(%reason, "not ready");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        )
            .into_response();
    }
    match probes.upstream.reachable().await {
        Ok(()) => "ready\n".into_response(),
        Err(reason) => {
            tracing::warn!(%reason, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {reason}\n"),
            )
                .into_response()
        }
    }
}

pub async fn metrics(State(probes): State<Arc<Probes>>) -> Response {
    let sessions = OpenSessions {
        streamable_http: probes.streamable.open_sessions().await,
        sse: probes.sse.open_sessions(),
    };
    let mut response = metrics::render(sessions).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}
