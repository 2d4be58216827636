//! Operations features of `emcee serve`, against the real binary on 127.0.0.1:
//! `/health` and its checks, `/metrics` (parsed as Prometheus text), the admin
//! listener, readiness while draining, the shutdown grace period, sessions that
//! survive a restart, and the connection gauge.

use std::collections::{BTreeMap, BTreeSet};
use std::thread;
use std::time::{Duration, Instant};

use prometheus_parse::{HistogramCount, Scrape, Value as Sample};
use serde_json::{json, Value};

use crate::harness::{call_body, probe, text, Launch, Server};

/// One `/metrics` scrape, parsed.
struct Metrics(Scrape);

impl Metrics {
    fn scrape(s: &Server, addr: &str) -> Metrics {
        let r = s.get_at(addr, "/metrics");
        assert_eq!(r.status, 200, "/metrics: {r:?}");
        assert_eq!(r.content_type(), "text/plain", "{r:?}");
        let lines = r.body.lines().map(|l| Ok(l.to_owned()));
        Metrics(Scrape::parse(lines).expect("Prometheus text format"))
    }

    /// The sample of `name` with exactly the labels `labels`.
    fn sample(&self, name: &str, labels: &[(&str, &str)]) -> Option<&Sample> {
        self.0
            .samples
            .iter()
            .find(|s| {
                s.metric == name
                    && s.labels.len() == labels.len()
                    && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
            })
            .map(|s| &s.value)
    }

    /// A counter's or gauge's value; 0 when the series does not exist yet (labelled
    /// series appear at their first use).
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.sample(name, labels).map_or(0.0, |v| number(name, v))
    }

    /// A value that must be present.
    fn present(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        assert!(
            self.sample(name, labels).is_some(),
            "{name}{labels:?} missing from /metrics"
        );
        self.value(name, labels)
    }

    /// A histogram's buckets (empty when the series does not exist yet).
    fn buckets(&self, name: &str, labels: &[(&str, &str)]) -> Vec<HistogramCount> {
        match self.sample(name, labels) {
            None => Vec::new(),
            Some(Sample::Histogram(b)) => b.clone(),
            Some(other) => panic!("{name}{labels:?} is not a histogram: {other:?}"),
        }
    }

    /// Every series of `name` (by its labels, sorted) with its value.
    fn series_of(&self, name: &str) -> BTreeMap<String, f64> {
        self.0
            .samples
            .iter()
            .filter(|s| s.metric == name)
            .map(|s| (s.labels.to_string(), number(name, &s.value)))
            .collect()
    }

    /// Every series: `name{labels}`.
    fn series(&self) -> BTreeSet<String> {
        self.0
            .samples
            .iter()
            .map(|s| format!("{}{{{}}}", s.metric, s.labels))
            .collect()
    }
}

/// The value of a counter, gauge or untyped sample (a histogram's `_sum`, `_count`).
fn number(name: &str, value: &Sample) -> f64 {
    match value {
        Sample::Counter(v) | Sample::Gauge(v) | Sample::Untyped(v) => *v,
        other => panic!("{name} is not a number: {other:?}"),
    }
}

/// Poll `f` until it returns `Some`, every 25 ms, for at most `within`.
fn eventually<T>(within: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(25));
    }
}

/// `/health` as (status, body).
fn health(s: &Server, addr: &str) -> (u16, Value) {
    let r = s.get_at(addr, "/health");
    assert_eq!(r.content_type(), "application/json", "{r:?}");
    (r.status, r.json())
}

fn check_names(body: &Value) -> BTreeSet<String> {
    body["checks"]
        .as_object()
        .unwrap_or_else(|| panic!("no checks: {body}"))
        .keys()
        .cloned()
        .collect()
}

fn assert_check_ok(body: &Value, name: &str) {
    let c = &body["checks"][name];
    assert_eq!(c["status"], "ok", "check {name}: {body}");
    assert!(
        c["duration_ms"].as_f64().is_some_and(|d| d >= 0.0),
        "check {name} has a duration: {body}"
    );
    assert!(c.get("error").is_none(), "check {name}: {body}");
}

