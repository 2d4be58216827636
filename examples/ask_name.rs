//! A tool that asks the user for input (elicitation), written once for both protocol
//! eras: a session-era client gets an `elicitation/create` request on the call's
//! stream; a 2026-07-28 client gets an `input_required` result and retries.
//!
//! The form is generated from a Rust type (`ctx.elicit::<Name>`), and the answer
//! comes back decoded into it.
//!
//! Run with: `cargo run --example ask_name` (stdio).

use emcee::prelude::*;

/// `greet` takes no arguments.
#[derive(Deserialize, JsonSchema)]
struct NoArgs {}

/// The form the user fills in.
#[derive(Deserialize, JsonSchema)]
struct Name {
    /// Your name.
    name: String,
}

fn main() -> Result<(), emcee::Error> {
    let server = Server::builder()
        .info("ask-name", "1.0.0")
        .tool(Tool::new(
            "greet",
            "Asks the user's name, then greets them.",
            |ctx, _a: NoArgs| async move {
                // Runs again from the start on a 2026-07-28 retry: nothing before the
                // ask has an effect that must not happen twice.
                let greeting = match ctx.elicit::<Name>("What is your name?").await? {
                    Elicitation::Accept(Name { name }) => format!("Hello, {name}!"),
                    Elicitation::Decline => "Hello, stranger who keeps their name!".to_owned(),
                    _ => "Hello, whoever you are.".to_owned(),
                };
                Ok(CallToolResult::text(greeting))
            },
        ))
        .build()?;
    emcee::block_on(server.serve(Transport::Stdio, emcee::shutdown_signal()))
}
