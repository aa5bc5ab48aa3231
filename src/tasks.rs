//! Turns in flight: each `POST /api/tasks` runs in a task owned by the server, not by the
//! tool call that started it, so a client that stops waiting (its timeout, a cancellation,
//! our own `--max-wait`) loses nothing: the answer lands here and `get_task` collects it.
//!
//! The registry also makes `create_task` safe to repeat: the same input for a task whose
//! turn is still running joins that turn instead of sending a second POST (which would add
//! a second turn and spend credits twice).
//!
//! Entries are keyed by the API key's scope as well as the task id, so with per-client keys
//! one client can never collect another's answer. Finished entries are kept for a bounded
//! time and count ([`Retention`]); running ones are never evicted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::files::answer::{AnswerFileOptions, LocalCopy, local_copies};
use crate::handinger::types::TaskRecord;
use crate::handinger::{ApiError, Budget, HandingerClient, TaskRequest, WorkerAnswer};
use crate::task_id::TaskId;

/// How often an ambiguous failure is re-checked with `GET /api/tasks/{id}`.
const RECONCILE_POLL: Duration = Duration::from_secs(2);
/// How long a turn whose POST failed ambiguously is followed by polling before the
/// registry stops and leaves it to `get_task`.
const RECONCILE_LIMIT: Duration = Duration::from_secs(30 * 60);

/// How long, and how many, finished answers are kept for collection.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub ttl: Duration,
    pub max_finished: usize,
}

/// How a turn ended.
#[derive(Debug)]
pub enum TurnOutcome {
    /// Handinger answered the POST: the full answer, with sources and files, and what the
    /// bridge did with those files (saved, inlined) when asked to.
    Answered {
        answer: WorkerAnswer,
        copies: Vec<LocalCopy>,
    },
    /// The POST failed after it was sent, but the turn was found upstream and followed to
    /// its end: the answer text and structured output, without sources or files.
    Recovered { record: TaskRecord, cause: ApiError },
    /// The POST failed; `recorded` says whether Handinger holds the turn anyway.
    Failed { error: ApiError, recorded: Recorded },
}

/// Whether Handinger has the turn, as far as the bridge could establish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Certainly not: resending is safe.
    No,
    /// It was found upstream but still running when the bridge stopped following it.
    StillRunning,
    /// Could not be established (the lookup failed too).
    Unknown,
}

/// One turn: what was asked, when, and (once known) how it ended.
#[derive(Debug)]
pub struct Turn {
    pub task_id: TaskId,
    pub input: String,
    pub budget: Budget,
    pub worker_id: Option<String>,
    pub started: Instant,
    /// RFC 3339, for MCP task metadata.
    pub created_at: String,
    outcome: watch::Sender<Option<Arc<TurnOutcome>>>,
    finished: OnceLock<(Instant, String)>,
    /// Set when an MCP client cancelled its task: the turn itself keeps running upstream.
    cancelled: std::sync::atomic::AtomicBool,
}

impl Turn {
    /// The outcome, if the turn has ended.
    pub fn outcome(&self) -> Option<Arc<TurnOutcome>> {
        self.outcome.borrow().clone()
    }

    /// RFC 3339 time the turn ended, if it has.
    pub fn finished_at(&self) -> Option<&str> {
        self.finished.get().map(|(_, at)| at.as_str())
    }

    pub fn mark_cancelled(&self) {
        self.cancelled
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub fn is_cancelled(&self) -> bool {
        self.cancelled.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The worker this task runs on, when the answer (or the request) says.
    pub fn known_worker(&self) -> Option<String> {
        match self.outcome().as_deref() {
            Some(TurnOutcome::Answered { answer, .. }) => answer.id.clone(),
            Some(TurnOutcome::Recovered { record, .. }) => record.task.worker_id.clone(),
            _ => None,
        }
        .or_else(|| self.worker_id.clone())
    }

    /// Waits for the outcome, at most `limit`, calling `tick` every `interval` meanwhile.
    pub async fn wait<F, Fut>(
        &self,
        limit: Duration,
        interval: Duration,
        stop: &Stop<'_>,
        mut tick: F,
    ) -> WaitEnd
    where
        F: FnMut(Duration) -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        let mut receiver = self.outcome.subscribe();
        let deadline = tokio::time::Instant::now() + limit;
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        loop {
            if let Some(outcome) = receiver.borrow_and_update().clone() {
                return WaitEnd::Finished(outcome);
            }
            // Biased: at shutdown the request token is cancelled too, and shutdown must win
            // so the caller still gets its resumable answer.
            tokio::select! {
                biased;
                () = stop.shutdown.cancelled() => return WaitEnd::ShuttingDown,
                () = stop.request.cancelled() => return WaitEnd::Cancelled,
                changed = receiver.changed() => {
                    if changed.is_err() {
                        // The sender lives in `self`; this cannot end while we hold it.
                        return WaitEnd::StillRunning;
                    }
                }
                () = tokio::time::sleep_until(deadline) => return WaitEnd::StillRunning,
                _ = ticker.tick() => tick(self.started.elapsed()).await,
            }
        }
    }
}

/// What ends a wait early.
pub struct Stop<'a> {
    /// The client cancelled the request.
    pub request: &'a CancellationToken,
    /// The server is shutting down.
    pub shutdown: &'a CancellationToken,
}

