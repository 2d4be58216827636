//! 2026-07-28 requests on Streamable HTTP: no session, every POST self-contained.
//!
//! Request path, after the checks both eras share in `http.rs` (Host/Origin 403,
//! `Content-Type` 415, `Accept` 406, body size 413, JSON 400), each step answering
//! before any work when it fails:
//! 1. a notification → 202 (on HTTP, cancellation is closing the stream); a
//!    response or a batch → 400 with -32600;
//! 2. `MCP-Protocol-Version` and `Mcp-Method` present, and none of them, `Mcp-Name`
//!    or an `Mcp-Param-*` sent twice (a proxy reading another copy than emcee would
//!    see another request) → else 400 with -32020;
//! 3. the required `_meta` fields → else 400 with -32602;
//! 4. the headers equal the body's version and method → else 400 with -32020;
//! 5. the version is served → else 400 with -32022 (`data.supported`, `requested`);
//! 6. the method exists in 2026-07-28 → else 404 with -32601;
//! 7. `Mcp-Name` (`tools/call`, `resources/read`, `prompts/get`) and the tool's
//!    `Mcp-Param-*` headers equal the body → else 400 with -32020;
//! 8. dispatch: `subscriptions/listen` opens a listener session under Root (503 +
//!    `Retry-After` at the session cap; a listen the session refuses, say over
//!    `limits.max_subscriptions`, is answered like step 9's refusals: 400 with the
//!    JSON-RPC error); anything else goes to this worker's stateless session, on
//!    this thread;
//! 9. answer: `application/json` when the response comes first within
//!    [`JSON_WINDOW`]; otherwise an SSE stream of that request's messages (no event
//!    ids: this era has no resumability), ended by its response; a client that
//!    accepts only JSON gets a chunked `application/json` body instead, a space every
//!    `limits.stream_probe_ms` then the response (JSON allows leading whitespace).
//!    Closing either cancels the call. A JSON-RPC error answered within the window
//!    gets the status its code calls for ([`status_of`]); one the session gave
//!    because the server is draining gets 503 + `Retry-After`, so that a proxy may
//!    retry it elsewhere.
//!
//! No `Mcp-Session-Id` is read or minted here.

use std::convert::Infallible;
use std::sync::Arc;

use std::net::SocketAddr;

use actix_web::body::MessageBody;
use actix_web::http::header::{HeaderMap, HeaderName};
use actix_web::http::StatusCode;
use actix_web::{HttpMessage, HttpRequest, HttpResponse};
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;

use crate::auth::Principal;
use crate::protocol::era;
use crate::protocol::headers::{check_params, decode_value};
use crate::protocol::jsonrpc::{encode_error_omitting_unknown_id, encode_result};
use crate::protocol::request::ClientRequest;
use crate::protocol::{code, Message, Payload, ProtocolVersion, Request, RpcError};
use crate::runtime::root::{OpenSession, RootError, SessionEntry};
use crate::runtime::session::{Checked, Inbound, SessionKind};
use crate::sink::{Frame, FrameKind, FrameReceiver, Sink};
use crate::telemetry::metrics::reason;
use crate::telemetry::{Refusals, Refused};
use crate::tools::Tool;
use crate::transport::answers::{self, AnswerBody, AnswerBudget, Held, OverBudget};
use crate::transport::exchange::{
    busy, event_stream, header_in, names, unavailable, unavailable_frame, with_detail, Accept,
    Refusal, RefusalDetail, RefusalReason, StreamGuard, JSON_WINDOW,
};
use crate::transport::state::{AppState, ListenStreams, WorkerSession};

/// True when a POST is written in 2026-07-28: its `_meta` names a version; or its
/// `MCP-Protocol-Version` header names no session-era version; or it has neither,
/// no `Mcp-Session-Id`, and is not `initialize` (such a request is refused by this
/// era's checks, in terms a current client understands).
pub fn is_modern(headers: &HeaderMap, payload: &Payload) -> bool {
    let (meta_modern, initialize) = match payload {
        Payload::Batch(_) => (false, false),
        Payload::Single(Ok(Message::Request(r))) => {
            (era::is_modern_request(&r.meta), r.call.is_initialize())
        }
        Payload::Single(_) => (false, false),
    };
    if meta_modern {
        return true;
    }
    if let Some(v) = header(headers, &names::VERSION) {
        return !ProtocolVersion::parse(v).is_some_and(ProtocolVersion::is_legacy);
    }
    !initialize && !headers.contains_key(&names::SESSION)
}

