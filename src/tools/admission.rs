//! Whether a tool call would find room for a new turn (see
//! [`crate::turns::TurnRegistry::room_for`]), asked by HTTP mode before it accepts the call.
//!
//! A tool call that would start a turn while `--max-turns-in-flight` (or its per-key bound)
//! is reached gets `503` with `Retry-After` before it is accepted, as calls beyond
//! `--max-concurrent-calls` do, instead of a tool error inside a `200`: an HTTP client or
//! proxy that retries on 503 then retries it (the answer's words are HTTP's, in
//! `transport/http/rejected.rs`). stdio keeps the tool error.
//!
//! The question is asked at arrival, before the request reaches rmcp: on a session the
//! answer is an event stream whose head is sent before the tool runs, so no later status
//! could be given. The turn registry still decides when the call runs; a call that races
//! another for the last slot gets the tool error.

use std::borrow::Cow;

use crate::task_id::TaskId;
use crate::turns::StartRefused;

use super::HandingerServer;
use super::surface::ASK_PREFIX;

impl HandingerServer {
    /// `Err` when calling `tool` (with the `taskId` argument `task_id`) from an HTTP request
    /// with `headers` would be refused because as many turns as allowed already run
    /// upstream, for the server or for the request's key. Anything else (a tool that starts
    /// no turn, a bad taskId, a missing key) passes: the call itself refuses it with its
    /// own words.
    pub fn turn_room(
        &self,
        tool: &str,
        task_id: Option<&str>,
        headers: &http::HeaderMap,
    ) -> Result<(), StartRefused> {
        let starts_turns = tool == "create_task" || tool.starts_with(ASK_PREFIX);
        if !starts_turns || !self.tool_router.has_route(tool) {
            return Ok(());
        }
        let task_id = match task_id.map(TaskId::parse) {
            None => None,
            Some(Ok(task_id)) => Some(task_id),
            Some(Err(_)) => return Ok(()),
        };
        let Some(scope) = self.scope_for_headers(headers) else {
            return Ok(());
        };
        self.services.turns.room_for(scope, task_id.as_ref())
    }

    /// [`Self::turn_room`] for a raw JSON-RPC `tools/call` body; a body it cannot read
    /// passes, for the protocol layer to refuse.
    pub fn turn_room_for_body(
        &self,
        body: &[u8],
        headers: &http::HeaderMap,
    ) -> Result<(), StartRefused> {
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
        self.turn_room(&call.params.name, task_id.as_deref(), headers)
    }
}
