//! The ways a client reaches the server. One file a job:
//!
//! - [`stdio`] — MCP over stdin/stdout for a local client.
//! - [`framing`] — stdio's framing: a size cap per message, no two requests with one id in
//!   flight.
//! - [`http`] — MCP over HTTP for remote clients (its own list).
//! - [`message_shape`] — what a client message may cost before it is parsed (nesting,
//!   values, id and progress-token length), on every transport.
//! - [`json_stream`] — a large outgoing message encoded in chunks as it is sent (stdio and
//!   `--stateless`), never its whole JSON at once.

pub(crate) mod framing;
pub(crate) mod http;
pub(crate) mod json_stream;
pub(crate) mod message_shape;
pub(crate) mod stdio;

/// Why a transport could not serve, or stopped with an error; each message says what
/// happened and, where it can, what to do.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// An address could not be listened on (another process uses the port) or read back.
    #[error("{0}")]
    Listen(String),
    /// The MCP session or the HTTP server ended with an error.
    #[error("{0}")]
    Stopped(String),
    /// OAuth mode could not be set up (its secret, its store); the message says what to fix.
    #[error("{0}")]
    OAuth(String),
}
