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
//!
//! One file per method family, the way a command server keeps one file per command:
//! `lifecycle.rs` (era, `initialize`, discover, log level, the saved record),
//! `calls.rs` (the one call starter, admission, tasks), `lists.rs` (lists, paging,
//! completion), `subscriptions.rs` (subscribe, listen, change fan-out). This file
//! holds the actor, its messages and the dispatch.

use std::collections::HashSet;
use std::sync::atomic::AtomicU8;
use std::sync::Arc;
use std::time::Instant;

mod calls;
mod lifecycle;
mod lists;
mod subscriptions;

use crate::auth::Principal;
use calls::InFlight;
pub use lifecycle::{SessionRecord, DEFAULT_CLIENT_LOG_LEVEL};
use subscriptions::Listen;

use actix::prelude::*;
use futures::channel::oneshot;

use crate::handler::Peer;
use crate::protocol::era::{self, Era};
use crate::protocol::jsonrpc::{encode_error, encode_error_omitting_unknown_id, Notification};
use crate::protocol::request::ClientRequest;
use crate::protocol::{
    code, Encoded, Message, Payload, ProtocolVersion, Rejected, Request, RpcError,
};
use crate::runtime::call::{reply, CallFinished, Cancel, Reply};
use crate::runtime::service::{bus, Service};
use crate::sink::Sink;
use crate::telemetry::metrics::reason;
use crate::telemetry::{Maybe, SessionTag, Shown};
use crate::tools::Tool;

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
    /// What the transport decided already (2026-07-28 HTTP), not decided again.
    pub checked: Option<Checked>,
    /// The client's address, when the transport has one (HTTP: the peer of the
    /// connection, so behind a proxy the proxy's). What a client's share of the task
    /// store is keyed by (`crate::tasks::Client`); without it, the session is.
    pub client: Option<std::net::SocketAddr>,
    /// A client's answer another instance of the fleet relayed here: completes
    /// this session's request if it asked it, and goes no further.
    pub relayed: bool,
    /// Who sent it, when the transport checked credentials (`[auth]`): a
    /// principal limited to some tools lists and calls only those.
    pub principal: Option<Principal>,
}

/// A 2026-07-28 request whose headers and `_meta` the HTTP transport checked
/// against its body (version, method, name), and the tool it looked up for a
/// `tools/call` (to check its `Mcp-Param-*` headers).
pub struct Checked {
    /// The called tool, when the request is a `tools/call` of a known tool.
    pub tool: Option<Arc<Tool>>,
}

impl Inbound {
    /// A payload whose calls run on even if its stream closes (stdio; session-era
    /// HTTP, where a dropped stream is resumed, not cancelled).
    pub fn new(payload: Payload, sink: Sink) -> Inbound {
        Inbound {
            payload,
            sink,
            cancel_on_close: false,
            checked: None,
            client: None,
            relayed: false,
            principal: None,
        }
    }

    /// The same payload, sent by `principal` (see [`Inbound::principal`]).
    pub fn from_principal(mut self, principal: Option<Principal>) -> Inbound {
        self.principal = principal;
        self
    }

    /// A client's answer another instance relayed (see [`Inbound::relayed`]'s
    /// field).
    pub fn relayed(payload: Payload, sink: Sink) -> Inbound {
        Inbound {
            relayed: true,
            ..Inbound::new(payload, sink)
        }
    }

