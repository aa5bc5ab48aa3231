//! A turn another replica runs or ran, read from the shared store: one follower per turn
//! feeds its waiters from the store, and from Handinger once its owner stops answering.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures::StreamExt as _;
use tokio::sync::watch;

use super::clock::now_rfc3339;
use super::outcome::{RecordedUpstream, TurnOutcome};
use super::reconcile::reconcile;
use super::store::{Ident, Lookup, TurnMeta, TurnStore};
use crate::handinger::{ApiError, HandingerClient};

/// A turn another replica runs (or ran), as the registry hands it to callers.
pub(super) struct Remote {
    pub store: Arc<TurnStore>,
    pub api: HandingerClient,
    pub ident: Ident,
    pub meta: TurnMeta,
    /// Set while a [`follow`] feeds this turn: however many callers wait on it (the
    /// registry hands them one turn, see `Replicated::remote_turn`), one task asks the
    /// store (and, for a dead owner, Handinger) for all of them.
    pub following: std::sync::atomic::AtomicBool,
}

/// Feeds a remote turn's outcome to its waiters: woken by the owner's publication, and by
/// a timer at the lease's pace (to notice an owner that died, whose lease expires without
/// a word). Ends when the outcome is known or nobody waits any more.
pub(super) async fn follow(remote: Arc<Remote>, sender: watch::Sender<Option<Arc<TurnOutcome>>>) {
    /// Lets the next waiter start a follower once this one stops, however it stops.
    struct Following<'a>(&'a std::sync::atomic::AtomicBool);
    impl Drop for Following<'_> {
        fn drop(&mut self) {
            self.0.store(false, Ordering::SeqCst);
        }
    }
    loop {
        {
            let _following = Following(&remote.following);
            feed(&remote, &sender).await;
        }
        // A caller that began waiting as the last one left saw the flag still set and
        // started no follower: this one goes on for it.
        if sender.borrow().is_some()
            || sender.receiver_count() == 0
            || remote.following.swap(true, Ordering::SeqCst)
        {
            return;
        }
    }
}

/// [`follow`]'s work: until the outcome is sent, or nobody waits any more.
async fn feed(remote: &Remote, sender: &watch::Sender<Option<Arc<TurnOutcome>>>) {
    let store = &remote.store;
    let mut messages = store.subscribe(&remote.ident).await;
    loop {
        let settled = match store.lookup(&remote.ident).await {
            Ok(Lookup::Finished(stored)) if stored.meta.uid == remote.meta.uid => {
                sender.send_replace(Some(Arc::new(stored.outcome)));
                return;
            }
            Ok(Lookup::Running(meta)) if meta.uid == remote.meta.uid => None,
            Ok(lookup) => {
                // The owner stopped renewing (it died, or is stalled), or the turn's record
                // is gone without an answer kept for it (withdrawn, taken over, or too big
                // to store): Handinger decides, and nobody posts it again from here.
                let orphan = matches!(&lookup, Lookup::Orphan(meta) if meta.uid == remote.meta.uid);
                tracing::info!(task = %remote.ident.name(), orphan, "the turn's owner is not answering for it; following the task on Handinger");
                // Only while someone waits: a later waiter starts it again. An orphan's owner
                // may only have stalled: if it comes back and stores the answer (with its
                // sources) before Handinger's record settles the turn, that answer wins.
                tokio::select! {
                    settled = reconcile_remote(remote, orphan) => settled,
                    stored = owner_answer(remote, &mut messages), if orphan => Some(stored),
                    () = sender.closed() => return,
                }
            }
            Err(error) => {
                tracing::warn!(%error, "could not check on a turn in the shared store");
                None
            }
        };
        if let Some(outcome) = settled {
            sender.send_replace(Some(Arc::new(outcome)));
            return;
        }
        tokio::select! {
            () = sender.closed() => return,
            message = next_message(&mut messages) => {
                if message.is_none() {
                    messages = None;
                }
            }
            () = tokio::time::sleep(store.lease() / 3) => {}
        }
    }
}

/// The answer the turn's owner stores for it, once it is published on the turn's channel.
async fn owner_answer(
    remote: &Remote,
    messages: &mut Option<redis::aio::PubSubStream>,
) -> TurnOutcome {
    loop {
        if next_message(messages).await.is_none() {
            // The subscription ended: only the reconciliation can settle the turn now.
            std::future::pending::<()>().await;
        }
        if let Ok(Lookup::Finished(stored)) = remote.store.lookup(&remote.ident).await
            && stored.meta.uid == remote.meta.uid
        {
            return stored.outcome;
        }
    }
}

async fn next_message(messages: &mut Option<redis::aio::PubSubStream>) -> Option<redis::Msg> {
    match messages {
        Some(stream) => stream.next().await,
        None => std::future::pending().await,
    }
}

/// Follows a turn its owner no longer answers for on Handinger, to its end, and keeps what
/// it found in the store for the other replicas. `None`: the owner came back meanwhile (it
/// took its lease again), so the store is followed again.
///
/// "Not recorded" is told to waiters only once the store confirms the orphan is settled:
/// the verdict is stored in the turn's place while the turn still has no lease, so an owner
/// that was only stalled finds its claim gone and never posts the turn afterwards.
async fn reconcile_remote(remote: &Remote, orphan: bool) -> Option<TurnOutcome> {
    let task_id = remote.ident.task_id();
    let cause = ApiError::Interrupted {
        detail: "the replica that sent it stopped before the answer arrived".into(),
    };
    let matches = |input: &str| remote.ident.digest(input) == remote.meta.digest;
    let outcome = reconcile(&remote.api, task_id, &matches, cause).await;
    let at = now_rfc3339();
    match &outcome {
        TurnOutcome::Recovered { .. } => {
            if let Err(error) = remote
                .store
                .finish(&remote.ident, &remote.meta, &outcome, &at, orphan)
                .await
            {
                tracing::warn!(%error, "could not keep the recovered answer in the shared store");
            }
            Some(outcome)
        }
        TurnOutcome::Failed {
            recorded: RecordedUpstream::No,
            error,
        } if orphan => {
            match remote
                .store
                .finish(&remote.ident, &remote.meta, &outcome, &at, true)
                .await
            {
                Ok(true) => Some(outcome),
                Ok(false) => None,
                Err(store) => {
                    tracing::warn!(error = %store, "could not settle the orphaned turn in the shared store");
                    Some(TurnOutcome::Failed {
                        error: error.clone(),
                        recorded: RecordedUpstream::Unknown,
                    })
                }
            }
        }
        _ => Some(outcome),
    }
}

impl Remote {
    /// `meta`, a turn of `ident`'s task, as another replica runs (or ran) it.
    pub(super) fn new(
        store: &Arc<TurnStore>,
        api: &HandingerClient,
        ident: Ident,
        meta: TurnMeta,
    ) -> Self {
        Remote {
            store: store.clone(),
            api: api.clone(),
            ident,
            meta,
            following: Default::default(),
        }
    }
}
