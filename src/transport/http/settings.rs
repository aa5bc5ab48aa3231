//! The `http` subcommand's settings: flags, environment variables, defaults, and the
//! start-up checks that keep a remote bridge safe by default.

use std::net::SocketAddr;
use std::time::Duration;

use clap::builder::BoolishValueParser;
use clap::{ArgAction, Args};
use secrecy::{ExposeSecret, SecretString};

use super::hosts::{AllowedHosts, AllowedOrigins};

/// Shortest bearer token accepted: anything shorter can be guessed.
const MIN_TOKEN_CHARS: usize = 16;

const AFTER_HELP: &str = "\
Endpoints: /mcp (Streamable HTTP), /sse + /message (legacy HTTP+SSE), /healthz, /readyz,
/metrics (Prometheus; needs the bearer token when one is set).

Example (a team server; clients bring their own Handinger keys):
  HANDINGER_MCP_AUTH_TOKEN=$(openssl rand -hex 32) \\
    handinger-mcp http --listen 0.0.0.0:8787 --allowed-host mcp.example.com --key-from-request
  claude mcp add --transport http handinger https://mcp.example.com/mcp \\
    --header \"Authorization: Bearer <token>\" --header \"X-Handinger-Api-Key: hdg_live_…\"";

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "HTTP server", after_help = AFTER_HELP)]
pub struct HttpArgs {
    /// Address and port to listen on: IP:PORT, or HOST:PORT with a name resolved once at
    /// start (localhost is 127.0.0.1). Anything beyond loopback needs --auth-token (or an
    /// explicit --insecure-no-auth).
    #[arg(long, env = "HANDINGER_MCP_LISTEN", default_value = "127.0.0.1:8787", value_parser = super::listen::parse_listen)]
    pub listen: SocketAddr,

    /// Bearer token every client must send (`Authorization: Bearer <token>`), at least 16
    /// characters; `openssl rand -hex 32` makes a good one. Prefer the environment variable:
    /// a flag shows up in process lists.
    #[arg(long, env = "HANDINGER_MCP_AUTH_TOKEN", hide_env_values = true, value_parser = parse_secret)]
    pub auth_token: Option<SecretString>,

    /// Serve without a bearer token on a non-loopback address. Only when something in front
    /// of this server (a proxy, a private network) already decides who may reach it.
    #[arg(long, env = "HANDINGER_MCP_INSECURE_NO_AUTH", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub insecure_no_auth: bool,

