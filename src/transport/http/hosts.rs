//! Which `Host` and `Origin` headers the server answers: its defence against DNS rebinding
//! (a web page whose name resolves to this machine) and against cross-site browser requests.
//!
//! Allowed hosts are the loopback names, the listen address and `--allowed-host`; an entry
//! without a port allows any port. A browser `Origin` is allowed when it is listed in
//! `--allowed-origin` or is itself on an allowed host (a page served by a name the operator
//! already trusts). Requests without an `Origin` (every non-browser client) are unaffected.

use std::net::SocketAddr;

use http::uri::Authority;

/// Always allowed: the names of this machine's loopback interface.
const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

#[derive(Debug, Clone, PartialEq, Eq)]
struct HostEntry {
    /// Lower case, IPv6 without brackets.
    host: String,
    /// `None` allows any port.
    port: Option<u16>,
}

#[derive(Debug, Clone)]
pub struct AllowedHosts {
    any: bool,
    entries: Vec<HostEntry>,
}

impl AllowedHosts {
    pub fn new(listen: SocketAddr, extra: &[String]) -> Result<Self, String> {
        let mut entries: Vec<HostEntry> = LOOPBACK_HOSTS
            .iter()
            .map(|host| HostEntry {
                host: (*host).to_owned(),
                port: None,
            })
            .collect();
        if !listen.ip().is_unspecified() {
            entries.push(HostEntry {
                host: listen.ip().to_string(),
                port: None,
            });
        }
        let mut any = false;
        for raw in extra.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
            if raw == "*" {
                any = true;
                continue;
            }
            let entry = parse_host_entry(raw).ok_or_else(|| {
                format!(
                    "--allowed-host {raw:?} is not a host name: give a name or address, \
                     optionally with :port (e.g. mcp.example.com or 10.0.0.5:8787); browser \
                     origins (scheme://…) go in --allowed-origin"
                )
            })?;
            entries.push(entry);
        }
        Ok(Self { any, entries })
    }

    /// `*` was given: any host is answered (a bearer token must then guard the server).
    pub fn allows_any(&self) -> bool {
        self.any
    }

    fn allows(&self, host: &str, port: Option<u16>) -> bool {
        self.any
            || self
                .entries
                .iter()
                .any(|entry| entry.host == host && entry.port.is_none_or(|p| Some(p) == port))
    }

    /// Checks a request's `Host` (or, in HTTP/2, its `:authority`), and the host of an
    /// absolute-form request target (`POST http://evil.example/mcp`) too: both must be
    /// allowed, so neither can smuggle a name past the other. The error is the reason.
    pub fn check(&self, host_header: Option<&[u8]>, uri: &http::Uri) -> Result<(), String> {
        let header = match host_header {
            Some(raw) => Some(
                std::str::from_utf8(raw)
                    .ok()
                    .and_then(|text| Authority::try_from(text).ok())
                    .ok_or("the Host header is malformed")?,
            ),
            None => None,
        };
        let target = uri.authority().cloned();
        if header.is_none() && target.is_none() {
            return Err("the request has no Host header".into());
        }
        for authority in header.iter().chain(target.iter()) {
            let host = normalize(authority.host());
            if !self.allows(&host, authority.port_u16()) {
                return Err(format!(
                    "the Host {:?} is not one this server answers (DNS-rebinding protection); if \
                     clients reach it by that name, start it with --allowed-host {host}",
                    authority.as_str()
                ));
            }
        }
        Ok(())
    }
}

/// Browser origins allowed besides those on an allowed host.
#[derive(Debug, Clone, Default)]
pub struct AllowedOrigins {
    entries: Vec<Origin>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Origin {
    scheme: String,
    host: String,
    /// Explicit, or the scheme's default.
    port: u16,
}

impl AllowedOrigins {
    pub fn new(extra: &[String]) -> Result<Self, String> {
        let mut entries = Vec::new();
        for raw in extra.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
            let origin = parse_origin(raw.trim_end_matches('/')).ok_or_else(|| {
                format!(
                    "--allowed-origin {raw:?} is not an origin: write it as scheme://host[:port], \
                     e.g. https://app.example.com (the \"null\" origin of sandboxed pages cannot \
                     be allowed)"
                )
            })?;
            entries.push(origin);
        }
        Ok(Self { entries })
    }

    /// Checks a request's `Origin` header, if it has one. The error is the reason.
    pub fn check(&self, origin_header: Option<&[u8]>, hosts: &AllowedHosts) -> Result<(), String> {
        let Some(raw) = origin_header else {
            return Ok(());
        };
        let text = std::str::from_utf8(raw).unwrap_or("");
        let allowed = parse_origin(text).is_some_and(|origin| {
            self.entries.contains(&origin) || hosts.allows(&origin.host, Some(origin.port))
        });
        if allowed {
            Ok(())
        } else {
            Err(format!(
                "the Origin {text:?} may not use this server (cross-site protection); if that \
                 web app should, start the server with --allowed-origin {text}"
            ))
        }
    }
}

fn normalize(host: &str) -> String {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase()
}

