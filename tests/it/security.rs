//! Regression tests of the threat model in docs/security.md: a hostile upstream (redirects,
//! file URLs, file names, file counts), hostile clients (sessions, repeated headers,
//! oversized or duplicate messages) and hostile local users (symlink swaps, FIFOs).

use crate::common;

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{any, get, post};
use common::fake::worker_answer;
use common::http::{run_to_exit, start_http};
use common::*;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// A bound that turns a hang into a failure.
const HANG: Duration = Duration::from_secs(60);

// ---------------------------------------------------------------------------------------
// A hostile upstream: an "API" that redirects, and a foreign host that records who came.

/// What a server saw: path and Authorization header of each request.
type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

fn remember(seen: &Seen, path: &str, headers: &HeaderMap) {
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    seen.lock().unwrap().push((path.to_owned(), auth));
}

async fn serve(app: Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    base
}

/// A foreign host: `/hop/{name}` redirects to `/final/{name}` on itself (the second foreign
/// hop, where the key used to come back), which serves the file; everything else answers.
async fn foreign_host() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let app = Router::new()
        .route(
            "/hop/{name}",
            any(
                |State(seen): State<Seen>, Path(name): Path<String>, headers: HeaderMap| async move {
                    remember(&seen, &format!("/hop/{name}"), &headers);
                    (StatusCode::FOUND, [("location", format!("/final/{name}"))]).into_response()
                },
            ),
        )
        .route(
            "/final/{name}",
            any(
                |State(seen): State<Seen>, Path(name): Path<String>, headers: HeaderMap| async move {
                    remember(&seen, &format!("/final/{name}"), &headers);
                    format!("content of {name}")
                },
            ),
        )
        .fallback(
            |State(seen): State<Seen>, uri: axum::http::Uri, headers: HeaderMap| async move {
                remember(&seen, uri.path(), &headers);
                "stolen"
            },
        )
        .with_state(seen.clone());
    (serve(app).await, seen)
}

#[derive(Clone)]
struct Hostile {
    foreign: String,
    /// The `files` of every answer (set once the API's own address is known).
    files: Arc<Mutex<Value>>,
    redirect_post: bool,
}

/// An API whose task POST answers (or redirects to the foreign host), whose task lookups
/// redirect there, and whose `/files/{name}` redirect to the foreign `/hop/{name}`.
async fn hostile_api(hostile: Hostile) -> String {
    let app = Router::new()
        .route(
            "/api/tasks",
            post(|State(h): State<Hostile>| async move {
                if h.redirect_post {
                    return (
                        StatusCode::TEMPORARY_REDIRECT,
                        [("location", format!("{}/steal", h.foreign))],
                    )
                        .into_response();
                }
                let mut answer = worker_answer("wrk_1", "done");
                answer["files"] = h.files.lock().unwrap().clone();
                axum::Json(answer).into_response()
            }),
        )
        .route(
            "/api/tasks/{id}",
            get(|State(h): State<Hostile>| async move {
                (
                    StatusCode::FOUND,
                    [("location", format!("{}/lookup", h.foreign))],
                )
            }),
        )
        .route(
            "/files/{name}",
            get(
                |State(h): State<Hostile>, Path(name): Path<String>| async move {
                    (
                        StatusCode::FOUND,
                        [("location", format!("{}/hop/{name}", h.foreign))],
                    )
                },
            ),
        )
        .with_state(hostile);
    serve(app).await
}

fn host_of(base: &str) -> String {
    base.trim_start_matches("http://").to_owned()
}

