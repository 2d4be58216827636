//! The Call actor: one child actor per in-flight call (DESIGN §2). What the handler
//! itself sees of its call, [`CallContext`], is in `call/context.rs`.
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

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use futures::channel::oneshot;
use futures::future::LocalBoxFuture;
use futures::FutureExt;
use slog::Logger;

use crate::gate::Permit;
use crate::protocol::era::Envelope;
use crate::protocol::{CallToolResult, RequestId, RpcError};
use crate::sink::Sink;
use crate::telemetry::Metrics;
use crate::tools::Tool;

pub use crate::protocol::{reply, Answer, Reply};

/// The work a Call runs.
pub type Work = LocalBoxFuture<'static, Reply>;

/// What kind of call: decides how failures are reported.
#[derive(Debug, Clone)]
pub enum CallKind {
    /// `tools/call`: failures are `isError` results.
    Tool(Arc<Tool>),
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
            CallKind::Tool(tool) => Answer::tool(&CallToolResult::error(format!(
                "tool `{}` {failure}",
                tool.name()
            ))),
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
            CallKind::Tool(tool) => tool.name(),
            CallKind::Method(m) => m,
        }
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
    _permits: Permits,
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

/// The in-flight capacity a Call holds while it runs (kept inline: a call makes
/// no allocation for it).
#[derive(Debug)]
pub struct Permits {
    _total: Permit,
    _principal: Option<Permit>,
    _tool: Option<Permit>,
}

impl Permits {
    /// The server-wide permit, the caller's share (a call by an authenticated
    /// principal) and the tool's own (a tool call).
    pub fn new(total: Permit, principal: Option<Permit>, tool: Option<Permit>) -> Permits {
        Permits {
            _total: total,
            _principal: principal,
            _tool: tool,
        }
    }
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
    /// In-flight permits, released when the Call stops.
    pub permits: Permits,
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
            let call = ctx.address();
            slot.tasks
                .attach(&id, Box::new(move || call.do_send(Cancel::Client)));
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
        if let CallKind::Tool(tool) = &self.kind {
            let tool = [tool.name()];
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
            Ok(raw) if raw.json().len() > self.max_result_bytes => {
                let why = format!(
                    "returned {} bytes, more than limits.max_result_bytes ({})",
                    raw.json().len(),
                    self.max_result_bytes
                );
                slog::warn!(self.log, "result too large, refused"; "bytes" => raw.json().len());
                match &self.kind {
                    CallKind::Tool(tool) => Answer::tool(&CallToolResult::error(format!(
                        "tool `{}` {why}",
                        tool.name()
                    ))),
                    CallKind::Method(m) => Err(RpcError::internal(format!("`{m}` {why}"))
                        .with_data(serde_json::json!({"limit": "limits.max_result_bytes"}))),
                }
            }
            other => other,
        };
        let json = crate::protocol::era::encode_reply(&self.id, &reply, self.envelope.as_ref());
        let outcome = match (outcome, &reply) {
            ("ok", Err(_)) => "error",
            ("ok", Ok(answer)) if answer.tool_error().is_some() => "tool_error",
            (outcome, _) => outcome,
        };
        self.record(outcome);
        if self.log_calls || failure.is_some() {
            let error = match (failure, &reply) {
                (Some(why), _) => Some(why),
                (None, Err(e)) => Some(e.message.clone()),
                (None, Ok(answer)) => answer.tool_error().map(str::to_owned),
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
    /// The first phase of the call ended: answer (or not) and stop, or go on as
    /// a task.
    fn ran(&mut self, ran: Ran, ctx: &mut Context<Self>) {
        match ran {
            Ran::Done(result) => {
                self.finish(result);
                ctx.stop();
            }
            Ran::Gone => {
                self.cancel_by_client();
                ctx.stop();
            }
            Ran::Task(id, answer, rest) => {
                self.became_task(id, answer, ctx);
                ctx.spawn(rest.into_actor(self).map(|result, act, ctx| {
                    act.finish(result);
                    ctx.stop();
                }));
            }
        }
    }

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
    let duration_ms = crate::telemetry::millis(started.elapsed());
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
        if let CallKind::Tool(tool) = &self.kind {
            self.metrics
                .tool_calls
                .with_label_values(&[tool.name()])
                .inc();
        }
        // catch_unwind covers both the synchronous start and every poll of the work.
        let mut guarded = AssertUnwindSafe(work).catch_unwind();
        // A tool that may run as a task tells us when it became one (it may
        // do so at its first poll).
        let begin = self.task_slot.as_ref().map(|slot| {
            let (tx, rx) = oneshot::channel();
            if let Ok(mut begin) = slot.begin.lock() {
                *begin = Some(tx);
            }
            rx
        });
        // Most handlers finish at their first poll (nothing to wait for): such a
        // call answers now, with nothing more to build, no timer to set and
        // cancel and no future to spawn. The work is polled first below too.
        if let Some(result) = (&mut guarded).now_or_never() {
            self.ran(Ran::Done(result), ctx);
            return;
        }
        // 2026-07-28 HTTP: the client closing the request's stream is the
        // cancellation; watched in the same future, so a call costs one task.
        let closed = self.cancel_on_close.then(|| self.sink.clone());
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
        // A handler that waits goes on in the actor's context, polled again with
        // the real waker, under its timeout counted from the call's start.
        ctx.spawn(run.into_actor(self).map(|ran, act, ctx| act.ran(ran, ctx)));
        let left = self.timeout.saturating_sub(self.started.elapsed());
        self.timer = Some(ctx.run_later(left, |act, ctx| {
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
