//! The calls a session starts: `tools/call`, `resources/read` and `prompts/get`,
//! each in its own [`Call`] child actor, through one starter. A call's target is
//! looked up and bound first ([`Target`]), then, in this order: the 2026-07-28
//! client input of a retry (`requestState` verified), the task link of a tool that
//! may run as a task, the in-flight bounds, the handler's [`CallContext`]; any
//! refusal on the way is an immediate JSON-RPC error answer. Also the tasks
//! extension's methods (`tasks/get`, `tasks/update`, `tasks/cancel`).

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use serde_json::Value;
use slog::Logger;

use super::lifecycle::request_log_level;
use super::{Exchange, Session, SessionKind};
use crate::handler::{CallContext, Peer};
use crate::mrtr::{Binding, Inputs};
use crate::prompts::BoundGet;
use crate::protocol::era::{self, Era};
use crate::protocol::mcp::method;
use crate::protocol::request::ClientRequest;
use crate::protocol::{code, reply, Answer, Reply, Request, RequestId, RpcError};
use crate::resources::BoundRead;
use crate::runtime::call::{Call, CallKind, CallSpec, Permits, Work};
use crate::tasks::TaskSlot;
use crate::telemetry::metrics::reason;
use crate::telemetry::Maybe;
use crate::tools::Tool;

/// A call in flight.
pub(super) struct Running {
    pub(super) id: RequestId,
    pub(super) addr: Addr<Call>,
}

/// A session's calls in flight, found by sequence number (request ids need not be
/// unique in the stateless session) and by request id (for
/// `notifications/cancelled`; only calls inserted `keyed`, which the stateless
/// session's are not). Most sessions run one call at a time: that one is kept
/// inline, and tables are made only for a second call at once and freed when the
/// last ends (unless kept: the stateless session's), so an idle session holds none
/// and a session calling one at a time allocates none.
#[derive(Default)]
pub(super) enum InFlight {
    #[default]
    None,
    One {
        seq: u64,
        running: Running,
        keyed: bool,
    },
    Many(Box<Tables>),
}

#[derive(Default)]
pub(super) struct Tables {
    by_seq: HashMap<u64, Running>,
    by_id: HashMap<RequestId, u64>,
}

impl Tables {
    fn insert(&mut self, seq: u64, running: Running, keyed: bool) {
        if keyed {
            self.by_id.insert(running.id.clone(), seq);
        }
        self.by_seq.insert(seq, running);
    }
}

