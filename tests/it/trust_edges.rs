//! The last trust edges, each driven from outside against the real binary: an allowed file
//! host is allowed on its port only, ids are never dot segments, `/readyz` keeps the API's
//! address for the token holder and the log, upstream text is escaped in the log, answer
//! file names that look like others are refused, and a refused file fetch names the file
//! host and the reason. Each test failed on the code before its fix (docs/security.md).

use crate::common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::http::start_http;
use common::*;
use serde_json::{Value, json};

/// A listener on loopback that counts connections and answers none: another service on
/// this machine, whose port must stay out of reach.
async fn connection_counter() -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    (addr, count)
}

/// A port nothing listens on.
fn dead_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The task's result once its answer files, fetched in the background, are all settled.
async fn settled(bridge: &Bridge, created: &rmcp::model::CallToolResult) -> String {
    assert!(!is_error(created), "{}", text(created));
    let task_id = structured(created)["taskId"].as_str().unwrap().to_owned();
    text(&copies_settled(&bridge.client, &task_id).await)
}

/// The line of a result's text that names `file`.
fn line_of<'a>(shown: &'a str, file: &str) -> &'a str {
    shown
        .lines()
        .find(|l| l.contains(file) && (l.contains("not") || l.contains("refused")))
        .unwrap_or_else(|| panic!("no line about {file} in:\n{shown}"))
}

fn saved_names(dir: &tempfile::TempDir) -> Vec<String> {
    std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect()
}

// ---------------------------------------------------------------------------------------
// --allow-file-host: the port is part of the entry.

#[tokio::test]
async fn an_allowed_file_host_is_allowed_on_its_own_port_only() {
    let fake = FakeHandinger::start().await;
    let files = FakeHandinger::start().await;
    files.serve_file_bytes("ok", "text/plain", b"the allowed file");
    let files_port = files.base_url.rsplit(':').next().unwrap().to_owned();
    // Another TLS service on the same host: its port is not the allowed one.
    let (other, connections) = connection_counter().await;
    fake.set_answer_files(json!([
        {"filename": "ok.txt", "mediaType": "text/plain", "url": format!("http://localhost:{files_port}/files/ok"), "size": 16},
        {"filename": "secrets.txt", "mediaType": "text/plain", "url": format!("https://localhost:{}/admin/secrets", other.port()), "size": 5},
        {"filename": "plain.txt", "mediaType": "text/plain", "url": format!("http://localhost:{}/admin/secrets", other.port()), "size": 5}
    ]));
    let dir = tempfile::tempdir().unwrap();
    let allowed = format!("localhost:{files_port}");
    let bridge = start(
        &fake.base_url,
        &[
            "--download-dir",
            dir.path().to_str().unwrap(),
            "--allow-file-host",
            &allowed,
        ],
    )
    .await;
    let created = call(&bridge.client, "create_task", json!({"input": "files"})).await;
    let shown = settled(&bridge, &created).await;
    assert_eq!(saved_names(&dir), vec!["ok.txt".to_owned()], "{shown}");
    let refused = line_of(&shown, "secrets.txt");
    assert!(
        refused.contains(&format!("localhost:{}", other.port()))
            && refused.contains("--allow-file-host"),
        "the refusal names the origin and the flag: {refused}"
    );

    // An entry without a port allows the scheme's default port only.
    let dir = tempfile::tempdir().unwrap();
    let portless = start(
        &fake.base_url,
        &[
            "--download-dir",
            dir.path().to_str().unwrap(),
            "--allow-file-host",
            "localhost",
        ],
    )
    .await;
    let created = call(&portless.client, "create_task", json!({"input": "files"})).await;
    let shown = settled(&portless, &created).await;
    assert!(saved_names(&dir).is_empty(), "{shown}");
    line_of(&shown, "secrets.txt");

    // resources/read of the other service's file fails too.
    let uri = structured(&created)["files"][1]["resourceUri"]
        .as_str()
        .unwrap()
        .to_owned();
    let read = portless
        .client
        .read_resource(rmcp::model::ReadResourceRequestParams::new(uri))
        .await;
    assert!(read.is_err(), "resources/read fetched another port");
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "a port that is not allowed was connected to"
    );
}

// ---------------------------------------------------------------------------------------
// Ids are path segments: never `.` or `..`.

