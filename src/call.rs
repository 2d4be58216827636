//! The Call actor: one child actor per in-flight call (DESIGN §2).
//!
//! A Call owns the handler's future. It answers exactly once, or not at all when
//! the client cancelled:
//! - the handler finishes → its reply;
//! - the handler panics → an `isError` tool result (JSON-RPC -32603 for other methods);
//! - the timeout fires → an `isError` result naming the timeout;
//! - the session drains at shutdown → a result saying the call was cancelled;
//! - the client sends `notifications/cancelled` → the actor stops, no answer (MCP says
//!   the receiver SHOULD NOT respond to a cancelled request).
//!
//! Cancellation is an actor stop: stopping drops the handler's future, wherever it
//! is awaiting. On stop the Call tells its session, which forgets it.
//!
//! However it ends, a call leaves one `info` line "call finished" (unless
//! `log_calls` is off; a panic or a timeout is logged at `warn` either way) with its
//! `outcome` (the `mcp_requests_total` label), `duration_ms`, `success` and, when it
//! failed, `error`: never its arguments or its result (`log_finished`).

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures::channel::oneshot;
use futures::future::LocalBoxFuture;
use futures::FutureExt;
use serde_json::value::RawValue;
use serde_json::Value;
use slog::Logger;

use crate::gate::Permit;
use crate::protocol::era::Envelope;
use crate::protocol::jsonrpc::encode_notification;
use crate::protocol::mcp::{method, LogMessageParams, ProgressParams, ProgressToken};
use crate::protocol::{CallToolResult, LoggingLevel, RequestId, RpcError};
use crate::sink::Sink;
use crate::storage::Storage;
use crate::telemetry::Metrics;

/// A call's reply: the raw `result` JSON or a JSON-RPC error.
pub type Reply = Result<Box<RawValue>, RpcError>;

/// The work a Call runs.
pub type Work = LocalBoxFuture<'static, Reply>;

/// Encode a serializable result as a reply.
pub fn reply<T: serde::Serialize>(value: &T) -> Reply {
    serde_json::value::to_raw_value(value).map_err(RpcError::internal)
}

/// What kind of call: decides how failures are reported.
#[derive(Debug, Clone)]
pub enum CallKind {
    /// `tools/call`: failures are `isError` results.
    Tool(Arc<str>),
    /// Any other method: failures are JSON-RPC errors.
    Method(&'static str),
}

/// Why a call ended without its handler's reply.
#[derive(Debug, Clone)]
pub enum Failure {
    /// The handler panicked; the payload's message.
    Panicked(String),
    /// The handler ran past its timeout.
    TimedOut(Duration),
    /// The server shut down before the call finished.
    Shutdown,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Panicked(msg) => write!(f, "failed: the handler panicked: {msg}"),
            Failure::TimedOut(d) => write!(f, "timed out after {} ms", d.as_millis()),
            Failure::Shutdown => write!(f, "was cancelled: the server is shutting down"),
        }
    }
}

impl Failure {
    /// What the call line's `error` says.
    fn log_text(&self) -> String {
        match self {
            Failure::Panicked(msg) => msg.clone(),
            Failure::TimedOut(_) => self.to_string(),
            Failure::Shutdown => "cancelled: the server is shutting down".to_owned(),
        }
    }
}

impl CallKind {
    fn failure_reply(&self, failure: &Failure) -> Reply {
        match self {
            CallKind::Tool(name) => {
                reply(&CallToolResult::error(format!("tool `{name}` {failure}")))
            }
            CallKind::Method(m) => Err(RpcError::internal(format!("`{m}` {failure}"))),
        }
    }

    /// The JSON-RPC method this call answers.
    pub fn method(&self) -> &'static str {
        match self {
            CallKind::Tool(_) => crate::protocol::mcp::method::TOOLS_CALL,
            CallKind::Method(m) => m,
        }
    }

    fn label(&self) -> &str {
        match self {
            CallKind::Tool(name) => name,
            CallKind::Method(m) => m,
        }
    }
}

/// Server → client requests awaiting the client's answer, shared by a session and
/// its calls. Ids are strings `emcee-N`, so they never collide with a client's ids.
#[derive(Clone, Default)]
pub struct Peer {
    next: Arc<std::sync::atomic::AtomicU64>,
    pending: Arc<std::sync::Mutex<HashMap<RequestId, oneshot::Sender<Reply>>>>,
}

