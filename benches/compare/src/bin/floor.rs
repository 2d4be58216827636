//! The "bare HTTP limit" reference for `benches/compare.sh`: actix-web 4 on
//! POST /mcp answering the same JSON-RPC as an MCP echo server, with no MCP
//! machinery at all (no sessions kept, no actors, no schema, no SSE).
//!
//! ```text
//! floor 127.0.0.1:PORT
//! ```
//!
//! * `initialize` → a minimal InitializeResult (the client's protocolVersion
//!   echoed, capabilities {tools:{}}, serverInfo) and an `Mcp-Session-Id`
//!   header from a counter;
//! * notifications (no `id`) → 202 with no body;
//! * `tools/call` → `{"content":[{"type":"text","text":<arguments.text>}]}`;
//! * `tools/list`, `ping` → the obvious small results; anything else → -32601;
//! * DELETE /mcp → 200 (session end); GET /mcp → 405 (no standalone stream).
//!
//! Every answer is `application/json`. Workers = CPU count, TCP_NODELAY on.

use std::{
    net::SocketAddr,
    process::ExitCode,
    sync::atomic::{AtomicU64, Ordering},
};

use actix_web::{
    http::{header::ContentType, StatusCode},
    web, App, HttpResponse, HttpServer,
};
use serde::Deserialize;
use serde_json::{json, value::RawValue, Value};

static NEXT_SESSION: AtomicU64 = AtomicU64::new(1);

/// The parts of a JSON-RPC message the floor looks at; `id` is kept raw and
/// copied back verbatim.
#[derive(Deserialize)]
struct Message<'a> {
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(borrow)]
    method: Option<&'a str>,
    #[serde(default)]
    params: Option<Params>,
}

#[derive(Deserialize, Default)]
struct Params {
    #[serde(rename = "protocolVersion")]
    protocol_version: Option<String>,
    name: Option<String>,
    arguments: Option<Value>,
}

fn reply(id: &RawValue, result: Value) -> HttpResponse {
    // The id is raw JSON text, so the envelope is assembled by hand.
    let body = format!(r#"{{"jsonrpc":"2.0","id":{},"result":{}}}"#, id.get(), result);
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(body)
}

fn error(id: Option<&RawValue>, code: i64, message: &str) -> HttpResponse {
    let id = id.map_or("null", RawValue::get);
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":{id},"error":{{"code":{code},"message":{}}}}}"#,
        Value::from(message)
    );
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(body)
}

async fn post(body: web::Bytes) -> HttpResponse {
    let msg: Message = match serde_json::from_slice(&body) {
        Ok(m) => m,
        Err(e) => return error(None, -32700, &format!("parse error: {e}")),
    };
    let Some(id) = msg.id else {
        // A notification (or a response from the client): nothing to answer.
        return HttpResponse::Accepted().finish();
    };
    let params = msg.params.unwrap_or_default();
    match msg.method {
        Some("initialize") => {
            let version = params.protocol_version.as_deref().unwrap_or("2025-11-25");
            let session = NEXT_SESSION.fetch_add(1, Ordering::Relaxed);
            let mut res = reply(
                id,
                json!({
                    "protocolVersion": version,
                    "capabilities": {"tools": {}},
                    "serverInfo": {"name": "floor", "version": env!("CARGO_PKG_VERSION")},
                }),
            );
            res.headers_mut().insert(
                "mcp-session-id".try_into().unwrap(),
                session.to_string().try_into().unwrap(),
            );
            res
        }
        Some("tools/call") if params.name.as_deref() == Some("echo") => {
            let text = params
                .arguments
                .as_ref()
                .and_then(|a| a.get("text"))
                .and_then(Value::as_str);
            match text {
                Some(text) => reply(id, json!({"content": [{"type": "text", "text": text}]})),
                None => error(Some(id), -32602, "echo: missing string argument `text`"),
            }
        }
        Some("tools/call") => error(Some(id), -32602, "unknown tool"),
        Some("tools/list") => reply(
            id,
            json!({"tools": [{
                "name": "echo",
                "description": "Echo the given text back",
                "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}},
                                "required": ["text"]},
            }]}),
        ),
        Some("ping") => reply(id, json!({})),
        _ => error(Some(id), -32601, "method not found"),
    }
}

fn usage() -> ExitCode {
    eprintln!("usage: floor 127.0.0.1:PORT");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [addr] = args.as_slice() else {
        return usage();
    };
    let addr: SocketAddr = match addr.parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("floor: bad address {addr:?}: {e}");
            return usage();
        }
    };
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let run = actix_web::rt::System::new().block_on(async move {
        let server = HttpServer::new(|| {
            App::new().service(
                web::resource("/mcp")
                    .route(web::post().to(post))
                    .route(web::delete().to(HttpResponse::Ok))
                    .route(web::get().to(|| async {
                        HttpResponse::new(StatusCode::METHOD_NOT_ALLOWED)
                    })),
            )
        })
        .workers(workers)
        .on_connect(|conn, _ext| {
            if let Some(tcp) = conn.downcast_ref::<actix_web::rt::net::TcpStream>() {
                let _ = tcp.set_nodelay(true);
            }
        })
        .bind(addr)?;
        eprintln!("floor: listening on http://{addr}/mcp with {workers} workers");
        server.run().await
    });
    match run {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("floor: {e}");
            ExitCode::FAILURE
        }
    }
}
