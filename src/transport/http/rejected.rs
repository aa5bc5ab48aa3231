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

/// The reason word of a refusal, as `/metrics` labels it (a fixed set: no client can grow
/// the number of series).
#[derive(Debug, Clone, Copy)]
pub struct Rejected(pub &'static str);

/// `response`, marked as a refusal for `reason`.
pub fn rejected(reason: &'static str, mut response: Response) -> Response {
    response.extensions_mut().insert(Rejected(reason));
    response
}

/// A refusal that tells the client when to come back (whole seconds, at least one).
pub fn retry_later(status: StatusCode, after: Duration, message: &str) -> Response {
    let seconds = after.as_secs() + u64::from(after.subsec_nanos() > 0);
    let mut response = (status, message.to_owned()).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(seconds.max(1)));
    response
}