    /// A checked 2026-07-28 HTTP request: closing its stream cancels it.
    pub fn checked(request: Box<Request>, sink: Sink, checked: Checked) -> Inbound {
        Inbound {
            payload: Payload::Single(Ok(Message::Request(request))),
            sink,
            cancel_on_close: true,
            checked: Some(checked),
            client: None,
            relayed: false,
            principal: None,
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

/// Who sent an [`Inbound`]: the client's address and principal, when the
/// transport knows them.
#[derive(Clone, Copy)]
struct Origin<'a> {
    client: Option<std::net::SocketAddr>,
    caller: Option<&'a Principal>,
}

/// One request being served: what it is, its era, where its answers go, whether
/// closing that destination cancels it, and the tool the transport looked up.
struct Exchange<'a> {
    req: &'a Request,
    era: Option<Era>,
    sink: &'a Sink,
    cancel_on_close: bool,
    tool: Option<&'a Arc<Tool>>,
    /// The client's address, when the transport knows it.
    client: Option<std::net::SocketAddr>,
    /// Who sent it ([`Inbound::principal`]).
    caller: Option<&'a Principal>,
}

/// The per-session actor.
pub struct Session {
    id: Arc<str>,
    service: Arc<Service>,
    kind: SessionKind,
    era: Option<Era>,
    /// What the client said it supports in `initialize` (session era).
    client_capabilities: Option<Arc<serde_json::Map<String, serde_json::Value>>>,
    client_log_level: Arc<AtomicU8>,
    /// The calls in flight.
    calls: InFlight,
    next_seq: u64,
    draining: bool,
    root: Option<Arc<Recipient<SessionEnded>>>,
    /// The requests it asked its client and awaits the answers of: made at the
    /// first call of a session-era client that declared a capability (no other
    /// can be asked anything).
    peer: Option<Peer>,
    /// Allocated at the first use of what most sessions never use.
    rare: Option<Box<Rare>>,
    /// The principal that opened it (`[auth]`), saved in its record: the HTTP
    /// transport answers 404 to any other.
    owner: Option<Arc<str>>,
    /// What its log lines are tagged with (none for the stateless session): the
    /// server's logger with this on each line, not a logger of its own (~80 bytes
    /// a session).
    tag: Option<Shown<SessionTag>>,
}

/// What few sessions use, kept out of line so that an idle session's actor stays
/// small (its task is allocated in 128-byte steps; see
/// `an_idle_session_stays_small`).
#[derive(Default)]
struct Rare {
    /// Where messages not tied to a request go (the HTTP standalone GET stream).
    standalone: Option<Sink>,
    subscriptions: HashSet<String>,
    listens: Vec<Listen>,
    /// Whether resource updates are forwarded to this session (since its first
    /// subscription or listen stream).
    forwarding_updates: bool,
    /// `Drain`s waiting for the last call to finish.
    idle_waiters: Vec<oneshot::Sender<()>>,
}

impl Session {
    /// A new session of `kind`, not yet initialized.
    pub fn new(
        id: Arc<str>,
        service: Arc<Service>,
        kind: SessionKind,
        root: Option<Arc<Recipient<SessionEnded>>>,
    ) -> Session {
        // 2026-07-28 requests have no session: the stateless session's lines carry
        // no `session` tag.
        let tag = (kind != SessionKind::Stateless).then(|| Shown(SessionTag::of(id.clone())));
        let era =
            matches!(kind, SessionKind::Stateless | SessionKind::Listener).then_some(Era::Modern);
        Session {
            id,
            service,
            kind,
            era,
            client_capabilities: None,
            client_log_level: Arc::new(AtomicU8::new(DEFAULT_CLIENT_LOG_LEVEL as u8)),
            calls: InFlight::default(),
            next_seq: 0,
            draining: false,
            root,
            peer: None,
            rare: None,
            owner: None,
            tag,
        }
    }

    /// The same session, opened by the principal named `owner` (its record keeps
    /// the name).
    pub fn owned_by(mut self, owner: Option<Arc<str>>) -> Session {
        self.owner = owner;
        self
    }

    /// [`Rare`], allocated now if it was not.
    fn rare(&mut self) -> &mut Rare {
        self.rare.get_or_insert_with(Box::default)
    }

    /// The `session` field of its log lines.
    fn tag_kv(&self) -> Maybe<&Shown<SessionTag>> {
        Maybe("session", self.tag.as_ref())
    }

    /// The listen streams of this session (2026-07-28 `subscriptions/listen`).
    fn listens(&self) -> &[Listen] {
        self.rare.as_ref().map_or(&[], |r| &r.listens)
    }

    fn on_message(
        &mut self,
        msg: Result<Message, Rejected>,
        sink: &Sink,
        cancel_on_close: bool,
        checked: Option<Checked>,
        from: Origin<'_>,
        ctx: &mut Context<Self>,
    ) {
        match msg {
            Ok(Message::Request(req)) => {
                self.on_request(*req, sink, cancel_on_close, checked, from, ctx)
            }
            Ok(Message::Notification(n)) => self.on_notification(n),
            Ok(Message::Response(r)) => {
                let id = r.id.clone();
                let relay = self.service.storage.is_shared().then(|| answer_json(&r));
                let asked = self.peer.as_ref();
                if !asked.is_some_and(|p| p.complete(r.id, r.outcome)) {
                    match relay {
                        // Asked by this session on another instance of the fleet,
                        // maybe: that one completes it.
                        Some(json) if json.len() <= bus::ANSWER_MAX_BYTES => {
                            let mut data = Vec::with_capacity(self.id.len() + 1 + json.len());
                            data.extend_from_slice(self.id.as_bytes());
                            data.push(b'\n');
                            data.extend_from_slice(json.as_bytes());
                            self.service.storage.publish(bus::ANSWER, &data);
                        }
                        // JSON-RPC: a response is never answered, even an unexpected one.
                        _ => {
                            slog::debug!(self.service.log, "unsolicited response dropped"; self.tag_kv(), "request_id" => id.to_string());
                        }
                    }
                }
            }
            Err(rejected) => {
                slog::debug!(self.service.log, "invalid message"; self.tag_kv(), "error" => &rejected.error.message);
                let encoded = match self.era {
                    Some(Era::Modern) => {
                        let e = self.service.envelope().error(rejected.error);
                        let json = encode_error_omitting_unknown_id(rejected.id.as_ref(), &e);
                        Encoded::error(json, &e)
                    }
                    _ => Encoded::error(
                        encode_error(rejected.id.as_ref(), &rejected.error),
                        &rejected.error,
                    ),
                };
                sink.response(encoded);
            }
        }
    }

