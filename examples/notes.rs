//! A notes server on the kv API, with a subscribable resource per note.
//!
//! Run with: `cargo run --example notes -- ./notes-data` (stdio; notes are kept in
//! `./notes-data`). `note_add {title, text}` stores a note; `note://{title}` reads it,
//! and a client subscribed to it is told when it changes.

use emcee::prelude::*;

/// The arguments of `note_add`.
#[derive(Deserialize, JsonSchema)]
struct NoteAdd {
    /// The note's title (its key).
    title: String,
    /// What it says.
    text: String,
}

fn main() -> Result<(), emcee::Error> {
    let dir = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "./notes-data".into());
    let server = Server::builder()
        .info("notes", "1.0.0")
        .storage(StorageOptions::Dir(dir.into(), StorageConfig::default()))
        .tool(Tool::new(
            "note_add",
            "Stores a note under its title.",
            |ctx, n: NoteAdd| async move {
                ctx.storage()
                    .kv("notes")
                    .set(&n.title, n.text.as_bytes())
                    .await?;
                ctx.resource_updated(&format!("note://{}", n.title));
                Ok(CallToolResult::text(format!("saved {}", n.title)))
            },
        ))
        .template(
            Template::new("note://{title}", "note", |ctx, uri, vars| async move {
                let title = vars.get("title").cloned().unwrap_or_default();
                match ctx.storage().kv("notes").get(&title) {
                    Ok(Some(text)) => Ok(vec![ResourceContents::text(
                        uri,
                        Some("text/plain"),
                        String::from_utf8_lossy(&text),
                    )]),
                    Ok(None) => Err(RpcError::new(-32002, format!("no note {title:?}")).into()),
                    Err(e) => Err(e.into()),
                }
            })
            .description("A note, by title")
            .mime_type("text/plain"),
        )
        .build()?;
    emcee::block_on(server.serve(Transport::Stdio, emcee::shutdown_signal()))
}