#[test]
fn health_lists_every_check_and_fails_with_a_dependency() {
    let s = Server::start(&["--fixtures", "faults"]);
    let (status, body) = health(&s, &s.addr);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok", "{body}");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"), "{body}");
    assert!(body["uptime_s"].is_u64(), "{body}");
    assert!(
        body["memory_rss_bytes"].as_u64().is_some_and(|m| m > 0),
        "{body}"
    );
    assert_eq!(body["sessions"], 0, "{body}");
    let all: BTreeSet<String> = ["connections", "fixture_dependency", "root", "storage"]
        .map(String::from)
        .into();
    // The numbers behind the connections check: `/health` takes no MCP
    // connection's place, and none is open yet.
    assert_eq!(body["connections"]["open"], 0, "{body}");
    assert!(
        body["connections"]["max"].as_u64().is_some_and(|m| m > 0),
        "{body}"
    );
    assert_eq!(check_names(&body), all, "{body}");
    for name in &all {
        assert_check_ok(&body, name);
    }

    // `sessions` follows initialize and DELETE.
    let ids: Vec<String> = (0..3).map(|_| s.session()).collect();
    assert_eq!(health(&s, &s.addr).1["sessions"], 3);
    assert_eq!(s.delete(&ids[2]).status, 200);
    assert_eq!(health(&s, &s.addr).1["sessions"], 2);

    // The registered dependency fails: 503 naming it, the others still ok.
    let r = s.call_ok(&ids[0], 2, "fault_health", json!({"healthy": false}));
    assert!(r.get("isError").is_none(), "{r}");
    let (status, body) = health(&s, &s.addr);
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "fail", "{body}");
    let dep = &body["checks"]["fixture_dependency"];
    assert_eq!(dep["status"], "fail", "{body}");
    assert!(
        dep["error"].as_str().is_some_and(|e| !e.is_empty()),
        "a failing check says why: {body}"
    );
    assert_check_ok(&body, "storage");
    assert_check_ok(&body, "root");
    assert_eq!(check_names(&body), all, "{body}");
    // Liveness does not depend on dependencies.
    let live = s.get("/health/live");
    assert_eq!(live.status, 200, "{live:?}");

    let r = s.call_ok(&ids[1], 3, "fault_health", json!({"healthy": true}));
    assert!(r.get("isError").is_none(), "{r}");
    let (status, body) = health(&s, &s.addr);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "ok", "{body}");
    for name in &all {
        assert_check_ok(&body, name);
    }
    assert_eq!(s.get("/health/live").status, 200);
    assert_eq!(s.get("/health/ready").status, 200);
}

#[test]
fn health_uptime_counts_from_process_start() {
    let s = Server::start(&[]);
    thread::sleep(Duration::from_millis(1200));
    let (_, body) = health(&s, &s.addr);
    assert!(
        body["uptime_s"].as_u64().is_some_and(|u| u >= 1),
        "up for more than 1.2 s: {body}"
    );
}

