//! Files both ways: attachments as multipart (and every refusal sending nothing), answer
//! files as resources (credentials only to the API origin), download-dir, inline images,
//! and a large upload streamed with flat memory.

// MCP roots are deprecated in the newest protocol revision but still how today's clients
// share their open folders; the bridge supports them, so the tests use them.
#![allow(deprecated)]

use crate::common;

use std::sync::Arc;

use base64::Engine as _;
use common::*;
use rmcp::model::{
    CallToolResult, ClientCapabilities, ClientConfig, Implementation, ListRootsResult,
    ReadResourceRequestParams, ResourceContents, Root,
};
use rmcp::service::RequestContext;
use rmcp::transport::TokioChildProcess;
use rmcp::{ClientHandler, ErrorData, RoleClient, ServiceExt};
use serde_json::{Value, json};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[tokio::test]
async fn path_and_inline_files_go_up_as_multipart_parts() {
    let fake = FakeHandinger::start().await;
    let dir = tempfile::tempdir().unwrap();
    let sheet = dir.path().join("sheet.csv");
    std::fs::write(&sheet, b"a,b\n1,2\n").unwrap();
    let allow = dir.path().to_str().unwrap();
    let bridge = start(&fake.base_url, &["--allow-dir", allow]).await;

    let result = call(
        &bridge.client,
        "create_task",
        json!({
            "input": "Fix this spreadsheet",
            "budget": "low",
            "files": [
                {"path": sheet.to_str().unwrap()},
                {"name": "notes.txt", "content": b64(b"hello"), "mediaType": "text/plain"}
            ]
        }),
    )
    .await;
    assert!(!is_error(&result), "{}", text(&result));

    let post = &fake.posts()[0];
    assert_eq!(post.body["input"], "Fix this spreadsheet");
    assert_eq!(post.body["budget"], "low");
    assert_eq!(post.body["taskId"], structured(&result)["taskId"]);
    assert_eq!(post.uploads.len(), 2);
    let (first, second) = (&post.uploads[0], &post.uploads[1]);
    assert_eq!(first.field, "files[]");
    assert_eq!(first.filename.as_deref(), Some("sheet.csv"));
    assert_eq!(first.content_type.as_deref(), Some("text/csv"));
    assert_eq!(first.head, b"a,b\n1,2\n");
    assert_eq!(second.field, "files[]");
    assert_eq!(second.filename.as_deref(), Some("notes.txt"));
    assert_eq!(second.content_type.as_deref(), Some("text/plain"));
    assert_eq!(second.head, b"hello");
}

#[tokio::test]
async fn files_outside_what_the_user_allowed_never_leave_and_nothing_is_sent() {
    let fake = FakeHandinger::start().await;
    let root = tempfile::tempdir().unwrap();
    let allowed = root.path().join("allowed");
    std::fs::create_dir(&allowed).unwrap();
    let secret = root.path().join("secret.txt");
    std::fs::write(&secret, b"top secret").unwrap();
    std::fs::write(allowed.join("big.bin"), vec![7u8; 64]).unwrap();
    std::fs::create_dir(allowed.join("folder")).unwrap();
    #[cfg(unix)]
    std::os::unix::fs::symlink(&secret, allowed.join("link.txt")).unwrap();

    let allow = allowed.to_str().unwrap();
    let bridge = start(
        &fake.base_url,
        &[
            "--allow-dir",
            allow,
            "--max-file-bytes",
            "32",
            "--max-files",
            "2",
        ],
    )
    .await;
    let path = |p: &std::path::Path| json!({"path": p.to_str().unwrap()});
    let cases = [
        (
            json!([path(&allowed.join("../secret.txt"))]),
            "outside the allowed directories",
        ),
        (
            json!([path(&allowed.join("link.txt"))]),
            "outside the allowed directories",
        ),
        (json!([path(&allowed.join("folder"))]), "not a regular file"),
        (json!([path(&allowed.join("big.bin"))]), "--max-file-bytes"),
        (json!([path(&allowed.join("missing.txt"))]), "cannot read"),
        (json!([{"path": "relative.txt"}]), "absolute path"),
        (
            json!([{"name": "a", "content": "QQ=="}, {"name": "b", "content": "QQ=="}, {"name": "c", "content": "QQ=="}]),
            "--max-files",
        ),
        (
            json!([{"name": "x.txt", "content": "not base64!"}]),
            "not valid base64",
        ),
        (
            json!([{"name": "../x.txt", "content": "QQ=="}]),
            "path separators",
        ),
        (
            json!([{"name": "x.txt"}]),
            "either path, or name and content",
        ),
        (
            json!([{"name": "x.txt", "content": "QQ==", "mediaType": "nonsense"}]),
            "not a media type",
        ),
    ];
    for (files, expected) in cases {
        let result = call(
            &bridge.client,
            "create_task",
            json!({"input": "x", "files": files}),
        )
        .await;
        assert!(is_error(&result), "{files} accepted");
        let message = text(&result);
        assert!(message.contains(expected), "{files}: {message}");
    }
    assert!(
        fake.received().is_empty(),
        "something was sent: {:?}",
        fake.received()
    );
    let message = text(
        &call(
            &bridge.client,
            "create_task",
            json!({"input": "x", "files": [path(&secret)]}),
        )
        .await,
    );
    assert!(
        message.contains(allowed.canonicalize().unwrap().to_str().unwrap()),
        "names the allowed roots: {message}"
    );
}

