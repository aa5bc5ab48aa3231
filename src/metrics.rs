//! Process-wide metrics, rendered as Prometheus text for `GET /metrics` in HTTP mode.
//!
//! Hand-written rather than built on a metrics crate: there are only a handful of series,
//! and the text format is small and stable. The hooks are cheap (an atomic or a short lock)
//! so they stay on in stdio mode too, where nothing reads them.
//!
//! Label values come only from fixed sets (tool names the server has, HTTP methods, fixed
//! outcome and reason words), so no client can grow the number of series.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use rmcp::ErrorData;
use rmcp::model::CallToolResponse;

/// Upper bounds of the upstream latency buckets, in seconds. A turn can take minutes, a
/// lookup milliseconds, so the buckets span both.
const LATENCY_BUCKETS: [f64; 14] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
];

static TOOL_CALLS: Mutex<BTreeMap<(String, &'static str), u64>> = Mutex::new(BTreeMap::new());
static UPSTREAM: Mutex<BTreeMap<(&'static str, &'static str), Histogram>> =
    Mutex::new(BTreeMap::new());
static REJECTED: Mutex<BTreeMap<&'static str, u64>> = Mutex::new(BTreeMap::new());
static TURNS_IN_FLIGHT: AtomicI64 = AtomicI64::new(0);

/// A poisoned lock only means a panic elsewhere while counting; the counts are still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How a tool call ended, as the `outcome` label says it.
pub fn tool_outcome(outcome: &Result<CallToolResponse, ErrorData>) -> &'static str {
    match outcome {
        Ok(CallToolResponse::Complete(result)) if result.is_error == Some(true) => "error",
        Ok(_) => "ok",
        // The request itself was refused (unknown tool, malformed call): no tool ran.
        Err(_) => "rejected",
    }
}

/// Counts one tool call. `tool` must be a tool the server has (or a fixed placeholder).
pub fn record_tool_call(tool: &str, outcome: &'static str) {
    *lock(&TOOL_CALLS)
        .entry((tool.to_owned(), outcome))
        .or_default() += 1;
}

/// Records one request to the Handinger API: its method, whether it succeeded, how long it
/// took (including reading the answer).
pub fn observe_upstream(method: &reqwest::Method, elapsed: Duration, ok: bool) {
    let method = match *method {
        reqwest::Method::GET => "GET",
        reqwest::Method::POST => "POST",
        _ => "other",
    };
    let outcome = if ok { "ok" } else { "error" };
    lock(&UPSTREAM)
        .entry((method, outcome))
        .or_default()
        .observe(elapsed.as_secs_f64());
}

/// Counts a request the HTTP layer turned away, by a fixed reason word.
pub fn record_rejection(reason: &'static str) {
    *lock(&REJECTED).entry(reason).or_default() += 1;
}

/// Marks a turn (`POST /api/tasks`) as in flight until the guard is dropped.
#[must_use = "the turn counts as in flight only while the guard lives"]
pub fn turn_in_flight() -> TurnGuard {
    TURNS_IN_FLIGHT.fetch_add(1, Ordering::Relaxed);
    TurnGuard(())
}

pub struct TurnGuard(());

impl Drop for TurnGuard {
    fn drop(&mut self) {
        TURNS_IN_FLIGHT.fetch_sub(1, Ordering::Relaxed);
    }
}

#[derive(Default)]
struct Histogram {
    /// Non-cumulative counts per bucket; the last slot is `+Inf`.
    buckets: [u64; LATENCY_BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        let slot = LATENCY_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(LATENCY_BUCKETS.len());
        self.buckets[slot] += 1;
        self.sum += seconds;
        self.count += 1;
    }
}

/// Open MCP sessions, by transport; only the HTTP layer knows them.
#[derive(Debug, Clone, Copy, Default)]
pub struct OpenSessions {
    pub streamable_http: usize,
    pub sse: usize,
}

