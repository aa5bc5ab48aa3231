//! The setup commands, end to end: `doctor` against the fake Handinger API, and `tools`.

use crate::common;

use std::process::Output;

use common::*;
use serde_json::Value;

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn all_output(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// A port nothing listens on.
fn dead_base_url() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("http://127.0.0.1:{port}")
}

/// The JSON block printed after the line that starts with `heading`.
fn json_block(text: &str, heading: &str) -> Value {
    let mut lines = text.lines().skip_while(|l| !l.starts_with(heading)).skip(1);
    let mut block = String::new();
    for line in lines.by_ref() {
        block.push_str(line);
        block.push('\n');
        if line == "}" {
            break;
        }
    }
    serde_json::from_str(&block).unwrap_or_else(|e| panic!("{heading} block: {e}\n{block}"))
}

fn this_binary() -> String {
    std::fs::canonicalize(BINARY).unwrap().display().to_string()
}

#[tokio::test]
async fn doctor_passes_with_an_accepted_key_and_prints_paste_ready_configuration() {
    let fake = FakeHandinger::start().await;
    let output = run_to_completion(command(&fake.base_url, &["doctor"])).await;
    let text = stdout(&output);
    assert!(output.status.success(), "{}", all_output(&output));
    assert!(text.contains("ok       api key"), "{text}");
    assert!(text.contains("ok       key accepted"), "{text}");
    assert!(text.contains("ok       base url"), "{text}");
    assert!(!text.contains("PROBLEM"), "{text}");
    assert!(
        !all_output(&output).contains(API_KEY),
        "the key was printed"
    );

    // The check is one authenticated GET of an unknown task; nothing is created.
    let received = fake.received();
    assert_eq!(received.len(), 1, "{received:?}");
    assert_eq!(received[0].method, "GET");
    assert!(received[0].path.starts_with("/api/tasks/tsk_"));
    assert_eq!(
        received[0].authorization.as_deref(),
        Some(format!("Bearer {API_KEY}").as_str())
    );

    let exe = this_binary();
    let code_line = text
        .lines()
        .find(|l| l.starts_with("claude mcp add handinger"))
        .expect("a Claude Code command");
    assert!(code_line.contains(&exe), "{code_line}");
    assert!(code_line.contains("HANDINGER_API_KEY=YOUR_HANDINGER_API_KEY"));

    let desktop = json_block(&text, "Claude Desktop");
    let server = &desktop["mcpServers"]["handinger"];
    assert_eq!(server["command"], exe.as_str());
    assert_eq!(server["env"]["HANDINGER_API_KEY"], "YOUR_HANDINGER_API_KEY");
    assert_eq!(server["env"]["HANDINGER_BASE_URL"], fake.base_url.as_str());

    // The same through npx, for machines with Node.js and no binary on a path.
    let npx = json_block(&text, "npx: Claude Desktop");
    let server = &npx["mcpServers"]["handinger"];
    assert_eq!(server["command"], "npx");
    assert_eq!(
        server["args"],
        serde_json::json!(["-y", "handinger-mcp", "stdio"])
    );
    assert_eq!(server["env"]["HANDINGER_BASE_URL"], fake.base_url.as_str());
    assert!(
        text.lines()
            .any(|l| l.starts_with("claude mcp add handinger")
                && l.ends_with("-- npx -y handinger-mcp stdio")),
        "{text}"
    );

    let vscode = json_block(&text, "VS Code");
    assert_eq!(vscode["inputs"][0]["type"], "promptString");
    assert_eq!(vscode["inputs"][0]["password"], true);
    assert_eq!(
        vscode["servers"]["handinger"]["env"]["HANDINGER_API_KEY"],
        "${input:handinger-api-key}"
    );
}

#[tokio::test]
async fn doctor_reports_a_refused_key_without_printing_it() {
    let fake = FakeHandinger::start().await;
    let wrong_key = "hdg_live_wrong_7c1e99a0b3";
    let mut cmd = command(&fake.base_url, &["doctor"]);
    cmd.env("HANDINGER_API_KEY", wrong_key);
    let output = run_to_completion(cmd).await;
    let text = stdout(&output);
    assert!(!output.status.success(), "{text}");
    let problem = text
        .lines()
        .find(|l| l.starts_with("PROBLEM  key accepted"))
        .unwrap_or_else(|| panic!("no key problem in {text}"));
    assert!(problem.contains("HANDINGER_API_KEY"), "{problem}");
    assert!(problem.contains("401"), "{problem}");
    assert!(
        !all_output(&output).contains(wrong_key),
        "the key was printed"
    );
    assert!(
        !all_output(&output).contains("7c1e99a0b3"),
        "part of the key was printed"
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("doctor found 1 problem"));
}

#[tokio::test]
async fn doctor_reports_an_unreachable_api_and_what_to_check() {
    let output = run_to_completion(command(&dead_base_url(), &["doctor"])).await;
    let text = stdout(&output);
    assert!(!output.status.success(), "{text}");
    let problem = text
        .lines()
        .find(|l| l.starts_with("PROBLEM  base url"))
        .unwrap_or_else(|| panic!("no base URL problem in {text}"));
    assert!(problem.contains("unreachable"), "{problem}");
    assert!(problem.contains("HANDINGER_BASE_URL"), "{problem}");
    assert!(problem.contains("proxy"), "{problem}");
    assert!(text.contains("skipped  key accepted"), "{text}");
    assert!(!all_output(&output).contains(API_KEY));
}

