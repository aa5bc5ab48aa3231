//! The ways a client reaches the server.

pub mod http;
pub mod stdio;
