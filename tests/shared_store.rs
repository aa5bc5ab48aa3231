//! Replicas sharing one turn store (`--store redis://…`) against a real Redis server: what
//! one replica started, another collects in full, joins instead of posting again, or
//! reconciles from Handinger when the first died; and a store that is down stops
//! `create_task` before anything is sent.

mod common;

use common::redis::Redis;
use common::*;
use rmcp::model::{ReadResourceRequestParams, ResourceContents};
use serde_json::json;

async fn replica(fake: &FakeHandinger, redis: &Redis, extra: &[&str]) -> Bridge {
    let url = redis.url();
    let mut args = vec!["--store", url.as_str()];
    args.extend_from_slice(extra);
    start(&fake.base_url, &args).await
}

/// Two replicas on one store, and a turn of `input` started on A that is still running
/// when A's caller stops waiting (`--max-wait 1`): what B then does with the task.
struct Running {
    redis: Redis,
    fake: FakeHandinger,
    a: Bridge,
    b: Bridge,
    task_id: String,
}

async fn running_on_a(input: &str) -> Running {
    let redis = Redis::start().await;
    let fake = FakeHandinger::start().await;
    let a = replica(&fake, &redis, &["--max-wait", "1"]).await;
    let b = replica(&fake, &redis, &[]).await;
    let started = call(&a.client, "create_task", json!({"input": input})).await;
    assert_eq!(
        structured(&started)["status"],
        "running",
        "{}",
        text(&started)
    );
    let task_id = structured(&started)["taskId"].as_str().unwrap().to_owned();
    Running {
        redis,
        fake,
        a,
        b,
        task_id,
    }
}

/// A task finished on A is served in full by B: sources, files, structured output, and
/// the file as a resource, even while Handinger's task lookups fail (so nothing of it can
/// come from there).
#[tokio::test]
async fn an_answer_from_one_replica_is_collected_in_full_from_another() {
    let redis = Redis::start().await;
    let fake = FakeHandinger::start().await;
    fake.serve_file_bytes("report.csv", "text/csv", b"x,y\n1,2\n");
    fake.set_answer_files(json!([
        {"filename": "report.csv", "mediaType": "text/csv", "url": format!("{}/files/report.csv", fake.base_url), "size": 8}
    ]));
    let a = replica(&fake, &redis, &[]).await;
    let b = replica(&fake, &redis, &[]).await;

    let done = call(&a.client, "create_task", json!({"input": "make a report"})).await;
    assert!(!is_error(&done), "{}", text(&done));
    let task_id = structured(&done)["taskId"].as_str().unwrap().to_owned();

    fake.state.lock().unwrap().failing_lookups = 1_000;
    let collected = call(&b.client, "get_task", json!({"taskId": task_id})).await;
    assert!(!is_error(&collected), "{}", text(&collected));
    let data = structured(&collected);
    assert_eq!(data["status"], "completed");
    assert_eq!(data["outputText"], "answer to: make a report (turn 1)");
    assert_eq!(data["sources"].as_array().unwrap().len(), 2, "{data}");
    assert_eq!(data["files"][0]["filename"], "report.csv", "{data}");
    assert_eq!(data["structuredOutput"], json!({"verdict": "sunny"}));

    let read = b
        .client
        .read_resource(ReadResourceRequestParams::new(format!(
            "handinger://tasks/{task_id}/files/report.csv"
        )))
        .await
        .expect("B serves A's answer file");
    let Some(ResourceContents::TextResourceContents { text: body, .. }) = read.contents.first()
    else {
        panic!("expected text contents: {:?}", read.contents);
    };
    assert_eq!(body, "x,y\n1,2\n");
    assert_eq!(fake.posts().len(), 1);

    // Another key never sees it: the store files answers under a digest of the key.
    fake.accept_key("hdg_other_tenant");
    let mut other = command(&fake.base_url, &["--store", &redis.url()]);
    other.env("HANDINGER_API_KEY", "hdg_other_tenant");
    let other = start_with(other).await;
    let foreign = call(&other.client, "get_task", json!({"taskId": task_id})).await;
    assert!(
        !text(&foreign).contains("sunny")
            && structured_opt(&foreign)
                .is_none_or(|d| d["sources"].as_array().is_none_or(Vec::is_empty)),
        "another tenant was served the answer: {}",
        text(&foreign)
    );
}

fn structured_opt(result: &rmcp::model::CallToolResult) -> Option<&serde_json::Value> {
    result.structured_content.as_ref()
}

