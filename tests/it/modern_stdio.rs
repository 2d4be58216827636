//! The 2026-07-28 revision on stdio (`emcee stdio --fixtures conformance`): every
//! request carries its `_meta`, there is no handshake, `subscriptions/listen` tags
//! its notifications with the subscription id, `notifications/cancelled` stops a
//! request, and EOF ends listeners with their final result.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{
    assert_only_jsonrpc, error_code, text, with_meta, Stdio, SERVER_INFO, SUBSCRIPTION_ID,
    SUPPORTED,
};

fn start() -> Stdio {
    Stdio::start(&["--fixtures", "conformance"])
}

/// A 2026-07-28 request; its response.
fn request(s: &mut Stdio, id: impl Into<Value>, method: &str, params: Value) -> Value {
    s.request(id, method, with_meta(params))
}

/// A 2026-07-28 `tools/call` that must succeed; its result.
fn call(s: &mut Stdio, id: u64, tool: &str, args: Value) -> Value {
    let resp = request(
        s,
        id,
        "tools/call",
        json!({"name": tool, "arguments": args}),
    );
    let result = resp
        .get("result")
        .cloned()
        .unwrap_or_else(|| panic!("{tool}: expected a result: {resp}"));
    assert_eq!(result["resultType"], "complete", "{resp}");
    result
}

/// Every message within `window`.
fn quiet_for(s: &mut Stdio, window: Duration) -> Vec<Value> {
    let deadline = Instant::now() + window;
    let mut got = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match s.try_recv(left) {
            Some(m) => got.push(m),
            None => break,
        }
    }
    got
}

/// Open `subscriptions/listen` with `filter`; checks its acknowledgement.
fn listen(s: &mut Stdio, id: impl Into<Value>, filter: Value) {
    let id = id.into();
    s.send_request(
        id.clone(),
        "subscriptions/listen",
        with_meta(json!({"notifications": filter})),
    );
    let ack = s.recv();
    assert_eq!(
        ack,
        json!({"jsonrpc": "2.0", "method": "notifications/subscriptions/acknowledged",
               "params": {"_meta": {SUBSCRIPTION_ID: id}, "notifications": filter}})
    );
}

#[test]
fn discover_first_then_stateless_calls() {
    let mut s = start();
    let resp = request(&mut s, 1, "server/discover", json!({}));
    let result = &resp["result"];
    assert_eq!(result["resultType"], "complete", "{resp}");
    assert_eq!(result["supportedVersions"], json!(SUPPORTED), "{resp}");
    assert_eq!(result["_meta"][SERVER_INFO]["name"], "emcee", "{resp}");
    assert_eq!(result["ttlMs"], 300_000, "{resp}");
    assert_eq!(result["cacheScope"], "public", "{resp}");
    for cap in ["tools", "prompts", "resources", "completions"] {
        assert!(result["capabilities"][cap].is_object(), "{cap}: {resp}");
    }

    let r = call(&mut s, 2, "echo", json!({"text": "hi"}));
    assert_eq!(r["content"], json!([{"type": "text", "text": "hi"}]), "{r}");
    assert_eq!(r["_meta"][SERVER_INFO]["name"], "emcee", "{r}");

    let r = request(&mut s, "three", "tools/list", json!({}));
    assert_eq!(r["result"]["resultType"], "complete", "{r}");
    assert_eq!(r["result"]["ttlMs"], 300_000, "{r}");
    assert_eq!(r["result"]["cacheScope"], "public", "{r}");

    // Capabilities (per request) and unknown resources: see
    // transports::a_missing_client_capability_is_32021 and
    // transports::an_unknown_resource_is_invalid_params_not_32002.

    // Progress and logs come only when asked, before the response.
    s.send_request(
        7,
        "tools/call",
        with_meta(json!({"name": "sleep", "arguments": {"ms": 100},
            "_meta": {"progressToken": "t7", "io.modelcontextprotocol/logLevel": "debug"}})),
    );
    let (resp, before) = s.recv_response(&json!(7));
    assert_eq!(text(&resp["result"]), "slept 100 ms");
    assert_eq!(before[0]["method"], "notifications/message", "{before:?}");
    assert!(before.len() > 1, "{before:?}");
    for m in &before[1..] {
        assert_eq!(m["method"], "notifications/progress", "{before:?}");
        assert_eq!(m["params"]["progressToken"], "t7", "{m}");
    }
    let (resp, before) = {
        s.send_request(
            8,
            "tools/call",
            with_meta(json!({"name": "sleep", "arguments": {"ms": 50}})),
        );
        s.recv_response(&json!(8))
    };
    assert_eq!(text(&resp["result"]), "slept 50 ms");
    assert!(before.is_empty(), "nothing asked, nothing sent: {before:?}");

    let lines = s.stdout.clone();
    let (status, rest, _) = s.finish();
    assert!(status.success(), "{status:?}");
    assert!(rest.is_empty(), "{rest:?}");
    assert_only_jsonrpc(&lines.lock().unwrap());
}

