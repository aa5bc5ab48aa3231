//! Waiting, bounded, for something that comes true in its own time (a slot given back, a
//! session expired, a turn ended): the test asks again until it does, and fails with what
//! it saw instead of stalling once [`PATIENCE`] has passed. No test bets on how long
//! anything takes.

use std::future::Future;
use std::time::Duration;

/// The longest a test waits for something that should come true.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// Asks `probe` every `every` until it answers `Ok`, and returns that. `Err` carries what
/// was seen instead, for the failure message (`what` names what never came true).
pub async fn until<T, F, Fut>(what: &str, every: Duration, probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    until_within(what, every, PATIENCE, probe).await
}

/// [`until`] with its own patience, for a wait whose work grows with a large payload (a
/// debug build handling tens of megabytes, on a machine running many tests at once).
pub async fn until_within<T, F, Fut>(
    what: &str,
    every: Duration,
    patience: Duration,
    mut probe: F,
) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        let seen = match probe().await {
            Ok(value) => return value,
            Err(seen) => seen,
        };
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}; last seen: {seen}"
        );
        tokio::time::sleep(every).await;
    }
}

/// [`until`] for a plain condition: waits until `condition` holds, failing with `what`.
pub async fn until_true(what: &str, mut condition: impl FnMut() -> bool) {
    until(what, Duration::from_millis(20), || {
        std::future::ready(if condition() {
            Ok(())
        } else {
            Err("not yet".to_owned())
        })
    })
    .await
}
