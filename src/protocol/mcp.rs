//! MCP message types shared by both protocol eras (DESIGN §1).
//!
//! Field names follow the specification's camelCase wire names. Types that only one
//! era uses carry optional fields, so one set of types serves 2024-11-05 through
//! 2026-07-28. Nothing here does IO.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Protocol versions emcee speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ProtocolVersion {
    /// The first dated release (stdio and HTTP+SSE).
    V2024_11_05,
    /// Streamable HTTP, batching, tool annotations.
    V2025_03_26,
    /// Structured tool output, elicitation; batching removed.
    V2025_06_18,
    /// The last session-era version.
    V2025_11_25,
    /// The current, sessionless era.
    V2026_07_28,
}

impl ProtocolVersion {
    /// Session-era versions, newest first: the order used in negotiation.
    pub const LEGACY: [ProtocolVersion; 4] = [
        ProtocolVersion::V2025_11_25,
        ProtocolVersion::V2025_06_18,
        ProtocolVersion::V2025_03_26,
        ProtocolVersion::V2024_11_05,
    ];

    /// The newest session-era version: the answer to an unsupported `initialize`.
    pub const LATEST_LEGACY: ProtocolVersion = ProtocolVersion::V2025_11_25;

    /// The wire string.
    pub fn as_str(self) -> &'static str {
        match self {
            ProtocolVersion::V2024_11_05 => "2024-11-05",
            ProtocolVersion::V2025_03_26 => "2025-03-26",
            ProtocolVersion::V2025_06_18 => "2025-06-18",
            ProtocolVersion::V2025_11_25 => "2025-11-25",
            ProtocolVersion::V2026_07_28 => "2026-07-28",
        }
    }

    /// Parse a wire string; `None` for versions emcee does not speak.
    pub fn parse(s: &str) -> Option<ProtocolVersion> {
        Some(match s {
            "2024-11-05" => ProtocolVersion::V2024_11_05,
            "2025-03-26" => ProtocolVersion::V2025_03_26,
            "2025-06-18" => ProtocolVersion::V2025_06_18,
            "2025-11-25" => ProtocolVersion::V2025_11_25,
            "2026-07-28" => ProtocolVersion::V2026_07_28,
            _ => return None,
        })
    }

    /// True for versions that use `initialize` and sessions.
    pub fn is_legacy(self) -> bool {
        self < ProtocolVersion::V2026_07_28
    }

    /// JSON-RPC batches are allowed only in 2025-03-26.
    pub fn allows_batch(self) -> bool {
        self == ProtocolVersion::V2025_03_26
    }

    /// Pick the version to answer an `initialize` with: the client's if emcee speaks
    /// it as a session-era version, else the newest session-era version.
    pub fn negotiate(requested: &str) -> ProtocolVersion {
        match ProtocolVersion::parse(requested) {
            Some(v) if v.is_legacy() => v,
            _ => ProtocolVersion::LATEST_LEGACY,
        }
    }
}

/// Name and version of a client or server.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Implementation {
    /// Programmatic name.
    pub name: String,
    /// Version string.
    #[serde(default)]
    pub version: String,
    /// Display name (2025-06-18+).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

/// `initialize` params.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct InitializeParams {
    /// The version the client asks for.
    pub protocol_version: String,
    /// What the client supports (sampling, roots, elicitation...); shared with every
    /// call's context.
    #[serde(
        default = "super::strict::empty_object",
        deserialize_with = "super::strict::object"
    )]
    pub capabilities: Arc<Map<String, Value>>,
    /// Who the client is.
    #[serde(default)]
    pub client_info: Implementation,
}

/// `initialize` result.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InitializeResult {
    /// The negotiated version.
    pub protocol_version: &'static str,
    /// What this server offers.
    pub capabilities: ServerCapabilities,
    /// Who this server is.
    pub server_info: Implementation,
    /// Usage hints for the model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub instructions: Option<String>,
}

