//! What an operator reads on stderr (issue 11): one line per finished call with its
//! outcome and why it failed, every HTTP refusal with a bounded number of lines
//! under a flood, and the start-up warnings about `http.allowed_hosts`.

use std::io::{BufRead, BufReader};
use std::process::Stdio as Pipe;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{call_body, emcee_command, with_meta, Server, Stdio, ACCEPT_BOTH, MODERN};

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn parse(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// The "call finished" line of request `id`; fails unless there is exactly one.
fn call_line<'a>(logs: &'a [Value], id: &str) -> &'a Value {
    let found: Vec<&Value> = logs
        .iter()
        .filter(|v| v["msg"] == "call finished" && v["request_id"] == id)
        .collect();
    assert_eq!(found.len(), 1, "call lines of request {id}: {logs:#?}");
    found[0]
}

fn server_logs(s: &Server) -> Vec<Value> {
    parse(&s.stderr.lock().unwrap())
}

/// Wait until `pred` holds for the server's log lines.
fn await_logs(s: &Server, within: Duration, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + within;
    loop {
        let logs = server_logs(s);
        if pred(&logs) {
            return logs;
        }
        assert!(Instant::now() < deadline, "logs:\n{}", s.logs());
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn every_finished_call_leaves_one_info_line_saying_how_it_ended() {
    let mut s = Stdio::with_config(
        "[limits]\ncall_timeout_ms = 300\n",
        &["--fixtures", "faults"],
    );
    s.initialize("2025-11-25");
    let traced = json!({"traceparent": format!("00-{TRACE}-00f067aa0ba902b7-01")});
    s.request(
        1,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "SECRET-ARGUMENT"}, "_meta": traced}),
    );
    s.call_ok(2, "kv_get", json!({"key": "missing"}));
    s.call_ok(3, "echo", json!({"txt": "typo"}));
    s.call(4, "no_such_tool", json!({}));
    s.call_ok(5, "fault_hang", json!({}));
    s.call_ok(6, "fault_panic", json!({}));
    s.request(7, "resources/read", json!({"uri": "kv://missing"}));
    s.request(
        8,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "x"},
               "_meta": {"traceparent": format!("00-{TRACE}-0000000000000000-01")}}),
    );
    let (status, _, stderr) = s.finish();
    assert!(status.success());
    let logs = parse(&stderr);

    let ok = call_line(&logs, "1");
    assert_eq!(ok["level"], "info");
    assert_eq!(ok["tool"], "echo");
    assert_eq!(ok["method"], "tools/call");
    assert_eq!(ok["outcome"], "ok");
    assert_eq!(ok["success"], true);
    assert_eq!(ok["trace_id"], TRACE);
    assert!(ok["duration_ms"].as_f64().is_some(), "{ok}");
    assert!(ok["session"].as_str().is_some_and(|t| t.len() == 8), "{ok}");
    assert!(ok.get("error").is_none(), "{ok}");

    let missing = call_line(&logs, "2");
    assert_eq!(
        (&missing["outcome"], &missing["success"]),
        (&json!("tool_error"), &json!(false))
    );
    assert!(
        missing["error"]
            .as_str()
            .unwrap()
            .contains("no value for key `missing`"),
        "{missing}"
    );
    let bad_arg = call_line(&logs, "3");
    assert_eq!(bad_arg["outcome"], "tool_error");
    assert!(
        bad_arg["error"].as_str().unwrap().contains("txt"),
        "{bad_arg}"
    );
    let unknown = call_line(&logs, "4");
    assert_eq!(unknown["tool"], "no_such_tool");
    assert_eq!(unknown["outcome"], "error");
    assert!(
        unknown["error"].as_str().unwrap().contains("unknown tool"),
        "{unknown}"
    );
    let hung = call_line(&logs, "5");
    assert_eq!(hung["level"], "warning");
    assert_eq!(hung["outcome"], "timeout");
    assert_eq!(hung["error"], "timed out after 300 ms");
    let panicked = call_line(&logs, "6");
    assert_eq!(panicked["level"], "warning");
    assert_eq!(panicked["outcome"], "panic");
    assert!(
        panicked["error"]
            .as_str()
            .unwrap()
            .contains("deliberate panic"),
        "{panicked}"
    );
    let read = call_line(&logs, "7");
    assert_eq!(read["uri"], "kv://missing");
    assert_eq!(read["method"], "resources/read");
    assert_eq!(read["outcome"], "error");
    let invalid_trace = call_line(&logs, "8");
    assert!(
        invalid_trace.get("trace_id").is_none(),
        "an all-zero parent id is not W3C trace context: {invalid_trace}"
    );
    assert!(
        !stderr.iter().any(|l| l.contains("SECRET-ARGUMENT")),
        "arguments are never logged: {stderr:#?}"
    );
}

