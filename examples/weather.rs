//! An HTTP server whose tool calls a dependency (a weather service), with a health
//! check for it: `/health` answers 503 naming `weather_service` when it is down.
//!
//! Run with: `cargo run --example weather -- 127.0.0.1:8080 127.0.0.1:9000` (serve
//! on the first address, default `127.0.0.1:0`: a free port; the weather service
//! answers `GET /forecast?city=NAME` and `GET /health` on the second). It binds its
//! own listener, hands it to emcee and prints `listening on http://ADDR/mcp`, the
//! address it got, on stdout.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use emcee::prelude::*;

/// The arguments of `forecast`.
#[derive(Deserialize, JsonSchema)]
struct Forecast {
    /// A city name (letters, spaces and dashes).
    city: String,
}

/// `GET path` on the weather service: the body of a 200 answer.
fn get(service: SocketAddr, path: &str) -> Result<String, String> {
    let mut conn = TcpStream::connect_timeout(&service, Duration::from_secs(2))
        .map_err(|e| format!("weather service {service}: {e}"))?;
    conn.set_read_timeout(Some(Duration::from_secs(5)))
        .map_err(|e| e.to_string())?;
    write!(conn, "GET {path} HTTP/1.0\r\nHost: weather\r\n\r\n").map_err(|e| e.to_string())?;
    let mut answer = String::new();
    conn.take(64 * 1024)
        .read_to_string(&mut answer)
        .map_err(|e| e.to_string())?;
    let (head, body) = answer.split_once("\r\n\r\n").ok_or("a malformed answer")?;
    if !head.starts_with("HTTP/1.0 200") && !head.starts_with("HTTP/1.1 200") {
        return Err(format!(
            "weather service: {}",
            head.lines().next().unwrap_or("")
        ));
    }
    Ok(body.to_owned())
}

fn main() -> Result<(), emcee::Error> {
    let mut args = std::env::args().skip(1);
    let bind: SocketAddr = args
        .next()
        .unwrap_or("127.0.0.1:0".into())
        .parse()
        .expect("a bind address");
    let service: SocketAddr = args
        .next()
        .unwrap_or("127.0.0.1:9000".into())
        .parse()
        .expect("the service address");
    let server = Server::builder()
        .info("weather", "1.0.0")
        .tool(Tool::new(
            "forecast",
            "Tomorrow's forecast for a city.",
            move |ctx, f: Forecast| async move {
                if !f
                    .city
                    .chars()
                    .all(|c| c.is_alphabetic() || c == ' ' || c == '-')
                {
                    return Err(ToolError::InvalidArguments(
                        "`city`: letters, spaces and dashes only".into(),
                    ));
                }
                let path = format!("/forecast?city={}", f.city.replace(' ', "+"));
                // Blocking IO runs off the event loop.
                let body = ctx
                    .blocking(move || get(service, &path))
                    .await?
                    .map_err(ToolError::Failed)?;
                Ok(CallToolResult::text(body))
            },
        ))
        .health_check("weather_service", move || async move {
            let answer = tokio::task::spawn_blocking(move || get(service, "/health"))
                .await
                .map_err(|e| e.to_string())?;
            answer.map(|_| ())
        })
        .build()?;
    // Bound here, so the port is known (and a failure to bind is ours to report).
    let listener = std::net::TcpListener::bind(bind)?;
    let options = HttpOptions::from_listener(listener)?;
    emcee::block_on(async move {
        let running = server.start(Transport::Http(options)).await?;
        if let Some(addr) = running.local_addr() {
            println!("listening on http://{addr}/mcp");
        }
        emcee::shutdown_signal().await;
        running.shutdown();
        running.stopped().await
    })
}
