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

/// A whole number from the environment variable `name`, or `default`: how a longer run is
/// sized without editing the test.
fn number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

impl SoakSettings {
    fn from_env() -> Self {
        SoakSettings {
            calls: number("SOAK_CALLS", 160) as usize,
            concurrency: number("SOAK_CONCURRENCY", 16).max(1) as usize,
            seed: number("SOAK_SEED", 0x5eed_2026),
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

fn result_text(result: &Value) -> String {
    result["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["text"].as_str())
        .collect::<Vec<_>>()
        .join("\n")
}

fn is_error_result(result: &Value) -> bool {
    result["isError"] == json!(true)
}

/// Task ids a result names: the structured taskId, and any `tsk_…` in the text.
fn named_task_ids(result: &Value) -> Vec<String> {
    let mut ids: Vec<String> = result["structuredContent"]["taskId"]
        .as_str()
        .map(str::to_owned)
        .into_iter()
        .collect();
    let text = result_text(result);
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
    let text = result_text(result);
    let structured = &result["structuredContent"];
    if ask.invalid {
        return (is_error_result(result) && text.contains("Invalid arguments"))
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
    if is_error_result(result) {
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
    let text = result_text(&last);
    // Read after collecting: a slow turn may have been running until now.
    let upstream: Vec<TurnRecord> = fake.turns(task_id);
    let latest = upstream.last();
    match latest {
        Some(turn) => {
            let expected = turn.output.clone().unwrap_or_default();
            let output = last["structuredContent"]["outputText"]
                .as_str()
                .unwrap_or_default();
            (!is_error_result(&last)
                && last["structuredContent"]["status"] == "completed"
                && !expected.is_empty()
                && output.starts_with(&expected))
            .then_some(())
            .ok_or_else(|| {
                format!("task {task_id} ran upstream ({expected:?}) but get_task gives: {text}")
            })
        }
        None => (is_error_result(&last) && !text.trim().is_empty())
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
        let status = if is_error_result(&exchange.result) {
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

// Replicas sharing one store under faults of the replicas and of the store itself.

/// What a chaos run across replicas plans and injects.
struct ChaosSettings {
    tasks: usize,
    turns: usize,
    concurrency: usize,
    seed: u64,
}

impl ChaosSettings {
    fn from_env() -> Self {
        ChaosSettings {
            tasks: number("CHAOS_TASKS", 60) as usize,
            turns: number("CHAOS_TURNS", 4) as usize,
            concurrency: number("CHAOS_CONCURRENCY", 16).max(1) as usize,
            seed: number("CHAOS_SEED", 0xc4a0_5eed),
        }
    }
}

/// The store lease the chaos replicas run with: short, so pauses longer than it fit a CI run.
const CHAOS_LEASE_SECS: u64 = 3;
/// How long a chaos call may take before its caller gives up on it (as a client's timeout
/// would) and sends it again, maybe to another replica.
const CHAOS_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// One replica: `http --stateless` on the shared store, as behind a load balancer.
async fn chaos_replica(fake: &FakeHandinger, store: &str) -> Arc<HttpBridge> {
    let lease = CHAOS_LEASE_SECS.to_string();
    let args = [
        "--stateless",
        "--store",
        store,
        "--store-lease",
        &lease,
        "--max-wait",
        "2",
        "--rate-limit",
        "0",
    ];
    Arc::new(start_http(&fake.base_url, &args).await)
}

/// A `tools/call` to one replica: its result, or why there was none (a timeout, a refused
/// or dropped connection, a replica that was killed).
async fn chaos_call(
    http: &reqwest::Client,
    bridge: &HttpBridge,
    id: u64,
    tool: &str,
    arguments: Value,
) -> Result<Value, String> {
    let body = rpc::tool_call(id, tool, arguments);
    let sent = rpc::post_initialized(http, &bridge.url("/mcp"), None, &body).send();
    let answer = async {
        let response = sent.await.map_err(|e| e.to_string())?;
        let status = response.status();
        let answer: Value = response.json().await.map_err(|e| e.to_string())?;
        if !status.is_success() {
            return Err(format!("HTTP {status}: {answer}"));
        }
        answer
            .get("result")
            .cloned()
            .ok_or_else(|| format!("no result: {answer}"))
    };
    tokio::time::timeout(CHAOS_CALL_TIMEOUT, answer)
        .await
        .unwrap_or_else(|_| Err("timed out".into()))
}

/// What the run saw go wrong; all must stay zero.
#[derive(Debug, Default)]
struct Violations {
    /// An answer that is not the caller's own turn's.
    wrong: Vec<String>,
    /// get_task "completed" with another turn's answer while the caller's turn was recorded.
    stale: Vec<String>,
    /// "Safe to resend" while Handinger held the turn.
    unsafe_resend: Vec<String>,
}

/// What the run did, for the figures.
#[derive(Debug, Default)]
struct ChaosTally {
    calls: u64,
    retries: u64,
    busy: u64,
    joined_running: u64,
    faults: BTreeMap<&'static str, u64>,
}

/// Drives one task through its turns, each sent again (same taskId and input) until it is
/// answered, as a client that never gets an answer would; checks every answer it gets.
#[allow(clippy::too_many_arguments)]
async fn chaos_task(
    task: usize,
    settings: Arc<ChaosSettings>,
    replicas: Arc<Vec<tokio::sync::RwLock<Arc<HttpBridge>>>>,
    fake: FakeHandinger,
    violations: Arc<Mutex<Violations>>,
    tally: Arc<Mutex<ChaosTally>>,
    next_id: Arc<AtomicU64>,
    deadline: tokio::time::Instant,
) -> Result<(), String> {
    let http = common::http_client();
    let task_id = format!("tsk_chaos_{task}");
    let mut random = Chaos::new(
        settings.seed ^ (task as u64).wrapping_mul(0x9e37),
        Vec::new(),
        0,
    );
    for turn in 1..=settings.turns {
        let sleep = 100 + random.next_u64() % 2400;
        let input = format!("task {task} turn {turn} sleep={sleep}");
        let expected = format!("answer to: {input} (turn {turn})");
        let recorded = || fake.turns(&task_id).iter().any(|t| t.input == input);
        let mut collecting = false;
        loop {
            if tokio::time::Instant::now() > deadline {
                return Err(format!("{task_id} turn {turn} never answered"));
            }
            let slot = (random.next_u64() % replicas.len() as u64) as usize;
            let bridge = replicas[slot].read().await.clone();
            let id = next_id.fetch_add(1, Ordering::Relaxed);
            let (tool, arguments) = if collecting {
                ("get_task", json!({"taskId": task_id, "wait": 2}))
            } else {
                ("create_task", json!({"taskId": task_id, "input": input}))
            };
            tally.lock().unwrap().calls += 1;
            let result = match chaos_call(&http, &bridge, id, tool, arguments).await {
                Ok(result) => result,
                Err(_) => {
                    tally.lock().unwrap().retries += 1;
                    continue;
                }
            };
            let text = result_text(&result);
            let data = result
                .get("structuredContent")
                .cloned()
                .unwrap_or(Value::Null);
            let status = data["status"].as_str().unwrap_or_default().to_owned();
            if !is_error_result(&result) && status == "completed" {
                if data["outputText"] == expected {
                    break;
                }
                let seen = format!("{task_id} turn {turn} via {tool}: {}", data["outputText"]);
                if collecting && recorded() {
                    violations.lock().unwrap().stale.push(seen);
                } else if !collecting {
                    violations.lock().unwrap().wrong.push(seen);
                }
                // Collected before the turn was recorded: send it again.
                collecting = false;
                continue;
            }
            if !is_error_result(&result) && status == "running" {
                if !collecting {
                    tally.lock().unwrap().joined_running += 1;
                }
                collecting = true;
                continue;
            }
            // A refusal or a failure: whatever it says, the same call may be sent again,
            // and it must never say "safe to resend" for a turn Handinger holds.
            if text.contains("did not record") && recorded() {
                violations
                    .lock()
                    .unwrap()
                    .unsafe_resend
                    .push(format!("{task_id} turn {turn}: {text}"));
            }
            if text.contains("already has a turn running") {
                tally.lock().unwrap().busy += 1;
            }
            tally.lock().unwrap().retries += 1;
            collecting = false;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// Replicas killed and restarted, replicas paused past their lease, Redis paused past its
/// operation timeout, restarted with its data and without it, while many tasks run their
/// turns through random replicas: no turn is lost or posted twice, no answer is another
/// turn's, and "safe to resend" is never said of a turn Handinger holds.
///
/// The default run fits CI; `CHAOS_TASKS`, `CHAOS_TURNS`, `CHAOS_CONCURRENCY` and
/// `CHAOS_SEED` size and seed a longer one.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_under_store_and_replica_faults_lose_no_turn_and_post_none_twice() {
    let settings = Arc::new(ChaosSettings::from_env());
    let redis = Arc::new(Mutex::new(common::redis::Redis::start().await));
    let store = redis.lock().unwrap().url();
    let fake = FakeHandinger::start().await;
    let mut slots = Vec::new();
    for _ in 0..3 {
        slots.push(tokio::sync::RwLock::new(chaos_replica(&fake, &store).await));
    }
    let replicas = Arc::new(slots);
    let violations: Arc<Mutex<Violations>> = Default::default();
    let tally: Arc<Mutex<ChaosTally>> = Default::default();
    let next_id = Arc::new(AtomicU64::new(1));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(150);

    let gate = Arc::new(Semaphore::new(settings.concurrency));
    let mut drivers = Vec::new();
    for task in 0..settings.tasks {
        let (settings, replicas, fake) = (settings.clone(), replicas.clone(), fake.clone());
        let (violations, tally, next_id, gate) = (
            violations.clone(),
            tally.clone(),
            next_id.clone(),
            gate.clone(),
        );
        drivers.push(tokio::spawn(async move {
            let _permit = gate.acquire_owned().await.unwrap();
            chaos_task(
                task, settings, replicas, fake, violations, tally, next_id, deadline,
            )
            .await
        }));
    }

    // The faults, in a seeded order, one every second or two until the drivers are done.
    let mut plan: Vec<&'static str> = [
        ["kill replica"; 6].as_slice(),
        ["pause replica past the lease"; 2].as_slice(),
        ["pause redis"; 1].as_slice(),
        ["restart redis with its data"; 1].as_slice(),
        ["restart redis without its data"; 1].as_slice(),
    ]
    .concat();
    let mut random = Chaos::new(settings.seed, Vec::new(), 0);
    for i in (1..plan.len()).rev() {
        plan.swap(i, (random.next_u64() % (i as u64 + 1)) as usize);
    }
    let faults = {
        let (replicas, fake, redis, tally) =
            (replicas.clone(), fake.clone(), redis.clone(), tally.clone());
        let store = store.clone();
        tokio::spawn(async move {
            for fault in plan {
                tokio::time::sleep(Duration::from_millis(800 + random.next_u64() % 1200)).await;
                *tally.lock().unwrap().faults.entry(fault).or_default() += 1;
                let slot = (random.next_u64() % replicas.len() as u64) as usize;
                match fault {
                    "kill replica" => {
                        let old = replicas[slot].read().await.clone();
                        signal(old.pid(), "KILL");
                        let fresh = chaos_replica(&fake, &store).await;
                        *replicas[slot].write().await = fresh;
                    }
                    "pause replica past the lease" => {
                        let paused = replicas[slot].read().await.clone();
                        signal(paused.pid(), "STOP");
                        tokio::time::sleep(Duration::from_secs(CHAOS_LEASE_SECS + 2)).await;
                        signal(paused.pid(), "CONT");
                    }
                    "pause redis" => {
                        redis.lock().unwrap().pause();
                        tokio::time::sleep(Duration::from_secs(4)).await;
                        redis.lock().unwrap().resume();
                    }
                    restart => {
                        let keep = restart == "restart redis with its data";
                        let redis = redis.clone();
                        tokio::task::spawn_blocking(move || redis.lock().unwrap().restart(keep))
                            .await
                            .unwrap();
                    }
                }
            }
        })
    };

    let mut lost = Vec::new();
    for driver in drivers {
        if let Err(why) = driver.await.unwrap() {
            lost.push(why);
        }
    }
    faults.await.unwrap();

    // Every planned turn reached Handinger exactly once, in order; nothing else did.
    let mut duplicates = Vec::new();
    for task in 0..settings.tasks {
        let task_id = format!("tsk_chaos_{task}");
        let inputs: Vec<String> = fake.turns(&task_id).into_iter().map(|t| t.input).collect();
        let mut seen = HashSet::new();
        for input in &inputs {
            if !seen.insert(input.clone()) {
                duplicates.push(format!("{task_id}: {input}"));
            }
        }
    }
    let violations = violations.lock().unwrap();
    let tally = tally.lock().unwrap();
    let turns = settings.tasks * settings.turns;
    eprintln!(
        "replica chaos, seed {:#x}: {turns} turns over {} tasks, {} POSTs, {} calls ({} sent again, {} refused busy, {} answered running), faults {:?}; lost {}, duplicate POSTs {}, wrong answers {}, stale answers {}, unsafe 'safe to resend' {}",
        settings.seed,
        settings.tasks,
        fake.posts().len(),
        tally.calls,
        tally.retries,
        tally.busy,
        tally.joined_running,
        tally.faults,
        lost.len(),
        duplicates.len(),
        violations.wrong.len(),
        violations.stale.len(),
        violations.unsafe_resend.len(),
    );
    assert!(lost.is_empty(), "turns lost: {lost:#?}");
    assert!(duplicates.is_empty(), "turns posted twice: {duplicates:#?}");
    assert!(
        violations.wrong.is_empty(),
        "wrong answers: {:#?}",
        violations.wrong
    );
    assert!(
        violations.stale.is_empty(),
        "stale answers: {:#?}",
        violations.stale
    );
    assert!(
        violations.unsafe_resend.is_empty(),
        "'safe to resend' of a recorded turn: {:#?}",
        violations.unsafe_resend
    );
    assert_eq!(fake.posts().len(), turns, "one POST per turn");
}
