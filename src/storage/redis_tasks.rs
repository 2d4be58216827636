//! Task leases on Redis: which instance of a fleet runs a task, and until when.
//!
//! A running task's lease is its member in the sorted set `emcee:task-leases`,
//! scored with the time (Redis's clock, `TIME`, in ms: instances' clocks need not
//! agree) until which its owner vouches for it. The owner renews the leases of all
//! the tasks it runs in one script per period ([`RedisStore::renew_tasks`], one
//! `ZADD XX` per task), which also returns their records, so that a cancellation
//! or answers written by another instance reach the owner in the same round trip.
//! A lease is written with the record that creates the task, removed with the
//! record that ends it. A running record whose lease ran out (or that has none)
//! belongs to an instance that stopped: any instance may end it, with a
//! compare-and-set that checks the lease again ([`RedisStore::swap_task`]), so a
//! task is ended once, and never while its owner still vouches for it.

use std::sync::LazyLock;
use std::time::Duration;

use super::{task_key, RedisStore, TASKS};
use crate::storage::task_leases::{Lease, Swapped};
use crate::storage::StorageError;

/// The sorted set of running tasks' leases: task id → held until (Redis ms).
const LEASES: &str = "emcee:task-leases";

/// Redis's clock in ms, as the scripts below compute it (`now`).
macro_rules! now_ms {
    () => {
        "local t = redis.call('TIME')\nlocal now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    };
}

/// Create a task: its record `ARGV[1]` at `KEYS[1]`, its id `ARGV[2]` in the set
/// `KEYS[2]`, and its lease in `KEYS[3]`, held for `ARGV[3]` ms.
static CREATE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(concat!(
        now_ms!(),
        "redis.call('SET', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[2])
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[3]), ARGV[2])
return 1"
    ))
});

/// Task `ARGV[1]`'s record `KEYS[1]` and whether its lease in `KEYS[2]` is held:
/// `{record, 1|0}`, or nil when there is no record (its lease, if any, is
/// forgotten then).
static READ: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(concat!(
        "local rec = redis.call('GET', KEYS[1])
if not rec then
  redis.call('ZREM', KEYS[2], ARGV[1])
  return false
end
local held = 0
local s = redis.call('ZSCORE', KEYS[2], ARGV[1])
if s then
",
        now_ms!(),
        "  if tonumber(s) >= now then held = 1 end
end
return {rec, held}"
    ))
});

/// Compare-and-set task `ARGV[3]`'s record `KEYS[1]` from `ARGV[1]` to `ARGV[2]`;
/// with `ARGV[4]` = '1' only if its lease in `KEYS[2]` is not held; `ARGV[5]`, when
/// not empty, is the new record an end's: its lease goes, and the record expires
/// at that time (unix ms) should no instance's sweep delete it. 1 written, 0 the
/// record changed, -1 the lease is held, -2 no record.
static SWAP: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(concat!(
        "local cur = redis.call('GET', KEYS[1])
if not cur then return -2 end
if cur ~= ARGV[1] then return 0 end
if ARGV[4] == '1' then
  local s = redis.call('ZSCORE', KEYS[2], ARGV[3])
  if s then
",
        now_ms!(),
        "    if tonumber(s) >= now then return -1 end
  end
end
redis.call('SET', KEYS[1], ARGV[2])
if ARGV[5] ~= '' then
  redis.call('ZREM', KEYS[2], ARGV[3])
  redis.call('PEXPIREAT', KEYS[1], ARGV[5])
end
return 1"
    ))
});

/// Renew the leases (`KEYS[1]`) of tasks `ARGV[2..]` for `ARGV[1]` ms (only the
/// ones still leased: an ended task's is not brought back) and return their
/// records (`KEYS[2..]`, nil where gone).
static RENEW: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(concat!(
        now_ms!(),
        "local till = now + tonumber(ARGV[1])
local out = {}
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], 'XX', till, ARGV[i])
  out[i - 1] = redis.call('GET', KEYS[i])
end
return out"
    ))
});

/// At most `ARGV[1]` tasks whose lease in `KEYS[1]` ran out.
static LAPSED: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(concat!(
        now_ms!(),
        "return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. now, 'LIMIT', 0, tonumber(ARGV[1]))"
    ))
});

