//! How a turn ended ([`TurnOutcome`]), whether Handinger holds it ([`RecordedUpstream`]), and what
//! an outcome costs the registry's byte budget.

use std::sync::Arc;

use crate::files::answer::AnswerCopies;
use crate::handinger::types::{Source, TaskRecord};
use crate::handinger::{ApiError, WorkerAnswer};

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
    Failed {
        error: ApiError,
        recorded: RecordedUpstream,
    },
}

impl TurnOutcome {
    /// Whether Handinger holds the turn: it answered, was found upstream, or was still
    /// running there when the bridge stopped following it. Only such a turn answers a repeat
    /// of its input (a failure Handinger has no trace of must be sendable again).
    pub fn recorded_upstream(&self) -> bool {
        match self {
            TurnOutcome::Answered { .. } | TurnOutcome::Recovered { .. } => true,
            TurnOutcome::Failed { recorded, .. } => *recorded == RecordedUpstream::StillRunning,
        }
    }
}

/// Whether Handinger has the turn, as far as the bridge could establish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum RecordedUpstream {
    /// Certainly not: resending is safe.
    No,
    /// It was found upstream but still running when the bridge stopped following it.
    StillRunning,
    /// Could not be established (the lookup failed too).
    Unknown,
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