#[tokio::test]
async fn without_any_allowed_root_paths_are_refused_with_how_to_allow_them() {
    let fake = FakeHandinger::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.txt");
    std::fs::write(&file, b"x").unwrap();
    let bridge = start(&fake.base_url, &[]).await;
    let result = call(
        &bridge.client,
        "create_task",
        json!({"input": "x", "files": [{"path": file.to_str().unwrap()}]}),
    )
    .await;
    assert!(is_error(&result));
    assert!(text(&result).contains("--allow-dir"), "{}", text(&result));
    assert!(fake.received().is_empty());
}

/// A client that shares one root (VS Code and Claude Code share the opened folder).
#[derive(Clone)]
struct RootsClient {
    root: String,
}

impl ClientHandler for RootsClient {
    #[allow(deprecated)]
    async fn list_roots(
        &self,
        _: RequestContext<RoleClient>,
    ) -> Result<ListRootsResult, ErrorData> {
        Ok(ListRootsResult::new(vec![Root::new(self.root.clone())]))
    }

    #[allow(deprecated)]
    fn get_info(&self) -> ClientConfig {
        ClientConfig::new(
            ClientCapabilities::builder().enable_roots().build(),
            Implementation::new("roots-client", "1"),
        )
    }
}

#[tokio::test]
async fn a_clients_roots_allow_its_files() {
    let fake = FakeHandinger::start().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("a.txt");
    std::fs::write(&file, b"from the project").unwrap();
    let root = reqwest::Url::from_directory_path(dir.path())
        .unwrap()
        .to_string();
    let transport = TokioChildProcess::new(command(&fake.base_url, &[])).unwrap();
    let client = RootsClient { root }.serve(transport).await.unwrap();
    let mut params = rmcp::model::CallToolRequestParams::new("create_task");
    params.arguments = Some(args(
        json!({"input": "x", "files": [{"path": file.to_str().unwrap()}]}),
    ));
    let result = client.call_tool(params).await.unwrap();
    assert!(!is_error(&result), "{}", text(&result));
    assert_eq!(fake.posts()[0].uploads[0].head, b"from the project");
}

async fn read(client: &Client, uri: &str) -> ResourceContents {
    let result = client
        .read_resource(ReadResourceRequestParams::new(uri))
        .await
        .unwrap_or_else(|e| panic!("reading {uri}: {e}"));
    result.contents.into_iter().next().unwrap()
}