impl InFlight {
    pub(super) fn len(&self) -> usize {
        match self {
            InFlight::None => 0,
            InFlight::One { .. } => 1,
            InFlight::Many(t) => t.by_seq.len(),
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a call with request id `id` is in flight (only if it was inserted
    /// `keyed`).
    pub(super) fn has_id(&self, id: &RequestId) -> bool {
        self.get_by_id(id).is_some()
    }

    /// The call of request `id` (the latest, if several share it).
    pub(super) fn get_by_id(&self, id: &RequestId) -> Option<&Running> {
        match self {
            InFlight::None => None,
            InFlight::One { running, keyed, .. } => {
                (*keyed && running.id == *id).then_some(running)
            }
            InFlight::Many(t) => t.by_seq.get(t.by_id.get(id)?),
        }
    }

    /// Add call `seq`; `keyed`: also findable by its request id.
    pub(super) fn insert(&mut self, seq: u64, running: Running, keyed: bool) {
        match std::mem::take(self) {
            InFlight::None => {
                *self = InFlight::One {
                    seq,
                    running,
                    keyed,
                }
            }
            InFlight::One {
                seq: first,
                running: first_running,
                keyed: first_keyed,
            } => {
                let mut t = Box::<Tables>::default();
                t.insert(first, first_running, first_keyed);
                t.insert(seq, running, keyed);
                *self = InFlight::Many(t);
            }
            InFlight::Many(mut t) => {
                t.insert(seq, running, keyed);
                *self = InFlight::Many(t);
            }
        }
    }

    /// Remove call `seq`; the tables are freed when it was the last, unless `keep`.
    pub(super) fn remove(&mut self, seq: u64, keep: bool) -> Option<Running> {
        match self {
            InFlight::One { seq: one, .. } if *one == seq => match std::mem::take(self) {
                InFlight::One { running, .. } => Some(running),
                _ => None,
            },
            InFlight::Many(t) => {
                let running = t.by_seq.remove(&seq)?;
                if t.by_id.get(&running.id) == Some(&seq) {
                    t.by_id.remove(&running.id);
                }
                if t.by_seq.is_empty() && !keep {
                    *self = InFlight::None;
                }
                Some(running)
            }
            _ => None,
        }
    }

    pub(super) fn iter(&self) -> Box<dyn Iterator<Item = &Running> + '_> {
        match self {
            InFlight::None => Box::new(std::iter::empty()),
            InFlight::One { running, .. } => Box::new(std::iter::once(running)),
            InFlight::Many(t) => Box::new(t.by_seq.values()),
        }
    }

    /// Every call, removed.
    pub(super) fn take_all(&mut self) -> Vec<Running> {
        match std::mem::take(self) {
            InFlight::None => Vec::new(),
            InFlight::One { running, .. } => vec![running],
            InFlight::Many(t) => t.by_seq.into_values().collect(),
        }
    }
}

/// The handler a call runs, bound to its request.
enum Bound {
    Tool {
        tool: Arc<Tool>,
        arguments: Option<Value>,
    },
    Resource(BoundRead),
    Prompt(BoundGet),
}

/// What a call serves, looked up before it starts.
struct Target<'r> {
    kind: CallKind,
    bound: Bound,
    /// What the call's log lines name: `tool`, `uri` or `prompt`, and its value.
    named: (&'static str, &'r str),
    timeout: Duration,
    /// What a 2026-07-28 retry's `requestState` is bound to (built only in that era),
    /// with the retry's `inputResponses` and `requestState`.
    retry: Option<(Binding, Option<&'r Value>, Option<&'r str>)>,
}

impl Session {
    /// `tools/call`, `resources/read`, `prompts/get`: start a Call; `Err` is an
    /// immediate JSON-RPC error answer. A `tools/call`'s `arguments` come apart
    /// from the request (taken out of it), so that its Call owns them uncopied.
    pub(super) fn start_call(
        &mut self,
        x: &Exchange<'_>,
        arguments: Option<Value>,
        ctx: &mut Context<Self>,
    ) -> Result<(), RpcError> {
        let Exchange {
            req,
            era,
            sink,
            cancel_on_close,
            ..
        } = *x;
        let target = self.target(x, arguments)?;
        let inputs = match target.retry {
            Some((binding, responses, state)) => Some(Arc::new(Inputs::new(
                self.service.mrtr.clone(),
                binding,
                responses,
                state,
            )?)),
            None => None,
        };
        let (tool, task) = match &target.bound {
            Bound::Tool { tool, .. } => (Some(&**tool), self.task_slot(x, tool)?),
            _ => (None, None),
        };
        let permits = self.admit(x, tool)?;
        let named = match &target.kind {
            CallKind::Tool(tool) => Named::Tool(AssertUnwindSafe(Arc::clone(tool))),
            CallKind::Method(_) => Named::text(target.named.1),
        };
        let log = self.call_log(req, target.named.0, named);
        let peer = self.peer_for(era);
        let call_ctx = self.call_context(x, &log, &inputs, &task, peer);
        let mut work = target.bound.into_work(call_ctx, task.is_some(), era);
        if let Some(inputs) = &inputs {
            work = crate::mrtr::until_input(work, inputs.clone());
        }
        self.next_seq += 1;
        let seq = self.next_seq;
        let addr = Call::new(CallSpec {
            id: req.id.clone(),
            seq,
            kind: target.kind,
            work,
            sink: sink.clone(),
            timeout: target.timeout,
            session: ctx.address().recipient(),
            log,
            metrics: self.service.metrics.clone(),
            permits,
            envelope: (era == Some(Era::Modern)).then(|| self.service.envelope().clone()),
            cancel_on_close,
            max_result_bytes: self.service.limits.max_result_bytes,
            task,
            task_timeout: self.service.limits.task_timeout,
            log_calls: self.service.log_calls,
        })
        .start();
        let keyed = self.kind != SessionKind::Stateless;
        let running = Running {
            id: req.id.clone(),
            addr,
        };
        self.calls.insert(seq, running, keyed);
        Ok(())
    }

