//! The turn registry, as the tools use it: start, join or find a turn. It holds this
//! process's turns ([`super::held`]) and, with a shared store (`--store`), starts and finds
//! them through the store as well ([`super::replicated`]).

use std::sync::Arc;

use super::bounds::{Retention, TurnLimits};
use super::held::{Asked, HeldTurns, StartRefused, TurnKey};
use super::replicated::Replicated;
use super::store::TurnStore;
use super::turn::{Admitted, Turn, input_digest};
use crate::files::answer::AnswerFileOptions;
use crate::handinger::{HandingerClient, TaskRequest};
use crate::task_id::TaskId;

/// All turns the server knows about.
pub struct TurnRegistry {
    held: Arc<HeldTurns>,
    /// The store shared with other replicas (`--store`); `None` keeps everything here.
    replicated: Option<Replicated>,
}

impl TurnRegistry {
    pub fn new(retention: Retention, limits: TurnLimits, answer_files: AnswerFileOptions) -> Self {
        Self {
            held: Arc::new(HeldTurns::new(retention, limits, answer_files)),
            replicated: None,
        }
    }

    /// Shares turns and answers with other replicas through `store`.
    pub fn with_store(mut self, store: Option<Arc<TurnStore>>) -> Self {
        self.replicated = store.map(Replicated::new);
        self
    }

    /// The latest turn of a task, here or (with a shared store) on any replica. Without a
    /// store this is [`Self::get`]. With one, a turn this server runs is answered from
    /// memory; otherwise the store decides (a later turn may have run elsewhere), and the
    /// answer held here stands when the store cannot be asked. An orphaned turn (its owner
    /// died) is `None`: the caller then follows the task on Handinger.
    pub async fn find(&self, api: &HandingerClient, task_id: &TaskId) -> Option<Arc<Turn>> {
        let local = self.get(api, task_id);
        match &self.replicated {
            None => local,
            Some(replicated) => replicated.find(api, task_id, local).await,
        }
    }

    pub fn retention(&self) -> Retention {
        self.held.retention()
    }

    /// The latest turn of a task, if the server still holds it.
    pub fn get(&self, api: &HandingerClient, task_id: &TaskId) -> Option<Arc<Turn>> {
        self.held.get(api, task_id)
    }

    /// Starts a turn, or joins the running one when it asks the same thing, or answers with
    /// the task's latest turn when the call repeats its input within `--repeat-window`.
    ///
    /// Without a `workerId`, a follow-up reuses the worker of the task's previous turn when
    /// the server remembers it, so the turn lands on the same worker.
    pub async fn start(
        &self,
        api: &HandingerClient,
        task_id: TaskId,
        request: TaskRequest,
        explicit_worker: bool,
    ) -> Result<Admitted, StartRefused> {
        let asked = Asked {
            key: TurnKey::new(api, task_id),
            digest: input_digest(&request.input),
            request,
            explicit_worker,
        };
        match &self.replicated {
            None => self.held.start(api, asked),
            Some(replicated) => replicated.start(&self.held, api, asked).await,
        }
    }

