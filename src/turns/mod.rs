//! Turns in flight: each `POST /api/tasks` runs in a task owned by the server, not by the
//! tool call that started it, so a client that stops waiting (its timeout, a cancellation,
//! our own `--max-wait`) loses nothing: the answer lands here and `get_task` collects it.
//!
//! The registry also makes `create_task` safe to repeat: the same input for a task whose
//! turn is still running joins that turn instead of sending a second POST (which would add
//! a second turn and spend credits twice).
//!
//! Entries are keyed by the API key's scope as well as the task id, so with per-client keys
//! one client can never collect another's answer.
//!
//! Everything here is bounded ([`Retention`], [`TurnLimits`]): turns running upstream, per
//! server and per key (a turn holds its slot until its POST ends, whatever happened to the
//! call that started it); finished answers by age, count and bytes, the oldest evicted
//! first. A turn keeps no copy of its input: only a keyed digest to recognise a repeat, and
//! the request itself lives in the task that sends it, so it is gone when the turn ends.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::files::answer::{AnswerCopies, AnswerFileOptions};
use crate::handinger::types::{Source, TaskRecord};
use crate::handinger::{ApiError, Budget, HandingerClient, TaskRequest, WorkerAnswer};
use crate::task_id::TaskId;

pub mod shared;
mod truth;

pub use crate::handinger::types::is_terminal_status;
use shared::{Claim, Lookup, Remote, SharedStore};
pub use truth::{Known, Settled};

/// How often an ambiguous failure is re-checked with `GET /api/tasks/{id}`.
const RECONCILE_POLL: Duration = Duration::from_secs(2);
/// How long a turn whose POST failed ambiguously is followed by polling before the
/// registry stops and leaves it to `get_task`.
const RECONCILE_LIMIT: Duration = Duration::from_secs(30 * 60);

/// How long, how many and how many bytes of finished answers are kept for collection.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub ttl: Duration,
    pub max_finished: usize,
    /// Budget for the answers kept, counted by [`TurnOutcome::retained_bytes`].
    pub max_bytes: usize,
    /// How long after a turn Handinger recorded has ended the same input on the same task is
    /// that turn again (`--repeat-window`): a call that comes late or twice (a client's
    /// retry, a stalled replica catching up) is answered from it instead of posting a second
    /// turn. Zero turns this off.
    pub repeat_window: Duration,
}

/// How many turns may run upstream at once.
#[derive(Debug, Clone, Copy)]
pub struct TurnLimits {
    pub max_in_flight: usize,
    pub max_in_flight_per_key: usize,
}

/// How a turn ended. Serializable for the shared store (`--store`), in full.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub enum TurnOutcome {
    /// Handinger answered the POST: the full answer, with sources and files, and what the
    /// bridge did with those files (saved, inlined) when asked to.
    Answered {
        answer: WorkerAnswer,
        copies: Arc<AnswerCopies>,
    },
    /// The POST failed after it was sent, but the turn was found upstream and followed to
    /// its end: the task record (answer text, structured output, files) and the turn's
    /// sources, when Handinger still had them.
    Recovered {
        record: TaskRecord,
        sources: Vec<Source>,
        cause: ApiError,
    },
    /// The POST failed; `recorded` says whether Handinger holds the turn anyway.
    Failed { error: ApiError, recorded: Recorded },
}

impl TurnOutcome {
    /// Whether Handinger holds the turn: it answered, was found upstream, or was still
    /// running there when the bridge stopped following it. Only such a turn answers a repeat
    /// of its input (a failure Handinger has no trace of must be sendable again).
    pub fn recorded_upstream(&self) -> bool {
        match self {
            TurnOutcome::Answered { .. } | TurnOutcome::Recovered { .. } => true,
            TurnOutcome::Failed { recorded, .. } => *recorded == Recorded::StillRunning,
        }
    }
}

/// Whether Handinger has the turn, as far as the bridge could establish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Recorded {
    /// Certainly not: resending is safe.
    No,
    /// It was found upstream but still running when the bridge stopped following it.
    StillRunning,
    /// Could not be established (the lookup failed too).
    Unknown,
}

/// One turn: what was asked (as a digest), when, and (once known) how it ended.
pub struct Turn {
    /// Unique within the process: tells a turn from a later one of the same task.
    id: u64,
    pub task_id: TaskId,
    /// A keyed digest of the input: enough to recognise a repeat of the same call without
    /// holding the input itself.
    input_digest: u64,
    pub budget: Budget,
    pub worker_id: Option<String>,
    pub started: Instant,
    /// RFC 3339, for MCP task metadata.
    pub created_at: String,
    outcome: watch::Sender<Option<Arc<TurnOutcome>>>,
    finished: OnceLock<(Instant, String)>,
    /// Set when an MCP client cancelled its task: the turn itself keeps running upstream.
    cancelled: std::sync::atomic::AtomicBool,
    /// The bytes the registry's budget counted for the outcome when it finished, given back
    /// as they were when it leaves: the outcome's size changes afterwards (its answer files'
    /// copies finish), and a recount would drift. Written and read under the registry lock.
    counted_bytes: std::sync::atomic::AtomicUsize,
    /// A turn another replica runs or ran, read from the shared store: its outcome comes
    /// from there (see [`shared::follow`]).
    remote: Option<Arc<Remote>>,
}

