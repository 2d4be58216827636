//! Issue 21: rate limits (`[rate]`: per principal, per address before auth or
//! without it, global; 429 + `Retry-After` with -32090 naming the limit, metered
//! only on `initialize` and `tools/call`, never over stdio, each batch item
//! counted, the key map bounded), a principal's shares of the session cap and of
//! the calls in flight, each principal's own kv namespace (sled and Redis), and
//! the safe default (command tools on a non-loopback bind need auth).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{modern_headers, run, with_meta, Reply, Server, Stdio, VERSION};

const TOKEN_A: &str = "alpha-token-0123456789";
const TOKEN_B: &str = "bravo-token-9876543210";
const TOKEN_C: &str = "charlie-token-5555555555";

/// A tokens file of A, B and C in a temp dir of its own (kept alive by the guard).
fn tokens() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tokens");
    std::fs::write(&path, format!("{TOKEN_A}\n{TOKEN_B}\n{TOKEN_C}\n")).expect("write tokens");
    (dir, path)
}

/// A server with the tokens file and `config` (its other tables).
fn serve_with_tokens(path: &std::path::Path, config: &str) -> Server {
    Server::with_config(&format!("[auth]\ntokens_file = {path:?}\n{config}"), &[])
}

/// A 2026-07-28 request with `token` (none: no `Authorization`).
fn modern(s: &Server, token: Option<&str>, id: u64, method: &str, params: Value) -> Reply {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": with_meta(params)});
    let mut headers: Vec<(String, String)> = vec![
        ("Content-Type".into(), "application/json".into()),
        (
            "Accept".into(),
            "application/json, text/event-stream".into(),
        ),
    ];
    headers.extend(modern_headers(&body));
    if let Some(token) = token {
        headers.push(("Authorization".into(), format!("Bearer {token}")));
    }
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    s.send("POST", &headers, Some(body.to_string().as_bytes()))
}

fn echo(s: &Server, token: Option<&str>, id: u64) -> Reply {
    modern(
        s,
        token,
        id,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "hi"}}),
    )
}

/// A session-era `initialize` with `token`.
fn initialize(s: &Server, token: Option<&str>, version: &str) -> Reply {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": version, "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"}}});
    let auth = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = auth
        .as_deref()
        .map(|a| vec![("Authorization", a)])
        .unwrap_or_default();
    s.post(None, &body.to_string(), &headers)
}

/// A session opened with `token`, initialized.
fn session(s: &Server, token: Option<&str>, version: &str) -> String {
    let r = initialize(s, token, version);
    assert_eq!(r.status, 200, "{r:?}");
    let id = r.header("mcp-session-id").expect("a session").to_owned();
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("MCP-Protocol-Version", version)];
    if let Some(a) = auth.as_deref() {
        headers.push(("Authorization", a));
    }
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert_eq!(s.post(Some(&id), &note.to_string(), &headers).status, 202);
    id
}