/// Server capabilities advertised in `initialize`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ServerCapabilities {
    /// Present when the server has tools.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tools: Option<ListChangedCapability>,
    /// Present when `logging/setLevel` is served.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logging: Option<Map<String, Value>>,
    /// Present when resources are served.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourcesCapability>,
    /// Present when prompts are served.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prompts: Option<ListChangedCapability>,
    /// Present when `completion/complete` is served.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub completions: Option<Map<String, Value>>,
    /// Extensions served, by id (2026-07-28 `server/discover`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub extensions: Option<Map<String, Value>>,
}

/// `resources` capability.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ResourcesCapability {
    /// `resources/subscribe` is served.
    pub subscribe: bool,
    /// `notifications/resources/list_changed` may be sent.
    pub list_changed: bool,
}

/// `{listChanged}` capability object.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ListChangedCapability {
    /// Whether `notifications/*/list_changed` may be sent.
    pub list_changed: bool,
}

/// A tool as listed by `tools/list`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolDef {
    /// Unique name.
    pub name: String,
    /// Display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// What the tool does.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// JSON Schema of the arguments (an object schema).
    pub input_schema: Value,
    /// JSON Schema of `structuredContent`, when the tool returns one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output_schema: Option<Value>,
    /// Behaviour hints (`readOnlyHint`, `destructiveHint`, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<ToolAnnotations>,
}

/// A tool's behaviour hints (MCP `ToolAnnotations`). Every field is optional and left
/// out of the wire when `None`, so a client applies the spec's defaults to it
/// (`readOnlyHint` false, `destructiveHint` true, `idempotentHint` false,
/// `openWorldHint` true). Hints are not guarantees: clients must not trust them from
/// servers they do not trust.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ToolAnnotations {
    /// A human-readable title for the tool.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// `readOnlyHint`: the tool does not modify its environment.
    #[serde(rename = "readOnlyHint", skip_serializing_if = "Option::is_none")]
    pub read_only: Option<bool>,
    /// `destructiveHint`: the tool may destroy or overwrite data (meaningful only
    /// when it is not read-only).
    #[serde(rename = "destructiveHint", skip_serializing_if = "Option::is_none")]
    pub destructive: Option<bool>,
    /// `idempotentHint`: calling it again with the same arguments has no further
    /// effect (meaningful only when it is not read-only).
    #[serde(rename = "idempotentHint", skip_serializing_if = "Option::is_none")]
    pub idempotent: Option<bool>,
    /// `openWorldHint`: the tool reaches an open world (the web, other systems);
    /// `false` for a closed domain such as its own store.
    #[serde(rename = "openWorldHint", skip_serializing_if = "Option::is_none")]
    pub open_world: Option<bool>,
}

impl ToolAnnotations {
    /// No hints (the spec's defaults apply).
    pub fn new() -> ToolAnnotations {
        ToolAnnotations::default()
    }

    /// Set `title`.
    pub fn title(mut self, title: impl Into<String>) -> ToolAnnotations {
        self.title = Some(title.into());
        self
    }

    /// Set `readOnlyHint`.
    pub fn read_only(mut self, yes: bool) -> ToolAnnotations {
        self.read_only = Some(yes);
        self
    }

    /// Set `destructiveHint`.
    pub fn destructive(mut self, yes: bool) -> ToolAnnotations {
        self.destructive = Some(yes);
        self
    }

    /// Set `idempotentHint`.
    pub fn idempotent(mut self, yes: bool) -> ToolAnnotations {
        self.idempotent = Some(yes);
        self
    }

    /// Set `openWorldHint`.
    pub fn open_world(mut self, yes: bool) -> ToolAnnotations {
        self.open_world = Some(yes);
        self
    }
}

/// Params of list methods (`tools/list`, ...).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PaginatedParams {
    /// Opaque cursor from a previous page.
    #[serde(default)]
    pub cursor: Option<String>,
}

/// A progress token: a string or an integer chosen by the client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ProgressToken {
    /// Integer token.
    Number(i64),
    /// String token.
    String(String),
}

