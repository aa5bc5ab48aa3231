//! Replica chaos: three `http --stateless` replicas sharing one Redis store behind a
//! client that retries elsewhere, while replicas are killed or paused past their lease and
//! Redis is paused or restarted with and without its data. Every planned turn must reach
//! Handinger exactly once, and no answer may be lost, wrong or stale.
//!
//! The longest test of the suite: it sits in a module whose name sorts early, and libtest
//! starts tests in name order, so it runs beside the others rather than after them.

use crate::common;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::fake::Chaos;
use common::http::{HttpBridge, start_http};
use common::*;
use serde_json::{Value, json};
use tokio::sync::Semaphore;

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
            tasks: env_number("CHAOS_TASKS", 60) as usize,
            turns: env_number("CHAOS_TURNS", 4) as usize,
            concurrency: env_number("CHAOS_CONCURRENCY", 16).max(1) as usize,
            seed: env_number("CHAOS_SEED", 0xc4a0_5eed),
        }
    }
}

/// The store lease the chaos replicas run with: short, so pauses longer than it fit a CI run.
const CHAOS_LEASE_SECS: u64 = 3;
/// How long a chaos call may take before its caller gives up on it (as a client's timeout
/// would) and sends it again, maybe to another replica.
const CHAOS_CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Every replica a run started, killed ones too: their logs are written out when the run
/// fails (see [`keep_logs`]).
type Started = Arc<Mutex<Vec<Arc<HttpBridge>>>>;

/// One replica: `http --stateless` on the shared store, as behind a load balancer.
async fn chaos_replica(fake: &FakeHandinger, store: &str, started: &Started) -> Arc<HttpBridge> {
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
    let replica = Arc::new(start_http(&fake.base_url, &args).await);
    started.lock().unwrap().push(replica.clone());
    replica
}

/// Writes each replica's log (debug level, killed replicas included) and the order of the
/// fake's POSTs into `chaos-logs/` under the test target's temporary directory, and says
/// where: a failed run under a seed is read from there.
fn keep_logs(started: &Started, fake: &FakeHandinger) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("chaos-logs");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for (i, replica) in started.lock().unwrap().iter().enumerate() {
        let name = format!("replica-{i}-pid-{}.log", replica.pid());
        std::fs::write(dir.join(name), replica.log()).unwrap();
    }
    let posts: Vec<String> = fake.posts().iter().map(|p| p.body.to_string()).collect();
    std::fs::write(dir.join("posts.jsonl"), posts.join("\n")).unwrap();
    dir
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
            let text = rpc::result_text(&result);
            let data = result
                .get("structuredContent")
                .cloned()
                .unwrap_or(Value::Null);
            let status = data["status"].as_str().unwrap_or_default().to_owned();
            if !rpc::is_error_result(&result) && status == "completed" {
                if data["outputText"] == expected {
                    break;
                }
                let seen = format!("{task_id} turn {turn} via {tool}: {}", data["outputText"]);
                if collecting && recorded() {
                    violations.lock().unwrap().stale.push(seen);
                } else if !collecting {
                    violations.lock().unwrap().wrong.push(seen);
                }
                // Collected before the turn was recorded: send it again (after a pause, so a
                // run that went wrong does not flood its logs).
                collecting = false;
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            if !rpc::is_error_result(&result) && status == "running" {
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
    let started: Started = Default::default();
    let mut slots = Vec::new();
    for _ in 0..3 {
        slots.push(tokio::sync::RwLock::new(
            chaos_replica(&fake, &store, &started).await,
        ));
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
        let (replicas, fake, redis, tally, started) = (
            replicas.clone(),
            fake.clone(),
            redis.clone(),
            tally.clone(),
            started.clone(),
        );
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
                        let fresh = chaos_replica(&fake, &store, &started).await;
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
    let failed = !lost.is_empty()
        || !duplicates.is_empty()
        || !violations.wrong.is_empty()
        || !violations.stale.is_empty()
        || !violations.unsafe_resend.is_empty()
        || fake.posts().len() != turns;
    if failed {
        eprintln!(
            "the replicas' logs and the POSTs are in {}",
            keep_logs(&started, &fake).display()
        );
    }
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
