//! Every setting: its flag, its environment variable, its default, and its validation.
//!
//! The API key is the one setting without a flag: a flag would show it to anyone who can
//! list processes. It is read from `HANDINGER_API_KEY` straight into a secret type.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use secrecy::SecretString;

use crate::files::FileLimits;
use crate::files::answer::AnswerFileOptions;
use crate::files::upload::AllowedRoots;
use crate::handinger::fetch_guard::FileHosts;
use crate::handinger::{Budget, ClientOptions};
use crate::tools::{NamedWorker, TaskPolicy, ToolSettings, ToolsetChoice, parse_toolsets};
use crate::transport::message_shape::MessageShape;
use crate::turns::{Retention, TurnLimits};

pub const API_KEY_VAR: &str = "HANDINGER_API_KEY";

/// A setting that cannot be used, and what to do about it. Each message names the flag and
/// its environment variable; a URL shown in one has its password masked.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error(
        "HANDINGER_API_KEY is not set: export HANDINGER_API_KEY=hdg_live_… (your Handinger API key) and start handinger-mcp again"
    )]
    MissingApiKey,
    #[error(
        "--default-budget {default} is above --max-budget {max}: lower the default or raise the limit"
    )]
    BudgetAboveMax { default: Budget, max: Budget },
    #[error(
        "HANDINGER_BASE_URL / --base-url {url:?} is not a URL ({detail}); use e.g. https://handinger.com"
    )]
    BaseUrlUnparsable { url: String, detail: String },
    #[error(
        "HANDINGER_BASE_URL / --base-url {url:?} must be an http(s) URL such as https://handinger.com"
    )]
    BaseUrlNotHttp { url: String },
    #[error(
        "HANDINGER_BASE_URL / --base-url {url:?} must not carry credentials, a query or a fragment: give the bare origin, such as https://handinger.com"
    )]
    BaseUrlExtras { url: String },
    #[error(
        "HANDINGER_MCP_STORE / --store {url:?} is neither `memory` nor a Redis URL: use memory, redis://host:6379/0 or rediss://host:6380/0 (TLS)"
    )]
    StoreNotRedis { url: String },
    #[error("--download-dir {} is not an existing directory: create it first", .0.display())]
    NoDownloadDir(PathBuf),
    /// A setting checked by the module that uses it (worker ids, toolsets, allowed
    /// directories and file hosts, the HTTP transport's settings); the message names it.
    #[error("{0}")]
    Invalid(String),
}

const AFTER_HELP: &str = "\
Environment:
  HANDINGER_API_KEY   Your Handinger API key (hdg_live_…). Required. Read only from the
                      environment, never from a flag, so it cannot show up in process lists.
  HTTPS_PROXY, NO_PROXY
                      Proxy settings for reaching the Handinger API.
  RUST_LOG            Log filter (default: warn,handinger_mcp=info). Logs go to stderr;
                      stdout carries only MCP messages.

Example (Claude Code):
  claude mcp add handinger --env HANDINGER_API_KEY=hdg_live_… -- handinger-mcp";

/// An MCP server that hands tasks to Handinger AI workers.
#[derive(Debug, Parser)]
#[command(name = "handinger-mcp", version, about, long_about = None, after_help = AFTER_HELP)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub settings: SettingsArgs,
}

#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Serve MCP over stdin/stdout, for a local client (the default).
    Stdio,
    // Boxed: its settings are many times the size of every other variant.
    /// Serve MCP over HTTP for remote clients and teams: Streamable HTTP at /mcp, the legacy
    /// SSE transport at /sse, and /healthz, /readyz, /metrics.
    Http(Box<crate::transport::http::HttpArgs>),
    /// Check the setup (API key, base URL and proxy, default and named workers), one line per check,
    /// then print ready-to-paste client configuration. Exits non-zero on a problem.
    Doctor,
    /// Print the tools/list JSON that clients see with the current settings. Makes no call,
    /// except to fetch the named workers' titles and summaries when a key is set.
    Tools,
}

