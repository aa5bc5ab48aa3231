//! What a client needs from us: the configuration to paste into it, and the tools it will see.
//!
//! `doctor` ends by printing [`ClientConfig`] for this very binary (its absolute path), and
//! the same through `npx -y handinger-mcp`, so a person can paste it into Claude Code, Claude
//! Desktop, Cursor or VS Code without looking up each client's format. The key is never printed: the configuration carries
//! [`KEY_PLACEHOLDER`] (or, for VS Code, an input prompt that stores the key in VS Code's
//! secret storage). The same shapes are checked in under `manifests/clients/`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::config::API_KEY_VAR;
use crate::handinger::Budget;
use crate::tools::{HandingerServer, TaskPolicy, ToolSettings};

/// What the configuration shows where the key goes. Plain letters, so a command pasted
/// before it is replaced does nothing surprising in a shell.
pub(crate) const KEY_PLACEHOLDER: &str = "YOUR_HANDINGER_API_KEY";
/// The name clients list the server under.
pub(crate) const SERVER_NAME: &str = "handinger";
/// The id of VS Code's prompt for the key.
const VSCODE_INPUT_ID: &str = "handinger-api-key";
const DEFAULT_BASE_URL: &str = "https://handinger.com";

/// The npm package that runs the binary (`npx -y handinger-mcp`), for clients on machines
/// with Node.js but no binary on a path.
pub(crate) const NPM_PACKAGE: &str = "handinger-mcp";

/// A stdio configuration of this server for the usual clients.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientConfig {
    /// Absolute path of the `handinger-mcp` binary, or `npx`.
    pub command: String,
    /// The arguments before `stdio`: none for the binary, `-y handinger-mcp` for npx.
    pub launcher_args: Vec<String>,
    /// Settings other than the key that differ from the defaults, as environment variables,
    /// so the pasted configuration runs the server the way this one was configured.
    pub env: Vec<(String, String)>,
}

impl ClientConfig {
    /// The configuration for `command`, carrying the non-default settings among these.
    pub(crate) fn new(command: String, base_url: &str, policy: &TaskPolicy) -> Self {
        let mut env = Vec::new();
        if base_url != DEFAULT_BASE_URL {
            env.push(("HANDINGER_BASE_URL".to_owned(), base_url.to_owned()));
        }
        if let Some(worker) = &policy.default_worker {
            env.push(("HANDINGER_MCP_WORKER_ID".to_owned(), worker.clone()));
        }
        if policy.default_budget != Budget::Standard {
            env.push((
                "HANDINGER_MCP_DEFAULT_BUDGET".to_owned(),
                policy.default_budget.to_string(),
            ));
        }
        if policy.max_budget != Budget::High {
            env.push((
                "HANDINGER_MCP_MAX_BUDGET".to_owned(),
                policy.max_budget.to_string(),
            ));
        }
        ClientConfig {
            command,
            launcher_args: Vec::new(),
            env,
        }
    }

    /// The same configuration run through npm (`npx -y handinger-mcp stdio`) instead of
    /// this binary: nothing to keep on a path, and npm fetches the binary for the client's
    /// platform.
    pub(crate) fn via_npx(&self) -> Self {
        ClientConfig {
            command: "npx".to_owned(),
            launcher_args: vec!["-y".to_owned(), NPM_PACKAGE.to_owned()],
            env: self.env.clone(),
        }
    }

    fn args(&self) -> Vec<&str> {
        let mut args: Vec<&str> = self.launcher_args.iter().map(String::as_str).collect();
        args.push("stdio");
        args
    }

    /// Adds the tool settings that differ from the defaults (toolsets, read-only, named
    /// workers), so the pasted configuration serves the same tools.
    pub(crate) fn with_tools(mut self, tools: &ToolSettings) -> Self {
        let defaults = ToolSettings::default();
        if tools.toolsets != defaults.toolsets {
            let names: Vec<&str> = tools.toolsets.iter().map(|t| t.as_str()).collect();
            self.env
                .push(("HANDINGER_MCP_TOOLSETS".to_owned(), names.join(",")));
        }
        if tools.read_only {
            self.env
                .push(("HANDINGER_MCP_READ_ONLY".to_owned(), "true".to_owned()));
        }
        if !tools.workers.is_empty() {
            let workers: Vec<String> = tools
                .workers
                .iter()
                .map(|w| format!("{}={}", w.name, w.worker_id))
                .collect();
            self.env
                .push(("HANDINGER_MCP_WORKERS".to_owned(), workers.join(",")));
        }
        self
    }

