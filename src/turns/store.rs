//! The shared turn store (`--store redis://…`): what lets replicas behind a load balancer
//! (or a restarted stdio server) act as one memory.
//!
//! The registry keeps its in-process map either way (a running turn's waiters, its slot);
//! this store is consulted only when `--store` names one, so the default path pays nothing.
//! Per task, under a name derived from a digest of the API key keyed with the deployment's
//! store secret (never the key itself; the same in every process, unlike the registry's
//! per-process scope; and no guess of a key can be checked against it without the secret):
//!
//! - `…:turn`: the running turn (owner's turn id, input digest, budget, start), written
//!   atomically with `…:lease` only when no turn is recorded: that is the claim. It lives
//!   for `--result-ttl`, renewed with the lease while the turn runs.
//! - `…:lease`: the owner's turn id, expiring after `--store-lease` unless the owner renews
//!   it while its POST runs. A turn without a lease was orphaned (its owner died or
//!   stalled): Handinger's turn list decides what becomes of it (see the registry's claim).
//! - `…:answer`: the finished outcome, in full (text, sources, files, structured output
//!   kept raw, usage), for `--result-ttl`. Writing it removes `…:turn` and `…:lease` and
//!   publishes on `…:done`, where waiting replicas listen.
//! - `…:worker`: the task's worker, so a follow-up from any replica lands on it.
//! - `…:ended`: the id of the task's last finished turn, so a late finish of that same turn
//!   (a stalled owner's, a retried one) is told from a stale one.
//! - `…:last`: the input digest and id of the task's latest turn that Handinger recorded,
//!   for `--repeat-window`: the same input again within it is that turn, not a new one.
//!
//! Every store error counts as "may have been applied": a claim whose answer was lost is
//! withdrawn ([`TurnStore::release_later`]), and every script recognises its own earlier
//! effect, so an operation may be sent twice.
//!
//! Input digests are keyed with another digest of the API key that is never stored, so
//! someone reading Redis cannot confirm a guess of what a tenant asked.

use std::sync::atomic::Ordering;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use serde::{Deserialize, Serialize};

use super::bounds::Retention;
use super::clock::{now_ms, now_rfc3339};
use super::outcome::TurnOutcome;
use crate::handinger::{Budget, HandingerClient};
use crate::task_id::TaskId;

/// Why the shared turn store could not do what was asked. The message is what clients and
/// `/readyz` may see: the store's address goes to the log only.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// `--store` or its secret cannot be used to set up a connection.
    #[error("{0}")]
    Setup(String),
    /// The store failed, or did not answer in time: it is down or unreachable.
    #[error("{0}")]
    Unavailable(String),
    /// The store holds, or answered with, something this release cannot read.
    #[error("{0}")]
    Unreadable(String),
    /// A record could not be written in the store's format.
    #[error("{0}")]
    Encode(String),
}

/// Longest a single store operation may take before it counts as the store being down.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(3);
/// Version of the key layout and value format, so an incompatible release never misreads
/// another's entries.
const LAYOUT: &str = "handinger-mcp:v2";
/// Longest turn record or worker id read from the store. Ours are a few hundred bytes;
/// anything longer was not written by this release and is not read (whoever can write to
/// the store is as untrusted as any other input).
const MAX_RECORD_BYTES: usize = 16 * 1024;

/// The connection to the shared store.
pub struct TurnStore {
    client: redis::Client,
    manager: ConnectionManager,
    /// The URL with any password masked: what logs, errors and `doctor` show.
    display: String,
    /// Names this process's turns (with a counter), so a replica recognises its own claim.
    owner: String,
    /// Keys the names under which a key's tasks are filed (the deployment secret): without
    /// it, the names alone would let anyone who reads the store test guesses of API keys.
    names: NameKey,
    ttl: Duration,
    /// How long a claim outlives its owner's last renewal (`--store-lease`): the time before
    /// a replica that died or stalled mid-turn is noticed. The owner renews at a third of it.
    lease: Duration,
    /// How long the task's latest turn answers a repeat of its input (`--repeat-window`).
    repeat_window: Duration,
    /// Largest answer stored, in bytes as the registry counts them (`--max-retained-bytes`):
    /// one that could not stay in memory is not kept in the store either.
    max_bytes: usize,
    next: std::sync::atomic::AtomicU64,
    /// The store's epoch as this replica last saw it, and until when the store counts as
    /// having forgotten turns (see [`Self::saw_epoch`]).
    epoch: std::sync::Mutex<Epoch>,
}