/// `mcp_rejected_total{reason}` as `/metrics` says (scraped with token A).
fn rejected(s: &Server, reason: &str) -> f64 {
    let url = format!("http://{}/metrics", s.addr);
    let r = s
        .open_url(
            "GET",
            &url,
            &[("Authorization", &format!("Bearer {TOKEN_A}"))],
            None,
        )
        .into_reply();
    assert_eq!(r.status, 200, "{r:?}");
    let series = format!("mcp_rejected_total{{reason=\"{reason}\"}}");
    r.body
        .lines()
        .find_map(|l| l.strip_prefix(&series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// The first log line containing every one of `what`, waiting up to 5 s.
fn log_line(s: &Server, what: &[&str]) -> String {
    s.log_line(what, Duration::from_secs(5))
}

/// A 429 refusal naming `limit`: `Retry-After` in whole seconds, a JSON-RPC
/// -32090 error with `id` naming the limit.
fn assert_rate_limited(r: &Reply, id: Value, limit: &str) {
    assert_eq!(r.status, 429, "{r:?}");
    let retry: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("whole seconds");
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    let body = r.json();
    assert_eq!(body["id"], id, "{body}");
    assert_eq!(body["error"]["code"], -32090, "{body}");
    let message = body["error"]["message"].as_str().expect("a message");
    assert!(message.contains(limit), "{message}");
    assert_eq!(body["error"]["data"]["limit"], limit, "{body}");
    assert_eq!(body["error"]["data"]["retryAfterSeconds"], retry, "{body}");
}

#[test]
fn a_principal_past_its_rate_gets_429_and_another_principal_does_not() {
    let (_dir, path) = tokens();
    let s = serve_with_tokens(
        &path,
        "[rate]\nper_principal_per_s = 1\nper_principal_burst = 2\n",
    );
    assert_eq!(echo(&s, Some(TOKEN_A), 1).status, 200);
    assert_eq!(echo(&s, Some(TOKEN_A), 2).status, 200);
    let r = echo(&s, Some(TOKEN_A), 3);
    assert_rate_limited(&r, json!(3), "rate.per_principal_per_s");
    // The session era counts the same bucket: initialize is metered.
    let r = initialize(&s, Some(TOKEN_A), VERSION);
    assert_rate_limited(&r, json!(1), "rate.per_principal_per_s");
    assert!(r.header("mcp-session-id").is_none());
    // B has its own bucket.
    assert_eq!(echo(&s, Some(TOKEN_B), 1).status, 200);
    assert_eq!(initialize(&s, Some(TOKEN_B), VERSION).status, 200);
    // A wrong token is refused before any bucket: 401, not 429.
    assert_eq!(echo(&s, Some("not-a-token"), 1).status, 401);

    assert_eq!(rejected(&s, "rate_limit"), 2.0);
    let line = log_line(&s, &["\"rate_limit\"", "rate.per_principal_per_s"]);
    assert!(line.contains("\"status\":429"), "{line}");
    assert!(!s.logs().contains(TOKEN_A), "no token in the log");
    // A second later the bucket has room again.
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(echo(&s, Some(TOKEN_A), 4).status, 200);
}

#[test]
fn without_auth_the_rate_is_per_address() {
    let s = Server::with_config("[rate]\nper_ip_per_s = 1\nper_ip_burst = 1\n", &[]);
    assert_eq!(echo(&s, None, 1).status, 200);
    let r = echo(&s, None, 2);
    assert_rate_limited(&r, json!(2), "rate.per_ip_per_s");
    // Another address has its own bucket.
    let call = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
        "params": with_meta(json!({"name": "echo", "arguments": {"text": "hi"}}))});
    let other = s.post_from("127.0.0.2".parse().unwrap(), &call);
    assert!(other["result"].is_object(), "{other}");
    let again = s.post_from("127.0.0.2".parse().unwrap(), &call);
    assert_eq!(again["error"]["code"], -32090, "{again}");
    assert_eq!(rejected(&s, "rate_limit"), 2.0);
    log_line(&s, &["\"rate_limit\"", "rate.per_ip_per_s"]);
}

#[test]
fn the_global_rate_counts_every_client() {
    let s = Server::with_config("[rate]\nglobal_per_s = 1\nglobal_burst = 2\n", &[]);
    assert_eq!(echo(&s, None, 1).status, 200);
    let call = json!({"jsonrpc": "2.0", "id": 5, "method": "tools/call",
        "params": with_meta(json!({"name": "echo", "arguments": {"text": "hi"}}))});
    let other = s.post_from("127.0.0.2".parse().unwrap(), &call);
    assert!(other["result"].is_object(), "{other}");
    let r = echo(&s, None, 3);
    assert_rate_limited(&r, json!(3), "rate.global_per_s");
    assert_eq!(rejected(&s, "rate_limit"), 1.0);
    log_line(&s, &["\"rate_limit\"", "rate.global_per_s"]);
}

#[test]
fn lists_discovery_ping_and_notifications_are_never_metered() {
    let s = Server::with_config(
        "[rate]\nper_ip_per_s = 1\nper_ip_burst = 1\nglobal_per_s = 1\nglobal_burst = 1\n",
        &[],
    );
    // The session era: initialize takes the one request of the burst...
    let id = session(&s, None, VERSION);
    // ...and what follows is not metered.
    for n in 0..5 {
        for method in ["tools/list", "ping", "resources/list", "prompts/list"] {
            let v = s.request(&id, 10 + n, method, json!({}));
            assert!(v["result"].is_object(), "{method}: {v}");
        }
    }
    // 2026-07-28: discovery, lists and ping.
    for n in 0..5 {
        // (2026-07-28 has no `ping`.)
        for method in [
            "server/discover",
            "tools/list",
            "prompts/list",
            "resources/templates/list",
        ] {
            let r = modern(&s, None, 20 + n, method, json!({}));
            assert_eq!(r.status, 200, "{method}: {r:?}");
            assert!(r.json()["result"].is_object(), "{method}: {r:?}");
        }
    }
    // A call is metered: the bucket is empty.
    let r = echo(&s, None, 30);
    assert_eq!(r.status, 429, "{r:?}");
    let body = json!({"jsonrpc": "2.0", "id": 31, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": "x"}}});
    let r = s.post(Some(&id), &body.to_string(), &[]);
    assert_eq!(r.status, 429, "{r:?}");
    assert_eq!(rejected(&s, "rate_limit"), 2.0);
}

#[test]
fn each_metered_item_of_a_batch_counts() {
    let s = Server::with_config("[rate]\nper_ip_per_s = 1\nper_ip_burst = 3\n", &[]);
    let version = "2025-03-26"; // the one version with batches
    let id = session(&s, None, version); // 1 of 3
    let call = |n: u64| {
        json!({"jsonrpc": "2.0", "id": n, "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": "x"}}})
    };
    let ping = |n: u64| json!({"jsonrpc": "2.0", "id": n, "method": "ping"});
    let headers = [
        ("MCP-Protocol-Version", version),
        ("Accept", "application/json"),
    ];
    // Two calls and a ping: 2 more, 3 of 3.
    let batch = json!([call(2), ping(3), call(4)]);
    let r = s.post(Some(&id), &batch.to_string(), &headers);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json().as_array().map(Vec::len), Some(3), "{r:?}");
    // A batch of pings only: not metered.
    let r = s.post(Some(&id), &json!([ping(5), ping(6)]).to_string(), &headers);
    assert_eq!(r.status, 200, "{r:?}");
    // One call more, in a batch: refused whole (id null: a batch's).
    let r = s.post(Some(&id), &json!([ping(7), call(8)]).to_string(), &headers);
    assert_rate_limited(&r, Value::Null, "rate.per_ip_per_s");
}

