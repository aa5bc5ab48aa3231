//! MCP over HTTP, for remote clients and teams: `handinger-mcp http`.
//!
//! One axum router serves:
//!
//! - `/mcp` — Streamable HTTP ([`streamable`], rmcp's service), both protocol eras;
//! - `/sse` + `/message` — the legacy HTTP+SSE transport ([`sse`]);
//! - `/healthz`, `/readyz`, `/metrics` — for operators ([`probes`]).
//!
//! Every bound is listed in docs/limits.md. One file a job:
//!
//! - [`settings`] — the `http` flags and the start-up checks (no listening beyond loopback
//!   without a token).
//! - [`listen`] — the `--listen` address, or a name resolved at start.
//! - [`connections`] — accepting connections under the cap and serving them with hyper,
//!   with the header and keep-alive timeouts; the probes' own listener (`--probe-listen`).
//! - [`request_body`] — a request body under `--body-read-timeout` and
//!   `--max-body-buffer-bytes`.
//! - [`per_address`] — connections open and half-open per client address.
//! - [`hosts`] — the allowed `Host` and `Origin` values.
//! - [`access`] — what every MCP request passes first: repeated headers, Host and Origin,
//!   the throttle on failed tokens, bearer token, per-user key, rate limits.
//! - [`limits`] — the body cap, the rate limiter and the bound on concurrent tool calls.
//! - [`rejected`] — the wording of every refusal, and the mark `/metrics` counts it by.
//! - [`sessions`] — each session bound to the credentials that opened it; ids in flight.
//! - [`session_limits`] — how many sessions are open, and which idle one a full table
//!   closes.
//! - [`streamable`] — Streamable HTTP.
//! - [`stateless`] — plain `--stateless` tool calls on long-lived service loops.
//! - [`sse`] — the legacy HTTP+SSE transport.
//! - [`probes`] — `/healthz`, `/readyz`, `/metrics`.
//!
//! Shutdown (SIGTERM or Ctrl-C): stop accepting connections and new tool calls, give the
//! calls in flight `--shutdown-grace` to finish, then close every session and exit.

mod access;
mod connections;
mod hosts;
mod limits;
mod listen;
mod per_address;
mod probes;
mod rejected;
mod request_body;
mod session_limits;
mod sessions;
mod settings;
mod sse;
mod stateless;
mod streamable;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::middleware::from_fn_with_state;
use axum::routing::{any, get, post};
use tokio_util::sync::CancellationToken;

use crate::handinger::HandingerClient;
use crate::metrics::Metrics;
use crate::tools::HandingerServer;
use crate::transport::ServeError;
use crate::transport::message_shape::MessageShape;
use crate::turns::store::TurnStore;

pub(crate) use settings::{HttpArgs, HttpSettings};

/// After the grace period and closing the sessions, how long to wait for connections to
/// wind down before exiting anyway.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// At shutdown, how long calls may finish on their own before waits on long turns are
/// ended with the resumable taskId.
const QUICK_CALLS: Duration = Duration::from_secs(2);

/// What the HTTP server is handed besides the MCP server: the values it shares with the
/// tools, for its probes, its counters and its shutdown.
pub(crate) struct HttpServices {
    /// The server's own client: readiness asks whether Handinger answers.
    pub api: HandingerClient,
    /// The shared turn store, when there is one: readiness depends on it too.
    pub store: Option<Arc<TurnStore>>,
    pub metrics: Arc<Metrics>,
    /// The tools' shutdown token, fired once quick calls had their chance: waits on long
    /// turns then end at once with the resumable taskId instead of holding the shutdown up
    /// or vanishing.
    pub shutdown: CancellationToken,
    /// What one client message may cost before it is parsed.
    pub message_shape: MessageShape,
}

