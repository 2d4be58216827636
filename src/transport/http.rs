//! Streamable HTTP transport on actix-web: `POST`/`GET`/`DELETE /mcp`, both eras on
//! one endpoint. This file holds what both share and the session era; the
//! 2026-07-28 path is `transport::modern`.
//!
//! Request path, in order, each step answering before any work when it fails:
//! 1. (middleware, every `/mcp` request) a connection beyond the address's
//!    `http.max_connections_per_ip` → 429 + `Retry-After`, connection closed; then
//!    Host and Origin (one each, parsed as authorities) against the allowlist → 403;
//!    then, with `[auth]` (a tokens file or OAuth), the bearer token
//!    (`token`, [`Auth::check`]): missing → 401 + `WWW-Authenticate: Bearer`,
//!    unknown or refused → 401 with `error="invalid_token"` (with OAuth, the
//!    challenge also names the RFC 9728 metadata, served open at
//!    `/.well-known/oauth-protected-resource[/mcp]`); the request's [`Principal`]
//!    goes into its extensions;
//! 2. `Content-Type` and `Content-Encoding` (415), `Accept` (406), body size (413),
//!    body not complete within `limits.body_timeout_ms` (408, connection closed);
//! 3. parse: malformed JSON → 400 with -32700, not JSON-RPC → 400 with -32600;
//!    then the `[rate]` limits (`transport::rate`) for its `initialize` and
//!    `tools/call` messages, by principal (else client address) and server-wide:
//!    past one → 429 + `Retry-After` with -32090;
//! 4. era ([`modern::is_modern`]): a request naming 2026-07-28 (in `_meta` or the
//!    `MCP-Protocol-Version` header), or one without `Mcp-Session-Id` other than
//!    `initialize`, goes to `transport::modern`; the rest is the session era:
//! 5. `MCP-Protocol-Version`, one at most (400);
//! 6. session: `initialize` opens one (503 + `Retry-After` at the cap, or at the
//!    principal's share of it); anything else
//!    needs a known `Mcp-Session-Id` (missing → 400, unknown or ended → 404; one
//!    opened by another principal → 404 too); a `tools/call` of a tool the
//!    principal may not call → 403 (an access token without the tool's scope:
//!    `error="insufficient_scope"`);
//! 7. hand the payload to the Session actor with a fresh sink, then answer:
//!    notifications/responses only → 202; a request → the first frame decides: its
//!    response within [`JSON_WINDOW`] → `application/json`; a notification or a server
//!    → client request first, or nothing yet → an SSE stream (priming event, related
//!    messages, the response, end) run by a resumable pump (`transport::sse`).

use std::convert::Infallible;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, App, HttpMessage, HttpRequest, HttpResponse, HttpServer};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;

use crate::auth::{Auth, Principal, Tokens};
use crate::config::HttpConfig;
use crate::protocol::jsonrpc::{self, encode_error};
use crate::protocol::{code, Message, Payload, ProtocolVersion, RpcError};
use crate::runtime::root::{
    CloseSession, DrainAll, OpenSession, RestoreSession, RootError, SessionEntry,
};
use crate::runtime::service::Service;
use crate::runtime::session::{Inbound, SessionKind, SetStandalone};
use crate::sink::{Frame, FrameKind, Sink};
use crate::telemetry::metrics::reason;
use crate::transport::admin;
use crate::transport::answers::{self, Held, OverBudget};
use crate::transport::connections;
use crate::transport::exchange::{
    accept_of, header_str, names, rpc_error, unavailable_frame, with_detail, Refusal,
    RefusalCounted, RefusalDetail, RefusalReason, StreamGuard, JSON_WINDOW,
};
use crate::transport::hosts::check_host_and_origin;
use crate::transport::modern;
use crate::transport::rate;
use crate::transport::sse::{self, Pump, StreamKind};
pub use crate::transport::state::AppState;

/// The MCP endpoint path.
pub const MCP_PATH: &str = "/mcp";
/// After the drain, how long open connections (streams with nothing left to say,
/// answers still being written) get before the server drops them. The whole stop
/// takes at most `limits.shutdown_grace_ms` + this + the final storage flush.
pub const SHUTDOWN_MARGIN: Duration = Duration::from_secs(2);
/// How often the SSE replay log is trimmed to its bounds.
pub const EVENT_TRIM_EVERY: Duration = Duration::from_secs(1);

/// Register the MCP routes on an actix-web app: the one `fn app()` shared by the
/// binary and the tests. Called on each worker's thread: each worker gets its own
/// stateless session, so a 2026-07-28 request is served on the thread that read it.
pub fn routes(state: AppState) -> impl FnOnce(&mut web::ServiceConfig) {
    routes_at(state, MCP_PATH.into())
}

/// [`routes`] with the MCP endpoint at `path` instead of [`MCP_PATH`].
pub fn routes_at(state: AppState, path: Arc<str>) -> impl FnOnce(&mut web::ServiceConfig) {
    move |cfg| {
        let worker = web::Data::new(state.worker_session());
        if state.auth.as_ref().is_some_and(Auth::oauth_on) {
            // RFC 9728: at the root and suffixed with the endpoint's path.
            for at in [METADATA_PATH.to_owned(), format!("{METADATA_PATH}{path}")] {
                cfg.service(
                    web::resource(at)
                        .wrap(from_fn(metadata_gates))
                        .route(web::get().to(resource_metadata))
                        .default_service(web::to(metadata_method_not_allowed)),
                );
            }
        }
        cfg.app_data(web::Data::new(state))
            .app_data(worker)
            .service(
                web::resource(&*path)
                    .wrap(from_fn(mcp_gates))
                    .default_service(web::to(mcp)),
            );
    }
}

/// What every accepted connection gets, for an actix-web `HttpServer::on_connect`:
/// `TCP_NODELAY` (DESIGN §8: without it, multi-write SSE answers stall on delayed
/// ACKs), a place in the per-address count (`http.max_connections_per_ip`, IPv6 by
/// /64: past it the connection's `/mcp` requests get 429 and it is closed), in the
/// `mcp_active_connections` gauge, and a place among the MCP connections
/// (`http.max_connections`) its first `/mcp` request takes.
fn connection_hook(
    service: &Service,
    per_ip_limit: usize,
    mcp: Arc<connections::McpConnections>,
) -> impl Fn(&dyn std::any::Any, &mut actix_web::dev::Extensions) + Send + Sync + 'static {
    let connections = service.metrics.active_connections.clone();
    let refusals = service.refusals.clone();
    let per_address = Arc::new(connections::PerAddress::default());
    move |conn, ext| {
        if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
            let _ = tcp.set_nodelay(true);
            if let Ok(peer) = tcp.peer_addr() {
                let guard =
                    connections::PerAddress::connected(&per_address, peer.ip(), per_ip_limit);
                if guard.over {
                    refuse_at_connect(tcp, peer, &refusals);
                    ext.insert(RefusedAtConnect);
                }
                ext.insert(guard);
            }
        }
        // Lives as long as the connection: the gauge follows open connections.
        ext.insert(connections::ConnectionGuard::new(connections.clone()));
        // Counted among the MCP connections from its first `/mcp` request.
        ext.insert(connections::McpSlot::new(mcp.clone()));
    }
}

