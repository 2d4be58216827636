//! Client messages decoded once into typed enums: one variant per method, with its
//! typed params (in the spirit of mini-redis's `Command::from_frame`).
//!
//! [`jsonrpc::classify`](super::jsonrpc::classify) calls [`ClientRequest::decode`] and
//! [`ClientNotification::decode`] as it reads the envelope, so every transport and
//! both eras dispatch on these types; no method string is matched anywhere else.
//! The request's `_meta` is decoded once too, into [`RequestMeta`], which carries
//! the per-request protocol state of the 2026-07-28 era.

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use super::error::RpcError;
use super::mcp::{
    method, CallToolParams, CancelledParams, GetPromptParams, InitializeParams, ListenParams,
    LoggingLevel, PaginatedParams, ProgressToken, SetLevelParams, TaskParams, TaskUpdateParams,
    UriParams,
};
use super::prompt::CompleteParams;

/// A client request, decoded.
#[derive(Debug)]
pub enum ClientRequest {
    /// `initialize` (session era).
    Initialize(InitializeParams),
    /// `ping` (session era).
    Ping,
    /// `server/discover` (2026-07-28).
    Discover,
    /// `tools/list`.
    ToolsList(PaginatedParams),
    /// `tools/call`.
    ToolsCall(CallToolParams),
    /// `resources/list`.
    ResourcesList(PaginatedParams),
    /// `resources/templates/list`.
    ResourceTemplatesList(PaginatedParams),
    /// `resources/read`.
    ResourcesRead(UriParams),
    /// `resources/subscribe` (session era).
    ResourcesSubscribe(UriParams),
    /// `resources/unsubscribe` (session era).
    ResourcesUnsubscribe(UriParams),
    /// `prompts/list`.
    PromptsList(PaginatedParams),
    /// `prompts/get`.
    PromptsGet(GetPromptParams),
    /// `completion/complete`.
    Complete(CompleteParams),
    /// `logging/setLevel` (session era).
    SetLevel(SetLevelParams),
    /// `subscriptions/listen` (2026-07-28).
    Listen(ListenParams),
    /// `tasks/get` (2026-07-28, tasks extension).
    TasksGet(TaskParams),
    /// `tasks/update` (2026-07-28, tasks extension).
    TasksUpdate(TaskUpdateParams),
    /// `tasks/cancel` (2026-07-28, tasks extension).
    TasksCancel(TaskParams),
    /// A method emcee does not serve (answered -32601).
    Unknown(String),
}

fn params<T: DeserializeOwned>(raw: Option<&RawValue>) -> Result<T, RpcError> {
    super::error::decode_params(raw)
}

impl ClientRequest {
    /// Decode `method` with its raw params; bad params are -32602. In a 2026-07-28
    /// request (`modern`), the methods that revision removed are [`Unknown`]
    /// whatever their params (they are "method not found", not "invalid params").
    ///
    /// [`Unknown`]: ClientRequest::Unknown
    pub fn decode_in(
        method: &str,
        raw: Option<&RawValue>,
        modern: bool,
    ) -> Result<ClientRequest, RpcError> {
        const REMOVED: [&str; 5] = [
            method::INITIALIZE,
            method::PING,
            method::LOGGING_SET_LEVEL,
            method::RESOURCES_SUBSCRIBE,
            method::RESOURCES_UNSUBSCRIBE,
        ];
        if modern && REMOVED.contains(&method) {
            return Ok(ClientRequest::Unknown(method.to_owned()));
        }
        ClientRequest::decode(method, raw)
    }

    /// Decode `method` with its raw params; bad params are -32602.
    pub fn decode(method: &str, raw: Option<&RawValue>) -> Result<ClientRequest, RpcError> {
        use ClientRequest as R;
        Ok(match method {
            method::INITIALIZE => R::Initialize(params(raw)?),
            method::PING => R::Ping,
            method::SERVER_DISCOVER => R::Discover,
            method::TOOLS_LIST => R::ToolsList(params(raw)?),
            method::TOOLS_CALL => R::ToolsCall(params(raw)?),
            method::RESOURCES_LIST => R::ResourcesList(params(raw)?),
            method::RESOURCES_TEMPLATES_LIST => R::ResourceTemplatesList(params(raw)?),
            method::RESOURCES_READ => R::ResourcesRead(params(raw)?),
            method::RESOURCES_SUBSCRIBE => R::ResourcesSubscribe(params(raw)?),
            method::RESOURCES_UNSUBSCRIBE => R::ResourcesUnsubscribe(params(raw)?),
            method::PROMPTS_LIST => R::PromptsList(params(raw)?),
            method::PROMPTS_GET => R::PromptsGet(params(raw)?),
            method::COMPLETION_COMPLETE => R::Complete(params(raw)?),
            method::LOGGING_SET_LEVEL => R::SetLevel(params(raw)?),
            method::SUBSCRIPTIONS_LISTEN => R::Listen(params(raw)?),
            method::TASKS_GET => R::TasksGet(params(raw)?),
            method::TASKS_UPDATE => R::TasksUpdate(params(raw)?),
            method::TASKS_CANCEL => R::TasksCancel(params(raw)?),
            other => R::Unknown(other.to_owned()),
        })
    }

