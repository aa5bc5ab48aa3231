//! Time as turns record it: RFC 3339 for MCP task metadata, milliseconds since the Unix
//! epoch in the shared store.

use std::time::{SystemTime, UNIX_EPOCH};

/// Now, as the RFC 3339 timestamp MCP tasks carry.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339()
}

pub(super) fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}