#[test]
fn the_key_map_is_bounded_by_max_keys_and_idle_keys_are_forgotten() {
    let (_dir, path) = tokens();
    let s = serve_with_tokens(
        &path,
        "[rate]\nper_principal_per_s = 1\nper_principal_burst = 1\nmax_keys = 2\n",
    );
    assert_eq!(echo(&s, Some(TOKEN_A), 1).status, 200);
    assert_eq!(echo(&s, Some(TOKEN_B), 1).status, 200);
    // Two keys still in use (their buckets not yet full again): a third is refused.
    let r = echo(&s, Some(TOKEN_C), 1);
    assert_rate_limited(&r, json!(1), "rate.max_keys");
    // Once A's and B's buckets are full again (governor forgets a key idle for its
    // emission interval past that: 2 s here), they are forgotten and C gets in.
    std::thread::sleep(Duration::from_millis(2200));
    assert_eq!(echo(&s, Some(TOKEN_C), 2).status, 200);
}

#[test]
fn stdio_is_never_rate_limited() {
    let mut c = Stdio::with_config(
        "[rate]\nglobal_per_s = 1\nglobal_burst = 1\nper_ip_per_s = 1\nper_ip_burst = 1\n",
        &[],
    );
    c.initialize(VERSION);
    for n in 0..10 {
        let r = c.call_ok(100 + n, "echo", json!({"text": "x"}));
        assert_eq!(crate::harness::text(&r), "x");
    }
}

#[test]
fn one_principal_holds_at_most_its_share_of_the_sessions() {
    let (_dir, path) = tokens();
    let s = serve_with_tokens(
        &path,
        "[limits]\nmax_sessions = 8\nmax_sessions_per_principal = 2\n",
    );
    let first = session(&s, Some(TOKEN_A), VERSION);
    let _second = session(&s, Some(TOKEN_A), VERSION);
    let r = initialize(&s, Some(TOKEN_A), VERSION);
    crate::harness::assert_busy(&r);
    let body = r.json();
    assert_eq!(body["error"]["code"], -32000, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("limits.max_sessions_per_principal = 2"),
        "{message}"
    );
    // B still gets a session.
    let _b = session(&s, Some(TOKEN_B), VERSION);
    assert_eq!(rejected(&s, "session_share"), 1.0);
    assert_eq!(rejected(&s, "session_cap"), 0.0);
    let line = log_line(&s, &["\"session_share\""]);
    assert!(line.contains("\"status\":503"), "{line}");
    // A ends one of its own: it may open one again.
    let auth = format!("Bearer {TOKEN_A}");
    let r = s.send(
        "DELETE",
        &[("Mcp-Session-Id", &first), ("Authorization", &auth)],
        None,
    );
    assert_eq!(r.status, 200, "{r:?}");
    let _third = session(&s, Some(TOKEN_A), VERSION);
}

