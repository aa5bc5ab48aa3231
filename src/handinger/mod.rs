//! The Handinger API: typed requests and answers, the HTTP client, and its errors. It
//! depends on nothing of ours but task ids (and `json_shape`). One file a job:
//!
//! - [`client`] — auth, body caps, the retry policy that never resends a POST Handinger may
//!   have taken; where a task's turns live (`get_task`).
//! - [`error`] — [`ApiError`], and whether Handinger may have taken a failed request.
//! - [`types`] — every shape Handinger sends and accepts, read leniently so a missing or
//!   odd field costs nothing.
//! - [`structured`] — a structured output too costly as a tree, passed as its text.
//! - [`attachment`] — attachments as a wire type (what `files` produces).
//! - [`redirect`] — the one place HTTP clients are built, and redirects followed by hand.
//! - [`lazy_http`] — those clients built on a thread of their own, off the handshake path.
//! - [`fetch_guard`] — which hosts answer files may come from.
//! - [`workers`] — the worker and schedule endpoints.
//! - [`observer`] — the hooks it reports its requests through (the server's metrics).

pub(crate) mod attachment;
pub(crate) mod client;
pub(crate) mod error;
pub(crate) mod fetch_guard;
pub(crate) mod lazy_http;
pub(crate) mod observer;
pub mod redirect;
pub(crate) mod structured;
pub mod types;
pub(crate) mod workers;

pub use client::{ClientOptions, HandingerClient, KeyError};
pub use error::ApiError;
pub use lazy_http::LazyHttp;
pub use observer::{Observer, Unobserved};
pub use redirect::HttpClients;
pub use types::{Budget, TaskRecord, TaskRequest, WorkerAnswer};
