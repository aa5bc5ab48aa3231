//! Load and fault soak: many mixed quick and slow `create_task` calls at once while the
//! fake Handinger injects 429s, 5xx (before and after it records the turn), resets
//! mid-body, slow bodies and failing lookups, drawn from a seeded generator.
//!
//! At the end, three things must hold:
//! - every call got exactly one answer (checked on the wire: a raw JSON-RPC client counts
//!   responses per id), and each answer is either correct or a clear error;
//! - Handinger saw no duplicate turn: no task has more turns than calls that asked for it;
//! - no task was lost: every taskId a client was given (or chose) can still be collected
//!   with `get_task`, and what it returns agrees with what Handinger holds.
//!
//! The default run is short enough for `cargo test`. A longer one uses the same code:
//! `SOAK_CALLS=3000 SOAK_CONCURRENCY=64 SOAK_SEED=7 cargo test --release --test it soak::`.
//! Loopback only, bounded in count (`SOAK_CALLS`) and time (every wait has a deadline).

use crate::common;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::fake::{Chaos, TurnRecord};
use common::http::{HttpBridge, start_http};
use common::*;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin};
use tokio::sync::{Semaphore, oneshot};

/// Longest any single call may take before the soak calls it lost.
const CALL_DEADLINE: Duration = Duration::from_secs(60);

struct SoakSettings {
    calls: usize,
    concurrency: usize,
    seed: u64,
}

impl SoakSettings {
    fn from_env() -> Self {
        SoakSettings {
            calls: env_number("SOAK_CALLS", 160) as usize,
            concurrency: env_number("SOAK_CONCURRENCY", 16).max(1) as usize,
            seed: env_number("SOAK_SEED", 0x5eed_2026),
        }
    }
}

/// The faults of a soak run; chances per mille of `POST /api/tasks`.
fn chaos(seed: u64) -> Chaos {
    let status = |status: u16, retry_after: Option<u64>| Fault::Status {
        status,
        message: "injected".into(),
        retry_after,
    };
    Chaos::new(
        seed,
        vec![
            (60, status(429, Some(0))),
            (40, status(429, None)),
            (50, status(503, None)),
            (50, Fault::RecordThenStatus(502)),
            (40, Fault::RecordThenStatus(500)),
            (50, Fault::Cut),
            (
                80,
                Fault::SlowBody {
                    chunks: 4,
                    pause: Duration::from_millis(60),
                },
            ),
        ],
        200,
    )
}

/// A JSON-RPC client on the bridge's stdio that checks the wire itself: every response is
/// matched to its request by id, and anything else (a second response, an unknown id) is
/// kept as a stray for the final check.
struct RawClient {
    stdin: tokio::sync::Mutex<ChildStdin>,
    pending: Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>>,
    strays: Arc<Mutex<Vec<Value>>>,
    next_id: AtomicU64,
    _child: Child,
}