#[tokio::test]
async fn a_task_post_answered_with_a_redirect_is_an_error_and_goes_nowhere_else() {
    let (foreign, seen) = foreign_host().await;
    let api = hostile_api(Hostile {
        foreign: foreign.clone(),
        files: Arc::default(),
        redirect_post: true,
    })
    .await;
    let bridge = start(&api, &[]).await;
    let result = call(&bridge.client, "create_task", json!({"input": "hello"})).await;
    assert!(is_error(&result));
    assert!(text(&result).contains("redirect"), "{}", text(&result));
    let lookup = call(
        &bridge.client,
        "get_task",
        json!({"taskId": "tsk_01JZ0000000000000000000000"}),
    )
    .await;
    assert!(is_error(&lookup), "{}", text(&lookup));
    assert!(
        seen.lock().unwrap().is_empty(),
        "the foreign host was contacted: {:?}",
        seen.lock().unwrap()
    );
    assert!(!bridge.stderr.lock().unwrap().contains(API_KEY));
}

/// The task's result once its answer files, fetched in the background, are all settled.
async fn settled(
    bridge: &Bridge,
    created: &rmcp::model::CallToolResult,
) -> rmcp::model::CallToolResult {
    let task_id = structured(created)["taskId"].as_str().unwrap().to_owned();
    copies_settled(&bridge.client, &task_id).await
}

#[tokio::test]
async fn a_file_redirected_off_the_api_origin_is_fetched_without_the_key_at_every_hop() {
    let (foreign, seen) = foreign_host().await;
    let files: Arc<Mutex<Value>> = Arc::default();
    let api = hostile_api(Hostile {
        foreign: foreign.clone(),
        files: files.clone(),
        redirect_post: false,
    })
    .await;
    // The answer's file lives on the API origin, which redirects it to the foreign host.
    *files.lock().unwrap() = json!([{"filename": "a.txt", "mediaType": "text/plain", "url": format!("{api}/files/a.txt"), "size": 16}]);
    let dir = tempfile::tempdir().unwrap();
    let bridge = start(
        &api,
        &[
            "--download-dir",
            dir.path().to_str().unwrap(),
            "--allow-file-host",
            &host_of(&foreign),
        ],
    )
    .await;
    let created = call(&bridge.client, "create_task", json!({"input": "files"})).await;
    assert!(!is_error(&created), "{}", text(&created));
    let result = settled(&bridge, &created).await;
    let saved = std::fs::read_to_string(dir.path().join("a.txt")).unwrap();
    assert_eq!(
        saved, "content of a.txt",
        "redirects were followed to the file"
    );
    let uri = structured(&result)["files"][0]["resourceUri"]
        .as_str()
        .unwrap()
        .to_owned();
    bridge
        .client
        .read_resource(rmcp::model::ReadResourceRequestParams::new(uri))
        .await
        .unwrap();
    let seen = seen.lock().unwrap().clone();
    assert!(seen.iter().any(|(path, _)| path == "/final/a.txt"));
    for (path, auth) in &seen {
        assert_eq!(auth, &None, "{path} on the foreign host got credentials");
    }
}

// ---------------------------------------------------------------------------------------
// Answer contents are untrusted: file URLs, counts, sizes, names.

/// A listener that counts connections and never answers.
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