#[tokio::test]
async fn doctor_checks_the_default_worker_exists() {
    let fake = FakeHandinger::start().await;
    let output = run_to_completion(command(
        &fake.base_url,
        &["doctor", "--worker-id", "wrk_gone-1"],
    ))
    .await;
    let text = stdout(&output);
    assert!(!output.status.success(), "{text}");
    let problem = text
        .lines()
        .find(|l| l.starts_with("PROBLEM  default worker"))
        .unwrap_or_else(|| panic!("no worker problem in {text}"));
    assert!(
        problem.contains("wrk_gone-1") && problem.contains("404"),
        "{problem}"
    );
    assert!(problem.contains("HANDINGER_MCP_WORKER_ID"), "{problem}");
    assert!(
        fake.received()
            .iter()
            .any(|r| r.path == "/api/workers/wrk_gone-1")
    );

    fake.add_worker("wrk_here-1");
    let mut cmd = command(&fake.base_url, &["doctor"]);
    cmd.env("HANDINGER_MCP_WORKER_ID", "wrk_here-1");
    let output = run_to_completion(cmd).await;
    let text = stdout(&output);
    assert!(output.status.success(), "{}", all_output(&output));
    assert!(
        text.contains("ok       default worker: wrk_here-1 exists"),
        "{text}"
    );
    let desktop = json_block(&text, "Claude Desktop");
    assert_eq!(
        desktop["mcpServers"]["handinger"]["env"]["HANDINGER_MCP_WORKER_ID"], "wrk_here-1",
        "the pasted configuration keeps the worker"
    );
}

#[tokio::test]
async fn doctor_runs_without_a_key_and_says_how_to_set_one() {
    let fake = FakeHandinger::start().await;
    let mut cmd = command(&fake.base_url, &["doctor"]);
    cmd.env_remove("HANDINGER_API_KEY");
    let output = run_to_completion(cmd).await;
    let text = stdout(&output);
    assert!(!output.status.success(), "{text}");
    assert!(
        text.contains("PROBLEM  api key: HANDINGER_API_KEY is not set"),
        "{text}"
    );
    assert!(
        text.contains("ok       base url"),
        "reachability is still checked: {text}"
    );
    assert!(text.contains("skipped  key accepted"), "{text}");
    assert!(
        text.contains("claude mcp add handinger"),
        "configuration still printed"
    );
}

#[tokio::test]
async fn doctor_shows_proxy_settings_with_credentials_masked() {
    let fake = FakeHandinger::start().await;
    let mut cmd = command(&fake.base_url, &["doctor"]);
    cmd.env("HTTP_PROXY", "http://proxyuser:proxypass@127.0.0.1:9")
        .env("https_proxy", "http://proxyuser:proxypass@127.0.0.1:9")
        .env("NO_PROXY", "localhost,127.0.0.1");
    let output = run_to_completion(cmd).await;
    let text = stdout(&output);
    assert!(
        output.status.success(),
        "NO_PROXY lets the fake be reached: {text}"
    );
    let proxy = text
        .lines()
        .find(|l| l.starts_with("info     proxy"))
        .unwrap_or_else(|| panic!("no proxy line in {text}"));
    assert!(
        proxy.contains("HTTP_PROXY=http://****:****@127.0.0.1:9"),
        "{proxy}"
    );
    assert!(proxy.contains("https_proxy="), "{proxy}");
    assert!(proxy.contains("NO_PROXY=localhost,127.0.0.1"), "{proxy}");
    assert!(proxy.contains("reached directly"), "{proxy}");
    let everything = all_output(&output);
    assert!(!everything.contains("proxypass") && !everything.contains("proxyuser"));
}

#[tokio::test]
async fn tools_prints_the_snapshot_without_a_key_or_network() {
    let mut cmd = tokio::process::Command::new(BINARY);
    cmd.arg("tools")
        .env_clear()
        .env("HANDINGER_BASE_URL", dead_base_url());
    let output = run_to_completion(cmd).await;
    assert!(output.status.success(), "{}", all_output(&output));
    // A tools/list result, whose `tools` array is the reviewed snapshot.
    let printed: Value = serde_json::from_slice(&output.stdout).unwrap();
    let snapshot = snapshots::expected_json(&snapshots::DEFAULT).await;
    assert_eq!(
        printed,
        serde_json::json!({ "tools": snapshot }),
        "`handinger-mcp tools` is not {{\"tools\": <the default listing's snapshots>}}"
    );
    assert!(
        stdout(&output).ends_with("}\n"),
        "one JSON document and a newline"
    );
}

#[tokio::test]
async fn tools_reflects_the_current_settings_and_serving_still_needs_a_key() {
    // With a key and other settings, the listing is still the reviewed one.
    let fake = FakeHandinger::start().await;
    let output = run_to_completion(command(
        &fake.base_url,
        &["tools", "--max-budget", "low", "--default-budget", "low"],
    ))
    .await;
    assert!(output.status.success(), "{}", all_output(&output));
    let listed: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(listed["tools"][0]["name"], "create_task");
    assert!(fake.received().is_empty(), "tools made a call");

    // Only doctor and tools start without a key.
    let output = run_to_completion({
        let mut cmd = tokio::process::Command::new(BINARY);
        cmd.arg("stdio").env_clear();
        cmd
    })
    .await;
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("HANDINGER_API_KEY is not set"));
}