impl Peer {
    fn register(&self) -> (RequestId, oneshot::Receiver<Reply>) {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let id = RequestId::String(format!("emcee-{n}"));
        let (tx, rx) = oneshot::channel();
        if let Ok(mut p) = self.pending.lock() {
            p.insert(id.clone(), tx);
        }
        (id, rx)
    }

    fn forget(&self, id: &RequestId) {
        if let Ok(mut p) = self.pending.lock() {
            p.remove(id);
        }
    }

    /// Deliver the client's answer; false if no request with this id is pending.
    pub fn complete(&self, id: RequestId, outcome: Reply) -> bool {
        let tx = self.pending.lock().ok().and_then(|mut p| p.remove(&id));
        match tx {
            Some(tx) => {
                let _ = tx.send(outcome);
                true
            }
            None => false,
        }
    }
}

/// The handler's view of its call: where to send progress and log notifications,
/// the storage, and a logger tagged with session, request and tool.
#[derive(Clone)]
pub struct CallContext {
    pub(crate) session_id: Arc<str>,
    pub(crate) request_id: RequestId,
    pub(crate) progress_token: Option<ProgressToken>,
    pub(crate) sink: Sink,
    pub(crate) client_log_level: Arc<AtomicU8>,
    pub(crate) storage: Storage,
    pub(crate) peer: Peer,
    pub(crate) client_capabilities: Arc<serde_json::Map<String, Value>>,
    /// A 2026-07-28 request: the server sends the client no requests.
    pub(crate) modern: bool,
    /// A 2026-07-28 `tools/call`, `prompts/get` or `resources/read`: the client's
    /// answers so far and the questions asked (multi-round-trip requests).
    pub(crate) inputs: Option<Arc<crate::mrtr::Inputs>>,
    /// A tool that may run as a task (tasks extension).
    pub(crate) task: Option<Arc<crate::tasks::TaskSlot>>,
    pub(crate) client_request_timeout: Duration,
    pub(crate) notifier: crate::notify::Notifier,
    pub(crate) blocking: Arc<tokio::sync::Semaphore>,
    pub(crate) log: Logger,
}

impl CallContext {
    /// What the client declared at `initialize` (`sampling`, `elicitation`, `roots`...).
    pub fn client_capabilities(&self) -> &serde_json::Map<String, Value> {
        &self.client_capabilities
    }

    /// Ask the client for input (`sampling/createMessage`, `elicitation/create`,
    /// `roots/list`) and await its answer. Fails at once if the client did not
    /// declare `capability` (-32021 in 2026-07-28, -32600 in the session era).
    ///
    /// The same call serves both protocol eras:
    /// - session era: a request to the client on this call's stream, answered within
    ///   `limits.client_request_timeout`;
    /// - 2026-07-28: if the retry of this request carries the answer, it is returned
    ///   at once; otherwise the call ends with an `input_required` result asking the
    ///   client (its questions are keyed `<method>-<n>` in ask order; see
    ///   [`CallContext::request_client_keyed`] to name them), and the client's retry
    ///   runs the handler again from the start. So code before an ask must be safe
    ///   to run more than once (read, compute; write only after the last ask), and
    ///   several questions asked at once (`futures::join!`) go to the client in one
    ///   round. Answers of earlier rounds ride in the sealed `requestState`.
    pub async fn request_client(
        &self,
        method: &str,
        capability: &str,
        params: Value,
    ) -> Result<Value, RpcError> {
        let key = match (&self.task, &self.inputs) {
            (Some(slot), _) if slot.id.get().is_some() => {
                let n = slot.next_key.fetch_add(1, Ordering::Relaxed);
                format!("{}-{n}", method.split('/').next().unwrap_or(method))
            }
            (_, Some(inputs)) => inputs.auto_key(method),
            _ => String::new(),
        };
        self.request_client_keyed(&key, method, capability, params)
            .await
    }

