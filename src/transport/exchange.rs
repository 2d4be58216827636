//! What both eras of the HTTP transport share: header names, `Accept`, the JSON
//! window, refusals (an HTTP status with a JSON-RPC error body) and the guard that
//! keeps a session busy while one of its streams is open. `transport::http` (the
//! session era and the shared request path) and `transport::modern` (2026-07-28)
//! both use it; neither imports the other for it.

use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};

use crate::auth::{Auth, Denied};
use crate::protocol::jsonrpc::encode_error;
use crate::protocol::RpcError;
use crate::runtime::root::{RootError, SessionEntry};
use crate::telemetry::metrics::reason;

/// Session id header.
pub const SESSION_HEADER: &str = "mcp-session-id";
/// Protocol version header.
pub const VERSION_HEADER: &str = "mcp-protocol-version";

/// The names of the headers emcee reads that `http` has no constant for, made
/// once: a name made from text at every lookup is parsed at every lookup.
pub mod names {
    use actix_web::http::header::HeaderName;

    /// `Mcp-Session-Id`.
    pub static SESSION: HeaderName = HeaderName::from_static(super::SESSION_HEADER);
    /// `MCP-Protocol-Version`.
    pub static VERSION: HeaderName = HeaderName::from_static(super::VERSION_HEADER);
    /// `Mcp-Method`.
    pub static METHOD: HeaderName = HeaderName::from_static("mcp-method");
    /// `Mcp-Name`.
    pub static NAME: HeaderName = HeaderName::from_static("mcp-name");
    /// `traceparent` (W3C Trace Context).
    pub static TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
    /// `Last-Event-ID` (SSE resumption).
    pub static LAST_EVENT_ID: HeaderName = HeaderName::from_static("last-event-id");
}
/// A request answered within this window gets a plain JSON response; a slower one
/// streams (SSE), so that a client that drops the connection can resume it.
pub const JSON_WINDOW: Duration = Duration::from_millis(20);
/// `Retry-After` seconds when the session cap is reached.
pub const RETRY_AFTER_SECS: u32 = 5;
/// A refused request: an HTTP status with a JSON-RPC error body (id null), and
/// `Retry-After` on a 503 or a 429. Every
/// refusal of this transport becomes a response here, in one place.
#[derive(Debug)]
pub struct Refusal {
    status: StatusCode,
    error: RpcError,
    reason: Option<&'static str>,
    /// Close the connection after the answer (`Connection: close`).
    close: bool,
    /// The id of the request refused, when it was read (else the error's id is null).
    /// (Boxed: refusals are the error side of many results; keep it small.)
    id: Option<Box<crate::protocol::RequestId>>,
    /// `WWW-Authenticate` of a 401 or of a 403 for a missing scope (RFC 6750).
    /// (A thin box, 8 bytes: `Refusal` is the error side of many results and
    /// stays small; a challenge is rare.)
    #[allow(clippy::box_collection)]
    challenge: Option<Box<String>>,
}

impl Refusal {
    /// A refusal with this status and error.
    pub fn new(status: StatusCode, error: RpcError) -> Refusal {
        Refusal {
            status,
            error,
            reason: None,
            close: false,
            id: None,
            challenge: None,
        }
    }

    /// 401 for a request without a valid bearer token (`[auth]`), with the
    /// `WWW-Authenticate` challenge `auth` gives for `denied` (`Bearer`, plus
    /// `error="invalid_token"` when a token was given but refused, plus the
    /// metadata's URL with OAuth); 400 `error="invalid_request"` for more than
    /// one `Authorization` header. Counted as `unauthorized`.
    pub fn unauthorized(auth: &Auth, denied: Denied) -> Refusal {
        let message = match denied {
            Denied::Missing => "unauthorized: send Authorization: Bearer <token>".to_owned(),
            Denied::Invalid => "unauthorized: the bearer token is not valid".to_owned(),
            Denied::Malformed => {
                "bad request: more than one Authorization header (send one bearer token)".to_owned()
            }
            Denied::Rejected(why) => {
                format!("unauthorized: the bearer token is not valid ({why})")
            }
        };
        let status = match denied {
            Denied::Malformed => StatusCode::BAD_REQUEST,
            _ => StatusCode::UNAUTHORIZED,
        };
        let mut refusal =
            Refusal::new(status, RpcError::new(-32000, message)).because(reason::UNAUTHORIZED);
        refusal.challenge = Some(Box::new(auth.challenge(denied)));
        refusal
    }

    /// 403 for a `tools/call` of a tool that needs `scope`, which the request's
    /// access token lacks: `WWW-Authenticate: Bearer error="insufficient_scope"`.
    /// Counted as `insufficient_scope`.
    pub fn insufficient_scope(auth: &Auth, tool: &str, scope: &str) -> Refusal {
        let error = RpcError::new(
            -32000,
            format!("forbidden: the tool `{tool}` needs the scope `{scope}`"),
        );
        let mut refusal =
            Refusal::new(StatusCode::FORBIDDEN, error).because(reason::INSUFFICIENT_SCOPE);
        refusal.challenge = Some(Box::new(auth.insufficient_scope(scope)));
        refusal
    }