impl RawClient {
    async fn start(base_url: &str, args: &[&str]) -> Self {
        let mut cmd = command(base_url, args);
        cmd.env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true);
        let mut child = cmd.spawn().expect("spawn handinger-mcp");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let pending: Arc<Mutex<HashMap<u64, oneshot::Sender<Value>>>> = Default::default();
        let strays: Arc<Mutex<Vec<Value>>> = Default::default();
        let (reader_pending, reader_strays) = (pending.clone(), strays.clone());
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let Ok(message) = serde_json::from_str::<Value>(&line) else {
                    reader_strays.lock().unwrap().push(Value::String(line));
                    continue;
                };
                if message.get("method").is_some() {
                    continue; // notifications (progress, logging); we declared nothing to ask us
                }
                let sender = message
                    .get("id")
                    .and_then(Value::as_u64)
                    .and_then(|id| reader_pending.lock().unwrap().remove(&id));
                match sender {
                    Some(sender) => {
                        let _ = sender.send(message);
                    }
                    None => reader_strays.lock().unwrap().push(message),
                }
            }
        });
        let client = RawClient {
            stdin: tokio::sync::Mutex::new(stdin),
            pending,
            strays,
            next_id: AtomicU64::new(1),
            _child: child,
        };
        let init = client
            .request("initialize", rpc::initialize_params("2025-06-18", "soak"))
            .await;
        assert!(init.get("result").is_some(), "initialize: {init}");
        client.send(&rpc::initialized()).await;
        client
    }

    async fn send(&self, message: &Value) {
        let line = rpc::line(message);
        let mut stdin = self.stdin.lock().await;
        stdin.write_all(&line).await.expect("write to the bridge");
        stdin.flush().await.expect("flush");
    }

    async fn request(&self, method: &str, params: Value) -> Value {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending.lock().unwrap().insert(id, tx);
        self.send(&rpc::request(id, method, params)).await;
        match tokio::time::timeout(CALL_DEADLINE, rx).await {
            Ok(Ok(response)) => response,
            Ok(Err(_)) => panic!("the bridge closed stdout before answering request {id}"),
            Err(_) => panic!("request {id} ({method}) got no answer within {CALL_DEADLINE:?}"),
        }
    }

    /// A `tools/call`, returning its `result` (a JSON-RPC error fails the soak).
    async fn call(&self, tool: &str, arguments: Value) -> Value {
        let response = self
            .request("tools/call", json!({"name": tool, "arguments": arguments}))
            .await;
        response
            .get("result")
            .cloned()
            .unwrap_or_else(|| panic!("{tool}: a protocol error instead of a result: {response}"))
    }
}

/// How the soak reaches the bridge.
enum Caller {
    Stdio(RawClient),
    /// Streamable HTTP in `--stateless` mode: one POST per call, answered with one JSON body.
    Http {
        http: reqwest::Client,
        url: String,
        next_id: AtomicU64,
        _bridge: HttpBridge,
    },
}

impl Caller {
    /// A `tools/call`, returning its `result`; a protocol error, an HTTP error status or
    /// an answer to another request fails the soak.
    async fn call(&self, tool: &str, arguments: Value) -> Value {
        match self {
            Caller::Stdio(client) => client.call(tool, arguments).await,
            Caller::Http {
                http, url, next_id, ..
            } => {
                let id = next_id.fetch_add(1, Ordering::Relaxed);
                let body = rpc::tool_call(id, tool, arguments);
                let sent = rpc::post_initialized(http, url, None, &body).send();
                let response = tokio::time::timeout(CALL_DEADLINE, sent)
                    .await
                    .unwrap_or_else(|_| {
                        panic!("{tool} call {id} got no answer within {CALL_DEADLINE:?}")
                    })
                    .unwrap_or_else(|e| panic!("{tool} call {id}: {e}"));
                let status = response.status();
                let answer: Value = response
                    .json()
                    .await
                    .unwrap_or_else(|e| panic!("{tool} call {id}: {e}"));
                assert!(
                    status.is_success(),
                    "{tool} call {id}: HTTP {status}: {answer}"
                );
                assert_eq!(
                    answer["id"],
                    json!(id),
                    "{tool}: the answer of another request"
                );
                answer.get("result").cloned().unwrap_or_else(|| {
                    panic!("{tool}: a protocol error instead of a result: {answer}")
                })
            }
        }
    }

    fn strays(&self) -> Vec<Value> {
        match self {
            Caller::Stdio(client) => client.strays.lock().unwrap().clone(),
            Caller::Http { .. } => Vec::new(),
        }
    }
}

/// What one soak call asked.
#[derive(Debug, Clone)]
struct Ask {
    index: usize,
    input: String,
    task_id: Option<String>,
    /// Arguments the bridge must refuse before sending anything.
    invalid: bool,
}

/// What one soak call asked and got.
#[derive(Debug)]
struct Exchange {
    ask: Ask,
    result: Value,
}