    /// [`CallContext::request_client`] with the key this question has in a
    /// 2026-07-28 `inputRequests` (ignored in the session era).
    pub async fn request_client_keyed(
        &self,
        key: &str,
        method: &str,
        capability: &str,
        params: Value,
    ) -> Result<Value, RpcError> {
        if let Some((slot, id)) = self
            .task
            .as_ref()
            .and_then(|s| s.id.get().map(|id| (s, id)))
        {
            // A running task asks through its record: `input_required` until
            // `tasks/update` answers.
            if !self.client_capabilities.contains_key(capability) {
                return Err(crate::protocol::era::missing_capability(
                    method,
                    &[capability],
                ));
            }
            return slot.tasks.ask(id, key, method, params).await;
        }
        if self.modern {
            if !self.client_capabilities.contains_key(capability) {
                return Err(crate::protocol::era::missing_capability(
                    method,
                    &[capability],
                ));
            }
            let Some(inputs) = &self.inputs else {
                return Err(RpcError::internal(format!(
                    "{method}: only tools/call, prompts/get and resources/read may ask the client for input"
                )));
            };
            match inputs.answer(key, method) {
                Some(Ok(answer)) => return Ok(answer),
                Some(Err(malformed)) => inputs.fail(malformed),
                None => inputs.ask(key, method, params),
            }
            // The call ends here (input_required, or the malformed answer's error):
            // this handler run never resumes.
            return futures::future::pending().await;
        }
        let (id, rx) = self.peer.register();
        let sent = self.sink.send(
            crate::sink::FrameKind::Request,
            crate::protocol::jsonrpc::encode_request(&id, method, &params),
        );
        if !sent {
            self.peer.forget(&id);
            return Err(RpcError::internal("the client's stream is closed"));
        }
        let outcome = match actix_rt::time::timeout(self.client_request_timeout, rx).await {
            Ok(Ok(outcome)) => outcome,
            Ok(Err(_)) => Err(RpcError::internal(
                "the session ended before the client answered",
            )),
            Err(_) => {
                self.peer.forget(&id);
                Err(RpcError::internal(format!(
                    "the client did not answer {method} within {} ms",
                    self.client_request_timeout.as_millis()
                )))
            }
        };
        let raw = outcome?;
        serde_json::from_str(raw.get()).map_err(RpcError::internal)
    }

    /// Turn this call into a task (tasks extension) if it may be one: when the tool
    /// supports tasks and the 2026-07-28 request declared the extension, the task is
    /// created durably and the call is answered at once with `resultType: "task"`;
    /// the handler goes on, and what it returns becomes the task's result. Otherwise
    /// nothing happens (the call is answered with the handler's result as usual), or
    /// -32021 for a tool that can only run as a task. Called for the handler before
    /// it starts, unless the tool is declared with
    /// [`Tool::task_begun_by_handler`](crate::tools::Tool::task_begun_by_handler).
    /// Questions asked after it (`request_client`) park the task in `input_required`
    /// until `tasks/update` answers them.
    pub async fn begin_task(&self) -> Result<(), RpcError> {
        let Some(slot) = &self.task else {
            return Ok(());
        };
        if slot.id.get().is_some() {
            return Ok(());
        }
        if !slot.declared {
            return match slot.support {
                crate::tasks::TaskSupport::Required => {
                    Err(crate::tasks::missing_extension("this tool"))
                }
                _ => Ok(()),
            };
        }
        let task = slot.tasks.create().await?;
        let answer = crate::tasks::created(&task)?;
        let _ = slot.id.set(task.task_id.clone());
        let begin = slot.begin.lock().ok().and_then(|mut b| b.take());
        if let Some(begin) = begin {
            let _ = begin.send((task.task_id, Ok(answer)));
        }
        // Let the Call send the answer before the handler goes on.
        actix_rt::task::yield_now().await;
        Ok(())
    }

