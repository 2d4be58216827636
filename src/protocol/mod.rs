//! Wire types: the JSON-RPC 2.0 envelope and the MCP messages of both eras.
//!
//! Architecture invariant: this module does no IO and knows no actors; it turns
//! bytes into typed messages and typed results back into JSON text.

pub mod client;
pub(crate) mod era;
pub mod error;
pub(crate) mod headers;
pub mod jsonrpc;
pub mod mcp;
pub mod prompt;
pub mod request;
pub mod resource;
pub(crate) mod strict;

pub use client::{
    ElicitAction, ElicitResult, IncludeContext, ListRootsResult, ModelPreferences, Root,
    SamplingMessage, SamplingRequest, SamplingResult,
};
pub use jsonrpc::{code, Message, Payload, Rejected, Request, RequestId, RpcError};
pub use mcp::{CallToolResult, Content, LoggingLevel, ProtocolVersion, ToolAnnotations, ToolDef};

/// A request's answer: a result, or a JSON-RPC error.
pub type Reply = Result<Answer, RpcError>;

/// A result, encoded once, with what the runtime must know of it without reading
/// its own JSON back: whether it is a tool result marked `isError`, and why.
#[derive(Debug)]
pub struct Answer {
    /// JSON text, as the encoder left it (not shrunk to fit: the response that
    /// carries it is written from it once).
    json: String,
    tool_error: Option<String>,
}

impl Answer {
    /// A result whose JSON is `json` (already encoded: a client's answer, a stored one).
    pub fn raw(json: Box<serde_json::value::RawValue>) -> Answer {
        Answer::encoded(Box::<str>::from(json).into())
    }

    /// A result whose JSON text `json` came out of serde_json's encoder.
    fn encoded(json: String) -> Answer {
        Answer {
            json,
            tool_error: None,
        }
    }

    /// A `tools/call` result; when it is marked `isError`, its first text is kept as
    /// the reason (the call's log line and outcome use it).
    pub fn tool(result: &CallToolResult) -> Reply {
        let mut answer =
            Answer::encoded(serde_json::to_string(result).map_err(RpcError::internal)?);
        if result.is_error {
            answer.tool_error = Some(result.first_text().unwrap_or_default().to_owned());
        }
        Ok(answer)
    }

    /// The result's JSON text.
    pub fn json(&self) -> &str {
        &self.json
    }

    /// Why the tool failed, for a tool result marked `isError`; `None` otherwise.
    pub fn tool_error(&self) -> Option<&str> {
        self.tool_error.as_deref()
    }
}

/// Encode a serializable result as a reply.
pub fn reply<T: serde::Serialize>(value: &T) -> Reply {
    serde_json::to_string(value)
        .map(Answer::encoded)
        .map_err(RpcError::internal)
}

/// An encoded response, ready for a transport: its JSON text, and for an error
/// response its JSON-RPC code (which decides, say, a 2026-07-28 HTTP status), so
/// that no transport reads it back from the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encoded {
    /// The JSON text, without a trailing newline.
    pub json: String,
    /// The error's code, for an error response.
    pub error: Option<i32>,
    /// The error's message, for an error response: what a refusal's log line says
    /// the client was told.
    pub error_message: Option<String>,
    /// An error the server gives because it cannot serve now (it is draining): an
    /// HTTP transport answers it with 503 + `Retry-After`, so that a proxy may
    /// retry the request elsewhere. The refusal is already counted and logged.
    pub unavailable: bool,
}

impl Encoded {
    /// A result response.
    pub fn result(json: String) -> Encoded {
        Encoded {
            json,
            error: None,
            error_message: None,
            unavailable: false,
        }
    }

    /// The response `json` encodes `error` (its code and message are kept beside it).
    pub fn error(json: String, error: &RpcError) -> Encoded {
        Encoded {
            json,
            error: Some(error.code),
            error_message: Some(error.message.clone()),
            unavailable: false,
        }
    }

    /// The same response, marked as given because the server cannot serve now
    /// (see [`Encoded::unavailable`]).
    pub fn as_unavailable(mut self) -> Encoded {
        self.unavailable = true;
        self
    }
}

/// The `format`s JSON Schema (2020-12) defines. schemars adds its own for Rust
/// types (`uint32`, `int64`, `double`, `float`, `uint`, `ip`...), which clients such
/// as the MCP Inspector warn about on every call; the bounds schemars derives from
/// the type (`minimum: 0`, a `u8`'s `maximum`) say what matters of them.
const STANDARD_FORMATS: &[&str] = &[
    "date-time",
    "date",
    "time",
    "duration",
    "email",
    "idn-email",
    "hostname",
    "idn-hostname",
    "ipv4",
    "ipv6",
    "uri",
    "uri-reference",
    "iri",
    "iri-reference",
    "uuid",
    "uri-template",
    "json-pointer",
    "relative-json-pointer",
    "regex",
];

/// `schema` without the `format`s JSON Schema does not define, at any depth (see
/// [`standard_formats_only`]); a value that is not a schema is left as it is.
pub(crate) fn without_custom_formats(schema: &mut serde_json::Value) {
    use schemars::transform::{RecursiveTransform, Transform};
    // Once per tool, at registration: the copy costs nothing per call.
    if let Ok(mut parsed) = schemars::Schema::try_from(schema.clone()) {
        RecursiveTransform(standard_formats_only).transform(&mut parsed);
        *schema = parsed.to_value();
    }
}

/// Drop a non-standard `format` from one (sub)schema (a schemars transform, applied
/// to every subschema with `RecursiveTransform`).
pub(crate) fn standard_formats_only(schema: &mut schemars::Schema) {
    let standard = schema
        .get("format")
        .and_then(serde_json::Value::as_str)
        .is_none_or(|f| STANDARD_FORMATS.contains(&f));
    if !standard {
        schema.remove("format");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tool_answer_keeps_why_it_failed_without_reading_its_json() {
        let failed = Answer::tool(&CallToolResult::error("disk full")).unwrap();
        assert_eq!(failed.tool_error(), Some("disk full"));
        assert!(failed.json().contains(r#""isError":true"#));
        let ok = Answer::tool(&CallToolResult::text("isError")).unwrap();
        assert_eq!(ok.tool_error(), None);
        // A failed result without text still counts as failed.
        let silent = CallToolResult {
            is_error: true,
            ..Default::default()
        };
        assert_eq!(Answer::tool(&silent).unwrap().tool_error(), Some(""));
    }
}
