//! 2026-07-28 multi-round-trip requests over HTTP and stdio (`--fixtures
//! conformance`): one handler asks the client in-stream in the session era and with
//! an `input_required` result in 2026-07-28; the sealed `requestState` is refused
//! when tampered with, expired, bound to another request or sealed by another key,
//! and accepted by another instance sharing the key file.

use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{error_code, meta, text, Client, Era, Launch, Server, Stdio};

const ELICIT: &str = "test_input_required_result_elicitation";

/// `_meta` declaring `capabilities`.
fn declaring(capabilities: Value) -> Value {
    let mut m = meta();
    m["io.modelcontextprotocol/clientCapabilities"] = capabilities;
    m
}

/// A 2026-07-28 client on `server`.
fn modern(server: Server) -> Client {
    Client::over_http(Era::Modern, server)
}

fn elicit_params(extra: Value) -> Value {
    let mut p = json!({"name": ELICIT, "arguments": {},
        "_meta": declaring(json!({"elicitation": {}}))});
    for (k, v) in extra.as_object().expect("an object") {
        p[k] = v.clone();
    }
    p
}

fn alice() -> Value {
    json!({"user_name": {"action": "accept", "content": {"name": "Alice"}}})
}

/// Round one: the question and its state.
fn round_one(c: &mut Client) -> String {
    let case = c.case;
    let r = c.request_id(1, "tools/call", elicit_params(json!({})));
    let result = &r["result"];
    assert_eq!(result["resultType"], "input_required", "{case}: {r}");
    assert_eq!(
        result["inputRequests"]["user_name"]["method"], "elicitation/create",
        "{case}: {r}"
    );
    assert!(result.get("content").is_none(), "{case}: {r}");
    result["requestState"]
        .as_str()
        .unwrap_or_else(|| panic!("{case}: a requestState: {r}"))
        .to_owned()
}

#[test]
fn one_handler_asks_in_stream_in_the_session_era_and_by_input_required_in_2026() {
    // Session era, stdio: the same handler sends elicitation/create in-stream.
    let mut s = Stdio::start(&["--fixtures", "conformance"]);
    let init = s.request(
        0,
        "initialize",
        json!({"protocolVersion": "2025-11-25", "capabilities": {"elicitation": {}},
            "clientInfo": {"name": "t", "version": "1"}}),
    );
    assert!(init.get("result").is_some(), "{init}");
    s.notify("notifications/initialized", json!({}));
    s.send_call(1, ELICIT, json!({}));
    let ask = s.recv();
    assert_eq!(ask["method"], "elicitation/create", "{ask}");
    s.send(&json!({"jsonrpc": "2.0", "id": ask["id"],
        "result": {"action": "accept", "content": {"name": "Alice"}}}));
    let done = s.recv();
    assert_eq!(text(&done["result"]), "Hello, Alice!", "{done}");
    // 2026-07-28 on the same stdio connection, and over HTTP: input_required, then
    // the retry.
    let clients = [
        Client::over_stdio(Era::Modern, s),
        modern(Server::start(&["--fixtures", "conformance"])),
    ];
    for mut c in clients {
        let case = c.case;
        let state = round_one(&mut c);
        let r = c.request_id(
            2,
            "tools/call",
            elicit_params(json!({"inputResponses": alice(), "requestState": state})),
        );
        assert_eq!(r["result"]["resultType"], "complete", "{case}: {r}");
        assert_eq!(text(&r["result"]), "Hello, Alice!", "{case}: {r}");
        let (status, logs) = c.finish();
        assert!(status.success(), "{case}: {status:?}\n{logs}");
    }
}

#[test]
fn a_sealed_state_is_refused_when_tampered_bound_elsewhere_or_from_another_key() {
    // An instance id: one of several instances, which is told about its random key.
    let mut s = modern(Server::start(&[
        "--fixtures",
        "conformance",
        "--instance-id",
        "a",
    ]));
    let state = round_one(&mut s);
    let mut retry = |state: &str, name: &str| {
        let mut p = elicit_params(json!({"inputResponses": alice(), "requestState": state}));
        p["name"] = name.into();
        s.request_id(2, "tools/call", p)
    };
    let r = retry(&format!("{state}-TAMPERED"), ELICIT);
    assert_eq!(error_code(&r), -32602, "{r}");
    let mut flipped = state.clone().into_bytes();
    let at = flipped.len() - 5;
    flipped[at] = if flipped[at] == b'x' { b'y' } else { b'x' };
    let r = retry(&String::from_utf8(flipped).unwrap(), ELICIT);
    assert_eq!(error_code(&r), -32602, "{r}");
    // Bound to the elicitation tool: another tool's retry cannot use it.
    let r = retry(&state, "test_input_required_result_tampered_state");
    assert_eq!(error_code(&r), -32602, "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("another request"),
        "{r}"
    );
    // Another server (another random key) refuses it.
    let mut other = modern(Server::start(&["--fixtures", "conformance"]));
    let r = other.request_id(
        2,
        "tools/call",
        elicit_params(json!({"inputResponses": alice(), "requestState": state})),
    );
    assert_eq!(error_code(&r), -32602, "{r}");
    // The state is never logged.
    assert!(!s.logs().contains(&state[..40]), "{}", s.logs());
    assert_eq!(s.logs().matches("random key").count(), 1, "{}", s.logs());
    // A lone loopback instance is not (issue 18 item 16).
    assert!(!other.logs().contains("random key"), "{}", other.logs());
}