    /// Run blocking code (file IO, a subprocess, heavy CPU) off the event loop, on at
    /// most `limits.blocking_threads` threads; waits its turn within the call's timeout.
    /// A panic in `f` propagates, and is contained like any handler panic. If the call
    /// ends first (timeout, cancellation), `f` still runs to its end on its thread.
    pub async fn blocking<T, F>(&self, f: F) -> Result<T, RpcError>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let permit = self
            .blocking
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| RpcError::internal("the blocking pool is closed"))?;
        match tokio::task::spawn_blocking(move || {
            let _permit = permit;
            f()
        })
        .await
        {
            Ok(value) => Ok(value),
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(e) => Err(RpcError::internal(e)),
        }
    }

    /// Tell sessions subscribed to `uri` that the resource changed.
    pub fn resource_updated(&self, uri: &str) {
        self.notifier.resource_updated(uri);
    }

    /// Tell listening clients that a list (tools, prompts, resources) changed.
    pub fn list_changed(&self, change: crate::notify::Change) {
        self.notifier.changed(change);
    }

    /// Fail with -32021 (`requiredCapabilities`) unless the client declared every
    /// capability in `names` (at `initialize`, or on this 2026-07-28 request).
    pub fn require_client_capabilities(&self, what: &str, names: &[&str]) -> Result<(), RpcError> {
        let missing: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| !self.client_capabilities.contains_key(*n))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(crate::protocol::era::missing_capability(what, &missing))
        }
    }

    /// Ask the transport to close this request's SSE connection now; the call goes on
    /// and the client resumes with `Last-Event-ID` (SEP-1699). No-op on stdio.
    pub fn close_stream(&self) {
        self.sink
            .send(crate::sink::FrameKind::CloseStream, String::new());
    }

    /// The session this call belongs to.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }

    /// The id of the request being served.
    pub fn request_id(&self) -> &RequestId {
        &self.request_id
    }

    /// The server's storage.
    pub fn storage(&self) -> &Storage {
        &self.storage
    }

    /// A logger for the server's own log (stderr), tagged with this call.
    pub fn logger(&self) -> &Logger {
        &self.log
    }

    /// True when the client asked for progress (sent a `progressToken`).
    pub fn wants_progress(&self) -> bool {
        self.progress_token.is_some()
    }

    /// Send `notifications/progress` if the client asked for progress.
    pub fn progress(&self, progress: f64, total: Option<f64>, message: Option<&str>) {
        if let Some(token) = &self.progress_token {
            let params = ProgressParams {
                progress_token: token,
                progress,
                total,
                message,
            };
            self.sink
                .notification(encode_notification(method::PROGRESS, Some(&params)));
        }
    }

    /// Send `notifications/message` to the client if `level` is at or above the level
    /// it set with `logging/setLevel`.
    pub fn notify_log(&self, level: LoggingLevel, logger: Option<&str>, data: Value) {
        if (level as u8) < self.client_log_level.load(Ordering::Relaxed) {
            return;
        }
        let params = LogMessageParams {
            level,
            logger,
            data: &data,
        };
        self.sink
            .notification(encode_notification(method::MESSAGE, Some(&params)));
    }
}

/// Sent to the session when a Call stops, however it ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CallFinished {
    /// The request id.
    pub id: RequestId,
    /// The session-unique sequence number of the call (ids can be reused).
    pub seq: u64,
}

/// Stop a call.
#[derive(Message, Debug, Clone, Copy)]
#[rtype(result = "()")]
pub enum Cancel {
    /// The client cancelled: stop without answering.
    Client,
    /// The server is shutting down: answer "cancelled", then stop.
    Shutdown,
}

/// The per-call child actor.
pub struct Call {
    id: RequestId,
    seq: u64,
    kind: CallKind,
    work: Option<Work>,
    sink: Sink,
    timeout: Duration,
    session: Recipient<CallFinished>,
    started: Instant,
    log: Logger,
    metrics: Arc<Metrics>,
    /// In-flight capacity held until the actor is dropped.
    _permits: Vec<Permit>,
    envelope: Option<Envelope>,
    cancel_on_close: bool,
    max_result_bytes: usize,
    log_calls: bool,
    /// Set by the first answer; a Call answers at most once.
    answered: bool,
    /// A tool that may run as a task: how it learns that it became one.
    task_slot: Option<Arc<crate::tasks::TaskSlot>>,
    /// How long it may run once it is a task.
    task_timeout: Duration,
    /// Set once the call became a task: its end goes to the task's record.
    task_id: Option<String>,
    timer: Option<SpawnHandle>,
}

/// How the first phase of a call ended.
enum Ran {
    Done(std::thread::Result<Reply>),
    /// The client closed the request's stream.
    Gone,
    /// The handler began a task: its id, the answer to send now, and the rest of
    /// the work.
    Task(
        String,
        Reply,
        LocalBoxFuture<'static, std::thread::Result<Reply>>,
    ),
}