#[tokio::test]
async fn answer_files_on_private_addresses_are_never_fetched() {
    let fake = FakeHandinger::start().await;
    let local_service = FakeHandinger::start().await;
    local_service.serve_file_bytes("log", "text/plain", b"another service's secret");
    let (counter, connections) = connection_counter().await;
    fake.set_answer_files(json!([
        {"filename": "log.txt", "mediaType": "text/plain", "url": format!("{}/files/log", local_service.base_url), "size": 24},
        {"filename": "meta.txt", "mediaType": "text/plain", "url": format!("https://localhost:{}/latest", counter.port()), "size": 5},
        {"filename": "md.txt", "mediaType": "text/plain", "url": "https://169.254.169.254/latest/meta-data", "size": 5}
    ]));
    let dir = tempfile::tempdir().unwrap();
    let bridge = start(
        &fake.base_url,
        &["--download-dir", dir.path().to_str().unwrap()],
    )
    .await;
    let created = call(&bridge.client, "create_task", json!({"input": "files"})).await;
    let result = settled(&bridge, &created).await;
    let shown = text(&result);
    assert!(
        shown.contains("log.txt") && shown.contains("not fetched"),
        "{shown}"
    );
    assert!(shown.contains("--allow-file-host"), "{shown}");
    let uri = structured(&result)["files"][0]["resourceUri"]
        .as_str()
        .unwrap()
        .to_owned();
    let read = bridge
        .client
        .read_resource(rmcp::model::ReadResourceRequestParams::new(uri))
        .await;
    assert!(read.is_err(), "resources/read fetched a private address");
    assert!(
        local_service.received().is_empty(),
        "the local service was fetched"
    );
    assert_eq!(
        connections.load(Ordering::SeqCst),
        0,
        "a name resolving to loopback was connected to"
    );
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn answer_files_are_capped_per_answer_and_bad_names_refused() {
    let fake = FakeHandinger::start().await;
    let mut files = Vec::new();
    for n in 0..5 {
        fake.serve_file_bytes(&format!("f{n}"), "text/plain", &[b'x'; 1000]);
        files.push(json!({"filename": format!("f{n}.txt"), "mediaType": "text/plain", "url": format!("{}/files/f{n}", fake.base_url)}));
    }
    fake.serve_file_bytes("evil", "text/plain", b"x");
    files.push(json!({"filename": "evil\u{202e}txt.exe", "mediaType": "text/plain", "url": format!("{}/files/evil", fake.base_url)}));
    files.push(json!({"filename": "   ", "mediaType": "text/plain", "url": format!("{}/files/evil", fake.base_url)}));
    fake.set_answer_files(Value::Array(files));

    let dir = tempfile::tempdir().unwrap();
    let bridge = start(
        &fake.base_url,
        &[
            "--download-dir",
            dir.path().to_str().unwrap(),
            "--max-answer-files",
            "3",
            "--max-answer-bytes",
            "2500",
        ],
    )
    .await;
    let created = call(&bridge.client, "create_task", json!({"input": "files"})).await;
    let shown = text(&settled(&bridge, &created).await);
    let saved: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(saved.len(), 2, "the byte cap stops the third: {saved:?}");
    assert!(shown.contains("--max-answer-bytes"), "{shown}");
    assert!(shown.contains("--max-answer-files"), "{shown}");
    assert!(shown.contains("refused the file name"), "{shown}");
    assert!(
        !fake.received().iter().any(|r| r.path == "/files/evil"),
        "a refused name was fetched"
    );
}

#[tokio::test]
async fn a_download_dir_failure_says_why() {
    let fake = FakeHandinger::start().await;
    fake.serve_file_bytes("r", "text/csv", b"a,b");
    fake.set_answer_files(json!([{"filename": "r.csv", "mediaType": "text/csv", "url": format!("{}/files/r", fake.base_url)}]));
    let dir = tempfile::tempdir().unwrap();
    let download = dir.path().join("out");
    std::fs::create_dir(&download).unwrap();
    let bridge = start(
        &fake.base_url,
        &["--download-dir", download.to_str().unwrap()],
    )
    .await;
    // The directory goes away under the running server.
    std::fs::remove_dir(&download).unwrap();
    let created = call(&bridge.client, "create_task", json!({"input": "files"})).await;
    let shown = text(&settled(&bridge, &created).await);
    assert!(
        shown.contains("r.csv") && shown.contains("not saved in --download-dir"),
        "{shown}"
    );
}

// ---------------------------------------------------------------------------------------
// Sessions belong to whoever opened them; headers are checked whole.

const ALICE: &str = "hdg_live_alice_key";
const BOB: &str = "hdg_live_bob_key";

/// The protocol version the raw clients here speak.
const PROTOCOL: &str = "2025-06-18";

fn initialize_body() -> Value {
    rpc::initialize(1, PROTOCOL, "raw")
}

fn mcp_post(http: &reqwest::Client, url: &str, key: &str, body: &Value) -> reqwest::RequestBuilder {
    rpc::post(http, url)
        .header("x-handinger-api-key", key)
        .json(body)
}

#[tokio::test]
async fn a_session_is_404_for_other_credentials_and_stays_its_owners() {
    let fake = FakeHandinger::start().await;
    let bridge = start_http(&fake.base_url, &["--key-from-request"]).await;
    let http = common::http_client();
    let url = bridge.url("/mcp");
    let opened = mcp_post(&http, &url, ALICE, &initialize_body())
        .send()
        .await
        .unwrap();
    assert!(opened.status().is_success());
    let session = opened.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    drop(opened);
    let initialized = rpc::initialized();
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});

    // Bob holds Alice's session id: every way of using it finds no session.
    let posted = mcp_post(&http, &url, BOB, &list)
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 404);
    let resumed = http
        .get(&url)
        .header("x-handinger-api-key", BOB)
        .header("accept", "text/event-stream")
        .header("mcp-session-id", &session)
        .header("last-event-id", "0")
        .send()
        .await
        .unwrap();
    assert_eq!(resumed.status(), 404);
    let deleted = http
        .delete(&url)
        .header("x-handinger-api-key", BOB)
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 404);

    // Alice's session is untouched.
    let notified = mcp_post(&http, &url, ALICE, &initialized)
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert!(notified.status().is_success(), "{}", notified.status());
    let listed = mcp_post(&http, &url, ALICE, &list)
        .header("mcp-session-id", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200);
    let body = listed.text().await.unwrap();
    assert!(body.contains("create_task"), "{body}");
}