#[test]
fn metrics_count_exactly_what_happened() {
    const ECHOES: u64 = 7;
    const PANICS: u64 = 2;
    let s = Server::start(&["--fixtures", "faults"]);
    let id = s.session();
    let before = Metrics::scrape(&s, &s.addr);

    for i in 0..ECHOES {
        let r = s.call_ok(&id, 10 + i, "echo", json!({"text": format!("e{i}")}));
        assert_eq!(text(&r), format!("e{i}"));
    }
    for i in 0..PANICS {
        let r = s.call_ok(&id, 20 + i, "fault_panic", json!({}));
        assert_eq!(r["isError"], true, "{r}");
    }
    let r = s.request(&id, 30, "no/such_method", json!({}));
    assert_eq!(r["error"]["code"], -32601, "{r}");
    let ping = json!({"jsonrpc": "2.0", "id": 31, "method": "ping"}).to_string();
    let r = s.post(Some(&id), &ping, &[("Host", "evil.example.com")]);
    assert_eq!(r.status, 403, "{r:?}");

    let after = Metrics::scrape(&s, &s.addr);
    let diff = |name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.value(name, labels)
    };
    let (echo, panic) = ([("tool", "echo")], [("tool", "fault_panic")]);
    assert_eq!(diff("mcp_tool_calls_total", &echo), ECHOES as f64);
    assert_eq!(diff("mcp_tool_errors_total", &echo), 0.0);
    assert_eq!(diff("mcp_tool_calls_total", &panic), PANICS as f64);
    assert_eq!(diff("mcp_tool_errors_total", &panic), PANICS as f64);
    assert_eq!(diff("mcp_handler_panics_total", &[]), PANICS as f64);
    assert_eq!(diff("mcp_rejected_total", &[("reason", "forbidden")]), 1.0);

    // Every request series that moved, and by how much.
    let was = before.series_of("mcp_requests_total");
    let moved: BTreeMap<String, f64> = after
        .series_of("mcp_requests_total")
        .into_iter()
        .map(|(k, v)| {
            let d = v - was.get(&k).copied().unwrap_or(0.0);
            (k, d)
        })
        .filter(|(_, d)| *d != 0.0)
        .collect();
    let expected: BTreeMap<String, f64> = [
        (r#"method="tools/call",outcome="ok""#, ECHOES),
        (r#"method="tools/call",outcome="panic""#, PANICS),
        (r#"method="other",outcome="error""#, 1),
    ]
    .map(|(k, n)| (k.to_owned(), n as f64))
    .into();
    assert_eq!(moved, expected, "mcp_requests_total moved by");

    // The histograms: parsed as histograms, buckets cumulative, +Inf = _count.
    let buckets = after.buckets("mcp_tool_duration_seconds", &echo);
    assert!(
        buckets.len() > 2,
        "echo has a duration histogram: {buckets:?}"
    );
    assert!(
        buckets
            .windows(2)
            .all(|w| w[0].less_than < w[1].less_than && w[0].count <= w[1].count),
        "cumulative buckets: {buckets:?}"
    );
    let inf = buckets.last().unwrap();
    assert!(inf.less_than.is_infinite(), "{buckets:?}");
    let inf_before = before
        .buckets("mcp_tool_duration_seconds", &echo)
        .last()
        .map_or(0.0, |b| b.count);
    assert_eq!(inf.count - inf_before, ECHOES as f64, "{buckets:?}");
    assert_eq!(
        diff("mcp_tool_duration_seconds_count", &echo),
        ECHOES as f64
    );
    assert!(diff("mcp_tool_duration_seconds_sum", &echo) > 0.0);
    let calls = [("method", "tools/call")];
    assert_eq!(
        diff("mcp_request_duration_seconds_count", &calls),
        (ECHOES + PANICS) as f64,
        "every tools/call request is timed"
    );

    // Process metrics.
    assert!(after.present("process_resident_memory_bytes", &[]) > 0.0);
    assert!(after.present("process_open_fds", &[]) > 0.0);
    after.present("process_cpu_seconds_total", &[]);

    // Sessions: mcp_sessions_total counts opens, mcp_active_sessions follows DELETE.
    let m0 = Metrics::scrape(&s, &s.addr);
    assert_eq!(m0.present("mcp_active_sessions", &[]), 1.0);
    let other_session = s.session();
    let m1 = Metrics::scrape(&s, &s.addr);
    assert_eq!(
        m1.value("mcp_sessions_total", &[]) - m0.value("mcp_sessions_total", &[]),
        1.0
    );
    assert_eq!(m1.value("mcp_active_sessions", &[]), 2.0);
    assert_eq!(s.delete(&other_session).status, 200);
    let m2 = Metrics::scrape(&s, &s.addr);
    assert_eq!(
        m2.value("mcp_sessions_total", &[]),
        m1.value("mcp_sessions_total", &[])
    );
    assert_eq!(m2.value("mcp_active_sessions", &[]), 1.0);
}

#[test]
fn unknown_methods_and_tools_create_no_series() {
    let s = Server::start(&[]);
    let id = s.session();
    let unknown_method = |i: u64| {
        let r = s.request(&id, 1000 + i, &format!("unknown/method_{i}"), json!({}));
        assert_eq!(r["error"]["code"], -32601, "{r}");
    };
    let unknown_tool = |i: u64| {
        let r = s.request(
            &id,
            2000 + i,
            "tools/call",
            json!({"name": format!("no_such_tool_{i}"), "arguments": {}}),
        );
        assert_eq!(r["error"]["code"], -32602, "{r}");
    };
    // The first of each creates the series an unknown method or tool may create.
    unknown_method(0);
    unknown_tool(0);
    let before = Metrics::scrape(&s, &s.addr).series();
    for i in 1..=50 {
        unknown_method(i);
        unknown_tool(i);
    }
    let after = Metrics::scrape(&s, &s.addr);
    let series = after.series();
    let new: Vec<&String> = series.difference(&before).collect();
    assert!(new.is_empty(), "new series: {new:?}");
    assert_eq!(series.len(), before.len());
    let leaked: Vec<&String> = series
        .iter()
        .filter(|k| k.contains("unknown/") || k.contains("no_such_tool"))
        .collect();
    assert!(leaked.is_empty(), "{leaked:?}");
    assert_eq!(
        after.value(
            "mcp_requests_total",
            &[("method", "other"), ("outcome", "error")]
        ),
        51.0
    );
    assert_eq!(
        after.value(
            "mcp_requests_total",
            &[("method", "tools/call"), ("outcome", "error")]
        ),
        51.0
    );
}

#[test]
fn admin_bind_serves_health_and_metrics_apart() {
    let s = Server::start(&["--admin-bind", "127.0.0.1:0"]);
    let admin = s.admin_addr();
    assert_ne!(admin, s.addr);
    let id = s.session();

    let (status, body) = health(&s, &admin);
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["sessions"], 1, "{body}");
    for path in ["/health/live", "/health/ready"] {
        let r = s.get_at(&admin, path);
        assert_eq!(r.status, 200, "{path} on the admin address: {r:?}");
    }
    let m = Metrics::scrape(&s, &admin);
    assert_eq!(m.present("mcp_active_sessions", &[]), 1.0);

    for path in ["/health", "/health/live", "/health/ready", "/metrics"] {
        let r = s.get(path);
        assert_eq!(r.status, 404, "{path} on the MCP address: {r:?}");
    }
    let r = s.get_at(&admin, "/mcp");
    assert_eq!(r.status, 404, "no MCP on the admin address: {r:?}");
    assert_eq!(s.request(&id, 2, "ping", json!({}))["result"], json!({}));
}

/// A `sleep` call in flight, SIGTERM: readiness on `probe_addr` turns 503 while the
/// call runs, the call gets its normal answer, exit 0.
fn ready_turns_503_while_draining(admin: bool) {
    let args: &[&str] = if admin {
        &["--admin-bind", "127.0.0.1:0"]
    } else {
        &[]
    };
    let mut s = Server::launch(Launch {
        config: Some("[limits]\nshutdown_grace_ms = 5000\n"),
        args,
        ..Launch::default()
    });
    let probe_addr = if admin {
        s.admin_addr()
    } else {
        s.addr.clone()
    };
    let ready = || probe(&probe_addr, "/health/ready", Duration::from_millis(300));
    let r = ready().expect("/health/ready before shutdown");
    assert_eq!(r.status, 200, "{r:?}");

    let id = s.session();
    let started = Instant::now();
    let mut st = s.post_open(Some(&id), &call_body(5, "sleep", json!({"ms": 2000})), &[]);
    assert_eq!(st.status, 200);
    assert_eq!(
        st.content_type(),
        "text/event-stream",
        "a slow call streams"
    );
    let call = thread::spawn(move || st.until_response(&json!(5)).0);
    thread::sleep(Duration::from_millis(100));
    s.signal("TERM");

    // Within the first second of the drain (the call runs for 2 s), every probe says
    // 503. (The first 100 ms are left out: the signal is on its way.)
    thread::sleep(Duration::from_millis(100));
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(ready().map(|r| r.status));
        thread::sleep(Duration::from_millis(100));
    }
    assert!(
        seen.iter().all(|r| r == &Ok(503)),
        "/health/ready while draining: {seen:?}\n{}",
        s.logs()
    );
    assert!(!call.is_finished(), "the call is still running");

    let resp = call.join().expect("the call's reader");
    assert_eq!(text(&resp["result"]), "slept 2000 ms", "{resp}");
    assert!(resp["result"].get("isError").is_none(), "{resp}");
    assert!(started.elapsed() >= Duration::from_millis(2000));
    let status = s.wait_exit(Duration::from_secs(5));
    assert_eq!(status.code(), Some(0), "stderr:\n{}", s.logs());
}

