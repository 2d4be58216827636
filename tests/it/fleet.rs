//! Issue 19: instances sharing their state on Redis (`--storage-url`), here on
//! a Valkey server the tests start (`harness::Valkey`): a kv write through one
//! instance is read through another, within one exact quota; a session minted on
//! one is served by another; a Redis that stops answering is reported and refused
//! at once, and left behind once it answers again; a wrong URL, password, data
//! format or durability stops the start with one line. Tasks: any instance
//! answers `tasks/get`, `tasks/cancel` and `tasks/update` for a task another one
//! runs; an instance starting leaves the others' tasks alone; a killed instance's
//! tasks fail once their lease runs out.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{emcee_command, text, with_meta, Client, Era, Launch, Server, Valkey, MODERN};
use crate::tasks;

fn instance(valkey: &Valkey, extra: &[&str]) -> Server {
    let url = valkey.url(0);
    let mut args = vec!["--storage-url", url.as_str()];
    args.extend_from_slice(extra);
    Server::launch(Launch {
        args: &args,
        ..Launch::default()
    })
}

fn call(s: &Server, session: &str, id: u64, tool: &str, args: Value) -> Value {
    s.request(
        session,
        id,
        "tools/call",
        json!({"name": tool, "arguments": args}),
    )
}

#[test]
fn kv_written_through_one_instance_is_read_through_another() {
    let valkey = Valkey::start(&[]);
    let a = instance(&valkey, &[]);
    let b = instance(&valkey, &[]);
    let (sa, sb) = (a.session(), b.session());
    a.call_ok(
        &sa,
        1,
        "kv_set",
        json!({"key": "greeting", "value": "hello"}),
    );
    a.call_ok(&sa, 2, "kv_set", json!({"key": "gre2", "value": "x"}));
    let got = b.call_ok(&sb, 3, "kv_get", json!({"key": "greeting"}));
    assert!(text(&got).contains(r#""value":"hello""#), "{got}");
    let listed = b.call_ok(&sb, 4, "kv_list", json!({"prefix": "gre"}));
    let listed = text(&listed);
    assert!(
        listed.contains("greeting") && listed.contains("gre2"),
        "{listed}"
    );
    b.call_ok(&sb, 5, "kv_delete", json!({"key": "greeting"}));
    let gone = call(&a, &sa, 6, "kv_get", json!({"key": "greeting"}));
    assert!(!text(&gone["result"]).contains("hello"), "{gone}");
}

#[test]
fn the_kv_quota_is_exact_across_instances() {
    let valkey = Valkey::start(&[]);
    // 10,000 bytes of keys and values in all; each write adds 1,000.
    let a = instance(&valkey, &["--limit", "kv_max_bytes=10000"]);
    let b = instance(&valkey, &["--limit", "kv_max_bytes=10000"]);
    let value = "v".repeat(996);
    let written = std::thread::scope(|scope| {
        let jobs: Vec<_> = [(&a, "a"), (&b, "b")]
            .into_iter()
            .map(|(s, name)| {
                let value = value.clone();
                scope.spawn(move || {
                    let session = s.session();
                    (0u64..10)
                        .filter(|i| {
                            let r = call(
                                s,
                                &session,
                                *i + 10,
                                "kv_set",
                                json!({"key": format!("{name}{i:03}"), "value": value}),
                            );
                            r["result"]["isError"] != true
                        })
                        .count()
                })
            })
            .collect();
        jobs.into_iter()
            .map(|j| j.join().expect("a writer"))
            .sum::<usize>()
    });
    assert_eq!(written, 10, "20 writes of 1,000 bytes into 10,000");
    let bytes = valkey
        .command("GET emcee:{kv:kv}:bytes")
        .unwrap_or_default();
    assert_eq!(bytes, "10000");
}

#[test]
fn a_session_minted_on_one_instance_is_served_by_another() {
    let valkey = Valkey::start(&[]);
    let a = instance(&valkey, &[]);
    let b = instance(&valkey, &[]);
    let session = a.session();
    assert_eq!(
        text(&b.call_ok(&session, 2, "echo", json!({"text": "on b"}))),
        "on b"
    );
    // Ended on B: its record is gone, and both B and A (where it still lived)
    // answer 404 at once: no request slips in before A hears of it.
    assert_eq!(b.delete(&session).status, 200);
    assert_eq!(
        valkey
            .command(&format!("EXISTS emcee:session:{session}"))
            .as_deref(),
        Some(":0")
    );
    for s in [&a, &b, &a] {
        let r = s.post(
            Some(&session),
            &crate::harness::call_body(3, "echo", json!({"text": "x"})),
            &[],
        );
        assert_eq!(r.status, 404, "{r:?}");
    }
    // B answered the DELETE once A had closed it (A acknowledged on the bus).
    assert!(!b.logs().contains("not confirmed"), "{}", b.logs());
}

/// A session-era call's SSE stream dropped on A is resumed on B with
/// `Last-Event-ID`: B replays what A logged (progress and the result).
#[test]
fn a_stream_dropped_on_one_instance_resumes_on_another() {
    let valkey = Valkey::start(&[]);
    let a = instance(&valkey, &[]);
    let b = instance(&valkey, &[]);
    let session = a.session();
    let call = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": {
        "name": "sleep", "arguments": {"ms": 600}, "_meta": {"progressToken": "p"}}});
    let mut st = a.post_open(
        Some(&session),
        &call.to_string(),
        &[("Accept", "text/event-stream")],
    );
    assert_eq!(st.status, 200);
    let primed = st.next_event().expect("the priming event");
    let last = primed.id.clone().expect("an event id");
    assert!(last.ends_with("-0"), "{primed:?}");
    drop(st); // the connection drops; the call goes on, its events are logged
    std::thread::sleep(Duration::from_millis(1200));
    let mut resumed = b.get_stream(&session, Some(&last));
    let (answer, before) = resumed.until_response(&json!(9));
    assert_eq!(text(&answer["result"]), "slept 600 ms", "{answer}");
    assert!(
        before
            .iter()
            .any(|m| m["method"] == "notifications/progress"),
        "{before:?}"
    );
    // Two instances never number two streams alike.
    let mut other = b.post_open(
        Some(&session),
        &crate::harness::call_body(10, "echo", json!({"text": "x"})),
        &[("Accept", "text/event-stream")],
    );
    let first = other.next_event().expect("an event");
    let stream_of = |id: &str| id.split('-').next().map(str::to_owned);
    assert_ne!(
        stream_of(first.id.as_deref().unwrap_or("")),
        stream_of(&last),
        "{first:?}"
    );
}