    /// Extra allowed `Host` header value: a name or address, with `:port` to allow only that
    /// port. Repeat it or separate with commas. localhost, 127.0.0.1, [::1] and the listen
    /// address are always allowed. `*` allows any host (only with --auth-token or
    /// --insecure-no-auth).
    #[arg(
        long = "allowed-host",
        env = "HANDINGER_MCP_ALLOWED_HOSTS",
        value_delimiter = ',',
        value_name = "HOST"
    )]
    pub allowed_hosts: Vec<String>,

    /// Extra allowed browser `Origin`, as scheme://host[:port] (e.g. https://app.example.com).
    /// Repeat it or separate with commas. Origins on an allowed host are always allowed;
    /// requests without an Origin header (non-browser clients) are not affected.
    #[arg(
        long = "allowed-origin",
        env = "HANDINGER_MCP_ALLOWED_ORIGINS",
        value_delimiter = ',',
        value_name = "ORIGIN"
    )]
    pub allowed_origins: Vec<String>,

    /// No sessions: every request is self-contained and answered with plain JSON (a call
    /// that sends progress notifications answers with one event stream instead), so
    /// replicas behind a plain load balancer need no affinity. The legacy SSE transport
    /// (which needs a session) is off in this mode.
    #[arg(long, env = "HANDINGER_MCP_STATELESS", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub stateless: bool,

    /// Run each call with the Handinger key its client sends in the X-Handinger-Api-Key
    /// header (required on every MCP request) instead of HANDINGER_API_KEY, which is then
    /// not needed and not read.
    #[arg(long, env = "HANDINGER_MCP_KEY_FROM_REQUEST", action = ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub key_from_request: bool,

    /// Largest request body accepted, in bytes; larger ones get 413.
    #[arg(long, env = "HANDINGER_MCP_MAX_BODY_BYTES", default_value_t = 4 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1024..=256 * 1024 * 1024))]
    pub max_body_bytes: u64,

    /// Most tool calls running at once, across all clients; more get 503 with Retry-After.
    /// The default matches --max-turns-in-flight's, so every turn the server may run can
    /// have a caller waiting on it; a held call costs about 40 KiB (docs/limits.md).
    #[arg(long, env = "HANDINGER_MCP_MAX_CONCURRENT_CALLS", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub max_concurrent_calls: u32,

    /// Requests a client may make per minute (in bursts of up to as many); more get 429
    /// with Retry-After. A client is its X-Handinger-Api-Key when it sends one, else its IP
    /// address. 0 turns the limit off.
    #[arg(long, env = "HANDINGER_MCP_RATE_LIMIT", default_value_t = 300)]
    pub rate_limit: u32,

    /// Seconds a session may sit idle before it is closed; its client then gets 404 and
    /// starts a new session. Must be longer than --max-wait.
    #[arg(long, env = "HANDINGER_MCP_SESSION_IDLE_TIMEOUT", default_value_t = 1800, value_parser = clap::value_parser!(u64).range(1..=7 * 24 * 3600))]
    pub session_idle_timeout: u64,

    /// Most MCP sessions open at once (Streamable HTTP and legacy SSE together). An
    /// `initialize` beyond it closes an idle Streamable HTTP session of the address holding
    /// the most (never-used ones first, then the longest idle); when every session is busy
    /// it, and a `GET /sse`, get 503 with Retry-After.
    #[arg(long, env = "HANDINGER_MCP_MAX_SESSIONS", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_sessions: u32,

    /// Seconds a new session has to send its first request after `initialize` (a request,
    /// not a notification, or opening its event stream); one that sends none is closed
    /// then rather than after --session-idle-timeout [default: 60, or
    /// --session-idle-timeout when lower]. At most --session-idle-timeout.
    #[arg(long, env = "HANDINGER_MCP_SESSION_FIRST_REQUEST_TIMEOUT", value_parser = clap::value_parser!(u64).range(1..=7 * 24 * 3600))]
    pub session_first_request_timeout: Option<u64>,

    /// Most MCP sessions one client address may hold open; more get 429 with Retry-After.
    /// Behind a proxy every client shares the proxy's address: raise it to --max-sessions.
    #[arg(long, env = "HANDINGER_MCP_MAX_SESSIONS_PER_CLIENT", default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_sessions_per_client: u32,

    /// Wrong or missing bearer tokens one client address may send per minute (in bursts of
    /// as many); beyond it every request from that address that needs the token gets 429
    /// with Retry-After, the right token included, until the budget refills. Behind a
    /// proxy one guesser throttles every client of the proxy. 0 turns it off.
    #[arg(long, env = "HANDINGER_MCP_AUTH_FAILURE_LIMIT", default_value_t = 30)]
    pub auth_failure_limit: u32,

    /// Requests one client address may make per minute, whatever keys it sends (so new
    /// X-Handinger-Api-Key values buy nothing); more get 429 with Retry-After. Behind a proxy
    /// every client shares the proxy's address: raise it or turn it off. 0 turns it off.
    #[arg(long, env = "HANDINGER_MCP_ADDRESS_RATE_LIMIT", default_value_t = 1200)]
    pub address_rate_limit: u32,

    /// Most HTTP connections open at once. Beyond it, --probe-connections more are let in
    /// for /healthz and /readyz only (anything else gets 503); beyond those, connections
    /// are closed as soon as they are accepted. Keep it below the process's descriptor
    /// limit (ulimit -n).
    #[arg(long, env = "HANDINGER_MCP_MAX_CONNECTIONS", default_value_t = 2048, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,

    /// Connections kept beyond --max-connections for health and readiness probes, so a
    /// flood of connections never makes a healthy server look dead. With --probe-listen,
    /// also the cap of that listener.
    #[arg(long, env = "HANDINGER_MCP_PROBE_CONNECTIONS", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub probe_connections: u32,

    /// Most connections one client address may hold open [default: 128, or half of
    /// --max-connections when lower]; more are refused with 429 as they are accepted. An
    /// IPv6 client counts by its /64. Behind a proxy every client shares the proxy's
    /// address: raise it to --max-connections and limit per client at the proxy.
    #[arg(long, env = "HANDINGER_MCP_MAX_CONNECTIONS_PER_CLIENT", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections_per_client: Option<u32>,

    /// Most connections one client address may hold that have not yet sent a complete
    /// first request head (half-open) [default: 64, or half of --max-connections-per-client
    /// when lower]; more are refused with 429 as they are accepted. A real client's new
    /// connection sends its head at once, so only a flood (or a client opening more than
    /// this many connections at the same moment) holds many.
    #[arg(long, env = "HANDINGER_MCP_MAX_PENDING_CONNECTIONS_PER_CLIENT", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_pending_connections_per_client: Option<u32>,

    /// A second address (IP:PORT or HOST:PORT) serving only /healthz and /readyz, with its
    /// own --probe-connections connections: nothing sent to --listen can fill it, so an
    /// orchestrator's probes are answered whatever floods the main port. Point liveness and
    /// readiness probes at it, and keep it reachable only by the orchestrator.
    #[arg(long, env = "HANDINGER_MCP_PROBE_LISTEN", value_parser = super::listen::parse_listen)]
    pub probe_listen: Option<SocketAddr>,

    /// Seconds a new connection has to send a complete request head (the request line and
    /// headers), and a kept-alive one from its first byte; slower ones are closed.
    #[arg(long, env = "HANDINGER_MCP_HEADER_READ_TIMEOUT", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=600))]
    pub header_read_timeout: u64,

    /// Seconds a request has to send its whole body once its head arrived; slower ones get
    /// 408.
    #[arg(long, env = "HANDINGER_MCP_BODY_READ_TIMEOUT", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub body_read_timeout: u64,

    /// Seconds a kept-alive connection may sit between requests before it is closed.
    #[arg(long, env = "HANDINGER_MCP_KEEP_ALIVE_TIMEOUT", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub keep_alive_timeout: u64,

    /// Seconds a connection may go without taking any byte of an answer that is waiting to
    /// be sent; then it is closed (its call's place and the answer's encoding are freed).
    /// Idle event streams are not waiting to send, so this never closes them.
    #[arg(long, env = "HANDINGER_MCP_WRITE_TIMEOUT", default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub write_timeout: u64,

    /// Most bytes of request bodies held at once, across all requests in progress; a body
    /// that would go beyond it gets 503 with Retry-After. At least --max-body-bytes.
    #[arg(long, env = "HANDINGER_MCP_MAX_BODY_BUFFER_BYTES", default_value_t = 16 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1024..=64 * 1024 * 1024 * 1024))]
    pub max_body_buffer_bytes: u64,

    /// Seconds to let tool calls in flight finish after SIGTERM before closing sessions.
    #[arg(long, env = "HANDINGER_MCP_SHUTDOWN_GRACE", default_value_t = 10, value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub shutdown_grace: u64,

    #[command(flatten)]
    pub oauth: crate::oauth::OAuthArgs,
}

