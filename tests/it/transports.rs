//! One behaviour, every transport and era: each test loops over
//! [`CASES`](crate::harness::CASES) (stdio and HTTP, each in the session era and in
//! 2026-07-28) or [`MODERN_CASES`](crate::harness::MODERN_CASES), and names the case
//! in every assertion.

use serde_json::{json, Value};

use crate::harness::{
    assert_only_jsonrpc, error_code, modern_headers, text, with_meta, Answer, Case, Client, CASES,
    MODERN_CASES, SUPPORTED,
};

const BUILTIN_TOOLS: [&str; 6] = ["echo", "sleep", "kv_set", "kv_get", "kv_delete", "kv_list"];

fn tool_names(case: Case, result: &Value) -> Vec<String> {
    result["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{case}: a tools array: {result}"))
        .iter()
        .map(|t| t["name"].as_str().expect("name").to_owned())
        .collect()
}

/// A refusal of request `id`: the exact code and `data` (`None`: no data), a
/// message, no result; on HTTP also `status`, a JSON body and no session minted.
/// `what` names the request in the messages.
fn refused(
    case: Case,
    what: &str,
    a: &Answer,
    status: u16,
    id: &Value,
    code: i64,
    data: Option<Value>,
) {
    let v = &a.body;
    if case.http() {
        assert_eq!(a.status, Some(status), "{case}: {what}: {a:?}");
        assert_eq!(
            a.content_type.as_deref(),
            Some("application/json"),
            "{case}: {what}: {a:?}"
        );
        assert!(!a.session_header, "{case}: {what}: {a:?}");
    }
    assert_eq!(v["jsonrpc"], "2.0", "{case}: {what}: {v}");
    assert_eq!(&v["id"], id, "{case}: {what}: the id is echoed: {v}");
    assert!(v.get("result").is_none(), "{case}: {what}: {v}");
    assert_eq!(v["error"]["code"], code, "{case}: {what}: {v}");
    assert!(v["error"]["message"].is_string(), "{case}: {what}: {v}");
    assert_eq!(
        v["error"].get("data").cloned(),
        data,
        "{case}: {what}: data of {v}"
    );
}

#[test]
fn echo_sleep_and_kv_tools_answer() {
    for case in CASES {
        let mut c = Client::start(case, &[]);
        assert_eq!(
            text(&c.call_ok("echo", json!({"text": "héllo\nworld"}))),
            "héllo\nworld",
            "{case}"
        );
        assert_eq!(
            text(&c.call_ok("sleep", json!({"ms": 20}))),
            "slept 20 ms",
            "{case}"
        );

        let set = c.call_ok("kv_set", json!({"key": "k1", "value": "v1"}));
        assert_eq!(set["structuredContent"], json!({"key": "k1"}), "{case}");
        c.call_ok("kv_set", json!({"key": "k2", "value": "v2"}));
        c.call_ok("kv_set", json!({"key": "other", "value": "v3"}));
        let got = c.call_ok("kv_get", json!({"key": "k1"}));
        assert_eq!(
            got["structuredContent"],
            json!({"key": "k1", "value": "v1"}),
            "{case}"
        );
        let text_json: Value = serde_json::from_str(text(&got)).unwrap();
        assert_eq!(
            text_json, got["structuredContent"],
            "{case}: text mirrors structuredContent"
        );
        let listed = c.call_ok("kv_list", json!({"prefix": "k"}));
        assert_eq!(
            listed["structuredContent"],
            json!({"keys": ["k1", "k2"], "truncated": false}),
            "{case}"
        );
        let all = c.call_ok("kv_list", json!({}));
        assert_eq!(
            all["structuredContent"]["keys"],
            json!(["k1", "k2", "other"]),
            "{case}"
        );
        let del = c.call_ok("kv_delete", json!({"key": "k1"}));
        assert_eq!(
            del["structuredContent"],
            json!({"key": "k1", "deleted": true}),
            "{case}"
        );
        let del = c.call_ok("kv_delete", json!({"key": "k1"}));
        assert_eq!(del["structuredContent"]["deleted"], false, "{case}");
        let missing = c.call_ok("kv_get", json!({"key": "k1"}));
        assert_eq!(missing["isError"], true, "{case}");
        assert!(
            text(&missing).contains("no value for key `k1`"),
            "{case}: {missing}"
        );
    }
}

#[test]
fn an_unknown_tool_is_invalid_params() {
    for case in CASES {
        let mut c = Client::start(case, &[]);
        let r = c.request("tools/call", json!({"name": "nope", "arguments": {}}));
        assert_eq!(error_code(&r), -32602, "{case}: {r}");
        assert_eq!(
            text(&c.call_ok("echo", json!({"text": "still here"}))),
            "still here",
            "{case}"
        );
    }
}

