//! The Streamable HTTP transport (`emcee serve`, `/mcp`), driven over real HTTP on
//! 127.0.0.1 through the real binary.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{call_body, error_code, text, Event, Server, Streaming, ACCEPT_BOTH, VERSION};

fn ping(id: u64) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "ping"}).to_string()
}

/// Read the priming event of a fresh SSE stream: `id: S-0`, `retry:`, empty data.
fn priming(s: &mut Streaming) -> Event {
    let ev = s.next_event().expect("priming event");
    let (_, seq) = ev.id_parts();
    assert_eq!(seq, 0, "priming event has seq 0: {ev:?}");
    assert_eq!(ev.retry, Some(1000), "priming event has retry: {ev:?}");
    assert_eq!(ev.data, "", "priming event has empty data: {ev:?}");
    ev
}

fn sleep_with_progress(id: u64, ms: u64, token: &str) -> String {
    json!({"jsonrpc": "2.0", "id": id, "method": "tools/call", "params": {
        "name": "sleep", "arguments": {"ms": ms}, "_meta": {"progressToken": token}}})
    .to_string()
}

#[test]
fn initialize_notify_and_call_over_json() {
    let s = Server::start(&[]);
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {"sampling": {}},
        "clientInfo": {"name": "t", "version": "1"}}});
    let r = s.post(None, &init.to_string(), &[]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.content_type(), "application/json");
    let id = r
        .header("mcp-session-id")
        .expect("Mcp-Session-Id")
        .to_owned();
    assert_eq!(id.len(), 22, "{id:?}");
    assert!(id.bytes().all(|b| b.is_ascii_graphic()), "{id:?}");
    let resp = r.json();
    assert_eq!(resp["id"], 1);
    assert_eq!(resp["result"]["protocolVersion"], "2025-11-25");
    assert_eq!(resp["result"]["serverInfo"]["name"], "emcee");

    let n = s.notify(&id, "notifications/initialized", json!({}));
    assert_eq!(n.status, 202, "{n:?}");
    assert!(n.body.is_empty(), "{n:?}");

    let r = s.post(
        Some(&id),
        &call_body(2, "echo", json!({"text": "héllo"})),
        &[],
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.content_type(), "application/json", "{r:?}");
    let resp = r.json();
    assert_eq!(resp["id"], 2);
    assert_eq!(text(&resp["result"]), "héllo");

    // A second session gets another id.
    let (other, _) = s.initialize_with(json!({}));
    assert_ne!(other, id);
}