/// The replay log on Redis keeps each session within its share, its oldest
/// first, and expires with `limits.event_ttl_ms`; a DELETE removes it.
#[test]
fn the_replay_log_on_redis_keeps_each_session_within_its_share() {
    let valkey = Valkey::start(&[]);
    let a = instance(
        &valkey,
        &[
            "--limit",
            "event_log_session_max=3",
            "--limit",
            "event_ttl_ms=60000",
        ],
    );
    let session = a.session();
    for id in 0..5u64 {
        let mut st = a.post_open(
            Some(&session),
            &crate::harness::call_body(id + 10, "echo", json!({"text": format!("e{id}")})),
            &[("Accept", "text/event-stream")],
        );
        st.until_response(&json!(id + 10));
    }
    let key = format!("emcee:{{ev:{session}}}:log");
    assert_eq!(
        valkey.command(&format!("XLEN {key}")).as_deref(),
        Some(":3")
    );
    let ttl = valkey
        .command(&format!("PTTL {key}"))
        .and_then(|t| t.trim_start_matches(':').parse::<i64>().ok())
        .unwrap_or(-1);
    assert!((1..=60_000).contains(&ttl), "{ttl}");
    assert_eq!(a.delete(&session).status, 200);
    assert_eq!(
        valkey.command(&format!("EXISTS {key}")).as_deref(),
        Some(":0")
    );
}

