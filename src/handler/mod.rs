//! The handler's side of a call, apart from the actors that run it: what a tool,
//! resource reader or prompt handler is given ([`CallContext`]), what it fails with
//! ([`ToolError`]; see it for what `?` converts and what each failure becomes), and
//! the one duplicate-name rule of every registry ([`DuplicateName`]).
//!
//! **Invariant:** nothing here imports the runtime (`crate::runtime`): a handler
//! talks to its call through the call's `Sink`, the session's [`Peer`], the task
//! slot and the notifier.

mod ask;
mod context;
mod peer;

pub use ask::{elicitation_schema, Elicitation};
pub use context::CallContext;
pub use peer::Peer;

use std::any::Any;
use std::fmt;

use crate::protocol::RpcError;
use crate::storage::StorageError;

/// Why a handler (tool, resource reader, prompt) failed.
///
/// `?` works on any error that implements
/// `Display` (`std::io::Error`, `serde_json::Error`, `String`, `&'static str`,
/// `Box<dyn Error>`, ...): it becomes [`ToolError::Failed`] with the error's text. Two
/// errors keep their kind through `?`: an [`RpcError`] stays a protocol error
/// ([`ToolError::Protocol`], answered as that JSON-RPC error, e.g. -32021 from
/// `CallContext::require_client_capabilities`), and a [`StorageError`] stays
/// [`ToolError::Storage`].
///
/// What a failure becomes depends on the method:
/// - `tools/call`: a result with `isError: true` whose text is [`ToolError::message`],
///   except [`ToolError::Protocol`], a JSON-RPC error;
/// - `resources/read`, `prompts/get`: a JSON-RPC error ([`ToolError::into_rpc_error`]):
///   -32602 for [`ToolError::InvalidArguments`], -32603 for failures and storage,
///   the error itself for [`ToolError::Protocol`] (e.g. -32002 resource not found).
///
/// `ToolError` deliberately implements neither `Display` nor `std::error::Error`:
/// with `Display`, its blanket `From<E: Display>` would overlap with the standard
/// library's `From<T> for T` (`anyhow::Error` leaves out `std::error::Error` for the
/// same reason, its blanket impl being over `Error`). Its text is
/// [`ToolError::message`].
#[derive(Debug)]
#[non_exhaustive]
pub enum ToolError {
    /// The arguments do not match the input schema (or the handler's own checks).
    InvalidArguments(String),
    /// The handler ran and failed.
    Failed(String),
    /// Storage failed.
    Storage(StorageError),
    /// A protocol error: the request is answered with this JSON-RPC error instead of
    /// a result (e.g. -32021 when the request lacks a client capability the tool
    /// needs, -32002 for a resource that does not exist).
    Protocol(RpcError),
}

impl ToolError {
    /// The failure's text: what an `isError` result says (after the tool's name) and
    /// what a JSON-RPC error's message carries.
    pub fn message(&self) -> String {
        match self {
            ToolError::InvalidArguments(m) => format!("invalid arguments: {m}"),
            ToolError::Failed(m) => m.clone(),
            ToolError::Storage(e) => e.to_string(),
            ToolError::Protocol(e) => e.to_string(),
        }
    }

    /// The JSON-RPC error answering a failed `resources/read` or `prompts/get`:
    /// -32602 for bad arguments, -32603 for failures, a protocol error as it is.
    pub fn into_rpc_error(self) -> RpcError {
        match self {
            ToolError::InvalidArguments(m) => RpcError::invalid_params(m),
            ToolError::Failed(m) => RpcError::internal(m),
            ToolError::Storage(e) => RpcError::internal(e),
            ToolError::Protocol(e) => e,
        }
    }
}

/// `?` on any `Display` error. An [`RpcError`] becomes [`ToolError::Protocol`] and a
/// [`StorageError`] [`ToolError::Storage`] (recognised by their type, once, on the
/// error path); anything else [`ToolError::Failed`] with its text.
impl<E: fmt::Display + 'static> From<E> for ToolError {
    fn from(error: E) -> ToolError {
        let mut slot = Some(error);
        let any: &mut dyn Any = &mut slot;
        if let Some(rpc) = any
            .downcast_mut::<Option<RpcError>>()
            .and_then(Option::take)
        {
            return ToolError::Protocol(rpc);
        }
        if let Some(storage) = any
            .downcast_mut::<Option<StorageError>>()
            .and_then(Option::take)
        {
            return ToolError::Storage(storage);
        }
        ToolError::Failed(slot.map(|e| e.to_string()).unwrap_or_default())
    }
}

/// What kind of thing a registered name belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NameKind {
    /// A tool (keyed by name).
    Tool,
    /// A resource (keyed by URI).
    Resource,
    /// A resource template (keyed by URI template).
    Template,
    /// A prompt (keyed by name).
    Prompt,
    /// A completer (keyed by its `ref/prompt` or `ref/resource` reference and the
    /// argument it completes).
    Completion,
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameKind::Tool => "a tool named",
            NameKind::Resource => "a resource with URI",
            NameKind::Template => "a resource template",
            NameKind::Prompt => "a prompt named",
            NameKind::Completion => "a completer for",
        })
    }
}

/// A name (a tool's or prompt's name, a resource's URI, a template) is already
/// registered: every registry refuses a second one rather than replace the first.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} `{name}` is already registered")]
pub struct DuplicateName {
    /// What the name belongs to.
    pub kind: NameKind,
    /// The name, URI or URI template.
    pub name: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn question_mark<E: fmt::Display + 'static>(e: E) -> Result<(), ToolError> {
        Err(e)?;
        Ok(())
    }

    #[test]
    fn question_mark_takes_any_display_error() {
        let io = std::io::Error::other("disk on fire");
        match question_mark(io) {
            Err(ToolError::Failed(m)) => assert_eq!(m, "disk on fire"),
            other => panic!("{other:?}"),
        }
        match question_mark("plain text") {
            Err(ToolError::Failed(m)) => assert_eq!(m, "plain text"),
            other => panic!("{other:?}"),
        }
        let boxed: Box<dyn std::error::Error> = "boxed".into();
        match question_mark(boxed) {
            Err(ToolError::Failed(m)) => assert_eq!(m, "boxed"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn protocol_and_storage_errors_keep_their_kind() {
        let rpc = RpcError::new(-32021, "needs elicitation");
        match question_mark(rpc.clone()) {
            Err(e @ ToolError::Protocol(_)) => assert_eq!(e.into_rpc_error(), rpc),
            other => panic!("{other:?}"),
        }
        match question_mark(StorageError::Unavailable("down".into())) {
            Err(ToolError::Storage(_)) => {}
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn resource_and_prompt_failures_map_to_json_rpc_codes() {
        assert_eq!(
            ToolError::InvalidArguments("`a`: bad".into())
                .into_rpc_error()
                .code,
            -32602
        );
        let e = ToolError::Failed("boom".into()).into_rpc_error();
        assert_eq!(
            (e.code, e.message.as_str()),
            (-32603, "internal error: boom")
        );
    }

    #[test]
    fn duplicate_names_say_what_and_which() {
        let e = DuplicateName {
            kind: NameKind::Resource,
            name: "kv://a".into(),
        };
        assert_eq!(
            e.to_string(),
            "a resource with URI `kv://a` is already registered"
        );
    }
}
