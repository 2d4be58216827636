//! Wire types: the JSON-RPC 2.0 envelope and the MCP messages of both eras.
//!
//! Architecture invariant: this module does no IO and knows no actors; it turns
//! bytes into typed messages and typed results back into JSON text.

pub mod client;
pub mod era;
pub mod error;
pub mod headers;
pub mod jsonrpc;
pub mod mcp;
pub mod prompt;
pub mod request;
pub mod resource;
pub mod strict;

pub use client::{
    ElicitAction, ElicitResult, IncludeContext, ListRootsResult, ModelPreferences, Root,
    SamplingMessage, SamplingRequest, SamplingResult,
};
pub use jsonrpc::{code, Message, Payload, Rejected, Request, RequestId, RpcError};
pub use mcp::{CallToolResult, Content, LoggingLevel, ProtocolVersion, ToolAnnotations, ToolDef};

/// A request's answer: the raw `result` JSON or a JSON-RPC error.
pub type Reply = Result<Box<serde_json::value::RawValue>, RpcError>;

/// Encode a serializable result as a reply.
pub fn reply<T: serde::Serialize>(value: &T) -> Reply {
    serde_json::value::to_raw_value(value).map_err(RpcError::internal)
}
