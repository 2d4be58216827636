//! JSON-RPC errors: the codes emcee uses (JSON-RPC 2.0 and both MCP eras), the
//! error object, and params decoding that reports -32602. Depends on nothing else
//! in the crate.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::Value;

/// JSON-RPC error codes used by emcee (JSON-RPC 2.0 §5.1 and MCP).
pub mod code {
    /// Invalid JSON was received.
    pub const PARSE_ERROR: i32 = -32700;
    /// The JSON sent is not a valid Request object.
    pub const INVALID_REQUEST: i32 = -32600;
    /// The method does not exist or is not available.
    pub const METHOD_NOT_FOUND: i32 = -32601;
    /// Invalid method parameter(s).
    pub const INVALID_PARAMS: i32 = -32602;
    /// Internal JSON-RPC error (also: a non-tool handler panicked or timed out).
    pub const INTERNAL_ERROR: i32 = -32603;
    /// Server overloaded: a bounded queue (in-flight calls, sessions) is full.
    pub const SERVER_BUSY: i32 = -32000;
    /// MCP (session era): the resource does not exist. 2026-07-28 uses -32602.
    pub const RESOURCE_NOT_FOUND: i32 = -32002;
    /// MCP 2026-07-28: an HTTP header (`MCP-Protocol-Version`, `Mcp-Method`,
    /// `Mcp-Name`, `Mcp-Param-*`) is missing or does not match the body.
    pub const HEADER_MISMATCH: i32 = -32020;
    /// MCP 2026-07-28: the request needs a client capability it did not declare.
    pub const MISSING_CAPABILITY: i32 = -32021;
    /// MCP 2026-07-28: the request's protocol version is not supported.
    pub const UNSUPPORTED_VERSION: i32 = -32022;
    /// emcee: a rate limit (`[rate]`) was reached; HTTP 429 with `Retry-After`.
    /// In JSON-RPC's implementation-defined server-error range, away from the
    /// codes MCP defines there (-32001 to -32004, -32020 to -32022, -32042).
    pub const RATE_LIMITED: i32 = -32090;
}

/// A JSON-RPC error object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, thiserror::Error)]
#[error("JSON-RPC error {code}: {message}")]
pub struct RpcError {
    /// Numeric error code (see [`code`]).
    pub code: i32,
    /// One-line, human readable description.
    pub message: String,
    /// Optional structured detail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
}

impl RpcError {
    /// An error with the given code and message.
    pub fn new(code: i32, message: impl Into<String>) -> Self {
        RpcError {
            code,
            message: message.into(),
            data: None,
        }
    }
    /// Attach structured data.
    pub fn with_data(mut self, data: Value) -> Self {
        self.data = Some(data);
        self
    }
    /// -32700.
    pub fn parse_error(detail: impl fmt::Display) -> Self {
        Self::new(code::PARSE_ERROR, format!("parse error: {detail}"))
    }
    /// -32600.
    pub fn invalid_request(detail: impl fmt::Display) -> Self {
        Self::new(code::INVALID_REQUEST, format!("invalid request: {detail}"))
    }
    /// -32601.
    pub fn method_not_found(method: &str) -> Self {
        Self::new(
            code::METHOD_NOT_FOUND,
            format!("method not found: {method}"),
        )
    }
    /// -32602.
    pub fn invalid_params(detail: impl fmt::Display) -> Self {
        Self::new(code::INVALID_PARAMS, format!("invalid params: {detail}"))
    }
    /// -32603.
    pub fn internal(detail: impl fmt::Display) -> Self {
        Self::new(code::INTERNAL_ERROR, format!("internal error: {detail}"))
    }
}

/// Decode a request's params into `T`; absent params decode from `{}`.
pub fn decode_params<T: serde::de::DeserializeOwned>(
    params: Option<&RawValue>,
) -> Result<T, RpcError> {
    let text = params.map(RawValue::get).unwrap_or("{}");
    serde_json::from_str(text).map_err(|e| RpcError::invalid_params(without_position(&e)))
}

/// A serde_json error's message without its " at line L column C" suffix (the
/// client sent one JSON value; positions in it are noise).
fn without_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}