/// The mix of calls: quick and slow, with and without a chosen taskId, the same call sent
/// twice at once (it must join, not add a turn), and arguments the bridge must refuse.
fn plan(settings: &SoakSettings) -> Vec<Ask> {
    let mut rng = Chaos::new(settings.seed ^ 0xa5a5, Vec::new(), 0);
    let mut asks = Vec::with_capacity(settings.calls);
    while asks.len() < settings.calls {
        let index = asks.len();
        let roll = rng.next_u64() % 100;
        let slow = rng.next_u64() % 100 < 25;
        let pause = if slow {
            1200 + rng.next_u64() % 1300
        } else {
            rng.next_u64() % 40
        };
        let input = format!("soak call {index} sleep={pause}");
        let own_id = format!("tsk_soak_{:x}_{index}", settings.seed);
        match roll {
            0..45 => asks.push(Ask {
                index,
                input,
                task_id: None,
                invalid: false,
            }),
            45..80 => asks.push(Ask {
                index,
                input,
                task_id: Some(own_id),
                invalid: false,
            }),
            80..92 => {
                for copy in 0..2 {
                    asks.push(Ask {
                        index: index + copy,
                        input: input.clone(),
                        task_id: Some(own_id.clone()),
                        invalid: false,
                    });
                }
            }
            _ => asks.push(Ask {
                index,
                input,
                task_id: None,
                invalid: true,
            }),
        }
    }
    asks.truncate(settings.calls);
    asks
}

fn arguments(ask: &Ask) -> Value {
    let mut arguments = json!({"input": ask.input, "budget": "low"});
    if let Some(task_id) = &ask.task_id {
        arguments["taskId"] = json!(task_id);
    }
    if ask.invalid {
        arguments["budget"] = json!("enormous");
    }
    arguments
}

/// Task ids a result names: the structured taskId, and any `tsk_…` in the text.
fn named_task_ids(result: &Value) -> Vec<String> {
    let mut ids: Vec<String> = result["structuredContent"]["taskId"]
        .as_str()
        .map(str::to_owned)
        .into_iter()
        .collect();
    let text = rpc::result_text(result);
    for (start, _) in text.match_indices("tsk_") {
        let id: String = text[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | ':'))
            .collect();
        ids.push(id.trim_end_matches(['.', ':']).to_owned());
    }
    ids.sort();
    ids.dedup();
    ids
}

/// Checks one answer on its own: correct, running with a handle, or a clear error.
fn check_answer(exchange: &Exchange) -> Result<(), String> {
    let Exchange { ask, result } = exchange;
    let text = rpc::result_text(result);
    let structured = &result["structuredContent"];
    if ask.invalid {
        return (rpc::is_error_result(result) && text.contains("Invalid arguments"))
            .then_some(())
            .ok_or_else(|| {
                format!(
                    "call {}: invalid arguments not refused clearly: {result}",
                    ask.index
                )
            });
    }
    if let (Some(asked), Some(got)) = (&ask.task_id, structured["taskId"].as_str())
        && asked != got
    {
        return Err(format!(
            "call {}: asked for task {asked}, answered for {got}",
            ask.index
        ));
    }
    if rpc::is_error_result(result) {
        // A clear error says what failed and carries the handle to follow up with.
        let clear = !text.trim().is_empty()
            && (text.contains("Handinger") || text.contains("already has a turn running"))
            && !named_task_ids(result).is_empty();
        return clear
            .then_some(())
            .ok_or_else(|| format!("call {}: unclear error: {text}", ask.index));
    }
    match structured["status"].as_str() {
        Some("completed") => {
            let output = structured["outputText"].as_str().unwrap_or_default();
            let expected = format!("answer to: {} (turn ", ask.input);
            output.starts_with(&expected).then_some(()).ok_or_else(|| {
                format!(
                    "call {}: wrong answer {output:?} for {:?}",
                    ask.index, ask.input
                )
            })
        }
        Some("running") => structured["taskId"]
            .as_str()
            .is_some_and(|id| text.contains(id) && text.contains("get_task"))
            .then_some(())
            .ok_or_else(|| {
                format!(
                    "call {}: running without a usable handle: {result}",
                    ask.index
                )
            }),
        other => Err(format!(
            "call {}: unexpected status {other:?}: {result}",
            ask.index
        )),
    }
}