/// Serves until the process is told to stop. `server` is the prototype every session's
/// server is cloned from (they share the API client and policy).
pub(crate) async fn serve(
    settings: HttpSettings,
    server: HandingerServer,
    http_services: HttpServices,
) -> Result<(), ServeError> {
    let server = if settings.key_from_request {
        server.with_request_keys()
    } else {
        server
    };
    let oauth = match settings.oauth.clone() {
        Some(oauth) => Some(Arc::new(
            crate::oauth::OAuth::new(
                oauth,
                http_services.api.clone(),
                http_services
                    .store
                    .as_ref()
                    .map(|store| (store.connection(), store.namespace("oauth"))),
            )
            .map_err(ServeError::OAuth)?,
        )),
        None => None,
    };
    let HttpServices {
        api,
        store,
        metrics,
        shutdown: release_waits,
        message_shape,
    } = http_services;
    let factory = move || server.clone();

    // Cancelled once the grace period is over: ends sessions and their event streams.
    let close_sessions = CancellationToken::new();
    // Cancelled at the signal: stop accepting, report not ready.
    let draining = CancellationToken::new();
    let gate = Arc::new(limits::CallGate::new(settings.max_concurrent_calls));
    let session_cap = session_limits::SessionCap::new(settings.sessions);

    let streamable = Arc::new(streamable::StreamableMcp::new(
        factory.clone(),
        gate.clone(),
        streamable::Options {
            stateless: settings.stateless,
            idle_timeout: settings.session_idle_timeout,
            first_request_timeout: settings.session_first_request_timeout,
            max_body_bytes: settings.max_body_bytes,
            shape: message_shape,
            session_cap: session_cap.clone(),
        },
        close_sessions.clone(),
    ));
    let legacy = Arc::new(sse::LegacySse::new(
        factory,
        gate.clone(),
        (settings.max_body_bytes, message_shape),
        sse::SessionTimeouts {
            idle: settings.session_idle_timeout,
            first_request: settings.session_first_request_timeout,
        },
        close_sessions.clone(),
        streamable.clone(),
    ));
    let probes = Arc::new(
        probes::Probes::new(
            streamable.clone(),
            legacy.clone(),
            draining.clone(),
            metrics.clone(),
            api,
        )
        .with_store(store),
    );
    let access = Arc::new(access::Access {
        hosts: settings.hosts.clone(),
        origins: settings.origins.clone(),
        token: settings.auth_token.clone(),
        key_from_request: settings.key_from_request,
        rate: limits::RateLimiter::new(settings.rate_limit),
        address_rate: limits::RateLimiter::new(settings.address_rate_limit),
        auth_failures: limits::RateLimiter::new(settings.auth_failure_limit),
    });

    let app = router(
        &settings,
        streamable,
        legacy,
        probes.clone(),
        access.clone(),
        oauth,
    );
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|e| {
            ServeError::Listen(format!(
                "could not listen on {}: {e} (is another process using the port? choose another with --listen)",
                settings.listen
            ))
        })?;
    let local = listener
        .local_addr()
        .map_err(|e| ServeError::Listen(format!("could not read the listening address: {e}")))?;
    // Bound before the main listener is announced, so whoever reads that line finds the
    // probes there too. Stopped when this function returns, whichever way: the probes
    // answer until then, so an orchestrator sees the drain (`/readyz` says so) rather than
    // a closed port.
    let stop_probes = CancellationToken::new();
    let _stop_probes = stop_probes.clone().drop_guard();
    if let Some(address) = settings.probe_listen {
        let probe_listener = tokio::net::TcpListener::bind(address).await.map_err(|e| {
            ServeError::Listen(format!(
                "could not listen for probes on {address}: {e} (is another process using the \
                 port? choose another with --probe-listen)"
            ))
        })?;
        let bound = probe_listener.local_addr().map_err(|e| {
            ServeError::Listen(format!("could not read the probe listening address: {e}"))
        })?;
        tracing::info!("probes on http://{bound}/healthz and /readyz");
        tokio::spawn(connections::serve(
            probe_listener,
            probe_routes(probes, access),
            probe_limits(&settings.connections),
            stop_probes,
            metrics.clone(),
        ));
    }

    announce(local, &settings);

    let mut running = tokio::spawn(connections::serve(
        listener,
        app,
        settings.connections.clone(),
        draining.clone(),
        metrics,
    ));
    tokio::select! {
        outcome = &mut running => {
            return match outcome {
                Ok(()) => Ok(()),
                Err(e) => Err(ServeError::Stopped(format!("the HTTP server stopped: {e}"))),
            };
        }
        () = crate::shutdown::signal() => {}
    }

    let in_flight = gate.in_flight();
    tracing::info!(
        in_flight,
        grace = ?settings.shutdown_grace,
        "shutting down: no new connections or tool calls; letting calls in flight finish"
    );
    draining.cancel();
    let quick = settings.shutdown_grace.min(QUICK_CALLS);
    let mut unfinished = gate.drain(quick).await;
    if unfinished > 0 {
        tracing::info!(
            unfinished,
            "answering calls still waiting on a worker with their resumable taskId"
        );
        release_waits.cancel();
        unfinished = gate
            .drain(settings.shutdown_grace.saturating_sub(quick))
            .await;
    }
    if unfinished > 0 {
        tracing::warn!(
            unfinished,
            "grace period over; closing sessions with calls still running"
        );
    }
    close_sessions.cancel();
    if tokio::time::timeout(CLOSE_TIMEOUT, running).await.is_err() {
        tracing::warn!("connections still open after closing sessions; exiting anyway");
    }
    tracing::info!("stopped");
    Ok(())
}

