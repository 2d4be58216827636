//! The Session actor: one per client session (DESIGN §2), of either protocol era.
//!
//! A session receives decoded requests ([`Inbound`]) with the sink their answers go
//! to. Cheap methods (lists, `server/discover`, `ping`, `completion/complete`...) are
//! answered inline; `tools/call`, `resources/read` and `prompts/get` each start a
//! [`Call`] child actor. What kind of session it is ([`SessionKind`]) decides where
//! its protocol state comes from:
//! - a session-era session (an HTTP `Mcp-Session-Id`, or a stdio connection whose
//!   first request was `initialize`) keeps the negotiated version, the client's
//!   capabilities and its log level;
//! - a 2026-07-28 request carries all of that in its own `_meta`
//!   ([`era::check_modern`]); the stateless session of an HTTP worker serves such
//!   requests from any client, so it never relies on request ids being unique;
//! - a listener serves one `subscriptions/listen` stream.
//!
//! Invariants:
//! - at most `limits.max_in_flight_per_session` calls run at once; one more is refused
//!   at once with JSON-RPC -32000, never queued;
//! - stopping a session stops its calls (no orphan keeps running);
//! - every request gets exactly one answer unless the client cancelled it.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use futures::channel::oneshot;
use serde::{Deserialize, Serialize};
use slog::Logger;
use tokio::sync::broadcast;

use crate::handler::{CallContext, Peer};
use crate::runtime::call::{reply, Answer, Call, CallFinished, CallKind, CallSpec, Cancel, Reply, Work};
use crate::gate::Permit;
use crate::notify::Change;
pub use crate::protocol::era::{self, Era};
use crate::protocol::jsonrpc::{
    encode_error, encode_error_omitting_unknown_id, encode_notification, encode_result,
    Notification,
};
use crate::protocol::mcp::{
    method, CallToolParams, GetPromptParams, InitializeParams, InitializeResult, ListenParams,
    PaginatedParams, SetLevelParams, SubscriptionFilter, UriParams,
};
use crate::protocol::prompt::CompleteParams;
use crate::protocol::request::{ClientRequest, META_SUBSCRIPTION_ID};
use crate::protocol::{
    code, Encoded, LoggingLevel, Message, Payload, ProtocolVersion, Rejected, Request, RequestId, RpcError,
};
use crate::runtime::service::Service;
use crate::sink::Sink;
use crate::telemetry::metrics::reason;
use crate::tools::Tool;

/// Level of `notifications/message` a session-era client gets before it calls
/// `logging/setLevel`.
pub const DEFAULT_CLIENT_LOG_LEVEL: LoggingLevel = LoggingLevel::Info;

/// A log threshold above every level: no `notifications/message` at all (a
/// 2026-07-28 request that names no log level).
const NO_CLIENT_LOG: u8 = LoggingLevel::Emergency as u8 + 1;

/// The log threshold of a 2026-07-28 request (fixed for the request: shared, never
/// written).
fn request_log_level(level: Option<LoggingLevel>) -> Arc<AtomicU8> {
    static LEVELS: std::sync::OnceLock<Vec<Arc<AtomicU8>>> = std::sync::OnceLock::new();
    let levels = LEVELS.get_or_init(|| {
        (0..=NO_CLIENT_LOG)
            .map(|n| Arc::new(AtomicU8::new(n)))
            .collect()
    });
    let n = level.map_or(NO_CLIENT_LOG, |l| l as u8);
    levels[usize::from(n)].clone()
}

/// What a session serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionKind {
    /// One client connection (stdio): the first request decides the era.
    Connection,
    /// A session-era HTTP session (`Mcp-Session-Id`), saved so that it survives a
    /// restart.
    Http,
    /// 2026-07-28 requests of any client on one HTTP worker: each request brings its
    /// state; request ids are not unique across clients.
    Stateless,
    /// One 2026-07-28 `subscriptions/listen` stream on HTTP.
    Listener,
}

/// One transport payload (a message or a batch) for this session, with the sink its
/// answers go to.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Inbound {
    /// What arrived.
    pub payload: Payload,
    /// Where answers and related notifications go.
    pub sink: Sink,
    /// Stop the request's call if the client closes its stream (2026-07-28 HTTP:
    /// closing the stream is the cancellation).
    pub cancel_on_close: bool,
}

impl Inbound {
    /// A payload whose calls run on even if its stream closes (stdio; session-era
    /// HTTP, where a dropped stream is resumed, not cancelled).
    pub fn new(payload: Payload, sink: Sink) -> Inbound {
        Inbound {
            payload,
            sink,
            cancel_on_close: false,
        }
    }
}

/// Wait until no call is in flight; after `grace`, cancel the rest with a
/// "shutting down" answer. New requests are refused from now on; listen streams
/// get their final result.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Drain {
    /// How long in-flight calls may still run.
    pub grace: std::time::Duration,
}

/// Where messages not tied to a request go (the HTTP standalone GET stream).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SetStandalone(pub Sink);

/// Stop the session and its calls now.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Close;

/// Sent to the root when a session stops.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SessionEnded {
    /// The session id.
    pub id: Arc<str>,
}

/// One request being served: what it is, its era, where its answers go, and whether
/// closing that destination cancels it.
struct Exchange<'a> {
    req: &'a Request,
    era: Option<Era>,
    sink: &'a Sink,
    cancel_on_close: bool,
}

/// What differs between the kinds of call a session starts.
struct CallPlan<'a> {
    kind: CallKind,
    /// The tool, for its concurrency bound.
    tool: Option<&'a Tool>,
    log: Logger,
    timeout: std::time::Duration,
    /// 2026-07-28: the client's input so far (multi-round-trip requests).
    inputs: Option<Arc<crate::mrtr::Inputs>>,
    /// A tool that may run as a task (tasks extension, 2026-07-28).
    task: Option<Arc<crate::tasks::TaskSlot>>,
}

struct Running {
    id: RequestId,
    addr: Addr<Call>,
}

/// One `subscriptions/listen` stream: its request id (the subscription id), what it
/// listens to, and where its notifications go.
struct Listen {
    id: RequestId,
    filter: SubscriptionFilter,
    sink: Sink,
}

