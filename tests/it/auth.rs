//! Bearer tokens (`[auth] tokens_file`, `--tokens-file`): the gate on `/mcp` (401
//! without or with a wrong token, counted and logged without the token), both
//! eras let in with a right one, per-tool limits (403, `tools/list` filtered),
//! sessions bound to the principal that opened them, `/health/live` open and
//! `/metrics` gated by `[auth] ops`, SIGHUP reload, and a malformed file at start
//! (exit 2).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{run, with_meta, Reply, Server, ACCEPT_BOTH, MODERN, VERSION};

const TOKEN_A: &str = "alpha-token-0123456789";
const TOKEN_B: &str = "bravo-token-9876543210";
const LIMITED: &str = "limited-token-echo-only";

/// A tokens file in a temp dir of its own (kept alive by the returned guard).
fn tokens_file(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("tokens");
    std::fs::write(&path, text).expect("write tokens");
    (dir, path)
}

fn serve_with(path: &Path) -> Server {
    Server::start(&["--tokens-file", path.to_str().expect("utf-8 path")])
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// `initialize` (session era) with `token`; the session id.
pub(crate) fn open_session(s: &Server, token: &str) -> String {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": VERSION, "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"}}});
    let auth = bearer(token);
    let r = s.post(None, &body.to_string(), &[("Authorization", &auth)]);
    assert_eq!(r.status, 200, "{}", r.body);
    let id = r.header("mcp-session-id").expect("session id").to_owned();
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let r = s.post(Some(&id), &note.to_string(), &[("Authorization", &auth)]);
    assert_eq!(r.status, 202, "{}", r.body);
    id
}

/// A session-era request with `token`: the whole reply.
pub(crate) fn request(
    s: &Server,
    session: &str,
    token: &str,
    method: &str,
    params: Value,
) -> Reply {
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params});
    s.post(
        Some(session),
        &body.to_string(),
        &[
            ("Authorization", &bearer(token)),
            ("Accept", "application/json"),
        ],
    )
}

/// A 2026-07-28 `tools/call` of `tool` with `token`.
fn modern_call(s: &Server, token: &str, tool: &str, args: Value) -> Reply {
    let body = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
        "params": with_meta(json!({"name": tool, "arguments": args}))});
    s.send(
        "POST",
        &[
            ("Content-Type", "application/json"),
            ("Accept", ACCEPT_BOTH),
            ("MCP-Protocol-Version", MODERN),
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", tool),
            ("Authorization", &bearer(token)),
        ],
        Some(body.to_string().as_bytes()),
    )
}

fn metric(s: &Server, token: &str, series: &str) -> f64 {
    let r = get_with(s, "/metrics", token);
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

/// `GET path` on the MCP listener with `token`.
fn get_with(s: &Server, path: &str, token: &str) -> Reply {
    let url = format!("http://{}{path}", s.addr);
    s.open_url("GET", &url, &[("Authorization", &bearer(token))], None)
        .into_reply()
}

fn wait_for_log(s: &Server, what: &str) -> String {
    s.log_line(&[what], Duration::from_secs(5))
}

#[test]
fn no_token_is_401_with_a_challenge_counted_and_logged_without_the_token() {
    let (_dir, path) = tokens_file(&format!("# ops\n{TOKEN_A}\n"));
    let s = serve_with(&path);
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}});
    let r = s.post(None, &init.to_string(), &[]);
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    let body = r.json();
    assert_eq!(body["jsonrpc"], "2.0");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("unauthorized"));

    // A wrong token: invalid_token, and never in the log.
    let r = s.post(
        None,
        &init.to_string(),
        &[("Authorization", &bearer(TOKEN_B))],
    );
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Bearer error=\"invalid_token\"")
    );
    assert!(r.json()["error"]["message"].is_string());

    assert_eq!(
        metric(&s, TOKEN_A, "mcp_rejected_total{reason=\"unauthorized\"}"),
        2.0
    );
    wait_for_log(&s, "\"unauthorized\"");
    let logs = s.logs();
    assert!(!logs.contains(TOKEN_A) && !logs.contains(TOKEN_B), "{logs}");
}

#[test]
fn a_right_token_is_let_in_in_both_eras() {
    let (_dir, path) = tokens_file(&format!("{TOKEN_A}\n"));
    let s = serve_with(&path);
    let session = open_session(&s, TOKEN_A);
    let r = request(
        &s,
        &session,
        TOKEN_A,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "hi"}}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.json()["result"].is_object(), "{}", r.body);

    let r = modern_call(&s, TOKEN_A, "echo", json!({"text": "hi"}));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("\"result\""), "{}", r.body);
    let r = modern_call(&s, TOKEN_B, "echo", json!({"text": "hi"}));
    assert_eq!(r.status, 401, "{}", r.body);
}