#[test]
fn ready_is_503_on_the_admin_listener_while_draining() {
    ready_turns_503_while_draining(true);
}

#[test]
fn ready_is_503_on_the_mcp_listener_while_draining() {
    ready_turns_503_while_draining(false);
}

#[test]
fn calls_past_the_grace_period_are_answered_as_cancelled() {
    let mut s = Server::with_config(
        "[limits]\nshutdown_grace_ms = 300\n",
        &["--fixtures", "faults"],
    );
    let id = s.session();
    let mut st = s.post_open(Some(&id), &call_body(6, "fault_hang", json!({})), &[]);
    assert_eq!(st.status, 200);
    assert_eq!(st.content_type(), "text/event-stream");
    let call = thread::spawn(move || {
        let resp = st.until_response(&json!(6)).0;
        (resp, Instant::now())
    });
    thread::sleep(Duration::from_millis(100));
    let term = Instant::now();
    s.signal("TERM");

    let (resp, answered) = call.join().expect("the call's reader");
    let result = &resp["result"];
    assert_eq!(result["isError"], true, "{resp}");
    assert!(text(result).contains("shutting down"), "{resp}");
    let waited = answered - term;
    assert!(
        waited >= Duration::from_millis(250),
        "the call had its grace period: {waited:?}"
    );
    let status = s.wait_exit(Duration::from_secs(3));
    assert_eq!(status.code(), Some(0), "stderr:\n{}", s.logs());
    assert!(
        term.elapsed() < Duration::from_millis(2500),
        "exited {:?} after SIGTERM",
        term.elapsed()
    );
}