    /// 403 for a `tools/call` of a tool the request's token may not call.
    pub fn tool_forbidden(tool: &str) -> Refusal {
        Refusal::new(StatusCode::FORBIDDEN, tool_forbidden_error(tool))
            .because(reason::TOOL_FORBIDDEN)
    }

    /// The same refusal, answering the request `id` (read before it was refused).
    pub fn answering(mut self, id: &crate::protocol::RequestId) -> Refusal {
        self.id = Some(Box::new(id.clone()));
        self
    }

    /// The same refusal, and the connection closed after it (to give a descriptor
    /// back, or because the request's body is left unread).
    pub fn closing(mut self) -> Refusal {
        self.close = true;
        self
    }

    /// The same refusal, counted and logged under `reason` instead of the one its
    /// status implies.
    pub fn because(mut self, reason: &'static str) -> Refusal {
        self.reason = Some(reason);
        self
    }

    /// 503 for a session Root would not open or restore: the session cap, the
    /// principal's share of it, or the server is draining.
    pub fn no_session(e: RootError) -> Refusal {
        let why = match e {
            RootError::Full(_) => reason::SESSION_CAP,
            RootError::Share(_) => reason::SESSION_SHARE,
            _ => reason::SHUTTING_DOWN,
        };
        Refusal::busy(e).because(why)
    }

    /// 503 with `Retry-After`: a bound is reached or the server is draining.
    pub fn busy(why: impl std::fmt::Display) -> Refusal {
        Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            RpcError::new(
                crate::protocol::code::SERVER_BUSY,
                format!("{why}; retry later"),
            ),
        )
    }
}

/// The error of a `tools/call` of a tool the caller's token may not call (the
/// session answers a batch's with it too).
pub fn tool_forbidden_error(tool: &str) -> RpcError {
    crate::runtime::session::tool_forbidden(tool)
}

/// 503 with `Retry-After`, as a response.
pub fn busy(why: impl std::fmt::Display) -> HttpResponse {
    Refusal::busy(why).into()
}

/// What a request gets once the drain began (HTTP answers it 503 + `Retry-After`
/// through [`unavailable`], so a proxy may retry it on another instance).
pub fn shutting_down() -> RpcError {
    RpcError::new(
        crate::protocol::code::SERVER_BUSY,
        "server is shutting down; retry later",
    )
}

/// 503 + `Retry-After` carrying a JSON-RPC error response (`json`, with its id): a
/// request the server cannot serve now (it is draining), which a proxy may retry
/// on another instance (nginx `proxy_next_upstream http_503`).
pub fn unavailable(json: String) -> HttpResponse {
    HttpResponse::ServiceUnavailable()
        .insert_header((header::RETRY_AFTER, RETRY_AFTER_SECS.to_string()))
        .content_type("application/json")
        .body(json)
}

/// The answer to a response frame the session refused because the server cannot
/// serve now (`Frame::unavailable`): [`unavailable`], marked as already counted
/// (the session counted and logged it).
pub fn unavailable_frame(json: String) -> HttpResponse {
    let mut resp = unavailable(json);
    resp.extensions_mut().insert(RefusalCounted);
    resp
}

/// Set on a refused response that was already counted and logged where it was
/// decided (the session): the HTTP gates (`http::Seen::count`) do not count it again.
#[derive(Debug, Clone, Copy)]
pub struct RefusalCounted;