    fn on_request(
        &mut self,
        mut req: Request,
        sink: &Sink,
        cancel_on_close: bool,
        checked: Option<Checked>,
        from: Origin<'_>,
        ctx: &mut Context<Self>,
    ) {
        let started = Instant::now();
        if self.draining {
            // Counted here; an HTTP transport answers it 503 + Retry-After (a proxy
            // may send it to another instance) without counting it again.
            let e = RpcError::new(code::SERVER_BUSY, "server is shutting down");
            self.refuse(reason::SHUTTING_DOWN, &e);
            let era = self
                .era
                .or(era::is_modern_request(&req.meta).then_some(Era::Modern));
            self.finish_as(&req, era, Err(e), sink, started, true);
            return;
        }
        let era = match self.era_of(&req, checked.is_some()) {
            Ok(era) => era,
            Err(e) => {
                let era = self
                    .era
                    .or(era::is_modern_request(&req.meta).then_some(Era::Modern));
                self.finish(&req, era, Err(e), sink, started);
                return;
            }
        };
        // A tool's arguments move to its Call: nothing reads them from the
        // request after this (the 2026-07-28 transport checked them before).
        let arguments = match &mut req.call {
            ClientRequest::ToolsCall(p) => p.arguments.take(),
            _ => None,
        };
        let x = Exchange {
            req: &req,
            era,
            sink,
            cancel_on_close,
            tool: checked.as_ref().and_then(|c| c.tool.as_ref()),
            client: from.client,
            caller: from.caller,
        };
        let service = &self.service;
        let reply: Reply = match &req.call {
            ClientRequest::Initialize(p) => match self.initialize(p) {
                // A session the client is told exists is saved first.
                Ok(answer) if self.kind == SessionKind::Http => {
                    self.answer_after_saving(req.id.clone(), Ok(answer), p, sink, started, ctx);
                    return;
                }
                reply => reply,
            },
            ClientRequest::Ping => reply(&serde_json::json!({})),
            ClientRequest::Discover => self.discover(),
            ClientRequest::ToolsList(p) => {
                match from.caller.filter(|c| c.is_limited()) {
                    // A token limited to some tools (a tool list, or scopes) sees
                    // only those it may call.
                    Some(caller) => {
                        let mine: Vec<&Arc<Tool>> = service
                            .tools
                            .as_slice()
                            .iter()
                            .filter(|t| caller.may_call(t.def().name.as_str()))
                            .collect();
                        self.list_page(p, era, "tools", &mine, |t| t.def())
                    }
                    None => self.list_page(p, era, "tools", service.tools.as_slice(), |t| t.def()),
                }
            }
            ClientRequest::ResourcesList(p) => {
                let all = service.resources.resources();
                self.list_page(p, era, "resources", all, |r| r.def())
            }
            ClientRequest::ResourceTemplatesList(p) => {
                let all = service.resources.templates();
                self.list_page(p, era, "resourceTemplates", all, |t| t.def())
            }
            ClientRequest::PromptsList(p) => {
                let all = service.prompts.prompts();
                self.list_page(p, era, "prompts", all, |p| p.def())
            }
            ClientRequest::ToolsCall(_)
            | ClientRequest::ResourcesRead(_)
            | ClientRequest::PromptsGet(_) => match self.start_call(&x, arguments, ctx) {
                // The Call answers.
                Ok(()) => return,
                Err(e) => Err(e),
            },
            ClientRequest::ResourcesSubscribe(p) => self.subscribe(p, true, ctx),
            ClientRequest::ResourcesUnsubscribe(p) => self.subscribe(p, false, ctx),
            ClientRequest::Complete(p) => self.complete(p),
            ClientRequest::SetLevel(p) => self.set_level(p),
            ClientRequest::Listen(p) => match self.listen(&req, p, sink, ctx) {
                // Answered when the stream ends.
                Ok(()) => return,
                Err(e) => {
                    if self.kind == SessionKind::Listener {
                        // A refused listen leaves no listener (nor its slot) behind;
                        // the refusal is sent before the actor stops.
                        ctx.stop();
                    }
                    Err(e)
                }
            },
            ClientRequest::TasksGet(_)
            | ClientRequest::TasksUpdate(_)
            | ClientRequest::TasksCancel(_) => self.task_request(&req),
            ClientRequest::Unknown(m) => Err(RpcError::method_not_found(m)),
        };
        self.finish(&req, era, reply, sink, started);
    }

