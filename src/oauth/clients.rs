//! Client registration (RFC 7591 Dynamic Client Registration) and what the other endpoints
//! ask of a registered client: its name and its redirect URIs.
//!
//! Every client is public (`token_endpoint_auth_method: none`): a client secret a desktop
//! app or a browser page would carry protects nothing, and PKCE binds each code to the one
//! who asked for it. Registrations are bounded in number (`--oauth-max-clients`, across
//! replicas with `--store`) and in rate per client address
//! (`--oauth-registrations-per-minute`), and expire when unused for
//! `--oauth-client-idle-ttl` (each sign-in starts that time again).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Most redirect URIs one registration may list, and the longest of each, and of a name.
const MAX_REDIRECT_URIS: usize = 10;
const MAX_URI_BYTES: usize = 2048;
const MAX_NAME_CHARS: usize = 100;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ClientRecord {
    pub client_name: Option<String>,
    pub redirect_uris: Vec<String>,
    pub issued_at: u64,
}

/// The registration request: the fields this server reads (others are ignored, as
/// RFC 7591 §2 allows).
#[derive(Deserialize)]
pub(crate) struct RegistrationRequest {
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub client_name: Option<String>,
    #[serde(default)]
    pub grant_types: Option<Vec<String>>,
    #[serde(default)]
    pub response_types: Option<Vec<String>>,
}

/// Checks a registration request; the record to keep, or the RFC 7591 error.
pub(crate) fn check_registration(
    request: RegistrationRequest,
) -> Result<ClientRecord, (&'static str, String)> {
    if request.redirect_uris.is_empty() {
        return Err((
            "invalid_redirect_uri",
            "redirect_uris is missing or empty: list the URIs sign-ins return to".into(),
        ));
    }
    if request.redirect_uris.len() > MAX_REDIRECT_URIS {
        return Err((
            "invalid_redirect_uri",
            format!("more than {MAX_REDIRECT_URIS} redirect_uris: list only those you use"),
        ));
    }
    for uri in &request.redirect_uris {
        check_redirect_uri(uri).map_err(|why| ("invalid_redirect_uri", why))?;
    }
    if let Some(grants) = &request.grant_types
        && grants
            .iter()
            .any(|g| g != "authorization_code" && g != "refresh_token")
    {
        return Err((
            "invalid_client_metadata",
            "grant_types may hold only authorization_code and refresh_token".into(),
        ));
    }
    if let Some(types) = &request.response_types
        && types.iter().any(|t| t != "code")
    {
        return Err((
            "invalid_client_metadata",
            "response_types may hold only code".into(),
        ));
    }
    let client_name = request
        .client_name
        .map(|name| {
            name.chars()
                .filter(|c| !c.is_control())
                .take(MAX_NAME_CHARS)
                .collect::<String>()
        })
        .filter(|name| !name.trim().is_empty());
    Ok(ClientRecord {
        client_name,
        redirect_uris: request.redirect_uris,
        issued_at: super::grants::now_secs(),
    })
}

/// A redirect URI a client may register: absolute, no fragment, https, http on a loopback
/// address (RFC 8252 §7.3), or a private-use scheme of a native app (RFC 8252 §7.1, with a
/// dot, as `com.example.app:/cb`); never `javascript:`, `data:` or `file:`.
pub(crate) fn check_redirect_uri(uri: &str) -> Result<(), String> {
    if uri.len() > MAX_URI_BYTES {
        return Err(format!(
            "a redirect URI is longer than {MAX_URI_BYTES} bytes"
        ));
    }
    let parsed = reqwest::Url::parse(uri)
        .map_err(|_| format!("redirect URI {uri:?} is not an absolute URI"))?;
    if parsed.fragment().is_some() {
        return Err(format!(
            "redirect URI {uri:?} has a fragment, which RFC 6749 forbids"
        ));
    }
    match parsed.scheme() {
        "https" => Ok(()),
        "http" if is_loopback(&parsed) => Ok(()),
        "http" => Err(format!(
            "redirect URI {uri:?} is plain http on a host other than loopback: use https, or \
             http://127.0.0.1 for a native app"
        )),
        "javascript" | "data" | "file" | "vbscript" | "blob" | "about" => Err(format!(
            "redirect URI {uri:?} has a scheme no redirect may use"
        )),
        scheme if scheme.contains('.') => Ok(()),
        _ => Err(format!(
            "redirect URI {uri:?}: a native app's own scheme must be a reversed domain name \
             (e.g. com.example.app:/callback, RFC 8252 §7.1)"
        )),
    }
}

