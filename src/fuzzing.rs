//! The entry points of the fuzz targets (`fuzz/fuzz_targets/`), one function per
//! target, shared with the test that replays the committed corpus and every past
//! crash (`tests/it/fuzz_corpus.rs`): a target and its replay call the same code,
//! so they cannot drift apart. Not part of the API, no stability promise.
//!
//! Each function takes arbitrary bytes and must not panic: a panic, or a property
//! asserted here that fails, is a finding. What each reaches:
//!
//! - [`message`]: a stdio line or an HTTP body decoded (`jsonrpc::parse`: envelope,
//!   batch, typed params, `_meta`), classified for both eras and answered as the
//!   transports answer a refusal; every answer must be a JSON object.
//! - [`dispatch`]: the same bytes, one message a line, handed to a real Session
//!   actor (a stdio connection's) of an in-process server with a few tools, a
//!   resource and a prompt; every frame it sends must be JSON, and the session
//!   must live through it and answer a `ping` after it.
//! - [`header_value`]: an `Mcp-Name` / `Mcp-Param-*` value (`=?base64?…?=` or
//!   plain), and its comparison with the body's argument.
//! - [`last_event_id`]: a `Last-Event-ID` header.
//! - [`request_state`]: a 2026-07-28 `requestState`, opened as the server opens a
//!   client's; and a sealed state payload of the fuzzer's choosing (past the MAC)
//!   with `inputResponses`, through the answers and a new seal.
//!
//! The configuration file's target calls the binary's own parser
//! (`src/bin/emcee/config/mod.rs`, `fuzz_file`): the binary is not in this library.

use std::borrow::Cow;
use std::cell::RefCell;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use serde_json::{json, Value};

use crate::protocol::jsonrpc::{self, Message, Payload, Rejected};
use crate::protocol::{era, headers, RpcError};

/// A target's entry point: arbitrary bytes in, a panic for a finding.
pub type Entry = fn(&[u8]);

/// The targets whose entry point is in this module, by the name of the target (and
/// of its `fuzz/corpus/` and `fuzz/artifacts/` folders).
pub const TARGETS: &[(&str, Entry)] = &[
    ("message", message),
    ("dispatch", dispatch),
    ("header_value", header_value),
    ("last_event_id", last_event_id),
    ("request_state", request_state),
    #[cfg(feature = "oauth")]
    ("jwt", jwt),
];

/// A JWKS document, a NUL, and a bearer credential, through the OAuth resource
/// server's key parsing and every check of a token after its key set is chosen
/// (`auth::oauth::fuzz_jwt`).
#[cfg(feature = "oauth")]
pub fn jwt(data: &[u8]) {
    crate::auth::oauth::fuzz_jwt(data);
}

/// Panics unless `text` is one JSON object (or, for a batch, an array of them).
fn assert_json(text: &str) {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(_)) => {}
        Ok(Value::Array(items)) if items.iter().all(Value::is_object) => {}
        other => panic!("not a JSON object: {other:?} from {text:?}"),
    }
}

/// Decode a payload and answer what a transport answers without a session: the
/// refusal of a malformed message, the era checks of a request.
pub fn message(data: &[u8]) {
    match jsonrpc::parse(data) {
        Payload::Single(one) => inspect(one),
        Payload::Batch(items) => {
            assert!(!items.is_empty(), "an empty batch is refused, not a batch");
            items.into_iter().for_each(inspect);
        }
    }
}