/// One step of a walk through the set of task ids `KEYS[1]` (`SSCAN` from cursor
/// `ARGV[1]`, about `ARGV[2]` ids): the ids whose record (`ARGV[3]` .. id) is
/// gone (it expired: an ended task no instance's sweep deleted) leave the set.
/// `{next cursor, how many left}`.
static PRUNE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        "local r = redis.call('SSCAN', KEYS[1], ARGV[1], 'COUNT', tonumber(ARGV[2]))
local gone = 0
for _, id in ipairs(r[2]) do
  if redis.call('EXISTS', ARGV[3] .. id) == 0 then
    redis.call('SREM', KEYS[1], id)
    gone = gone + 1
  end
end
return {r[1], gone}",
    )
});

fn lease_ms(lease: Duration) -> u64 {
    u64::try_from(lease.as_millis()).unwrap_or(u64::MAX)
}

impl RedisStore {
    /// Store a new task's record with its lease, held for `lease`.
    pub fn create_task(
        &self,
        id: &str,
        record: &[u8],
        lease: Duration,
    ) -> Result<(), StorageError> {
        let (key, id, record, ms) = (
            task_key(id),
            id.to_owned(),
            record.to_vec(),
            lease_ms(lease),
        );
        self.run(move |mut c| async move {
            CREATE
                .key(key)
                .key(TASKS)
                .key(LEASES)
                .arg(record)
                .arg(id)
                .arg(ms)
                .invoke_async::<i64>(&mut c)
                .await
                .map(|_| ())
        })
    }

    /// Task `id`'s record and its lease.
    pub fn read_task(&self, id: &str) -> Result<Option<(Vec<u8>, Lease)>, StorageError> {
        let (key, id) = (task_key(id), id.to_owned());
        let read: Option<(Vec<u8>, i64)> = self.run(move |mut c| async move {
            READ.key(key).key(LEASES).arg(id).invoke_async(&mut c).await
        })?;
        Ok(read.map(|(record, held)| {
            let lease = if held == 1 {
                Lease::Held
            } else {
                Lease::Lapsed
            };
            (record, lease)
        }))
    }

    /// Replace task `id`'s record `old` by `new` if it is still `old` (and, with
    /// `if_lapsed`, if its lease is not held); `ends_at`: `new` ends the task, and
    /// the record expires then (unix ms).
    pub fn swap_task(
        &self,
        id: &str,
        old: &[u8],
        new: &[u8],
        if_lapsed: bool,
        ends_at: Option<u64>,
    ) -> Result<Swapped, StorageError> {
        let (key, id, old, new) = (task_key(id), id.to_owned(), old.to_vec(), new.to_vec());
        let lapsed = if if_lapsed { "1" } else { "0" };
        let ends = ends_at.map(|ms| ms.to_string()).unwrap_or_default();
        let swapped: i64 = self.run(move |mut c| async move {
            SWAP.key(key)
                .key(LEASES)
                .arg(old)
                .arg(new)
                .arg(id)
                .arg(lapsed)
                .arg(ends)
                .invoke_async(&mut c)
                .await
        })?;
        Ok(match swapped {
            1 => Swapped::Done,
            -1 => Swapped::Held,
            -2 => Swapped::Gone,
            _ => Swapped::Changed,
        })
    }

    /// Renew the leases of tasks `ids` for `lease`; their records (`None` where
    /// gone), in order.
    pub async fn renew_tasks(
        &self,
        ids: &[String],
        lease: Duration,
    ) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = ids.to_vec();
        let ms = lease_ms(lease);
        self.run_async(move |mut c| async move {
            let mut call = RENEW.key(LEASES);
            for id in &ids {
                call.key(task_key(id));
            }
            call.arg(ms);
            for id in &ids {
                call.arg(id);
            }
            call.invoke_async(&mut c).await
        })
        .await
    }

    /// Walk on through the set of task ids from `cursor` (0: from the start),
    /// about `count` of them: the ids whose record expired leave it. The next
    /// cursor (0: the walk is over) and how many left.
    pub fn prune_task_ids(&self, cursor: u64, count: usize) -> Result<(u64, u64), StorageError> {
        let prefix = task_key("");
        // The cursor as Redis gives it (a string: as a Lua number it could lose
        // digits).
        let (next, gone): (String, u64) = self.run(move |mut c| async move {
            PRUNE
                .key(TASKS)
                .arg(cursor)
                .arg(count)
                .arg(prefix)
                .invoke_async(&mut c)
                .await
        })?;
        Ok((next.parse().unwrap_or(0), gone))
    }

    /// At most `max` tasks whose lease ran out (their instance stopped).
    pub fn lapsed_tasks(&self, max: usize) -> Result<Vec<String>, StorageError> {
        self.run(move |mut c| async move { LAPSED.key(LEASES).arg(max).invoke_async(&mut c).await })
    }
}
