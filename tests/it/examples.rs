//! The examples, built by `cargo test`, run as a user would run them.

use std::time::Duration;

use serde_json::json;

use crate::harness::{text, RECV_TIMEOUT};

/// The lines `child` writes on stdout, read on a thread of their own.
fn stdout_lines(child: &mut std::process::Child) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let out = child.stdout.take().expect("stdout is piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// The address an HTTP example prints first: `listening on http://ADDR[/PATH]`.
fn listening_on(lines: &std::sync::mpsc::Receiver<String>) -> String {
    let line = lines
        .recv_timeout(RECV_TIMEOUT)
        .unwrap_or_else(|e| panic!("no \"listening on\" line within {RECV_TIMEOUT:?}: {e}"));
    let url = line
        .strip_prefix("listening on http://")
        .unwrap_or_else(|| panic!("not a \"listening on\" line: {line:?}"));
    let addr = url.split('/').next().unwrap_or(url).to_owned();
    let port: u16 = addr
        .rsplit_once(':')
        .and_then(|(_, p)| p.parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    assert_ne!(port, 0, "the real port: {line:?}");
    addr
}

/// `GET url`: status and body (4xx and 5xx included; 0 and the error when there was
/// no answer).
fn http_get(url: &str) -> (u16, String) {
    match ureq::get(url).timeout(Duration::from_secs(5)).call() {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(e) => (0, e.to_string()),
    }
}

/// A 2026-07-28 `tools/call` of `tool` POSTed to `url`: the parsed response.
fn modern_call(url: &str, tool: &str, arguments: serde_json::Value) -> serde_json::Value {
    let call = json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":tool,"arguments":arguments,
        "_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28",
            "io.modelcontextprotocol/clientCapabilities":{},
            "io.modelcontextprotocol/clientInfo":{"name":"t","version":"1"}}}});
    let answer = ureq::post(url)
        .timeout(Duration::from_secs(10))
        .set("Content-Type", "application/json")
        .set("Accept", "application/json, text/event-stream")
        .set("MCP-Protocol-Version", "2026-07-28")
        .set("Mcp-Method", "tools/call")
        .set("Mcp-Name", tool)
        .send_string(&call.to_string())
        .expect("the call answered")
        .into_string()
        .unwrap();
    serde_json::from_str(&answer).unwrap_or_else(|e| panic!("{e}: {answer}"))
}

/// Path of a built example (`target/<profile>/examples/NAME`, beside this test's
/// `deps/` directory).
fn example(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(std::path::Path::parent)
        .expect("target/<profile>");
    profile_dir.join("examples").join(name)
}

#[test]
fn custom_tool_serves_its_typed_tool_over_stdio() {
    use std::io::{BufRead, BufReader, Write};
    let mut child = std::process::Command::new(example("custom_tool"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run examples/custom_tool (built by cargo test)");
    let mut stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut ask = |line: serde_json::Value| {
        writeln!(stdin, "{line}").unwrap();
        let mut answer = String::new();
        out.read_line(&mut answer).unwrap();
        serde_json::from_str::<serde_json::Value>(&answer).unwrap()
    };
    let init = ask(
        json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}),
    );
    assert_eq!(init["result"]["serverInfo"]["name"], "adder", "{init}");
    assert_eq!(
        init["result"]["instructions"],
        "Call `add` to add two integers."
    );
    let sum = ask(json!({"jsonrpc":"2.0","id":2,"method":"tools/call",
        "params":{"name":"add","arguments":{"a":2,"b":3}}}));
    assert_eq!(text(&sum["result"]), "5", "{sum}");
    let overflow = ask(json!({"jsonrpc":"2.0","id":3,"method":"tools/call",
        "params":{"name":"add","arguments":{"a":i64::MAX,"b":1}}}));
    assert_eq!(overflow["result"]["isError"], true, "{overflow}");
    drop(stdin);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
}

/// A stdio example run for a test: send lines, read JSON lines (each within
/// [`RECV_TIMEOUT`]).
struct Run {
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    lines: std::sync::mpsc::Receiver<String>,
}

