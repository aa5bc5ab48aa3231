//! Where an answer file may be fetched from: the defence against server-side request
//! forgery through an answer's file URLs.
//!
//! An answer is untrusted input: its file URLs could point at this machine's loopback
//! services, the private network or a cloud metadata address, and whatever came back would
//! be saved to `--download-dir` or handed to the client by `resources/read`. So a file is
//! fetched only when its URL is
//!
//! - on the API's own origin (the operator trusts it; checked by the caller), or
//! - `https` to a host whose addresses are all public, or
//! - on a host the operator allowed with `--allow-file-host` (any scheme, any address), on
//!   the port the entry names, or the scheme's default port (80, 443) for an entry without
//!   one. A URL on an allowed name but another port is refused outright: the resolver below
//!   sees names, not ports, and would otherwise let another service on that host (another
//!   TLS port of `localhost`) be fetched, or scanned by its errors.
//!
//! The public-address check happens twice: on the URL (an IP literal never goes through
//! DNS) and in [`PublicOnlyResolver`], the DNS resolver of the client that fetches foreign
//! files. The resolver's answer is the address the connection is made to, so a name that
//! resolves to a public address for a separate check and to a private one for the
//! connection (DNS rebinding) cannot slip through.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use reqwest::Url;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Hosts the operator allowed answer files from beyond the public internet
/// (`--allow-file-host`).
#[derive(Debug, Clone, Default)]
pub struct FileHosts {
    entries: Arc<Vec<HostEntry>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct HostEntry {
    /// Lower case, IPv6 without brackets.
    host: String,
    /// `None` allows the URL scheme's default port only (80 for http, 443 for https).
    port: Option<u16>,
}

impl FileHosts {
    /// Parses `host[:port]` entries; the error names the bad one.
    pub fn new(raw: &[String]) -> Result<Self, String> {
        let mut entries = Vec::new();
        for item in raw.iter().map(|s| s.trim()).filter(|s| !s.is_empty()) {
            entries.push(parse_entry(item).ok_or_else(|| {
                format!(
                    "--allow-file-host {item:?} is not a host: give a name or address, \
                     optionally with :port (e.g. files.internal.example or 10.0.0.7:9000)"
                )
            })?);
        }
        Ok(Self {
            entries: Arc::new(entries),
        })
    }

    /// Whether `url`'s host and port are an entry's.
    fn allows(&self, url: &Url) -> bool {
        let host = normalize(url.host_str().unwrap_or_default());
        let default = default_port(url.scheme());
        self.entries.iter().any(|entry| {
            entry.host == host
                && matches!(
                    (entry.port.or(default), url.port_or_known_default()),
                    (Some(allowed), Some(port)) if allowed == port
                )
        })
    }

    fn allows_name(&self, host: &str) -> bool {
        let host = normalize(host);
        self.entries.iter().any(|entry| entry.host == host)
    }

    /// Checks a URL that is not on the API's origin before anything is sent to it. The
    /// error says why the file was not fetched and how an operator could allow it.
    pub fn check(&self, url: &Url) -> Result<(), String> {
        let host = url.host_str().unwrap_or_default();
        if self.allows(url) {
            return Ok(());
        }
        let origin = url.origin().ascii_serialization();
        // The resolver lets an allowed name resolve to private addresses whatever the port,
        // so another port of an allowed name stops here.
        if self.allows_name(host) {
            return Err(format!(
                "not fetched: {origin} is on a host allowed by --allow-file-host, but not on \
                 an allowed port (an entry without :port allows the default port only); \
                 the operator can allow it with --allow-file-host {}",
                authority(url)
            ));
        }
        if url.scheme() != "https" {
            return Err(format!(
                "not fetched: {origin} is not https, and answer files are fetched over plain \
                 http only from the API's own origin or a host the operator allowed \
                 (--allow-file-host)"
            ));
        }
        // An address in the URL is connected to as it is, without asking the resolver.
        if let Ok(ip) = normalize(host).parse::<IpAddr>()
            && !is_public(ip)
        {
            return Err(not_public(&origin));
        }
        Ok(())
    }

    /// The resolver for the client that fetches foreign files.
    pub fn resolver(&self) -> Arc<PublicOnlyResolver> {
        Arc::new(PublicOnlyResolver {
            hosts: self.clone(),
        })
    }
}

/// The default port of the schemes files are fetched over.
fn default_port(scheme: &str) -> Option<u16> {
    match scheme {
        "http" => Some(80),
        "https" => Some(443),
        _ => None,
    }
}

/// `host:port` of a URL, as an `--allow-file-host` entry would name it.
fn authority(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port_or_known_default() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    }
}

/// The resolver's refusal of a name with a non-public address: its own type, so the
/// download that met it reports a refusal rather than a connection failure.
#[derive(Debug)]
pub(crate) struct NotPublic(String);

impl std::fmt::Display for NotPublic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for NotPublic {}

fn not_public(origin: &str) -> String {
    format!(
        "not fetched: {origin} is a loopback, private, link-local or otherwise non-public \
         address; answer files come only from public hosts unless the operator allows the \
         host (--allow-file-host)"
    )
}

