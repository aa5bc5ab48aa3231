//! Replicas sharing one turn store (`--store redis://…`) against a real Redis server: what
//! one replica started, another collects in full, joins instead of posting again, or
//! reconciles from Handinger when the first died; and a store that is down stops
//! `create_task` before anything is sent.

use crate::common;

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

/// `create_task` on `bridge` with `arguments`, which must be answered without an error.
async fn answered(bridge: &Bridge, arguments: serde_json::Value) -> rmcp::model::CallToolResult {
    let result = call(&bridge.client, "create_task", arguments).await;
    assert!(!is_error(&result), "{}", text(&result));
    result
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
    running_on_a_with(&[], json!({"input": input})).await
}

/// [`running_on_a`] for the create_task arguments `ask`, after the replicas named in
/// `warm_up` ran a turn each, in order, as replicas in service have (the first marks the
/// store).
async fn running_on_a_with(warm_up: &[char], ask: serde_json::Value) -> Running {
    let redis = Redis::start().await;
    let fake = FakeHandinger::start().await;
    let a = replica(&fake, &redis, &["--max-wait", "1"]).await;
    let b = replica(&fake, &redis, &[]).await;
    for name in warm_up {
        let bridge = if *name == 'a' { &a } else { &b };
        answered(bridge, json!({"input": format!("warm up {name}")})).await;
    }
    let started = call(&a.client, "create_task", ask).await;
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

    let done = answered(&a, json!({"input": "make a report"})).await;
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

    let joined = answered(&b, json!({"input": input, "taskId": task_id})).await;
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

    let done = answered(&a, json!({"input": "first"})).await;
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
    answered(&b, json!({"input": "second", "taskId": task_id})).await;
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

    let joined = answered(&b, json!({"input": input, "taskId": task_id})).await;
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
    let probes = (0..20).map(|_| common::http_client().get(bridge.url("/readyz")).send());
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
            let down = common::http_client()
                .get(bridge.url("/readyz"))
                .send()
                .await
                .unwrap();
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

// Stalls, restarts and lost answers: each of these once lost a turn, posted one twice or
// showed an older turn's answer as the task's.

/// The lease the fault tests give replicas, short so an orphan shows quickly.
const LEASE: &str = "3";

/// Waits until the store holds (or no longer holds) `part` of task `task_id`.
async fn until_key(redis: &Redis, task_id: &str, part: &str, present: bool) {
    let pattern = format!("*:{task_id}:{part}");
    common::poll::until(
        &format!("{part} of {task_id} present={present} in the store"),
        std::time::Duration::from_millis(50),
        || {
            let keys = redis.query(&["KEYS", &pattern]);
            std::future::ready(if keys.is_empty() != present {
                Ok(())
            } else {
                Err(format!("{keys:?}"))
            })
        },
    )
    .await
}

/// A claim sent while Redis stalls lands when it resumes, after its caller was told that
/// nothing was sent: the replica withdraws it, so the retry (on any replica) posts the turn
/// instead of joining one nobody will ever send.
#[tokio::test]
async fn a_claim_the_stalled_store_applied_late_is_withdrawn_and_the_retry_posts() {
    let redis = Redis::start().await;
    let fake = FakeHandinger::start().await;
    let a = replica(&fake, &redis, &["--store-lease", LEASE]).await;
    let b = replica(&fake, &redis, &["--store-lease", LEASE]).await;
    // The replica's store connection is up before the stall (as it is in service).
    answered(&a, json!({"input": "warm up"})).await;

    let ask = json!({"input": "asked while the store stalls", "taskId": "tsk_stalled_claim"});
    redis.pause();
    let refused = call(&a.client, "create_task", ask.clone()).await;
    redis.resume();
    assert!(is_error(&refused), "{}", text(&refused));
    assert!(
        text(&refused).contains("Nothing was sent"),
        "{}",
        text(&refused)
    );
    // The claim was applied when Redis resumed, and then withdrawn.
    until_key(&redis, "tsk_stalled_claim", "turn", false).await;

    let retried = answered(&b, ask).await;
    assert_eq!(
        structured(&retried)["outputText"],
        "answer to: asked while the store stalls (turn 1)"
    );
    assert_eq!(fake.turns("tsk_stalled_claim").len(), 1);
}

/// A claim whose owner died before it could post or withdraw it is an orphan nobody sent.
/// The next call, with the same input or another one, finds it absent from Handinger's
/// turn list, takes it over and posts: never "running" for a turn nobody sends, never
/// "safe to resend" over and over with nothing posted, never "busy" for an hour.
#[tokio::test]
async fn an_orphaned_claim_nobody_sent_is_taken_over_and_posted() {
    let redis = Redis::start().await;
    let fake = FakeHandinger::start().await;
    let a = replica(&fake, &redis, &["--store-lease", LEASE]).await;
    let b = replica(&fake, &redis, &["--store-lease", LEASE]).await;
    answered(&a, json!({"input": "warm up"})).await;

    redis.pause();
    let same = json!({"input": "same input", "taskId": "tsk_orphan_same"});
    let other = json!({"input": "first input", "taskId": "tsk_orphan_other"});
    let (one, two) = tokio::join!(
        call(&a.client, "create_task", same.clone()),
        call(&a.client, "create_task", other)
    );
    assert!(
        is_error(&one) && is_error(&two),
        "{}\n{}",
        text(&one),
        text(&two)
    );
    // A dies before the store answers again: its claims land, and nobody withdraws them.
    signal(a.pid, "KILL");
    redis.resume();
    for task in ["tsk_orphan_same", "tsk_orphan_other"] {
        until_key(&redis, task, "turn", true).await;
        until_key(&redis, task, "lease", false).await;
    }

    let posted = answered(&b, same).await;
    assert_eq!(
        structured(&posted)["outputText"],
        "answer to: same input (turn 1)"
    );
    let next = answered(
        &b,
        json!({"input": "another input", "taskId": "tsk_orphan_other"}),
    )
    .await;
    assert_eq!(
        structured(&next)["outputText"],
        "answer to: another input (turn 1)"
    );
    assert_eq!(fake.turns("tsk_orphan_same").len(), 1);
    assert_eq!(fake.turns("tsk_orphan_other").len(), 1);
}

/// A follow-up that failed unrecorded is the task's latest turn: every replica says so,
/// with the advice to resend, and none passes the first turn's answer off as the task's.
#[tokio::test]
async fn a_failed_follow_up_is_shown_as_failed_by_every_replica() {
    let redis = Redis::start().await;
    let fake = FakeHandinger::start().await;
    let a = replica(&fake, &redis, &[]).await;
    let b = replica(&fake, &redis, &[]).await;
    let task = "tsk_failed_follow_up";
    answered(&a, json!({"input": "first", "taskId": task})).await;
    fake.push_fault(Fault::Status {
        status: 503,
        message: "overloaded".into(),
        retry_after: None,
    });
    let second = call(
        &a.client,
        "create_task",
        json!({"input": "second", "taskId": task}),
    )
    .await;
    assert!(is_error(&second), "{}", text(&second));

    for (name, replica) in [("A", &a), ("B", &b)] {
        let collected = call(&replica.client, "get_task", json!({"taskId": task})).await;
        assert!(is_error(&collected), "{name}: {}", text(&collected));
        assert!(
            text(&collected).contains("503") && text(&collected).contains("did not record"),
            "{name}: {}",
            text(&collected)
        );
        let data = structured(&collected);
        assert_eq!(data["status"], "failed", "{name}: {data}");
        assert_eq!(data["outputText"], "", "{name}: {data}");
        assert_eq!(data["turns"][0]["outputText"], "answer to: first (turn 1)");
    }
    assert_eq!(fake.turns(task).len(), 1);
}

/// A replica remembers a task's first answer; its second turn runs on another replica.
/// When the store loses its data, or stops answering, the first replica must not serve the
/// answer it remembers as the task's: Handinger's newest turn is the running second one.
#[tokio::test]
async fn an_answer_remembered_here_is_not_served_while_a_newer_turn_runs_elsewhere() {
    let mut redis = Redis::start().await;
    let fake = FakeHandinger::start().await;
    let a = replica(&fake, &redis, &[]).await;
    let b = replica(&fake, &redis, &["--max-wait", "1"]).await;
    let task = "tsk_newer_elsewhere";
    answered(&a, json!({"input": "first", "taskId": task})).await;
    let second = call(
        &b.client,
        "create_task",
        json!({"input": "second sleep=8000", "taskId": task}),
    )
    .await;
    assert_eq!(
        structured(&second)["status"],
        "running",
        "{}",
        text(&second)
    );

    redis.query(&["FLUSHALL"]);
    let emptied = call(&a.client, "get_task", json!({"taskId": task})).await;
    assert_eq!(
        structured(&emptied)["status"],
        "running",
        "store emptied: {}",
        text(&emptied)
    );
    redis.stop();
    let down = call(&a.client, "get_task", json!({"taskId": task})).await;
    assert_eq!(
        structured(&down)["status"],
        "running",
        "store down: {}",
        text(&down)
    );
    assert!(!text(&down).contains("answer to: first"), "{}", text(&down));
}

/// A call queued at a replica that is paused runs when it resumes, after the same call
/// was answered by another replica: it is answered from that turn, and nothing is posted
/// a second time.
#[tokio::test]
async fn a_call_that_runs_late_on_a_stalled_replica_does_not_post_again() {
    let redis = Redis::start().await;
    let fake = FakeHandinger::start().await;
    let a = replica(&fake, &redis, &[]).await;
    let b = replica(&fake, &redis, &[]).await;
    let ask = json!({"input": "asked twice", "taskId": "tsk_late_call"});

    signal(a.pid, "STOP");
    let late = call(&a.client, "create_task", ask.clone());
    let on_b = async {
        let answered = call(&b.client, "create_task", ask.clone()).await;
        signal(a.pid, "CONT");
        answered
    };
    let (late, answered) = tokio::join!(late, on_b);
    assert!(!is_error(&answered), "{}", text(&answered));
    assert!(!is_error(&late), "{}", text(&late));
    assert_eq!(
        structured(&late)["outputText"],
        structured(&answered)["outputText"]
    );
    assert!(
        text(&late).contains("same as the task's latest turn"),
        "{}",
        text(&late)
    );
    assert_eq!(fake.posts().len(), 1, "the late call posted again");
}

/// A call lost in transit (sent to a replica that stalled, then died) was never posted:
/// get_task names the latest turn's input, so the caller can see its own is not there, and
/// sending the call again posts it once.
#[tokio::test]
async fn a_call_lost_with_its_replica_can_be_told_and_sent_again() {
    let redis = Redis::start().await;
    let fake = FakeHandinger::start().await;
    let a = replica(&fake, &redis, &[]).await;
    let b = replica(&fake, &redis, &[]).await;
    let task = "tsk_lost_in_transit";
    answered(&b, json!({"input": "first", "taskId": task})).await;

    signal(a.pid, "STOP");
    let second = json!({"input": "second", "taskId": task});
    let lost = tokio::time::timeout(
        std::time::Duration::from_millis(500),
        call(&a.client, "create_task", second.clone()),
    )
    .await;
    assert!(lost.is_err(), "the stalled replica answered");
    signal(a.pid, "KILL");

    let looked = call(&b.client, "get_task", json!({"taskId": task})).await;
    assert!(
        text(&looked).contains("Latest turn's input: \"first\""),
        "{}",
        text(&looked)
    );
    let sent = answered(&b, second).await;
    assert_eq!(
        structured(&sent)["outputText"],
        "answer to: second (turn 2)"
    );
    assert_eq!(fake.turns(task).len(), 2);
}

/// After Redis restarts, the replica's connection is dead; the first call must not be
/// refused for it (it once failed with "broken pipe").
#[tokio::test]
async fn the_first_call_after_redis_restarts_is_not_refused() {
    let mut redis = Redis::start().await;
    let fake = FakeHandinger::start().await;
    let a = replica(&fake, &redis, &[]).await;
    answered(&a, json!({"input": "before"})).await;
    redis.restart(false);
    answered(&a, json!({"input": "after"})).await;
    assert_eq!(fake.posts().len(), 2);
}

/// The call of [`running_on_a_with`] sent again on B, while A's turn still runs on
/// Handinger: answered with the turn A posted, which Handinger holds once.
async fn retry_on_b_follows_the_turn(run: &Running, input: &str) {
    // Were the turn over, B could answer from its record (--repeat-window) and this would
    // not test following a running turn.
    assert_eq!(
        run.fake.turns(&run.task_id)[0].status,
        "running",
        "the turn ended before the retry: give it a longer sleep="
    );
    let retried = answered(&run.b, json!({"input": input, "taskId": run.task_id})).await;
    assert_eq!(
        structured(&retried)["status"],
        "completed",
        "{}",
        text(&retried)
    );
    assert_eq!(
        structured(&retried)["outputText"],
        format!("answer to: {input} (turn 1)"),
        "{}",
        text(&retried)
    );
    assert_eq!(run.fake.turns(&run.task_id).len(), 1, "posted twice");
}

/// Redis restarts without its data while a turn runs on A: the retry on B must not post the
/// turn a second time (the store no longer knows it runs), but follow it on Handinger.
#[tokio::test]
async fn a_turn_running_when_the_store_lost_its_data_is_not_posted_again() {
    let input = "in flight sleep=6000";
    let mut run = running_on_a_with(
        &['b'],
        json!({"input": input, "taskId": "tsk_store_amnesia"}),
    )
    .await;
    run.redis.restart(false);
    retry_on_b_follows_the_turn(&run, input).await;
}

/// As above, but the replica that marked the store before the loss is also the first to
/// claim after it (what the chaos run met): the store's new mark must still differ from the
/// old one for B, which then follows the running turn instead of posting it again.
#[tokio::test]
async fn a_loss_is_seen_when_the_replica_that_marked_the_store_marks_it_again() {
    let input = "in flight sleep=6000";
    let mut run = running_on_a_with(
        &['a', 'b'],
        json!({"input": input, "taskId": "tsk_store_marked_again"}),
    )
    .await;
    run.redis.restart(false);
    // A claims first after the loss, and marks the emptied store again.
    answered(&run.a, json!({"input": "first after the loss"})).await;
    retry_on_b_follows_the_turn(&run, input).await;
}

/// The store's names are keyed with the deployment's secret: a digest of the API key alone
/// (which anyone reading Redis could test guesses of a short key against) appears in none,
/// and a replica started without the secret refuses to start, saying how to set it.
#[tokio::test]
async fn store_names_are_keyed_with_the_deployment_secret() {
    use sha2::Digest as _;
    let redis = Redis::start().await;
    let fake = FakeHandinger::start().await;
    let a = replica(&fake, &redis, &[]).await;
    let done = answered(&a, json!({"input": "named"})).await;
    let task_id = structured(&done)["taskId"].as_str().unwrap().to_owned();
    let pattern = format!("*:{task_id}:*");
    let keys = common::poll::until(
        "the task's keys appear in the store",
        std::time::Duration::from_millis(20),
        || {
            let keys = redis.query(&["KEYS", &pattern]);
            std::future::ready(if keys.is_empty() {
                Err("none".to_owned())
            } else {
                Ok(keys)
            })
        },
    )
    .await;
    let mut unkeyed = sha2::Sha256::new();
    unkeyed.update(b"handinger-mcp store scope\0");
    unkeyed.update(format!("Bearer {API_KEY}").as_bytes());
    let unkeyed: String = unkeyed.finalize()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    for key in &keys {
        assert!(
            !key.contains(&unkeyed),
            "{key} names the key's plain digest"
        );
    }

    let mut unkeyed_replica = command(&fake.base_url, &["--store", &redis.url()]);
    unkeyed_replica.env_remove("HANDINGER_MCP_STORE_SECRET");
    let output = run_to_completion(unkeyed_replica).await;
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("HANDINGER_MCP_STORE_SECRET") && stderr.contains("openssl rand"),
        "{stderr}"
    );
}

