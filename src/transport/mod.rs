//! The ways a client reaches the server.

pub mod framing;
pub mod http;
pub mod json_stream;
pub mod message_shape;
pub mod stdio;