    /// The method name.
    pub fn method(&self) -> &str {
        match self {
            ClientRequest::Unknown(m) => m,
            known => known.known_method(),
        }
    }

    /// The method as a bounded metric label: its name, or `other` for a method
    /// emcee does not serve (clients choose those strings).
    pub fn label(&self) -> &'static str {
        match self {
            ClientRequest::Unknown(_) => "other",
            known => known.known_method(),
        }
    }

    fn known_method(&self) -> &'static str {
        use ClientRequest as R;
        match self {
            R::Initialize(_) => method::INITIALIZE,
            R::Ping => method::PING,
            R::Discover => method::SERVER_DISCOVER,
            R::ToolsList(_) => method::TOOLS_LIST,
            R::ToolsCall(_) => method::TOOLS_CALL,
            R::ResourcesList(_) => method::RESOURCES_LIST,
            R::ResourceTemplatesList(_) => method::RESOURCES_TEMPLATES_LIST,
            R::ResourcesRead(_) => method::RESOURCES_READ,
            R::ResourcesSubscribe(_) => method::RESOURCES_SUBSCRIBE,
            R::ResourcesUnsubscribe(_) => method::RESOURCES_UNSUBSCRIBE,
            R::PromptsList(_) => method::PROMPTS_LIST,
            R::PromptsGet(_) => method::PROMPTS_GET,
            R::Complete(_) => method::COMPLETION_COMPLETE,
            R::SetLevel(_) => method::LOGGING_SET_LEVEL,
            R::Listen(_) => method::SUBSCRIPTIONS_LISTEN,
            R::TasksGet(_) => method::TASKS_GET,
            R::TasksUpdate(_) => method::TASKS_UPDATE,
            R::TasksCancel(_) => method::TASKS_CANCEL,
            R::Unknown(_) => "other",
        }
    }

    /// What the 2026-07-28 `Mcp-Name` header must equal: the tool or prompt name,
    /// or the resource URI; `None` for other methods.
    pub fn name(&self) -> Option<&str> {
        match self {
            ClientRequest::ToolsCall(p) => Some(&p.name),
            ClientRequest::PromptsGet(p) => Some(&p.name),
            ClientRequest::ResourcesRead(p) => Some(&p.uri),
            ClientRequest::TasksGet(p) | ClientRequest::TasksCancel(p) => Some(&p.task_id),
            ClientRequest::TasksUpdate(p) => Some(&p.task_id),
            _ => None,
        }
    }

    /// What a call method runs, as its log lines name it: `("tool", name)` for
    /// `tools/call`, `("uri", uri)` for `resources/read`, `("prompt", name)` for
    /// `prompts/get`; `None` for every other method.
    pub fn called(&self) -> Option<(&'static str, &str)> {
        match self {
            ClientRequest::ToolsCall(p) => Some(("tool", &p.name)),
            ClientRequest::ResourcesRead(p) => Some(("uri", &p.uri)),
            ClientRequest::PromptsGet(p) => Some(("prompt", &p.name)),
            _ => None,
        }
    }

    /// True for `initialize`, the session era's handshake.
    pub fn is_initialize(&self) -> bool {
        matches!(self, ClientRequest::Initialize(_))
    }

    /// True for what a session-era client may send before `initialize`:
    /// `initialize` itself and `ping`.
    pub fn before_initialize(&self) -> bool {
        matches!(self, ClientRequest::Initialize(_) | ClientRequest::Ping)
    }

    /// False for the methods 2026-07-28 removed (the handshake, `ping`, per-session
    /// state): sent as 2026-07-28 requests they are "method not found".
    pub fn in_modern_era(&self) -> bool {
        !matches!(
            self,
            ClientRequest::Initialize(_)
                | ClientRequest::Ping
                | ClientRequest::SetLevel(_)
                | ClientRequest::ResourcesSubscribe(_)
                | ClientRequest::ResourcesUnsubscribe(_)
                | ClientRequest::Unknown(_)
        )
    }

    /// False for the methods only 2026-07-28 has.
    pub fn in_session_era(&self) -> bool {
        !matches!(
            self,
            ClientRequest::Discover
                | ClientRequest::Listen(_)
                | ClientRequest::TasksGet(_)
                | ClientRequest::TasksUpdate(_)
                | ClientRequest::TasksCancel(_)
                | ClientRequest::Unknown(_)
        )
    }
}

