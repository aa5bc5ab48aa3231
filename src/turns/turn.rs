//! One turn (one POST of a task): what was asked (as a digest), when, how it ended, and the
//! wait for that end; and what a start hands out ([`Admitted`]) or ends a wait.

use std::hash::BuildHasher;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use super::clock::now_ms;
use super::outcome::TurnOutcome;
use super::remote::{self, Remote};
use crate::handinger::Budget;
use crate::task_id::TaskId;

/// How long an answer waits after a progress tick sent just before it. The TypeScript SDK
/// runs a progress handler a microtask after the message arrives but forgets the request's
/// handlers as soon as its answer arrives, so a tick read in the same chunk as the answer is
/// reported as "a progress notification for an unknown token" (2 of 20 calls over legacy
/// SSE when the answer came as a tick was due). A gap keeps the two in separate reads unless
/// the client is stalled for longer than it: 50 ms still let one in 16 through on a machine
/// loaded by six tests at once, 200 ms none. It costs a call anything only when a tick went
/// out in the last 200 ms, at most that long, once per call.
const TICK_SETTLE: Duration = Duration::from_millis(200);

/// One turn: what was asked (as a digest), when, and (once known) how it ended.
pub struct Turn {
    /// Unique within the process: tells a turn from a later one of the same task.
    pub(super) id: u64,
    pub task_id: TaskId,
    /// A keyed digest of the input: enough to recognise a repeat of the same call without
    /// holding the input itself.
    pub(super) input_digest: u64,
    pub budget: Budget,
    pub worker_id: Option<String>,
    pub started: Instant,
    /// RFC 3339, for MCP task metadata.
    pub created_at: String,
    pub(super) outcome: watch::Sender<Option<Arc<TurnOutcome>>>,
    pub(super) finished: OnceLock<(Instant, String)>,
    /// Set when an MCP client cancelled its task: the turn itself keeps running upstream.
    pub(super) cancelled: std::sync::atomic::AtomicBool,
    /// The bytes the registry's budget counted for the outcome when it finished, given back
    /// as they were when it leaves: the outcome's size changes afterwards (its answer files'
    /// copies finish), and a recount would drift. Written and read under the registry lock.
    pub(super) counted_bytes: std::sync::atomic::AtomicUsize,
    /// A turn another replica runs or ran, read from the shared store: its outcome comes
    /// from there (see [`remote::follow`]).
    pub(super) remote: Option<Arc<Remote>>,
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
            tokio::spawn(remote::follow(remote.clone(), self.outcome.clone()));
        }
        let deadline = tokio::time::Instant::now() + limit;
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let mut last_tick = None;
        loop {
            let outcome = receiver.borrow_and_update().clone();
            if let Some(outcome) = outcome {
                if let Some(at) = last_tick {
                    tokio::time::sleep_until(at + TICK_SETTLE).await;
                }
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
                        last_tick = Some(tokio::time::Instant::now());
                    }
                }
            }
        }
    }
}

/// A turn as [`super::TurnRegistry::start`] hands it out: one it sent, one it joined, or the
/// task's latest turn when the call repeated its input.
pub struct Admitted {
    pub turn: Arc<Turn>,
    /// Set when the call asked the same as the task's latest turn, which Handinger recorded
    /// and which ended this long ago (within `--repeat-window`): `turn` is that turn, and
    /// nothing was posted.
    pub repeat_of: Option<Duration>,
}

impl Admitted {
    pub(super) fn new(turn: Arc<Turn>) -> Self {
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

/// A digest of a turn's input, keyed per process so nobody can craft two inputs that
/// collide: 64 bits are plenty to tell a repeated call from a different one.
pub(super) fn input_digest(input: &str) -> u64 {
    static KEY: OnceLock<std::collections::hash_map::RandomState> = OnceLock::new();
    KEY.get_or_init(Default::default).hash_one(input)
}

impl Remote {
    /// A registry turn for what the store holds.
    pub(super) fn turn(self, outcome: Option<(TurnOutcome, String)>) -> Arc<Turn> {
        let elapsed = Duration::from_millis(now_ms().saturating_sub(self.meta.started_ms));
        let started = std::time::Instant::now()
            .checked_sub(elapsed)
            .unwrap_or_else(std::time::Instant::now);
        let finished = std::sync::OnceLock::new();
        let outcome = match outcome {
            Some((outcome, at)) => {
                let _ = finished.set((std::time::Instant::now(), at));
                Some(Arc::new(outcome))
            }
            None => None,
        };
        Arc::new(Turn {
            id: 0,
            task_id: self.ident.task_id().clone(),
            input_digest: 0,
            budget: self.meta.budget,
            worker_id: self.meta.worker_id.clone(),
            started,
            created_at: self.meta.created_at.clone(),
            outcome: watch::Sender::new(outcome),
            finished,
            cancelled: Default::default(),
            counted_bytes: Default::default(),
            remote: Some(Arc::new(self)),
        })
    }
}