    /// `claude mcp add …`, one shell command.
    pub(crate) fn claude_code(&self) -> String {
        let mut line = format!(
            "claude mcp add {SERVER_NAME} --scope user --env {API_KEY_VAR}={KEY_PLACEHOLDER}"
        );
        for (name, value) in &self.env {
            line.push_str(&format!(
                " --env {}",
                shell_quote(&format!("{name}={value}"))
            ));
        }
        line.push_str(&format!(" -- {}", shell_quote(&self.command)));
        for arg in self.args() {
            line.push(' ');
            line.push_str(&shell_quote(arg));
        }
        line
    }

    /// The `mcpServers` JSON that Claude Desktop (`claude_desktop_config.json`) and Cursor
    /// (`~/.cursor/mcp.json`) share, pretty-printed.
    pub(crate) fn mcp_servers_json(&self) -> String {
        let args = self.args();
        let server = StdioServer {
            kind: None,
            command: &self.command,
            args: &args,
            env: self.env_with_key(KEY_PLACEHOLDER),
        };
        pretty(&McpServersFile {
            mcp_servers: [(SERVER_NAME, server)].into(),
        })
    }

    /// VS Code's `.vscode/mcp.json`, pretty-printed: VS Code asks for the key once and keeps
    /// it in its secret storage, so the file holds no secret and can be committed.
    pub(crate) fn vscode_json(&self) -> String {
        let args = self.args();
        let server = StdioServer {
            kind: Some("stdio"),
            command: &self.command,
            args: &args,
            env: self.env_with_key(&format!("${{input:{VSCODE_INPUT_ID}}}")),
        };
        pretty(&VsCodeFile {
            inputs: [KeyPrompt {
                kind: "promptString",
                id: VSCODE_INPUT_ID,
                description: "Handinger API key (hdg_live_…)",
                password: true,
            }],
            servers: [(SERVER_NAME, server)].into(),
        })
    }

    /// Everything, as `doctor` prints it: for this binary, then the same through npx.
    pub(crate) fn render(&self) -> String {
        let npx = self.via_npx();
        format!(
            "{binary}\n\
             Or without a local binary (Node.js 18+), through npm:\n\
             \n\
             npx: Claude Code:\n\
             {claude_code}\n\
             \n\
             npx: Claude Desktop and Cursor:\n\
             {mcp_servers}\n\
             \n\
             npx: VS Code:\n\
             {vscode}\n",
            binary = self.render_one(),
            claude_code = npx.claude_code(),
            mcp_servers = npx.mcp_servers_json(),
            vscode = npx.vscode_json(),
        )
    }

    fn render_one(&self) -> String {
        format!(
            "Client configuration for {command}\n\
             (replace {KEY_PLACEHOLDER} with your key; VS Code asks for it instead)\n\
             \n\
             Claude Code:\n\
             {claude_code}\n\
             \n\
             Claude Desktop (claude_desktop_config.json) and Cursor (~/.cursor/mcp.json or .cursor/mcp.json):\n\
             {mcp_servers}\n\
             \n\
             VS Code (.vscode/mcp.json):\n\
             {vscode}\n",
            command = self.command,
            claude_code = self.claude_code(),
            mcp_servers = self.mcp_servers_json(),
            vscode = self.vscode_json(),
        )
    }

    fn env_with_key(&self, key: &str) -> BTreeMap<String, String> {
        let mut env: BTreeMap<String, String> = self.env.iter().cloned().collect();
        env.insert(API_KEY_VAR.to_owned(), key.to_owned());
        env
    }
}

fn pretty(value: &impl Serialize) -> String {
    // Plain structs of strings: serialization cannot fail.
    serde_json::to_string_pretty(value).unwrap_or_default()
}

// Structs rather than `json!`, so the fields keep the order people expect to read them in
// (a JSON map would sort them).
#[derive(Serialize)]
struct StdioServer<'a> {
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    command: &'a str,
    args: &'a [&'a str],
    env: BTreeMap<String, String>,
}

#[derive(Serialize)]
struct McpServersFile<'a> {
    #[serde(rename = "mcpServers")]
    mcp_servers: BTreeMap<&'static str, StdioServer<'a>>,
}

#[derive(Serialize)]
struct KeyPrompt {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'static str,
    description: &'static str,
    password: bool,
}

#[derive(Serialize)]
struct VsCodeFile<'a> {
    inputs: [KeyPrompt; 1],
    servers: BTreeMap<&'static str, StdioServer<'a>>,
}

/// The `tools` command: the tools/list result a client gets (`{"tools": [...]}`, one page:
/// the server does not paginate), pretty-printed with a trailing newline. Its `tools` array
/// is what `tests/snapshots/listings.json` holds.
pub(crate) fn tools_json(server: &HandingerServer) -> Result<String, serde_json::Error> {
    serde_json::to_string_pretty(&serde_json::json!({ "tools": server.tools() }))
        .map(|json| json + "\n")
}

/// Prints [`tools_json`]; a closed stdout (`tools | head`) ends the command quietly
/// ([`crate::console`]).
pub(crate) fn print_tools(server: &HandingerServer) -> Result<(), serde_json::Error> {
    crate::console::print(&tools_json(server)?);
    Ok(())
}

