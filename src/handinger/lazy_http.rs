//! The HTTP client to Handinger, built off the start-up path.
//!
//! Building a `reqwest::Client` loads the system's CA store (rustls-platform-verifier reads
//! and base64-decodes every certificate under `/etc/ssl`): about 86 % of a cold start's
//! instructions (docs/benchmarks.md). Nothing needs the client before the first call to
//! Handinger, so it is built on a thread of its own as soon as the process starts, while
//! the MCP handshake proceeds, and the first call awaits it.
//!
//! A broken TLS setup (no CA certificates at all) stays a clear error: every call that
//! needs the client gets it, and `doctor` reports it as a problem.

use std::sync::Arc;

use futures::FutureExt;
use futures::future::{BoxFuture, Shared};

use super::fetch_guard::FileHosts;
use super::redirect::HttpClients;

type Built = Result<HttpClients, Arc<str>>;

/// The [`HttpClients`] being built in the background; cheap to clone, shared by clones.
#[derive(Clone)]
pub struct LazyHttp {
    client: Shared<BoxFuture<'static, Built>>,
}

impl LazyHttp {
    /// Starts building the clients on a thread of its own.
    pub fn spawn(file_hosts: FileHosts) -> Self {
        let (sender, receiver) = futures::channel::oneshot::channel();
        let hosts = file_hosts.clone();
        let started = std::thread::Builder::new()
            .name("http-client-setup".into())
            .spawn(move || {
                let _ = sender.send(build(&hosts));
            });
        let client = match started {
            Ok(_) => receiver
                .map(|built| {
                    built.unwrap_or_else(|_| {
                        Err(Arc::from(
                            "the HTTP client's setup thread ended without a result",
                        ))
                    })
                })
                .boxed(),
            // No thread to spare: build it here, on the caller's thread.
            Err(_) => futures::future::ready(build(&file_hosts)).boxed(),
        };
        Self {
            client: client.shared(),
        }
    }

    /// The clients, once built; the error is a sentence saying what to fix.
    pub async fn get(&self) -> Result<HttpClients, String> {
        self.client.clone().await.map_err(|e| e.to_string())
    }
}

fn build(file_hosts: &FileHosts) -> Built {
    HttpClients::new(file_hosts).map_err(|e| Arc::from(setup_error(&e)))
}

/// What went wrong, with its innermost cause ("No CA certificates were loaded from the
/// system") and what to do about it.
fn setup_error(error: &reqwest::Error) -> String {
    let cause = super::error::innermost_cause(error);
    format!(
        "could not set up the HTTPS client ({cause}): install the system's CA certificates \
         (e.g. the ca-certificates package), or point SSL_CERT_FILE at a PEM bundle of them"
    )
}