#[tokio::test]
async fn answer_files_are_resources_and_only_the_api_origin_gets_the_key() {
    let fake = FakeHandinger::start().await;
    let foreign = FakeHandinger::start().await;
    fake.serve_file_bytes("report.csv", "text/csv", b"x,y\n3,4\n");
    foreign.serve_file_bytes("chart.png", "image/png", b"\x89PNG\r\n");
    fake.set_answer_files(json!([
        {"filename": "report.csv", "mediaType": "text/csv", "url": format!("{}/files/report.csv", fake.base_url), "size": 8},
        {"filename": "chart.png", "mediaType": "image/png", "url": format!("{}/files/chart.png", foreign.base_url), "size": 6}
    ]));
    // The foreign host is plain http on loopback: the operator has to allow it.
    let foreign_host = foreign.base_url.trim_start_matches("http://").to_owned();
    let bridge = start(&fake.base_url, &["--allow-file-host", &foreign_host]).await;
    let result = call(
        &bridge.client,
        "create_task",
        json!({"input": "make a report"}),
    )
    .await;
    let files = structured(&result)["files"].as_array().unwrap().clone();
    let task_id = structured(&result)["taskId"].as_str().unwrap().to_owned();
    assert_eq!(
        files[0]["resourceUri"],
        format!("handinger://tasks/{task_id}/files/report.csv")
    );

    let templates = bridge.client.list_all_resource_templates().await.unwrap();
    assert!(
        templates
            .iter()
            .any(|t| t.uri_template == "handinger://tasks/{taskId}/files/{name}")
    );

    match read(&bridge.client, files[0]["resourceUri"].as_str().unwrap()).await {
        ResourceContents::TextResourceContents {
            text, mime_type, ..
        } => {
            assert_eq!(text, "x,y\n3,4\n");
            assert_eq!(mime_type.as_deref(), Some("text/csv"));
        }
        other => panic!("expected text, got {other:?}"),
    }
    match read(&bridge.client, files[1]["resourceUri"].as_str().unwrap()).await {
        ResourceContents::BlobResourceContents {
            blob, mime_type, ..
        } => {
            assert_eq!(blob, b64(b"\x89PNG\r\n"));
            assert_eq!(mime_type.as_deref(), Some("image/png"));
        }
        other => panic!("expected a blob, got {other:?}"),
    }
    let api_fetch = fake
        .received()
        .into_iter()
        .find(|r| r.path == "/files/report.csv")
        .unwrap();
    assert_eq!(api_fetch.authorization, Some(format!("Bearer {API_KEY}")));
    let foreign_fetch = foreign
        .received()
        .into_iter()
        .find(|r| r.path == "/files/chart.png")
        .unwrap();
    assert_eq!(
        foreign_fetch.authorization, None,
        "a foreign host got credentials"
    );

    match read(&bridge.client, &format!("handinger://tasks/{task_id}")).await {
        ResourceContents::TextResourceContents { text, .. } => {
            let record: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(record["turns"][0]["input"], "make a report");
        }
        other => panic!("expected the transcript as text, got {other:?}"),
    }
    let missing = bridge
        .client
        .read_resource(ReadResourceRequestParams::new(format!(
            "handinger://tasks/{task_id}/files/nope.txt"
        )))
        .await;
    assert!(missing.is_err());
}

