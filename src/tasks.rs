//! The tasks extension (`io.modelcontextprotocol/tasks`, 2026-07-28): a `tools/call`
//! answered at once with a task handle, its result fetched later with `tasks/get`.
//!
//! A tool declares whether it may run as a task ([`TaskSupport`]). When a request
//! declares the extension in its client capabilities, the call of such a tool becomes
//! a task when its handler calls [`crate::handler::CallContext::begin_task`] (at once,
//! before the handler, unless the tool begins it itself after gathering input through
//! multi-round-trip requests): the task is written and flushed, then the call is
//! answered with `resultType: "task"` while the handler goes on in its Call actor.
//! Its end (result, JSON-RPC error, cancellation) is written to the task's record.
//! A client without the extension gets the ordinary result, or -32021 for a tool
//! that can only run as a task.
//!
//! While a task runs, a handler's ask (`request_client`) parks it in
//! `input_required` with the question in `inputRequests`; `tasks/update` delivers the
//! answer and the handler resumes. `tasks/cancel` stops the Call actor (cooperative:
//! the handler's future is dropped at its next await).
//!
//! Records live in sled (tree `tasks`) until their TTL, across restarts; a task that
//! was running when the process stopped is `failed` at the next start, saying so.
//! Task ids are 128 random bits: a task is reached only by whoever holds its id.
//! Bounds: `limits.max_tasks` records and `limits.task_store_bytes` of them, and
//! for each [`Client`] `limits.max_tasks_per_client` and
//! `limits.task_store_bytes_per_client`; a task runs at most
//! `limits.task_timeout_ms`. At a bound the task that ended longest ago is evicted
//! (the client's own first; running tasks never are): ended tasks do not lock new
//! ones out. The extension has no delete (`tasks/cancel` of an ended task is an
//! empty ack), so eviction is what makes room. An in-memory index of the records
//! (no bodies) keeps the counts, the expiry order and the end order: the expiry
//! sweep removes at most `limits.task_sweep_max` expired tasks and reads none.
//!
//! A fleet (shared storage, `storage.url`): the records are on Redis, seen by every
//! instance; the process that created a task runs it, under a lease
//! (`limits.task_lease_ms`) that it renews while it runs it, every third of the
//! lease or `limits.task_poll_interval_ms` if shorter ([`Tasks::heartbeat`], which
//! reads the records in the same round trip). `tasks/get` works anywhere.
//! `tasks/cancel` and `tasks/update` through another instance are written to the
//! record (a cancellation flag, the checked answers) and the owner acts on them at
//! its next renewal. A running task whose lease ran out belongs to an instance
//! that stopped: whichever instance reads it first (`tasks/get`, the sweep, a start)
//! fails it, once (a compare-and-set that checks the lease again); at start only
//! such tasks are failed, never the ones live instances run. Every write of a
//! record is a compare-and-set, and an end never overwrites an end. The index
//! stays per process: the bounds and shares count the tasks this process created
//! or found ended at its start (approximate across a fleet, per instance).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::channel::oneshot;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::Limits;
use crate::protocol::Reply;
use crate::protocol::{code, RpcError};
use crate::storage::{unix_ms, Lease, Storage, Swapped};
use crate::telemetry::metrics::reason;
use crate::telemetry::{Refusals, Refused};

/// The extension's identifier (capabilities key).
pub const EXTENSION: &str = "io.modelcontextprotocol/tasks";

/// Whether a tool may run as a task.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TaskSupport {
    /// Never: always answered directly.
    #[default]
    Forbidden,
    /// As a task for clients that declared the extension, directly for others.
    Optional,
    /// Only as a task: a client without the extension gets -32021.
    Required,
}

/// A task's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Running.
    Working,
    /// Waiting for the client's answers (`inputRequests`).
    InputRequired,
    /// Finished with a result (an `isError` tool result included).
    Completed,
    /// Ended by a JSON-RPC error.
    Failed,
    /// Stopped by `tasks/cancel`.
    Cancelled,
}

impl Status {
    fn is_terminal(self) -> bool {
        matches!(self, Status::Completed | Status::Failed | Status::Cancelled)
    }
}

/// A task as `tasks/get` shows it (the `DetailedTask` of the extension).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Task {
    /// Its id.
    #[serde(rename = "taskId")]
    pub task_id: String,
    /// Its status.
    pub status: Status,
    /// Why it is in that status, when there is something to say.
    #[serde(
        rename = "statusMessage",
        skip_serializing_if = "Option::is_none",
        default
    )]
    pub status_message: Option<String>,
    /// ISO 8601.
    #[serde(rename = "createdAt")]
    pub created_at: String,
    /// ISO 8601.
    #[serde(rename = "lastUpdatedAt")]
    pub last_updated_at: String,
    /// How long the task is kept after its creation.
    #[serde(rename = "ttlMs")]
    pub ttl_ms: u64,
    /// How often a client should poll.
    #[serde(rename = "pollIntervalMs")]
    pub poll_interval_ms: u64,
    /// Outstanding questions (`input_required`).
    #[serde(
        rename = "inputRequests",
        skip_serializing_if = "Map::is_empty",
        default
    )]
    pub input_requests: Map<String, Value>,
    /// The result (`completed`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub result: Option<Value>,
    /// The JSON-RPC error (`failed`).
    #[serde(skip_serializing_if = "Option::is_none", default)]
    pub error: Option<Value>,
}

/// What is stored: the task and when it may be forgotten.
#[derive(Debug, Serialize, Deserialize)]
struct Stored {
    expires_ms: u64,
    /// Whose share it counts in ([`Client::key`]; empty in records written before
    /// shares existed).
    #[serde(default)]
    client: String,
    /// The instance that runs it ([`Tasks::instance`]), with shared storage only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    owner: Option<String>,
    /// `tasks/cancel` reached an instance that does not run it: its owner stops it
    /// when it next polls (shared storage).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    cancel: bool,
    /// Answers (`tasks/update`) given through an instance that does not run it, by
    /// question: its owner delivers them when it next polls (shared storage).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    answers: Map<String, Value>,
    task: Task,
}

impl Stored {
    /// End the task `failed` because of `why`.
    fn fail(&mut self, why: &str) {
        self.task.status = Status::Failed;
        self.task.status_message = Some(why.to_owned());
        self.task.input_requests.clear();
        self.task.error = Some(serde_json::json!({"code": code::INTERNAL_ERROR, "message": why}));
        self.task.last_updated_at = now_iso();
        self.cancel = false;
        self.answers.clear();
    }
}

/// A task record as read: its bytes, parsed, and its lease (shared storage).
type Read = (Vec<u8>, Stored, Option<Lease>);

/// Why a task whose instance stopped (its lease ran out) is `failed`.
const LAPSED: &str =
    "the emcee instance running this task stopped (its lease ran out); call the tool again";

/// How many times an edit reads a record again that another instance changed
/// between its read and its write.
const EDIT_TRIES: usize = 16;

/// How to stop a running task (its Call actor stops, dropping the handler).
pub type Stop = Box<dyn Fn() + Send + Sync>;

/// A running task's handles: how to stop it, and who waits for which answer.
#[derive(Default)]
struct Live {
    cancel: Option<Arc<Stop>>,
    waiters: HashMap<String, (String, oneshot::Sender<Value>)>,
}

/// How a task ended.
#[derive(Debug)]
pub enum End {
    /// The call's reply: a result is `completed`, a JSON-RPC error `failed`.
    Replied(Reply),
    /// `tasks/cancel` stopped it.
    Cancelled,
}

/// Who a task belongs to: its share of the store (`limits.max_tasks_per_client`,
/// `limits.task_store_bytes_per_client`) is keyed by this.
///
/// 2026-07-28 has no session, so a client is what the transport knows of it: over
/// HTTP its address (IPv4 whole; IPv6 by its /64, the block one host is given, so
/// that walking through one's own addresses does not multiply the share; an
/// IPv4-mapped IPv6 address as IPv4). Behind a proxy that is the proxy's address:
/// every client of the proxy shares one share. Over stdio (and for a transport that
/// gives no address) it is the connection: the session.
#[derive(Debug, Clone)]
pub struct Client {
    key: Arc<str>,
    addr: Option<SocketAddr>,
}

