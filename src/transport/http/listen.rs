//! `--listen`: the address the HTTP server binds, as an IP address or a host name.
//!
//! `localhost:8787` is what people type, and a bare "invalid socket address syntax" does not
//! say what would work. A name is resolved once, at start, to the one address the server
//! binds: `localhost` to 127.0.0.1 without asking the resolver (it answers `::1` first on
//! many systems, and the loopback checks treat both alike), any other name to its first
//! IPv4 address, else its first address.

use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs};

const ACCEPTED: &str = "give IP:PORT (127.0.0.1:8787, 0.0.0.0:8787, [::1]:8787) or \
HOST:PORT (localhost:8787; a name is resolved once at start and its first address, IPv4 \
first, is used; port 0 picks a free one)";

/// Parses a `--listen` value; the error says what is accepted.
pub(super) fn parse_listen(raw: &str) -> Result<SocketAddr, String> {
    let raw = raw.trim();
    if let Ok(addr) = raw.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let Some((host, port)) = raw.rsplit_once(':') else {
        return Err(format!("{raw:?} has no port: {ACCEPTED}"));
    };
    let port: u16 = port
        .parse()
        .map_err(|_| format!("{port:?} is not a port number (0 to 65535): {ACCEPTED}"))?;
    if host.is_empty() || host.contains(['[', ']', ':', '/', ' ']) {
        return Err(format!(
            "{raw:?} is not an address to listen on: {ACCEPTED}"
        ));
    }
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, port)));
    }
    let resolved: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("could not resolve {host:?} ({e}): {ACCEPTED}"))?
        .collect();
    resolved
        .iter()
        .find(|a| a.is_ipv4())
        .or_else(|| resolved.first())
        .copied()
        .ok_or_else(|| format!("{host:?} resolved to no address: {ACCEPTED}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_names() {
        assert_eq!(
            parse_listen("0.0.0.0:8787").unwrap().to_string(),
            "0.0.0.0:8787"
        );
        assert_eq!(parse_listen("[::1]:9").unwrap().to_string(), "[::1]:9");
        assert_eq!(
            parse_listen("localhost:8788").unwrap().to_string(),
            "127.0.0.1:8788"
        );
        assert_eq!(
            parse_listen("LOCALHOST:0").unwrap().to_string(),
            "127.0.0.1:0"
        );
    }

    #[test]
    fn mistakes_say_what_is_accepted() {
        for bad in [
            "localhost",
            "localhost:http",
            "localhost:70000",
            ":8787",
            "http://x:1",
        ] {
            let err = parse_listen(bad).unwrap_err();
            assert!(
                err.contains("IP:PORT") && err.contains("HOST:PORT"),
                "{bad}: {err}"
            );
        }
    }
}
