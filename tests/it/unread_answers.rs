//! Answers a client does not read (issue 18 item 1): clients that ask for big
//! answers and never read them hold at most `limits.max_pending_answer_bytes` of
//! the server's memory, in both eras, as JSON or SSE; past it they are refused
//! (503, or their stream closed), the server stays responsive, and once they close
//! the budget is whole again.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{
    call_body, probe, rss_kib, text, with_meta, Launch, Server, ACCEPT_BOTH, MODERN, VERSION,
};

/// Bytes of each echoed text: more than loopback's socket buffers take on their
/// own (about 4 MB), so that most of each answer has to wait in the server.
const TEXT: usize = 6_000_000;
/// Hostile connections, all from 127.0.0.1.
const CONNECTIONS: usize = 12;
/// `limits.max_pending_answer_bytes` (at least `max_result_bytes`).
const BUDGET: u64 = 16 << 20;
/// `limits.max_message_bytes` and `limits.max_result_bytes`: one text fits.
const MAX_MESSAGE: u64 = 8 << 20;

/// The raw request of connection `i`: a 2026-07-28 call answered as JSON, one
/// answered as SSE, or a session-era call (JSON, or SSE if the echo takes longer
/// than the JSON window), in turn; each with its own id.
fn request(i: usize, session: &str, body_text: &str) -> Vec<u8> {
    // Serialized with a placeholder, which the text (plain ASCII) replaces.
    const PLACEHOLDER: &str = "@text@";
    let args = json!({"text": PLACEHOLDER});
    let (body, headers) = match i % 3 {
        0 | 1 => {
            let body = json!({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                "params": with_meta(json!({"name": "echo", "arguments": args}))});
            let accept = if i.is_multiple_of(3) {
                "application/json"
            } else {
                "text/event-stream"
            };
            let headers = format!(
                "Accept: {accept}\r\nMCP-Protocol-Version: {MODERN}\r\nMcp-Method: tools/call\r\n\
                 Mcp-Name: echo\r\n"
            );
            (body, headers)
        }
        _ => {
            let body = json!({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                "params": {"name": "echo", "arguments": args}});
            let headers = format!(
                "Accept: {ACCEPT_BOTH}\r\nMcp-Session-Id: {session}\r\n\
                 MCP-Protocol-Version: {VERSION}\r\n"
            );
            (body, headers)
        }
    };
    let body = body.to_string().replacen(PLACEHOLDER, body_text, 1);
    let mut raw = format!(
        "POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n{headers}\
         Content-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    raw.extend_from_slice(body.as_bytes());
    raw
}

/// The value of one counter series of `/metrics` (0 when absent).
fn counter(s: &Server, series: &str) -> u64 {
    let metrics = s.get("/metrics").body;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

#[test]
fn unread_answers_stay_within_max_pending_answer_bytes() {
    let budget = format!("max_pending_answer_bytes={BUDGET}");
    let message = format!("max_message_bytes={MAX_MESSAGE}");
    let result = format!("max_result_bytes={MAX_MESSAGE}");
    let s = Server::launch(Launch {
        args: &["--limit", &budget, "--limit", &message, "--limit", &result],
        ..Launch::default()
    });
    let session = s.session();
    let body_text = "x".repeat(TEXT);
    // One big answer read whole first: the allocator's arenas warm up before the
    // baseline.
    let warm = s.call_ok(&session, 1, "echo", json!({"text": body_text}));
    assert_eq!(text(&warm).len(), TEXT);
    let before = rss_kib(s.pid());

    let deadline = Instant::now() + Duration::from_secs(60);
    let mut hostile = Vec::new();
    for i in 0..CONNECTIONS {
        let mut c = TcpStream::connect(&s.addr).expect("connect");
        c.set_write_timeout(Some(Duration::from_secs(10))).unwrap();
        // A refused connection may be closed before its body is all written.
        let _ = c.write_all(&request(i, &session, &body_text));
        hostile.push(c);
    }
    const SERIES: &str = "mcp_rejected_total{reason=\"answer_budget\"} ";
    // Every call answered (or its answer refused): the answers wait on their
    // connections.
    // (A body refused for `max_body_bytes_total` never makes a call.)
    let answered = "mcp_requests_total{method=\"tools/call\",outcome=\"ok\"} ";
    let unread = "mcp_rejected_total{reason=\"body_budget\"} ";
    while counter(&s, answered) + counter(&s, unread) < 1 + CONNECTIONS as u64
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    let refused = counter(&s, SERIES);
    let held = rss_kib(s.pid());
    eprintln!("RSS {before} KiB -> {held} KiB with the answers unread; {refused} refused");
    // What the unread answers may hold: the budget; plus a call being encoded per
    // worker while the last ones finished (two copies of a message each: its
    // request and its result), plus 8 MiB for the connections' buffers and the
    // allocator. Before the budget each connection held its whole answer in
    // actix-web's write buffer: ~6 MB × 12 and more, over 70 MiB.
    let bound = before + (BUDGET + 2 * MAX_MESSAGE + (8 << 20)) / 1024;
    assert!(
        held <= bound,
        "RSS {before} KiB -> {held} KiB with {CONNECTIONS} unread answers of {TEXT} bytes \
         (bound {bound} KiB); {refused} refused"
    );
    // At most two answers of 6 MB fit in 16 MiB: the others were refused (the
    // kernel's socket buffers take only part of each).
    assert!(
        refused >= (CONNECTIONS as u64) / 2,
        "{refused} answers refused for the budget"
    );
    let logs = s.logs();
    assert!(
        logs.lines()
            .any(|l| l.contains("\"reason\":\"answer_budget\"")
                && l.contains("limits.max_pending_answer_bytes")),
        "no refusal logged:\n{logs}"
    );
    // The server still answers at once.
    let live = probe(&s.addr, "/health/live", Duration::from_secs(1));
    assert_eq!(live.map(|r| r.status), Ok(200), "/health/live");

    // A refused JSON answer not begun is a 503 with Retry-After, its connection
    // closed; a stream already begun just ends.
    let mut statuses = Vec::new();
    for c in &mut hostile {
        c.set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut head = [0u8; 12];
        if c.read_exact(&mut head).is_ok() {
            statuses.push(String::from_utf8_lossy(&head[9..12]).into_owned());
        }
    }
    assert!(statuses.iter().any(|s| s == "503"), "{statuses:?}");
    drop(hostile);

    // Once they are gone, a client that reads gets the same big answer, in both
    // eras.
    let mut served = false;
    while !served && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        let r = s.post(
            Some(&session),
            &call_body(2, "echo", json!({"text": body_text})),
            &[],
        );
        served = r.status == 200 && r.body.len() > TEXT;
    }
    assert!(served, "a well-behaved session-era client is not served");
    let modern = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": with_meta(json!({"name": "echo", "arguments": {"text": body_text}}))});
    let r = s.send(
        "POST",
        &[
            ("Content-Type", "application/json"),
            ("Accept", "application/json"),
            ("MCP-Protocol-Version", MODERN),
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", "echo"),
        ],
        Some(modern.to_string().as_bytes()),
    );
    assert_eq!(r.status, 200, "{}", &r.body[..r.body.len().min(300)]);
    let v: Value = r.json();
    assert_eq!(text(&v["result"]).len(), TEXT);
    // And the memory the answers held went back to the system (glibc kept freed
    // big blocks in its heaps: RSS stayed near its peak).
    let after = rss_kib(s.pid());
    eprintln!("RSS {after} KiB once they closed");
    let bound = before + (2 * MAX_MESSAGE) / 1024;
    assert!(
        after <= bound,
        "RSS {before} KiB -> {held} KiB -> {after} KiB once the unread answers closed \
         (bound {bound} KiB)"
    );
}
