//! The 2026-07-28 revision on Streamable HTTP (`emcee serve --fixtures conformance`):
//! stateless POSTs validated against their headers and `_meta`, results with
//! `resultType`, per-request SSE streams, `subscriptions/listen`, and the session era
//! still served beside it. Driven over real HTTP on 127.0.0.1 through the real binary.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{
    call_body, text, with_meta, Reply, Server, Streaming, ACCEPT_BOTH, MODERN, SERVER_INFO,
    SUBSCRIPTION_ID, SUPPORTED,
};

/// A 2026-07-28 request body: `params` plus the usual `_meta` (fields of a `_meta`
/// already in `params` win).
fn body(id: impl Into<Value>, method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id.into(), "method": method, "params": with_meta(params)})
}

/// A POST to `/mcp` with the headers a 2026-07-28 client derives from its body,
/// which a test may then replace or remove.
struct Post {
    body: String,
    headers: Vec<(String, String)>,
}

impl Post {
    /// Headers from `body`: `MCP-Protocol-Version` (the `_meta` version, else
    /// 2026-07-28), `Mcp-Method` for requests and `Mcp-Name` for the methods that
    /// name something.
    fn new(body: &Value) -> Post {
        let mut headers = vec![
            ("Content-Type".to_owned(), "application/json".to_owned()),
            ("Accept".to_owned(), ACCEPT_BOTH.to_owned()),
        ];
        let version = body["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"]
            .as_str()
            .unwrap_or(MODERN);
        headers.push(("MCP-Protocol-Version".to_owned(), version.to_owned()));
        if let (Some(method), Some(_)) = (body["method"].as_str(), body.get("id")) {
            headers.push(("Mcp-Method".to_owned(), method.to_owned()));
            let name = match method {
                "tools/call" | "prompts/get" => body["params"]["name"].as_str(),
                "resources/read" => body["params"]["uri"].as_str(),
                _ => None,
            };
            if let Some(name) = name {
                headers.push(("Mcp-Name".to_owned(), name.to_owned()));
            }
        }
        Post {
            body: body.to_string(),
            headers,
        }
    }

