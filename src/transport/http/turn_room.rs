//! A tool call that would start a turn while `--max-turns-in-flight` (or its per-key bound)
//! is reached gets `503` with `Retry-After` before it is accepted, as calls beyond
//! `--max-concurrent-calls` do, instead of a tool error inside a `200`: an HTTP client or
//! proxy that retries on 503 then retries it. stdio keeps the tool error.
//!
//! The question is asked at arrival, before the request reaches rmcp: on a session the
//! answer is an event stream whose head is sent before the tool runs, so no later status
//! could be given. The turn registry still decides when the call runs; a call that races
//! another for the last slot gets the tool error.

use std::borrow::Cow;
use std::time::Duration;

use axum::response::Response;
use http::{HeaderMap, StatusCode};

use super::rejected::rejected;
use super::rejected::retry_later;
use crate::tools::HandingerServer;
use crate::turns::{StartRefused, bound_full};

/// Turns last as long as Handinger's workers take, seconds to minutes: a client told to come
/// back in a second would mostly be refused again.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// `Err` with the 503 when a `tools/call` to `tool` would find no turn slot.
#[allow(clippy::result_large_err)] // the error is the response itself, returned at once
pub fn check(
    server: &HandingerServer,
    tool: &str,
    task_id: Option<&str>,
    headers: &HeaderMap,
) -> Result<(), Response> {
    match server.turn_room(tool, task_id, headers) {
        Err(StartRefused::Full { limit, per_key }) => Err(refusal(limit, per_key)),
        _ => Ok(()),
    }
}

/// [`check`] for a raw JSON-RPC `tools/call` body; a body it cannot read passes, for the
/// protocol layer to refuse.
#[allow(clippy::result_large_err)]
pub fn check_body(
    server: &HandingerServer,
    body: &[u8],
    headers: &HeaderMap,
) -> Result<(), Response> {
    #[derive(serde::Deserialize)]
    struct Call<'a> {
        #[serde(borrow)]
        params: Params<'a>,
    }
    #[derive(serde::Deserialize)]
    struct Params<'a> {
        #[serde(borrow)]
        name: Cow<'a, str>,
        #[serde(borrow, default)]
        arguments: Option<Arguments<'a>>,
    }
    #[derive(serde::Deserialize)]
    struct Arguments<'a> {
        #[serde(borrow, default, rename = "taskId")]
        task_id: Option<Cow<'a, str>>,
    }
    let Ok(call) = serde_json::from_slice::<Call<'_>>(body) else {
        return Ok(());
    };
    let task_id = call.params.arguments.and_then(|a| a.task_id);
    check(server, &call.params.name, task_id.as_deref(), headers)
}

fn refusal(limit: usize, per_key: bool) -> Response {
    let reason = if per_key {
        "turns_in_flight_per_key"
    } else {
        "turns_in_flight"
    };
    let response = retry_later(
        StatusCode::SERVICE_UNAVAILABLE,
        RETRY_AFTER,
        &format!(
            "Service Unavailable: {}. Retry after the Retry-After delay, once one has \
             finished (collect running ones with get_task).",
            bound_full(limit, per_key)
        ),
    );
    rejected(reason, response)
}
