//! The ways a client reaches the server.

pub mod framing;
pub mod http;
pub mod message_shape;
pub mod stdio;