/// A client notification, decoded.
#[derive(Debug)]
pub enum ClientNotification {
    /// `notifications/initialized`.
    Initialized,
    /// `notifications/cancelled`, or `None` when its params are malformed (a
    /// notification is never answered, so there is no one to tell).
    Cancelled(Option<CancelledParams>),
    /// Anything else (ignored).
    Other(String),
}

impl ClientNotification {
    /// Decode `method` with its raw params.
    pub fn decode(method: &str, raw: Option<&RawValue>) -> ClientNotification {
        match method {
            method::INITIALIZED => ClientNotification::Initialized,
            method::CANCELLED => ClientNotification::Cancelled(params(raw).ok()),
            other => ClientNotification::Other(other.to_owned()),
        }
    }
}

/// `_meta` key of the protocol version a 2026-07-28 request is written in.
pub const META_PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
/// `_meta` key of the client's capabilities (2026-07-28).
pub const META_CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
/// `_meta` key of the client's name and version (2026-07-28).
pub const META_CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
/// `_meta` key of the log level the client wants for this request (2026-07-28).
pub const META_LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
/// `_meta` key of the server's identity on results (2026-07-28).
pub const META_SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
/// `_meta` key tagging notifications of a `subscriptions/listen` stream.
pub const META_SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";

/// A request's `_meta`, decoded once for every method.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RequestMeta {
    /// Token to tag `notifications/progress` with.
    #[serde(default, rename = "progressToken")]
    pub progress_token: Option<ProgressToken>,
    /// The version this request is written in (2026-07-28 requests carry it).
    #[serde(default, rename = "io.modelcontextprotocol/protocolVersion")]
    pub protocol_version: Option<String>,
    /// The client's capabilities, for this request only.
    #[serde(
        default,
        rename = "io.modelcontextprotocol/clientCapabilities",
        deserialize_with = "super::strict::object_opt"
    )]
    pub client_capabilities: Option<Arc<Map<String, Value>>>,
    /// Who the client is, as sent (kept raw: it is for display and logs only, and
    /// most requests never look at it).
    #[serde(default, rename = "io.modelcontextprotocol/clientInfo")]
    pub client_info: Option<Box<RawValue>>,
    /// The least severe `notifications/message` the client wants on this request's
    /// stream; none are sent without it.
    #[serde(default, rename = "io.modelcontextprotocol/logLevel")]
    pub log_level: Option<LoggingLevel>,
    /// W3C trace context (`traceparent`). A value that is not a string is ignored,
    /// as W3C asks of a malformed one: trace context never fails a request.
    #[serde(default, deserialize_with = "string_or_nothing")]
    pub traceparent: Option<String>,
    /// W3C trace state.
    #[serde(default, deserialize_with = "string_or_nothing")]
    pub tracestate: Option<String>,
}

/// A string, or `None` for any other JSON value.
fn string_or_nothing<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::String(s) => Some(s),
        _ => None,
    })
}

impl RequestMeta {
    /// The trace id of a well-formed `traceparent`, else `None`.
    pub fn trace_id(&self) -> Option<&str> {
        trace_id_of(self.traceparent.as_deref()?)
    }
}