#[test]
fn log_calls_off_leaves_no_call_lines_but_still_reports_a_panic() {
    for (flags, env) in [
        (&["--log-calls", "false"][..], &[][..]),
        (&[][..], &[("EMCEE_LOG_CALLS", "false")][..]),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut args = vec!["--fixtures", "faults"];
        args.extend_from_slice(flags);
        let mut s = Stdio::start_in(dir.path(), &args, env);
        s.initialize("2025-11-25");
        s.call_ok(1, "echo", json!({"text": "x"}));
        s.call_ok(2, "kv_get", json!({"key": "missing"}));
        s.call(3, "no_such_tool", json!({}));
        s.call_ok(4, "fault_panic", json!({}));
        let (status, _, stderr) = s.finish();
        assert!(status.success());
        let logs = parse(&stderr);
        let calls: Vec<&Value> = logs
            .iter()
            .filter(|v| v["msg"] == "call finished")
            .collect();
        assert_eq!(calls.len(), 1, "{flags:?} {env:?}: {calls:#?}");
        assert_eq!(calls[0]["outcome"], "panic");
        assert_eq!(calls[0]["level"], "warning");
    }
}

#[test]
fn http_calls_carry_the_session_tag_and_the_trace_header() {
    let s = Server::start(&[]);
    let id = s.session();
    let traceparent = format!("00-{TRACE}-00f067aa0ba902b7-01");
    let r = s.post(
        Some(&id),
        &call_body(7, "echo", json!({"text": "hi"})),
        &[("traceparent", traceparent.as_str())],
    );
    assert_eq!(r.status, 200, "{r:?}");
    let logs = await_logs(&s, Duration::from_secs(5), |logs| {
        logs.iter().any(|v| v["msg"] == "call finished")
    });
    let line = call_line(&logs, "7");
    assert_eq!(
        line["trace_id"], TRACE,
        "the HTTP traceparent header: {line}"
    );
    let tag = line["session"].as_str().unwrap();
    assert!(tag.len() == 8 && !id.contains(tag), "{line}");
    assert!(
        !s.logs().contains(&id),
        "the session id never reaches the log"
    );

    // A 2026-07-28 call has no session: its line has no `session` tag.
    let modern = json!({"jsonrpc": "2.0", "id": 8, "method": "tools/call",
        "params": with_meta(json!({"name": "echo", "arguments": {"text": "hi"}}))});
    let r = s.post(
        None,
        &modern.to_string(),
        &[
            ("MCP-Protocol-Version", MODERN),
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", "echo"),
        ],
    );
    assert_eq!(r.status, 200, "{r:?}");
    let logs = await_logs(&s, Duration::from_secs(5), |logs| {
        logs.iter()
            .any(|v| v["msg"] == "call finished" && v["request_id"] == "8")
    });
    let line = call_line(&logs, "8");
    assert_eq!(line["outcome"], "ok", "{line}");
    assert!(line.get("session").is_none(), "{line}");
}

