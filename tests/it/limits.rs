//! The server's bounds under slow, idle and abusive clients (docs/limits.md): connections,
//! request heads and bodies, keep-alive, bodies held, sessions, the rate limit per address,
//! and a broken TLS setup that must not stop the server from starting; and one address (or
//! a few) against everyone else (docs/security.md): connections and half-open ones per
//! address, the probe listener, a full session table, sessions never used, token guessing.
//!
//! Every bound is set small by its flag; every wait on the server is bounded by
//! [`PATIENCE`], so a bound that does not hold fails the test instead of stalling it.

use crate::common;

use std::time::Duration;

use common::http::{HttpBridge, start_http};
use common::*;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Bounds every wait on the server.
const PATIENCE: Duration = Duration::from_secs(20);

fn initialize_body() -> Value {
    rpc::initialize(1, "2025-11-25", "limits-test")
}

/// A reqwest client whose connections come from `source` (any 127.x address is loopback
/// on Linux), so one test can act as several client addresses.
fn http_from(source: [u8; 4]) -> reqwest::Client {
    common::http_client_builder()
        .local_address(std::net::IpAddr::from(source))
        .build()
        .unwrap()
}

fn initialize(client: &reqwest::Client, bridge: &HttpBridge) -> reqwest::RequestBuilder {
    rpc::post(client, &bridge.url("/mcp")).json(&initialize_body())
}

async fn connect(bridge: &HttpBridge) -> TcpStream {
    TcpStream::connect(bridge.authority()).await.unwrap()
}

/// Everything the server sends until it closes the connection (a reset counts as closed).
async fn read_until_closed(stream: &mut TcpStream) -> String {
    let mut received = Vec::new();
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(PATIENCE, read)
        .await
        .expect("the server closes the connection");
    String::from_utf8_lossy(&received).into_owned()
}

fn get(path: &str, bridge: &HttpBridge, close: bool) -> String {
    format!(
        "GET {path} HTTP/1.1\r\nhost: {}\r\n{}\r\n",
        bridge.authority(),
        if close { "connection: close\r\n" } else { "" }
    )
}

#[tokio::test]
async fn connections_beyond_the_cap_are_refused_and_probes_still_answer() {
    let fake = FakeHandinger::start().await;
    let bridge = start_http(
        &fake.base_url,
        &[
            "--max-connections",
            "4",
            "--probe-connections",
            "2",
            "--header-read-timeout",
            "600",
        ],
    )
    .await;
    // Four connections that send nothing fill the cap. The server accepts in order, so
    // everything opened after them is counted after them. Each comes from an address of
    // its own, as many clients would: the bounds per address are not what this is about.
    let mut idle = Vec::new();
    for last in 2..6 {
        idle.push(connect_from(&bridge, [127, 0, 0, last]).await);
    }
    let mut probe_band_mcp = connect_from(&bridge, [127, 0, 0, 6]).await;
    let mut probe_band_health = connect_from(&bridge, [127, 0, 0, 7]).await;
    let mut refused = connect_from(&bridge, [127, 0, 0, 8]).await;

    let answer = read_until_closed(&mut refused).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("--max-connections"), "{answer}");

    probe_band_health
        .write_all(get("/healthz", &bridge, false).as_bytes())
        .await
        .unwrap();
    let answer = read_until_closed(&mut probe_band_health).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("ok\n"), "{answer}");

    let body = serde_json::to_string(&initialize_body()).unwrap();
    let request = format!(
        "POST /mcp HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\n\
         accept: application/json, text/event-stream\r\ncontent-length: {}\r\n\r\n{body}",
        bridge.authority(),
        body.len()
    );
    probe_band_mcp.write_all(request.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut probe_band_mcp).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.to_lowercase().contains("retry-after: 1"), "{answer}");
    assert!(answer.contains("--max-connections"), "{answer}");

    // Closing connections gives their places back.
    drop(idle);
    let client = common::http_client();
    poll::until("no place came back", Duration::from_millis(50), || async {
        match initialize(&client, &bridge).send().await {
            Ok(response) if response.status() == 200 => Ok(()),
            Ok(response) => Err(response.status().to_string()),
            Err(error) => Err(error.to_string()),
        }
    })
    .await;
    assert!(fake.posts().is_empty());
}