impl Client {
    /// The client at `addr` (HTTP).
    pub fn address(addr: SocketAddr) -> Client {
        let key = match addr.ip() {
            IpAddr::V4(v4) => format!("ip {v4}"),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => format!("ip {v4}"),
                None => {
                    let s = v6.segments();
                    let net = Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                    format!("ip {net}/64")
                }
            },
        };
        Client {
            key: key.into(),
            addr: Some(addr),
        }
    }

    /// The client of connection (session) `id`: stdio, or a transport that gives
    /// no address.
    pub fn connection(id: &str) -> Client {
        Client {
            key: format!("connection {}", crate::telemetry::clip(id)).into(),
            addr: None,
        }
    }

    /// What its share is keyed by (`ip 192.0.2.7`, `ip 2001:db8::/64`,
    /// `connection …`).
    pub fn key(&self) -> &str {
        &self.key
    }
}

/// What the index knows of one task.
#[derive(Debug)]
struct Entry {
    client: Arc<str>,
    /// Its record's bytes (what a result being written reserved included).
    bytes: u64,
    expires_ms: u64,
    /// Its place in the order tasks ended (the eviction order); `None` while it runs.
    ended: Option<u64>,
}

/// One client's use of the store.
#[derive(Debug, Default)]
struct Share {
    count: usize,
    bytes: u64,
    /// Its ended tasks, oldest end first.
    ended: BTreeSet<(u64, Arc<str>)>,
}

/// The store in memory, one entry per record (no result, no task body): the counts
/// and bytes of the store and of each client, the tasks by expiry and the ended
/// ones by the order they ended. So expiry and eviction touch only the records they
/// remove, and never read one.
#[derive(Debug, Default)]
struct Index {
    tasks: HashMap<Arc<str>, Entry>,
    by_expiry: BTreeSet<(u64, Arc<str>)>,
    ended: BTreeSet<(u64, Arc<str>)>,
    clients: HashMap<Arc<str>, Share>,
    bytes: u64,
    next_end: u64,
    /// The records stored before this process (or before storage opened) are in.
    loaded: bool,
}

/// Which bound a task or a result does not fit in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Full {
    /// The client's share.
    Share,
    /// The whole store.
    Store,
}

impl Index {
    fn insert(&mut self, id: Arc<str>, entry: Entry) {
        self.remove(&id);
        self.by_expiry.insert((entry.expires_ms, id.clone()));
        if let Some(end) = entry.ended {
            self.ended.insert((end, id.clone()));
        }
        let share = self.clients.entry(entry.client.clone()).or_default();
        share.count += 1;
        share.bytes += entry.bytes;
        if let Some(end) = entry.ended {
            share.ended.insert((end, id.clone()));
        }
        self.bytes += entry.bytes;
        self.tasks.insert(id, entry);
    }

    fn remove(&mut self, id: &str) -> Option<Entry> {
        let (id, entry) = self.tasks.remove_entry(id)?;
        self.by_expiry.remove(&(entry.expires_ms, id.clone()));
        self.bytes = self.bytes.saturating_sub(entry.bytes);
        if let Some(end) = entry.ended {
            self.ended.remove(&(end, id.clone()));
        }
        if let Some(share) = self.clients.get_mut(&entry.client) {
            share.count = share.count.saturating_sub(1);
            share.bytes = share.bytes.saturating_sub(entry.bytes);
            if let Some(end) = entry.ended {
                share.ended.remove(&(end, id.clone()));
            }
            if share.count == 0 {
                self.clients.remove(&entry.client);
            }
        }
        Some(entry)
    }

    /// Task `id`'s record is now `bytes` long.
    fn set_bytes(&mut self, id: &str, bytes: u64) {
        let Some(entry) = self.tasks.get_mut(id) else {
            return;
        };
        let old = std::mem::replace(&mut entry.bytes, bytes);
        self.bytes = self.bytes.saturating_sub(old) + bytes;
        if let Some(share) = self.clients.get_mut(&entry.client) {
            share.bytes = share.bytes.saturating_sub(old) + bytes;
        }
    }

    /// Task `id` ended now: it is the newest in the eviction order.
    fn mark_ended(&mut self, id: &str) {
        let Some((id, entry)) = self.tasks.get_key_value(id) else {
            return;
        };
        if entry.ended.is_some() {
            return;
        }
        let (id, client) = (id.clone(), entry.client.clone());
        self.next_end += 1;
        let end = self.next_end;
        if let Some(entry) = self.tasks.get_mut(&id) {
            entry.ended = Some(end);
        }
        self.ended.insert((end, id.clone()));
        if let Some(share) = self.clients.get_mut(&client) {
            share.ended.insert((end, id));
        }
    }

    /// The ended tasks to evict so that `count` more tasks and `bytes` more bytes
    /// fit in `client`'s share (`share`: most tasks, most bytes) and in the store
    /// (`store`): the client's own oldest first, then the oldest of all. Nothing is
    /// removed; `Err` names the bound that running tasks fill.
    fn plan(
        &self,
        client: &str,
        count: usize,
        bytes: u64,
        share: (usize, u64),
        store: (usize, u64),
    ) -> Result<Vec<Arc<str>>, Full> {
        let fits = |n: usize, b: u64, (max_n, max_b): (usize, u64)| {
            n.saturating_add(count) <= max_n && b.saturating_add(bytes) <= max_b
        };
        let mut evict: Vec<Arc<str>> = Vec::new();
        let mut chosen = HashSet::new();
        let (mut n, mut b) = self
            .clients
            .get(client)
            .map_or((0, 0), |s| (s.count, s.bytes));
        if let Some(own) = self.clients.get(client) {
            for (_, id) in &own.ended {
                if fits(n, b, share) {
                    break;
                }
                let size = self.tasks.get(id).map_or(0, |e| e.bytes);
                n -= 1;
                b = b.saturating_sub(size);
                chosen.insert(id.clone());
                evict.push(id.clone());
            }
        }
        if !fits(n, b, share) {
            return Err(Full::Share);
        }
        let freed: u64 = evict
            .iter()
            .filter_map(|id| self.tasks.get(id).map(|e| e.bytes))
            .sum();
        let (mut n, mut b) = (
            self.tasks.len() - evict.len(),
            self.bytes.saturating_sub(freed),
        );
        for (_, id) in &self.ended {
            if fits(n, b, store) {
                break;
            }
            if chosen.contains(id) {
                continue;
            }
            let size = self.tasks.get(id).map_or(0, |e| e.bytes);
            n -= 1;
            b = b.saturating_sub(size);
            evict.push(id.clone());
        }
        if !fits(n, b, store) {
            return Err(Full::Store);
        }
        Ok(evict)
    }
}

/// The tasks of this process: records in storage, an index of them in memory
/// ([`Index`]), running ones' handles in memory.
pub struct Tasks {
    storage: Storage,
    log: slog::Logger,
    refusals: Option<Arc<Refusals>>,
    ttl: Duration,
    poll_interval: Duration,
    max_tasks: usize,
    max_bytes: u64,
    share_tasks: usize,
    share_bytes: u64,
    sweep_max: usize,
    /// This process among the instances sharing storage: the owner of the tasks it
    /// runs (16 random hex digits).
    instance: String,
    /// How long this process vouches for a task it runs between renewals (shared
    /// storage: `limits.task_lease_ms`).
    lease: Duration,
    /// The last lease renewal failed (logged once until one succeeds again).
    renewal_failing: std::sync::atomic::AtomicBool,
    /// Where the sweep's walk through the shared set of task ids is
    /// ([`Storage::prune_task_ids`]).
    prune_cursor: std::sync::atomic::AtomicU64,
    live: Mutex<HashMap<String, Live>>,
    /// Serializes read-modify-write of records (taken before `index`).
    edit: Mutex<()>,
    index: Mutex<Index>,
}

impl std::fmt::Debug for Tasks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tasks").finish_non_exhaustive()
    }
}

