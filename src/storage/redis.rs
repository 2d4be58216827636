//! Shared state on Redis or Valkey (`[storage] url`): what instances of a fleet
//! must see alike: the tools' kv, legacy session records and their idle expiry,
//! task records (and their leases, `redis_tasks.rs`), the SSE replay log
//! (`redis_events.rs`) and the bus the instances tell each other on.
//!
//! The `redis` crate's connection manager runs on a runtime of its own (one
//! thread, `emcee-redis`), so that reconnecting never depends on which actix
//! worker happened to issue a command; callers wait for its answer, a blocking
//! read with a deadline from synchronous code, an await from async code. Every
//! command has a deadline (`storage.redis_timeout_ms`); past it, or on a dropped
//! connection, storage is marked failing (`/health` 503 naming `storage`, a log
//! line, `mcp_storage_errors_total`) and every command is refused at once until a
//! `PING` answers again (`Storage::try_recover`, every `storage.retry_ms`).
//!
//! Keys (all under `emcee:`; hash tags keep one namespace's keys in one cluster
//! slot):
//! - `emcee:format`: the data format; another value stops the start (exit 3);
//! - `emcee:{kv:NS}:v:KEY` the value, `emcee:{kv:NS}:idx` a sorted set of the
//!   namespace's keys (listing by prefix with `ZRANGEBYLEX`, never `KEYS`),
//!   `emcee:{kv:NS}:bytes` the bytes of keys and values it holds: one Lua script
//!   checks the quota and writes, so the bound is exact across instances;
//! - `emcee:session:ID` a session's record, expiring with its idle time;
//!   `emcee:sessions` a sorted set of session ids by last use (ms);
//! - `emcee:task:ID` a task's record; `emcee:tasks` the set of task ids;
//!   `emcee:task-leases` the running tasks' leases (`redis_tasks.rs`);
//! - `emcee:bus`: the pub/sub channel instances tell each other on (changes for
//!   subscribers and `listen` streams, ended sessions), on a connection of its own
//!   (RESP3 push messages) that the connection manager subscribes again after a
//!   reconnect. A message is `ORIGIN KIND DATA`: an instance ignores its own.
//!
//! Durability (`storage.redis_durability`): `none` acknowledges what Redis
//! acknowledged (in its memory); `aof` needs the server's append-only file
//! (checked at start), so an acknowledged write survives a Redis restart, and a
//! power loss but for the server's `appendfsync` window (1 s with `everysec`);
//! `fsync` confirms each acknowledged write with `WAITAOF 1 0` (Redis 7.2+ or
//! Valkey), so it is on the server's disk before the client hears of it.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use redis::aio::ConnectionManager;

use super::{BusHandler, StorageError};
use crate::config::RedisDurability;

/// Task leases (`emcee:task-leases`): an `impl RedisStore` of its own.
#[path = "redis_tasks.rs"]
mod tasks;

/// The data format under `emcee:format`. Bump on incompatible changes.
const FORMAT: &str = "1";

/// Set `KEYS[1]` (the value) to `ARGV[1]`, add `ARGV[2]` (the key) to the
/// index `KEYS[2]` and keep `KEYS[3]` (bytes held) exact, unless the write would
/// grow the namespace past `ARGV[3]` bytes: `{1, held}` written, `{0, held}` not.
const KV_SET: &str = r"
local grows = #ARGV[2] + #ARGV[1]
local replaced = 0
if redis.call('EXISTS', KEYS[1]) == 1 then
  replaced = #ARGV[2] + redis.call('STRLEN', KEYS[1])
end
local held = tonumber(redis.call('GET', KEYS[3]) or '0')
local now = held + grows - replaced
if grows > replaced and now > tonumber(ARGV[3]) then
  return {0, held}
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[2], 0, ARGV[2])
redis.call('SET', KEYS[3], now)
return {1, now}
";

