//! What can go wrong talking to Handinger, and what the caller should do about it.
//!
//! The split that matters is whether Handinger may have *taken* a `POST /api/tasks`:
//! a repeated POST with the same task id adds a second turn and spends credits twice, so
//! [`ApiError::request_was_taken`] decides between "safe to resend" and "look the task up
//! first". Messages never carry the API key: it lives only in a sensitive header value.

use std::time::Duration;

// Serializable so a finished turn can be kept in the shared store (`--store`).
#[derive(Debug, Clone, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum ApiError {
    /// Handinger answered with a non-success status.
    #[error("Handinger answered HTTP {status}{}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Status {
        status: u16,
        /// Handinger's own `error` string, when the body had one.
        message: Option<String>,
        /// How long Handinger asked us to wait (`retry-after-ms`, or `Retry-After` in
        /// seconds or as a date), when it said.
        retry_after: Option<Duration>,
        /// Handinger's `x-should-retry` verdict, when it gave one.
        should_retry: Option<bool>,
        /// The key was the caller's own (`X-Handinger-Api-Key`, `--key-from-request`), not
        /// the server's: a refused key is then the caller's to fix, not the operator's.
        /// (Default: records kept before this field existed were the server's.)
        #[serde(default)]
        callers_key: bool,
    },
    /// The connection could not be made (refused, DNS, TLS): the request was never sent.
    #[error("could not connect to Handinger at {base_url}: {detail}")]
    NotSent { base_url: String, detail: String },
    /// The request went out but no complete answer came back (timeout, reset).
    #[error("the connection to Handinger failed after the request was sent: {detail}")]
    Interrupted { detail: String },
    /// The answer was bigger than the configured cap.
    #[error("Handinger's answer was larger than the {limit}-byte cap (--max-response-bytes)")]
    TooLarge { limit: usize },
    /// Something on this side stopped the request before it was sent (an attachment that
    /// can no longer be read).
    #[error("{detail}")]
    LocalFile { detail: String },
    /// An answer file's URL (or a redirect on the way) that this server does not fetch
    /// from: not http(s), not the API origin nor a public https host, too many hops.
    #[error("{detail}")]
    Refused { detail: String },
    /// This server chose not to send the turn: its claim on the task in the shared store
    /// lapsed before the POST went out (the replica was stalled), so another replica may
    /// have taken the turn over. Nothing was sent.
    #[error("{detail}")]
    Withheld { detail: String },
    /// An answer file's host (not the API's) could not be reached or did not serve the
    /// file: nothing was kept.
    #[error("the file host {origin} did not serve it: {detail}")]
    FileHost { origin: String, detail: String },
    /// An id that cannot be one path segment of an API URL (`.`, `..`, characters outside
    /// the id alphabet): refused before a request is built, whoever supplied it.
    #[error("{detail}")]
    InvalidId { detail: String },
    /// This side cannot send at all (no CA certificates for the HTTPS client, no API key):
    /// nothing was sent.
    #[error("{detail}")]
    Setup { detail: String },
    /// The answer was not the JSON we expected.
    #[error("Handinger answered HTTP {status} with a body that is not valid JSON ({detail})")]
    Malformed { status: u16, detail: String },
}

/// The causes beneath `error`, outermost first. reqwest's own line leads with the URL;
/// its causes say what happened.
fn causes<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> impl Iterator<Item = &'a (dyn std::error::Error + 'static)> {
    std::iter::successors(error.source(), |cause| cause.source())
}

/// The innermost cause ("Connection refused"), which says more than reqwest's summary.
pub(crate) fn innermost_cause(error: &reqwest::Error) -> String {
    causes(error)
        .last()
        .map_or_else(|| error.to_string(), |cause| cause.to_string())
}

/// The first cause beneath `error` of type `T` (an error of ours that travelled through
/// reqwest and hyper, such as the file guard's refusal).
pub(crate) fn find_cause<T: std::error::Error + 'static>(error: &reqwest::Error) -> Option<&T> {
    causes(error).find_map(|cause| cause.downcast_ref::<T>())
}

/// The causes on one line, without the URL reqwest puts in front.
pub(crate) fn cause_chain(error: &reqwest::Error) -> String {
    let chain: Vec<String> = causes(error).map(|cause| cause.to_string()).collect();
    if chain.is_empty() {
        error.to_string()
    } else {
        chain.join(": ")
    }
}

impl ApiError {
    /// Whether Handinger may have accepted the request (and so, for a POST, added a turn).
    /// `false` only where it certainly did not: no connection, a rate limit, or a 4xx
    /// rejection of the request itself.
    pub fn request_was_taken(&self) -> bool {
        match self {
            ApiError::NotSent { .. }
            | ApiError::LocalFile { .. }
            | ApiError::Withheld { .. }
            | ApiError::Refused { .. }
            | ApiError::FileHost { .. }
            | ApiError::InvalidId { .. }
            | ApiError::Setup { .. } => false,
            ApiError::Status { status, .. } => !(400..500).contains(status) || *status == 408,
            ApiError::Interrupted { .. }
            | ApiError::TooLarge { .. }
            | ApiError::Malformed { .. } => true,
        }
    }