    /// Replace (or add) a header; names compare case-insensitively.
    fn set(mut self, name: &str, value: &str) -> Post {
        self = self.without(name);
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// A copy without header `name`.
    fn clone_without(&self, name: &str) -> Post {
        Post {
            body: self.body.clone(),
            headers: self.headers.clone(),
        }
        .without(name)
    }

    /// Remove a header.
    fn without(mut self, name: &str) -> Post {
        self.headers.retain(|(h, _)| !h.eq_ignore_ascii_case(name));
        self
    }

    fn open(&self, s: &Server) -> Streaming {
        let headers: Vec<(&str, &str)> = self
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        s.open("POST", &headers, Some(self.body.as_bytes()))
    }

    fn send(&self, s: &Server) -> Reply {
        self.open(s).into_reply()
    }

    /// Write the request on a plain socket with `also` added after the derived
    /// headers (a header may then be sent twice, which HTTP clients do not let one
    /// do); the socket, its answer unread.
    fn write_raw(&self, s: &Server, also: &[(&str, &str)]) -> std::net::TcpStream {
        use std::io::Write;
        let mut tcp = std::net::TcpStream::connect(&s.addr).expect("connect");
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut head = format!(
            "POST /mcp HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            s.addr,
            self.body.len()
        );
        for (k, v) in self
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .chain(also.iter().copied())
        {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        tcp.write_all(head.as_bytes()).unwrap();
        tcp.write_all(self.body.as_bytes()).unwrap();
        tcp
    }

    /// [`Post::write_raw`], then the whole answer.
    fn send_raw(&self, s: &Server, also: &[(&str, &str)]) -> Reply {
        use std::io::Read;
        let mut tcp = self.write_raw(s, also);
        let mut raw = Vec::new();
        tcp.read_to_end(&mut raw).expect("the whole answer");
        let raw = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = raw.split_once("\r\n\r\n").expect("a header block");
        let mut lines = head.lines();
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let chunked = headers
            .iter()
            .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
        let body = if chunked {
            // size line, data, CRLF ... 0 CRLF CRLF
            let mut out = String::new();
            let mut rest = body;
            while let Some((size, tail)) = rest.split_once("\r\n") {
                let n = usize::from_str_radix(size.trim(), 16).expect("a chunk size");
                if n == 0 {
                    break;
                }
                out.push_str(&tail[..n]);
                rest = &tail[n + 2..];
            }
            out
        } else {
            body.to_owned()
        };
        Reply {
            status,
            headers,
            body,
        }
    }
}

/// POST a 2026-07-28 request with its derived headers; the whole answer.
fn post(s: &Server, body: &Value) -> Reply {
    Post::new(body).send(s)
}

/// The response of a request, answered as JSON or as an SSE stream.
fn response_of(mut st: Streaming, id: &Value) -> Value {
    assert_eq!(st.status, 200, "status of {id}");
    match st.content_type().as_str() {
        "application/json" => {
            let v: Value = serde_json::from_str(&st.body()).expect("JSON body");
            assert_eq!(&v["id"], id, "{v}");
            v
        }
        "text/event-stream" => st.until_response(id).0,
        other => panic!("unexpected content type {other:?}"),
    }
}

/// A 2026-07-28 request that must succeed; its `result`.
fn result_of(s: &Server, id: u64, method: &str, params: Value) -> Value {
    let b = body(id, method, params);
    let resp = response_of(Post::new(&b).open(s), &json!(id));
    resp.get("result")
        .cloned()
        .unwrap_or_else(|| panic!("{method}: expected a result: {resp}"))
}

/// `tools/call` as a 2026-07-28 request; its `result`.
fn call(s: &Server, id: u64, tool: &str, args: Value) -> Value {
    result_of(
        s,
        id,
        "tools/call",
        json!({"name": tool, "arguments": args}),
    )
}

/// A refusal: exact status, JSON body, echoed id, code and `data` (`None`: no data).
fn refused(r: &Reply, status: u16, id: &Value, code: i64, data: Option<Value>) {
    assert_eq!(r.status, status, "{r:?}");
    assert_eq!(r.content_type(), "application/json", "{r:?}");
    assert!(r.header("mcp-session-id").is_none(), "{r:?}");
    let v = r.json();
    assert_eq!(v["jsonrpc"], "2.0", "{v}");
    assert_eq!(&v["id"], id, "the id is echoed: {v}");
    assert!(v.get("result").is_none(), "{v}");
    assert_eq!(v["error"]["code"], code, "{v}");
    assert!(v["error"]["message"].is_string(), "{v}");
    assert_eq!(v["error"].get("data").cloned(), data, "data of {v}");
}

/// A header-check refusal (400, -32020) of `p`.
fn mismatch(s: &Server, p: &Post, id: u64, what: &str) {
    let r = p.send(s);
    assert_eq!(r.status, 400, "{what}: {r:?}");
    refused(&r, 400, &json!(id), -32020, None);
}

/// The server's `_meta.serverInfo` in a result.
fn assert_server_info(result: &Value) {
    assert_eq!(result["_meta"][SERVER_INFO]["name"], "emcee", "{result}");
    assert!(
        result["_meta"][SERVER_INFO]["version"].is_string(),
        "{result}"
    );
}

/// A sample of `/metrics` (`series` as rendered: `name` or `name{labels}`); 0 when
/// the series does not exist yet.
fn metric(s: &Server, series: &str) -> f64 {
    let r = s.get("/metrics");
    assert_eq!(r.status, 200, "/metrics: {r:?}");
    r.body
        .lines()
        .find_map(|l| {
            let rest = l.strip_prefix(series)?.strip_prefix(' ')?;
            Some(rest.trim().parse::<f64>().expect("a number"))
        })
        .unwrap_or(0.0)
}

/// Poll `/metrics` until `series` equals `want`, for at most `within`.
fn await_metric(s: &Server, series: &str, want: f64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let got = metric(s, series);
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{series} is {got}, not {want}, after {within:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The next message of an SSE stream, which must carry no event id.
fn next_message(st: &mut Streaming) -> Option<Value> {
    let ev = st.next_event()?;
    assert_eq!(ev.id, None, "2026-07-28 events carry no id: {ev:?}");
    assert_eq!(ev.retry, None, "{ev:?}");
    Some(ev.json())
}

/// Open `subscriptions/listen` with `filter`; the open stream, its acknowledgement
/// checked.
fn listen(s: &Server, id: u64, filter: Value) -> Streaming {
    let b = body(id, "subscriptions/listen", json!({"notifications": filter}));
    let p = Post::new(&b);
    assert!(
        !p.headers.iter().any(|(h, _)| h == "Mcp-Name"),
        "listen has no Mcp-Name"
    );
    let mut st = p.open(s);
    assert_eq!(st.status, 200, "listen: {}", s.logs());
    assert_eq!(st.content_type(), "text/event-stream");
    assert!(st.header("mcp-session-id").is_none());
    let ack = next_message(&mut st).expect("the acknowledgement");
    assert_eq!(
        ack["method"], "notifications/subscriptions/acknowledged",
        "{ack}"
    );
    assert!(ack.get("id").is_none(), "{ack}");
    assert_eq!(ack["params"]["_meta"][SUBSCRIPTION_ID], id, "{ack}");
    assert_eq!(ack["params"]["notifications"], filter, "{ack}");
    st
}

fn start() -> Server {
    Server::start(&["--fixtures", "conformance"])
}

#[test]
fn server_discover_describes_the_server_without_a_session() {
    let s = start();
    let r = post(&s, &body(1, "server/discover", json!({})));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.content_type(), "application/json");
    assert!(r.header("mcp-session-id").is_none(), "{r:?}");
    let v = r.json();
    assert_eq!(v["id"], 1);
    let result = &v["result"];
    assert_eq!(result["resultType"], "complete", "{v}");
    assert_eq!(result["supportedVersions"], json!(SUPPORTED), "{v}");
    let caps = &result["capabilities"];
    for cap in ["tools", "prompts", "resources", "completions"] {
        assert!(caps[cap].is_object(), "capability {cap}: {v}");
    }
    assert_eq!(
        caps["extensions"],
        json!({"io.modelcontextprotocol/tasks": {}}),
        "{v}"
    );
    assert_server_info(result);
    assert_eq!(result["ttlMs"], 300_000, "{v}");
    assert_eq!(result["cacheScope"], "public", "{v}");

    // clientInfo is optional.
    let mut b = body("d2", "server/discover", json!({}));
    b["params"]["_meta"]
        .as_object_mut()
        .unwrap()
        .remove("io.modelcontextprotocol/clientInfo");
    let r = post(&s, &b);
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.header("mcp-session-id").is_none(), "{r:?}");
    let v = r.json();
    assert_eq!(v["id"], "d2");
    assert_eq!(v["result"]["supportedVersions"], json!(SUPPORTED), "{v}");
}

#[test]
fn headers_must_be_present_and_match_the_body() {
    let s = start();
    let list = body(1, "tools/list", json!({}));
    let echo = body(
        2,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "hi"}}),
    );
    let read = body(3, "resources/read", json!({"uri": "test://static-text"}));
    let prompt = body(4, "prompts/get", json!({"name": "test_simple_prompt"}));

    mismatch(
        &s,
        &Post::new(&list).without("MCP-Protocol-Version"),
        1,
        "no MCP-Protocol-Version",
    );
    mismatch(
        &s,
        &Post::new(&list).without("Mcp-Method"),
        1,
        "no Mcp-Method",
    );
    mismatch(
        &s,
        &Post::new(&list).set("MCP-Protocol-Version", "2025-11-25"),
        1,
        "version header differs from _meta",
    );
    mismatch(
        &s,
        &Post::new(&list).set("MCP-Protocol-Version", "2099-01-01"),
        1,
        "unsupported version header differs from _meta",
    );
    mismatch(
        &s,
        &Post::new(&list).set("Mcp-Method", "TOOLS/LIST"),
        1,
        "method values are case-sensitive",
    );
    mismatch(
        &s,
        &Post::new(&echo).set("Mcp-Method", "tools/list"),
        2,
        "Mcp-Method differs",
    );
    mismatch(&s, &Post::new(&echo).without("Mcp-Name"), 2, "no Mcp-Name");
    mismatch(
        &s,
        &Post::new(&echo).set("Mcp-Name", "sleep"),
        2,
        "wrong Mcp-Name",
    );
    mismatch(
        &s,
        &Post::new(&echo).set("Mcp-Name", "ECHO"),
        2,
        "Mcp-Name values are case-sensitive",
    );
    mismatch(
        &s,
        &Post::new(&read).set("Mcp-Name", "test://static-binary"),
        3,
        "resources/read with a wrong Mcp-Name",
    );
    mismatch(&s, &Post::new(&read).without("Mcp-Name"), 3, "no Mcp-Name");
    mismatch(
        &s,
        &Post::new(&prompt).set("Mcp-Name", "test_prompt_with_image"),
        4,
        "prompts/get with a wrong Mcp-Name",
    );
    mismatch(
        &s,
        &Post::new(&echo).set("Mcp-Name", "=?base64?c2xlZXA=?="),
        2,
        "base64 Mcp-Name of another tool",
    );

    // Accepted: surrounding spaces, the base64 form, header names in any case.
    let ok = |p: Post, what: &str| {
        let r = p.send(&s);
        assert_eq!(r.status, 200, "{what}: {r:?}");
        let v = r.json();
        assert_eq!(v["id"], 2, "{what}: {v}");
        assert_eq!(text(&v["result"]), "hi", "{what}: {v}");
    };
    ok(
        Post::new(&echo).set("Mcp-Name", "  echo  "),
        "Mcp-Name with spaces",
    );
    ok(
        Post::new(&echo).set("Mcp-Name", "=?base64?ZWNobw==?="),
        "base64 Mcp-Name",
    );
    ok(
        Post::new(&echo)
            .set("mcp-protocol-version", MODERN)
            .set("MCP-METHOD", "tools/call")
            .set("mCP-nAME", "echo"),
        "header names in any case",
    );
    let r = Post::new(&read)
        .set("Mcp-Name", " test://static-text ")
        .send(&s);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["id"], 3);
}

