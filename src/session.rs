//! The Session actor: one per client session (DESIGN §2).
//!
//! A session holds the negotiated protocol state (version, client info, log level) and
//! the map of its in-flight calls. Cheap methods (`initialize`, `ping`, `tools/list`,
//! `logging/setLevel`) are answered inline; `tools/call` starts a [`Call`] child actor.
//!
//! Invariants:
//! - at most `limits.max_in_flight_per_session` calls run at once; one more is refused
//!   at once with JSON-RPC -32000, never queued;
//! - stopping a session stops its calls (no orphan keeps running);
//! - every request gets exactly one answer unless the client cancelled it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Instant;

use actix::prelude::*;
use futures::channel::oneshot;
use serde::{Deserialize, Serialize};
use slog::Logger;
use tokio::sync::broadcast;

use crate::call::{
    reply, Call, CallContext, CallFinished, CallKind, CallSpec, Cancel, Peer, Reply, Work,
};
use crate::gate::Permit;
use crate::protocol::jsonrpc::{decode_params, encode_error, encode_result, Notification};
use crate::protocol::mcp::{
    method, CallToolParams, CancelledParams, CompleteParams, GetPromptParams, InitializeParams,
    InitializeResult, ListChangedCapability, PaginatedParams, RequestMeta, ResourcesCapability,
    ServerCapabilities, SetLevelParams, UriParams,
};
use crate::protocol::{
    code, LoggingLevel, Message, Payload, ProtocolVersion, Rejected, Request, RequestId, RpcError,
};
use crate::service::Service;
use crate::sink::Sink;
use crate::telemetry::metrics::reason;
use crate::tools::Tool;

/// Level of `notifications/message` a client gets before it calls `logging/setLevel`.
pub const DEFAULT_CLIENT_LOG_LEVEL: LoggingLevel = LoggingLevel::Info;

/// One transport payload (a message or a batch) for this session, with the sink its
/// answers go to.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Inbound {
    /// What arrived.
    pub payload: Payload,
    /// Where answers and related notifications go.
    pub sink: Sink,
}

/// Wait until no call is in flight; after `grace`, cancel the rest with a
/// "shutting down" answer. New requests are refused from now on.
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

/// What differs between the kinds of call a session starts.
struct CallPlan<'a> {
    kind: CallKind,
    /// The tool, for its concurrency bound.
    tool: Option<&'a Tool>,
    meta: Option<RequestMeta>,
    log: Logger,
    timeout: std::time::Duration,
}

struct Running {
    seq: u64,
    addr: Addr<Call>,
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
    version: Option<ProtocolVersion>,
    client: Option<InitializeParams>,
    client_log_level: Arc<AtomicU8>,
    calls: HashMap<RequestId, Running>,
    next_seq: u64,
    draining: bool,
    idle_waiters: Vec<oneshot::Sender<()>>,
    root: Option<Recipient<SessionEnded>>,
    standalone: Option<Sink>,
    peer: Peer,
    subscriptions: std::collections::HashSet<String>,
    /// Whether resource updates are forwarded to this session (since its first
    /// `resources/subscribe`).
    forwarding_updates: bool,
    /// Save the session record at `initialize` (HTTP sessions; not stdio).
    persistent: bool,
    log: Logger,
}

impl Session {
    /// A new, uninitialized session.
    pub fn new(
        id: Arc<str>,
        service: Arc<Service>,
        root: Option<Recipient<SessionEnded>>,
    ) -> Session {
        let log = service.log.new(slog::o!("session" => id.to_string()));
        Session {
            id,
            service,
            version: None,
            client: None,
            client_log_level: Arc::new(AtomicU8::new(DEFAULT_CLIENT_LOG_LEVEL as u8)),
            calls: HashMap::new(),
            next_seq: 0,
            draining: false,
            idle_waiters: Vec::new(),
            root,
            standalone: None,
            peer: Peer::default(),
            subscriptions: Default::default(),
            forwarding_updates: false,
            persistent: false,
            log,
        }
    }

    /// Save the session record at `initialize`, before answering it.
    pub fn persistent(mut self) -> Session {
        self.persistent = true;
        self
    }