#[tokio::test]
async fn a_legacy_sse_session_is_404_for_other_credentials() {
    let fake = FakeHandinger::start().await;
    let bridge = start_http(&fake.base_url, &["--key-from-request"]).await;
    let http = common::http_client();
    let mut stream = http
        .get(bridge.url("/sse"))
        .header("x-handinger-api-key", ALICE)
        .send()
        .await
        .unwrap();
    let mut seen = String::new();
    let endpoint = loop {
        let chunk = tokio::time::timeout(HANG, stream.chunk())
            .await
            .unwrap()
            .unwrap()
            .expect("the endpoint event");
        seen.push_str(&String::from_utf8_lossy(&chunk));
        if let Some(line) = seen.lines().find(|l| l.starts_with("data: /message")) {
            break line.trim_start_matches("data: ").to_owned();
        }
    };
    let message = bridge.url(&endpoint);
    let posted = http
        .post(&message)
        .header("x-handinger-api-key", BOB)
        .json(&initialize_body())
        .send()
        .await
        .unwrap();
    assert_eq!(posted.status(), 404);
    let own = http
        .post(&message)
        .header("x-handinger-api-key", ALICE)
        .json(&initialize_body())
        .send()
        .await
        .unwrap();
    assert_eq!(own.status(), 202);
}

#[tokio::test]
async fn session_ids_are_not_logged_at_info() {
    let fake = FakeHandinger::start().await;
    let mut cmd = command(&fake.base_url, &["http", "--listen", "127.0.0.1:0"]);
    cmd.env("RUST_LOG", "info");
    let bridge = common::http::start_http_with(cmd).await;
    let opened = mcp_post(
        &common::http_client(),
        &bridge.url("/mcp"),
        ALICE,
        &initialize_body(),
    )
    .send()
    .await
    .unwrap();
    let session = opened.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let _ = opened.text().await;
    // A second request, so everything about the first has been logged by now.
    let _ = common::http_client()
        .get(bridge.url("/healthz"))
        .send()
        .await
        .unwrap()
        .text()
        .await;
    assert!(!bridge.log().contains(&session), "{}", bridge.log());
}

/// Sends a raw HTTP/1.1 request and returns the status line.
async fn raw_status(addr: &str, request: &str) -> String {
    let mut socket = tokio::net::TcpStream::connect(addr).await.unwrap();
    socket.write_all(request.as_bytes()).await.unwrap();
    let mut reader = BufReader::new(socket);
    let mut status = String::new();
    tokio::time::timeout(HANG, reader.read_line(&mut status))
        .await
        .unwrap()
        .unwrap();
    status
}