/// Resolves names with the system resolver and refuses any name with a non-public
/// address among its answers (unless the operator allowed the host). It is asked for a
/// name without its port; [`FileHosts::check`], run on every URL before it is fetched,
/// has already refused the ports of an allowed name that no entry allows.
pub struct PublicOnlyResolver {
    hosts: FileHosts,
}

impl Resolve for PublicOnlyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let allowed = self.hosts.allows_name(&host);
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if !allowed && let Some(bad) = addrs.iter().find(|a| !is_public(a.ip())) {
                tracing::warn!(host, address = %bad.ip(), "refused to fetch an answer file from a non-public address");
                return Err(NotPublic(not_public(&host)).into());
            }
            let addrs: Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}

/// Whether an address is on the public internet: not loopback, private, link-local,
/// shared (CGNAT), documentation, benchmarking, multicast, reserved or unspecified, and for
/// IPv6 also not unique-local, and judged by the IPv4 address it embeds, if any.
pub(crate) fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => is_public_v6(v6),
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_documentation()
        || ip.is_multicast()
        || a == 0
        || (a == 100 && (64..128).contains(&b)) // shared address space (CGNAT)
        || (a == 192 && b == 0 && c == 0) // IETF protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // benchmarking
        || a >= 240) // reserved
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_public_v4(v4);
    }
    let segments = ip.segments();
    // NAT64 (64:ff9b::/96) reaches the IPv4 address it embeds.
    if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let [_, _, _, _, _, _, hi, lo] = segments;
        return is_public_v4(Ipv4Addr::new(
            (hi >> 8) as u8,
            hi as u8,
            (lo >> 8) as u8,
            lo as u8,
        ));
    }
    // 6to4 (2002::/16) embeds an IPv4 address too.
    if segments[0] == 0x2002 {
        return is_public_v4(Ipv4Addr::new(
            (segments[1] >> 8) as u8,
            segments[1] as u8,
            (segments[2] >> 8) as u8,
            segments[2] as u8,
        ));
    }
    // Global unicast is 2000::/3; within it, Teredo (2001::/32), ORCHID and documentation
    // (2001:db8::/32) are not hosts a file can honestly live on.
    (segments[0] & 0xe000) == 0x2000
        && !(segments[0] == 0x2001 && segments[1] == 0)
        && !(segments[0] == 0x2001 && segments[1] == 0x0db8)
        && !(segments[0] == 0x2001 && (0x10..0x30).contains(&segments[1]))
}

fn normalize(host: &str) -> String {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

fn parse_entry(raw: &str) -> Option<HostEntry> {
    if raw.contains("://") || raw.contains('/') || raw.contains('@') {
        return None;
    }
    if let Ok(ip) = raw.parse::<Ipv6Addr>() {
        return Some(HostEntry {
            host: ip.to_string(),
            port: None,
        });
    }
    let authority = http::uri::Authority::try_from(raw).ok()?;
    let host = normalize(authority.host());
    (!host.is_empty()).then_some(HostEntry {
        host,
        port: authority.port_u16(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(text: &str) -> Url {
        Url::parse(text).unwrap()
    }

    #[test]
    fn only_public_addresses_are_public() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fe80::1",
            "fd00::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a00:1",
            "2002:7f00:1::",
            "2001:db8::1",
            "ff02::1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in [
            "93.184.216.34",
            "1.1.1.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
    }

    #[test]
    fn plain_http_and_private_literals_are_refused_unless_allowed() {
        let none = FileHosts::default();
        assert!(none.check(&url("https://files.example/a")).is_ok());
        assert!(none.check(&url("http://files.example/a")).is_err());
        assert!(none.check(&url("https://127.0.0.1/a")).is_err());
        assert!(none.check(&url("https://[::ffff:10.0.0.1]/a")).is_err());
        assert!(none.check(&url("https://169.254.169.254/latest")).is_err());
        let some = FileHosts::new(&["127.0.0.1:9000".into(), "Files.Internal".into()]).unwrap();
        assert!(some.check(&url("http://127.0.0.1:9000/a")).is_ok());
        assert!(some.check(&url("http://127.0.0.1:9001/a")).is_err());
        // Without a port, an entry allows the scheme's default port only.
        assert!(some.check(&url("http://files.internal/a")).is_ok());
        assert!(some.check(&url("https://files.internal/a")).is_ok());
        assert!(some.check(&url("http://files.internal:1/a")).is_err());
        assert!(some.check(&url("https://files.internal:8443/a")).is_err());
        // An allowed name on another port is refused even over https, where a public name
        // would pass: the resolver would let the allowed name reach a private address.
        let local = FileHosts::new(&["localhost:18040".into()]).unwrap();
        assert!(local.check(&url("https://localhost:18040/a")).is_ok());
        let refused = local
            .check(&url("https://localhost:18090/admin"))
            .unwrap_err();
        assert!(
            refused.contains("--allow-file-host localhost:18090"),
            "{refused}"
        );
        assert!(FileHosts::new(&["https://x".into()]).is_err());
    }

    #[tokio::test]
    async fn the_resolver_refuses_names_of_private_addresses() {
        let resolver = FileHosts::default().resolver();
        let refused = resolver.resolve("localhost".parse().unwrap()).await;
        assert!(refused.is_err());
        let allowed = FileHosts::new(&["localhost".into()]).unwrap().resolver();
        assert!(allowed.resolve("localhost".parse().unwrap()).await.is_ok());
    }
}
