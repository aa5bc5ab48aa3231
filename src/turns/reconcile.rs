//! After a POST failed once it may have reached Handinger: the task is looked up and our
//! turn followed to its end, instead of guessing whether it was taken.

use std::time::{Duration, Instant};

use super::outcome::{RecordedUpstream, TurnOutcome};
use crate::handinger::types::is_terminal_status;
use crate::handinger::{ApiError, HandingerClient};
use crate::task_id::TaskId;

/// How often an ambiguous failure is re-checked with `GET /api/tasks/{id}`.
const RECONCILE_POLL: Duration = Duration::from_secs(2);
/// How long a turn whose POST failed ambiguously is followed by polling before the
/// registry stops and leaves it to `get_task`.
const RECONCILE_LIMIT: Duration = Duration::from_secs(30 * 60);

/// Looks the task up after an ambiguous failure and follows our turn to its end.
///
/// "Not recorded" (the only verdict that makes a resend safe) needs positive evidence: the
/// task is unknown (404), or its turn list was read and our turn is not in it. A lookup
/// that fails, or a turn list that cannot be read, proves nothing and ends as
/// [`RecordedUpstream::Unknown`] (or [`RecordedUpstream::StillRunning`] once the turn was seen).
/// `ours` recognises our turn's input.
pub(super) async fn reconcile(
    api: &HandingerClient,
    task_id: &TaskId,
    ours: &(dyn Fn(&str) -> bool + Sync),
    cause: ApiError,
) -> TurnOutcome {
    let started = Instant::now();
    let mut seen = false;
    let unsure = |seen: bool| {
        if seen {
            RecordedUpstream::StillRunning
        } else {
            RecordedUpstream::Unknown
        }
    };
    loop {
        let record = match api.get_task(task_id).await {
            Ok(record) => record,
            Err(ApiError::Status { status: 404, .. }) if !seen => {
                return TurnOutcome::Failed {
                    error: cause,
                    recorded: RecordedUpstream::No,
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
                    RecordedUpstream::StillRunning
                } else {
                    RecordedUpstream::No
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
                recorded: RecordedUpstream::StillRunning,
            };
        }
        tokio::time::sleep(RECONCILE_POLL).await;
    }
}