#[test]
fn a_token_limited_to_some_tools_gets_403_for_the_others_and_lists_only_its_own() {
    let (_dir, path) = tokens_file(&format!("{TOKEN_A}\n{LIMITED} echo\n"));
    let s = serve_with(&path);
    let session = open_session(&s, LIMITED);
    let r = request(
        &s,
        &session,
        LIMITED,
        "tools/call",
        json!({"name": "kv_set", "arguments": {"key": "k", "value": "v"}}),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.json()["id"], 7);
    assert!(r.json()["error"]["message"]
        .as_str()
        .unwrap()
        .contains("kv_set"));

    let r = request(&s, &session, LIMITED, "tools/list", json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
    let names: Vec<String> = r.json()["result"]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["echo"]);
    let r = request(
        &s,
        &session,
        LIMITED,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "hi"}}),
    );
    assert_eq!(r.status, 200, "{}", r.body);

    // 2026-07-28: the same.
    let r = modern_call(&s, LIMITED, "kv_get", json!({"key": "k"}));
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.body.contains("kv_get"), "{}", r.body);
    let r = modern_call(&s, TOKEN_A, "kv_get", json!({"key": "k"}));
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn a_session_opened_with_one_token_is_unknown_to_another() {
    let (_dir, path) = tokens_file(&format!("{TOKEN_A}\n{TOKEN_B}\n"));
    let s = serve_with(&path);
    let session = open_session(&s, TOKEN_A);
    let r = request(&s, &session, TOKEN_B, "tools/list", json!({}));
    assert_eq!(r.status, 404, "{}", r.body);
    let r = s.send(
        "DELETE",
        &[
            ("Mcp-Session-Id", &session),
            ("Authorization", &bearer(TOKEN_B)),
        ],
        None,
    );
    assert_eq!(r.status, 404, "{}", r.body);
    let r = request(&s, &session, TOKEN_A, "tools/list", json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
    // Bound across a restart too (the record keeps the owner).
    let s = s.restart();
    let r = request(&s, &session, TOKEN_B, "tools/list", json!({}));
    assert_eq!(r.status, 404, "{}", r.body);
    let r = request(&s, &session, TOKEN_A, "tools/list", json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
}

#[test]
fn sighup_reloads_the_file_and_a_bad_one_keeps_the_old_set() {
    let (_dir, path) = tokens_file(&format!("{TOKEN_A}\n"));
    let s = serve_with(&path);
    assert_eq!(
        modern_call(&s, TOKEN_A, "echo", json!({"text": "x"})).status,
        200
    );
    assert_eq!(
        modern_call(&s, TOKEN_B, "echo", json!({"text": "x"})).status,
        401
    );

    std::fs::write(&path, format!("{TOKEN_B}\n")).unwrap();
    s.signal("HUP");
    let line = wait_for_log(&s, "tokens reloaded");
    assert!(line.contains("\"tokens\":1"), "{line}");
    assert_eq!(
        modern_call(&s, TOKEN_B, "echo", json!({"text": "x"})).status,
        200
    );
    assert_eq!(
        modern_call(&s, TOKEN_A, "echo", json!({"text": "x"})).status,
        401
    );

    std::fs::write(&path, format!("{TOKEN_A}\nbad\"token\n")).unwrap();
    s.signal("HUP");
    let line = wait_for_log(&s, "tokens not reloaded");
    assert!(line.contains("line 2"), "{line}");
    assert!(!line.contains(TOKEN_A), "{line}");
    assert_eq!(
        modern_call(&s, TOKEN_B, "echo", json!({"text": "x"})).status,
        200
    );
    assert_eq!(
        modern_call(&s, TOKEN_A, "echo", json!({"text": "x"})).status,
        401
    );
}

#[test]
fn health_live_stays_open_and_metrics_need_a_token_unless_ops_is_open() {
    let (_dir, path) = tokens_file(&format!("{TOKEN_A}\n"));
    let config = format!("[auth]\ntokens_file = {:?}\nops = \"token\"\n", path);
    let s = Server::with_config(&config, &[]);
    assert_eq!(s.get("/health/live").status, 200);
    assert_eq!(s.get("/health/ready").status, 200);
    let r = s.get("/metrics");
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    assert_eq!(s.get("/health").status, 401);
    let r = get_with(&s, "/metrics", TOKEN_A);
    assert_eq!(r.status, 200);

    let config = format!("[auth]\ntokens_file = {:?}\nops = \"open\"\n", path);
    let s = Server::with_config(&config, &[]);
    assert_eq!(s.get("/metrics").status, 200);
    assert_eq!(s.post(None, "{}", &[]).status, 401);
}

#[test]
fn a_malformed_tokens_file_stops_the_start_naming_file_and_line() {
    let (_dir, path) = tokens_file(&format!("# tokens\n{TOKEN_A}\nsecret-one echo,,sleep\n"));
    let data = tempfile::tempdir().unwrap();
    let (status, _out, err) = run(
        &[
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--data-dir",
            data.path().to_str().unwrap(),
            "--tokens-file",
            path.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains(path.to_str().unwrap()), "{err}");
    assert!(err.contains("line 3"), "{err}");
    assert!(
        !err.contains("secret-one") && !err.contains(TOKEN_A),
        "{err}"
    );
}

#[test]
fn without_auth_nothing_changes() {
    let s = Server::start(&[]);
    assert_eq!(s.get("/metrics").status, 200);
    let session = s.session();
    let _ = s.call_ok(&session, 2, "echo", json!({"text": "hi"}));
}

/// In a fleet the binding travels with the shared record: a session opened with
/// token A on one instance is served to A on another, and unknown to B there.
#[test]
fn a_session_bound_on_one_instance_stays_bound_on_another() {
    let valkey = crate::harness::Valkey::start(&[]);
    let (_dir, path) = tokens_file(&format!("{TOKEN_A}\n{TOKEN_B}\n"));
    let url = valkey.url(0);
    let args = [
        "--tokens-file",
        path.to_str().expect("utf-8 path"),
        "--storage-url",
        url.as_str(),
    ];
    let (a, b) = (Server::start(&args), Server::start(&args));
    let session = open_session(&a, TOKEN_A);
    let r = request(&b, &session, TOKEN_B, "tools/list", json!({}));
    assert_eq!(r.status, 404, "{}", r.body);
    let r = request(&b, &session, TOKEN_A, "tools/list", json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
    let r = request(&b, &session, TOKEN_B, "tools/list", json!({}));
    assert_eq!(r.status, 404, "{}", r.body);
}

/// A token limited to a tool the server does not have (a typo) can call nothing
/// by that name: the start says so, naming the tools and never the token, and so
/// does each reload.
#[test]
fn tools_the_server_does_not_have_are_named_at_start_and_after_a_reload() {
    let (_dir, path) = tokens_file(&format!("{TOKEN_A} echo,ech0,kv_gte\n{TOKEN_B}\n"));
    let s = serve_with(&path);
    let line = wait_for_log(&s, "names tools this server does not have");
    let v: Value = serde_json::from_str(&line).expect("a JSON line");
    assert_eq!(v["level"], "warning", "{line}");
    assert_eq!(v["tools"], "ech0,kv_gte", "{line}");
    assert_eq!(v["unknown"], 2, "{line}");
    assert!(!line.contains(TOKEN_A), "{line}");
    // The known tool still works for the token.
    let r = modern_call(&s, TOKEN_A, "echo", json!({"text": "x"}));
    assert_eq!(r.status, 200, "{}", r.body);

    std::fs::write(&path, format!("{TOKEN_A} echo,sleeep\n")).expect("rewrite");
    s.signal("HUP");
    wait_for_log(&s, "tokens reloaded");
    let line = wait_for_log(&s, "\"tools\":\"sleeep\"");
    assert!(
        line.contains("names tools this server does not have"),
        "{line}"
    );
}

/// Two `Authorization` headers (RFC 6750 §3.1: more than one way to send a token)
/// are a malformed request: 400 with `error="invalid_request"`, counted and
/// refused before the body, whatever the tokens.
#[test]
fn two_authorization_headers_are_400_invalid_request() {
    use std::io::{Read, Write};
    let (_dir, path) = tokens_file(&format!("{TOKEN_A}\n"));
    let s = serve_with(&path);
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string();
    let mut conn = std::net::TcpStream::connect(&s.addr).expect("connect");
    conn.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let request = format!(
        "POST /mcp HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nAuthorization: Bearer {TOKEN_A}\r\n\
         Authorization: Bearer {TOKEN_A}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        s.addr,
        body.len()
    );
    conn.write_all(request.as_bytes()).expect("send");
    let mut answer = String::new();
    let _ = conn.read_to_string(&mut answer);
    let (head, json) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 400"), "{head}");
    let head = head.to_ascii_lowercase();
    assert!(
        head.contains("www-authenticate: bearer error=\"invalid_request\""),
        "{head}"
    );
    let v: Value = serde_json::from_str(json.trim()).expect("a JSON-RPC error");
    assert_eq!(v["error"]["code"], -32000, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("more than one Authorization header")),
        "{v}"
    );
    assert_eq!(
        metric(&s, TOKEN_A, "mcp_rejected_total{reason=\"unauthorized\"}"),
        1.0
    );
    assert!(!s.logs().contains(TOKEN_A), "{}", s.logs());
}