#[test]
fn refusals_have_the_right_status_codes() {
    // Small body limit, but large enough for initialize.
    const LIMIT: usize = 512;
    let s = Server::with_config(&format!("[limits]\nmax_message_bytes = {LIMIT}\n"), &[]);
    let id = s.session();

    // Missing session id → 400; unknown → 404.
    let r = s.post(None, &ping(1), &[]);
    assert_eq!(r.status, 400, "{r:?}");
    error_code(&r.json());
    let r = s.post(Some("0123456789abcdef0123456789abcdef"), &ping(2), &[]);
    assert_eq!(r.status, 404, "{r:?}");
    error_code(&r.json());

    // MCP-Protocol-Version: unsupported → 400; older supported versions are accepted.
    let r = s.post(
        Some(&id),
        &ping(3),
        &[("MCP-Protocol-Version", "1999-01-01")],
    );
    assert_eq!(r.status, 400, "{r:?}");
    for v in ["2025-03-26", "2025-06-18", "2025-11-25"] {
        let r = s.post(Some(&id), &ping(4), &[("MCP-Protocol-Version", v)]);
        assert_eq!(r.status, 200, "version {v}: {r:?}");
        assert_eq!(r.json()["result"], json!({}), "{r:?}");
    }

    // Other methods → 405 with Allow.
    let r = s.send(
        "PUT",
        &[
            ("Mcp-Session-Id", &id),
            ("Content-Type", "application/json"),
        ],
        Some(ping(5).as_bytes()),
    );
    assert_eq!(r.status, 405, "{r:?}");
    let allow = r
        .header("allow")
        .expect("Allow header")
        .to_ascii_uppercase();
    for m in ["GET", "POST", "DELETE"] {
        assert!(allow.contains(m), "Allow: {allow}");
    }

    // Host and Origin.
    let r = s.post(Some(&id), &ping(6), &[("Host", "evil.example.com")]);
    assert_eq!(r.status, 403, "{r:?}");
    error_code(&r.json());
    let localhost = format!("localhost:{}", s.port);
    let r = s.post(Some(&id), &ping(7), &[("Host", &localhost)]);
    assert_eq!(r.status, 200, "Host {localhost}: {r:?}");
    let r = s.post(
        Some(&id),
        &ping(8),
        &[("Origin", "http://evil.example.com")],
    );
    assert_eq!(r.status, 403, "{r:?}");
    error_code(&r.json());
    let origin = format!("http://localhost:{}", s.port);
    let r = s.post(Some(&id), &ping(9), &[("Origin", &origin)]);
    assert_eq!(r.status, 200, "Origin {origin}: {r:?}");
    // Whatever follows a loopback name makes it another host.
    for (name, value) in [
        ("Host", "[::1]evil.com"),
        ("Host", "localhost@evil.com"),
        ("Origin", "http://[::1]@evil.com"),
        ("Origin", "http://localhost.evil.com"),
    ] {
        let r = s.post(Some(&id), &ping(10), &[(name, value)]);
        assert_eq!(r.status, 403, "{name}: {value}: {r:?}");
    }

    // Body size: exactly the limit is accepted, one byte more is 413.
    let pad = |n: usize| {
        let mut b = call_body(10, "echo", json!({"text": "pad"}));
        assert!(b.len() <= n);
        b.extend(std::iter::repeat_n(' ', n - b.len()));
        b
    };
    let r = s.post(Some(&id), &pad(LIMIT), &[]);
    assert_eq!(r.status, 200, "a body of exactly {LIMIT} bytes: {r:?}");
    assert_eq!(text(&r.json()["result"]), "pad");
    let r = s.post(Some(&id), &pad(LIMIT + 1), &[]);
    assert_eq!(r.status, 413, "a body of {} bytes: {r:?}", LIMIT + 1);

    // Malformed JSON → 400 with -32700.
    let r = s.post(Some(&id), "{\"jsonrpc\": \"2.0\", \"id\": 1,", &[]);
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(error_code(&r.json()), -32700, "{r:?}");

    // Wrong content type → 415; an Accept with neither JSON nor SSE → 406.
    let r = s.post(Some(&id), &ping(11), &[("Content-Type", "text/plain")]);
    assert_eq!(r.status, 415, "{r:?}");
    let r = s.post(Some(&id), &ping(16), &[("Content-Type", "application/jso")]);
    assert_eq!(r.status, 415, "{r:?}");
    // Media types are case-insensitive; parameters may follow.
    let r = s.post(
        Some(&id),
        &ping(17),
        &[("Content-Type", "Application/JSON; charset=utf-8")],
    );
    assert_eq!(r.status, 200, "{r:?}");
    // Compressed bodies are refused by name (identity is no compression).
    let r = s.post(Some(&id), &ping(14), &[("Content-Encoding", "gzip")]);
    assert_eq!(r.status, 415, "{r:?}");
    assert!(r.body.contains("Content-Encoding"), "{r:?}");
    let r = s.post(Some(&id), &ping(15), &[("Content-Encoding", "identity")]);
    assert_eq!(r.status, 200, "{r:?}");
    let r = s.post(Some(&id), &ping(12), &[("Accept", "text/html")]);
    assert_eq!(r.status, 406, "{r:?}");

    // The session survived all of that.
    assert_eq!(s.request(&id, 13, "ping", json!({}))["result"], json!({}));
}