#[tokio::test]
async fn download_dir_keeps_copies_without_overwriting_and_inline_images_are_shown() {
    let fake = FakeHandinger::start().await;
    fake.serve_file_bytes("report.csv", "text/csv", b"new");
    fake.serve_file_bytes("dot.png", "image/png", b"\x89PNG-tiny");
    fake.set_answer_files(json!([
        {"filename": "report.csv", "mediaType": "text/csv", "url": format!("{}/files/report.csv", fake.base_url), "size": 3},
        {"filename": "dot.png", "mediaType": "image/png", "url": format!("{}/files/dot.png", fake.base_url), "size": 10}
    ]));
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("report.csv"), b"old").unwrap();
    let download = dir.path().to_str().unwrap();
    let bridge = start(
        &fake.base_url,
        &["--download-dir", download, "--inline-images"],
    )
    .await;
    let created = call(&bridge.client, "create_task", json!({"input": "x"})).await;
    assert!(!is_error(&created), "{}", text(&created));
    // The copies are made in the background; get_task shows them once they are.
    let task_id = structured(&created)["taskId"].as_str().unwrap().to_owned();
    let result = copies_settled(&bridge.client, &task_id).await;

    assert_eq!(
        std::fs::read(dir.path().join("report.csv")).unwrap(),
        b"old",
        "never overwritten"
    );
    let copy = dir.path().join("report (1).csv");
    assert_eq!(std::fs::read(&copy).unwrap(), b"new");
    let files = &structured(&result)["files"];
    assert_eq!(files[0]["localPath"], copy.to_str().unwrap());
    let file_uri = reqwest::Url::from_file_path(&copy).unwrap().to_string();
    assert!(
        result
            .content
            .iter()
            .filter_map(|c| c.as_resource_link())
            .any(|l| l.uri == file_uri)
    );
    let image = result
        .content
        .iter()
        .find_map(|c| c.as_image())
        .expect("inline image");
    assert_eq!(image.data, b64(b"\x89PNG-tiny"));
    assert_eq!(image.mime_type, "image/png");
}

#[tokio::test]
async fn a_100_mib_attachment_streams_with_flat_memory() {
    const SIZE: u64 = 100 * 1024 * 1024;
    let fake = FakeHandinger::start().await;
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.bin");
    std::fs::File::create(&big).unwrap().set_len(SIZE).unwrap();
    let bridge = Arc::new(
        start(
            &fake.base_url,
            &["--allow-dir", dir.path().to_str().unwrap()],
        )
        .await,
    );
    let result = call(
        &bridge.client,
        "create_task",
        json!({"input": "checksum this", "files": [{"path": big.to_str().unwrap()}]}),
    )
    .await;
    assert!(!is_error(&result), "{}", text(&result));
    assert_eq!(fake.posts()[0].uploads[0].len, SIZE);
    let peak = peak_rss(bridge.pid).expect("peak RSS from /proc");
    assert!(
        peak < 64 * 1024 * 1024,
        "peak RSS {} MiB: the upload was buffered",
        peak >> 20
    );
}

/// The budget for kept answers gives back what it counted: an answer counted while its
/// file copy was pending, and evicted once the copy has ended (holding a note), must not
/// take more out than it put in. Many evictions of such answers once drove the count below
/// zero (a panic in a debug build, a budget stuck at "full" in release).
#[tokio::test]
async fn evicting_answers_whose_copies_finished_keeps_the_budget_whole() {
    let fake = FakeHandinger::start().await;
    // A host that never answers: each copy is still pending when its answer is counted,
    // and ends, after --request-timeout, holding a note of what went wrong.
    fake.set_answer_files(json!([
        {"filename": "report.csv", "mediaType": "text/csv", "url": format!("{}/stalled/report.csv", fake.base_url), "size": 4}
    ]));
    let dir = tempfile::tempdir().unwrap();
    let download = dir.path().to_str().unwrap();
    let bridge = start(
        &fake.base_url,
        &[
            "--download-dir",
            download,
            "--max-results",
            "1",
            "--request-timeout",
            "1",
        ],
    )
    .await;
    let mut last = String::new();
    for round in 0..8 {
        let created = call(
            &bridge.client,
            "create_task",
            json!({"input": format!("round {round}")}),
        )
        .await;
        assert!(!is_error(&created), "{}", text(&created));
        last = structured(&created)["taskId"].as_str().unwrap().to_owned();
        copies_settled(&bridge.client, &last).await;
    }
    let collected = call(&bridge.client, "get_task", json!({"taskId": last})).await;
    assert!(!is_error(&collected), "{}", text(&collected));
    let log = bridge.stderr.lock().unwrap().clone();
    assert!(!log.contains("panicked"), "{log}");
}

/// The answer files of `names` (served by the fake under `/files/`), 5 bytes each.
fn quick_files(fake: &FakeHandinger, names: &[&str]) -> Value {
    let files = names
        .iter()
        .map(|name| {
            fake.serve_file_bytes(name, "text/plain", b"12345");
            json!({"filename": name, "mediaType": "text/plain",
                   "url": format!("{}/files/{name}", fake.base_url), "size": 5})
        })
        .collect();
    Value::Array(files)
}

