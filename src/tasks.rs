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
//! Bounds: `limits.max_tasks` records and `limits.task_store_bytes` of them; a task
//! runs at most `limits.task_timeout_ms`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::channel::oneshot;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::config::Limits;
use crate::protocol::Reply;
use crate::protocol::{code, RpcError};
use crate::storage::{unix_ms, Storage};

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
    task: Task,
}

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

/// The tasks of this process: records in storage, running ones' handles in memory.
pub struct Tasks {
    storage: Storage,
    log: slog::Logger,
    ttl: Duration,
    poll_interval: Duration,
    max_tasks: usize,
    max_bytes: u64,
    live: Mutex<HashMap<String, Live>>,
    /// Serializes read-modify-write of records.
    edit: Mutex<()>,
    bytes: AtomicU64,
    /// Records kept.
    count: AtomicUsize,
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
        "unknown task {:?} (never created, or past its ttlMs)",
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

impl Tasks {
    /// The tasks kept in `storage`, bounded by `limits`; failures to record a task's
    /// end go to `log`.
    pub fn new(storage: Storage, limits: &Limits, log: slog::Logger) -> Tasks {
        Tasks {
            storage,
            log,
            ttl: limits.task_ttl,
            poll_interval: limits.task_poll_interval,
            max_tasks: limits.max_tasks,
            max_bytes: limits.task_store_bytes,
            live: Mutex::default(),
            edit: Mutex::default(),
            bytes: AtomicU64::new(0),
            count: AtomicUsize::new(0),
        }
    }

    /// At start: forget expired tasks, and fail the ones an earlier process left
    /// running (nothing runs them any more). Returns how many were failed.
    pub async fn recover(&self) -> Result<usize, RpcError> {
        let now = unix_ms();
        let (mut failed, mut kept, mut bytes) = (0, 0, 0);
        for (id, record) in self.storage.all_tasks().map_err(storage_error)? {
            let Ok(mut stored) = serde_json::from_slice::<Stored>(&record) else {
                let _ = self.storage.delete_task(&id);
                continue;
            };
            if stored.expires_ms < now {
                let _ = self.storage.delete_task(&id);
                continue;
            }
            if !stored.task.status.is_terminal() {
                let why = "emcee stopped (a restart or a crash) while this task was running; call the tool again";
                stored.task.status = Status::Failed;
                stored.task.status_message = Some(why.to_owned());
                stored.task.input_requests.clear();
                stored.task.error =
                    Some(serde_json::json!({"code": code::INTERNAL_ERROR, "message": why}));
                stored.task.last_updated_at = now_iso();
                let json = serde_json::to_vec(&stored).map_err(RpcError::internal)?;
                self.storage.put_task(&id, &json).map_err(storage_error)?;
                failed += 1;
                bytes += json.len() as u64;
            } else {
                bytes += record.len() as u64;
            }
            kept += 1;
        }
        self.bytes.store(bytes, Ordering::Relaxed);
        self.count.store(kept, Ordering::Relaxed);
        if failed > 0 {
            self.storage.flush().await.map_err(storage_error)?;
        }
        Ok(failed)
    }

    /// Forget tasks past their TTL (run periodically), and count again what is kept
    /// (so the counts also cover records of a data directory opened after start).
    /// Returns how many were forgotten.
    pub fn expire(&self) -> usize {
        let now = unix_ms();
        let _edit = self.edit.lock();
        let Ok(all) = self.storage.all_tasks() else {
            return 0;
        };
        let (mut removed, mut kept, mut bytes) = (0, 0, 0);
        for (id, record) in all {
            let expired = serde_json::from_slice::<Stored>(&record)
                .map_or(true, |s| s.expires_ms < now && s.task.status.is_terminal());
            if expired && self.storage.delete_task(&id).is_ok() {
                removed += 1;
            } else {
                kept += 1;
                bytes += record.len() as u64;
            }
        }
        self.count.store(kept, Ordering::Relaxed);
        self.bytes.store(bytes, Ordering::Relaxed);
        removed
    }

    fn load(&self, id: &str) -> Result<Stored, RpcError> {
        let record = self
            .storage
            .get_task(id)
            .map_err(storage_error)?
            .ok_or_else(|| unknown(id))?;
        let stored: Stored = serde_json::from_slice(&record).map_err(RpcError::internal)?;
        if stored.expires_ms < unix_ms() && stored.task.status.is_terminal() {
            return Err(unknown(id));
        }
        Ok(stored)
    }

