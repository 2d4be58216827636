//! Built-in tools, deterministic for users and benchmark harnesses:
//! `echo`, `sleep`, and `kv_set`/`kv_get`/`kv_delete`/`kv_list` on sled; kv values
//! are also resources (`kv://{key}`) that clients can read and subscribe to.
//!
//! kv writes are durable when the call answers (storage flushes first). kv tools
//! return `structuredContent` (declared by `outputSchema`) and, as MCP recommends,
//! the same JSON as their text content.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::config::Limits;
use crate::protocol::{CallToolResult, LoggingLevel};
use crate::resources::{ResourceContents, ResourceRegistry, Template};
use crate::tools::{DuplicateTool, Tool, ToolError, ToolOutcome, ToolRegistry};

/// The kv namespace of the built-in tools.
pub const KV_NAMESPACE: &str = "kv";

/// Progress notifications `sleep` sends when asked for progress.
pub const SLEEP_PROGRESS_STEPS: u32 = 4;

/// `echo` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct EchoArgs {
    /// The text to send back.
    pub text: String,
}

/// `sleep` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SleepArgs {
    /// How long to wait, in milliseconds.
    pub ms: u64,
}

/// Arguments naming one key.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyArgs {
    /// The key (non-empty).
    #[schemars(length(min = 1))]
    pub key: String,
}

/// `kv_set` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KvSetArgs {
    /// The key (non-empty).
    #[schemars(length(min = 1))]
    pub key: String,
    /// The value to store.
    pub value: String,
}

/// `kv_list` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KvListArgs {
    /// Only keys starting with this prefix (default: all).
    #[serde(default)]
    pub prefix: Option<String>,
}

/// `kv_set` result.
#[derive(Debug, Serialize, JsonSchema)]
pub struct KvSetOutput {
    /// The key written.
    pub key: String,
}

/// `kv_get` result.
#[derive(Debug, Serialize, JsonSchema)]
pub struct KvGetOutput {
    /// The key read.
    pub key: String,
    /// Its value.
    pub value: String,
}

/// `kv_delete` result.
#[derive(Debug, Serialize, JsonSchema)]
pub struct KvDeleteOutput {
    /// The key.
    pub key: String,
    /// Whether a value was removed.
    pub deleted: bool,
}

/// `kv_list` result.
#[derive(Debug, Serialize, JsonSchema)]
pub struct KvListOutput {
    /// Matching keys in byte order.
    pub keys: Vec<String>,
    /// True when more keys matched than `limits.kv_list_max`, or than fit in
    /// `limits.max_result_bytes`.
    pub truncated: bool,
}

fn structured<T: Serialize>(value: &T) -> ToolOutcome {
    let v = serde_json::to_value(value).map_err(|e| ToolError::Failed(e.to_string()))?;
    Ok(CallToolResult::text(v.to_string()).with_structured(v))
}

fn non_empty(key: &str) -> Result<(), ToolError> {
    if key.is_empty() {
        return Err(ToolError::InvalidArguments(
            "`key` must not be empty".into(),
        ));
    }
    Ok(())
}

/// The resource URI of a kv key (`kv://{key}`).
pub fn kv_uri(key: &str) -> String {
    format!("kv://{key}")
}

/// Register the built-in resource template `kv://{key}`: a kv value as a text
/// resource; `kv_set`/`kv_delete` notify its subscribers.
pub fn register_resources(resources: &mut ResourceRegistry) {
    resources.add_template(
        Template::new("kv://{key}", "kv", |ctx, uri, vars| async move {
            let key = vars.get("key").cloned().unwrap_or_default();
            match ctx.storage().kv(KV_NAMESPACE).get(&key) {
                Ok(Some(v)) => Ok(vec![ResourceContents::text(
                    uri,
                    Some("text/plain"),
                    String::from_utf8_lossy(&v),
                )]),
                Ok(None) => Err(crate::resources::not_found(&uri)),
                Err(e) => Err(crate::protocol::RpcError::internal(e)),
            }
        })
        .description("The value stored under a key by kv_set (keys without `/`)")
        .mime_type("text/plain"),
    );
}