/// Remove `KEYS[1]` and its member `ARGV[1]` of `KEYS[2]`, counting its bytes
/// off `KEYS[3]`: 1 when it existed.
const KV_DELETE: &str = r"
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end
local freed = #ARGV[1] + redis.call('STRLEN', KEYS[1])
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('DECRBY', KEYS[3], freed)
return 1
";

/// The pub/sub channel of a fleet.
const BUS: &str = "emcee:bus";

/// Publications under way at most; past it a change is dropped (counted in
/// `bus_dropped`) rather than queued without bound behind a slow Redis.
const MAX_PUBLISHING: usize = 1024;

/// The bus connection's push sender: a message of another instance to the handler.
struct BusSender {
    origin: Arc<str>,
    handler: BusHandler,
}

impl redis::aio::AsyncPushSender for BusSender {
    fn send(&self, info: redis::PushInfo) -> Result<(), redis::aio::SendError> {
        if info.kind != redis::PushKind::Message {
            return Ok(());
        }
        if let [_, redis::Value::BulkString(payload)] = info.data.as_slice() {
            let mut parts = payload.splitn(2, |b| *b == b' ');
            if let (Some(origin), Some(rest)) = (parts.next(), parts.next()) {
                if origin != self.origin.as_bytes() {
                    if let Some((kind, data)) = rest.split_first() {
                        (self.handler)(*kind, data);
                    }
                }
            }
        }
        Ok(())
    }
}

/// The store: a connection manager on its own runtime thread.
pub(crate) struct RedisStore {
    rt: tokio::runtime::Handle,
    /// Ends the runtime's thread when the store is dropped.
    _stop: tokio::sync::oneshot::Sender<()>,
    conn: ConnectionManager,
    timeout: Duration,
    durability: RedisDurability,
    /// Where (the URL without its password), for messages.
    shown: String,
    failure: Mutex<Option<String>>,
    observer: std::sync::OnceLock<(slog::Logger, prometheus::IntCounter)>,
    /// A session's record lives this long after its last use.
    session_ttl: Mutex<Option<Duration>>,
    set_script: redis::Script,
    delete_script: redis::Script,
    /// Set once `WAITAOF` is known to work (checked at start in `fsync` mode).
    waitaof: AtomicBool,
    /// For the bus's own connection.
    client: redis::Client,
    /// This process on the bus (random).
    origin: Arc<str>,
    /// The bus connection, once [`RedisStore::listen_bus`] made it.
    bus: std::sync::OnceLock<ConnectionManager>,
    publishing: Arc<AtomicUsize>,
    /// Bus messages dropped (too many under way, or Redis failing): counted in
    /// `mcp_fleet_bus_dropped_total` once [`RedisStore::count_bus_drops`] names it.
    bus_dropped: Arc<std::sync::OnceLock<prometheus::IntCounter>>,
    /// The replay log's append script (`redis_events.rs`).
    pub(super) append_script: redis::Script,
    /// The replay log's age bound, ms.
    pub(super) event_ttl_ms: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.shown)
            .finish_non_exhaustive()
    }
}

/// `url` with its password (if any) replaced by `***`.
pub fn shown_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let creds = &url[scheme + 3..at];
            match creds.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme + 3],
                    &creds[..colon],
                    &url[at..]
                ),
                None => format!("{}***{}", &url[..scheme + 3], &url[at..]),
            }
        }
        _ => url.to_owned(),
    }
}

/// Why `url` is not a Redis URL this build can use, if it is not.
pub fn url_problem(url: &str) -> Option<String> {
    match redis::Client::open(url) {
        Ok(_) => None,
        Err(e) => Some(format!("{} is not a Redis URL: {e}", shown_url(url))),
    }
}

fn kv_keys(namespace: &str, key: &str) -> (Vec<u8>, String, String) {
    let mut value = format!("emcee:{{kv:{namespace}}}:v:").into_bytes();
    value.extend_from_slice(key.as_bytes());
    (
        value,
        format!("emcee:{{kv:{namespace}}}:idx"),
        format!("emcee:{{kv:{namespace}}}:bytes"),
    )
}