#[test]
fn notifications_get_202_and_there_is_no_get_or_delete() {
    let s = start();
    let n = json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
        "params": {"requestId": 1, "reason": "x"}});
    let r = post(&s, &n);
    assert_eq!(r.status, 202, "{r:?}");
    assert!(r.body.is_empty(), "{r:?}");
    assert!(r.header("mcp-session-id").is_none(), "{r:?}");
    // Even without the 2026-07-28 headers.
    let r = Post::new(&n).without("MCP-Protocol-Version").send(&s);
    assert_eq!(r.status, 202, "{r:?}");
    assert!(r.body.is_empty(), "{r:?}");

    let r = s.send("GET", &[("Accept", "text/event-stream")], None);
    assert_eq!(r.status, 405, "GET: {r:?}");
    let r = s.send(
        "GET",
        &[
            ("Accept", "text/event-stream"),
            ("MCP-Protocol-Version", MODERN),
        ],
        None,
    );
    assert_eq!(r.status, 405, "GET with the 2026 version: {r:?}");
    let r = s.send("DELETE", &[], None);
    assert_eq!(r.status, 405, "DELETE: {r:?}");
    let r = s.send("DELETE", &[("MCP-Protocol-Version", MODERN)], None);
    assert_eq!(r.status, 405, "DELETE with the 2026 version: {r:?}");

    // One request or notification per POST: no batches, no responses.
    let b = body(
        6,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "hi"}}),
    );
    let p = Post::new(&b);
    let batch = Post {
        body: format!("[{}]", p.body),
        headers: p.headers.clone(),
    };
    let r = batch.send(&s);
    assert_eq!(r.status, 400, "batch: {r:?}");
    assert_eq!(r.json()["error"]["code"], -32600, "batch: {r:?}");
    let response = json!({"jsonrpc": "2.0", "id": 1, "result": {}});
    let r = post(&s, &response);
    assert_eq!(r.status, 400, "a response: {r:?}");
    assert_eq!(r.json()["error"]["code"], -32600, "a response: {r:?}");

    // A session id on a 2026-07-28 request is ignored: served, none minted or echoed.
    let b = body(
        5,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "hi"}}),
    );
    for sid in ["0123456789abcdef0123456789abcdef", "not-a-session"] {
        let r = Post::new(&b)
            .set("Mcp-Session-Id", sid)
            .set("Last-Event-ID", "1-1")
            .send(&s);
        assert_eq!(r.status, 200, "{r:?}");
        assert!(r.header("mcp-session-id").is_none(), "{r:?}");
        let v = r.json();
        assert_eq!(v["id"], 5);
        assert_eq!(v["result"]["resultType"], "complete", "{v}");
        assert_eq!(text(&v["result"]), "hi");
    }
}