/// Register the built-in tools.
pub fn register(tools: &mut ToolRegistry, limits: &Limits) -> Result<(), DuplicateTool> {
    let kv_list_max = limits.kv_list_max;
    // The keys appear twice in the result (text and structuredContent) and the text
    // is escaped twice: a quarter of the result budget keeps ordinary keys within
    // it. (Whatever still exceeds it is refused by the Call, naming the limit.)
    let kv_list_bytes = limits.max_result_bytes / 4;
    tools
        .add(
            Tool::new("echo", "Returns `text` unchanged as one text content.", |_ctx, a: EchoArgs| async move {
                Ok(CallToolResult::text(a.text))
            })
            .annotations(json!({"readOnlyHint": true, "idempotentHint": true, "openWorldHint": false})),
        )?
        .add(
            Tool::new(
                "sleep",
                "Waits `ms` milliseconds, then says so. Sends progress when asked. Runs as a task for clients with the tasks extension.",
                |ctx, a: SleepArgs| async move {
                    ctx.notify_log(LoggingLevel::Debug, Some("sleep"), json!(format!("sleeping {} ms", a.ms)));
                    let total = a.ms as f64;
                    if ctx.wants_progress() {
                        let step = Duration::from_millis(a.ms) / SLEEP_PROGRESS_STEPS;
                        for i in 1..=SLEEP_PROGRESS_STEPS {
                            actix_rt::time::sleep(step).await;
                            let done = (step * i).as_millis() as f64;
                            ctx.progress(done, Some(total), None);
                        }
                    } else {
                        actix_rt::time::sleep(Duration::from_millis(a.ms)).await;
                    }
                    Ok(CallToolResult::text(format!("slept {} ms", a.ms)))
                },
            )
            .task(crate::tasks::TaskSupport::Optional)
            .annotations(json!({"readOnlyHint": true, "openWorldHint": false})),
        )?
        .add(
            Tool::new("kv_set", "Stores `value` under `key`; durable when answered.", |ctx, a: KvSetArgs| async move {
                non_empty(&a.key)?;
                ctx.storage().kv(KV_NAMESPACE).set(&a.key, a.value.as_bytes()).await?;
                ctx.resource_updated(&kv_uri(&a.key));
                structured(&KvSetOutput { key: a.key })
            })
            .output::<KvSetOutput>()
            .annotations(json!({"readOnlyHint": false, "destructiveHint": true, "idempotentHint": true, "openWorldHint": false})),
        )?
        .add(
            Tool::new("kv_get", "Returns the value stored under `key`; an error if there is none.", |ctx, a: KeyArgs| async move {
                non_empty(&a.key)?;
                match ctx.storage().kv(KV_NAMESPACE).get(&a.key)? {
                    Some(v) => structured(&KvGetOutput {
                        key: a.key,
                        value: String::from_utf8_lossy(&v).into_owned(),
                    }),
                    None => Err(ToolError::Failed(format!("no value for key `{}`", a.key))),
                }
            })
            .output::<KvGetOutput>()
            .annotations(json!({"readOnlyHint": true, "openWorldHint": false})),
        )?
        .add(
            Tool::new("kv_delete", "Removes `key`; says whether it existed.", |ctx, a: KeyArgs| async move {
                non_empty(&a.key)?;
                let deleted = ctx.storage().kv(KV_NAMESPACE).delete(&a.key).await?;
                if deleted {
                    ctx.resource_updated(&kv_uri(&a.key));
                }
                structured(&KvDeleteOutput { key: a.key, deleted })
            })
            .output::<KvDeleteOutput>()
            .annotations(json!({"readOnlyHint": false, "destructiveHint": true, "idempotentHint": true, "openWorldHint": false})),
        )?
        .add(
            Tool::new("kv_list", "Lists keys, optionally only those starting with `prefix`.", move |ctx, a: KvListArgs| async move {
                let prefix = a.prefix.unwrap_or_default();
                let (keys, truncated) = ctx
                    .storage()
                    .kv(KV_NAMESPACE)
                    .list_within(&prefix, kv_list_max, kv_list_bytes)?;
                structured(&KvListOutput { keys, truncated })
            })
            .output::<KvListOutput>()
            .annotations(json!({"readOnlyHint": true, "openWorldHint": false})),
        )?;
    Ok(())
}