/// Whether `url` names this machine: the hosts plain http is allowed on.
pub(super) fn is_loopback(url: &reqwest::Url) -> bool {
    matches!(url.host_str(), Some("127.0.0.1" | "[::1]" | "localhost"))
}

/// Whether `given` is one of `registered`: exactly, or (RFC 8252 §7.3) a loopback http
/// URI that differs only in its port.
pub(crate) fn redirect_allowed(registered: &[String], given: &str) -> bool {
    if registered.iter().any(|r| r == given) {
        return true;
    }
    let Ok(given_url) = reqwest::Url::parse(given) else {
        return false;
    };
    if given_url.scheme() != "http" || !is_loopback(&given_url) {
        return false;
    }
    registered.iter().any(|r| {
        let Ok(mut r) = reqwest::Url::parse(r) else {
            return false;
        };
        if r.scheme() != "http" || !is_loopback(&r) {
            return false;
        }
        let _ = r.set_port(given_url.port());
        r.as_str() == given_url.as_str()
    })
}

/// Attempts per client address per minute, in this process: registrations, and sign-ins
/// that reach the key check.
pub(crate) struct AddressRate {
    per_minute: u32,
    counts: Mutex<HashMap<IpAddr, (Instant, u32)>>,
}

/// Addresses tracked at once: a flood from many addresses cannot grow the table beyond it
/// (once full, the windows that ended are dropped, then the oldest).
const MAX_TRACKED_ADDRESSES: usize = 10_000;

impl AddressRate {
    pub(crate) fn new(per_minute: u32) -> Self {
        Self {
            per_minute,
            counts: Mutex::new(HashMap::new()),
        }
    }

    /// Counts one attempt from `address`; `Err` (seconds to wait) beyond the rate.
    pub(crate) fn check(&self, address: IpAddr) -> Result<(), u64> {
        const WINDOW: Duration = Duration::from_secs(60);
        let now = Instant::now();
        let mut counts = self
            .counts
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if counts.len() >= MAX_TRACKED_ADDRESSES && !counts.contains_key(&address) {
            counts.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
            if counts.len() >= MAX_TRACKED_ADDRESSES {
                let oldest = counts
                    .iter()
                    .min_by_key(|(_, (start, _))| *start)
                    .map(|(a, _)| *a);
                if let Some(oldest) = oldest {
                    counts.remove(&oldest);
                }
            }
        }
        let entry = counts.entry(address).or_insert((now, 0));
        if now.duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        if entry.1 >= self.per_minute {
            let wait = WINDOW.saturating_sub(now.duration_since(entry.0));
            return Err(wait.as_secs().max(1));
        }
        entry.1 += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_redirects_match_on_any_port_and_others_exactly() {
        let registered = vec![
            "http://127.0.0.1/callback".to_owned(),
            "https://app.example.com/cb".to_owned(),
        ];
        assert!(redirect_allowed(
            &registered,
            "http://127.0.0.1:53121/callback"
        ));
        assert!(!redirect_allowed(
            &registered,
            "http://127.0.0.1:53121/other"
        ));
        assert!(redirect_allowed(&registered, "https://app.example.com/cb"));
        assert!(!redirect_allowed(
            &registered,
            "https://app.example.com/cb/"
        ));
        assert!(!redirect_allowed(
            &registered,
            "https://app.example.com:444/cb"
        ));
        assert!(!redirect_allowed(&registered, "https://evil.example/cb"));
    }

    #[test]
    fn only_safe_redirect_uris_register() {
        assert!(check_redirect_uri("https://app.example.com/cb").is_ok());
        assert!(check_redirect_uri("http://localhost:3000/cb").is_ok());
        assert!(check_redirect_uri("com.example.app:/cb").is_ok());
        assert!(check_redirect_uri("http://app.example.com/cb").is_err());
        assert!(check_redirect_uri("javascript:alert(1)").is_err());
        assert!(check_redirect_uri("https://app.example.com/cb#x").is_err());
    }
}
