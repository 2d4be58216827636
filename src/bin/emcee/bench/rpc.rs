//! The JSON-RPC side of the generator: the messages it sends (built once, with only
//! the id spliced in per request) and the check of every answer, which turns a bad
//! one into a [`Fail`] of a countable kind.

use std::fmt;
use std::io::Write as _;

use serde::de::IgnoredAny;
use serde::Deserialize;
use serde_json::{json, Value};

use super::args::Protocol;

/// The session-era version `initialize` asks for.
pub const LEGACY_VERSION: &str = "2025-11-25";
/// The sessionless era's version.
pub const MODERN_VERSION: &str = "2026-07-28";
/// The `_meta` key carrying the protocol version in the sessionless era.
pub const MODERN_META_KEY: &str = "io.modelcontextprotocol/protocolVersion";
/// The `_meta` key carrying the client's capabilities in the sessionless era.
pub const MODERN_CAPABILITIES_KEY: &str = "io.modelcontextprotocol/clientCapabilities";
/// The `_meta` key carrying the client's identity in the sessionless era.
pub const MODERN_CLIENT_INFO_KEY: &str = "io.modelcontextprotocol/clientInfo";
/// `notifications/initialized`.
pub const INITIALIZED: &[u8] = br#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;

/// Why a request did not succeed; [`Fail::kind`] is the counter it lands in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fail {
    /// An HTTP status other than the expected one.
    Http(u16),
    /// A JSON-RPC error response with this code.
    JsonRpc(i64),
    /// A tools/call result with `isError: true` (and its first text, if any).
    ToolError(String),
    /// No answer within `--timeout`.
    Timeout,
    /// Connect, read or write failed, or the peer closed.
    Transport(String),
    /// Not a valid answer: bad JSON, mismatched id, bad framing.
    Protocol(String),
}

impl Fail {
    /// The counter name: `http_<status>`, `jsonrpc_<code>`, `tool_error`, `timeout`,
    /// `transport`, `protocol`.
    pub fn kind(&self) -> String {
        match self {
            Fail::Http(s) => format!("http_{s}"),
            Fail::JsonRpc(c) => format!("jsonrpc_{c}"),
            Fail::ToolError(_) => "tool_error".into(),
            Fail::Timeout => "timeout".into(),
            Fail::Transport(_) => "transport".into(),
            Fail::Protocol(_) => "protocol".into(),
        }
    }
}

impl fmt::Display for Fail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fail::Http(s) => write!(f, "HTTP status {s}"),
            Fail::JsonRpc(c) => write!(f, "JSON-RPC error {c}"),
            Fail::ToolError(text) if text.is_empty() => {
                f.write_str("tool result with isError: true")
            }
            Fail::ToolError(text) => write!(f, "tool result with isError: true: {text}"),
            Fail::Timeout => f.write_str("no answer within the timeout"),
            Fail::Transport(m) | Fail::Protocol(m) => f.write_str(m),
        }
    }
}

/// The request bodies of one run.
#[derive(Debug, Clone)]
pub struct Messages {
    /// `…,"method":"tools/call","params":{…}}`: everything after the id.
    call_tail: String,
    /// The tool name (the `Mcp-Name` header of the modern protocol).
    pub tool: String,
    /// The protocol.
    pub protocol: Protocol,
}

