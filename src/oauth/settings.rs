//! OAuth mode's flags (`http --oauth`), their checks, and its secret.

use std::time::Duration;

use clap::Args;
use clap::builder::BoolishValueParser;
use secrecy::SecretString;

pub(crate) const SECRET_VAR: &str = "HANDINGER_MCP_OAUTH_SECRET";
pub(crate) const SECRET_FILE_VAR: &str = "HANDINGER_MCP_OAUTH_SECRET_FILE";
pub(crate) const PREVIOUS_SECRET_VAR: &str = "HANDINGER_MCP_OAUTH_PREVIOUS_SECRET";
pub(crate) const PREVIOUS_SECRET_FILE_VAR: &str = "HANDINGER_MCP_OAUTH_PREVIOUS_SECRET_FILE";
/// Shortest OAuth secret accepted: it is what the users' Handinger keys are sealed under.
const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "OAuth sign-in (--oauth)")]
pub struct OAuthArgs {
    /// Let clients sign in with OAuth 2.1 (the MCP authorization spec): this server is then
    /// both the resource server and its own authorization server, and each user signs in
    /// once in the browser with their own Handinger API key, on which their calls then run.
    /// Needs --public-url. The users' keys are sealed under HANDINGER_MCP_OAUTH_SECRET
    /// (or the file HANDINGER_MCP_OAUTH_SECRET_FILE names), required with --store.
    #[arg(long, env = "HANDINGER_MCP_OAUTH", action = clap::ArgAction::SetTrue, value_parser = BoolishValueParser::new())]
    pub oauth: bool,

    /// An organisation's own authorization server (its issuer URL, as in its tokens' `iss`):
    /// the server then only checks that issuer's JWT access tokens (signature against its
    /// JWKS, issuer, audience = --public-url's /mcp, expiry) and runs calls on its own
    /// HANDINGER_API_KEY; it serves no sign-in of its own. Needs --public-url; not with
    /// --oauth.
    #[arg(long, env = "HANDINGER_MCP_OAUTH_ISSUER", value_name = "URL")]
    pub oauth_issuer: Option<String>,

    /// With --oauth-issuer: a scope the issuer's access tokens must carry (in their `scope`
    /// claim); a token without it gets 403 insufficient_scope and reaches nothing. Without
    /// it, any token of the issuer for this server is accepted, whatever its scopes.
    #[arg(long, env = "HANDINGER_MCP_OAUTH_ISSUER_SCOPE", value_name = "SCOPE")]
    pub oauth_issuer_scope: Option<String>,

    /// The URL clients reach this server by, without /mcp (e.g. https://mcp.example.com):
    /// tokens are issued for it and checked against it. https, or http on a loopback host.
    #[arg(long, env = "HANDINGER_MCP_PUBLIC_URL", value_name = "URL")]
    pub public_url: Option<String>,

    /// Seconds an access token is valid; clients refresh it with their refresh token.
    #[arg(long, env = "HANDINGER_MCP_OAUTH_ACCESS_TOKEN_TTL", default_value_t = 900, value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub oauth_access_token_ttl: u64,

    /// Seconds a grant lives without being refreshed; each refresh starts it again.
    #[arg(long, env = "HANDINGER_MCP_OAUTH_REFRESH_TOKEN_TTL", default_value_t = 30 * 86_400, value_parser = clap::value_parser!(u64).range(60..=365 * 86_400))]
    pub oauth_refresh_token_ttl: u64,

    /// Most client registrations (RFC 7591) kept at once; beyond it registration answers 503
    /// until unused ones expire (--oauth-client-idle-ttl).
    #[arg(long, env = "HANDINGER_MCP_OAUTH_MAX_CLIENTS", default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub oauth_max_clients: u32,

    /// Client registrations one client address may make per minute; more get 429.
    #[arg(long, env = "HANDINGER_MCP_OAUTH_REGISTRATIONS_PER_MINUTE", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub oauth_registrations_per_minute: u32,

    /// Sign-in attempts (a key typed and checked at Handinger) one client address may make
    /// per minute; more get the page again with a message to wait.
    #[arg(long, env = "HANDINGER_MCP_OAUTH_SIGN_INS_PER_MINUTE", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub oauth_sign_ins_per_minute: u32,

    /// Seconds a registered client is kept without being used to sign in.
    #[arg(long, env = "HANDINGER_MCP_OAUTH_CLIENT_IDLE_TTL", default_value_t = 30 * 86_400, value_parser = clap::value_parser!(u64).range(60..=365 * 86_400))]
    pub oauth_client_idle_ttl: u64,

    /// Most OAuth records (registrations, codes, grants, tokens) one process keeps in memory
    /// without --store; beyond it new ones are refused with 503 until old ones expire.
    #[arg(long, env = "HANDINGER_MCP_OAUTH_MAX_RECORDS", default_value_t = 100_000, value_parser = clap::value_parser!(u32).range(10..=10_000_000))]
    pub oauth_max_records: u32,
}

/// Checked OAuth settings.
#[derive(Debug, Clone)]
pub struct OAuthSettings {
    /// The canonical origin (and any base path), no trailing slash: also the issuer.
    pub public_url: String,
    /// Its host and optional port, which the server must answer as `Host`.
    pub public_host: String,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub max_clients: usize,
    pub registrations_per_minute: u32,
    pub sign_ins_per_minute: u32,
    pub client_idle_ttl: Duration,
    pub max_records: usize,
    /// The `--allowed-origin` origins, which browser pages may call `/mcp` from.
    pub cors_origins: Vec<String>,
    /// `--oauth-issuer`: tokens are another server's JWTs, and calls run on the server's key.
    pub issuer: Option<String>,
    /// `--oauth-issuer-scope`: the scope those tokens must carry, if any.
    pub issuer_scope: Option<String>,
    /// The sealing secret and the previous one (rotation); `None`: drawn at random.
    pub secret: Option<(SecretString, Option<SecretString>)>,
}