#[test]
fn results_carry_result_type_server_info_and_cache_hints() {
    let s = start();
    let list = result_of(&s, 1, "tools/list", json!({}));
    assert_eq!(list["resultType"], "complete", "{list}");
    assert_eq!(list["ttlMs"], 300_000, "{list}");
    assert_eq!(list["cacheScope"], "public", "{list}");
    assert_server_info(&list);
    let names = |l: &Value| -> Vec<String> {
        l["tools"]
            .as_array()
            .unwrap_or_else(|| panic!("tools: {l}"))
            .iter()
            .map(|t| t["name"].as_str().expect("name").to_owned())
            .collect()
    };
    let first = names(&list);
    for t in ["echo", "sleep", "kv_set", "test_header_param"] {
        assert!(first.iter().any(|n| n == t), "{t} missing: {first:?}");
    }
    let again = result_of(&s, 2, "tools/list", json!({}));
    assert_eq!(names(&again), first, "the same order on every call");
    let header_tool = list["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "test_header_param")
        .unwrap();
    assert_eq!(
        header_tool["inputSchema"]["properties"]["region"]["x-mcp-header"],
        "Region"
    );

    let r = call(&s, 3, "echo", json!({"text": "hi"}));
    assert_eq!(r["resultType"], "complete", "{r}");
    assert_eq!(r["content"], json!([{"type": "text", "text": "hi"}]), "{r}");
    assert_server_info(&r);
    assert!(r.get("ttlMs").is_none(), "tools/call is not cacheable: {r}");

    let r = result_of(
        &s,
        4,
        "resources/read",
        json!({"uri": "test://static-text"}),
    );
    assert_eq!(r["resultType"], "complete", "{r}");
    assert_eq!(r["contents"][0]["uri"], "test://static-text", "{r}");
    assert_eq!(
        r["contents"][0]["text"], "This is the content of the static text resource.",
        "{r}"
    );
    assert_eq!(r["ttlMs"], 0, "{r}");
    assert_eq!(r["cacheScope"], "private", "{r}");
    assert_server_info(&r);

    let r = result_of(&s, 5, "prompts/get", json!({"name": "test_simple_prompt"}));
    assert_eq!(r["resultType"], "complete", "{r}");
    assert_eq!(
        r["messages"][0]["content"]["text"], "This is a simple prompt for testing.",
        "{r}"
    );
    assert_server_info(&r);

    let r = result_of(
        &s,
        6,
        "completion/complete",
        json!({"ref": {"type": "ref/prompt", "name": "test_prompt_with_arguments"},
               "argument": {"name": "arg1", "value": "test"}}),
    );
    assert_eq!(r["resultType"], "complete", "{r}");
    assert_eq!(
        r["completion"]["values"],
        json!(["test", "testValue1", "testing"]),
        "{r}"
    );
    assert_server_info(&r);

    for method in ["prompts/list", "resources/list", "resources/templates/list"] {
        let r = result_of(&s, 7, method, json!({}));
        assert_eq!(r["resultType"], "complete", "{method}: {r}");
        assert!(r["ttlMs"].is_u64(), "{method}: {r}");
        assert!(
            r["cacheScope"] == "public" || r["cacheScope"] == "private",
            "{method}: {r}"
        );
        assert_server_info(&r);
    }
}

#[test]
fn mcp_param_headers_must_match_the_arguments() {
    let s = start();
    let b = body(
        1,
        "tools/call",
        json!({"name": "test_header_param", "arguments": {"region": "eu"}}),
    );
    let ok = |p: Post, what: &str| {
        let r = p.send(&s);
        assert_eq!(r.status, 200, "{what}: {r:?}");
        let v = r.json();
        assert_eq!(v["id"], 1, "{what}: {v}");
        assert_eq!(v["result"]["resultType"], "complete", "{what}: {v}");
        assert_eq!(text(&v["result"]), "region: eu", "{what}: {v}");
    };
    ok(Post::new(&b).set("Mcp-Param-Region", "eu"), "plain");
    ok(
        Post::new(&b).set("mcp-param-region", " eu "),
        "any case, spaces",
    );
    ok(
        Post::new(&b).set("Mcp-Param-Region", "=?base64?ZXU=?="),
        "base64",
    );
    // An unknown Mcp-Param header is ignored.
    ok(
        Post::new(&b)
            .set("Mcp-Param-Region", "eu")
            .set("Mcp-Param-Other", "zz"),
        "another Mcp-Param",
    );
    mismatch(&s, &Post::new(&b), 1, "Mcp-Param-Region missing");
    mismatch(
        &s,
        &Post::new(&b).set("Mcp-Param-Region", "us"),
        1,
        "Mcp-Param-Region differs",
    );
    mismatch(
        &s,
        &Post::new(&b).set("Mcp-Param-Region", "EU"),
        1,
        "Mcp-Param values are case-sensitive",
    );
    mismatch(
        &s,
        &Post::new(&b).set("Mcp-Param-Region", "=?base64?dXM=?="),
        1,
        "base64 of another value",
    );
    mismatch(
        &s,
        &Post::new(&b).set("Mcp-Param-Region", "=?base64?!!not base64!!?="),
        1,
        "malformed base64",
    );
    mismatch(
        &s,
        &Post::new(&b).set("Mcp-Param-Region", "=?base64?/w==?="),
        1,
        "base64 of invalid UTF-8",
    );
    // No value in the body: no header expected (the tool itself then says what is
    // wrong); a header without a value is a mismatch.
    for args in [json!({}), json!({"region": null})] {
        let b = body(
            2,
            "tools/call",
            json!({"name": "test_header_param", "arguments": args}),
        );
        let r = post(&s, &b);
        assert_eq!(r.status, 200, "{args}: {r:?}");
        let v = r.json();
        assert_eq!(v["id"], 2, "{v}");
        assert_eq!(v["result"]["isError"], true, "{v}");
        assert_eq!(v["result"]["resultType"], "complete", "{v}");
    }
    let b = body(
        3,
        "tools/call",
        json!({"name": "test_header_param", "arguments": {}}),
    );
    mismatch(
        &s,
        &Post::new(&b).set("Mcp-Param-Region", "eu"),
        3,
        "a header for an absent argument",
    );
}

/// `tools/call sleep` with `_meta` extras; the open answer.
fn open_sleep(s: &Server, id: u64, ms: u64, extra_meta: Value) -> Streaming {
    let b = body(
        id,
        "tools/call",
        json!({"name": "sleep", "arguments": {"ms": ms}, "_meta": extra_meta}),
    );
    Post::new(&b).open(s)
}

#[test]
fn progress_and_logs_stream_on_the_request_itself() {
    let s = start();
    let mut st = open_sleep(
        &s,
        1,
        300,
        json!({"progressToken": "p1", "io.modelcontextprotocol/logLevel": "debug"}),
    );
    assert_eq!(st.status, 200);
    assert_eq!(st.content_type(), "text/event-stream");
    assert_eq!(st.header("x-accel-buffering"), Some("no"));
    assert!(st.header("mcp-session-id").is_none());
    let mut before = Vec::new();
    let resp = loop {
        let m = next_message(&mut st).expect("the stream ends with the response");
        if m.get("method").is_none() {
            break m;
        }
        before.push(m);
    };
    assert!(
        next_message(&mut st).is_none(),
        "the response ends the stream"
    );
    assert_eq!(resp["id"], 1, "{resp}");
    assert_eq!(resp["result"]["resultType"], "complete", "{resp}");
    assert_eq!(text(&resp["result"]), "slept 300 ms");
    let progress: Vec<&Value> = before
        .iter()
        .filter(|m| m["method"] == "notifications/progress")
        .collect();
    assert!(!progress.is_empty(), "{before:?}");
    let mut last = -1.0;
    for p in &progress {
        assert_eq!(p["params"]["progressToken"], "p1", "{p}");
        assert_eq!(p["params"]["total"], 300.0, "{p}");
        let n = p["params"]["progress"].as_f64().expect("progress");
        assert!(n > last, "progress increases: {before:?}");
        last = n;
    }
    let logs: Vec<&Value> = before
        .iter()
        .filter(|m| m["method"] == "notifications/message")
        .collect();
    assert_eq!(logs.len(), 1, "{before:?}");
    assert_eq!(logs[0]["params"]["level"], "debug", "{before:?}");
    assert_eq!(logs[0]["params"]["logger"], "sleep", "{before:?}");
    assert_eq!(logs[0]["params"]["data"], "sleeping 300 ms", "{before:?}");
    assert_eq!(before.len(), progress.len() + 1, "nothing else: {before:?}");

    // Without a log level: progress, but no notifications/message.
    let mut st = open_sleep(&s, 2, 300, json!({"progressToken": "p2"}));
    assert_eq!(st.content_type(), "text/event-stream");
    let (resp, before) = st.until_response(&json!(2));
    assert_eq!(text(&resp["result"]), "slept 300 ms");
    assert!(!before.is_empty(), "progress was sent");
    for m in &before {
        assert_eq!(m["method"], "notifications/progress", "{before:?}");
        assert_eq!(m["params"]["progressToken"], "p2", "{m}");
    }

    // Accepting JSON only: the response alone, as JSON.
    let b = body(
        4,
        "tools/call",
        json!({"name": "sleep", "arguments": {"ms": 100},
               "_meta": {"progressToken": "p4", "io.modelcontextprotocol/logLevel": "debug"}}),
    );
    let r = Post::new(&b).set("Accept", "application/json").send(&s);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.content_type(), "application/json", "{r:?}");
    let v = r.json();
    assert_eq!(v["id"], 4, "{v}");
    assert_eq!(text(&v["result"]), "slept 100 ms");

    // A level above debug filters the debug message out.
    let mut st = open_sleep(
        &s,
        3,
        200,
        json!({"progressToken": 3, "io.modelcontextprotocol/logLevel": "info"}),
    );
    let (_, before) = st.until_response(&json!(3));
    for m in &before {
        assert_eq!(m["method"], "notifications/progress", "{before:?}");
        assert_eq!(m["params"]["progressToken"], 3, "{m}");
    }
}