fn inspect(item: Result<Message, Rejected>) {
    match item {
        Err(rejected) => {
            assert_json(&jsonrpc::encode_error(
                rejected.id.as_ref(),
                &rejected.error,
            ));
            assert_json(&jsonrpc::encode_error_omitting_unknown_id(
                rejected.id.as_ref(),
                &rejected.error,
            ));
        }
        Ok(Message::Request(req)) => {
            let call = &req.call;
            let _ = (
                call.label(),
                call.name(),
                call.called(),
                req.meta.trace_id(),
            );
            let checked = if era::is_modern_request(&req.meta) {
                let _ = era::capabilities(&req.meta);
                era::check_modern(&req)
            } else {
                Ok(())
            };
            // The answer a refusal gets, in the era the request is written in.
            let refusal = match checked {
                Err(e) => e,
                Ok(()) => RpcError::method_not_found(req.method()),
            };
            let envelope = era::Envelope::new(&json!({"name": "fuzz", "version": "1"}));
            let modern = era::is_modern_request(&req.meta).then_some(&envelope);
            assert_json(&era::encode_reply(&req.id, &Err(refusal), modern).json);
            let ok = crate::protocol::reply(&json!({}));
            assert_json(&era::encode_reply(&req.id, &ok, modern).json);
        }
        Ok(Message::Notification(_)) | Ok(Message::Response(_)) => {}
    }
}

/// An `Mcp-Name` or `Mcp-Param-*` header value, then compared with a string, an
/// integer and a boolean argument as `tools/call` compares them.
pub fn header_value(data: &[u8]) {
    let decoded = headers::decode_value(data);
    if let Some(Cow::Borrowed(plain)) = &decoded {
        assert!(
            plain
                .bytes()
                .all(|b| b == b'\t' || (0x20..=0x7e).contains(&b)),
            "a plain value holds only visible ASCII, spaces and tabs: {plain:?}"
        );
        assert_eq!(plain.trim_matches([' ', '\t']), *plain, "trimmed");
    }
    let schema = json!({"type": "object", "properties": {
        "s": {"type": "string", "x-mcp-header": "S"},
        "i": {"type": "integer", "x-mcp-header": "I"},
        "b": {"type": "boolean", "x-mcp-header": "B"},
    }});
    let params = headers::header_params(&schema);
    assert_eq!(params.len(), 3);
    let Some(text) = decoded.as_deref() else {
        let any = json!({"s": "x", "i": 1, "b": true});
        let matched = headers::check_params(&params, Some(&any), |_| Some(data));
        assert!(matched.is_err(), "a malformed value matched");
        return;
    };
    // Each argument alone: equal to the header's value it matches, another value
    // it does not.
    let one = |name: &str, value: Value| {
        let param: Vec<_> = params
            .iter()
            .filter(|p| p.path == [name])
            .cloned()
            .collect();
        headers::check_params(&param, Some(&json!({ name: value })), |_| Some(data)).is_ok()
    };
    assert!(one("s", json!(text)), "{text:?} is its own string");
    assert!(
        !one("s", json!(format!("{text}x"))),
        "{text:?} is another string"
    );
    if let Ok(n) = text.parse::<i64>() {
        assert!(one("i", json!(n)), "{text:?} is the integer {n}");
        for other in [n.wrapping_add(1), n.wrapping_sub(1)] {
            assert!(
                !one("i", json!(other)),
                "{text:?} matched the integer {other}"
            );
        }
    }
    assert_eq!(one("b", json!(true)), text == "true", "{text:?} as true");
    assert_eq!(one("b", json!(false)), text == "false", "{text:?} as false");
}

/// A `Last-Event-ID` header: an id either parses into the stream and sequence the
/// server writes back, or is refused.
pub fn last_event_id(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Some((stream, seq)) = crate::transport::sse::parse_event_id(text) {
        let id = crate::transport::sse::event_id(stream, seq);
        assert_eq!(
            crate::transport::sse::parse_event_id(&id),
            Some((stream, seq)),
            "{id} reads back"
        );
    }
}

/// The sealer of [`request_state`]: a fixed key, the default bounds.
fn sealer() -> Arc<crate::mrtr::Mrtr> {
    let config = crate::config::MrtrConfig::default();
    Arc::new(crate::mrtr::Mrtr::new(
        b"fuzzing key, not a secret",
        config.state_ttl,
        config.max_state_bytes,
    ))
}