/// `tools/call` params.
#[derive(Debug, Clone, Deserialize)]
pub struct CallToolParams {
    /// The tool to call.
    pub name: String,
    /// Arguments, validated against the tool's `inputSchema` (duplicate keys refused).
    #[serde(default, deserialize_with = "super::strict::value_opt")]
    pub arguments: Option<Value>,
    /// 2026-07-28 multi-round-trip requests: the client's answers to the
    /// `inputRequests` of an `input_required` result, by key (duplicate keys refused).
    #[serde(
        default,
        rename = "inputResponses",
        deserialize_with = "super::strict::value_opt"
    )]
    pub input_responses: Option<Value>,
    /// 2026-07-28 multi-round-trip requests: the `requestState` of the
    /// `input_required` result this request answers, echoed.
    #[serde(default, rename = "requestState")]
    pub request_state: Option<String>,
}

/// One content block of a tool result or prompt message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Content {
    /// Plain text.
    Text {
        /// The text.
        text: String,
    },
    /// A base64 image.
    Image {
        /// Base64 data.
        data: String,
        /// MIME type, e.g. `image/png`.
        #[serde(rename = "mimeType")]
        mime_type: String,
    },
    /// Base64 audio.
    Audio {
        /// Base64 data.
        data: String,
        /// MIME type, e.g. `audio/wav`.
        #[serde(rename = "mimeType")]
        mime_type: String,
    },
    /// An embedded resource.
    Resource {
        /// `{uri, mimeType?, text | blob}`.
        resource: Value,
    },
    /// A link to a resource.
    ResourceLink {
        /// Resource URI.
        uri: String,
        /// Resource name.
        name: String,
        /// MIME type.
        #[serde(rename = "mimeType", skip_serializing_if = "Option::is_none")]
        mime_type: Option<String>,
    },
}

impl Content {
    /// A text block.
    pub fn text(text: impl Into<String>) -> Content {
        Content::Text { text: text.into() }
    }

    /// The text of a text block.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Content::Text { text } => Some(text),
            _ => None,
        }
    }
}

/// `tools/call` result. Execution failures are results with `isError: true`,
/// not JSON-RPC errors.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallToolResult {
    /// Unstructured content.
    pub content: Vec<Content>,
    /// Structured result matching the tool's `outputSchema`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub structured_content: Option<Value>,
    /// True when the tool failed.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_error: bool,
}

impl CallToolResult {
    /// A successful result with one text block.
    pub fn text(text: impl Into<String>) -> Self {
        CallToolResult {
            content: vec![Content::text(text)],
            ..Default::default()
        }
    }
    /// A failed result (`isError: true`) with one text block naming the problem.
    pub fn error(text: impl Into<String>) -> Self {
        CallToolResult {
            content: vec![Content::text(text)],
            structured_content: None,
            is_error: true,
        }
    }
    /// The text of the first text block, if any (for an error result: why).
    pub fn first_text(&self) -> Option<&str> {
        self.content.iter().find_map(Content::as_text)
    }
    /// Attach `structuredContent`.
    pub fn with_structured(mut self, value: Value) -> Self {
        self.structured_content = Some(value);
        self
    }
}

/// Log severities of `logging/setLevel` and `notifications/message` (RFC 5424 order).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[repr(u8)]
pub enum LoggingLevel {
    /// Debug-level messages.
    Debug = 0,
    /// Informational messages.
    Info = 1,
    /// Normal but significant events.
    Notice = 2,
    /// Warning conditions.
    Warning = 3,
    /// Error conditions.
    Error = 4,
    /// Critical conditions.
    Critical = 5,
    /// Action must be taken immediately.
    Alert = 6,
    /// System is unusable.
    Emergency = 7,
}

impl LoggingLevel {
    /// Inverse of `as u8`; out-of-range values clamp to `Emergency`.
    pub fn from_u8(n: u8) -> LoggingLevel {
        match n {
            0 => LoggingLevel::Debug,
            1 => LoggingLevel::Info,
            2 => LoggingLevel::Notice,
            3 => LoggingLevel::Warning,
            4 => LoggingLevel::Error,
            5 => LoggingLevel::Critical,
            6 => LoggingLevel::Alert,
            _ => LoggingLevel::Emergency,
        }
    }
}

/// `logging/setLevel` params.
#[derive(Debug, Clone, Deserialize)]
pub struct SetLevelParams {
    /// Minimum level the client wants to receive.
    pub level: LoggingLevel,
}