/// What is saved of a session so that a restart does not turn its id into 404: the
/// negotiated version and the client's `initialize` params, replayed on first use.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionRecord {
    /// The negotiated version.
    pub protocol_version: String,
    /// The client's `initialize` params.
    pub client: InitializeParams,
}

/// The per-session actor.
pub struct Session {
    id: Arc<str>,
    service: Arc<Service>,
    kind: SessionKind,
    era: Option<Era>,
    client: Option<InitializeParams>,
    client_log_level: Arc<AtomicU8>,
    /// In-flight calls by sequence number (request ids need not be unique).
    calls: HashMap<u64, Running>,
    /// In-flight calls by request id, for `notifications/cancelled` (not kept by the
    /// stateless session, whose clients' ids collide).
    by_id: HashMap<RequestId, u64>,
    next_seq: u64,
    draining: bool,
    idle_waiters: Vec<oneshot::Sender<()>>,
    root: Option<Recipient<SessionEnded>>,
    standalone: Option<Sink>,
    peer: Peer,
    subscriptions: HashSet<String>,
    listens: Vec<Listen>,
    /// Whether resource updates are forwarded to this session (since its first
    /// subscription or listen stream).
    forwarding_updates: bool,
    log: Logger,
}

impl Session {
    /// A new session of `kind`, not yet initialized.
    pub fn new(
        id: Arc<str>,
        service: Arc<Service>,
        kind: SessionKind,
        root: Option<Recipient<SessionEnded>>,
    ) -> Session {
        // 2026-07-28 requests have no session: the stateless session's lines carry
        // no `session` tag.
        let log = match kind {
            SessionKind::Stateless => service.log.new(slog::o!()),
            _ => service
                .log
                .new(slog::o!("session" => crate::telemetry::session_tag(&id))),
        };
        let era =
            matches!(kind, SessionKind::Stateless | SessionKind::Listener).then_some(Era::Modern);
        Session {
            id,
            service,
            kind,
            era,
            client: None,
            client_log_level: Arc::new(AtomicU8::new(DEFAULT_CLIENT_LOG_LEVEL as u8)),
            calls: HashMap::new(),
            by_id: HashMap::new(),
            next_seq: 0,
            draining: false,
            idle_waiters: Vec::new(),
            root,
            standalone: None,
            peer: Peer::default(),
            subscriptions: Default::default(),
            listens: Vec::new(),
            forwarding_updates: false,
            log,
        }
    }

    /// A session rebuilt from its saved record (after a restart): already initialized.
    pub fn restored(mut self, record: SessionRecord) -> Session {
        self.era = Some(Era::Legacy(ProtocolVersion::negotiate(
            &record.protocol_version,
        )));
        self.client = Some(record.client);
        self.kind = SessionKind::Http;
        slog::info!(self.log, "session restored"; "protocol_version" => record.protocol_version);
        self
    }

    /// The negotiated session-era version, once initialized.
    pub fn version(&self) -> Option<ProtocolVersion> {
        match self.era {
            Some(Era::Legacy(v)) => Some(v),
            _ => None,
        }
    }

    fn on_message(
        &mut self,
        msg: Result<Message, Rejected>,
        sink: &Sink,
        cancel_on_close: bool,
        ctx: &mut Context<Self>,
    ) {
        match msg {
            Ok(Message::Request(req)) => self.on_request(*req, sink, cancel_on_close, ctx),
            Ok(Message::Notification(n)) => self.on_notification(n),
            Ok(Message::Response(r)) => {
                if !self.peer.complete(r.id.clone(), r.outcome) {
                    // JSON-RPC: a response is never answered, even an unexpected one.
                    slog::debug!(self.log, "unsolicited response dropped"; "request_id" => r.id.to_string());
                }
            }
            Err(rejected) => {
                slog::debug!(self.log, "invalid message"; "error" => &rejected.error.message);
                let code = rejected.error.code;
                let json = match self.era {
                    Some(Era::Modern) => encode_error_omitting_unknown_id(
                        rejected.id.as_ref(),
                        &self.service.envelope().error(rejected.error),
                    ),
                    _ => encode_error(rejected.id.as_ref(), &rejected.error),
                };
                sink.response(Encoded::error(json, code));
            }
        }
    }

    /// The era `req` is served in, or the error that answers it. `None`: a
    /// session-era request before `initialize` (only `initialize` and `ping`).
    ///
    /// A request that names its version in `_meta` is served as 2026-07-28, whatever
    /// came before on the connection; `initialize` selects the session era for the
    /// connection (stdio) or the session (HTTP).
    fn era_of(&mut self, req: &Request) -> Result<Option<Era>, RpcError> {
        let stateless = matches!(self.kind, SessionKind::Stateless | SessionKind::Listener);
        if stateless || era::is_modern_request(&req.meta) {
            era::check_modern(req)?;
            if self.era.is_none() {
                self.era = Some(Era::Modern);
            }
            return Ok(Some(Era::Modern));
        }
        match self.era {
            Some(Era::Legacy(v)) => {
                if !req.call.in_session_era() {
                    return Err(RpcError::method_not_found(req.method()));
                }
                Ok(Some(Era::Legacy(v)))
            }
            _ if matches!(req.call, ClientRequest::Initialize(_) | ClientRequest::Ping) => Ok(None),
            // Neither era yet: a request other than the handshake is read as
            // 2026-07-28, whose checks name what is missing (-32602 for `_meta`);
            // the message also points session-era clients to `initialize`.
            Some(Era::Modern) | None => {
                era::check_modern(req)
                    .map(|()| Some(Era::Modern))
                    .map_err(|e| match (self.era, e.code) {
                        (None, code::INVALID_PARAMS) => RpcError::new(
                            e.code,
                            format!(
                                "{} (session-era clients: send `initialize` first)",
                                e.message
                            ),
                        ),
                        _ => e,
                    })
            }
        }
    }