#[test]
fn the_default_session_share_is_a_quarter_of_the_cap() {
    let (_dir, path) = tokens();
    let s = serve_with_tokens(&path, "[limits]\nmax_sessions = 8\n");
    let _a1 = session(&s, Some(TOKEN_A), VERSION);
    let _a2 = session(&s, Some(TOKEN_A), VERSION);
    crate::harness::assert_busy(&initialize(&s, Some(TOKEN_A), VERSION));
    let _b = session(&s, Some(TOKEN_B), VERSION);
}

#[test]
fn without_auth_one_client_may_still_fill_the_cap_alone() {
    let s = Server::with_config("[limits]\nmax_sessions = 4\n", &[]);
    for _ in 0..4 {
        let _ = session(&s, None, VERSION);
    }
    let r = initialize(&s, None, VERSION);
    crate::harness::assert_busy(&r);
    assert!(r.body.contains("too many sessions"), "{r:?}");
}

#[test]
fn one_principal_holds_at_most_its_share_of_the_calls_in_flight() {
    let (_dir, path) = tokens();
    let s = std::sync::Arc::new(serve_with_tokens(
        &path,
        "[limits]\nmax_in_flight_per_principal = 1\n",
    ));
    let slow = {
        let s = s.clone();
        std::thread::spawn(move || {
            modern(
                &s,
                Some(TOKEN_A),
                1,
                "tools/call",
                json!({"name": "sleep", "arguments": {"ms": 2500}}),
            )
        })
    };
    // Let A's sleep start first (a probe that came first would hold A's one
    // place and refuse the sleep instead).
    std::thread::sleep(Duration::from_millis(300));
    let deadline = Instant::now() + Duration::from_secs(5);
    let refused = loop {
        let r = echo(&s, Some(TOKEN_A), 2);
        let body = r.json();
        if body.get("error").is_some() {
            break body;
        }
        assert!(
            Instant::now() < deadline,
            "A's second call was never refused: {body}\n{}",
            s.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(refused["error"]["code"], -32000, "{refused}");
    assert_eq!(refused["error"]["data"]["scope"], "principal", "{refused}");
    assert_eq!(refused["error"]["data"]["limit"], 1, "{refused}");
    // B calls meanwhile.
    let r = echo(&s, Some(TOKEN_B), 3);
    assert!(r.json()["result"].is_object(), "{r:?}");
    let done = slow.join().expect("the slow call");
    assert!(done.body.contains("slept 2500 ms"), "{done:?}");
    // A's share is free again.
    assert!(echo(&s, Some(TOKEN_A), 4).json()["result"].is_object());
    assert!(rejected(&s, "in_flight_principal") >= 1.0);
    log_line(&s, &["\"in_flight_principal\""]);
}

/// `kv_set` then `kv_get` through the principals, on a server made by `start`.
fn kv_isolation(start: impl Fn(&str) -> Server) {
    let call = |s: &Server, token: &str, id: u64, tool: &str, args: Value| -> Value {
        let r = modern(
            s,
            Some(token),
            id,
            "tools/call",
            json!({"name": tool, "arguments": args}),
        );
        assert_eq!(r.status, 200, "{r:?}");
        r.json()["result"].clone()
    };
    let s = start("");
    let set = call(
        &s,
        TOKEN_A,
        1,
        "kv_set",
        json!({"key": "k", "value": "from A"}),
    );
    assert_ne!(set["isError"], true, "{set}");
    let got = call(&s, TOKEN_B, 2, "kv_get", json!({"key": "k"}));
    assert_eq!(got["isError"], true, "B cannot read A's key: {got}");
    let listed = call(&s, TOKEN_B, 3, "kv_list", json!({}));
    assert_eq!(listed["structuredContent"]["keys"], json!([]), "{listed}");
    call(
        &s,
        TOKEN_B,
        4,
        "kv_set",
        json!({"key": "k", "value": "from B"}),
    );
    let got = call(&s, TOKEN_A, 5, "kv_get", json!({"key": "k"}));
    assert_eq!(got["structuredContent"]["value"], "from A", "{got}");
    let got = call(&s, TOKEN_B, 6, "kv_get", json!({"key": "k"}));
    assert_eq!(got["structuredContent"]["value"], "from B", "{got}");
    drop(s);

    // Shared when configured.
    let s = start("shared_kv = true\n");
    call(
        &s,
        TOKEN_A,
        1,
        "kv_set",
        json!({"key": "k", "value": "from A"}),
    );
    let got = call(&s, TOKEN_B, 2, "kv_get", json!({"key": "k"}));
    assert_eq!(got["structuredContent"]["value"], "from A", "{got}");
}

#[test]
fn each_principal_has_its_own_kv_unless_shared() {
    let (_dir, path) = tokens();
    kv_isolation(|auth| {
        Server::with_config(&format!("[auth]\ntokens_file = {path:?}\n{auth}"), &[])
    });
}

#[test]
fn each_principal_has_its_own_kv_on_redis_too() {
    let (_dir, path) = tokens();
    let valkey = crate::harness::Valkey::start(&[]);
    let db = std::sync::atomic::AtomicU8::new(1);
    kv_isolation(|auth| {
        // A database of its own for each server: the shared run starts empty.
        let url = valkey.url(db.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
        Server::with_config(
            &format!("[auth]\ntokens_file = {path:?}\n{auth}"),
            &["--storage-url", &url],
        )
    });
}

const COMMAND_TOOL: &str = r#"
[[tools.command]]
name = "say"
description = "Prints its argument"
argv = ["printf", "%s\n", "{text}"]
[tools.command.input.text]
type = "string"
required = true
allow_option_like = true
"#;

#[test]
fn command_tools_on_a_public_bind_without_auth_refuse_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("emcee.toml");
    std::fs::write(&config, COMMAND_TOOL).unwrap();
    let data = dir.path().join("data");
    let args = |bind: &'static str| {
        vec![
            "serve".to_owned(),
            "--bind".to_owned(),
            bind.to_owned(),
            "--data-dir".to_owned(),
            data.to_str().unwrap().to_owned(),
            "--config".to_owned(),
            config.to_str().unwrap().to_owned(),
        ]
    };
    // 192.0.2.1 (TEST-NET-1) is not an address of this host: a start that passed
    // the check fails at bind, never listening anywhere.
    let refused = args("192.0.2.1:0");
    let refused: Vec<&str> = refused.iter().map(String::as_str).collect();
    let (status, _out, err) = run(&refused, &[]);
    assert_eq!(status.code(), Some(2), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(
        err.contains("allow_unauthenticated_commands = true"),
        "{err}"
    );
    assert!(err.contains("tokens_file"), "{err}");

    // Allowed on purpose (variable or flag): past the check, the bind fails.
    let (status, _out, err) = run(
        &refused,
        &[("EMCEE_ALLOW_UNAUTHENTICATED_COMMANDS", "true")],
    );
    assert_ne!(status.code(), Some(2), "{err}");
    assert!(!err.contains("allow_unauthenticated_commands"), "{err}");
    let mut flagged = refused.clone();
    flagged.push("--allow-unauthenticated-commands");
    let (status, _out, err) = run(&flagged, &[]);
    assert_ne!(status.code(), Some(2), "{err}");
    // With tokens: past the check too.
    let (_tdir, tokens) = tokens();
    let mut with_tokens = refused.clone();
    with_tokens.extend(["--tokens-file", tokens.to_str().unwrap()]);
    let (status, _out, err) = run(&with_tokens, &[]);
    assert_ne!(status.code(), Some(2), "{err}");

    // On loopback it serves as before.
    let s = Server::with_config(COMMAND_TOOL, &[]);
    let id = s.session();
    let r = s.call_ok(&id, 2, "say", json!({"text": "hi"}));
    assert_eq!(crate::harness::text(&r), "hi\n");
}

#[test]
fn a_task_creation_is_metered_and_tasks_get_is_not() {
    let s = Server::with_config("[rate]\nper_ip_per_s = 1\nper_ip_burst = 1\n", &[]);
    let ext = json!({"io.modelcontextprotocol/clientCapabilities":
        {"extensions": {"io.modelcontextprotocol/tasks": {}}}});
    let r = modern(
        &s,
        None,
        1,
        "tools/call",
        json!({"name": "sleep", "arguments": {"ms": 10}, "_meta": ext.clone()}),
    );
    assert_eq!(r.status, 200, "{r:?}");
    let task = r.json()["result"]["taskId"]
        .as_str()
        .unwrap_or_else(|| panic!("a task: {r:?}"))
        .to_owned();
    for n in 0..5 {
        let mut params = json!({"taskId": task});
        params["_meta"] = ext.clone();
        let r = modern(&s, None, 10 + n, "tasks/get", params);
        assert_eq!(r.status, 200, "tasks/get is not metered: {r:?}");
    }
    let r = modern(
        &s,
        None,
        2,
        "tools/call",
        json!({"name": "sleep", "arguments": {"ms": 10}, "_meta": ext}),
    );
    assert_rate_limited(&r, json!(2), "rate.per_ip_per_s");
}