impl Turn {
    /// Whether this turn was asked `input` (by digest; see the field).
    pub fn asked(&self, input: &str) -> bool {
        match &self.remote {
            Some(remote) => remote.ident.digest(input) == remote.meta.digest,
            None => self.input_digest == input_digest(input),
        }
    }

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
        if let Some(remote) = &self.remote
            && receiver.borrow().is_none()
            && !remote.following.swap(true, Ordering::SeqCst)
        {
            // Fed from the store while anyone waits; ends when the last waiter leaves.
            tokio::spawn(shared::follow(remote.clone(), self.outcome.clone()));
        }
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
                _ = ticker.tick() => {
                    // Never a tick once the answer is in hand: it would leave with the answer
                    // or after it, for a request the client has already seen end.
                    if receiver.borrow().is_none() {
                        tick(self.started.elapsed()).await;
                    }
                }
            }
        }
    }
}

/// A turn as [`TurnRegistry::start`] hands it out: one it sent, one it joined, or the
/// task's latest turn when the call repeated its input.
pub struct Admitted {
    pub turn: Arc<Turn>,
    /// Set when the call asked the same as the task's latest turn, which Handinger recorded
    /// and which ended this long ago (within `--repeat-window`): `turn` is that turn, and
    /// nothing was posted.
    pub repeat_of: Option<Duration>,
}