/// `notifications/cancelled` params.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CancelledParams {
    /// The request to cancel.
    pub request_id: super::RequestId,
    /// Why.
    #[serde(default)]
    pub reason: Option<String>,
}

/// `notifications/progress` params.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProgressParams<'a> {
    /// The request's token.
    pub progress_token: &'a ProgressToken,
    /// Progress so far; increases with each notification.
    pub progress: f64,
    /// Total, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub total: Option<f64>,
    /// Human readable status.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<&'a str>,
}

/// `notifications/message` params.
#[derive(Debug, Clone, Serialize)]
pub struct LogMessageParams<'a> {
    /// Severity.
    pub level: LoggingLevel,
    /// Logger name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub logger: Option<&'a str>,
    /// Any JSON value.
    pub data: &'a Value,
}

/// Method names.
pub mod method {
    /// Session-era handshake.
    pub const INITIALIZE: &str = "initialize";
    /// Liveness check.
    pub const PING: &str = "ping";
    /// List tools.
    pub const TOOLS_LIST: &str = "tools/list";
    /// Call a tool.
    pub const TOOLS_CALL: &str = "tools/call";
    /// Set the minimum level of `notifications/message`.
    pub const LOGGING_SET_LEVEL: &str = "logging/setLevel";
    /// Client finished the handshake.
    pub const INITIALIZED: &str = "notifications/initialized";
    /// Cancel an in-flight request.
    pub const CANCELLED: &str = "notifications/cancelled";
    /// Progress of a request.
    pub const PROGRESS: &str = "notifications/progress";
    /// A log message for the client.
    pub const MESSAGE: &str = "notifications/message";
    /// List resources.
    pub const RESOURCES_LIST: &str = "resources/list";
    /// List resource templates.
    pub const RESOURCES_TEMPLATES_LIST: &str = "resources/templates/list";
    /// Read a resource.
    pub const RESOURCES_READ: &str = "resources/read";
    /// Subscribe to a resource's updates.
    pub const RESOURCES_SUBSCRIBE: &str = "resources/subscribe";
    /// Unsubscribe.
    pub const RESOURCES_UNSUBSCRIBE: &str = "resources/unsubscribe";
    /// A subscribed resource changed.
    pub const RESOURCES_UPDATED: &str = "notifications/resources/updated";
    /// List prompts.
    pub const PROMPTS_LIST: &str = "prompts/list";
    /// Get a prompt.
    pub const PROMPTS_GET: &str = "prompts/get";
    /// Complete an argument.
    pub const COMPLETION_COMPLETE: &str = "completion/complete";
    /// What the server offers (2026-07-28; replaces the handshake).
    pub const SERVER_DISCOVER: &str = "server/discover";
    /// Open the long-lived notification stream (2026-07-28).
    pub const SUBSCRIPTIONS_LISTEN: &str = "subscriptions/listen";
    /// Tasks extension: a task's state.
    pub const TASKS_GET: &str = "tasks/get";
    /// Tasks extension: answers to a task's input requests.
    pub const TASKS_UPDATE: &str = "tasks/update";
    /// Tasks extension: ask a task to stop.
    pub const TASKS_CANCEL: &str = "tasks/cancel";
    /// First message of a listen stream.
    pub const SUBSCRIPTIONS_ACKNOWLEDGED: &str = "notifications/subscriptions/acknowledged";
    /// The tool list changed.
    pub const TOOLS_LIST_CHANGED: &str = "notifications/tools/list_changed";
    /// The prompt list changed.
    pub const PROMPTS_LIST_CHANGED: &str = "notifications/prompts/list_changed";
    /// The resource list changed.
    pub const RESOURCES_LIST_CHANGED: &str = "notifications/resources/list_changed";
}

/// `subscriptions/listen` params: what the client wants to hear about.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ListenParams {
    /// The filter.
    #[serde(default)]
    pub notifications: SubscriptionFilter,
}

