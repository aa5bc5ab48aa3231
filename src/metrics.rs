//! The server's metrics, rendered as Prometheus text for `GET /metrics` in HTTP mode.
//!
//! One [`Metrics`] value is made at start-up and handed to whatever counts: the tool
//! surface, the HTTP layer, and the API client (through its [`Observer`] hooks, so the
//! client needs nothing of this module). Being a value rather than statics, a test (or a
//! second server in one process) counts on its own.
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

use crate::handinger::observer::Observer;

/// Upper bounds of the upstream latency buckets, in seconds. A turn can take minutes, a
/// lookup milliseconds, so the buckets span both.
const LATENCY_BUCKETS: [f64; 14] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0,
];

/// Every series; share it as `Arc<Metrics>`.
#[derive(Debug, Default)]
pub struct Metrics {
    tool_calls: Mutex<BTreeMap<(String, &'static str), u64>>,
    upstream: Mutex<BTreeMap<(&'static str, &'static str), Histogram>>,
    rejected: Mutex<BTreeMap<&'static str, u64>>,
    turns_in_flight: AtomicI64,
}

/// A poisoned lock only means a panic elsewhere while counting; the counts are still usable.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Metrics {
    /// Counts one tool call. `tool` must be a tool the server has (or a fixed placeholder),
    /// `outcome` a fixed word.
    pub fn record_tool_call(&self, tool: &str, outcome: &'static str) {
        *lock(&self.tool_calls)
            .entry((tool.to_owned(), outcome))
            .or_default() += 1;
    }

    /// Counts a request the HTTP layer turned away, by a fixed reason word.
    pub fn record_rejection(&self, reason: &'static str) {
        *lock(&self.rejected).entry(reason).or_default() += 1;
    }
}

impl Observer for Metrics {
    fn turn_started(&self) {
        self.turns_in_flight.fetch_add(1, Ordering::Relaxed);
    }

    fn turn_ended(&self) {
        self.turns_in_flight.fetch_sub(1, Ordering::Relaxed);
    }

    fn request_finished(&self, method: &reqwest::Method, elapsed: Duration, ok: bool) {
        let method = match *method {
            reqwest::Method::GET => "GET",
            reqwest::Method::POST => "POST",
            _ => "other",
        };
        let outcome = if ok { "ok" } else { "error" };
        lock(&self.upstream)
            .entry((method, outcome))
            .or_default()
            .observe(elapsed.as_secs_f64());
    }
}

#[derive(Debug, Default)]
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

impl Metrics {
    /// Everything, in the Prometheus text exposition format (version 0.0.4).
    pub fn render(&self, sessions: OpenSessions) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail; the results are ignored for that reason.
        let _ = writeln!(
            out,
            "# HELP handinger_mcp_tool_calls_total Tool calls, by tool and outcome (ok, error: the tool answered with an error, rejected: no tool ran).\n\
         # TYPE handinger_mcp_tool_calls_total counter"
        );
        for ((tool, outcome), count) in lock(&self.tool_calls).iter() {
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
        for ((method, outcome), histogram) in lock(&self.upstream).iter() {
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
            self.turns_in_flight.load(Ordering::Relaxed).max(0)
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
        for (reason, count) in lock(&self.rejected).iter() {
            let _ = writeln!(
                out,
                "handinger_mcp_http_rejected_total{{reason=\"{reason}\"}} {count}"
            );
        }
        out
    }
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
        let metrics = Metrics::default();
        metrics.request_finished(&reqwest::Method::PUT, Duration::from_millis(70), true);
        metrics.request_finished(&reqwest::Method::PUT, Duration::from_secs(4000), true);
        let text = metrics.render(OpenSessions::default());
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
    fn turns_count_while_in_flight() {
        let metrics = Metrics::default();
        metrics.turn_started();
        metrics.turn_started();
        metrics.turn_ended();
        let text = metrics.render(OpenSessions::default());
        assert!(
            text.contains(
                "handinger_mcp_turns_in_flight 1
"
            ),
            "{text}"
        );
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