/// The same taskId and input on B while A's turn runs joins it through the store: one POST
/// in all, and B answers with the turn's answer.
#[tokio::test]
async fn a_repeated_call_on_another_replica_joins_the_running_turn() {
    let input = "long audit sleep=3000";
    let Running {
        redis: _redis,
        fake,
        a,
        b,
        task_id,
    } = running_on_a(input).await;

    let joined = call(
        &b.client,
        "create_task",
        json!({"input": input, "taskId": task_id}),
    )
    .await;
    assert!(!is_error(&joined), "{}", text(&joined));
    assert_eq!(
        structured(&joined)["status"],
        "completed",
        "{}",
        text(&joined)
    );
    assert_eq!(
        structured(&joined)["outputText"],
        format!("answer to: {input} (turn 1)")
    );
    assert_eq!(fake.posts().len(), 1, "B joined instead of posting");

    // A different input while the task is busy elsewhere is refused as it is locally.
    let second = call(
        &a.client,
        "create_task",
        json!({"input": "x sleep=3000", "taskId": task_id}),
    )
    .await;
    assert!(!is_error(&second));
    let busy = call(
        &b.client,
        "create_task",
        json!({"input": "y", "taskId": task_id}),
    )
    .await;
    assert!(is_error(&busy), "{}", text(&busy));
    assert!(
        text(&busy).contains("already has a turn running"),
        "{}",
        text(&busy)
    );
    assert_eq!(fake.posts().len(), 2);
}

/// However many callers on B wait on A's turn, B follows it once: one subscription to the
/// turn's channel and one store poll loop, not one per caller.
#[tokio::test]
async fn callers_waiting_on_one_remote_turn_share_one_follower() {
    let input = "watched by many sleep=3000";
    let Running {
        redis,
        fake,
        a: _a,
        b,
        task_id,
    } = running_on_a(input).await;

    let subscriptions_before = redis.calls("subscribe");
    let joins = (0..3).map(|_| {
        call(
            &b.client,
            "create_task",
            json!({"input": input, "taskId": task_id}),
        )
    });
    for joined in futures::future::join_all(joins).await {
        assert_eq!(
            structured(&joined)["status"],
            "completed",
            "{}",
            text(&joined)
        );
    }
    assert_eq!(fake.posts().len(), 1, "B joined instead of posting");
    assert_eq!(
        redis.calls("subscribe") - subscriptions_before,
        1,
        "three callers waiting on one turn subscribed once"
    );
}

/// What another writer left in the store is checked like any input: a worker id this
/// release would refuse from a caller is not posted, and a turn record it cannot read is
/// refused without repeating what it holds.
#[tokio::test]
async fn what_the_store_holds_is_checked_before_it_is_used() {
    let redis = Redis::start().await;
    let fake = FakeHandinger::start().await;
    let a = replica(&fake, &redis, &[]).await;
    let b = replica(&fake, &redis, &[]).await;

    let done = call(&a.client, "create_task", json!({"input": "first"})).await;
    assert!(!is_error(&done), "{}", text(&done));
    let task_id = structured(&done)["taskId"].as_str().unwrap().to_owned();
    // The answer is stored as the turn ends, which may be just after the caller has it.
    let key = |part: &'static str| {
        let pattern = format!("*:{task_id}:{part}");
        let redis = &redis;
        common::poll::until(
            "the finished turn's keys appear in the store",
            std::time::Duration::from_millis(20),
            move || {
                let keys = redis.query(&["KEYS", &pattern]);
                std::future::ready(match keys.as_slice() {
                    [key] => Ok(key.clone()),
                    _ => Err(format!("{part}: {keys:?}")),
                })
            },
        )
    };

    redis.query(&["SET", &key("worker").await, "wrk_1/../../admin"]);
    let follow_up = call(
        &b.client,
        "create_task",
        json!({"input": "second", "taskId": task_id}),
    )
    .await;
    assert!(!is_error(&follow_up), "{}", text(&follow_up));
    let posted = fake.posts().last().unwrap().body.clone();
    assert!(posted.get("workerId").is_none(), "{posted}");

    let turn = key("answer").await.replace(":answer", ":turn");
    let planted = format!("\"PLANTED{}\"", "x".repeat(20_000));
    redis.query(&["SET", &turn, &planted]);
    let refused = call(
        &b.client,
        "create_task",
        json!({"input": "third", "taskId": task_id}),
    )
    .await;
    assert!(is_error(&refused), "{}", text(&refused));
    assert!(text(&refused).contains("cannot read"), "{}", text(&refused));
    assert!(!text(&refused).contains("PLANTED"), "{}", text(&refused));
    assert_eq!(fake.posts().len(), 2, "nothing was posted past the record");
}