/// What a connection past `http.max_connections_per_ip` gets the moment it is
/// accepted: the 429 its first request would get, written at once, and the socket
/// shut down both ways, so that the server lets go of it now. Waiting for a
/// request instead would let a client that never sends one keep its accepted
/// connections for the request-head timeout, and four addresses renewing such
/// connections filled every place the listener accepts, `/health/live`'s too.
/// (`door` keeps the same refusal for a connection whose socket
/// this cannot reach.)
fn refuse_at_connect(
    tcp: &actix_web::rt::net::TcpStream,
    peer: std::net::SocketAddr,
    refusals: &crate::telemetry::Refusals,
) {
    let error = over_per_ip_error();
    let body = encode_error(None, &error);
    let answer = format!(
        "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\n\
         retry-after: {}\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        crate::transport::exchange::RETRY_AFTER_SECS,
        body.len()
    );
    // Counted before the client can see the answer: a client that reads the 429
    // and then scrapes /metrics finds it counted.
    refusals.refuse(crate::telemetry::Refused {
        reason: reason::CONNECTION_LIMIT,
        status: Some(429),
        client: Some(peer),
        method: None,
        detail: &error.message,
    });
    // A new socket's send buffer takes this whole: one non-blocking write, straight
    // to the socket (tokio's `try_write` waits for a readiness event the reactor has
    // not seen yet on a socket this new).
    let socket = socket2::SockRef::from(tcp);
    let _ = socket.send(answer.as_bytes());
    let _ = socket.shutdown(std::net::Shutdown::Both);
}

/// Set on a connection `refuse_at_connect` refused (and counted): a request it
/// had sent already still gets the 429, not counted twice.
#[derive(Debug, Clone, Copy)]
struct RefusedAtConnect;

/// The error a client past `http.max_connections_per_ip` is told.
fn over_per_ip_error() -> RpcError {
    RpcError::new(
        crate::protocol::code::SERVER_BUSY,
        "too many connections from this address (http.max_connections_per_ip); retry later",
    )
}

fn bad_request_refusal(message: impl Into<String>) -> Refusal {
    Refusal::new(
        StatusCode::BAD_REQUEST,
        RpcError::invalid_request(message.into()),
    )
}

fn bad_request(message: impl Into<String>) -> HttpResponse {
    bad_request_refusal(message).into()
}

/// `/mcp`, by method. One handler rather than a route per method: actix-web's
/// method guards record in each request's extensions the methods they tried (two
/// allocations a request). GET and DELETE, once or twice a session, are boxed so
/// that their state does not make every POST's future larger.
async fn mcp(req: HttpRequest, body: web::Payload, state: web::Data<AppState>) -> HttpResponse {
    match *req.method() {
        Method::POST => post_mcp(req, body, state).await,
        Method::GET => Box::pin(get_mcp(req, state)).await,
        Method::DELETE => Box::pin(delete_mcp(req, state)).await,
        _ => method_not_allowed(),
    }
}

fn method_not_allowed() -> HttpResponse {
    let error = RpcError::new(-32000, "method not allowed");
    with_detail(
        HttpResponse::MethodNotAllowed()
            .insert_header((header::ALLOW, "GET, POST, DELETE"))
            .content_type("application/json")
            .body(encode_error(None, &error)),
        &error,
    )
}

/// The gates of `/mcp`, as one middleware (each `from_fn` layer costs a request
/// two boxed futures): the connection limits and Host/Origin ([`door`]), then the
/// bearer token ([`token`]), then the endpoint; whatever is refused on the way,
/// here or by the endpoint, is counted and logged ([`Seen::count`]).
async fn mcp_gates(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    let seen = Seen::of(&req);
    let resp = match door(&req) {
        Some(refused) => req.into_response(refused),
        None => match token(&req).await {
            Some(refused) => req.into_response(refused),
            None => next.call(req).await?.map_into_boxed_body(),
        },
    };
    seen.count(&resp);
    Ok(resp)
}