#[tokio::test]
async fn repeated_host_origin_or_authorization_headers_are_400_and_absolute_targets_are_checked() {
    let fake = FakeHandinger::start().await;
    let mut cmd = command(&fake.base_url, &["http", "--listen", "127.0.0.1:0"]);
    cmd.env(
        "HANDINGER_MCP_AUTH_TOKEN",
        "the-right-token-0123456789abcdef",
    );
    let bridge = common::http::start_http_with(cmd).await;
    let addr = bridge.authority().to_owned();
    let body = initialize_body().to_string();
    let request = |target: &str, headers: &str| {
        format!(
            "POST {target} HTTP/1.1\r\n{headers}Authorization: Bearer the-right-token-0123456789abcdef\r\nAccept: application/json, text/event-stream\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
    };
    let good_host = format!("Host: {addr}\r\n");
    let ok = raw_status(&addr, &request("/mcp", &good_host)).await;
    assert!(ok.contains(" 200"), "{ok}");
    for extra in [
        "Host: evil.example\r\n",
        "Origin: http://localhost\r\nOrigin: http://evil.example\r\n",
        "Authorization: Bearer wrong\r\n",
    ] {
        let status = raw_status(&addr, &request("/mcp", &format!("{good_host}{extra}"))).await;
        assert!(status.contains(" 400"), "{extra:?}: {status}");
    }
    let absolute = raw_status(&addr, &request("http://evil.example/mcp", &good_host)).await;
    assert!(absolute.contains(" 403"), "{absolute}");
}

// ---------------------------------------------------------------------------------------
// Local files: no race, no hang, limits on the bytes read.

#[tokio::test]
async fn a_subdirectory_swapped_for_a_symlink_never_sends_an_outside_file() {
    let fake = FakeHandinger::start().await;
    let allowed = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("file.txt"), b"OUTSIDE SECRET").unwrap();
    let sub = allowed.path().join("sub");
    let parked = allowed.path().join("parked");
    std::fs::create_dir(&sub).unwrap();
    std::fs::write(sub.join("file.txt"), b"inside").unwrap();
    let bridge = start(
        &fake.base_url,
        &["--allow-dir", allowed.path().to_str().unwrap()],
    )
    .await;

    // Another local user swaps `sub` for a symlink to the outside directory and back, as
    // fast as it can, while the calls run.
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = {
        let (stop, sub, parked, target) = (
            stop.clone(),
            sub.clone(),
            parked.clone(),
            outside.path().to_owned(),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let _ = std::fs::rename(&sub, &parked);
                let _ = std::os::unix::fs::symlink(&target, &sub);
                let _ = std::fs::remove_file(&sub);
                let _ = std::fs::rename(&parked, &sub);
            }
        })
    };
    let path = sub.join("file.txt").to_str().unwrap().to_owned();
    let mut sent = 0;
    for _ in 0..300 {
        let result = call(
            &bridge.client,
            "create_task",
            json!({"input": "race", "files": [{"path": path}]}),
        )
        .await;
        if !is_error(&result) {
            sent += 1;
        }
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    for post in fake.posts() {
        for upload in post.uploads {
            assert_eq!(upload.head, b"inside", "an outside file went up");
        }
    }
    assert!(sent > 0, "no call got through the race at all");
}

#[tokio::test]
async fn a_fifo_is_refused_at_once_and_the_server_stays_responsive() {
    let fake = FakeHandinger::start().await;
    let allowed = tempfile::tempdir().unwrap();
    let fifo = allowed.path().join("pipe");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let bridge = start(
        &fake.base_url,
        &["--allow-dir", allowed.path().to_str().unwrap()],
    )
    .await;
    let result = tokio::time::timeout(
        HANG,
        call(
            &bridge.client,
            "create_task",
            json!({"input": "x", "files": [{"path": fifo.to_str().unwrap()}]}),
        ),
    )
    .await
    .expect("the call on a FIFO answers instead of hanging");
    assert!(is_error(&result));
    assert!(
        text(&result).contains("not a regular file"),
        "{}",
        text(&result)
    );
    tokio::time::timeout(HANG, bridge.client.list_all_tools())
        .await
        .expect("tools/list answers")
        .unwrap();
    assert!(fake.posts().is_empty());
}