pub enum WaitEnd {
    Finished(Arc<TurnOutcome>),
    StillRunning,
    Cancelled,
    ShuttingDown,
}

/// Why a turn could not be started.
#[derive(Debug)]
pub enum StartRefused {
    /// A different turn of the same task is still running.
    Busy { running_for: Duration },
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TurnKey {
    scope: u64,
    task_id: TaskId,
}

/// All turns the server knows about.
pub struct TurnRegistry {
    turns: Mutex<Registry>,
    retention: Retention,
    answer_files: Arc<AnswerFileOptions>,
    shutdown: CancellationToken,
}

struct Registry {
    map: HashMap<TurnKey, Arc<Turn>>,
    last_prune: Instant,
    /// Turns started since the last prune.
    starts_since_prune: usize,
}

impl TurnRegistry {
    pub fn new(retention: Retention, answer_files: AnswerFileOptions) -> Self {
        Self {
            answer_files: Arc::new(answer_files),
            turns: Mutex::new(Registry {
                map: HashMap::new(),
                last_prune: Instant::now(),
                starts_since_prune: 0,
            }),
            retention,
            shutdown: CancellationToken::new(),
        }
    }

    pub fn retention(&self) -> Retention {
        self.retention
    }

    /// Cancelled when the server starts shutting down: waits end with a resumable answer.
    pub fn shutdown_token(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// The latest turn of a task, if the server still holds it.
    pub fn get(&self, api: &HandingerClient, task_id: &TaskId) -> Option<Arc<Turn>> {
        let key = TurnKey {
            scope: api.scope(),
            task_id: task_id.clone(),
        };
        self.lock().map.get(&key).cloned()
    }

    /// Starts a turn, or joins the running one when it asks the same thing.
    ///
    /// Without a `workerId`, a follow-up reuses the worker of the task's previous turn when
    /// the server remembers it, so the turn lands on the same worker.
    pub fn start(
        self: &Arc<Self>,
        api: &HandingerClient,
        task_id: TaskId,
        mut request: TaskRequest,
        explicit_worker: bool,
    ) -> Result<Arc<Turn>, StartRefused> {
        let key = TurnKey {
            scope: api.scope(),
            task_id: task_id.clone(),
        };
        let turn = {
            let mut registry = self.lock();
            if let Some(existing) = registry.map.get(&key) {
                if existing.outcome().is_none() {
                    if existing.input == request.input {
                        return Ok(existing.clone());
                    }
                    return Err(StartRefused::Busy {
                        running_for: existing.started.elapsed(),
                    });
                }
                if !explicit_worker && let Some(worker) = existing.known_worker() {
                    request.worker_id = Some(worker);
                }
            }
            let turn = Arc::new(Turn {
                task_id,
                input: request.input.clone(),
                budget: request.budget,
                worker_id: request.worker_id.clone(),
                started: Instant::now(),
                created_at: rmcp::task_manager::current_timestamp(),
                outcome: watch::Sender::new(None),
                finished: OnceLock::new(),
                cancelled: Default::default(),
            });
            registry.map.insert(key, turn.clone());
            self.prune(&mut registry);
            turn
        };
        let api = api.clone();
        let running = turn.clone();
        let answer_files = self.answer_files.clone();
        tokio::spawn(async move {
            let outcome = run_turn(&api, &running.task_id, &request, &answer_files).await;
            let _ = running
                .finished
                .set((Instant::now(), rmcp::task_manager::current_timestamp()));
            running.outcome.send_replace(Some(Arc::new(outcome)));
        });
        Ok(turn)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        // A panic while holding this lock cannot leave the map inconsistent (every
        // critical section is a single insert or lookup), so a poisoned lock is still usable.
        self.turns
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Drops finished turns past their time, then the oldest finished ones past the count.
    ///
    /// A prune walks the whole map, so it runs once a second, or sooner when the map may
    /// hold more than the count allows, but then only after an eighth of the count has
    /// been started since the last one: the map may briefly keep up to that many more
    /// finished answers, and a start costs O(1) amortized instead of a walk (and a sort)
    /// every time once the count is reached.
    fn prune(&self, registry: &mut Registry) {
        registry.starts_since_prune += 1;
        let max = self.retention.max_finished;
        let over = registry.map.len() > max && registry.starts_since_prune > max / 8;
        if !over && registry.last_prune.elapsed() < Duration::from_secs(1) {
            return;
        }
        registry.last_prune = Instant::now();
        registry.starts_since_prune = 0;
        let ttl = self.retention.ttl;
        registry
            .map
            .retain(|_, turn| turn.finished.get().is_none_or(|(at, _)| at.elapsed() < ttl));
        let finished = registry
            .map
            .values()
            .filter(|t| t.finished.get().is_some())
            .count();
        if finished > self.retention.max_finished {
            let mut ends: Vec<Instant> = registry
                .map
                .values()
                .filter_map(|t| t.finished.get().map(|(at, _)| *at))
                .collect();
            ends.sort_unstable();
            let cutoff = ends[finished - self.retention.max_finished - 1];
            registry
                .map
                .retain(|_, turn| turn.finished.get().is_none_or(|(at, _)| *at > cutoff));
        }
    }
}

/// Sends the POST; if it fails after it may have reached Handinger, finds out what
/// happened instead of guessing.
async fn run_turn(
    api: &HandingerClient,
    task_id: &TaskId,
    request: &TaskRequest,
    answer_files: &AnswerFileOptions,
) -> TurnOutcome {
    let error = match api.create_task(request).await {
        Ok(answer) => {
            // Done here, once per turn, so files land in --download-dir even when the
            // caller stopped waiting.
            let copies = local_copies(api, &answer.files, answer_files).await;
            return TurnOutcome::Answered { answer, copies };
        }
        Err(error) => error,
    };
    if !error.request_was_taken() {
        return TurnOutcome::Failed {
            error,
            recorded: Recorded::No,
        };
    }
    tracing::warn!(%task_id, %error, "task POST failed after sending; looking the task up");
    reconcile(api, task_id, request, error).await
}

/// Looks the task up after an ambiguous failure and follows our turn to its end.
async fn reconcile(
    api: &HandingerClient,
    task_id: &TaskId,
    request: &TaskRequest,
    cause: ApiError,
) -> TurnOutcome {
    let started = Instant::now();
    loop {
        let record = match api.get_task(task_id).await {
            Ok(record) => record,
            Err(ApiError::Status { status: 404, .. }) => {
                return TurnOutcome::Failed {
                    error: cause,
                    recorded: Recorded::No,
                };
            }
            Err(lookup) => {
                tracing::warn!(%task_id, %lookup, "could not look the task up");
                return TurnOutcome::Failed {
                    error: cause,
                    recorded: Recorded::Unknown,
                };
            }
        };
        // Our turn is the newest one, carrying our input; anything else means Handinger
        // never recorded it.
        let ours = record
            .turns
            .iter()
            .max_by_key(|t| t.seq.unwrap_or(i64::MIN))
            .filter(|t| t.input.as_deref() == Some(request.input.as_str()));
        let Some(turn) = ours else {
            return TurnOutcome::Failed {
                error: cause,
                recorded: Recorded::No,
            };
        };
        let finished = turn.status.as_deref().is_some_and(is_terminal_status)
            || record
                .task
                .status
                .as_deref()
                .is_some_and(is_terminal_status);
        if finished {
            tracing::info!(%task_id, "found the turn upstream after a failed POST");
            return TurnOutcome::Recovered { record, cause };
        }
        if started.elapsed() > RECONCILE_LIMIT {
            return TurnOutcome::Failed {
                error: cause,
                recorded: Recorded::StillRunning,
            };
        }
        tokio::time::sleep(RECONCILE_POLL).await;
    }
}

/// Task and turn statuses after which nothing more will change.
pub fn is_terminal_status(status: &str) -> bool {
    matches!(status, "completed" | "error" | "aborted" | "failed")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handinger::ClientOptions;
    use secrecy::SecretString;

    fn client(key: &str) -> HandingerClient {
        let options = ClientOptions {
            base_url: "http://127.0.0.1:9".into(),
            max_response_bytes: 1024,
            get_timeout: Duration::from_secs(1),
            file_hosts: Default::default(),
        };
        HandingerClient::new(&SecretString::from(key.to_owned()), options).unwrap()
    }

    #[tokio::test]
    async fn a_turn_is_visible_only_to_the_key_that_started_it() {
        let registry = Arc::new(TurnRegistry::new(
            Retention {
                ttl: Duration::from_secs(60),
                max_finished: 10,
            },
            AnswerFileOptions::default(),
        ));
        let (alice, bob) = (client("hdg_alice"), client("hdg_bob"));
        let task_id = TaskId::generate();
        let request = TaskRequest {
            input: "x".into(),
            budget: Budget::Low,
            task_id: task_id.to_string(),
            worker_id: None,
            files: Vec::new(),
        };
        registry
            .start(&alice, task_id.clone(), request, false)
            .unwrap();
        assert!(registry.get(&alice, &task_id).is_some());
        assert!(
            registry.get(&bob, &task_id).is_none(),
            "another key saw the turn"
        );
        assert!(
            registry.get(&client("hdg_alice"), &task_id).is_some(),
            "same key, new client"
        );
    }
}