/// [`mcp_gates`] for the open protected resource metadata: no token.
async fn metadata_gates(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<actix_web::body::BoxBody>, actix_web::Error> {
    let seen = Seen::of(&req);
    let resp = match door(&req) {
        Some(refused) => req.into_response(refused),
        None => next.call(req).await?.map_into_boxed_body(),
    };
    seen.count(&resp);
    Ok(resp)
}

/// What a refusal's count and log line need of its request, taken before the
/// request is handed on.
struct Seen {
    state: Option<web::Data<AppState>>,
    client: Option<std::net::SocketAddr>,
    method: Method,
}

impl Seen {
    fn of(req: &ServiceRequest) -> Seen {
        Seen {
            state: req.app_data::<web::Data<AppState>>().cloned(),
            client: req.peer_addr(),
            method: req.method().clone(),
        }
    }

    /// Count a refused request in `mcp_rejected_total{reason}` (the reason its
    /// response is marked with, else the one its status implies) and log it with
    /// its status, the client's address and the error it was told, within the
    /// refusal log's flood control (`telemetry::refusals`): the one place for HTTP
    /// refusals.
    fn count<B>(self, resp: &ServiceResponse<B>) {
        if resp.response().extensions().contains::<RefusalCounted>() {
            return;
        }
        let marked = resp.response().extensions().get::<RefusalReason>().copied();
        let reason = match resp.status() {
            _ if marked.is_some() => marked.map(|m| m.0),
            StatusCode::FORBIDDEN => Some(reason::FORBIDDEN),
            StatusCode::PAYLOAD_TOO_LARGE => Some(reason::TOO_LARGE),
            StatusCode::NOT_FOUND => Some(reason::UNKNOWN_SESSION),
            StatusCode::SERVICE_UNAVAILABLE => Some(reason::SHUTTING_DOWN),
            s if s.is_client_error() => Some(reason::BAD_REQUEST),
            _ => None,
        };
        if let (Some(reason), Some(state)) = (reason, self.state) {
            let extensions = resp.response().extensions();
            let detail = extensions
                .get::<RefusalDetail>()
                .map_or("", |d| d.0.as_str());
            state.service.refusals.refuse(crate::telemetry::Refused {
                reason,
                status: Some(resp.status().as_u16()),
                client: self.client,
                method: Some(self.method.as_str()),
                detail,
            });
        }
    }
}

/// The door: the connection limits and the Host/Origin check; the refusal, if any.
fn door(req: &ServiceRequest) -> Option<HttpResponse> {
    // One address over `http.max_connections_per_ip`: refuse, and close this
    // connection to give its descriptor back.
    if req
        .conn_data::<connections::AddressGuard>()
        .is_some_and(|g| g.over)
    {
        let refusal = Refusal::new(StatusCode::TOO_MANY_REQUESTS, over_per_ip_error())
            .because(reason::CONNECTION_LIMIT)
            .closing();
        let mut resp = HttpResponse::from(refusal);
        if req.conn_data::<RefusedAtConnect>().is_some() {
            resp.extensions_mut().insert(RefusalCounted);
        }
        return Some(resp);
    }
    // `http.max_connections` MCP connections open: refuse this one's first `/mcp`
    // request and close it, so that the connections kept beyond the cap
    // (`http.ops_connections`) serve the operations routes.
    if req
        .conn_data::<connections::McpSlot>()
        .is_some_and(|slot| !slot.take())
    {
        let refusal = Refusal::busy(
            "the server holds all the MCP connections it serves (http.max_connections)",
        )
        .because(reason::CONNECTION_CAP)
        .closing();
        return Some(HttpResponse::from(refusal));
    }
    let refused = req
        .app_data::<web::Data<AppState>>()
        .map(|s| check_host_and_origin(&s.http, req.headers()));
    if let Some(Err(why)) = refused {
        return Some(rpc_error(
            StatusCode::FORBIDDEN,
            RpcError::new(-32000, format!("forbidden: {why}")),
        ));
    }
    None
}

/// The bearer-token gate (`[auth]`: a tokens file and/or OAuth), after the door
/// and before any body is read or session looked up: without a valid
/// `Authorization: Bearer` token, the 401 (counted `unauthorized`, logged without
/// the token); with one, its [`Principal`] goes into the request's extensions.
/// Without auth configured it does nothing.
async fn token(req: &ServiceRequest) -> Option<HttpResponse> {
    let auth = req
        .app_data::<web::Data<AppState>>()
        .and_then(|s| s.auth.clone())?;
    let presented = req
        .headers()
        .get_all(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    match auth.check(presented).await {
        Ok(principal) => {
            req.extensions_mut().insert(principal);
            None
        }
        Err(denied) => Some(HttpResponse::from(Refusal::unauthorized(&auth, denied))),
    }
}

/// RFC 9728 §3.1: where the protected resource metadata is served (open, `GET`).
pub const METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// The protected resource metadata (RFC 9728 §2), JSON; 404 without OAuth.
async fn resource_metadata(state: web::Data<AppState>) -> HttpResponse {
    #[cfg(feature = "oauth")]
    if let Some(oauth) = state.auth.as_ref().and_then(|a| a.oauth.as_ref()) {
        return HttpResponse::Ok()
            .content_type("application/json")
            .insert_header((header::CACHE_CONTROL, "max-age=300"))
            .body(oauth.metadata().to_string());
    }
    let _ = state;
    HttpResponse::NotFound().finish()
}

/// 405 for a method other than `GET` on the metadata paths.
async fn metadata_method_not_allowed() -> HttpResponse {
    let error = RpcError::new(-32000, "method not allowed");
    with_detail(
        HttpResponse::MethodNotAllowed()
            .insert_header((header::ALLOW, "GET"))
            .content_type("application/json")
            .body(encode_error(None, &error)),
        &error,
    )
}

/// Validate `MCP-Protocol-Version` (absent means 2025-03-26; sent twice: 400).
fn check_version_header(req: &HttpRequest) -> Result<(), Refusal> {
    if req.headers().get_all(&names::VERSION).nth(1).is_some() {
        return Err(bad_request_refusal(
            "more than one MCP-Protocol-Version header",
        ));
    }
    match header_str(req, &names::VERSION) {
        None => Ok(()),
        Some(v) => match ProtocolVersion::parse(v.trim()) {
            Some(p) if p.is_legacy() && p >= ProtocolVersion::V2025_03_26 => Ok(()),
            _ => Err(bad_request_refusal(format!(
                "unsupported MCP-Protocol-Version: {v:?}"
            ))),
        },
    }
}

/// The live session named by `Mcp-Session-Id`; a saved session whose actor is gone
/// (the process restarted) is rebuilt from its record. A session opened by
/// another principal than the request's is answered as unknown (404).
async fn session_of(req: &HttpRequest, state: &AppState) -> Result<Arc<SessionEntry>, Refusal> {
    let entry = find_session(req, state).await?;
    let principal = req.extensions().get::<Principal>().map(|p| p.name.clone());
    if entry.owner != principal {
        return Err(session_gone());
    }
    Ok(entry)
}

/// 404: the session named is unknown, ended, or not the caller's.
fn session_gone() -> Refusal {
    Refusal::new(
        StatusCode::NOT_FOUND,
        RpcError::new(
            -32001,
            "session not found (ended or unknown); initialize again",
        ),
    )
}

/// [`session_of`] before the principal's check.
async fn find_session(req: &HttpRequest, state: &AppState) -> Result<Arc<SessionEntry>, Refusal> {
    let Some(id) = header_str(req, &names::SESSION) else {
        return Err(bad_request_refusal(
            "missing Mcp-Session-Id header (send initialize first)",
        ));
    };
    let id = id.trim();
    if let Some(entry) = state.registry.get(id) {
        return Ok(entry);
    }
    let restore = RestoreSession {
        id: Arc::from(id),
        arbiter: Some(actix_rt::Arbiter::current()),
    };
    match state.root.send(restore).await {
        Ok(Ok(Some(entry))) => return Ok(entry),
        Ok(Err(e @ (RootError::Full(_) | RootError::Share(_) | RootError::Draining))) => {
            return Err(Refusal::no_session(e))
        }
        _ => {}
    }
    Err(session_gone())
}

/// The whole body, within `limits.max_message_bytes` (413), `limits.body_timeout`
/// (408, and the connection is closed) and the bytes all bodies being read may hold
/// together, `limits.max_body_bytes_total` (503 + `Retry-After`).
async fn read_body(
    req: &HttpRequest,
    body: web::Payload,
    state: &AppState,
) -> Result<Bytes, HttpResponse> {
    let limits = &state.service.limits;
    match tokio::time::timeout(
        limits.body_timeout,
        read_body_bytes(req, body, limits.max_message_bytes, &state.bodies),
    )
    .await
    {
        Ok(read) => read.map_err(|(refusal, reason)| match reason {
            Some(reason) => refusal.because(reason).into(),
            None => refusal.into(),
        }),
        Err(_) => {
            let error = RpcError::invalid_request(format!(
                "the body did not arrive within {} ms (limits.body_timeout_ms)",
                limits.body_timeout.as_millis()
            ));
            let refusal = Refusal::new(StatusCode::REQUEST_TIMEOUT, error)
                .because(reason::BODY_TIMEOUT)
                .closing();
            Err(refusal.into())
        }
    }
}

/// A body refused while reading, and its `mcp_rejected_total` reason when the status
/// does not imply it.
type BodyRefusal = (Refusal, Option<&'static str>);

async fn read_body_bytes(
    req: &HttpRequest,
    mut body: web::Payload,
    limit: usize,
    budget: &Arc<tokio::sync::Semaphore>,
) -> Result<Bytes, BodyRefusal> {
    let too_large = || {
        let refusal = Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            RpcError::invalid_request(format!(
                "body larger than {limit} bytes (limits.max_message_bytes)"
            )),
        );
        (refusal, None)
    };
    // Bytes being read are reserved from the budget all bodies share (the whole
    // declared length at once when there is one) and given back when this returns.
    let reserve = |held: &mut Option<tokio::sync::OwnedSemaphorePermit>, n: usize| {
        let more = u32::try_from(n)
            .ok()
            .and_then(|n| budget.clone().try_acquire_many_owned(n).ok());
        match (held.as_mut(), more) {
            (_, None) => Err((
                Refusal::busy("request bodies being read hold all of limits.max_body_bytes_total"),
                Some(reason::BODY_BUDGET),
            )),
            (Some(held), Some(more)) => {
                held.merge(more);
                Ok(())
            }
            (None, Some(more)) => {
                *held = Some(more);
                Ok(())
            }
        }
    };
    let mut held = None;
    let declared = header_str(req, &header::CONTENT_LENGTH).and_then(|v| v.parse::<usize>().ok());
    if let Some(len) = declared {
        if len > limit {
            return Err(too_large());
        }
        reserve(&mut held, len)?;
    }
    let mut buf = BytesMut::new();
    while let Some(chunk) = body.next().await {
        let chunk =
            chunk.map_err(|e| (bad_request_refusal(format!("cannot read body: {e}")), None))?;
        if buf.len() + chunk.len() > limit {
            return Err(too_large());
        }
        if declared.is_none() {
            reserve(&mut held, chunk.len())?;
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

/// `(messages owed an answer, has initialize)`. In a batch an item that is not
/// JSON-RPC is owed an error response too (JSON-RPC 2.0 §6).
fn count_requests(payload: &Payload) -> (usize, bool) {
    let is_req = |m: &Result<Message, _>| matches!(m, Ok(Message::Request(_)) | Err(_));
    let is_init =
        |m: &Result<Message, _>| matches!(m, Ok(Message::Request(r)) if r.call.is_initialize());
    match payload {
        Payload::Single(m) => (usize::from(is_req(m)), is_init(m)),
        Payload::Batch(items) => (
            items.iter().filter(|m| is_req(m)).count(),
            items.iter().any(is_init),
        ),
    }
}

/// 503 + `Retry-After` for a POST carrying requests once the drain began, decided
/// here for every shape of answer (an SSE-only `Accept`, a batch), so a proxy may
/// send it to another instance: each request's error, with its id (a batch's as an
/// array). Counted `shutting_down` by the gates (`Seen::count`).
fn draining(payload: &Payload) -> HttpResponse {
    let error = crate::transport::exchange::shutting_down();
    let one = |m: &Result<Message, jsonrpc::Rejected>| match m {
        Ok(Message::Request(r)) => Some(encode_error(Some(&r.id), &error)),
        Err(rejected) => Some(encode_error(rejected.id.as_ref(), &rejected.error)),
        Ok(_) => None,
    };
    let json = match payload {
        Payload::Single(m) => one(m).unwrap_or_default(),
        Payload::Batch(items) => {
            let answers: Vec<String> = items.iter().filter_map(one).collect();
            format!("[{}]", answers.join(","))
        }
    };
    with_detail(crate::transport::exchange::unavailable(json), &error)
}

/// Bytes of an event's data handed to the connection at a time.
const REPLAY_CHUNK: usize = 64 * 1024;

/// The SSE events of a replay from the log: the body pulls one event at a time from
/// storage, and a big event in chunks (sharing sled's copy, or read from its file),
/// so a client that does not read holds at most one chunk of it in this process.
fn replay_body(
    stream: u64,
    events: impl Iterator<Item = Result<(u64, crate::storage::Event), crate::storage::StorageError>>
        + Send
        + 'static,
    log: &slog::Logger,
) -> impl futures::Stream<Item = Result<Bytes, Infallible>> {
    let log = log.clone();
    let pieces = events.flat_map(move |item| {
        let event = item.map_err(|e| e.to_string()).and_then(|(seq, event)| {
            let chunks = event.chunks(REPLAY_CHUNK).map_err(|e| e.to_string())?;
            Ok((seq, chunks))
        });
        let pieces: Box<dyn Iterator<Item = Bytes> + Send> = match event {
            Ok((seq, chunks)) => {
                let head = Bytes::from(format!("id: {}\ndata: ", sse::event_id(stream, seq)));
                Box::new(
                    std::iter::once(head)
                        .chain(chunks)
                        .chain(std::iter::once(Bytes::from_static(b"\n\n"))),
                )
            }
            Err(e) => {
                slog::warn!(log, "replay failed"; "error" => e);
                Box::new(std::iter::empty())
            }
        };
        pieces
    });
    futures::stream::iter(pieces.map(Ok::<Bytes, Infallible>))
}

/// An SSE response: `head`, then what the pump sends to `rx` until it lets the
/// connection go, with a guard that keeps the session "not idle" while the connection
/// is open. Each event is written in pieces and holds its bytes from the answers'
/// budget until written (`transport::answers`); `head` (the priming event, or a
/// replay read from the log a chunk at a time) is outside it.
fn sse_response(
    entry: Arc<SessionEntry>,
    head: impl futures::Stream<Item = Result<Bytes, Infallible>> + 'static,
    rx: Option<sse::OutRx>,
) -> HttpResponse {
    let guard = StreamGuard::new(entry);
    let head = head.map(|b| b.map(Held::outside).map_err(|never| match never {}));
    let tail = futures::stream::unfold((rx, guard), |(mut rx, guard)| async move {
        let held = rx.as_mut()?.recv().await?;
        Some((Ok::<Held, OverBudget>(held), (rx, guard)))
    });
    crate::transport::exchange::event_stream(answers::pieces(Box::pin(head.chain(tail))))
}

fn priming(stream: u64) -> impl futures::Stream<Item = Result<Bytes, Infallible>> {
    futures::stream::iter([Ok(sse::priming(stream))])
}

async fn post_mcp(
    req: HttpRequest,
    body: web::Payload,
    state: web::Data<AppState>,
) -> HttpResponse {
    let content_type = header_str(&req, &header::CONTENT_TYPE).unwrap_or("");
    let json = "application/json";
    if !content_type
        .get(..json.len())
        .is_some_and(|t| t.eq_ignore_ascii_case(json))
    {
        return rpc_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            RpcError::invalid_request("Content-Type must be application/json"),
        );
    }
    // Request bodies are not decompressed (no MCP client compresses them).
    if let Some(encoding) = header_str(&req, &header::CONTENT_ENCODING) {
        if !encoding.trim().eq_ignore_ascii_case("identity") {
            return rpc_error(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                RpcError::invalid_request(format!(
                    "Content-Encoding {encoding} is not supported; send the body uncompressed"
                )),
            );
        }
    }
    let accept = accept_of(&req);
    if !accept.json && !accept.sse {
        return rpc_error(
            StatusCode::NOT_ACCEPTABLE,
            RpcError::invalid_request("Accept must allow application/json or text/event-stream"),
        );
    }
    let bytes = match read_body(&req, body, &state).await {
        Ok(b) => b,
        Err(refused) => return refused,
    };
    let mut payload = jsonrpc::parse(&bytes);
    if let Payload::Single(Err(rejected)) = &payload {
        if matches!(
            rejected.error.code,
            code::PARSE_ERROR | code::INVALID_REQUEST
        ) {
            return with_detail(
                HttpResponse::BadRequest()
                    .content_type("application/json")
                    .body(encode_error(rejected.id.as_ref(), &rejected.error)),
                &rejected.error,
            );
        }
    }
    trace_from_header(&req, &mut payload);
    if let Some(refused) = over_rate(&req, &state, &payload) {
        return refused;
    }
    if modern::is_modern(req.headers(), &payload) {
        // Boxed: its state would otherwise be part of every POST's future (1,112
        // bytes with it, 640 without), written and moved for the session era too.
        return Box::pin(modern::post(&req, &state, accept, payload)).await;
    }
    if let Err(refusal) = check_version_header(&req) {
        return refusal.into();
    }
    if let Payload::Single(Err(rejected)) = &payload {
        // Well-formed JSON-RPC with bad params: a JSON-RPC error, as the session
        // would answer it.
        return HttpResponse::Ok()
            .content_type("application/json")
            .body(encode_error(rejected.id.as_ref(), &rejected.error));
    }
    let (requests, has_init) = count_requests(&payload);
    if requests > 0 && !has_init && state.draining.load(Ordering::Acquire) {
        return draining(&payload);
    }
    let principal = req.extensions().get::<Principal>().cloned();
    let entry = if has_init {
        if matches!(payload, Payload::Batch(_)) {
            return bad_request("initialize must not be part of a batch");
        }
        match state
            .root
            .send(OpenSession {
                arbiter: Some(actix_rt::Arbiter::current()),
                kind: SessionKind::Http,
                owner: principal.as_ref().map(|p| p.name.clone()),
            })
            .await
        {
            Ok(Ok(entry)) => entry,
            Ok(Err(e @ (RootError::Full(_) | RootError::Share(_) | RootError::Draining))) => {
                return Refusal::no_session(e).into()
            }
            Ok(Err(e)) => {
                return rpc_error(StatusCode::INTERNAL_SERVER_ERROR, RpcError::internal(e))
            }
            Err(e) => return rpc_error(StatusCode::SERVICE_UNAVAILABLE, RpcError::internal(e)),
        }
    } else {
        match session_of(&req, &state).await {
            Ok(entry) => entry,
            Err(refusal) => return refusal.into(),
        }
    };
    if let Payload::Single(Ok(Message::Request(request))) = &payload {
        if let Some(refusal) = modern::forbidden_call(&req, request) {
            return refusal.into();
        }
    }
    entry.touch();

    let (sink, mut frames) = Sink::channel();
    let inbound = Inbound::new(payload, sink).from_principal(principal);
    if entry.addr.send(inbound).await.is_err() {
        return rpc_error(
            StatusCode::NOT_FOUND,
            RpcError::new(-32001, "session ended"),
        );
    }
    if requests == 0 {
        return HttpResponse::Accepted().finish();
    }

    let mut session_header = None;
    if has_init {
        session_header = Some(entry.id.to_string());
    }
    let with_session = |mut resp: HttpResponse| {
        if let Some(id) = &session_header {
            if let Ok(v) = HeaderValue::from_str(id) {
                resp.headers_mut().insert(names::SESSION.clone(), v);
            }
        }
        resp
    };

    if !accept.sse && !has_init {
        // JSON only: within the window, a plain body; later, one led by whitespace
        // probes, so that a client that closes gives its connection back at once
        // (the call runs on: the session era does not cancel on a close).
        let answering = modern::Answering::new(&state, req.peer_addr());
        return with_session(modern::json_only(frames, &state, answering, false).await);
    }
    if !accept.sse || has_init {
        // `initialize` (answered at once): wait for the response, dropping related
        // notifications (the client cannot receive them on this request).
        while let Some(f) = frames.recv().await {
            if f.kind == FrameKind::Response {
                if f.unavailable {
                    return unavailable_frame(f.json);
                }
                let refused = f.error.is_some();
                let resp = answers::json(&state.answers, StatusCode::OK, f.json);
                if has_init && (refused || resp.status() != StatusCode::OK) {
                    // A refused initialize (or one whose answer did not fit) leaves
                    // no session behind.
                    state.root.do_send(CloseSession(entry.id.clone()));
                    return resp;
                }
                return with_session(resp);
            }
        }
        // Every sender is gone without a response: the request was cancelled.
        return HttpResponse::Accepted().finish();
    }
    // The first frame decides between a JSON answer and a stream.
    let first: Option<Frame> = if accept.json {
        tokio::select! {
            // The answer first: most are in by now, and then the window's timer
            // is never set.
            biased;
            f = frames.recv() => f,
            _ = tokio::time::sleep(JSON_WINDOW) => None,
        }
    } else {
        None
    };
    let first = match first {
        Some(f) if f.kind == FrameKind::Response && accept.json => {
            if f.unavailable {
                return unavailable_frame(f.json);
            }
            return with_session(answers::json(&state.answers, StatusCode::OK, f.json));
        }
        first => first,
    };
    let stream = state.streams.of(&entry).allocate();
    let (out, rx) = sse::connection(state.service.limits.sse_buffer_bytes, state.answers.clone());
    pump(&state, &entry, stream, StreamKind::Request).start(first, frames, Some(out));
    with_session(sse_response(entry, priming(stream), Some(rx)))
}

/// The `[rate]` limits for the metered messages of `payload` (`initialize` and
/// `tools/call`, each item of a batch), counted for the request's principal, or
/// its client address when it has none, and for the server: past one, 429 with
/// `Retry-After` (the wait, in seconds rounded up) and a JSON-RPC
/// [`code::RATE_LIMITED`] error naming the limit, counted `rate_limit`.
fn over_rate(req: &HttpRequest, state: &AppState, payload: &Payload) -> Option<HttpResponse> {
    let rate = state.rate.as_ref()?;
    let n = rate::metered(payload);
    if n == 0 {
        return None;
    }
    let principal = req.extensions().get::<Principal>().map(|p| p.name.clone());
    let key = match (&principal, req.peer_addr()) {
        (Some(name), _) => rate::Key::Principal(name),
        (None, Some(peer)) => rate::Key::Address(peer.ip()),
        (None, None) => rate::Key::Unknown,
    };
    let over = rate.check(key, n).err()?;
    let secs = over.retry_after_secs();
    let setting = over.limit.setting();
    let error = RpcError::new(
        code::RATE_LIMITED,
        format!("rate limit reached ({setting}); retry in {secs} s"),
    )
    .with_data(serde_json::json!({ "limit": setting, "retryAfterSeconds": secs }));
    let mut refusal =
        Refusal::new(StatusCode::TOO_MANY_REQUESTS, error).because(reason::RATE_LIMIT);
    if let Payload::Single(Ok(Message::Request(r))) = payload {
        refusal = refusal.answering(&r.id);
    }
    let mut resp = HttpResponse::from(refusal);
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    Some(resp)
}

/// 405 for `GET`/`DELETE` without `Mcp-Session-Id`: 2026-07-28 has no session
/// streams and nothing to delete.
fn no_session_method() -> HttpResponse {
    let error = RpcError::invalid_request(
        "GET and DELETE need an Mcp-Session-Id (session era); 2026-07-28 requests are POSTs",
    );
    with_detail(
        HttpResponse::MethodNotAllowed()
            .insert_header((header::ALLOW, "POST"))
            .content_type("application/json")
            .body(encode_error(None, &error)),
        &error,
    )
}

/// W3C trace context from the HTTP `traceparent` header, for the requests of
/// `payload` whose `_meta` has none (a `_meta.traceparent`, set by the MCP client
/// for that request, wins over the header, which a proxy may have set for the
/// whole HTTP exchange). Only the log lines read it.
fn trace_from_header(req: &HttpRequest, payload: &mut Payload) {
    let Some(traceparent) = header_str(req, &names::TRACEPARENT) else {
        return;
    };
    let adopt = |m: &mut Result<Message, _>| {
        if let Ok(Message::Request(r)) = m {
            if r.meta.traceparent.is_none() {
                r.meta.traceparent = Some(traceparent.to_owned());
            }
        }
    };
    match payload {
        Payload::Single(m) => adopt(m),
        Payload::Batch(items) => items.iter_mut().for_each(adopt),
    }
}

async fn get_mcp(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    if header_str(&req, &names::SESSION).is_none() {
        return no_session_method();
    }
    if !accept_of(&req).sse {
        return rpc_error(
            StatusCode::NOT_ACCEPTABLE,
            RpcError::invalid_request("Accept must allow text/event-stream"),
        );
    }
    if let Err(refusal) = check_version_header(&req) {
        return refusal.into();
    }
    let entry = match session_of(&req, &state).await {
        Ok(e) => e,
        Err(refusal) => return refusal.into(),
    };
    entry.touch();
    let streams = state.streams.of(&entry);
    let (out, rx) = sse::connection(state.service.limits.sse_buffer_bytes, state.answers.clone());
    if let Some(last) = header_str(&req, &names::LAST_EVENT_ID) {
        let Some((stream, seq)) = sse::parse_event_id(last) else {
            return bad_request(format!("malformed Last-Event-ID: {last:?}"));
        };
        // What was missed is read from the log as the connection takes it, never
        // all at once: up to what the pump had logged when it took the connection
        // (it sends the rest live), or all of it if the stream ended.
        let (upto, rx) = match streams.attach(stream, out).await {
            Ok(logged) => (logged, Some(rx)),
            Err(sse::NotLive) => (u64::MAX, None),
        };
        let missed = state
            .service
            .storage
            .events_after_lazily(&entry.id, stream, seq)
            .take_while(move |e| e.as_ref().map_or(true, |(at, _)| *at <= upto));
        let missed = replay_body(stream, missed, &state.log);
        return sse_response(entry, missed, rx);
    }
    if let Some(stream) = streams.standalone() {
        // One standalone connection at a time: a new GET takes over and the older
        // connection ends (a client that reconnects is never locked out by a
        // connection the server has not yet noticed is dead).
        if streams.attach(stream, out.clone()).await.is_ok() {
            return sse_response(entry, priming(stream), Some(rx));
        }
    }
    let stream = streams.allocate();
    streams.set_standalone(stream);
    let (sink, frames) = Sink::channel();
    entry.addr.do_send(SetStandalone(sink));
    pump(&state, &entry, stream, StreamKind::Standalone).start(None, frames, Some(out));
    sse_response(entry, priming(stream), Some(rx))
}

/// The pump of a new stream of `entry`.
fn pump(state: &AppState, entry: &Arc<SessionEntry>, stream: u64, kind: StreamKind) -> Pump {
    Pump {
        session: entry.id.clone(),
        streams: state.streams.of(entry),
        storage: state.service.storage.clone(),
        stream,
        kind,
        keepalive: state.service.limits.sse_keepalive,
        log: state.log.clone(),
        refusals: state.service.refusals.clone(),
    }
}

async fn delete_mcp(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let Some(id) = header_str(&req, &names::SESSION) else {
        return no_session_method();
    };
    if state.auth.is_some() {
        // Only the principal that opened a session may end it.
        if let Err(refusal) = session_of(&req, &state).await {
            return refusal.into();
        }
    }
    match state.root.send(CloseSession(Arc::from(id.trim()))).await {
        Ok(true) => HttpResponse::Ok().finish(),
        Ok(false) => rpc_error(
            StatusCode::NOT_FOUND,
            RpcError::new(-32001, "session not found"),
        ),
        Err(e) => rpc_error(StatusCode::SERVICE_UNAVAILABLE, RpcError::internal(e)),
    }
}

/// Keep the SSE replay log within `limits.event_log_max` and `limits.event_ttl`,
/// and forget the stream tables of ended sessions, every [`EVENT_TRIM_EVERY`], for
/// as long as HTTP is served.
async fn trim_events(service: Arc<Service>, streams: Arc<sse::SessionStreams>) {
    let mut every = tokio::time::interval(EVENT_TRIM_EVERY);
    loop {
        every.tick().await;
        streams.sweep();
        let limits = &service.limits;
        match service.storage.trim_events(
            limits.event_log_max,
            limits.event_log_bytes,
            limits.event_ttl,
        ) {
            Ok(0) => {}
            Ok(n) => slog::debug!(service.log, "replay log trimmed"; "removed" => n),
            Err(e) => {
                slog::warn!(service.log, "replay log trim failed"; "error" => e.to_string())
            }
        }
    }
}

/// How to serve over Streamable HTTP.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HttpOptions {
    /// Address of the MCP endpoint (`/mcp`), and of `/health` and `/metrics` unless
    /// `admin_bind` is set. With [`HttpOptions::from_listener`], the listener's
    /// address (nothing is bound there).
    pub bind: std::net::SocketAddr,
    /// `/health` and `/metrics` on their own listener.
    pub admin_bind: Option<std::net::SocketAddr>,
    /// Prefix of session ids (proxy affinity across instances).
    pub instance_id: Option<String>,
    /// Allowed hosts and origins, workers, connection bounds.
    pub http: HttpConfig,
    /// A listener the embedder bound, served instead of binding `bind`; clones of
    /// these options share it.
    pub(crate) listener: Option<Arc<std::net::TcpListener>>,
}

impl HttpOptions {
    /// Serve on `bind` with the default HTTP settings (localhost hosts only).
    pub fn new(bind: std::net::SocketAddr) -> HttpOptions {
        HttpOptions {
            bind,
            admin_bind: None,
            instance_id: None,
            http: HttpConfig::default(),
            listener: None,
        }
    }

    /// Serve on a listener the caller bound (say on `127.0.0.1:0`, or one handed
    /// over by systemd socket activation), with the default HTTP settings; `bind`
    /// is set to its address. The listener is switched to non-blocking mode (which
    /// every copy of its descriptor shares) when serving starts.
    ///
    /// ```no_run
    /// # fn main() -> std::io::Result<()> {
    /// let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    /// let options = emcee::HttpOptions::from_listener(listener)?;
    /// assert_ne!(options.bind.port(), 0);
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_listener(listener: std::net::TcpListener) -> std::io::Result<HttpOptions> {
        let bind = listener.local_addr()?;
        Ok(HttpOptions {
            listener: Some(Arc::new(listener)),
            ..HttpOptions::new(bind)
        })
    }
}

/// An HTTP server that is listening (see [`start`]); [`Started::run_until`] serves
/// until its shutdown future resolves, then drains and stops.
///
/// Shutdown order: not ready (`/health/ready` 503, systemd `STOPPING=1`); no new or
/// restored sessions (503 + `Retry-After`); drain every session (in-flight calls get
/// `limits.shutdown_grace`, the rest are answered as cancelled, new calls -32000); stop
/// the server (open streams close; connections still open after [`SHUTDOWN_MARGIN`]
/// are dropped); the caller flushes storage. One budget: grace + margin + flush.
pub(crate) struct Started {
    state: AppState,
    local_addr: std::net::SocketAddr,
    admin_addr: Option<std::net::SocketAddr>,
    handle: actix_web::dev::ServerHandle,
    server_task: actix_rt::task::JoinHandle<std::io::Result<()>>,
    trim: actix_rt::task::JoinHandle<()>,
    /// The tokens file's reload on SIGHUP (`[auth]`).
    hangup: Option<actix_rt::task::JoinHandle<()>>,
    admin: Option<actix_web::dev::ServerHandle>,
}

/// Connections one worker accepts at most: its share of `http.max_connections` and
/// `http.ops_connections` (on those beyond the first, the operations routes answer
/// and MCP requests get 503 at once instead of waiting in the accept queue).
fn accept_limit(http: &HttpConfig) -> usize {
    http.max_connections
        .saturating_add(http.ops_connections)
        .div_ceil(http.workers.max(1))
}

/// Bind (or take the options' listener), start the workers and the replay log's
/// trim, and report ready. Must run inside an actix
/// `System`.
pub(crate) fn start(
    config: &HttpOptions,
    service: Arc<Service>,
    auth: Option<Auth>,
) -> std::io::Result<Started> {
    let mut state = AppState::new(service.clone(), config.http.clone());
    state.auth = auth;
    state.connections = Arc::new(connections::McpConnections::new(Some(
        config.http.max_connections,
    )));
    service
        .metrics
        .max_connections
        .set(i64::try_from(config.http.max_connections).unwrap_or(i64::MAX));
    let log = state.log.clone();
    // Before binding: a misconfiguration is reported even when the bind fails.
    for warning in config.http.host_warnings(config.bind) {
        slog::warn!(log, "{}", warning.message(); "bind" => config.bind.to_string(),
            "key" => "http.allowed_hosts", "env" => "EMCEE_ALLOWED_HOSTS",
            "allowed_hosts" => config.http.allowed_hosts.join(","));
    }
    let app_state = state.clone();
    let admin_here = config.admin_bind.is_none();
    let server = HttpServer::new(move || {
        let app = App::new().configure(routes(app_state.clone()));
        if admin_here {
            app.configure(admin::routes(app_state.clone()))
        } else {
            app
        }
    })
    .workers(config.http.workers)
    // Past it a worker stops accepting until a connection closes (clients wait in
    // the kernel's accept queue): what connections hold is bounded by their number.
    // MCP requests are refused past `max_connections` (`door`), so
    // `ops_connections` more are left for the operations routes.
    .max_connections(accept_limit(&config.http))
    .on_connect(connection_hook(
        &service,
        config.http.max_connections_per_ip,
        state.connections.clone(),
    ))
    .disable_signals()
    // The drain already gave calls their grace: what is left is streams and writes.
    .shutdown_timeout(SHUTDOWN_MARGIN.as_secs());
    let server = match &config.listener {
        Some(listener) => server.listen(listener.try_clone()?)?,
        None => server.bind(config.bind)?,
    };
    // The bound address, with the real port when `--bind` asked for port 0.
    let local_addr = server.addrs().first().copied().unwrap_or(config.bind);
    settle_auth(&state, &format!("http://{local_addr}{MCP_PATH}"));
    let server = server.run();
    let handle = server.handle();
    slog::info!(log, "serving http"; "bind" => local_addr.to_string(), "path" => MCP_PATH, "workers" => config.http.workers);
    let server_task = actix_rt::spawn(server);
    let trim = actix_rt::spawn(trim_events(service.clone(), state.streams.clone()));
    if let Some(auth) = &state.auth {
        warn_unknown_tools(auth, &service, &log);
    }
    let hangup = match state
        .auth
        .as_ref()
        .and_then(|a| Some((a, a.tokens.as_ref()?)))
    {
        Some((auth, tokens)) => {
            slog::info!(log, "bearer tokens required"; "tokens_file" => tokens.path().display().to_string(),
                "tokens" => tokens.len(), "ops" => format!("{:?}", auth.ops).to_lowercase());
            Some(actix_rt::spawn(reload_on_hangup(
                auth.clone(),
                tokens.clone(),
                service.clone(),
                log.clone(),
            )))
        }
        None => None,
    };
    let (admin, admin_addr) = match config.admin_bind {
        Some(addr) => match admin::start(addr, state.clone(), &log) {
            Ok((admin, bound)) => (Some(admin), Some(bound)),
            Err(e) => {
                trim.abort();
                if let Some(hangup) = &hangup {
                    hangup.abort();
                }
                // Not awaited: the workers stop on their own; the error is the news.
                drop(handle.stop(false));
                return Err(e);
            }
        },
        None => (None, None),
    };
    // Listener and storage are up: ready (systemd READY=1, /health/ready 200).
    state.ready.store(true, Ordering::Release);
    admin::notify_systemd_ready(state.root.clone(), service.storage.clone(), &log);
    Ok(Started {
        state,
        local_addr,
        admin_addr: admin_addr.or(admin_here.then_some(local_addr)),
        handle,
        server_task,
        trim,
        hangup,
        admin,
    })
}

/// With OAuth: fix the resource URI (`default_resource` when `[auth] resource` is
/// unset), hand the JWKS fetches the log and their failure counter, and start the
/// first fetch.
fn settle_auth(state: &AppState, default_resource: &str) {
    #[cfg(feature = "oauth")]
    if let Some(oauth) = state.auth.as_ref().and_then(|a| a.oauth.as_ref()) {
        oauth.settle(
            default_resource,
            &state.log,
            state.service.metrics.jwks_fetch_failures.clone(),
        );
    }
    let _ = (state, default_resource);
}

/// Tool names listed in the tokens file or `[auth.scopes]` that this server
/// does not have: one warning naming them (at most [`UNKNOWN_TOOLS_LOGGED`]),
/// at the start and after each reload of the tokens file.
fn warn_unknown_tools(auth: &Auth, service: &Service, log: &slog::Logger) {
    let unknown = auth.unknown_tools(|name| service.tools.get(name).is_some());
    if unknown.is_empty() {
        return;
    }
    let shown: Vec<String> = unknown
        .iter()
        .take(UNKNOWN_TOOLS_LOGGED)
        .map(|n| crate::telemetry::clip(n).into_owned())
        .collect();
    slog::warn!(log, "the tokens file or [auth.scopes] names tools this server does not have: a token limited to them calls nothing by those names";
        "tools" => shown.join(","), "unknown" => unknown.len());
}

/// Most unknown tool names one warning lists.
const UNKNOWN_TOOLS_LOGGED: usize = 16;

/// Read the tokens file again on every SIGHUP, for as long as HTTP is served: a
/// good file replaces the set (one info line with the count, then the unknown
/// tools' warning), a bad one keeps the old set (one error line saying why).
async fn reload_on_hangup(auth: Auth, tokens: Tokens, service: Arc<Service>, log: slog::Logger) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                slog::warn!(log, "SIGHUP cannot be caught: the tokens file is not reloaded"; "error" => e.to_string());
                return;
            }
        };
        while hangups.recv().await.is_some() {
            match tokens.reload() {
                Ok(count) => {
                    slog::info!(log, "tokens reloaded"; "tokens_file" => tokens.path().display().to_string(), "tokens" => count);
                    warn_unknown_tools(&auth, &service, &log);
                }
                Err(e) => {
                    slog::error!(log, "tokens not reloaded, the previous set is kept"; "error" => e.to_string())
                }
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (auth, tokens, service, log);
        std::future::pending::<()>().await;
    }
}

impl Started {
    /// The address the MCP endpoint listens on (port 0 resolved).
    pub(crate) fn local_addr(&self) -> std::net::SocketAddr {
        self.local_addr
    }

    /// The address `/health` and `/metrics` answer on.
    pub(crate) fn admin_addr(&self) -> Option<std::net::SocketAddr> {
        self.admin_addr
    }

    /// Serve until `shutdown` resolves, then drain and stop in the order [`serve`]
    /// documents.
    pub(crate) async fn run_until(
        self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> std::io::Result<()> {
        let Started {
            state,
            handle,
            server_task,
            trim,
            hangup,
            admin,
            ..
        } = self;
        let log = state.log.clone();
        shutdown.await;
        slog::info!(log, "shutdown requested");
        // Keep accepting: probes must see /health/ready answer 503, and requests get a
        // clear refusal (new sessions 503, calls -32000) instead of a refused connection.
        state.ready.store(false, Ordering::Release);
        state.draining.store(true, Ordering::Release);
        admin::notify_systemd_stopping();
        let _ = state
            .root
            .send(DrainAll {
                grace: state.service.limits.shutdown_grace,
            })
            .await;
        handle.stop(true).await;
        trim.abort();
        if let Some(hangup) = hangup {
            hangup.abort();
        }
        if let Some(admin) = admin {
            admin.stop(true).await;
        }
        match server_task.await {
            Ok(result) => result,
            Err(e) => Err(std::io::Error::other(e.to_string())),
        }
    }
}

/// How MCP is mounted into an application's own actix-web `App`
/// ([`crate::Server::mount`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct MountOptions {
    /// The MCP endpoint's path (default `/mcp`).
    pub path: String,
    /// Also add `/health`, `/health/live`, `/health/ready` and `/metrics` (default
    /// on).
    pub ops_routes: bool,
    /// Prefix of session ids (proxy affinity across instances).
    pub instance_id: Option<String>,
    /// Allowed hosts and origins (checked on every `/mcp` request: set them to the
    /// names the application is reached by) and `max_connections_per_ip` (enforced
    /// only through [`crate::server::Mounted::on_connect`]). Workers and
    /// `max_connections` are the application's `HttpServer`'s to set.
    pub http: HttpConfig,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            path: MCP_PATH.to_owned(),
            ops_routes: true,
            instance_id: None,
            http: HttpConfig::default(),
        }
    }
}