/// The HTTP status of a 2026-07-28 JSON-RPC error: 404 for an unknown method, 400
/// for a malformed or refused request, 200 for what a handler decided.
pub fn status_of(code: i32) -> StatusCode {
    match code {
        code::METHOD_NOT_FOUND => StatusCode::NOT_FOUND,
        code::PARSE_ERROR
        | code::INVALID_REQUEST
        | code::INVALID_PARAMS
        | code::HEADER_MISMATCH
        | code::MISSING_CAPABILITY
        | code::UNSUPPORTED_VERSION => StatusCode::BAD_REQUEST,
        _ => StatusCode::OK,
    }
}

fn refusal_reason(code: i32) -> &'static str {
    match code {
        code::METHOD_NOT_FOUND => reason::UNKNOWN_METHOD,
        code::HEADER_MISMATCH => reason::HEADER_MISMATCH,
        code::UNSUPPORTED_VERSION => reason::UNSUPPORTED_VERSION,
        _ => reason::BAD_REQUEST,
    }
}

/// An error answer to `id` with the status its code calls for.
fn error_response(id: Option<&crate::protocol::RequestId>, error: &RpcError) -> HttpResponse {
    with_detail(
        json_answer(
            encode_error_omitting_unknown_id(id, error),
            Some(error.code),
        ),
        error,
    )
}

/// An encoded JSON-RPC message as a JSON answer; `code` (of an error response)
/// decides the status, and a refusal is marked for `mcp_rejected_total`.
fn json_answer(json: impl MessageBody + 'static, code: Option<i32>) -> HttpResponse {
    let status = code.map_or(StatusCode::OK, status_of);
    let mut resp = HttpResponse::build(status)
        .content_type("application/json")
        .body(json);
    if let (Some(code), false) = (code, status == StatusCode::OK) {
        resp.extensions_mut()
            .insert(RefusalReason(refusal_reason(code)));
    }
    resp
}

fn mismatch(message: impl Into<String>) -> RpcError {
    RpcError::new(code::HEADER_MISMATCH, message.into())
}

fn header<'a>(headers: &'a HeaderMap, name: &HeaderName) -> Option<&'a str> {
    header_in(headers, name).map(str::trim)
}

/// The first header among the ones this era reads (`MCP-Protocol-Version`,
/// `Mcp-Method`, `Mcp-Name`, `Mcp-Param-*`) that is sent more than once.
fn repeated(headers: &HeaderMap) -> Option<&str> {
    headers
        .keys()
        .find(|key| {
            let ours = [&names::VERSION, &names::METHOD, &names::NAME].contains(key)
                || key.as_str().starts_with(PARAM_HEADER_PREFIX);
            ours && headers.get_all(*key).nth(1).is_some()
        })
        .map(|key| key.as_str())
}

/// The prefix of the `Mcp-Param-*` headers.
const PARAM_HEADER_PREFIX: &str = "mcp-param-";