    /// Change task `id` with `change` and store it (not flushed).
    fn edit(&self, id: &str, change: impl FnOnce(&mut Task)) -> Result<Task, RpcError> {
        let _edit = self.edit.lock();
        let old = self
            .storage
            .get_task(id)
            .map_err(storage_error)?
            .ok_or_else(|| unknown(id))?;
        let mut stored: Stored = serde_json::from_slice(&old).map_err(RpcError::internal)?;
        change(&mut stored.task);
        stored.task.last_updated_at = now_iso();
        let json = serde_json::to_vec(&stored).map_err(RpcError::internal)?;
        self.storage.put_task(id, &json).map_err(storage_error)?;
        self.bytes.fetch_add(json.len() as u64, Ordering::Relaxed);
        self.bytes.fetch_sub(old.len() as u64, Ordering::Relaxed);
        Ok(stored.task)
    }

    /// Create a task, durably: a `tasks/get` for it succeeds once this returns.
    /// Refused (-32000) past `limits.max_tasks` records or `limits.task_store_bytes`.
    pub async fn create(&self) -> Result<Task, RpcError> {
        let stored = self.count.load(Ordering::Relaxed);
        if stored >= self.max_tasks {
            return Err(RpcError::new(
                code::SERVER_BUSY,
                format!("{stored} tasks are kept, the most limits.max_tasks allows; retry once some expire"),
            ));
        }
        if self.bytes.load(Ordering::Relaxed) >= self.max_bytes {
            return Err(RpcError::new(
                code::SERVER_BUSY,
                "the tasks kept fill limits.task_store_bytes; retry once some expire",
            ));
        }
        let mut raw = [0u8; 16];
        getrandom::fill(&mut raw)
            .map_err(|e| RpcError::internal(format!("no randomness for a task id: {e}")))?;
        let task_id: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        let now = now_iso();
        let stored = Stored {
            expires_ms: unix_ms().saturating_add(self.ttl.as_millis() as u64),
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
        if let Ok(mut live) = self.live.lock() {
            live.insert(task_id.clone(), Live::default());
        }
        {
            let _edit = self.edit.lock();
            self.storage
                .put_task(&task_id, &json)
                .map_err(storage_error)?;
            self.bytes.fetch_add(json.len() as u64, Ordering::Relaxed);
            self.count.fetch_add(1, Ordering::Relaxed);
        }
        self.storage.flush().await.map_err(storage_error)?;
        Ok(stored.task)
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
        self.edit(id, |task| {
            task.status = Status::InputRequired;
            task.input_requests.insert(key.to_owned(), question);
        })?;
        rx.await
            .map_err(|_| RpcError::internal("the task ended before the client answered"))
    }

    /// `tasks/update`: deliver the answers to outstanding questions (others are
    /// ignored); the task works again once none is outstanding.
    pub fn update(&self, id: &str, responses: Option<&Value>) -> Result<(), RpcError> {
        self.load(id)?;
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
            self.edit(id, |task| {
                for key in &delivered {
                    task.input_requests.remove(key);
                }
                if task.input_requests.is_empty() && task.status == Status::InputRequired {
                    task.status = Status::Working;
                }
            })?;
        }
        Ok(())
    }

    /// `tasks/cancel`: stop the task if it runs (its Call reports `cancelled`);
    /// a task already ended is left as it is.
    pub fn cancel(&self, id: &str) -> Result<(), RpcError> {
        let stored = self.load(id)?;
        if stored.task.status.is_terminal() {
            return Ok(());
        }
        let cancel = self
            .live
            .lock()
            .ok()
            .and_then(|live| live.get(id).and_then(|l| l.cancel.clone()));
        if let Some(stop) = cancel {
            stop();
        }
        Ok(())
    }