/// A session-era subscriber on A and a 2026-07-28 listener on A hear of a kv
/// change made through B.
#[test]
fn subscribers_and_listeners_hear_of_changes_made_through_another_instance() {
    let valkey = Valkey::start(&[]);
    let a = instance(&valkey, &[]);
    let b = instance(&valkey, &[]);
    let session = a.session();
    let mut get = a.get_stream(&session, None);
    let primed = get.next_event().expect("the priming event");
    assert!(primed.data.is_empty(), "{primed:?}");
    let sub = a.request(
        &session,
        1,
        "resources/subscribe",
        json!({"uri": "kv://watched"}),
    );
    assert_eq!(sub["result"], json!({}), "{sub}");
    let listen = json!({"jsonrpc": "2.0", "id": 7, "method": "subscriptions/listen",
        "params": with_meta(json!({"notifications": {"resourceSubscriptions": ["kv://watched"]}}))});
    let mut listener = a.post_open(
        None,
        &listen.to_string(),
        &[
            ("MCP-Protocol-Version", MODERN),
            ("Mcp-Method", "subscriptions/listen"),
        ],
    );
    assert_eq!(listener.status, 200);
    let ack = listener.next_event().expect("the acknowledgement").json();
    assert_eq!(
        ack["method"], "notifications/subscriptions/acknowledged",
        "{ack}"
    );
    let other = b.session();
    b.call_ok(&other, 2, "kv_set", json!({"key": "watched", "value": "1"}));
    let ev = get
        .next_event()
        .expect("an update on A's GET stream")
        .json();
    assert_eq!(ev["method"], "notifications/resources/updated", "{ev}");
    assert_eq!(ev["params"]["uri"], "kv://watched", "{ev}");
    let ev = listener
        .next_event()
        .expect("an update on A's listen stream")
        .json();
    assert_eq!(ev["method"], "notifications/resources/updated", "{ev}");
    assert_eq!(ev["params"]["uri"], "kv://watched", "{ev}");
}