#[tokio::test]
async fn silent_and_trickling_request_heads_are_cut_after_the_header_timeout() {
    let fake = FakeHandinger::start().await;
    let bridge = start_http(&fake.base_url, &["--header-read-timeout", "1"]).await;

    let mut silent = connect(&bridge).await;
    assert_eq!(read_until_closed(&mut silent).await, "");

    // A head that keeps arriving, one byte at a time, never completes: the timer runs from
    // its first byte, not from the last.
    let stream = connect(&bridge).await;
    let (mut reader, mut writer) = stream.into_split();
    let trickle = tokio::spawn(async move {
        writer.write_all(b"POST /mcp HTTP/1.1\r\n").await?;
        loop {
            writer.write_all(b"x").await?;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        #[allow(unreachable_code)]
        Ok::<(), std::io::Error>(())
    });
    let mut buf = [0u8; 256];
    let closed = tokio::time::timeout(PATIENCE, async {
        loop {
            match reader.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the trickling connection was not closed");
    let writer_ended = tokio::time::timeout(PATIENCE, trickle).await;
    assert!(
        writer_ended.is_ok_and(|r| r.unwrap().is_err()),
        "writes to the closed connection fail"
    );

    // The server itself is fine.
    let response = common::http_client()
        .get(bridge.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_trickling_request_body_gets_408_after_the_body_timeout() {
    let fake = FakeHandinger::start().await;
    let bridge = start_http(&fake.base_url, &["--body-read-timeout", "1"]).await;
    let mut stream = connect(&bridge).await;
    let head = format!(
        "POST /mcp HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\n\
         accept: application/json, text/event-stream\r\ncontent-length: 1000\r\n\r\n{{",
        bridge.authority()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let answer = tokio::time::timeout(PATIENCE, async {
        let mut received = Vec::new();
        let mut buf = [0u8; 1024];
        loop {
            tokio::select! {
                read = stream.read(&mut buf) => match read {
                    Ok(0) | Err(_) => break,
                    Ok(n) => received.extend_from_slice(&buf[..n]),
                },
                () = tokio::time::sleep(Duration::from_millis(100)) => {
                    // One more byte of the body, never all of it.
                    let _ = stream.write_all(b" ").await;
                }
            }
            if String::from_utf8_lossy(&received).contains("--body-read-timeout") {
                break;
            }
        }
        String::from_utf8_lossy(&received).into_owned()
    })
    .await
    .expect("an answer before the test's patience runs out");
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("--body-read-timeout"), "{answer}");
    assert!(fake.posts().is_empty());
}

#[tokio::test]
async fn idle_kept_alive_connections_are_closed_after_the_keep_alive_timeout() {
    let fake = FakeHandinger::start().await;
    let bridge = start_http(
        &fake.base_url,
        &["--keep-alive-timeout", "1", "--header-read-timeout", "600"],
    )
    .await;
    let mut stream = connect(&bridge).await;
    stream
        .write_all(get("/healthz", &bridge, false).as_bytes())
        .await
        .unwrap();
    // The answer comes, then nothing more until the server closes the idle connection.
    let answer = read_until_closed(&mut stream).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("ok\n"), "{answer}");
}

#[tokio::test]
async fn bodies_beyond_the_buffer_budget_get_503() {
    let fake = FakeHandinger::start().await;
    let bridge = start_http(
        &fake.base_url,
        &[
            "--max-body-bytes",
            "1024",
            "--max-body-buffer-bytes",
            "1500",
        ],
    )
    .await;
    // One request holds 1,000 bytes of an unfinished body...
    let mut holder = connect(&bridge).await;
    let head = format!(
        "POST /mcp HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\n\
         accept: application/json, text/event-stream\r\ncontent-length: 1024\r\n\r\n{}",
        bridge.authority(),
        " ".repeat(1000)
    );
    holder.write_all(head.as_bytes()).await.unwrap();
    // ...so another 1,000 would go beyond 1,500 held (once the server has read the first).
    let client = common::http_client();
    let over_budget = |client: &reqwest::Client| {
        rpc::post(client, &bridge.url("/mcp"))
            .body(" ".repeat(1000))
            .send()
    };
    let refusal = poll::until("never refused", Duration::from_millis(50), || async {
        let response = over_budget(&client).await.unwrap();
        if response.status() == 503 {
            Ok(response)
        } else {
            Err(response.status().to_string())
        }
    })
    .await;
    assert!(refusal.headers().contains_key("retry-after"));
    assert!(
        refusal
            .text()
            .await
            .unwrap()
            .contains("--max-body-buffer-bytes")
    );
    // Once that request is gone, its bytes are given back.
    drop(holder);
    poll::until(
        "the budget never came back",
        Duration::from_millis(50),
        || async {
            match over_budget(&client).await.unwrap().status() {
                status if status == 503 => Err(status.to_string()),
                _ => Ok(()),
            }
        },
    )
    .await;
}

#[tokio::test]
async fn sessions_are_capped_per_client_address_and_in_total() {
    let fake = FakeHandinger::start().await;
    let bridge = start_http(
        &fake.base_url,
        &[
            "--key-from-request",
            "--max-sessions",
            "3",
            "--max-sessions-per-client",
            "2",
        ],
    )
    .await;
    let first = http_from([127, 0, 0, 1]);
    // A new, unverified key each time: keys are not who counts.
    let mut sessions = Vec::new();
    for key in ["hdg_live_rotated_1", "hdg_live_rotated_2"] {
        let response = initialize(&first, &bridge)
            .header("x-handinger-api-key", key)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        sessions.push(response.headers()["mcp-session-id"].clone());
    }
    let response = initialize(&first, &bridge)
        .header("x-handinger-api-key", "hdg_live_rotated_3")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("--max-sessions-per-client")
    );

    let second = http_from([127, 0, 0, 2]);
    let response = initialize(&second, &bridge)
        .header("x-handinger-api-key", "hdg_live_other")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "another address has its own share");
    let other_session = response.headers()["mcp-session-id"].clone();

    // Every session has its event stream open: none is idle, so a full table has nothing
    // it may close to make room (a_full_session_table_makes_room_from_its_biggest_idle_holder).
    let stream = |client: &reqwest::Client, session: &reqwest::header::HeaderValue, key: &str| {
        client
            .get(bridge.url("/mcp"))
            .header("accept", "text/event-stream")
            .header("mcp-session-id", session.clone())
            .header("mcp-protocol-version", "2025-11-25")
            .header("x-handinger-api-key", key.to_owned())
            .send()
    };
    let mut streams = Vec::new();
    for (client, session, key) in [
        (&first, &sessions[0], "hdg_live_rotated_1"),
        (&first, &sessions[1], "hdg_live_rotated_2"),
        (&second, &other_session, "hdg_live_other"),
    ] {
        let response = stream(client, session, key).await.unwrap();
        assert_eq!(response.status(), 200);
        streams.push(response);
    }

    let third = http_from([127, 0, 0, 3]);
    let response = initialize(&third, &bridge)
        .header("x-handinger-api-key", "hdg_live_third")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert!(response.headers().contains_key("retry-after"));
    assert!(response.text().await.unwrap().contains("--max-sessions"));
    let response = third
        .get(bridge.url("/sse"))
        .header("accept", "text/event-stream")
        .header("x-handinger-api-key", "hdg_live_third")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503, "legacy SSE sessions count too");

    // A closed session gives its place back.
    let response = first
        .delete(bridge.url("/mcp"))
        .header("mcp-session-id", sessions[0].clone())
        .header("mcp-protocol-version", "2025-11-25")
        .header("x-handinger-api-key", "hdg_live_rotated_1")
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    let response = initialize(&third, &bridge)
        .header("x-handinger-api-key", "hdg_live_third")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn rotating_keys_does_not_escape_the_rate_limit_per_address() {
    let fake = FakeHandinger::start().await;
    let bridge = start_http(
        &fake.base_url,
        &[
            "--stateless",
            "--key-from-request",
            "--rate-limit",
            "100",
            "--address-rate-limit",
            "3",
        ],
    )
    .await;
    let client = common::http_client();
    let list = |key: String| {
        let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
        rpc::post_initialized(&client, &bridge.url("/mcp"), None, &list)
            .header("x-handinger-api-key", key)
            .send()
    };
    for i in 0..3 {
        let response = list(format!("hdg_live_fresh_{i}")).await.unwrap();
        assert_eq!(response.status(), 200);
    }
    let response = list("hdg_live_fresh_3".into()).await.unwrap();
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    assert!(
        response
            .text()
            .await
            .unwrap()
            .contains("--address-rate-limit")
    );
    let response = common::http_client()
        .get(bridge.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "probes are not rate limited");
}

/// No CA certificates at all: the server still starts and answers the handshake (the HTTPS
/// client is built off the start-up path), and the first call that needs Handinger, and
/// `doctor`, say what is wrong.
#[tokio::test]
async fn a_broken_tls_setup_is_a_clear_error_at_the_first_call_and_in_doctor() {
    let fake = FakeHandinger::start().await;
    let empty = tempfile::tempdir().unwrap();
    let no_roots = |args: &[&str]| {
        let mut cmd = command(&fake.base_url, args);
        cmd.env("SSL_CERT_FILE", empty.path().join("missing.pem"))
            .env("SSL_CERT_DIR", empty.path());
        cmd
    };
    let bridge = start_with(no_roots(&[])).await;
    let tools = bridge.client.list_all_tools().await.unwrap();
    assert!(tools.iter().any(|t| t.name == "create_task"));
    let result = call(&bridge.client, "create_task", json!({"input": "hello"})).await;
    assert!(is_error(&result));
    let message = text(&result);
    assert!(message.contains("CA certificates"), "{message}");
    assert!(message.contains("SSL_CERT_FILE"), "{message}");
    assert!(fake.posts().is_empty());

    let output = run_to_completion(no_roots(&["doctor"])).await;
    assert!(!output.status.success());
    let report = String::from_utf8_lossy(&output.stdout);
    let line = report
        .lines()
        .find(|l| l.contains("https client"))
        .unwrap_or_else(|| panic!("no https client line in:\n{report}"));
    assert!(line.starts_with("PROBLEM"), "{line}");
    assert!(line.contains("CA certificates"), "{line}");
}

/// In `--stateless` mode plain tool calls share one service (src/transport/http/stateless.rs):
/// calls from different clients with the same JSON-RPC id, held together, each get their
/// own answer under the id they chose.
#[tokio::test]
async fn stateless_calls_with_the_same_id_each_get_their_own_answer() {
    let fake = FakeHandinger::start().await;
    fake.set_turn_duration(Duration::from_millis(500));
    let bridge = start_http(&fake.base_url, &["--stateless"]).await;
    let client = common::http_client();
    let call = |id: Value, input: &str| {
        let call = rpc::tool_call(id, "create_task", json!({"input": input}));
        rpc::post_initialized(&client, &bridge.url("/mcp"), None, &call).send()
    };
    let (first, second, third) = tokio::join!(
        call(json!("same"), "first"),
        call(json!("same"), "second"),
        call(json!(7), "third"),
    );
    for (response, id, input) in [
        (first, json!("same"), "first"),
        (second, json!("same"), "second"),
        (third, json!(7), "third"),
    ] {
        let response = response.unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "application/json");
        let answer: Value = response.json().await.unwrap();
        assert_eq!(answer["id"], id, "{answer}");
        let output = &answer["result"]["structuredContent"]["outputText"];
        assert_eq!(
            output,
            &json!(format!("answer to: {input} (turn 1)")),
            "{answer}"
        );
    }
}

/// A connection cap above the descriptor limit would let `accept` fail for everyone
/// (probes included) before the cap applies: the server says so at start-up.
#[tokio::test]
async fn a_connection_cap_above_the_descriptor_limit_is_warned_about() {
    let fake = FakeHandinger::start().await;
    let mut cmd = tokio::process::Command::new("sh");
    cmd.args([
        "-c",
        "ulimit -n 256 && exec \"$0\" \"$@\"",
        BINARY,
        "http",
        "--listen",
        "127.0.0.1:0",
        "--max-connections",
        "1000",
    ])
    .env_clear()
    .env("HANDINGER_API_KEY", API_KEY)
    .env("HANDINGER_BASE_URL", &fake.base_url)
    .env("RUST_LOG", "info");
    let bridge = common::http::start_http_with(cmd).await;
    poll::until(
        "no descriptor warning",
        Duration::from_millis(20),
        || async {
            let log = bridge.log();
            if log.contains("descriptor limit") {
                Ok(())
            } else {
                Err(log)
            }
        },
    )
    .await;
    assert!(bridge.log().contains("--max-connections"));
}

/// POSTs one JSON-RPC message to `/mcp` (on `session`, when given).
async fn post_mcp(
    client: &reqwest::Client,
    bridge: &HttpBridge,
    session: Option<&str>,
    message: Value,
) -> reqwest::Response {
    let request = rpc::post_initialized(client, &bridge.url("/mcp"), session, &message);
    tokio::time::timeout(PATIENCE, request.send())
        .await
        .expect("the server answers in time")
        .unwrap()
}

/// The `structuredContent` of a tool call's answer, plain JSON or an event stream.
async fn call_result(response: reqwest::Response) -> Value {
    assert_eq!(response.status(), 200);
    let text = tokio::time::timeout(PATIENCE, response.text())
        .await
        .expect("the answer arrives in time")
        .unwrap();
    let answer = rpc::http_answer(&text, None).unwrap_or_else(|| panic!("no answer in {text}"));
    answer["result"]["structuredContent"].clone()
}

fn create_task(id: u64, arguments: Value) -> Value {
    rpc::tool_call(id, "create_task", arguments)
}

/// Over HTTP, a call that would start a turn while `--max-turns-in-flight` (or its per-key
/// bound) is reached is refused with 503 and `Retry-After` before it is accepted, as
/// `--max-concurrent-calls` refusals are, with or without sessions; a call that joins the
/// running turn, and one that starts none (get_task), still go through.
#[tokio::test]
async fn calls_beyond_the_turns_in_flight_bounds_get_503_with_retry_after() {
    for (stateless, bound) in [
        (true, "--max-turns-in-flight"),
        (false, "--max-turns-in-flight-per-key"),
    ] {
        let fake = FakeHandinger::start().await;
        let mut args = vec![bound, "1", "--max-wait", "1"];
        if stateless {
            args.push("--stateless");
        }
        let bridge = start_http(&fake.base_url, &args).await;
        let client = common::http_client();
        let session = if stateless {
            None
        } else {
            let opened = initialize(&client, &bridge).send().await.unwrap();
            let id = opened.headers()["mcp-session-id"]
                .to_str()
                .unwrap()
                .to_owned();
            opened.text().await.unwrap();
            post_mcp(&client, &bridge, Some(&id), rpc::initialized()).await;
            Some(id)
        };
        let session = session.as_deref();

        // Holds the only slot past its caller's wait (--max-wait 1), for 5 s: room for the
        // refused call to arrive on a slow machine.
        let first = post_mcp(
            &client,
            &bridge,
            session,
            create_task(2, json!({"input": "long sleep=5000"})),
        )
        .await;
        let first = call_result(first).await;
        assert_eq!(first["status"], "running", "{bound}: {first}");
        let task_id = first["taskId"].as_str().unwrap().to_owned();

        let refused = post_mcp(
            &client,
            &bridge,
            session,
            create_task(3, json!({"input": "another"})),
        )
        .await;
        assert_eq!(refused.status(), 503, "{bound}");
        let retry_after: u64 = refused.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(retry_after >= 1, "{bound}: Retry-After {retry_after}");
        let message = refused.text().await.unwrap();
        for needle in [&format!("({bound})"), "nothing was sent", "Retry-After"] {
            assert!(
                message.contains(needle),
                "{needle:?} missing from {message}"
            );
        }
        assert_eq!(
            fake.posts().len(),
            1,
            "{bound}: the refused call sent nothing"
        );

        // Joining the running turn takes no slot, and get_task starts no turn.
        let joined = post_mcp(
            &client,
            &bridge,
            session,
            create_task(4, json!({"input": "long sleep=5000", "taskId": task_id})),
        )
        .await;
        assert_eq!(call_result(joined).await["taskId"], task_id.as_str());
        // get_task waits at most --max-wait (1 s) per call: ask until the turn has ended.
        let ids = std::sync::atomic::AtomicU64::new(5);
        poll::until(
            &format!("{bound}: the turn never ended"),
            Duration::ZERO,
            || async {
                let id = ids.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let get = json!({"taskId": task_id, "wait": 30});
                let looked_up = post_mcp(
                    &client,
                    &bridge,
                    session,
                    rpc::tool_call(id, "get_task", get),
                )
                .await;
                let status = call_result(looked_up).await["status"].clone();
                assert!(
                    status == "completed" || status == "running",
                    "{bound}: {status}"
                );
                if status == "completed" {
                    Ok(())
                } else {
                    Err(status.to_string())
                }
            },
        )
        .await;

        // Once the turn has ended, its slot is free again.
        let after = post_mcp(
            &client,
            &bridge,
            session,
            create_task(100, json!({"input": "another"})),
        )
        .await;
        assert_eq!(call_result(after).await["status"], "completed", "{bound}");
        assert_eq!(fake.posts().len(), 2, "{bound}");
    }
}

/// A request's body counts against `--max-body-buffer-bytes` while it is being read, not
/// while its call waits for Handinger: a held call must not keep other requests out.
#[tokio::test]
async fn a_held_call_gives_its_body_bytes_back_once_read() {
    let fake = FakeHandinger::start().await;
    let bridge = start_http(
        &fake.base_url,
        &[
            "--stateless",
            "--max-body-bytes",
            "1024",
            "--max-body-buffer-bytes",
            "1500",
        ],
    )
    .await;
    let client = common::http_client();
    // About 900 bytes of body, held for the 5 s the fake takes to answer.
    let input = format!("held sleep=5000 {}", "x".repeat(780));
    let held = {
        let client = client.clone();
        let url = bridge.url("/mcp");
        let body = create_task(1, json!({"input": input}));
        tokio::spawn(async move {
            rpc::post_initialized(&client, &url, None, &body)
                .send()
                .await
        })
    };
    poll::until(
        "the held call never reached Handinger",
        Duration::from_millis(20),
        || async {
            match fake.posts().len() {
                1 => Ok(()),
                n => Err(format!("{n} POSTs")),
            }
        },
    )
    .await;
    // Another 900 bytes fit: the held call's body was read and handed on.
    let padded = format!(
        "{{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/list\"}}{}",
        " ".repeat(850)
    );
    let listed = rpc::post(&client, &bridge.url("/mcp"))
        .header("mcp-protocol-version", rpc::HTTP_PROTOCOL)
        .body(padded)
        .send()
        .await
        .unwrap();
    assert_eq!(listed.status(), 200, "{}", listed.text().await.unwrap());
    let answered = held.await.unwrap().unwrap();
    assert_eq!(answered.status(), 200);
    assert_eq!(call_result(answered).await["status"], "completed");
}

// One address against everyone: a single client address (or a handful) must not be able to
// lock every other client out, whatever it sends.

const TOKEN: &str = "limits-token-0123456789abcdef";

/// A raw TCP connection to the server from `source` (any 127.x address is loopback on
/// Linux), so one test can act as several client addresses.
async fn connect_from(bridge: &HttpBridge, source: [u8; 4]) -> TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(std::net::SocketAddr::from((source, 0)))
        .unwrap();
    let server: std::net::SocketAddr = bridge.authority().parse().unwrap();
    socket.connect(server).await.unwrap()
}

/// The address of the probe listener (`--probe-listen`), as the server announced it.
fn probe_base(bridge: &HttpBridge) -> String {
    let log = bridge.log();
    let start = log
        .find("probes on http://")
        .unwrap_or_else(|| panic!("no probe listener announced:\n{log}"))
        + "probes on ".len();
    let rest = &log[start..];
    rest[..rest.find("/healthz").expect("the probe URL")].to_owned()
}

fn authorized_initialize(client: &reqwest::Client, bridge: &HttpBridge) -> reqwest::RequestBuilder {
    initialize(client, bridge).bearer_auth(TOKEN)
}

/// The flood: one unauthenticated address opening request heads it never finishes
/// (`GET /healthz` without its last line), as fast as it likes. It may hold at most
/// `--max-pending-connections-per-client` of them; everything else it opens is refused at
/// accept with 429, so other clients' `/mcp` and every probe keep being answered. A client
/// that finishes its heads and keeps its connections open is held to
/// `--max-connections-per-client` the same way.
#[tokio::test]
async fn one_address_flooding_unfinished_heads_locks_no_one_out() {
    let fake = FakeHandinger::start().await;
    let bridge = start_http(
        &fake.base_url,
        &[
            "--auth-token",
            TOKEN,
            "--max-connections",
            "12",
            "--probe-connections",
            "2",
            "--max-connections-per-client",
            "4",
            "--max-pending-connections-per-client",
            "3",
            "--header-read-timeout",
            "600",
            "--keep-alive-timeout",
            "600",
        ],
    )
    .await;
    let flooder = [127, 0, 0, 2];
    let mut flood = Vec::new();
    for _ in 0..20 {
        flood.push(connect_from(&bridge, flooder).await);
    }
    // The server accepts in order: the first three are let in and hold unfinished heads,
    // the seventeen after them are refused. (Only the three write: a refused socket closed
    // with unread bytes would be reset, and its answer could be lost before it is read.)
    let half = format!("GET /healthz HTTP/1.1\r\nhost: {}\r\n", bridge.authority());
    for stream in flood.iter_mut().take(3) {
        stream.write_all(half.as_bytes()).await.unwrap();
    }
    for stream in flood.iter_mut().skip(3) {
        let answer = read_until_closed(stream).await;
        assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
        assert!(answer.to_lowercase().contains("retry-after:"), "{answer}");
        assert!(
            answer.contains("--max-pending-connections-per-client"),
            "{answer}"
        );
    }

    // Everyone else is served: MCP with the token, probes without.
    let other = http_from([127, 0, 0, 3]);
    for _ in 0..5 {
        let response = authorized_initialize(&other, &bridge).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let response = other.get(bridge.url("/healthz")).send().await.unwrap();
        assert_eq!(response.status(), 200);
    }

    // Finished heads on kept-alive connections count against the open bound.
    let holder = [127, 0, 0, 4];
    let mut held = Vec::new();
    for _ in 0..4 {
        let mut stream = connect_from(&bridge, holder).await;
        stream
            .write_all(get("/healthz", &bridge, false).as_bytes())
            .await
            .unwrap();
        let mut buf = [0u8; 512];
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut buf))
            .await
            .expect("an answer")
            .unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200"));
        held.push(stream);
    }
    let mut fifth = connect_from(&bridge, holder).await;
    let answer = read_until_closed(&mut fifth).await;
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(answer.contains("--max-connections-per-client"), "{answer}");
    let response = authorized_initialize(&other, &bridge).send().await.unwrap();
    assert_eq!(response.status(), 200, "still no one else is locked out");

    // Closing connections gives the address its places back.
    drop(held);
    let again = http_from(holder);
    poll::until("no place came back", Duration::from_millis(50), || async {
        match again.get(bridge.url("/healthz")).send().await {
            Ok(response) if response.status() == 200 => Ok(()),
            Ok(response) => Err(response.status().to_string()),
            Err(error) => Err(error.to_string()),
        }
    })
    .await;
    assert!(fake.posts().is_empty());
}

