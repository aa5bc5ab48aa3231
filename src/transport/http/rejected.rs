//! Refusals carry their reason, and one place counts them.
//!
//! Whatever layer turns a request away (access checks, body limits, the call gate, the
//! session cap) marks its response with [`Rejected`]; the connection layer, which sees
//! every response, counts the mark in the server's metrics. The refusing code needs no
//! handle on the metrics, and nothing is counted twice.

use axum::response::Response;

/// The reason word of a refusal, as `/metrics` labels it (a fixed set: no client can grow
/// the number of series).
#[derive(Debug, Clone, Copy)]
pub struct Rejected(pub &'static str);

/// `response`, marked as a refusal for `reason`.
pub fn rejected(reason: &'static str, mut response: Response) -> Response {
    response.extensions_mut().insert(Rejected(reason));
    response
}