/// A replica killed mid-turn leaves a claim nobody renews: B, waiting on the task, notices
/// the lease expire and follows the task on Handinger instead of posting it again.
#[tokio::test]
async fn a_turn_whose_replica_died_is_reconciled_from_handinger() {
    let input = "doomed sleep=2500";
    let Running {
        redis: _redis,
        fake,
        a,
        b,
        task_id,
    } = running_on_a(input).await;
    let status = std::process::Command::new("kill")
        .args(["-9", &a.pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());

    let joined = call(
        &b.client,
        "create_task",
        json!({"input": input, "taskId": task_id}),
    )
    .await;
    assert!(!is_error(&joined), "{}", text(&joined));
    assert_eq!(
        structured(&joined)["status"],
        "completed",
        "{}",
        text(&joined)
    );
    // The structured answer is the worker's own; how it was had is told in the text.
    assert_eq!(
        structured(&joined)["outputText"],
        format!("answer to: {input} (turn 1)")
    );
    assert!(
        text(&joined).contains("stopped before the answer arrived"),
        "{}",
        text(&joined)
    );
    assert_eq!(fake.posts().len(), 1, "nobody posted the turn again");
}

/// With the store down, create_task says so and sends nothing; a turn already running on
/// A still ends in its answer there.
#[tokio::test]
async fn a_store_that_is_down_stops_create_task_before_anything_is_sent() {
    let mut redis = Redis::start().await;
    let fake = FakeHandinger::start().await;
    let a = replica(&fake, &redis, &["--max-wait", "1"]).await;
    let b = replica(&fake, &redis, &[]).await;
    let started = call(
        &a.client,
        "create_task",
        json!({"input": "kept sleep=2000"}),
    )
    .await;
    let task_id = structured(&started)["taskId"].as_str().unwrap().to_owned();

    redis.stop();
    let refused = call(
        &b.client,
        "create_task",
        json!({"input": "kept sleep=2000", "taskId": task_id}),
    )
    .await;
    assert!(is_error(&refused), "{}", text(&refused));
    let message = text(&refused);
    assert!(message.contains("shared turn store"), "{message}");
    assert!(message.contains("Nothing was sent"), "{message}");
    let fresh = call(&b.client, "create_task", json!({"input": "new"})).await;
    assert!(is_error(&fresh), "{}", text(&fresh));
    assert_eq!(fake.posts().len(), 1, "no POST without the store");

    // A waits at most --max-wait (1 s) per call, so collect until the turn has ended
    // (its answer waits out the store's timeout first): how long that takes is the
    // machine's business, not the test's.
    let mut collected = None;
    for _ in 0..120 {
        let result = call(&a.client, "get_task", json!({"taskId": task_id, "wait": 1})).await;
        assert!(!is_error(&result), "{}", text(&result));
        if structured(&result)["status"] != "running" {
            collected = Some(result);
            break;
        }
    }
    let collected = collected.expect("the turn ended on A");
    assert_eq!(
        structured(&collected)["outputText"],
        "answer to: kept sleep=2000 (turn 1)"
    );
}

/// `/readyz` answers for the store too: ready while Redis answers, 503 naming the store once
/// it stops (within the verdict's reuse interval), so an orchestrator takes the replica out
/// instead of letting calls fail there. However often it is probed, the store is asked at
/// most once per interval.
#[tokio::test]
async fn readiness_follows_the_store() {
    let mut redis = Redis::start().await;
    let fake = FakeHandinger::start().await;
    let bridge = common::http::start_http(&fake.base_url, &["--store", &redis.url()]).await;
    let pings_before = redis.calls("ping");
    // All at once: probes arriving while a check runs wait for its verdict.
    let probes = (0..20).map(|_| reqwest::get(bridge.url("/readyz")));
    for ready in futures::future::join_all(probes).await {
        let ready = ready.unwrap();
        assert_eq!(ready.status(), 200, "{}", ready.text().await.unwrap());
    }
    let pings = redis.calls("ping") - pings_before;
    assert!(
        (1..=2).contains(&pings),
        "20 probes asked the store {pings} times"
    );

    redis.stop();
    let reason = common::poll::until(
        "/readyz turns 503 once the store is gone",
        std::time::Duration::from_millis(200),
        || async {
            let down = reqwest::get(bridge.url("/readyz")).await.unwrap();
            let status = down.status();
            let text = down.text().await.unwrap();
            if status == 503 {
                Ok(text)
            } else {
                Err(format!("{status}: {text}"))
            }
        },
    )
    .await;
    assert!(reason.contains("store"), "{reason}");
    assert!(
        !reason.contains(&redis.url()),
        "the store URL stays out: {reason}"
    );
}