    /// A session rebuilt from its saved record (after a restart): already initialized.
    pub fn restored(mut self, record: SessionRecord) -> Session {
        self.version = Some(ProtocolVersion::negotiate(&record.protocol_version));
        self.client = Some(record.client);
        self.persistent = true;
        slog::info!(self.log, "session restored"; "protocol_version" => record.protocol_version);
        self
    }

    /// The negotiated version, once initialized.
    pub fn version(&self) -> Option<ProtocolVersion> {
        self.version
    }

    fn on_message(&mut self, msg: Result<Message, Rejected>, sink: &Sink, ctx: &mut Context<Self>) {
        match msg {
            Ok(Message::Request(req)) => self.on_request(req, sink, ctx),
            Ok(Message::Notification(n)) => self.on_notification(n),
            Ok(Message::Response(r)) => {
                if !self.peer.complete(r.id.clone(), r.outcome) {
                    // JSON-RPC: a response is never answered, even an unexpected one.
                    slog::debug!(self.log, "unsolicited response dropped"; "request_id" => r.id.to_string());
                }
            }
            Err(rejected) => {
                slog::debug!(self.log, "invalid message"; "error" => &rejected.error.message);
                sink.response(encode_error(rejected.id.as_ref(), &rejected.error));
            }
        }
    }