/// Each page of `tools/list` at `page_size` (with `args`), in order. In 2026-07-28
/// every page is complete and cacheable in one (public) scope.
fn pages(case: Case, page_size: usize, args: &[&str]) -> Vec<Vec<String>> {
    let mut c = Client::with_config(case, &format!("[limits]\npage_size = {page_size}\n"), args);
    let mut out = Vec::new();
    let mut params = json!({});
    for page in 0..100 {
        let r = c.request("tools/list", params.clone());
        let r = r
            .get("result")
            .unwrap_or_else(|| panic!("{case}: page {page}: {r}"));
        if case.modern() {
            assert_eq!(r["resultType"], "complete", "{case}: {r}");
            assert_eq!(r["cacheScope"], "public", "{case}: page {page}: {r}");
            assert!(r["ttlMs"].as_u64().is_some(), "{case}: {r}");
        }
        let names = tool_names(case, r);
        assert!(names.len() <= page_size, "{case}: {r}");
        out.push(names);
        match r.get("nextCursor").and_then(Value::as_str) {
            Some(c) => params = json!({"cursor": c}),
            None => return out,
        }
    }
    panic!("{case}: pagination did not end");
}

/// Was `stdio::tools_list_pages_at_the_configured_size` (the session era on stdio)
/// and `modern_http::list_pages_share_one_cache_scope` (2026-07-28 on HTTP).
#[test]
fn tools_list_pages_at_the_configured_size() {
    let lens = |p: &[Vec<String>]| p.iter().map(Vec::len).collect::<Vec<_>>();
    for case in CASES {
        let two = pages(case, 2, &[]);
        assert_eq!(lens(&two), [2, 2, 2], "{case}");
        assert_eq!(lens(&pages(case, 5, &[])), [5, 1], "{case}");
        assert_eq!(lens(&pages(case, 6, &[])), [6], "{case}");
        assert_eq!(two.concat(), BUILTIN_TOOLS, "{case}");

        let mut c = Client::start(case, &[]);
        let r = c.request("tools/list", json!({"cursor": "bogus"}));
        assert_eq!(error_code(&r), -32602, "{case}: {r}");

        // Every tool once, in the order of an unpaginated listing of a default server.
        let fixtures = ["--fixtures", "conformance"];
        let names = pages(case, 2, &fixtures).concat();
        let mut c = Client::start(case, &fixtures);
        let all = c.request("tools/list", json!({}));
        assert_eq!(names, tool_names(case, &all["result"]), "{case}");
    }
}

#[test]
fn a_panicking_tool_is_contained_and_the_next_call_is_served() {
    for case in CASES {
        let mut c = Client::start(case, &["--fixtures", "faults"]);
        for _ in 0..3 {
            let r = c.call_ok("fault_panic", json!({}));
            assert_eq!(r["isError"], true, "{case}: {r}");
            assert!(text(&r).contains("panicked"), "{case}: {r}");
        }
        assert_eq!(
            text(&c.call_ok("echo", json!({"text": "alive"}))),
            "alive",
            "{case}"
        );
        let (status, stderr) = c.finish();
        assert!(status.success(), "{case}: {status:?}\n{stderr}");
        assert!(
            stderr.contains("\"msg\":\"panic\""),
            "{case}: the panic is logged\n{stderr}"
        );
    }
}

/// Was `modern_http::a_missing_client_capability_is_32021` and part of
/// `modern_stdio::discover_first_then_stateless_calls`.
#[test]
fn a_missing_client_capability_is_32021() {
    let missing = || json!({"name": "test_missing_capability", "arguments": {}});
    let declared = || {
        json!({"name": "test_missing_capability", "arguments": {},
               "_meta": {"io.modelcontextprotocol/clientCapabilities": {"sampling": {}}}})
    };
    let data = || Some(json!({"requiredCapabilities": {"sampling": {}}}));
    for case in MODERN_CASES {
        let mut c = Client::start(case, &["--fixtures", "conformance"]);
        let a = c.exchange(1, "tools/call", missing());
        refused(case, "undeclared", &a, 400, &json!(1), -32021, data());
        // Capabilities are per request: declaring sampling now serves it...
        let a = c.exchange(2, "tools/call", declared());
        if case.http() {
            assert_eq!(a.status, Some(200), "{case}: {a:?}");
        }
        let v = a.body;
        assert_eq!(v["id"], 2, "{case}: {v}");
        assert_eq!(v["result"]["resultType"], "complete", "{case}: {v}");
        assert_eq!(
            text(&v["result"]),
            "The client declared sampling.",
            "{case}"
        );
        // ...and not declaring it again is refused again (nothing is remembered).
        let a = c.exchange(3, "tools/call", missing());
        refused(case, "undeclared again", &a, 400, &json!(3), -32021, data());
    }
}

/// Was `modern_http::an_unknown_resource_is_invalid_params_not_32002` and part of
/// `modern_stdio::discover_first_then_stateless_calls`.
#[test]
fn an_unknown_resource_is_invalid_params_not_32002() {
    for case in MODERN_CASES {
        let mut c = Client::start(case, &["--fixtures", "conformance"]);
        for uri in ["test://no-such-resource", "kv://never-set", "test://nope"] {
            let a = c.exchange(8, "resources/read", json!({"uri": uri}));
            refused(
                case,
                uri,
                &a,
                400,
                &json!(8),
                -32602,
                Some(json!({"uri": uri})),
            );
        }
    }
}