/// Everything, in the Prometheus text exposition format (version 0.0.4).
pub fn render(sessions: OpenSessions) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail; the results are ignored for that reason.
    let _ = writeln!(
        out,
        "# HELP handinger_mcp_tool_calls_total Tool calls, by tool and outcome (ok, error: the tool answered with an error, rejected: no tool ran).\n\
         # TYPE handinger_mcp_tool_calls_total counter"
    );
    for ((tool, outcome), count) in lock(&TOOL_CALLS).iter() {
        let _ = writeln!(
            out,
            "handinger_mcp_tool_calls_total{{tool=\"{}\",outcome=\"{outcome}\"}} {count}",
            escape(tool)
        );
    }

    let _ = writeln!(
        out,
        "# HELP handinger_mcp_upstream_request_duration_seconds Requests to the Handinger API, by method and outcome.\n\
         # TYPE handinger_mcp_upstream_request_duration_seconds histogram"
    );
    for ((method, outcome), histogram) in lock(&UPSTREAM).iter() {
        let labels = format!("method=\"{method}\",outcome=\"{outcome}\"");
        let mut cumulative = 0;
        for (bound, count) in LATENCY_BUCKETS.iter().zip(histogram.buckets.iter()) {
            cumulative += count;
            let _ = writeln!(
                out,
                "handinger_mcp_upstream_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "handinger_mcp_upstream_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}\n\
             handinger_mcp_upstream_request_duration_seconds_sum{{{labels}}} {}\n\
             handinger_mcp_upstream_request_duration_seconds_count{{{labels}}} {}",
            histogram.count, histogram.sum, histogram.count
        );
    }

    let _ = writeln!(
        out,
        "# HELP handinger_mcp_turns_in_flight Turns (POST /api/tasks) waiting for Handinger's answer.\n\
         # TYPE handinger_mcp_turns_in_flight gauge\n\
         handinger_mcp_turns_in_flight {}",
        TURNS_IN_FLIGHT.load(Ordering::Relaxed).max(0)
    );

    let _ = writeln!(
        out,
        "# HELP handinger_mcp_open_sessions Open MCP sessions, by transport.\n\
         # TYPE handinger_mcp_open_sessions gauge\n\
         handinger_mcp_open_sessions{{transport=\"streamable_http\"}} {}\n\
         handinger_mcp_open_sessions{{transport=\"sse\"}} {}",
        sessions.streamable_http, sessions.sse
    );

    let _ = writeln!(
        out,
        "# HELP handinger_mcp_http_rejected_total HTTP requests turned away, by reason.\n\
         # TYPE handinger_mcp_http_rejected_total counter"
    );
    for (reason, count) in lock(&REJECTED).iter() {
        let _ = writeln!(
            out,
            "handinger_mcp_http_rejected_total{{reason=\"{reason}\"}} {count}"
        );
    }
    out
}

/// Escapes a label value as the text format requires.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_in_the_text() {
        observe_upstream(&reqwest::Method::PUT, Duration::from_millis(70), true);
        observe_upstream(&reqwest::Method::PUT, Duration::from_secs(4000), true);
        let text = render(OpenSessions::default());
        let series = "handinger_mcp_upstream_request_duration_seconds_bucket{method=\"other\",outcome=\"ok\"";
        assert!(
            text.contains(&format!("{series},le=\"0.05\"}} 0")),
            "{text}"
        );
        assert!(text.contains(&format!("{series},le=\"0.1\"}} 1")), "{text}");
        assert!(
            text.contains(&format!("{series},le=\"1800\"}} 1")),
            "{text}"
        );
        assert!(
            text.contains(&format!("{series},le=\"+Inf\"}} 2")),
            "{text}"
        );
    }

    #[test]
    fn turn_guard_counts_while_alive() {
        let before = TURNS_IN_FLIGHT.load(Ordering::Relaxed);
        let guard = turn_in_flight();
        assert_eq!(TURNS_IN_FLIGHT.load(Ordering::Relaxed), before + 1);
        drop(guard);
        assert_eq!(TURNS_IN_FLIGHT.load(Ordering::Relaxed), before);
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
