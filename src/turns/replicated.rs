//! The start of a turn with a shared store (`--store`): claimed in the store before
//! anything is sent, so of all replicas exactly one posts it and the others join it through
//! the store; an orphaned claim is settled with Handinger's turn list, and the claim is
//! confirmed and its lease renewed while the POST runs. Also the store's part in finding a
//! task's latest turn. The turns themselves are held by [`super::held`], whose admission
//! and slots this path shares.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::clock::{now_ms, now_rfc3339};
use super::held::{Asked, HeldTurns, StartRefused, run_turn};
use super::outcome::{RecordedUpstream, TurnOutcome};
use super::remote::Remote;
use super::store::{Claim, Ident, Lookup, StoredAnswer, TurnMeta, TurnStore};
use super::turn::{Admitted, Turn};
use crate::handinger::types::is_terminal_status;
use crate::handinger::{ApiError, HandingerClient};
use crate::task_id::TaskId;

/// The shared store, and the turns of other replicas this process hands out.
pub(super) struct Replicated {
    store: Arc<TurnStore>,
    /// Remote turns still running, by their name in the store: one registry turn per
    /// remote turn however many callers find or join it, so one follower feeds them all.
    /// An entry lives as long as a caller holds its turn; dead ones go at the next insert.
    remote_turns: Mutex<HashMap<String, Weak<Turn>>>,
}

impl Replicated {
    pub(super) fn new(store: Arc<TurnStore>) -> Self {
        Self {
            store,
            remote_turns: Mutex::default(),
        }
    }

    /// The registry turn of a remote turn still running: the one already handed out for
    /// it while any caller holds that, else a new one.
    fn remote_turn(&self, remote: Remote) -> Arc<Turn> {
        let mut remote_turns = self
            .remote_turns
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        remote_turns.retain(|_, turn| turn.strong_count() > 0);
        let known = remote_turns
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
        remote_turns.insert(name, Arc::downgrade(&turn));
        turn
    }

