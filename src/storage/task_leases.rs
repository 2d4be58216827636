//! The task records' operations that a fleet needs ([`Storage::tasks_shared`]):
//! a task created with its lease, records read with their lease and replaced
//! only if unchanged, leases renewed, lapsed ones found. With sled one process
//! owns every task: no lease, and a replace is a plain write (the caller holds
//! the tasks' edit lock, as before leases existed). On Redis: `redis_tasks.rs`.

use std::time::Duration;

use super::{Storage, StorageError};

/// Whether the instance that runs a task still vouches for it (shared storage).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lease {
    /// Renewed within the lease: its instance runs it.
    Held,
    /// Ran out, or never was: no instance runs it any more.
    Lapsed,
}

/// A task record as [`Storage::read_task`] reads it: its bytes and, with shared
/// storage, its lease.
pub type LeasedRecord = (Vec<u8>, Option<Lease>);

/// What [`Storage::swap_task`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Swapped {
    /// The record was replaced.
    Done,
    /// The record changed since it was read: nothing written (read it again).
    Changed,
    /// Only if lapsed, and the lease is held: nothing written.
    Held,
    /// There is no record.
    Gone,
}

impl Storage {
    /// Whether task records are shared with other instances (Redis), so that
    /// running tasks have leases.
    pub fn tasks_shared(&self) -> bool {
        #[cfg(feature = "redis")]
        if self.remote().is_some() {
            return true;
        }
        false
    }

    /// Store a new task's record (not flushed); shared, with its lease held for
    /// `lease`.
    pub fn create_task(
        &self,
        id: &str,
        record: &[u8],
        lease: Duration,
    ) -> Result<(), StorageError> {
        #[cfg(feature = "redis")]
        if let Some(r) = self.remote() {
            return r.create_task(id, record, lease);
        }
        let _ = lease;
        self.put_task(id, record)
    }

    /// Task `id`'s record and, when shared, its lease (`None` with sled).
    pub fn read_task(&self, id: &str) -> Result<Option<LeasedRecord>, StorageError> {
        #[cfg(feature = "redis")]
        if let Some(r) = self.remote() {
            self.shared
                .task_reads
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Ok(r
                .read_task(id)?
                .map(|(record, lease)| (record, Some(lease))));
        }
        Ok(self.get_task(id)?.map(|record| (record, None)))
    }

    /// Replace task `id`'s record `old` by `new` (not flushed), if it is still
    /// `old` and, with `if_lapsed`, if no instance holds its lease; `ends_at`:
    /// `new` ends the task (its lease goes; shared, the record expires then, unix
    /// ms). With sled it is written (the caller holds the tasks' edit lock).
    pub fn swap_task(
        &self,
        id: &str,
        old: &[u8],
        new: &[u8],
        if_lapsed: bool,
        ends_at: Option<u64>,
    ) -> Result<Swapped, StorageError> {
        #[cfg(feature = "redis")]
        if let Some(r) = self.remote() {
            return r.swap_task(id, old, new, if_lapsed, ends_at);
        }
        let _ = (old, if_lapsed, ends_at);
        self.put_task(id, new)?;
        Ok(Swapped::Done)
    }

    /// Renew the leases of running tasks `ids` for `lease`, and read their records
    /// (`None` where gone), in order. Nothing with sled.
    pub async fn renew_tasks(
        &self,
        ids: &[String],
        lease: Duration,
    ) -> Result<Vec<Option<Vec<u8>>>, StorageError> {
        #[cfg(feature = "redis")]
        if let Some(r) = self.remote() {
            let records = r.renew_tasks(ids, lease).await?;
            self.shared
                .task_reads
                .fetch_add(ids.len() as u64, std::sync::atomic::Ordering::Relaxed);
            return Ok(records);
        }
        let _ = (ids, lease);
        Ok(Vec::new())
    }

    /// Shared storage: walk on through the task ids from `cursor` (0: from the
    /// start), about `count` of them, forgetting the ids of records that expired
    /// (an ended task's record expires at its TTL should no instance's sweep
    /// delete it). The next cursor (0: the walk is over) and how many were
    /// forgotten. Nothing with sled.
    pub fn prune_task_ids(&self, cursor: u64, count: usize) -> Result<(u64, u64), StorageError> {
        #[cfg(feature = "redis")]
        if let Some(r) = self.remote() {
            return r.prune_task_ids(cursor, count);
        }
        let _ = (cursor, count);
        Ok((0, 0))
    }

    /// At most `max` running tasks whose lease ran out. None with sled.
    pub fn lapsed_tasks(&self, max: usize) -> Result<Vec<String>, StorageError> {
        #[cfg(feature = "redis")]
        if let Some(r) = self.remote() {
            return r.lapsed_tasks(max);
        }
        let _ = max;
        Ok(Vec::new())
    }
}