#[test]
fn a_redis_that_stops_answering_is_refused_at_once_and_left_behind_when_it_answers() {
    let valkey = Valkey::start(&[]);
    let s = Server::launch(Launch {
        config: Some("[storage]\nredis_timeout_ms = 500\nretry_ms = 200\n"),
        args: &["--storage-url", &valkey.url(0), "--fixtures", "conformance"],
        ..Launch::default()
    });
    let session = s.session();
    s.call_ok(&session, 1, "kv_set", json!({"key": "k", "value": "kept"}));
    valkey.pause(true);
    // The first call waits out the deadline; the ones after are refused at once.
    let first = call(&s, &session, 2, "kv_get", json!({"key": "k"}));
    assert_eq!(first["result"]["isError"], true, "{first}");
    let started = Instant::now();
    let again = call(&s, &session, 3, "kv_get", json!({"key": "k"}));
    assert_eq!(again["result"]["isError"], true, "{again}");
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "{:?}",
        started.elapsed()
    );
    assert!(text(&again["result"]).contains("storage"), "{again}");
    // Tools that need no storage go on; /health names storage; a change the
    // other instances cannot be told of is counted.
    assert_eq!(
        text(&s.call_ok(&session, 4, "echo", json!({"text": "on"}))),
        "on"
    );
    s.call_ok(&session, 40, "test_trigger_tool_change", json!({}));
    let metrics = s.get("/metrics").body;
    let dropped = metrics
        .lines()
        .find_map(|l| l.strip_prefix("mcp_fleet_bus_dropped_total "))
        .and_then(|v| v.parse::<f64>().ok())
        .unwrap_or(0.0);
    assert!(dropped >= 1.0, "{metrics}");
    let health = s.get("/health");
    assert_eq!(health.status, 503, "{health:?}");
    assert_eq!(
        health.json()["checks"]["storage"]["status"],
        "fail",
        "{health:?}"
    );
    // Back: recovered by itself, nothing acknowledged lost.
    valkey.pause(false);
    let deadline = Instant::now() + Duration::from_secs(5);
    while s.get("/health").status != 200 {
        assert!(Instant::now() < deadline, "{}", s.logs());
        std::thread::sleep(Duration::from_millis(100));
    }
    let kept = s.call_ok(&session, 5, "kv_get", json!({"key": "k"}));
    assert!(text(&kept).contains(r#""value":"kept""#), "{kept}");
    let logs = s.logs();
    assert!(logs.contains("storage failing"), "{logs}");
    assert!(logs.contains("storage recovered"), "{logs}");
    drop(valkey);
}

/// `emcee serve` with `args` (and a config file holding `config`): its exit code
/// and stderr, once it stops; killed (a failed test) if it runs for 15 s.
fn refused_start(args: &[&str], config: Option<&str>) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = emcee_command();
    cmd.arg("serve")
        .args(["--bind", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    if let Some(text) = config {
        cmd.arg("--config")
            .arg(crate::harness::write_config(dir.path(), text));
    }
    let mut child = cmd.spawn().expect("start emcee");
    let deadline = Instant::now() + Duration::from_secs(15);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("emcee serve {args:?} did not stop");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_wrong_url_password_format_or_durability_stops_the_start_with_one_line() {
    // A malformed URL: a configuration error.
    let (code, err) = refused_start(&["--storage-url", "http://nope"], None);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("storage.url"), "{err}");
    // Nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a port");
    let (code, err) = refused_start(
        &["--storage-url", &format!("redis://127.0.0.1:{port}/0")],
        None,
    );
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{port}")), "{err}");
    // A password refused: named, never shown.
    let guarded = Valkey::start(&["--requirepass", "right-one"]);
    let (code, err) = refused_start(
        &[
            "--storage-url",
            &format!("redis://:wrong-secret@127.0.0.1:{}/0", guarded.port),
        ],
        None,
    );
    assert_eq!(code, Some(3), "{err}");
    assert!(!err.contains("wrong-secret"), "{err}");
    assert!(
        err.to_ascii_lowercase().contains("pass") || err.contains("AUTH"),
        "{err}"
    );
    // Another format in the database.
    let other = Valkey::start(&[]);
    assert_eq!(other.command("SET emcee:format 9").as_deref(), Some("+OK"));
    let (code, err) = refused_start(&["--storage-url", &other.url(0)], None);
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains(r#"format \"9\""#), "{err}");
    assert_eq!(
        err.lines().filter(|l| !l.trim().is_empty()).count(),
        1,
        "{err:?}"
    );
    // The same server's database 1 is another fleet's: it starts there.
    let elsewhere = Server::start(&["--storage-url", &other.url(1)]);
    assert_eq!(elsewhere.get("/health").status, 200);
    drop(elsewhere);
    // Durability the server cannot give.
    let (code, err) = refused_start(
        &["--storage-url", &other.url(1)],
        Some("[storage]\nredis_durability = \"aof\"\n"),
    );
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("appendonly"), "{err}");
    let (code, err) = refused_start(
        &["--storage-url", &other.url(1)],
        Some("[storage]\nredis_durability = \"sometimes\"\n"),
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("redis_durability"), "{err}");
}

#[test]
fn fsync_durability_confirms_writes_on_the_servers_disk() {
    let valkey = Valkey::start(&["--appendonly", "yes", "--appendfsync", "everysec"]);
    let s = Server::launch(Launch {
        config: Some("[storage]\nredis_durability = \"fsync\"\n"),
        args: &["--storage-url", &valkey.url(0)],
        ..Launch::default()
    });
    let session = s.session();
    s.call_ok(
        &session,
        1,
        "kv_set",
        json!({"key": "k", "value": "durable"}),
    );
    let got = s.call_ok(&session, 2, "kv_get", json!({"key": "k"}));
    assert!(text(&got).contains(r#""value":"durable""#), "{got}");
}

/// Three instances on one Valkey behind the shipped `deploy/nginx-fleet.conf`
/// (round-robin, no affinity), started for a test; dropped in order.
struct Fleet {
    nginx: Option<crate::deploy::Nginx>,
    servers: Vec<Server>,
    valkey: Valkey,
    url: String,
    _dir: tempfile::TempDir,
}

impl Fleet {
    /// The shipped `deploy/fleet.toml` (fsync durability: Valkey with its
    /// append-only file) and `extra` flags.
    fn start(extra: &[&str]) -> Fleet {
        let valkey = Valkey::start(&["--appendonly", "yes", "--appendfsync", "everysec"]);
        let dir = tempfile::tempdir().expect("tempdir");
        let key = dir.path().join("mrtr.key");
        std::fs::write(&key, [7u8; 32]).expect("a key file");
        let key = key.to_str().expect("a utf-8 path").to_owned();
        let config = crate::deploy::deploy("fleet.toml");
        let config = config.to_str().expect("a utf-8 path").to_owned();
        let mut args = vec!["--mrtr-key-file", key.as_str(), "--config", config.as_str()];
        args.extend_from_slice(extra);
        let servers: Vec<Server> = (0..3).map(|_| instance(&valkey, &args)).collect();
        let shipped = std::fs::read_to_string(crate::deploy::deploy("nginx-fleet.conf"))
            .expect("deploy/nginx-fleet.conf");
        let conf = ["emcee-a:8080", "emcee-b:8080", "emcee-c:8080"]
            .iter()
            .zip(&servers)
            .fold(shipped, |conf, (name, s)| conf.replace(name, &s.addr));
        let port = crate::deploy::free_port();
        let nginx = crate::deploy::run_nginx(dir.path(), &conf, port);
        Fleet {
            nginx: Some(nginx),
            servers,
            valkey,
            url: format!("http://127.0.0.1:{port}/mcp"),
            _dir: dir,
        }
    }

    /// POST `body` through nginx: status, `Mcp-Session-Id`, the JSON answer.
    fn post(&self, headers: &[(&str, &str)], body: &Value) -> (u16, Option<String>, Value) {
        let mut req = ureq::post(&self.url)
            .set("content-type", "application/json")
            .set("accept", "application/json");
        for (k, v) in headers {
            req = req.set(k, v);
        }
        let resp = match req.send_string(&body.to_string()) {
            Ok(r) | Err(ureq::Error::Status(_, r)) => r,
            Err(e) => return (0, None, json!({"transport": e.to_string()})),
        };
        let status = resp.status();
        let id = resp.header("mcp-session-id").map(str::to_owned);
        let v = resp
            .into_string()
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or(Value::Null);
        (status, id, v)
    }

    /// A 2026-07-28 `tools/call` through nginx: its result.
    fn modern_call(&self, id: u64, tool: &str, args: Value) -> Value {
        let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": with_meta(json!({"name": tool, "arguments": args}))});
        let (status, _, v) = self.post(
            &[
                ("mcp-protocol-version", MODERN),
                ("mcp-method", "tools/call"),
                ("mcp-name", tool),
            ],
            &body,
        );
        assert_eq!(status, 200, "{v}");
        v["result"].clone()
    }

    /// A session-era session opened through nginx.
    fn session(&self) -> String {
        let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "fleet", "version": "1"}}});
        let (status, id, v) = self.post(&[], &init);
        assert_eq!(status, 200, "{v}");
        let id = id.expect("a session id");
        let (status, _, _) = self.post(
            &[
                ("mcp-session-id", &id),
                ("mcp-protocol-version", "2025-11-25"),
            ],
            &json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        );
        assert_eq!(status, 202);
        id
    }

    /// A session-era `tools/call` through nginx: the status and the answer.
    fn session_call(&self, session: &str, id: u64, tool: &str, args: Value) -> (u16, Value) {
        let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": tool, "arguments": args}});
        let (status, _, v) = self.post(
            &[
                ("mcp-session-id", session),
                ("mcp-protocol-version", "2025-11-25"),
            ],
            &body,
        );
        (status, v)
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.nginx.take();
        self.servers.clear();
        let _ = &self.valkey;
    }
}