/// A `requestState`. Input starting with `{`: the state's payload (JSON), sealed
/// with the server's key as if the server had issued it, then a line of
/// `inputResponses`; anything else: a state a client sent, which the server must
/// refuse (it cannot have been sealed with the server's key).
pub fn request_state(data: &[u8]) {
    use crate::mrtr::{Binding, Inputs};
    let mrtr = sealer();
    let binding = || Binding::new("tools/call", "ask", json!({"a": 1}));
    if data.first() != Some(&b'{') {
        let Ok(text) = std::str::from_utf8(data) else {
            return;
        };
        let opened = Inputs::new(mrtr, binding(), None, Some(text));
        assert!(
            opened.is_err(),
            "a state the server did not seal was accepted: {text:?}"
        );
        return;
    }
    let (payload, responses) = match data.iter().position(|b| *b == b'\n') {
        Some(at) => (&data[..at], Some(&data[at + 1..])),
        None => (data, None),
    };
    let responses = responses.and_then(|r| serde_json::from_slice::<Value>(r).ok());
    let sealed = mrtr.sealed_text(payload);
    let Ok(inputs) = Inputs::new(mrtr, binding(), responses.as_ref(), Some(&sealed)) else {
        return;
    };
    for method in [
        "elicitation/create",
        "sampling/createMessage",
        "roots/list",
        "x",
    ] {
        let key = inputs.auto_key(method);
        if inputs.answer(&key, method).is_none() {
            inputs.ask(&key, method, json!({}));
        }
        for key in ["user_name", "a", ""] {
            let _ = inputs.answer(key, method);
        }
    }
    if let Ok(answer) = inputs.input_required() {
        assert_json(answer.json());
    }
}

/// Closing `data`: a `ping` the session answers after everything before it.
const SENTINEL: &[u8] = br#"{"jsonrpc":"2.0","id":"fuzz-sentinel","method":"ping"}"#;

/// How long a session may take to answer the sentinel (a hang is a finding).
const ANSWER_WITHIN: Duration = Duration::from_secs(10);

/// The in-process server [`dispatch`] drives: one per thread.
struct Harness {
    system: actix::SystemRunner,
    root: Addr<crate::runtime::root::Root>,
}

thread_local! {
    static HARNESS: RefCell<Option<Harness>> = const { RefCell::new(None) };
}

/// The tools, resource and prompt of [`dispatch`]'s server.
fn fuzz_server() -> Result<crate::Server, crate::Error> {
    use crate::prelude::*;
    use crate::protocol::prompt::Role;

    /// `echo`'s arguments: constrained, so their schema is checked.
    #[derive(Deserialize, JsonSchema)]
    struct Echo {
        /// Echoed.
        #[schemars(length(max = 64))]
        text: String,
        /// Repeated this many times.
        #[serde(default)]
        #[schemars(range(max = 4))]
        times: Option<u8>,
    }
    /// `ask`'s answer.
    #[derive(Deserialize, JsonSchema)]
    struct Name {
        /// A name.
        name: String,
    }
    /// No arguments.
    #[derive(Deserialize, JsonSchema)]
    struct NoArgs {}

    let limits = crate::config::Limits {
        call_timeout: Duration::from_millis(500),
        client_request_timeout: Duration::from_millis(500),
        ..Default::default()
    };
    Ok(Server::builder()
        .info("fuzz", "1")
        .limits(limits)
        .logger(crate::telemetry::logging::logger_to(
            std::io::sink(),
            crate::config::LogLevel::Debug,
        ))
        .tool(Tool::new("echo", "Echoes.", |_ctx, a: Echo| async move {
            Ok(CallToolResult::text(
                a.text.repeat(usize::from(a.times.unwrap_or(1))),
            ))
        }))
        .tool(Tool::new(
            "ask",
            "Asks a name.",
            |ctx, _a: NoArgs| async move {
                let name = match ctx.elicit::<Name>("Name?").await? {
                    Elicitation::Accept(Name { name }) => name,
                    _ => String::new(),
                };
                let _ = ctx.roots().await;
                Ok(CallToolResult::text(name))
            },
        ))
        .resource(Resource::new("fuzz://one", "one", |_ctx, uri| async move {
            Ok(vec![ResourceContents::text(uri, Some("text/plain"), "one")])
        }))
        .prompt(
            Prompt::new("greet", "Greets.", |_ctx, args| async move {
                Ok(GetPromptResult {
                    description: None,
                    messages: vec![PromptMessage {
                        role: Role::User,
                        content: Content::text(args.get("who").cloned().unwrap_or_default()),
                    }],
                })
            })
            .argument("who", "Whom", true),
        )
        .build()?)
}