    fn on_request(&mut self, req: Request, sink: &Sink, ctx: &mut Context<Self>) {
        let started = Instant::now();
        let reply: Option<Reply> = if self.draining {
            self.service.metrics.reject(reason::SHUTTING_DOWN);
            Some(Err(RpcError::new(
                code::SERVER_BUSY,
                "server is shutting down",
            )))
        } else {
            match req.method.as_str() {
                method::INITIALIZE => Some(self.initialize(&req)),
                method::PING => Some(reply(&serde_json::json!({}))),
                _ if self.version.is_none() => Some(Err(RpcError::invalid_request(
                    "session not initialized: send `initialize` first",
                ))),
                method::TOOLS_LIST => {
                    Some(self.list_page(&req, "tools", self.service.tools.as_slice(), |t| t.def()))
                }
                method::LOGGING_SET_LEVEL => Some(self.set_level(&req)),
                method::TOOLS_CALL => self.call_tool(&req, sink, ctx).err().map(Err),
                method::RESOURCES_LIST => {
                    let all = self.service.resources.resources();
                    Some(self.list_page(&req, "resources", all, |r| r.def()))
                }
                method::RESOURCES_TEMPLATES_LIST => {
                    let all = self.service.resources.templates();
                    Some(self.list_page(&req, "resourceTemplates", all, |t| t.def()))
                }
                method::RESOURCES_READ => self.read_resource(&req, sink, ctx).err().map(Err),
                method::RESOURCES_SUBSCRIBE => Some(self.subscribe(&req, true, ctx)),
                method::RESOURCES_UNSUBSCRIBE => Some(self.subscribe(&req, false, ctx)),
                method::PROMPTS_LIST => Some(self.list_page(
                    &req,
                    "prompts",
                    self.service.prompts.prompts(),
                    |p| p.def(),
                )),
                method::PROMPTS_GET => self.get_prompt(&req, sink, ctx).err().map(Err),
                method::COMPLETION_COMPLETE => Some(self.complete(&req)),
                other => Some(Err(RpcError::method_not_found(other))),
            }
        };
        if let Some(reply) = reply {
            if req.method == method::INITIALIZE && reply.is_ok() && self.persistent {
                self.answer_after_saving(req, reply, sink, started, ctx);
                return;
            }
            let outcome = if reply.is_ok() { "ok" } else { "error" };
            self.service
                .metrics
                .request(&req.method, outcome, started.elapsed().as_secs_f64());
            slog::debug!(self.log, "request"; "method" => &req.method,
                "request_id" => req.id.to_string(), "success" => reply.is_ok(),
                "duration_ms" => started.elapsed().as_secs_f64() * 1000.0);
            sink.response(match &reply {
                Ok(raw) => encode_result(&req.id, raw),
                Err(e) => encode_error(Some(&req.id), e),
            });
        }
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
            protocol_version: self.version.map_or("", ProtocolVersion::as_str).to_owned(),
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
                sink.response(match &reply {
                    Ok(raw) => encode_result(&req.id, raw),
                    Err(e) => encode_error(Some(&req.id), e),
                });
            }
            .into_actor(self),
        );
    }

    fn initialize(&mut self, req: &Request) -> Reply {
        if self.version.is_some() {
            return Err(RpcError::invalid_request("session already initialized"));
        }
        let params: InitializeParams = decode_params(req.params.as_deref())?;
        let version = ProtocolVersion::negotiate(&params.protocol_version);
        slog::info!(self.log, "session initialized";
            "requested_version" => &params.protocol_version, "protocol_version" => version.as_str(),
            "client" => &params.client_info.name, "client_version" => &params.client_info.version);
        self.version = Some(version);
        self.client = Some(params);
        let service = &self.service;
        reply(&InitializeResult {
            protocol_version: version.as_str(),
            capabilities: ServerCapabilities {
                tools: Some(ListChangedCapability {
                    list_changed: false,
                }),
                logging: Some(Default::default()),
                resources: (!service.resources.is_empty()).then_some(ResourcesCapability {
                    subscribe: true,
                    list_changed: false,
                }),
                prompts: (!service.prompts.is_empty()).then(ListChangedCapability::default),
                completions: service.prompts.has_completions().then(Default::default),
            },
            server_info: service.info.implementation(),
            instructions: service.info.instructions.clone(),
        })
    }

    fn set_level(&self, req: &Request) -> Reply {
        let params: SetLevelParams = decode_params(req.params.as_deref())?;
        self.client_log_level
            .store(params.level as u8, Ordering::Relaxed);
        reply(&serde_json::json!({}))
    }

    /// Check the in-flight limit and id reuse before starting a Call.
    /// Returns the permits the Call holds while it runs (server-wide and, for a tool,
    /// per tool); refused at once when any bound is reached.
    fn admit(&self, req: &Request, tool: Option<&Tool>) -> Result<Vec<Permit>, RpcError> {
        let limit = self.service.limits.max_in_flight_per_session;
        if self.calls.len() >= limit {
            self.service.metrics.reject(reason::IN_FLIGHT_SESSION);
            return Err(RpcError::new(
                code::SERVER_BUSY,
                format!("too many requests in flight in this session (limit {limit})"),
            )
            .with_data(serde_json::json!({ "limit": limit })));
        }
        if self.calls.contains_key(&req.id) {
            return Err(RpcError::invalid_request(format!(
                "request id {} is already in flight",
                req.id
            )));
        }
        let busy = |reason: &'static str, scope: &str, limit: usize| {
            self.service.metrics.reject(reason);
            RpcError::new(
                code::SERVER_BUSY,
                format!("too many requests in flight ({scope} limit {limit}); retry later"),
            )
            .with_data(serde_json::json!({ "limit": limit, "scope": scope }))
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

    /// The context a handler gets for `req`.
    fn call_context(
        &self,
        req: &Request,
        meta: Option<RequestMeta>,
        sink: &Sink,
        log: &Logger,
    ) -> CallContext {
        CallContext {
            session_id: self.id.clone(),
            request_id: req.id.clone(),
            progress_token: meta.and_then(|m| m.progress_token),
            sink: sink.clone(),
            client_log_level: self.client_log_level.clone(),
            storage: self.service.storage.clone(),
            peer: self.peer.clone(),
            client_capabilities: self
                .client
                .as_ref()
                .map(|c| c.capabilities.clone())
                .unwrap_or_default(),
            client_request_timeout: self.service.limits.client_request_timeout,
            notifier: self.service.notifier.clone(),
            blocking: self.service.blocking.clone(),
            log: log.clone(),
        }
    }

    /// Admit `req` (in-flight bounds), then start a Call child actor running the work
    /// that `work` builds from the handler's context.
    fn start_call(
        &mut self,
        req: &Request,
        sink: &Sink,
        ctx: &mut Context<Self>,
        plan: CallPlan<'_>,
        work: impl FnOnce(CallContext) -> Work,
    ) -> Result<(), RpcError> {
        let permits = self.admit(req, plan.tool)?;
        let work = work(self.call_context(req, plan.meta, sink, &plan.log));
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
        })
        .start();
        self.calls.insert(req.id.clone(), Running { seq, addr });
        Ok(())
    }

    /// `tools/call`: start a Call; `Err` is an immediate JSON-RPC error answer.
    fn call_tool(
        &mut self,
        req: &Request,
        sink: &Sink,
        ctx: &mut Context<Self>,
    ) -> Result<(), RpcError> {
        let params: CallToolParams = decode_params(req.params.as_deref())?;
        let Some(tool) = self.service.tools.get(&params.name).cloned() else {
            return Err(RpcError::invalid_params(format!(
                "unknown tool: {}",
                params.name
            )));
        };
        let plan = CallPlan {
            kind: CallKind::Tool(Arc::from(params.name.as_str())),
            tool: Some(&tool),
            meta: params.meta,
            log: self.log.new(slog::o!("request_id" => req.id.to_string(),
                "method" => method::TOOLS_CALL, "tool" => params.name.clone())),
            timeout: tool
                .timeout_override()
                .unwrap_or(self.service.limits.call_timeout),
        };
        let arguments = params.arguments;
        let handler = tool.clone();
        self.start_call(req, sink, ctx, plan, move |call_ctx| {
            Box::pin(async move { reply(&handler.invoke(call_ctx, arguments).await) })
        })
    }

    /// `resources/read`: start a Call running the resource's reader.
    fn read_resource(
        &mut self,
        req: &Request,
        sink: &Sink,
        ctx: &mut Context<Self>,
    ) -> Result<(), RpcError> {
        let params: UriParams = decode_params(req.params.as_deref())?;
        let Some(read) = self.service.resources.bind(&params.uri) else {
            return Err(crate::resources::not_found(&params.uri));
        };
        let plan = CallPlan {
            kind: CallKind::Method(method::RESOURCES_READ),
            tool: None,
            meta: params.meta,
            log: self.log.new(slog::o!("request_id" => req.id.to_string(),
                "method" => method::RESOURCES_READ, "uri" => params.uri.clone())),
            timeout: self.service.limits.call_timeout,
        };
        self.start_call(req, sink, ctx, plan, move |call_ctx| {
            Box::pin(async move {
                let contents = read(call_ctx).await?;
                reply(&serde_json::json!({ "contents": contents }))
            })
        })
    }

    /// `prompts/get`: start a Call running the prompt's handler.
    fn get_prompt(
        &mut self,
        req: &Request,
        sink: &Sink,
        ctx: &mut Context<Self>,
    ) -> Result<(), RpcError> {
        let params: GetPromptParams = decode_params(req.params.as_deref())?;
        let get = self.service.prompts.bind(&params.name, params.arguments)?;
        let plan = CallPlan {
            kind: CallKind::Method(method::PROMPTS_GET),
            tool: None,
            meta: params.meta,
            log: self.log.new(slog::o!("request_id" => req.id.to_string(),
                "method" => method::PROMPTS_GET, "prompt" => params.name.clone())),
            timeout: self.service.limits.call_timeout,
        };
        self.start_call(req, sink, ctx, plan, move |call_ctx| {
            Box::pin(async move { reply(&get(call_ctx).await?) })
        })
    }

    /// One page of a list method: `{key: [def(item)...], nextCursor?}`.
    fn list_page<T, D: Serialize>(
        &self,
        req: &Request,
        key: &str,
        all: &[T],
        def: impl Fn(&T) -> &D,
    ) -> Reply {
        let params: PaginatedParams = decode_params(req.params.as_deref())?;
        let (start, end, next) = page(
            params.cursor.as_deref(),
            all.len(),
            self.service.limits.page_size,
        )?;
        let items: Vec<&D> = all[start..end].iter().map(def).collect();
        list_reply(key, &items, next)
    }

    fn subscribe(&mut self, req: &Request, on: bool, ctx: &mut Context<Self>) -> Reply {
        let params: UriParams = decode_params(req.params.as_deref())?;
        if on {
            if !self.service.resources.exists(&params.uri) {
                return Err(crate::resources::not_found(&params.uri));
            }
            if !self.forwarding_updates {
                // From the first subscription on, resource updates reach this session.
                // The stream belongs to the actor's context: it ends with the session.
                self.forwarding_updates = true;
                let updates = futures::stream::unfold(
                    self.service.notifier.subscribe(),
                    |mut rx| async move {
                        loop {
                            match rx.recv().await {
                                Ok(uri) => return Some((ResourceUpdated(uri), rx)),
                                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                                Err(broadcast::error::RecvError::Closed) => return None,
                            }
                        }
                    },
                );
                ctx.add_message_stream(updates);
            }
            self.subscriptions.insert(params.uri);
        } else {
            self.subscriptions.remove(&params.uri);
        }
        reply(&serde_json::json!({}))
    }

    fn complete(&self, req: &Request) -> Reply {
        let params: CompleteParams = decode_params(req.params.as_deref())?;
        let context = params.context.unwrap_or_default().arguments;
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
        match n.method.as_str() {
            method::INITIALIZED => {
                slog::debug!(self.log, "client initialized");
            }
            method::CANCELLED => match decode_params::<CancelledParams>(n.params.as_deref()) {
                Ok(p) => {
                    if let Some(running) = self.calls.get(&p.request_id) {
                        slog::debug!(self.log, "cancel requested";
                            "request_id" => p.request_id.to_string(), "reason" => p.reason);
                        running.addr.do_send(Cancel::Client);
                    }
                }
                Err(e) => slog::debug!(self.log, "bad cancellation"; "error" => e.message),
            },
            other => {
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

/// A list result `{key: items, nextCursor?}` (no `nextCursor` on the last page).
fn list_reply<T: serde::Serialize>(key: &str, items: &[T], next: Option<String>) -> Reply {
    let mut map = serde_json::Map::new();
    map.insert(
        key.to_owned(),
        serde_json::to_value(items).map_err(RpcError::internal)?,
    );
    if let Some(next) = next {
        map.insert("nextCursor".to_owned(), next.into());
    }
    reply(&map)
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
        slog::info!(self.log, "session started");
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        for (_, running) in self.calls.drain() {
            running.addr.do_send(Cancel::Client);
        }
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
            Payload::Single(m) => self.on_message(m, &msg.sink, ctx),
            Payload::Batch(items) => {
                if !self.version.is_some_and(ProtocolVersion::allows_batch) {
                    let e = RpcError::invalid_request(
                        "JSON-RPC batches are only allowed with protocol version 2025-03-26",
                    );
                    msg.sink.response(encode_error(None, &e));
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
                    self.on_message(item, &sink, ctx);
                }
            }
        }
    }
}

impl Handler<CallFinished> for Session {
    type Result = ();

    fn handle(&mut self, msg: CallFinished, _ctx: &mut Context<Self>) {
        if self.calls.get(&msg.id).is_some_and(|r| r.seq == msg.seq) {
            self.calls.remove(&msg.id);
        }
        self.wake_idle_waiters();
    }
}

impl Handler<Drain> for Session {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: Drain, ctx: &mut Context<Self>) -> Self::Result {
        self.draining = true;
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

/// A resource changed (from [`crate::service::Notifier`]).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ResourceUpdated(pub Arc<str>);

impl Handler<ResourceUpdated> for Session {
    type Result = ();

    fn handle(&mut self, msg: ResourceUpdated, _ctx: &mut Context<Self>) {
        if !self.subscriptions.contains(&*msg.0) {
            return;
        }
        if let Some(sink) = &self.standalone {
            let params = serde_json::json!({ "uri": &*msg.0 });
            sink.notification(crate::protocol::jsonrpc::encode_notification(
                method::RESOURCES_UPDATED,
                Some(&params),
            ));
        }
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
    use crate::root::{CloseSession, OpenSession, Registry, Root};
    use crate::storage::Storage;

    /// Send `json` to the session and return the next frame.
    async fn exchange(
        addr: &Addr<Session>,
        json: &str,
        rx: &mut crate::sink::FrameReceiver,
        sink: &Sink,
    ) -> String {
        addr.send(Inbound {
            payload: jsonrpc::parse(json.as_bytes()),
            sink: sink.clone(),
        })
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
                    persist: false,
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