/// The 32-hex-digit trace id of a W3C `traceparent`
/// (`00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>`, 55 characters,
/// lowercase); `None` unless it is well formed: version `ff` and all-zero ids are
/// invalid, and a later version may append `-…` fields after the first 55 characters.
pub fn trace_id_of(traceparent: &str) -> Option<&str> {
    let b = traceparent.as_bytes();
    let hex = |range: std::ops::Range<usize>| {
        b[range]
            .iter()
            .all(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
    };
    let zero = |range: std::ops::Range<usize>| b[range].iter().all(|c| *c == b'0');
    let shaped = b.len() >= 55
        && b[2] == b'-'
        && b[35] == b'-'
        && b[52] == b'-'
        && hex(0..2)
        && hex(3..35)
        && hex(36..52)
        && hex(53..55);
    if !shaped || &b[..2] == b"ff" || zero(3..35) || zero(36..52) {
        return None;
    }
    // Version 00 is exactly 55 characters; later ones may add fields after a `-`.
    let length_ok = b.len() == 55 || (&b[..2] != b"00" && b[55] == b'-');
    length_ok.then(|| &traceparent[3..35])
}

#[derive(Deserialize)]
struct MetaOnly {
    #[serde(default, rename = "_meta")]
    meta: Option<RequestMeta>,
}

/// Decode the `_meta` of raw params; malformed `_meta` is -32602.
pub fn decode_meta(raw: Option<&RawValue>) -> Result<RequestMeta, RpcError> {
    let Some(raw) = raw else {
        return Ok(RequestMeta::default());
    };
    // Cheap test first: most session-era requests carry no `_meta` at all.
    if !raw.get().contains("\"_meta\"") {
        return Ok(RequestMeta::default());
    }
    let only: MetaOnly = serde_json::from_str(raw.get())
        .map_err(|e| RpcError::invalid_params(format!("malformed _meta: {e}")))?;
    Ok(only.meta.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(s: &str) -> Box<RawValue> {
        RawValue::from_string(s.to_owned()).unwrap()
    }

    #[test]
    fn decodes_each_method_into_its_variant() {
        let p = raw(r#"{"name":"echo","arguments":{"text":"hi"}}"#);
        let r = ClientRequest::decode("tools/call", Some(&p)).unwrap();
        assert!(matches!(&r, ClientRequest::ToolsCall(c) if c.name == "echo"));
        assert_eq!(r.method(), "tools/call");
        assert_eq!(r.name(), Some("echo"));
        let r = ClientRequest::decode("server/discover", None).unwrap();
        assert!(matches!(r, ClientRequest::Discover));
        let r = ClientRequest::decode("nope/x", None).unwrap();
        assert_eq!(r.method(), "nope/x");
        assert_eq!(
            r.label(),
            "other",
            "clients choose unknown names: one label"
        );
        assert_eq!(ClientRequest::Discover.label(), "server/discover");
        assert!(!r.in_modern_era() && !r.in_session_era());
        let bad = raw(r#"{"arguments":{}}"#);
        let e = ClientRequest::decode("tools/call", Some(&bad)).unwrap_err();
        assert_eq!(e.code, super::super::error::code::INVALID_PARAMS);
    }

    #[test]
    fn eras_have_their_own_methods() {
        let init = raw(r#"{"protocolVersion":"2025-11-25"}"#);
        let init = ClientRequest::decode("initialize", Some(&init)).unwrap();
        assert!(init.in_session_era() && !init.in_modern_era());
        assert!(!ClientRequest::Ping.in_modern_era());
        assert!(ClientRequest::Discover.in_modern_era());
        assert!(!ClientRequest::Discover.in_session_era());
    }

    #[test]
    fn meta_is_decoded_once_with_the_modern_keys() {
        let p = raw(r#"{"name":"x","_meta":{"progressToken":7,
            "io.modelcontextprotocol/protocolVersion":"2026-07-28",
            "io.modelcontextprotocol/clientCapabilities":{"sampling":{}},
            "io.modelcontextprotocol/logLevel":"debug",
            "traceparent":"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}}"#);
        let m = decode_meta(Some(&p)).unwrap();
        assert_eq!(m.progress_token, Some(ProgressToken::Number(7)));
        assert_eq!(m.protocol_version.as_deref(), Some("2026-07-28"));
        assert!(m.client_capabilities.unwrap().contains_key("sampling"));
        assert_eq!(m.log_level, Some(LoggingLevel::Debug));
        assert_eq!(
            RequestMeta {
                traceparent: Some("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into()),
                ..Default::default()
            }
            .trace_id(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert!(decode_meta(Some(&raw(r#"{"_meta":5}"#))).is_err());
        let odd = decode_meta(Some(&raw(r#"{"_meta":{"traceparent":5}}"#))).unwrap();
        assert_eq!(odd.traceparent, None, "a non-string traceparent is ignored");
        assert!(decode_meta(None).unwrap().protocol_version.is_none());
    }

    #[test]
    fn only_well_formed_traceparents_give_a_trace_id() {
        const T: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
        let ok = format!("00-{T}-00f067aa0ba902b7-01");
        assert_eq!(trace_id_of(&ok), Some(T));
        assert_eq!(
            trace_id_of(&format!("01-{T}-00f067aa0ba902b7-01-extra")),
            Some(T)
        );
        for bad in [
            String::new(),
            format!("00-{T}-00f067aa0ba902b7-01-extra"),
            format!("00-{T}-00f067aa0ba902b7-1"),
            format!("ff-{T}-00f067aa0ba902b7-01"),
            format!("00-{}-00f067aa0ba902b7-01", T.to_uppercase()),
            format!("00-{}-00f067aa0ba902b7-01", "0".repeat(32)),
            format!("00-{T}-0000000000000000-01"),
            format!("00-{T}x00f067aa0ba902b7-01"),
            format!("00-{}-00f067aa0ba902b7-01", &T[..31]),
            format!("0g-{T}-00f067aa0ba902b7-01"),
            "00-é".repeat(14),
        ] {
            assert_eq!(trace_id_of(&bad), None, "{bad}");
        }
    }
}
