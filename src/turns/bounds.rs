//! What the registry keeps and runs at most: [`Retention`] of finished answers and
//! [`TurnLimits`] on turns running upstream.

use std::time::Duration;

/// How long, how many and how many bytes of finished answers are kept for collection.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    pub ttl: Duration,
    pub max_finished: usize,
    /// Budget for the answers kept, counted by [`TurnOutcome::retained_bytes`](crate::turns::TurnOutcome::retained_bytes).
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