/// Steps 2–7 of the module doc: the request's headers and `_meta` against its body.
/// Returns the tool a `tools/call` names, when it exists (looked up once: the
/// session uses it).
pub fn check(
    headers: &HeaderMap,
    req: &Request,
    state: &AppState,
) -> Result<Option<Arc<Tool>>, RpcError> {
    if let Some(name) = repeated(headers) {
        return Err(mismatch(format!("more than one {name} header")));
    }
    let Some(version) = header(headers, &names::VERSION) else {
        return Err(mismatch("missing MCP-Protocol-Version header"));
    };
    let Some(method) = header(headers, &names::METHOD) else {
        return Err(mismatch("missing Mcp-Method header"));
    };
    era::check_meta_present(req)?;
    if Some(version) != req.meta.protocol_version.as_deref() {
        return Err(mismatch(format!(
            "Header mismatch: MCP-Protocol-Version header value {version:?} does not match the body's {:?}",
            req.meta.protocol_version.as_deref().unwrap_or_default()
        )));
    }
    if method != req.method() {
        return Err(mismatch(format!(
            "Header mismatch: Mcp-Method header value {method:?} does not match body value {:?}",
            req.method()
        )));
    }
    era::check_version(req)?;
    era::check_method(req)?;
    if let Some(name) = req.call.name() {
        let Some(raw) = headers.get(&names::NAME) else {
            return Err(mismatch("missing Mcp-Name header"));
        };
        match decode_value(raw.as_bytes()) {
            Some(value) if value == name => {}
            Some(value) => {
                return Err(mismatch(format!(
                    "Header mismatch: Mcp-Name header value {value:?} does not match body value {name:?}"
                )))
            }
            None => return Err(mismatch("malformed Mcp-Name header")),
        }
    }
    let ClientRequest::ToolsCall(call) = &req.call else {
        return Ok(None);
    };
    let Some(tool) = state.service.tools.get(&call.name) else {
        return Ok(None);
    };
    check_params(tool.header_params(), call.arguments.as_ref(), |name| {
        headers.get(name).map(|v| v.as_bytes())
    })
    .map_err(|e| mismatch(e.to_string()))?;
    Ok(Some(tool.clone()))
}

/// 403 for a `tools/call` of a tool the request's principal (`[auth]`) may not
/// call; `None` when it may, or when no auth is configured. Both eras ask it
/// before dispatch (the session checks again, for a batch's items).
pub fn forbidden_call(req: &HttpRequest, request: &Request) -> Option<Refusal> {
    let ClientRequest::ToolsCall(p) = &request.call else {
        return None;
    };
    let extensions = req.extensions();
    let principal = extensions.get::<Principal>()?;
    if principal.may_call(&p.name) {
        return None;
    }
    let auth = req
        .app_data::<actix_web::web::Data<AppState>>()
        .and_then(|s| s.auth.as_ref());
    let refusal = match (principal.missing_scope(&p.name), auth) {
        (Some(scope), Some(auth)) => Refusal::insufficient_scope(auth, &p.name, scope),
        _ => Refusal::tool_forbidden(&p.name),
    };
    Some(refusal.answering(&request.id))
}

/// Serve one 2026-07-28 POST (the payload already parsed).
pub async fn post(
    req: &HttpRequest,
    state: &AppState,
    accept: Accept,
    payload: Payload,
) -> HttpResponse {
    let request = match payload {
        Payload::Single(Ok(Message::Request(r))) => r,
        Payload::Single(Ok(Message::Notification(_))) => return HttpResponse::Accepted().finish(),
        Payload::Single(Ok(Message::Response(_))) | Payload::Batch(_) => {
            let e = RpcError::invalid_request(
                "a 2026-07-28 POST carries one request or notification (no responses, no batches)",
            );
            return error_response(None, &e);
        }
        Payload::Single(Err(rejected)) => {
            return error_response(
                rejected.id.as_ref(),
                &state.service.envelope().error(rejected.error),
            )
        }
    };
    let tool = match check(req.headers(), &request, state) {
        Ok(tool) => tool,
        Err(e) => return error_response(Some(&request.id), &e),
    };
    if let Some(refusal) = forbidden_call(req, &request) {
        return refusal.into();
    }
    if state.draining.load(std::sync::atomic::Ordering::Acquire) {
        // Decided here whatever the answer's shape (SSE too): 503 + Retry-After.
        let e = crate::transport::exchange::shutting_down();
        let json = encode_error_omitting_unknown_id(Some(&request.id), &e);
        return with_detail(unavailable(json), &e);
    }
    if matches!(request.call, ClientRequest::Listen(_)) {
        return listen(state, request, req.peer_addr().map(|a| a.ip())).await;
    }
    let Some(session) = req
        .app_data::<actix_web::web::Data<WorkerSession>>()
        .map(|w| w.0.clone())
    else {
        let e = RpcError::internal("no stateless session on this worker");
        return error_response(Some(&request.id), &e);
    };
    let (sink, frames) = Sink::channel();
    let id = request.id.clone();
    // The peer's address keys the client's share of the task store.
    let inbound = Inbound {
        client: req.peer_addr(),
        principal: req.extensions().get::<Principal>().cloned(),
        ..Inbound::checked(request, sink, Checked { tool })
    };
    if session.send(inbound).await.is_err() {
        let e = RpcError::new(code::SERVER_BUSY, "the server is shutting down");
        let json = encode_error_omitting_unknown_id(Some(&id), &e);
        return with_detail(unavailable(json), &e);
    }
    answer(accept, frames, state, req.peer_addr()).await
}