#[test]
fn host_header_goes_on_the_wire_raw() {
    // The same Host check with a hand-written request, so the header is exactly ours.
    use std::io::{Read, Write};
    let s = Server::start(&[]);
    let raw = |host: &str| {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": VERSION, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
        .to_string();
        let mut c = std::net::TcpStream::connect(&s.addr).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        write!(
            c,
            "POST /mcp HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\nAccept: {ACCEPT_BOTH}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).expect("read answer");
        out
    };
    let evil = raw("evil.example.com");
    assert!(evil.starts_with("HTTP/1.1 403"), "{evil}");
    let ok = raw(&format!("127.0.0.1:{}", s.port));
    assert!(ok.starts_with("HTTP/1.1 200"), "{ok}");
}

#[test]
fn delete_ends_the_session() {
    let s = Server::start(&[]);
    let id = s.session();
    let keep = s.session();
    let r = s.delete(&id);
    assert_eq!(r.status, 200, "{r:?}");
    let r = s.post(Some(&id), &ping(1), &[]);
    assert_eq!(r.status, 404, "{r:?}");
    let r = s.delete(&id);
    assert_eq!(r.status, 404, "{r:?}");
    // Other sessions are untouched.
    assert_eq!(s.request(&keep, 2, "ping", json!({}))["result"], json!({}));
}

#[test]
fn the_session_cap_answers_503_with_retry_after() {
    let s = Server::with_config("[limits]\nmax_sessions = 2\n", &[]);
    let a = s.session();
    let _b = s.session();
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": VERSION, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
    let r = s.post(None, &init.to_string(), &[]);
    crate::harness::assert_busy(&r);
    assert_eq!(s.delete(&a).status, 200);
    let (c, _) = s.initialize_with(json!({}));
    assert_eq!(s.request(&c, 2, "ping", json!({}))["result"], json!({}));
}

#[test]
fn idle_sessions_are_reaped_and_busy_ones_are_not() {
    let s = Server::with_config("[limits]\nsession_idle_ttl_ms = 300\n", &[]);
    let idle = s.session();
    let busy = s.session();
    let start = Instant::now();
    let mut n = 1;
    while start.elapsed() < Duration::from_millis(1500) {
        let r = s.post(Some(&busy), &ping(n), &[]);
        assert_eq!(
            r.status,
            200,
            "busy session after {:?}: {r:?}",
            start.elapsed()
        );
        n += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    let r = s.post(Some(&idle), &ping(0), &[]);
    assert_eq!(
        r.status,
        404,
        "idle session after {:?}: {r:?}",
        start.elapsed()
    );
    assert_eq!(s.request(&busy, n, "ping", json!({}))["result"], json!({}));
}

#[test]
fn a_call_with_progress_streams_sse_and_ends() {
    let s = Server::start(&[]);
    let id = s.session();
    let mut st = s.post_open(Some(&id), &sleep_with_progress(7, 100, "tok"), &[]);
    assert_eq!(st.status, 200);
    assert_eq!(st.content_type(), "text/event-stream");
    let first = priming(&mut st);
    let (stream, _) = first.id_parts();
    let events = st.rest();
    assert!(!events.is_empty(), "no events after priming");
    let msgs: Vec<Value> = events.iter().map(Event::json).collect();
    for (i, ev) in events.iter().enumerate() {
        assert_eq!(ev.id_parts(), (stream, i as u64 + 1), "{events:?}");
    }
    let (last, progress) = msgs.split_last().unwrap();
    assert_eq!(last["id"], 7, "the response ends the stream: {msgs:?}");
    assert_eq!(text(&last["result"]), "slept 100 ms");
    assert!(
        !progress.is_empty(),
        "progress notifications before the response"
    );
    let mut prev = 0.0;
    for p in progress {
        assert_eq!(p["method"], "notifications/progress", "{p}");
        assert_eq!(p["params"]["progressToken"], "tok", "{p}");
        let v = p["params"]["progress"].as_f64().expect("progress");
        assert!(v > prev, "progress increases: {progress:?}");
        prev = v;
    }
}

#[test]
fn a_dropped_stream_resumes_with_last_event_id() {
    let s = Server::start(&[]);
    let id = s.session();
    // Progress every 250 ms, the response at 1 s.
    let mut st = s.post_open(Some(&id), &sleep_with_progress(9, 1000, "p"), &[]);
    assert_eq!(st.content_type(), "text/event-stream");
    let (stream, _) = priming(&mut st).id_parts();
    let one = st.next_event().expect("one event");
    assert_eq!(one.id_parts(), (stream, 1));
    assert_eq!(one.json()["method"], "notifications/progress");
    drop(st); // the client's connection goes away mid-call
              // Stay away long enough to miss an event (progress 2 at ~500 ms), so the resumed
              // stream must replay it from the log before going on live.
    std::thread::sleep(Duration::from_millis(350));

    let mut resumed = s.get_stream(&id, Some(&format!("{stream}-1")));
    assert_eq!(resumed.status, 200);
    assert_eq!(resumed.content_type(), "text/event-stream");
    let events = resumed.rest();
    let seqs: Vec<u64> = events.iter().map(|e| e.id_parts().1).collect();
    assert!(
        events.iter().all(|e| e.id_parts().0 == stream),
        "{events:?}"
    );
    let expected: Vec<u64> = (2..2 + events.len() as u64).collect();
    assert_eq!(
        seqs, expected,
        "events after 1, in order, no gaps: {events:?}"
    );
    let last = events.last().expect("events").json();
    assert_eq!(last["id"], 9, "the call was not lost: {events:?}");
    assert_eq!(text(&last["result"]), "slept 1000 ms");
    for e in &events[..events.len() - 1] {
        assert_eq!(e.json()["method"], "notifications/progress", "{e:?}");
    }

    // The stream has finished: resuming it replays what it logged, then ends.
    let mut again = s.get_stream(&id, Some(&format!("{stream}-0")));
    assert_eq!(again.status, 200);
    let replay = again.rest();
    let seqs: Vec<u64> = replay.iter().map(|e| e.id_parts().1).collect();
    assert_eq!(
        seqs,
        (1..=1 + events.len() as u64).collect::<Vec<_>>(),
        "{replay:?}"
    );
    assert_eq!(replay[0], one);
    assert_eq!(replay.last().unwrap().json()["id"], 9);
}

#[test]
fn one_standalone_get_stream_at_a_time_the_newest_wins() {
    let s = Server::start(&[]);
    let id = s.session();
    let mut first = s.get_stream(&id, None);
    assert_eq!(first.status, 200);
    assert_eq!(first.content_type(), "text/event-stream");
    priming(&mut first);
    let mut second = s.get_stream(&id, None);
    assert_eq!(second.status, 200, "a new standalone stream takes over");
    priming(&mut second);
    assert!(first.next_event().is_none(), "the older stream is ended");
    // The session is not disturbed.
    assert_eq!(s.request(&id, 1, "ping", json!({}))["result"], json!({}));
}

#[test]
fn the_standalone_get_stream_can_be_reopened_after_a_drop() {
    let s = Server::start(&[]);
    let id = s.session();
    let mut first = s.get_stream(&id, None);
    assert_eq!(first.status, 200);
    priming(&mut first);
    drop(first);
    std::thread::sleep(Duration::from_millis(300));
    let mut again = s.get_stream(&id, None);
    assert_eq!(
        again.status, 200,
        "reopening after the client dropped its stream"
    );
    priming(&mut again);
}

#[test]
fn sampling_round_trip_over_the_post_stream() {
    let s = Server::start(&["--fixtures", "conformance"]);
    let id = s.session(); // declares capabilities.sampling
    let mut st = s.post_open(
        Some(&id),
        &call_body(3, "test_sampling", json!({"prompt": "Say hi"})),
        &[],
    );
    assert_eq!(st.status, 200);
    assert_eq!(st.content_type(), "text/event-stream");
    priming(&mut st);
    let ev = st.next_event().expect("sampling request");
    let req = ev.json();
    assert_eq!(req["method"], "sampling/createMessage", "{req}");
    assert_eq!(
        req["params"]["messages"][0]["content"]["text"], "Say hi",
        "{req}"
    );
    let req_id = req["id"].clone();
    assert!(req_id.is_string() || req_id.is_number(), "{req}");

    let answer = json!({"jsonrpc": "2.0", "id": req_id, "result": {
        "role": "assistant", "content": {"type": "text", "text": "hello"}, "model": "m"}});
    let r = s.post(Some(&id), &answer.to_string(), &[]);
    assert_eq!(r.status, 202, "{r:?}");

    let (resp, between) = st.until_response(&json!(3));
    assert!(between.is_empty(), "{between:?}");
    assert_eq!(text(&resp["result"]), "LLM response: hello", "{resp}");
    assert!(
        st.next_event().is_none(),
        "the stream ends after the response"
    );
}

#[test]
fn a_call_survives_the_server_closing_its_stream() {
    let s = Server::start(&["--fixtures", "conformance"]);
    let id = s.session();
    let started = Instant::now();
    let mut st = s.post_open(
        Some(&id),
        &call_body(4, "test_reconnection", json!({})),
        &[],
    );
    assert_eq!(st.status, 200);
    assert_eq!(st.content_type(), "text/event-stream");
    let prime = priming(&mut st);
    let early = st.rest();
    assert!(
        early
            .iter()
            .all(|e| e.data.is_empty() || e.json()["id"] != 4),
        "the POST stream ended before the response: {early:?}"
    );
    let last_seen = early.last().unwrap_or(&prime).id.clone().unwrap();
    assert!(started.elapsed() < Duration::from_secs(3));

    let mut resumed = s.get_stream(&id, Some(&last_seen));
    assert_eq!(resumed.status, 200);
    let (resp, _) = resumed.until_response(&json!(4));
    assert_eq!(
        text(&resp["result"]),
        "Reconnection test completed successfully",
        "{resp}"
    );
    assert!(
        resumed.next_event().is_none(),
        "the resumed stream ends after the response"
    );
}

#[test]
fn parallel_calls_on_one_session() {
    let s = Server::start(&[]);
    let id = s.session();
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..20u64)
            .map(|i| {
                let (s, id) = (&s, &id);
                scope.spawn(move || {
                    let r = s.call_ok(id, 100 + i, "echo", json!({"text": format!("msg {i}")}));
                    assert_eq!(text(&r), format!("msg {i}"));
                })
            })
            .collect();
        for h in handles {
            h.join().expect("a call failed");
        }
    });
}