#[test]
fn sessions_survive_kill_9() {
    let mut s = Server::start(&[]);
    let id = s.session();
    let r = s.call_ok(&id, 2, "kv_set", json!({"key": "k", "value": "before"}));
    assert!(r.get("isError").is_none(), "{r}");
    let old_port = s.port;

    s.signal("KILL");
    assert!(!s.wait_exit(Duration::from_secs(5)).success());
    let s = s.restart();

    let r = s.post(
        Some(&id),
        &call_body(3, "echo", json!({"text": "after restart"})),
        &[],
    );
    assert_eq!(
        r.status,
        200,
        "the old session id after a restart (port {old_port} → {}): {r:?}\n{}",
        s.port,
        s.logs()
    );
    assert_eq!(text(&r.json()["result"]), "after restart", "{r:?}");
    let r = s.call_ok(&id, 4, "kv_get", json!({"key": "k"}));
    assert_eq!(r["structuredContent"]["value"], "before", "{r}");
}

/// DELETE a session, stop the server with `signal`, restart: the id is 404.
fn deleted_session_stays_gone_after(signal: &str) {
    let mut s = Server::start(&[]);
    let keep = s.session();
    let gone = s.session();
    assert_eq!(s.delete(&gone).status, 200);
    s.signal(signal);
    s.wait_exit(Duration::from_secs(5));
    let s = s.restart();

    let ping = json!({"jsonrpc": "2.0", "id": 5, "method": "ping"}).to_string();
    let r = s.post(Some(&gone), &ping, &[]);
    assert_eq!(
        r.status, 404,
        "a deleted session after SIG{signal} and a restart: {r:?}"
    );
    let r = s.post(Some(&keep), &ping, &[]);
    assert_eq!(r.status, 200, "the other session is restored: {r:?}");
}

#[test]
fn a_deleted_session_stays_gone_after_a_clean_restart() {
    deleted_session_stays_gone_after("TERM");
}

#[test]
fn a_deleted_session_stays_gone_after_kill_9() {
    deleted_session_stays_gone_after("KILL");
}

/// Sessions of `s` are `{prefix}-` and 22 characters of the id alphabet, and work.
fn assert_session_ids_prefixed(s: &Server, prefix: &str) {
    for _ in 0..3 {
        let id = s.session();
        let random = id
            .strip_prefix(&format!("{prefix}-"))
            .unwrap_or_else(|| panic!("{id:?} starts with {prefix}-"));
        assert_eq!(random.len(), 22, "{id:?}");
        assert!(
            random
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.'),
            "{id:?}"
        );
        assert_eq!(s.request(&id, 2, "ping", json!({}))["result"], json!({}));
    }
}

#[test]
fn instance_id_prefixes_session_ids() {
    assert_session_ids_prefixed(&Server::start(&["--instance-id", "b2"]), "b2");
    let from_env = Server::launch(Launch {
        env: &[("EMCEE_INSTANCE_ID", "c3")],
        ..Launch::default()
    });
    assert_session_ids_prefixed(&from_env, "c3");
}

