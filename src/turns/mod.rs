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
//!
//! One file a job:
//! - `registry` — [`TurnRegistry`], what the tools ask: start, join or find a turn.
//! - `held` — this process's turns: the map, eviction, slots, the start without a store.
//! - `replicated` — the start with a shared store: the claim, its lease, orphans.
//! - `store` — the store replicas share (Redis): claims, leases, answers.
//! - `remote` — a turn another replica runs, followed through the store.
//! - `turn` — one turn and the wait for its end.
//! - `outcome` — how a turn ended, and what it costs the byte budget.
//! - `reconcile` — after an ambiguous failure, Handinger's record decides.
//! - `held_or_record` — the held turn or Handinger's record: which one answers for a task.
//! - `bounds` — [`Retention`] and [`TurnLimits`].
//! - `clock` — timestamps as turns record them.

mod bounds;
mod clock;
mod held;
mod held_or_record;
mod outcome;
mod reconcile;
mod registry;
mod remote;
mod replicated;
pub(crate) mod store;
mod turn;

pub use crate::handinger::types::is_terminal_status;
pub use bounds::{Retention, TurnLimits};
pub use clock::now_rfc3339;
pub use held::{StartRefused, bound_full};
pub use held_or_record::{Known, Settled};
pub use outcome::{RecordedUpstream, TurnOutcome};
pub use registry::TurnRegistry;
pub use turn::{Admitted, Stop, Turn, WaitEnd};