#[test]
fn sigterm_delivers_the_in_flight_answer_and_exits_0() {
    let mut s = Server::start(&[]);
    let id = s.session();
    let mut st = s.post_open(Some(&id), &call_body(5, "sleep", json!({"ms": 1500})), &[]);
    assert_eq!(st.status, 200);
    assert_eq!(st.content_type(), "text/event-stream");
    priming(&mut st);
    std::thread::sleep(Duration::from_millis(200));
    s.signal("TERM");
    let (resp, _) = st.until_response(&json!(5));
    assert_eq!(text(&resp["result"]), "slept 1500 ms", "{resp}");
    drop(st);
    let status = s.wait_exit(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "stderr:\n{}", s.logs());
}

#[test]
fn resource_updates_reach_subscribers_on_the_standalone_stream() {
    let s = Server::start(&[]);
    let id = s.session();
    let mut get = s.get_stream(&id, None);
    priming(&mut get);
    let sub = s.request(
        &id,
        1,
        "resources/subscribe",
        json!({"uri": "kv://watched"}),
    );
    assert_eq!(sub["result"], json!({}));
    s.call_ok(&id, 2, "kv_set", json!({"key": "watched", "value": "1"}));
    let ev = get.next_event().expect("an update on the GET stream");
    assert_eq!(
        ev.json(),
        json!({"jsonrpc": "2.0", "method": "notifications/resources/updated", "params": {"uri": "kv://watched"}})
    );
}

