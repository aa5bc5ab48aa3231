//! The reviewed `tools/list` snapshots, one file per tool.
//!
//! `tests/snapshots/tools/<name>.json` holds exactly what tools/list returns for that tool;
//! `tests/snapshots/listings.json` says which tools (in order) each listing holds, and with
//! which settings it is listed. A tool's schema is the same in every listing that has it,
//! so one file per tool serves them all.
//!
//! One update path: `UPDATE_SNAPSHOTS=1 cargo test --test it tool_snapshots::` rewrites the files
//! from [`HandingerServer`] built in-process (no binary, no network). Without it, a
//! difference fails naming the listing or the tool, with the lines that differ. The
//! process-level checks (the real binary's tools/list over MCP, the `tools` command) compare
//! against the files too; while the files are being rewritten they compare against the
//! in-process listing instead, so one `UPDATE_SNAPSHOTS=1 cargo test` passes whatever order
//! the test binaries run in.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use handinger_mcp::config_file::{ArgsError, parse_args};
use handinger_mcp::handinger::{HandingerClient, Unobserved};
use handinger_mcp::metrics::Metrics;
use handinger_mcp::tools::{HandingerServer, Services};
use handinger_mcp::turns::TurnRegistry;
use rmcp::model::Tool;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// A listing the snapshots record: its key in `listings.json` and the command-line settings
/// it is listed with.
pub struct Listing {
    pub name: &'static str,
    pub args: &'static [&'static str],
}

/// The default settings: what most clients see.
pub const DEFAULT: Listing = Listing {
    name: "default",
    args: &[],
};

/// Every toolset, the ones `all` leaves out included.
pub const ALL_TOOLSETS: Listing = Listing {
    name: "all-toolsets",
    args: &["--toolsets", "tasks,workers,schedules,admin"],
};

pub const LISTINGS: [&Listing; 2] = [&DEFAULT, &ALL_TOOLSETS];

pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/snapshots")
}

pub fn tools_dir() -> PathBuf {
    dir().join("tools")
}

pub fn index_path() -> PathBuf {
    dir().join("listings.json")
}

pub fn tool_path(name: &str) -> PathBuf {
    tools_dir().join(format!("{name}.json"))
}

/// Whether this run rewrites the snapshots (`UPDATE_SNAPSHOTS` set).
pub fn updating() -> bool {
    std::env::var_os("UPDATE_SNAPSHOTS").is_some()
}

/// How to accept a reviewed change.
pub const HOW_TO_ACCEPT: &str =
    "review it, then run `UPDATE_SNAPSHOTS=1 cargo test --test it tool_snapshots::` to accept";

/// The tools a server lists with `args`, built in-process the way `handinger-mcp tools`
/// builds it: no key, so named workers are described from their names.
pub async fn in_process(args: &[&str]) -> Vec<Tool> {
    // The settings are read as the binary reads them, environment included: one inherited
    // from the shell would change the listing.
    let inherited: Vec<String> = std::env::vars_os()
        .filter_map(|(name, _)| name.into_string().ok())
        .filter(|name| name.starts_with("HANDINGER_MCP_"))
        .collect();
    assert!(
        inherited.is_empty(),
        "unset {inherited:?}: the in-process tools/list would follow them, not the listing's settings"
    );
    let argv = ["handinger-mcp", "tools"].iter().chain(args);
    let cli = match parse_args(argv.copied()) {
        Ok(cli) => cli,
        Err(ArgsError::Clap(error)) => panic!("{args:?}: {error}"),
        Err(ArgsError::File(message)) => panic!("{args:?}: {message}"),
    };
    // `tools` runs without a key, as here: the named workers are described from their names.
    let settings = cli
        .settings
        .validate(None)
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    let api =
        HandingerClient::new(None, settings.client, Arc::new(Unobserved)).expect("API client");
    let turns = TurnRegistry::new(
        settings.retention,
        settings.turn_limits,
        settings.answer_files,
    );
    let surface = settings.tools.describe(None).await;
    let services = Services {
        api,
        policy: Arc::new(settings.policy),
        turns: Arc::new(turns),
        metrics: Arc::new(Metrics::default()),
        shutdown: CancellationToken::new(),
    };
    HandingerServer::new(services, &surface)
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
        .tools()
}

/// A tool as its snapshot file holds it: pretty JSON (fields in the order tools/list sends
/// them) and a newline.
pub fn tool_text(tool: &Tool) -> String {
    serde_json::to_string_pretty(tool).unwrap() + "\n"
}