impl MountOptions {
    /// Serve the MCP endpoint at `path`.
    pub fn path(mut self, path: impl Into<String>) -> MountOptions {
        self.path = path.into();
        self
    }

    /// Add (or not) `/health*` and `/metrics`.
    pub fn ops_routes(mut self, on: bool) -> MountOptions {
        self.ops_routes = on;
        self
    }

    /// The allowed hosts and origins, and the per-address connection limit.
    pub fn http(mut self, http: HttpConfig) -> MountOptions {
        self.http = http;
        self
    }
}

/// The HTTP side of a mounted server: its state, routes and trim task.
pub(crate) struct MountedRoutes {
    state: AppState,
    path: Arc<str>,
    ops_routes: bool,
    per_ip_limit: usize,
    trim: actix_rt::task::JoinHandle<()>,
}

/// State and trim task for routes an application's own `HttpServer` serves; ready
/// at once. Must run inside an actix `System`.
pub(crate) fn mount(
    options: &MountOptions,
    service: Arc<Service>,
    auth: Option<Auth>,
) -> MountedRoutes {
    let mut state = AppState::new(service.clone(), options.http.clone());
    state.auth = auth;
    settle_auth(&state, &format!("http://localhost{}", options.path));
    let trim = actix_rt::spawn(trim_events(service, state.streams.clone()));
    state.ready.store(true, Ordering::Release);
    slog::info!(state.log, "mounted"; "path" => &options.path, "ops_routes" => options.ops_routes);
    MountedRoutes {
        state,
        path: options.path.as_str().into(),
        ops_routes: options.ops_routes,
        per_ip_limit: options.http.max_connections_per_ip,
        trim,
    }
}

