//! Newline-delimited JSON-RPC over a byte stream (stdio), with the two checks rmcp's own
//! framing leaves out:
//!
//! - a line over the size cap (`--max-message-bytes`) is answered with a JSON-RPC parse
//!   error (carrying the request's id when it can be read from the line's start) and a log
//!   line, instead of being dropped while the client waits forever;
//! - a line whose shape would cost too much to parse (nesting, number of values, a long id
//!   or progress token: [`super::message_shape`]) is answered with an error before a tree
//!   is built, and a line that is not JSON with a parse error to a null id;
//! - a request whose id is the id of a request still in flight is refused with an error
//!   before the server sees it: both would otherwise run (and bill) upstream, and only one
//!   answer could come back.
//!
//! The result is a pair of channels rmcp serves like any transport: a sink of server
//! messages and a stream of client messages.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use futures::channel::mpsc;
use futures::{SinkExt, StreamExt};
use rmcp::model::{
    ClientJsonRpcMessage, ClientNotification, ErrorCode, ErrorData, RequestId, ServerJsonRpcMessage,
};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio_util::sync::CancellationToken;

use super::json_stream;
use super::message_shape::MessageShape;

/// Messages buffered per direction before the sender waits.
const CHANNEL_CAPACITY: usize = 64;
/// How much of an oversized line is kept to find its id.
const HEAD_BYTES: usize = 4096;

/// Ids of the client's requests that have not been answered yet.
#[derive(Default, Clone)]
pub(crate) struct InFlight(Arc<Mutex<HashSet<RequestId>>>);

impl InFlight {
    /// Registers `id`; `false` when a request with that id is still in flight.
    pub(crate) fn enter(&self, id: &RequestId) -> bool {
        self.lock().insert(id.clone())
    }

    pub(crate) fn leave(&self, id: &RequestId) {
        self.lock().remove(id);
    }

    /// Forgets the request a server message answers, if it answers one.
    pub(crate) fn answered(&self, message: &ServerJsonRpcMessage) {
        let id = match message {
            ServerJsonRpcMessage::Response(response) => Some(&response.id),
            ServerJsonRpcMessage::Error(error) => error.id.as_ref(),
            _ => None,
        };
        if let Some(id) = id {
            self.leave(id);
        }
    }