    /// The session's [`Peer`] for a call in `era`, made now if it is the first: only
    /// a session-era client that declared some capability may be asked anything.
    fn peer_for(&mut self, era: Option<Era>) -> Option<Peer> {
        let declared = self.client_capabilities.as_ref()?;
        if !matches!(era, Some(Era::Legacy(_))) || declared.is_empty() {
            return None;
        }
        Some(self.peer.get_or_insert_with(Peer::default).clone())
    }

    /// Look up what `x` calls and bind it to the request (-32602 for an unknown
    /// tool, prompt or bad prompt arguments; a resource not found).
    fn target<'r>(
        &self,
        x: &Exchange<'r>,
        arguments: Option<Value>,
    ) -> Result<Target<'r>, RpcError> {
        let modern = x.era == Some(Era::Modern);
        let limits = &self.service.limits;
        match &x.req.call {
            ClientRequest::ToolsCall(p) => {
                if x.caller.is_some_and(|c| !c.may_call(&p.name)) {
                    return Err(super::tool_forbidden(&p.name));
                }
                // A 2026-07-28 HTTP request's tool was looked up by the transport.
                let tool = match &x.tool {
                    Some(tool) => Arc::clone(tool),
                    None => self.service.tools.get(&p.name).cloned().ok_or_else(|| {
                        RpcError::invalid_params(format!("unknown tool: {}", p.name))
                    })?,
                };
                let retry = modern.then(|| {
                    let arguments = arguments.clone().unwrap_or(Value::Null);
                    let binding = Binding::new(method::TOOLS_CALL, &p.name, arguments);
                    (
                        binding,
                        p.input_responses.as_ref(),
                        p.request_state.as_deref(),
                    )
                });
                Ok(Target {
                    kind: CallKind::Tool(Arc::clone(&tool)),
                    timeout: tool.timeout_override().unwrap_or(limits.call_timeout),
                    bound: Bound::Tool { tool, arguments },
                    named: ("tool", &p.name),
                    retry,
                })
            }
            ClientRequest::ResourcesRead(p) => {
                let read = self
                    .service
                    .resources
                    .bind(&p.uri)
                    .ok_or_else(|| crate::resources::not_found(&p.uri))?;
                let retry = modern.then(|| {
                    let binding = Binding::new(method::RESOURCES_READ, &p.uri, Value::Null);
                    (
                        binding,
                        p.input_responses.as_ref(),
                        p.request_state.as_deref(),
                    )
                });
                Ok(Target {
                    kind: CallKind::Method(method::RESOURCES_READ),
                    bound: Bound::Resource(read),
                    named: ("uri", &p.uri),
                    timeout: limits.call_timeout,
                    retry,
                })
            }
            ClientRequest::PromptsGet(p) => {
                let get = self.service.prompts.bind(&p.name, p.arguments.clone())?;
                let retry = modern.then(|| {
                    // Sorted (a JSON object), so that equal arguments give equal digests.
                    let arguments = p
                        .arguments
                        .iter()
                        .map(|(k, v)| (k.clone(), Value::from(v.as_str())))
                        .collect::<serde_json::Map<_, _>>();
                    let binding = Binding::new(method::PROMPTS_GET, &p.name, arguments.into());
                    (
                        binding,
                        p.input_responses.as_ref(),
                        p.request_state.as_deref(),
                    )
                });
                Ok(Target {
                    kind: CallKind::Method(method::PROMPTS_GET),
                    bound: Bound::Prompt(get),
                    named: ("prompt", &p.name),
                    timeout: limits.call_timeout,
                    retry,
                })
            }
            other => Err(RpcError::method_not_found(other.method())),
        }
    }

    /// Check the in-flight limit and id reuse before starting a Call.
    /// Returns the permits the Call holds while it runs (server-wide and, for a tool,
    /// per tool); refused at once when any bound is reached.
    pub(super) fn admit(&self, x: &Exchange<'_>, tool: Option<&Tool>) -> Result<Permits, RpcError> {
        let req = x.req;
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
        if self.calls.has_id(&req.id) {
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
        let total = &self.service.in_flight;
        let total = total
            .try_enter()
            .ok_or_else(|| busy(reason::IN_FLIGHT_TOTAL, "server", total.limit()))?;
        let principal = match x.caller {
            // A principal's share (`[auth]`): one token cannot hold every call.
            Some(caller) => {
                let shares = &self.service.in_flight_per_principal;
                Some(shares.try_enter(&caller.name).ok_or_else(|| {
                    busy(reason::IN_FLIGHT_PRINCIPAL, "principal", shares.limit())
                })?)
            }
            None => None,
        };
        let tool = match tool {
            Some(tool) => {
                let per_tool = self.service.limits.max_in_flight_per_tool;
                Some(tool.try_enter(per_tool).ok_or_else(|| {
                    busy(
                        reason::IN_FLIGHT_TOOL,
                        "tool",
                        tool.concurrency_limit(per_tool),
                    )
                })?)
            }
            None => None,
        };
        Ok(Permits::new(total, principal, tool))
    }

    /// The context a handler gets for `req`: in a session-era session the state
    /// negotiated at `initialize`; in 2026-07-28 the request's own `_meta`.
    fn call_context(
        &self,
        x: &Exchange<'_>,
        log: &Logger,
        inputs: &Option<Arc<Inputs>>,
        task: &Option<Arc<TaskSlot>>,
        peer: Option<Peer>,
    ) -> CallContext {
        let Exchange { req, era, sink, .. } = *x;
        let (client_log_level, client_capabilities) = match era {
            Some(Era::Modern) => (
                request_log_level(req.meta.log_level),
                era::capabilities(&req.meta),
            ),
            _ => (
                self.client_log_level.clone(),
                self.client_capabilities
                    .clone()
                    .unwrap_or_else(crate::protocol::strict::empty_object),
            ),
        };
        CallContext {
            session_id: self.id.clone(),
            request_id: req.id.clone(),
            progress_token: req.meta.progress_token.clone(),
            sink: sink.clone(),
            client_log_level,
            storage: self.service.storage.clone(),
            peer,
            client_capabilities,
            modern: era == Some(Era::Modern),
            inputs: inputs.clone(),
            task: task.clone(),
            client_request_timeout: self.service.limits.client_request_timeout,
            principal: x.caller.map(|p| p.name.clone()),
            kv_per_principal: !self
                .service
                .shared_kv
                .load(std::sync::atomic::Ordering::Relaxed),
            notifier: self.service.notifier.clone(),
            blocking: self.service.blocking.clone(),
            log: log.clone(),
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
        // 2026-07-28 has no session: the client is its address where the transport
        // knows it (HTTP), otherwise this session (a stdio connection).
        let client = match x.client {
            Some(addr) => crate::tasks::Client::address(addr),
            None => crate::tasks::Client::connection(&self.id),
        };
        Ok(Some(Arc::new(TaskSlot::new(
            self.service.tasks.clone(),
            support,
            declared,
            client,
        ))))
    }

    /// `tasks/get`, `tasks/update`, `tasks/cancel`: for requests that declare the
    /// extension (-32021 otherwise); an unknown task is -32602.
    pub(super) fn task_request(&self, req: &Request) -> Reply {
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

    /// A logger for one call of `req`, tagged with `key` = `value` (the tool, URI or
    /// prompt: a [`Named`], whose text its maker clipped) and, when the request
    /// carries W3C trace context, its trace id. The id, client-chosen, is clipped.
    pub(super) fn call_log(&self, req: &Request, key: &'static str, value: Named) -> Logger {
        use crate::telemetry::Shown;
        // Only calls get a call logger: their methods are known, so `label` is
        // the method itself.
        let (id, method) = (Shown(req.id.clone()), req.call.label());
        let session = Maybe("session", self.tag.clone());
        let log = &self.service.log;
        match req.meta.trace_id() {
            Some(trace) => log.new(slog::o!(session, "request_id" => id, "method" => method,
                key => value, "trace_id" => trace.to_owned())),
            None => {
                log.new(slog::o!(session, "request_id" => id, "method" => method, key => value))
            }
        }
    }
}

/// What a call's log lines name (`tool`, `uri`, `prompt`): a tool by the tool
/// itself (no copy of its name a call), anything else by its text, clipped.
pub(super) enum Named {
    /// Only the tool's name is read, which no panic can leave half-written.
    Tool(AssertUnwindSafe<Arc<Tool>>),
    Text(String),
}

impl Named {
    /// Client-chosen text (a URI, a prompt or unknown tool's name), clipped.
    pub(super) fn text(value: &str) -> Named {
        Named::Text(crate::telemetry::clip(value).into_owned())
    }
}

impl slog::Value for Named {
    fn serialize(
        &self,
        _record: &slog::Record<'_>,
        key: slog::Key,
        serializer: &mut dyn slog::Serializer,
    ) -> slog::Result {
        match self {
            Named::Tool(tool) => serializer.emit_str(key, &crate::telemetry::clip(tool.name())),
            Named::Text(text) => serializer.emit_str(key, text),
        }
    }
}

impl Bound {
    /// The work of the call: the handler's future, and what its result becomes.
    fn into_work(self, ctx: CallContext, task: bool, era: Option<Era>) -> Work {
        match self {
            Bound::Tool { tool, arguments } => {
                // A tool that may run as a task begins it before its handler runs,
                // unless the handler begins it itself.
                // Two futures: a plain call's does not carry the state of
                // beginning a task (with it, every call's future was 1,064 bytes
                // to write and move; without, ~670 fewer instructions a call).
                if task && !tool.task_support().1 {
                    Box::pin(async move {
                        ctx.begin_task().await?;
                        Answer::tool(&tool.invoke(ctx, arguments).await?)
                    })
                } else {
                    Box::pin(async move { Answer::tool(&tool.invoke(ctx, arguments).await?) })
                }
            }
            Bound::Resource(read) => {
                let modern = era == Some(Era::Modern);
                Box::pin(async move {
                    let contents = read(ctx).await?;
                    let mut result = serde_json::json!({ "contents": contents });
                    if modern {
                        // Resource contents may change at any moment (kv values do).
                        era::add_cache_fields(&mut result, 0, era::CacheScope::Private);
                    }
                    reply(&result)
                })
            }
            Bound::Prompt(get) => Box::pin(async move { reply(&get(ctx).await?) }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn running(id: i64) -> Running {
        Running {
            id: RequestId::Number(id),
            addr: actix::Context::<Call>::new().address(),
        }
    }

    #[test]
    fn in_flight_calls_need_tables_only_two_at_a_time_and_only_meanwhile() {
        let mut calls = InFlight::default();
        assert!(calls.is_empty());
        // One at a time: inline, found by its id.
        calls.insert(1, running(7), true);
        assert!(matches!(calls, InFlight::One { .. }));
        assert!(calls.has_id(&RequestId::Number(7)) && !calls.has_id(&RequestId::Number(8)));
        assert!(calls.remove(2, false).is_none());
        assert!(calls.remove(1, false).is_some());
        assert!(matches!(calls, InFlight::None));
        // Two at once: tables; the latest of two sharing an id is the one found.
        calls.insert(1, running(7), true);
        calls.insert(2, running(7), true);
        assert!(matches!(calls, InFlight::Many(_)) && calls.len() == 2);
        let latest = calls
            .get_by_id(&RequestId::Number(7))
            .map(|r| r.addr.clone());
        let second = match &calls {
            InFlight::Many(t) => t.by_seq.get(&2).map(|r| r.addr.clone()),
            _ => None,
        };
        assert!(latest.is_some() && latest == second);
        assert_eq!(calls.iter().count(), 2);
        assert!(calls.remove(2, false).is_some());
        assert!(matches!(calls, InFlight::Many(_)), "a call still runs");
        assert!(calls.remove(1, false).is_some());
        assert!(
            matches!(calls, InFlight::None),
            "the last call ended: no tables"
        );
        // Not keyed (the stateless session): not found by id; tables kept on request.
        calls.insert(3, running(1), false);
        assert!(!calls.has_id(&RequestId::Number(1)));
        calls.insert(4, running(1), false);
        assert!(!calls.has_id(&RequestId::Number(1)));
        assert!(calls.remove(3, true).is_some() && calls.remove(4, true).is_some());
        assert!(matches!(calls, InFlight::Many(_)) && calls.is_empty());
        calls.insert(5, running(2), true);
        assert_eq!(calls.take_all().len(), 1);
        assert!(calls.is_empty());
    }
}