    /// Answer `req` with `reply` in `era`'s shape; count and log it.
    fn finish(&self, req: &Request, era: Option<Era>, reply: Reply, sink: &Sink, started: Instant) {
        self.finish_as(req, era, reply, sink, started, false);
    }

    /// [`Session::finish`]; `unavailable`: the reply is an error given because the
    /// server cannot serve now (`protocol::Encoded::unavailable`).
    fn finish_as(
        &self,
        req: &Request,
        era: Option<Era>,
        reply: Reply,
        sink: &Sink,
        started: Instant,
        unavailable: bool,
    ) {
        let outcome = if reply.is_ok() { "ok" } else { "error" };
        let took = started.elapsed();
        self.service
            .metrics
            .request(req.call.label(), outcome, took.as_secs_f64());
        slog::debug!(self.service.log, "request"; self.tag_kv(), "method" => req.method(),
            "request_id" => %req.id, "success" => reply.is_ok(),
            "duration_ms" => crate::telemetry::millis(took), "trace_id" => req.meta.trace_id());
        if let (Err(e), true) = (&reply, self.service.log_calls) {
            // A call refused before it started (unknown tool, bad prompt arguments,
            // a bound reached...) leaves its call line too.
            if let Some((key, name)) = req.call.called() {
                let log = self.call_log(req, key, calls::Named::text(name));
                crate::runtime::call::log_finished(&log, "error", started, Some(&e.message));
            }
        }
        let envelope = (era == Some(Era::Modern)).then(|| self.service.envelope());
        let encoded = era::encode_reply(&req.id, &reply, envelope);
        sink.response(if unavailable {
            encoded.as_unavailable()
        } else {
            encoded
        });
    }

    /// Count and log a refusal of this session's (a bound reached, draining): a
    /// JSON-RPC error, so no HTTP status or client address.
    fn refuse(&self, reason: &'static str, e: &RpcError) {
        self.service
            .refusals
            .refuse(crate::telemetry::Refused::new(reason, &e.message));
    }

    fn on_notification(&mut self, n: Notification) {
        match n {
            Notification::Initialized => {
                slog::debug!(self.service.log, "client initialized"; self.tag_kv());
            }
            Notification::Cancelled(Some(p)) => {
                if let Some(rare) = self.rare.as_mut() {
                    if let Some(pos) = rare.listens.iter().position(|l| l.id == p.request_id) {
                        // A cancelled listen ends its stream without an answer.
                        rare.listens.swap_remove(pos);
                        return;
                    }
                }
                if let Some(running) = self.calls.get_by_id(&p.request_id) {
                    slog::debug!(self.service.log, "cancel requested"; self.tag_kv(),
                        "request_id" => p.request_id.to_string(), "reason" => p.reason);
                    running.addr.do_send(Cancel::Client);
                }
            }
            Notification::Cancelled(None) => {
                slog::debug!(self.service.log, "malformed notifications/cancelled ignored"; self.tag_kv());
            }
            Notification::Other(other) => {
                // JSON-RPC: notifications are never answered, even unknown ones.
                slog::debug!(self.service.log, "notification ignored"; self.tag_kv(), "method" => other);
            }
        }
    }

