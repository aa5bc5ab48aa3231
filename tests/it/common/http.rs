//! The real binary in `http` mode on a free loopback port, and the clients that drive it:
//! rmcp's Streamable HTTP client, and plain reqwest for the raw HTTP cases.

use std::collections::HashMap;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use rmcp::ServiceExt;
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use tokio::process::{Child, Command};

use super::{Client, command};

/// How long the binary may take to start listening; generous, since it only bounds a hang.
const START_TIMEOUT: Duration = Duration::from_secs(60);

pub struct HttpBridge {
    child: Child,
    /// Copies stderr into `stderr` until the pipe closes.
    reader: Option<tokio::task::JoinHandle<()>>,
    /// `http://127.0.0.1:PORT`
    pub base: String,
    pub stderr: super::stderr::Log,
}

/// `handinger-mcp http --listen 127.0.0.1:0 <args>` against the fake at `base_url`.
pub async fn start_http(base_url: &str, args: &[&str]) -> HttpBridge {
    let mut argv = vec!["http", "--listen", "127.0.0.1:0"];
    argv.extend_from_slice(args);
    start_http_with(command(base_url, &argv)).await
}

pub async fn start_http_with(mut cmd: Command) -> HttpBridge {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn handinger-mcp http");
    let (stderr, reader) = super::stderr::collect(child.stderr.take().expect("stderr is piped"));
    let reader = Some(reader);
    let deadline = tokio::time::Instant::now() + START_TIMEOUT;
    loop {
        let announced = listening_address(&stderr.lock().unwrap());
        if let Some(base) = announced {
            return HttpBridge {
                child,
                reader,
                base,
                stderr,
            };
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "handinger-mcp http exited ({status}) before listening:\n{}",
                stderr.lock().unwrap()
            );
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "handinger-mcp http did not start listening:\n{}",
            stderr.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// The server announces `listening on http://ADDR/mcp` once it accepts connections.
fn listening_address(log: &str) -> Option<String> {
    let start = log.find("listening on http://")? + "listening on ".len();
    let rest = &log[start..];
    let end = rest.find("/mcp")?;
    Some(rest[..end].to_owned())
}

/// Runs the binary to completion (it is expected to refuse to start): status and stderr.
pub async fn run_to_exit(mut cmd: Command) -> (ExitStatus, String) {
    let output = tokio::time::timeout(
        START_TIMEOUT,
        cmd.stdin(Stdio::null()).kill_on_drop(true).output(),
    )
    .await
    .expect("handinger-mcp exits by itself")
    .expect("run handinger-mcp");
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

impl HttpBridge {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The `host:port` clients use.
    pub fn authority(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    /// rmcp's Streamable HTTP client, initialized against `/mcp`, sending `bearer` (if any)
    /// and the extra `headers` with every request.
    pub async fn client(&self, bearer: Option<&str>, headers: &[(&str, &str)]) -> Client {
        self.try_client(bearer, headers)
            .await
            .expect("MCP initialize over Streamable HTTP")
    }

    pub async fn try_client(
        &self,
        bearer: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Result<Client, String> {
        let custom: HashMap<http::HeaderName, http::HeaderValue> = headers
            .iter()
            .map(|(name, value)| {
                (
                    http::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                    http::HeaderValue::from_str(value).unwrap(),
                )
            })
            .collect();
        let mut config =
            StreamableHttpClientTransportConfig::with_uri(self.url("/mcp")).custom_headers(custom);
        if let Some(token) = bearer {
            config = config.auth_header(token);
        }
        let transport = StreamableHttpClientTransport::with_client(super::http_client(), config);
        ().serve(transport).await.map_err(|e| e.to_string())
    }

    /// The server's process id, for the faults tests inject with signals.
    pub fn pid(&self) -> u32 {
        self.child.id().expect("server still running")
    }

    /// Sends SIGTERM, as an orchestrator stopping the server would.
    pub fn terminate(&self) {
        super::signal(self.pid(), "TERM");
    }

    /// Waits (bounded) for the process to exit and for its last log lines.
    pub async fn wait(&mut self) -> ExitStatus {
        let status = tokio::time::timeout(START_TIMEOUT, self.child.wait())
            .await
            .expect("handinger-mcp exits after SIGTERM")
            .expect("wait for handinger-mcp");
        if let Some(reader) = self.reader.take() {
            let _ = tokio::time::timeout(START_TIMEOUT, reader).await;
        }
        status
    }

    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }
}