#[test]
fn a_state_expires_and_instances_sharing_a_key_file_accept_each_others() {
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("mrtr.key");
    std::fs::write(&key, [7u8; 32]).unwrap();
    let key = key.to_str().unwrap();
    let config = "[mrtr]\nstate_ttl_ms = 1500\n";
    let launch = || {
        modern(Server::launch(Launch {
            config: Some(config),
            args: &["--fixtures", "conformance"],
            env: &[("EMCEE_MRTR_KEY_FILE", key)],
        }))
    };
    let (mut a, mut b) = (launch(), launch());
    assert!(!a.logs().contains("random key"), "{}", a.logs());
    let state = round_one(&mut a);
    let r = b.request_id(
        2,
        "tools/call",
        elicit_params(json!({"inputResponses": alice(), "requestState": state})),
    );
    assert_eq!(text(&r["result"]), "Hello, Alice!", "another instance: {r}");
    std::thread::sleep(Duration::from_millis(1700));
    let r = a.request_id(
        3,
        "tools/call",
        elicit_params(json!({"inputResponses": alice(), "requestState": state})),
    );
    assert_eq!(error_code(&r), -32602, "{r}");
    assert!(
        r["error"]["message"].as_str().unwrap().contains("expired"),
        "{r}"
    );
    // A key file too short to be a key is a configuration error.
    std::fs::write(dir.path().join("short.key"), b"short").unwrap();
    let short = dir.path().join("short.key");
    let (status, _, stderr) =
        crate::harness::run(&["config", "--mrtr-key-file", short.to_str().unwrap()], &[]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("mrtr.key_file"), "{stderr}");
}

#[test]
fn undeclared_capabilities_and_malformed_answers_are_protocol_errors() {
    let mut s = modern(Server::start(&["--fixtures", "conformance"]));
    // No elicitation declared: -32021 naming it, not a question.
    let mut p = elicit_params(json!({}));
    p["_meta"] = declaring(json!({}));
    let r = s.request_id(1, "tools/call", p);
    assert_eq!(error_code(&r), -32021, "{r}");
    // An answer that is not an elicitation result: -32602.
    let state = round_one(&mut s);
    let r = s.request_id(
        2,
        "tools/call",
        elicit_params(json!({"inputResponses": {"user_name": 12345}, "requestState": state})),
    );
    assert_eq!(error_code(&r), -32602, "{r}");
    // Answers for keys nobody asked are ignored; a missing answer is asked again.
    let r = s.request_id(
        3,
        "tools/call",
        elicit_params(json!({"inputResponses": {"other": {"action": "decline"}}})),
    );
    assert_eq!(r["result"]["resultType"], "input_required", "{r}");
    // Methods other than tools/call, prompts/get, resources/read never ask.
    let r = s.request_id(4, "tools/list", json!({}));
    assert_eq!(r["result"]["resultType"], "complete", "{r}");
    // prompts/get asks and completes too.
    let prompt = |extra: Value| {
        let mut p = json!({"name": "test_input_required_result_prompt",
            "_meta": declaring(json!({"elicitation": {}}))});
        for (k, v) in extra.as_object().unwrap() {
            p[k] = v.clone();
        }
        p
    };
    let r = s.request_id(5, "prompts/get", prompt(json!({})));
    assert_eq!(r["result"]["resultType"], "input_required", "{r}");
    let state = r["result"]["requestState"].as_str().unwrap().to_owned();
    let answer = json!({"user_context": {"action": "accept", "content": {"context": "tests"}}});
    let r = s.request_id(
        6,
        "prompts/get",
        prompt(json!({"inputResponses": answer, "requestState": state})),
    );
    assert_eq!(r["result"]["resultType"], "complete", "{r}");
    assert_eq!(
        r["result"]["messages"][0]["content"]["text"], "Context: tests",
        "{r}"
    );
}