/// Everything a Call needs.
pub struct CallSpec {
    /// The request id to answer.
    pub id: RequestId,
    /// Session-unique sequence number (ids can be reused).
    pub seq: u64,
    /// Tool or other method.
    pub kind: CallKind,
    /// The handler's work.
    pub work: Work,
    /// Where the answer and related messages go.
    pub sink: Sink,
    /// How long the work may run.
    pub timeout: Duration,
    /// Told when the Call stops.
    pub session: Recipient<CallFinished>,
    /// Tagged logger.
    pub log: Logger,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// In-flight permits (server-wide, per tool), released when the Call stops.
    pub permits: Vec<Permit>,
    /// 2026-07-28: how results are completed (`None` in the session era).
    pub envelope: Option<Envelope>,
    /// Stop without answering when the client drops the request's stream
    /// (2026-07-28 HTTP: closing the stream is the cancellation).
    pub cancel_on_close: bool,
    /// Largest result answered as is (`limits.max_result_bytes`).
    pub max_result_bytes: usize,
    /// Log a line at `info` for every finished call (`log_calls`).
    pub log_calls: bool,
    /// A tool that may run as a task (tasks extension).
    pub task: Option<Arc<crate::tasks::TaskSlot>>,
    /// How long it may run as a task (`limits.task_timeout`).
    pub task_timeout: Duration,
}

impl Call {
    /// A call as `spec` describes it.
    pub fn new(spec: CallSpec) -> Call {
        Call {
            id: spec.id,
            seq: spec.seq,
            kind: spec.kind,
            work: Some(spec.work),
            sink: spec.sink,
            timeout: spec.timeout,
            session: spec.session,
            started: Instant::now(),
            log: spec.log,
            metrics: spec.metrics,
            _permits: spec.permits,
            envelope: spec.envelope,
            cancel_on_close: spec.cancel_on_close,
            max_result_bytes: spec.max_result_bytes,
            log_calls: spec.log_calls,
            answered: false,
            task_slot: spec.task,
            task_timeout: spec.task_timeout,
            task_id: None,
            timer: None,
        }
    }

    /// The handler began a task: answer the request with the task handle now; from
    /// here on the call's end is the task's, its timeout the task timeout, and
    /// `tasks/cancel` reaches it.
    fn became_task(&mut self, id: String, answer: Reply, ctx: &mut Context<Self>) {
        let json = crate::protocol::era::encode_reply(&self.id, &answer, self.envelope.as_ref());
        self.sink.response(json);
        if let Some(slot) = &self.task_slot {
            slot.tasks.attach(&id, ctx.address().recipient());
        }
        slog::debug!(self.log, "call became a task"; "task" => crate::telemetry::clip(&id).into_owned());
        self.task_id = Some(id);
        if let Some(timer) = self.timer.take() {
            ctx.cancel_future(timer);
        }
        self.timeout = self.task_timeout;
        self.timer = Some(ctx.run_later(self.timeout, |act, ctx| {
            act.fail(Failure::TimedOut(act.timeout));
            ctx.stop();
        }));
    }

    /// Where a task's end goes: its record (written on the arbiter: the Call stops).
    fn end_task(&self, end: crate::tasks::End) -> bool {
        let (Some(id), Some(slot)) = (&self.task_id, &self.task_slot) else {
            return false;
        };
        let (id, tasks) = (id.clone(), slot.tasks.clone());
        actix_rt::spawn(async move { tasks.finish(&id, end).await });
        true
    }

    /// Record the request's outcome in the metrics.
    fn record(&self, outcome: &'static str) {
        let seconds = self.started.elapsed().as_secs_f64();
        self.metrics.request(self.kind.method(), outcome, seconds);
        if let CallKind::Tool(name) = &self.kind {
            let tool = [&**name];
            self.metrics
                .tool_duration
                .with_label_values(&tool)
                .observe(seconds);
            if outcome != "ok" && outcome != "cancelled" {
                self.metrics.tool_errors.with_label_values(&tool).inc();
            }
        }
    }