fn session_key(id: &str) -> String {
    format!("emcee:session:{id}")
}

fn task_key(id: &str) -> String {
    format!("emcee:task:{id}")
}

const SESSIONS: &str = "emcee:sessions";
const TASKS: &str = "emcee:tasks";

impl RedisStore {
    /// Connect to `url`, check the data format and the durability the settings
    /// ask for. Every failure is one line naming the URL (its password hidden).
    pub fn open(
        url: &str,
        durability: RedisDurability,
        timeout: Duration,
    ) -> Result<RedisStore, StorageError> {
        let shown = shown_url(url);
        let fail = |what: String| StorageError::Redis(format!("{shown}: {what}"));
        let client = redis::Client::open(url).map_err(|e| fail(e.to_string()))?;
        let bus_client = client.clone();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| fail(format!("cannot start its runtime: {e}")))?;
        let handle = rt.handle().clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("emcee-redis".into())
            .spawn(move || {
                let _ = rt.block_on(stopped);
            })
            .map_err(|e| fail(format!("cannot start its thread: {e}")))?;
        let config = manager_config(timeout).set_number_of_retries(2);
        let connect = ConnectionManager::new_with_config(client, config);
        let conn = block(&handle, connect, timeout * 3)
            .map_err(|_| fail(format!("no answer within {} ms", (timeout * 3).as_millis())))?
            .map_err(|e| fail(format!("cannot connect: {e}")))?;
        let store = RedisStore {
            rt: handle,
            _stop: stop,
            conn,
            timeout,
            durability,
            shown: shown.clone(),
            failure: Mutex::new(None),
            observer: std::sync::OnceLock::new(),
            session_ttl: Mutex::new(None),
            set_script: redis::Script::new(KV_SET),
            delete_script: redis::Script::new(KV_DELETE),
            waitaof: AtomicBool::new(false),
            client: bus_client,
            origin: Arc::from(random_id().as_str()),
            bus: std::sync::OnceLock::new(),
            publishing: Arc::default(),
            bus_dropped: Arc::default(),
            append_script: redis::Script::new(super::redis_events::APPEND),
            event_ttl_ms: std::sync::atomic::AtomicU64::new(3_600_000),
        };
        store.check_format().map_err(fail)?;
        store.check_durability().map_err(fail)?;
        Ok(store)
    }

    fn check_format(&self) -> Result<(), String> {
        let found: Option<String> = self
            .run(|mut c| async move {
                redis::cmd("SET")
                    .arg("emcee:format")
                    .arg(FORMAT)
                    .arg("NX")
                    .exec_async(&mut c)
                    .await?;
                redis::cmd("GET")
                    .arg("emcee:format")
                    .query_async(&mut c)
                    .await
            })
            .map_err(|e| e.to_string())?;
        match found.as_deref() {
            Some(FORMAT) => Ok(()),
            other => Err(format!(
                "the database holds emcee data of format \"{}\", this build uses \"{FORMAT}\": \
                 give this fleet its own database (the number at the end of the URL)",
                other.unwrap_or("")
            )),
        }
    }

    fn check_durability(&self) -> Result<(), String> {
        if self.durability == RedisDurability::None {
            return Ok(());
        }
        let info: String = self
            .run(|mut c| async move {
                redis::cmd("INFO")
                    .arg("persistence")
                    .query_async(&mut c)
                    .await
            })
            .map_err(|e| e.to_string())?;
        if !info.lines().any(|l| l.trim() == "aof_enabled:1") {
            return Err(format!(
                "storage.redis_durability = \"{}\" needs the server's append-only file: \
                 set `appendonly yes` in its configuration, or choose \"none\"",
                self.durability.name()
            ));
        }
        if self.durability == RedisDurability::Fsync {
            let waited: Result<redis::Value, StorageError> = self.run(|mut c| async move {
                redis::cmd("WAITAOF")
                    .arg(1)
                    .arg(0)
                    .arg(100)
                    .query_async(&mut c)
                    .await
            });
            if let Err(e) = waited {
                return Err(format!(
                    "storage.redis_durability = \"fsync\" needs WAITAOF (Redis 7.2 or later, or \
                     Valkey); this server refuses it ({e}): upgrade it, or choose \"aof\""
                ));
            }
            self.waitaof.store(true, Ordering::Relaxed);
        }
        Ok(())
    }

    /// The URL, its password hidden.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// Count dropped bus messages in `counter`.
    pub fn count_bus_drops(&self, counter: prometheus::IntCounter) {
        let _ = self.bus_dropped.set(counter);
    }

    fn bus_drop(dropped: &std::sync::OnceLock<prometheus::IntCounter>) {
        if let Some(c) = dropped.get() {
            c.inc();
        }
    }

    /// Where failures are reported (see `Storage::observe`).
    pub fn observe(&self, log: slog::Logger, errors: prometheus::IntCounter) {
        let _ = self.observer.set((log, errors));
    }

    /// A session's record expires this long after its last use.
    pub fn set_session_ttl(&self, ttl: Duration) {
        if let Ok(mut t) = self.session_ttl.lock() {
            *t = Some(ttl);
        }
    }

    fn session_ttl_ms(&self) -> Option<u64> {
        self.session_ttl
            .lock()
            .ok()
            .and_then(|t| *t)
            .map(|t| u64::try_from(t.as_millis()).unwrap_or(u64::MAX).max(1))
    }

    /// Why commands are refused, if they are.
    pub fn failure(&self) -> Option<String> {
        self.failure.lock().ok().and_then(|f| f.clone())
    }

    fn fail(&self, why: String) {
        if let Some((log, errors)) = self.observer.get() {
            errors.inc();
            if self.failure().is_none() {
                slog::error!(log, "storage failing: Redis commands refused"; "error" => &why);
            }
        }
        if let Ok(mut f) = self.failure.lock() {
            *f = Some(why);
        }
    }

    /// `PING` with the deadline: clears the failure when it answers.
    pub fn ping(&self) -> Result<(), StorageError> {
        let pong: Result<String, StorageError> =
            self.attempt(|mut c| async move { redis::cmd("PING").query_async(&mut c).await });
        match pong {
            Ok(_) => {
                let was = self.failure.lock().ok().and_then(|mut f| f.take());
                if let (Some(why), Some((log, _))) = (was, self.observer.get()) {
                    slog::warn!(log, "storage recovered"; "how" => "Redis answers again", "after" => why);
                }
                Ok(())
            }
            Err(e) => Err(e),
        }
    }

    /// Run `f` on the store's runtime and wait for it (blocking), refused at once
    /// while storage is failing.
    pub(super) fn run<T, F, Fut>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>> + Send + 'static,
    {
        if let Some(why) = self.failure() {
            return Err(StorageError::Unavailable(why));
        }
        self.attempt(f)
    }

    /// [`RedisStore::run`] without the failure check (the recovery probe).
    fn attempt<T, F, Fut>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>> + Send + 'static,
    {
        let outcome = block(&self.rt, f(self.conn.clone()), self.timeout);
        self.settle(outcome.map(Ok))
    }

    /// Like [`RedisStore::run`], awaited.
    pub(super) async fn run_async<T, F, Fut>(&self, f: F) -> Result<T, StorageError>
    where
        T: Send + 'static,
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>> + Send + 'static,
    {
        if let Some(why) = self.failure() {
            return Err(StorageError::Unavailable(why));
        }
        let fut = f(self.conn.clone());
        let timeout = self.timeout;
        let task = self
            .rt
            .spawn(async move { tokio::time::timeout(timeout, fut).await });
        let outcome = match tokio::time::timeout(timeout + Duration::from_millis(100), task).await {
            Ok(Ok(done)) => Ok(done),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err("no answer".to_owned()),
        };
        self.settle(outcome)
    }

    /// A command's outcome: a timeout or a connection error marks storage failing.
    fn settle<T>(
        &self,
        outcome: Result<Result<redis::RedisResult<T>, tokio::time::error::Elapsed>, String>,
    ) -> Result<T, StorageError> {
        let why = match outcome {
            Ok(Ok(Ok(v))) => return Ok(v),
            Ok(Ok(Err(e)))
                if !(e.is_io_error()
                    || e.is_timeout()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()) =>
            {
                return Err(StorageError::Redis(format!("{}: {e}", self.shown)));
            }
            Ok(Ok(Err(e))) => format!("{}: {e}", self.shown),
            Ok(Err(_)) | Err(_) => format!(
                "{}: no answer within {} ms (storage.redis_timeout_ms)",
                self.shown,
                self.timeout.as_millis()
            ),
        };
        self.fail(why.clone());
        Err(StorageError::Unavailable(why))
    }

    /// What `fsync` durability asks after an acknowledged write: its confirmation
    /// that the server's append-only file holds it.
    async fn durable(&self) -> Result<(), StorageError> {
        if !self.waitaof.load(Ordering::Relaxed) {
            return Ok(());
        }
        let wait_ms = u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX);
        let (local, _): (i64, i64) = self
            .run_async(move |mut c| async move {
                redis::cmd("WAITAOF")
                    .arg(1)
                    .arg(0)
                    .arg(wait_ms)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        if local < 1 {
            let why = format!(
                "{}: the write was not confirmed on the server's disk within {wait_ms} ms (WAITAOF)",
                self.shown
            );
            self.fail(why.clone());
            return Err(StorageError::Unavailable(why));
        }
        Ok(())
    }

    /// The value under `key`, if any.
    fn get<K: redis::ToRedisArgs + Send + 'static>(
        &self,
        key: K,
    ) -> Result<Option<Vec<u8>>, StorageError> {
        self.run(move |mut c| async move { redis::cmd("GET").arg(key).query_async(&mut c).await })
    }

    // --- kv ---

    /// Set `key` of `namespace` to `value`, within `quota` bytes; durable when it
    /// returns.
    pub async fn kv_set(
        &self,
        namespace: &str,
        key: &str,
        value: &[u8],
        quota: (u64, &'static str),
    ) -> Result<(), StorageError> {
        let (vkey, idx, bytes) = kv_keys(namespace, key);
        let script = self.set_script.clone();
        let (member, value, limit) = (key.to_owned(), value.to_vec(), quota.0);
        let adding = (member.len() + value.len()) as u64;
        let (written, held): (i64, u64) = self
            .run_async(move |mut c| async move {
                script
                    .key(vkey)
                    .key(idx)
                    .key(bytes)
                    .arg(value)
                    .arg(member)
                    .arg(limit)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        if written == 0 {
            return Err(StorageError::Full {
                used: held,
                adding,
                quota: quota.0,
                limit: quota.1,
            });
        }
        self.durable().await
    }

    /// The value of `key` in `namespace`.
    pub fn kv_get(&self, namespace: &str, key: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let (vkey, _, _) = kv_keys(namespace, key);
        self.get(vkey)
    }

    /// Remove `key` of `namespace`: whether it existed; durable when it returns.
    pub async fn kv_delete(&self, namespace: &str, key: &str) -> Result<bool, StorageError> {
        let (vkey, idx, bytes) = kv_keys(namespace, key);
        let script = self.delete_script.clone();
        let member = key.to_owned();
        let existed: i64 = self
            .run_async(move |mut c| async move {
                script
                    .key(vkey)
                    .key(idx)
                    .key(bytes)
                    .arg(member)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        if existed == 1 {
            self.durable().await?;
        }
        Ok(existed == 1)
    }

    /// Keys of `namespace` starting with `prefix`, in byte order: at most `max`,
    /// their lengths at most `max_bytes` together; true when more matched.
    pub fn kv_list(
        &self,
        namespace: &str,
        prefix: &str,
        max: usize,
        max_bytes: usize,
    ) -> Result<(Vec<String>, bool), StorageError> {
        let (_, idx, _) = kv_keys(namespace, "");
        let mut from = b"[".to_vec();
        from.extend_from_slice(prefix.as_bytes());
        // Every key that starts with `prefix` sorts before `prefix` + 0xff...
        let to = if prefix.is_empty() {
            b"+".to_vec()
        } else {
            let mut to = b"[".to_vec();
            to.extend_from_slice(prefix.as_bytes());
            to.extend_from_slice(&[0xff; 8]);
            to
        };
        let count = max.saturating_add(1).min(100_000);
        let found: Vec<Vec<u8>> = self.run(move |mut c| async move {
            redis::cmd("ZRANGEBYLEX")
                .arg(idx)
                .arg(from)
                .arg(to)
                .arg("LIMIT")
                .arg(0)
                .arg(count)
                .query_async(&mut c)
                .await
        })?;
        let mut keys = Vec::new();
        let mut bytes = 0usize;
        for key in found {
            if !key.starts_with(prefix.as_bytes()) {
                break;
            }
            if keys.len() == max || bytes.saturating_add(key.len()) > max_bytes {
                return Ok((keys, true));
            }
            bytes += key.len();
            keys.push(String::from_utf8_lossy(&key).into_owned());
        }
        Ok((keys, false))
    }

    // --- sessions ---

    /// Save a session's record, used now; durable when it returns.
    pub async fn save_session(&self, id: &str, record: &[u8], at: u64) -> Result<(), StorageError> {
        let (key, id, record) = (session_key(id), id.to_owned(), record.to_vec());
        let ttl = self.session_ttl_ms();
        self.run_async(move |mut c| async move {
            let mut p = redis::pipe();
            p.atomic().cmd("SET").arg(&key).arg(record);
            if let Some(ttl) = ttl {
                p.arg("PX").arg(ttl);
            }
            p.cmd("ZADD").arg(SESSIONS).arg(at).arg(id);
            p.exec_async(&mut c).await
        })
        .await?;
        self.durable().await
    }

    /// Mark session `id` used at `at`, and push its record's expiry back.
    pub fn mark_session_used(&self, id: &str, at: u64) -> Result<(), StorageError> {
        let (key, id) = (session_key(id), id.to_owned());
        let ttl = self.session_ttl_ms();
        self.run(move |mut c| async move {
            let mut p = redis::pipe();
            p.cmd("ZADD").arg(SESSIONS).arg("XX").arg(at).arg(id);
            if let Some(ttl) = ttl {
                p.cmd("PEXPIRE").arg(key).arg(ttl);
            }
            p.exec_async(&mut c).await
        })
    }

    /// When session `id` was last used (unix ms).
    pub fn session_used_at(&self, id: &str) -> Result<Option<u64>, StorageError> {
        let id = id.to_owned();
        let score: Option<f64> = self.run(move |mut c| async move {
            redis::cmd("ZSCORE")
                .arg(SESSIONS)
                .arg(id)
                .query_async(&mut c)
                .await
        })?;
        Ok(score.map(|s| s as u64))
    }

    /// Sessions last used before `cutoff` (unix ms).
    pub fn sessions_unused_since(&self, cutoff: u64) -> Result<Vec<String>, StorageError> {
        let below = format!("({cutoff}");
        self.run(move |mut c| async move {
            redis::cmd("ZRANGEBYSCORE")
                .arg(SESSIONS)
                .arg("-inf")
                .arg(below)
                .arg("LIMIT")
                .arg(0)
                .arg(10_000)
                .query_async(&mut c)
                .await
        })
    }

    /// Session `id`'s record.
    pub fn load_session(&self, id: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let key = session_key(id);
        self.get(key)
    }

    /// Forget session `id`.
    pub fn delete_session(&self, id: &str) -> Result<(), StorageError> {
        let (key, id) = (session_key(id), id.to_owned());
        self.run(move |mut c| async move {
            redis::pipe()
                .cmd("DEL")
                .arg(key)
                .cmd("ZREM")
                .arg(SESSIONS)
                .arg(id)
                .exec_async(&mut c)
                .await
        })
    }

    /// Whether session `id` has a record.
    pub fn has_session(&self, id: &str) -> Result<bool, StorageError> {
        let key = session_key(id);
        let n: i64 = self.run(move |mut c| async move {
            redis::cmd("EXISTS").arg(key).query_async(&mut c).await
        })?;
        Ok(n == 1)
    }

    /// Sessions with a record (by the index of last uses).
    pub fn session_count(&self) -> usize {
        self.run(|mut c| async move { redis::cmd("ZCARD").arg(SESSIONS).query_async(&mut c).await })
            .unwrap_or(0)
    }

    // --- tasks ---

    /// Store task `id`'s record.
    pub fn put_task(&self, id: &str, record: &[u8]) -> Result<(), StorageError> {
        let (key, id, record) = (task_key(id), id.to_owned(), record.to_vec());
        self.run(move |mut c| async move {
            redis::pipe()
                .atomic()
                .cmd("SET")
                .arg(key)
                .arg(record)
                .cmd("SADD")
                .arg(TASKS)
                .arg(id)
                .exec_async(&mut c)
                .await
        })
    }

    /// Task `id`'s record.
    pub fn get_task(&self, id: &str) -> Result<Option<Vec<u8>>, StorageError> {
        let key = task_key(id);
        self.get(key)
    }

    /// Forget task `id`.
    pub fn delete_task(&self, id: &str) -> Result<(), StorageError> {
        let (key, id) = (task_key(id), id.to_owned());
        self.run(move |mut c| async move {
            redis::pipe()
                .cmd("DEL")
                .arg(key)
                .cmd("SREM")
                .arg(TASKS)
                .arg(id)
                .exec_async(&mut c)
                .await
        })
    }

    /// Every task id.
    pub fn task_ids(&self) -> Result<Vec<String>, StorageError> {
        self.run(|mut c| async move { redis::cmd("SMEMBERS").arg(TASKS).query_async(&mut c).await })
    }

    // --- the bus ---

    /// Receive the bus's messages of other instances in `handler` (called on the
    /// store's thread: it must not block). Subscribed on a connection of its own,
    /// subscribed again by the connection manager after a reconnect.
    pub fn listen_bus(&self, handler: BusHandler) -> Result<(), StorageError> {
        let fail = |what: String| StorageError::Redis(format!("{}: the bus: {what}", self.shown));
        let info = self.client.get_connection_info().clone();
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(redis::ProtocolVersion::RESP3);
        let client = redis::Client::open(info.set_redis_settings(settings))
            .map_err(|e| fail(e.to_string()))?;
        let config = manager_config(self.timeout)
            .set_push_sender(BusSender {
                origin: self.origin.clone(),
                handler,
            })
            .set_automatic_resubscription();
        let connect = async move {
            let mut conn = ConnectionManager::new_with_config(client, config).await?;
            conn.subscribe(BUS).await?;
            Ok::<_, redis::RedisError>(conn)
        };
        let conn = block(&self.rt, connect, self.timeout * 3)
            .map_err(fail)?
            .map_err(|e| fail(e.to_string()))?;
        let _ = self.bus.set(conn);
        Ok(())
    }

    /// A bus message: `ORIGIN KIND DATA`.
    fn bus_payload(&self, kind: u8, data: &[u8]) -> Vec<u8> {
        let mut payload = Vec::with_capacity(self.origin.len() + 2 + data.len());
        payload.extend_from_slice(self.origin.as_bytes());
        payload.push(b' ');
        payload.push(kind);
        payload.extend_from_slice(data);
        payload
    }

    /// Tell the other instances `data` of `kind`; never waits (dropped, and
    /// counted, while Redis fails or too many are under way).
    pub fn publish(&self, kind: u8, data: &[u8]) {
        if self.failure().is_some() {
            Self::bus_drop(&self.bus_dropped);
            return;
        }
        if self.publishing.fetch_add(1, Ordering::AcqRel) >= MAX_PUBLISHING {
            self.publishing.fetch_sub(1, Ordering::AcqRel);
            Self::bus_drop(&self.bus_dropped);
            return;
        }
        let payload = self.bus_payload(kind, data);
        let mut conn = self.conn.clone();
        let (timeout, publishing, dropped) = (
            self.timeout,
            self.publishing.clone(),
            self.bus_dropped.clone(),
        );
        self.rt.spawn(async move {
            let sent = tokio::time::timeout(
                timeout,
                redis::cmd("PUBLISH")
                    .arg(BUS)
                    .arg(payload)
                    .exec_async(&mut conn),
            )
            .await;
            if !matches!(sent, Ok(Ok(()))) {
                Self::bus_drop(&dropped);
            }
            publishing.fetch_sub(1, Ordering::AcqRel);
        });
    }

    /// Publish `data` of `kind` and wait for Redis to say how many subscribers
    /// received it (this instance's own bus included); 0 when it could not.
    pub async fn publish_counted(&self, kind: u8, data: &[u8]) -> usize {
        let payload = self.bus_payload(kind, data);
        let received: Result<usize, StorageError> = self
            .run_async(move |mut c| async move {
                redis::cmd("PUBLISH")
                    .arg(BUS)
                    .arg(payload)
                    .query_async(&mut c)
                    .await
            })
            .await;
        received.unwrap_or(0)
    }

    /// Make what was written so far durable (`fsync` durability), else nothing.
    pub async fn flush(&self) -> Result<(), StorageError> {
        self.durable().await
    }

    /// The health probe: `PING`, refused at once while failing.
    pub fn probe(&self) -> Result<(), StorageError> {
        if let Some(why) = self.failure() {
            return Err(StorageError::Unavailable(why));
        }
        self.ping()
    }
}

/// What both connection managers (commands, the bus) share: every connect and
/// answer within `timeout`, reconnect attempts at most a second apart.
fn manager_config(timeout: Duration) -> redis::aio::ConnectionManagerConfig {
    redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout))
        .set_max_delay(Duration::from_secs(1))
}

/// 16 random hex characters.
fn random_id() -> String {
    let mut bytes = [0u8; 8];
    let _ = getrandom::fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Run `fut` on `rt` and wait for its outcome (blocking the calling thread, which
/// need not belong to a runtime), at most `deadline`.
fn block<T: Send + 'static>(
    rt: &tokio::runtime::Handle,
    fut: impl Future<Output = T> + Send + 'static,
    deadline: Duration,
) -> Result<T, String> {
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    rt.spawn(async move {
        let _ = tx.send(tokio::time::timeout(deadline, fut).await);
    });
    match rx.recv_timeout(deadline + Duration::from_millis(100)) {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(_)) | Err(_) => Err("no answer".to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hidden_in_urls() {
        assert_eq!(
            shown_url("redis://127.0.0.1:6379/0"),
            "redis://127.0.0.1:6379/0"
        );
        assert_eq!(
            shown_url("redis://user:secret@host:6379/1"),
            "redis://user:***@host:6379/1"
        );
        assert_eq!(shown_url("redis://secret@host/1"), "redis://***@host/1");
        assert!(url_problem("redis://127.0.0.1:6379/0").is_none());
        assert!(url_problem("http://nope").is_some());
    }
}