impl Harness {
    fn start() -> Harness {
        let system = actix::System::new();
        let server = fuzz_server().expect("the fuzzing server builds");
        let storage = crate::storage::Storage::temporary().expect("a temporary store");
        let service = server
            .assemble(storage, None, None)
            .expect("the fuzzing service starts");
        let root = system.block_on(async {
            let root = crate::runtime::root::Root::new(service, Default::default()).start();
            root.send(crate::runtime::root::Ping)
                .await
                .expect("root alive");
            root
        });
        Harness { system, root }
    }

    fn run(&self, data: &[u8]) {
        use crate::runtime::root::{CloseSession, OpenSession};
        use crate::runtime::session::{Inbound, SessionKind};
        use crate::sink::{FrameKind, Sink};
        let root = self.root.clone();
        self.system.block_on(async move {
            let entry = root
                .send(OpenSession {
                    arbiter: None,
                    kind: SessionKind::Connection,
                    owner: None,
                })
                .await
                .expect("root alive")
                .expect("a session opens");
            let (sink, mut frames) = Sink::channel();
            let lines = data.split(|b| *b == b'\n').filter(|l| !l.is_empty());
            for line in lines.chain([SENTINEL]) {
                entry
                    .addr
                    .send(Inbound::new(jsonrpc::parse(line), sink.clone()))
                    .await
                    .expect("the session lives through every message");
            }
            let answered = tokio::time::timeout(ANSWER_WITHIN, async {
                while let Some(frame) = frames.recv().await {
                    assert_json(&frame.json);
                    if frame.kind == FrameKind::Response
                        && serde_json::from_str::<Value>(&frame.json)
                            .is_ok_and(|v| v["id"] == "fuzz-sentinel")
                    {
                        return true;
                    }
                }
                false
            })
            .await;
            assert_eq!(answered, Ok(true), "the session answers the closing ping");
            root.send(CloseSession(entry.id.clone()))
                .await
                .expect("root alive");
            while entry.addr.connected() {
                tokio::task::yield_now().await;
            }
        });
    }
}

/// Hand `data`, one JSON-RPC message a line (as stdio reads them), to a new
/// session of an in-process server, then a `ping`; the session must answer it,
/// every frame it sends must be JSON, and it must live until it is closed.
pub fn dispatch(data: &[u8]) {
    HARNESS.with(|cell| {
        let mut harness = cell.borrow_mut();
        let running = harness.get_or_insert_with(Harness::start);
        let ran = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| running.run(data)));
        if let Err(panic) = ran {
            // The next input gets a new server, not this one in whatever state.
            *harness = None;
            std::panic::resume_unwind(panic);
        }
    });
}

/// Run `entry` on every file of `fuzz/corpus/{target}/` and `fuzz/artifacts/{target}/`
/// under `fuzz_dir`, each under `catch_unwind`: how many ran, and the files it
/// panicked on (the replay tests fail on any).
pub fn replay(fuzz_dir: &std::path::Path, target: &str, entry: Entry) -> (usize, Vec<String>) {
    let mut ran = 0;
    let mut failed = Vec::new();
    for folder in ["corpus", "artifacts"] {
        let Ok(files) = std::fs::read_dir(fuzz_dir.join(folder).join(target)) else {
            continue;
        };
        let mut files: Vec<_> = files.flatten().map(|f| f.path()).collect();
        files.sort();
        for path in files.into_iter().filter(|p| p.is_file()) {
            let Ok(data) = std::fs::read(&path) else {
                failed.push(format!("{}: unreadable", path.display()));
                continue;
            };
            ran += 1;
            if std::panic::catch_unwind(|| entry(&data)).is_err() {
                failed.push(path.display().to_string());
            }
        }
    }
    (ran, failed)
}
