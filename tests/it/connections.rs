//! Issue 18 item 2: no set of clients can lock the server out by connection count.
//! Listen streams have a share (in all and per address) and a lifetime; sockets a
//! client closed are not counted as held; `/health/live` answers while the MCP
//! connections are saturated, and `/health` says so. Hostile clients are raw
//! `TcpStream`s on 127.0.0.1 (and the loopback aliases 127.0.0.2, 127.0.0.3).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{probe, text, with_meta, Server, ACCEPT_BOTH, MODERN};

/// A connection to `server` from the local address `from` (a loopback alias).
fn connect_from(from: &str, server: &str) -> TcpStream {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let stream = rt.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket
            .bind(format!("{from}:0").parse().expect("an address"))
            .expect("bind a loopback alias");
        socket
            .connect(server.parse().expect("an address"))
            .await
            .expect("connect")
    });
    let stream = stream.into_std().expect("a std stream");
    stream.set_nonblocking(false).expect("blocking");
    stream
}

/// Write a 2026-07-28 POST of `method` with `params` on `conn` (which is not read).
fn write_modern(
    conn: &mut TcpStream,
    host: &str,
    id: u64,
    method: &str,
    params: Value,
    accept: &str,
) {
    let name = params["name"].as_str().map(str::to_owned);
    let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": with_meta(params)})
        .to_string();
    let name = name.map_or(String::new(), |n| format!("Mcp-Name: {n}\r\n"));
    write!(
        conn,
        "POST /mcp HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Accept: {accept}\r\nMCP-Protocol-Version: {MODERN}\r\nMcp-Method: {method}\r\n\
         {name}Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("send");
}

/// Open a listen stream from `from`; the connection and the head of its answer
/// (status line and headers, and whatever came with them).
fn listen_from(from: &str, s: &Server, id: u64) -> (TcpStream, String) {
    let mut conn = connect_from(from, &s.addr);
    write_modern(
        &mut conn,
        &s.addr,
        id,
        "subscriptions/listen",
        json!({"notifications": {"toolsListChanged": true}}),
        ACCEPT_BOTH,
    );
    conn.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    (conn, String::from_utf8_lossy(&head).into_owned())
}

/// `/health/live` on a new connection answers 200 within a second.
fn assert_live(addr: &str) {
    let started = Instant::now();
    let r = probe(addr, "/health/live", Duration::from_secs(1))
        .unwrap_or_else(|e| panic!("/health/live did not answer: {e}"));
    assert_eq!(r.status, 200, "{r:?}");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

/// The value of `series` in `/metrics` (0 when absent).
fn metric(s: &Server, series: &str) -> f64 {
    let r = probe(&s.addr, "/metrics", Duration::from_secs(2)).expect("/metrics");
    r.body
        .lines()
        .find_map(|l| {
            l.strip_prefix(series)?
                .strip_prefix(' ')?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}

/// Listen streams have a share in all (`limits.max_listen_streams`) and per
/// address (`limits.max_listen_streams_per_ip`); past either: 503 + Retry-After,
/// counted and logged; `/health/live` answers throughout. Before: every listen
/// was served until the connections ran out.
#[test]
fn listen_streams_are_capped_in_all_and_per_address() {
    let s = Server::start(&[
        "--limit",
        "max_listen_streams=4",
        "--limit",
        "max_listen_streams_per_ip=2",
    ]);
    let mut held = Vec::new();
    for (n, from) in ["127.0.0.1", "127.0.0.1"].iter().enumerate() {
        let (conn, head) = listen_from(from, &s, n as u64 + 1);
        assert!(head.starts_with("HTTP/1.1 200"), "listen {n}: {head}");
        held.push(conn);
    }
    // A third from the same address: over its share.
    let (_c, head) = listen_from("127.0.0.1", &s, 3);
    assert!(head.starts_with("HTTP/1.1 503"), "{head}");
    assert!(head.to_ascii_lowercase().contains("retry-after"), "{head}");
    // The error answers the request refused (its id, not null).
    assert!(head.contains(r#""id":3"#), "{head}");
    assert_live(&s.addr);
    // Another address has its own share, up to the total.
    for (n, from) in ["127.0.0.2", "127.0.0.2"].iter().enumerate() {
        let (conn, head) = listen_from(from, &s, n as u64 + 10);
        assert!(head.starts_with("HTTP/1.1 200"), "listen {n}: {head}");
        held.push(conn);
    }
    let (_c, head) = listen_from("127.0.0.3", &s, 20);
    assert!(head.starts_with("HTTP/1.1 503"), "over the total: {head}");
    assert_live(&s.addr);
    assert_eq!(
        metric(&s, "mcp_rejected_total{reason=\"listen_cap\"}"),
        2.0,
        "{}",
        s.logs()
    );
    assert!(
        s.logs().contains("limits.max_listen_streams"),
        "{}",
        s.logs()
    );
    // Closing one gives its share back.
    drop(held.remove(0));
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let (_c, head) = listen_from("127.0.0.3", &s, 30);
        if head.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the share did not come back: {head}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A listen stream ends after `limits.listen_max_ms` with its final result (the
/// client reconnects). Before: it stayed open for ever.
#[test]
fn a_listen_stream_ends_with_its_result_at_its_lifetime() {
    let s = Server::start(&["--limit", "listen_max_ms=300"]);
    let (mut conn, head) = listen_from("127.0.0.1", &s, 7);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    let started = Instant::now();
    let mut all = head.into_bytes();
    let mut buf = [0u8; 4096];
    // The answer is chunked; its end is the zero-length chunk.
    while !all.windows(5).any(|w| w == b"0\r\n\r\n") {
        match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => all.extend_from_slice(&buf[..n]),
            Err(e) => panic!(
                "the stream did not end: {e}: {}",
                String::from_utf8_lossy(&all)
            ),
        }
    }
    let all = String::from_utf8_lossy(&all);
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    assert!(
        all.contains(r#""id":7"#) && all.contains(r#""resultType":"complete""#),
        "{all}"
    );
}

/// With the MCP connections all held (`http.max_connections`), `/health/live`
/// still answers within a second on a new connection, `/health` is red naming the
/// saturation, and one more MCP request is refused with 503 instead of waiting.
/// Before: no new connection was accepted and `/health/live` timed out.
#[test]
fn health_answers_while_mcp_connections_are_saturated() {
    let s = Server::with_config("[http]\nworkers = 1\nmax_connections = 8\n", &[]);
    let mut held = Vec::new();
    for n in 0..8 {
        let mut conn = TcpStream::connect(&s.addr).expect("connect");
        write_modern(
            &mut conn,
            &s.addr,
            n,
            "tools/call",
            json!({"name": "sleep", "arguments": {"ms": 20_000}}),
            ACCEPT_BOTH,
        );
        held.push(conn);
    }
    std::thread::sleep(Duration::from_millis(300));
    assert_live(&s.addr);
    let health = probe(&s.addr, "/health", Duration::from_secs(2)).expect("/health answers");
    assert_eq!(health.status, 503, "{health:?}");
    let report = health.json();
    assert_eq!(
        report["checks"]["connections"]["status"], "fail",
        "{report}"
    );
    assert_eq!(report["connections"]["open"], 8, "{report}");
    assert_eq!(report["connections"]["max"], 8, "{report}");
    // One more MCP request: refused at once, not left waiting.
    let mut extra = TcpStream::connect(&s.addr).expect("connect");
    extra
        .set_read_timeout(Some(Duration::from_secs(2)))
        .expect("timeout");
    write_modern(
        &mut extra,
        &s.addr,
        99,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "x"}}),
        "application/json",
    );
    let mut answer = String::new();
    let _ = extra.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer:?}");
    assert!(answer.contains("http.max_connections"), "{answer}");
    // The holders go: green again, and MCP is served.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let h = probe(&s.addr, "/health", Duration::from_secs(2)).expect("/health");
        if h.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "still red: {h:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(metric(&s, "mcp_max_connections"), 8.0);
}

/// Connect, POST a long call, close; many times, in both eras, JSON and SSE. The
/// closed sockets give their places back within a few probe periods
/// (`limits.stream_probe_ms`), so a new client is served. Before: a session-era
/// JSON answer held its connection (and its place in `http.max_connections`) until
/// the call ended. (A streamed answer's first write already shows the close.)
#[test]
fn closed_json_calls_give_their_connections_back() {
    let s = Server::with_config(
        "[http]\nworkers = 1\nmax_connections = 8\n",
        &["--limit", "stream_probe_ms=50"],
    );
    let session = s.session();
    for n in 0..24u64 {
        let mut conn = TcpStream::connect(&s.addr).expect("connect");
        let body = crate::harness::call_body(n + 10, "sleep", json!({"ms": 20_000}));
        if n % 3 != 2 {
            // Session era: a JSON answer, or an SSE stream (resumable, so the call
            // runs on; the connection must not).
            let accept = if n % 3 == 0 {
                "application/json"
            } else {
                ACCEPT_BOTH
            };
            write!(
                conn,
                "POST /mcp HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
                 Accept: {accept}\r\nMcp-Session-Id: {session}\r\n\
                 MCP-Protocol-Version: 2025-11-25\r\nContent-Length: {}\r\n\r\n{body}",
                s.addr,
                body.len()
            )
            .expect("send");
        } else {
            write_modern(
                &mut conn,
                &s.addr,
                n + 10,
                "tools/call",
                json!({"name": "sleep", "arguments": {"ms": 20_000}}),
                "application/json",
            );
        }
        // Let the server start the call, then go away.
        std::thread::sleep(Duration::from_millis(30));
        drop(conn);
        if n % 8 == 7 {
            // Each round of 8 would fill max_connections if closed sockets were held.
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    // A new client is served, at once.
    let started = Instant::now();
    assert_eq!(
        text(&s.call_ok(&session, 1, "echo", json!({"text": "served"}))),
        "served"
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_live(&s.addr);
}

/// With `admin_bind`, `/health` on the admin listener reports the MCP listener's
/// saturation too. Before: 200 all through.
#[test]
fn the_admin_listener_reports_mcp_saturation() {
    let s = Server::with_config(
        "[http]\nworkers = 1\nmax_connections = 4\n",
        &["--admin-bind", "127.0.0.1:0"],
    );
    let admin = s.admin_addr();
    let health = |want: u16| {
        let deadline = Instant::now() + Duration::from_secs(3);
        loop {
            let h = probe(&admin, "/health", Duration::from_secs(2)).expect("/health");
            if h.status == want {
                return h.json();
            }
            assert!(Instant::now() < deadline, "not {want}: {h:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let report = health(200);
    assert_eq!(report["checks"]["connections"]["status"], "ok", "{report}");
    let held: Vec<TcpStream> = (0..4)
        .map(|n| {
            let mut conn = TcpStream::connect(&s.addr).expect("connect");
            write_modern(
                &mut conn,
                &s.addr,
                n,
                "tools/call",
                json!({"name": "sleep", "arguments": {"ms": 20_000}}),
                ACCEPT_BOTH,
            );
            conn
        })
        .collect();
    let report = health(503);
    assert_eq!(report["connections"]["open"], 4, "{report}");
    let why = report["checks"]["connections"]["error"]
        .as_str()
        .unwrap_or("");
    assert!(why.contains("http.max_connections"), "{report}");
    assert_live(&admin);
    drop(held);
    health(200);
}

/// A connection past `http.max_connections_per_ip` that never sends a request is
/// answered 429 and let go at once. Before: the server held it (in the places the
/// listener accepts) for the request-head timeout, 5 s, and said nothing.
#[test]
fn a_silent_connection_past_its_address_share_is_refused_at_once() {
    let s = Server::with_config("[http]\nmax_connections_per_ip = 2\n", &[]);
    let held: Vec<TcpStream> = (0..2).map(|_| connect_from("127.0.0.2", &s.addr)).collect();
    std::thread::sleep(Duration::from_millis(100));
    let mut silent = connect_from("127.0.0.2", &s.addr);
    silent
        .set_read_timeout(Some(Duration::from_secs(4)))
        .expect("timeout");
    let started = Instant::now();
    let mut answer = String::new();
    let _ = silent.read_to_string(&mut answer);
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer:?}");
    assert!(answer.contains("http.max_connections_per_ip"), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "closed after {:?}",
        started.elapsed()
    );
    assert_eq!(
        metric(&s, "mcp_rejected_total{reason=\"connection_limit\"}"),
        1.0
    );
    drop(held);
}

/// Four addresses each keep renewing silent connections past their share: the
/// listener still accepts `/health/live` (the operations' places stay free)
/// within a second, every time. Before: the over-share connections, held for the
/// request-head timeout, filled every place the listener accepts.
#[test]
fn silent_connections_from_four_addresses_leave_health_reachable() {
    let s = Server::with_config(
        "[http]\nworkers = 1\nmax_connections = 8\nops_connections = 2\nmax_connections_per_ip = 2\n",
        &[],
    );
    let mut held = Vec::new();
    for _ in 0..3 {
        for from in ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"] {
            for _ in 0..4 {
                held.push(connect_from(from, &s.addr));
            }
        }
        std::thread::sleep(Duration::from_millis(200));
        for _ in 0..3 {
            assert_live(&s.addr);
        }
    }
    drop(held);
}