/// A response frame as a JSON answer, holding its bytes from the answers' budget
/// until written (503 + `Retry-After`, the connection closed, when they do not fit).
/// A 2026-07-28 error gets the status its code calls for; a session-era answer is
/// 200 whatever it says.
fn json_response(f: Frame, budget: &AnswerBudget, modern: bool) -> HttpResponse {
    if f.unavailable {
        return unavailable_frame(f.json);
    }
    let code = f.error.filter(|_| modern);
    match budget.hold(vec![Bytes::from(f.json)]) {
        Ok(held) => {
            let mut resp = json_answer(AnswerBody::new(held), code);
            if let Some(message) = f.error_message {
                // A refusal the session decided: its log line says what the client
                // was told.
                resp.extensions_mut().insert(RefusalDetail(message));
            }
            resp
        }
        Err(over) => answers::over_budget(over),
    }
}

/// The request's response frame; `None` when every sender is gone without one
/// (the call was cancelled). Notifications are dropped: a JSON answer cannot carry
/// them.
pub(crate) async fn response_of(frames: &mut FrameReceiver) -> Option<Frame> {
    while let Some(f) = frames.recv().await {
        if f.kind == FrameKind::Response {
            return Some(f);
        }
    }
    None
}

/// JSON or a per-request SSE stream, as the first frame decides. Every answer holds
/// its bytes from the answers' budget until written (`transport::answers`); one that
/// does not fit gets 503 if nothing was sent yet, else closes the stream (`client`
/// is named in the refusal's log line).
async fn answer(
    accept: Accept,
    mut frames: FrameReceiver,
    state: &AppState,
    client: Option<SocketAddr>,
) -> HttpResponse {
    let answering = Answering::new(state, client);
    if !accept.sse {
        return json_only(frames, state, answering, true).await;
    }
    let first = if accept.json {
        tokio::select! {
            // The answer first: most are in by now, and then the window's timer
            // is never set.
            biased;
            f = frames.recv() => match f {
                Some(f) if f.kind == FrameKind::Response => {
                    return json_response(f, &state.answers, true)
                }
                Some(f) => Some(f),
                // Cancelled before answering (shutdown).
                None => return HttpResponse::Accepted().finish(),
            },
            _ = tokio::time::sleep(JSON_WINDOW) => None,
        }
    } else {
        None
    };
    event_stream(answers::pieces(Box::pin(request_stream(
        first,
        frames,
        state.service.limits.stream_probe,
        answering,
    ))))
}

/// A JSON-only answer (either era): within the JSON window, a plain body; later, a
/// streamed one that watches the connection (see [`json_stream`]), so that a client
/// that closes gives its connection back at once. `modern`: a 2026-07-28 request
/// (its closed stream cancels the call; an error gets its status).
pub(crate) async fn json_only(
    mut frames: FrameReceiver,
    state: &AppState,
    answering: Answering,
    modern: bool,
) -> HttpResponse {
    tokio::select! {
        // The answer first (then the window's timer is never set).
        biased;
        f = response_of(&mut frames) => match f {
            Some(f) => json_response(f, &state.answers, modern),
            None => HttpResponse::Accepted().finish(),
        },
        _ = tokio::time::sleep(JSON_WINDOW) => HttpResponse::Ok()
            .content_type("application/json")
            .streaming(answers::pieces(Box::pin(json_stream(
                frames,
                state.service.limits.stream_probe,
                answering,
            )))),
    }
}

/// Where a streamed answer holds its bytes, and where it reports one that did not
/// fit.
pub(crate) struct Answering {
    budget: AnswerBudget,
    refusals: Arc<Refusals>,
    client: Option<SocketAddr>,
}

impl Answering {
    /// For answers to `client` within `state`'s budget.
    pub(crate) fn new(state: &AppState, client: Option<SocketAddr>) -> Answering {
        Answering {
            budget: state.answers.clone(),
            refusals: state.service.refusals.clone(),
            client,
        }
    }

