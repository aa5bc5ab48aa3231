//! What is true about a task, for every reader: `get_task`, MCP `tasks/get` and
//! `resources/read` ask here rather than each deciding between the turn this server holds
//! and Handinger's record.
//!
//! The held turn (here or in the shared store) knows what Handinger's record does not: the
//! answer's sources, its files as they came, the copies made of them. The record knows what
//! the held turn does not: the title, the totals, the other turns, and, since 2026-07, the
//! turn's credits. And when a held turn failed, the record may show Handinger took it after
//! all.

use std::sync::Arc;

use super::{Recorded, Turn, TurnOutcome, TurnRegistry};
use crate::handinger::{ApiError, HandingerClient, TaskRecord};
use crate::task_id::TaskId;

/// Where a task's truth is, before any waiting.
pub enum Known {
    /// A turn this server (or the shared store) holds; running while it has no outcome.
    Held(Arc<Turn>),
    /// Nothing held: Handinger's record.
    Recorded(Box<TaskRecord>),
}

/// What a held turn that ended amounts to.
pub enum Settled {
    /// Its outcome says it all (an answer whose record could not be read or that carries an
    /// error, a recovered turn, or a failure Handinger shows no trace of).
    AsHeld,
    /// Its answer, completed with Handinger's record, and the turn's credits read from that
    /// record where the answer has none.
    Completed {
        record: Box<TaskRecord>,
        credits: Option<f64>,
    },
    /// It failed, but Handinger holds the task (the turn was recorded after all, or earlier
    /// turns): the record is the truth, and the task is followed there.
    Upstream,
}

impl TurnRegistry {
    /// The held turn when there is one, else Handinger's record.
    pub async fn lookup(&self, api: &HandingerClient, task_id: &TaskId) -> Result<Known, ApiError> {
        match self.find(api, task_id).await {
            Some(turn) => Ok(Known::Held(turn)),
            None => Ok(Known::Recorded(Box::new(api.get_task(task_id).await?))),
        }
    }

    /// Settles a held turn that ended with `outcome` against Handinger's record.
    pub async fn settle(
        &self,
        api: &HandingerClient,
        turn: &Turn,
        outcome: &TurnOutcome,
    ) -> Settled {
        let task_id = &turn.task_id;
        match outcome {
            // A held turn that failed is not the whole task: Handinger may hold it after all
            // (its POST failed after sending and the lookups failed too, or it outran the
            // reconciliation), or hold earlier turns (a follow-up that was refused).
            // Recorded, or perhaps recorded: the record decides, and following the task
            // reads it anyway.
            TurnOutcome::Failed { recorded, .. } if *recorded != Recorded::No => Settled::Upstream,
            TurnOutcome::Failed { .. } => {
                // "Handinger holds something" needs a readable turn list: one that could not
                // be read may hide the turn, so it counts as holding something.
                let upstream_has_turns = api.get_task(task_id).await.is_ok_and(|record| {
                    !record.turns.is_empty() || record.turns_unavailable.is_some()
                });
                if upstream_has_turns {
                    Settled::Upstream
                } else {
                    Settled::AsHeld
                }
            }
            // Without the record the answer alone still stands.
            TurnOutcome::Answered { answer, .. } if answer.error.is_none() => {
                let Ok(record) = api.get_task(task_id).await else {
                    return Settled::AsHeld;
                };
                // Since 2026-07 the POST answer has no credits: they are in the turn record,
                // when its latest turn is the one held here.
                let credits = record
                    .latest_turn()
                    .filter(|t| t.input.as_deref().is_some_and(|input| turn.asked(input)))
                    .and_then(|t| t.credits);
                Settled::Completed {
                    record: Box::new(record),
                    credits,
                }
            }
            TurnOutcome::Answered { .. } | TurnOutcome::Recovered { .. } => Settled::AsHeld,
        }
    }
}
