//! What the API client reports about its own requests, to whoever wants to count them.
//!
//! The client knows nothing of how the server exposes figures (`/metrics`): it calls an
//! [`Observer`] it was given, and the server's metrics implement it (every command's
//! client reports to them, `doctor`'s included); tests that count nothing give
//! [`Unobserved`].

use std::fmt::Debug;
use std::time::Duration;

/// Hooks the client calls; each must be cheap (an atomic or a short lock), since they run
/// on every request.
pub trait Observer: Debug + Send + Sync {
    /// A turn (`POST /api/tasks`) was handed to the client; [`Observer::turn_ended`]
    /// follows when its answer is in or it failed, whatever became of the caller.
    fn turn_started(&self);
    fn turn_ended(&self);
    /// One request to Handinger ended: its method, whether it succeeded, and how long it
    /// took, reading the answer included.
    fn request_finished(&self, method: &reqwest::Method, elapsed: Duration, ok: bool);
}

/// Counts nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Unobserved;

impl Observer for Unobserved {
    fn turn_started(&self) {}
    fn turn_ended(&self) {}
    fn request_finished(&self, _: &reqwest::Method, _: Duration, _: bool) {}
}

/// Keeps a turn counted as in flight until dropped (also when the caller's future is).
pub(super) struct TurnInFlight<'a>(&'a dyn Observer);

impl<'a> TurnInFlight<'a> {
    pub(super) fn new(observer: &'a dyn Observer) -> Self {
        observer.turn_started();
        Self(observer)
    }
}

impl Drop for TurnInFlight<'_> {
    fn drop(&mut self) {
        self.0.turn_ended();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicI64, Ordering};

    #[derive(Debug, Default)]
    struct Counting(AtomicI64);

    impl Observer for Counting {
        fn turn_started(&self) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
        fn turn_ended(&self) {
            self.0.fetch_sub(1, Ordering::Relaxed);
        }
        fn request_finished(&self, _: &reqwest::Method, _: Duration, _: bool) {}
    }

    #[test]
    fn a_turn_counts_while_its_guard_lives() {
        let observer = Counting::default();
        let guard = TurnInFlight::new(&observer);
        assert_eq!(observer.0.load(Ordering::Relaxed), 1);
        drop(guard);
        assert_eq!(observer.0.load(Ordering::Relaxed), 0);
    }
}