#[test]
fn closing_the_stream_cancels_the_call() {
    let s = start();
    const CANCELLED: &str = r#"mcp_requests_total{method="tools/call",outcome="cancelled"}"#;
    let before = metric(&s, "mcp_cancelled_total");
    assert_eq!(metric(&s, CANCELLED), 0.0);
    let started = Instant::now();
    let mut st = open_sleep(&s, 1, 10_000, json!({"progressToken": "c"}));
    assert_eq!(st.status, 200);
    assert_eq!(st.content_type(), "text/event-stream");
    let first = st.next_line().expect("the stream's first bytes");
    assert!(first.starts_with(':'), "a comment opens it: {first:?}");
    drop(st);
    await_metric(
        &s,
        "mcp_cancelled_total",
        before + 1.0,
        Duration::from_secs(2),
    );
    await_metric(&s, CANCELLED, 1.0, Duration::from_secs(2));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "cancelled well before the sleep's end"
    );
    // The server goes on answering.
    let r = call(&s, 2, "echo", json!({"text": "still here"}));
    assert_eq!(text(&r), "still here");

    // A call that sends nothing on its stream is cancelled as promptly.
    let started = Instant::now();
    let mut st = open_sleep(&s, 3, 10_000, json!({}));
    assert_eq!(st.status, 200);
    assert_eq!(st.content_type(), "text/event-stream");
    let first = st.next_line().expect("the stream's first bytes");
    assert!(first.starts_with(':'), "a comment opens it: {first:?}");
    drop(st);
    await_metric(
        &s,
        "mcp_cancelled_total",
        before + 2.0,
        Duration::from_secs(2),
    );
    await_metric(&s, CANCELLED, 2.0, Duration::from_secs(2));
    assert!(started.elapsed() < Duration::from_secs(5));
    let r = call(&s, 4, "echo", json!({"text": "and here"}));
    assert_eq!(text(&r), "and here");
}

