//! Operational endpoints: `/healthz` (the process answers), `/readyz` (it should get
//! traffic: not shutting down, Handinger is reachable and so is the shared turn store when
//! `--store` names one) and `/metrics` (Prometheus).
//!
//! `/readyz` answers anyone (orchestrators send no token), but why it is not ready names
//! the API's address and the cause: that goes to the log, and to callers `/metrics` would
//! serve ([`details_gate`]); anyone else reads which dependency failed, not where it is.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use tokio_util::sync::CancellationToken;

use super::access::Access;
use super::sse::LegacySse;
use super::streamable::StreamableMcp;
use crate::handinger::HandingerClient;
use crate::metrics::{Metrics, OpenSessions};

/// How long a readiness check's verdict (Handinger's, the store's) is reused.
const READY_CACHE: Duration = Duration::from_secs(5);
/// Longest a readiness check waits for Handinger.
const READY_TIMEOUT: Duration = Duration::from_secs(5);

pub(super) struct Probes {
    pub streamable: Arc<StreamableMcp>,
    pub sse: Arc<LegacySse>,
    pub shutdown: CancellationToken,
    metrics: Arc<Metrics>,
    api: HandingerClient,
    upstream: Verdict,
    /// The shared turn store: without it `create_task` refuses to post, so a replica that
    /// cannot reach it should get no traffic.
    store: Option<(Arc<crate::turns::store::TurnStore>, Verdict)>,
}

/// The last verdict of one readiness check, reused for [`READY_CACHE`]: probes from several
/// sources (kubelet, load balancer, anyone who can reach the port) then cost what they
/// check at most one request per interval. The lock is held across the check, so probes
/// that arrive while one runs wait for its verdict instead of each starting their own.
#[derive(Default)]
struct Verdict {
    last: tokio::sync::Mutex<Option<(Instant, Result<(), NotReady>)>>,
}

/// Why the server is not ready: which dependency, for anyone, and the cause with its
/// address, for the log and callers who may see it.
#[derive(Clone)]
struct NotReady {
    what: &'static str,
    detail: String,
}

/// Whether this `/readyz` caller may read the cause ([`details_gate`]).
#[derive(Clone, Copy)]
pub(super) struct Details(bool);

/// Decides [`Details`] for a `/readyz` request ([`Access::may_see_details`]); a request
/// with credentials that fail is refused as `/metrics` refuses it.
pub(super) async fn details_gate(
    State(access): State<Arc<Access>>,
    mut request: Request,
    next: Next,
) -> Response {
    match access.may_see_details(&mut request) {
        Ok(details) => {
            request.extensions_mut().insert(Details(details));
            next.run(request).await
        }
        Err(refusal) => refusal,
    }
}

impl Probes {
    pub(super) fn new(
        streamable: Arc<StreamableMcp>,
        sse: Arc<LegacySse>,
        shutdown: CancellationToken,
        metrics: Arc<Metrics>,
        api: HandingerClient,
    ) -> Self {
        Self {
            streamable,
            sse,
            shutdown,
            metrics,
            api,
            upstream: Verdict::default(),
            store: None,
        }
    }

    /// Makes readiness depend on the shared turn store too.
    pub(super) fn with_store(mut self, store: Option<Arc<crate::turns::store::TurnStore>>) -> Self {
        self.store = store.map(|store| (store, Verdict::default()));
        self
    }
}

impl Verdict {
    /// The cached verdict while it is fresh, else `check`'s (then cached); a failure is
    /// `what` failed.
    async fn get(
        &self,
        what: &'static str,
        check: impl Future<Output = Result<(), String>>,
    ) -> Result<(), NotReady> {
        // Each check has its own time limit (READY_TIMEOUT, the store's operation timeout),
        // so a probe waits here at most that long.
        let mut last = self.last.lock().await;
        if let Some((at, verdict)) = last.as_ref()
            && at.elapsed() < READY_CACHE
        {
            return verdict.clone();
        }
        let verdict = check.await.map_err(|detail| NotReady { what, detail });
        *last = Some((Instant::now(), verdict.clone()));
        verdict
    }
}

pub(super) async fn healthz() -> &'static str {
    "ok\n"
}

pub(super) async fn readyz(
    State(probes): State<Arc<Probes>>,
    details: Option<axum::Extension<Details>>,
) -> Response {
    if probes.shutdown.is_cancelled() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: shutting down\n",
        )
            .into_response();
    }
    // The store first: without it no turn can start, whatever Handinger says.
    let store = match &probes.store {
        Some((store, verdict)) => {
            verdict
                .get("the shared turn store (--store) does not answer", async {
                    store.ping().await.map_err(|error| error.to_string())
                })
                .await
        }
        None => Ok(()),
    };
    let ready = match store {
        Ok(()) => {
            let check = probes.api.check_reachable(READY_TIMEOUT);
            probes
                .upstream
                .get("the Handinger API cannot be reached", check)
                .await
        }
        refused => refused,
    };
    match ready {
        Ok(()) => "ready\n".into_response(),
        Err(NotReady { what, detail }) => {
            tracing::warn!(reason = %detail, "not ready");
            let shown = match details {
                Some(axum::Extension(Details(true))) => detail,
                _ => format!("{what} (the cause is in the server's log)"),
            };
            (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {shown}\n"),
            )
                .into_response()
        }
    }
}

pub(super) async fn metrics(State(probes): State<Arc<Probes>>) -> Response {
    let sessions = OpenSessions {
        streamable_http: probes.streamable.open_sessions().await,
        sse: probes.sse.open_sessions(),
    };
    let mut response = probes.metrics.render(sessions).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    response
}