impl Messages {
    /// Bodies calling `tool` with `args` in `protocol`.
    pub fn new(protocol: Protocol, tool: &str, args: &Value) -> Messages {
        let mut params = json!({"name": tool, "arguments": args});
        if protocol == Protocol::Modern {
            // Every 2026-07-28 request is self-contained: version, capabilities, identity.
            params["_meta"] = json!({
                MODERN_META_KEY: MODERN_VERSION,
                MODERN_CAPABILITIES_KEY: {},
                MODERN_CLIENT_INFO_KEY: {"name": "emcee-bench", "version": env!("CARGO_PKG_VERSION")},
            });
        }
        Messages {
            call_tail: format!(r#","method":"tools/call","params":{params}}}"#),
            tool: tool.to_owned(),
            protocol,
        }
    }

    /// Append the tools/call request with `id` to `out`.
    pub fn call(&self, id: u64, out: &mut Vec<u8>) {
        out.extend_from_slice(br#"{"jsonrpc":"2.0","id":"#);
        let _ = write!(out, "{id}");
        out.extend_from_slice(self.call_tail.as_bytes());
    }

    /// The initialize request (id `id`).
    pub fn initialize(id: u64) -> Vec<u8> {
        json!({"jsonrpc": "2.0", "id": id, "method": "initialize", "params": {
            "protocolVersion": LEGACY_VERSION, "capabilities": {},
            "clientInfo": {"name": "emcee-bench", "version": env!("CARGO_PKG_VERSION")}}})
        .to_string()
        .into_bytes()
    }
}

#[derive(Deserialize)]
struct Envelope {
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    method: Option<IgnoredAny>,
    #[serde(default)]
    result: Option<ResultFields>,
    #[serde(default)]
    error: Option<ErrorFields>,
}

#[derive(Deserialize)]
struct ResultFields {
    #[serde(rename = "isError", default)]
    is_error: Option<bool>,
}

#[derive(Deserialize)]
struct ErrorFields {
    code: i64,
}

/// What one message on a stream is.
#[derive(Debug, PartialEq, Eq)]
pub enum Kind {
    /// A notification or a server → client request (has `method`).
    Other,
    /// A response (no `method`).
    Response,
}

/// Classify a message read off a stream (SSE event, stdio line) without checking it.
pub fn classify(msg: &[u8]) -> Result<Kind, Fail> {
    #[derive(Deserialize)]
    struct Head {
        #[serde(default)]
        method: Option<IgnoredAny>,
    }
    let head: Head = serde_json::from_slice(msg).map_err(bad_json)?;
    Ok(match head.method {
        Some(_) => Kind::Other,
        None => Kind::Response,
    })
}

/// The numeric id of a response message, if it has one (stdio routing).
pub fn response_id(msg: &[u8]) -> Option<u64> {
    #[derive(Deserialize)]
    struct Head {
        #[serde(default)]
        id: Option<Value>,
        #[serde(default)]
        method: Option<IgnoredAny>,
    }
    let head: Head = serde_json::from_slice(msg).ok()?;
    match head.method {
        Some(_) => None,
        None => head.id?.as_u64(),
    }
}

fn bad_json(e: serde_json::Error) -> Fail {
    Fail::Protocol(format!("bad JSON in an answer: {e}"))
}

/// Check that `msg` is a successful JSON-RPC response to request `id`; for a
/// tools/call (`tool_call`), also that the result has no `isError: true`.
pub fn check_response(msg: &[u8], id: u64, tool_call: bool) -> Result<(), Fail> {
    let env: Envelope = serde_json::from_slice(msg).map_err(bad_json)?;
    if env.method.is_some() {
        return Err(Fail::Protocol(
            "expected a response, got a request or notification".into(),
        ));
    }
    match &env.id {
        Some(v) if v.as_u64() == Some(id) => {}
        Some(Value::Null) | None if env.error.is_some() => {}
        other => {
            return Err(Fail::Protocol(format!(
                "mismatched id: sent {id}, got {}",
                other.as_ref().map_or("none".to_owned(), Value::to_string)
            )))
        }
    }
    if let Some(e) = env.error {
        return Err(Fail::JsonRpc(e.code));
    }
    match env.result {
        None => Err(Fail::Protocol(
            "a response with neither result nor error".into(),
        )),
        Some(r) if tool_call && r.is_error == Some(true) => Err(Fail::ToolError(first_text(msg))),
        Some(_) => Ok(()),
    }
}

/// The first text content of a result (only read on the error path).
fn first_text(msg: &[u8]) -> String {
    let v: Value = serde_json::from_slice(msg).unwrap_or_default();
    let text = v["result"]["content"][0]["text"].as_str().unwrap_or("");
    let mut t: String = text.chars().take(200).collect();
    if t.len() < text.len() {
        t.push('…');
    }
    t.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn call_bodies_splice_the_id() {
        let m = Messages::new(Protocol::Legacy, "echo", &json!({"text": "hi"}));
        let mut out = Vec::new();
        m.call(42, &mut out);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(
            v,
            json!({"jsonrpc": "2.0", "id": 42, "method": "tools/call",
                "params": {"name": "echo", "arguments": {"text": "hi"}}})
        );
        let m = Messages::new(Protocol::Modern, "echo", &json!({}));
        out.clear();
        m.call(7, &mut out);
        let v: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["params"]["_meta"][MODERN_META_KEY], MODERN_VERSION);
        assert_eq!(v["params"]["_meta"][MODERN_CAPABILITIES_KEY], json!({}));
        assert_eq!(
            v["params"]["_meta"][MODERN_CLIENT_INFO_KEY]["name"],
            "emcee-bench"
        );
        let v: Value = serde_json::from_slice(&Messages::initialize(0)).unwrap();
        assert_eq!(v["params"]["protocolVersion"], LEGACY_VERSION);
        let _: Value = serde_json::from_slice(INITIALIZED).unwrap();
    }

    #[test]
    fn responses_are_checked() {
        let ok = br#"{"jsonrpc":"2.0","id":3,"result":{"content":[]}}"#;
        assert_eq!(check_response(ok, 3, true), Ok(()));
        assert!(
            matches!(check_response(ok, 4, true), Err(Fail::Protocol(m)) if m.contains("mismatched"))
        );
        let tool_err = br#"{"jsonrpc":"2.0","id":3,"result":{"content":[{"type":"text","text":"no value"}],"isError":true}}"#;
        assert_eq!(
            check_response(tool_err, 3, true),
            Err(Fail::ToolError("no value".into()))
        );
        assert_eq!(Fail::ToolError("no value".into()).kind(), "tool_error");
        assert_eq!(check_response(tool_err, 3, false), Ok(()));
        let rpc_err = br#"{"jsonrpc":"2.0","id":3,"error":{"code":-32602,"message":"x"}}"#;
        assert_eq!(check_response(rpc_err, 3, true), Err(Fail::JsonRpc(-32602)));
        let null_id = br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"x"}}"#;
        assert_eq!(check_response(null_id, 3, true), Err(Fail::JsonRpc(-32700)));
        assert_eq!(Fail::JsonRpc(-32000).kind(), "jsonrpc_-32000");
        assert_eq!(Fail::Http(404).kind(), "http_404");
        assert!(matches!(
            check_response(b"{nope", 3, true),
            Err(Fail::Protocol(_))
        ));
        assert!(matches!(
            check_response(br#"{"jsonrpc":"2.0","method":"x"}"#, 3, true),
            Err(Fail::Protocol(_))
        ));
        assert!(matches!(
            check_response(br#"{"jsonrpc":"2.0","id":3}"#, 3, true),
            Err(Fail::Protocol(_))
        ));
        assert_eq!(response_id(ok), Some(3));
        assert_eq!(
            response_id(br#"{"jsonrpc":"2.0","id":3,"method":"x"}"#),
            None
        );
        assert_eq!(classify(br#"{"method":"n"}"#), Ok(Kind::Other));
        assert_eq!(classify(ok), Ok(Kind::Response));
    }
}