    /// `parts` (one answer) within the budget; one that does not fit is counted and
    /// logged, and its `Err` closes the connection.
    fn hold(&self, parts: Vec<Bytes>) -> Result<Held, OverBudget> {
        self.budget.hold(parts).inspect_err(|over| {
            answers::refuse_stream(&self.refusals, self.client, *over);
        })
    }
}

/// The comment written every `limits.stream_probe` on 2026-07-28 streams.
const PROBE: &[u8] = b":\n\n";

fn sse_event(json: &str) -> Bytes {
    Bytes::from(format!("event: message\ndata: {json}\n\n"))
}

/// [`sse_event`] in three parts, `json` not copied.
fn sse_event_parts(json: String) -> Vec<Bytes> {
    vec![
        Bytes::from_static(b"event: message\ndata: "),
        Bytes::from(json),
        Bytes::from_static(b"\n\n"),
    ]
}

/// A JSON answer not ready within the JSON window: one space every `probe` until
/// the response comes (JSON allows whitespace before a value), then the response.
/// actix-web notices a closed connection only when a write fails: the spaces make
/// it notice, and dropping the body then drops `frames`, which cancels the call
/// (as closing an SSE stream does). Its status is 200 whatever the response says:
/// the head is sent before it is known.
fn json_stream(
    frames: FrameReceiver,
    probe: std::time::Duration,
    answering: Answering,
) -> impl futures::Stream<Item = Result<Held, OverBudget>> {
    let mut tick = tokio::time::interval(probe);
    tick.reset();
    let answering = Arc::new(answering);
    futures::stream::unfold(Some((frames, tick)), move |state| {
        let answering = answering.clone();
        async move {
            let (mut frames, mut tick) = state?;
            tokio::select! {
                f = response_of(&mut frames) => {
                    // The answer ends the body; no answer (cancelled): an empty end.
                    f.map(|f| (answering.hold(vec![Bytes::from(f.json)]), None))
                }
                _ = tick.tick() => Some((
                    Ok(Held::outside(Bytes::from_static(b" "))),
                    Some((frames, tick)),
                )),
            }
        }
    })
}

/// The events of one request: its notifications, then its response, which ends
/// the stream. Dropping the stream (the client closed it) drops `frames`, which
/// cancels the call. A probe comment every `probe` makes a closed connection show
/// (actix-web sees one only when a write fails).
fn request_stream(
    first: Option<Frame>,
    frames: FrameReceiver,
    probe: std::time::Duration,
    answering: Answering,
) -> impl futures::Stream<Item = Result<Held, OverBudget>> {
    // A comment first: the client sees the stream open at once.
    let head = futures::stream::iter([Ok(Held::outside(Bytes::from_static(b": stream\n\n")))]);
    let first = futures::stream::iter(first.map(|f| Ok((f.kind == FrameKind::Response, f.json))));
    let mut tick = tokio::time::interval(probe);
    tick.reset();
    let rest = futures::stream::unfold((frames, tick), |(mut frames, mut tick)| async move {
        tokio::select! {
            f = frames.recv() => f.map(|f| (Ok((f.kind == FrameKind::Response, f.json)), (frames, tick))),
            _ = tick.tick() => Some((Err(()), (frames, tick))),
        }
    });
    let events = first.chain(rest).scan(false, move |done, item| {
        if *done {
            return futures::future::ready(None);
        }
        let held = match item {
            Ok((is_response, json)) => {
                let held = answering.hold(sse_event_parts(json));
                // The response, or an answer that did not fit, ends the stream.
                *done = is_response || held.is_err();
                held
            }
            Err(()) => Ok(Held::outside(Bytes::from_static(PROBE))),
        };
        futures::future::ready(Some(held))
    });
    head.chain(events)
}