/// Quotes `word` for a POSIX shell when it holds anything but plainly safe characters.
fn shell_quote(word: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "_-./:=@%+,".contains(c);
    if !word.is_empty() && word.chars().all(safe) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::{Value, json};

    use super::*;

    fn policy(worker: Option<&str>) -> TaskPolicy {
        TaskPolicy {
            default_budget: Budget::Standard,
            max_budget: Budget::High,
            default_worker: worker.map(str::to_owned),
            max_wait: Duration::from_secs(50),
            progress_interval: Duration::from_secs(5),
            max_input_bytes: 1024,
            file_limits: crate::files::FileLimits {
                max_files: 10,
                max_file_bytes: 1024,
                max_total_bytes: 2048,
            },
            local_roots: None,
        }
    }

    #[test]
    fn defaults_add_nothing_but_the_key() {
        let config = ClientConfig::new(
            "/usr/local/bin/handinger-mcp".into(),
            DEFAULT_BASE_URL,
            &policy(None),
        );
        assert!(config.env.is_empty());
        assert_eq!(
            config.claude_code(),
            "claude mcp add handinger --scope user --env HANDINGER_API_KEY=YOUR_HANDINGER_API_KEY -- /usr/local/bin/handinger-mcp stdio"
        );
        let json: Value = serde_json::from_str(&config.mcp_servers_json()).unwrap();
        assert_eq!(
            json["mcpServers"]["handinger"]["env"],
            json!({"HANDINGER_API_KEY": KEY_PLACEHOLDER})
        );
        assert_eq!(
            json["mcpServers"]["handinger"]["command"],
            "/usr/local/bin/handinger-mcp"
        );
    }

    #[test]
    fn non_default_settings_travel_with_the_configuration() {
        let mut policy = policy(Some("wrk_1"));
        policy.max_budget = Budget::Unlimited;
        let config = ClientConfig::new("/bin/h".into(), "http://127.0.0.1:9", &policy);
        let vscode: Value = serde_json::from_str(&config.vscode_json()).unwrap();
        let env = &vscode["servers"]["handinger"]["env"];
        assert_eq!(env["HANDINGER_API_KEY"], "${input:handinger-api-key}");
        assert_eq!(env["HANDINGER_BASE_URL"], "http://127.0.0.1:9");
        assert_eq!(env["HANDINGER_MCP_WORKER_ID"], "wrk_1");
        assert_eq!(env["HANDINGER_MCP_MAX_BUDGET"], "unlimited");
        assert_eq!(vscode["inputs"][0]["password"], true);
        assert!(
            config
                .claude_code()
                .contains("--env HANDINGER_MCP_WORKER_ID=wrk_1")
        );
    }

    #[test]
    fn the_npx_form_runs_the_npm_package_with_the_same_settings() {
        let config = ClientConfig::new("/bin/h".into(), "http://127.0.0.1:9", &policy(None));
        let npx = config.via_npx();
        assert_eq!(
            npx.claude_code(),
            "claude mcp add handinger --scope user --env HANDINGER_API_KEY=YOUR_HANDINGER_API_KEY --env HANDINGER_BASE_URL=http://127.0.0.1:9 -- npx -y handinger-mcp stdio"
        );
        let json: Value = serde_json::from_str(&npx.mcp_servers_json()).unwrap();
        let server = &json["mcpServers"]["handinger"];
        assert_eq!(server["command"], "npx");
        assert_eq!(server["args"], json!(["-y", "handinger-mcp", "stdio"]));
        assert_eq!(server["env"]["HANDINGER_BASE_URL"], "http://127.0.0.1:9");
        let vscode: Value = serde_json::from_str(&npx.vscode_json()).unwrap();
        assert_eq!(
            vscode["servers"]["handinger"]["args"],
            json!(["-y", "handinger-mcp", "stdio"])
        );
        assert!(config.render().contains("npx: Claude Desktop and Cursor:"));
    }

    #[test]
    fn paths_with_spaces_and_quotes_are_quoted_for_the_shell() {
        assert_eq!(shell_quote("/opt/h mcp/bin"), "'/opt/h mcp/bin'");
        assert_eq!(shell_quote("/it's"), r"'/it'\''s'");
        assert_eq!(shell_quote("/plain/path-1.0"), "/plain/path-1.0");
        let config = ClientConfig::new(
            r"C:\Program Files\handinger-mcp.exe".into(),
            DEFAULT_BASE_URL,
            &policy(None),
        );
        // JSON escapes the backslashes; the parsed value is the path itself.
        let back: Value = serde_json::from_str(&config.mcp_servers_json()).unwrap();
        assert_eq!(
            back["mcpServers"]["handinger"]["command"],
            r"C:\Program Files\handinger-mcp.exe"
        );
    }
}