#[tokio::test]
async fn dot_ids_are_refused_before_anything_reaches_handinger() {
    let fake = FakeHandinger::start().await;
    let bridge = start(&fake.base_url, &["--toolsets", "all,admin"]).await;
    let cases = [
        ("get_task", json!({"taskId": "."}), "taskId"),
        ("get_task", json!({"taskId": ".."}), "taskId"),
        ("archive_task", json!({"taskId": "."}), "taskId"),
        (
            "create_task",
            json!({"input": "follow up", "taskId": "."}),
            "taskId",
        ),
        ("delete_worker", json!({"workerId": "."}), "workerId"),
        ("get_worker", json!({"workerId": "."}), "workerId"),
        ("list_schedules", json!({"workerId": "."}), "workerId"),
        (
            "cancel_schedule",
            json!({"workerId": ".", "scheduleId": "."}),
            "workerId",
        ),
        (
            "cancel_schedule",
            json!({"workerId": "wrk_1", "scheduleId": "."}),
            "scheduleId",
        ),
    ];
    for (tool, arguments, names) in cases {
        let result = call(&bridge.client, tool, arguments.clone()).await;
        let shown = text(&result);
        assert!(is_error(&result), "{tool} {arguments}: {shown}");
        assert!(
            shown.contains(names) && shown.contains("dot segment"),
            "{tool} {arguments}: the error names the argument and says why: {shown}"
        );
    }
    assert!(
        fake.received().is_empty(),
        "requests reached Handinger: {:?}",
        fake.received()
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect::<Vec<_>>()
    );
}

// ---------------------------------------------------------------------------------------
// /readyz: the reason in detail for the token holder and the log only.

const TOKEN: &str = "readiness-token-0123456789";

#[tokio::test]
async fn readyz_names_the_api_address_only_to_the_token_holder_and_the_log() {
    let port = dead_port();
    let base = format!("http://127.0.0.1:{port}");
    let address = format!("127.0.0.1:{port}");
    let bridge = start_http(&base, &["--auth-token", TOKEN]).await;
    let http = common::http_client();
    let readyz = bridge.url("/readyz");

    let anonymous = http.get(&readyz).send().await.unwrap();
    assert_eq!(anonymous.status(), 503);
    let said = anonymous.text().await.unwrap();
    assert!(!said.contains(&address), "told anyone: {said}");
    assert!(said.contains("Handinger"), "{said}");

    let foreign = http
        .get(&readyz)
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 503);
    let said = foreign.text().await.unwrap();
    assert!(!said.contains(&address), "told a foreign Host: {said}");

    let wrong = http
        .get(&readyz)
        .bearer_auth("not-the-token")
        .send()
        .await
        .unwrap();
    assert_eq!(
        wrong.status(),
        401,
        "a wrong token is refused as on /metrics"
    );

    let holder = http.get(&readyz).bearer_auth(TOKEN).send().await.unwrap();
    assert_eq!(holder.status(), 503);
    let said = holder.text().await.unwrap();
    assert!(
        said.contains(&address),
        "the token holder gets details: {said}"
    );
    assert!(bridge.log().contains(&address), "{}", bridge.log());

    // Without a token set, a Host this server does not answer still gets no details.
    let open = start_http(&base, &[]).await;
    let foreign = http
        .get(open.url("/readyz"))
        .header("host", "evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status(), 503);
    let said = foreign.text().await.unwrap();
    assert!(!said.contains(&address), "told a foreign Host: {said}");
}

// ---------------------------------------------------------------------------------------
// Upstream text in the log: escaped, never raw lines or terminal sequences.

#[tokio::test]
async fn upstream_error_text_cannot_forge_log_lines_or_send_escape_sequences() {
    let fake = FakeHandinger::start().await;
    let forged = "2026-12-07T00:00:00.000000Z  INFO handinger_mcp: forged line";
    fake.push_fault(Fault::Status {
        status: 400,
        message: format!("bad input\n{forged}\r\u{1b}[2J\u{1b}]0;owned\u{7}\u{2028}end"),
        retry_after: None,
    });
    let bridge = start(&fake.base_url, &[]).await;
    let result = call(&bridge.client, "create_task", json!({"input": "x"})).await;
    assert!(is_error(&result), "{}", text(&result));
    let log = poll::until(
        "the failed call is logged",
        std::time::Duration::from_millis(50),
        || async {
            let log = bridge.stderr.lock().unwrap().clone();
            if log.contains("forged line") {
                Ok(log)
            } else {
                Err(log)
            }
        },
    )
    .await;
    assert!(
        !log.lines().any(|l| l.starts_with(forged)),
        "a forged line reached the log:\n{log}"
    );
    assert!(
        !log.contains(['\u{1b}', '\u{7}', '\r', '\u{2028}']),
        "raw control characters reached the log:\n{log:?}"
    );
}