impl Run {
    fn start(name: &str, args: &[&str]) -> Run {
        let mut child = std::process::Command::new(example(name))
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("run examples/{name}: {e}"));
        let stdin = child.stdin.take();
        let lines = stdout_lines(&mut child);
        Run {
            child,
            stdin,
            lines,
        }
    }

    fn send(&mut self, message: serde_json::Value) {
        use std::io::Write;
        writeln!(self.stdin.as_mut().unwrap(), "{message}").unwrap();
    }

    fn recv(&mut self) -> serde_json::Value {
        let line = self
            .lines
            .recv_timeout(RECV_TIMEOUT)
            .unwrap_or_else(|e| panic!("no message within {RECV_TIMEOUT:?}: {e}"));
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"))
    }

    /// Send a request; the messages before its response, and the response.
    fn request(
        &mut self,
        message: serde_json::Value,
    ) -> (Vec<serde_json::Value>, serde_json::Value) {
        let id = message["id"].clone();
        self.send(message);
        let mut before = Vec::new();
        loop {
            let m = self.recv();
            if m["id"] == id && m.get("method").is_none() {
                return (before, m);
            }
            before.push(m);
        }
    }

    fn initialize(&mut self, capabilities: serde_json::Value) {
        let (_, r) = self.request(json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
            "protocolVersion":"2025-11-25","capabilities":capabilities,"clientInfo":{"name":"t","version":"1"}}}));
        assert!(r.get("result").is_some(), "{r}");
        self.send(json!({"jsonrpc":"2.0","method":"notifications/initialized"}));
    }

    fn finish(mut self) {
        drop(self.stdin.take());
        assert!(self.child.wait().unwrap().success());
    }
}

#[test]
fn notes_keeps_notes_and_tells_subscribers() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("notes");
    let mut s = Run::start("notes", &[data.to_str().unwrap()]);
    s.initialize(json!({}));
    let (_, r) = s.request(json!({"jsonrpc":"2.0","id":1,"method":"resources/subscribe","params":{"uri":"note://todo"}}));
    assert_eq!(r["result"], json!({}), "{r}");
    let (before, r) = s.request(json!({"jsonrpc":"2.0","id":2,"method":"tools/call",
        "params":{"name":"note_add","arguments":{"title":"todo","text":"buy milk"}}}));
    assert_eq!(text(&r["result"]), "saved todo", "{r}");
    let updated = |m: &serde_json::Value| {
        m["method"] == "notifications/resources/updated" && m["params"]["uri"] == "note://todo"
    };
    // Before the response or right after it.
    if !before.iter().any(updated) {
        let next = s.recv();
        assert!(updated(&next), "{before:?} then {next}");
    }
    let (_, r) = s.request(
        json!({"jsonrpc":"2.0","id":3,"method":"resources/read","params":{"uri":"note://todo"}}),
    );
    assert_eq!(r["result"]["contents"][0]["text"], "buy milk", "{r}");
    s.finish();
}