    fn wake_idle_waiters(&mut self) {
        if let (true, Some(rare)) = (self.calls.is_empty(), self.rare.as_mut()) {
            for w in rare.idle_waiters.drain(..) {
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

impl Actor for Session {
    type Context = Context<Self>;

    fn started(&mut self, _ctx: &mut Context<Self>) {
        if self.kind == SessionKind::Stateless {
            // One per HTTP worker, at start, with no client: "serving http" names
            // the workers.
            slog::debug!(self.service.log, "session started"; self.tag_kv(), "kind" => "Stateless");
        } else {
            slog::info!(self.service.log, "session started"; self.tag_kv(), "kind" => format!("{:?}", self.kind));
        }
    }

    fn stopped(&mut self, _ctx: &mut Context<Self>) {
        for running in self.calls.take_all() {
            running.addr.do_send(Cancel::Client);
        }
        self.wake_idle_waiters();
        if let Some(root) = &self.root {
            root.do_send(SessionEnded {
                id: self.id.clone(),
            });
        }
        slog::info!(self.service.log, "session ended"; self.tag_kv());
    }
}

/// A client's response as JSON-RPC text again, to relay to another instance.
fn answer_json(r: &crate::protocol::jsonrpc::Response) -> String {
    match &r.outcome {
        Ok(result) => format!(
            r#"{{"jsonrpc":"2.0","id":{},"result":{}}}"#,
            serde_json::to_string(&r.id).unwrap_or_else(|_| "null".into()),
            result.get()
        ),
        Err(e) => encode_error(Some(&r.id), e),
    }
}

impl Handler<Inbound> for Session {
    type Result = ();

    fn handle(&mut self, msg: Inbound, ctx: &mut Context<Self>) {
        if msg.relayed {
            if let Payload::Single(Ok(Message::Response(r))) = msg.payload {
                if let Some(peer) = &self.peer {
                    peer.complete(r.id, r.outcome);
                }
            }
            return;
        }
        let from = Origin {
            client: msg.client,
            caller: msg.principal.as_ref(),
        };
        match msg.payload {
            Payload::Single(m) => {
                self.on_message(m, &msg.sink, msg.cancel_on_close, msg.checked, from, ctx)
            }
            Payload::Batch(items) => {
                if !self.version().is_some_and(ProtocolVersion::allows_batch) {
                    let e = RpcError::invalid_request(
                        "JSON-RPC batches are only allowed with protocol version 2025-03-26",
                    );
                    msg.sink
                        .response(Encoded::error(encode_error(None, &e), &e));
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
                    self.on_message(item, &sink, false, None, from, ctx);
                }
            }
        }
    }
}

/// The error of a `tools/call` of a tool the caller's token may not call.
pub fn tool_forbidden(tool: &str) -> RpcError {
    RpcError::new(
        -32000,
        format!("forbidden: this token may not call the tool `{tool}`"),
    )
}

impl Handler<CallFinished> for Session {
    type Result = ();

    fn handle(&mut self, msg: CallFinished, _ctx: &mut Context<Self>) {
        // The stateless session keeps its tables: it serves every 2026-07-28
        // request of its worker.
        self.calls
            .remove(msg.seq, self.kind == SessionKind::Stateless);
        self.wake_idle_waiters();
    }
}

impl Handler<Drain> for Session {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, msg: Drain, ctx: &mut Context<Self>) -> Self::Result {
        self.draining = true;
        self.end_listens();
        let (tx, rx) = oneshot::channel();
        self.rare().idle_waiters.push(tx);
        self.wake_idle_waiters();
        if !self.calls.is_empty() {
            slog::info!(self.service.log, "draining"; self.tag_kv(), "in_flight" => self.calls.len(),
                "grace_ms" => msg.grace.as_millis() as u64);
            ctx.run_later(msg.grace, |act, _ctx| {
                for running in act.calls.iter() {
                    running.addr.do_send(Cancel::Shutdown);
                }
            });
        }
        Box::pin(async move {
            let _ = rx.await;
        })
    }
}

impl Handler<SetStandalone> for Session {
    type Result = ();

    fn handle(&mut self, msg: SetStandalone, _ctx: &mut Context<Self>) {
        self.rare().standalone = Some(msg.0);
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
    use crate::protocol::jsonrpc;
    use crate::runtime::root::{CloseSession, OpenSession, Registry, Root};

    /// An idle session is mostly its actor's task, which tokio allocates in
    /// 128-byte steps (aligned to 128): 184 bytes of Session make a 640-byte task
    /// (a uprobe on posix_memalign while sessions open; it was 1,024 with 472). A
    /// field that grows it takes every session's task up a step unless something
    /// goes: what few sessions use belongs in `Rare`.
    #[test]
    fn an_idle_session_stays_small() {
        let size = std::mem::size_of::<Session>();
        assert!(size <= 184, "Session is {size} bytes");
    }

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
        let service = crate::runtime::service::for_tests();
        let root = Root::new(service.clone(), Registry::default()).start();
        let mut sessions = Vec::new();
        for _ in 0..3 {
            let entry = root
                .send(OpenSession {
                    arbiter: None,
                    kind: SessionKind::Connection,
                    owner: None,
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
}
