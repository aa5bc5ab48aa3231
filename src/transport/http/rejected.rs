//! Refusals carry their reason, and one place counts them.
//!
//! Whatever layer turns a request away (access checks, body limits, the call gate, the
//! session cap) marks its response with [`Rejected`]; the connection layer, which sees
//! every response, counts the mark in the server's metrics. The refusing code needs no
//! handle on the metrics, and nothing is counted twice. A refusal that will pass if tried
//! again later says when ([`retry_later`]).

use std::time::Duration;

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};

use crate::turns::{StartRefused, bound_full};

/// Turns last as long as Handinger's workers take, seconds to minutes: a client told to come
/// back in a second would mostly be refused again.
const TURN_RETRY_AFTER: Duration = Duration::from_secs(5);

/// The reason word of a refusal, as `/metrics` labels it (a fixed set: no client can grow
/// the number of series).
#[derive(Debug, Clone, Copy)]
pub(super) struct Rejected(pub &'static str);

/// `response`, marked as a refusal for `reason`.
pub(super) fn rejected(reason: &'static str, mut response: Response) -> Response {
    response.extensions_mut().insert(Rejected(reason));
    response
}

/// A refusal that tells the client when to come back (whole seconds, at least one).
pub(super) fn retry_later(status: StatusCode, after: Duration, message: &str) -> Response {
    let seconds = after.as_secs() + u64::from(after.subsec_nanos() > 0);
    let mut response = (status, message.to_owned()).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    response
}

/// `Err` with the 503 when a tool call would find no turn slot (`room`, as
/// [`crate::tools::HandingerServer::turn_room`] answered; see `tools::admission` for why
/// HTTP asks before it accepts the call).
#[allow(clippy::result_large_err)] // the error is the response itself, returned at once
pub(super) fn no_turn_room(room: Result<(), StartRefused>) -> Result<(), Response> {
    let Err(StartRefused::Full { limit, per_key }) = room else {
        return Ok(());
    };
    let reason = if per_key {
        "turns_in_flight_per_key"
    } else {
        "turns_in_flight"
    };
    let response = retry_later(
        StatusCode::SERVICE_UNAVAILABLE,
        TURN_RETRY_AFTER,
        &format!(
            "Service Unavailable: {}. Retry after the Retry-After delay, once one has \
             finished (collect running ones with get_task).",
            bound_full(limit, per_key)
        ),
    );
    Err(rejected(reason, response))
}