    /// Forgets a request the client cancelled: rmcp sends no answer for it.
    pub(crate) fn cancelled(&self, message: &ClientJsonRpcMessage) {
        if let ClientJsonRpcMessage::Notification(notification) = message
            && let ClientNotification::CancelledNotification(cancelled) = &notification.notification
            && let Some(id) = &cancelled.params.request_id
        {
            self.leave(id);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<RequestId>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The refusal of a request whose id is already in flight.
pub(crate) fn duplicate_id(id: &RequestId) -> ServerJsonRpcMessage {
    ServerJsonRpcMessage::error(
        ErrorData::invalid_request(
            format!(
                "a request with id {id} is still in flight; this one was not run: give each \
                 request its own id"
            ),
            None,
        ),
        Some(id.clone()),
    )
}

/// Serves `read`/`write` as a transport: what rmcp should be handed, as (sink, stream).
/// `eof` fires when the client closes its end.
pub(crate) fn transport<R, W>(
    read: R,
    write: W,
    max_line: usize,
    shape: MessageShape,
    eof: CancellationToken,
) -> (
    mpsc::Sender<ServerJsonRpcMessage>,
    mpsc::Receiver<ClientJsonRpcMessage>,
)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (to_client, from_server) = mpsc::channel::<ServerJsonRpcMessage>(CHANNEL_CAPACITY);
    let (to_server, from_client) = mpsc::channel::<ClientJsonRpcMessage>(CHANNEL_CAPACITY);
    let in_flight = InFlight::default();
    tokio::spawn(write_messages(write, from_server, in_flight.clone()));
    tokio::spawn(read_messages(
        read,
        max_line,
        shape,
        to_server,
        to_client.clone(),
        in_flight,
        eof,
    ));
    (to_client, from_client)
}

async fn write_messages<W: AsyncWrite + Unpin>(
    mut write: W,
    mut messages: mpsc::Receiver<ServerJsonRpcMessage>,
    in_flight: InFlight,
) {
    while let Some(message) = messages.next().await {
        in_flight.answered(&message);
        let written = match json_stream::small(&message) {
            Ok(Some(mut line)) => {
                line.push(b'\n');
                write.write_all(&line).await
            }
            Ok(None) => write_large(&mut write, message).await,
            Err(error) => {
                tracing::error!(%error, "could not encode a message for the client");
                continue;
            }
        };
        if written.is_err() || write.flush().await.is_err() {
            return;
        }
    }
}

/// A large message (a big answer) goes out in chunks as it is encoded, so its JSON is never
/// held whole next to the message ([`json_stream`]).
async fn write_large<W: AsyncWrite + Unpin>(
    write: &mut W,
    message: ServerJsonRpcMessage,
) -> std::io::Result<()> {
    let mut chunks = match json_stream::large(message).await {
        Ok((_, chunks)) => chunks,
        Err(error) => {
            tracing::error!(%error, "could not encode a message for the client");
            return Ok(());
        }
    };
    while let Some(chunk) = chunks.recv().await {
        write.write_all(&chunk).await?;
    }
    write.write_all(b"\n").await
}

async fn read_messages<R: AsyncRead + Unpin>(
    read: R,
    max_line: usize,
    shape: MessageShape,
    mut to_server: mpsc::Sender<ClientJsonRpcMessage>,
    mut to_client: mpsc::Sender<ServerJsonRpcMessage>,
    in_flight: InFlight,
    eof: CancellationToken,
) {
    let mut lines = LineReader::new(read, max_line);
    loop {
        let line = match lines.next().await {
            Ok(Line::Complete(line)) => line,
            Ok(Line::Oversized { head }) => {
                tracing::warn!(
                    max_message_bytes = max_line,
                    "refused a message larger than the cap (--max-message-bytes)"
                );
                let answer = ServerJsonRpcMessage::error(
                    ErrorData::new(
                        ErrorCode::PARSE_ERROR,
                        format!(
                            "the message is larger than this server's {max_line}-byte cap \
                             (--max-message-bytes) and was not read: send less (attach large \
                             files by path), or ask the operator to raise the cap"
                        ),
                        None,
                    ),
                    leading_id(&head),
                );
                let _ = to_client.send(answer).await;
                continue;
            }
            Ok(Line::Eof) => break,
            Err(error) => {
                tracing::error!(%error, "could not read from stdin");
                break;
            }
        };
        let text = line.strip_suffix(b"\r").unwrap_or(&line);
        if text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        if let Err(refused) = shape.check(text) {
            tracing::warn!(reason = %refused.message(), "refused a message before parsing it");
            let _ = to_client.send(refused.answer(leading_id(text))).await;
            continue;
        }
        let message: ClientJsonRpcMessage = match serde_json::from_slice(text) {
            Ok(message) => message,
            Err(error) if error.is_syntax() || error.is_eof() => {
                // JSON-RPC's answer to text that does not parse: a parse error to a null id
                // (no id can be trusted from it). A client that cannot match it to a request
                // ignores it; without it, a client whose line was not read waits forever.
                tracing::debug!(%error, "a line that is not JSON");
                let answer = ServerJsonRpcMessage::error(
                    ErrorData::new(
                        ErrorCode::PARSE_ERROR,
                        format!(
                            "the line is not JSON ({error}) and was not read: send one \
                             JSON-RPC message per line"
                        ),
                        None,
                    ),
                    None,
                );
                let _ = to_client.send(answer).await;
                continue;
            }
            Err(error) => {
                tracing::debug!(%error, "a JSON line that is not an MCP message");
                let answer = ServerJsonRpcMessage::error(
                    ErrorData::invalid_request(
                        format!("not a JSON-RPC message of MCP: {error}"),
                        None,
                    ),
                    leading_id(text),
                );
                let _ = to_client.send(answer).await;
                continue;
            }
        };
        in_flight.cancelled(&message);
        if let ClientJsonRpcMessage::Request(request) = &message
            && !in_flight.enter(&request.id)
        {
            tracing::warn!(id = %request.id, "refused a request whose id is still in flight");
            let _ = to_client.send(duplicate_id(&request.id)).await;
            continue;
        }
        if to_server.send(message).await.is_err() {
            break;
        }
    }
    eof.cancel();
}

/// The `id` of a JSON-RPC message, read from the start of its text (where `jsonrpc`, `id`
/// and `method` come before the parameters in practice); `None` when it cannot be found.
/// Only the first [`HEAD_BYTES`] are looked at, and only a number or a string is read: the
/// text may be anything a client sent.
pub(crate) fn leading_id(text: &[u8]) -> Option<RequestId> {
    let text = &text[..text.len().min(HEAD_BYTES)];
    let text = std::str::from_utf8(text)
        .or_else(|e| std::str::from_utf8(&text[..e.valid_up_to()]))
        .ok()?;
    let start = text.find("\"id\"")? + 4;
    let rest = text[start..].trim_start().strip_prefix(':')?.trim_start();
    if !rest.starts_with(|c: char| c == '"' || c == '-' || c.is_ascii_digit()) {
        return None;
    }
    let mut values = serde_json::Deserializer::from_str(rest).into_iter::<serde_json::Value>();
    match values.next()?.ok()? {
        serde_json::Value::Number(n) => n.as_i64().map(RequestId::Number),
        serde_json::Value::String(s) => Some(RequestId::String(s.into())),
        _ => None,
    }
}

enum Line {
    Complete(Vec<u8>),
    /// Longer than the cap; its first bytes, the rest skipped.
    Oversized {
        head: Vec<u8>,
    },
    Eof,
}

/// Reads `\n`-terminated lines without ever buffering more than the cap of one.
struct LineReader<R> {
    read: BufReader<R>,
    max_line: usize,
}

impl<R: AsyncRead + Unpin> LineReader<R> {
    fn new(read: R, max_line: usize) -> Self {
        Self {
            read: BufReader::new(read),
            max_line,
        }
    }

    async fn next(&mut self) -> std::io::Result<Line> {
        let mut line = Vec::new();
        let mut oversized = false;
        loop {
            let available = self.read.fill_buf().await?;
            if available.is_empty() {
                // A last line without its newline is incomplete: nothing to deliver.
                return Ok(Line::Eof);
            }
            let newline = available.iter().position(|b| *b == b'\n');
            let take = newline.map_or(available.len(), |i| i + 1);
            if !oversized && line.len() + take > self.max_line.saturating_add(1) {
                oversized = true;
                line.truncate(HEAD_BYTES);
            }
            if oversized {
                let room = HEAD_BYTES.saturating_sub(line.len()).min(take);
                line.extend_from_slice(&available[..room]);
            } else {
                line.extend_from_slice(&available[..take]);
            }
            self.read.consume(take);
            if newline.is_some() {
                if oversized {
                    return Ok(Line::Oversized { head: line });
                }
                line.pop();
                return Ok(Line::Complete(line));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_id_is_read_from_the_start_of_a_message() {
        let id = leading_id(br#"{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"#);
        assert_eq!(id, Some(RequestId::Number(7)));
        let id = leading_id(br#"{"jsonrpc":"2.0", "id" : "a-1", "method""#);
        assert_eq!(id, Some(RequestId::String("a-1".into())));
        assert_eq!(leading_id(b"{\"method\":\"x\""), None);
    }

    #[tokio::test]
    async fn lines_over_the_cap_are_cut_to_their_head() {
        let input = format!("{}\nshort\n", "x".repeat(10_000));
        let mut reader = LineReader::new(input.as_bytes(), 100);
        assert!(
            matches!(reader.next().await.unwrap(), Line::Oversized { head } if head.len() == HEAD_BYTES)
        );
        assert!(matches!(reader.next().await.unwrap(), Line::Complete(l) if l == b"short"));
        assert!(matches!(reader.next().await.unwrap(), Line::Eof));
    }
}