#[test]
fn a_refusal_flood_is_a_few_lines_and_a_summary() {
    const FLOOD: u64 = 500;
    const BURST: usize = 5;
    let s = Server::with_config(
        "[limits]\nrefusal_log_burst = 5\nrefusal_log_interval_ms = 1000\n",
        &[],
    );
    let started = Instant::now();
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string();
    for _ in 0..FLOOD {
        let r = s.post(None, &ping, &[("Host", "evil.example")]);
        assert_eq!(r.status, 403);
    }
    let refused = |logs: &[Value]| -> (usize, u64, usize) {
        let lines = logs
            .iter()
            .filter(|v| v["msg"] == "request refused" && v["reason"] == "forbidden")
            .count();
        let summaries: Vec<&Value> = logs
            .iter()
            .filter(|v| v["suppressed"].is_u64() && v["reason"] == "forbidden")
            .collect();
        let suppressed = summaries
            .iter()
            .map(|v| v["suppressed"].as_u64().unwrap())
            .sum();
        (lines, suppressed, summaries.len())
    };
    // Every refusal is accounted for: logged, or summed up once its window ends.
    let logs = await_logs(&s, Duration::from_secs(10), |logs| {
        let (lines, suppressed, _) = refused(logs);
        lines as u64 + suppressed == FLOOD
    });
    let windows = (started.elapsed().as_millis() / 1000) as usize + 2;
    let (lines, _, summaries) = refused(&logs);
    assert!(
        lines <= BURST * windows && summaries >= 1 && summaries <= windows,
        "{lines} lines and {summaries} summaries over at most {windows} windows"
    );
    let first = logs.iter().find(|v| v["msg"] == "request refused").unwrap();
    assert_eq!(first["level"], "warning");
    assert_eq!(first["status"], 403);
    assert_eq!(first["http_method"], "POST");
    assert!(
        first["client"].as_str().unwrap().starts_with("127.0.0.1:"),
        "{first}"
    );
    assert!(
        first["error"].as_str().unwrap().contains("evil.example"),
        "{first}"
    );
    let summary = logs.iter().find(|v| v["suppressed"].is_u64()).unwrap();
    let msg = summary["msg"].as_str().unwrap();
    assert!(
        msg.starts_with(&format!(
            "suppressed {} refusals of reason forbidden in the last",
            summary["suppressed"]
        )),
        "{summary}"
    );
    assert!(
        s.get("/metrics").body.contains(&format!(
            "mcp_rejected_total{{reason=\"forbidden\"}} {FLOOD}"
        )),
        "the metric counts them all"
    );
}

#[test]
fn each_kind_of_http_refusal_is_logged_with_status_and_reason() {
    let s = Server::start(&[]);
    let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}).to_string();
    // (status, reason, headers) of POSTs refused by each check in turn.
    type Case<'a> = (u16, &'a str, &'a [(&'a str, &'a str)]);
    let cases: [Case; 4] = [
        (415, "bad_request", &[("Content-Type", "text/plain")]),
        (406, "bad_request", &[("Accept", "text/html")]),
        (
            404,
            "unknown_session",
            &[
                ("Mcp-Session-Id", "nope"),
                ("MCP-Protocol-Version", "2025-11-25"),
            ],
        ),
        (400, "bad_request", &[]),
    ];
    for (status, _, headers) in &cases {
        let body = if *status == 400 { "{not json" } else { &ping };
        let r = s.post(None, body, headers);
        assert_eq!(r.status, *status, "{r:?}");
    }
    let r = s.send("PUT", &[("Accept", ACCEPT_BOTH)], None);
    assert_eq!(r.status, 405);
    let logs = await_logs(&s, Duration::from_secs(5), |logs| {
        logs.iter()
            .filter(|v| v["msg"] == "request refused")
            .count()
            == cases.len() + 1
    });
    let refusals: Vec<&Value> = logs
        .iter()
        .filter(|v| v["msg"] == "request refused")
        .collect();
    for ((status, reason, _), line) in cases.iter().zip(&refusals) {
        assert_eq!(line["status"], *status, "{line}");
        assert_eq!(line["reason"], *reason, "{line}");
        assert_eq!(line["http_method"], "POST", "{line}");
        assert_eq!(line["level"], "info", "{line}");
        assert!(
            line["error"].as_str().is_some_and(|e| !e.is_empty()),
            "{line}"
        );
        assert!(line["client"].as_str().unwrap().starts_with("127.0.0.1:"));
    }
    assert_eq!(refusals[4]["status"], 405);
    assert_eq!(refusals[4]["http_method"], "PUT");
}