    fn on_request(
        &mut self,
        req: Request,
        sink: &Sink,
        cancel_on_close: bool,
        ctx: &mut Context<Self>,
    ) {
        let started = Instant::now();
        if self.draining {
            let e = RpcError::new(code::SERVER_BUSY, "server is shutting down");
            self.refuse(reason::SHUTTING_DOWN, &e);
            let era = self.era;
            self.finish(&req, era, Err(e), sink, started);
            return;
        }
        let era = match self.era_of(&req) {
            Ok(era) => era,
            Err(e) => {
                let era = self
                    .era
                    .or(era::is_modern_request(&req.meta).then_some(Era::Modern));
                self.finish(&req, era, Err(e), sink, started);
                return;
            }
        };
        let started_call = |r: Result<(), RpcError>| r.err().map(Err);
        let x = Exchange {
            req: &req,
            era,
            sink,
            cancel_on_close,
        };
        let reply: Option<Reply> = match &req.call {
            ClientRequest::Initialize(p) => Some(self.initialize(p)),
            ClientRequest::Ping => Some(reply(&serde_json::json!({}))),
            ClientRequest::Discover => Some(self.discover()),
            ClientRequest::ToolsList(p) => {
                Some(self.list_page(p, era, "tools", self.service.tools.as_slice(), |t| t.def()))
            }
            ClientRequest::ToolsCall(p) => started_call(self.call_tool(&x, p, ctx)),
            ClientRequest::ResourcesList(p) => {
                let all = self.service.resources.resources();
                Some(self.list_page(p, era, "resources", all, |r| r.def()))
            }
            ClientRequest::ResourceTemplatesList(p) => {
                let all = self.service.resources.templates();
                Some(self.list_page(p, era, "resourceTemplates", all, |t| t.def()))
            }
            ClientRequest::ResourcesRead(p) => started_call(self.read_resource(&x, p, ctx)),
            ClientRequest::ResourcesSubscribe(p) => Some(self.subscribe(p, true, ctx)),
            ClientRequest::ResourcesUnsubscribe(p) => Some(self.subscribe(p, false, ctx)),
            ClientRequest::PromptsList(p) => {
                let all = self.service.prompts.prompts();
                Some(self.list_page(p, era, "prompts", all, |p| p.def()))
            }
            ClientRequest::PromptsGet(p) => started_call(self.get_prompt(&x, p, ctx)),
            ClientRequest::Complete(p) => Some(self.complete(p)),
            ClientRequest::SetLevel(p) => Some(self.set_level(p)),
            ClientRequest::Listen(p) => self.listen(&req, p, sink, ctx).err().map(Err),
            ClientRequest::TasksGet(_)
            | ClientRequest::TasksUpdate(_)
            | ClientRequest::TasksCancel(_) => Some(self.task_request(&req)),
            ClientRequest::Unknown(m) => Some(Err(RpcError::method_not_found(m))),
        };
        let Some(reply) = reply else { return };
        if matches!(req.call, ClientRequest::Initialize(_))
            && reply.is_ok()
            && self.kind == SessionKind::Http
        {
            self.answer_after_saving(req, reply, sink, started, ctx);
            return;
        }
        self.finish(&req, era, reply, sink, started);
    }

    /// Answer `req` with `reply` in `era`'s shape; count and log it.
    fn finish(&self, req: &Request, era: Option<Era>, reply: Reply, sink: &Sink, started: Instant) {
        let outcome = if reply.is_ok() { "ok" } else { "error" };
        let elapsed = started.elapsed().as_secs_f64();
        self.service
            .metrics
            .request(req.call.label(), outcome, elapsed);
        slog::debug!(self.log, "request"; "method" => req.method(),
            "request_id" => %crate::telemetry::clip(&req.id.to_string()), "success" => reply.is_ok(),
            "duration_ms" => elapsed * 1000.0, "trace_id" => req.meta.trace_id());
        if let (Err(e), true) = (&reply, self.service.log_calls) {
            // A call refused before it started (unknown tool, bad prompt arguments,
            // a bound reached...) leaves its call line too.
            let called = match &req.call {
                ClientRequest::ToolsCall(p) => Some(("tool", p.name.as_str())),
                ClientRequest::ResourcesRead(p) => Some(("uri", p.uri.as_str())),
                ClientRequest::PromptsGet(p) => Some(("prompt", p.name.as_str())),
                _ => None,
            };
            if let Some((key, name)) = called {
                let log = self.call_log(req, key, name);
                crate::runtime::call::log_finished(&log, "error", started, Some(&e.message));
            }
        }
        let envelope = (era == Some(Era::Modern)).then(|| self.service.envelope());
        sink.response(era::encode_reply(&req.id, &reply, envelope));
    }

    /// Durability (DESIGN §3): a session the client is told exists is on disk first.
    fn answer_after_saving(
        &mut self,
        req: Request,
        reply: Reply,
        sink: &Sink,
        started: Instant,
        ctx: &mut Context<Self>,
    ) {
        let record = SessionRecord {
            protocol_version: self
                .version()
                .map_or("", ProtocolVersion::as_str)
                .to_owned(),
            client: self.client.clone().unwrap_or_else(|| InitializeParams {
                protocol_version: String::new(),
                capabilities: Default::default(),
                client_info: Default::default(),
            }),
        };
        let storage = self.service.storage.clone();
        let metrics = self.service.metrics.clone();
        let id = self.id.clone();
        let sink = sink.clone();
        let log = self.log.clone();
        ctx.spawn(
            async move {
                let saved = match serde_json::to_vec(&record) {
                    Ok(bytes) => storage
                        .save_session(&id, &bytes)
                        .await
                        .map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                };
                let reply = match saved {
                    Ok(()) => reply,
                    Err(e) => {
                        slog::error!(log, "session not saved"; "error" => &e);
                        Err(RpcError::internal(format!("cannot save the session: {e}")))
                    }
                };
                let outcome = if reply.is_ok() { "ok" } else { "error" };
                metrics.request(method::INITIALIZE, outcome, started.elapsed().as_secs_f64());
                sink.response(era::encode_reply(&req.id, &reply, None));
            }
            .into_actor(self),
        );
    }

