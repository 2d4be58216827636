//! Tools: the registry, the typed handler API, and the built-in tool sets.
//!
//! A tool is a name, a JSON Schema generated from its argument type (schemars), and an
//! async handler. Arguments are checked twice before the handler runs: against the
//! validation keywords of the schema (`minLength`, `maximum`, `pattern`..., compiled
//! once when the tool is created, see `constraints.rs`), then by deserializing them
//! into the same type the schema came from, so the advertised `inputSchema` and the
//! validation cannot drift apart; a bad argument becomes a result with
//! `isError: true` naming the field and the problem.
//!
//! A handler returns `Result<R, ToolError>` where `R` is a [`CallToolResult`] or a
//! [`Json<T>`]: `Json<T>` gives the tool an `outputSchema` generated from `T` and
//! answers with `structuredContent` plus its JSON text ([`IntoToolResult`]).
//! Behaviour hints are a typed [`ToolAnnotations`]. Every handler, tool, resource or
//! prompt, fails with [`ToolError`], and every registry refuses a second use of a
//! name with [`DuplicateName`].
//!
//! A short tool with all of it:
//! ```
//! use emcee::tools::{Json, Tool, ToolAnnotations};
//! use schemars::JsonSchema;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Deserialize, JsonSchema)]
//! struct Args {
//!     /// Who to greet.
//!     #[schemars(length(min = 1, max = 64))]
//!     name: String,
//! }
//!
//! #[derive(Serialize, JsonSchema)]
//! struct Greeting {
//!     text: String,
//! }
//!
//! let tool = Tool::new("greet", "Greets someone.", |_ctx, a: Args| async move {
//!     Ok(Json(Greeting { text: format!("Hello, {}!", a.name) }))
//! })
//! .annotations(ToolAnnotations::new().read_only(true).open_world(false));
//! assert!(tool.def().output_schema.is_some());
//! ```

mod constraints;
mod output;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures::future::LocalBoxFuture;
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::gate::{Gate, Permit};
use crate::handler::CallContext;
pub use crate::handler::{DuplicateName, NameKind, ToolError};
use crate::protocol::headers::{header_params, HeaderParam};
pub use crate::protocol::ToolAnnotations;
use crate::protocol::{CallToolResult, ToolDef};
pub use crate::tasks::TaskSupport;
use constraints::Constraints;
pub use output::{IntoToolResult, Json};

/// What a tool handler returns.
pub type ToolOutcome = Result<CallToolResult, ToolError>;

/// A tool's answer: a result (`isError` for failures) or, for protocol errors, a
/// JSON-RPC error.
pub type ToolReply = Result<CallToolResult, crate::protocol::RpcError>;

type DynHandler = dyn Fn(CallContext, Value) -> LocalBoxFuture<'static, ToolReply> + Send + Sync;

/// A tool ready to register: definition, handler, optional timeout override.
pub struct Tool {
    def: ToolDef,
    timeout: Option<Duration>,
    task: crate::tasks::TaskSupport,
    /// The handler calls `begin_task` itself (after gathering input).
    task_begun_by_handler: bool,
    concurrency: Option<usize>,
    gate: OnceLock<Arc<Gate>>,
    header_params: OnceLock<Vec<HeaderParam>>,
    handler: Box<DynHandler>,
}

impl std::fmt::Debug for Tool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tool")
            .field("name", &self.def.name)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// The JSON Schema of `T`, in the shape MCP wants for `inputSchema`: an object
/// schema without the `$schema` and `title` noise, whose optional properties do not
/// admit `null` (some model providers reject it; the handler still reads an explicit
/// `null` as `None`). It keeps schemars' `format`s (`uint32`...), from which the
/// constraint checks tell a type's own bounds from declared ones; [`Tool::new`]
/// advertises it without them.
pub fn schema_of<T: JsonSchema>() -> Value {
    let mut value = generated::<T>();
    if let Some(Value::Object(props)) = value.get_mut("properties") {
        for prop in props.values_mut() {
            without_null(prop);
        }
    }
    value
}

