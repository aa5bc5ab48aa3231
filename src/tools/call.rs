//! The skeleton every tool shares, so that each tool is only its own logic: decode the
//! arguments (an error names the field), check them into what the call needs, pick this
//! caller's API client (the server's key, or the caller's own with `--key-from-request`),
//! call, and turn a failure into an error result that says what happened and whether
//! calling again is safe. Bad arguments never reach Handinger.

use std::borrow::Cow;
use std::future::Future;

use rmcp::handler::server::common::FromContextPart;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::CallToolResult;
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};
use serde::de::DeserializeOwned;

use super::HandingerServer;
use super::args::decode;
use super::output::error_result;
use super::reply::{AfterFailure, api_failed};
use crate::handinger::{ApiError, HandingerClient};

/// What a tool handler returns: a result (an error result for anything the caller can fix),
/// or a protocol error when no tool could run.
pub(super) type Reply = Result<CallToolResult, ErrorData>;

/// One call of a tool whose arguments are an `A`: every tool handler takes this. The
/// arguments are decoded here rather than by rmcp's `Parameters<A>`, so that bad arguments
/// come back as a tool error the model can read and correct (as the MCP spec recommends),
/// not as an opaque protocol error.
pub(super) struct Call<A> {
    /// The tool called (the `ask_<name>` tools share one handler).
    pub tool: Cow<'static, str>,
    /// The arguments, or what is wrong with them.
    pub args: Result<A, String>,
    pub context: RequestContext<RoleServer>,
}

impl<S, A: DeserializeOwned> FromContextPart<ToolCallContext<'_, S>> for Call<A> {
    fn from_context_part(context: &mut ToolCallContext<'_, S>) -> Result<Self, ErrorData> {
        let arguments = context.arguments.take().unwrap_or_default();
        Ok(Call {
            args: decode(&context.name, arguments),
            tool: context.name.clone(),
            context: context.request_context.clone(),
        })
    }
}

impl<A: DeserializeOwned> Call<A> {
    /// The call a dynamic route receives, and the server, taking the context apart instead
    /// of cloning it: the route's future then holds one copy of the request, not two.
    pub fn take<S>(context: ToolCallContext<'_, S>) -> (Self, &S) {
        let call = Call {
            args: decode(&context.name, context.arguments.unwrap_or_default()),
            tool: context.name,
            context: context.request_context,
        };
        (call, context.service)
    }
}

impl<A> Call<A> {
    /// The same call with its arguments turned into a `B` (when they decoded).
    pub fn map<B>(self, f: impl FnOnce(A) -> B) -> Call<B> {
        Call {
            tool: self.tool,
            args: self.args.map(f),
            context: self.context,
        }
    }
}

impl HandingerServer {
    /// Runs one API call: `checked` (the call's arguments checked into what it needs, or
    /// why they are refused), then `call` with this caller's client. A refusal, or a
    /// caller without a key, is the error result, and nothing is sent.
    pub(super) async fn api_call<P, R, Fut>(
        &self,
        context: &RequestContext<RoleServer>,
        checked: Result<P, String>,
        call: impl FnOnce(HandingerClient, P) -> Fut,
    ) -> Result<R, ErrorData>
    where
        Fut: Future<Output = R>,
        R: From<CallToolResult>,
    {
        Ok(
            match checked.and_then(|p| Ok((p, self.api_for(context)?))) {
                Ok((checked, api)) => call(api, checked).await,
                Err(message) => error_result(message).into(),
            },
        )
    }
}

/// The result of an API call: `ok` of Handinger's answer, or the error result of `what`
/// failing, with the resend advice `after` gives for that kind of call.
pub(super) fn answer<T>(
    outcome: Result<T, ApiError>,
    what: &str,
    after: AfterFailure<'_>,
    ok: impl FnOnce(T) -> CallToolResult,
) -> CallToolResult {
    match outcome {
        Ok(value) => ok(value),
        Err(error) => api_failed(what, &error, after),
    }
}