    fn initialize(&mut self, params: &InitializeParams) -> Reply {
        if matches!(self.era, Some(Era::Legacy(_))) {
            return Err(RpcError::invalid_request("session already initialized"));
        }
        // What the session keeps is bounded in bytes, whatever the client sends.
        let limit = self.service.limits.max_session_bytes;
        let size = serde_json::to_vec(params).map_or(usize::MAX, |v| v.len());
        if size > limit {
            return Err(over_limit(
                "limits.max_session_bytes",
                limit,
                format!("initialize params of {size} bytes"),
            ));
        }
        let version = ProtocolVersion::negotiate(&params.protocol_version);
        slog::info!(self.log, "session initialized";
            "requested_version" => &params.protocol_version, "protocol_version" => version.as_str(),
            "client" => %crate::telemetry::clip(&params.client_info.name),
            "client_version" => %crate::telemetry::clip(&params.client_info.version));
        self.era = Some(Era::Legacy(version));
        self.client = Some(params.clone());
        let service = &self.service;
        reply(&InitializeResult {
            protocol_version: version.as_str(),
            capabilities: service.capabilities(Era::Legacy(version)),
            server_info: service.info.implementation(),
            instructions: service.info.instructions.clone(),
        })
    }

    /// `server/discover`: versions and capabilities, cacheable (the server's identity
    /// is in `_meta`, as on every 2026-07-28 result).
    fn discover(&self) -> Reply {
        let service = &self.service;
        let mut result = serde_json::json!({
            "supportedVersions": era::supported_versions(),
            "capabilities": service.capabilities(Era::Modern),
        });
        if let Some(instructions) = &service.info.instructions {
            result["instructions"] = instructions.clone().into();
        }
        era::add_cache_fields(&mut result, era::LIST_TTL_MS, era::CacheScope::Public);
        reply(&result)
    }

    fn set_level(&self, params: &SetLevelParams) -> Reply {
        self.client_log_level
            .store(params.level as u8, Ordering::Relaxed);
        reply(&serde_json::json!({}))
    }

    /// Count and log a refusal of this session's (a bound reached, draining): a
    /// JSON-RPC error, so no HTTP status or client address.
    fn refuse(&self, reason: &'static str, e: &RpcError) {
        self.service
            .refusals
            .refuse(crate::telemetry::Refused::new(reason, &e.message));
    }