/// Set on a refused response whose `mcp_rejected_total` reason is not the one its
/// status implies (the 2026-07-28 codes).
#[derive(Debug, Clone, Copy)]
pub struct RefusalReason(pub &'static str);

/// Set on a refused response: the error message the client got, for the log line
/// of the refusal (`telemetry::refusals`).
#[derive(Debug, Clone)]
pub struct RefusalDetail(pub String);

/// Mark `resp` as refused for `error` (its message goes to the refusal's log line).
pub fn with_detail(mut resp: HttpResponse, error: &RpcError) -> HttpResponse {
    resp.extensions_mut()
        .insert(RefusalDetail(error.message.clone()));
    resp
}

impl From<Refusal> for HttpResponse {
    fn from(r: Refusal) -> HttpResponse {
        let mut resp = HttpResponse::build(r.status);
        if matches!(
            r.status,
            StatusCode::SERVICE_UNAVAILABLE | StatusCode::TOO_MANY_REQUESTS
        ) {
            resp.insert_header((header::RETRY_AFTER, RETRY_AFTER_SECS.to_string()));
        }
        if r.close {
            resp.force_close();
        }
        if let Some(challenge) = r.challenge {
            resp.insert_header((header::WWW_AUTHENTICATE, *challenge));
        }
        let mut resp = with_detail(
            resp.content_type("application/json")
                .body(encode_error(r.id.as_deref(), &r.error)),
            &r.error,
        );
        if let Some(reason) = r.reason {
            resp.extensions_mut().insert(RefusalReason(reason));
        }
        resp
    }
}

/// A JSON-RPC error body (id null) with an HTTP status.
pub fn rpc_error(status: StatusCode, error: RpcError) -> HttpResponse {
    Refusal::new(status, error).into()
}

/// What the client's `Accept` allows.
#[derive(Debug, Clone, Copy)]
pub struct Accept {
    /// `application/json`.
    pub json: bool,
    /// `text/event-stream`.
    pub sse: bool,
}

/// What the request's `Accept` allows (no header: anything).
pub fn accept_of(req: &HttpRequest) -> Accept {
    let Some(value) = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
    else {
        return Accept {
            json: true,
            sse: true,
        };
    };
    let mut a = Accept {
        json: false,
        sse: false,
    };
    // Read as bytes: the value is visible ASCII (checked above), and splitting
    // bytes costs a fraction of splitting text by `char` (every request has one).
    for item in value.as_bytes().split(|&b| b == b',') {
        let mime = item
            .split(|&b| b == b';')
            .next()
            .unwrap_or_default()
            .trim_ascii();
        let is = |name: &str| mime.eq_ignore_ascii_case(name.as_bytes());
        if is("application/json") || is("application/*") {
            a.json = true;
        } else if is("text/event-stream") || is("text/*") {
            a.sse = true;
        } else if mime == b"*/*" {
            a.json = true;
            a.sse = true;
        }
    }
    a
}

/// A header's value, when present and visible ASCII.
pub fn header_str<'a>(req: &'a HttpRequest, name: &header::HeaderName) -> Option<&'a str> {
    header_in(req.headers(), name)
}

/// [`header_str`] in a header map.
pub fn header_in<'a>(headers: &'a header::HeaderMap, name: &header::HeaderName) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Keeps a session "not idle" while one of its streams is open.
pub struct StreamGuard(Arc<SessionEntry>);

impl StreamGuard {
    /// A stream of `entry` opened.
    pub fn new(entry: Arc<SessionEntry>) -> StreamGuard {
        entry.stream_opened();
        StreamGuard(entry)
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.stream_closed();
    }
}

/// A `text/event-stream` answer streaming `body` (not cached, not buffered by a
/// proxy: `X-Accel-Buffering: no`).
pub fn event_stream<S, E>(body: S) -> HttpResponse
where
    S: futures::Stream<Item = Result<bytes::Bytes, E>> + 'static,
    E: Into<Box<dyn std::error::Error>> + 'static,
{
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("x-accel-buffering", "no"))
        .streaming(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(value: Option<&str>) -> (bool, bool) {
        let mut req = actix_web::test::TestRequest::default();
        if let Some(v) = value {
            req = req.insert_header((header::ACCEPT, v));
        }
        let a = accept_of(&req.to_http_request());
        (a.json, a.sse)
    }

    #[test]
    fn accept_names_json_and_sse_in_any_case_with_parameters_and_wildcards() {
        assert_eq!(accept(None), (true, true));
        assert_eq!(
            accept(Some("application/json, text/event-stream")),
            (true, true)
        );
        assert_eq!(accept(Some("Application/JSON")), (true, false));
        assert_eq!(accept(Some("TEXT/Event-Stream;q=0.9")), (false, true));
        assert_eq!(accept(Some("application/*")), (true, false));
        assert_eq!(accept(Some("text/*")), (false, true));
        assert_eq!(accept(Some("*/*")), (true, true));
        assert_eq!(accept(Some("text/html, image/png")), (false, false));
        // Spaces and tabs around an item and its parameters; empty items.
        assert_eq!(
            accept(Some(" \ttext/html ,\t application/json\t;q=1 ,, ")),
            (true, false)
        );
        assert_eq!(
            accept(Some("text/event-stream;charset=utf-8")),
            (false, true)
        );
        assert_eq!(
            accept(Some("application/jsonx, text/event")),
            (false, false)
        );
        assert_eq!(accept(Some("*/*;q=0.1")), (true, true));
        assert_eq!(accept(Some("")), (false, false));
        // Not visible ASCII: as if absent.
        let mut req = actix_web::test::TestRequest::default();
        req = req.insert_header((
            header::ACCEPT,
            header::HeaderValue::from_bytes(b"application/json\xff").unwrap(),
        ));
        let a = accept_of(&req.to_http_request());
        assert_eq!((a.json, a.sse), (true, true));
    }

    #[test]
    fn a_known_header_name_is_found_whatever_case_the_client_sent() {
        let req = actix_web::test::TestRequest::default()
            .insert_header(("MCP-Protocol-Version", "2025-11-25"))
            .insert_header(("Mcp-Session-Id", "s1"))
            .to_http_request();
        assert_eq!(header_str(&req, &names::VERSION), Some("2025-11-25"));
        assert_eq!(header_str(&req, &names::SESSION), Some("s1"));
        assert_eq!(header_str(&req, &names::LAST_EVENT_ID), None);
    }
}
