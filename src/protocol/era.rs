//! The two protocol eras of one request, as pure functions (no actors, no IO): the
//! session uses them to serve a request, the HTTP transport to check one early.
//!
//! - **Session era** (2025-11-25 and older): `initialize` fixes the version and the
//!   client's capabilities for the whole session.
//! - **2026-07-28**: no handshake; every request carries its version and the client's
//!   capabilities in `_meta` ([`check_modern`] validates them), and every result
//!   carries `resultType` and the server's identity ([`Envelope`]).

use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::request::{
    RequestMeta, META_CLIENT_CAPABILITIES, META_PROTOCOL_VERSION, META_SERVER_INFO,
};
use super::{code, Encoded, ProtocolVersion, Reply, Request, RequestId, RpcError};

/// The 2026-07-28 revision.
pub const MODERN: ProtocolVersion = ProtocolVersion::V2026_07_28;

/// Which era a request is served in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Era {
    /// A session of this negotiated version.
    Legacy(ProtocolVersion),
    /// 2026-07-28: state comes with each request.
    Modern,
}

/// Every version emcee serves, newest first (`server/discover`, -32022's `data`).
pub fn supported_versions() -> Vec<&'static str> {
    std::iter::once(MODERN)
        .chain(ProtocolVersion::LEGACY)
        .map(ProtocolVersion::as_str)
        .collect()
}

/// The -32022 error for a version emcee does not serve as a 2026-07-28 request.
pub fn unsupported_version(requested: &str) -> RpcError {
    let message = match ProtocolVersion::parse(requested) {
        Some(v) if v.is_legacy() => format!(
            "protocol version {requested:?} is served as a session (send `initialize`); \
             requests without a session name 2026-07-28"
        ),
        _ => format!("unsupported protocol version: {requested:?}"),
    };
    RpcError::new(code::UNSUPPORTED_VERSION, message)
        .with_data(json!({ "supported": supported_versions(), "requested": requested }))
}

/// True when `req` is written in the 2026-07-28 era: it names its version in `_meta`.
pub fn is_modern_request(meta: &RequestMeta) -> bool {
    meta.protocol_version.is_some()
}

/// Validate a 2026-07-28 request: its `_meta` names a supported version and the
/// client's capabilities, and its method exists in this revision.
pub fn check_modern(req: &Request) -> Result<(), RpcError> {
    check_meta_present(req)?;
    check_version(req)?;
    check_method(req)
}

/// The required `_meta` fields are present (else -32602).
pub fn check_meta_present(req: &Request) -> Result<(), RpcError> {
    if req.meta.protocol_version.is_none() {
        return Err(RpcError::invalid_params(format!(
            "missing _meta[\"{META_PROTOCOL_VERSION}\"]: 2026-07-28 requests name their version"
        )));
    }
    if req.meta.client_capabilities.is_none() {
        return Err(RpcError::invalid_params(format!(
            "missing _meta[\"{META_CLIENT_CAPABILITIES}\"]: 2026-07-28 requests declare the client's capabilities"
        )));
    }
    Ok(())
}

/// The request's version is one emcee serves statelessly (else -32022).
pub fn check_version(req: &Request) -> Result<(), RpcError> {
    match req.meta.protocol_version.as_deref() {
        Some(v) if ProtocolVersion::parse(v) == Some(MODERN) => Ok(()),
        Some(v) => Err(unsupported_version(v)),
        None => Err(unsupported_version("")),
    }
}

/// The method exists in 2026-07-28 (else -32601).
pub fn check_method(req: &Request) -> Result<(), RpcError> {
    if req.call.in_modern_era() {
        Ok(())
    } else {
        Err(RpcError::method_not_found(req.method()))
    }
}

/// The -32021 error: the request needs client capabilities it did not declare.
pub fn missing_capability(method: &str, capabilities: &[&str]) -> RpcError {
    let mut required = Map::new();
    for c in capabilities {
        required.insert((*c).to_owned(), json!({}));
    }
    RpcError::new(
        code::MISSING_CAPABILITY,
        format!(
            "{method} needs the client capabilities {capabilities:?}, which the request did not declare"
        ),
    )
    .with_data(json!({ "requiredCapabilities": required }))
}