    /// Whether a call on `task_id` (`None`: a new task) would be refused now for want of a
    /// slot ([`StartRefused::Full`]), read without taking one: a call whose task has a turn
    /// running here passes (it joins it, or is refused as busy by [`Self::start`]). HTTP
    /// mode asks before it accepts a call, so such a call gets a 503 with `Retry-After`;
    /// `start` still decides, so one that races another for the last slot gets its error.
    pub fn room_for(&self, scope: u64, task_id: Option<&TaskId>) -> Result<(), StartRefused> {
        self.held.room_for(scope, task_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::answer::AnswerFileOptions;
    use crate::handinger::{Budget, ClientOptions};
    use crate::turns::bounds::{Retention, TurnLimits};
    use crate::turns::outcome::TurnOutcome;
    use secrecy::SecretString;
    use std::time::Duration;

    fn client(key: &str) -> HandingerClient {
        let options = ClientOptions {
            base_url: "http://127.0.0.1:9".into(),
            max_response_bytes: 1024,
            get_timeout: Duration::from_secs(1),
            file_hosts: Default::default(),
        };
        HandingerClient::new(
            Some(&SecretString::from(key.to_owned())),
            options,
            Arc::new(crate::handinger::Unobserved),
        )
        .unwrap()
    }

    impl TurnRegistry {
        /// (finished answers held, their bytes, turns in flight), as the bounds see them.
        fn counts(&self) -> (usize, usize, usize) {
            self.held.counts()
        }
    }

    async fn finished(turn: &Turn) -> Arc<TurnOutcome> {
        let mut outcome = turn.outcome.subscribe();
        let ended = outcome.wait_for(Option::is_some).await.unwrap();
        ended.clone().unwrap()
    }

    fn request(task_id: &TaskId, input: &str) -> TaskRequest {
        TaskRequest {
            input: input.into(),
            budget: Budget::Low,
            task_id: task_id.to_string(),
            worker_id: None,
            files: Vec::new(),
        }
    }

    /// A registry keeping at most `max_finished` answers (1 MiB of them, for a minute), with
    /// room for ten turns.
    fn registry(max_finished: usize) -> Arc<TurnRegistry> {
        Arc::new(TurnRegistry::new(
            Retention {
                ttl: Duration::from_secs(60),
                max_finished,
                max_bytes: 1 << 20,
                repeat_window: Duration::from_secs(600),
            },
            TurnLimits {
                max_in_flight: 10,
                max_in_flight_per_key: 10,
            },
            AnswerFileOptions::default(),
        ))
    }

    /// A follow-up replaces the task's finished turn: the old answer stops counting at once,
    /// and its stale place in the eviction queue is skipped, never counted twice.
    #[tokio::test]
    async fn replaced_and_evicted_answers_are_counted_once() {
        let registry = registry(2);
        // Nothing listens on port 9: each turn fails at once, certainly not sent.
        let api = client("hdg_alice");
        let task = TaskId::generate();
        let first = registry
            .start(&api, task.clone(), request(&task, "one"), false)
            .await
            .unwrap()
            .turn;
        let size = finished(&first).await.retained_bytes();
        assert_eq!(registry.counts(), (1, size, 0));
        let second = registry
            .start(&api, task.clone(), request(&task, "two"), false)
            .await
            .unwrap()
            .turn;
        finished(&second).await;
        assert_eq!(registry.counts().0, 1, "the follow-up replaced the first");
        let mut others = Vec::new();
        for _ in 0..3 {
            let id = TaskId::generate();
            others.push(
                registry
                    .start(&api, id.clone(), request(&id, "x"), false)
                    .await
                    .unwrap()
                    .turn,
            );
        }
        for turn in &others {
            finished(turn).await;
        }
        let (count, bytes, in_flight) = registry.counts();
        assert_eq!((count, in_flight), (2, 0), "at most max_finished are kept");
        assert_eq!(bytes, 2 * size, "bytes follow the answers kept");
        assert!(registry.get(&api, &task).is_none(), "the oldest went first");
        assert!(registry.get(&api, &others[2].task_id).is_some());
    }

    #[tokio::test]
    async fn a_turn_is_visible_only_to_the_key_that_started_it() {
        let registry = registry(10);
        let (alice, bob) = (client("hdg_alice"), client("hdg_bob"));
        let task_id = TaskId::generate();
        let request = TaskRequest {
            input: "x".into(),
            budget: Budget::Low,
            task_id: task_id.to_string(),
            worker_id: None,
            files: Vec::new(),
        };
        registry
            .start(&alice, task_id.clone(), request, false)
            .await
            .unwrap();
        assert!(registry.get(&alice, &task_id).is_some());
        assert!(
            registry.get(&bob, &task_id).is_none(),
            "another key saw the turn"
        );
        assert!(
            registry.get(&client("hdg_alice"), &task_id).is_some(),
            "same key, new client"
        );
    }
}