impl Admitted {
    fn new(turn: Arc<Turn>) -> Self {
        Admitted {
            turn,
            repeat_of: None,
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
    /// As many turns as allowed are already running upstream: for the whole server
    /// (`per_key: false`) or for this API key.
    Full { limit: usize, per_key: bool },
    /// The shared store could not be asked whether another replica runs the turn, so
    /// nothing was sent (posting blind could run it twice).
    Store(String),
}

/// What a refusal for a full bound says, whoever tells it (the tool error, HTTP's 503): the
/// bound, whose, the flag that sets it, and that nothing was sent. The teller adds what to
/// do next.
pub fn bound_full(limit: usize, per_key: bool) -> String {
    let (whose, flag) = if per_key {
        ("for this API key", "--max-turns-in-flight-per-key")
    } else {
        ("on this server", "--max-turns-in-flight")
    };
    format!("{limit} Handinger tasks are already running {whose} ({flag}): nothing was sent")
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct TurnKey {
    scope: u64,
    task_id: TaskId,
}

impl TurnKey {
    fn new(api: &HandingerClient, task_id: TaskId) -> Self {
        Self {
            scope: api.scope(),
            task_id,
        }
    }
}

/// A turn asked for, as [`TurnRegistry::start`] checks and then runs it.
struct Asked {
    key: TurnKey,
    /// Of the input: joining needs only equality, and the input itself goes with the
    /// request.
    digest: u64,
    request: TaskRequest,
    /// Whether the caller named the worker (a follow-up otherwise reuses the task's).
    explicit_worker: bool,
}

/// Now, as the RFC 3339 timestamp MCP tasks carry.
pub fn now_rfc3339() -> String {
    chrono::Utc::now().to_rfc3339()
}

/// All turns the server knows about.
pub struct TurnRegistry {
    turns: Mutex<Registry>,
    retention: Retention,
    limits: TurnLimits,
    answer_files: Arc<AnswerFileOptions>,
    /// The store shared with other replicas (`--store`); `None` keeps everything here.
    shared: Option<Arc<SharedStore>>,
}

#[derive(Default)]
struct Registry {
    map: HashMap<TurnKey, Arc<Turn>>,
    /// Finished turns in the order they finished, oldest first: what eviction walks. An
    /// entry whose turn has since been replaced in `map` (a follow-up of the same task) is
    /// stale and skipped.
    finished: VecDeque<Finished>,
    /// Finished turns still in `map`, and the bytes their outcomes hold.
    finished_count: usize,
    retained_bytes: usize,
    /// Turns whose POST has not ended, in all and per key scope.
    in_flight: usize,
    in_flight_by_scope: HashMap<u64, usize>,
    next_id: u64,
    /// Remote turns still running, by their name in the store: one registry turn per
    /// remote turn however many callers find or join it, so one follower feeds them all.
    /// An entry lives as long as a caller holds its turn; dead ones go at the next insert.
    remote: HashMap<String, std::sync::Weak<Turn>>,
}

struct Finished {
    key: TurnKey,
    turn_id: u64,
    at: Instant,
}

impl TurnRegistry {
    pub fn new(retention: Retention, limits: TurnLimits, answer_files: AnswerFileOptions) -> Self {
        Self {
            answer_files: Arc::new(answer_files),
            turns: Mutex::new(Registry::default()),
            retention,
            limits,
            shared: None,
        }
    }

    /// Shares turns and answers with other replicas through `store`.
    pub fn with_store(mut self, store: Option<Arc<SharedStore>>) -> Self {
        self.shared = store;
        self
    }

    /// The registry turn of a remote turn still running: the one already handed out for
    /// it while any caller holds that, else a new one.
    fn remote_turn(&self, remote: Remote) -> Arc<Turn> {
        let mut registry = self.lock();
        registry.remote.retain(|_, turn| turn.strong_count() > 0);
        let known = registry
            .remote
            .get(remote.ident.name())
            .and_then(|turn| turn.upgrade());
        if let Some(turn) = known
            && turn
                .remote
                .as_ref()
                .is_some_and(|known| known.meta.uid == remote.meta.uid)
        {
            return turn;
        }
        let name = remote.ident.name().to_owned();
        let turn = remote.turn(None);
        registry.remote.insert(name, Arc::downgrade(&turn));
        turn
    }

    /// The latest turn of a task, here or (with a shared store) on any replica. Without a
    /// store this is [`Self::get`]. With one, a turn this server runs is answered from
    /// memory; otherwise the store decides (a later turn may have run elsewhere), and the
    /// answer held here stands when the store cannot be asked. An orphaned turn (its owner
    /// died) is `None`: the caller then follows the task on Handinger.
    pub async fn find(&self, api: &HandingerClient, task_id: &TaskId) -> Option<Arc<Turn>> {
        let local = self.get(api, task_id);
        let Some(store) = &self.shared else {
            return local;
        };
        if local.as_ref().is_some_and(|turn| turn.outcome().is_none()) {
            return local;
        }
        let ident = store.ident(api, task_id);
        let remote = |meta| Remote::new(store, api, ident.clone(), meta);
        match store.lookup(&ident).await {
            Ok(Lookup::Running(meta)) => Some(self.remote_turn(remote(meta))),
            Ok(Lookup::Finished(stored)) => {
                let shared::StoredAnswer {
                    meta,
                    finished_at,
                    outcome,
                } = *stored;
                Some(remote(meta).turn(Some((outcome, finished_at))))
            }
            Ok(Lookup::Orphan(_)) => None,
            Ok(Lookup::Nothing) => local,
            Err(error) => {
                tracing::warn!(%task_id, %error, "shared store unavailable; answering from this server and Handinger");
                local
            }
        }
    }

    pub fn retention(&self) -> Retention {
        self.retention
    }

    /// The latest turn of a task, if the server still holds it.
    pub fn get(&self, api: &HandingerClient, task_id: &TaskId) -> Option<Arc<Turn>> {
        let key = TurnKey::new(api, task_id.clone());
        let mut registry = self.lock();
        self.evict(&mut registry);
        registry.map.get(&key).cloned()
    }

    /// Starts a turn, or joins the running one when it asks the same thing, or answers with
    /// the task's latest turn when the call repeats its input within `--repeat-window`.
    ///
    /// Without a `workerId`, a follow-up reuses the worker of the task's previous turn when
    /// the server remembers it, so the turn lands on the same worker.
    pub async fn start(
        self: &Arc<Self>,
        api: &HandingerClient,
        task_id: TaskId,
        request: TaskRequest,
        explicit_worker: bool,
    ) -> Result<Admitted, StartRefused> {
        let asked = Asked {
            key: TurnKey::new(api, task_id),
            digest: input_digest(&request.input),
            request,
            explicit_worker,
        };
        match &self.shared {
            None => self.start_here(api, asked),
            Some(store) => self.start_shared(store, api, asked).await,
        }
    }

    /// [`Self::start`] without a shared store: everything under one lock.
    fn start_here(
        self: &Arc<Self>,
        api: &HandingerClient,
        mut asked: Asked,
    ) -> Result<Admitted, StartRefused> {
        let turn = {
            let mut registry = self.lock();
            if let Some(admitted) = self.admit(&mut registry, &mut asked)? {
                return Ok(admitted);
            }
            registry.insert(&asked, now_rfc3339())
        };
        let Asked { key, request, .. } = asked;
        let api = api.clone();
        let running = turn.clone();
        let registry = self.clone();
        tokio::spawn(async move {
            let outcome = run_turn(&api, &running.task_id, &request, &registry.answer_files).await;
            // The input goes with the request, here, whatever the outcome.
            drop(request);
            registry.finish(key, &running, outcome);
        });
        Ok(Admitted::new(turn))
    }

    /// [`Self::start`] with a shared store: a turn running here is joined from memory as
    /// without one; otherwise the turn is claimed in the store before anything is sent, so
    /// of all replicas exactly one posts it and the others join it through the store.
    async fn start_shared(
        self: &Arc<Self>,
        store: &Arc<SharedStore>,
        api: &HandingerClient,
        mut asked: Asked,
    ) -> Result<Admitted, StartRefused> {
        // The slot is taken before the claim (and given back if the turn is not ours), so
        // the limits hold while the store is asked.
        {
            let mut registry = self.lock();
            if let Some(admitted) = self.admit(&mut registry, &mut asked)? {
                return Ok(admitted);
            }
        }
        let scope = asked.key.scope;
        let ident = store.ident(api, &asked.key.task_id);
        let request = &asked.request;
        let meta = store.meta(
            &ident,
            &request.input,
            request.budget,
            request.worker_id.clone(),
        );
        let mut claimed_at = Instant::now();
        let mut claim = store.claim(&ident, &meta).await;
        if let Ok(Claim::Held {
            meta: held,
            alive: false,
        }) = &claim
        {
            // An orphan: its owner died or is stalled past its lease. Handinger's turn list
            // says whether it ever went out; one that did not is taken over (a stalled owner
            // confirms its claim before it posts, and finds it gone), so the call posts
            // instead of waiting on a turn nobody will send.
            let fate = orphan_fate(api, &ident, held).await;
            let same = held.digest == meta.digest;
            let take = match fate {
                OrphanFate::NotSent => true,
                OrphanFate::Ended => !same,
                OrphanFate::Running | OrphanFate::Unknown => false,
            };
            if take && store.take_over(&ident, &held.uid).await.unwrap_or(false) {
                tracing::info!(task_id = %asked.key.task_id, ?fate, "took over an orphaned turn");
                claimed_at = Instant::now();
                claim = store.claim(&ident, &meta).await;
            }
        }
        let worker = match claim {
            Ok(Claim::Won {
                worker,
                amnesiac: true,
            }) => {
                // The store lost its data lately: a turn of this input may be running or
                // just ended on Handinger with no record of it left here. Handinger's turn
                // list decides; one that is there is followed, never posted again.
                match orphan_fate(api, &ident, &meta).await {
                    OrphanFate::Running | OrphanFate::Ended => {
                        self.lock().give_slot(scope);
                        if let Err(error) = store.withdraw(&ident, &meta).await {
                            tracing::warn!(%error, "could not withdraw a claim for a turn Handinger already has");
                        }
                        tracing::info!(task_id = %asked.key.task_id, "the store had forgotten a turn Handinger has; following it there");
                        let remote = Remote::new(store, api, ident, meta);
                        return Ok(Admitted::new(self.remote_turn(remote)));
                    }
                    OrphanFate::NotSent | OrphanFate::Unknown => worker,
                }
            }
            Ok(Claim::Won { worker, .. }) => worker,
            Ok(Claim::Held { meta: held, .. }) => {
                self.lock().give_slot(scope);
                let running_for =
                    Duration::from_millis(shared::now_ms().saturating_sub(held.started_ms));
                if held.digest == meta.digest {
                    // Joined through the store; an orphan is followed on Handinger by the
                    // wait, never posted again.
                    let remote = Remote::new(store, api, ident, held);
                    return Ok(Admitted::new(self.remote_turn(remote)));
                }
                return Err(StartRefused::Busy { running_for });
            }
            Ok(Claim::Repeat { uid }) => {
                self.lock().give_slot(scope);
                return Ok(self.repeated(store, api, ident, meta, uid).await);
            }
            Err(error) => {
                self.lock().give_slot(scope);
                // The claim may still land once the store answers: withdraw it then, so the
                // caller's "nothing was sent" stays true and the retry can claim the turn.
                store.release_later(ident, meta);
                return Err(StartRefused::Store(error));
            }
        };
        if asked.request.worker_id.is_none() && !asked.explicit_worker {
            asked.request.worker_id = worker;
        }
        let turn = self.lock().insert(&asked, meta.created_at.clone());
        let claimed = Claimed {
            store: store.clone(),
            ident,
            meta,
            at: claimed_at,
        };
        tokio::spawn(
            self.clone()
                .run_claimed(api.clone(), asked, turn.clone(), claimed),
        );
        Ok(Admitted::new(turn))
    }

    /// The task's latest turn, for a call that repeated its input: its stored answer, or,
    /// when the store no longer holds one, the turn followed on Handinger.
    async fn repeated(
        &self,
        store: &Arc<SharedStore>,
        api: &HandingerClient,
        ident: shared::Ident,
        asked: shared::TurnMeta,
        uid: String,
    ) -> Admitted {
        let remote = |meta| Remote::new(store, api, ident.clone(), meta);
        if let Ok(Lookup::Finished(stored)) = store.lookup(&ident).await
            && stored.meta.uid == uid
        {
            let shared::StoredAnswer {
                meta,
                finished_at,
                outcome,
            } = *stored;
            let ago = chrono::DateTime::parse_from_rfc3339(&finished_at)
                .ok()
                .and_then(|at| {
                    (chrono::Utc::now() - at.with_timezone(&chrono::Utc))
                        .to_std()
                        .ok()
                })
                .unwrap_or_default();
            return Admitted {
                turn: remote(meta).turn(Some((outcome, finished_at))),
                repeat_of: Some(ago),
            };
        }
        // Its answer was too large to keep, or has gone: the follower finds the turn on
        // Handinger by its input, and never posts it.
        let meta = shared::TurnMeta { uid, ..asked };
        Admitted {
            turn: self.remote_turn(remote(meta)),
            repeat_of: Some(Duration::ZERO),
        }
    }

    /// Runs a turn this replica claimed in the shared store: confirms the claim if the
    /// replica may have stalled since it was made, posts while renewing it, and stores the
    /// outcome before publishing it here.
    async fn run_claimed(
        self: Arc<Self>,
        api: HandingerClient,
        asked: Asked,
        running: Arc<Turn>,
        claimed: Claimed,
    ) {
        let Asked { key, request, .. } = asked;
        let Claimed {
            store,
            ident,
            meta,
            at,
        } = claimed;
        let outcome = match confirm_claim(&store, &ident, &meta, at).await {
            Err(withheld) => withheld,
            Ok(()) => {
                let post = run_turn(&api, &running.task_id, &request, &self.answer_files);
                tokio::pin!(post);
                let mut renew = tokio::time::interval(store.lease() / 3);
                renew.reset();
                loop {
                    tokio::select! {
                        outcome = &mut post => break outcome,
                        _ = renew.tick() => {
                            // A failed renewal never stops the POST: at worst another
                            // replica starts following the task on Handinger.
                            match store.renew(&ident, &meta).await {
                                Ok(true) => {}
                                Ok(false) => tracing::warn!("the turn's claim was taken over while its POST ran; its answer is kept here and on Handinger"),
                                Err(error) => tracing::warn!(%error, "could not renew the turn's claim"),
                            }
                        }
                    }
                }
            }
        };
        drop(request);
        // Into the store first, so that once this replica answers, every replica can:
        // a client told "done" here may well ask another one next.
        let at = now_rfc3339();
        let stored = store.finish(&ident, &meta, &outcome, &at, false).await;
        self.finish(key, &running, outcome);
        if let Err(error) = stored {
            tracing::warn!(%error, "could not keep the answer in the shared store; retrying");
        } else {
            return;
        }
        let (Some(outcome), Some(at)) = (running.outcome(), running.finished_at()) else {
            return;
        };
        // A few more tries: the answer is served from here meanwhile, and if the store
        // stays down the claim expires and other replicas follow the task on Handinger.
        for attempt in 0..3u32 {
            match store.finish(&ident, &meta, &outcome, at, false).await {
                Ok(_) => return,
                Err(error) => {
                    tracing::warn!(%error, attempt, "could not keep the answer in the shared store");
                    tokio::time::sleep(Duration::from_secs(1 << attempt)).await;
                }
            }
        }
    }

    /// Whether a call on `task_id` (`None`: a new task) would be refused now for want of a
    /// slot ([`StartRefused::Full`]), read without taking one: a call whose task has a turn
    /// running here passes (it joins it, or is refused as busy by [`Self::start`]). HTTP
    /// mode asks before it accepts a call, so such a call gets a 503 with `Retry-After`;
    /// `start` still decides, so one that races another for the last slot gets its error.
    pub fn room_for(&self, scope: u64, task_id: Option<&TaskId>) -> Result<(), StartRefused> {
        let registry = self.lock();
        if let Some(task_id) = task_id {
            let key = TurnKey {
                scope,
                task_id: task_id.clone(),
            };
            if registry
                .map
                .get(&key)
                .is_some_and(|turn| turn.outcome().is_none())
            {
                return Ok(());
            }
        }
        registry.slot_free(scope, self.limits)
    }

    /// Publishes a turn's outcome, frees its slot and counts what it keeps.
    fn finish(&self, key: TurnKey, turn: &Arc<Turn>, outcome: TurnOutcome) {
        let at = Instant::now();
        let _ = turn.finished.set((at, now_rfc3339()));
        let bytes = outcome.retained_bytes();
        let mut registry = self.lock();
        registry.give_slot(key.scope);
        // Published under the lock, so eviction never sees a finished turn it has not counted.
        turn.outcome.send_replace(Some(Arc::new(outcome)));
        if registry.map.get(&key).is_some_and(|t| t.id == turn.id) {
            registry.finished_count += 1;
            registry.retained_bytes += bytes;
            turn.counted_bytes.store(bytes, Ordering::Relaxed);
            registry.finished.push_back(Finished {
                key,
                turn_id: turn.id,
                at,
            });
        }
        self.evict(&mut registry);
    }

    /// The admission both start paths share, under the lock: a turn of the task running
    /// here with the same input is joined, one with another input refuses, a finished one
    /// with the same input answers a repeat within `--repeat-window` (`Some`), the task's
    /// known worker carries over to a follow-up that names none, and a new turn takes a slot
    /// within the limits (`None`: go ahead).
    fn admit(
        &self,
        registry: &mut Registry,
        asked: &mut Asked,
    ) -> Result<Option<Admitted>, StartRefused> {
        self.evict(registry);
        if let Some(existing) = registry.map.get(&asked.key) {
            let same = existing.input_digest == asked.digest;
            match existing.outcome() {
                None if same => return Ok(Some(Admitted::new(existing.clone()))),
                None => {
                    return Err(StartRefused::Busy {
                        running_for: existing.started.elapsed(),
                    });
                }
                // With a shared store the store's record of the task's latest turn decides
                // (a newer turn may have run on another replica since this one ended).
                Some(outcome) if self.shared.is_none() => {
                    let ago = existing.finished.get().map(|(at, _)| at.elapsed());
                    if same
                        && outcome.recorded_upstream()
                        && let Some(ago) = ago.filter(|ago| *ago < self.retention.repeat_window)
                    {
                        return Ok(Some(Admitted {
                            turn: existing.clone(),
                            repeat_of: Some(ago),
                        }));
                    }
                }
                Some(_) => {}
            }
            if !asked.explicit_worker
                && let Some(worker) = existing.known_worker()
            {
                asked.request.worker_id = Some(worker);
            }
        }
        registry.take_slot(asked.key.scope, self.limits)?;
        Ok(None)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        // A panic while holding this lock cannot leave the map inconsistent (every
        // critical section is a single insert or lookup), so a poisoned lock is still usable.
        self.turns
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Drops finished answers, oldest first, while any bound is exceeded: past their time,
    /// beyond the count, or beyond the byte budget. Running turns are never dropped.
    /// Amortized O(1): each finished turn is queued once and dropped once.
    fn evict(&self, registry: &mut Registry) {
        let Retention {
            ttl,
            max_finished,
            max_bytes,
            ..
        } = self.retention;
        while let Some(oldest) = registry.finished.front() {
            let stale = registry
                .map
                .get(&oldest.key)
                .is_none_or(|t| t.id != oldest.turn_id);
            let over = registry.finished_count > max_finished
                || registry.retained_bytes > max_bytes
                || oldest.at.elapsed() >= ttl;
            if !stale && !over {
                break;
            }
            let Some(oldest) = registry.finished.pop_front() else {
                break;
            };
            if !stale && let Some(turn) = registry.map.remove(&oldest.key) {
                registry.forget_finished(&turn);
            }
        }
    }
}

impl Registry {
    /// Counts a turn about to run upstream, unless a limit is reached.
    /// Puts a new turn of `key`'s task in the map, replacing its finished one (which stops
    /// counting; its place in the eviction queue goes stale).
    fn insert(&mut self, asked: &Asked, created_at: String) -> Arc<Turn> {
        let Asked {
            key,
            digest,
            request,
            ..
        } = asked;
        if let Some(old) = self.map.get(key).cloned() {
            self.forget_finished(&old);
        }
        self.next_id += 1;
        let turn = Arc::new(Turn {
            id: self.next_id,
            task_id: key.task_id.clone(),
            input_digest: *digest,
            budget: request.budget,
            worker_id: request.worker_id.clone(),
            started: Instant::now(),
            created_at,
            outcome: watch::Sender::new(None),
            finished: OnceLock::new(),
            cancelled: Default::default(),
            counted_bytes: Default::default(),
            remote: None,
        });
        self.map.insert(key.clone(), turn.clone());
        turn
    }

    fn take_slot(&mut self, scope: u64, limits: TurnLimits) -> Result<(), StartRefused> {
        self.slot_free(scope, limits)?;
        *self.in_flight_by_scope.entry(scope).or_default() += 1;
        self.in_flight += 1;
        Ok(())
    }

    /// Whether [`Self::take_slot`] would succeed, taking nothing.
    fn slot_free(&self, scope: u64, limits: TurnLimits) -> Result<(), StartRefused> {
        if self.in_flight >= limits.max_in_flight {
            return Err(StartRefused::Full {
                limit: limits.max_in_flight,
                per_key: false,
            });
        }
        let for_key = self.in_flight_by_scope.get(&scope).copied().unwrap_or(0);
        if for_key >= limits.max_in_flight_per_key {
            return Err(StartRefused::Full {
                limit: limits.max_in_flight_per_key,
                per_key: true,
            });
        }
        Ok(())
    }

    /// Gives back a slot [`Self::take_slot`] took (its turn ended, or never started).
    fn give_slot(&mut self, scope: u64) {
        self.in_flight -= 1;
        if let Some(count) = self.in_flight_by_scope.get_mut(&scope) {
            *count -= 1;
            if *count == 0 {
                self.in_flight_by_scope.remove(&scope);
            }
        }
    }

    /// Stops counting a finished turn that leaves the map.
    fn forget_finished(&mut self, turn: &Turn) {
        if turn.outcome().is_some() {
            self.finished_count -= 1;
            self.retained_bytes -= turn.counted_bytes.load(Ordering::Relaxed);
        }
    }
}

/// A digest of a turn's input, keyed per process so nobody can craft two inputs that
/// collide: 64 bits are plenty to tell a repeated call from a different one.
fn input_digest(input: &str) -> u64 {
    static KEY: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
    KEY.get_or_init(Default::default).hash_one(input)
}

impl TurnOutcome {
    /// What the outcome keeps in memory, in bytes: the strings and raw JSON it holds, as
    /// the byte budget counts them.
    pub fn retained_bytes(&self) -> usize {
        const OVERHEAD: usize = 256;
        OVERHEAD
            + match self {
                TurnOutcome::Answered { answer, copies } => {
                    answer.retained_bytes() + copies.retained_bytes()
                }
                TurnOutcome::Recovered {
                    record, sources, ..
                } => {
                    record.retained_bytes()
                        + sources.iter().map(Source::retained_bytes).sum::<usize>()
                }
                TurnOutcome::Failed { error, .. } => error.to_string().len(),
            }
    }
}

/// Sends the POST; if it fails after it may have reached Handinger, finds out what
/// happened instead of guessing.
async fn run_turn(
    api: &HandingerClient,
    task_id: &TaskId,
    request: &TaskRequest,
    answer_files: &Arc<AnswerFileOptions>,
) -> TurnOutcome {
    let error = match api.create_task(request).await {
        Ok(answer) => {
            // Started here, once per turn, so files land in --download-dir even when the
            // caller stopped waiting; in the background, so the answer is published now.
            let copies = AnswerCopies::start(api, &answer.files, answer_files);
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
    let ours = |input: &str| input == request.input;
    // Boxed: only an ambiguous failure gets here, and inline it would make every turn's
    // task as large as the reconciliation's polling.
    Box::pin(reconcile(api, task_id, &ours, error)).await
}

/// Looks the task up after an ambiguous failure and follows our turn to its end.
///
/// "Not recorded" (the only verdict that makes a resend safe) needs positive evidence: the
/// task is unknown (404), or its turn list was read and our turn is not in it. A lookup
/// that fails, or a turn list that cannot be read, proves nothing and ends as
/// [`Recorded::Unknown`] (or [`Recorded::StillRunning`] once the turn was seen).
/// `ours` recognises our turn's input.
async fn reconcile(
    api: &HandingerClient,
    task_id: &TaskId,
    ours: &(dyn Fn(&str) -> bool + Sync),
    cause: ApiError,
) -> TurnOutcome {
    let started = Instant::now();
    let mut seen = false;
    let unsure = |seen: bool| {
        if seen {
            Recorded::StillRunning
        } else {
            Recorded::Unknown
        }
    };
    loop {
        let record = match api.get_task(task_id).await {
            Ok(record) => record,
            Err(ApiError::Status { status: 404, .. }) if !seen => {
                return TurnOutcome::Failed {
                    error: cause,
                    recorded: Recorded::No,
                };
            }
            Err(lookup) => {
                tracing::warn!(%task_id, %lookup, "could not look the task up");
                return TurnOutcome::Failed {
                    error: cause,
                    recorded: unsure(seen),
                };
            }
        };
        if let Some(why) = &record.turns_unavailable {
            tracing::warn!(%task_id, why, "could not read the task's turns");
            return TurnOutcome::Failed {
                error: cause,
                recorded: unsure(seen),
            };
        }
        // Our turn is the newest one, carrying our input; anything else means Handinger
        // never recorded it.
        let ours = record
            .latest_turn()
            .filter(|t| t.input.as_deref().is_some_and(ours));
        let Some(turn) = ours else {
            return TurnOutcome::Failed {
                error: cause,
                recorded: if seen {
                    Recorded::StillRunning
                } else {
                    Recorded::No
                },
            };
        };
        seen = true;
        let finished = turn.status.as_deref().is_some_and(is_terminal_status)
            || record
                .task
                .status
                .as_deref()
                .is_some_and(is_terminal_status);
        if finished {
            tracing::info!(%task_id, "found the turn upstream after a failed POST");
            let sources = api.latest_sources(task_id, &record).await;
            return TurnOutcome::Recovered {
                record,
                sources,
                cause,
            };
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

/// A claim this replica won in the shared store, and when it asked for it.
struct Claimed {
    store: Arc<SharedStore>,
    ident: shared::Ident,
    meta: shared::TurnMeta,
    /// Just before the claim was sent: the lease runs from no earlier than this.
    at: Instant,
}

/// Makes sure the claim is still this replica's before its turn is posted. Normally the POST
/// follows the claim within milliseconds and nothing is asked; a replica stalled since
/// (paused, swapped out, starved) may have let the lease lapse and seen the turn taken over,
/// so it renews first, and sends nothing if the claim is gone or cannot be confirmed.
async fn confirm_claim(
    store: &SharedStore,
    ident: &shared::Ident,
    meta: &shared::TurnMeta,
    claimed_at: Instant,
) -> Result<(), TurnOutcome> {
    let fresh = store.lease() / 3;
    let mut since = claimed_at;
    // Each renewal restarts the lease; a replica that stalls again right after one asks
    // again, a few times at most.
    for _ in 0..3 {
        if since.elapsed() < fresh {
            return Ok(());
        }
        let asked = Instant::now();
        match store.renew(ident, meta).await {
            Ok(true) => since = asked,
            Ok(false) => {
                return Err(withheld(
                    "this server was stalled past its claim on the task, and another replica has taken the turn over: this server did not send it".into(),
                ));
            }
            Err(error) => {
                return Err(withheld(format!(
                    "this server was stalled past its claim on the task and could not confirm it ({error}): it did not send the turn"
                )));
            }
        }
    }
    Err(withheld(
        "this server kept stalling while it confirmed its claim on the task: it did not send the turn".into(),
    ))
}

/// A turn this server chose not to send: certainly not recorded.
fn withheld(detail: String) -> TurnOutcome {
    TurnOutcome::Failed {
        error: ApiError::Withheld { detail },
        recorded: Recorded::No,
    }
}

/// What became of a turn the store cannot vouch for (an orphan: its owner stopped renewing
/// its lease; or one the store may have forgotten), from Handinger's turn list.
#[derive(Debug, Clone, Copy)]
enum OrphanFate {
    /// Never sent: the task is unknown, or its latest turn is another input.
    NotSent,
    /// Sent, and still running upstream.
    Running,
    /// Sent, and ended.
    Ended,
    /// The lookup failed or the turn list could not be read: nothing is decided.
    Unknown,
}

async fn orphan_fate(
    api: &HandingerClient,
    ident: &shared::Ident,
    held: &shared::TurnMeta,
) -> OrphanFate {
    let record = match api.get_task(ident.task_id()).await {
        Ok(record) => record,
        Err(ApiError::Status { status: 404, .. }) => return OrphanFate::NotSent,
        Err(_) => return OrphanFate::Unknown,
    };
    if record.turns_unavailable.is_some() {
        return OrphanFate::Unknown;
    }
    match record.latest_turn() {
        Some(turn)
            if turn
                .input
                .as_deref()
                .is_some_and(|input| ident.digest(input) == held.digest) =>
        {
            let ended = turn.status.as_deref().is_some_and(is_terminal_status)
                || record
                    .task
                    .status
                    .as_deref()
                    .is_some_and(is_terminal_status);
            if ended {
                OrphanFate::Ended
            } else {
                OrphanFate::Running
            }
        }
        _ => OrphanFate::NotSent,
    }
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
        HandingerClient::new(
            Some(&SecretString::from(key.to_owned())),
            options,
            Arc::new(crate::handinger::Unobserved),
        )
        .unwrap()
    }

    impl TurnRegistry {
        /// (finished answers held, their bytes, turns in flight), as the bounds see them.
        fn counts(&self) -> (usize, usize, usize) {
            let registry = self.lock();
            (
                registry.finished_count,
                registry.retained_bytes,
                registry.in_flight,
            )
        }
    }

    async fn finished(turn: &Turn) -> Arc<TurnOutcome> {
        let mut outcome = turn.outcome.subscribe();
        let ended = outcome.wait_for(Option::is_some).await.unwrap();
        ended.clone().unwrap()
    }

    fn request(task_id: &TaskId, input: &str) -> TaskRequest {
        TaskRequest {
            input: input.into(),
            budget: Budget::Low,
            task_id: task_id.to_string(),
            worker_id: None,
            files: Vec::new(),
        }
    }

    /// A follow-up replaces the task's finished turn: the old answer stops counting at once,
    /// and its stale place in the eviction queue is skipped, never counted twice.
    #[tokio::test]
    async fn replaced_and_evicted_answers_are_counted_once() {
        let registry = Arc::new(TurnRegistry::new(
            Retention {
                ttl: Duration::from_secs(60),
                max_finished: 2,
                max_bytes: 1 << 20,
                repeat_window: Duration::from_secs(600),
            },
            TurnLimits {
                max_in_flight: 10,
                max_in_flight_per_key: 10,
            },
            AnswerFileOptions::default(),
        ));
        // Nothing listens on port 9: each turn fails at once, certainly not sent.
        let api = client("hdg_alice");
        let task = TaskId::generate();
        let first = registry
            .start(&api, task.clone(), request(&task, "one"), false)
            .await
            .unwrap()
            .turn;
        let size = finished(&first).await.retained_bytes();
        assert_eq!(registry.counts(), (1, size, 0));
        let second = registry
            .start(&api, task.clone(), request(&task, "two"), false)
            .await
            .unwrap()
            .turn;
        finished(&second).await;
        assert_eq!(registry.counts().0, 1, "the follow-up replaced the first");
        let mut others = Vec::new();
        for _ in 0..3 {
            let id = TaskId::generate();
            others.push(
                registry
                    .start(&api, id.clone(), request(&id, "x"), false)
                    .await
                    .unwrap()
                    .turn,
            );
        }
        for turn in &others {
            finished(turn).await;
        }
        let (count, bytes, in_flight) = registry.counts();
        assert_eq!((count, in_flight), (2, 0), "at most max_finished are kept");
        assert_eq!(bytes, 2 * size, "bytes follow the answers kept");
        assert!(registry.get(&api, &task).is_none(), "the oldest went first");
        assert!(registry.get(&api, &others[2].task_id).is_some());
    }

    #[tokio::test]
    async fn a_turn_is_visible_only_to_the_key_that_started_it() {
        let registry = Arc::new(TurnRegistry::new(
            Retention {
                ttl: Duration::from_secs(60),
                max_finished: 10,
                max_bytes: 1 << 20,
                repeat_window: Duration::from_secs(600),
            },
            TurnLimits {
                max_in_flight: 10,
                max_in_flight_per_key: 10,
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
            .await
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
