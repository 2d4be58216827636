//! A notes server on the kv API, with a subscribable resource per note; an inbox
//! directory watched outside any call; and completion of a prompt's argument and a
//! template's variable.
//!
//! Run with: `cargo run --example notes -- ./notes-data ./notes-inbox` (stdio; notes
//! are kept in `./notes-data`). `note_add {title, text}` stores a note; `note://{title}`
//! reads it, and a client subscribed to it is told when it changes. Each `NAME.txt`
//! in the inbox directory (default `./notes-inbox`, watched from when it exists) is
//! `inbox://NAME`; a watcher thread, outside any call, tells subscribed clients when
//! one changes (`Server::notifier`). `completion/complete` offers the inbox's names
//! for `inbox://{name}` and the tones of the `review` prompt.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use emcee::prelude::*;
use emcee::prompts::Role;

/// The arguments of `note_add`.
#[derive(Deserialize, JsonSchema)]
struct NoteAdd {
    /// The note's title (its key).
    title: String,
    /// What it says.
    text: String,
}

/// How often the watcher looks at the inbox.
const INBOX_POLL: Duration = Duration::from_millis(100);

/// The tones `review` knows.
const TONES: [&str; 3] = ["brief", "detailed", "friendly"];

/// The names of the inbox's files, as the watcher last saw them.
type Names = Arc<Mutex<BTreeSet<String>>>;

/// `NAME` of `DIR/NAME.txt`, when NAME is letters, digits, `-` and `_` only.
fn inbox_name(path: &Path) -> Option<String> {
    if path.extension()? != "txt" {
        return None;
    }
    let name = path.file_stem()?.to_str()?;
    name.chars()
        .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
        .then(|| name.to_owned())
}

/// What the inbox holds: name → (modified, length).
fn scan(inbox: &Path) -> BTreeMap<String, (Option<SystemTime>, u64)> {
    let Ok(entries) = std::fs::read_dir(inbox) else {
        return BTreeMap::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let name = inbox_name(&e.path())?;
            let meta = e.metadata().ok()?;
            Some((name, (meta.modified().ok(), meta.len())))
        })
        .collect()
}

/// Watch `inbox` for new and changed files: keep `names` current and tell the
/// clients subscribed to `inbox://NAME` (from this thread, outside any call).
fn watch(inbox: PathBuf, names: Names, notifier: Notifier) {
    let mut seen = scan(&inbox);
    if let Ok(mut n) = names.lock() {
        n.extend(seen.keys().cloned());
    }
    loop {
        std::thread::sleep(INBOX_POLL);
        let now = scan(&inbox);
        for (name, stamp) in &now {
            if seen.get(name) != Some(stamp) {
                notifier.resource_updated(&format!("inbox://{name}"));
            }
        }
        if now.len() != seen.len() {
            notifier.list_changed(Change::ResourcesList);
        }
        if let Ok(mut n) = names.lock() {
            *n = now.keys().cloned().collect();
        }
        seen = now;
    }
}

/// The candidates among `all` that start with `prefix`.
fn starting_with<'a>(all: impl IntoIterator<Item = &'a str>, prefix: &str) -> Vec<String> {
    all.into_iter()
        .filter(|v| v.starts_with(prefix))
        .map(str::to_owned)
        .collect()
}

fn main() -> Result<(), emcee::Error> {
    let mut args = std::env::args().skip(1);
    let dir = args.next().unwrap_or_else(|| "./notes-data".into());
    let inbox = PathBuf::from(args.next().unwrap_or_else(|| "./notes-inbox".into()));
    let names = Names::default();
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
        .template({
            let inbox = inbox.clone();
            let names = names.clone();
            Template::new("inbox://{name}", "inbox", move |ctx, uri, vars| {
                let file = vars
                    .get("name")
                    .and_then(|name| inbox_name(Path::new(&format!("{name}.txt"))))
                    .map(|name| inbox.join(format!("{name}.txt")));
                async move {
                    let Some(file) = file else {
                        return Err(
                            RpcError::new(-32002, format!("no inbox file for {uri}")).into()
                        );
                    };
                    let text = ctx
                        .blocking(move || std::fs::read_to_string(file))
                        .await?
                        .map_err(|e| RpcError::new(-32002, format!("{uri}: {e}")))?;
                    Ok(vec![ResourceContents::text(uri, Some("text/plain"), text)])
                }
            })
            .description("A text file of the inbox, by name")
            .mime_type("text/plain")
            .complete_variable("name", move |prefix, _context| {
                let names = names.lock().map(|n| n.clone()).unwrap_or_default();
                starting_with(names.iter().map(String::as_str), prefix)
            })
        })
        .prompt(
            Prompt::new(
                "review",
                "Asks for a review of a note.",
                |ctx, args| async move {
                    let title = args.get("title").cloned().unwrap_or_default();
                    let tone = args.get("tone").map_or("brief", String::as_str);
                    let text =
                        ctx.storage().kv("notes").get(&title)?.ok_or_else(|| {
                            ToolError::InvalidArguments(format!("no note {title:?}"))
                        })?;
                    let ask = format!(
                        "Review this note in a {tone} way:\n\n{}",
                        String::from_utf8_lossy(&text)
                    );
                    Ok(GetPromptResult {
                        description: Some(format!("A review of {title}")),
                        messages: vec![PromptMessage {
                            role: Role::User,
                            content: Content::text(ask),
                        }],
                    })
                },
            )
            .argument("title", "The note's title", true)
            .argument("tone", "brief, detailed or friendly", false)
            .complete_argument("tone", |prefix, _context| starting_with(TONES, prefix)),
        )
        .build()?;
    let notifier = server.notifier();
    std::thread::spawn(move || watch(inbox, names, notifier));
    emcee::block_on(server.serve(Transport::Stdio, emcee::shutdown_signal()))
}