    /// The latest turn of a task on any replica, `local` being the one this server holds: a
    /// turn this server runs is answered from memory; otherwise the store decides (a later
    /// turn may have run elsewhere), and `local` stands when the store cannot be asked. An
    /// orphaned turn (its owner died) is `None`: the caller then follows the task on
    /// Handinger.
    pub(super) async fn find(
        &self,
        api: &HandingerClient,
        task_id: &TaskId,
        local: Option<Arc<Turn>>,
    ) -> Option<Arc<Turn>> {
        let store = &self.store;
        if local.as_ref().is_some_and(|turn| turn.outcome().is_none()) {
            return local;
        }
        let ident = store.ident(api, task_id);
        let remote = |meta| Remote::new(store, api, ident.clone(), meta);
        match store.lookup(&ident).await {
            Ok(Lookup::Running(meta)) => Some(self.remote_turn(remote(meta))),
            Ok(Lookup::Finished(stored)) => {
                let StoredAnswer {
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

    /// Starts a turn with a shared store (see [`super::TurnRegistry::start`]): a turn running
    /// here is joined from memory as without one; otherwise the turn is claimed in the store
    /// before anything is sent, so of all replicas exactly one posts it and the others join
    /// it through the store.
    pub(super) async fn start(
        &self,
        here: &Arc<HeldTurns>,
        api: &HandingerClient,
        mut asked: Asked,
    ) -> Result<Admitted, StartRefused> {
        let store = &self.store;
        // The slot is taken before the claim (and given back if the turn is not ours), so
        // the limits hold while the store is asked.
        if let Some(admitted) = here.admit(&mut asked, false)? {
            return Ok(admitted);
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
                        here.give_slot(scope);
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
                here.give_slot(scope);
                let running_for = Duration::from_millis(now_ms().saturating_sub(held.started_ms));
                if held.digest == meta.digest {
                    // Joined through the store; an orphan is followed on Handinger by the
                    // wait, never posted again.
                    let remote = Remote::new(store, api, ident, held);
                    return Ok(Admitted::new(self.remote_turn(remote)));
                }
                return Err(StartRefused::Busy { running_for });
            }
            Ok(Claim::Repeat { uid }) => {
                here.give_slot(scope);
                return Ok(self.repeated(store, api, ident, meta, uid).await);
            }
            Err(error) => {
                here.give_slot(scope);
                // The claim may still land once the store answers: withdraw it then, so the
                // caller's "nothing was sent" stays true and the retry can claim the turn.
                store.release_later(ident, meta);
                return Err(StartRefused::Store(error));
            }
        };
        // The store's worker is the task's latest turn's, wherever it ran; what this replica
        // remembers (copied in by `admit`) may be older. A worker the caller named wins.
        if !asked.explicit_worker
            && let Some(worker) = worker
        {
            asked.request.worker_id = Some(worker);
        }
        let turn = here.insert(&asked, meta.created_at.clone());
        let claimed = Claimed {
            store: store.clone(),
            ident,
            meta,
            at: claimed_at,
        };
        tokio::spawn(run_claimed(
            here.clone(),
            api.clone(),
            asked,
            turn.clone(),
            claimed,
        ));
        Ok(Admitted::new(turn))
    }

    /// The task's latest turn, for a call that repeated its input: its stored answer, or,
    /// when the store no longer holds one, the turn followed on Handinger.
    async fn repeated(
        &self,
        store: &Arc<TurnStore>,
        api: &HandingerClient,
        ident: Ident,
        asked: TurnMeta,
        uid: String,
    ) -> Admitted {
        let remote = |meta| Remote::new(store, api, ident.clone(), meta);
        if let Ok(Lookup::Finished(stored)) = store.lookup(&ident).await
            && stored.meta.uid == uid
        {
            let StoredAnswer {
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
        let meta = TurnMeta { uid, ..asked };
        Admitted {
            turn: self.remote_turn(remote(meta)),
            repeat_of: Some(Duration::ZERO),
        }
    }
}

/// Runs a turn this replica claimed in the shared store: confirms the claim if the
/// replica may have stalled since it was made, posts while renewing it, and stores the
/// outcome before publishing it here.
async fn run_claimed(
    here: Arc<HeldTurns>,
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
            let claim = ClaimWatch::new(store.lease());
            let still_ours = || claim.held();
            let post = run_turn(
                &api,
                &running.task_id,
                &request,
                here.answer_files(),
                &still_ours,
            );
            tokio::pin!(post);
            let mut renew = tokio::time::interval(store.lease() / 3);
            renew.reset();
            loop {
                tokio::select! {
                    outcome = &mut post => break outcome,
                    _ = renew.tick() => {
                        // A failed renewal never stops a POST on its way: at worst another
                        // replica starts following the task on Handinger. It stops a resend.
                        match store.renew(&ident, &meta).await {
                            Ok(true) => claim.renewed(),
                            Ok(false) => {
                                claim.lost();
                                tracing::warn!("the turn's claim was taken over while its POST ran; its answer is kept here and on Handinger");
                            }
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
    here.finish(key, &running, outcome);
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

/// Whether a running turn's claim is still this replica's, as far as its renewals show:
/// not taken over, and renewed within a lease (a replica paused or cut off from the store
/// for longer may have been taken over without hearing of it).
struct ClaimWatch {
    lease: Duration,
    lost: std::sync::atomic::AtomicBool,
    renewed: std::sync::Mutex<Instant>,
}

impl ClaimWatch {
    /// Just after the claim was made or confirmed.
    fn new(lease: Duration) -> Self {
        Self {
            lease,
            lost: Default::default(),
            renewed: std::sync::Mutex::new(Instant::now()),
        }
    }

    fn renewed(&self) {
        *self.renewed.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    fn lost(&self) {
        self.lost.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    fn held(&self) -> bool {
        !self.lost.load(std::sync::atomic::Ordering::Relaxed)
            && self
                .renewed
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .elapsed()
                < self.lease
    }
}

/// A claim this replica won in the shared store, and when it asked for it.
struct Claimed {
    store: Arc<TurnStore>,
    ident: Ident,
    meta: TurnMeta,
    /// Just before the claim was sent: the lease runs from no earlier than this.
    at: Instant,
}

/// Makes sure the claim is still this replica's before its turn is posted. Normally the POST
/// follows the claim within milliseconds and nothing is asked; a replica stalled since
/// (paused, swapped out, starved) may have let the lease lapse and seen the turn taken over,
/// so it renews first, and sends nothing if the claim is gone or cannot be confirmed.
async fn confirm_claim(
    store: &TurnStore,
    ident: &Ident,
    meta: &TurnMeta,
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
        recorded: RecordedUpstream::No,
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

async fn orphan_fate(api: &HandingerClient, ident: &Ident, held: &TurnMeta) -> OrphanFate {
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