/// The lines `emcee serve` with `args` logs until it serves or fails to bind.
fn startup_lines(args: &[&str], config: Option<&str>) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = emcee_command();
    cmd.arg("serve")
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(args);
    if let Some(text) = config {
        cmd.arg("--config")
            .arg(crate::harness::write_config(dir.path(), text));
    }
    let mut child = cmd
        .stdin(Pipe::null())
        .stdout(Pipe::null())
        .stderr(Pipe::piped())
        .spawn()
        .expect("spawn emcee serve");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Until it serves, or fails to bind (the line after the warnings either way).
    let mut lines = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        let v: Value = serde_json::from_str(&line).unwrap();
        let last = v["msg"] == "serving http" || v["level"] == "critical";
        lines.push(v);
        if last {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        lines
            .iter()
            .any(|v| v["msg"] == "serving http" || v["level"] == "critical"),
        "{lines:#?}"
    );
    lines
}

/// The start-up warnings of `emcee serve` with `args` about `http.allowed_hosts`.
fn startup_warnings(args: &[&str], config: Option<&str>) -> Vec<Value> {
    // Other start-up warnings (the requestState key) are not this test's.
    startup_lines(args, config)
        .into_iter()
        .filter(|v| v["level"] == "warning" && v["key"] == "http.allowed_hosts")
        .collect()
}

#[test]
fn startup_warns_about_a_public_bind_with_loopback_hosts_and_about_any_host() {
    // 192.0.2.1 (TEST-NET-1) is not this machine's: the bind fails, nothing listens,
    // and the warnings come before the bind.
    let public = ["--bind", "192.0.2.1:8080"];
    let w = startup_warnings(&public, None);
    assert_eq!(w.len(), 1, "{w:#?}");
    assert_eq!(w[0]["key"], "http.allowed_hosts");
    assert_eq!(w[0]["env"], "EMCEE_ALLOWED_HOSTS");
    assert!(
        w[0]["msg"]
            .as_str()
            .unwrap()
            .contains("names only loopback hosts"),
        "{w:#?}"
    );
    let named = startup_warnings(
        &[&public[..], &["--allowed-hosts", "mcp.example.com"]].concat(),
        None,
    );
    assert!(named.is_empty(), "{named:#?}");

    let local = ["--bind", "127.0.0.1:0"];
    assert!(startup_warnings(&local, None).is_empty());
    let any = startup_warnings(&local, Some("[http]\nallowed_hosts = [\"*\"]\n"));
    assert_eq!(any.len(), 1, "{any:#?}");
    assert!(
        any[0]["msg"]
            .as_str()
            .unwrap()
            .contains("DNS-rebinding protection is off"),
        "{any:#?}"
    );
}

/// Issue 18 item 8: a 2026-07-28 refusal the session decides (here a `requestState`
/// that does not verify: 400 with -32602) is logged with the error the client got.
#[test]
fn a_refusal_decided_by_the_session_is_logged_with_its_error() {
    let s = Server::start(&[]);
    let call = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
        "params": with_meta(json!({"name": "echo", "arguments": {"text": "x"},
            "requestState": "v1.bogus.state"}))});
    let r = s.post(
        None,
        &call.to_string(),
        &[
            ("MCP-Protocol-Version", MODERN),
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", "echo"),
        ],
    );
    assert_eq!(r.status, 400, "{r:?}");
    let told = r.json()["error"]["message"].as_str().unwrap().to_owned();
    assert!(!told.is_empty(), "{r:?}");
    let logs = await_logs(&s, Duration::from_secs(5), |logs| {
        logs.iter().any(|v| v["msg"] == "request refused")
    });
    let line = logs.iter().find(|v| v["msg"] == "request refused").unwrap();
    assert_eq!(line["status"], 400, "{line}");
    assert_eq!(line["error"], told.as_str(), "{line}");
}

/// The lines `emcee serve` logs up to "serving http".
fn serve_startup_lines(args: &[&str]) -> Vec<Value> {
    startup_lines(args, None)
}