fn now_iso() -> String {
    time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

fn unknown(id: &str) -> RpcError {
    RpcError::invalid_params(format!(
        "unknown task {:?} (never created, past its ttlMs, or an ended task evicted to make room)",
        crate::telemetry::clip(id)
    ))
}

fn storage_error(e: crate::storage::StorageError) -> RpcError {
    RpcError::internal(format!("task storage: {e}"))
}

/// The -32021 of a request that lacks the extension.
pub fn missing_extension(what: &str) -> RpcError {
    RpcError::new(
        code::MISSING_CAPABILITY,
        format!("{what} needs the client capability extensions[\"{EXTENSION}\"], which the request did not declare"),
    )
    .with_data(serde_json::json!({"requiredCapabilities": {"extensions": {EXTENSION: {}}}}))
}

/// Whether the request's client capabilities declare the extension.
pub fn declared(capabilities: &Map<String, Value>) -> bool {
    capabilities
        .get("extensions")
        .and_then(|e| e.get(EXTENSION))
        .is_some()
}

/// A new instance id: 16 random hex digits (the process id and the clock if the
/// system has no randomness to give: unique enough among a fleet's instances).
fn instance_id() -> String {
    let mut raw = [0u8; 8];
    if getrandom::fill(&mut raw).is_err() {
        let mixed = u64::from(std::process::id()).rotate_left(40) ^ unix_ms();
        raw = mixed.to_be_bytes();
    }
    raw.iter().map(|b| format!("{b:02x}")).collect()
}

/// Lock `m`, also after a panic while it was held (the data stays consistent:
/// every change under these locks is applied whole or not at all).
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Tasks {
    /// The tasks kept in `storage`, bounded by `limits`; failures to record a task's
    /// end go to `log`.
    pub fn new(storage: Storage, limits: &Limits, log: slog::Logger) -> Tasks {
        Tasks {
            storage,
            log,
            refusals: None,
            ttl: limits.task_ttl,
            poll_interval: limits.task_poll_interval,
            max_tasks: limits.max_tasks,
            max_bytes: limits.task_store_bytes,
            share_tasks: limits.max_tasks_per_client,
            share_bytes: limits.task_store_bytes_per_client,
            sweep_max: limits.task_sweep_max,
            instance: instance_id(),
            lease: limits.task_lease,
            renewal_failing: std::sync::atomic::AtomicBool::new(false),
            prune_cursor: std::sync::atomic::AtomicU64::new(0),
            live: Mutex::default(),
            edit: Mutex::default(),
            index: Mutex::default(),
        }
    }

    /// Count and log refused task creations in `refusals`
    /// (`mcp_rejected_total{reason="task_share"|"task_store"}`).
    pub(crate) fn with_refusals(mut self, refusals: Arc<Refusals>) -> Tasks {
        self.refusals = Some(refusals);
        self
    }

    /// At start: forget expired tasks, and fail the ones an earlier process left
    /// running (nothing runs them any more); the index is built (every record read
    /// once, one at a time). Returns how many were failed.
    pub async fn recover(&self) -> Result<usize, RpcError> {
        let failed = self.load_index()?;
        if failed > 0 {
            self.storage.flush().await.map_err(storage_error)?;
        }
        Ok(failed)
    }

    /// Build the index from the records once storage is open (at start, or at the
    /// first sweep after a data directory opened late); records already indexed
    /// (created by this process) are kept as they are. Returns how many tasks left
    /// running by an earlier process were failed.
    fn load_index(&self) -> Result<usize, RpcError> {
        if lock(&self.index).loaded || !self.storage.is_open() {
            return Ok(0);
        }
        let now = unix_ms();
        let _edit = lock(&self.edit);
        let mut found: Vec<(Arc<str>, Entry)> = Vec::new();
        let (mut doomed, mut rewrite) = (Vec::new(), Vec::new());
        // Shared storage: running tasks another instance may still run, decided by
        // their lease once the scan is over.
        let mut leased = Vec::new();
        let shared = self.storage.tasks_shared();
        {
            let index = lock(&self.index);
            let live = lock(&self.live);
            self.storage
                .each_task(|id, record| {
                    if index.tasks.contains_key(id) {
                        return;
                    }
                    let Ok(mut stored) = serde_json::from_slice::<Stored>(record) else {
                        doomed.push(id.to_owned());
                        return;
                    };
                    if stored.expires_ms < now {
                        doomed.push(id.to_owned());
                        return;
                    }
                    let mut bytes = record.len() as u64;
                    if !stored.task.status.is_terminal() && !live.contains_key(id) {
                        if shared {
                            leased.push(id.to_owned());
                            return;
                        }
                        stored.fail("emcee stopped (a restart or a crash) while this task was running; call the tool again");
                        if let Ok(json) = serde_json::to_vec(&stored) {
                            bytes = json.len() as u64;
                            rewrite.push((id.to_owned(), json));
                        }
                    }
                    found.push((
                        Arc::from(id),
                        Entry {
                            client: Arc::from(stored.client.as_str()),
                            bytes,
                            expires_ms: stored.expires_ms,
                            ended: stored.task.status.is_terminal().then_some(0),
                        },
                    ));
                })
                .map_err(storage_error)?;
        }
        for id in &doomed {
            let _ = self.storage.delete_task(id);
        }
        let mut failed = rewrite.len();
        for (id, json) in &rewrite {
            self.storage.put_task(id, json).map_err(storage_error)?;
        }
        // Another instance's running task is its own to count: indexed here only
        // if its instance stopped (failed now, an ended task like the others).
        for id in leased {
            let Ok(Some((record, lease))) = self.storage.read_task(&id) else {
                continue;
            };
            let Ok(mut stored) = serde_json::from_slice::<Stored>(&record) else {
                continue;
            };
            let Some(bytes) = self.lapse_if_stopped(&id, &record, &mut stored, lease)? else {
                continue;
            };
            failed += 1;
            found.push((
                Arc::from(id.as_str()),
                Entry {
                    client: Arc::from(stored.client.as_str()),
                    bytes,
                    expires_ms: stored.expires_ms,
                    ended: Some(0),
                },
            ));
        }
        // Ended before this process: oldest first in the eviction order, by expiry
        // (the same TTL from creation for all).
        found.sort_by_key(|(_, e)| e.expires_ms);
        let mut index = lock(&self.index);
        for (id, mut entry) in found {
            if entry.ended.is_some() {
                index.next_end += 1;
                entry.ended = Some(index.next_end);
            }
            index.insert(id, entry);
        }
        index.loaded = true;
        Ok(failed)
    }

    /// Forget ended tasks past their TTL (run periodically): at most
    /// `limits.task_sweep_max` of them, the earliest expiry first, found in the
    /// index: no record is read, only the expired ones are deleted. A running task
    /// is kept until it ends. Returns how many were forgotten.
    pub fn expire(&self) -> usize {
        self.expire_at(unix_ms())
    }

    fn expire_at(&self, now: u64) -> usize {
        if let Err(e) = self.load_index() {
            slog::warn!(self.log, "task records not indexed"; "error" => e.message);
            return 0;
        }
        let _edit = lock(&self.edit);
        let doomed: Vec<Arc<str>> = {
            let mut index = lock(&self.index);
            let doomed: Vec<Arc<str>> = index
                .by_expiry
                .iter()
                .take_while(|(expires, _)| *expires < now)
                .filter(|(_, id)| index.tasks.get(id).is_some_and(|e| e.ended.is_some()))
                .take(self.sweep_max)
                .map(|(_, id)| id.clone())
                .collect();
            for id in &doomed {
                index.remove(id);
            }
            doomed
        };
        self.delete(&doomed);
        self.end_stopped();
        self.prune_ids();
        doomed.len()
    }

    /// Shared storage: one step (about `limits.task_sweep_max` ids) of the walk
    /// through the set of task ids, forgetting the ids of records that expired
    /// unindexed (an ended task whose instance stopped), so that the set does not
    /// grow with them.
    fn prune_ids(&self) {
        use std::sync::atomic::Ordering;
        let cursor = self.prune_cursor.load(Ordering::Relaxed);
        match self.storage.prune_task_ids(cursor, self.sweep_max) {
            Ok((next, _)) => self.prune_cursor.store(next, Ordering::Relaxed),
            Err(e) => slog::warn!(self.log, "task ids not pruned"; "error" => e.to_string()),
        }
    }

    /// Shared storage: fail at most `limits.task_sweep_max` running tasks whose
    /// instance stopped (their lease ran out), found by their leases, whichever
    /// instance created them. Returns how many were failed.
    fn end_stopped(&self) -> usize {
        let lapsed = match self.storage.lapsed_tasks(self.sweep_max) {
            Ok(lapsed) => lapsed,
            Err(e) => {
                slog::warn!(self.log, "task leases not read"; "error" => e.to_string());
                return 0;
            }
        };
        lapsed
            .iter()
            .filter(|id| match self.read(id) {
                Ok(Some((record, mut stored, lease))) => matches!(
                    self.lapse_if_stopped(id, &record, &mut stored, lease),
                    Ok(Some(_))
                ),
                _ => false,
            })
            .count()
    }

    /// Task `id`'s record as stored, parsed, with its lease (shared storage).
    fn read(&self, id: &str) -> Result<Option<Read>, RpcError> {
        let Some((record, lease)) = self.storage.read_task(id).map_err(storage_error)? else {
            return Ok(None);
        };
        let stored: Stored = serde_json::from_slice(&record).map_err(RpcError::internal)?;
        Ok(Some((record, stored, lease)))
    }

    /// Shared storage: end task `id` (read as `record`, parsed as `stored`, with
    /// `lease`) `failed` if no instance runs it any more: it has not ended, its
    /// lease ran out, and this process does not run it. Written only if the record
    /// did not change and the lease is still out, so it happens once. `Some`: it
    /// was failed now (`stored` is the end, of that many bytes); `None`: left as
    /// it is (`stored` then as read again if it changed meanwhile).
    fn lapse_if_stopped(
        &self,
        id: &str,
        record: &[u8],
        stored: &mut Stored,
        lease: Option<Lease>,
    ) -> Result<Option<u64>, RpcError> {
        if lease != Some(Lease::Lapsed)
            || stored.task.status.is_terminal()
            || lock(&self.live).contains_key(id)
        {
            return Ok(None);
        }
        let mut ended: Stored = serde_json::from_slice(record).map_err(RpcError::internal)?;
        ended.fail(LAPSED);
        let json = serde_json::to_vec(&ended).map_err(RpcError::internal)?;
        let swapped = self
            .storage
            .swap_task(id, record, &json, true, Some(ended.expires_ms))
            .map_err(storage_error)?;
        match swapped {
            Swapped::Done => {
                slog::warn!(self.log, "task failed: the instance running it stopped (its lease ran out)";
                    "task" => crate::telemetry::clip(id).into_owned(),
                    "owner" => ended.owner.clone().unwrap_or_default());
                let mut index = lock(&self.index);
                index.set_bytes(id, json.len() as u64);
                index.mark_ended(id);
                *stored = ended;
                Ok(Some(json.len() as u64))
            }
            Swapped::Gone => Err(unknown(id)),
            Swapped::Changed | Swapped::Held => {
                // Its owner renewed it, or an instance wrote it meanwhile.
                if let Some((_, now, _)) = self.read(id)? {
                    *stored = now;
                }
                Ok(None)
            }
        }
    }

    /// Delete the records of `ids` (already out of the index).
    fn delete(&self, ids: &[Arc<str>]) {
        for id in ids {
            if let Err(e) = self.storage.delete_task(id) {
                slog::warn!(self.log, "task record not deleted (it is forgotten at the next start)";
                    "task" => crate::telemetry::clip(id).into_owned(), "error" => e.to_string());
            }
        }
    }

    /// Task `id`'s record; with shared storage, failed first if the instance that
    /// ran it stopped ([`Tasks::lapse_if_stopped`]).
    fn load(&self, id: &str) -> Result<Stored, RpcError> {
        let (record, mut stored, lease) = self.read(id)?.ok_or_else(|| unknown(id))?;
        self.lapse_if_stopped(id, &record, &mut stored, lease)?;
        if stored.expires_ms < unix_ms() && stored.task.status.is_terminal() {
            return Err(unknown(id));
        }
        Ok(stored)
    }

    /// Change task `id` with `change` (`false`: nothing to change) and store it
    /// (not flushed). With shared storage the record is replaced only if no other
    /// instance changed it since it was read; else it is read and changed again.
    fn edit(
        &self,
        id: &str,
        mut change: impl FnMut(&mut Stored) -> bool,
    ) -> Result<Task, RpcError> {
        let _edit = lock(&self.edit);
        for _ in 0..EDIT_TRIES {
            let old = self
                .storage
                .get_task(id)
                .map_err(storage_error)?
                .ok_or_else(|| unknown(id))?;
            let mut stored: Stored = serde_json::from_slice(&old).map_err(RpcError::internal)?;
            if !change(&mut stored) {
                if stored.task.status.is_terminal() {
                    // Ended by another instance (its lease ran out meanwhile).
                    let mut index = lock(&self.index);
                    index.set_bytes(id, old.len() as u64);
                    index.mark_ended(id);
                }
                return Ok(stored.task);
            }
            stored.task.last_updated_at = now_iso();
            let json = serde_json::to_vec(&stored).map_err(RpcError::internal)?;
            let ended = stored.task.status.is_terminal();
            let swapped = self
                .storage
                .swap_task(id, &old, &json, false, ended.then_some(stored.expires_ms))
                .map_err(storage_error)?;
            match swapped {
                Swapped::Done => {
                    let mut index = lock(&self.index);
                    index.set_bytes(id, json.len() as u64);
                    if ended {
                        index.mark_ended(id);
                    }
                    return Ok(stored.task);
                }
                Swapped::Gone => return Err(unknown(id)),
                Swapped::Changed | Swapped::Held => continue,
            }
        }
        Err(RpcError::internal(format!(
            "task {:?}: its record changed {EDIT_TRIES} times while it was being written; try again",
            crate::telemetry::clip(id)
        )))
    }

    /// Create a task of `client`, durably: a `tasks/get` for it succeeds once this
    /// returns. Room is made by evicting ended tasks (the client's own oldest first,
    /// then the oldest of all); refused (-32000, counted and logged) when the
    /// client's running tasks fill its share (`limits.max_tasks_per_client`,
    /// `limits.task_store_bytes_per_client`) or running tasks fill the store
    /// (`limits.max_tasks`, `limits.task_store_bytes`).
    pub async fn create(&self, client: &Client) -> Result<Task, RpcError> {
        self.create_for(client, false).await
    }

    /// [`Tasks::create`]; `inline`: a refusal means the call runs without a task
    /// (the log line says so).
    async fn create_for(&self, client: &Client, inline: bool) -> Result<Task, RpcError> {
        self.load_index()?;
        let mut raw = [0u8; 16];
        getrandom::fill(&mut raw)
            .map_err(|e| RpcError::internal(format!("no randomness for a task id: {e}")))?;
        let task_id: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let now = now_iso();
        let stored = Stored {
            expires_ms: unix_ms().saturating_add(self.ttl.as_millis() as u64),
            client: client.key().to_owned(),
            owner: self.storage.tasks_shared().then(|| self.instance.clone()),
            cancel: false,
            answers: Map::new(),
            task: Task {
                task_id: task_id.clone(),
                status: Status::Working,
                status_message: None,
                created_at: now.clone(),
                last_updated_at: now,
                ttl_ms: self.ttl.as_millis() as u64,
                poll_interval_ms: self.poll_interval.as_millis() as u64,
                input_requests: Map::new(),
                result: None,
                error: None,
            },
        };
        let json = serde_json::to_vec(&stored).map_err(RpcError::internal)?;
        {
            let _edit = lock(&self.edit);
            let evicted = {
                let mut index = lock(&self.index);
                let planned = index.plan(
                    client.key(),
                    1,
                    json.len() as u64,
                    (self.share_tasks, self.share_bytes),
                    (self.max_tasks, self.max_bytes),
                );
                let evicted = match planned {
                    Ok(evicted) => evicted,
                    Err(full) => {
                        let share = index.clients.get(client.key()).map_or(0, |s| s.count);
                        let running = index.tasks.len() - index.ended.len();
                        drop(index);
                        return Err(self.refuse(full, client, share, running, inline));
                    }
                };
                for id in &evicted {
                    index.remove(id);
                }
                index.insert(
                    Arc::from(task_id.as_str()),
                    Entry {
                        client: client.key.clone(),
                        bytes: json.len() as u64,
                        expires_ms: stored.expires_ms,
                        ended: None,
                    },
                );
                evicted
            };
            self.delete(&evicted);
            // Live before it is written: it is this process's from its first read.
            lock(&self.live).insert(task_id.clone(), Live::default());
            if let Err(e) = self.storage.create_task(&task_id, &json, self.lease) {
                lock(&self.live).remove(&task_id);
                lock(&self.index).remove(&task_id);
                return Err(storage_error(e));
            }
        }
        if let Err(e) = self.storage.flush().await {
            lock(&self.live).remove(&task_id);
            return Err(storage_error(e));
        }
        Ok(stored.task)
    }

    /// The -32000 of a task creation that does not fit, counted and logged.
    fn refuse(
        &self,
        full: Full,
        client: &Client,
        share: usize,
        running: usize,
        inline: bool,
    ) -> RpcError {
        let (reason, message) = match full {
            Full::Share => (
                reason::TASK_SHARE,
                format!(
                    "this client's {share} tasks still running fill its share of the task store \
                     (limits.max_tasks_per_client {}, limits.task_store_bytes_per_client {}); \
                     retry once one ends",
                    self.share_tasks, self.share_bytes
                ),
            ),
            Full::Store => (
                reason::TASK_STORE,
                format!(
                    "{running} tasks still running fill the task store (limits.max_tasks {}, \
                     limits.task_store_bytes {}); retry once some end",
                    self.max_tasks, self.max_bytes
                ),
            ),
        };
        if let Some(refusals) = &self.refusals {
            let detail = if inline {
                format!("{message} (the call runs without a task)")
            } else {
                message.clone()
            };
            refusals.refuse(Refused {
                client: client.addr,
                ..Refused::new(reason, &detail)
            });
        }
        RpcError::new(code::SERVER_BUSY, message)
    }

    /// How to stop the Call running task `id`, for `tasks/cancel`.
    pub fn attach(&self, id: &str, stop: Stop) {
        if let Ok(mut live) = self.live.lock() {
            live.entry(id.to_owned()).or_default().cancel = Some(Arc::new(stop));
        }
    }

    /// `tasks/get`.
    pub fn get(&self, id: &str) -> Result<Task, RpcError> {
        Ok(self.load(id)?.task)
    }

    /// Park task `id` on question `key` (`method` with `params`) until `tasks/update`
    /// answers it; the answer.
    pub async fn ask(
        &self,
        id: &str,
        key: &str,
        method: &str,
        params: Value,
    ) -> Result<Value, RpcError> {
        let (tx, rx) = oneshot::channel();
        if let Ok(mut live) = self.live.lock() {
            live.entry(id.to_owned())
                .or_default()
                .waiters
                .insert(key.to_owned(), (method.to_owned(), tx));
        }
        let question = serde_json::json!({"method": method, "params": params});
        let task = self.edit(id, |stored| {
            if stored.task.status.is_terminal() {
                return false;
            }
            stored.task.status = Status::InputRequired;
            stored
                .task
                .input_requests
                .insert(key.to_owned(), question.clone());
            true
        })?;
        if task.status.is_terminal() {
            if let Ok(mut live) = self.live.lock() {
                if let Some(l) = live.get_mut(id) {
                    l.waiters.remove(key);
                }
            }
            return Err(RpcError::internal(
                "the task ended before its question was asked",
            ));
        }
        rx.await
            .map_err(|_| RpcError::internal("the task ended before the client answered"))
    }

    /// `tasks/update`: deliver the answers to outstanding questions (others are
    /// ignored); the task works again once none is outstanding.
    pub fn update(&self, id: &str, responses: Option<&Value>) -> Result<(), RpcError> {
        let stored = self.load(id)?;
        let responses = match responses {
            Some(Value::Object(map)) => map,
            _ => {
                return Err(RpcError::invalid_params(
                    "tasks/update needs inputResponses: an object of answers by key",
                ))
            }
        };
        let mut delivered = Vec::new();
        {
            let mut live = self
                .live
                .lock()
                .map_err(|_| RpcError::internal("task table poisoned"))?;
            if !live.contains_key(id) && self.storage.tasks_shared() {
                drop(live);
                return self.update_elsewhere(id, &stored, responses);
            }
            if let Some(task) = live.get_mut(id) {
                for (key, value) in responses {
                    let Some((method, _)) = task.waiters.get(key) else {
                        continue;
                    };
                    crate::mrtr::check_answer(key, method, value)?;
                    if let Some((_, tx)) = task.waiters.remove(key) {
                        let _ = tx.send(value.clone());
                        delivered.push(key.clone());
                    }
                }
            }
        }
        if !delivered.is_empty() {
            self.edit(id, |stored| {
                for key in &delivered {
                    stored.task.input_requests.remove(key);
                }
                if stored.task.input_requests.is_empty()
                    && stored.task.status == Status::InputRequired
                {
                    stored.task.status = Status::Working;
                }
                true
            })?;
        }
        Ok(())
    }

    /// `tasks/update` of a task another instance runs (shared storage): the answers
    /// to its outstanding questions, checked here, are written to its record for
    /// that instance to deliver when it next polls; the questions leave
    /// `inputRequests` at once (and the task is `working` again when none is
    /// left), as when the instance that runs it is asked. They count in the client's
    /// share of the store: answers that would make the record larger than
    /// `limits.task_store_bytes_per_client` are refused.
    fn update_elsewhere(
        &self,
        id: &str,
        stored: &Stored,
        responses: &Map<String, Value>,
    ) -> Result<(), RpcError> {
        if stored.task.status.is_terminal() {
            return Ok(());
        }
        let mut accepted = Map::new();
        for (key, value) in responses {
            let Some(question) = stored.task.input_requests.get(key) else {
                continue;
            };
            let method = question
                .get("method")
                .and_then(Value::as_str)
                .unwrap_or_default();
            crate::mrtr::check_answer(key, method, value)?;
            accepted.insert(key.clone(), value.clone());
        }
        if accepted.is_empty() {
            return Ok(());
        }
        let grown = serde_json::to_vec(stored)
            .map_err(RpcError::internal)?
            .len()
            + serde_json::to_vec(&accepted)
                .map_err(RpcError::internal)?
                .len();
        if grown as u64 > self.share_bytes {
            return Err(RpcError::invalid_params(format!(
                "these answers ({grown} bytes with the task) do not fit in a client's share of the task store (limits.task_store_bytes_per_client {})",
                self.share_bytes
            )));
        }
        self.edit(id, |stored| {
            if stored.task.status.is_terminal() {
                return false;
            }
            let mut changed = false;
            for (key, value) in &accepted {
                if stored.task.input_requests.remove(key).is_some() {
                    stored.answers.insert(key.clone(), value.clone());
                    changed = true;
                }
            }
            if changed
                && stored.task.input_requests.is_empty()
                && stored.task.status == Status::InputRequired
            {
                stored.task.status = Status::Working;
            }
            changed
        })?;
        Ok(())
    }

    /// `tasks/cancel`: stop the task if it runs (its Call reports `cancelled`);
    /// a task already ended is left as it is.
    ///
    /// With shared storage, a task this process does not run (or whose Call it
    /// has not yet been handed) is marked in its record: the instance that runs it
    /// stops it when it next polls (every third of `limits.task_lease_ms`, or
    /// `limits.task_poll_interval_ms` if shorter).
    pub fn cancel(&self, id: &str) -> Result<(), RpcError> {
        let stored = self.load(id)?;
        if stored.task.status.is_terminal() {
            return Ok(());
        }
        if self.stop(id) || !self.storage.tasks_shared() {
            return Ok(());
        }
        self.edit(id, |stored| {
            if stored.task.status.is_terminal() || stored.cancel {
                return false;
            }
            stored.cancel = true;
            true
        })?;
        Ok(())
    }

    /// Stop task `id`'s Call if this process runs it and has its handle.
    fn stop(&self, id: &str) -> bool {
        let cancel = self
            .live
            .lock()
            .ok()
            .and_then(|live| live.get(id).and_then(|l| l.cancel.clone()));
        match cancel {
            Some(stop) => {
                stop();
                true
            }
            None => false,
        }
    }

    /// With shared storage, how often [`Tasks::heartbeat`] should run: every
    /// third of `limits.task_lease_ms`, or every `limits.task_poll_interval_ms`
    /// if shorter (never more often than every 10 ms); `None` with sled (one process runs every
    /// task: nothing to renew or poll).
    pub fn heartbeat_every(&self) -> Option<Duration> {
        self.storage.tasks_shared().then(|| {
            (self.lease / 3)
                .min(self.poll_interval)
                .max(Duration::from_millis(10))
        })
    }

    /// Shared storage: renew the leases of the tasks this process runs, and act on
    /// what other instances wrote to their records, in one round trip: a
    /// cancellation stops the task, answers reach the handler that waits for them,
    /// and a task ended elsewhere (its lease ran out while this process did not
    /// renew it) or gone is stopped. One lease write and one record read per
    /// running task.
    pub async fn heartbeat(&self) {
        let ids: Vec<String> = lock(&self.live).keys().cloned().collect();
        if ids.is_empty() {
            return;
        }
        use std::sync::atomic::Ordering;
        let records = match self.storage.renew_tasks(&ids, self.lease).await {
            Ok(records) => records,
            Err(e) => {
                // Once per failure streak: storage logs its own failure too.
                if !self.renewal_failing.swap(true, Ordering::Relaxed) {
                    slog::warn!(self.log, "task leases not renewed: other instances fail these tasks once their lease runs out";
                        "tasks" => ids.len(), "lease_ms" => self.lease.as_millis() as u64, "error" => e.to_string());
                }
                return;
            }
        };
        if self.renewal_failing.swap(false, Ordering::Relaxed) {
            slog::info!(self.log, "task leases renewed again"; "tasks" => ids.len());
        }
        for (id, record) in ids.iter().zip(records) {
            let Some(stored) = record.and_then(|r| serde_json::from_slice::<Stored>(&r).ok())
            else {
                self.stop(id);
                continue;
            };
            if stored.cancel || stored.task.status.is_terminal() {
                self.stop(id);
            } else if !stored.answers.is_empty() {
                self.deliver(id, &stored.answers);
            }
        }
    }

    /// Hand `answers` (written to task `id`'s record by another instance) to the
    /// handler's waiting questions, and take them out of the record.
    fn deliver(&self, id: &str, answers: &Map<String, Value>) {
        let mut delivered = Vec::new();
        if let Ok(mut live) = self.live.lock() {
            if let Some(task) = live.get_mut(id) {
                for (key, value) in answers {
                    if let Some((_, tx)) = task.waiters.remove(key) {
                        let _ = tx.send(value.clone());
                        delivered.push(key.clone());
                    }
                }
            }
        }
        let outcome = self.edit(id, |stored| {
            for key in answers.keys() {
                stored.answers.remove(key);
            }
            for key in &delivered {
                stored.task.input_requests.remove(key);
            }
            if stored.task.input_requests.is_empty() && stored.task.status == Status::InputRequired
            {
                stored.task.status = Status::Working;
            }
            true
        });
        if let Err(e) = outcome {
            slog::warn!(self.log, "task answers not taken out of its record";
                "task" => crate::telemetry::clip(id).into_owned(), "error" => e.message);
        }
    }

    /// Make room for `extra` more bytes of task `id` (its result): ended tasks are
    /// evicted (its client's oldest first, then the oldest of all) and the bytes
    /// reserved in the index until the record is written. `Err`: the bound that
    /// running tasks fill.
    fn reserve(&self, id: &str, extra: u64) -> Result<(), Full> {
        let _edit = lock(&self.edit);
        let evicted = {
            let mut index = lock(&self.index);
            let Some((client, bytes)) = index.tasks.get(id).map(|e| (e.client.clone(), e.bytes))
            else {
                return Ok(());
            };
            let evicted = index.plan(
                &client,
                0,
                extra,
                (self.share_tasks, self.share_bytes),
                (self.max_tasks, self.max_bytes),
            )?;
            for id in &evicted {
                index.remove(id);
            }
            index.set_bytes(id, bytes.saturating_add(extra));
            evicted
        };
        self.delete(&evicted);
        Ok(())
    }

    /// Record how task `id` ended (durable); its questions are dropped. A result
    /// that does not fit (after evicting ended tasks) fails the task, naming the
    /// bound.
    pub async fn finish(&self, id: &str, end: End) {
        lock(&self.live).remove(id);
        let full = match &end {
            End::Replied(Ok(raw)) => self.reserve(id, raw.json().len() as u64).err(),
            _ => None,
        };
        // What the record becomes: status, message, result, error (applied again
        // if another instance wrote the record meanwhile).
        let (status, message, result, error) = match end {
            End::Cancelled => (
                Status::Cancelled,
                Some("cancelled by tasks/cancel".to_owned()),
                None,
                None,
            ),
            End::Replied(Ok(raw)) if full.is_some() => {
                let bound = match full {
                    Some(Full::Share) => {
                        "this client's share of the task store (limits.task_store_bytes_per_client)"
                    }
                    _ => "the task store (limits.task_store_bytes)",
                };
                let why = format!(
                    "the result ({} bytes) does not fit in what running tasks leave of {bound}",
                    raw.json().len()
                );
                let error = serde_json::json!({"code": code::INTERNAL_ERROR, "message": why});
                (Status::Failed, Some(why), None, Some(error))
            }
            End::Replied(Ok(raw)) => (
                Status::Completed,
                None,
                serde_json::from_str(raw.json()).ok(),
                None,
            ),
            End::Replied(Err(e)) => (
                Status::Failed,
                Some(e.message.clone()),
                None,
                serde_json::to_value(&e).ok(),
            ),
        };
        let outcome = self
            .edit(id, |stored| {
                // Ended elsewhere (its lease ran out while this process did not
                // renew it): that end stands.
                if stored.task.status.is_terminal() {
                    return false;
                }
                let task = &mut stored.task;
                task.input_requests.clear();
                task.status = status;
                if message.is_some() {
                    task.status_message.clone_from(&message);
                }
                task.result.clone_from(&result);
                task.error.clone_from(&error);
                stored.cancel = false;
                stored.answers.clear();
                true
            })
            .map(|_| ());
        let outcome = match outcome {
            Ok(()) => self.storage.flush().await.map_err(storage_error),
            Err(e) => Err(e),
        };
        if let Err(e) = outcome {
            slog::error!(self.log, "task end not recorded"; "task" => crate::telemetry::clip(id).into_owned(), "error" => e.message);
        }
    }
}

/// The answer to the call that created `task`: `resultType: "task"` and the task.
pub fn created(task: &Task) -> Reply {
    let mut value = serde_json::to_value(task).map_err(RpcError::internal)?;
    if let Value::Object(map) = &mut value {
        let mut with_type = Map::new();
        with_type.insert("resultType".to_owned(), "task".into());
        with_type.extend(std::mem::take(map));
        *map = with_type;
    }
    crate::protocol::reply(&value)
}

/// A tool call's link to the tasks: whether it may become one, and the channel its
/// Call learns through that it did.
pub struct TaskSlot {
    pub(crate) tasks: Arc<Tasks>,
    pub(crate) support: TaskSupport,
    /// The request declared the extension.
    pub(crate) declared: bool,
    /// To the Call: the task's id and the answer to send now.
    pub(crate) begin: Mutex<Option<futures::channel::oneshot::Sender<(String, Reply)>>>,
    pub(crate) id: std::sync::OnceLock<String>,
    pub(crate) next_key: std::sync::atomic::AtomicUsize,
    /// Whose share the task counts in.
    pub(crate) client: Client,
}

impl std::fmt::Debug for TaskSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskSlot")
            .field("id", &self.id.get())
            .finish_non_exhaustive()
    }
}