/// How long clients may cache `server/discover` and list results: the server's
/// tools, resources and prompts are fixed for the life of the process, and a
/// restart with new ones is seen within this time.
pub const LIST_TTL_MS: u64 = 300_000;

/// Who may share a cached result (2026-07-28 `cacheScope`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheScope {
    /// No user-specific data: any cache may serve it to anyone.
    Public,
    /// Not to be shared across authorization contexts.
    Private,
}

/// Add `ttlMs` and `cacheScope` to a cacheable 2026-07-28 result (discover, the
/// lists, `resources/read`). Each list uses one scope for all its pages.
pub fn add_cache_fields(result: &mut Value, ttl_ms: u64, scope: CacheScope) {
    if let Value::Object(map) = result {
        map.insert("ttlMs".to_owned(), ttl_ms.into());
        let scope = match scope {
            CacheScope::Public => "public",
            CacheScope::Private => "private",
        };
        map.insert("cacheScope".to_owned(), scope.into());
    }
}

/// How a 2026-07-28 result is completed: `resultType` and the server's identity in
/// `_meta`, spliced into the encoded result (encoded once, not re-parsed). Cheap to
/// clone.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// `"resultType":"complete","_meta":{…}` without braces.
    fields: Arc<str>,
    /// `"_meta":{…}` alone, for results that carry their own `resultType`.
    meta_only: Arc<str>,
    server_info: Arc<Value>,
}