#[test]
fn quiet_streams_get_keep_alive_comments() {
    use std::io::{BufRead, BufReader, Write};
    let s = Server::with_config("[limits]\nsse_keepalive_ms = 100\n", &[]);
    let id = s.session();
    let addr = s
        .url()
        .trim_start_matches("http://")
        .trim_end_matches("/mcp")
        .to_owned();
    let mut tcp = std::net::TcpStream::connect(&addr).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        tcp,
        "GET /mcp HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\nMcp-Session-Id: {id}\r\n\r\n"
    )
    .unwrap();
    let started = Instant::now();
    let mut reader = BufReader::new(tcp);
    let mut line = String::new();
    loop {
        line.clear();
        reader.read_line(&mut line).expect("the stream stays open");
        if line.starts_with(": keepalive") {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no keep-alive comment"
        );
    }
}

#[test]
fn a_batch_of_invalid_items_is_answered_with_an_error_for_each() {
    let s = Server::start(&[]);
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-03-26", "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"}}});
    let r = s.post(None, &init.to_string(), &[]);
    assert_eq!(r.status, 200, "{r:?}");
    let session = r.header("mcp-session-id").expect("session id").to_owned();
    // Not one valid message: JSON-RPC 2.0 still owes an error for each item.
    let batch = r#"[5, {"foo": 1}, {"id": 2, "method": "ping"}]"#;
    let r = s.post(
        Some(&session),
        batch,
        &[("mcp-protocol-version", "2025-03-26")],
    );
    assert_eq!(r.status, 200, "{r:?}");
    let items = r.json();
    let items = items
        .as_array()
        .unwrap_or_else(|| panic!("an array: {r:?}"));
    assert_eq!(items.len(), 3, "{r:?}");
    assert!(items.iter().all(|m| m["error"]["code"] == -32600), "{r:?}");
    assert!(
        items.iter().any(|m| m["id"] == 2),
        "the readable id is kept: {r:?}"
    );
}

#[test]
fn a_stalled_connection_does_not_stretch_the_stop_past_grace_plus_margin() {
    use std::io::Write;
    // With nothing in flight the drain ends at once; a connection still sending its
    // body must not hold the stop for another grace period (it did: grace 4 s, then
    // actix's own shutdown timeout, which was the grace again).
    let mut s = Server::with_config("[limits]\nshutdown_grace_ms = 4000\n", &[]);
    let mut conn = std::net::TcpStream::connect(&s.addr).expect("connect");
    write!(
        conn,
        "POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Accept: {ACCEPT_BOTH}\r\nContent-Length: 4000\r\n\r\n{{\"jsonrpc\""
    )
    .expect("send a partial request");
    conn.flush().expect("flush");
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    s.signal("TERM");
    let status = s.wait_exit(Duration::from_secs(15));
    let took = started.elapsed();
    assert_eq!(status.code(), Some(0), "stderr:\n{}", s.logs());
    // The budget: grace for calls (none here) + a 2 s margin for connections + flush.
    assert!(took < Duration::from_millis(3500), "stop took {took:?}");
    drop(conn);
}

#[test]
fn logs_carry_a_session_tag_not_the_session_id_and_clip_client_names() {
    let s = Server::start(&[]);
    let long_name = "n".repeat(5000);
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": VERSION, "capabilities": {},
        "clientInfo": {"name": long_name, "version": "1"}}});
    let r = s.post(None, &init.to_string(), &[]);
    assert_eq!(r.status, 200, "{r:?}");
    let id = r.header("mcp-session-id").expect("session id").to_owned();
    s.call_ok(&id, 2, "echo", json!({"text": "x"}));
    let logs = s.logs();
    // The id is a bearer credential: it never reaches the log.
    assert!(!logs.contains(&id), "the session id is logged:\n{logs}");
    let initialized = logs
        .lines()
        .find(|l| l.contains("session initialized"))
        .unwrap_or_else(|| panic!("no 'session initialized' line:\n{logs}"));
    let line: Value = serde_json::from_str(initialized).expect("a JSON log line");
    let tag = line["session"].as_str().expect("a session tag");
    assert_eq!(tag.len(), 8, "{line}");
    // A client-chosen name is clipped, not logged whole.
    let client = line["client"].as_str().expect("client");
    assert!(client.chars().count() <= 65, "{client}");
    assert!(initialized.len() < 1000, "{initialized}");
}