impl Command {
    /// Whether the command refuses to start without HANDINGER_API_KEY. `doctor` reports a
    /// missing key as one of its findings and `tools` needs no call (without a key, named
    /// workers are described from their names), so both run without one.
    pub fn needs_api_key(&self) -> bool {
        !matches!(self, Command::Doctor | Command::Tools)
    }
}

/// The server's own API key, from the environment; `None` where the command runs without
/// one: `doctor` and `tools` run without one, and with `http --key-from-request` every call
/// runs with its client's key, so the server's is not even read. A command that needs the
/// key and has none is refused.
pub fn server_api_key(command: Option<&Command>) -> Result<Option<SecretString>, ConfigError> {
    let from_env = || {
        std::env::var(API_KEY_VAR)
            .ok()
            .filter(|k| !k.trim().is_empty())
            .map(SecretString::from)
    };
    match command {
        // OAuth mode runs every call on the signed-in user's key, as --key-from-request does.
        Some(Command::Http(http)) if http.key_from_request || http.oauth.oauth => Ok(None),
        Some(command) if !command.needs_api_key() => Ok(from_env()),
        _ => from_env().map(Some).ok_or(ConfigError::MissingApiKey),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct SettingsArgs {
    /// Base URL of the Handinger API.
    #[arg(
        long,
        env = "HANDINGER_BASE_URL",
        default_value = "https://handinger.com",
        global = true
    )]
    pub base_url: String,

    /// Budget of a call that does not choose one.
    #[arg(long, env = "HANDINGER_MCP_DEFAULT_BUDGET", value_enum, default_value_t = Budget::Standard, global = true)]
    pub default_budget: Budget,

    /// Highest budget a call may ask for; calls above it are refused before anything is sent.
    /// `unlimited` has no spend cap, so it must be allowed explicitly.
    #[arg(long, env = "HANDINGER_MCP_MAX_BUDGET", value_enum, default_value_t = Budget::High, global = true)]
    pub max_budget: Budget,

    /// Worker to run a call on when the call names none. Without it, Handinger sets up a
    /// worker from the call's input.
    #[arg(long, env = "HANDINGER_MCP_WORKER_ID", global = true)]
    pub worker_id: Option<String>,

    /// Longest a tool call waits for a worker's answer, in seconds, before handing back the
    /// taskId to collect it with get_task. Keep it below your client's tool timeout.
    #[arg(long, env = "HANDINGER_MCP_MAX_WAIT", default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..=3600), global = true)]
    pub max_wait: u64,

    /// Seconds between progress notifications while a worker runs (for calls that ask for
    /// progress).
    #[arg(long, env = "HANDINGER_MCP_PROGRESS_INTERVAL", default_value_t = 5, value_parser = clap::value_parser!(u64).range(1..=600), global = true)]
    pub progress_interval: u64,

    /// Seconds a finished answer stays available to get_task after the call that started
    /// it stopped waiting.
    #[arg(long, env = "HANDINGER_MCP_RESULT_TTL", default_value_t = 3600, value_parser = clap::value_parser!(u64).range(1..=7 * 24 * 3600), global = true)]
    pub result_ttl: u64,

    /// Where turns and finished answers live: `memory` (this process only), or a Redis or
    /// Valkey URL (`redis://[:password@]host:port/db`, `rediss://` for TLS) that every
    /// replica shares, so any of them serves an answer and a repeated call joins the turn
    /// already running elsewhere. The URL's password is never logged.
    #[arg(
        long,
        env = "HANDINGER_MCP_STORE",
        default_value = "memory",
        hide_env_values = true,
        global = true
    )]
    pub store: String,

    /// With a shared store: seconds a replica's claim on a running turn outlives its last
    /// renewal (it renews every third of this while the turn runs). A replica that dies or
    /// stalls longer than this has its turn settled by the others with Handinger's turn list.
    #[arg(long, env = "HANDINGER_MCP_STORE_LEASE", default_value_t = 15, value_parser = clap::value_parser!(u64).range(3..=600), global = true)]
    pub store_lease: u64,

    /// Seconds after a turn ended during which the same input on the same task is that turn
    /// again: create_task answers from it instead of posting it a second time (a retry
    /// after a lost answer, a call that arrived late). 0 turns this off. Any change to the
    /// input asks anew.
    #[arg(long, env = "HANDINGER_MCP_REPEAT_WINDOW", default_value_t = 600, value_parser = clap::value_parser!(u64).range(0..=7 * 24 * 3600), global = true)]
    pub repeat_window: u64,

    /// Most finished answers kept for get_task; the oldest go first.
    #[arg(long, env = "HANDINGER_MCP_MAX_RESULTS", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=1_000_000), global = true)]
    pub max_results: u64,

    /// Memory budget for the finished answers kept for get_task, in bytes (their text,
    /// structured output, sources and file lists); beyond it the oldest go first.
    #[arg(long, env = "HANDINGER_MCP_MAX_RETAINED_BYTES", default_value_t = 64 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1024..=64 * 1024 * 1024 * 1024), global = true)]
    pub max_retained_bytes: u64,

    /// Longest task input accepted, in bytes (a call's, or a schedule's for each of its
    /// runs); longer ones are refused before anything is sent (attach long material as a
    /// file instead).
    #[arg(long, env = "HANDINGER_MCP_MAX_INPUT_BYTES", default_value_t = 256 * 1024, value_parser = clap::value_parser!(u64).range(1..=64 * 1024 * 1024), global = true)]
    pub max_input_bytes: u64,

    /// Most Handinger tasks running upstream at once for the whole server. A turn holds its
    /// slot until Handinger answers it, even after its caller stopped waiting.
    #[arg(long, env = "HANDINGER_MCP_MAX_TURNS_IN_FLIGHT", default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=1_000_000), global = true)]
    pub max_turns_in_flight: u64,

    /// Most Handinger tasks running upstream at once for one API key (with
    /// `--key-from-request`, per user).
    #[arg(long, env = "HANDINGER_MCP_MAX_TURNS_IN_FLIGHT_PER_KEY", default_value_t = 64, value_parser = clap::value_parser!(u64).range(1..=1_000_000), global = true)]
    pub max_turns_in_flight_per_key: u64,

    /// Most JSON values (object keys included) of a worker's structured answer passed as
    /// structured data; a larger one is passed as its JSON text (in `json`, with a note),
    /// since each value costs dozens of bytes as the tree MCP's structured content is.
    #[arg(long, env = "HANDINGER_MCP_MAX_STRUCTURED_VALUES", default_value_t = crate::handinger::structured::DEFAULT_MAX_VALUES as u64, value_parser = clap::value_parser!(u64).range(1..=100_000_000), global = true)]
    pub max_structured_values: u64,

    /// Largest answer accepted from Handinger, in bytes.
    #[arg(long, env = "HANDINGER_MCP_MAX_RESPONSE_BYTES", default_value_t = 16 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1024..=1024 * 1024 * 1024), global = true)]
    pub max_response_bytes: u64,

    /// Timeout of each request to Handinger other than running a task (lookups, worker and
    /// schedule calls), in seconds.
    #[arg(long, env = "HANDINGER_MCP_REQUEST_TIMEOUT", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=600), global = true)]
    pub request_timeout: u64,

    /// Directory local files may be attached from (stdio mode; repeatable, or comma
    /// separated in the variable). Clients that share their roots add those too.
    #[arg(
        long = "allow-dir",
        env = "HANDINGER_MCP_ALLOW_DIRS",
        value_name = "DIR",
        value_delimiter = ',',
        global = true
    )]
    pub allow_dirs: Vec<PathBuf>,

    /// Most files one call may attach.
    #[arg(long, env = "HANDINGER_MCP_MAX_FILES", default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=1000), global = true)]
    pub max_files: u64,

    /// Largest single file attached or fetched, in bytes.
    #[arg(long, env = "HANDINGER_MCP_MAX_FILE_BYTES", default_value_t = 128 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub max_file_bytes: u64,

    /// Largest total of one call's attachments, in bytes.
    #[arg(long, env = "HANDINGER_MCP_MAX_TOTAL_FILE_BYTES", default_value_t = 256 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub max_total_file_bytes: u64,

    /// Save every file a worker produces into this directory (never overwriting) and link
    /// the local copy in the result.
    #[arg(
        long,
        env = "HANDINGER_MCP_DOWNLOAD_DIR",
        value_name = "DIR",
        global = true
    )]
    pub download_dir: Option<PathBuf>,

    /// Most answer files saved or inlined per answer; the rest are listed but not fetched.
    #[arg(long, env = "HANDINGER_MCP_MAX_ANSWER_FILES", default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..=10_000), global = true)]
    pub max_answer_files: u64,

    /// Most bytes of answer files fetched per answer, all files together; files beyond it
    /// are listed but not saved.
    #[arg(long, env = "HANDINGER_MCP_MAX_ANSWER_BYTES", default_value_t = 256 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub max_answer_bytes: u64,

    /// Most answer files downloaded at once, all answers together (for --download-dir and
    /// --inline-images). Downloads run in the background: the answer is returned first, and
    /// a freed slot goes round robin over API keys and, within a key, over answers.
    #[arg(long, env = "HANDINGER_MCP_MAX_PARALLEL_DOWNLOADS", default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..=256), global = true)]
    pub max_parallel_downloads: u64,

    /// Most bytes the answer files saved in --download-dir may take, all answers together;
    /// to save a new one, the oldest files this server saved are deleted. Files it did not
    /// save are never counted or touched.
    #[arg(long, env = "HANDINGER_MCP_MAX_DOWNLOAD_DIR_BYTES", default_value_t = crate::files::disk_budget::DEFAULT_MAX_BYTES, value_parser = clap::value_parser!(u64).range(1..), global = true)]
    pub max_download_dir_bytes: u64,

    /// A host answer files may be fetched from even though it is not public or not https
    /// (repeatable; comma separated in the variable): `host` or `host:port`. Without it, a
    /// file is fetched only from the API's own origin or over https from a public address.
    #[arg(
        long = "allow-file-host",
        env = "HANDINGER_MCP_ALLOW_FILE_HOST",
        value_name = "HOST[:PORT]",
        value_delimiter = ',',
        global = true
    )]
    pub allow_file_hosts: Vec<String>,

    /// Return images the worker produces inline, for clients that show them.
    #[arg(long, env = "HANDINGER_MCP_INLINE_IMAGES", global = true)]
    pub inline_images: bool,

    /// Largest image returned inline, in bytes.
    #[arg(long, env = "HANDINGER_MCP_MAX_INLINE_IMAGE_BYTES", default_value_t = 1024 * 1024, value_parser = clap::value_parser!(u64).range(1..=64 * 1024 * 1024), global = true)]
    pub max_inline_image_bytes: u64,

    /// Largest MCP message read from stdin, in bytes (stdio mode); a longer one is answered
    /// with an error instead of being read.
    #[arg(long, env = "HANDINGER_MCP_MAX_MESSAGE_BYTES", default_value_t = 16 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(1024..=1024 * 1024 * 1024), global = true)]
    pub max_message_bytes: u64,

    /// Deepest nesting of JSON accepted in one client message (a stdio line or an HTTP
    /// body); a deeper one is refused before it is parsed.
    #[arg(long, env = "HANDINGER_MCP_MAX_JSON_DEPTH", default_value_t = 64, value_parser = clap::value_parser!(u64).range(8..=128), global = true)]
    pub max_json_depth: u64,

    /// Most JSON values (object keys included) accepted in one client message; a message
    /// with more is refused before it is parsed, since each value costs a few hundred bytes
    /// of memory however small its text.
    #[arg(long, env = "HANDINGER_MCP_MAX_JSON_VALUES", default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(64..=10_000_000), global = true)]
    pub max_json_values: u64,

    /// Longest request id or progress token accepted, in bytes of JSON text (16 to 256:
    /// a held call keeps no longer progress token); a request with a longer one is refused
    /// (both are kept for as long as a call is held).
    #[arg(long, env = "HANDINGER_MCP_MAX_ID_BYTES", default_value_t = 256, value_parser = clap::value_parser!(u64).range(16..=256), global = true)]
    pub max_id_bytes: u64,

    /// Log format on stderr.
    #[arg(long, env = "HANDINGER_MCP_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    /// Tool groups to serve, comma separated: tasks (create_task, get_task), workers
    /// (create_worker, get_worker, update_worker), schedules (create_schedule, list_schedules,
    /// cancel_schedule), admin (delete_worker, archive_task; destructive, served only when
    /// named), or all (every group but admin; all,admin for everything).
    #[arg(long, env = "HANDINGER_MCP_TOOLSETS", value_name = "TOOLSETS", value_delimiter = ',', default_value = "tasks", value_parser = parse_toolsets, global = true)]
    pub toolsets: Vec<ToolsetChoice>,

    /// Serve only the tools that change nothing (get_task, get_worker, list_schedules).
    #[arg(long, env = "HANDINGER_MCP_READ_ONLY", value_parser = clap::builder::BoolishValueParser::new(), global = true)]
    pub read_only: bool,

    /// Serve one of your workers as its own tool, ask_NAME, described by the worker's title
    /// and summary. Repeatable; comma separated in the environment variable.
    #[arg(long = "worker", env = "HANDINGER_MCP_WORKERS", value_name = "NAME=WORKER_ID", value_delimiter = ',', value_parser = NamedWorker::parse, global = true)]
    pub workers: Vec<NamedWorker>,

    /// A TOML file with any of these settings, keyed by their long flag names
    /// (max-wait = 30, toolsets = ["tasks", "workers"], and a [workers] table of
    /// NAME = "WORKER_ID"). Flags and environment variables override it.
    #[arg(long, env = "HANDINGER_MCP_CONFIG", value_name = "PATH", global = true)]
    pub config: Option<PathBuf>,
}