#[derive(Default)]
struct Epoch {
    seen: Option<String>,
    doubtful_until: Option<std::time::Instant>,
}

/// What the store knows of a turn while it runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TurnMeta {
    pub uid: String,
    /// Hex SHA-256 of the input, keyed per API key (see the module doc).
    pub digest: String,
    pub budget: Budget,
    pub worker_id: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub started_ms: u64,
    /// RFC 3339.
    pub created_at: String,
}

/// A finished turn as stored.
#[derive(Serialize, Deserialize)]
pub struct StoredAnswer {
    pub meta: TurnMeta,
    pub finished_at: String,
    pub outcome: TurnOutcome,
}

/// One task's names in the store, for one API key.
#[derive(Clone)]
pub struct Ident {
    task_id: TaskId,
    prefix: String,
    input_key: [u8; 32],
}

impl Ident {
    /// The task's name in the store (key scope and task id), unique per key and task.
    pub fn name(&self) -> &str {
        &self.prefix
    }

    /// The task this names.
    pub fn task_id(&self) -> &TaskId {
        &self.task_id
    }

    fn key(&self, part: &str) -> String {
        format!("{}:{part}", self.prefix)
    }

    fn keys(&self, parts: &[&str]) -> Vec<String> {
        parts.iter().map(|part| self.key(part)).collect()
    }

    /// The keyed digest of an input, as stored in [`TurnMeta::digest`].
    pub fn digest(&self, input: &str) -> String {
        use sha2::Digest as _;
        let mut hasher = sha2::Sha256::new();
        hasher.update(self.input_key);
        hasher.update(input.as_bytes());
        hex(&hasher.finalize())
    }
}

/// HMAC-SHA256, keyed with the store secret.
type NameKey = hmac::Hmac<sha2::Sha256>;

/// The answer to a claim.
pub enum Claim {
    /// The turn is ours to post; the worker of the task's last turn, when the store has it.
    /// `amnesiac`: the store lost its data within `--repeat-window` (see
    /// [`TurnStore::saw_epoch`]), so a turn running or just ended may be missing from it:
    /// Handinger's turn list is asked before posting.
    Won {
        worker: Option<String>,
        amnesiac: bool,
    },
    /// A turn of this task is recorded already; `alive` says whether its owner still renews
    /// its lease.
    Held { meta: TurnMeta, alive: bool },
    /// No turn runs, and the task's latest turn (named `uid`) asked the same input and ended
    /// within `--repeat-window`: this call is that turn again, not a new one.
    Repeat { uid: String },
}

/// What the store holds for a task.
pub enum Lookup {
    Running(TurnMeta),
    /// A turn whose owner stopped renewing its lease before it ended.
    Orphan(TurnMeta),
    Finished(Box<StoredAnswer>),
    Nothing,
}

// The scripts are built once: building one hashes it (EVALSHA sends the SHA-1, and the
// script itself only when Redis does not know it yet). Records another writer may have left
// are decoded with `pcall`: a record that is not ours never makes a script fail.

