//! The shortest stdio server on the emcee library: one typed tool.
//!
//! Run with: `cargo run --example custom_tool`, then type (one line each):
//! `{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"me","version":"1"}}}`
//! `{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"add","arguments":{"a":2,"b":3}}}`

use emcee::prelude::*;

/// The arguments of `add`; the JSON Schema clients see is generated from this type.
#[derive(Deserialize, JsonSchema)]
struct Add {
    /// First addend.
    a: i64,
    /// Second addend.
    b: i64,
}

fn main() -> Result<(), emcee::Error> {
    let server = Server::builder()
        .info("adder", "1.0.0")
        .instructions("Call `add` to add two integers.")
        .tool(Tool::new(
            "add",
            "Adds two integers.",
            |_ctx, x: Add| async move {
                let sum =
                    x.a.checked_add(x.b)
                        .ok_or(ToolError::Failed("overflow".into()))?;
                Ok(CallToolResult::text(sum.to_string()))
            },
        ))
        .build()?;
    emcee::block_on(server.serve(Transport::Stdio, emcee::shutdown_signal()))
}