    /// Whether a `POST /api/tasks` that failed this way may be sent again as it is: only when
    /// nothing reached Handinger, or Handinger refused it for the rate limit (and so did not
    /// start a turn). Other 4xx answers would fail the same way again.
    /// `x-should-retry: false` on a 429 is obeyed; `x-should-retry: true` on anything else is
    /// not, since it cannot prove the turn was not started.
    pub fn post_may_be_resent(&self) -> bool {
        match self {
            ApiError::NotSent { .. } => true,
            ApiError::Status {
                status: 429,
                should_retry,
                ..
            } => *should_retry != Some(false),
            _ => false,
        }
    }

    /// Whether a read (a GET, which changes nothing) that failed this way is worth another
    /// try: Handinger's `x-should-retry` when it sent one, else a status that says "try again
    /// later" rather than "this request is wrong".
    pub fn is_transient(&self) -> bool {
        match self {
            ApiError::Status {
                should_retry: Some(verdict),
                ..
            } => *verdict,
            ApiError::Status { status, .. } => matches!(status, 408 | 429 | 500..=599),
            ApiError::NotSent { .. } | ApiError::Interrupted { .. } => true,
            ApiError::TooLarge { .. }
            | ApiError::Malformed { .. }
            | ApiError::LocalFile { .. }
            | ApiError::Withheld { .. }
            | ApiError::Refused { .. }
            | ApiError::FileHost { .. }
            | ApiError::InvalidId { .. }
            | ApiError::Setup { .. } => false,
        }
    }

    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Status { status, .. } | ApiError::Malformed { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// What a person (or a model) should do next, in one sentence.
    pub fn hint(&self) -> String {
        match self {
            ApiError::Status { status: 401, callers_key: true, .. } => {
                "Your API key was refused: this server runs each call with the key its caller sends in the X-Handinger-Api-Key header; send a valid, unrevoked key (hdg_live_…) there.".into()
            }
            ApiError::Status { status: 401, .. } => {
                "The API key was refused: check that HANDINGER_API_KEY holds a valid, unrevoked key (hdg_live_…) and restart the server.".into()
            }
            ApiError::Status { status: 403, callers_key: true, .. } => {
                "Your key (the X-Handinger-Api-Key header) has no access to that worker or task: check the workerId/taskId, or send a key of the organization that owns it.".into()
            }
            ApiError::Status { status: 403, .. } => {
                "The key has no access to that worker or task: check the workerId/taskId, or use a key of the organization that owns it.".into()
            }
            ApiError::Status { status: 404, .. } => {
                "Handinger does not know that id: check the taskId/workerId for typos.".into()
            }
            ApiError::Status { status: 400 | 422, .. } => {
                "Handinger rejected the arguments: fix them as the message says and call again.".into()
            }
            ApiError::Status { status: 429, retry_after, .. } => match retry_after {
                Some(wait) => format!("Rate limited: wait {} s before calling again.", wait.as_secs().max(1)),
                None => "Rate limited: wait a little (30 s or so) before calling again.".into(),
            },
            ApiError::Status { status: 500..=599, .. } | ApiError::Interrupted { .. } => {
                // No advice about resending here: whether that is safe depends on what the
                // caller knows (a read is always safe; a POST only when Handinger certainly
                // did not take it), so each caller adds its own.
                "Handinger had trouble (a server error or a dropped connection).".into()
            }
            ApiError::Status { .. } => "Unexpected answer from Handinger.".into(),
            ApiError::NotSent { .. } => {
                "Check HANDINGER_BASE_URL, the network and any proxy settings (HTTPS_PROXY/NO_PROXY); nothing reached Handinger, so calling again is safe.".into()
            }
            ApiError::TooLarge { .. } => {
                "Raise --max-response-bytes (HANDINGER_MCP_MAX_RESPONSE_BYTES) if answers this large are expected.".into()
            }
            ApiError::LocalFile { .. } => "Check the file and call again.".into(),
            ApiError::Withheld { .. } => {
                "Nothing reached Handinger from this call.".into()
            }
            ApiError::Refused { .. } => {
                "The file was not fetched; the message says why. Its link still stands in get_task's result.".into()
            }
            ApiError::FileHost { .. } => {
                "The file was not fetched from its host; the message says why. Its link still stands in get_task's result.".into()
            }
            ApiError::InvalidId { .. } => {
                "Pass the id exactly as Handinger gave it (tsk_…, wrk_…) and call again.".into()
            }
            ApiError::Setup { .. } => {
                "Fix the server's setup as the message says, then restart it; `handinger-mcp doctor` checks it.".into()
            }
            ApiError::Malformed { .. } => {
                "Check HANDINGER_BASE_URL points at the Handinger API (not a proxy or login page).".into()
            }
        }
    }
}