/// Treats a setting variable that is set but empty as unset.
///
/// Client configurations (an MCPB bundle's optional fields, a `.env` file) often pass an
/// empty string for "not given"; clap would refuse it as a missing value. Must run before
/// any other thread starts, which is why `main` calls it first.
pub fn forget_empty_settings() {
    let empty: Vec<_> = std::env::vars_os()
        .filter(|(name, value)| {
            let name = name.to_string_lossy();
            value.is_empty() && (name.starts_with("HANDINGER_MCP_") || name == "HANDINGER_BASE_URL")
        })
        .map(|(name, _)| name)
        .collect();
    for name in empty {
        // SAFETY: called at the top of `main`, before any thread exists, so nothing can
        // read the environment concurrently.
        unsafe { std::env::remove_var(name) };
    }
}

/// Validated settings, ready to run with.
#[derive(Debug)]
pub struct Settings {
    /// `None` where the command runs without the server's own key (see [`server_api_key`]).
    pub api_key: Option<SecretString>,
    pub client: ClientOptions,
    pub policy: TaskPolicy,
    pub retention: Retention,
    pub turn_limits: TurnLimits,
    pub answer_files: AnswerFileOptions,
    pub log_format: LogFormat,
    pub tools: ToolSettings,
    /// Largest message read from stdin.
    pub max_message_bytes: usize,
    /// What one client message may cost before it is parsed (every transport).
    pub message_shape: MessageShape,
    /// Structured outputs with more values are passed as text.
    pub max_structured_values: usize,
    /// The shared turn store's URL (`--store`) and the deployment secret its names are
    /// keyed with, `None` for memory. Both secret: the URL may carry a password.
    pub store: Option<(SecretString, SecretString)>,
    /// How long a claim in the shared store outlives its owner's last renewal.
    pub store_lease: Duration,
}

