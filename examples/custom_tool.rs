//! A server with one custom tool, served over stdio, built on the emcee library.
//!
//! Run with:
//! ```sh
//! cargo run --example custom_tool
//! ```
//! then type (one line):
//! `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"me","version":"1"}}}`
//! and
//! `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"add","arguments":{"a":2,"b":3}}}`

use std::sync::Arc;

use emcee::config::{Limits, LogLevel};
use emcee::protocol::CallToolResult;
use emcee::service::{ServerInfo, Service};
use emcee::storage::Storage;
use emcee::tools::{Tool, ToolRegistry};
use schemars::JsonSchema;
use serde::Deserialize;

/// Arguments of `add`; the JSON Schema clients see is generated from this type.
#[derive(Deserialize, JsonSchema)]
struct AddArgs {
    /// First addend.
    a: i64,
    /// Second addend.
    b: i64,
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let log = emcee::telemetry::logger(LogLevel::Info);
    let mut tools = ToolRegistry::new();
    tools.add(Tool::new(
        "add",
        "Adds two integers.",
        |_ctx, args: AddArgs| async move {
            match args.a.checked_add(args.b) {
                Some(sum) => Ok(CallToolResult::text(sum.to_string())),
                None => Err(emcee::tools::ToolError::Failed("overflow".into())),
            }
        },
    ))?;
    let info = ServerInfo {
        name: "adder".into(),
        version: "1.0.0".into(),
        instructions: Some("Call `add` to add two integers.".into()),
    };
    let service = Arc::new(Service::new(
        info,
        tools,
        Storage::temporary()?,
        Limits::default(),
        log,
    ));
    actix::System::new().block_on(emcee::transport::stdio::serve_stdio(
        service,
        emcee::shutdown_signal(),
    ))?;
    // Write the log lines still queued, then exit now rather than wait for the
    // stdin thread, parked in read(2).
    emcee::telemetry::logging::flush(std::time::Duration::from_secs(2));
    std::process::exit(0)
}