    /// Answer with `reply`; `failure` is why the handler's own reply is missing.
    fn answer(&mut self, reply: Reply, outcome: &'static str, failure: Option<String>) {
        if std::mem::replace(&mut self.answered, true) {
            return;
        }
        let reply = match reply {
            Ok(raw) if raw.get().len() > self.max_result_bytes => {
                let why = format!(
                    "returned {} bytes, more than limits.max_result_bytes ({})",
                    raw.get().len(),
                    self.max_result_bytes
                );
                slog::warn!(self.log, "result too large, refused"; "bytes" => raw.get().len());
                match &self.kind {
                    CallKind::Tool(name) => {
                        self::reply(&CallToolResult::error(format!("tool `{name}` {why}")))
                    }
                    CallKind::Method(m) => Err(RpcError::internal(format!("`{m}` {why}"))
                        .with_data(serde_json::json!({"limit": "limits.max_result_bytes"}))),
                }
            }
            other => other,
        };
        let json = crate::protocol::era::encode_reply(&self.id, &reply, self.envelope.as_ref());
        let outcome = match (outcome, &reply) {
            ("ok", Err(_)) => "error",
            ("ok", reply) if is_error_result(reply) => "tool_error",
            (outcome, _) => outcome,
        };
        self.record(outcome);
        if self.log_calls || failure.is_some() {
            let error = match (failure, &reply) {
                (Some(why), _) => Some(why),
                (None, Err(e)) => Some(e.message.clone()),
                (None, reply) if outcome == "tool_error" => error_text(reply),
                (None, _) => None,
            };
            log_finished(&self.log, outcome, self.started, error.as_deref());
        }
        if !self.end_task(crate::tasks::End::Replied(reply)) {
            self.sink.response(json);
        }
    }

    fn fail(&mut self, failure: Failure) {
        if self.answered {
            return;
        }
        let reply = self.kind.failure_reply(&failure);
        let error = failure.log_text();
        let outcome = match failure {
            Failure::Panicked(_) => {
                self.metrics.handler_panics.inc();
                "panic"
            }
            Failure::TimedOut(_) => "timeout",
            Failure::Shutdown => {
                self.metrics.cancelled.inc();
                "shutdown"
            }
        };
        self.answer(reply, outcome, Some(error));
    }
}

impl Call {
    /// The handler's outcome: its reply, or a panic.
    fn finish(&mut self, result: std::thread::Result<Reply>) {
        match result {
            Ok(reply) => self.answer(reply, "ok", None),
            Err(payload) => self.fail(Failure::Panicked(panic_message(payload.as_ref()))),
        }
    }

    /// The client cancelled: count it; no answer is sent.
    fn cancel_by_client(&mut self) {
        if !std::mem::replace(&mut self.answered, true) {
            self.end_task(crate::tasks::End::Cancelled);
            self.metrics.cancelled.inc();
            self.record("cancelled");
            if self.log_calls {
                log_finished(
                    &self.log,
                    "cancelled",
                    self.started,
                    Some("cancelled by the client"),
                );
            }
        }
    }
}

/// The line every finished call leaves: `outcome` as in `mcp_requests_total`
/// (`ok`, `tool_error`, `error`, `timeout`, `panic`, `shutdown`, `cancelled`),
/// `duration_ms`, `success`, and `error` (clipped to [`LOG_ERROR_MAX`]) when it
/// failed. `log` carries the rest: session, method, request id, tool/uri/prompt and
/// trace id. `info`, except a panic or a timeout: `warn`.
///
/// [`LOG_ERROR_MAX`]: crate::telemetry::LOG_ERROR_MAX
pub(crate) fn log_finished(log: &Logger, outcome: &str, started: Instant, error: Option<&str>) {
    use crate::telemetry::{clip_to, Maybe, LOG_ERROR_MAX};
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    let error = Maybe(
        "error",
        error.map(|e| clip_to(e, LOG_ERROR_MAX).into_owned()),
    );
    let success = outcome == "ok";
    if matches!(outcome, "panic" | "timeout") {
        slog::warn!(log, "call finished"; "outcome" => outcome, "success" => success,
            "duration_ms" => duration_ms, error);
    } else {
        slog::info!(log, "call finished"; "outcome" => outcome, "success" => success,
            "duration_ms" => duration_ms, error);
    }
}

fn is_error_result(reply: &Reply) -> bool {
    // `CallToolResult` serializes `isError` last, and only when true.
    matches!(reply, Ok(raw) if raw.get().ends_with(",\"isError\":true}"))
}