#[tokio::test]
async fn files_that_report_size_zero_are_limited_and_sent_by_what_they_hold() {
    let fake = FakeHandinger::start().await;
    let bridge = start(
        &fake.base_url,
        &["--allow-dir", "/proc/self", "--max-file-bytes", "64"],
    )
    .await;
    let refused = call(
        &bridge.client,
        "create_task",
        json!({"input": "x", "files": [{"path": "/proc/self/status"}]}),
    )
    .await;
    assert!(is_error(&refused));
    assert!(
        text(&refused).contains("--max-file-bytes"),
        "{}",
        text(&refused)
    );
    assert!(fake.posts().is_empty());

    let bridge = start(&fake.base_url, &["--allow-dir", "/proc/self"]).await;
    let sent = call(
        &bridge.client,
        "create_task",
        json!({"input": "x", "files": [{"path": "/proc/self/status"}]}),
    )
    .await;
    assert!(!is_error(&sent), "{}", text(&sent));
    let upload = fake.posts()[0].uploads[0].clone();
    assert!(upload.len > 0);
    assert_eq!(upload.len as usize, upload.head.len());
    assert!(upload.head.starts_with(b"Name:"));
}

// ---------------------------------------------------------------------------------------
// Protocol edges over stdio, spoken raw.

/// The raw stdio client these edges need, initialized as the HTTP cases are.
async fn raw_stdio(base_url: &str, args: &[&str]) -> rpc::RawStdio {
    rpc::RawStdio::start(command(base_url, args), PROTOCOL, HANG).await
}

#[tokio::test]
async fn a_stdio_message_over_the_cap_is_answered_with_an_error() {
    let fake = FakeHandinger::start().await;
    let mut raw = raw_stdio(&fake.base_url, &["--max-message-bytes", "2048"]).await;
    let big = rpc::tool_call(42, "create_task", json!({"input": "x".repeat(10_000)}));
    raw.send(&big).await;
    let answer = raw.answer_to(42).await;
    assert_eq!(answer["error"]["code"], -32700, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--max-message-bytes")
    );
    raw.send_line(r#"{"jsonrpc":"2.0","id":43,"method":"ping"}"#)
        .await;
    assert!(raw.answer_to(43).await.get("result").is_some());
    assert!(fake.posts().is_empty());
    let _ = raw.child.start_kill();
}

#[tokio::test]
async fn a_second_request_with_an_id_in_flight_is_refused_before_anything_is_sent() {
    let fake = FakeHandinger::start().await;
    fake.set_turn_duration(Duration::from_millis(500));
    let mut raw = raw_stdio(&fake.base_url, &[]).await;
    let call = |input: &str| rpc::tool_call(7, "create_task", json!({"input": input})).to_string();
    // Both in one write, so the second arrives while the first is in flight.
    raw.send_line(&format!("{}\n{}", call("first"), call("second")))
        .await;
    let refused = raw.answer_to(7).await;
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("still in flight"),
        "{refused}"
    );
    let answered = raw.answer_to(7).await;
    assert!(answered.get("result").is_some(), "{answered}");
    let posts = fake.posts();
    assert_eq!(posts.len(), 1, "both requests went upstream");
    assert_eq!(posts[0].body["input"], "first");
    let _ = raw.child.start_kill();
}

// ---------------------------------------------------------------------------------------
// Start-up.

#[tokio::test]
async fn a_base_url_with_credentials_is_refused_without_printing_the_password() {
    let mut cmd = command("https://user:hunter2@handinger.example", &[]);
    cmd.stdout(Stdio::null());
    let (status, stderr) = run_to_exit(cmd).await;
    assert!(!status.success());
    assert!(stderr.contains("credentials"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
    assert!(stderr.contains("****"), "{stderr}");
}