impl SettingsArgs {
    /// Checks the settings; `api_key` is what [`server_api_key`] found.
    pub fn validate(self, api_key: Option<SecretString>) -> Result<Settings, ConfigError> {
        let base_url = validate_base_url(&self.base_url)?;
        if self.default_budget > self.max_budget {
            return Err(ConfigError::BudgetAboveMax {
                default: self.default_budget,
                max: self.max_budget,
            });
        }
        if let Some(worker) = &self.worker_id {
            crate::task_id::validate_id(worker, "--worker-id").map_err(ConfigError::Invalid)?;
        }
        let tools = ToolSettings::new(self.toolsets, self.read_only, self.workers)
            .map_err(ConfigError::Invalid)?;
        let local_roots =
            AllowedRoots::from_config(&self.allow_dirs).map_err(ConfigError::Invalid)?;
        let file_hosts = FileHosts::new(&self.allow_file_hosts).map_err(ConfigError::Invalid)?;
        let store = validate_store(&self.store)?
            .map(|url| Ok::<_, ConfigError>((url, store_secret()?)))
            .transpose()?;
        if let Some(dir) = &self.download_dir
            && !dir.is_dir()
        {
            return Err(ConfigError::NoDownloadDir(dir.clone()));
        }
        Ok(Settings {
            api_key,
            client: ClientOptions {
                base_url,
                max_response_bytes: usize::try_from(self.max_response_bytes).unwrap_or(usize::MAX),
                get_timeout: Duration::from_secs(self.request_timeout),
                file_hosts,
            },
            policy: TaskPolicy {
                default_budget: self.default_budget,
                max_budget: self.max_budget,
                default_worker: self.worker_id,
                max_wait: Duration::from_secs(self.max_wait),
                progress_interval: Duration::from_secs(self.progress_interval),
                max_input_bytes: usize::try_from(self.max_input_bytes).unwrap_or(usize::MAX),
                file_limits: FileLimits {
                    max_files: usize::try_from(self.max_files).unwrap_or(usize::MAX),
                    max_file_bytes: self.max_file_bytes,
                    max_total_bytes: self.max_total_file_bytes,
                },
                local_roots: Some(local_roots),
            },
            answer_files: AnswerFileOptions {
                download_dir: self.download_dir,
                inline_images_up_to: self.inline_images.then_some(self.max_inline_image_bytes),
                max_file_bytes: self.max_file_bytes,
                max_files: usize::try_from(self.max_answer_files).unwrap_or(usize::MAX),
                max_total_bytes: self.max_answer_bytes,
                download_queue: crate::files::download_queue::DownloadQueue::new(
                    usize::try_from(self.max_parallel_downloads).unwrap_or(1),
                ),
                disk_budget: crate::files::disk_budget::DiskBudget::new(
                    self.max_download_dir_bytes,
                ),
            },
            retention: Retention {
                ttl: Duration::from_secs(self.result_ttl),
                max_finished: usize::try_from(self.max_results).unwrap_or(usize::MAX),
                max_bytes: usize::try_from(self.max_retained_bytes).unwrap_or(usize::MAX),
                repeat_window: Duration::from_secs(self.repeat_window),
            },
            turn_limits: TurnLimits {
                max_in_flight: usize::try_from(self.max_turns_in_flight).unwrap_or(usize::MAX),
                max_in_flight_per_key: usize::try_from(self.max_turns_in_flight_per_key)
                    .unwrap_or(usize::MAX),
            },
            log_format: self.log_format,
            tools,
            max_message_bytes: usize::try_from(self.max_message_bytes).unwrap_or(usize::MAX),
            max_structured_values: usize::try_from(self.max_structured_values)
                .unwrap_or(usize::MAX),
            message_shape: MessageShape {
                max_depth: usize::try_from(self.max_json_depth).unwrap_or(usize::MAX),
                max_values: usize::try_from(self.max_json_values).unwrap_or(usize::MAX),
                max_id_bytes: usize::try_from(self.max_id_bytes).unwrap_or(usize::MAX),
            },
            store,
            store_lease: Duration::from_secs(self.store_lease),
        })
    }
}