fn router(
    settings: &HttpSettings,
    streamable: Arc<streamable::StreamableMcp>,
    legacy: Arc<sse::LegacySse>,
    probes: Arc<probes::Probes>,
    access: Arc<access::Access>,
    oauth: Option<Arc<crate::oauth::OAuth>>,
) -> Router {
    let legacy_routes = if settings.stateless {
        Router::new()
            .route("/sse", any(sse::unavailable))
            .route("/message", any(sse::unavailable))
    } else {
        Router::new()
            .route("/sse", get(sse::open))
            .route("/message", post(sse::message))
            .with_state(legacy)
    };
    let mcp = Router::new()
        .route("/mcp", any(streamable::handle))
        .with_state(streamable)
        .merge(legacy_routes)
        .layer(from_fn_with_state(access.clone(), access::mcp_gate));
    // OAuth mode: CORS, then the token is checked (and turned into the user's key), before
    // the gate.
    let mcp = match &oauth {
        Some(oauth) => {
            crate::oauth::protect(mcp, oauth.clone()).merge(crate::oauth::routes(oauth.clone()))
        }
        None => mcp,
    };
    let metrics = Router::new()
        .route("/metrics", get(probes::metrics))
        .with_state(probes.clone())
        .layer(from_fn_with_state(access.clone(), access::ops_gate));
    mcp.merge(metrics).merge(probe_routes(probes, access))
}

/// `/healthz` and `/readyz`, on the main listener and on `--probe-listen`. Probes answer
/// without credentials: orchestrators send neither a token nor a Host this server would
/// know. Why `/readyz` is not ready names the API's address, so only a caller `/metrics`
/// would serve reads it (`probes::details_gate`), on either listener.
fn probe_routes(probes: Arc<probes::Probes>, access: Arc<access::Access>) -> Router {
    let ready = Router::new()
        .route("/readyz", get(probes::readyz))
        .with_state(probes)
        .layer(from_fn_with_state(access, probes::details_gate));
    Router::new()
        .route("/healthz", get(probes::healthz))
        .merge(ready)
}

/// The probe listener's bounds: `--probe-connections` connections (no reserve beyond
/// them: it serves nothing but probes), the main listener's timeouts, and the per-address
/// bounds lowered to half of those connections, so one address reaching it cannot take
/// them all either. Probes send no bodies, so their body budget is small.
fn probe_limits(main: &connections::ConnectionLimits) -> connections::ConnectionLimits {
    let max_connections = main.probe_connections;
    let max_open = main.per_client.max_open.min(max_connections.div_ceil(2));
    connections::ConnectionLimits {
        max_connections,
        probe_connections: 0,
        per_client: per_address::AddressLimits {
            max_open,
            max_pending: main.per_client.max_pending.min(max_open),
        },
        max_body_buffer_bytes: 64 * 1024,
        ..main.clone()
    }
}

fn announce(local: SocketAddr, settings: &HttpSettings) {
    tracing::info!(
        auth = if settings.oauth.is_some() {
            "oauth sign-in"
        } else if settings.auth_token.is_some() {
            "bearer token"
        } else {
            "none"
        },
        keys = if settings.key_from_request {
            "per request (X-Handinger-Api-Key)"
        } else {
            "server (HANDINGER_API_KEY)"
        },
        stateless = settings.stateless,
        "listening on http://{local}/mcp{}",
        // Without sessions there is no legacy SSE transport: /sse answers 404 then.
        if settings.stateless {
            String::new()
        } else {
            format!(" (legacy SSE: http://{local}/sse)")
        }
    );
    if settings.auth_token.is_none() && settings.oauth.is_none() && !local.ip().is_loopback() {
        tracing::warn!("serving beyond loopback without a bearer token (--insecure-no-auth)");
    }
}
