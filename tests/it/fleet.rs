//! Issue 19: instances sharing their state on Redis (`--storage-url`), here on
//! a Valkey server the tests start (`harness::Valkey`): a kv write through one
//! instance is read through another, within one exact quota; a session minted on
//! one is served by another; a Redis that stops answering is reported and refused
//! at once, and left behind once it answers again; a wrong URL, password, data
//! format or durability stops the start with one line.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{emcee_command, text, with_meta, Launch, Server, Valkey, MODERN};

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
    // Ended on B: its record is gone, and B answers 404. (A, where the session
    // still lives, hears of it once instances tell each other of ended sessions:
    // not yet.)
    assert_eq!(b.delete(&session).status, 200);
    assert_eq!(
        valkey
            .command(&format!("EXISTS emcee:session:{session}"))
            .as_deref(),
        Some(":0")
    );
    let r = b.post(
        Some(&session),
        &crate::harness::call_body(3, "echo", json!({"text": "x"})),
        &[],
    );
    assert_eq!(r.status, 404, "{r:?}");
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
        args: &["--storage-url", &valkey.url(0)],
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
    // Tools that need no storage go on; /health names storage.
    assert_eq!(
        text(&s.call_ok(&session, 4, "echo", json!({"text": "on"}))),
        "on"
    );
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
