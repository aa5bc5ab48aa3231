//! The official MCP Python SDK drives the real binary: in legacy (2025-11-25, declaring the
//! tasks extension as MCP Inspector does) and 2026-07-28 modes, over stdio and Streamable
//! HTTP, against the fake Handinger API. The scenarios are in `tests/python/clients.py`.
//!
//! The SDK is pinned in `.ci/requirements-clients.txt`; `.ci/python-clients.sh` installs it
//! into `.ci/venv-clients`, and `.ci/run` runs that before `cargo test`, so CI always has
//! it. `HANDINGER_MCP_TEST_PYTHON` points at another interpreter that has it. Without
//! either, these tests fail and name the command that installs it.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::http::start_http;
use common::*;

/// Bounds one scenario (an interpreter start, SDK import, a few calls): only a hang hits it.
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(180);

/// The interpreter with the SDK. Missing, the test fails and says how to install it: a test
/// that passes having run nothing asserts nothing.
fn python() -> PathBuf {
    if let Some(python) = std::env::var_os("HANDINGER_MCP_TEST_PYTHON") {
        return python.into();
    }
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".ci/venv-clients/bin/python");
    assert!(
        venv.exists(),
        "the official MCP Python SDK is not installed: run `bash .ci/python-clients.sh` (it \
         installs it into .ci/venv-clients), or point HANDINGER_MCP_TEST_PYTHON at an \
         interpreter that has it"
    );
    venv
}

/// A fake whose next task POST fails with a 500 before Handinger takes it: every scenario
/// opens with that tool error.
async fn fake_with_one_failure() -> FakeHandinger {
    let fake = FakeHandinger::start().await;
    fake.push_fault(Fault::Status {
        status: 500,
        message: "upstream exploded".into(),
        retry_after: None,
    });
    fake
}

/// Runs one scenario of clients.py; its output on failure.
async fn scenario(python: &Path, name: &str, fake: &FakeHandinger, mcp_url: Option<&str>) {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/clients.py");
    let mut cmd = tokio::process::Command::new(python);
    cmd.arg(&script)
        .arg(name)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env("HANDINGER_MCP_BIN", BINARY)
        .env("HANDINGER_BASE_URL", &fake.base_url)
        .env("HANDINGER_API_KEY", API_KEY)
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if let Some(url) = mcp_url {
        cmd.env("MCP_URL", url);
    }
    let output = tokio::time::timeout(SCENARIO_TIMEOUT, cmd.output())
        .await
        .unwrap_or_else(|_| panic!("scenario {name} hung"))
        .expect("run python");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains(&format!("{name}: ok")),
        "scenario {name} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
}

#[tokio::test]
async fn python_sdk_legacy_over_stdio_with_every_toolset() {
    let python = python();
    let fake = fake_with_one_failure().await;
    scenario(&python, "stdio-legacy", &fake, None).await;
    // Two create_task calls (one failed), one admin task round: two turns recorded.
    assert_eq!(fake.all_turns().values().map(Vec::len).sum::<usize>(), 2);
}

#[tokio::test]
async fn python_sdk_2026_07_28_over_stdio_with_mcp_tasks() {
    let python = python();
    let fake = fake_with_one_failure().await;
    scenario(&python, "stdio-modern", &fake, None).await;
    assert_eq!(
        fake.all_turns().len(),
        1,
        "the failed POST recorded no turn"
    );
}

#[tokio::test]
async fn python_sdk_legacy_over_http_sessions_closes_cleanly() {
    let python = python();
    let fake = fake_with_one_failure().await;
    let bridge = start_http(&fake.base_url, &[]).await;
    scenario(&python, "http-legacy", &fake, Some(&bridge.url("/mcp"))).await;
}

#[tokio::test]
async fn python_sdk_legacy_over_stateless_http() {
    let python = python();
    let fake = fake_with_one_failure().await;
    let bridge = start_http(&fake.base_url, &["--stateless"]).await;
    scenario(&python, "http-legacy", &fake, Some(&bridge.url("/mcp"))).await;
}

#[tokio::test]
async fn python_sdk_2026_07_28_over_http_with_mcp_tasks() {
    let python = python();
    let fake = fake_with_one_failure().await;
    let bridge = start_http(&fake.base_url, &[]).await;
    scenario(&python, "http-modern", &fake, Some(&bridge.url("/mcp"))).await;
}

#[tokio::test]
async fn python_sdk_auto_mode_over_http_settles_on_2026_07_28() {
    let python = python();
    let fake = fake_with_one_failure().await;
    let bridge = start_http(&fake.base_url, &["--stateless"]).await;
    scenario(&python, "http-auto", &fake, Some(&bridge.url("/mcp"))).await;
}
