//! The stdio transport, driven through the real binary.

use serde_json::{json, Value};

use crate::harness::{error_code, text, Stdio};

const LEGACY_VERSIONS: [&str; 4] = ["2025-11-25", "2025-06-18", "2025-03-26", "2024-11-05"];
const BUILTIN_TOOLS: [&str; 6] = ["echo", "sleep", "kv_set", "kv_get", "kv_delete", "kv_list"];

fn tool_names(result: &Value) -> Vec<String> {
    result["tools"]
        .as_array()
        .expect("tools array")
        .iter()
        .map(|t| t["name"].as_str().expect("name").to_owned())
        .collect()
}

#[test]
fn initialize_answers_each_supported_version_with_itself() {
    for version in LEGACY_VERSIONS {
        let mut s = Stdio::start(&[]);
        let r = s.initialize(version);
        assert_eq!(r["protocolVersion"], version);
        assert_eq!(r["serverInfo"]["name"], "emcee");
        assert!(r["capabilities"]["tools"].is_object(), "{r}");
        assert_eq!(s.request(1, "ping", json!({}))["result"], json!({}));
        let (status, _, _) = s.finish();
        assert!(status.success());
    }
}

#[test]
fn initialize_with_an_unsupported_version_offers_the_latest() {
    let mut s = Stdio::start(&[]);
    let r = s.initialize("1999-01-01");
    assert_eq!(r["protocolVersion"], "2025-11-25");
    // The session works at the offered version.
    assert!(s.request(1, "tools/list", json!({}))["result"]["tools"].is_array());
}