    /// Check the in-flight limit and id reuse before starting a Call.
    /// Returns the permits the Call holds while it runs (server-wide and, for a tool,
    /// per tool); refused at once when any bound is reached.
    fn admit(&self, req: &Request, tool: Option<&Tool>) -> Result<Vec<Permit>, RpcError> {
        let limit = self.service.limits.max_in_flight_per_session;
        // The stateless session serves every 2026-07-28 client of its worker: a
        // per-session bound would be a per-worker one. Those calls are bounded
        // server-wide and per tool (below).
        if self.kind != SessionKind::Stateless && self.calls.len() >= limit {
            let e = RpcError::new(
                code::SERVER_BUSY,
                format!("too many requests in flight in this session (limit {limit})"),
            )
            .with_data(serde_json::json!({ "limit": limit }));
            self.refuse(reason::IN_FLIGHT_SESSION, &e);
            return Err(e);
        }
        if self.kind != SessionKind::Stateless && self.by_id.contains_key(&req.id) {
            return Err(RpcError::invalid_request(format!(
                "request id {} is already in flight",
                req.id
            )));
        }
        let busy = |reason: &'static str, scope: &str, limit: usize| {
            let e = RpcError::new(
                code::SERVER_BUSY,
                format!("too many requests in flight ({scope} limit {limit}); retry later"),
            )
            .with_data(serde_json::json!({ "limit": limit, "scope": scope }));
            self.refuse(reason, &e);
            e
        };
        let mut permits = Vec::with_capacity(2);
        let total = &self.service.in_flight;
        permits.push(
            total
                .try_enter()
                .ok_or_else(|| busy(reason::IN_FLIGHT_TOTAL, "server", total.limit()))?,
        );
        if let Some(tool) = tool {
            let per_tool = self.service.limits.max_in_flight_per_tool;
            permits.push(tool.try_enter(per_tool).ok_or_else(|| {
                busy(
                    reason::IN_FLIGHT_TOOL,
                    "tool",
                    tool.concurrency_limit(per_tool),
                )
            })?);
        }
        Ok(permits)
    }

    /// The context a handler gets for `req`: in a session-era session the state
    /// negotiated at `initialize`; in 2026-07-28 the request's own `_meta`.
    fn call_context(
        &self,
        req: &Request,
        era: Option<Era>,
        sink: &Sink,
        plan: &CallPlan<'_>,
    ) -> CallContext {
        let (client_log_level, client_capabilities) = match era {
            Some(Era::Modern) => (
                request_log_level(req.meta.log_level),
                era::capabilities(&req.meta),
            ),
            _ => (
                self.client_log_level.clone(),
                self.client
                    .as_ref()
                    .map(|c| c.capabilities.clone())
                    .unwrap_or_default(),
            ),
        };
        CallContext {
            session_id: self.id.clone(),
            request_id: req.id.clone(),
            progress_token: req.meta.progress_token.clone(),
            sink: sink.clone(),
            client_log_level,
            storage: self.service.storage.clone(),
            peer: self.peer.clone(),
            client_capabilities,
            modern: era == Some(Era::Modern),
            inputs: plan.inputs.clone(),
            task: plan.task.clone(),
            client_request_timeout: self.service.limits.client_request_timeout,
            notifier: self.service.notifier.clone(),
            blocking: self.service.blocking.clone(),
            log: plan.log.clone(),
        }
    }

    /// The task link of a call of `tool`: `None` for a tool that never runs as a
    /// task or in the session era; -32021 at once for a tool that only runs as a task
    /// when the request did not declare the extension.
    fn task_slot(
        &self,
        x: &Exchange<'_>,
        tool: &Tool,
    ) -> Result<Option<Arc<crate::tasks::TaskSlot>>, RpcError> {
        use crate::tasks::{TaskSlot, TaskSupport};
        let (support, _) = tool.task_support();
        if support == TaskSupport::Forbidden || x.era != Some(Era::Modern) {
            return Ok(None);
        }
        let declared = crate::tasks::declared(&era::capabilities(&x.req.meta));
        if support == TaskSupport::Required && !declared {
            return Err(crate::tasks::missing_extension(&format!(
                "tool `{}`",
                tool.def().name
            )));
        }
        Ok(Some(Arc::new(TaskSlot::new(
            self.service.tasks.clone(),
            support,
            declared,
        ))))
    }

    /// `tasks/get`, `tasks/update`, `tasks/cancel`: for requests that declare the
    /// extension (-32021 otherwise); an unknown task is -32602.
    fn task_request(&self, req: &Request) -> Reply {
        if !crate::tasks::declared(&era::capabilities(&req.meta)) {
            return Err(crate::tasks::missing_extension(req.method()));
        }
        let tasks = &self.service.tasks;
        match &req.call {
            ClientRequest::TasksGet(p) => reply(&tasks.get(&p.task_id)?),
            ClientRequest::TasksUpdate(p) => {
                tasks.update(&p.task_id, p.input_responses.as_ref())?;
                reply(&serde_json::json!({}))
            }
            ClientRequest::TasksCancel(p) => {
                tasks.cancel(&p.task_id)?;
                reply(&serde_json::json!({}))
            }
            other => Err(RpcError::method_not_found(other.method())),
        }
    }

    /// A 2026-07-28 call's client input: what a retry answers (its `requestState`
    /// verified: -32602 if tampered with, expired or another request's). `None` in
    /// the session era, where the client is asked in-stream.
    fn inputs(
        &self,
        era: Option<Era>,
        binding: impl FnOnce() -> crate::mrtr::Binding,
        responses: Option<&serde_json::Value>,
        state: Option<&str>,
    ) -> Result<Option<Arc<crate::mrtr::Inputs>>, RpcError> {
        if era != Some(Era::Modern) {
            return Ok(None);
        }
        let inputs =
            crate::mrtr::Inputs::new(self.service.mrtr.clone(), binding(), responses, state)?;
        Ok(Some(Arc::new(inputs)))
    }

    /// Admit `req` (in-flight bounds), then start a Call child actor running the work
    /// that `work` builds from the handler's context.
    fn start_call(
        &mut self,
        x: &Exchange<'_>,
        ctx: &mut Context<Self>,
        plan: CallPlan<'_>,
        work: impl FnOnce(CallContext) -> Work,
    ) -> Result<(), RpcError> {
        let Exchange {
            req,
            era,
            sink,
            cancel_on_close,
        } = *x;
        let permits = self.admit(req, plan.tool)?;
        let mut work = work(self.call_context(req, era, sink, &plan));
        if let Some(inputs) = &plan.inputs {
            work = crate::mrtr::until_input(work, inputs.clone());
        }
        self.next_seq += 1;
        let seq = self.next_seq;
        let addr = Call::new(CallSpec {
            id: req.id.clone(),
            seq,
            kind: plan.kind,
            work,
            sink: sink.clone(),
            timeout: plan.timeout,
            session: ctx.address().recipient(),
            log: plan.log,
            metrics: self.service.metrics.clone(),
            permits,
            envelope: (era == Some(Era::Modern)).then(|| self.service.envelope().clone()),
            cancel_on_close,
            max_result_bytes: self.service.limits.max_result_bytes,
            task: plan.task.clone(),
            task_timeout: self.service.limits.task_timeout,
            log_calls: self.service.log_calls,
        })
        .start();
        if self.kind != SessionKind::Stateless {
            self.by_id.insert(req.id.clone(), seq);
        }
        self.calls.insert(
            seq,
            Running {
                id: req.id.clone(),
                addr,
            },
        );
        Ok(())
    }

    /// A logger for one call of `req`, tagged with `key` = `value` (the tool, URI or
    /// prompt) and, when the request carries W3C trace context, its trace id.
    /// Client-chosen text (the id, a URI, an unknown name) is clipped.
    fn call_log(&self, req: &Request, key: &'static str, value: &str) -> Logger {
        use crate::telemetry::clip;
        let id = clip(&req.id.to_string()).into_owned();
        let (method, value) = (req.method().to_owned(), clip(value).into_owned());
        match req.meta.trace_id() {
            Some(trace) => self
                .log
                .new(slog::o!("request_id" => id, "method" => method,
                key => value, "trace_id" => trace.to_owned())),
            None => self
                .log
                .new(slog::o!("request_id" => id, "method" => method, key => value)),
        }
    }

    /// `tools/call`: start a Call; `Err` is an immediate JSON-RPC error answer.
    fn call_tool(
        &mut self,
        x: &Exchange<'_>,
        params: &CallToolParams,
        ctx: &mut Context<Self>,
    ) -> Result<(), RpcError> {
        let Some(tool) = self.service.tools.get(&params.name).cloned() else {
            return Err(RpcError::invalid_params(format!(
                "unknown tool: {}",
                params.name
            )));
        };
        let binding = || {
            let arguments = params.arguments.clone().unwrap_or(serde_json::Value::Null);
            crate::mrtr::Binding::new(method::TOOLS_CALL, &params.name, arguments)
        };
        let plan = CallPlan {
            kind: CallKind::Tool(Arc::from(params.name.as_str())),
            tool: Some(&tool),
            log: self.call_log(x.req, "tool", &params.name),
            timeout: tool
                .timeout_override()
                .unwrap_or(self.service.limits.call_timeout),
            inputs: self.inputs(
                x.era,
                binding,
                params.input_responses.as_ref(),
                params.request_state.as_deref(),
            )?,
            task: self.task_slot(x, &tool)?,
        };
        let arguments = params.arguments.clone();
        let handler = tool.clone();
        let begins_at_once = plan.task.is_some() && !tool.task_support().1;
        self.start_call(x, ctx, plan, move |call_ctx| {
            Box::pin(async move {
                if begins_at_once {
                    call_ctx.begin_task().await?;
                }
                Answer::tool(&handler.invoke(call_ctx, arguments).await?)
            })
        })
    }

    /// `resources/read`: start a Call running the resource's reader.
    fn read_resource(
        &mut self,
        x: &Exchange<'_>,
        params: &UriParams,
        ctx: &mut Context<Self>,
    ) -> Result<(), RpcError> {
        let Some(read) = self.service.resources.bind(&params.uri) else {
            return Err(crate::resources::not_found(&params.uri));
        };
        let binding = || {
            crate::mrtr::Binding::new(method::RESOURCES_READ, &params.uri, serde_json::Value::Null)
        };
        let plan = CallPlan {
            kind: CallKind::Method(method::RESOURCES_READ),
            tool: None,
            log: self.call_log(x.req, "uri", &params.uri),
            timeout: self.service.limits.call_timeout,
            inputs: self.inputs(
                x.era,
                binding,
                params.input_responses.as_ref(),
                params.request_state.as_deref(),
            )?,
            task: None,
        };
        let modern = x.era == Some(Era::Modern);
        self.start_call(x, ctx, plan, move |call_ctx| {
            Box::pin(async move {
                let contents = read(call_ctx).await?;
                let mut result = serde_json::json!({ "contents": contents });
                if modern {
                    // Resource contents may change at any moment (kv values do).
                    era::add_cache_fields(&mut result, 0, era::CacheScope::Private);
                }
                reply(&result)
            })
        })
    }

    /// `prompts/get`: start a Call running the prompt's handler.
    fn get_prompt(
        &mut self,
        x: &Exchange<'_>,
        params: &GetPromptParams,
        ctx: &mut Context<Self>,
    ) -> Result<(), RpcError> {
        let get = self
            .service
            .prompts
            .bind(&params.name, params.arguments.clone())?;
        let binding = || {
            // Sorted (a JSON object), so that equal arguments give equal digests.
            let arguments = params
                .arguments
                .iter()
                .map(|(k, v)| (k.clone(), serde_json::Value::from(v.as_str())))
                .collect::<serde_json::Map<_, _>>();
            crate::mrtr::Binding::new(method::PROMPTS_GET, &params.name, arguments.into())
        };
        let plan = CallPlan {
            kind: CallKind::Method(method::PROMPTS_GET),
            tool: None,
            log: self.call_log(x.req, "prompt", &params.name),
            timeout: self.service.limits.call_timeout,
            inputs: self.inputs(
                x.era,
                binding,
                params.input_responses.as_ref(),
                params.request_state.as_deref(),
            )?,
            task: None,
        };
        self.start_call(x, ctx, plan, move |call_ctx| {
            Box::pin(async move { reply(&get(call_ctx).await?) })
        })
    }

    /// One page of a list method: `{key: [def(item)...], nextCursor?}`, plus the cache
    /// fields in 2026-07-28.
    fn list_page<T, D: Serialize>(
        &self,
        params: &PaginatedParams,
        era: Option<Era>,
        key: &str,
        all: &[T],
        def: impl Fn(&T) -> &D,
    ) -> Reply {
        let (start, end, next) = page(
            params.cursor.as_deref(),
            all.len(),
            self.service.limits.page_size,
        )?;
        let items: Vec<&D> = all[start..end].iter().map(def).collect();
        let mut map = serde_json::Map::new();
        map.insert(
            key.to_owned(),
            serde_json::to_value(items).map_err(RpcError::internal)?,
        );
        if let Some(next) = next {
            map.insert("nextCursor".to_owned(), next.into());
        }
        let mut result = serde_json::Value::Object(map);
        if era == Some(Era::Modern) {
            era::add_cache_fields(&mut result, era::LIST_TTL_MS, era::CacheScope::Public);
        }
        reply(&result)
    }

    /// From now on, resource updates reach this session (once; the stream belongs
    /// to the actor's context, so it ends with the session).
    fn forward_updates(&mut self, ctx: &mut Context<Self>) {
        if self.forwarding_updates {
            return;
        }
        self.forwarding_updates = true;
        let updates =
            futures::stream::unfold(self.service.notifier.subscribe(), |mut rx| async move {
                loop {
                    match rx.recv().await {
                        Ok(change) => return Some((Changed(change), rx)),
                        Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => return None,
                    }
                }
            });
        ctx.add_message_stream(updates);
    }

    fn subscribe(&mut self, params: &UriParams, on: bool, ctx: &mut Context<Self>) -> Reply {
        if on {
            let new = !self.subscriptions.contains(&params.uri);
            self.check_subscription(&params.uri, self.subscriptions.len(), new)?;
            if !self.service.resources.exists(&params.uri) {
                return Err(crate::resources::not_found(&params.uri));
            }
            self.forward_updates(ctx);
            self.subscriptions.insert(params.uri.clone());
        } else {
            self.subscriptions.remove(&params.uri);
        }
        reply(&serde_json::json!({}))
    }

    /// A subscription to `uri` when `held` are held already (`new`: it is not one of
    /// them): within the count and URI-size limits (-32602 naming the limit otherwise).
    fn check_subscription(&self, uri: &str, held: usize, new: bool) -> Result<(), RpcError> {
        let limits = &self.service.limits;
        if uri.len() > limits.max_uri_bytes {
            return Err(over_limit(
                "limits.max_uri_bytes",
                limits.max_uri_bytes,
                format!("a URI of {} bytes", uri.len()),
            ));
        }
        if new && held >= limits.max_subscriptions {
            return Err(over_limit(
                "limits.max_subscriptions",
                limits.max_subscriptions,
                "one more subscription".to_owned(),
            ));
        }
        Ok(())
    }

    /// `subscriptions/listen`: acknowledge what will be honoured, then keep the
    /// stream: its notifications carry the request id as the subscription id. The
    /// request is answered when the stream ends at shutdown (`Drain`).
    fn listen(
        &mut self,
        req: &Request,
        params: &ListenParams,
        sink: &Sink,
        ctx: &mut Context<Self>,
    ) -> Result<(), RpcError> {
        let asked = &params.notifications;
        let wanted = asked.resource_subscriptions.as_deref().unwrap_or_default();
        let held: usize = self
            .listens
            .iter()
            .filter_map(|l| l.filter.resource_subscriptions.as_ref())
            .map(Vec::len)
            .sum();
        for (n, uri) in wanted.iter().enumerate() {
            self.check_subscription(uri, held + n, true)?;
        }
        let resources = &self.service.resources;
        let honoured = SubscriptionFilter {
            // The lists are fixed for the server's life: a change would be sent, and
            // none happens.
            tools_list_changed: asked.tools_list_changed.filter(|&on| on),
            prompts_list_changed: asked.prompts_list_changed.filter(|&on| on),
            resources_list_changed: asked.resources_list_changed.filter(|&on| on),
            resource_subscriptions: asked.resource_subscriptions.as_ref().map(|uris| {
                uris.iter()
                    .filter(|u| resources.exists(u))
                    .cloned()
                    .collect()
            }),
        };
        if honoured != SubscriptionFilter::default() {
            self.forward_updates(ctx);
        }
        let params = serde_json::json!({
            "notifications": honoured,
            "_meta": { META_SUBSCRIPTION_ID: &req.id },
        });
        sink.notification(encode_notification(
            method::SUBSCRIPTIONS_ACKNOWLEDGED,
            Some(&params),
        ));
        slog::info!(self.log, "listening"; "request_id" => req.id.to_string(),
            "resources" => honoured.resource_subscriptions.as_ref().map_or(0, Vec::len));
        self.listens.push(Listen {
            id: req.id.clone(),
            filter: honoured,
            sink: sink.clone(),
        });
        if self.kind == SessionKind::Listener {
            // The stream is the subscription: the session ends when the client
            // closes it (the transport drops the receiving end).
            let closed = sink.clone();
            ctx.spawn(
                async move { closed.closed().await }
                    .into_actor(self)
                    .map(|(), act, ctx| {
                        slog::info!(act.log, "listen stream closed by the client");
                        act.listens.clear();
                        ctx.stop();
                    }),
            );
        }
        Ok(())
    }

    /// End every listen stream with its final result (at shutdown).
    fn end_listens(&mut self) {
        for listen in self.listens.drain(..) {
            let result = self.service.envelope().listen_closed(&listen.id);
            listen
                .sink
                .response(Encoded::result(encode_result(&listen.id, &result)));
        }
    }

    fn complete(&self, params: &CompleteParams) -> Reply {
        let context = params.context.clone().unwrap_or_default().arguments;
        let (values, total, has_more) = self.service.prompts.complete(
            &params.reference,
            &params.argument.name,
            &params.argument.value,
            &context,
        );
        reply(&serde_json::json!({
            "completion": { "values": values, "total": total, "hasMore": has_more }
        }))
    }

    fn on_notification(&mut self, n: Notification) {
        match n {
            Notification::Initialized => {
                slog::debug!(self.log, "client initialized");
            }
            Notification::Cancelled(Some(p)) => {
                if let Some(pos) = self.listens.iter().position(|l| l.id == p.request_id) {
                    // A cancelled listen ends its stream without an answer.
                    self.listens.swap_remove(pos);
                    return;
                }
                let running = self
                    .by_id
                    .get(&p.request_id)
                    .and_then(|seq| self.calls.get(seq));
                if let Some(running) = running {
                    slog::debug!(self.log, "cancel requested";
                        "request_id" => p.request_id.to_string(), "reason" => p.reason);
                    running.addr.do_send(Cancel::Client);
                }
            }
            Notification::Cancelled(None) => {
                slog::debug!(self.log, "malformed notifications/cancelled ignored");
            }
            Notification::Other(other) => {
                // JSON-RPC: notifications are never answered, even unknown ones.
                slog::debug!(self.log, "notification ignored"; "method" => other);
            }
        }
    }

    fn wake_idle_waiters(&mut self) {
        if self.calls.is_empty() {
            for w in self.idle_waiters.drain(..) {
                let _ = w.send(());
            }
        }
    }
}

