//! Where OAuth mode keeps what it issued: client registrations, authorization codes,
//! grants (with the user's sealed Handinger key), access and refresh tokens (by digest).
//!
//! Two backends behind one small set of operations, chosen like the turn store's: memory for
//! one process, or the Redis of `--store`, so that every replica accepts every token and a
//! revocation on one is seen by all. Every record has a time to live, so nothing outlives
//! its use. Records are JSON; what comes back from Redis is as untrusted as any input
//! (a record that does not parse counts as absent, and is never larger than
//! [`MAX_RECORD_BYTES`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::aio::ConnectionManager;

/// Largest record read back; ours are well under a kilobyte.
const MAX_RECORD_BYTES: usize = 16 * 1024;

/// The store could not be reached or answered oddly; the request fails with 503.
#[derive(Debug)]
pub(crate) struct StoreError(pub String);

pub(crate) enum OAuthStore {
    Memory(MemoryStore),
    /// The connection, and the prefix of every name OAuth mode writes there (keyed with the
    /// deployment secret: `SharedStore::namespace`).
    Redis(ConnectionManager, String),
}

/// One process's records, bounded in number (`--oauth-max-records`).
pub(crate) struct MemoryStore {
    records: Mutex<HashMap<String, (Vec<u8>, Instant)>>,
    max_records: usize,
}

impl MemoryStore {
    pub(crate) fn new(max_records: usize) -> Self {
        Self {
            records: Mutex::new(HashMap::new()),
            max_records,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Vec<u8>, Instant)>> {
        self.records
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn live(entry: Option<&(Vec<u8>, Instant)>, now: Instant) -> Option<Vec<u8>> {
    entry
        .filter(|(_, expires)| *expires > now)
        .map(|(value, _)| value.clone())
}

impl OAuthStore {
    /// Stores `value` under `key` for `ttl`. A full memory store first drops what expired,
    /// then refuses.
    pub(crate) async fn put(
        &self,
        key: &str,
        value: &[u8],
        ttl: Duration,
    ) -> Result<(), StoreError> {
        match self {
            Self::Memory(memory) => {
                let now = Instant::now();
                let mut records = memory.lock();
                if records.len() >= memory.max_records && !records.contains_key(key) {
                    records.retain(|_, (_, expires)| *expires > now);
                    if records.len() >= memory.max_records {
                        return Err(StoreError(format!(
                            "the server holds as many OAuth records as it may \
                             (--oauth-max-records {}); try again later",
                            memory.max_records
                        )));
                    }
                }
                records.insert(key.to_owned(), (value.to_vec(), now + ttl));
                Ok(())
            }
            Self::Redis(connection, prefix) => {
                let mut connection = connection.clone();
                redis::cmd("SET")
                    .arg(format!("{prefix}{key}"))
                    .arg(value)
                    .arg("PX")
                    .arg(ttl.as_millis().max(1) as u64)
                    .query_async::<()>(&mut connection)
                    .await
                    .map_err(redis_error)
            }
        }
    }

    pub(crate) async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            Self::Memory(memory) => Ok(live(memory.lock().get(key), Instant::now())),
            Self::Redis(connection, prefix) => {
                let mut connection = connection.clone();
                let value: Option<Vec<u8>> = redis::cmd("GET")
                    .arg(format!("{prefix}{key}"))
                    .query_async(&mut connection)
                    .await
                    .map_err(redis_error)?;
                Ok(value.filter(|v| v.len() <= MAX_RECORD_BYTES))
            }
        }
    }

    /// Reads and deletes `key` in one step: of two requests taking one code or refresh
    /// token at once, one gets it.
    pub(crate) async fn take(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            Self::Memory(memory) => Ok(live(memory.lock().remove(key).as_ref(), Instant::now())),
            Self::Redis(connection, prefix) => {
                let mut connection = connection.clone();
                let value: Option<Vec<u8>> = redis::cmd("GETDEL")
                    .arg(format!("{prefix}{key}"))
                    .query_async(&mut connection)
                    .await
                    .map_err(redis_error)?;
                Ok(value.filter(|v| v.len() <= MAX_RECORD_BYTES))
            }
        }
    }

    pub(crate) async fn delete(&self, key: &str) -> Result<(), StoreError> {
        match self {
            Self::Memory(memory) => {
                memory.lock().remove(key);
                Ok(())
            }
            Self::Redis(connection, prefix) => {
                let mut connection = connection.clone();
                redis::cmd("DEL")
                    .arg(format!("{prefix}{key}"))
                    .query_async::<()>(&mut connection)
                    .await
                    .map_err(redis_error)
            }
        }
    }

    /// Adds `member` to the bounded set `set` for `ttl` (members whose time is over leave
    /// it): `false` when the set already holds `max` live members.
    pub(crate) async fn join_bounded(
        &self,
        set: &str,
        member: &str,
        ttl: Duration,
        max: usize,
    ) -> Result<bool, StoreError> {
        match self {
            Self::Memory(memory) => {
                let now = Instant::now();
                let prefix = format!("{set}\u{0}");
                let mut records = memory.lock();
                records.retain(|_, (_, expires)| *expires > now);
                let members = records.keys().filter(|k| k.starts_with(&prefix)).count();
                if members >= max {
                    return Ok(false);
                }
                records.insert(format!("{prefix}{member}"), (Vec::new(), now + ttl));
                Ok(true)
            }
            Self::Redis(connection, prefix) => {
                // A sorted set scored by expiry: drop the expired, count, add; one script,
                // so two replicas cannot both take the last place.
                const SCRIPT: &str = r"
                    local now = tonumber(ARGV[1])
                    redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
                    if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[4]) then return 0 end
                    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[2])
                    redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[3]))
                    return 1";
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_millis() as u64;
                let mut connection = connection.clone();
                let added: i64 = redis::Script::new(SCRIPT)
                    .key(format!("{prefix}{set}"))
                    .arg(now)
                    .arg(member)
                    .arg(ttl.as_millis() as u64)
                    .arg(max)
                    .invoke_async(&mut connection)
                    .await
                    .map_err(redis_error)?;
                Ok(added == 1)
            }
        }
    }
}

fn redis_error(error: redis::RedisError) -> StoreError {
    // The error's text names the command and never its arguments (digests, sealed keys).
    StoreError(format!(
        "the shared store did not answer ({}): try again shortly",
        error.category()
    ))
}

/// Reads a JSON record; one that does not parse counts as absent.
pub(crate) fn decode<T: serde::de::DeserializeOwned>(bytes: Option<Vec<u8>>) -> Option<T> {
    serde_json::from_slice(&bytes?).ok()
}

pub(crate) fn encode<T: serde::Serialize>(record: &T) -> Vec<u8> {
    serde_json::to_vec(record).unwrap_or_default()
}
