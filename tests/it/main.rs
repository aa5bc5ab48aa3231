//! The integration tests: the real binary driven by real MCP clients against a fake
//! Handinger API, as one test binary. One binary links the dependency graph and compiles
//! [`common`] once, where a binary per file did both two dozen times, most of a fresh
//! test run (docs/architecture.md, "How long the tests take").
//!
//! Run one file's tests by its module path: `.ci/test -- http::` or
//! `cargo test --test it shared_store::`.

mod common;

mod api_shapes;
mod app_view;
mod bounds;
mod chaos;
mod commands;
mod contract;
mod files;
mod http;
mod limits;
mod long_tasks;
mod mcp_clients;
mod message_shape;
mod oauth;
mod papercuts;
mod properties;
mod python_clients;
mod security;
mod settings_errors;
mod shared_store;
mod soak;
mod stdio;
mod tool_snapshots;
mod toolsets;
mod trust_edges;