fn parse_secret(raw: &str) -> Result<SecretString, String> {
    Ok(SecretString::from(raw.trim().to_owned()))
}

/// Checked settings, ready to serve with.
#[derive(Debug)]
pub struct HttpSettings {
    pub listen: SocketAddr,
    pub auth_token: Option<SecretString>,
    pub hosts: AllowedHosts,
    pub origins: AllowedOrigins,
    pub stateless: bool,
    pub key_from_request: bool,
    pub max_body_bytes: usize,
    pub max_concurrent_calls: u32,
    pub rate_limit: u32,
    pub session_idle_timeout: Duration,
    pub shutdown_grace: Duration,
    pub sessions: super::session_limits::SessionLimits,
    pub address_rate_limit: u32,
    pub auth_failure_limit: u32,
    pub connections: super::connections::ConnectionLimits,
    pub probe_listen: Option<SocketAddr>,
    pub session_first_request_timeout: Duration,
    /// OAuth mode (`--oauth`): sign-in replaces the bearer token, and calls run on each
    /// user's key as with --key-from-request.
    pub oauth: Option<crate::oauth::OAuthSettings>,
}

impl HttpArgs {
    /// Checks the settings; `max_wait` is the longest a tool call waits (`--max-wait`).
    pub fn validate(mut self, max_wait: Duration) -> Result<HttpSettings, String> {
        let mut oauth = self.oauth.clone().validate()?;
        if let Some(oauth) = &mut oauth {
            oauth.cors_origins = crate::oauth::cors::origins(&self.allowed_origins);
            let flag = if oauth.issuer.is_some() {
                "--oauth-issuer"
            } else {
                "--oauth"
            };
            if self.auth_token.is_some() || self.insecure_no_auth {
                return Err(format!(
                    "{flag} is how clients authenticate: drop --auth-token and \
                     --insecure-no-auth (HANDINGER_MCP_AUTH_TOKEN / \
                     HANDINGER_MCP_INSECURE_NO_AUTH)"
                ));
            }
            // The key was not read when keys come from requests, so this cannot be mended
            // here: with --oauth-issuer every call runs on the server's key.
            if oauth.issuer.is_some() && self.key_from_request {
                return Err("--oauth-issuer runs every call on the server's key \
                            (HANDINGER_API_KEY): drop --key-from-request \
                            (HANDINGER_MCP_KEY_FROM_REQUEST)"
                    .into());
            }
            // Calls run on each signed-in user's key (with --oauth-issuer, on the server's),
            // and the public host is this server's.
            self.key_from_request = oauth.issuer.is_none();
            self.allowed_hosts.push(oauth.public_host.clone());
        }
        let auth_token = match self.auth_token {
            Some(token) => Some(validate_token(token)?),
            None => None,
        };
        if auth_token.is_some() && self.insecure_no_auth {
            return Err("both --auth-token and --insecure-no-auth are set: drop one (HANDINGER_MCP_AUTH_TOKEN / HANDINGER_MCP_INSECURE_NO_AUTH)".into());
        }
        if !self.listen.ip().is_loopback()
            && auth_token.is_none()
            && !self.insecure_no_auth
            && oauth.is_none()
        {
            return Err(format!(
                "refusing to listen on {} without a bearer token: anyone who can reach that \
                 address could spend your Handinger credits. Set HANDINGER_MCP_AUTH_TOKEN \
                 (e.g. to the output of `openssl rand -hex 32`) and give it to your clients, \
                 listen on 127.0.0.1 instead, or pass --insecure-no-auth if a proxy in front \
                 already authenticates every client",
                self.listen
            ));
        }
        let hosts = AllowedHosts::new(self.listen, &self.allowed_hosts)?;
        if hosts.allows_any() && auth_token.is_none() && !self.insecure_no_auth && oauth.is_none() {
            return Err("--allowed-host '*' turns off DNS-rebinding protection, which only a bearer token can replace: set HANDINGER_MCP_AUTH_TOKEN too (or list the host names clients use)".into());
        }
        let origins = AllowedOrigins::new(&self.allowed_origins)?;
        let session_idle_timeout = Duration::from_secs(self.session_idle_timeout);
        if session_idle_timeout <= max_wait {
            return Err(format!(
                "--session-idle-timeout {}s is not longer than --max-wait {}s: a session would \
                 be closed while one of its calls waits. Raise the timeout or lower --max-wait",
                session_idle_timeout.as_secs(),
                max_wait.as_secs()
            ));
        }
        if self.max_sessions_per_client > self.max_sessions {
            return Err(format!(
                "--max-sessions-per-client {} is above --max-sessions {}: lower it, or raise \
                 --max-sessions (HANDINGER_MCP_MAX_SESSIONS_PER_CLIENT / HANDINGER_MCP_MAX_SESSIONS)",
                self.max_sessions_per_client, self.max_sessions
            ));
        }
        let session_first_request_timeout = match self.session_first_request_timeout {
            Some(seconds) => Duration::from_secs(seconds),
            None => SESSION_FIRST_REQUEST_TIMEOUT.min(session_idle_timeout),
        };
        if session_first_request_timeout > session_idle_timeout {
            return Err(format!(
                "--session-first-request-timeout {}s is above --session-idle-timeout {}s: an \
                 unused session would outlive an idle one. Lower it, or raise the idle timeout \
                 (HANDINGER_MCP_SESSION_FIRST_REQUEST_TIMEOUT / HANDINGER_MCP_SESSION_IDLE_TIMEOUT)",
                session_first_request_timeout.as_secs(),
                session_idle_timeout.as_secs()
            ));
        }
        let per_client = per_client_connections(
            self.max_connections,
            self.max_connections_per_client,
            self.max_pending_connections_per_client,
        )?;
        // Port 0 picks a free port for each, so two of them never collide.
        if self
            .probe_listen
            .is_some_and(|probes| probes == self.listen && probes.port() != 0)
        {
            return Err(format!(
                "--probe-listen {} is the --listen address: give the probes a port of their own \
                 (e.g. {}:8788), or drop --probe-listen to serve them on the main port",
                self.listen,
                self.listen.ip()
            ));
        }
        if self.max_body_buffer_bytes < self.max_body_bytes {
            return Err(format!(
                "--max-body-buffer-bytes {} is below --max-body-bytes {}: no request of the \
                 largest allowed size could be read. Raise it or lower --max-body-bytes",
                self.max_body_buffer_bytes, self.max_body_bytes
            ));
        }
        Ok(HttpSettings {
            sessions: super::session_limits::SessionLimits {
                max_total: self.max_sessions as usize,
                max_per_client: self.max_sessions_per_client as usize,
            },
            address_rate_limit: self.address_rate_limit,
            auth_failure_limit: self.auth_failure_limit,
            probe_listen: self.probe_listen,
            session_first_request_timeout,
            oauth,
            connections: super::connections::ConnectionLimits {
                max_connections: self.max_connections as usize,
                probe_connections: self.probe_connections as usize,
                per_client,
                header_read_timeout: Duration::from_secs(self.header_read_timeout),
                body_read_timeout: Duration::from_secs(self.body_read_timeout),
                keep_alive_timeout: Duration::from_secs(self.keep_alive_timeout),
                write_timeout: Duration::from_secs(self.write_timeout),
                max_body_buffer_bytes: usize::try_from(self.max_body_buffer_bytes)
                    .unwrap_or(usize::MAX),
            },
            listen: self.listen,
            auth_token,
            hosts,
            origins,
            stateless: self.stateless,
            key_from_request: self.key_from_request,
            max_body_bytes: usize::try_from(self.max_body_bytes).unwrap_or(usize::MAX),
            max_concurrent_calls: self.max_concurrent_calls,
            rate_limit: self.rate_limit,
            session_idle_timeout,
            shutdown_grace: Duration::from_secs(self.shutdown_grace),
        })
    }
}