/// Handinger refuses a turn's POST on A with Retry-After, and A stalls through the pause
/// for longer than its lease (SIGSTOP): B, asked the same call meanwhile, finds the claim
/// orphaned and no turn on Handinger, and on the caller's next try takes it over and posts
/// it. A, woken, must not send
/// its refused POST again: Handinger would run the turn twice.
#[tokio::test]
async fn a_refused_post_is_not_resent_once_its_claim_may_have_been_taken_over() {
    let redis = Redis::start().await;
    let fake = FakeHandinger::start().await;
    let a = replica(&fake, &redis, &["--store-lease", "3", "--max-wait", "1"]).await;
    let b = replica(&fake, &redis, &["--store-lease", "3"]).await;
    fake.push_fault(Fault::Status {
        status: 429,
        message: "slow down".into(),
        retry_after: Some(6),
    });
    let ask = json!({"input": "refused first", "taskId": "tsk_refused_then_stalled"});
    let started = call(&a.client, "create_task", ask.clone()).await;
    assert_eq!(
        structured(&started)["status"],
        "running",
        "{}",
        text(&started)
    );
    signal(a.pid, "STOP");
    // B follows A's claim until its lease lapses, finds no turn on Handinger and says so;
    // the caller sends the call again, and B takes the turn over and posts it.
    let told = call(&b.client, "create_task", ask.clone()).await;
    assert!(text(&told).contains("again is safe"), "{}", text(&told));
    let taken_over = answered(&b, ask).await;
    assert_eq!(
        structured(&taken_over)["outputText"],
        "answer to: refused first (turn 1)",
        "{}",
        text(&taken_over)
    );
    signal(a.pid, "CONT");
    // A's pause ends a few seconds after B's answer: it decides then.
    common::poll::until(
        "A decides about its refused POST",
        std::time::Duration::from_millis(100),
        || async {
            let log = a.stderr.lock().unwrap().clone();
            if log.contains("not resending") || fake.posts().len() > 2 {
                Ok(())
            } else {
                Err(format!("{} POSTs", fake.posts().len()))
            }
        },
    )
    .await;
    assert_eq!(
        fake.turns("tsk_refused_then_stalled").len(),
        1,
        "the refused POST was sent again after B posted the turn"
    );
}

/// A follow-up without a worker goes to the worker of the task's latest turn, wherever
/// that turn ran: turn 2 ran on B with another worker, so turn 3 on A uses it, not the
/// worker A remembers from turn 1.
#[tokio::test]
async fn a_follow_up_uses_the_latest_turns_worker_from_the_store() {
    let redis = Redis::start().await;
    let fake = FakeHandinger::start().await;
    let a = replica(&fake, &redis, &[]).await;
    let b = replica(&fake, &redis, &[]).await;
    let task = "tsk_worker_moved";
    answered(&a, json!({"input": "first", "taskId": task})).await;
    answered(
        &b,
        json!({"input": "second", "taskId": task, "workerId": "wrk_second"}),
    )
    .await;
    answered(&a, json!({"input": "third", "taskId": task})).await;
    let posts = fake.posts();
    assert_eq!(posts.len(), 3);
    assert_eq!(posts[2].body["workerId"], "wrk_second", "{}", posts[2].body);
}