// The claim: a turn is recorded (with its lease) only where none is. The same claim sent
// again (its first answer was lost with the connection) is still ours. With no turn
// recorded, an input equal to the task's latest turn's (`…:last`, kept for --repeat-window)
// is that turn again, not a new one. The store's epoch (KEYS[5], one for the whole store,
// set once by whoever finds it missing, to the claiming turn's uid, which no other claim
// ever sends) comes back with a won claim: a replica that sees it change or vanish knows
// the store lost its data. Not the replica's id: a replica that set it before a loss and
// again after would leave it looking unchanged to every other replica.
static CLAIM: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local limit = tonumber(ARGV[5])
if redis.call('EXISTS', KEYS[1]) == 1 then
  local current = ''
  if redis.call('STRLEN', KEYS[1]) <= limit then
    current = redis.call('GET', KEYS[1])
  end
  if current ~= ARGV[1] then
    return {'held', current, redis.call('EXISTS', KEYS[2])}
  end
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
else
  if redis.call('STRLEN', KEYS[4]) <= limit then
    local last = redis.call('GET', KEYS[4])
    local prefix = ARGV[6] .. ' '
    if last and string.sub(last, 1, string.len(prefix)) == prefix then
      return {'repeat', string.sub(last, string.len(prefix) + 1)}
    end
  end
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[4])
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
  redis.call('DEL', KEYS[4])
end
local worker = ''
if redis.call('STRLEN', KEYS[3]) <= limit then
  worker = redis.call('GET', KEYS[3]) or ''
end
local epoch = ''
if redis.call('STRLEN', KEYS[5]) <= limit then
  epoch = redis.call('GET', KEYS[5]) or ''
end
if epoch == '' then
  redis.call('SET', KEYS[5], ARGV[7])
end
return {'won', worker, epoch}
",
    )
});

// Keeps the claim alive while the turn record is still this turn's, taking the lease back
// if it lapsed (the owner was stalled, and nobody took the turn over meanwhile), and keeps
// the record itself for as long as the turn runs.
static RENEW: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
  redis.call('PEXPIRE', KEYS[1], ARGV[4])
  return 1
end
return 0
",
    )
});

// Withdraws a claim whose answer never came back (the store stalled): nothing was posted
// for it, and the caller was told so.
static RELEASE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('DEL', KEYS[1], KEYS[2])
  redis.call('PUBLISH', KEYS[3], 'released')
  return 1
end
return 0
",
    )
});

// Stores a finished turn while its record is still the task's turn (strict: and orphaned,
// so an owner that came back and took its lease again is never contradicted; otherwise,
// when this very turn was already finished: a better answer for it, or a retried finish),
// ends the claim and wakes the waiters. An empty answer only ends the claim (an answer too
// big to keep). A turn Handinger recorded is remembered as the task's latest (`…:last`).
static FINISH: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local current = redis.call('GET', KEYS[1])
if current then
  local ok, decoded = pcall(cjson.decode, current)
  if not ok or type(decoded) ~= 'table' or decoded['uid'] ~= ARGV[1] then
    return 0
  end
  if ARGV[7] == '1' and redis.call('EXISTS', KEYS[2]) == 1 then
    return 0
  end
elseif ARGV[7] == '1' or redis.call('GET', KEYS[6]) ~= ARGV[1] then
  return 0
end
if ARGV[2] ~= '' then
  redis.call('SET', KEYS[3], ARGV[2], 'PX', ARGV[3])
end
if ARGV[4] ~= '' then
  redis.call('SET', KEYS[4], ARGV[4], 'PX', ARGV[3])
end
if ARGV[5] ~= '' then
  redis.call('SET', KEYS[7], ARGV[5], 'PX', ARGV[6])
end
redis.call('SET', KEYS[6], ARGV[1], 'PX', ARGV[3])
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('PUBLISH', KEYS[5], ARGV[1])
return 1
",
    )
});

// Drops an orphaned turn (no lease) so a new one can be claimed.
static TAKE_OVER: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
local current = redis.call('GET', KEYS[1])
if current and redis.call('EXISTS', KEYS[2]) == 0 then
  local ok, decoded = pcall(cjson.decode, current)
  if ok and type(decoded) == 'table' and decoded['uid'] == ARGV[1] then
    redis.call('DEL', KEYS[1])
    return 1
  end
end
return 0
",
    )
});

// What the store holds for a task, in one round trip: the running turn (its record, unless
// longer than ARGV[2]) and whether its lease lives; else the finished answer, unless it is
// longer than ARGV[1], the most this server stores (then only its length).
static LOOKUP: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 1 then
  local turn = ''
  if redis.call('STRLEN', KEYS[1]) <= tonumber(ARGV[2]) then
    turn = redis.call('GET', KEYS[1])
  end
  return {'turn', turn, redis.call('EXISTS', KEYS[2])}
