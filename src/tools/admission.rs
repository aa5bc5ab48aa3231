//! Whether a tool call would find room for a new turn, asked by HTTP mode before it accepts
//! the call (see [`crate::turns::TurnRegistry::room_for`]).

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
}