/// `mcp_active_connections` goes 0 → 1 → 0 as an SSE GET stream opens and closes.
fn connection_gauge_follows_an_sse_stream(config: &str) {
    // Scrape on the admin listener, whose connections are not counted.
    let s = Server::with_config(config, &["--admin-bind", "127.0.0.1:0"]);
    let admin = s.admin_addr();
    let id = s.session();
    let gauge = || Metrics::scrape(&s, &admin).present("mcp_active_connections", &[]);
    let settles_at = |n: f64| eventually(Duration::from_secs(3), || (gauge() == n).then_some(()));

    assert!(settles_at(0.0).is_some(), "no connection open: {}", gauge());
    let mut st = s.get_stream(&id, None);
    assert_eq!(st.status, 200);
    let priming = st.next_event().expect("priming event");
    assert!(priming.data.is_empty(), "{priming:?}");
    assert!(
        settles_at(1.0).is_some(),
        "one SSE stream open: {}",
        gauge()
    );
    drop(st);
    assert!(
        settles_at(0.0).is_some(),
        "the SSE stream was closed 3 s ago: {}",
        gauge()
    );
}

#[test]
fn the_connection_gauge_follows_an_sse_stream() {
    // Keep-alives every 200 ms: the server writes soon after the client has gone.
    connection_gauge_follows_an_sse_stream("[limits]\nsse_keepalive_ms = 200\n");
}

/// systemd's side of `sd_notify`: a datagram socket that collects what emcee sends.
fn notify_socket(dir: &std::path::Path) -> std::os::unix::net::UnixDatagram {
    let sock = std::os::unix::net::UnixDatagram::bind(dir.join("notify.sock"))
        .expect("bind notify socket");
    sock.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    sock
}

fn next_notification(sock: &std::os::unix::net::UnixDatagram) -> String {
    let mut buf = [0u8; 512];
    let n = sock
        .recv(&mut buf)
        .expect("a systemd notification within 5 s");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn systemd_gets_ready_watchdog_pings_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let sock = notify_socket(dir.path());
    let path = dir.path().join("notify.sock");
    let mut s = Server::launch(Launch {
        config: None,
        args: &[],
        env: &[
            ("NOTIFY_SOCKET", path.to_str().unwrap()),
            ("WATCHDOG_USEC", "200000"),
        ],
    });
    assert!(
        next_notification(&sock).contains("READY=1"),
        "READY=1 first"
    );
    // Pings every WATCHDOG_USEC / 2 while the root actor answers.
    for _ in 0..3 {
        assert!(next_notification(&sock).contains("WATCHDOG=1"));
    }
    s.signal("TERM");
    let mut seen = Vec::new();
    while !seen.iter().any(|m: &String| m.contains("STOPPING=1")) {
        seen.push(next_notification(&sock));
    }
    assert!(s.wait_exit(Duration::from_secs(10)).success());
}

#[test]
fn saved_sessions_expire_across_restarts_and_count_toward_the_cap() {
    use std::time::Instant;
    // A record unused for longer than the idle TTL is gone after a restart, even
    // before a sweep sees it; one within it is restored. Times are measured, not
    // assumed: the TTL is long next to a restart.
    let ttl = Duration::from_millis(4000);
    let mut s = Server::with_config(
        &format!(
            "[limits]\nsession_idle_ttl_ms = {}\nmax_sessions = 2\n",
            ttl.as_millis()
        ),
        &[],
    );
    let old = s.session();
    let old_at = Instant::now();
    std::thread::sleep(Duration::from_millis(2500));
    let fresh = s.session();
    s.signal("TERM");
    assert!(s.wait_exit(Duration::from_secs(5)).success());
    let s = s.restart();
    assert!(
        old_at.elapsed() < ttl,
        "restart too slow to test: {:?}",
        old_at.elapsed()
    );
    // Both records are restorable now: they fill the cap of 2.
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"}}});
    let r = s.post(None, &init.to_string(), &[]);
    assert_eq!(r.status, 503, "saved sessions count toward the cap: {r:?}");
    // Past `old`'s TTL (and well within `fresh`'s: it came 2.5 s later).
    std::thread::sleep((ttl + Duration::from_millis(400)).saturating_sub(old_at.elapsed()));
    let ping = json!({"jsonrpc": "2.0", "id": 5, "method": "ping"}).to_string();
    let r = s.post(Some(&old), &ping, &[]);
    assert_eq!(r.status, 404, "an expired session after a restart: {r:?}");
    let r = s.post(Some(&fresh), &ping, &[]);
    assert_eq!(
        r.status,
        200,
        "a session within its TTL: {r:?}\n{}",
        s.logs()
    );
    // The expired one freed its place.
    let r = s.post(None, &init.to_string(), &[]);
    assert_eq!(r.status, 200, "{r:?}");
}