// ---------------------------------------------------------------------------------------
// File names that look like other names.

#[tokio::test]
async fn look_alike_answer_file_names_are_refused_like_direction_marks() {
    let fake = FakeHandinger::start().await;
    fake.serve_file_bytes("x", "text/plain", b"x");
    let names = [
        "invoice\u{2024}pdf",  // ONE DOT LEADER, shown as "invoice.pdf"
        "a\u{2215}b.txt",      // DIVISION SLASH, shown as "a/b.txt"
        "a\u{2044}b.txt",      // FRACTION SLASH
        "a\u{ff0f}b.txt",      // FULLWIDTH SOLIDUS
        "word\u{2060}joiner",  // WORD JOINER, invisible
        "line\u{2028}sep.txt", // LINE SEPARATOR
        "soft\u{ad}hyphen",    // SOFT HYPHEN, invisible
    ];
    let files: Vec<Value> = names
        .iter()
        .map(|name| json!({"filename": name, "mediaType": "text/plain", "url": format!("{}/files/x", fake.base_url)}))
        .collect();
    fake.set_answer_files(Value::Array(files));
    let dir = tempfile::tempdir().unwrap();
    let bridge = start(
        &fake.base_url,
        &["--download-dir", dir.path().to_str().unwrap()],
    )
    .await;
    let created = call(&bridge.client, "create_task", json!({"input": "files"})).await;
    let shown = settled(&bridge, &created).await;
    assert!(
        saved_names(&dir).is_empty(),
        "saved: {:?}",
        saved_names(&dir)
    );
    assert_eq!(
        shown.matches("refused the file name").count(),
        names.len(),
        "{shown}"
    );
    assert!(
        !fake.received().iter().any(|r| r.path == "/files/x"),
        "a refused name was fetched"
    );
}

// ---------------------------------------------------------------------------------------
// A refused file fetch says which host and why, not "could not connect to Handinger".

#[tokio::test]
async fn a_refused_file_fetch_names_the_file_host_and_the_reason() {
    let fake = FakeHandinger::start().await;
    let (other, connections) = connection_counter().await;
    // An allowed file host that has no such file: its 404 is its own, not Handinger's.
    let files = FakeHandinger::start().await;
    fake.set_answer_files(json!([
        {"filename": "meta.txt", "mediaType": "text/plain", "url": format!("https://localhost:{}/latest", other.port()), "size": 5},
        {"filename": "gone.txt", "mediaType": "text/plain", "url": format!("{}/files/gone", files.base_url), "size": 5}
    ]));
    let dir = tempfile::tempdir().unwrap();
    let files_host = files.base_url.trim_start_matches("http://").to_owned();
    let bridge = start(
        &fake.base_url,
        &[
            "--download-dir",
            dir.path().to_str().unwrap(),
            "--allow-file-host",
            &files_host,
        ],
    )
    .await;
    let created = call(&bridge.client, "create_task", json!({"input": "files"})).await;
    let shown = settled(&bridge, &created).await;
    let line = line_of(&shown, "meta.txt");
    assert!(
        !line.contains("could not connect to Handinger") && !line.contains(&fake.base_url),
        "blames Handinger: {line}"
    );
    assert!(
        line.contains("localhost") && line.contains("non-public"),
        "names the file host and the reason: {line}"
    );
    assert_eq!(connections.load(Ordering::SeqCst), 0);
    let line = line_of(&shown, "gone.txt");
    assert!(
        line.contains(&format!("file host {}", files.base_url))
            && line.contains("HTTP 404")
            && !line.contains("Handinger answered"),
        "names the file host, whose 404 it is: {line}"
    );
}