#[test]
fn the_trace_id_reaches_the_logs() {
    let s = Server::start(&["--fixtures", "conformance", "--log-level", "debug"]);
    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    let b = body(
        1,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "traced"},
               "_meta": {"traceparent": format!("00-{TRACE}-00f067aa0ba902b7-01")}}),
    );
    let r = post(&s, &b);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(text(&r.json()["result"]), "traced");
    let needle = format!("\"trace_id\":\"{TRACE}\"");
    let deadline = Instant::now() + Duration::from_secs(2);
    while !s.stderr.lock().unwrap().iter().any(|l| l.contains(&needle)) {
        assert!(
            Instant::now() < deadline,
            "no log line with {needle}:\n{}",
            s.logs()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn subscriptions_listen_streams_what_was_asked() {
    let s = start();
    assert_eq!(metric(&s, "mcp_active_sessions"), 0.0);
    let filter = json!({"resourceSubscriptions": ["kv://a"], "toolsListChanged": true});
    let mut st = listen(&s, 40, filter);
    assert_eq!(st.header("x-accel-buffering"), Some("no"));
    assert_eq!(metric(&s, "mcp_active_sessions"), 1.0);

    let r = call(&s, 1, "kv_set", json!({"key": "a", "value": "1"}));
    assert_eq!(r["resultType"], "complete", "{r}");
    let m = next_message(&mut st).expect("an update");
    assert_eq!(
        m,
        json!({"jsonrpc": "2.0", "method": "notifications/resources/updated",
               "params": {"uri": "kv://a", "_meta": {SUBSCRIPTION_ID: 40}}})
    );

    // Key b is not subscribed: the next message is the tool list change.
    call(&s, 2, "kv_set", json!({"key": "b", "value": "2"}));
    call(&s, 3, "test_trigger_tool_change", json!({}));
    let m = next_message(&mut st).expect("a list change");
    assert_eq!(
        m,
        json!({"jsonrpc": "2.0", "method": "notifications/tools/list_changed",
               "params": {"_meta": {SUBSCRIPTION_ID: 40}}})
    );
    // Nor are prompt list changes, nor other requests' logs and progress.
    call(&s, 4, "test_trigger_prompt_change", json!({}));
    let mut other = open_sleep(
        &s,
        40,
        100,
        json!({"progressToken": 40, "io.modelcontextprotocol/logLevel": "debug"}),
    );
    let (_, before) = other.until_response(&json!(40));
    assert!(before.len() > 1, "{before:?}");
    let b = body(
        41,
        "tools/call",
        json!({"name": "test_logging_tool", "arguments": {},
               "_meta": {"io.modelcontextprotocol/logLevel": "debug"}}),
    );
    let (_, before) = Post::new(&b).open(&s).until_response(&json!(41));
    assert_eq!(before.len(), 1, "{before:?}");
    assert_eq!(before[0]["method"], "notifications/message", "{before:?}");
    call(&s, 5, "kv_set", json!({"key": "a", "value": "3"}));
    let m = next_message(&mut st).expect("an update");
    assert_eq!(m["method"], "notifications/resources/updated", "{m}");
    assert_eq!(m["params"]["uri"], "kv://a", "{m}");
    assert_eq!(metric(&s, "mcp_active_sessions"), 1.0);

    // A second listener gets its own copy, tagged with its own id.
    let mut second = listen(
        &s,
        41,
        json!({"resourceSubscriptions": ["kv://a", "kv://b"]}),
    );
    assert_eq!(metric(&s, "mcp_active_sessions"), 2.0);
    call(&s, 6, "kv_set", json!({"key": "b", "value": "4"}));
    call(&s, 7, "kv_set", json!({"key": "a", "value": "5"}));
    let updated = |uri: &str, id: u64| {
        json!({"jsonrpc": "2.0", "method": "notifications/resources/updated",
               "params": {"uri": uri, "_meta": {SUBSCRIPTION_ID: id}}})
    };
    assert_eq!(next_message(&mut second), Some(updated("kv://b", 41)));
    assert_eq!(next_message(&mut second), Some(updated("kv://a", 41)));
    assert_eq!(next_message(&mut st), Some(updated("kv://a", 40)));
    drop(second);
    await_metric(&s, "mcp_active_sessions", 1.0, Duration::from_secs(2));

    drop(st);
    await_metric(&s, "mcp_active_sessions", 0.0, Duration::from_secs(2));
    // Still serving.
    assert_eq!(text(&call(&s, 8, "echo", json!({"text": "ok"}))), "ok");
}

#[test]
fn shutdown_ends_a_listen_stream_with_its_result() {
    let mut s = start();
    let mut st = listen(&s, 7, json!({"toolsListChanged": true}));
    s.signal("TERM");
    let m = next_message(&mut st).expect("the listen result");
    assert_eq!(m["id"], 7, "{m}");
    let result = &m["result"];
    assert_eq!(result["resultType"], "complete", "{m}");
    assert_eq!(result["_meta"][SUBSCRIPTION_ID], 7, "{m}");
    assert_server_info(result);
    assert_eq!(
        result.as_object().unwrap().len(),
        2,
        "only resultType and _meta: {m}"
    );
    assert_eq!(result["_meta"].as_object().unwrap().len(), 2, "{m}");
    assert!(next_message(&mut st).is_none(), "then the stream ends");
    let status = s.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{}", s.logs());
}

#[test]
fn listen_streams_count_against_the_session_cap() {
    let s = Server::with_config(
        "[limits]\nmax_sessions = 1\n",
        &["--fixtures", "conformance"],
    );
    // Stateless requests do not take the slot.
    assert_eq!(text(&call(&s, 1, "echo", json!({"text": "a"}))), "a");
    let first = listen(&s, 2, json!({"toolsListChanged": true}));
    let b = body(3, "subscriptions/listen", json!({"notifications": {}}));
    let r = post(&s, &b);
    crate::harness::assert_busy(&r);
    assert_eq!(r.json()["error"]["code"], -32000, "{r:?}");
    // Ordinary requests are still served while the cap is reached.
    assert_eq!(text(&call(&s, 4, "echo", json!({"text": "b"}))), "b");
    // Closing the first frees the slot.
    drop(first);
    await_metric(&s, "mcp_active_sessions", 0.0, Duration::from_secs(2));
    let _again = listen(&s, 5, json!({}));
}

#[test]
fn the_session_era_is_served_beside() {
    let s = start();
    let (sid, init) = s.initialize_with(json!({}));
    assert_eq!(init["protocolVersion"], "2025-11-25", "{init}");
    assert!(init.get("resultType").is_none(), "{init}");
    let r = s.post(
        Some(&sid),
        &call_body(2, "echo", json!({"text": "old"})),
        &[],
    );
    assert_eq!(r.status, 200, "{r:?}");
    let v = r.json();
    assert_eq!(v["id"], 2);
    assert_eq!(text(&v["result"]), "old");
    assert!(v["result"].get("resultType").is_none(), "{v}");
    assert!(v["result"].get("_meta").is_none(), "{v}");
    // Session-era not-found stays -32002 there.
    let r = s.post(
        Some(&sid),
        &json!({"jsonrpc": "2.0", "id": 3, "method": "resources/read",
                "params": {"uri": "test://nope"}})
        .to_string(),
        &[],
    );
    let v = r.json();
    assert_eq!(v["error"]["code"], -32002, "{v}");
    // And a 2026-07-28 request on the same server is still stateless.
    let r = post(
        &s,
        &body(
            4,
            "tools/call",
            json!({"name": "echo", "arguments": {"text": "new"}}),
        ),
    );
    assert_eq!(r.status, 200, "{r:?}");
    assert!(r.header("mcp-session-id").is_none(), "{r:?}");
    assert_eq!(r.json()["result"]["resultType"], "complete");
}

#[test]
fn a_listener_that_does_not_read_is_dropped_not_buffered() {
    use std::io::Write;
    let s = Server::with_config(
        "[limits]\nlisten_queue = 4\nmax_uri_bytes = 20000\n",
        &["--fixtures", "conformance"],
    );
    // Big notifications fill the socket buffers quickly: each update names a 16 KB URI.
    let key = "k".repeat(16_000);
    let uri = format!("kv://{key}");
    let b = body(
        1,
        "subscriptions/listen",
        json!({"notifications": {"resourceSubscriptions": [uri]}}),
    );
    let text = b.to_string();
    // A raw connection that never reads what it is sent.
    let mut conn = std::net::TcpStream::connect(&s.addr).expect("connect");
    write!(
        conn,
        "POST /mcp HTTP/1.1\r\nHost: {}\r\nContent-Type: application/json\r\n\
         Accept: {ACCEPT_BOTH}\r\nMCP-Protocol-Version: {MODERN}\r\n\
         Mcp-Method: subscriptions/listen\r\nContent-Length: {}\r\n\r\n{text}",
        s.addr,
        text.len()
    )
    .expect("send listen");
    await_metric(&s, "mcp_active_sessions", 1.0, Duration::from_secs(2));
    let slow = "mcp_rejected_total{reason=\"listener_slow\"}";
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut sent = 0;
    while metric(&s, slow) == 0.0 {
        assert!(
            Instant::now() < deadline && sent < 5_000,
            "the listener was not dropped after {sent} updates"
        );
        for _ in 0..20 {
            call(&s, 100 + sent, "kv_set", json!({"key": key, "value": "v"}));
            sent += 1;
        }
    }
    // Dropped: the listener session ends and frees its slot; the server says why.
    await_metric(&s, "mcp_active_sessions", 0.0, Duration::from_secs(2));
    assert!(
        s.logs()
            .contains("listen stream dropped: the client does not read"),
        "{}",
        s.logs()
    );
    // Everyone else is still served.
    assert_eq!(
        crate::harness::text(&call(&s, 9, "echo", json!({"text": "ok"}))),
        "ok"
    );
    drop(conn);
}

#[test]
fn sessionless_calls_are_bounded_server_wide_not_per_worker() {
    // One call per session at most, two server-wide: the per-session bound must not
    // apply to 2026-07-28 requests (they share their worker's stateless session),
    // the server-wide one must.
    let s = Server::with_config(
        "[limits]\nmax_in_flight_per_session = 1\nmax_in_flight_total = 2\n\n[http]\nworkers = 1\n",
        &["--fixtures", "conformance"],
    );
    let a = open_sleep(&s, 1, 1500, json!({"progressToken": "a"}));
    let b = open_sleep(&s, 2, 1500, json!({"progressToken": "b"}));
    // A third is refused at once, by the server-wide bound.
    let r = post(
        &s,
        &body(
            3,
            "tools/call",
            json!({"name": "sleep", "arguments": {"ms": 10}}),
        ),
    );
    let refusal = r.json();
    assert_eq!(refusal["error"]["code"], -32000, "{r:?}");
    assert_eq!(refusal["error"]["data"]["scope"], "server", "{r:?}");
    // Both running calls finish normally.
    for (st, id) in [(a, 1), (b, 2)] {
        let resp = response_of(st, &json!(id));
        assert_eq!(resp["result"]["resultType"], "complete", "{resp}");
    }
}

#[test]
fn shutdown_drains_sessionless_calls() {
    // A 2026-07-28 call in flight at SIGTERM finishes within the grace period; one
    // past it is answered as cancelled by the shutdown (the stateless sessions are
    // drained like every other).
    let mut s = Server::with_config(
        "[limits]\nshutdown_grace_ms = 1500\n",
        &["--fixtures", "conformance"],
    );
    let short = open_sleep(&s, 1, 400, json!({"progressToken": "s"}));
    let long = open_sleep(&s, 2, 10_000, json!({"progressToken": "l"}));
    s.signal("TERM");
    let done = response_of(short, &json!(1));
    assert_eq!(done["result"]["resultType"], "complete", "{done}");
    assert_ne!(done["result"]["isError"], true, "{done}");
    let cut = response_of(long, &json!(2));
    assert_eq!(cut["result"]["isError"], true, "{cut}");
    assert!(text(&cut["result"]).contains("shutting down"), "{cut}");
    let status = s.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{}", s.logs());
}

#[test]
fn a_repeated_mcp_header_is_refused() {
    let s = start();
    let echo = Post::new(&body(
        1,
        "tools/call",
        json!({"name": "echo", "arguments": {"text": "hi"}}),
    ));
    // The socket-level sender itself: one of each is served.
    let r = echo.send_raw(&s, &[]);
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(text(&r.json()["result"]), "hi", "{r:?}");
    // A second Mcp-Name, whichever comes first, another Mcp-Method or
    // MCP-Protocol-Version, even an equal one: 400 with -32020 (a gateway reading
    // the last value would see another request than emcee).
    type Case<'a> = (&'a Post, &'a [(&'a str, &'a str)], &'a str);
    let cases: [Case; 5] = [
        (&echo, &[("Mcp-Name", "evil")], "Mcp-Name echo, evil"),
        (
            &echo.clone_without("Mcp-Name"),
            &[("Mcp-Name", "evil"), ("Mcp-Name", "echo")],
            "Mcp-Name evil, echo",
        ),
        (&echo, &[("Mcp-Method", "tools/call")], "Mcp-Method twice"),
        (
            &echo,
            &[("MCP-Protocol-Version", MODERN)],
            "MCP-Protocol-Version twice",
        ),
        (
            &echo,
            &[("mcp-protocol-version", "2025-11-25")],
            "MCP-Protocol-Version of both eras",
        ),
    ];
    for (post, also, what) in cases {
        let r = post.send_raw(&s, also);
        assert_eq!(r.status, 400, "{what}: {r:?}");
        let v = r.json();
        assert_eq!(v["error"]["code"], -32020, "{what}: {v}");
        assert_eq!(v["id"], 1, "{what}: {v}");
    }
    // A tool's Mcp-Param-* header twice.
    let param = Post::new(&body(
        2,
        "tools/call",
        json!({"name": "test_header_param", "arguments": {"region": "eu"}}),
    ))
    .set("Mcp-Param-Region", "eu");
    let r = param.send_raw(&s, &[]);
    assert_eq!(r.status, 200, "{r:?}");
    let r = param.send_raw(&s, &[("Mcp-Param-Region", "us")]);
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.json()["error"]["code"], -32020, "{r:?}");
    // Counted and logged as header mismatches.
    assert!(
        metric(&s, "mcp_rejected_total{reason=\"header_mismatch\"}") >= 6.0,
        "{}",
        s.get("/metrics").body
    );
    // The session era: a repeated MCP-Protocol-Version is a bad request too.
    let id = s.session();
    let ping = Post {
        body: json!({"jsonrpc": "2.0", "id": 3, "method": "ping"}).to_string(),
        headers: vec![
            ("Content-Type".to_owned(), "application/json".to_owned()),
            ("Accept".to_owned(), ACCEPT_BOTH.to_owned()),
            ("Mcp-Session-Id".to_owned(), id),
            ("MCP-Protocol-Version".to_owned(), "2025-11-25".to_owned()),
        ],
    };
    let r = ping.send_raw(&s, &[]);
    assert_eq!(r.status, 200, "{r:?}");
    let r = ping.send_raw(&s, &[("MCP-Protocol-Version", "2025-06-18")]);
    assert_eq!(r.status, 400, "{r:?}");
}