/// Default time a session has for its first request: a client sends one (`tools/list`, as
/// rmcp's, the Python and the TypeScript SDKs' do) right after `initialize`, and any
/// client told 404 later starts a new session by itself.
const SESSION_FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Default bound on one address's open connections: enough for a busy agent (a held call
/// per connection, up to the default 64 turns per key, and its event streams) with room to
/// spare, and a sixteenth of the default `--max-connections`.
const CONNECTIONS_PER_CLIENT: u32 = 128;
/// Default bound on one address's half-open connections. A client's new connection sends its
/// head at once, but a burst of new connections can all be accepted before any is read, so
/// this leaves room for a client opening 64 at once; a flood holds at most this many, a
/// thirty-second of the default `--max-connections`.
const PENDING_CONNECTIONS_PER_CLIENT: u32 = 64;

/// The per-address connection bounds: each defaults to its constant, or to half the bound
/// above it when that is lower (so by default one address never holds more than half the
/// server's connections, nor half of its own as half-open ones, however small the caps);
/// one set explicitly above the bound above it is an error.
fn per_client_connections(
    max_connections: u32,
    open: Option<u32>,
    pending: Option<u32>,
) -> Result<super::per_address::AddressLimits, String> {
    if let Some(open) = open
        && open > max_connections
    {
        return Err(format!(
            "--max-connections-per-client {open} is above --max-connections {max_connections}: \
             lower it, or raise --max-connections (HANDINGER_MCP_MAX_CONNECTIONS_PER_CLIENT / \
             HANDINGER_MCP_MAX_CONNECTIONS)"
        ));
    }
    let open = open.unwrap_or(CONNECTIONS_PER_CLIENT.min(max_connections.div_ceil(2)));
    if let Some(pending) = pending
        && pending > open
    {
        return Err(format!(
            "--max-pending-connections-per-client {pending} is above the {open} connections \
             one client may hold (--max-connections-per-client): lower it or raise that"
        ));
    }
    let pending = pending.unwrap_or(PENDING_CONNECTIONS_PER_CLIENT.min(open.div_ceil(2)));
    Ok(super::per_address::AddressLimits {
        max_open: open as usize,
        max_pending: pending as usize,
    })
}

