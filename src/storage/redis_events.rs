//! The SSE replay log on Redis, so that a session-era stream dropped on one
//! instance resumes on another with `Last-Event-ID`.
//!
//! One Redis stream per session, `emcee:{ev:SID}:log`, each entry the event's
//! stream number (`s`), sequence (`q`) and JSON (`d`), with `emcee:{ev:SID}:bytes`
//! the JSON bytes it holds. One script appends and keeps the session within its
//! share (`limits.event_log_session_max` / `_bytes`, its own oldest first, never
//! its newest), and both keys expire `limits.event_ttl_ms` after the last append:
//! the log's bounds are per session and by age (Redis's `maxmemory` is the
//! fleet-wide one). A replay reads the session's entries in pages as the
//! connection takes them. Stream numbers are unique across the fleet: each process
//! takes a number from `emcee:instances` at start and numbers its streams from
//! `number << 32` ([`RedisStore::stream_base`]).

use std::sync::atomic::Ordering;
use std::time::Duration;

use super::redis::RedisStore;
use super::StorageError;

/// Append `ARGV[3]` (stream `ARGV[1]`, seq `ARGV[2]`) to `KEYS[1]`, count its
/// bytes in `KEYS[2]`, drop the oldest entries past `ARGV[4]` entries or `ARGV[5]`
/// bytes (never the newest), and expire both keys in `ARGV[6]` ms.
pub(super) const APPEND: &str = r"
redis.call('XADD', KEYS[1], '*', 's', ARGV[1], 'q', ARGV[2], 'd', ARGV[3])
local bytes = redis.call('INCRBY', KEYS[2], #ARGV[3])
local n = redis.call('XLEN', KEYS[1])
while n > 1 and (n > tonumber(ARGV[4]) or bytes > tonumber(ARGV[5])) do
  local first = redis.call('XRANGE', KEYS[1], '-', '+', 'COUNT', 1)[1]
  local fields = first[2]
  local len = 0
  for i = 1, #fields, 2 do
    if fields[i] == 'd' then len = #fields[i + 1] end
  end
  redis.call('XDEL', KEYS[1], first[1])
  bytes = redis.call('DECRBY', KEYS[2], len)
  n = n - 1
end
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('PEXPIRE', KEYS[2], ARGV[6])
return n
";

/// Entries a replay reads from Redis at a time.
const PAGE: usize = 32;

fn log_keys(session: &str) -> (String, String) {
    (
        format!("emcee:{{ev:{session}}}:log"),
        format!("emcee:{{ev:{session}}}:bytes"),
    )
}

/// One entry of a page: its id, and the fields `s`, `q`, `d`.
type Entry = (String, Vec<(String, Vec<u8>)>);

impl RedisStore {
    /// Take this process's number among the fleet's (`INCR emcee:instances`): its
    /// streams are numbered from it `<< 32`.
    pub fn take_stream_base(&self) -> Result<u64, StorageError> {
        let n: u64 = self.run(|mut c| async move {
            redis::cmd("INCR")
                .arg("emcee:instances")
                .query_async(&mut c)
                .await
        })?;
        Ok((n & 0xffff_ffff) << 32)
    }

    /// Append an event; the session's share and the age bound are applied here.
    pub async fn append_event(
        &self,
        session: &str,
        stream: u64,
        seq: u64,
        json: &str,
        share: (usize, u64),
    ) -> Result<(), StorageError> {
        let (log, bytes) = log_keys(session);
        let script = self.append_script.clone();
        let ttl = self.event_ttl_ms.load(Ordering::Relaxed).max(1);
        let json = json.as_bytes().to_vec();
        let _: i64 = self
            .run_async(move |mut c| async move {
                script
                    .key(log)
                    .key(bytes)
                    .arg(stream)
                    .arg(seq)
                    .arg(json)
                    .arg(share.0)
                    .arg(share.1)
                    .arg(ttl)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(())
    }

    /// The age bound of the log (`limits.event_ttl_ms`).
    pub fn set_event_ttl(&self, ttl: Duration) {
        let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX);
        self.event_ttl_ms.store(ms, Ordering::Relaxed);
    }

    /// Remove a session's events.
    pub fn delete_events_of(&self, session: &str) -> Result<(), StorageError> {
        let (log, bytes) = log_keys(session);
        self.run(move |mut c| async move {
            redis::cmd("DEL")
                .arg(log)
                .arg(bytes)
                .exec_async(&mut c)
                .await
        })
    }

    /// The events of `stream` after `after_seq`, read a page at a time as the
    /// iterator advances: `(seq, json)`.
    pub fn events_after(
        self: &std::sync::Arc<Self>,
        session: &str,
        stream: u64,
        after_seq: u64,
    ) -> impl Iterator<Item = Result<(u64, Vec<u8>), StorageError>> + Send + 'static {
        let store = self.clone();
        let (log, _) = log_keys(session);
        let mut from = "-".to_owned();
        let mut page: std::vec::IntoIter<Entry> = Vec::new().into_iter();
        let mut done = false;
        std::iter::from_fn(move || loop {
            if let Some((id, fields)) = page.next() {
                from = format!("({id}");
                let field = |name: &str| {
                    fields
                        .iter()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.clone())
                };
                let number = |name: &str| {
                    field(name)
                        .and_then(|v| String::from_utf8(v).ok())
                        .and_then(|v| v.parse::<u64>().ok())
                };
                match (number("s"), number("q"), field("d")) {
                    (Some(s), Some(q), Some(d)) if s == stream && q > after_seq => {
                        return Some(Ok((q, d)))
                    }
                    _ => continue,
                }
            }
            if done {
                return None;
            }
            let (key, start) = (log.clone(), from.clone());
            let read: Result<Vec<Entry>, StorageError> = store.run(move |mut c| async move {
                redis::cmd("XRANGE")
                    .arg(key)
                    .arg(start)
                    .arg("+")
                    .arg("COUNT")
                    .arg(PAGE)
                    .query_async(&mut c)
                    .await
            });
            match read {
                Ok(entries) => {
                    done = entries.len() < PAGE;
                    page = entries.into_iter();
                }
                Err(e) => {
                    done = true;
                    return Some(Err(e));
                }
            }
        })
    }
}
