//! The turns this process holds: the map keyed by API-key scope and task id, eviction of
//! finished answers, the slots of turns running upstream, and the start of a turn when no
//! store is shared (admission, insertion and the POST, under one lock). The replicated
//! start ([`super::replicated`]) admits, inserts and gives slots back through the same
//! methods.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use super::bounds::{Retention, TurnLimits};
use super::clock::now_rfc3339;
use super::outcome::{RecordedUpstream, TurnOutcome};
use super::reconcile::reconcile;
use super::store::StoreError;
use super::turn::{Admitted, Turn};
use crate::files::answer::{AnswerCopies, AnswerFileOptions};
use crate::handinger::{HandingerClient, TaskRequest};
use crate::task_id::TaskId;

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
    Store(StoreError),
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
pub(super) struct TurnKey {
    pub(super) scope: u64,
    pub(super) task_id: TaskId,
}

impl TurnKey {
    pub(super) fn new(api: &HandingerClient, task_id: TaskId) -> Self {
        Self {
            scope: api.scope(),
            task_id,
        }
    }
}

/// A turn asked for, as [`super::TurnRegistry::start`] checks and then runs it.
pub(super) struct Asked {
    pub(super) key: TurnKey,
    /// Of the input: joining needs only equality, and the input itself goes with the
    /// request.
    pub(super) digest: u64,
    pub(super) request: TaskRequest,
    /// Whether the caller named the worker (a follow-up otherwise reuses the task's).
    pub(super) explicit_worker: bool,
}

/// The turns this process holds, and the bounds they are held within.
pub(super) struct HeldTurns {
    turns: Mutex<Registry>,
    retention: Retention,
    limits: TurnLimits,
    answer_files: Arc<AnswerFileOptions>,
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
}

struct Finished {
    key: TurnKey,
    turn_id: u64,
    at: Instant,
}

impl HeldTurns {
    pub(super) fn new(
        retention: Retention,
        limits: TurnLimits,
        answer_files: AnswerFileOptions,
    ) -> Self {
        Self {
            answer_files: Arc::new(answer_files),
            turns: Mutex::new(Registry::default()),
            retention,
            limits,
        }
    }

    /// The latest turn of a task, if the server still holds it.
    pub(super) fn get(&self, api: &HandingerClient, task_id: &TaskId) -> Option<Arc<Turn>> {
        let key = TurnKey::new(api, task_id.clone());
        let mut registry = self.lock();
        self.evict(&mut registry);
        registry.map.get(&key).cloned()
    }

    /// Starts a turn without a shared store (see [`super::TurnRegistry::start`]): everything
    /// under one lock.
    pub(super) fn start(
        self: &Arc<Self>,
        api: &HandingerClient,
        mut asked: Asked,
    ) -> Result<Admitted, StartRefused> {
        let turn = {
            let mut registry = self.lock();
            if let Some(admitted) = self.admit_locked(&mut registry, &mut asked, true)? {
                return Ok(admitted);
            }
            registry.insert(&asked, now_rfc3339())
        };
        let Asked { key, request, .. } = asked;
        let api = api.clone();
        let running = turn.clone();
        let registry = self.clone();
        tokio::spawn(async move {
            let outcome = run_turn(
                &api,
                &running.task_id,
                &request,
                &registry.answer_files,
                &|| true,
            )
            .await;
            // The input goes with the request, here, whatever the outcome.
            drop(request);
            registry.finish(key, &running, outcome);
        });
        Ok(Admitted::new(turn))
    }

    /// The admission of [`Self::start`], for the replicated start: a turn of the task running
    /// here is joined or refused, and a new one takes a slot (`None`: go ahead; give the
    /// slot back with [`Self::give_slot`] if the turn is not posted). `repeats_here`: a
    /// repeat of a finished turn is answered from this process (without a shared store; with
    /// one, the store's record of the task's latest turn decides).
    pub(super) fn admit(
        &self,
        asked: &mut Asked,
        repeats_here: bool,
    ) -> Result<Option<Admitted>, StartRefused> {
        self.admit_locked(&mut self.lock(), asked, repeats_here)
    }

    /// Puts a new turn of `asked`'s task in the map (its slot taken by [`Self::admit`]).
    pub(super) fn insert(&self, asked: &Asked, created_at: String) -> Arc<Turn> {
        self.lock().insert(asked, created_at)
    }

    /// Gives back a slot [`Self::admit`] took for a turn that will not be posted here.
    pub(super) fn give_slot(&self, scope: u64) {
        self.lock().give_slot(scope);
    }

    pub(super) fn answer_files(&self) -> &Arc<AnswerFileOptions> {
        &self.answer_files
    }

    pub(super) fn retention(&self) -> Retention {
        self.retention
    }

    /// Whether a call on `task_id` (`None`: a new task) would be refused now for want of a
    /// slot ([`StartRefused::Full`]), read without taking one: a call whose task has a turn
    /// running here passes (it joins it, or is refused as busy by the start). HTTP
    /// mode asks before it accepts a call, so such a call gets a 503 with `Retry-After`;
    /// `start` still decides, so one that races another for the last slot gets its error.
    pub(super) fn room_for(
        &self,
        scope: u64,
        task_id: Option<&TaskId>,
    ) -> Result<(), StartRefused> {
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
    pub(super) fn finish(&self, key: TurnKey, turn: &Arc<Turn>, outcome: TurnOutcome) {
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
    fn admit_locked(
        &self,
        registry: &mut Registry,
        asked: &mut Asked,
        repeats_here: bool,
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
                Some(outcome) if repeats_here => {
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

    /// (finished answers held, their bytes, turns in flight), as the bounds see them.
    #[cfg(test)]
    pub(super) fn counts(&self) -> (usize, usize, usize) {
        let registry = self.lock();
        (
            registry.finished_count,
            registry.retained_bytes,
            registry.in_flight,
        )
    }
}

impl Registry {
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

    /// Counts a turn about to run upstream, unless a limit is reached.
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

/// Sends the POST; if it fails after it may have reached Handinger, finds out what
/// happened instead of guessing.
pub(super) async fn run_turn(
    api: &HandingerClient,
    task_id: &TaskId,
    request: &TaskRequest,
    answer_files: &Arc<AnswerFileOptions>,
    still_ours: &(dyn Fn() -> bool + Sync),
) -> TurnOutcome {
    let error = match api.create_task(request, still_ours).await {
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
            recorded: RecordedUpstream::No,
        };
    }
    tracing::warn!(%task_id, %error, "task POST failed after sending; looking the task up");
    let ours = |input: &str| input == request.input;
    // Boxed, the one box of the turn path: only an ambiguous failure gets here, and inline
    // it would make every turn's task as large as the reconciliation's polling (measured
    // with heaptrack, docs/benchmarks.md "Memory per held call": 4.2 KiB, 1.4–2.1 KiB boxed).
    Box::pin(reconcile(api, task_id, &ours, error)).await
}