/// The JSON Schema of `T` for `outputSchema`: like [`schema_of`], but an `Option`
/// field keeps `null` in its type, since `T` may serialize `None` as `null` (and
/// clients validate `structuredContent` against this schema), and with only the
/// `format`s JSON Schema defines.
pub fn output_schema_of<T: JsonSchema>() -> Value {
    let mut value = generated::<T>();
    crate::protocol::without_custom_formats(&mut value);
    value
}

/// schemars' schema of `T` as an MCP object schema (no `$schema`, no `title`).
fn generated<T: JsonSchema>() -> Value {
    let mut value = schemars::schema_for!(T).to_value();
    if let Some(obj) = value.as_object_mut() {
        obj.remove("$schema");
        obj.remove("title");
        obj.entry("type").or_insert_with(|| Value::from("object"));
    }
    value
}

/// An optional argument (`Option<T>`) is optional by being left out of `required`;
/// schemars also admits `null` in its type (`["string", "null"]`, or an `anyOf` with
/// `{"type": "null"}`), which some model providers reject. Drop that `null`: the
/// handler still accepts an explicit `null` (serde reads it as `None`).
fn without_null(prop: &mut Value) {
    let Some(obj) = prop.as_object_mut() else {
        return;
    };
    if let Some(Value::Array(types)) = obj.get_mut("type") {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            let only = types.remove(0);
            obj.insert("type".to_owned(), only);
        }
    }
    let single = match obj.get_mut("anyOf") {
        Some(Value::Array(options)) => {
            options.retain(|o| o.get("type").and_then(Value::as_str) != Some("null"));
            (options.len() == 1).then(|| options.remove(0))
        }
        _ => None,
    };
    if let Some(Value::Object(only)) = single {
        obj.remove("anyOf");
        for (k, v) in only {
            obj.entry(k).or_insert(v);
        }
    }
}

/// Decode tool arguments into `A`, naming the offending field on failure.
pub fn decode_args<A: DeserializeOwned>(args: Value) -> Result<A, ToolError> {
    if !args.is_object() {
        return Err(ToolError::InvalidArguments(
            "`arguments` must be a JSON object".into(),
        ));
    }
    // Read from the arguments in place first; only a failure is read again,
    // tracking the path to name the field (the tracking costs an allocation a
    // field).
    if let Ok(decoded) = A::deserialize(&args) {
        return Ok(decoded);
    }
    serde_path_to_error::deserialize(args).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        ToolError::InvalidArguments(if path == "." {
            inner.to_string()
        } else {
            format!("`{path}`: {inner}")
        })
    })
}