end
local length = redis.call('STRLEN', KEYS[3])
if length == 0 then
  return {'nothing'}
end
if length > tonumber(ARGV[1]) then
  return {'too_large', length}
end
return {'answer', redis.call('GET', KEYS[3])}
",
    )
});

impl TurnStore {
    /// Sets up the connection without making it: a store that is down at start-up fails
    /// the calls that need it and `/readyz`, and is used as soon as it is back.
    pub fn connect(
        url: &str,
        secret: &secrecy::SecretString,
        retention: Retention,
        lease: Duration,
    ) -> Result<Arc<Self>, StoreError> {
        let display = crate::redact::mask_credentials(url);
        let client = redis::Client::open(url).map_err(|e| {
            StoreError::Setup(format!("--store {display} is not a usable Redis URL ({e}); use redis://host:port/db or rediss://… for TLS"))
        })?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(OPERATION_TIMEOUT))
            .set_response_timeout(Some(OPERATION_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_secs(2));
        let manager =
            ConnectionManager::new_lazy_with_config(client.clone(), config).map_err(|e| {
                StoreError::Setup(format!(
                    "could not set up the store {display}: {}",
                    scrub(&e.to_string(), &client)
                ))
            })?;
        let owner = format!("{}-{}", std::process::id(), ulid::Ulid::generate());
        let names = {
            use hmac::Mac as _;
            use secrecy::ExposeSecret;
            NameKey::new_from_slice(secret.expose_secret().as_bytes()).map_err(|_| {
                StoreError::Setup("the store secret cannot key HMAC-SHA256".to_owned())
            })?
        };
        Ok(Arc::new(Self {
            client,
            manager,
            display,
            owner,
            names,
            ttl: retention.ttl,
            lease,
            repeat_window: retention.repeat_window,
            max_bytes: retention.max_bytes,
            next: Default::default(),
            epoch: Default::default(),
        }))
    }

    /// The store's connection, for what else lives in it (OAuth mode's grants).
    pub fn connection(&self) -> ConnectionManager {
        self.manager.clone()
    }

    /// The prefix of the names a part of the server (`part`, e.g. "oauth") files its own
    /// records under: keyed with the deployment secret, so two deployments sharing one
    /// Redis never read each other's.
    pub fn namespace(&self, part: &str) -> String {
        use hmac::Mac as _;
        let mut mac = self.names.clone();
        mac.update(format!("handinger-mcp namespace {part}").as_bytes());
        let digest: [u8; 32] = mac.finalize().into_bytes().into();
        format!("{LAYOUT}:{part}:{}:", hex(&digest[..8]))
    }

    /// How long a claim outlives its owner's last renewal.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// The store's URL with its password masked.
    pub fn display(&self) -> &str {
        &self.display
    }

    /// Whether the store answers: for `/readyz` and `doctor`.
    pub async fn ping(&self) -> Result<(), StoreError> {
        let connection = self.manager.clone();
        self.run(|| {
            let mut connection = connection.clone();
            async move {
                redis::cmd("PING")
                    .query_async::<String>(&mut connection)
                    .await
            }
        })
        .await
        .map(drop)
    }

    /// The store's names for a task of this key.
    pub fn ident(&self, api: &HandingerClient, task_id: &TaskId) -> Ident {
        Ident {
            task_id: task_id.clone(),
            prefix: format!("{LAYOUT}:{}:{task_id}", hex(&self.scope(api)[..16])),
            input_key: api.key_digest("handinger-mcp input digest key"),
        }
    }

    /// The name under which `api`'s key files its tasks: HMAC-SHA256 under the deployment
    /// secret of a digest of the key, the same on every replica and a guess of the key
    /// cannot be checked against it without the secret.
    fn scope(&self, api: &HandingerClient) -> [u8; 32] {
        use hmac::Mac as _;
        let mut mac = self.names.clone();
        mac.update(&api.key_digest("handinger-mcp store scope"));
        mac.finalize().into_bytes().into()
    }