/// Which notifications a listen stream carries (the request's filter, and the
/// acknowledged subset the server honours).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionFilter {
    /// `notifications/tools/list_changed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools_list_changed: Option<bool>,
    /// `notifications/prompts/list_changed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prompts_list_changed: Option<bool>,
    /// `notifications/resources/list_changed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources_list_changed: Option<bool>,
    /// `notifications/resources/updated` for these URIs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_subscriptions: Option<Vec<String>>,
}

/// Params naming one resource URI (`resources/read`, `subscribe`, `unsubscribe`).
#[derive(Debug, Clone, Deserialize)]
pub struct UriParams {
    /// The URI.
    pub uri: String,
    /// 2026-07-28 multi-round-trip requests: the client's answers to the
    /// `inputRequests` of an `input_required` result, by key (duplicate keys refused).
    #[serde(
        default,
        rename = "inputResponses",
        deserialize_with = "super::strict::value_opt"
    )]
    pub input_responses: Option<Value>,
    /// 2026-07-28 multi-round-trip requests: the `requestState` of the
    /// `input_required` result this request answers, echoed.
    #[serde(default, rename = "requestState")]
    pub request_state: Option<String>,
}

/// `tasks/get`, `tasks/cancel` params (tasks extension).
#[derive(Debug, Clone, Deserialize)]
pub struct TaskParams {
    /// The task.
    #[serde(rename = "taskId")]
    pub task_id: String,
}

/// `tasks/update` params (tasks extension).
#[derive(Debug, Clone, Deserialize)]
pub struct TaskUpdateParams {
    /// The task.
    #[serde(rename = "taskId")]
    pub task_id: String,
    /// Answers to the task's outstanding `inputRequests`, by key (duplicate keys
    /// refused).
    #[serde(
        default,
        rename = "inputResponses",
        deserialize_with = "super::strict::value_opt"
    )]
    pub input_responses: Option<Value>,
}

/// `prompts/get` params.
#[derive(Debug, Clone, Deserialize)]
pub struct GetPromptParams {
    /// The prompt.
    pub name: String,
    /// Its arguments.
    #[serde(default, deserialize_with = "super::strict::string_map")]
    pub arguments: std::collections::HashMap<String, String>,
    /// 2026-07-28 multi-round-trip requests: the client's answers to the
    /// `inputRequests` of an `input_required` result, by key (duplicate keys refused).
    #[serde(
        default,
        rename = "inputResponses",
        deserialize_with = "super::strict::value_opt"
    )]
    pub input_responses: Option<Value>,
    /// 2026-07-28 multi-round-trip requests: the `requestState` of the
    /// `input_required` result this request answers, echoed.
    #[serde(default, rename = "requestState")]
    pub request_state: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_known_versions_and_falls_back_to_latest() {
        for v in ProtocolVersion::LEGACY {
            assert_eq!(ProtocolVersion::negotiate(v.as_str()), v);
        }
        assert_eq!(
            ProtocolVersion::negotiate("1999-01-01"),
            ProtocolVersion::LATEST_LEGACY
        );
        assert_eq!(
            ProtocolVersion::negotiate("2026-07-28"),
            ProtocolVersion::LATEST_LEGACY
        );
    }

    #[test]
    fn only_2025_03_26_allows_batches() {
        let allowed: Vec<_> = ProtocolVersion::LEGACY
            .into_iter()
            .filter(|v| v.allows_batch())
            .collect();
        assert_eq!(allowed, vec![ProtocolVersion::V2025_03_26]);
    }

    #[test]
    fn logging_levels_order_and_round_trip() {
        assert!(LoggingLevel::Debug < LoggingLevel::Emergency);
        for n in 0..8u8 {
            assert_eq!(LoggingLevel::from_u8(n) as u8, n);
        }
        let l: LoggingLevel = serde_json::from_str("\"warning\"").unwrap();
        assert_eq!(l, LoggingLevel::Warning);
    }

    #[test]
    fn tool_results_serialize_to_the_wire_shape() {
        let r = CallToolResult::error("boom");
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            serde_json::json!({"content":[{"type":"text","text":"boom"}],"isError":true})
        );
        let ok = CallToolResult::text("hi");
        assert_eq!(
            serde_json::to_value(&ok).unwrap(),
            serde_json::json!({"content":[{"type":"text","text":"hi"}]})
        );
    }
}
