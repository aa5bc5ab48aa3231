//! The server's answer-file download slots (`--max-parallel-downloads`), handed out fairly.
//!
//! A plain semaphore serves waiters first come, first served: one answer with twenty slow
//! files (or a hundred such answers) kept every other answer's files waiting behind them,
//! whatever their size. Here a freed slot goes round robin: to the next API key with
//! downloads waiting (keys are the tenants of a shared server), and within that key to the
//! next answer, so a download waits behind at most one download of each other answer
//! rather than behind all of them. A running download is never interrupted; each is
//! bounded by `--request-timeout`.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::oneshot;

/// Which answer a download belongs to, and whose key it runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub key: u64,
    pub answer: u64,
}

#[derive(Debug)]
pub struct DownloadQueue {
    slots: usize,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    running: usize,
    next_answer: u64,
    /// Keys with downloads waiting, in the order they are served.
    keys: VecDeque<(u64, Answers)>,
}

/// One key's answers with downloads waiting, in the order they are served, each with its
/// waiting downloads in arrival order.
type Answers = VecDeque<(u64, VecDeque<Waiter>)>;

type Waiter = oneshot::Sender<Slot>;

/// One download slot, given back (to the next waiter in turn) when dropped.
#[derive(Debug)]
pub struct Slot {
    queue: Arc<DownloadQueue>,
    /// False for a slot that was never handed over (its waiter had gone): dropping it
    /// gives nothing back.
    armed: bool,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if self.armed {
            self.queue.release();
        }
    }
}

impl DownloadQueue {
    pub fn new(slots: usize) -> Arc<Self> {
        Arc::new(Self {
            slots: slots.max(1),
            state: Mutex::new(State::default()),
        })
    }

    /// A new answer's number: its downloads take turns with other answers'.
    pub fn new_answer(&self) -> u64 {
        let mut state = self.lock();
        state.next_answer += 1;
        state.next_answer
    }

    /// Waits for a slot, in `owner`'s turn.
    pub async fn acquire(self: &Arc<Self>, owner: Owner) -> Slot {
        let waiting = {
            let mut state = self.lock();
            if state.running < self.slots && state.keys.is_empty() {
                state.running += 1;
                return Slot {
                    queue: self.clone(),
                    armed: true,
                };
            }
            let (sender, receiver) = oneshot::channel();
            state.enqueue(owner, sender);
            receiver
        };
        match waiting.await {
            Ok(slot) => slot,
            // Senders are dropped only with the queue, which this call holds: unreachable,
            // but a slot of its own is the safe answer.
            Err(_) => {
                self.lock().running += 1;
                Slot {
                    queue: self.clone(),
                    armed: true,
                }
            }
        }
    }

    /// Hands a freed slot to the next waiter in turn, or counts it free.
    fn release(self: &Arc<Self>) {
        loop {
            let next = {
                let mut state = self.lock();
                match state.next_waiter() {
                    Some(waiter) => waiter,
                    None => {
                        state.running = state.running.saturating_sub(1);
                        return;
                    }
                }
            };
            let slot = Slot {
                queue: self.clone(),
                armed: true,
            };
            match next.send(slot) {
                Ok(()) => return,
                // That download was dropped while it waited: the next one gets the slot.
                Err(mut slot) => slot.armed = false,
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl State {
    fn enqueue(&mut self, owner: Owner, waiter: Waiter) {
        let index = match self.keys.iter().position(|(key, _)| *key == owner.key) {
            Some(index) => index,
            None => {
                self.keys.push_back((owner.key, VecDeque::new()));
                self.keys.len() - 1
            }
        };
        let answers = &mut self.keys[index].1;
        match answers
            .iter_mut()
            .find(|(answer, _)| *answer == owner.answer)
        {
            Some((_, waiters)) => waiters.push_back(waiter),
            None => answers.push_back((owner.answer, VecDeque::from([waiter]))),
        }
    }

    /// The first waiter of the next answer of the next key; both go to the back of their
    /// queues if they still have downloads waiting.
    fn next_waiter(&mut self) -> Option<Waiter> {
        let (key, mut answers) = self.keys.pop_front()?;
        let (answer, mut waiters) = answers.pop_front()?;
        let waiter = waiters.pop_front();
        if !waiters.is_empty() {
            answers.push_back((answer, waiters));
        }
        if !answers.is_empty() {
            self.keys.push_back((key, answers));
        }
        waiter
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_freed_slot_goes_to_the_next_answer_in_turn() {
        let queue = DownloadQueue::new(1);
        let busy = Owner { key: 1, answer: 1 };
        let other = Owner { key: 1, answer: 2 };
        let first = queue.acquire(busy).await;
        let mut order = Vec::new();
        let (done, mut finished) = tokio::sync::mpsc::unbounded_channel();
        for (n, owner) in [(1, busy), (2, busy), (3, busy), (10, other)] {
            let queue = queue.clone();
            let done = done.clone();
            tokio::spawn(async move {
                let _slot = queue.acquire(owner).await;
                done.send(n).unwrap();
            });
            tokio::task::yield_now().await;
        }
        drop(first);
        for _ in 0..4 {
            order.push(finished.recv().await.unwrap());
        }
        assert_eq!(order, [1, 10, 2, 3], "the other answer's file goes second");
    }

    #[tokio::test]
    async fn a_slot_whose_waiter_left_goes_to_the_next() {
        let queue = DownloadQueue::new(1);
        let owner = Owner { key: 1, answer: 1 };
        let first = queue.acquire(owner).await;
        let gone = tokio::spawn({
            let queue = queue.clone();
            async move { queue.acquire(owner).await }
        });
        tokio::task::yield_now().await;
        gone.abort();
        let _ = gone.await;
        drop(first);
        let again = tokio::time::timeout(std::time::Duration::from_secs(5), queue.acquire(owner))
            .await
            .expect("the slot came back");
        drop(again);
        assert_eq!(queue.lock().running, 0);
    }
}
