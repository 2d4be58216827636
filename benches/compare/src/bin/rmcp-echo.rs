//! Reference MCP server on the official Rust SDK (`rmcp`), for
//! `benches/compare.sh`: one tool, `echo {text}`, answering one text content
//! equal to `text`.
//!
//! ```text
//! rmcp-echo http 127.0.0.1:PORT   # Streamable HTTP at /mcp, stateful sessions
//! rmcp-echo stdio                 # newline-delimited JSON-RPC on stdin/stdout
//! ```
//!
//! The HTTP mode is served the way the SDK's own examples serve it:
//! `StreamableHttpService` + `LocalSessionManager`, nested at `/mcp` in an
//! axum router, on a multi-threaded tokio runtime. Accepted sockets get
//! TCP_NODELAY: without it small SSE writes stall on delayed ACKs (~40 ms).

use std::{net::SocketAddr, process::ExitCode, sync::Arc};

use axum::serve::ListenerExt;
use rmcp::{
    handler::server::{router::tool::ToolRouter, wrapper::Parameters},
    model::{Implementation, ServerCapabilities, ServerConfig},
    tool, tool_handler, tool_router,
    transport::streamable_http_server::{
        session::local::LocalSessionManager, StreamableHttpServerConfig, StreamableHttpService,
    },
    ServerHandler, ServiceExt,
};

#[derive(Debug, serde::Deserialize, schemars::JsonSchema)]
struct EchoArgs {
    /// Text to send back unchanged.
    text: String,
}

#[derive(Debug, Clone)]
struct Echo {
    tool_router: ToolRouter<Self>,
}

impl Echo {
    fn new() -> Self {
        Self {
            tool_router: Self::tool_router(),
        }
    }
}

#[tool_router]
impl Echo {
    /// A `String` return becomes one text content in the CallToolResult.
    #[tool(description = "Echo the given text back")]
    fn echo(&self, Parameters(EchoArgs { text }): Parameters<EchoArgs>) -> String {
        text
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Echo {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("rmcp-echo", env!("CARGO_PKG_VERSION")))
    }
}

async fn serve_http(addr: SocketAddr) -> std::io::Result<()> {
    let service: StreamableHttpService<Echo, LocalSessionManager> = StreamableHttpService::new(
        || Ok(Echo::new()),
        Arc::new(LocalSessionManager::default()),
        StreamableHttpServerConfig::default(),
    );
    let app = axum::Router::new().nest_service("/mcp", service);
    let listener = tokio::net::TcpListener::bind(addr).await?.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            eprintln!("rmcp-echo: TCP_NODELAY: {e}");
        }
    });
    eprintln!("rmcp-echo: listening on http://{addr}/mcp");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await
}

async fn serve_stdio() -> Result<(), Box<dyn std::error::Error>> {
    // `stdio_pipes` drives FIFOs (how clients spawn stdio servers) through the
    // reactor and falls back to the blocking std handles otherwise.
    let running = Echo::new()
        .serve(rmcp::transport::io::stdio_pipes())
        .await?;
    running.waiting().await?;
    Ok(())
}

fn usage() -> ExitCode {
    eprintln!("usage: rmcp-echo http 127.0.0.1:PORT | rmcp-echo stdio");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let result: Result<(), Box<dyn std::error::Error>> = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["http", addr] => match addr.parse::<SocketAddr>() {
            Ok(addr) => runtime.block_on(serve_http(addr)).map_err(Into::into),
            Err(e) => {
                eprintln!("rmcp-echo: bad address {addr:?}: {e}");
                return usage();
            }
        },
        ["stdio"] => runtime.block_on(serve_stdio()),
        _ => return usage(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rmcp-echo: {e}");
            ExitCode::FAILURE
        }
    }
}