/// `--probe-listen` serves `/healthz` and `/readyz` on a listener of their own, which
/// nothing sent to the main one can fill: with every connection and the probe reserve of
/// the main listener held by unfinished heads from many addresses, the orchestrator's
/// probes still answer. That listener serves nothing else.
#[tokio::test]
async fn probes_on_their_own_listener_answer_whatever_fills_the_main_one() {
    let fake = FakeHandinger::start().await;
    let bridge = start_http(
        &fake.base_url,
        &[
            "--probe-listen",
            "127.0.0.1:0",
            "--max-connections",
            "4",
            "--probe-connections",
            "2",
            "--header-read-timeout",
            "600",
        ],
    )
    .await;
    let probes = probe_base(&bridge);
    // Six addresses, one unfinished head each: the cap and the reserve are full.
    let mut flood = Vec::new();
    for last in 2..8 {
        let mut stream = connect_from(&bridge, [127, 0, 0, last]).await;
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\n")
            .await
            .unwrap();
        flood.push(stream);
    }
    let mut refused = connect_from(&bridge, [127, 0, 0, 9]).await;
    let answer = read_until_closed(&mut refused).await;
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");

    let client = common::http_client();
    for _ in 0..5 {
        let response = client
            .get(format!("{probes}/healthz"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let response = client.get(format!("{probes}/readyz")).send().await.unwrap();
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    }
    let response = rpc::post(&client, &format!("{probes}/mcp"))
        .json(&initialize_body())
        .send()
        .await
        .unwrap();
    assert_eq!(
        response.status(),
        404,
        "the probe listener serves probes only"
    );
    let response = client
        .get(format!("{probes}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    drop(flood);
}

/// The ten addresses filling the session table, in small: when `--max-sessions` is
/// reached, a newcomer's `initialize` (or `GET /sse`) closes an idle session of the
/// address holding the most (never-used sessions first) instead of being refused. A
/// session in use elsewhere keeps working; the closed one answers 404 like an expired one.
#[tokio::test]
async fn a_full_session_table_makes_room_from_its_biggest_idle_holder() {
    let fake = FakeHandinger::start().await;
    let bridge = start_http(
        &fake.base_url,
        &[
            "--auth-token",
            TOKEN,
            "--max-sessions",
            "5",
            "--max-sessions-per-client",
            "2",
        ],
    )
    .await;
    let open = |client: reqwest::Client| {
        let bridge = &bridge;
        async move {
            let response = authorized_initialize(&client, bridge).send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.headers()["mcp-session-id"]
                .to_str()
                .unwrap()
                .to_owned()
        }
    };
    let list = |client: &reqwest::Client, session: &str| {
        let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
        rpc::post_initialized(client, &bridge.url("/mcp"), Some(session), &list)
            .bearer_auth(TOKEN)
            .send()
    };
    // A legitimate client, using its session.
    let user = http_from([127, 0, 0, 2]);
    let in_use = open(user.clone()).await;
    assert_eq!(list(&user, &in_use).await.unwrap().status(), 200);
    // Two addresses that open sessions and never use them: the table is full.
    let filler_b = http_from([127, 0, 0, 3]);
    let filler_c = http_from([127, 0, 0, 4]);
    let mut filled = Vec::new();
    for client in [&filler_b, &filler_b, &filler_c, &filler_c] {
        filled.push((client.clone(), open(client.clone()).await));
    }

    // Two newcomers both get in, on either transport.
    let newcomer = http_from([127, 0, 0, 5]);
    let session = open(newcomer.clone()).await;
    assert_eq!(list(&newcomer, &session).await.unwrap().status(), 200);
    let legacy = http_from([127, 0, 0, 6])
        .get(bridge.url("/sse"))
        .header("accept", "text/event-stream")
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(legacy.status(), 200, "a legacy SSE session gets in too");
    assert_eq!(list(&user, &in_use).await.unwrap().status(), 200);
    // Each made room by closing one of the fillers' sessions, one from each filler.
    let mut gone = Vec::new();
    for (index, (client, session)) in filled.iter().enumerate() {
        let response = list(client, session).await.unwrap();
        if response.status() == 404 {
            let said = response.text().await.unwrap();
            assert!(said.contains("--max-sessions"), "{said}");
            gone.push(index);
        } else {
            assert_eq!(response.status(), 200);
        }
    }
    assert_eq!(gone.len(), 2, "two sessions closed: {gone:?}");
    assert!(
        gone[0] < 2 && gone[1] >= 2,
        "one from each filler: {gone:?}"
    );
    drop(legacy);
}

/// A session that sends no request after its `initialize` is closed after
/// `--session-first-request-timeout`, not `--session-idle-timeout`: its place comes back.
/// A session that has been used lives on.
#[tokio::test]
async fn a_session_never_used_after_initialize_is_closed_early() {
    let fake = FakeHandinger::start().await;
    let bridge = start_http(
        &fake.base_url,
        &[
            "--session-first-request-timeout",
            "1",
            "--max-sessions-per-client",
            "1",
        ],
    )
    .await;
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let user = http_from([127, 0, 0, 2]);
    let response = initialize(&user, &bridge).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let used = response.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let response = rpc::post_initialized(&user, &bridge.url("/mcp"), Some(&used), &list)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let idler = http_from([127, 0, 0, 3]);
    let response = initialize(&idler, &bridge).send().await.unwrap();
    assert_eq!(response.status(), 200);
    let response = initialize(&idler, &bridge).send().await.unwrap();
    assert_eq!(response.status(), 429, "one session per address here");
    // Once the unused session is closed, the address may open another.
    poll::until(
        "the unused session was never closed",
        Duration::from_millis(100),
        || async {
            match initialize(&idler, &bridge).send().await.unwrap().status() {
                status if status == 200 => Ok(()),
                status => Err(status.to_string()),
            }
        },
    )
    .await;
    let response = rpc::post_initialized(&user, &bridge.url("/mcp"), Some(&used), &list)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "a used session is not cut short");
}

/// Bearer-token guesses are throttled per address: after `--auth-failure-limit` failures
/// the address gets 429 with Retry-After for every request that needs the token, the right
/// one included (or guessing would go on, at the same speed, with 429 for 401), while other
/// addresses and the probes are served.
#[tokio::test]
async fn wrong_bearer_tokens_from_one_address_are_throttled() {
    let fake = FakeHandinger::start().await;
    let bridge = start_http(
        &fake.base_url,
        &["--auth-token", TOKEN, "--auth-failure-limit", "3"],
    )
    .await;
    let guesser = http_from([127, 0, 0, 2]);
    for guess in 0..3 {
        let response = initialize(&guesser, &bridge)
            .bearer_auth(format!("guess-{guess}-0123456789abcdef"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401);
    }
    let response = initialize(&guesser, &bridge)
        .bearer_auth("guess-3-0123456789abcdef")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429);
    assert!(response.headers().contains_key("retry-after"));
    let said = response.text().await.unwrap();
    assert!(said.contains("--auth-failure-limit"), "{said}");
    let response = authorized_initialize(&guesser, &bridge)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429, "not even the right token is tried");
    let response = guesser
        .get(bridge.url("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 429, "nor on /metrics");

    let response = guesser.get(bridge.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), 200, "probes need no token");
    let other = http_from([127, 0, 0, 3]);
    let response = authorized_initialize(&other, &bridge).send().await.unwrap();
    assert_eq!(response.status(), 200, "other addresses are served");
    let metrics = other
        .get(bridge.url("/metrics"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("auth_failure_limit"), "{metrics}");
}

/// A client that stops reading a large answer is closed after `--write-timeout`, and its
/// call's place (`--max-concurrent-calls 1` here) comes back: before, it held the place,
/// the answer and the thread encoding it for as long as it kept the socket open.
#[tokio::test]
async fn a_client_that_stops_reading_its_answer_gives_its_call_place_back() {
    let fake = FakeHandinger::start().await;
    // More than loopback's socket buffers take, so the server has to wait for the reader.
    fake.push_fault(Fault::Huge(24_000_000));
    let bridge = start_http(
        &fake.base_url,
        &[
            "--stateless",
            "--max-concurrent-calls",
            "1",
            "--max-response-bytes",
            "30000000",
            "--write-timeout",
            "2",
        ],
    )
    .await;
    let body = rpc::tool_call(7, "create_task", json!({"input": "a long answer"})).to_string();
    let mut stuck = connect(&bridge).await;
    let request = format!(
        "POST /mcp HTTP/1.1\r\nhost: {}\r\ncontent-type: application/json\r\n\
         accept: application/json, text/event-stream\r\nmcp-protocol-version: 2025-11-25\r\n\
         content-length: {}\r\n\r\n{body}",
        bridge.authority(),
        body.len()
    );
    stuck.write_all(request.as_bytes()).await.unwrap();
    // The place is taken while its answer waits for a reader that never reads...
    let client = common::http_client();
    let another = || {
        rpc::post(&client, &bridge.url("/mcp"))
            .json(&rpc::tool_call(
                8,
                "get_task",
                json!({"taskId": "tsk_unknown"}),
            ))
            .send()
    };
    poll::until(
        "the first call never held the only place",
        Duration::from_millis(50),
        || async {
            match another().await.unwrap().status() {
                status if status == 503 => Ok(()),
                status => Err(status.to_string()),
            }
        },
    )
    .await;
    // ...until the server gives up on it: once it has read, decoded and encoded the 24 MB,
    // which a debug build sharing two cores with other tests took over 30 s to do.
    poll::until_within(
        "the stalled answer kept its call's place",
        Duration::from_millis(200),
        Duration::from_secs(120),
        || async {
            match another().await.unwrap().status() {
                status if status == 503 => Err(status.to_string()),
                _ => Ok(()),
            }
        },
    )
    .await;
    let received = read_until_closed(&mut stuck).await;
    assert!(
        received.len() < 48_000_000,
        "the connection was closed before the whole answer went out"
    );
    drop(stuck);
}
