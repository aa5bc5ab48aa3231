//! Logging to stderr (stdout belongs to the protocol in stdio mode), filtered by `RUST_LOG`.

use tracing_subscriber::EnvFilter;

use crate::config::LogFormat;

/// Our own events at info; the SDK's per-message chatter only when something is wrong.
const DEFAULT_FILTER: &str = "warn,handinger_mcp=info";

pub fn init(format: LogFormat) {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::{Layer as _, fmt};
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER));
    let layer = fmt::layer().with_writer(std::io::stderr).with_ansi(false);
    let layer = match format {
        LogFormat::Text => layer.boxed(),
        LogFormat::Json => layer.json().boxed(),
    };
    // A second initialisation (tests calling in twice) is harmless; ignore it.
    let _ = tracing_subscriber::registry()
        .with(
            layer.with_filter(tracing_subscriber::filter::filter_fn(|meta| {
                !names_a_session(meta)
            })),
        )
        .with(filter)
        .try_init();
}

/// rmcp logs every new Streamable HTTP session's id at info. An id is what a client shows
/// to use its session, so it stays out of logs at info and above, whatever `RUST_LOG`
/// asks; it still shows at debug, where a person debugging asked for everything.
fn names_a_session(meta: &tracing::Metadata<'_>) -> bool {
    *meta.level() <= tracing::Level::INFO
        && meta
            .target()
            .starts_with("rmcp::transport::streamable_http_server")
        && meta.fields().field("session_id").is_some()
}
