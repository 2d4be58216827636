//! `emcee bench`, the load generator, against the real server over HTTP and stdio:
//! its JSON report, its error accounting, its clean-up of sessions, and its exit codes.
//!
//! The churn and sessions runs are concurrent (16 workers): concurrent session saves
//! and removals once locked up the server's storage (sled 0.34's `flush_async`).

use serde_json::Value;

use crate::harness::{bin, run, Server};

/// Run `emcee bench ARGS --json`; the exit status and the parsed report.
fn bench_json(args: &[&str]) -> Value {
    let mut all = vec!["bench"];
    all.extend_from_slice(args);
    all.push("--json");
    let (status, stdout, stderr) = run(&all, &[]);
    assert_eq!(status.code(), Some(0), "{args:?}: {stderr}\n{stdout}");
    assert_eq!(
        stdout.trim_end().lines().count(),
        1,
        "one JSON line: {stdout}"
    );
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

fn sessions_of(server: &Server) -> u64 {
    server.get("/health").json()["sessions"]
        .as_u64()
        .expect("/health names the session count")
}

fn assert_latency_ordered(r: &Value) {
    let l = &r["latency_us"];
    let (p50, p99, max) = (
        l["p50"].as_u64().unwrap(),
        l["p99"].as_u64().unwrap(),
        l["max"].as_u64().unwrap(),
    );
    assert!(p50 > 0 && p50 <= p99 && p99 <= max, "{l}");
}

#[test]
fn call_profile_reports_every_request() {
    let server = Server::start(&[]);
    let start = sessions_of(&server);
    let r = bench_json(&[
        "--url",
        &server.url(),
        "--requests",
        "2000",
        "--concurrency",
        "8",
        "--sessions",
        "2",
    ]);
    assert_eq!(r["profile"], "call", "{r}");
    assert_eq!(r["requests"], 2000, "{r}");
    assert_eq!(r["ok"], 2000, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    assert_eq!(r["errors_by_kind"], serde_json::json!({}), "{r}");
    assert_eq!(r["sessions"], 2);
    assert!(r["requests_per_s"].as_f64().unwrap() > 0.0, "{r}");
    assert!(r["duration_s"].as_f64().unwrap() > 0.0, "{r}");
    assert_latency_ordered(&r);
    assert!(r["server"].is_null(), "no --pid, no server figures: {r}");
    assert_eq!(sessions_of(&server), start, "the run deleted its sessions");
}

#[test]
fn churn_profile_leaves_no_session_behind() {
    let server = Server::start(&[]);
    let start = sessions_of(&server);
    let pid = server.pid().to_string();
    let r = bench_json(&[
        "--url",
        &server.url(),
        "--profile",
        "churn",
        "--requests",
        "200",
        "--concurrency",
        "16",
        "--pid",
        &pid,
    ]);
    assert_eq!(r["requests"], 200, "{r}");
    assert_eq!(r["errors"], 0, "{r}");
    assert_latency_ordered(&r);
    assert_eq!(r["server"]["pid"], server.pid(), "{r}");
    assert!(r["server"]["cpu_s"].as_f64().unwrap() >= 0.0, "{r}");
    assert_eq!(sessions_of(&server), start, "{r}");
}

#[test]
fn sessions_profile_reports_memory_per_session() {
    let server = Server::start(&[]);
    let pid = server.pid().to_string();
    let r = bench_json(&[
        "--url",
        &server.url(),
        "--profile",
        "sessions",
        "--sessions",
        "50",
        "--concurrency",
        "16",
        "--pid",
        &pid,
    ]);
    assert_eq!(r["profile"], "sessions", "{r}");
    assert_eq!(
        (&r["requests"], &r["ok"], &r["errors"]),
        (&50.into(), &50.into(), &0.into()),
        "{r}"
    );
    assert!(r["memory_per_session_bytes"].is_u64(), "{r}");
    let s = &r["server"];
    assert!(s["rss_before_bytes"].as_u64().unwrap() > 0, "{r}");
    assert!(s["rss_after_bytes"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(
        sessions_of(&server),
        0,
        "held sessions are deleted at the end"
    );
}

#[test]
fn held_sessions_that_are_no_longer_served_are_errors() {
    // Sessions idle past the TTL are reaped while the bench holds them: the call it
    // makes on every held session then meets 404s, which the report counts.
    let server = Server::with_config("[limits]\nsession_idle_ttl_ms = 200\n", &[]);
    let r = bench_json(&[
        "--url",
        &server.url(),
        "--profile",
        "sessions",
        "--sessions",
        "10",
        "--concurrency",
        "4",
        "--duration",
        "1s",
    ]);
    assert_eq!(r["ok"], 10, "the opening itself succeeded: {r}");
    assert_eq!(r["errors"], 10, "{r}");
    assert_eq!(r["errors_by_kind"]["http_404"], 10, "{r}");
}

#[test]
fn stdio_profile_drives_a_spawned_server() {
    let dir = tempfile::tempdir().unwrap();
    let cmd = format!(
        "{} stdio --data-dir {}",
        bin(),
        dir.path().join("data").display()
    );
    let r = bench_json(&["--cmd", &cmd, "--requests", "2000"]);
    assert_eq!(r["profile"], "stdio", "{r}");
    assert_eq!(
        (&r["requests"], &r["errors"]),
        (&2000.into(), &0.into()),
        "{r}"
    );
    assert_latency_ordered(&r);
    // The spawned child is sampled without --pid.
    assert!(r["server"]["rss_after_bytes"].as_u64().unwrap() > 0, "{r}");
}

#[test]
fn tool_errors_are_counted_and_the_run_completes() {
    let server = Server::start(&[]);
    let r = bench_json(&[
        "--url",
        &server.url(),
        "--tool",
        "kv_get",
        "--args",
        r#"{"key":"missing"}"#,
        "--requests",
        "100",
        "--warmup",
        "0",
        "--concurrency",
        "4",
    ]);
    assert_eq!(r["requests"], 100, "{r}");
    assert_eq!(r["ok"], 0, "{r}");
    assert_eq!(
        r["errors_by_kind"],
        serde_json::json!({"tool_error": 100}),
        "{r}"
    );
    assert!(r["error_examples"]["tool_error"].is_string(), "{r}");
    // An unknown tool is a JSON-RPC error, counted by its code.
    let r = bench_json(&[
        "--url",
        &server.url(),
        "--tool",
        "no_such_tool",
        "--requests",
        "10",
        "--warmup",
        "0",
        "--concurrency",
        "2",
    ]);
    assert_eq!(
        r["errors_by_kind"],
        serde_json::json!({"jsonrpc_-32602": 10}),
        "{r}"
    );
}

#[test]
fn unreachable_targets_exit_1_and_bad_arguments_exit_2() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/mcp");
    let (status, stdout, stderr) = run(&["bench", "--url", &url, "--json"], &[]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr:?}");
    assert!(stderr.contains(&url), "{stderr}");
    let (status, _, stderr) = run(&["bench", "--cmd", "/nonexistent/emcee stdio"], &[]);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr:?}");
    for args in [
        vec!["bench"],
        vec!["bench", "--url", "https://127.0.0.1/mcp"],
        vec!["bench", "--url", &url, "--duration", "soon"],
        vec!["bench", "--url", &url, "--concurrency", "0"],
        vec!["bench", "--url", &url, "--args", "[]"],
    ] {
        let (status, _, stderr) = run(&args, &[]);
        assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{args:?}: {stderr:?}");
    }
    let (status, stdout, _) = run(&["bench", "--help"], &[]);
    assert_eq!(status.code(), Some(0));
    for needle in [
        "--profile",
        "churn",
        "memory_per_session_bytes",
        "Exit codes",
    ] {
        assert!(
            stdout.contains(needle),
            "{needle:?} not in --help:\n{stdout}"
        );
    }
}

#[test]
fn a_bearer_file_opens_a_server_with_tokens() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tokens = dir.path().join("tokens");
    std::fs::write(&tokens, "bench-token-0123456789\n").expect("write tokens");
    let bearer = dir.path().join("bearer");
    std::fs::write(&bearer, "bench-token-0123456789\n").expect("write bearer");
    let server = Server::start(&["--tokens-file", tokens.to_str().expect("utf-8 path")]);
    let bearer = bearer.to_str().expect("utf-8 path");
    let url = server.url();
    for profile in [&["--profile", "churn"][..], &["--protocol", "modern"][..]] {
        let mut args = vec!["--url", &url, "--requests", "200"];
        args.extend_from_slice(profile);
        args.extend_from_slice(&["--concurrency", "4", "--bearer-file", bearer]);
        let r = bench_json(&args);
        assert_eq!(r["ok"], 200, "{profile:?}: {r}");
        assert_eq!(r["errors"], 0, "{profile:?}: {r}");
    }
    // Without the token every request is refused; the run says so and fails.
    let (status, stdout, _) = run(
        &[
            "bench",
            "--url",
            &server.url(),
            "--requests",
            "50",
            "--protocol",
            "modern",
            "--json",
        ],
        &[],
    );
    let failed = status.code() == Some(1)
        || serde_json::from_str::<Value>(&stdout).is_ok_and(|r| r["ok"] == 0);
    assert!(failed, "{status:?} {stdout}");
    // A file whose first line is no token: exit 2, the file named, its text not.
    let junk = dir.path().join("junk");
    std::fs::write(&junk, "not a token\n").expect("write junk");
    let junk = junk.to_str().expect("utf-8 path");
    let (status, _, stderr) = run(
        &["bench", "--url", &server.url(), "--bearer-file", junk],
        &[],
    );
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--bearer-file") && !stderr.contains("not a token"),
        "{stderr}"
    );
}