    /// Record how task `id` ended (durable); its questions are dropped.
    pub async fn finish(&self, id: &str, end: End) {
        if let Ok(mut live) = self.live.lock() {
            live.remove(id);
        }
        let room = self
            .max_bytes
            .saturating_sub(self.bytes.load(Ordering::Relaxed));
        let outcome = self
            .edit(id, |task| {
                task.input_requests.clear();
                match end {
                    End::Cancelled => {
                        task.status = Status::Cancelled;
                        task.status_message = Some("cancelled by tasks/cancel".to_owned());
                    }
                    End::Replied(Ok(raw)) if raw.json().get().len() as u64 > room => {
                        let why = format!(
                            "the result ({} bytes) does not fit in what is left of limits.task_store_bytes",
                            raw.json().get().len()
                        );
                        task.status = Status::Failed;
                        task.error = Some(serde_json::json!({"code": code::INTERNAL_ERROR, "message": why}));
                    }
                    End::Replied(Ok(raw)) => {
                        task.status = Status::Completed;
                        task.result = serde_json::from_str(raw.json().get()).ok();
                    }
                    End::Replied(Err(e)) => {
                        task.status = Status::Failed;
                        task.status_message = Some(e.message.clone());
                        task.error = serde_json::to_value(&e).ok();
                    }
                }
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
}

impl std::fmt::Debug for TaskSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskSlot")
            .field("id", &self.id.get())
            .finish_non_exhaustive()
    }
}

impl TaskSlot {
    /// A slot for a call of a tool with `support`, from a request that `declared`
    /// the extension or not.
    pub fn new(tasks: Arc<Tasks>, support: TaskSupport, declared: bool) -> TaskSlot {
        TaskSlot {
            tasks,
            support,
            declared,
            begin: Mutex::default(),
            id: std::sync::OnceLock::new(),
            next_key: std::sync::atomic::AtomicUsize::new(0),
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

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        actix_rt::System::new().block_on(f)
    }

    #[test]
    fn a_task_is_stored_before_it_is_announced_and_ends_with_its_reply() {
        let (tasks, _) = tasks(Limits::default());
        block_on(async {
            let task = tasks.create().await.unwrap();
            assert_eq!(task.task_id.len(), 32, "128 bits in hex");
            assert_eq!(tasks.get(&task.task_id).unwrap().status, Status::Working);
            let v: Value = serde_json::from_str(created(&task).unwrap().json().get()).unwrap();
            assert_eq!(v["resultType"], "task");
            assert_eq!(v["taskId"], task.task_id.as_str());
            assert!(v.get("result").is_none() && v.get("requestState").is_none());
            let result = crate::protocol::reply(&serde_json::json!({"content": []}));
            tasks.finish(&task.task_id, End::Replied(result)).await;
            let done = tasks.get(&task.task_id).unwrap();
            assert_eq!(done.status, Status::Completed);
            assert_eq!(done.result, Some(serde_json::json!({"content": []})));
            let failed = tasks.create().await.unwrap();
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

    #[test]
    fn questions_park_a_task_until_tasks_update_answers_them() {
        let (tasks, _) = tasks(Limits::default());
        block_on(async {
            let id = tasks.create().await.unwrap().task_id;
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
                let id = tasks.create().await.unwrap().task_id;
                tasks.create().await.unwrap();
                assert_eq!(
                    tasks.create().await.unwrap_err().code,
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
    /// are counted at the next expiry sweep, and the byte count does not wrap.
    #[test]
    fn the_expiry_sweep_counts_what_is_kept() {
        let storage = Storage::temporary().unwrap();
        let limits = Limits {
            max_tasks: 2,
            ..Limits::default()
        };
        let quiet = || slog::Logger::root(slog::Discard, slog::o!());
        let earlier = Tasks::new(storage.clone(), &limits, quiet());
        block_on(async {
            earlier.create().await.unwrap();
            earlier.create().await.unwrap();
        });
        let tasks = Tasks::new(storage, &limits, quiet());
        assert_eq!(tasks.expire(), 0);
        assert_eq!(tasks.count.load(Ordering::Relaxed), 2);
        assert!(tasks.bytes.load(Ordering::Relaxed) < 10_000);
        let refused = block_on(tasks.create()).unwrap_err();
        assert!(refused.message.contains("limits.max_tasks"), "{refused:?}");
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
            let id = tasks.create().await.unwrap().task_id;
            let big = crate::protocol::reply(&serde_json::json!({"text": "x".repeat(2_000)}));
            tasks.finish(&id, End::Replied(big)).await;
            let failed = tasks.get(&id).unwrap();
            assert_eq!(failed.status, Status::Failed);
            let why = failed.error.unwrap()["message"]
                .as_str()
                .unwrap()
                .to_owned();
            assert!(why.contains("limits.task_store_bytes"), "{why}");
            // Fill the store with small results until a creation is refused.
            let mut refused = None;
            for _ in 0..20 {
                match tasks.create().await {
                    Ok(task) => {
                        let small =
                            crate::protocol::reply(&serde_json::json!({"text": "y".repeat(100)}));
                        tasks.finish(&task.task_id, End::Replied(small)).await;
                    }
                    Err(e) => {
                        refused = Some(e);
                        break;
                    }
                }
            }
            let refused = refused.expect("the store filled up");
            assert_eq!(refused.code, -32000);
            assert!(
                refused.message.contains("limits.task_store_bytes"),
                "{refused:?}"
            );
        });
    }
}