impl OAuthArgs {
    /// `None` when OAuth mode is off.
    pub fn validate(self) -> Result<Option<OAuthSettings>, String> {
        if self.oauth && self.oauth_issuer.is_some() {
            return Err(
                "--oauth (this server signs users in) and --oauth-issuer (another \
                        server does) exclude each other: keep one"
                    .into(),
            );
        }
        if !self.oauth && self.oauth_issuer.is_none() {
            if self.public_url.is_some() {
                return Err("--public-url is only used with --oauth: add --oauth \
                            (HANDINGER_MCP_OAUTH=1), or drop --public-url"
                    .into());
            }
            return Ok(None);
        }
        let issuer = match self.oauth_issuer {
            Some(raw) => {
                let trimmed = raw.trim().to_owned();
                check_url(
                    "--oauth-issuer",
                    "give the issuer's https URL, exactly as its tokens' iss claim names it",
                    trimmed.trim_end_matches('/'),
                )?;
                Some(trimmed)
            }
            None => None,
        };
        let issuer_scope = match (self.oauth_issuer_scope, &issuer) {
            (None, _) => None,
            (Some(_), None) => {
                return Err(
                    "--oauth-issuer-scope is only used with --oauth-issuer: this \
                            server's own sign-in issues the one scope it checks"
                        .into(),
                );
            }
            (Some(scope), Some(_)) => {
                // RFC 6749's scope-token: printable ASCII without space, `"` or `\`.
                let valid = !scope.is_empty()
                    && scope
                        .bytes()
                        .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\');
                if !valid {
                    return Err(format!(
                        "--oauth-issuer-scope {:?} is not one scope: give a single scope name \
                         (printable ASCII, no spaces or quotes), as the issuer writes it",
                        crate::printable::one_line(&scope)
                    ));
                }
                Some(scope)
            }
        };
        let raw = self.public_url.ok_or(
            "--oauth and --oauth-issuer need --public-url (HANDINGER_MCP_PUBLIC_URL): the URL clients reach this \
             server by, e.g. https://mcp.example.com (tokens are issued for it)",
        )?;
        let (public_url, public_host) = check_public_url(&raw)?;
        let secret = match read_secret(SECRET_VAR, SECRET_FILE_VAR)? {
            Some(current) => Some((
                current,
                read_secret(PREVIOUS_SECRET_VAR, PREVIOUS_SECRET_FILE_VAR)?,
            )),
            None => None,
        };
        Ok(Some(OAuthSettings {
            public_url,
            public_host,
            access_ttl: Duration::from_secs(self.oauth_access_token_ttl),
            refresh_ttl: Duration::from_secs(self.oauth_refresh_token_ttl),
            max_clients: self.oauth_max_clients as usize,
            registrations_per_minute: self.oauth_registrations_per_minute,
            sign_ins_per_minute: self.oauth_sign_ins_per_minute,
            client_idle_ttl: Duration::from_secs(self.oauth_client_idle_ttl),
            max_records: self.oauth_max_records as usize,
            cors_origins: Vec::new(),
            issuer,
            issuer_scope,
            secret,
        }))
    }
}

/// The public URL without a trailing slash, and its `host[:port]`.
fn check_public_url(raw: &str) -> Result<(String, String), String> {
    const HINT: &str = "give the https URL clients reach this server by, without /mcp \
                        (e.g. https://mcp.example.com)";
    let checked = check_url("--public-url", HINT, raw)?;
    if checked.0.ends_with("/mcp") {
        return Err(format!("--public-url {raw:?} ends in /mcp: {HINT}"));
    }
    Ok(checked)
}

/// A URL given to `flag`: https (plain http only on a loopback host), no credentials, query
/// or fragment. It without a trailing slash, and its `host[:port]`; `hint` says what to
/// give instead.
fn check_url(flag: &str, hint: &str, raw: &str) -> Result<(String, String), String> {
    let bad = |why: &str| format!("{flag} {raw:?} {why}: {hint}");
    let url = reqwest::Url::parse(raw.trim()).map_err(|_| bad("is not a URL"))?;
    let host = url.host_str().ok_or_else(|| bad("has no host"))?;
    match url.scheme() {
        "https" => {}
        "http" if super::clients::is_loopback(&url) => {}
        _ => return Err(bad("is not https (plain http only on a loopback host)")),
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("carries credentials"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(bad("has a query or fragment"));
    }
    let path = url.path().trim_end_matches('/');
    let authority = match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    };
    Ok((format!("{}://{authority}{path}", url.scheme()), authority))
}

/// A secret from `var`, or the file `file_var` names ([`crate::env_secret::read`]).
fn read_secret(var: &str, file_var: &str) -> Result<Option<SecretString>, String> {
    crate::env_secret::read(var, file_var, MIN_SECRET_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_urls_are_https_or_loopback_http() {
        assert_eq!(
            check_public_url("https://mcp.example.com/").unwrap(),
            ("https://mcp.example.com".into(), "mcp.example.com".into())
        );
        assert_eq!(
            check_public_url("http://127.0.0.1:8787").unwrap().0,
            "http://127.0.0.1:8787"
        );
        assert!(check_public_url("http://mcp.example.com").is_err());
        assert!(check_public_url("https://mcp.example.com/mcp").is_err());
        assert!(check_public_url("https://u:p@mcp.example.com").is_err());
        assert!(check_public_url("mcp.example.com").is_err());
    }
}