fn parse_host_entry(raw: &str) -> Option<HostEntry> {
    if raw.contains("://") || raw.contains('/') || raw.contains('@') {
        return None;
    }
    // A bare IPv6 address ("::1") is not an authority; bracket it first.
    let bracketed;
    let text = if raw.parse::<std::net::Ipv6Addr>().is_ok() {
        bracketed = format!("[{raw}]");
        bracketed.as_str()
    } else {
        raw
    };
    let authority = Authority::try_from(text).ok()?;
    let host = normalize(authority.host());
    (!host.is_empty()).then_some(HostEntry {
        host,
        port: authority.port_u16(),
    })
}

fn parse_origin(text: &str) -> Option<Origin> {
    let uri: http::Uri = text.parse().ok()?;
    let scheme = uri.scheme_str()?.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "http" => 80,
        "https" => 443,
        _ => return None,
    };
    // An origin is scheme and authority only.
    if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
        return None;
    }
    let authority = uri.authority()?;
    if authority.as_str().contains('@') {
        return None;
    }
    Some(Origin {
        scheme,
        host: normalize(authority.host()),
        port: authority.port_u16().unwrap_or(default_port),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(listen: &str, extra: &[&str]) -> AllowedHosts {
        let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
        AllowedHosts::new(listen.parse().unwrap(), &extra).unwrap()
    }

    fn host_ok(hosts: &AllowedHosts, header: &str) -> bool {
        hosts
            .check(Some(header.as_bytes()), &http::Uri::from_static("/mcp"))
            .is_ok()
    }

    #[test]
    fn loopback_names_and_the_listen_address_are_allowed_on_any_port() {
        let h = hosts("10.1.2.3:8787", &[]);
        for ok in [
            "localhost",
            "localhost:8787",
            "LOCALHOST:1",
            "127.0.0.1:8787",
            "[::1]:8787",
            "10.1.2.3:8787",
        ] {
            assert!(host_ok(&h, ok), "{ok}");
        }
        for bad in ["evil.example.com", "evil.example.com:8787", "10.1.2.4", ""] {
            assert!(!host_ok(&h, bad), "{bad}");
        }
    }

    #[test]
    fn the_unspecified_listen_address_is_not_a_host() {
        assert!(!host_ok(&hosts("0.0.0.0:8787", &[]), "0.0.0.0:8787"));
    }

    #[test]
    fn extra_hosts_with_a_port_allow_only_that_port() {
        let h = hosts(
            "127.0.0.1:8787",
            &["mcp.example.com:443", "Team.Example.com", "fd00::1"],
        );
        assert!(host_ok(&h, "mcp.example.com:443"));
        assert!(!host_ok(&h, "mcp.example.com:8443"));
        assert!(!host_ok(&h, "mcp.example.com"));
        assert!(host_ok(&h, "team.example.com:9"));
        assert!(host_ok(&h, "[fd00::1]:8787"));
    }

    #[test]
    fn urls_are_not_hosts() {
        let err = AllowedHosts::new(
            "127.0.0.1:1".parse().unwrap(),
            &["https://x.example".into()],
        )
        .unwrap_err();
        assert!(err.contains("--allowed-origin"), "{err}");
    }

    #[test]
    fn missing_host_falls_back_to_the_http2_authority() {
        let h = hosts("127.0.0.1:8787", &[]);
        assert!(
            h.check(None, &http::Uri::from_static("http://localhost:8787/mcp"))
                .is_ok()
        );
        assert!(h.check(None, &http::Uri::from_static("/mcp")).is_err());
    }

    #[test]
    fn an_absolute_target_host_is_checked_like_host() {
        let h = hosts("127.0.0.1:8787", &[]);
        let evil = http::Uri::from_static("http://evil.example/mcp");
        assert!(h.check(Some(b"localhost:8787"), &evil).is_err());
        let good = http::Uri::from_static("http://localhost:8787/mcp");
        assert!(h.check(Some(b"localhost:8787"), &good).is_ok());
    }

    #[test]
    fn origins_on_allowed_hosts_or_listed_are_allowed() {
        let h = hosts("127.0.0.1:8787", &["mcp.example.com:443"]);
        let o = AllowedOrigins::new(&["https://app.example.com".into()]).unwrap();
        let ok = |origin: &str| o.check(Some(origin.as_bytes()), &h).is_ok();
        assert!(o.check(None, &h).is_ok(), "no Origin: not a browser");
        assert!(ok("http://localhost:8787"));
        assert!(ok("http://127.0.0.1:3000"));
        assert!(ok("https://app.example.com"));
        assert!(ok("https://app.example.com:443"));
        assert!(ok("https://mcp.example.com"));
        assert!(
            !ok("http://mcp.example.com"),
            "port 80 is not the allowed 443"
        );
        assert!(!ok("http://app.example.com"), "scheme differs");
        assert!(!ok("http://evil.example.com"));
        assert!(!ok("null"));
        assert!(!ok("garbage"));
    }

    #[test]
    fn malformed_origins_are_refused_at_start_up() {
        for bad in [
            "app.example.com",
            "ftp://x.example",
            "null",
            "https://x/path",
        ] {
            assert!(AllowedOrigins::new(&[bad.into()]).is_err(), "{bad}");
        }
    }
}
