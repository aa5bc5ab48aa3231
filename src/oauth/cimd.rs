//! Client ID Metadata Documents (the MCP spec's preferred registration, 2025-11-25): the
//! client id is an https URL, and the document there names the client and its redirect
//! URIs.
//!
//! The document is fetched from a URL the client chose, so it goes through the answer-file
//! guard ([`crate::handinger::fetch_guard`]): https to a host whose addresses are all public
//! (checked on the URL and again by the resolver the connection uses), no credentials, no
//! redirect followed, at most [`MAX_DOCUMENT_BYTES`] in [`FETCH_TIMEOUT`]. A document is
//! kept for [`CACHE_TTL`] in a cache of at most `--oauth-max-clients` entries, so a page
//! reload or the token request does not fetch it again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::clients::{ClientRecord, check_redirect_uri};
use crate::handinger::HandingerClient;

pub(crate) const MAX_DOCUMENT_BYTES: usize = 16 * 1024;
pub(crate) const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
pub(crate) const CACHE_TTL: Duration = Duration::from_secs(300);

/// Whether a client id is a metadata document's URL rather than a registered id.
pub(crate) fn is_document_url(client_id: &str) -> bool {
    client_id.starts_with("https://") || client_id.starts_with("http://")
}

#[derive(Deserialize)]
struct Document {
    client_id: String,
    #[serde(default)]
    client_name: Option<String>,
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    token_endpoint_auth_method: Option<String>,
}

pub(crate) struct DocumentCache {
    max: usize,
    entries: Mutex<HashMap<String, (ClientRecord, Instant)>>,
}

impl DocumentCache {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max,
            entries: Mutex::new(HashMap::new()),
        }
    }

    fn cached(&self, url: &str) -> Option<ClientRecord> {
        let entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        entries
            .get(url)
            .filter(|(_, until)| *until > Instant::now())
            .map(|(record, _)| record.clone())
    }

    fn keep(&self, url: &str, record: &ClientRecord) {
        let now = Instant::now();
        let mut entries = self
            .entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if entries.len() >= self.max {
            entries.retain(|_, (_, until)| *until > now);
            if entries.len() >= self.max {
                let oldest = entries
                    .iter()
                    .min_by_key(|(_, (_, until))| *until)
                    .map(|(k, _)| k.clone());
                if let Some(oldest) = oldest {
                    entries.remove(&oldest);
                }
            }
        }
        entries.insert(url.to_owned(), (record.clone(), now + CACHE_TTL));
    }

    /// The client a document URL names; `Err` says why it cannot be used (shown on the
    /// sign-in page, never redirected).
    pub(crate) async fn resolve(
        &self,
        api: &HandingerClient,
        client_id: &str,
    ) -> Result<ClientRecord, String> {
        if let Some(record) = self.cached(client_id) {
            return Ok(record);
        }
        let url = reqwest::Url::parse(client_id)
            .map_err(|_| "The application's client id is not a URL.".to_owned())?;
        if url.path() == "/" || url.fragment().is_some() || !url.username().is_empty() {
            return Err(
                "The application's client id must be an https URL with a path, no fragment and \
                 no credentials (Client ID Metadata Document)."
                    .into(),
            );
        }
        let bytes = api
            .fetch_foreign(&url, MAX_DOCUMENT_BYTES, FETCH_TIMEOUT)
            .await
            .map_err(|e| format!("The application's metadata document could not be used: {e}"))?;
        let document: Document = serde_json::from_slice(&bytes).map_err(|_| {
            "The application's metadata document is not client metadata as JSON.".to_owned()
        })?;
        if document.client_id != client_id {
            return Err(
                "The application's metadata document names another client_id than its URL.".into(),
            );
        }
        if document
            .token_endpoint_auth_method
            .as_deref()
            .is_some_and(|m| m != "none")
        {
            return Err(
                "The application's metadata document asks for client authentication this \
                 server does not offer (only public clients, token_endpoint_auth_method none)."
                    .into(),
            );
        }
        if document.redirect_uris.is_empty() {
            return Err("The application's metadata document lists no redirect_uris.".into());
        }
        for uri in &document.redirect_uris {
            check_redirect_uri(uri)
                .map_err(|why| format!("The application's metadata document: {why}."))?;
        }
        let host = url.host_str().unwrap_or_default();
        let name = document
            .client_name
            .map(|n| {
                n.chars()
                    .filter(|c| !c.is_control())
                    .take(100)
                    .collect::<String>()
            })
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| host.to_owned());
        let record = ClientRecord {
            // The name is the document's own claim; the host it came from is checked.
            client_name: Some(format!("{name} (from {host})")),
            redirect_uris: document.redirect_uris,
            issued_at: super::grants::now_secs(),
        };
        self.keep(client_id, &record);
        Ok(record)
    }
}
