//! The skeleton every tool that calls Handinger shares, so that each tool is only its own
//! logic: decode the arguments (an error names the field), check them into what the call
//! needs, pick this caller's API client (the server's key, or the caller's own with
//! `--key-from-request`), call, and turn a failure into an error result that says what
//! happened and whether calling again is safe. Bad arguments never reach Handinger.

use std::future::Future;

use rmcp::model::{CallToolResult, JsonObject};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};
use serde::de::DeserializeOwned;

use super::HandingerServer;
use super::args::decode;
use super::output::error_result;
use super::reply::{AfterFailure, api_failed};
use crate::handinger::{ApiError, HandingerClient};

impl HandingerServer {
    /// Runs one API tool: `arguments` decoded as `A`, checked by `check` into `P`, then
    /// `call` with this caller's client. A decoding or checking error, or a caller without
    /// a key, is the error result, and nothing is sent.
    pub(super) async fn api_call<A, P, Fut>(
        &self,
        tool: &str,
        arguments: JsonObject,
        context: &RequestContext<RoleServer>,
        check: impl FnOnce(A) -> Result<P, String>,
        call: impl FnOnce(HandingerClient, P) -> Fut,
    ) -> Result<CallToolResult, ErrorData>
    where
        A: DeserializeOwned,
        Fut: Future<Output = CallToolResult>,
    {
        let prepared = decode::<A>(tool, arguments)
            .and_then(check)
            .and_then(|checked| Ok((checked, self.api_for(context)?)));
        Ok(match prepared {
            Ok((checked, api)) => call(api, checked).await,
            Err(message) => error_result(message),
        })
    }
}

/// The result of an API call: `ok` of Handinger's answer, or the error result of `what`
/// failing, with the resend advice `after` gives for that kind of call.
pub(super) fn answer<T>(
    outcome: Result<T, ApiError>,
    what: impl FnOnce() -> String,
    after: AfterFailure<'_>,
    ok: impl FnOnce(T) -> CallToolResult,
) -> CallToolResult {
    match outcome {
        Ok(value) => ok(value),
        Err(error) => api_failed(&what(), &error, after),
    }
}
