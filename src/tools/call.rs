//! The skeleton every tool shares, so that each tool is only its own logic: decode the
//! arguments (an error names the field), check them into what the call needs, pick this
//! caller's API client (the server's key, or the caller's own with `--key-from-request`),
//! call, and turn a failure into an error result that says what happened and whether
//! calling again is safe. Bad arguments never reach Handinger.

use std::borrow::Cow;
use std::future::Future;
use std::pin::Pin;

use rmcp::handler::server::common::FromContextPart;
use rmcp::handler::server::tool::ToolCallContext;
use rmcp::model::{CallToolResult, RequestMetaObject, TASKS_EXTENSION_ID};
use rmcp::service::RequestContext;
use rmcp::{ErrorData, RoleServer};
use serde::de::DeserializeOwned;
use serde_json::Value;

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
        context.request_context.meta = what_tools_use(&context.request_context.meta);
        Ok(Call {
            args: decode(&context.name, arguments),
            tool: context.name.clone(),
            context: context.request_context.clone(),
        })
    }
}

/// Of a request's `_meta`, what the tools use: the progress token, the protocol version,
/// and of the client's capabilities whether it shares roots and declares the tasks
/// extension. A held call keeps its context for as long as it waits, and the rest of
/// `_meta` is whatever the client sent (up to the request size cap, parsed into a tree
/// several times its size), so it is dropped here rather than held for `--max-wait`. The
/// values kept are short by nature; longer ones are dropped too.
fn what_tools_use(meta: &RequestMetaObject) -> RequestMetaObject {
    const PROGRESS_TOKEN: &str = "progressToken";
    const PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
    const CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
    /// Longest progress token or protocol version kept, as JSON text. Longer progress
    /// tokens are refused before this by the transports (`--max-id-bytes`, at most this).
    const MAX_VALUE_BYTES: usize = 256;
    let given = &meta.0.0;
    let mut kept = RequestMetaObject::new();
    for key in [PROGRESS_TOKEN, PROTOCOL_VERSION] {
        if let Some(value) = given.get(key).filter(|value| {
            matches!(value, Value::String(text) if text.len() <= MAX_VALUE_BYTES)
                || value.is_number()
        }) {
            kept.0.0.insert(key.into(), value.clone());
        }
    }
    if let Some(Value::Object(capabilities)) = given.get(CLIENT_CAPABILITIES) {
        let mut minimal = serde_json::Map::new();
        if capabilities.get("roots").is_some_and(Value::is_object) {
            minimal.insert("roots".into(), Value::Object(Default::default()));
        }
        if let Some(Value::Object(extensions)) = capabilities.get("extensions")
            && extensions.contains_key(TASKS_EXTENSION_ID)
        {
            let tasks = serde_json::Map::from_iter([(
                TASKS_EXTENSION_ID.to_owned(),
                Value::Object(Default::default()),
            )]);
            minimal.insert("extensions".into(), Value::Object(tasks));
        }
        kept.0
            .0
            .insert(CLIENT_CAPABILITIES.into(), Value::Object(minimal));
    }
    kept
}

impl<A: DeserializeOwned> Call<A> {
    /// The call a dynamic route receives, and the server, taking the context apart instead
    /// of cloning it: the route's future then holds one copy of the request, not two.
    pub(super) fn take<S>(mut context: ToolCallContext<'_, S>) -> (Self, &S) {
        context.request_context.meta = what_tools_use(&context.request_context.meta);
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
    pub(super) fn map<B>(self, f: impl FnOnce(A) -> B) -> Call<B> {
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

/// A step of a tool call (or of another request's handler) that is awaited once, boxed apart
/// from the state kept while a call waits. Every box made for a future's size on the tool
/// path is made here, for one reason: a held call keeps its future for as long as
/// `--max-wait`, and rmcp's task per request is sized by the largest handler future, so a
/// step inline would be paid for by every held call for the whole wait. Measured with
/// heaptrack over 1,000 held calls (docs/benchmarks.md, "Memory per held call"): boxing the
/// turn start and the progress sends took the `create_task` future from 5.2 KiB to
/// 1.2–1.7 KiB, and boxing the task-lookup and resource-read handlers took rmcp's task from
/// 7.4 KiB to 2–4 KiB.
pub(super) fn boxed_apart<F: Future>(step: F) -> Pin<Box<F>> {
    Box::pin(step)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rmcp::model::{ClientCapabilities, NumberOrString, ProgressToken, ProtocolVersion};
    use serde_json::json;

    #[test]
    fn a_call_keeps_only_what_the_tools_use_of_its_meta() {
        let mut meta =
            RequestMetaObject::with_progress_token(ProgressToken(NumberOrString::Number(7)));
        meta.set_protocol_version(ProtocolVersion::V_2026_07_28);
        let capabilities: ClientCapabilities = serde_json::from_value(json!({
            "roots": {"listChanged": true, "padding": [0, 0, 0]},
            "extensions": {TASKS_EXTENSION_ID: {"padding": [0, 0]}, "other": {}},
            "experimental": {"padding": {"a": [0, 0]}}
        }))
        .unwrap();
        meta.set_client_capabilities(capabilities);
        meta.0.0.insert("padding".into(), json!(vec![0; 10_000]));

        let kept = what_tools_use(&meta);
        assert_eq!(
            serde_json::to_value(&kept).unwrap(),
            json!({
                "progressToken": 7,
                "io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {
                    "roots": {},
                    "extensions": {TASKS_EXTENSION_ID: {}}
                }
            })
        );
        let capabilities = kept.client_capabilities().unwrap();
        assert!(capabilities.supports_tasks() && capabilities.roots.is_some());
        assert_eq!(kept.protocol_version(), Some(ProtocolVersion::V_2026_07_28));

        let mut long = RequestMetaObject::new();
        long.0
            .0
            .insert("progressToken".into(), json!("t".repeat(10_000)));
        assert_eq!(what_tools_use(&long), RequestMetaObject::new());
    }
}