/// How many `tools/call` requests instance `s` answered.
fn calls_served(s: &Server) -> f64 {
    s.get("/metrics")
        .body
        .lines()
        .filter(|l| l.starts_with("mcp_requests_total{method=\"tools/call\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The issue's three-instance test: requests go round-robin and every instance
/// sees the others' writes; session-era sessions spread; one instance is killed
/// (`kill -9`) under load and every session goes on through the others, no 404,
/// no acknowledged write lost; a listener on one instance hears a change made
/// through another.
#[test]
fn three_instances_behind_nginx_are_one_server_to_their_clients() {
    let mut fleet = Fleet::start(&[]);
    // 2026-07-28: round-robin, one store.
    let set = fleet.modern_call(1, "kv_set", json!({"key": "shared", "value": "v1"}));
    assert_ne!(set["isError"], true, "{set}");
    for id in 2..8 {
        let got = fleet.modern_call(id, "kv_get", json!({"key": "shared"}));
        assert!(text(&got).contains(r#""value":"v1""#), "{got}");
    }
    assert!(
        fleet.servers.iter().all(|s| calls_served(s) >= 1.0),
        "every instance served some: {:?}",
        fleet.servers.iter().map(calls_served).collect::<Vec<_>>()
    );
    // A listener, on whichever instance nginx picks, hears changes made through
    // any: three writes, round-robin, reach at least two other instances.
    let listen = json!({"jsonrpc": "2.0", "id": 50, "method": "subscriptions/listen",
        "params": with_meta(json!({"notifications": {"resourceSubscriptions": ["kv://heard"]}}))});
    let resp = ureq::post(&fleet.url)
        .set("content-type", "application/json")
        .set("accept", "application/json, text/event-stream")
        .set("mcp-protocol-version", MODERN)
        .set("mcp-method", "subscriptions/listen")
        .timeout(Duration::from_secs(10))
        .send_string(&listen.to_string())
        .expect("a listen stream");
    let mut events = std::io::BufReader::new(resp.into_reader());
    let mut heard = 0;
    for id in 60..63 {
        fleet.modern_call(
            id,
            "kv_set",
            json!({"key": "heard", "value": id.to_string()}),
        );
    }
    let mut line = String::new();
    while heard < 3 {
        line.clear();
        let n = std::io::BufRead::read_line(&mut events, &mut line).expect("the stream");
        assert!(n > 0, "the listen stream ended after {heard} updates");
        if line.contains("notifications/resources/updated") {
            heard += 1;
        }
    }
    // Session-era sessions spread over every instance; under load, one instance
    // is killed.
    let sessions: Vec<String> = (0..4).map(|_| fleet.session()).collect();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (acked, lost) = std::thread::scope(|scope| {
        let workers: Vec<_> = sessions
            .iter()
            .enumerate()
            .map(|(t, session)| {
                let (fleet, stop) = (&fleet, &stop);
                scope.spawn(move || {
                    let (mut acked, mut not_found, mut failed) = (Vec::new(), 0, 0);
                    let mut i = 0u64;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        i += 1;
                        let key = format!("w{t}-{i}");
                        let (status, v) = fleet.session_call(
                            session,
                            100 + i,
                            "kv_set",
                            json!({"key": key, "value": i.to_string()}),
                        );
                        match status {
                            200 if v["result"]["isError"] != true => acked.push((key, i)),
                            404 => not_found += 1,
                            _ => failed += 1,
                        }
                    }
                    (acked, not_found, failed)
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(800));
        let victim = &fleet.servers[1];
        crate::harness::send_signal(victim.pid(), "KILL");
        std::thread::sleep(Duration::from_millis(1500));
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut acked = Vec::new();
        let (mut not_found, mut failed) = (0, 0);
        for w in workers {
            let (a, n, f) = w.join().expect("a worker");
            acked.extend(a);
            not_found += n;
            failed += f;
        }
        assert_eq!(not_found, 0, "a session was lost ({failed} other failures)");
        // A request in flight on the killed instance may fail (502): one per worker.
        assert!(failed <= sessions.len(), "{failed} failed requests");
        (acked, failed)
    });
    assert!(acked.len() > 20, "only {} writes acknowledged", acked.len());
    let _ = lost;
    for (key, value) in &acked {
        let got = fleet.modern_call(9, "kv_get", json!({"key": key}));
        assert!(
            text(&got).contains(&format!(r#""value":"{value}""#)),
            "{key}: {got}"
        );
    }
    // Every session goes on after the kill.
    for session in &sessions {
        let (status, v) = fleet.session_call(session, 999, "echo", json!({"text": "on"}));
        assert_eq!(status, 200, "{v}");
        assert_eq!(text(&v["result"]), "on", "{v}");
    }
    fleet.servers.remove(1);
}

/// The official conformance suite, both revisions, against three instances on one
/// Valkey behind `deploy/nginx-fleet.conf` (round-robin, no affinity): a fleet no
/// client can tell from one server.
#[test]
fn the_conformance_suite_passes_against_a_fleet_behind_nginx() {
    let fleet = Fleet::start(&["--fixtures", "conformance"]);
    crate::conformance::suite_passes_both_revisions(Some(&fleet.url));
}

/// A 2026-07-28 client of an instance on `valkey` started with `extra` (and the
/// conformance fixtures, whose `confirm_delete` asks the client).
fn modern(valkey: &Valkey, extra: &[&str]) -> Client {
    let mut args = vec!["--fixtures", "conformance"];
    args.extend_from_slice(extra);
    Client::over_http(Era::Modern, instance(valkey, &args))
}

/// A task (the built-in `sleep` of `ms`) created through `c`: its id.
fn sleeping_task(c: &mut Client, id: u64, ms: u64) -> String {
    let r = tasks::call(c, id, "sleep", json!({ "ms": ms }), tasks::with_ext());
    assert_eq!(r["result"]["resultType"], "task", "{r}");
    r["result"]["taskId"].as_str().expect("a taskId").to_owned()
}

/// Issue 19: `tasks/get` on any instance shows a task that another one runs, and
/// its result once it ends.
#[test]
fn a_task_run_by_one_instance_is_answered_by_another() {
    let valkey = Valkey::start(&[]);
    let mut a = modern(&valkey, &[]);
    let mut b = modern(&valkey, &[]);
    let task = sleeping_task(&mut a, 1, 800);
    let r = tasks::task_op(&mut b, 2, "tasks/get", &task);
    assert_eq!(r["result"]["status"], "working", "{r}");
    let done = tasks::wait_for(&mut b, &task, "completed");
    assert_eq!(done["result"]["status"], "completed", "{done}");
    assert_eq!(text(&done["result"]["result"]), "slept 800 ms", "{done}");
}

/// Issue 19, the bug of the first part: an instance starting failed, as left
/// over by a stopped process, the tasks the other live instances were running.
#[test]
fn an_instance_starting_does_not_fail_the_tasks_others_run() {
    let valkey = Valkey::start(&[]);
    let mut a = modern(&valkey, &[]);
    let task = sleeping_task(&mut a, 1, 2_500);
    let mut c = modern(&valkey, &[]);
    let r = tasks::task_op(&mut c, 2, "tasks/get", &task);
    assert_eq!(r["result"]["status"], "working", "{r}");
    assert!(!c.logs().contains("marked failed"), "{}", c.logs());
    let done = tasks::wait_for(&mut c, &task, "completed");
    assert_eq!(text(&done["result"]["result"]), "slept 2500 ms", "{done}");
}

/// Issue 19: `tasks/cancel` through an instance that does not run the task
/// reaches the one that does (it polls its tasks' records) within a few polls.
#[test]
fn tasks_cancel_through_another_instance_stops_the_task() {
    let valkey = Valkey::start(&[]);
    let poll = ["--limit", "task_poll_interval_ms=200"];
    let mut a = modern(&valkey, &poll);
    let mut b = modern(&valkey, &poll);
    let task = sleeping_task(&mut a, 1, 30_000);
    let started = Instant::now();
    let r = tasks::task_op(&mut b, 2, "tasks/cancel", &task);
    assert!(r.get("result").is_some(), "{r}");
    let ended = tasks::wait_for(&mut b, &task, "cancelled");
    assert_eq!(ended["result"]["status"], "cancelled", "{ended}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    // Its instance stopped the handler: the end is its Call's.
    let r = tasks::task_op(&mut a, 3, "tasks/get", &task);
    assert_eq!(r["result"]["status"], "cancelled", "{r}");
    assert_eq!(
        r["result"]["statusMessage"], "cancelled by tasks/cancel",
        "{r}"
    );
}

/// Issue 19: an instance killed while it runs a task: once the task's lease runs
/// out, the survivors report it failed, saying why (never `working` for ever).
#[test]
fn a_task_whose_instance_is_killed_fails_once_its_lease_runs_out() {
    let valkey = Valkey::start(&[]);
    let lease = ["--limit", "task_lease_ms=1000"];
    let mut a = modern(&valkey, &lease);
    let mut b = modern(&valkey, &lease);
    let task = sleeping_task(&mut a, 1, 60_000);
    let killed = Instant::now();
    a.server().expect("HTTP").signal("KILL");
    let r = tasks::task_op(&mut b, 2, "tasks/get", &task);
    if killed.elapsed() < Duration::from_millis(500) {
        assert_eq!(r["result"]["status"], "working", "within its lease: {r}");
    }
    let failed = tasks::wait_for(&mut b, &task, "failed");
    assert_eq!(failed["result"]["status"], "failed", "{failed}");
    assert!(
        killed.elapsed() < Duration::from_secs(4),
        "{:?}",
        killed.elapsed()
    );
    let why = failed["result"]["statusMessage"]
        .as_str()
        .unwrap_or_default();
    assert!(why.contains("lease ran out"), "{failed}");
    assert_eq!(failed["result"]["error"]["code"], -32603, "{failed}");
    // Ended once: the record says so to every instance from now on.
    let again = tasks::task_op(&mut b, 3, "tasks/get", &task);
    assert_eq!(
        again["result"]["lastUpdatedAt"], failed["result"]["lastUpdatedAt"],
        "{again}"
    );
    assert!(b.logs().contains("lease ran out"), "{}", b.logs());
}

/// Issue 19: `tasks/update` through an instance that does not run the task: the
/// answers reach the handler waiting on the other one.
#[test]
fn tasks_update_through_another_instance_reaches_the_waiting_handler() {
    let valkey = Valkey::start(&[]);
    let poll = ["--limit", "task_poll_interval_ms=200"];
    let mut a = modern(&valkey, &poll);
    let mut b = modern(&valkey, &poll);
    let r = tasks::call(
        &mut a,
        1,
        "confirm_delete",
        json!({"filename": "a.txt"}),
        tasks::with_ext(),
    );
    let task = r["result"]["taskId"].as_str().expect("a task").to_owned();
    let waiting = tasks::wait_for(&mut b, &task, "input_required");
    assert_eq!(
        waiting["result"]["inputRequests"]["confirm"]["method"], "elicitation/create",
        "{waiting}"
    );
    // A malformed answer is refused where it is given.
    let r = b.request_id(
        2,
        "tasks/update",
        json!({"taskId": task, "inputResponses": {"confirm": 7}, "_meta": tasks::with_ext()}),
    );
    assert_eq!(crate::harness::error_code(&r), -32602, "{r}");
    let r = b.request_id(
        3,
        "tasks/update",
        json!({"taskId": task, "inputResponses": {"confirm": {"action": "accept", "content": {"confirm": true}}},
            "_meta": tasks::with_ext()}),
    );
    assert!(r.get("result").is_some(), "{r}");
    // Answered at once, as on the instance that runs it.
    let r = tasks::task_op(&mut b, 4, "tasks/get", &task);
    assert!(r["result"]["inputRequests"].get("confirm").is_none(), "{r}");
    assert_ne!(r["result"]["status"], "input_required", "{r}");
    let done = tasks::wait_for(&mut b, &task, "completed");
    assert_eq!(text(&done["result"]["result"]), "a.txt: deleted", "{done}");
}

/// Issue 19: an instance starting fails the tasks of an instance that was killed
/// once their lease ran out, and only those: a live instance's task goes on.
#[test]
fn an_instance_starting_fails_only_the_tasks_of_a_stopped_one() {
    let valkey = Valkey::start(&[]);
    let lease = ["--limit", "task_lease_ms=1000"];
    let mut a = modern(&valkey, &lease);
    let mut b = modern(&valkey, &lease);
    let dead = sleeping_task(&mut a, 1, 60_000);
    let alive = sleeping_task(&mut b, 2, 60_000);
    a.server().expect("HTTP").signal("KILL");
    std::thread::sleep(Duration::from_millis(1_500));
    let mut c = modern(&valkey, &lease);
    let deadline = Instant::now() + Duration::from_secs(3);
    while !c.logs().contains("marked failed") {
        assert!(Instant::now() < deadline, "{}", c.logs());
        std::thread::sleep(Duration::from_millis(50));
    }
    let logs = c.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("marked failed"))
        .unwrap_or_default();
    assert!(line.contains(r#""count":1"#), "{line}");
    let r = tasks::task_op(&mut c, 3, "tasks/get", &dead);
    assert_eq!(r["result"]["status"], "failed", "{r}");
    assert!(
        r["result"]["statusMessage"]
            .as_str()
            .unwrap_or_default()
            .contains("lease ran out"),
        "{r}"
    );
    let r = tasks::task_op(&mut c, 4, "tasks/get", &alive);
    assert_eq!(r["result"]["status"], "working", "{r}");
}

/// Valkey restarted under a running fleet: both instances recover by themselves,
/// and the bus is subscribed again (a listener on A hears a change made through
/// B after the restart).
#[test]
fn the_bus_is_subscribed_again_after_redis_restarts() {
    let mut valkey = Valkey::start(&[]);
    let config = "[storage]\nredis_timeout_ms = 500\nretry_ms = 200\n";
    let start = |v: &Valkey| {
        Server::launch(Launch {
            config: Some(config),
            args: &["--storage-url", &v.url(0)],
            ..Launch::default()
        })
    };
    let (a, b) = (start(&valkey), start(&valkey));
    let listen = json!({"jsonrpc": "2.0", "id": 7, "method": "subscriptions/listen",
        "params": with_meta(json!({"notifications": {"resourceSubscriptions": ["kv://after"]}}))});
    let mut listener = a.post_open(
        None,
        &listen.to_string(),
        &[
            ("MCP-Protocol-Version", MODERN),
            ("Mcp-Method", "subscriptions/listen"),
        ],
    );
    assert_eq!(listener.status, 200);
    listener.next_event().expect("the acknowledgement");
    // Restarted without persistence: what it held is gone (sessions too), so the
    // write goes through B in the sessionless 2026-07-28 revision.
    valkey.restart();
    let set = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
        "params": with_meta(json!({"name": "kv_set", "arguments": {"key": "after", "value": "1"}}))});
    // Each instance notices (a command fails, or its connection drops) and
    // recovers; kv_set through B is retried until storage works again.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let headers = [
            ("MCP-Protocol-Version", MODERN),
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", "kv_set"),
            ("Accept", "application/json"),
        ];
        let r = b.post(None, &set.to_string(), &headers).json();
        if r.get("result").is_some() && r["result"]["isError"] != true {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "kv_set never recovered: {r}\n{}",
            b.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let ev = listener
        .next_event()
        .expect("an update after the restart")
        .json();
    assert_eq!(ev["params"]["uri"], "kv://after", "{ev}");
}