#[test]
fn a_second_initialize_is_invalid_and_requests_before_it_need_2026_meta() {
    let mut s = Stdio::start(&[]);
    // Neither `initialize` nor 2026-07-28 `_meta`: invalid params, naming both ways.
    let r = s.request(1, "tools/list", json!({}));
    assert_eq!(error_code(&r), -32602, "{r}");
    let message = r["error"]["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("protocolVersion") && message.contains("initialize"),
        "{message}"
    );
    assert_eq!(
        s.request(2, "ping", json!({}))["result"],
        json!({}),
        "ping is always allowed"
    );
    s.initialize("2025-11-25");
    let again = s.request(
        3,
        "initialize",
        json!({"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "x", "version": "0"}}),
    );
    assert_eq!(error_code(&again), -32600);
}

#[test]
fn tools_list_has_the_builtins_and_fixtures_only_when_asked() {
    let mut s = Stdio::ready(&[]);
    let r = s.request(1, "tools/list", json!({}))["result"].clone();
    assert_eq!(tool_names(&r), BUILTIN_TOOLS);
    for t in r["tools"].as_array().unwrap() {
        assert_eq!(t["inputSchema"]["type"], "object", "{t}");
        assert!(t["description"].is_string(), "{t}");
    }
    assert!(r.get("nextCursor").is_none());

    let mut s = Stdio::ready(&["--fixtures", "faults"]);
    let names = tool_names(&s.request(1, "tools/list", json!({}))["result"]);
    assert_eq!(
        &names[6..],
        [
            "fault_health",
            "fault_panic",
            "fault_block",
            "fault_hang",
            "fault_big"
        ]
    );
}

#[test]
fn kv_tools_advertise_typed_output_hints_and_constraints() {
    let mut s = Stdio::ready(&[]);
    let r = s.request(1, "tools/list", json!({}))["result"].clone();
    let tool = |name: &str| {
        r["tools"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .cloned()
            .unwrap()
    };
    // outputSchema generated from the handler's `Json<T>` return type.
    let get = tool("kv_get");
    assert_eq!(get["outputSchema"]["type"], "object", "{get}");
    assert_eq!(
        get["outputSchema"]["required"],
        json!(["key", "value"]),
        "{get}"
    );
    assert_eq!(
        get["outputSchema"]["properties"]["value"]["type"], "string",
        "{get}"
    );
    assert_eq!(
        tool("kv_list")["outputSchema"]["properties"]["truncated"]["type"],
        "boolean"
    );
    assert!(tool("echo").get("outputSchema").is_none());
    // Typed annotations, as MCP's hint names; unset hints are left out.
    assert_eq!(
        get["annotations"],
        json!({"readOnlyHint": true, "openWorldHint": false})
    );
    assert_eq!(
        tool("kv_set")["annotations"],
        json!({"readOnlyHint": false, "destructiveHint": true, "idempotentHint": true, "openWorldHint": false})
    );
    // The constraint that is enforced is the one advertised.
    assert_eq!(
        get["inputSchema"]["properties"]["key"]["minLength"], 1,
        "{get}"
    );

    // The result carries structuredContent matching the schema, and its JSON text.
    s.call_ok(2, "kv_set", json!({"key": "k", "value": "v"}));
    let got = s.call_ok(3, "kv_get", json!({"key": "k"}));
    assert_eq!(got["structuredContent"], json!({"key": "k", "value": "v"}));
    assert_eq!(
        got["content"],
        json!([{"type": "text", "text": r#"{"key":"k","value":"v"}"#}])
    );
}

#[test]
fn kv_list_stops_at_its_limit() {
    let mut s = Stdio::with_config("[limits]\nkv_list_max = 2\n", &[]);
    s.initialize("2025-11-25");
    for (i, k) in ["a", "b"].iter().enumerate() {
        s.call_ok(i as u64 + 1, "kv_set", json!({"key": k, "value": "x"}));
    }
    let r = s.call_ok(10, "kv_list", json!({}));
    assert_eq!(
        r["structuredContent"],
        json!({"keys": ["a", "b"], "truncated": false})
    );
    s.call_ok(11, "kv_set", json!({"key": "c", "value": "x"}));
    let r = s.call_ok(12, "kv_list", json!({}));
    assert_eq!(
        r["structuredContent"],
        json!({"keys": ["a", "b"], "truncated": true})
    );
}

#[test]
fn bad_tool_arguments_are_is_error_results_naming_the_problem() {
    let mut s = Stdio::ready(&[]);
    let cases = [
        ("echo", json!({}), "missing field `text`"),
        ("echo", json!({"text": 5}), "`text`"),
        (
            "echo",
            json!({"text": "a", "extra": 1}),
            "unknown field `extra`",
        ),
        ("sleep", json!({"ms": -1}), "`ms`"),
        // Schema constraints (`minLength: 1`), checked before the handler runs.
        (
            "kv_set",
            json!({"key": "", "value": "v"}),
            "tool `kv_set`: invalid arguments: `key`: must be at least 1 character long (minLength 1)",
        ),
        ("kv_get", json!({"key": ""}), "`key`: must be at least 1 character long (minLength 1)"),
        ("kv_delete", json!({"key": ""}), "`key`: must be at least 1 character long (minLength 1)"),
        ("echo", json!([1, 2]), "must be a JSON object"),
    ];
    for (i, (tool, args, needle)) in cases.into_iter().enumerate() {
        let r = s.call_ok(i as u64, tool, args.clone());
        assert_eq!(r["isError"], true, "{tool} {args}: {r}");
        assert!(text(&r).contains(needle), "{tool} {args}: {r}");
    }
}

#[test]
fn json_rpc_errors_have_the_right_codes() {
    let mut s = Stdio::ready(&[]);
    s.send_raw("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":");
    let r = s.recv();
    assert_eq!(error_code(&r), -32700);
    assert_eq!(r["id"], Value::Null);

    s.send_raw(r#"{"jsonrpc":"1.0","id":2,"method":"ping"}"#);
    let r = s.recv();
    assert_eq!((error_code(&r), r["id"].clone()), (-32600, json!(2)));
    s.send_raw(r#"{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}"#);
    assert_eq!(error_code(&s.recv()), -32600);
    s.send_raw(r#"[]"#);
    assert_eq!(error_code(&s.recv()), -32600);

    assert_eq!(
        error_code(&s.request(3, "no/such/method", json!({}))),
        -32601
    );
    assert_eq!(
        error_code(&s.request(4, "tools/call", json!({"arguments": {}}))),
        -32602
    );
    assert_eq!(
        error_code(&s.request(5, "tools/call", json!({"name": "nope"}))),
        -32602
    );
    assert_eq!(
        error_code(&s.request(6, "logging/setLevel", json!({"level": "loud"}))),
        -32602
    );

    let mut fresh = Stdio::start(&[]);
    let r = fresh.request(1, "initialize", json!({"capabilities": {}}));
    assert_eq!(error_code(&r), -32602, "initialize without protocolVersion");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("protocolVersion"),
        "{r}"
    );

    // The session survived all of it.
    assert_eq!(
        text(&s.call_ok(7, "echo", json!({"text": "still here"}))),
        "still here"
    );
}

#[test]
fn string_and_number_ids_are_echoed_exactly() {
    let mut s = Stdio::ready(&[]);
    assert_eq!(s.request("abc", "ping", json!({}))["id"], "abc");
    assert_eq!(
        s.request(9_007_199_254_740_993_i64, "ping", json!({}))["id"],
        json!(9_007_199_254_740_993_i64)
    );
}

#[test]
fn a_slow_call_does_not_block_ping_or_other_calls() {
    let mut s = Stdio::ready(&[]);
    s.send_call(1, "sleep", json!({"ms": 1500}));
    s.send_request(2, "ping", json!({}));
    s.send_call(3, "echo", json!({"text": "fast"}));
    let first = s.recv();
    let second = s.recv();
    let third = s.recv();
    assert_eq!(
        [&first["id"], &second["id"]],
        [&json!(2), &json!(3)],
        "{first} {second}"
    );
    assert_eq!(third["id"], 1);
    assert_eq!(text(&third["result"]), "slept 1500 ms");
}

#[test]
fn many_concurrent_calls_each_get_their_own_answer() {
    let mut s = Stdio::ready(&[]);
    for i in 0..50 {
        s.send_call(i, "echo", json!({"text": format!("m{i}")}));
    }
    let mut seen = std::collections::BTreeSet::new();
    for _ in 0..50 {
        let r = s.recv();
        let id = r["id"].as_i64().unwrap();
        assert_eq!(text(&r["result"]), format!("m{id}"));
        seen.insert(id);
    }
    assert_eq!(seen.len(), 50);
}

#[test]
fn cancelling_fault_hang_stops_it_without_an_answer_and_frees_its_slot() {
    let mut s = Stdio::with_config(
        "[limits]\nmax_in_flight_per_session = 1\n",
        &["--fixtures", "faults"],
    );
    s.initialize("2025-11-25");
    s.send_call(10, "fault_hang", json!({}));
    s.notify(
        "notifications/cancelled",
        json!({"requestId": 10, "reason": "test"}),
    );
    // The slot is free again: with a limit of 1, this call is served, not refused.
    let r = s.call_ok(11, "echo", json!({"text": "after cancel"}));
    assert_eq!(text(&r), "after cancel");
    let (status, rest, _) = s.finish();
    assert!(status.success());
    assert!(
        rest.iter().all(|m| m["id"] != 10),
        "a cancelled request must not be answered: {rest:?}"
    );
}

#[test]
fn in_flight_calls_are_bounded_per_session() {
    let mut s = Stdio::with_config(
        "[limits]\nmax_in_flight_per_session = 2\n",
        &["--fixtures", "faults"],
    );
    s.initialize("2025-11-25");
    s.send_call(1, "fault_hang", json!({}));
    s.send_call(2, "fault_hang", json!({}));
    let r = s.call(3, "echo", json!({"text": "x"}));
    assert_eq!(
        error_code(&r),
        -32000,
        "the third call is over the limit: {r}"
    );
    assert_eq!(r["error"]["data"]["limit"], 2);
    assert_eq!(
        s.request(4, "ping", json!({}))["result"],
        json!({}),
        "non-call requests still served"
    );
    s.notify("notifications/cancelled", json!({"requestId": 1}));
    assert_eq!(text(&s.call_ok(5, "echo", json!({"text": "y"}))), "y");
}

#[test]
fn a_request_id_already_in_flight_is_refused() {
    let mut s = Stdio::ready(&["--fixtures", "faults"]);
    s.send_call(1, "fault_hang", json!({}));
    let r = s.call(1, "echo", json!({"text": "x"}));
    assert_eq!(error_code(&r), -32600, "{r}");
}

#[test]
fn a_call_past_its_timeout_gets_an_is_error_result() {
    let mut s = Stdio::with_config(
        "[limits]\ncall_timeout_ms = 200\n",
        &["--fixtures", "faults"],
    );
    s.initialize("2025-11-25");
    let r = s.call_ok(1, "fault_hang", json!({}));
    assert_eq!(r["isError"], true);
    assert!(text(&r).contains("timed out after 200 ms"), "{r}");
    assert_eq!(
        text(&s.call_ok(2, "sleep", json!({"ms": 50}))),
        "slept 50 ms",
        "under the limit"
    );
}

#[test]
fn fault_big_returns_the_requested_size() {
    let mut s = Stdio::ready(&["--fixtures", "faults"]);
    for n in [0usize, 1, 1 << 20] {
        assert_eq!(
            text(&s.call_ok(n, "fault_big", json!({"bytes": n}))).len(),
            n
        );
    }
    let r = s.call_ok(1, "fault_big", json!({"bytes": 64 * 1024 * 1024 + 1}));
    assert_eq!(r["isError"], true, "above the fixture's maximum");
}

#[test]
fn kv_values_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Stdio::start_in(dir.path(), &[], &[]);
    s.initialize("2025-11-25");
    for i in 0..20 {
        s.call_ok(
            i,
            "kv_set",
            json!({"key": format!("key{i:02}"), "value": format!("value{i}")}),
        );
    }
    // kill -9 right after the last acknowledgement: acknowledged writes are durable.
    drop(s);
    let mut s = Stdio::start_in(dir.path(), &[], &[]);
    s.initialize("2025-11-25");
    for i in 0..20 {
        let r = s.call_ok(100 + i, "kv_get", json!({"key": format!("key{i:02}")}));
        assert_eq!(r["structuredContent"]["value"], format!("value{i}"));
    }
    let (status, _, _) = s.finish();
    assert!(status.success());
}

#[test]
fn messages_are_bounded_by_max_message_bytes_exactly() {
    const LIMIT: usize = 200;
    let mut s = Stdio::with_config(&format!("[limits]\nmax_message_bytes = {LIMIT}\n"), &[]);
    s.initialize("2025-11-25");
    let pad = |id: u64, len: usize| {
        let base = format!(r#"{{"jsonrpc":"2.0","id":{id},"method":"ping"}}"#);
        let mut line = base[..base.len() - 1].to_owned();
        line.push_str(&" ".repeat(len - base.len()));
        line.push('}');
        assert_eq!(line.len(), len);
        line
    };
    s.send_raw(&pad(1, LIMIT));
    assert_eq!(
        s.recv()["id"],
        1,
        "a message of exactly the limit is served"
    );
    s.send_raw(&pad(2, LIMIT + 1));
    let r = s.recv();
    assert_eq!(error_code(&r), -32600);
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("200 bytes"),
        "{r}"
    );
    s.send_raw(&pad(3, LIMIT));
    assert_eq!(
        s.recv()["id"],
        3,
        "the stream goes on after an oversized line"
    );
}

#[test]
fn batches_are_served_only_under_2025_03_26() {
    let mut s = Stdio::start(&[]);
    s.initialize("2025-03-26");
    s.send(&json!([
        {"jsonrpc": "2.0", "id": 1, "method": "ping"},
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "b"}}},
        {"jsonrpc": "2.0", "id": 3, "method": "nope"}
    ]));
    let r = s.recv();
    let items = r
        .as_array()
        .unwrap_or_else(|| panic!("expected a batch reply: {r}"));
    let mut ids: Vec<i64> = items.iter().map(|m| m["id"].as_i64().unwrap()).collect();
    ids.sort();
    assert_eq!(ids, [1, 2, 3]);
    let echo = items.iter().find(|m| m["id"] == 2).unwrap();
    assert_eq!(text(&echo["result"]), "b");

    let mut s = Stdio::start(&[]);
    s.initialize("2025-06-18");
    s.send(&json!([{"jsonrpc": "2.0", "id": 1, "method": "ping"}]));
    assert_eq!(error_code(&s.recv()), -32600);
}

#[test]
fn progress_and_log_notifications_reach_the_client() {
    let mut s = Stdio::ready(&[]);
    s.send_request(
        1,
        "tools/call",
        json!({"name": "sleep", "arguments": {"ms": 40}, "_meta": {"progressToken": "tok"}}),
    );
    let (resp, notes) = s.recv_response(&json!(1));
    assert_eq!(text(&resp["result"]), "slept 40 ms");
    let progress: Vec<f64> = notes
        .iter()
        .filter(|n| n["method"] == "notifications/progress")
        .map(|n| {
            assert_eq!(n["params"]["progressToken"], "tok");
            assert_eq!(n["params"]["total"], 40.0);
            n["params"]["progress"].as_f64().unwrap()
        })
        .collect();
    assert_eq!(progress.len(), 4, "{notes:?}");
    assert!(
        progress.windows(2).all(|w| w[0] < w[1]),
        "progress increases: {progress:?}"
    );
    assert!(
        !notes.iter().any(|n| n["method"] == "notifications/message"),
        "debug logs are below the default level"
    );

    assert_eq!(
        s.request(2, "logging/setLevel", json!({"level": "debug"}))["result"],
        json!({})
    );
    s.send_call(3, "sleep", json!({"ms": 1}));
    let (_, notes) = s.recv_response(&json!(3));
    let log = notes
        .iter()
        .find(|n| n["method"] == "notifications/message")
        .expect("a log notification");
    assert_eq!(log["params"]["level"], "debug");
    assert_eq!(log["params"]["logger"], "sleep");
    assert!(
        !notes
            .iter()
            .any(|n| n["method"] == "notifications/progress"),
        "no token, no progress"
    );
}

#[test]
fn eof_lets_in_flight_calls_finish_then_exits_zero() {
    let mut s = Stdio::ready(&[]);
    s.send_call(1, "sleep", json!({"ms": 300}));
    let (status, rest, _) = s.finish();
    assert_eq!(status.code(), Some(0));
    assert!(
        rest.iter()
            .any(|m| m["id"] == 1 && text(&m["result"]) == "slept 300 ms"),
        "{rest:?}"
    );
}

#[test]
fn calls_past_the_shutdown_grace_are_answered_as_cancelled() {
    let mut s = Stdio::with_config(
        "[limits]\nshutdown_grace_ms = 200\n",
        &["--fixtures", "faults"],
    );
    s.initialize("2025-11-25");
    s.send_call(1, "fault_hang", json!({}));
    s.send_request(2, "ping", json!({}));
    assert_eq!(s.recv()["id"], 2, "the hang is in flight");
    let (status, rest, _) = s.finish();
    assert_eq!(status.code(), Some(0));
    let answer = rest
        .iter()
        .find(|m| m["id"] == 1)
        .unwrap_or_else(|| panic!("no answer: {rest:?}"));
    assert_eq!(answer["result"]["isError"], true);
    assert!(
        text(&answer["result"]).contains("shutting down"),
        "{answer}"
    );
}

#[test]
fn sigterm_drains_in_flight_calls_and_exits_zero() {
    let mut s = Stdio::ready(&[]);
    s.send_call(1, "sleep", json!({"ms": 500}));
    s.send_request(2, "ping", json!({}));
    assert_eq!(s.recv()["id"], 2);
    s.signal("TERM");
    let (status, rest, _) = s.wait();
    assert_eq!(status.code(), Some(0));
    assert!(
        rest.iter()
            .any(|m| m["id"] == 1 && text(&m["result"]) == "slept 500 ms"),
        "{rest:?}"
    );
}

#[test]
fn stdout_carries_only_json_rpc_and_stderr_only_json_logs() {
    let mut s = Stdio::start(&["--fixtures", "faults", "--log-level", "debug"]);
    s.initialize("2025-11-25");
    s.call_ok(1, "echo", json!({"text": "x"}));
    s.call_ok(2, "fault_panic", json!({}));
    s.call(3, "nope", json!({}));
    s.send_raw("garbage");
    s.recv();
    s.send_request(
        4,
        "tools/call",
        json!({"name": "sleep", "arguments": {"ms": 5}, "_meta": {"progressToken": 1}}),
    );
    s.recv_response(&json!(4));
    let stdout = s.stdout.clone();
    let (status, _, stderr) = s.finish();
    assert!(status.success());

    let stdout = stdout.lock().unwrap().clone();
    assert!(stdout.len() >= 8, "{stdout:?}");
    for line in &stdout {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("stdout line not JSON ({e}): {line}"));
        assert_eq!(v["jsonrpc"], "2.0", "{line}");
        assert!(
            v.get("method").is_some() || v.get("result").is_some() || v.get("error").is_some(),
            "{line}"
        );
    }
    assert!(!stderr.is_empty());
    for line in &stderr {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("stderr line not JSON ({e}): {line}"));
        for key in ["ts", "level", "msg", "service", "version"] {
            assert!(v.get(key).is_some(), "log line lacks `{key}`: {line}");
        }
    }
    let logs: Vec<Value> = stderr
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let call = logs
        .iter()
        .find(|v| v["msg"] == "call finished" && v["tool"] == "echo")
        .unwrap_or_else(|| panic!("no call log: {stderr:?}"));
    for key in ["session", "method", "request_id", "duration_ms", "success"] {
        assert!(call.get(key).is_some(), "call log lacks `{key}`: {call}");
    }
    assert_eq!(call["success"], true);
    assert!(logs
        .iter()
        .any(|v| v["tool"] == "fault_panic" && v["success"] == false));
}

#[test]
fn log_level_filters_the_process_log() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Stdio::start_in(dir.path(), &[], &[("EMCEE_LOG", "error")]);
    s.initialize("2025-11-25");
    let (status, _, stderr) = s.finish();
    assert!(status.success());
    assert!(
        stderr.is_empty(),
        "nothing at error level on a clean run: {stderr:?}"
    );

    let mut s = Stdio::start_in(
        dir.path(),
        &["--log-level", "info"],
        &[("EMCEE_LOG", "error")],
    );
    s.initialize("2025-11-25");
    let (_, _, stderr) = s.finish();
    assert!(
        stderr.iter().any(|l| l.contains("session initialized")),
        "the flag beats the env: {stderr:?}"
    );
}

#[test]
fn kv_values_are_resources_with_update_notifications() {
    let mut s = Stdio::ready(&[]);
    let templates = s.request(1, "resources/templates/list", json!({}));
    assert_eq!(
        templates["result"]["resourceTemplates"][0]["uriTemplate"],
        "kv://{key}"
    );
    assert_eq!(
        s.request(2, "resources/list", json!({}))["result"],
        json!({"resources": []})
    );
    assert_eq!(
        error_code(&s.request(3, "resources/read", json!({"uri": "kv://a"}))),
        -32002
    );
    assert_eq!(
        error_code(&s.request(4, "resources/read", json!({"uri": "nope://x"}))),
        -32002
    );

    assert_eq!(
        s.request(5, "resources/subscribe", json!({"uri": "kv://a"}))["result"],
        json!({})
    );
    s.send_call(6, "kv_set", json!({"key": "a", "value": "1"}));
    let mut updated = false;
    for _ in 0..2 {
        let m = s.recv();
        if m["method"] == "notifications/resources/updated" {
            assert_eq!(m["params"], json!({"uri": "kv://a"}));
            updated = true;
        }
    }
    assert!(updated, "a subscriber hears of the change");
    let read = s.request(7, "resources/read", json!({"uri": "kv://a"}));
    assert_eq!(read["result"]["contents"][0]["text"], "1");

    assert_eq!(
        s.request(8, "resources/unsubscribe", json!({"uri": "kv://a"}))["result"],
        json!({})
    );
    s.send_call(9, "kv_set", json!({"key": "a", "value": "2"}));
    let (_, mut seen) = s.recv_response(&json!(9));
    s.send_request(10, "ping", json!({}));
    seen.extend(s.recv_response(&json!(10)).1);
    let (_, rest, _) = s.finish();
    seen.extend(rest);
    assert!(
        seen.iter()
            .all(|m| m["method"] != "notifications/resources/updated"),
        "no update after unsubscribe: {seen:?}"
    );
}

#[test]
fn in_flight_calls_are_bounded_server_wide_and_per_tool() {
    let mut s = Stdio::with_config(
        "[limits]\nmax_in_flight_total = 3\nmax_in_flight_per_tool = 2\n",
        &["--fixtures", "faults"],
    );
    s.initialize("2025-11-25");
    s.send_call(1, "fault_hang", json!({}));
    s.send_call(2, "fault_hang", json!({}));
    let r = s.call(3, "fault_hang", json!({}));
    assert_eq!(
        error_code(&r),
        -32000,
        "a third fault_hang is over the tool's limit: {r}"
    );
    assert_eq!(r["error"]["data"], json!({"limit": 2, "scope": "tool"}));
    s.send_call(4, "sleep", json!({"ms": 60000}));
    let r = s.call(5, "echo", json!({"text": "x"}));
    assert_eq!(
        error_code(&r),
        -32000,
        "a fourth call is over the server's limit: {r}"
    );
    assert_eq!(r["error"]["data"], json!({"limit": 3, "scope": "server"}));
    s.notify("notifications/cancelled", json!({"requestId": 1}));
    assert_eq!(
        text(&s.call_ok(6, "echo", json!({"text": "y"}))),
        "y",
        "a slot came free"
    );
}

#[test]
fn blocking_code_runs_off_the_event_loop_in_a_bounded_pool() {
    let mut s = Stdio::with_config(
        "[limits]\nblocking_threads = 1\ncall_timeout_ms = 700\n",
        &["--fixtures", "faults"],
    );
    s.initialize("2025-11-25");
    s.send_call(1, "fault_block", json!({"ms": 500}));
    s.send_call(2, "fault_block", json!({"ms": 500}));
    // The event loop is free while a thread is blocked.
    s.send_request(3, "ping", json!({}));
    assert_eq!(
        s.recv()["id"],
        3,
        "ping is answered before the blocked calls"
    );
    let (one, _) = s.recv_response(&json!(1));
    assert_eq!(text(&one["result"]), "blocked 500 ms");
    let (two, _) = s.recv_response(&json!(2));
    assert_eq!(
        two["result"]["isError"], true,
        "one thread: the second waited past its timeout: {two}"
    );
    assert!(
        text(&two["result"]).contains("timed out after 700 ms"),
        "{two}"
    );
}

/// The lines a client sends to initialize and then call `echo` with `id`.
fn session_script(calls: &[u64]) -> String {
    let mut lines = vec![
        json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"}}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
    ];
    for &id in calls {
        lines.push(json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": "echo", "arguments": {"text": format!("call {id}")}}}));
    }
    lines.iter().map(|l| format!("{l}\n")).collect()
}

#[test]
fn stdin_and_stdout_may_be_regular_files() {
    // Not pipes: served through tokio's blocking stdio instead of the poller.
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("in.jsonl");
    let output = tmp.path().join("out.jsonl");
    std::fs::write(&input, session_script(&[1, 2, 3])).unwrap();
    let status = crate::harness::emcee_command()
        .args(["stdio", "--log-level", "warning", "--data-dir"])
        .arg(tmp.path().join("data"))
        .stdin(std::fs::File::open(&input).unwrap())
        .stdout(std::fs::File::create(&output).unwrap())
        .status()
        .unwrap();
    assert!(status.success());
    let answers: Vec<Value> = std::fs::read_to_string(&output)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(answers.len(), 4, "{answers:?}");
    for id in 1..=3 {
        let answer = answers.iter().find(|a| a["id"] == id).unwrap();
        assert_eq!(text(&answer["result"]), format!("call {id}"));
    }
}

#[test]
fn a_stdin_pipe_is_left_in_blocking_mode() {
    use std::io::{Read, Write};
    // The server polls its stdin pipe in non-blocking mode. That mode belongs to the
    // pipe, not the process: keep a second read end and check it blocks afterwards.
    let (reader, mut writer) = std::io::pipe().unwrap();
    let mut ours = reader.try_clone().unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let mut child = crate::harness::emcee_command()
        .args(["stdio", "--log-level", "warning", "--data-dir"])
        .arg(tmp.path().join("data"))
        .stdin(reader)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    writer.write_all(session_script(&[1]).as_bytes()).unwrap();
    let mut stdout = std::io::BufReader::new(child.stdout.take().unwrap());
    for _ in 0..2 {
        let mut line = String::new();
        std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
        assert!(line.contains("\"id\":"), "{line}");
    }
    crate::harness::send_signal(child.id(), "TERM");
    assert!(child.wait().unwrap().success());

    let (tx, rx) = std::sync::mpsc::channel();
    let read = std::thread::spawn(move || {
        let mut byte = [0u8; 1];
        let _ = tx.send(ours.read(&mut byte).map_err(|e| e.kind()));
    });
    // Blocking mode: the read waits for data; non-blocking, it fails at once.
    let early = rx.recv_timeout(std::time::Duration::from_millis(300));
    assert!(early.is_err(), "the read did not block: {early:?}");
    writer.write_all(b"x").unwrap();
    let late = rx.recv_timeout(crate::harness::RECV_TIMEOUT).unwrap();
    assert_eq!(late, Ok(1));
    read.join().unwrap();
}

#[test]
fn duplicate_json_keys_are_refused_everywhere() {
    // serde_json keeps the last of two keys, a gateway may keep the first: a message
    // that could mean two calls is refused instead (-32602, the id kept).
    let mut s = Stdio::ready(&[]);
    for (id, params) in [
        (
            1,
            r#"{"name":"echo","name":"kv_set","arguments":{"text":"a"}}"#,
        ),
        (2, r#"{"name":"echo","arguments":{"text":"a","text":"b"}}"#),
        (
            3,
            r#"{"name":"echo","arguments":{"text":"a","x":{"k":1,"k":2}}}"#,
        ),
    ] {
        s.send_raw(&format!(
            r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{params}}}"#
        ));
        let r = s.recv();
        assert_eq!(
            (error_code(&r), r["id"].clone()),
            (-32602, json!(id)),
            "{r}"
        );
        let message = r["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("duplicate"), "{message}");
    }
    // The envelope too.
    s.send_raw(r#"{"jsonrpc":"2.0","id":4,"id":5,"method":"ping"}"#);
    assert_eq!(error_code(&s.recv()), -32600);
    // And a well-formed call still works.
    assert_eq!(text(&s.call_ok(6, "echo", json!({"text": "ok"}))), "ok");
}

#[test]
fn subscriptions_are_bounded_in_number_and_uri_size() {
    let mut s = Stdio::start(&[]);
    s.initialize("2025-11-25");
    let long = format!("kv://{}", "k".repeat(5000));
    let r = s.request(1, "resources/subscribe", json!({"uri": long}));
    assert_eq!(error_code(&r), -32602, "{r}");
    assert_eq!(r["error"]["data"]["limit"], "limits.max_uri_bytes", "{r}");
    // limits.max_subscriptions: 16 by default.
    for i in 0..16 {
        let r = s.request(
            100 + i,
            "resources/subscribe",
            json!({"uri": format!("kv://k{i}")}),
        );
        assert_eq!(r["result"], json!({}), "{r}");
    }
    // Subscribing again to a held URI is fine; a new one is one too many.
    let r = s.request(9, "resources/subscribe", json!({"uri": "kv://k0"}));
    assert_eq!(r["result"], json!({}), "{r}");
    let r = s.request(10, "resources/subscribe", json!({"uri": "kv://one-more"}));
    assert_eq!(error_code(&r), -32602, "{r}");
    assert_eq!(
        r["error"]["data"]["limit"], "limits.max_subscriptions",
        "{r}"
    );
    // 2026-07-28 listen streams count the same way.
    let meta = json!({"io.modelcontextprotocol/protocolVersion": "2026-07-28",
        "io.modelcontextprotocol/clientCapabilities": {}});
    let uris: Vec<String> = (0..17).map(|i| format!("kv://l{i}")).collect();
    let r = s.request(
        11,
        "subscriptions/listen",
        json!({"notifications": {"resourceSubscriptions": uris}, "_meta": meta}),
    );
    assert_eq!(error_code(&r), -32602, "{r}");
    assert_eq!(
        r["error"]["data"]["limit"], "limits.max_subscriptions",
        "{r}"
    );
}

#[test]
fn results_are_bounded_in_bytes() {
    let mut s = Stdio::with_config("[limits]\nmax_result_bytes = 4000\n", &[]);
    s.initialize("2025-11-25");
    // A tool result past the limit becomes an isError result naming it.
    let r = s.call(1, "echo", json!({"text": "x".repeat(5000)}));
    assert_eq!(r["result"]["isError"], true, "{r}");
    assert!(
        text(&r["result"]).contains("limits.max_result_bytes"),
        "{r}"
    );
    // Under it, the same tool answers.
    assert_eq!(
        text(&s.call_ok(2, "echo", json!({"text": "y".repeat(1000)}))),
        "y".repeat(1000)
    );
    // kv_list stops before the limit and says it truncated.
    for i in 0..20 {
        let key = format!("{i:02}{}", "k".repeat(200));
        s.call_ok(10 + i, "kv_set", json!({"key": key, "value": "v"}));
    }
    let r = s.call_ok(50, "kv_list", json!({}));
    let listed = r["structuredContent"]["keys"]
        .as_array()
        .expect("keys")
        .len();
    assert!(listed > 0 && listed < 20, "{listed} keys listed: {r}");
    assert_eq!(r["structuredContent"]["truncated"], true, "{r}");
}

#[test]
fn a_client_that_does_not_read_cannot_grow_the_output_queue() {
    use std::io::Write;
    use std::process::Stdio as Pipe;
    let dir = tempfile::tempdir().unwrap();
    let config = crate::harness::write_config(dir.path(), "[limits]\nmax_output_bytes = 1048576\n");
    let mut child = crate::harness::emcee_command()
        .args(["stdio", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&config)
        .stdin(Pipe::piped())
        .stdout(Pipe::piped()) // never read
        .stderr(Pipe::piped())
        .spawn()
        .expect("start emcee stdio");
    let pid = child.id();
    let mut stdin = child.stdin.take().unwrap();
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let writer = {
        let sent = sent.clone();
        std::thread::spawn(move || {
            let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
            if writeln!(stdin, "{init}").is_err() {
                return;
            }
            let text = "x".repeat(20_000);
            for i in 1..=5_000 {
                let call = json!({"jsonrpc": "2.0", "id": i, "method": "tools/call",
                    "params": {"name": "echo", "arguments": {"text": text}}});
                if writeln!(stdin, "{call}").is_err() {
                    return;
                }
                sent.store(i, std::sync::atomic::Ordering::Relaxed);
            }
        })
    };
    std::thread::sleep(std::time::Duration::from_secs(3));
    let rss_kib = crate::harness::rss_kib(pid);
    let written = sent.load(std::sync::atomic::Ordering::Relaxed);
    let _ = child.kill();
    let _ = child.wait();
    let _ = writer.join();
    // The server stopped reading: the client could not even send them all (each
    // answer is ~20 KB; 5,000 of them would be ~100 MB queued before the bound).
    assert!(written < 5_000, "the server read every request: {written}");
    assert!(
        rss_kib < 64 * 1024,
        "RSS {rss_kib} KiB with {written} requests sent"
    );
}

/// Fill a data dir in `dir` with 200 keys of 2 KB and stop cleanly (EOF).
fn filled_data_dir(dir: &std::path::Path) {
    let mut s = Stdio::start_in(dir, &[], &[]);
    s.initialize("2025-11-25");
    for i in 0..200 {
        s.call_ok(
            i,
            "kv_set",
            json!({"key": format!("k{i}"), "value": "v".repeat(2000)}),
        );
    }
    let (status, _, _) = s.finish();
    assert!(status.success());
}

/// Start `emcee stdio` on the damaged data dir of `dir`: it must refuse with exit 3
/// and one clear line, not serve what is left nor crash.
fn refuses_damaged(dir: &std::path::Path) {
    let out = crate::harness::emcee_command()
        .args(["stdio", "--data-dir"])
        .arg(dir.join("data"))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run emcee stdio");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "stderr:\n{stderr}");
    assert!(stderr.contains("is damaged"), "stderr:\n{stderr}");
    assert!(out.stdout.is_empty(), "nothing on stdout");
}

#[test]
fn a_data_file_cut_short_since_the_last_clean_stop_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    filled_data_dir(dir.path());
    let db = dir.path().join("data").join("db");
    let len = std::fs::metadata(&db).unwrap().len();
    let f = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
    f.set_len(len / 2).unwrap();
    drop(f);
    refuses_damaged(dir.path());
}

#[test]
fn a_data_file_sled_cannot_read_is_exit_3_not_a_crash() {
    use std::io::{Seek, SeekFrom, Write};
    let dir = tempfile::tempdir().unwrap();
    filled_data_dir(dir.path());
    let db = dir.path().join("data").join("db");
    let mut f = std::fs::OpenOptions::new().write(true).open(&db).unwrap();
    f.seek(SeekFrom::Start(100)).unwrap();
    f.write_all(&[0xff; 64]).unwrap();
    drop(f);
    refuses_damaged(dir.path());
}

/// Two MCP clients configured with the same `--data-dir`: the second still serves,
/// explains the held directory in every storage-backed answer (the directory, the
/// holder's pid, the fix), and takes the directory over once the first is gone.
#[test]
fn a_held_data_dir_is_explained_and_taken_over_once_free() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let mut first = Stdio::start_in(tmp.path(), &[], &[]);
    first.initialize("2025-11-25");
    let config = crate::harness::write_config(tmp.path(), "[storage]\nretry_ms = 100\n");
    let config = config.to_str().expect("utf-8 path");
    let mut second = Stdio::start_in(tmp.path(), &["--config", config], &[]);
    second.initialize("2025-11-25");
    let echo = second.call_ok(1, "echo", json!({"text": "still here"}));
    assert_eq!(text(&echo), "still here");
    let refused = second.call_ok(2, "kv_set", json!({"key": "k", "value": "v"}));
    assert_eq!(refused["isError"], true, "{refused}");
    let why = text(&refused);
    let data = tmp.path().join("data");
    assert!(why.contains(data.to_str().unwrap()), "{why}");
    assert!(why.contains(&format!("pid {}", first.pid())), "{why}");
    assert!(why.contains("--data-dir"), "{why}");
    let logged = second.stderr.lock().unwrap().join("\n");
    assert!(logged.contains("storage unavailable"), "{logged}");
    // The first client goes away: the second opens the directory by itself.
    let (status, _, _) = first.finish();
    assert!(status.success());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut id = 3;
    loop {
        let r = second.call_ok(id, "kv_set", json!({"key": "k", "value": "v"}));
        if r["isError"] != true {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never taken over: {r}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
        id += 1;
    }
    let got = second.call_ok(id + 1, "kv_get", json!({"key": "k"}));
    assert_eq!(got["structuredContent"]["value"], "v", "{got}");
    let (status, _, _) = second.finish();
    assert!(status.success());
}

/// The built-in kv store is bounded in bytes, all keys and values together.
#[test]
fn kv_set_past_kv_max_bytes_is_refused_naming_the_limit() {
    let mut s = Stdio::with_config("[limits]\nkv_max_bytes = 1000\n", &[]);
    s.initialize("2025-11-25");
    let value = "v".repeat(900);
    let ok = s.call_ok(1, "kv_set", json!({"key": "a", "value": value}));
    assert_ne!(ok["isError"], true, "{ok}");
    let full = s.call_ok(2, "kv_set", json!({"key": "b", "value": value}));
    assert_eq!(full["isError"], true, "{full}");
    assert!(text(&full).contains("limits.kv_max_bytes"), "{full}");
    let gone = s.call_ok(3, "kv_get", json!({"key": "b"}));
    assert_eq!(gone["isError"], true, "nothing was written: {gone}");
    // Deleting makes room.
    s.call_ok(4, "kv_delete", json!({"key": "a"}));
    let ok = s.call_ok(5, "kv_set", json!({"key": "b", "value": value}));
    assert_ne!(ok["isError"], true, "{ok}");
}