impl Tool {
    /// A tool whose arguments are the typed `A`; its `inputSchema` is generated from `A`
    /// (schemars validation attributes such as `#[schemars(length(min = 1))]` are
    /// advertised and checked before the handler runs). The handler returns a
    /// [`CallToolResult`] or a [`Json<T>`]; with `Json<T>` the tool's `outputSchema`
    /// is generated from `T`.
    pub fn new<A, R, F, Fut>(
        name: impl Into<String>,
        description: impl Into<String>,
        handler: F,
    ) -> Tool
    where
        A: DeserializeOwned + JsonSchema + 'static,
        R: IntoToolResult,
        F: Fn(CallContext, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, ToolError>> + 'static,
    {
        let handler = Arc::new(handler);
        let mut tool = Tool::raw(name, description, schema_of::<A>(), move |ctx, args| {
            let handler = handler.clone();
            async move {
                handler(ctx, decode_args::<A>(args)?)
                    .await?
                    .into_tool_result()
            }
        });
        tool.def.output_schema = R::output_schema();
        // The constraints were compiled with schemars' formats (they tell a `u32`'s
        // own bounds from declared ones); clients are shown JSON Schema's only.
        crate::protocol::without_custom_formats(&mut tool.def.input_schema);
        tool
    }

    /// A tool with a hand-written `inputSchema`, whose handler gets the raw arguments
    /// object. The schema is advertised as is; its validation keywords (`minLength`,
    /// `minimum`, `enum`...) are checked before the handler runs, and the handler
    /// checks the types of what it reads.
    pub fn raw<F, Fut>(
        name: impl Into<String>,
        description: impl Into<String>,
        input_schema: Value,
        handler: F,
    ) -> Tool
    where
        F: Fn(CallContext, Value) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ToolOutcome> + 'static,
    {
        let name = name.into();
        let tool_name: Arc<str> = Arc::from(name.as_str());
        let handler = Arc::new(handler);
        let constraints = Constraints::compile(&input_schema);
        let dyn_handler =
            move |ctx: CallContext, args: Value| -> LocalBoxFuture<'static, ToolReply> {
                let handler = handler.clone();
                let tool_name = tool_name.clone();
                let checked = match &constraints {
                    _ if !args.is_object() => Err(ToolError::InvalidArguments(
                        "`arguments` must be a JSON object".into(),
                    )),
                    Some(c) => c.check(&args).map_err(ToolError::InvalidArguments),
                    None => Ok(()),
                };
                Box::pin(async move {
                    let outcome = match checked {
                        Ok(()) => handler(ctx, args).await,
                        Err(e) => Err(e),
                    };
                    match outcome {
                        Ok(result) => Ok(result),
                        Err(ToolError::Protocol(e)) => Err(e),
                        Err(e) => Ok(CallToolResult::error(format!(
                            "tool `{tool_name}`: {}",
                            e.message()
                        ))),
                    }
                })
            };
        Tool {
            def: ToolDef {
                name,
                title: None,
                description: Some(description.into()),
                input_schema,
                output_schema: None,
                annotations: None,
            },
            timeout: None,
            task: crate::tasks::TaskSupport::Forbidden,
            task_begun_by_handler: false,
            concurrency: None,
            gate: OnceLock::new(),
            header_params: OnceLock::new(),
            handler: Box::new(dyn_handler),
        }
    }

    /// Set the display title.
    pub fn title(mut self, title: impl Into<String>) -> Tool {
        self.def.title = Some(title.into());
        self
    }

    /// Declare `structuredContent`'s schema from `T`, for a handler that builds its
    /// [`CallToolResult`] itself. Not needed with [`Json<T>`], which declares it.
    pub fn output<T: JsonSchema>(mut self) -> Tool {
        self.def.output_schema = Some(output_schema_of::<T>());
        self
    }

    /// Behaviour hints: `ToolAnnotations::new().read_only(true).open_world(false)`.
    pub fn annotations(mut self, annotations: ToolAnnotations) -> Tool {
        self.def.annotations = Some(annotations);
        self
    }

    /// Override the call timeout for this tool.
    pub fn timeout(mut self, timeout: Duration) -> Tool {
        self.timeout = Some(timeout);
        self
    }

    /// At most `n` calls of this tool at once, server-wide (default:
    /// `limits.max_in_flight_per_tool`); one more is refused with JSON-RPC -32000.
    pub fn max_concurrency(mut self, n: usize) -> Tool {
        self.concurrency = Some(n);
        self
    }

    /// A permit to run one more call, or `None` at the tool's limit (`default_limit`
    /// unless [`Tool::max_concurrency`] set one).
    pub fn try_enter(&self, default_limit: usize) -> Option<Permit> {
        self.gate
            .get_or_init(|| Gate::new(self.concurrency.unwrap_or(default_limit)))
            .try_enter()
    }

    /// The limit [`Tool::try_enter`] applies.
    pub fn concurrency_limit(&self, default_limit: usize) -> usize {
        self.concurrency.unwrap_or(default_limit)
    }

    /// The tool's name (its definition's `name`).
    pub fn name(&self) -> &str {
        &self.def.name
    }