#[test]
fn a_session_era_ask_the_client_did_not_declare_fails_at_once() {
    // initialize declares no capability: no elicitation/create goes out, the ask
    // fails at once with -32600 naming the capability (not a 60 s wait for -32603).
    let mut s = Stdio::start(&["--fixtures", "conformance"]);
    let init = s.request(
        0,
        "initialize",
        json!({"protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"}}),
    );
    assert!(init.get("result").is_some(), "{init}");
    s.notify("notifications/initialized", json!({}));
    // A handler that passes the error on: the JSON-RPC error itself.
    s.send_call(1, ELICIT, json!({}));
    let r = s
        .try_recv(Duration::from_secs(5))
        .expect("an answer within 5 s");
    assert_eq!(r["id"], 1, "an answer, not a request to the client: {r}");
    assert_eq!(error_code(&r), -32600, "{r}");
    assert!(
        r["error"]["message"]
            .as_str()
            .unwrap()
            .contains("elicitation"),
        "{r}"
    );
    assert_eq!(
        r["error"]["data"]["requiredCapabilities"],
        json!({"elicitation": {}}),
        "{r}"
    );
    // The conformance fixture's test_elicitation turns it into a tool error.
    s.send_call(2, "test_elicitation", json!({"message": "Who are you?"}));
    let r = s
        .try_recv(Duration::from_secs(5))
        .expect("an answer within 5 s");
    assert_eq!(r["id"], 2, "an answer, not a request to the client: {r}");
    assert_eq!(r["result"]["isError"], true, "{r}");
    assert!(text(&r["result"]).contains("elicitation"), "{r}");
    let (status, _, logs) = s.finish();
    assert!(status.success(), "{status:?}\n{logs:?}");
}

#[test]
fn answers_count_only_for_the_questions_the_latest_round_asked() {
    let mut s = modern(Server::start(&["--fixtures", "conformance"]));
    // A first call (no requestState) may answer the question its handler asks: the
    // answer is used (the conformance suite's ignore-extra-params), and the keys
    // nobody asks are ignored.
    let mut first = alice();
    first["never_asked"] = json!({"action": "accept", "content": {"name": "Mallory"}});
    let r = s.request_id(
        1,
        "tools/call",
        elicit_params(json!({"inputResponses": first})),
    );
    assert_eq!(r["result"]["resultType"], "complete", "{r}");
    assert!(text(&r["result"]).contains("Alice"), "{r}");
    // A first call's answer to a key its handler does not ask is not an answer: the
    // question comes.
    let mallory = json!({"someone_else": {"action": "accept", "content": {"name": "Mallory"}}});
    let r = s.request_id(
        10,
        "tools/call",
        elicit_params(json!({"inputResponses": mallory})),
    );
    assert_eq!(r["result"]["resultType"], "input_required", "{r}");
    // With a requestState, only the latest round's questions count: round one asks
    // step1 only; an answer to step2, not asked yet, rides along and is ignored:
    // round two asks step2.
    let multi = |extra: Value| {
        let mut p = elicit_params(extra);
        p["name"] = "test_input_required_result_multi_round".into();
        p
    };
    let r = s.request_id(2, "tools/call", multi(json!({})));
    let asked: Vec<&String> = r["result"]["inputRequests"]
        .as_object()
        .unwrap_or_else(|| panic!("{r}"))
        .keys()
        .collect();
    assert_eq!(asked, ["step1"], "{r}");
    let state = r["result"]["requestState"].as_str().unwrap().to_owned();
    let r = s.request_id(
        3,
        "tools/call",
        multi(json!({"requestState": state, "inputResponses": {
            "step1": {"action": "accept", "content": {"name": "Ada"}},
            "step2": {"action": "accept", "content": {"color": "red"}}}})),
    );
    assert_eq!(r["result"]["resultType"], "input_required", "{r}");
    let asked: Vec<&String> = r["result"]["inputRequests"]
        .as_object()
        .unwrap_or_else(|| panic!("{r}"))
        .keys()
        .collect();
    assert_eq!(asked, ["step2"], "{r}");
    // Round two cannot change round one's answer: only step2 counts.
    let state = r["result"]["requestState"].as_str().unwrap().to_owned();
    let r = s.request_id(
        4,
        "tools/call",
        multi(json!({"requestState": state, "inputResponses": {
            "step1": {"action": "accept", "content": {"name": "Eve"}},
            "step2": {"action": "accept", "content": {"color": "blue"}}}})),
    );
    assert_eq!(text(&r["result"]), "Ada likes blue", "{r}");
}