/// -32602 for a request that would go past `limit` (named by its config key).
fn over_limit(key: &str, limit: usize, what: String) -> RpcError {
    RpcError::invalid_params(format!("{what} exceeds {key} ({limit})"))
        .with_data(serde_json::json!({ "limit": key, "max": limit }))
}

/// Resolve a pagination cursor into `(start, end, next_cursor)` over `len` items.
///
/// Cursors are opaque to clients; here they are the decimal offset of the page.
pub fn page(
    cursor: Option<&str>,
    len: usize,
    page_size: usize,
) -> Result<(usize, usize, Option<String>), RpcError> {
    let start = match cursor {
        None => 0,
        Some(c) => match c.parse::<usize>() {
            Ok(n) if n <= len => n,
            _ => return Err(RpcError::invalid_params(format!("invalid cursor: {c:?}"))),
        },
    };
    let end = start.saturating_add(page_size).min(len);
    let next = (end < len).then(|| end.to_string());
    Ok((start, end, next))
}

impl Actor for Session {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Context<Self>) {
        slog::info!(self.log, "session started"; "kind" => format!("{:?}", self.kind));
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        for (_, running) in self.calls.drain() {
            running.addr.do_send(Cancel::Client);
        }
        self.by_id.clear();
        self.wake_idle_waiters();
        if let Some(root) = &self.root {
            root.do_send(SessionEnded {
                id: self.id.clone(),
            });
        }
        slog::info!(self.log, "session ended");
    }
}