    /// A new turn's description, named for this process.
    pub fn meta(
        &self,
        ident: &Ident,
        input: &str,
        budget: Budget,
        worker: Option<String>,
    ) -> TurnMeta {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        TurnMeta {
            uid: format!("{}-{n}", self.owner),
            digest: ident.digest(input),
            budget,
            worker_id: worker,
            started_ms: now_ms(),
            created_at: now_rfc3339(),
        }
    }

    /// Records `meta` as the task's running turn unless one is recorded already.
    pub async fn claim(&self, ident: &Ident, meta: &TurnMeta) -> Result<Claim, StoreError> {
        let json = record_json(meta)?;
        let mut claim_keys = ident.keys(&["turn", "lease", "worker", "last"]);
        claim_keys.push(format!("{LAYOUT}:epoch"));
        let answer: Vec<redis::Value> = self
            .invoke(&CLAIM, claim_keys, |call| {
                call.arg(json)
                    .arg(&meta.uid)
                    .arg(millis(self.lease))
                    .arg(millis(self.ttl + self.lease))
                    .arg(MAX_RECORD_BYTES)
                    .arg(&meta.digest)
                    .arg(&meta.uid);
            })
            .await?;
        let text = |i: usize| text_at(&answer, i);
        match text(0).as_str() {
            "won" => Ok(Claim::Won {
                worker: Some(text(1)).filter(|worker| {
                    // It goes into the POST as the task's worker: checked like a caller's.
                    let usable = crate::task_id::validate_id(worker, "workerId").is_ok();
                    if !worker.is_empty() && !usable {
                        tracing::warn!(store = %self.display, "the shared store holds a worker id this release does not accept; not using it");
                    }
                    usable
                }),
                amnesiac: self.saw_epoch(&text(2), &meta.uid),
            }),
            "held" => {
                let meta = serde_json::from_str(&text(1)).map_err(|e| self.unreadable_turn(&e))?;
                let alive = matches!(answer.get(2), Some(redis::Value::Int(1)));
                Ok(Claim::Held { meta, alive })
            }
            "repeat" => Ok(Claim::Repeat { uid: text(1) }),
            other => {
                tracing::warn!(store = %self.display, answer = ?other, "unexpected answer to a claim");
                Err(StoreError::Unreadable(format!(
                    "the shared turn store answered the claim with {other:?}, which this \
                     release does not know: check that every replica runs the same version"
                )))
            }
        }
    }

    /// Notes the store's epoch a won claim saw (empty: none was there, and the claim set
    /// `set`, its turn's uid), and says whether the store may have forgotten turns: its epoch
    /// changed or vanished since this replica last looked (Redis restarted without its data,
    /// or was flushed), within `--repeat-window` of noticing it. A replica that finds no
    /// epoch at its first claim counts it as lost too: it cannot tell a new store from an
    /// emptied one, and a check too many costs one lookup.
    fn saw_epoch(&self, seen: &str, set: &str) -> bool {
        let mut epoch = self
            .epoch
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let now = std::time::Instant::now();
        let current = if seen.is_empty() { set } else { seen };
        if seen.is_empty() || epoch.seen.as_deref().is_some_and(|known| known != current) {
            tracing::warn!(store = %self.display, "the shared store holds no record of turns before now (it is new, or lost its data); new turns are checked against Handinger's turn list for --repeat-window");
            epoch.doubtful_until = Some(now + self.repeat_window.max(self.lease));
        }
        epoch.seen = Some(current.to_owned());
        epoch.doubtful_until.is_some_and(|until| now < until)
    }

    /// Withdraws this replica's claim (`record`, as [`record_json`] wrote it) if it is still
    /// the task's turn; `false` when it was not.
    async fn release(&self, ident: &Ident, record: &str) -> Result<bool, StoreError> {
        let released: i64 = self
            .invoke(&RELEASE, ident.keys(&["turn", "lease", "done"]), |call| {
                call.arg(record);
            })
            .await?;
        Ok(released == 1)
    }

