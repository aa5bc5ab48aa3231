//! The Handinger API: typed requests and answers, the HTTP client, and its errors.

pub mod attachment;
pub mod client;
pub mod error;
pub mod fetch_guard;
pub mod lazy_http;
pub mod observer;
pub mod redirect;
pub mod structured;
pub mod types;
pub mod workers;

pub use client::{ClientOptions, HandingerClient, KeyError};
pub use error::ApiError;
pub use lazy_http::LazyHttp;
pub use observer::{Observer, Unobserved};
pub use redirect::HttpClients;
pub use types::{Budget, TaskRecord, TaskRequest, WorkerAnswer};
