//! A tool that asks the user for input (elicitation), written once for both protocol
//! eras: a session-era client gets an `elicitation/create` request on the call's
//! stream; a 2026-07-28 client gets an `input_required` result and retries.
//!
//! Run with: `cargo run --example ask_name` (stdio).

use emcee::prelude::*;
use serde_json::json;

/// `greet` takes no arguments.
#[derive(Deserialize, JsonSchema)]
struct NoArgs {}

fn main() -> Result<(), emcee::Error> {
    let server = Server::builder()
        .info("ask-name", "1.0.0")
        .tool(Tool::new("greet", "Asks the user's name, then greets them.", |ctx, _a: NoArgs| async move {
            // Runs again from the start on a 2026-07-28 retry: nothing before the
            // ask has an effect that must not happen twice.
            let schema = json!({"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]});
            let answer = ctx
                .request_client(
                    "elicitation/create",
                    "elicitation",
                    json!({"message": "What is your name?", "requestedSchema": schema}),
                )
                .await?;
            let name = answer["content"]["name"].as_str().unwrap_or("stranger");
            Ok(CallToolResult::text(format!("Hello, {name}!")))
        }))
        .build()?;
    emcee::block_on(server.serve(Transport::Stdio, emcee::shutdown_signal()))
}