    /// Withdraws a claim this replica won but will not post (Handinger already has the
    /// turn), now.
    pub async fn withdraw(&self, ident: &Ident, meta: &TurnMeta) -> Result<bool, StoreError> {
        self.release(ident, &record_json(meta)?).await
    }

    /// Keeps the claim alive, taking its lease back if it lapsed while the turn record is
    /// still this turn's; `false` once it is not (another replica took the turn over).
    pub async fn renew(&self, ident: &Ident, meta: &TurnMeta) -> Result<bool, StoreError> {
        let json = record_json(meta)?;
        let renewed: i64 = self
            .invoke(&RENEW, ident.keys(&["turn", "lease"]), |call| {
                call.arg(json)
                    .arg(&meta.uid)
                    .arg(millis(self.lease))
                    .arg(millis(self.ttl + self.lease));
            })
            .await?;
        Ok(renewed == 1)
    }

    /// Withdraws a claim whose answer was lost (the store stalled or the connection broke):
    /// the caller was told nothing was sent, and nothing will be. The claim may still be
    /// queued in the store, so this is queued behind it on the same connection, and tried
    /// again until the store answers, for as long as the claim could live without it (its
    /// lease); past that, whoever meets the orphan settles it with Handinger.
    pub fn release_later(self: &Arc<Self>, ident: Ident, meta: TurnMeta) {
        // A claim is sent and withdrawn as the same record.
        let store = self.clone();
        tokio::spawn(async move {
            let Ok(json) = record_json(&meta) else {
                return;
            };
            let give_up = tokio::time::Instant::now() + store.lease * 2;
            let mut pause = Duration::from_millis(100);
            loop {
                match store.release(&ident, &json).await {
                    Ok(released) => {
                        tracing::info!(
                            released,
                            "withdrew a claim whose answer was lost; nothing was posted for it"
                        );
                        return;
                    }
                    Err(error) if tokio::time::Instant::now() < give_up => {
                        tracing::debug!(%error, "could not withdraw the claim yet");
                        tokio::time::sleep(pause).await;
                        pause = (pause * 2).min(Duration::from_secs(2));
                    }
                    Err(error) => {
                        tracing::warn!(%error, "gave up withdrawing a claim; its lease has lapsed, and the next call settles it with Handinger");
                        return;
                    }
                }
            }
        });
    }

    /// Stores a finished turn and ends its claim. An answer above the byte budget only ends
    /// the claim: other replicas then look the task up on Handinger.
    ///
    /// `strict` stores it only while the task's turn record is still this turn's and has no
    /// lease (a follower settling an orphan: an owner that came back first wins);
    /// otherwise also when this very turn was finished already (the owner's answer then
    /// replaces what a follower recovered, or a finish is retried). `false`: not stored.
    pub async fn finish(
        &self,
        ident: &Ident,
        meta: &TurnMeta,
        outcome: &TurnOutcome,
        finished_at: &str,
        strict: bool,
    ) -> Result<bool, StoreError> {
        let answer = if outcome.retained_bytes() > self.max_bytes {
            tracing::warn!(
                bytes = outcome.retained_bytes(),
                "the answer is above --max-retained-bytes: not kept in the shared store"
            );
            String::new()
        } else {
            let answer = serialize_answer(meta, outcome, finished_at)?;
            // Kept only if every replica would read it back (the rule `lookup` applies).
            if answer.len() > self.max_stored_bytes() {
                tracing::warn!(
                    bytes = answer.len(),
                    "the stored form of the answer is larger than replicas read back: not kept in the shared store"
                );
                String::new()
            } else {
                answer
            }
        };
        let worker = match outcome {
            TurnOutcome::Answered { answer, .. } => answer.id.clone(),
            TurnOutcome::Recovered { record, .. } => record.task.worker_id.clone(),
            TurnOutcome::Failed { .. } => None,
        }
        .or_else(|| meta.worker_id.clone())
        .unwrap_or_default();
        // A turn Handinger holds answers a repeat of its input for --repeat-window.
        let last = if outcome.recorded_upstream() && !self.repeat_window.is_zero() {
            format!("{} {}", meta.digest, meta.uid)
        } else {
            String::new()
        };
        let keys = ["turn", "lease", "answer", "worker", "done", "ended", "last"];
        let stored: i64 = self
            .invoke(&FINISH, ident.keys(&keys), |call| {
                call.arg(&meta.uid)
                    .arg(answer)
                    .arg(millis(self.ttl))
                    .arg(worker)
                    .arg(last)
                    .arg(millis(self.repeat_window).max(1))
                    .arg(if strict { "1" } else { "0" });
            })
            .await?;
        Ok(stored == 1)
    }