fn validate_token(token: SecretString) -> Result<SecretString, String> {
    let text = token.expose_secret();
    if text.chars().count() < MIN_TOKEN_CHARS {
        return Err(format!(
            "HANDINGER_MCP_AUTH_TOKEN / --auth-token is shorter than {MIN_TOKEN_CHARS} characters: \
             use a long random one, e.g. the output of `openssl rand -hex 32`"
        ));
    }
    // Clients must be able to send it in a header: visible ASCII, no spaces.
    if !text.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("HANDINGER_MCP_AUTH_TOKEN / --auth-token may hold only visible ASCII characters without spaces (a stray newline or quote?): e.g. the output of `openssl rand -hex 32`".into());
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Cli, Command};
    use clap::Parser;

    const TOKEN: &str = "0123456789abcdef0123";

    fn parse(extra: &[&str]) -> HttpArgs {
        let mut argv = vec!["handinger-mcp", "http"];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv).unwrap().command {
            Some(Command::Http(args)) => *args,
            other => panic!("not http: {other:?}"),
        }
    }

    fn check(extra: &[&str]) -> Result<HttpSettings, String> {
        parse(extra).validate(Duration::from_secs(50))
    }

    #[test]
    fn defaults_are_loopback_and_safe() {
        let settings = check(&[]).unwrap();
        assert_eq!(settings.listen.to_string(), "127.0.0.1:8787");
        assert!(settings.auth_token.is_none());
        assert_eq!(settings.max_body_bytes, 4 * 1024 * 1024);
    }

    #[test]
    fn beyond_loopback_needs_a_token_or_an_explicit_opt_out() {
        let err = check(&["--listen", "0.0.0.0:8787"]).unwrap_err();
        assert!(err.contains("HANDINGER_MCP_AUTH_TOKEN"), "{err}");
        assert!(check(&["--listen", "0.0.0.0:8787", "--auth-token", TOKEN]).is_ok());
        assert!(check(&["--listen", "0.0.0.0:8787", "--insecure-no-auth"]).is_ok());
    }

    #[test]
    fn weak_or_contradictory_tokens_are_refused() {
        assert!(check(&["--auth-token", "short"]).is_err());
        assert!(check(&["--auth-token", "0123456789 abcdef0123"]).is_err());
        assert!(check(&["--auth-token", TOKEN, "--insecure-no-auth"]).is_err());
    }

    #[test]
    fn wildcard_host_needs_a_token() {
        assert!(check(&["--allowed-host", "*"]).is_err());
        assert!(check(&["--allowed-host", "*", "--auth-token", TOKEN]).is_ok());
    }

    #[test]
    fn idle_timeout_must_outlast_max_wait() {
        let err = check(&["--session-idle-timeout", "50"]).unwrap_err();
        assert!(err.contains("--max-wait"), "{err}");
    }

    #[test]
    fn connection_and_session_bounds_have_defaults_and_are_checked() {
        let settings = check(&[]).unwrap();
        assert_eq!(settings.connections.max_connections, 2048);
        assert_eq!(settings.sessions.max_total, 1000);
        let err = check(&["--max-sessions", "5", "--max-sessions-per-client", "6"]).unwrap_err();
        assert!(err.contains("--max-sessions-per-client"), "{err}");
        let err = check(&[
            "--max-body-buffer-bytes",
            "2048",
            "--max-body-bytes",
            "4096",
        ])
        .unwrap_err();
        assert!(err.contains("--max-body-buffer-bytes"), "{err}");
        assert_eq!(settings.connections.per_client.max_open, 128);
        assert_eq!(settings.connections.per_client.max_pending, 64);
        let low = check(&["--max-connections", "10"]).unwrap();
        assert_eq!(low.connections.per_client.max_open, 5, "half the cap");
        assert_eq!(low.connections.per_client.max_pending, 3);
        let err = check(&[
            "--max-connections",
            "10",
            "--max-connections-per-client",
            "11",
        ])
        .unwrap_err();
        assert!(err.contains("--max-connections-per-client"), "{err}");
        let err = check(&[
            "--max-connections-per-client",
            "4",
            "--max-pending-connections-per-client",
            "5",
        ])
        .unwrap_err();
        assert!(
            err.contains("--max-pending-connections-per-client"),
            "{err}"
        );
        let err = check(&["--probe-listen", "127.0.0.1:8787"]).unwrap_err();
        assert!(err.contains("--probe-listen"), "{err}");
        let err = check(&[
            "--session-idle-timeout",
            "100",
            "--session-first-request-timeout",
            "101",
        ])
        .unwrap_err();
        assert!(err.contains("--session-first-request-timeout"), "{err}");
        let short = check(&["--session-idle-timeout", "51"]).unwrap();
        assert_eq!(short.session_first_request_timeout, Duration::from_secs(51));
        assert_eq!(
            check(&[]).unwrap().session_first_request_timeout,
            Duration::from_secs(60)
        );
        let parsed = Cli::try_parse_from(["handinger-mcp", "http", "--max-connections", "0"]);
        assert!(parsed.is_err(), "a cap of zero connections is refused");
    }

    #[test]
    fn the_token_never_shows_in_debug_output() {
        let settings = check(&["--auth-token", TOKEN]).unwrap();
        assert!(!format!("{settings:?}").contains(TOKEN));
        assert!(!format!("{:?}", parse(&["--auth-token", TOKEN])).contains(TOKEN));
    }
}