#[test]
fn expired_records_are_swept_at_start() {
    let mut s = Server::with_config("[limits]\nsession_idle_ttl_ms = 300\n", &[]);
    for _ in 0..3 {
        s.session();
    }
    s.signal("KILL");
    s.wait_exit(Duration::from_secs(5));
    std::thread::sleep(Duration::from_millis(500));
    let s = s.restart();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !s.logs().contains("expired session records removed") {
        assert!(
            std::time::Instant::now() < deadline,
            "no sweep:\n{}",
            s.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let line = s
        .logs()
        .lines()
        .find(|l| l.contains("expired session records removed"))
        .map(str::to_owned)
        .unwrap_or_default();
    assert!(line.contains("\"count\":3"), "{line}");
}

/// A small tmpfs mounted for one test, unmounted when dropped (also on a panic).
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// Needs root (CI runs as root); anything else fails the test, never skips it.
    fn mount(size: &str) -> SmallDisk {
        let dir = tempfile::tempdir().expect("tempdir");
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "mounting a tmpfs needs root: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        SmallDisk { dir }
    }

    fn path(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// Write `key` = `value` with kv_set until a write fails; each answer comes in
/// bounded time. Returns the failed answer.
fn fill_disk(s: &mut crate::harness::Server, id: &str, from: u64) -> Value {
    let value = "v".repeat(300_000);
    for i in from..from + 40 {
        let started = std::time::Instant::now();
        let r = s.request(
            id,
            10 + i,
            "tools/call",
            json!({"name": "kv_set", "arguments": {"key": format!("k{i}"), "value": value}}),
        );
        assert!(
            started.elapsed() < Duration::from_secs(4),
            "kv_set {i} took {:?}",
            started.elapsed()
        );
        if r["result"]["isError"] == true {
            return r;
        }
    }
    panic!("the disk never filled");
}

#[test]
fn a_full_disk_is_reported_refused_at_once_restarts_once_freed_and_does_not_block_exit() {
    let disk = SmallDisk::mount("3m");
    // Something else on the disk, deleted later to free space.
    let ballast = disk.path().join("ballast");
    std::fs::write(&ballast, vec![0u8; 1_000_000]).expect("ballast");
    let data = disk.path().join("data");
    let data = data.to_str().expect("utf-8 path").to_owned();
    let mut s = crate::harness::Server::launch(crate::harness::Launch {
        config: Some("[storage]\nflush_timeout_ms = 1000\nretry_ms = 200\n"),
        args: &["--data-dir", &data],
        env: &[],
    });
    let id = s.session();
    let failed = fill_disk(&mut s, &id, 0);
    assert!(text(&failed["result"]).contains("storage"), "{failed}");
    // Reported three ways: /health fails on storage, a metric, an error log line.
    let health = s.get("/health");
    assert_eq!(health.status, 503, "{health:?}");
    assert_eq!(
        health.json()["checks"]["storage"]["status"],
        "fail",
        "{health:?}"
    );
    let metrics = s.get("/metrics").body;
    let errors = metrics
        .lines()
        .find_map(|l| l.strip_prefix("mcp_storage_errors_total "))
        .and_then(|n| n.trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(errors >= 1.0, "{metrics}");
    assert!(s.logs().contains("storage failing"), "{}", s.logs());
    // What needs storage is refused at once, not left hanging, and keeps failing
    // while the disk is full (retries see no room).
    std::thread::sleep(Duration::from_millis(600));
    let started = std::time::Instant::now();
    let r = s.request(
        &id,
        99,
        "tools/call",
        json!({"name": "kv_set", "arguments": {"key": "after", "value": "x"}}),
    );
    assert_eq!(r["result"]["isError"], true, "{r}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(s.get("/health").status, 503);
    // Space freed: sled cannot reopen in this process, so it stops (exit 3, as
    // the unit's Restart=on-failure expects) and a new process serves what was
    // acknowledged, the session included.
    std::fs::remove_file(&ballast).expect("free space");
    let started = std::time::Instant::now();
    let status = s.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(3), "{}", s.logs());
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stop took {:?}",
        started.elapsed()
    );
    assert!(
        s.logs().contains("reopened by a new process"),
        "{}",
        s.logs()
    );
    let mut s = crate::harness::Server::launch(crate::harness::Launch {
        config: Some("[storage]\nflush_timeout_ms = 1000\nretry_ms = 200\n"),
        args: &["--data-dir", &data],
        env: &[],
    });
    assert_eq!(s.get("/health").status, 200, "{}", s.logs());
    let r = s.request(
        &id,
        101,
        "tools/call",
        json!({"name": "kv_get", "arguments": {"key": "k0"}}),
    );
    let kept = r["result"]["structuredContent"]["value"]
        .as_str()
        .map(str::len);
    assert_eq!(
        kept,
        Some(300_000),
        "an acknowledged write is kept, in the restored session"
    );
    let r = s.request(
        &id,
        102,
        "tools/call",
        json!({"name": "kv_set", "arguments": {"key": "after", "value": "x"}}),
    );
    assert_eq!(r["result"]["structuredContent"]["key"], "after", "{r}");
    // Full again: SIGTERM ends within its budget, with a non-zero code (the final
    // flush failed).
    fill_disk(&mut s, &id, 200);
    let started = std::time::Instant::now();
    s.signal("TERM");
    let status = s.wait_exit(Duration::from_secs(10));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stop took {:?}",
        started.elapsed()
    );
    assert_eq!(status.code(), Some(3), "{}", s.logs());
    drop(disk);
}

/// `GET {path}` on `addr` with `headers` (a `Host` given here replaces the one the
/// URL implies).
fn get_with(s: &Server, addr: &str, path: &str, headers: &[(&str, &str)]) -> crate::harness::Reply {
    s.open_url("GET", &format!("http://{addr}{path}"), headers, None)
        .into_reply()
}

/// Issue 18 item 8: a DNS-rebinding page (a foreign `Host`, or a foreign `Origin`)
/// reads neither `/metrics` nor `/health` nor `/health/ready`, on the MCP listener or
/// on `admin_bind`; the allowlist's names and IP literals (a probe by address) are
/// answered, and `/health/live` (nothing in it) answers any `Host`.
fn ops_routes_check_host_and_origin(admin: bool) {
    let args: &[&str] = if admin {
        &["--admin-bind", "127.0.0.1:0"]
    } else {
        &[]
    };
    let s = Server::start(args);
    let addr = if admin {
        s.admin_addr()
    } else {
        s.addr.clone()
    };
    let port = addr.rsplit(':').next().unwrap().to_owned();
    let guarded = ["/metrics", "/health", "/health/ready"];
    for path in guarded {
        for headers in [
            &[("Host", "evil.example")][..],
            &[("Host", "evil.example:8080")][..],
            &[("Host", "localhost"), ("Origin", "http://evil.example")][..],
        ] {
            let r = get_with(&s, &addr, path, headers);
            assert_eq!(r.status, 403, "{path} {headers:?}: {r:?}");
            assert!(
                !r.body.contains("mcp_") && !r.body.contains("checks"),
                "nothing leaks: {r:?}"
            );
        }
        let local = format!("localhost:{port}");
        for host in [local.as_str(), "127.0.0.1", "10.1.2.3:9090", "[::1]:1"] {
            let r = get_with(&s, &addr, path, &[("Host", host)]);
            assert_eq!(r.status, 200, "{path} with Host {host}: {r:?}");
        }
    }
    for host in ["evil.example", "10.1.2.3"] {
        let r = get_with(&s, &addr, "/health/live", &[("Host", host)]);
        assert_eq!(r.status, 200, "/health/live with Host {host}: {r:?}");
    }
    // Each refusal is counted and logged like the MCP endpoint's.
    let m = Metrics::scrape(&s, &addr);
    assert_eq!(
        m.value("mcp_rejected_total", &[("reason", "forbidden")]),
        9.0,
        "{}",
        s.logs()
    );
    let logs = eventually(Duration::from_secs(5), || {
        let logs = s.logs();
        (logs.matches("\"request refused\"").count() >= 9).then_some(logs)
    })
    .unwrap_or_else(|| panic!("9 refusal lines: {}", s.logs()));
    assert!(logs.contains("host not allowed"), "{logs}");
}

#[test]
fn ops_routes_check_host_and_origin_on_the_mcp_listener() {
    ops_routes_check_host_and_origin(false);
}

#[test]
fn ops_routes_check_host_and_origin_on_the_admin_listener() {
    ops_routes_check_host_and_origin(true);
}
