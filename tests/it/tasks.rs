//! The tasks extension over HTTP and stdio: the built-in `sleep` becomes a task for
//! a 2026-07-28 request that declares `io.modelcontextprotocol/tasks` (an ordinary
//! result otherwise); `tasks/get`, `tasks/update`, `tasks/cancel`; a task running
//! when the process is killed is `failed` after the restart.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::harness::{error_code, meta, text, Client, Era, Server, MODERN_CASES};

const EXT: &str = "io.modelcontextprotocol/tasks";

/// `_meta` declaring the tasks extension (and elicitation).
pub(crate) fn with_ext() -> Value {
    let mut m = meta();
    m["io.modelcontextprotocol/clientCapabilities"] =
        json!({"elicitation": {}, "extensions": {EXT: {}}});
    m
}

pub(crate) fn call(c: &mut Client, id: u64, tool: &str, args: Value, m: Value) -> Value {
    c.request_id(
        id,
        "tools/call",
        json!({"name": tool, "arguments": args, "_meta": m}),
    )
}

pub(crate) fn task_op(c: &mut Client, id: u64, method: &str, task: &str) -> Value {
    c.request_id(id, method, json!({"taskId": task, "_meta": with_ext()}))
}

/// Poll until the task leaves `working`/`input_required` or `status` is reached.
pub(crate) fn wait_for(c: &mut Client, task: &str, status: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut id = 1000;
    loop {
        let r = task_op(c, id, "tasks/get", task);
        let s = r["result"]["status"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if s == status || matches!(s.as_str(), "completed" | "failed" | "cancelled") {
            return r;
        }
        assert!(
            Instant::now() < deadline,
            "task never reached {status}: {r}"
        );
        std::thread::sleep(Duration::from_millis(50));
        id += 1;
    }
}

/// The lifecycle every transport must show.
fn lifecycle(c: &mut Client) {
    // Without the extension: the ordinary result, and no task methods.
    let r = call(c, 1, "sleep", json!({"ms": 10}), meta());
    assert_eq!(r["result"]["resultType"], "complete", "{r}");
    assert_eq!(text(&r["result"]), "slept 10 ms", "{r}");
    let r = c.request_id(2, "tasks/get", json!({"taskId": "x"}));
    assert_eq!(error_code(&r), -32021, "{r}");
    assert_eq!(
        r["error"]["data"]["requiredCapabilities"]["extensions"][EXT],
        json!({}),
        "{r}"
    );
    // With it: a task, durably there at once, completed with the tool's result.
    let r = call(c, 3, "sleep", json!({"ms": 300}), with_ext());
    let created = &r["result"];
    assert_eq!(created["resultType"], "task", "{r}");
    let task = created["taskId"].as_str().expect("a taskId").to_owned();
    assert_eq!(task.len(), 32, "128 bits in hex: {task}");
    assert!(task.chars().all(|c| c.is_ascii_hexdigit()), "{task}");
    assert_eq!(created["status"], "working", "{r}");
    assert!(created["ttlMs"].as_u64().unwrap() > 0, "{r}");
    assert!(created.get("requestState").is_none(), "{r}");
    let r = task_op(c, 4, "tasks/get", &task);
    assert_eq!(r["result"]["resultType"], "complete", "{r}");
    assert_eq!(r["result"]["status"], "working", "{r}");
    let done = wait_for(c, &task, "completed");
    assert_eq!(done["result"]["status"], "completed", "{done}");
    assert_eq!(text(&done["result"]["result"]), "slept 300 ms", "{done}");
    // Unknown ids are invalid params; cancelling an ended task is an empty ack.
    let r = task_op(c, 5, "tasks/get", "0123456789abcdef0123456789abcdef");
    assert_eq!(error_code(&r), -32602, "{r}");
    let r = task_op(c, 6, "tasks/cancel", &task);
    assert_eq!(
        r["result"],
        json!({"resultType": "complete", "_meta": r["result"]["_meta"]}),
        "{r}"
    );
    // Cancel stops a running task (its Call actor).
    let r = call(c, 7, "sleep", json!({"ms": 30_000}), with_ext());
    let long = r["result"]["taskId"].as_str().unwrap().to_owned();
    let r = task_op(c, 8, "tasks/cancel", &long);
    assert!(r.get("result").is_some(), "{r}");
    let cancelled = wait_for(c, &long, "cancelled");
    assert_eq!(cancelled["result"]["status"], "cancelled", "{cancelled}");
    // A question inside a task parks it until tasks/update answers.
    let r = call(
        c,
        9,
        "confirm_delete",
        json!({"filename": "a.txt"}),
        with_ext(),
    );
    let asking = r["result"]["taskId"].as_str().unwrap().to_owned();
    let waiting = wait_for(c, &asking, "input_required");
    assert_eq!(
        waiting["result"]["inputRequests"]["confirm"]["method"], "elicitation/create",
        "{waiting}"
    );
    let r = c.request_id(
        10,
        "tasks/update",
        json!({"taskId": asking, "inputResponses": {"confirm": {"action": "accept", "content": {"confirm": true}}},
            "_meta": with_ext()}),
    );
    assert!(r.get("result").is_some(), "{r}");
    let done = wait_for(c, &asking, "completed");
    assert_eq!(text(&done["result"]["result"]), "a.txt: deleted", "{done}");
    // A tool that only runs as a task: -32021 without the extension.
    let r = call(c, 11, "failing_job", json!({}), meta());
    assert_eq!(error_code(&r), -32021, "{r}");
}

/// Was `tasks_over_http` and `tasks_over_stdio`.
#[test]
fn tasks_over_every_transport() {
    for case in MODERN_CASES {
        let mut c = Client::start(case, &["--fixtures", "conformance"]);
        lifecycle(&mut c);
        let (status, logs) = c.finish();
        assert!(status.success(), "{case}: {status:?}\n{logs}");
    }
}

#[test]
fn a_task_running_when_the_process_is_killed_is_failed_after_the_restart() {
    let mut c = Client::over_http(Era::Modern, Server::start(&[]));
    let r = call(&mut c, 1, "sleep", json!({"ms": 60_000}), with_ext());
    let task = r["result"]["taskId"].as_str().expect("a task").to_owned();
    let done = call(&mut c, 2, "sleep", json!({"ms": 1}), with_ext());
    let finished = done["result"]["taskId"].as_str().unwrap().to_owned();
    wait_for(&mut c, &finished, "completed");
    let mut s = c.into_server().expect("HTTP");
    s.signal("KILL");
    assert!(!s.wait_exit(Duration::from_secs(5)).success());
    let mut s = Client::over_http(Era::Modern, s.restart());
    let r = task_op(&mut s, 3, "tasks/get", &task);
    assert_eq!(r["result"]["status"], "failed", "{r}");
    assert!(
        r["result"]["statusMessage"]
            .as_str()
            .unwrap()
            .contains("stopped"),
        "{r}"
    );
    assert_eq!(r["result"]["error"]["code"], -32603, "{r}");
    // A result written before the kill is still there.
    let r = task_op(&mut s, 4, "tasks/get", &finished);
    assert_eq!(r["result"]["status"], "completed", "{r}");
    assert_eq!(text(&r["result"]["result"]), "slept 1 ms", "{r}");
    assert!(s.logs().contains("marked failed"), "{}", s.logs());
}

/// `limits.task_timeout_ms`: a task running longer is stopped, and says so.
#[test]
fn a_task_past_its_timeout_is_stopped() {
    let mut s = Client::over_http(
        Era::Modern,
        Server::start(&["--limit", "task_timeout_ms=300"]),
    );
    let r = call(&mut s, 1, "sleep", json!({"ms": 30_000}), with_ext());
    let task = r["result"]["taskId"].as_str().expect("a task").to_owned();
    let started = Instant::now();
    let done = wait_for(&mut s, &task, "completed");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(done["result"]["result"]["isError"], true, "{done}");
    assert!(
        text(&done["result"]["result"]).contains("timed out after 300 ms"),
        "{done}"
    );
}

/// Issue 18 item 5, over HTTP with small limits: one client filling the store with
/// ended tasks does not lock others out (the oldest ended ones are evicted), and
/// one client's running tasks fill only its share (`max_tasks_per_client`): past
/// it a task-only tool is refused (-32000, counted), a tool that may run without
/// a task runs without one, and another address still gets a task.
#[test]
fn one_client_fills_only_its_share_of_the_task_store() {
    let server = Server::start(&[
        "--fixtures",
        "conformance",
        "--limit",
        "max_tasks=4",
        "--limit",
        "max_tasks_per_client=2",
    ]);
    let other: std::net::IpAddr = "127.0.0.2".parse().unwrap();
    let from_other = |s: &Server, id: u64, ms: u64| {
        let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
            "params": {"name": "sleep", "arguments": {"ms": ms}, "_meta": with_ext()}});
        s.post_from(other, &body)
    };
    let mut a = Client::over_http(Era::Modern, server);
    // Ended tasks: the second address fills the store, yet gets more tasks.
    let mut ended = Vec::new();
    for id in 0..6 {
        let r = from_other(a.server().unwrap(), 100 + id, 1);
        let task = r["result"]["taskId"].as_str();
        ended.push(task.unwrap_or_else(|| panic!("task {id}: {r}")).to_owned());
        let r = task_op(&mut a, 200 + id, "tasks/get", &ended[id as usize]);
        assert_eq!(r["result"]["resultType"], "complete", "{r}");
        wait_for(&mut a, &ended[id as usize], "completed");
    }
    let r = task_op(&mut a, 300, "tasks/get", &ended[0]);
    assert_eq!(error_code(&r), -32602, "evicted: {r}");
    // Running tasks: 127.0.0.1 fills its share of 2.
    for id in 1..=2 {
        let r = call(&mut a, id, "sleep", json!({"ms": 30_000}), with_ext());
        assert_eq!(r["result"]["resultType"], "task", "{r}");
    }
    let r = call(&mut a, 3, "failing_job", json!({}), with_ext());
    assert_eq!(error_code(&r), -32000, "{r}");
    let message = r["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("limits.max_tasks_per_client"), "{r}");
    // A tool that may run without a task does.
    let r = call(&mut a, 4, "sleep", json!({"ms": 5}), with_ext());
    assert_eq!(r["result"]["resultType"], "complete", "{r}");
    assert_eq!(text(&r["result"]), "slept 5 ms", "{r}");
    // The other address is not refused.
    let r = from_other(a.server().unwrap(), 5, 30_000);
    assert_eq!(r["result"]["resultType"], "task", "{r}");
    let metrics = a.server().unwrap().get("/metrics").body;
    assert!(
        metrics.contains("mcp_rejected_total{reason=\"task_share\"} 2"),
        "{metrics}"
    );
    assert!(a.logs().contains("max_tasks_per_client"), "{}", a.logs());
}