/// The variable holding the shared store's secret, and the one naming a file that holds it.
pub const STORE_SECRET_VAR: &str = "HANDINGER_MCP_STORE_SECRET";
pub const STORE_SECRET_FILE_VAR: &str = "HANDINGER_MCP_STORE_SECRET_FILE";
/// Shortest store secret accepted: it stands between the store's key names and an offline
/// guess of the API keys they are derived from.
const MIN_STORE_SECRET_BYTES: usize = 16;

/// The deployment secret the shared store's names are keyed with: from
/// `HANDINGER_MCP_STORE_SECRET`, or the file `HANDINGER_MCP_STORE_SECRET_FILE` names (a
/// mounted secret). The same on every replica.
fn store_secret() -> Result<SecretString, ConfigError> {
    match crate::env_secret::read(
        STORE_SECRET_VAR,
        STORE_SECRET_FILE_VAR,
        MIN_STORE_SECRET_BYTES,
    ) {
        Ok(Some(secret)) => Ok(secret),
        Ok(None) => Err(ConfigError::Invalid(format!(
            "--store needs a secret to key the store's names with (they would otherwise let anyone who reads the store test guesses of API keys offline): set {STORE_SECRET_VAR}, or {STORE_SECRET_FILE_VAR} to a file holding it; {}",
            crate::env_secret::ADVICE
        ))),
        Err(message) => Err(ConfigError::Invalid(message)),
    }
}