impl Handler<Inbound> for Session {
    type Result = ();

    fn handle(&mut self, msg: Inbound, ctx: &mut Context<Self>) {
        match msg.payload {
            Payload::Single(m) => self.on_message(m, &msg.sink, msg.cancel_on_close, ctx),
            Payload::Batch(items) => {
                if !self.version().is_some_and(ProtocolVersion::allows_batch) {
                    let e = RpcError::invalid_request(
                        "JSON-RPC batches are only allowed with protocol version 2025-03-26",
                    );
                    msg.sink
                        .response(Encoded::error(encode_error(None, &e), e.code));
                    return;
                }
                let expected = items
                    .iter()
                    .filter(|m| {
                        !matches!(m, Ok(Message::Notification(_)) | Ok(Message::Response(_)))
                    })
                    .count();
                let sink = msg.sink.batch(expected);
                for item in items {
                    self.on_message(item, &sink, false, ctx);
                }
            }
        }
    }
}

impl Handler<CallFinished> for Session {
    type Result = ();

    fn handle(&mut self, msg: CallFinished, _ctx: &mut Context<Self>) {
        if let Some(running) = self.calls.remove(&msg.seq) {
            if self.by_id.get(&running.id) == Some(&msg.seq) {
                self.by_id.remove(&running.id);
            }
        }
        self.wake_idle_waiters();
    }
}