impl MountedRoutes {
    /// The routes, for `App::configure` on every worker.
    pub(crate) fn configure(&self) -> impl Fn(&mut web::ServiceConfig) + Clone + Send + 'static {
        let state = self.state.clone();
        let path = self.path.clone();
        let ops_routes = self.ops_routes;
        move |cfg| {
            routes_at(state.clone(), path.clone())(cfg);
            if ops_routes {
                admin::routes(state.clone())(cfg);
            }
        }
    }

    /// The connection hook, for `HttpServer::on_connect`.
    pub(crate) fn on_connect(
        &self,
    ) -> impl Fn(&dyn std::any::Any, &mut actix_web::dev::Extensions) + Send + Sync + 'static {
        connection_hook(
            &self.state.service,
            self.per_ip_limit,
            self.state.connections.clone(),
        )
    }

    /// A function that makes these routes not ready (`/health/ready` 503).
    pub(crate) fn not_ready_handle(&self) -> impl Fn() + 'static {
        let ready = self.state.ready.clone();
        move || ready.store(false, Ordering::Release)
    }

    /// Not ready; drain every session (new ones 503, calls get
    /// `limits.shutdown_grace`); stop the trim.
    pub(crate) async fn drain(self) {
        slog::info!(self.state.log, "shutdown requested");
        self.state.ready.store(false, Ordering::Release);
        let _ = self
            .state
            .root
            .send(DrainAll {
                grace: self.state.service.limits.shutdown_grace,
            })
            .await;
        self.trim.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the future an async fn of three arguments returns.
    fn future_size<A, B, C, F: std::future::Future>(_: impl Fn(A, B, C) -> F) -> usize {
        std::mem::size_of::<F>()
    }

    #[test]
    fn a_post_carries_no_state_of_the_other_era_or_methods() {
        // Every request's future is written and moved whole; with 2026-07-28's
        // path inline a POST's was 1,112 bytes (GET and DELETE are boxed too).
        let post = future_size(post_mcp);
        let any = future_size(mcp);
        assert!(post <= 800, "post_mcp's future is {post} bytes");
        assert!(any <= post + 128, "mcp's future is {any} bytes");
    }
}