/// `memory`, or a `redis://` / `rediss://` URL (checked fully when the store is set up).
/// Errors show the URL with its password masked.
fn validate_store(raw: &str) -> Result<Option<SecretString>, ConfigError> {
    let raw = raw.trim();
    if raw.eq_ignore_ascii_case("memory") {
        return Ok(None);
    }
    let scheme = raw
        .split_once("://")
        .map(|(scheme, _)| scheme.to_ascii_lowercase());
    if !matches!(scheme.as_deref(), Some("redis" | "rediss")) {
        return Err(ConfigError::StoreNotRedis {
            url: crate::redact::mask_credentials(raw),
        });
    }
    Ok(Some(SecretString::from(raw.to_owned())))
}

/// An `http(s)://host[:port][/prefix]` URL, returned without a trailing slash. Errors show
/// the URL with any user and password masked: it may carry a real password.
fn validate_base_url(raw: &str) -> Result<String, ConfigError> {
    let shown = crate::redact::mask_credentials(raw.trim());
    let url = reqwest::Url::parse(&shown).map_err(|e| ConfigError::BaseUrlUnparsable {
        url: shown.clone(),
        detail: e.to_string(),
    })?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(ConfigError::BaseUrlNotHttp { url: shown });
    }
    if url.query().is_some()
        || url.fragment().is_some()
        || !url.username().is_empty()
        || url.password().is_some()
    {
        return Err(ConfigError::BaseUrlExtras { url: shown });
    }
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> SettingsArgs {
        let mut argv = vec!["handinger-mcp"];
        argv.extend_from_slice(extra);
        Cli::try_parse_from(argv).unwrap().settings
    }

    #[test]
    fn default_above_max_is_refused() {
        let err = args(&["--default-budget", "high", "--max-budget", "low"])
            .validate(Some("k".into()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("--max-budget"), "{err}");
    }

    #[test]
    fn base_url_is_normalised_and_checked() {
        assert_eq!(
            validate_base_url("http://127.0.0.1:9/").unwrap(),
            "http://127.0.0.1:9"
        );
        assert!(validate_base_url("ftp://x").is_err());
        assert!(validate_base_url("https://u:p@x").is_err());
    }
}