#[test]
fn a_new_request_during_the_drain_is_503_with_retry_after() {
    // A proxy retries a 503 elsewhere (nginx `proxy_next_upstream http_503`); a 200
    // carrying -32000 it would hand to the client.
    let mut s = Server::with_config(
        "[limits]\nshutdown_grace_ms = 5000\n",
        &["--fixtures", "conformance"],
    );
    let session = s.session();
    // A 2025-03-26 session, whose POSTs may be batches.
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-03-26", "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"}}});
    let r = s.post(None, &init.to_string(), &[]);
    let old = r.header("mcp-session-id").expect("a session").to_owned();
    let held = open_sleep(&s, 1, 2500, json!({}));
    assert_eq!(held.status, 200);
    s.signal("TERM");
    let echo = |id: u64| {
        Post::new(&body(
            id,
            "tools/call",
            json!({"name": "echo", "arguments": {"text": "hi"}}),
        ))
    };
    // Served until the drain begins (the signal is on its way), then refused.
    let deadline = Instant::now() + Duration::from_secs(2);
    let refused = loop {
        let r = echo(2).send(&s);
        if r.status != 200 || r.json().get("result").is_none() {
            break r;
        }
        assert!(Instant::now() < deadline, "never refused: {r:?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(refused.status, 503, "2026-07-28: {refused:?}");
    assert_eq!(refused.header("retry-after"), Some("5"), "{refused:?}");
    let v = refused.json();
    assert_eq!(v["error"]["code"], -32000, "{v}");
    assert_eq!(v["id"], 2, "{v}");
    // The session era: a request on a session opened before.
    let r = s.post(
        Some(&session),
        &call_body(3, "echo", json!({"text": "hi"})),
        &[("mcp-protocol-version", "2025-11-25")],
    );
    assert_eq!(r.status, 503, "session era: {r:?}");
    assert_eq!(r.header("retry-after"), Some("5"), "{r:?}");
    assert_eq!(r.json()["error"]["code"], -32000, "{r:?}");
    assert_eq!(r.json()["id"], 3, "{r:?}");
    // Whatever the answer's shape: SSE only, in both eras...
    let r = echo(4).set("Accept", "text/event-stream").send(&s);
    assert_eq!(r.status, 503, "2026-07-28, SSE only: {r:?}");
    assert_eq!(r.json()["id"], 4, "{r:?}");
    let r = s.post(
        Some(&session),
        &call_body(5, "echo", json!({"text": "hi"})),
        &[
            ("mcp-protocol-version", "2025-11-25"),
            ("accept", "text/event-stream"),
        ],
    );
    assert_eq!(r.status, 503, "session era, SSE only: {r:?}");
    assert_eq!(r.header("retry-after"), Some("5"), "{r:?}");
    assert_eq!(r.json()["id"], 5, "{r:?}");
    // ...and a batch: an error for each request.
    let batch = format!(
        "[{},{}]",
        call_body(6, "echo", json!({"text": "a"})),
        call_body(7, "echo", json!({"text": "b"}))
    );
    let r = s.post(
        Some(&old),
        &batch,
        &[("mcp-protocol-version", "2025-03-26")],
    );
    assert_eq!(r.status, 503, "a batch: {r:?}");
    let items = r.json();
    let ids: Vec<&Value> = items
        .as_array()
        .unwrap_or_else(|| panic!("an array: {r:?}"))
        .iter()
        .map(|m| &m["id"])
        .collect();
    assert_eq!(ids, [&json!(6), &json!(7)], "{r:?}");
    assert!(
        items
            .as_array()
            .is_some_and(|a| a.iter().all(|m| m["error"]["code"] == -32000)),
        "{r:?}"
    );
    // The call in flight still gets its answer; each refusal is counted once.
    let done = response_of(held, &json!(1));
    assert_eq!(done["result"]["resultType"], "complete", "{done}");
    let status = s.wait_exit(Duration::from_secs(10));
    assert_eq!(status.code(), Some(0), "{}", s.logs());
    let refusals = s
        .logs()
        .lines()
        .filter(|l| l.contains("\"reason\":\"shutting_down\""))
        .count();
    assert_eq!(refusals, 5, "{}", s.logs());
}

#[test]
fn closing_a_json_only_call_cancels_it() {
    let s = start();
    const CANCELLED: &str = r#"mcp_requests_total{method="tools/call",outcome="cancelled"}"#;
    let before = metric(&s, "mcp_cancelled_total");
    let sleep = Post::new(&body(
        1,
        "tools/call",
        json!({"name": "sleep", "arguments": {"ms": 30_000}}),
    ))
    .set("Accept", "application/json");
    let tcp = sleep.write_raw(&s, &[]);
    // The call runs; the client goes away.
    std::thread::sleep(Duration::from_millis(300));
    drop(tcp);
    await_metric(
        &s,
        "mcp_cancelled_total",
        before + 1.0,
        Duration::from_secs(5),
    );
    await_metric(&s, CANCELLED, 1.0, Duration::from_secs(2));
    assert!(
        s.logs().contains(r#""outcome":"cancelled""#),
        "{}",
        s.logs()
    );
}

#[test]
fn a_slow_json_only_answer_is_led_by_whitespace_and_a_quick_one_is_plain() {
    let s = Server::with_config(
        "[limits]\nstream_probe_ms = 50\n",
        &["--fixtures", "conformance"],
    );
    let json_only = |id: u64, tool: &str, args: Value| {
        Post::new(&body(
            id,
            "tools/call",
            json!({"name": tool, "arguments": args}),
        ))
        .set("Accept", "application/json")
        .send_raw(&s, &[])
    };
    // Within the JSON window: a plain body with its length.
    let r = json_only(1, "echo", json!({"text": "quick"}));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.content_type(), "application/json", "{r:?}");
    assert!(r.header("content-length").is_some(), "{r:?}");
    assert_eq!(text(&r.json()["result"]), "quick", "{r:?}");
    // Slower: chunked, whitespace while it runs (the liveness probe), then the
    // answer; still one JSON document.
    let r = json_only(2, "sleep", json!({"ms": 400}));
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.content_type(), "application/json", "{r:?}");
    assert!(r.header("content-length").is_none(), "{r:?}");
    assert!(r.body.starts_with(' '), "{r:?}");
    let v: Value = serde_json::from_str(&r.body).expect("JSON with leading whitespace");
    assert_eq!(v["id"], 2, "{v}");
    assert_eq!(v["result"]["resultType"], "complete", "{v}");
}

/// Issue 18 item 8: a listen over its limits is refused like every other 2026-07-28
/// request (400 with the JSON-RPC error, not a 200 stream carrying it), and leaves no
/// listener behind (the session cap's slot is free again).
#[test]
fn a_listen_over_its_limits_is_a_400_json_error_and_frees_its_slot() {
    let s = Server::with_config(
        "[limits]\nmax_sessions = 1\nmax_subscriptions = 1\n",
        &["--fixtures", "conformance"],
    );
    let b = body(
        9,
        "subscriptions/listen",
        json!({"notifications": {"resourceSubscriptions": ["test://a", "test://b"]}}),
    );
    let r = post(&s, &b);
    assert_eq!(r.status, 400, "{r:?}");
    assert_eq!(r.content_type(), "application/json", "{r:?}");
    let v = r.json();
    assert_eq!(v["id"], 9, "{v}");
    assert_eq!(v["error"]["code"], -32602, "{v}");
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .contains("limits.max_subscriptions"),
        "{v}"
    );
    await_metric(&s, "mcp_active_sessions", 0.0, Duration::from_secs(2));
    let _ok = listen(&s, 10, json!({"toolsListChanged": true}));
}
