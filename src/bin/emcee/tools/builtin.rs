//! Built-in tools, deterministic for users and benchmark harnesses:
//! `echo`, `sleep`, and `kv_set`/`kv_get`/`kv_delete`/`kv_list` on sled; kv values
//! are also resources (`kv://{key}`) that clients can read and subscribe to.
//!
//! kv writes are durable when the call answers (storage flushes first). kv tools
//! return [`Json`] results: `structuredContent` (its `outputSchema` generated from the
//! output type) and, as MCP recommends, the same JSON as their text content. A kv
//! key must be non-empty: the schema says so (`minLength: 1`) and the call is
//! checked against it before the handler runs.
//!
//! A configuration keeps all of them (the default), none (`[tools] builtin =
//! false`) or some (`builtin = ["echo", "kv_get"]`); the `kv://` resources are served
//! when at least one kv tool is kept (they read what `kv_set` writes). With auth
//! (`[auth]`), each principal reads and writes its own keys (`CallContext::kv`)
//! unless `[auth] shared_kv = true`.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::json;

use emcee::config::Limits;
use emcee::protocol::{CallToolResult, LoggingLevel};
use emcee::resources::{ResourceContents, ResourceRegistry, Template};
use emcee::tools::{DuplicateName, Json, Tool, ToolAnnotations, ToolError, ToolRegistry};

/// The built-in tools' names, in the order they are listed.
pub const NAMES: [&str; 6] = ["echo", "sleep", "kv_set", "kv_get", "kv_delete", "kv_list"];

/// Whether the `kv://` resources go with `kept` (a kv tool is among them).
pub fn serves_kv_resources(kept: &[String]) -> bool {
    kept.iter().any(|name| name.starts_with("kv_"))
}

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

/// Hints of a tool that only reads emcee's own state.
fn reads() -> ToolAnnotations {
    ToolAnnotations::new().read_only(true).open_world(false)
}

/// Hints of a kv write: it overwrites (or removes) a value; the same call twice
/// leaves the same state.
fn overwrites() -> ToolAnnotations {
    ToolAnnotations::new()
        .read_only(false)
        .destructive(true)
        .idempotent(true)
        .open_world(false)
}

/// The resource URI of a kv key (`kv://{key}`).
pub fn kv_uri(key: &str) -> String {
    format!("kv://{key}")
}

/// Register the built-in resource template `kv://{key}`: a kv value as a text
/// resource; `kv_set`/`kv_delete` notify its subscribers.
pub fn register_resources(resources: &mut ResourceRegistry) -> Result<(), DuplicateName> {
    resources.add_template(
        Template::new("kv://{key}", "kv", |ctx, uri, vars| async move {
            let key = vars.get("key").cloned().unwrap_or_default();
            match ctx.kv(KV_NAMESPACE).get(&key) {
                Ok(Some(v)) => Ok(vec![ResourceContents::text(
                    uri,
                    Some("text/plain"),
                    String::from_utf8_lossy(&v),
                )]),
                Ok(None) => Err(emcee::resources::not_found(&uri).into()),
                Err(e) => Err(e.into()),
            }
        })
        .description("The value stored under a key by kv_set (keys without `/`)")
        .mime_type("text/plain"),
    )?;
    Ok(())
}

/// Register every built-in tool (what `benches/dispatch.rs`, which includes this
/// file, serves; the binary registers the kept ones with [`register_kept`]).
#[allow(dead_code)]
pub fn register(registry: &mut ToolRegistry, limits: &Limits) -> Result<(), DuplicateName> {
    for tool in all(limits) {
        registry.add(tool)?;
    }
    Ok(())
}

/// Register the built-in tools named in `keep` (see [`NAMES`]), in [`NAMES`]' order.
pub fn register_kept(
    registry: &mut ToolRegistry,
    limits: &Limits,
    keep: &[String],
) -> Result<(), DuplicateName> {
    for tool in all(limits) {
        if keep.iter().any(|k| *k == tool.def().name) {
            registry.add(tool)?;
        }
    }
    Ok(())
}

/// Every built-in tool, in [`NAMES`]' order.
fn all(limits: &Limits) -> Vec<Tool> {
    let kv_list_max = limits.kv_list_max;
    // The keys appear twice in the result (text and structuredContent) and the text
    // is escaped twice: a quarter of the result budget keeps ordinary keys within
    // it. (Whatever still exceeds it is refused by the Call, naming the limit.)
    let kv_list_bytes = limits.max_result_bytes / 4;
    vec![
            Tool::new("echo", "Returns `text` unchanged as one text content.", |_ctx, a: EchoArgs| async move {
                Ok(CallToolResult::text(a.text))
            })
            .annotations(reads().idempotent(true)),
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
            .task(emcee::tools::TaskSupport::Optional)
            .annotations(reads()),
            Tool::new("kv_set", "Stores `value` under `key`; durable when answered.", |ctx, a: KvSetArgs| async move {
                ctx.kv(KV_NAMESPACE).set(&a.key, a.value.as_bytes()).await?;
                ctx.resource_updated(&kv_uri(&a.key));
                Ok(Json(KvSetOutput { key: a.key }))
            })
            .annotations(overwrites()),
            Tool::new("kv_get", "Returns the value stored under `key`; an error if there is none.", |ctx, a: KeyArgs| async move {
                match ctx.kv(KV_NAMESPACE).get(&a.key)? {
                    Some(v) => Ok(Json(KvGetOutput {
                        key: a.key,
                        value: String::from_utf8_lossy(&v).into_owned(),
                    })),
                    None => Err(ToolError::Failed(format!("no value for key `{}`", a.key))),
                }
            })
            .annotations(reads()),
            Tool::new("kv_delete", "Removes `key`; says whether it existed.", |ctx, a: KeyArgs| async move {
                let deleted = ctx.kv(KV_NAMESPACE).delete(&a.key).await?;
                if deleted {
                    ctx.resource_updated(&kv_uri(&a.key));
                }
                Ok(Json(KvDeleteOutput { key: a.key, deleted }))
            })
            .annotations(overwrites()),
            Tool::new("kv_list", "Lists keys, optionally only those starting with `prefix`.", move |ctx, a: KvListArgs| async move {
                let prefix = a.prefix.unwrap_or_default();
                let (keys, truncated) = ctx
                    .kv(KV_NAMESPACE)
                    .list_within(&prefix, kv_list_max, kv_list_bytes)?;
                Ok(Json(KvListOutput { keys, truncated }))
            })
            .annotations(reads()),
    ]
}