/// The index as it should read for these listings (each listing's settings and tools).
pub fn index_for(listed: &[(&Listing, Vec<Tool>)]) -> Value {
    let mut index = serde_json::Map::new();
    for (listing, tools) in listed {
        let names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
        index.insert(
            listing.name.to_owned(),
            json!({ "args": listing.args, "tools": names }),
        );
    }
    Value::Object(index)
}

pub fn read_index() -> Value {
    let path = index_path();
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; {HOW_TO_ACCEPT}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The tool names the snapshot index gives `listing`.
pub fn listed_names(listing: &Listing) -> Vec<String> {
    let index = read_index();
    let names = index[listing.name]["tools"].as_array().unwrap_or_else(|| {
        panic!(
            "{} has no listing {:?}; {HOW_TO_ACCEPT}",
            index_path().display(),
            listing.name
        )
    });
    names
        .iter()
        .map(|n| n.as_str().expect("tool names are strings").to_owned())
        .collect()
}

/// The snapshot file of one tool, as text.
pub fn read_tool(name: &str) -> String {
    let path = tool_path(name);
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("tool {name}: {}: {e}; {HOW_TO_ACCEPT}", path.display()))
}

/// What `listing` should list, each tool's name and text: the snapshot files, or while
/// they are being rewritten, the in-process listing they are rewritten from.
pub async fn expected(listing: &Listing) -> Vec<(String, String)> {
    if updating() {
        return in_process(listing.args)
            .await
            .iter()
            .map(|tool| (tool.name.to_string(), tool_text(tool)))
            .collect();
    }
    listed_names(listing)
        .into_iter()
        .map(|name| {
            let text = read_tool(&name);
            (name, text)
        })
        .collect()
}

/// [`expected`] as the JSON array of a tools/list result.
pub async fn expected_json(listing: &Listing) -> Value {
    let tools = expected(listing).await;
    tools
        .iter()
        .map(|(name, text)| {
            serde_json::from_str::<Value>(text).unwrap_or_else(|e| panic!("tool {name}: {e}"))
        })
        .collect::<Vec<_>>()
        .into()
}

/// Fails unless `actual` is `listing` as reviewed: the same tools in the same order, each
/// exactly its snapshot. The message names the listing or the tool and shows the lines
/// that differ.
pub async fn assert_listing(listing: &Listing, actual: &[Tool], source: &str) {
    let expected = expected(listing).await;
    assert_same_tools(listing, actual, &expected, source);
}

pub fn assert_same_tools(
    listing: &Listing,
    actual: &[Tool],
    expected: &[(String, String)],
    source: &str,
) {
    let actual_names: Vec<&str> = actual.iter().map(|t| t.name.as_ref()).collect();
    let expected_names: Vec<&str> = expected.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(
        actual_names,
        expected_names,
        "{source}: the {:?} listing's tools differ from {}; {HOW_TO_ACCEPT}",
        listing.name,
        index_path().display()
    );
    for (tool, (name, expected)) in actual.iter().zip(expected) {
        let actual = tool_text(tool);
        if &actual != expected {
            panic!(
                "{source}: tool {name} (listing {:?}) differs from {}; {HOW_TO_ACCEPT}\n{}",
                listing.name,
                tool_path(name).display(),
                line_diff(expected, &actual)
            );
        }
    }
}

/// The lines between the common start and the common end of two texts: `-` the
/// snapshot's, `+` the new ones, with a little context. Enough to see what changed in one
/// tool's JSON.
pub fn line_diff(expected: &str, actual: &str) -> String {
    const CONTEXT: usize = 3;
    const MOST: usize = 60;
    let old: Vec<&str> = expected.lines().collect();
    let new: Vec<&str> = actual.lines().collect();
    let prefix = old.iter().zip(&new).take_while(|(a, b)| a == b).count();
    let suffix = old[prefix..]
        .iter()
        .rev()
        .zip(new[prefix..].iter().rev())
        .take_while(|(a, b)| a == b)
        .count();
    let start = prefix.saturating_sub(CONTEXT);
    let mut out = vec![format!("@@ line {} @@", prefix + 1)];
    out.extend(old[start..prefix].iter().map(|l| format!("  {l}")));
    out.extend(
        old[prefix..old.len() - suffix]
            .iter()
            .map(|l| format!("- {l}")),
    );
    out.extend(
        new[prefix..new.len() - suffix]
            .iter()
            .map(|l| format!("+ {l}")),
    );
    let after = old.len() - suffix;
    out.extend(
        old[after..(after + CONTEXT).min(old.len())]
            .iter()
            .map(|l| format!("  {l}")),
    );
    if out.len() > MOST {
        let cut = out.len() - MOST;
        out.truncate(MOST);
        out.push(format!("… {cut} more lines"));
    }
    out.join("\n")
}