/// Issue 18 item 16: a loopback `serve` and a `stdio` spawn say nothing about the
/// `mrtr.key_file` (one instance: a per-process key loses nothing a restart would
/// not); an instance among several (`--instance-id`, or a non-loopback bind) is
/// told. And no "session started" line at info before any client comes.
#[test]
fn start_up_warns_about_the_mrtr_key_only_where_instances_share_clients() {
    let about_key = |lines: &[Value]| lines.iter().filter(|v| v["key"] == "mrtr.key_file").count();
    let local = serve_startup_lines(&["--bind", "127.0.0.1:0"]);
    assert_eq!(about_key(&local), 0, "{local:#?}");
    let sessions: Vec<&Value> = local
        .iter()
        .filter(|v| v["msg"] == "session started")
        .collect();
    assert!(
        sessions.is_empty(),
        "no client, no session line: {sessions:#?}"
    );
    let serving = local.iter().find(|v| v["msg"] == "serving http").unwrap();
    assert!(serving["workers"].as_u64().is_some(), "{serving}");

    let several = serve_startup_lines(&["--bind", "127.0.0.1:0", "--instance-id", "a"]);
    assert_eq!(about_key(&several), 1, "{several:#?}");
    // Not this machine's address (TEST-NET-1): the bind fails after the warnings.
    let public = serve_startup_lines(&["--bind", "192.0.2.1:8080"]);
    assert_eq!(about_key(&public), 1, "{public:#?}");
    let keyed = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(keyed.path(), [7u8; 32]).unwrap();
    let shared = serve_startup_lines(&[
        "--bind",
        "127.0.0.1:0",
        "--instance-id",
        "a",
        "--mrtr-key-file",
        keyed.path().to_str().unwrap(),
    ]);
    assert_eq!(about_key(&shared), 0, "{shared:#?}");

    let s = Stdio::start(&[]);
    let (status, _, stderr) = s.finish();
    assert!(status.success());
    let lines = parse(&stderr);
    assert_eq!(about_key(&lines), 0, "{lines:#?}");
}

/// Issue 18 item 17: `duration_ms` is milliseconds rounded to the microsecond, not
/// an unrounded float.
#[test]
fn duration_ms_has_at_most_three_decimals() {
    let mut s = Stdio::start(&["--log-level", "debug"]);
    s.initialize("2025-11-25");
    for id in 1..=5 {
        s.call_ok(id, "echo", json!({"text": "x"}));
    }
    let (status, _, stderr) = s.finish();
    assert!(status.success());
    let mut seen = 0;
    for line in &stderr {
        let Some(at) = line.find("\"duration_ms\":") else {
            continue;
        };
        let number: String = line[at + "\"duration_ms\":".len()..]
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.' || *c == 'e' || *c == '-')
            .collect();
        let decimals = number.split_once('.').map_or(0, |(_, d)| d.len());
        assert!(
            decimals <= 3 && !number.contains('e'),
            "duration_ms {number}: {line}"
        );
        seen += 1;
    }
    assert!(seen >= 5, "a line per call at least: {stderr:#?}");
}

/// Tokens and the MRTR key of [`no_log_line_holds_a_token_a_request_state_or_the_mrtr_key`]:
/// recognisable, so that a line holding one is found.
const TOKEN: &str = "tok-SECRET-4f1d0c9a7e2b";
const LIMITED_TOKEN: &str = "tok-LIMITED-8b2e6d3f1a5c";
const WRONG_TOKEN: &str = "tok-WRONG-5c7a9e1b3d0f";
const MRTR_KEY: &str = "mrtr-KEY-SECRET-0123456789abcdef-0123456789abcdef";
const ELICIT: &str = "test_input_required_result_elicitation";

/// A POST with `token` (none if empty) and `headers`: status and body.
fn post_with(s: &Server, token: &str, headers: &[(&str, &str)], body: &str) -> (u16, String) {
    let bearer = format!("Bearer {token}");
    let mut all = vec![
        ("Content-Type", "application/json"),
        ("Accept", ACCEPT_BOTH),
    ];
    if !token.is_empty() {
        all.push(("Authorization", &bearer));
    }
    all.extend_from_slice(headers);
    let r = s.send("POST", &all, Some(body.as_bytes()));
    (r.status, r.body)
}

