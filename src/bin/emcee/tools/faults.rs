//! Fault fixtures (`--fixtures faults`), to test containment and limits:
//! `fault_panic` panics in its handler, `fault_hang` never finishes unless cancelled or
//! timed out, `fault_big` returns a text of the requested size, `fault_health` turns
//! the `fixture_dependency` health check on and off, `fault_block` holds a thread of
//! the blocking pool.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use schemars::JsonSchema;
use serde::Deserialize;

use emcee::health::HealthChecks;
use emcee::protocol::CallToolResult;
use emcee::tools::{DuplicateName, Tool, ToolError, ToolRegistry};

/// Largest text `fault_big` produces (64 MiB).
pub const FAULT_BIG_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// No arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NoArgs {}

/// `fault_big` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BigArgs {
    /// Size of the returned text in bytes (at most 64 MiB).
    #[schemars(range(max = 67108864))]
    pub bytes: u64,
}

/// `fault_block` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BlockArgs {
    /// How long to block, in milliseconds.
    pub ms: u64,
}

/// `fault_health` arguments.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HealthArgs {
    /// Whether the fixture dependency reports healthy.
    pub healthy: bool,
}

/// Name of the fixture's dependency check in `/health`.
pub const FIXTURE_CHECK: &str = "fixture_dependency";

/// Register the fault fixtures, and the `fixture_dependency` health check that
/// `fault_health {healthy}` turns on and off.
pub fn register(tools: &mut ToolRegistry, health: &mut HealthChecks) -> Result<(), DuplicateName> {
    let healthy = Arc::new(AtomicBool::new(true));
    let flag = healthy.clone();
    health.add(FIXTURE_CHECK, move || {
        let ok = flag.load(Ordering::Relaxed);
        async move {
            if ok {
                Ok(())
            } else {
                Err("turned off by fault_health".to_owned())
            }
        }
    });
    tools
        .add(Tool::new(
            "fault_health",
            "Turns the `fixture_dependency` health check on or off (fixture).",
            move |_ctx, a: HealthArgs| {
                healthy.store(a.healthy, Ordering::Relaxed);
                async move {
                    Ok(CallToolResult::text(format!(
                        "fixture_dependency healthy: {}",
                        a.healthy
                    )))
                }
            },
        ))?
        .add(Tool::new(
            "fault_panic",
            "Panics inside the handler (fixture).",
            |_ctx, _a: NoArgs| async move {
                panic!("fault_panic: deliberate panic in a tool handler");
                #[allow(unreachable_code)]
                Ok(CallToolResult::default())
            },
        ))?
        .add(Tool::new(
            "fault_block",
            "Blocks a thread of the blocking pool for `ms` milliseconds (fixture).",
            |ctx, a: BlockArgs| async move {
                let ms = a.ms;
                ctx.blocking(move || std::thread::sleep(std::time::Duration::from_millis(ms)))
                    .await
                    .map_err(|e| ToolError::Failed(e.message))?;
                Ok(CallToolResult::text(format!("blocked {ms} ms")))
            },
        ))?
        .add(Tool::new(
            "fault_hang",
            "Never finishes unless cancelled or timed out (fixture).",
            |_ctx, _a: NoArgs| async move {
                futures::future::pending::<emcee::tools::ToolOutcome>().await
            },
        ))?
        .add(Tool::new(
            "fault_big",
            "Returns a text of `bytes` bytes (fixture).",
            |_ctx, a: BigArgs| async move {
                if a.bytes > FAULT_BIG_MAX_BYTES {
                    return Err(ToolError::InvalidArguments(format!(
                        "`bytes`: {} is above the maximum {FAULT_BIG_MAX_BYTES}",
                        a.bytes
                    )));
                }
                Ok(CallToolResult::text("x".repeat(a.bytes as usize)))
            },
        ))?;
    Ok(())
}