/// Collects a task with get_task until it stops running (bounded), then checks the answer
/// against what the fake holds.
async fn check_collectable(
    client: &Caller,
    task_id: &str,
    fake: &FakeHandinger,
) -> Result<(), String> {
    let mut last = Value::Null;
    for _ in 0..10 {
        last = client
            .call("get_task", json!({"taskId": task_id, "wait": 5}))
            .await;
        if last["structuredContent"]["status"] != "running" {
            break;
        }
    }
    let text = rpc::result_text(&last);
    // Read after collecting: a slow turn may have been running until now.
    let upstream: Vec<TurnRecord> = fake.turns(task_id);
    let latest = upstream.last();
    match latest {
        Some(turn) => {
            let expected = turn.output.clone().unwrap_or_default();
            let output = last["structuredContent"]["outputText"]
                .as_str()
                .unwrap_or_default();
            (!rpc::is_error_result(&last)
                && last["structuredContent"]["status"] == "completed"
                && !expected.is_empty()
                && output.starts_with(&expected))
            .then_some(())
            .ok_or_else(|| {
                format!("task {task_id} ran upstream ({expected:?}) but get_task gives: {text}")
            })
        }
        None => (rpc::is_error_result(&last) && !text.trim().is_empty())
            .then_some(())
            .ok_or_else(|| {
                format!("task {task_id} never ran upstream, yet get_task gives a non-error: {text}")
            }),
    }
}

/// Bridge settings of a soak: short waits, so slow calls come back "running".
const SOAK_ARGS: [&str; 4] = ["--max-wait", "1", "--progress-interval", "1"];

async fn soak_stdio(settings: SoakSettings) {
    let fake = FakeHandinger::start().await;
    fake.set_chaos(chaos(settings.seed));
    let client = Caller::Stdio(RawClient::start(&fake.base_url, &SOAK_ARGS).await);
    soak(client, &fake, &settings, "stdio").await;
}

async fn soak_http(settings: SoakSettings) {
    let fake = FakeHandinger::start().await;
    fake.set_chaos(chaos(settings.seed));
    let limit = (settings.concurrency * 2).to_string();
    let mut args = SOAK_ARGS.to_vec();
    args.extend([
        "--stateless",
        "--rate-limit",
        "0",
        "--max-concurrent-calls",
        &limit,
        // One address is the whole load here: its connections may take every place.
        "--max-connections-per-client",
        "2048",
        "--max-pending-connections-per-client",
        "2048",
    ]);
    let bridge = start_http(&fake.base_url, &args).await;
    let client = Caller::Http {
        http: common::http_client(),
        url: bridge.url("/mcp"),
        next_id: AtomicU64::new(1),
        _bridge: bridge,
    };
    soak(client, &fake, &settings, "HTTP").await;
}