/// A 2026-07-28 `tools/call` of `tool` with `token`; `extra` params beside its name.
fn modern_call(s: &Server, token: &str, tool: &str, extra: Value) -> (u16, Value) {
    modern_call_named(s, token, tool, tool, extra)
}

/// [`modern_call`] with `name` in its `Mcp-Name` header.
fn modern_call_named(
    s: &Server,
    token: &str,
    tool: &str,
    name: &str,
    extra: Value,
) -> (u16, Value) {
    let mut params = json!({"name": tool, "arguments": {}, "_meta": {
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {"elicitation": {}},
        "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"}}});
    for (k, v) in extra.as_object().expect("an object") {
        params[k] = v.clone();
    }
    let body = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call", "params": params});
    let (status, text) = post_with(
        s,
        token,
        &[
            ("MCP-Protocol-Version", MODERN),
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", name),
            ("Accept", "application/json"),
        ],
        &body.to_string(),
    );
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

/// Shapes no log line may hold whatever the secrets: a bearer credential (the
/// refusal's own hint `Bearer <token>` is not one, nor the word "bearer"), an `Authorization` field or
/// header, a JWT-shaped string (`eyJ…` base64url `.` base64url: a JWT's header and
/// claims, or a sealed `requestState`'s payload and tag).
const SECRET_SHAPES: &[(&str, &str)] = &[
    // (A credential has a digit or a symbol: not "Bearer tokens required".)
    (
        "a bearer credential",
        r"Bearer\s+[A-Za-z]*[0-9._~+/=-][A-Za-z0-9._~+/=-]{4,}",
    ),
    (
        "an Authorization field",
        r#"(?i)"authorization"\s*:|authorization:\s*[a-z]+\s+[^<\s]"#,
    ),
    (
        "a JWT-shaped string",
        r"eyJ[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]{2,}",
    ),
];

/// Which of `secrets` (name, value) and of [`SECRET_SHAPES`] `line` holds.
pub(crate) fn secrets_in(line: &str, secrets: &[(&str, String)]) -> Vec<String> {
    let shapes = SECRET_SHAPES
        .iter()
        .filter(|(_, shape)| regex_lite::Regex::new(shape).expect("regex").is_match(line))
        .map(|(name, _)| (*name).to_owned());
    secrets
        .iter()
        .filter(|(_, value)| line.contains(value.as_str()))
        .map(|(name, _)| (*name).to_owned())
        .chain(shapes)
        .collect()
}

