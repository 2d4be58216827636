//! MCP mounted into an actix-web application, beside a route of the application's
//! own: `GET /hello` is the application's; `/mcp`, `/health*` and `/metrics` are
//! emcee's. The application owns its `HttpServer` (workers, binding, signals); emcee
//! adds its routes to every worker's `App` and drains its sessions on the way out.
//!
//! Run with: `cargo run --example mount -- 127.0.0.1:8080` (default `127.0.0.1:0`: a
//! free port; the address is printed on stdout as `listening on http://ADDR`).

use actix_web::{web, App, HttpServer};
use emcee::prelude::*;

/// The arguments of `shout`.
#[derive(Deserialize, JsonSchema)]
struct Shout {
    /// What to shout.
    text: String,
}

/// The application's own route.
async fn hello() -> &'static str {
    "hello from the application"
}

fn main() -> Result<(), emcee::Error> {
    let bind = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:0".into());
    let server = Server::builder()
        .info("mounted", "1.0.0")
        .tool(Tool::new(
            "shout",
            "Upper-cases a text.",
            |_ctx, s: Shout| async move { Ok(CallToolResult::text(s.text.to_uppercase())) },
        ))
        .build()?;
    emcee::block_on(async move {
        let mcp = server.mount(MountOptions::default()).await?;
        let routes = mcp.configure();
        let http = HttpServer::new(move || {
            App::new()
                .configure(routes.clone())
                .route("/hello", web::get().to(hello))
        })
        .workers(2)
        // TCP_NODELAY and the per-address connection limit on every connection.
        .on_connect(mcp.on_connect())
        // Signals are the application's: emcee's sessions are drained first.
        .disable_signals()
        .bind(bind.as_str())?;
        for addr in http.addrs() {
            println!("listening on http://{addr}");
        }
        let http = http.run();
        let handle = http.handle();
        let serving = actix_web::rt::spawn(http);
        emcee::shutdown_signal().await;
        // Drain MCP while the server still answers, then stop the server.
        let drained = mcp.shutdown().await;
        handle.stop(true).await;
        let _ = serving.await;
        drained
    })
}