#[test]
fn notes_tells_subscribers_of_inbox_changes_and_completes_in_both_eras() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("notes");
    let inbox = dir.path().join("inbox");
    std::fs::create_dir_all(&inbox).unwrap();
    let mut s = Run::start("notes", &[data.to_str().unwrap(), inbox.to_str().unwrap()]);
    let (_, init) = s.request(
        json!({"jsonrpc":"2.0","id":0,"method":"initialize","params":{
        "protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}),
    );
    assert_eq!(
        init["result"]["capabilities"]["completions"],
        json!({}),
        "{init}"
    );
    s.send(json!({"jsonrpc":"2.0","method":"notifications/initialized"}));
    let meta = json!({"io.modelcontextprotocol/protocolVersion":"2026-07-28",
        "io.modelcontextprotocol/clientCapabilities":{},
        "io.modelcontextprotocol/clientInfo":{"name":"t","version":"1"}});
    // The prompt's argument, in both eras.
    let tone = json!({"ref":{"type":"ref/prompt","name":"review"},"argument":{"name":"tone","value":"fr"}});
    let (_, r) = s.request(
        json!({"jsonrpc":"2.0","id":1,"method":"completion/complete","params":tone.clone()}),
    );
    assert_eq!(
        r["result"]["completion"],
        json!({"values":["friendly"],"total":1,"hasMore":false}),
        "{r}"
    );
    let mut modern = tone;
    modern["_meta"] = meta.clone();
    let (_, r) =
        s.request(json!({"jsonrpc":"2.0","id":2,"method":"completion/complete","params":modern}));
    assert_eq!(r["result"]["resultType"], "complete", "{r}");
    assert_eq!(
        r["result"]["completion"]["values"],
        json!(["friendly"]),
        "{r}"
    );

    // A file dropped into the inbox: completed (once the watcher saw it) by the
    // template's variable, in both eras.
    std::fs::write(inbox.join("groceries.txt"), "milk").unwrap();
    std::fs::write(inbox.join("garden.txt"), "roses").unwrap();
    let name = |value: &str| json!({"ref":{"type":"ref/resource","uri":"inbox://{name}"},"argument":{"name":"name","value":value}});
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut id = 10;
    loop {
        id += 1;
        let (_, r) = s.request(
            json!({"jsonrpc":"2.0","id":id,"method":"completion/complete","params":name("g")}),
        );
        if r["result"]["completion"]["values"] == json!(["garden", "groceries"]) {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never completed: {r}");
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut modern = name("gr");
    modern["_meta"] = meta;
    let (_, r) =
        s.request(json!({"jsonrpc":"2.0","id":3,"method":"completion/complete","params":modern}));
    assert_eq!(
        r["result"]["completion"]["values"],
        json!(["groceries"]),
        "{r}"
    );

    // Subscribed, then the file changes outside any call: the watcher's notifier
    // tells this session.
    let (_, r) = s.request(
        json!({"jsonrpc":"2.0","id":4,"method":"resources/subscribe",
        "params":{"uri":"inbox://groceries"}}),
    );
    assert_eq!(r["result"], json!({}), "{r}");
    std::fs::write(inbox.join("groceries.txt"), "milk, eggs and bread").unwrap();
    let updated = s.recv();
    assert_eq!(
        updated,
        json!({"jsonrpc":"2.0","method":"notifications/resources/updated",
            "params":{"uri":"inbox://groceries"}})
    );
    let (_, r) = s.request(json!({"jsonrpc":"2.0","id":5,"method":"resources/read",
        "params":{"uri":"inbox://groceries"}}));
    assert_eq!(
        r["result"]["contents"][0]["text"], "milk, eggs and bread",
        "{r}"
    );
    s.finish();
}

#[test]
fn ask_name_asks_in_both_protocol_eras_with_one_handler() {
    let mut s = Run::start("ask_name", &[]);
    s.initialize(json!({"elicitation": {}}));
    // Session era: a request on the call's stream.
    s.send(json!({"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"greet","arguments":{}}}));
    let ask = s.recv();
    assert_eq!(ask["method"], "elicitation/create", "{ask}");
    // The form generated from `struct Name { name: String }`.
    assert_eq!(
        ask["params"]["requestedSchema"],
        json!({"type": "object", "properties": {"name": {"type": "string", "description": "Your name."}},
            "required": ["name"]}),
        "{ask}"
    );
    s.send(json!({"jsonrpc":"2.0","id":ask["id"],"result":{"action":"accept","content":{"name":"Ada"}}}));
    let done = s.recv();
    assert_eq!(text(&done["result"]), "Hello, Ada!", "{done}");
    // Declined, then dismissed: no name, each its own greeting.
    for (id, action, greeting) in [
        (11, "decline", "Hello, stranger who keeps their name!"),
        (12, "cancel", "Hello, whoever you are."),
    ] {
        s.send(json!({"jsonrpc":"2.0","id":id,"method":"tools/call","params":{"name":"greet","arguments":{}}}));
        let ask = s.recv();
        assert_eq!(ask["method"], "elicitation/create", "{ask}");
        s.send(json!({"jsonrpc":"2.0","id":ask["id"],"result":{"action":action}}));
        let done = s.recv();
        assert_eq!(text(&done["result"]), greeting, "{done}");
    }
    // An accepted answer that does not fit the form: -32602 naming the field.
    s.send(json!({"jsonrpc":"2.0","id":13,"method":"tools/call","params":{"name":"greet","arguments":{}}}));
    let ask = s.recv();
    s.send(
        json!({"jsonrpc":"2.0","id":ask["id"],"result":{"action":"accept","content":{"name":42}}}),
    );
    let done = s.recv();
    assert_eq!(done["error"]["code"], -32602, "{done}");
    assert!(
        done["error"]["message"]
            .as_str()
            .unwrap()
            .contains("`name`"),
        "{done}"
    );
    // 2026-07-28: input_required, then the retry.
    let meta = json!({"io.modelcontextprotocol/protocolVersion":"2026-07-28",
        "io.modelcontextprotocol/clientCapabilities":{"elicitation":{}},
        "io.modelcontextprotocol/clientInfo":{"name":"t","version":"1"}});
    let (_, r) = s.request(json!({"jsonrpc":"2.0","id":2,"method":"tools/call",
        "params":{"name":"greet","arguments":{},"_meta":meta}}));
    assert_eq!(r["result"]["resultType"], "input_required", "{r}");
    let key = r["result"]["inputRequests"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    let (_, r) = s.request(json!({"jsonrpc":"2.0","id":3,"method":"tools/call",
        "params":{"name":"greet","arguments":{},"_meta":meta,
            "inputResponses":{key.clone():{"action":"accept","content":{"name":"Grace"}}},
            "requestState":r["result"]["requestState"]}}));
    assert_eq!(text(&r["result"]), "Hello, Grace!", "{r}");
    // 2026-07-28, declined: the retry carries the refusal.
    let (_, r) = s.request(json!({"jsonrpc":"2.0","id":4,"method":"tools/call",
        "params":{"name":"greet","arguments":{},"_meta":meta}}));
    let (_, r) = s.request(json!({"jsonrpc":"2.0","id":5,"method":"tools/call",
        "params":{"name":"greet","arguments":{},"_meta":meta,
            "inputResponses":{key:{"action":"decline"}},
            "requestState":r["result"]["requestState"]}}));
    assert_eq!(
        text(&r["result"]),
        "Hello, stranger who keeps their name!",
        "{r}"
    );
    s.finish();
}

/// A fake weather service on 127.0.0.1 answering until `stop` is set.
fn weather_service(stop: std::sync::Arc<std::sync::atomic::AtomicBool>) -> std::net::SocketAddr {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            let Ok((mut conn, _)) = listener.accept() else {
                std::thread::sleep(std::time::Duration::from_millis(10));
                continue;
            };
            let _ = conn.set_nonblocking(false);
            let mut buf = [0u8; 1024];
            let n = conn.read(&mut buf).unwrap_or(0);
            let request = String::from_utf8_lossy(&buf[..n]);
            let body = if request.starts_with("GET /forecast?city=Oslo") {
                "Oslo: snow, -3 C"
            } else {
                "ok"
            };
            let _ = write!(
                conn,
                "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    });
    addr
}

#[test]
fn weather_calls_its_dependency_and_its_health_check_follows_it() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let service = weather_service(stop.clone());
    // Port 0: the example binds it and prints the address it got.
    let mut child = std::process::Command::new(example("weather"))
        .args(["127.0.0.1:0", &service.to_string()])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run examples/weather");
    let bind = listening_on(&stdout_lines(&mut child));
    let get = |path: &str| http_get(&format!("http://{bind}{path}"));
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while get("/health").0 != 200 {
        assert!(
            std::time::Instant::now() < deadline,
            "weather never healthy: {:?}",
            get("/health")
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let answer = modern_call(
        &format!("http://{bind}/mcp"),
        "forecast",
        json!({"city": "Oslo"}),
    );
    assert_eq!(text(&answer["result"]), "Oslo: snow, -3 C", "{answer}");
    // The dependency goes away: /health says so, by name.
    stop.store(true, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(100));
    let (status, body) = get("/health");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("weather_service"), "{body}");
    crate::harness::send_signal(child.id(), "TERM");
    assert!(child.wait().unwrap().success());
}

#[test]
fn mount_serves_mcp_beside_the_applications_own_route() {
    let mut child = std::process::Command::new(example("mount"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run examples/mount");
    let addr = listening_on(&stdout_lines(&mut child));
    let get = |path: &str| http_get(&format!("http://{addr}{path}"));
    assert_eq!(
        get("/hello"),
        (200, "hello from the application".to_owned())
    );
    assert_eq!(get("/health/ready").0, 200);
    let answer = modern_call(
        &format!("http://{addr}/mcp"),
        "shout",
        json!({"text": "quiet please"}),
    );
    assert_eq!(text(&answer["result"]), "QUIET PLEASE", "{answer}");
    crate::harness::send_signal(child.id(), "TERM");
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("examples/mount did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
}