#[test]
fn what_a_session_keeps_is_bounded_in_bytes() {
    let s = Server::start(&[]);
    let init = |experimental: &str| {
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": VERSION,
            "capabilities": {"experimental": {"blob": experimental}},
            "clientInfo": {"name": "t", "version": "1"}}})
        .to_string()
    };
    // Just under limits.max_session_bytes (16 KiB): accepted.
    let r = s.post(None, &init(&"x".repeat(15_000)), &[]);
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.header("mcp-session-id").is_some());
    let before = crate::harness::rss_kib(s.pid());
    // 200 sessions asking to keep 1 MiB each: refused, naming the limit, and the
    // server does not grow by what they sent.
    let big = init(&"x".repeat(1 << 20));
    for _ in 0..200 {
        let r = s.post(None, &big, &[]);
        assert_eq!(r.status, 200, "{r:?}");
        assert!(r.header("mcp-session-id").is_none(), "no session was kept");
        let e = r.json();
        assert_eq!(error_code(&e), -32602, "{e}");
        assert_eq!(
            e["error"]["data"]["limit"], "limits.max_session_bytes",
            "{e}"
        );
    }
    let after = crate::harness::rss_kib(s.pid());
    // Before the limit this grew by ~1 MiB per session (200 MiB here).
    assert!(
        after < before + 40 * 1024,
        "RSS {before} KiB -> {after} KiB after 200 refused 1 MiB sessions"
    );
}

#[test]
fn a_trickled_body_gets_408_within_the_body_timeout() {
    use std::io::{Read, Write};
    let s = Server::with_config("[limits]\nbody_timeout_ms = 500\n", &[]);
    let mut conn = std::net::TcpStream::connect(&s.addr).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    write!(
        conn,
        "POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Accept: {ACCEPT_BOTH}\r\nContent-Length: 4000\r\n\r\n{{"
    )
    .unwrap();
    let started = Instant::now();
    // One byte every 100 ms: never done in time.
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    for _ in 0..30 {
        if conn.write_all(b" ").is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
        conn.set_nonblocking(true).unwrap();
        match conn.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
        conn.set_nonblocking(false).unwrap();
        if !answer.is_empty() {
            break;
        }
    }
    let took = started.elapsed();
    let text = String::from_utf8_lossy(&answer);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("limits.body_timeout_ms"), "{text}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    let metrics = s.get("/metrics").body;
    assert!(
        metrics.contains("mcp_rejected_total{reason=\"body_timeout\"} 1"),
        "{metrics}"
    );
}

#[test]
fn replays_of_a_big_event_are_not_copied_per_connection() {
    use std::io::Write;
    // One ended stream whose response is a ~20 MB event (more than the kernel's
    // socket buffers absorb); 40 clients resume it and never read. Each replay is
    // read from storage as its connection takes it, in chunks sharing sled's copy:
    // memory does not grow by a copy per client (it did: ~10 MB each, 400 MB).
    let s = Server::with_config(
        "[limits]\nmax_result_bytes = 30000000\n",
        &["--fixtures", "faults"],
    );
    let id = s.session();
    let call = call_body(1, "fault_big", json!({"bytes": 20_000_000}));
    let mut st = s.post_open(Some(&id), &call, &[("Accept", "text/event-stream")]);
    assert_eq!(st.content_type(), "text/event-stream");
    let first = priming(&mut st);
    let (stream, _) = first.id_parts();
    let (resp, _) = st.until_response(&json!(1));
    assert!(
        resp["result"]["content"][0]["text"]
            .as_str()
            .unwrap_or_default()
            .len()
            >= 3_000_000
    );
    drop(st);
    let before = crate::harness::rss_kib(s.pid());
    let mut conns = Vec::new();
    for _ in 0..40 {
        let mut c = std::net::TcpStream::connect(&s.addr).expect("connect");
        write!(
            c,
            "GET /mcp HTTP/1.1\r\nHost: localhost\r\nAccept: text/event-stream\r\n\
             Mcp-Session-Id: {id}\r\nMCP-Protocol-Version: {VERSION}\r\nLast-Event-ID: {stream}-0\r\n\r\n"
        )
        .expect("send");
        conns.push(c);
    }
    std::thread::sleep(Duration::from_millis(1500));
    let after = crate::harness::rss_kib(s.pid());
    assert!(
        after < before + 100 * 1024,
        "RSS {before} KiB -> {after} KiB with 40 stalled replays of a 20 MB event"
    );
    // A client that reads gets the whole event.
    let mut r = s.get_stream(&id, Some(&format!("{stream}-0")));
    let ev = r.next_event().expect("the replayed response");
    assert!(ev.data.len() >= 20_000_000, "{}", ev.data.len());
    drop(conns);
}