impl TaskSlot {
    /// A slot for a call of a tool with `support` by `client`, from a request that
    /// `declared` the extension or not.
    pub fn new(
        tasks: Arc<Tasks>,
        support: TaskSupport,
        declared: bool,
        client: Client,
    ) -> TaskSlot {
        TaskSlot {
            tasks,
            support,
            declared,
            begin: Mutex::default(),
            id: std::sync::OnceLock::new(),
            next_key: std::sync::atomic::AtomicUsize::new(0),
            client,
        }
    }

    /// Create the call's task. `Ok(None)`: the store refused it (-32000: its
    /// client's share, or the whole store, is full of running tasks) and the tool
    /// may also run without a task ([`TaskSupport::Optional`]): the call goes on as
    /// an ordinary one, answered with its result (the extension lets a server
    /// decide per request). A tool that only runs as a task gets the -32000. Either
    /// way the refusal is counted and logged.
    pub async fn create(&self) -> Result<Option<Task>, RpcError> {
        let inline = self.support == TaskSupport::Optional;
        match self.tasks.create_for(&self.client, inline).await {
            Ok(task) => Ok(Some(task)),
            Err(e) if inline && e.code == code::SERVER_BUSY => Ok(None),
            Err(e) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tasks(limits: Limits) -> (Arc<Tasks>, Storage) {
        let storage = Storage::temporary().unwrap();
        let log = slog::Logger::root(slog::Discard, slog::o!());
        (Arc::new(Tasks::new(storage.clone(), &limits, log)), storage)
    }

    /// A client at 127.0.0.1.
    fn here() -> Client {
        Client::address("127.0.0.1:40000".parse().unwrap())
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        actix_rt::System::new().block_on(f)
    }

    #[test]
    fn a_task_is_stored_before_it_is_announced_and_ends_with_its_reply() {
        let (tasks, _) = tasks(Limits::default());
        block_on(async {
            let task = tasks.create(&here()).await.unwrap();
            assert_eq!(task.task_id.len(), 32, "128 bits in hex");
            assert_eq!(tasks.get(&task.task_id).unwrap().status, Status::Working);
            let v: Value = serde_json::from_str(created(&task).unwrap().json()).unwrap();
            assert_eq!(v["resultType"], "task");
            assert_eq!(v["taskId"], task.task_id.as_str());
            assert!(v.get("result").is_none() && v.get("requestState").is_none());
            let result = crate::protocol::reply(&serde_json::json!({"content": []}));
            tasks.finish(&task.task_id, End::Replied(result)).await;
            let done = tasks.get(&task.task_id).unwrap();
            assert_eq!(done.status, Status::Completed);
            assert_eq!(done.result, Some(serde_json::json!({"content": []})));
            let failed = tasks.create(&here()).await.unwrap();
            tasks
                .finish(
                    &failed.task_id,
                    End::Replied(Err(RpcError::internal("boom"))),
                )
                .await;
            let failed = tasks.get(&failed.task_id).unwrap();
            assert_eq!(failed.status, Status::Failed);
            assert_eq!(failed.error.unwrap()["code"], -32603);
            assert_eq!(tasks.get("nope").unwrap_err().code, -32602);
        });
    }

    /// With sled one process runs every task: no lease to renew, no record to
    /// poll, and records carry none of a fleet's fields (a `tasks/cancel` with no
    /// Call to stop writes nothing, as before leases existed).
    #[test]
    fn sled_tasks_have_no_lease_and_no_fleet_fields() {
        let (tasks, storage) = tasks(Limits::default());
        assert_eq!(tasks.heartbeat_every(), None);
        block_on(async {
            let id = tasks.create(&here()).await.unwrap().task_id;
            tasks.cancel(&id).unwrap();
            let record = String::from_utf8(storage.get_task(&id).unwrap().unwrap()).unwrap();
            for key in ["owner", "cancel", "answers"] {
                assert!(!record.contains(&format!("\"{key}\"")), "{record}");
            }
            assert_eq!(tasks.get(&id).unwrap().status, Status::Working);
        });
    }

    #[test]
    fn questions_park_a_task_until_tasks_update_answers_them() {
        let (tasks, _) = tasks(Limits::default());
        block_on(async {
            let id = tasks.create(&here()).await.unwrap().task_id;
            let asking = {
                let (tasks, id) = (tasks.clone(), id.clone());
                actix_rt::spawn(async move {
                    let a = tasks.ask(&id, "a", "elicitation/create", serde_json::json!({}));
                    let b = tasks.ask(&id, "b", "roots/list", serde_json::json!({}));
                    futures::join!(a, b)
                })
            };
            tokio::time::sleep(Duration::from_millis(20)).await;
            let waiting = tasks.get(&id).unwrap();
            assert_eq!(waiting.status, Status::InputRequired);
            assert_eq!(waiting.input_requests.len(), 2);
            // A partial answer: one question left; a malformed one refused.
            let bad = serde_json::json!({"b": 7});
            assert_eq!(tasks.update(&id, Some(&bad)).unwrap_err().code, -32602);
            let one = serde_json::json!({"a": {"action": "accept"}, "unknown": 1});
            tasks.update(&id, Some(&one)).unwrap();
            let waiting = tasks.get(&id).unwrap();
            assert_eq!(waiting.status, Status::InputRequired);
            assert!(waiting.input_requests.contains_key("b"));
            assert!(!waiting.input_requests.contains_key("a"));
            let two = serde_json::json!({"b": {"roots": []}});
            tasks.update(&id, Some(&two)).unwrap();
            let (a, b) = asking.await.unwrap();
            assert_eq!(a.unwrap()["action"], "accept");
            assert_eq!(b.unwrap()["roots"], serde_json::json!([]));
            assert_eq!(tasks.get(&id).unwrap().status, Status::Working);
        });
    }

    #[test]
    fn running_tasks_fail_at_the_next_start_and_the_store_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let limits = Limits {
            max_tasks: 2,
            ..Limits::default()
        };
        let id = {
            let storage = Storage::open(dir.path(), 1 << 20).unwrap();
            let tasks = Tasks::new(
                storage,
                &limits,
                slog::Logger::root(slog::Discard, slog::o!()),
            );
            block_on(async {
                let id = tasks.create(&here()).await.unwrap().task_id;
                tasks.create(&here()).await.unwrap();
                assert_eq!(
                    tasks.create(&here()).await.unwrap_err().code,
                    -32000,
                    "limits.max_tasks"
                );
                id
            })
        };
        let storage = Storage::open(dir.path(), 1 << 20).unwrap();
        let tasks = Tasks::new(
            storage,
            &limits,
            slog::Logger::root(slog::Discard, slog::o!()),
        );
        assert_eq!(block_on(tasks.recover()).unwrap(), 2);
        let failed = tasks.get(&id).unwrap();
        assert_eq!(failed.status, Status::Failed);
        assert!(failed.status_message.unwrap().contains("stopped"));
    }

    /// Records written by another `Tasks` (a data directory opened after start)
    /// are indexed at the next expiry sweep (read once), the ones it left running
    /// failed; they make room when they are ended.
    #[test]
    fn the_expiry_sweep_indexes_records_it_did_not_write() {
        let storage = Storage::temporary().unwrap();
        let limits = Limits {
            max_tasks: 2,
            ..Limits::default()
        };
        let quiet = || slog::Logger::root(slog::Discard, slog::o!());
        let earlier = Tasks::new(storage.clone(), &limits, quiet());
        let (first, second) = block_on(async {
            let first = earlier.create(&here()).await.unwrap().task_id;
            let second = earlier.create(&here()).await.unwrap().task_id;
            (first, second)
        });
        let tasks = Tasks::new(storage, &limits, quiet());
        assert_eq!(tasks.expire(), 0);
        {
            let index = lock(&tasks.index);
            assert_eq!(index.tasks.len(), 2);
            assert_eq!(index.ended.len(), 2, "failed: nothing runs them");
            assert!(index.bytes > 0 && index.bytes < 10_000, "{}", index.bytes);
        }
        assert_eq!(tasks.get(&first).unwrap().status, Status::Failed);
        block_on(tasks.create(&here())).unwrap();
        // Both were failed in the same sweep, so either may be the older end: one
        // of them, and only one, made room.
        let evicted = [&first, &second]
            .iter()
            .filter(|id| tasks.get(id).is_err_and(|e| e.code == -32602))
            .count();
        assert_eq!(evicted, 1, "one ended task evicted");
    }

    /// `limits.task_store_bytes`: a result that does not fit fails its task, and a
    /// full store refuses new tasks.
    #[test]
    fn the_task_store_is_bounded_in_bytes() {
        let (tasks, _) = tasks(Limits {
            task_store_bytes: 1_000,
            ..Limits::default()
        });
        block_on(async {
            let id = tasks.create(&here()).await.unwrap().task_id;
            let big = crate::protocol::reply(&serde_json::json!({"text": "x".repeat(2_000)}));
            tasks.finish(&id, End::Replied(big)).await;
            let failed = tasks.get(&id).unwrap();
            assert_eq!(failed.status, Status::Failed);
            let why = failed.error.unwrap()["message"]
                .as_str()
                .unwrap()
                .to_owned();
            assert!(why.contains("limits.task_store_bytes"), "{why}");
            // Ended results make room for new tasks: never refused, the oldest gone.
            let mut ids = Vec::new();
            for _ in 0..20 {
                let task = tasks.create(&here()).await.unwrap();
                let small = crate::protocol::reply(&serde_json::json!({"text": "y".repeat(100)}));
                tasks.finish(&task.task_id, End::Replied(small)).await;
                ids.push(task.task_id);
                assert!(lock(&tasks.index).bytes <= 1_000);
            }
            assert_eq!(tasks.get(&ids[0]).unwrap_err().code, -32602, "evicted");
            assert_eq!(tasks.get(&ids[19]).unwrap().status, Status::Completed);
            // Running tasks are never evicted: once they fill it, creation is refused.
            let mut refused = None;
            for _ in 0..20 {
                if let Err(e) = tasks.create(&here()).await {
                    refused = Some(e);
                    break;
                }
            }
            let refused = refused.expect("running tasks filled the store");
            assert_eq!(refused.code, -32000);
            assert!(
                refused.message.contains("limits.task_store_bytes"),
                "{refused:?}"
            );
        });
    }

    fn metrics_and_refusals(
        limits: &Limits,
    ) -> (crate::telemetry::metrics::Metrics, Arc<Refusals>) {
        let metrics = crate::telemetry::metrics::Metrics::new();
        let log = slog::Logger::root(slog::Discard, slog::o!());
        let refusals = Arc::new(Refusals::new(&metrics, limits, log));
        (metrics, refusals)
    }

    /// Issue 18 item 5: one client's running tasks fill only its own share; the
    /// refusal is at the share's edge, counted, and other clients go on. Its ended
    /// tasks make room for its next ones (its own oldest first).
    #[test]
    fn a_client_past_its_share_is_refused_and_others_are_not() {
        let limits = Limits {
            max_tasks_per_client: 2,
            ..Limits::default()
        };
        let (metrics, refusals) = metrics_and_refusals(&limits);
        let storage = Storage::temporary().unwrap();
        let log = slog::Logger::root(slog::Discard, slog::o!());
        let tasks = Tasks::new(storage, &limits, log).with_refusals(refusals);
        let at = |a: &str| Client::address(a.parse().unwrap());
        let shared = || metrics.rejected.with_label_values(&["task_share"]).get();
        block_on(async {
            let first = tasks.create(&at("192.0.2.7:1000")).await.unwrap().task_id;
            // Another connection of the same address is the same client.
            tasks.create(&at("192.0.2.7:1001")).await.unwrap();
            assert_eq!(shared(), 0);
            let refused = tasks.create(&at("192.0.2.7:1002")).await.unwrap_err();
            assert_eq!(refused.code, -32000);
            assert!(
                refused.message.contains("limits.max_tasks_per_client"),
                "{refused:?}"
            );
            assert_eq!(shared(), 1, "counted");
            // Another client is not refused; an IPv4-mapped address is the IPv4 one.
            tasks.create(&at("192.0.2.8:1000")).await.unwrap();
            let mapped = at("[::ffff:192.0.2.7]:5");
            assert_eq!(mapped.key(), at("192.0.2.7:1").key());
            assert!(tasks.create(&mapped).await.is_err());
            // IPv6: one /64 is one client.
            tasks.create(&at("[2001:db8::1]:1")).await.unwrap();
            tasks.create(&at("[2001:db8::2]:1")).await.unwrap();
            assert!(tasks.create(&at("[2001:db8::3]:1")).await.is_err());
            tasks.create(&at("[2001:db8:0:1::1]:1")).await.unwrap();
            assert_eq!(shared(), 3);
            // An ended task of the client makes room for its next one, and is gone.
            let done = crate::protocol::reply(&serde_json::json!({"content": []}));
            tasks.finish(&first, End::Replied(done)).await;
            tasks.create(&at("192.0.2.7:1003")).await.unwrap();
            assert_eq!(tasks.get(&first).unwrap_err().code, -32602);
            assert_eq!(shared(), 3);
        });
    }

    /// The share in bytes: a result larger than what the client's running tasks
    /// leave of it fails its task, naming the limit; ended tasks make room first.
    #[test]
    fn a_result_past_the_clients_share_of_bytes_fails_its_task() {
        let (tasks, _) = tasks(Limits {
            task_store_bytes_per_client: 2_000,
            ..Limits::default()
        });
        block_on(async {
            let small = || crate::protocol::reply(&serde_json::json!({"text": "y".repeat(900)}));
            let a = tasks.create(&here()).await.unwrap().task_id;
            tasks.finish(&a, End::Replied(small())).await;
            let b = tasks.create(&here()).await.unwrap().task_id;
            tasks.finish(&b, End::Replied(small())).await;
            assert_eq!(tasks.get(&a).unwrap_err().code, -32602, "evicted for b");
            let big = crate::protocol::reply(&serde_json::json!({"text": "x".repeat(3_000)}));
            let c = tasks.create(&here()).await.unwrap().task_id;
            tasks.finish(&c, End::Replied(big)).await;
            let failed = tasks.get(&c).unwrap();
            assert_eq!(failed.status, Status::Failed);
            assert!(failed
                .status_message
                .unwrap()
                .contains("limits.task_store_bytes_per_client"),);
            // Another client's results were not touched.
            let other = Client::address("192.0.2.9:1".parse().unwrap());
            let d = tasks.create(&other).await.unwrap().task_id;
            tasks.finish(&d, End::Replied(small())).await;
            assert_eq!(tasks.get(&d).unwrap().status, Status::Completed);
        });
    }

    /// Issue 18 item 5: a full store evicts the task that ended first (not the one
    /// created first), and never a running one.
    #[test]
    fn ended_tasks_are_evicted_oldest_end_first_and_running_ones_never() {
        let (tasks, _) = tasks(Limits {
            max_tasks: 3,
            ..Limits::default()
        });
        let done = || crate::protocol::reply(&serde_json::json!({"content": []}));
        block_on(async {
            let t1 = tasks.create(&here()).await.unwrap().task_id;
            let t2 = tasks.create(&here()).await.unwrap().task_id;
            let t3 = tasks.create(&here()).await.unwrap().task_id;
            tasks.finish(&t2, End::Replied(done())).await;
            tasks.finish(&t1, End::Replied(done())).await;
            tasks.create(&here()).await.unwrap();
            assert_eq!(tasks.get(&t2).unwrap_err().code, -32602, "ended first");
            assert_eq!(tasks.get(&t1).unwrap().status, Status::Completed);
            tasks.create(&here()).await.unwrap();
            assert_eq!(tasks.get(&t1).unwrap_err().code, -32602);
            // Three running: nothing to evict.
            let refused = tasks.create(&here()).await.unwrap_err();
            assert_eq!(refused.code, -32000);
            assert!(refused.message.contains("limits.max_tasks"), "{refused:?}");
            assert_eq!(tasks.get(&t3).unwrap().status, Status::Working);
        });
    }

    /// Issue 18 item 5: the sweep finds what expired in the index: it reads no
    /// record (counted by storage, not timed), deletes only expired ended tasks, at
    /// most `limits.task_sweep_max` per sweep, and keeps a running one.
    #[test]
    fn the_expiry_sweep_touches_only_expired_records() {
        let storage = Storage::temporary().unwrap();
        let limits = Limits {
            task_sweep_max: 2,
            ..Limits::default()
        };
        let log = slog::Logger::root(slog::Discard, slog::o!());
        let mut tasks = Tasks::new(storage.clone(), &limits, log);
        let done = || crate::protocol::reply(&serde_json::json!({"content": []}));
        let (short, long) = block_on(async {
            tasks.ttl = Duration::ZERO;
            let mut short = Vec::new();
            for _ in 0..4 {
                short.push(tasks.create(&here()).await.unwrap().task_id);
            }
            for id in &short[..3] {
                tasks.finish(id, End::Replied(done())).await;
            }
            tasks.ttl = Duration::from_secs(3600);
            let mut long = Vec::new();
            for _ in 0..6 {
                let id = tasks.create(&here()).await.unwrap().task_id;
                tasks.finish(&id, End::Replied(done())).await;
                long.push(id);
            }
            (short, long)
        });
        let later = unix_ms() + 1_000;
        let reads = storage.task_reads();
        assert_eq!(tasks.expire_at(later), 2, "at most task_sweep_max");
        assert_eq!(tasks.expire_at(later), 1);
        assert_eq!(tasks.expire_at(later), 0, "the running one is kept");
        assert_eq!(storage.task_reads(), reads, "no record read");
        let stored = storage.all_tasks().unwrap();
        assert_eq!(stored.len(), 7, "6 unexpired + the running one");
        assert!(stored.iter().all(|(id, _)| !short[..3].contains(id)));
        assert!(long.iter().all(|id| stored.iter().any(|(s, _)| s == id)));
        // Once it ends, the running one goes at the next sweep.
        block_on(tasks.finish(&short[3], End::Replied(done())));
        assert_eq!(tasks.expire_at(later), 1);
        assert_eq!(lock(&tasks.index).tasks.len(), 6);
    }
}