/// Runs one turn whose answer has `files`, and waits until its copies are settled.
async fn answer_with_files(fake: &FakeHandinger, client: &Client, files: Value) -> CallToolResult {
    fake.set_answer_files(files);
    let created = call(client, "create_task", json!({"input": "files"})).await;
    assert!(!is_error(&created), "{}", text(&created));
    let task_id = structured(&created)["taskId"].as_str().unwrap().to_owned();
    copies_settled(client, &task_id).await
}

/// One answer with six files whose host never answers, then another with one small file,
/// one download slot: the second answer's file is fetched after at most two of the first
/// answer's (the one running and the one next in turn), not after all six (first come,
/// first served made it wait behind every one of them).
#[tokio::test]
async fn a_freed_download_slot_goes_to_the_next_answer_in_turn() {
    let fake = FakeHandinger::start().await;
    let dir = tempfile::tempdir().unwrap();
    let bridge = start(
        &fake.base_url,
        &[
            "--download-dir",
            dir.path().to_str().unwrap(),
            "--max-parallel-downloads",
            "1",
            "--request-timeout",
            "1",
        ],
    )
    .await;
    let stalled: Vec<_> = (0..6)
        .map(|n| {
            json!({"filename": format!("stalled{n}.txt"), "mediaType": "text/plain",
                   "url": format!("{}/stalled/{n}.txt", fake.base_url), "size": 5})
        })
        .collect();
    fake.set_answer_files(Value::Array(stalled));
    let slow = call(&bridge.client, "create_task", json!({"input": "slow"})).await;
    assert!(!is_error(&slow), "{}", text(&slow));
    let quick = answer_with_files(&fake, &bridge.client, quick_files(&fake, &["quick.txt"])).await;
    assert!(
        structured(&quick)["files"][0]["localPath"].is_string(),
        "{}",
        text(&quick)
    );
    // The order the file hosts were asked in.
    let paths: Vec<String> = fake
        .received()
        .into_iter()
        .map(|r| r.path)
        .filter(|p| !p.starts_with("/api/"))
        .collect();
    let quick_at = paths
        .iter()
        .position(|p| p == "/files/quick.txt")
        .expect("the quick file was fetched");
    let stalled_before = paths[..quick_at]
        .iter()
        .filter(|p| p.starts_with("/stalled/"))
        .count();
    assert!(
        stalled_before <= 2,
        "the quick file waited behind {stalled_before} stalled downloads: {paths:?}"
    );
}

/// Saved answer files share one disk budget: a new file deletes the oldest this server
/// saved to fit, and one larger than the whole budget is not saved, with the reason.
#[tokio::test]
async fn saved_answer_files_stay_within_the_disk_budget_oldest_out_first() {
    let fake = FakeHandinger::start().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("mine.txt"), b"the user's own file").unwrap();
    let bridge = start(
        &fake.base_url,
        &[
            "--download-dir",
            dir.path().to_str().unwrap(),
            "--max-download-dir-bytes",
            "12",
            "--max-parallel-downloads",
            "1",
        ],
    )
    .await;
    answer_with_files(
        &fake,
        &bridge.client,
        quick_files(&fake, &["a.txt", "b.txt"]),
    )
    .await;
    answer_with_files(&fake, &bridge.client, quick_files(&fake, &["c.txt"])).await;
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["b.txt", "c.txt", "mine.txt"],
        "the oldest saved file made room; the user's own file is untouched"
    );

    fake.serve_file_bytes("big.txt", "text/plain", &[b'x'; 20]);
    let big = json!([{"filename": "big.txt", "mediaType": "text/plain",
                      "url": format!("{}/files/big.txt", fake.base_url), "size": 20}]);
    let refused = answer_with_files(&fake, &bridge.client, big).await;
    assert!(
        text(&refused).contains("--max-download-dir-bytes"),
        "{}",
        text(&refused)
    );
    assert!(!dir.path().join("big.txt").exists());
}