    /// The definition listed by `tools/list`.
    pub fn def(&self) -> &ToolDef {
        &self.def
    }

    /// The arguments its `inputSchema` annotates with `x-mcp-header` (sent as
    /// `Mcp-Param-*` headers by 2026-07-28 HTTP clients).
    pub fn header_params(&self) -> &[HeaderParam] {
        self.header_params
            .get_or_init(|| header_params(&self.def.input_schema))
    }

    /// The timeout override, if any.
    pub fn timeout_override(&self) -> Option<Duration> {
        self.timeout
    }

    /// Whether this tool may run as a task (tasks extension): for a 2026-07-28
    /// request that declares the extension, the call is answered with a task handle
    /// at once and the handler runs on; its result is fetched with `tasks/get`.
    /// [`TaskSupport::Required`]: a request without the extension gets -32021.
    ///
    /// [`TaskSupport::Required`]: crate::tasks::TaskSupport::Required
    pub fn task(mut self, support: crate::tasks::TaskSupport) -> Tool {
        self.task = support;
        self
    }

    /// Like [`Tool::task`], but the task begins where the handler calls
    /// [`CallContext::begin_task`](crate::handler::CallContext::begin_task), so that it
    /// can gather the client's input through multi-round-trip requests first.
    pub fn task_begun_by_handler(mut self, support: crate::tasks::TaskSupport) -> Tool {
        self.task = support;
        self.task_begun_by_handler = true;
        self
    }

    /// Whether this tool may run as a task, and whether its handler begins it.
    pub fn task_support(&self) -> (crate::tasks::TaskSupport, bool) {
        (self.task, self.task_begun_by_handler)
    }

    /// Start the handler. `arguments` absent means `{}`. Execution failures are
    /// `isError` results; only [`ToolError::Protocol`] is a JSON-RPC error (panics
    /// are contained by the caller).
    pub fn invoke(
        &self,
        ctx: CallContext,
        arguments: Option<Value>,
    ) -> LocalBoxFuture<'static, ToolReply> {
        (self.handler)(
            ctx,
            arguments.unwrap_or_else(|| Value::Object(Default::default())),
        )
    }
}

/// All tools of a server, in registration order (the order of `tools/list`).
#[derive(Debug, Default)]
pub struct ToolRegistry {
    tools: Vec<Arc<Tool>>,
    by_name: HashMap<String, usize>,
}

impl ToolRegistry {
    /// An empty registry.
    pub fn new() -> ToolRegistry {
        ToolRegistry::default()
    }

    /// Register a tool; names are unique (a second one is refused, the first kept).
    pub fn add(&mut self, tool: Tool) -> Result<&mut ToolRegistry, DuplicateName> {
        let name = tool.def.name.clone();
        if self.by_name.contains_key(&name) {
            return Err(DuplicateName {
                kind: NameKind::Tool,
                name,
            });
        }
        self.by_name.insert(name, self.tools.len());
        self.tools.push(Arc::new(tool));
        Ok(self)
    }

    /// Look a tool up by name.
    pub fn get(&self, name: &str) -> Option<&Arc<Tool>> {
        self.by_name.get(name).map(|&i| &self.tools[i])
    }

    /// Number of tools.
    pub fn len(&self) -> usize {
        self.tools.len()
    }

    /// True when no tool is registered.
    pub fn is_empty(&self) -> bool {
        self.tools.is_empty()
    }