#[test]
fn listen_delivers_updates_until_cancelled() {
    let mut s = start();
    listen(&mut s, "L1", json!({"resourceSubscriptions": ["kv://s"]}));

    s.send_request(
        2,
        "tools/call",
        with_meta(json!({"name": "kv_set", "arguments": {"key": "s", "value": "1"}})),
    );
    let (resp, mut seen) = s.recv_response(&json!(2));
    assert_eq!(resp["result"]["resultType"], "complete", "{resp}");
    // The update may come just before or just after the response.
    seen.extend(quiet_for(&mut s, Duration::from_millis(300)));
    assert_eq!(
        seen,
        vec![
            json!({"jsonrpc": "2.0", "method": "notifications/resources/updated",
                    "params": {"uri": "kv://s", "_meta": {SUBSCRIPTION_ID: "L1"}}})
        ]
    );

    // Another key: nothing.
    let (_, mut seen) = {
        s.send_request(
            3,
            "tools/call",
            with_meta(json!({"name": "kv_set", "arguments": {"key": "t", "value": "1"}})),
        );
        s.recv_response(&json!(3))
    };
    seen.extend(quiet_for(&mut s, Duration::from_millis(300)));
    assert!(seen.is_empty(), "{seen:?}");

    s.notify("notifications/cancelled", json!({"requestId": "L1"}));
    let (_, mut seen) = {
        s.send_request(
            4,
            "tools/call",
            with_meta(json!({"name": "kv_set", "arguments": {"key": "s", "value": "2"}})),
        );
        s.recv_response(&json!(4))
    };
    seen.extend(quiet_for(&mut s, Duration::from_millis(300)));
    assert!(
        seen.is_empty(),
        "nothing more for a cancelled listen (no update, no result): {seen:?}"
    );
    let lines = s.stdout.clone();
    let (status, rest, _) = s.finish();
    assert!(status.success(), "{status:?}");
    assert!(
        rest.is_empty(),
        "a cancelled listen gets no final result: {rest:?}"
    );
    assert_only_jsonrpc(&lines.lock().unwrap());
}

#[test]
fn a_cancelled_call_is_never_answered() {
    let mut s = start();
    s.send_request(
        1,
        "tools/call",
        with_meta(json!({"name": "sleep", "arguments": {"ms": 10_000},
                         "_meta": {"progressToken": "z"}})),
    );
    // Let it start, then cancel it.
    std::thread::sleep(Duration::from_millis(100));
    s.notify(
        "notifications/cancelled",
        json!({"requestId": 1, "reason": "test"}),
    );
    // Cancelling an unknown request is ignored.
    s.notify("notifications/cancelled", json!({"requestId": 999}));
    let got = quiet_for(&mut s, Duration::from_millis(500));
    assert!(
        got.iter().all(|m| m.get("id").is_none()),
        "no response to a cancelled call: {got:?}"
    );
    let r = call(&mut s, 2, "echo", json!({"text": "next"}));
    assert_eq!(text(&r), "next");
    let after = quiet_for(&mut s, Duration::from_millis(300));
    assert!(
        after.is_empty(),
        "no more messages for the cancelled call: {after:?}"
    );
    let lines = s.stdout.clone();
    let (status, rest, _) = s.finish();
    assert!(status.success(), "{status:?}");
    assert!(
        rest.iter().all(|m| m["id"] != 1),
        "never answered: {rest:?}"
    );
    let lines = lines.lock().unwrap();
    assert_only_jsonrpc(&lines);
    for line in lines.iter() {
        let v: Value = serde_json::from_str(line).unwrap();
        if v["method"] == "notifications/progress" {
            assert_eq!(v["params"]["progressToken"], "z", "{v}");
        }
        assert_ne!(v["id"], 1, "the cancelled call was answered: {v}");
    }
}