    /// Drops an orphaned turn so a different input may start a new one.
    pub async fn take_over(&self, ident: &Ident, uid: &str) -> Result<bool, StoreError> {
        let taken: i64 = self
            .invoke(&TAKE_OVER, ident.keys(&["turn", "lease"]), |call| {
                call.arg(uid);
            })
            .await?;
        Ok(taken == 1)
    }

    /// What the store holds for the task: a running turn wins over the previous answer.
    pub async fn lookup(&self, ident: &Ident) -> Result<Lookup, StoreError> {
        let answer: Vec<redis::Value> = self
            .invoke(&LOOKUP, ident.keys(&["turn", "lease", "answer"]), |call| {
                call.arg(self.max_stored_bytes()).arg(MAX_RECORD_BYTES);
            })
            .await?;
        match text_at(&answer, 0).as_str() {
            "turn" => {
                let meta: TurnMeta = serde_json::from_str(&text_at(&answer, 1))
                    .map_err(|e| self.unreadable_turn(&e))?;
                let alive = matches!(answer.get(2), Some(redis::Value::Int(1)));
                Ok(if alive {
                    Lookup::Running(meta)
                } else {
                    Lookup::Orphan(meta)
                })
            }
            "answer" => {
                // What the store holds is checked like any outside input: an entry this
                // release cannot read is reported and treated as absent, never trusted
                // half-read.
                let Some(redis::Value::BulkString(bytes)) = answer.get(1) else {
                    return Ok(Lookup::Nothing);
                };
                match serde_json::from_slice::<StoredAnswer>(bytes) {
                    Ok(stored) => Ok(Lookup::Finished(Box::new(stored))),
                    Err(error) => {
                        tracing::warn!(store = %self.display, %error, "unreadable answer in the shared store; ignoring it");
                        Ok(Lookup::Nothing)
                    }
                }
            }
            "too_large" => {
                tracing::warn!(store = %self.display, bytes = ?answer.get(1), "an answer in the shared store is larger than this server stores; ignoring it");
                Ok(Lookup::Nothing)
            }
            _ => Ok(Lookup::Nothing),
        }
    }

    /// The error for a turn record this release cannot read. It blocks new turns of the
    /// task until it expires; the store's address goes to the log only.
    fn unreadable_turn(&self, error: &serde_json::Error) -> StoreError {
        tracing::warn!(store = %self.display, %error, "unreadable turn record in the shared store");
        // The parser's words stay in the log: they quote the stored text, which anyone who
        // can write to the store chose.
        StoreError::Unreadable(
            "the shared turn store holds a turn record for this task that this release cannot \
             read: check that every replica runs the same version; the record expires after \
             --result-ttl, or an operator can delete the task's keys"
                .to_owned(),
        )
    }

    /// The largest stored answer this server reads back: the JSON of an answer within
    /// `--max-retained-bytes` (escaping can double text, plus the envelope).
    fn max_stored_bytes(&self) -> usize {
        self.max_bytes.saturating_mul(2).saturating_add(64 * 1024)
    }