impl Handler<Drain> for Session {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: Drain, ctx: &mut Context<Self>) -> Self::Result {
        self.draining = true;
        self.end_listens();
        let (tx, rx) = oneshot::channel();
        self.idle_waiters.push(tx);
        self.wake_idle_waiters();
        if !self.calls.is_empty() {
            slog::info!(self.log, "draining"; "in_flight" => self.calls.len(),
                "grace_ms" => msg.grace.as_millis() as u64);
            ctx.run_later(msg.grace, |act, _ctx| {
                for running in act.calls.values() {
                    running.addr.do_send(Cancel::Shutdown);
                }
            });
        }
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

/// Something changed (from [`crate::runtime::service::Notifier`]).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Changed(pub Change);

impl Session {
    /// Tell the session-era subscriber (on the standalone stream) about `change`.
    fn tell_subscriber(&self, change: &Change) {
        let Change::Resource(uri) = change else {
            return;
        };
        if !self.subscriptions.contains(&**uri) {
            return;
        }
        if let Some(sink) = &self.standalone {
            let params = serde_json::json!({ "uri": &**uri });
            sink.notification(encode_notification(
                method::RESOURCES_UPDATED,
                Some(&params),
            ));
        }
    }

    /// Tell every listen stream whose filter asked for `change`.
    fn tell_listeners(&self, change: &Change) {
        for listen in &self.listens {
            let f = &listen.filter;
            let (wanted, method) = match change {
                Change::Resource(uri) => (
                    f.resource_subscriptions
                        .as_ref()
                        .is_some_and(|uris| uris.iter().any(|u| **u == **uri)),
                    method::RESOURCES_UPDATED,
                ),
                Change::ToolsList => (
                    f.tools_list_changed == Some(true),
                    method::TOOLS_LIST_CHANGED,
                ),
                Change::PromptsList => (
                    f.prompts_list_changed == Some(true),
                    method::PROMPTS_LIST_CHANGED,
                ),
                Change::ResourcesList => (
                    f.resources_list_changed == Some(true),
                    method::RESOURCES_LIST_CHANGED,
                ),
            };
            if !wanted {
                continue;
            }
            let mut params = serde_json::json!({ "_meta": { META_SUBSCRIPTION_ID: &listen.id } });
            if let Change::Resource(uri) = change {
                params["uri"] = serde_json::Value::from(&**uri);
            }
            listen
                .sink
                .notification(encode_notification(method, Some(&params)));
        }
    }
}

impl Handler<Changed> for Session {
    type Result = ();

    fn handle(&mut self, msg: Changed, _ctx: &mut Context<Self>) {
        self.tell_subscriber(&msg.0);
        self.tell_listeners(&msg.0);
    }
}

impl Handler<SetStandalone> for Session {
    type Result = ();

    fn handle(&mut self, msg: SetStandalone, _ctx: &mut Context<Self>) {
        self.standalone = Some(msg.0);
    }
}

impl Handler<Close> for Session {
    type Result = ();

    fn handle(&mut self, _msg: Close, ctx: &mut Context<Self>) {
        ctx.stop();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Limits, LogLevel};
    use crate::protocol::jsonrpc;
    use crate::runtime::root::{CloseSession, OpenSession, Registry, Root};
    use crate::storage::Storage;

    /// Send `json` to the session and return the next frame.
    async fn exchange(
        addr: &Addr<Session>,
        json: &str,
        rx: &mut crate::sink::FrameReceiver,
        sink: &Sink,
    ) -> String {
        addr.send(Inbound::new(jsonrpc::parse(json.as_bytes()), sink.clone()))
            .await
            .unwrap();
        rx.recv().await.unwrap().json
    }

    #[actix_rt::test]
    async fn only_subscribed_sessions_get_resource_updates_and_none_outlive_their_session() {
        let log = crate::telemetry::logging::logger_to(std::io::sink(), LogLevel::Info);
        let service = crate::builtin_service(Storage::temporary().unwrap(), Limits::default(), log);
        let service = Arc::new(service.unwrap());
        let root = Root::new(service.clone(), Registry::default()).start();
        let mut sessions = Vec::new();
        for _ in 0..3 {
            let entry = root
                .send(OpenSession {
                    arbiter: None,
                    kind: SessionKind::Connection,
                })
                .await
                .unwrap()
                .unwrap();
            let (sink, mut rx) = Sink::channel();
            let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
            assert!(exchange(&entry.addr, init, &mut rx, &sink)
                .await
                .contains("\"result\""));
            sessions.push((entry, sink, rx));
        }
        // Sessions without a subscription hold no receiver (and no task) at all.
        assert_eq!(service.notifier.receivers(), 0);

        let (entry, sink, rx) = &mut sessions[0];
        let (standalone, mut updates) = Sink::channel();
        entry.addr.send(SetStandalone(standalone)).await.unwrap();
        let subscribe =
            r#"{"jsonrpc":"2.0","id":1,"method":"resources/subscribe","params":{"uri":"kv://a"}}"#;
        assert!(exchange(&entry.addr, subscribe, rx, sink)
            .await
            .contains("\"result\""));
        // A second subscription reuses the same receiver.
        let subscribe =
            r#"{"jsonrpc":"2.0","id":2,"method":"resources/subscribe","params":{"uri":"kv://b"}}"#;
        assert!(exchange(&entry.addr, subscribe, rx, sink)
            .await
            .contains("\"result\""));
        assert_eq!(service.notifier.receivers(), 1);
        service.notifier.resource_updated("kv://a");
        let update = updates.recv().await.unwrap();
        assert!(
            update.json.contains("notifications/resources/updated"),
            "{}",
            update.json
        );
        assert!(update.json.contains("kv://a"), "{}", update.json);

        // Ending the session drops its receiver with it, with no update needed.
        assert!(root.send(CloseSession(entry.id.clone())).await.unwrap());
        for _ in 0..1000 {
            if service.notifier.receivers() == 0 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        assert_eq!(service.notifier.receivers(), 0);
    }

    #[test]
    fn pages_cover_every_item_once() {
        assert_eq!(page(None, 5, 2).unwrap(), (0, 2, Some("2".into())));
        assert_eq!(page(Some("2"), 5, 2).unwrap(), (2, 4, Some("4".into())));
        assert_eq!(page(Some("4"), 5, 2).unwrap(), (4, 5, None));
        assert_eq!(page(None, 4, 2).unwrap(), (0, 2, Some("2".into())));
        assert_eq!(page(Some("2"), 4, 2).unwrap(), (2, 4, None));
        assert_eq!(page(None, 0, 2).unwrap(), (0, 0, None));
        assert!(page(Some("6"), 5, 2).is_err());
        assert!(page(Some("x"), 5, 2).is_err());
    }
}