#[test]
fn one_address_cannot_hold_more_than_its_connections() {
    use std::io::{Read, Write};
    let s = Server::with_config("[http]\nmax_connections_per_ip = 4\n", &[]);
    // Four idle connections from 127.0.0.1 take the address's share.
    let held: Vec<std::net::TcpStream> = (0..4)
        .map(|_| std::net::TcpStream::connect(&s.addr).expect("connect"))
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    let mut fifth = std::net::TcpStream::connect(&s.addr).expect("connect");
    fifth
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    // The server may answer and close before the request is in: one write (not
    // `write!`'s one per piece, the later of which would meet the reset), and a
    // failed write is no failure of the test.
    let request = format!(
        "POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Accept: {ACCEPT_BOTH}\r\nContent-Length: 2\r\n\r\n{{}}"
    );
    let _ = fifth.write_all(request.as_bytes());
    let mut answer = String::new();
    let _ = fifth.read_to_string(&mut answer); // the server closes it
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
    assert!(
        answer.to_ascii_lowercase().contains("retry-after"),
        "{answer}"
    );
    assert!(answer.contains("http.max_connections_per_ip"), "{answer}");
    // Give one back: a new connection is served again.
    drop(held);
    std::thread::sleep(Duration::from_millis(200));
    let id = s.session();
    assert_eq!(
        text(&s.call_ok(&id, 1, "echo", json!({"text": "ok"}))),
        "ok"
    );
    let metrics = s.get("/metrics").body;
    assert!(
        metrics.contains("mcp_rejected_total{reason=\"connection_limit\"} 1"),
        "{metrics}"
    );
}

/// One session flooding the replay log drops its own oldest events, not another
/// session's finished stream (before, 12,000 tiny calls made a victim's resume
/// answer 200 with no events: its result was lost).
#[test]
fn a_noisy_session_cannot_evict_another_sessions_replay() {
    let s = Server::with_config(
        "[limits]\nevent_log_max = 100\nevent_log_session_max = 20\n",
        &[],
    );
    let sse_call = |id: &str, n: u64| {
        let call = call_body(n, "echo", json!({"text": format!("answer {n}")}));
        let mut st = s.post_open(Some(id), &call, &[("Accept", "text/event-stream")]);
        let (stream, _) = priming(&mut st).id_parts();
        let (resp, _) = st.until_response(&json!(n));
        assert_eq!(text(&resp["result"]), format!("answer {n}"));
        stream
    };
    let victim = s.session();
    let kept = sse_call(&victim, 1);
    let noisy = s.session();
    let streams: Vec<u64> = (2..300).map(|n| sse_call(&noisy, n)).collect();
    // Give the periodic trim (every second) its turn.
    std::thread::sleep(Duration::from_millis(1500));
    let mut r = s.get_stream(&victim, Some(&format!("{kept}-0")));
    let (resp, _) = r.until_response(&json!(1));
    assert_eq!(text(&resp["result"]), "answer 1");
    // The noisy session kept only its share: its newest, not its first.
    let mut r = s.get_stream(&noisy, Some(&format!("{}-0", streams[297])));
    let (resp, _) = r.until_response(&json!(299));
    assert_eq!(text(&resp["result"]), "answer 299");
    let mut r = s.get_stream(&noisy, Some(&format!("{}-0", streams[0])));
    assert!(
        r.rest().is_empty(),
        "the noisy session's oldest were dropped"
    );
}

