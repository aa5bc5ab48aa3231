//! The Handinger API: typed requests and answers, the HTTP client, and its errors.

pub mod client;
pub mod error;
pub mod lazy_http;
pub mod types;
pub mod workers;

pub use client::{ClientOptions, HandingerClient};
pub use error::ApiError;
pub use lazy_http::LazyHttp;
pub use types::{Budget, TaskRecord, TaskRequest, WorkerAnswer};