/// Runs the planned calls through `client` under the fake's faults, then checks the
/// outcome (see the module doc).
async fn soak(client: Caller, fake: &FakeHandinger, settings: &SoakSettings, transport: &str) {
    let client = Arc::new(client);

    let asks = plan(settings);
    let gate = Arc::new(Semaphore::new(settings.concurrency));
    let mut running = Vec::with_capacity(asks.len());
    for ask in asks {
        let (client, gate) = (client.clone(), gate.clone());
        running.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.unwrap();
            let result = client.call("create_task", arguments(&ask)).await;
            Exchange { ask, result }
        }));
    }
    let mut exchanges = Vec::with_capacity(running.len());
    for call in running {
        exchanges.push(call.await.expect("soak call"));
    }

    // Faults stop here: what follows checks the outcome, not the retry policy again.
    let injected = fake.stop_chaos().map(|c| c.injected).unwrap_or_default();
    let mut problems: Vec<String> = exchanges
        .iter()
        .filter_map(|e| check_answer(e).err())
        .collect();

    // Who asked for what: requested ids count every call; generated ids the call they
    // were handed to.
    let mut asked: HashMap<String, usize> = HashMap::new();
    let mut given: HashSet<String> = HashSet::new();
    for exchange in &exchanges {
        let mut ids: HashSet<String> = named_task_ids(&exchange.result).into_iter().collect();
        ids.extend(exchange.ask.task_id.clone());
        for id in ids {
            *asked.entry(id.clone()).or_default() += 1;
            given.insert(id);
        }
    }

    let upstream = fake.all_turns();
    for (task_id, turns) in &upstream {
        let asks = asked.get(task_id).copied().unwrap_or(0);
        if turns.len() > asks {
            problems.push(format!(
                "task {task_id} has {} turns upstream but only {asks} calls asked for it",
                turns.len()
            ));
        }
        if !given.contains(task_id) {
            problems.push(format!(
                "task {task_id} ran upstream but no client was told its id"
            ));
        }
    }

    let mut collections = Vec::new();
    for task_id in &given {
        let (client, task_id) = (client.clone(), task_id.clone());
        let (fake, gate) = (fake.clone(), gate.clone());
        collections.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.unwrap();
            check_collectable(&client, &task_id, &fake).await
        }));
    }
    for collection in collections {
        if let Err(problem) = collection.await.expect("collection") {
            problems.push(problem);
        }
    }
    // A turn that was still running upstream when its check ran shows up here at the end.
    let final_upstream = fake.all_turns();
    for (task_id, turns) in &final_upstream {
        let asks = asked.get(task_id).copied().unwrap_or(0);
        if turns.len() > asks {
            problems.push(format!(
                "task {task_id} ended with {} turns upstream for {asks} calls",
                turns.len()
            ));
        }
    }

    tokio::time::sleep(Duration::from_millis(200)).await;
    let strays = client.strays();
    if !strays.is_empty() {
        problems.push(format!("answers no request was waiting for: {strays:?}"));
    }

    let mut statuses: BTreeMap<String, usize> = BTreeMap::new();
    for exchange in &exchanges {
        let status = if rpc::is_error_result(&exchange.result) {
            "error".to_owned()
        } else {
            exchange.result["structuredContent"]["status"]
                .as_str()
                .unwrap_or("?")
                .to_owned()
        };
        *statuses.entry(status).or_default() += 1;
    }
    eprintln!(
        "soak ({transport}, seed {:#x}): {} calls, answers {statuses:?}, injected {injected:?}, {} tasks upstream, {} ids collected",
        settings.seed,
        exchanges.len(),
        final_upstream.len(),
        given.len()
    );
    assert!(
        problems.is_empty(),
        "{} problems (seed {:#x}):\n{}",
        problems.len(),
        settings.seed,
        problems.join("\n")
    );
    assert!(
        injected.values().sum::<u64>() > 0,
        "the soak injected no fault: raise SOAK_CALLS"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stdio_soak_under_faults_answers_every_call_once_without_duplicate_or_lost_turns() {
    soak_stdio(SoakSettings::from_env()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_soak_under_faults_answers_every_call_once_without_duplicate_or_lost_turns() {
    soak_http(SoakSettings::from_env()).await;
}

/// What the soak found: a POST that failed after Handinger recorded the turn, followed by
/// lookups that failed too, left an outcome that said "check it with get_task", and
/// get_task answered with that same outcome forever while the turn had finished upstream.
#[tokio::test]
async fn get_task_looks_up_a_turn_the_bridge_could_not_settle() {
    let fake = FakeHandinger::start().await;
    fake.push_fault(Fault::RecordThenStatus(502));
    // Every lookup of the reconciliation (three attempts) fails.
    fake.state.lock().unwrap().failing_lookups = 3;
    let bridge = start(&fake.base_url, &[]).await;
    let first = call(&bridge.client, "create_task", json!({"input": "unsettled"})).await;
    assert!(is_error(&first), "{}", text(&first));
    assert!(text(&first).contains("do not resend"), "{}", text(&first));
    let task_id = named_task_ids(&serde_json::to_value(&first).unwrap())
        .pop()
        .expect("the error names the taskId");

    let collected = call(&bridge.client, "get_task", json!({"taskId": task_id})).await;
    assert!(!is_error(&collected), "{}", text(&collected));
    assert_eq!(structured(&collected)["status"], "completed");
    assert_eq!(
        structured(&collected)["outputText"],
        "answer to: unsettled (turn 1)"
    );
    assert_eq!(fake.posts().len(), 1, "collected without a second POST");
}

/// Also from the soak: a follow-up on a finished task was refused (429s, not recorded).
/// get_task must neither hide the task's first answer (it once answered with the refusal
/// alone) nor pass that first answer off as the follow-up's (a model would take it for its
/// answer): the failure and the resend advice lead, and the first turn's answer stays in
/// the turn list.
#[tokio::test]
async fn a_refused_follow_up_does_not_hide_the_task_from_get_task() {
    let fake = FakeHandinger::start().await;
    let bridge = start(&fake.base_url, &[]).await;
    let task = "tsk_refused_follow_up";
    let first = call(
        &bridge.client,
        "create_task",
        json!({"input": "first", "taskId": task}),
    )
    .await;
    assert_eq!(
        structured(&first)["status"],
        "completed",
        "{}",
        text(&first)
    );
    for _ in 0..3 {
        fake.push_fault(Fault::Status {
            status: 429,
            message: "slow down".into(),
            retry_after: Some(0),
        });
    }
    let second = call(
        &bridge.client,
        "create_task",
        json!({"input": "second", "taskId": task}),
    )
    .await;
    assert!(is_error(&second), "{}", text(&second));
    assert!(
        text(&second).contains("did not record"),
        "{}",
        text(&second)
    );

    let collected = call(&bridge.client, "get_task", json!({"taskId": task})).await;
    assert!(is_error(&collected), "{}", text(&collected));
    assert!(
        text(&collected).contains("did not record") && text(&collected).contains("429"),
        "{}",
        text(&collected)
    );
    let data = structured(&collected);
    assert_eq!(data["status"], "failed", "{data}");
    assert_eq!(
        data["outputText"], "",
        "no earlier answer passes for this turn's"
    );
    assert_eq!(data["turns"][0]["outputText"], "answer to: first (turn 1)");
    assert_eq!(fake.turns(task).len(), 1);
}

/// A refused first turn leaves nothing upstream: get_task repeats why, rather than
/// "unknown id".
#[tokio::test]
async fn get_task_of_a_refused_first_turn_explains_the_refusal() {
    let fake = FakeHandinger::start().await;
    for _ in 0..3 {
        fake.push_fault(Fault::Status {
            status: 429,
            message: "slow down".into(),
            retry_after: Some(0),
        });
    }
    let bridge = start(&fake.base_url, &[]).await;
    let ask = json!({"input": "once", "taskId": "tsk_refused_first"});
    let refused = call(&bridge.client, "create_task", ask).await;
    assert!(is_error(&refused), "{}", text(&refused));
    let collected = call(
        &bridge.client,
        "get_task",
        json!({"taskId": "tsk_refused_first"}),
    )
    .await;
    assert!(is_error(&collected), "{}", text(&collected));
    assert!(
        text(&collected).contains("429") && text(&collected).contains("did not record"),
        "{}",
        text(&collected)
    );
}