#[test]
fn no_log_line_holds_a_token_a_request_state_or_the_mrtr_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, format!("{TOKEN}\n{LIMITED_TOKEN} echo\n")).expect("tokens");
    let key = dir.path().join("mrtr.key");
    std::fs::write(&key, MRTR_KEY).expect("key");
    let config = format!(
        "log_level = \"trace\"\nlog_calls = true\n[auth]\ntokens_file = {:?}\n[mrtr]\nkey_file = {:?}\n",
        tokens.to_str().expect("utf-8"),
        key.to_str().expect("utf-8"),
    );
    let mut s = Server::launch(crate::harness::Launch {
        config: Some(&config),
        args: &["--fixtures", "conformance"],
        env: &[],
    });

    // Session era: a session, calls, and refusals.
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"}}});
    let open = |token: &str| {
        let r = s.post(
            None,
            &init.to_string(),
            &[("Authorization", &format!("Bearer {token}"))],
        );
        assert_eq!(r.status, 200, "{}", r.body);
        r.header("mcp-session-id").expect("a session").to_owned()
    };
    let (session, limited) = (open(TOKEN), open(LIMITED_TOKEN));
    let in_session = |token: &str, session: &str, body: &str| {
        let headers = [
            ("Mcp-Session-Id", session),
            ("MCP-Protocol-Version", "2025-11-25"),
        ];
        post_with(&s, token, &headers, body)
    };
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"}).to_string();
    assert_eq!(in_session(TOKEN, &session, &note).0, 202);
    assert_eq!(in_session(LIMITED_TOKEN, &limited, &note).0, 202);
    let echo = call_body(2, "echo", json!({"text": "hello"}));
    let (status, body) = in_session(TOKEN, &session, &echo);
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        in_session(WRONG_TOKEN, &session, &echo).0,
        401,
        "a wrong token"
    );
    assert_eq!(in_session("", &session, &echo).0, 401, "no token");
    let kv_get = call_body(3, "kv_get", json!({"key": "k"}));
    let (status, body) = in_session(LIMITED_TOKEN, &limited, &kv_get);
    assert_eq!(status, 403, "tool_forbidden: {body}");
    assert_eq!(
        in_session(TOKEN, &session, "{not json").0,
        400,
        "malformed JSON"
    );
    let (status, _) = in_session(TOKEN, "no-such-session", &echo);
    assert_eq!(status, 404, "an unknown session");

    // 2026-07-28: an MRTR round trip (a requestState out and back), and refusals.
    let (status, r) = modern_call(&s, TOKEN, ELICIT, json!({}));
    assert_eq!(status, 200, "{r}");
    let state = r["result"]["requestState"]
        .as_str()
        .unwrap_or_else(|| panic!("a state: {r}"))
        .to_owned();
    let answer = json!({"user_name": {"action": "accept", "content": {"name": "Alice"}}});
    let (status, r) = modern_call(
        &s,
        TOKEN,
        ELICIT,
        json!({"inputResponses": answer, "requestState": state}),
    );
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["result"]["content"][0]["text"], "Hello, Alice!", "{r}");
    // A middle character, changed: the last one of unpadded base64 may carry
    // only unused bits (then "tampering" it changes nothing).
    let mut tampered = state.clone().into_bytes();
    let at = tampered.len() / 2;
    tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).expect("base64 is ASCII");
    let (_, r) = modern_call(
        &s,
        TOKEN,
        ELICIT,
        json!({"inputResponses": answer, "requestState": tampered}),
    );
    assert_eq!(r["error"]["code"], -32602, "a tampered state: {r}");
    assert_eq!(modern_call(&s, WRONG_TOKEN, "echo", json!({})).0, 401);
    assert_eq!(modern_call(&s, LIMITED_TOKEN, "kv_get", json!({})).0, 403);
    let (status, _) = modern_call_named(&s, TOKEN, "echo", "not-echo", json!({}));
    assert_eq!(status, 400, "a header that does not match the body");

    s.signal("TERM");
    assert!(
        s.wait_exit(Duration::from_secs(10)).success(),
        "{}",
        s.logs()
    );
    let lines = s.stderr.lock().unwrap().clone();

    // Every secret the session handled, named; one line adds one (an OAuth JWT, say).
    let secrets: Vec<(&str, String)> = vec![
        ("the token", TOKEN.to_owned()),
        ("a limited token", LIMITED_TOKEN.to_owned()),
        ("a wrong token", WRONG_TOKEN.to_owned()),
        ("the MRTR key", MRTR_KEY.to_owned()),
        ("a requestState", state.clone()),
        ("a tampered requestState", tampered.clone()),
    ];
    let leaks: Vec<String> = lines
        .iter()
        .filter_map(|line| {
            let found = secrets_in(line, &secrets);
            (!found.is_empty()).then(|| format!("{found:?} in {line}"))
        })
        .collect();
    assert!(
        leaks.is_empty(),
        "secrets in the log:\n{}",
        leaks.join("\n")
    );

    // The log is not empty of what happened (else the test above proves nothing).
    let logs = parse(&lines);
    let has = |pred: &dyn Fn(&Value) -> bool| logs.iter().any(pred);
    assert!(
        has(&|l| l["msg"] == "call finished" && l["tool"] == ELICIT),
        "{}",
        s.logs()
    );
    for status in [401, 403, 400, 404] {
        assert!(
            has(&|l| l["status"] == status),
            "no refusal line with status {status}:\n{}",
            s.logs()
        );
    }
}
