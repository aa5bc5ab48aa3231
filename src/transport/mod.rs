//! The ways a client reaches the server.

pub mod framing;
pub mod http;
pub mod json_stream;
pub mod message_shape;
pub mod stdio;

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
}