/// `subscriptions/listen`: a listener session under Root, and its stream; within
/// `limits.max_listen_streams` (and the client address's
/// `limits.max_listen_streams_per_ip`), ended with its final result after
/// `limits.listen_max_ms`.
async fn listen(
    state: &AppState,
    request: Box<Request>,
    client: Option<std::net::IpAddr>,
) -> HttpResponse {
    let id = request.id.clone();
    let limits = &state.service.limits;
    let place = match ListenStreams::take(
        &state.listens,
        client,
        limits.max_listen_streams,
        limits.max_listen_streams_per_ip,
    ) {
        Ok(place) => place,
        Err(limit) => {
            return Refusal::busy(format!("too many open listen streams ({limit})"))
                .because(reason::LISTEN_CAP)
                .answering(&id)
                .into();
        }
    };
    let opened = state
        .root
        .send(OpenSession {
            arbiter: Some(actix_rt::Arbiter::current()),
            kind: SessionKind::Listener,
            owner: None,
        })
        .await;
    let entry: Arc<SessionEntry> = match opened {
        Ok(Ok(entry)) => entry,
        Ok(Err(e @ (RootError::Full(_) | RootError::Share(_) | RootError::Draining))) => {
            return Refusal::no_session(e).answering(&id).into();
        }
        Ok(Err(e)) => return error_response(Some(&id), &RpcError::internal(e)),
        Err(e) => return error_response(Some(&id), &RpcError::internal(e)),
    };
    let (sink, mut frames) = Sink::channel();
    // The stream is the subscription: closing it ends the listener session, not
    // a call.
    let inbound = Inbound {
        cancel_on_close: false,
        ..Inbound::checked(request, sink, Checked { tool: None })
    };
    if entry.addr.send(inbound).await.is_err() {
        return busy("the server is shutting down");
    }
    // The session decided while handling the request (`send` resolves after it):
    // its first frame is the acknowledgement, or the refusal, answered like every
    // other 2026-07-28 refusal (400 with the JSON-RPC error, not a stream).
    let first = match frames.try_recv() {
        Ok(f) if f.kind == FrameKind::Response => return json_response(f, &state.answers, true),
        Ok(f) => Some(f),
        Err(_) => None,
    };
    // The session's frames go through a bounded queue to the connection: a client
    // that does not read is dropped instead of growing memory.
    let queue = state.service.limits.listen_queue;
    let (tx, rx) = mpsc::channel::<Bytes>(queue);
    if let Some(ack) = first {
        // The queue is empty: the acknowledgement fits (`listen_queue` ≥ 1).
        let _ = tx.try_send(sse_event(&ack.json));
    }
    let probe = state.service.limits.stream_probe;
    let lifetime = tokio::time::sleep(state.service.limits.listen_max);
    let service = state.service.clone();
    actix_rt::spawn(async move {
        let mut tick = tokio::time::interval(probe);
        tick.reset();
        tokio::pin!(lifetime);
        loop {
            let bytes = tokio::select! {
                () = &mut lifetime => {
                    // Lived its time: end it as a shutdown would, with its final
                    // result; the client opens a new one.
                    let result = service.envelope().listen_closed(&id);
                    let _ = tx.try_send(sse_event(&encode_result(&id, &result)));
                    break;
                }
                f = frames.recv() => match f {
                    Some(f) => {
                        let end = f.kind == FrameKind::Response;
                        let sent = tx.try_send(sse_event(&f.json));
                        if end || sent.is_err() {
                            if let Err(mpsc::error::TrySendError::Full(_)) = sent {
                                service.refusals.refuse(Refused::new(
                                    reason::LISTENER_SLOW,
                                    &format!("listen stream dropped: the client does not read ({queue} messages unread, limits.listen_queue)"),
                                ));
                            }
                            break;
                        }
                        continue;
                    }
                    None => break,
                },
                _ = tick.tick() => Bytes::from_static(PROBE),
                () = tx.closed() => break,
            };
            let _ = tx.try_send(bytes);
        }
        // Dropping `frames` ends the listener session (it watches its sink).
    });
    let guard = StreamGuard::new(entry);
    // The stream holds its place while the connection takes it.
    let body = futures::stream::unfold((rx, guard, place), |(mut rx, guard, place)| async move {
        rx.recv()
            .await
            .map(|b| (Ok::<Bytes, Infallible>(b), (rx, guard, place)))
    });
    let head = futures::stream::iter([Ok(Bytes::from_static(b": listening\n\n"))]);
    event_stream(head.chain(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_codes_decide_the_status() {
        assert_eq!(status_of(-32601), StatusCode::NOT_FOUND);
        assert_eq!(status_of(-32022), StatusCode::BAD_REQUEST);
        assert_eq!(status_of(-32603), StatusCode::OK);
    }
}
