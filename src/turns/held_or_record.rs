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

use super::outcome::{RecordedUpstream, TurnOutcome};
use super::registry::TurnRegistry;
use super::turn::Turn;
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
    /// error, a recovered turn, or a failure whose record cannot be read).
    AsHeld,
    /// Its answer, completed with Handinger's record, and the turn's credits read from that
    /// record where the answer has none.
    Completed {
        record: Box<TaskRecord>,
        credits: Option<f64>,
    },
    /// Handinger's record is the truth, and the task is followed there: the held turn failed
    /// but Handinger shows it after all (or may be hiding it: its turn list is unreadable),
    /// or the record's latest turn is a newer one than the held answer (started on another
    /// replica, or elsewhere while the store could not say).
    Upstream,
    /// The held turn failed, and it is the task's latest: its failure is the answer, with
    /// the record's earlier turns when Handinger has the task (`None`: it does not).
    Failed {
        record: Option<Box<TaskRecord>>,
        recorded: RecordedUpstream,
    },
}

impl TurnRegistry {
    /// The held turn when there is one, else Handinger's record.
    pub async fn lookup(&self, api: &HandingerClient, task_id: &TaskId) -> Result<Known, ApiError> {
        match self.find(api, task_id).await {
            Some(turn) => Ok(Known::Held(turn)),
            None => Ok(Known::Recorded(Box::new(api.get_task(task_id).await?))),
        }
    }

    /// Settles a held turn that ended with `outcome` against Handinger's record: whatever
    /// the held turn says, the record's newest turn decides which turn the task's answer is,
    /// so an older answer (remembered here while the store was down or had lost its data) is
    /// never passed off as a newer turn's.
    pub async fn settle(
        &self,
        api: &HandingerClient,
        turn: &Turn,
        outcome: &TurnOutcome,
    ) -> Settled {
        let record = api.get_task(&turn.task_id).await;
        // Turns are told apart by their input (the held turn keeps only its digest).
        let newest_is_held = |record: &TaskRecord| {
            record
                .latest_turn()
                .map(|t| t.input.as_deref().is_some_and(|input| turn.asked(input)))
        };
        let readable = |record: &TaskRecord| record.turns_unavailable.is_none();
        match outcome {
            TurnOutcome::Failed { recorded, .. } => match record {
                // Seen upstream already, or perhaps recorded and now in the turn list, or
                // hidden by a turn list that could not be read: followed there.
                _ if *recorded == RecordedUpstream::StillRunning => Settled::Upstream,
                Ok(record) if !readable(&record) => Settled::Upstream,
                Ok(record)
                    if *recorded != RecordedUpstream::No
                        && newest_is_held(&record) == Some(true) =>
                {
                    Settled::Upstream
                }
                // The turn list was read and the turn is not its newest: not recorded (the
                // same positive evidence the reconciliation asks for).
                Ok(record) => Settled::Failed {
                    record: Some(Box::new(record)),
                    recorded: RecordedUpstream::No,
                },
                Err(ApiError::Status { status: 404, .. }) => Settled::Failed {
                    record: None,
                    recorded: *recorded,
                },
                Err(_) => Settled::AsHeld,
            },
            _ => {
                let Ok(record) = record else {
                    // Without the record the answer alone still stands.
                    return Settled::AsHeld;
                };
                if readable(&record) && newest_is_held(&record) == Some(false) {
                    return Settled::Upstream;
                }
                match outcome {
                    TurnOutcome::Answered { answer, .. } if answer.error.is_none() => {
                        // Since 2026-07 the POST answer has no credits: they are in the turn
                        // record, when its latest turn is the one held here.
                        let credits = record
                            .latest_turn()
                            .filter(|t| t.input.as_deref().is_some_and(|input| turn.asked(input)))
                            .and_then(|t| t.credits);
                        Settled::Completed {
                            record: Box::new(record),
                            credits,
                        }
                    }
                    _ => Settled::AsHeld,
                }
            }
        }
    }
}