/// Memory per session is bounded whatever a client sends: 200 sessions each at every
/// per-session limit (initialize params just under `max_session_bytes`, clientInfo
/// text, `max_subscriptions` subscriptions of `max_uri_bytes` URIs) add at most
/// 100 KiB each, sled's share of its page cache included (SECURITY.md states the
/// formula; before the limits, 200 sessions
/// asking to keep 4 MiB took RSS from 7 MB to 1.7 GB).
#[test]
fn two_hundred_maximal_sessions_stay_within_the_stated_memory() {
    let s = Server::start(&[]);
    let old = "2025-03-26"; // batches: a session's 16 subscriptions in one POST
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": old,
        "capabilities": {"experimental": {"blob": "x".repeat(14_000)}},
        "clientInfo": {"name": "n".repeat(1000), "version": "v".repeat(1000)}}})
    .to_string();
    let subscribe = |n: usize| {
        let uri = format!("kv://{n:04}-{}", "u".repeat(2048 - 10));
        json!({"jsonrpc": "2.0", "id": n + 10, "method": "resources/subscribe", "params": {"uri": uri}})
    };
    let batch = Value::Array((0..16).map(subscribe).collect()).to_string();
    // Warm up (first allocations of pools and caches), then measure.
    let mut sessions = Vec::new();
    let mut open = |count: usize| {
        for _ in 0..count {
            let r = s.post(None, &init, &[]);
            assert_eq!(r.status, 200, "{r:?}");
            let id = r.header("mcp-session-id").expect("a session").to_owned();
            let headers = [("MCP-Protocol-Version", old)];
            let body = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
            assert_eq!(s.post(Some(&id), &body.to_string(), &headers).status, 202);
            let r = s.post(Some(&id), &batch, &headers);
            assert_eq!(r.status, 200, "{r:?}");
            let answers = r.json();
            let answers = answers.as_array().expect("a batch answer");
            assert_eq!(answers.len(), 16);
            assert!(
                answers.iter().all(|a| a.get("result").is_some()),
                "{answers:?}"
            );
            sessions.push(id);
        }
    };
    open(20);
    let before = crate::harness::rss_kib(s.pid());
    open(200);
    let after = crate::harness::rss_kib(s.pid());
    let per_session = after.saturating_sub(before) / 200;
    eprintln!("RSS {before} KiB -> {after} KiB: {per_session} KiB per maximal session");
    assert!(
        per_session <= 100,
        "{per_session} KiB per maximal session (RSS {before} -> {after} KiB)"
    );
    // And the next subscription is refused, naming the limit.
    let more = json!({"jsonrpc": "2.0", "id": 99, "method": "resources/subscribe",
        "params": {"uri": "kv://one-more"}});
    let r = s.post(
        Some(&sessions[0]),
        &more.to_string(),
        &[("MCP-Protocol-Version", old)],
    );
    assert_eq!(
        r.json()["error"]["data"]["limit"],
        "limits.max_subscriptions",
        "{r:?}"
    );
}

/// Bodies being read share one byte budget: a slow upload holding it makes the next
/// body a 503 at once, and the budget comes back when the upload ends.
#[test]
fn bodies_being_read_share_max_body_bytes_total() {
    use std::io::Write;
    // A body budget must hold one largest message (issue 18 item 7).
    let s = Server::with_config(
        "[limits]\nmax_body_bytes_total = 10000\nmax_message_bytes = 10000\n",
        &[],
    );
    let mut slow = std::net::TcpStream::connect(&s.addr).expect("connect");
    write!(
        slow,
        "POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n\
         Accept: {ACCEPT_BOTH}\r\nContent-Length: 8000\r\n\r\n{{"
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": VERSION, "capabilities": {"experimental": {"pad": "p".repeat(3000)}},
        "clientInfo": {"name": "t", "version": "1"}}})
    .to_string();
    let r = s.post(None, &init, &[]);
    assert_eq!(r.status, 503, "{r:?}");
    assert!(r.header("retry-after").is_some(), "{r:?}");
    assert!(r.body.contains("limits.max_body_bytes_total"), "{r:?}");
    let metrics = s.get("/metrics").body;
    assert!(
        metrics.contains("mcp_rejected_total{reason=\"body_budget\"} 1"),
        "{metrics}"
    );
    // The slow upload goes away: its share comes back.
    drop(slow);
    std::thread::sleep(Duration::from_millis(200));
    let r = s.post(None, &init, &[]);
    assert_eq!(r.status, 200, "{r:?}");
}

/// Past `http.max_connections` + `http.ops_connections` a new connection is not
/// served until one closes.
#[test]
fn connections_past_max_connections_wait_for_one_to_close() {
    use std::io::{Read, Write};
    let s = Server::with_config(
        "[http]\nworkers = 1\nmax_connections = 2\nops_connections = 1\n",
        &[],
    );
    let held: Vec<std::net::TcpStream> = (0..3)
        .map(|_| std::net::TcpStream::connect(&s.addr).expect("connect"))
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut third = std::net::TcpStream::connect(&s.addr).expect("the kernel queues it");
    third
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .unwrap();
    third
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    let mut buf = [0u8; 64];
    assert!(
        third.read(&mut buf).is_err(),
        "served past http.max_connections"
    );
    drop(held);
    third
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let n = third.read(&mut buf).expect("served once one closed");
    assert!(buf[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &buf[..n]);
}

/// Issue 18 item 17: 2024-11-05's transport is HTTP+SSE, not Streamable HTTP, so
/// an `initialize` on `/mcp` naming it is answered with the newest session-era
/// version (the client may go on with it or disconnect); stdio still serves it.
#[test]
fn an_http_initialize_naming_2024_11_05_is_offered_the_newest_session_version() {
    let s = Server::start(&[]);
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2024-11-05", "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"}}})
    .to_string();
    let r = s.post(None, &body, &[]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["result"]["protocolVersion"], "2025-11-25", "{r:?}");
}