    /// Runs one of the Lua scripts on `keys`, with the arguments `args` adds.
    async fn invoke<T: redis::FromRedisValue>(
        &self,
        script: &'static redis::Script,
        keys: Vec<String>,
        args: impl FnOnce(&mut redis::ScriptInvocation<'static>),
    ) -> Result<T, StoreError> {
        let mut invocation = script.prepare_invoke();
        for key in keys {
            invocation.key(key);
        }
        args(&mut invocation);
        let connection = self.manager.clone();
        let invocation = &invocation;
        self.run(|| {
            let mut connection = connection.clone();
            async move { invocation.invoke_async(&mut connection).await }
        })
        .await
    }

    /// Runs one store operation within [`OPERATION_TIMEOUT`]. The error names the store's
    /// address (password masked) only in the log: the message goes to MCP clients and to
    /// the unauthenticated `/readyz`, which have no business knowing where it lives.
    ///
    /// An operation whose connection turned out to be dead (Redis restarted since the last
    /// one: a broken pipe) is sent once more on the connection the manager makes in its
    /// place, within the same time. Every operation here may be repeated: the scripts
    /// recognise their own effects (a claim its own record, a finish its own turn).
    async fn run<T, F, Fut>(&self, mut operation: F) -> Result<T, StoreError>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        let attempts = async {
            match operation().await {
                Err(error) if error.is_connection_dropped() => {
                    tracing::debug!(store = %self.display, "the store's connection was dropped; sending again on a new one");
                    operation().await
                }
                other => other,
            }
        };
        let message = match tokio::time::timeout(OPERATION_TIMEOUT, attempts).await {
            Ok(Ok(value)) => return Ok(value),
            Ok(Err(error)) => format!(
                "the shared turn store failed: {}",
                scrub(&error.to_string(), &self.client)
            ),
            Err(_) => format!(
                "the shared turn store did not answer within {} s",
                OPERATION_TIMEOUT.as_secs()
            ),
        };
        tracing::warn!(store = %self.display, "{message}");
        Err(StoreError::Unavailable(message))
    }

    /// Waits for the next publication on the task's `done` channel; `None` when the
    /// subscription could not be made (the caller still re-checks on its timer).
    pub(super) async fn subscribe(&self, ident: &Ident) -> Option<redis::aio::PubSubStream> {
        let channel = ident.key("done");
        let subscribed = tokio::time::timeout(OPERATION_TIMEOUT, async {
            let mut pubsub = self.client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub.into_on_message())
        })
        .await;
        match subscribed {
            Ok(Ok(stream)) => Some(stream),
            Ok(Err(error)) => {
                tracing::warn!(store = %self.display, error = %scrub(&error.to_string(), &self.client), "could not subscribe to the turn's channel");
                None
            }
            Err(_) => None,
        }
    }
}

/// A turn record as stored: the claim, renewal and release compare it whole, so it must be
/// written the same way each time (it is: serde_json is deterministic for one struct).
fn record_json(meta: &TurnMeta) -> Result<String, StoreError> {
    serde_json::to_string(meta)
        .map_err(|e| StoreError::Encode(format!("could not serialize the turn record: {e}")))
}

fn serialize_answer(
    meta: &TurnMeta,
    outcome: &TurnOutcome,
    finished_at: &str,
) -> Result<String, StoreError> {
    #[derive(Serialize)]
    struct Borrowed<'a> {
        meta: &'a TurnMeta,
        finished_at: &'a str,
        outcome: &'a TurnOutcome,
    }
    serde_json::to_string(&Borrowed {
        meta,
        finished_at,
        outcome,
    })
    .map_err(|e| {
        StoreError::Encode(format!(
            "could not serialize the answer for the shared store: {e}"
        ))
    })
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Element `i` of a script's answer as text (empty when it is absent or not text).
fn text_at(answer: &[redis::Value], i: usize) -> String {
    match answer.get(i) {
        Some(redis::Value::BulkString(bytes)) => String::from_utf8_lossy(bytes).into_owned(),
        Some(redis::Value::SimpleString(text)) => text.clone(),
        _ => String::new(),
    }
}

fn scrub(text: &str, client: &redis::Client) -> String {
    without_password(
        text,
        client.get_connection_info().redis_settings().password(),
    )
}

fn without_password(text: &str, password: Option<&str>) -> String {
    match password {
        Some(password) if !password.is_empty() => text.replace(password, "****"),
        _ => text.to_owned(),
    }
}
