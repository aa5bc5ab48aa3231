//! The ways a client reaches the server.

pub mod stdio;
