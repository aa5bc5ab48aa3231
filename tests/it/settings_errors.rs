//! Start-up settings a person gets wrong: the message must name where the bad value came
//! from (a flag or an environment variable) and what is accepted; `--listen` takes names.

use crate::common;

use common::http::start_http_with;
use common::*;

fn stderr(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// A URL nothing listens on: these runs must not need Handinger.
const NOWHERE: &str = "http://127.0.0.1:9";

#[tokio::test]
async fn a_bad_environment_value_names_the_variable_not_the_flag() {
    let mut cmd = command(NOWHERE, &["tools"]);
    cmd.env("HANDINGER_MCP_MAX_WAIT", "soon");
    let output = run_to_completion(cmd).await;
    let text = stderr(&output);
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("HANDINGER_MCP_MAX_WAIT"), "{text}");
    assert!(text.contains("'soon'"), "the value is shown: {text}");
    assert!(!text.contains("<MAX_WAIT>"), "blames the flag: {text}");

    // A value from a list keeps clap's list of what is accepted.
    let mut cmd = command(NOWHERE, &["tools"]);
    cmd.env("HANDINGER_MCP_MAX_BUDGET", "huge");
    let output = run_to_completion(cmd).await;
    let text = stderr(&output);
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("HANDINGER_MCP_MAX_BUDGET"), "{text}");
    assert!(text.contains("unlimited"), "lists the budgets: {text}");

    // A subcommand's variable too.
    let mut cmd = command(NOWHERE, &["http"]);
    cmd.env("HANDINGER_MCP_LISTEN", "here");
    let output = run_to_completion(cmd).await;
    let text = stderr(&output);
    assert!(!output.status.success(), "{text}");
    assert!(
        text.contains("HANDINGER_MCP_LISTEN") && text.contains("HOST:PORT"),
        "{text}"
    );
}

#[tokio::test]
async fn a_bad_flag_value_still_names_the_flag() {
    // The variable is set too, but the flag is what clap read.
    let mut cmd = command(NOWHERE, &["tools", "--max-wait", "soon"]);
    cmd.env("HANDINGER_MCP_MAX_WAIT", "30");
    let output = run_to_completion(cmd).await;
    let text = stderr(&output);
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("--max-wait"), "{text}");
    assert!(!text.contains("HANDINGER_MCP_MAX_WAIT"), "{text}");
}

#[tokio::test]
async fn listen_takes_a_host_name_and_says_what_it_accepts() {
    let fake = FakeHandinger::start().await;
    let bridge = start_http_with(command(
        &fake.base_url,
        &["http", "--listen", "localhost:0"],
    ))
    .await;
    assert!(
        bridge.base.starts_with("http://127.0.0.1:"),
        "localhost is the IPv4 loopback: {}",
        bridge.base
    );
    let health = common::http_client()
        .get(bridge.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);

    let output = run_to_completion(command(NOWHERE, &["http", "--listen", "localhost"])).await;
    let text = stderr(&output);
    assert!(!output.status.success(), "{text}");
    assert!(
        text.contains("--listen") && text.contains("IP:PORT") && text.contains("no port"),
        "{text}"
    );
}

/// The shared store's secret: too short, given twice, or in a file that is too large or
/// missing, each refused at start-up with what to do; read from a file, it works.
#[tokio::test]
async fn the_store_secret_is_checked_where_it_comes_from() {
    let dir = tempfile::tempdir().unwrap();
    let refused = |setup: &dyn Fn(&mut tokio::process::Command), expected: &'static str| {
        let mut cmd = command(NOWHERE, &["--store", "redis://127.0.0.1:9/0", "tools"]);
        cmd.env_remove("HANDINGER_MCP_STORE_SECRET");
        setup(&mut cmd);
        async move {
            let output = run_to_completion(cmd).await;
            let text = stderr(&output);
            assert!(!output.status.success(), "{text}");
            assert!(text.contains(expected), "expected {expected:?}: {text}");
            assert!(
                !text.contains("too-short"),
                "the secret is never shown: {text}"
            );
        }
    };
    refused(
        &|cmd| {
            cmd.env("HANDINGER_MCP_STORE_SECRET", "too-short");
        },
        "shorter than 16 bytes",
    )
    .await;
    let file = dir.path().join("secret");
    std::fs::write(&file, "a-file-secret-of-enough-length\n").unwrap();
    let both = file.clone();
    refused(
        &move |cmd| {
            cmd.env("HANDINGER_MCP_STORE_SECRET", "another-secret-long-enough")
                .env("HANDINGER_MCP_STORE_SECRET_FILE", &both);
        },
        "keep one",
    )
    .await;
    let large = dir.path().join("large");
    std::fs::write(&large, "x".repeat(5000)).unwrap();
    refused(
        &move |cmd| {
            cmd.env("HANDINGER_MCP_STORE_SECRET_FILE", &large);
        },
        "larger than 4096 bytes",
    )
    .await;
    let missing = dir.path().join("missing");
    refused(
        &move |cmd| {
            cmd.env("HANDINGER_MCP_STORE_SECRET_FILE", &missing);
        },
        "could not be read",
    )
    .await;

    let mut from_file = command(NOWHERE, &["--store", "redis://127.0.0.1:9/0", "tools"]);
    from_file
        .env_remove("HANDINGER_MCP_STORE_SECRET")
        .env("HANDINGER_MCP_STORE_SECRET_FILE", &file);
    let output = run_to_completion(from_file).await;
    assert!(output.status.success(), "{}", stderr(&output));
}

/// `--oauth-issuer` runs calls on the server's key; asking for keys from requests too left
/// a server with no key at all, failing every call. It is refused with what to drop.
#[tokio::test]
async fn an_issuer_with_keys_from_requests_is_refused_with_what_to_drop() {
    let cmd = command(
        NOWHERE,
        &[
            "http",
            "--oauth-issuer",
            "https://login.example.com",
            "--public-url",
            "https://mcp.example.com",
            "--key-from-request",
        ],
    );
    let output = run_to_completion(cmd).await;
    let text = stderr(&output);
    assert!(!output.status.success(), "{text}");
    assert!(text.contains("drop --key-from-request"), "{text}");
}