#[test]
fn eof_ends_open_listens_with_their_result() {
    let mut s = start();
    listen(&mut s, 5, json!({"toolsListChanged": true}));
    listen(&mut s, "five", json!({"promptsListChanged": true}));
    let r = call(&mut s, 6, "test_trigger_tool_change", json!({}));
    assert_eq!(r["resultType"], "complete");
    let got = quiet_for(&mut s, Duration::from_millis(300));
    assert_eq!(
        got,
        vec![
            json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed",
                    "params": {"_meta": {SUBSCRIPTION_ID: 5}}})
        ]
    );
    let lines = s.stdout.clone();
    let (status, rest, stderr) = s.finish();
    assert_eq!(status.code(), Some(0), "{}", stderr.join("\n"));
    assert_eq!(rest.len(), 2, "one final result per listen: {rest:?}");
    for id in [json!(5), json!("five")] {
        let r = rest
            .iter()
            .find(|m| m["id"] == id)
            .unwrap_or_else(|| panic!("no final result for listen {id}: {rest:?}"));
        let result = &r["result"];
        assert_eq!(result["resultType"], "complete", "{r}");
        assert_eq!(result["_meta"][SUBSCRIPTION_ID], id, "{r}");
        assert_eq!(result["_meta"][SERVER_INFO]["name"], "emcee", "{r}");
    }
    assert_only_jsonrpc(&lines.lock().unwrap());
}

#[test]
fn stdout_carries_only_jsonrpc_messages() {
    let mut s = Stdio::start(&["--fixtures", "conformance", "--log-level", "trace"]);
    listen(
        &mut s,
        "all",
        json!({"toolsListChanged": true, "promptsListChanged": true,
               "resourcesListChanged": true, "resourceSubscriptions": ["kv://k"]}),
    );
    request(&mut s, 1, "server/discover", json!({}));
    s.send_request(
        2,
        "tools/call",
        with_meta(json!({"name": "sleep", "arguments": {"ms": 100},
            "_meta": {"progressToken": 2, "io.modelcontextprotocol/logLevel": "debug",
                      "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}})),
    );
    s.recv_response(&json!(2));
    call(&mut s, 3, "kv_set", json!({"key": "k", "value": "v"}));
    call(&mut s, 4, "test_logging_tool", json!({}));
    call(&mut s, 5, "test_trigger_tool_change", json!({}));
    call(&mut s, 6, "test_trigger_prompt_change", json!({}));
    let r = request(&mut s, 7, "tools/call", json!({"name": "no_such_tool"}));
    assert_eq!(error_code(&r), -32602, "{r}");
    let r = request(&mut s, 8, "ping", json!({}));
    assert_eq!(error_code(&r), -32601, "{r}");
    // Not JSON: a parse error without an id, still one JSON-RPC line.
    s.send_raw("{not json");
    let r = s.recv();
    assert!(r.get("id").is_none_or(Value::is_null), "{r}");
    assert_eq!(error_code(&r), -32700, "{r}");
    let lines = s.stdout.clone();
    let (status, rest, stderr) = s.finish();
    assert_eq!(status.code(), Some(0), "{}", stderr.join("\n"));
    assert!(
        rest.iter().any(|m| m["id"] == "all"),
        "the listen's final result: {rest:?}"
    );
    assert!(!stderr.is_empty(), "logs go to stderr");
    let lines = lines.lock().unwrap();
    assert_only_jsonrpc(&lines);
    for line in lines.iter() {
        assert!(!line.contains("trace_id"), "a log line on stdout: {line}");
    }
}