impl Envelope {
    /// The envelope for a server with this identity (`serverInfo` JSON).
    pub fn new(server_info: &Value) -> Envelope {
        let meta = json!({ META_SERVER_INFO: server_info });
        Envelope {
            fields: Arc::from(format!(r#""resultType":"complete","_meta":{meta}"#)),
            meta_only: Arc::from(format!(r#""_meta":{meta}"#)),
            server_info: Arc::new(server_info.clone()),
        }
    }

    /// The final result of a `subscriptions/listen` stream: `_meta` names the
    /// subscription as well as the server.
    pub fn listen_closed(&self, subscription: &RequestId) -> Value {
        json!({
            "resultType": "complete",
            "_meta": {
                META_SERVER_INFO: &*self.server_info,
                super::request::META_SUBSCRIPTION_ID: subscription,
            }
        })
    }

    /// The response to `id` with the result whose JSON text is `text` (an object
    /// without `resultType`/`_meta`) completed with the envelope's fields, written
    /// in one pass (the result is not parsed again).
    pub fn encode_result(&self, id: &RequestId, text: &str) -> String {
        let Some(body) = text.trim_start().strip_prefix('{') else {
            // Not an object (no handler returns one): leave it as it is.
            return super::jsonrpc::encode_result_text(id, text);
        };
        let body = body.trim_start();
        let mut out = super::jsonrpc::result_head(id, 3 + self.fields.len() + body.len());
        out.push('{');
        // A result that says what it is (`input_required`) keeps its `resultType`.
        if body.starts_with(r#""resultType""#) {
            out.push_str(&self.meta_only);
        } else {
            out.push_str(&self.fields);
        }
        if !body.starts_with('}') {
            out.push(',');
        }
        out.push_str(body);
        out.push('}');
        out
    }

    /// A 2026-07-28 error: "resource not found" is -32602 in this revision.
    pub fn error(&self, mut e: RpcError) -> RpcError {
        if e.code == code::RESOURCE_NOT_FOUND {
            e.code = code::INVALID_PARAMS;
        }
        e
    }
}

/// The response to `id` with `reply`: completed by `envelope` in 2026-07-28, as is
/// in the session era (`None`).
pub fn encode_reply(id: &RequestId, reply: &Reply, envelope: Option<&Envelope>) -> Encoded {
    use super::jsonrpc::{encode_error, encode_result_text};
    match (reply, envelope) {
        (Ok(answer), Some(envelope)) => Encoded::result(envelope.encode_result(id, answer.json())),
        (Err(e), Some(envelope)) => {
            let e = envelope.error(e.clone());
            Encoded::error(encode_error(Some(id), &e), &e)
        }
        (Ok(answer), None) => Encoded::result(encode_result_text(id, answer.json())),
        (Err(e), None) => Encoded::error(encode_error(Some(id), e), e),
    }
}

/// The client's capabilities of a 2026-07-28 request (checked present).
pub fn capabilities(meta: &RequestMeta) -> Arc<Map<String, Value>> {
    meta.client_capabilities
        .clone()
        .unwrap_or_else(super::strict::empty_object)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::jsonrpc::{parse, Message, Payload};

    fn request(json: &str) -> Request {
        match parse(json.as_bytes()) {
            Payload::Single(Ok(Message::Request(r))) => *r,
            other => panic!("not a request: {other:?}"),
        }
    }

    #[test]
    fn modern_requests_name_version_and_capabilities() {
        let ok = request(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{
            "io.modelcontextprotocol/protocolVersion":"2026-07-28",
            "io.modelcontextprotocol/clientCapabilities":{}}}}"#,
        );
        assert!(is_modern_request(&ok.meta));
        assert!(check_modern(&ok).is_ok());
        let old = request(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{
            "io.modelcontextprotocol/protocolVersion":"2099-01-01",
            "io.modelcontextprotocol/clientCapabilities":{}}}}"#,
        );
        let e = check_modern(&old).unwrap_err();
        assert_eq!(e.code, code::UNSUPPORTED_VERSION);
        let data = e.data.unwrap();
        assert_eq!(data["requested"], "2099-01-01");
        assert_eq!(data["supported"][0], "2026-07-28");
        let no_caps = request(
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"_meta":{
            "io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#,
        );
        assert_eq!(
            check_modern(&no_caps).unwrap_err().code,
            code::INVALID_PARAMS
        );
        let ping = request(
            r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":{"_meta":{
            "io.modelcontextprotocol/protocolVersion":"2026-07-28",
            "io.modelcontextprotocol/clientCapabilities":{}}}}"#,
        );
        assert_eq!(
            check_modern(&ping).unwrap_err().code,
            code::METHOD_NOT_FOUND
        );
    }

    #[test]
    fn envelope_splices_result_type_and_server_info() {
        let env = Envelope::new(&json!({"name":"emcee","version":"1"}));
        let id = RequestId::String("a\"b".into());
        let v: Value = serde_json::from_str(&env.encode_result(&id, "{}")).unwrap();
        assert_eq!(v["id"], "a\"b");
        assert_eq!(v["result"]["resultType"], "complete");
        assert_eq!(v["result"]["_meta"][META_SERVER_INFO]["name"], "emcee");
        let full = r#"{ "tools":[1]}"#;
        let v: Value =
            serde_json::from_str(&env.encode_result(&RequestId::Number(3), full)).unwrap();
        assert_eq!(v["id"], 3);
        assert_eq!(v["result"]["tools"][0], 1);
        assert_eq!(v["result"]["resultType"], "complete");
        let e = env.error(RpcError::new(code::RESOURCE_NOT_FOUND, "x"));
        assert_eq!(e.code, code::INVALID_PARAMS);
    }

    #[test]
    fn an_encoded_error_carries_the_code_the_client_gets() {
        let id = RequestId::Number(7);
        let missing: Reply = Err(RpcError::new(code::RESOURCE_NOT_FOUND, "no such resource"));
        let envelope = Envelope::new(&json!({"name": "t", "version": "1"}));
        let modern = encode_reply(&id, &missing, Some(&envelope));
        assert_eq!(modern.error, Some(code::INVALID_PARAMS));
        assert!(modern.json.contains("-32602"), "{}", modern.json);
        let legacy = encode_reply(&id, &missing, None);
        assert_eq!(legacy.error, Some(code::RESOURCE_NOT_FOUND));
        let ok = encode_reply(&id, &crate::protocol::reply(&json!({})), None);
        assert_eq!(ok.error, None);
    }
}