    /// All tools in order.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<Tool>> {
        self.tools.iter()
    }

    /// All tools in order, as a slice.
    pub fn as_slice(&self) -> &[Arc<Tool>] {
        &self.tools
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Args {
        text: String,
        n: Option<u32>,
    }

    #[test]
    fn optional_arguments_are_not_typed_null() {
        #[derive(serde::Deserialize, JsonSchema)]
        #[allow(dead_code)]
        struct Args {
            name: String,
            /// A text, or nothing.
            prefix: Option<String>,
            nested: Option<Inner>,
        }
        #[derive(serde::Deserialize, JsonSchema)]
        #[allow(dead_code)]
        struct Inner {
            n: u8,
        }
        let schema = schema_of::<Args>();
        assert_eq!(schema["properties"]["prefix"]["type"], "string", "{schema}");
        assert!(!schema.to_string().contains("\"null\""), "{schema}");
        assert_eq!(schema["required"], serde_json::json!(["name"]), "{schema}");
        // And null is still read as "absent".
        let args: Args = decode_args(serde_json::json!({"name": "a", "prefix": null})).unwrap();
        assert!(args.prefix.is_none());
    }

    #[test]
    fn schema_is_an_object_schema_without_noise() {
        let s = schema_of::<Args>();
        assert_eq!(s["type"], "object");
        assert_eq!(s["required"], serde_json::json!(["text"]));
        assert_eq!(s["additionalProperties"], false);
        assert!(s.get("$schema").is_none() && s.get("title").is_none());
    }

    #[test]
    fn decode_args_names_the_field() {
        let e = decode_args::<Args>(serde_json::json!({"text": 5}))
            .err()
            .unwrap();
        assert!(e.message().contains("`text`"), "{e:?}");
        let e = decode_args::<Args>(serde_json::json!({})).err().unwrap();
        assert!(e.message().contains("missing field `text`"), "{e:?}");
        let e = decode_args::<Args>(serde_json::json!({"text": "a", "x": 1}))
            .err()
            .unwrap();
        assert!(e.message().contains("unknown field `x`"), "{e:?}");
        let e = decode_args::<Args>(serde_json::json!([1])).err().unwrap();
        assert!(e.message().contains("must be a JSON object"), "{e:?}");
        assert!(decode_args::<Args>(serde_json::json!({"text": "a"})).is_ok());
    }

    #[test]
    fn typed_output_declares_the_output_schema() {
        #[derive(serde::Serialize, JsonSchema)]
        struct Out {
            n: u32,
        }
        let typed = Tool::new("t", "d", |_ctx, _a: Args| async { Ok(Json(Out { n: 1 })) });
        assert_eq!(
            typed.def().output_schema,
            Some(output_schema_of::<Out>()),
            "{:?}",
            typed.def()
        );
        let plain = Tool::new("p", "d", |_ctx, _a: Args| async {
            Ok(CallToolResult::text(""))
        });
        assert!(plain.def().output_schema.is_none());
    }

    #[test]
    fn annotations_are_typed_and_serialized_as_mcp_hints() {
        let tool = Tool::new("t", "d", |_ctx, _a: Args| async {
            Ok(CallToolResult::text(""))
        })
        .annotations(
            ToolAnnotations::new()
                .title("T")
                .read_only(false)
                .destructive(true)
                .idempotent(true)
                .open_world(false),
        );
        let def = serde_json::to_value(tool.def()).expect("json");
        assert_eq!(
            def["annotations"],
            serde_json::json!({"title": "T", "readOnlyHint": false, "destructiveHint": true,
                               "idempotentHint": true, "openWorldHint": false})
        );
        // Unset hints are left out, so clients apply the spec's defaults.
        let sparse = serde_json::to_value(ToolAnnotations::new().read_only(true)).expect("json");
        assert_eq!(sparse, serde_json::json!({"readOnlyHint": true}));
    }

    #[test]
    fn duplicate_names_are_refused() {
        let mut r = ToolRegistry::new();
        let mk = || {
            Tool::new("t", "d", |_ctx, _a: Args| async {
                Ok(CallToolResult::text(""))
            })
        };
        r.add(mk()).unwrap();
        let e = r.add(mk()).err().unwrap();
        assert_eq!(e.kind, NameKind::Tool);
        assert_eq!(e.to_string(), "a tool named `t` is already registered");
        assert_eq!(r.len(), 1);
    }
}