/// Was `modern_stdio::unsupported_versions_and_removed_methods_are_refused`,
/// `modern_http::an_unsupported_version_names_the_supported_ones` and
/// `modern_http::removed_and_unknown_methods_are_not_found`.
#[test]
fn unsupported_versions_and_removed_methods_are_refused() {
    let future = json!({"_meta": {"io.modelcontextprotocol/protocolVersion": "2099-01-01"}});
    let supported = Some(json!({"supported": SUPPORTED, "requested": "2099-01-01"}));
    let removed = [
        ("initialize", json!({})),
        (
            "initialize",
            json!({"protocolVersion": "2025-11-25", "capabilities": {},
                   "clientInfo": {"name": "t", "version": "1"}}),
        ),
        (
            "initialize",
            json!({"protocolVersion": "2026-07-28", "capabilities": {},
                   "clientInfo": {"name": "t", "version": "1"}}),
        ),
        ("ping", json!({})),
        ("logging/setLevel", json!({"level": "debug"})),
        ("resources/subscribe", json!({"uri": "test://static-text"})),
        (
            "resources/unsubscribe",
            json!({"uri": "test://static-text"}),
        ),
        ("unknown/method", json!({})),
    ];
    // The header a 2026-07-28 client derives names the version of the body.
    let b = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/list", "params": future});
    assert!(modern_headers(&b).contains(&("MCP-Protocol-Version".into(), "2099-01-01".into())));
    for case in MODERN_CASES {
        let mut c = Client::start(case, &["--fixtures", "conformance"]);
        for (id, method) in [(3, "tools/list"), (4, "server/discover")] {
            let a = c.exchange(id, method, future.clone());
            refused(case, method, &a, 400, &json!(id), -32022, supported.clone());
        }
        for (i, (method, params)) in removed.iter().enumerate() {
            let id = json!(10 + i);
            let a = c.exchange(id.clone(), method, params.clone());
            if case.http() {
                assert_eq!(a.status, Some(404), "{case}: {method}: {a:?}");
                assert!(!a.session_header, "{case}: {method}: {a:?}");
            }
            assert_eq!(a.body["id"], id, "{case}: {method}: {a:?}");
            assert_eq!(error_code(&a.body), -32601, "{case}: {method}: {a:?}");
        }
        // Those did not switch the connection to the session era.
        let r = c.call_ok("echo", json!({"text": "still modern"}));
        assert_eq!(text(&r), "still modern", "{case}");
        if let Some(s) = c.stdio() {
            assert_only_jsonrpc(&s.stdout.lock().unwrap());
        }
    }
}

/// Was `modern_stdio::missing_meta_fields_are_invalid_params` and
/// `modern_http::missing_meta_fields_are_invalid_params` (the cases of both).
#[test]
fn missing_meta_fields_are_invalid_params() {
    const VERSION: &str = "io.modelcontextprotocol/protocolVersion";
    const CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
    let without = |params: Value, key: &str| {
        let mut p = with_meta(params);
        p["_meta"].as_object_mut().unwrap().remove(key);
        Some(p)
    };
    let echo = || json!({"name": "echo", "arguments": {"text": "x"}});
    let requests: [(&str, Option<Value>); 9] = [
        // No _meta at all (on HTTP the headers still name 2026-07-28).
        ("tools/list", Some(json!({}))),
        ("tools/list", without(json!({}), VERSION)),
        ("tools/list", without(json!({}), CAPABILITIES)),
        ("server/discover", Some(json!({}))),
        ("server/discover", without(json!({}), VERSION)),
        // No params at all.
        ("server/discover", None),
        ("tools/call", Some(echo())),
        ("tools/call", without(echo(), CAPABILITIES)),
        // An unknown log level.
        (
            "tools/call",
            Some(with_meta(
                json!({"name": "echo", "arguments": {"text": "x"},
                       "_meta": {"io.modelcontextprotocol/logLevel": "loud"}}),
            )),
        ),
    ];
    let fixtures = ["--fixtures", "conformance"];
    for case in MODERN_CASES {
        let mut c = Client::start(case, &fixtures);
        // Each as the first request of a fresh server, and again after a well-formed
        // 2026-07-28 request.
        for round in 0..2 {
            for (i, (method, params)) in requests.iter().enumerate() {
                let id = json!(format!("r{round}-{i}"));
                let what = format!("{method} {params:?} (round {round})");
                let a = if round == 0 {
                    Client::start(case, &fixtures).exchange_raw(id.clone(), method, params.clone())
                } else {
                    c.exchange_raw(id.clone(), method, params.clone())
                };
                refused(case, &what, &a, 400, &id, -32602, None);
            }
            if round == 0 {
                let r = c.call_ok("echo", json!({"text": "x"}));
                assert_eq!(text(&r), "x", "{case}");
            }
        }
    }
}