/// The first text content of an `isError` result: why the tool failed. Read only on
/// that path; the contents after the first text are skipped, not kept.
fn error_text(reply: &Reply) -> Option<String> {
    use serde::de::{IgnoredAny, SeqAccess, Visitor};
    #[derive(serde::Deserialize)]
    struct Content {
        text: Option<String>,
    }
    struct FirstText(Option<String>);
    impl<'de> serde::Deserialize<'de> for FirstText {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            struct Seq;
            impl<'de> Visitor<'de> for Seq {
                type Value = FirstText;
                fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                    f.write_str("a content array")
                }
                fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<FirstText, A::Error> {
                    let mut first = None;
                    while first.is_none() {
                        match seq.next_element::<Content>()? {
                            Some(c) => first = c.text,
                            None => return Ok(FirstText(None)),
                        }
                    }
                    while seq.next_element::<IgnoredAny>()?.is_some() {}
                    Ok(FirstText(first))
                }
            }
            d.deserialize_seq(Seq)
        }
    }
    #[derive(serde::Deserialize)]
    struct ErrorResult {
        content: FirstText,
    }
    let raw = reply.as_ref().ok()?;
    serde_json::from_str::<ErrorResult>(raw.get())
        .ok()
        .and_then(|r| r.content.0)
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_owned())
}

impl Actor for Call {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        let Some(work) = self.work.take() else {
            ctx.stop();
            return;
        };
        if let CallKind::Tool(name) = &self.kind {
            self.metrics.tool_calls.with_label_values(&[&**name]).inc();
        }
        // catch_unwind covers both the synchronous start and every poll of the work.
        let guarded = AssertUnwindSafe(work).catch_unwind();
        // 2026-07-28 HTTP: the client closing the request's stream is the
        // cancellation; watched in the same future, so a call costs one task. A
        // tool that may run as a task tells us here when it became one.
        let closed = self.cancel_on_close.then(|| self.sink.clone());
        let begin = self.task_slot.as_ref().map(|slot| {
            let (tx, rx) = oneshot::channel();
            if let Ok(mut begin) = slot.begin.lock() {
                *begin = Some(tx);
            }
            rx
        });
        let run = async move {
            let mut guarded = guarded;
            let gone = async move {
                match closed {
                    Some(sink) => sink.closed().await,
                    None => futures::future::pending().await,
                }
            };
            let begun = async move {
                match begin {
                    Some(rx) => match rx.await {
                        Ok(begun) => begun,
                        Err(_) => futures::future::pending().await,
                    },
                    None => futures::future::pending().await,
                }
            };
            futures::pin_mut!(gone, begun);
            use futures::future::{select, Either};
            let step = match select(&mut guarded, select(gone, begun)).await {
                Either::Left((result, _)) => Ok(result),
                Either::Right((Either::Left(((), _)), _)) => Err(None),
                Either::Right((Either::Right(((id, answer), _)), _)) => Err(Some((id, answer))),
            };
            match step {
                Ok(result) => Ran::Done(result),
                Err(None) => Ran::Gone,
                Err(Some((id, answer))) => Ran::Task(id, answer, Box::pin(guarded)),
            }
        };
        ctx.spawn(run.into_actor(self).map(|ran, act, ctx| match ran {
            Ran::Done(result) => {
                act.finish(result);
                ctx.stop();
            }
            Ran::Gone => {
                act.cancel_by_client();
                ctx.stop();
            }
            Ran::Task(id, answer, rest) => {
                act.became_task(id, answer, ctx);
                ctx.spawn(rest.into_actor(act).map(|result, act, ctx| {
                    act.finish(result);
                    ctx.stop();
                }));
            }
        }));
        self.timer = Some(ctx.run_later(self.timeout, |act, ctx| {
            act.fail(Failure::TimedOut(act.timeout));
            ctx.stop();
        }));
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        self.session.do_send(CallFinished {
            id: self.id.clone(),
            seq: self.seq,
        });
    }
}

impl Handler<Cancel> for Call {
    type Result = ();

    fn handle(&mut self, msg: Cancel, ctx: &mut Context<Self>) {
        match msg {
            Cancel::Client => self.cancel_by_client(),
            Cancel::Shutdown => self.fail(Failure::Shutdown),
        }
        ctx.stop();
    }
}

impl std::fmt::Debug for Call {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Call")
            .field("id", &self.id)
            .field("kind", &self.kind.label())
            .finish_non_exhaustive()
    }
}
