//! The facade's tests: definitions refused at build, and the doors (a listener, a
//! running-server handle, a mount, a notifier, completers).

use super::*;
use crate::notify::Change;
use crate::protocol::CallToolResult;
use std::net::SocketAddr;

fn echo(name: &str) -> Tool {
    Tool::raw(
        name,
        "d",
        serde_json::json!({"type": "object"}),
        |_ctx, _a| async { Ok(CallToolResult::text("x")) },
    )
}

#[test]
fn duplicate_names_of_any_kind_are_refused_at_build() {
    let quiet = Logger::root(slog::Discard, slog::o!());
    let ok = Server::builder()
        .logger(quiet.clone())
        .tool(echo("a"))
        .tool(echo("b"))
        .build();
    assert!(ok.is_ok());
    let err = Server::builder()
        .logger(quiet.clone())
        .tool(echo("a"))
        .tool(echo("a"))
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("`a`"), "{err}");
    let prompt = || {
        Prompt::new("p", "d", |_ctx, _args| async {
            Ok(crate::protocol::prompt::GetPromptResult {
                description: None,
                messages: Vec::new(),
            })
        })
    };
    let err = Server::builder()
        .logger(quiet)
        .prompt(prompt())
        .prompt(prompt())
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("prompt named `p`"), "{err}");
}

fn quiet() -> Logger {
    Logger::root(slog::Discard, slog::o!())
}

fn empty_prompt(name: &str) -> Prompt {
    Prompt::new(name, "d", |_ctx, _args| async {
        Ok(crate::protocol::prompt::GetPromptResult {
            description: None,
            messages: Vec::new(),
        })
    })
}

fn empty_template(uri_template: &str) -> Template {
    Template::new(uri_template, "t", |_ctx, _uri, _vars| async { Ok(vec![]) })
}

fn one(value: &'static str) -> impl Fn(&str, &HashMap<String, String>) -> Vec<String> {
    move |_, _| vec![value.to_owned()]
}

/// A small server: a tool, a resource, and a prompt whose argument completes.
fn server() -> Server {
    Server::builder()
        .info("doors", "1.0.0")
        .logger(quiet())
        .tool(echo("echo"))
        .resource(Resource::new("test://r", "r", |_ctx, uri| async move {
            Ok(vec![crate::protocol::resource::ResourceContents::text(
                uri, None, "x",
            )])
        }))
        .prompt(empty_prompt("p").complete_argument("a", one("apple")))
        .build()
        .expect("a valid server")
}

use std::collections::HashMap;
use std::io::BufRead;
use std::time::Duration;

use serde_json::{json, Value};

const MODERN: &str = "2026-07-28";

/// Run blocking client code off the System's thread (which runs the actors).
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("client code ran")
}

fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(5))
        .timeout_read(Duration::from_secs(5))
        .timeout_write(Duration::from_secs(5))
        .max_idle_connections(0)
        .build()
}

/// An answer: status, `Mcp-Session-Id`, the response with its body unread.
fn answer(r: Result<ureq::Response, ureq::Error>) -> (u16, Option<String>, ureq::Response) {
    let r = match r {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("no answer: {e}"),
    };
    (r.status(), r.header("mcp-session-id").map(str::to_owned), r)
}

/// `POST url` with a session-era body (and session).
fn post_session(
    url: &str,
    session: Option<&str>,
    body: &Value,
) -> (u16, Option<String>, ureq::Response) {
    let mut req = agent()
        .post(url)
        .set("Content-Type", "application/json")
        .set("Accept", "application/json, text/event-stream");
    if let Some(id) = session {
        req = req
            .set("Mcp-Session-Id", id)
            .set("MCP-Protocol-Version", "2025-11-25");
    }
    answer(req.send_string(&body.to_string()))
}

/// `POST url` with a 2026-07-28 request (its `_meta` and headers added).
fn post_modern(url: &str, id: u64, method: &str, params: Value) -> (u16, ureq::Response) {
    let mut params = params;
    params["_meta"] = json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
    });
    let body = json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params});
    let (status, _, r) = answer(
        agent()
            .post(url)
            .set("Content-Type", "application/json")
            .set("Accept", "application/json, text/event-stream")
            .set("MCP-Protocol-Version", MODERN)
            .set("Mcp-Method", method)
            .send_string(&body.to_string()),
    );
    (status, r)
}

fn json_of(r: ureq::Response) -> Value {
    let text = r.into_string().expect("a body");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn initialize_body() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {},
        "clientInfo": {"name": "t", "version": "1"}}})
}

/// The next SSE message with data on `lines`, parsed; `None` at the end or when
/// none came within 10 s (keep-alive comments do not count).
fn next_message(lines: &mut impl BufRead) -> Option<Value> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut data = String::new();
    loop {
        if std::time::Instant::now() > deadline {
            return None;
        }
        let mut line = String::new();
        if lines.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let line = line.trim_end();
        if let Some(d) = line.strip_prefix("data:") {
            data.push_str(d.trim_start());
        } else if line.is_empty() && !data.is_empty() {
            return serde_json::from_str(&data).ok();
        }
    }
}

async fn stopped_within(running: Running) -> Result<(), Error> {
    tokio::time::timeout(Duration::from_secs(15), running.stopped())
        .await
        .expect("stopped within 15 s")
}

#[test]
fn serves_on_a_listener_it_was_handed_and_stops_through_its_handle() {
    actix_rt::System::new().block_on(async {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let options = HttpOptions::from_listener(listener).unwrap();
        assert_eq!(options.bind, addr);
        let running = server().start(Transport::Http(options)).await.unwrap();
        assert_eq!(running.local_addr(), Some(addr));
        assert_eq!(
            running.admin_addr(),
            Some(addr),
            "/health on the MCP listener"
        );
        let url = format!("http://{addr}/mcp");
        let (status, session, init) = {
            let url = url.clone();
            blocking(move || post_session(&url, None, &initialize_body())).await
        };
        assert_eq!(status, 200);
        assert!(session.is_some(), "a session era session");
        let init = blocking(move || json_of(init)).await;
        assert_eq!(init["result"]["serverInfo"]["name"], "doors", "{init}");
        let discover = {
            let url = url.clone();
            blocking(move || {
                let (status, r) = post_modern(&url, 2, "server/discover", json!({}));
                (status, json_of(r))
            })
            .await
        };
        assert_eq!(discover.0, 200, "{}", discover.1);
        assert_eq!(discover.1["result"]["resultType"], "complete");
        // Stopped from elsewhere: a clone of the handle.
        let stop = running.shutdown_handle();
        actix_rt::spawn(async move { stop.shutdown() });
        stopped_within(running).await.expect("a clean stop");
        // Nothing listens there any more.
        assert!(
            std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(),
            "the listener is closed"
        );
    });
}

#[test]
fn start_reports_the_ports_it_bound_for_port_zero() {
    actix_rt::System::new().block_on(async {
        let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
        let mut options = HttpOptions::new(any);
        options.admin_bind = Some(any);
        let running = server().start(Transport::Http(options)).await.unwrap();
        let (mcp, admin) = (running.local_addr().unwrap(), running.admin_addr().unwrap());
        assert!(
            mcp.port() != 0 && admin.port() != 0 && mcp != admin,
            "{mcp} {admin}"
        );
        let health =
            blocking(move || answer(agent().get(&format!("http://{admin}/health/ready")).call()).0)
                .await;
        assert_eq!(health, 200);
        running.shutdown();
        running.shutdown();
        stopped_within(running).await.expect("a clean stop");
        // Binding an address in use fails at start, not later.
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let err = server()
            .start(Transport::Http(HttpOptions::new(
                taken.local_addr().unwrap(),
            )))
            .await
            .expect_err("in use");
        assert!(matches!(err, Error::Io(_)), "{err}");
    });
}

#[test]
fn mounts_into_an_application_app_beside_its_own_routes() {
    use actix_web::{web, App, HttpServer};
    actix_rt::System::new().block_on(async {
        let mcp = server()
            .mount(MountOptions::default().path("/api/mcp"))
            .await
            .unwrap();
        let routes = mcp.configure();
        let http = HttpServer::new(move || {
            App::new()
                .configure(routes.clone())
                .route("/hello", web::get().to(|| async { "hello" }))
        })
        .workers(2)
        .on_connect(mcp.on_connect())
        .disable_signals()
        .bind("127.0.0.1:0")
        .unwrap();
        let addr = http.addrs()[0];
        let http = http.run();
        let handle = http.handle();
        actix_rt::spawn(http);
        let get = move |path: &str| {
            let (status, _, r) = answer(agent().get(&format!("http://{addr}{path}")).call());
            (status, r.into_string().unwrap_or_default())
        };
        let url = format!("http://{addr}/api/mcp");
        let before = {
            let url = url.clone();
            blocking(move || {
                let hello = get("/hello");
                let ready = get("/health/ready").0;
                let elsewhere = get("/mcp").0;
                // Enough 2026-07-28 requests that both workers' stateless
                // sessions serve some.
                let discovered: Vec<Value> = (0..4)
                    .map(|id| json_of(post_modern(&url, id, "server/discover", json!({})).1))
                    .collect();
                let (status, session, _) = post_session(&url, None, &initialize_body());
                (hello, ready, elsewhere, discovered, status, session)
            })
            .await
        };
        let (hello, ready, elsewhere, discovered, status, session) = before;
        assert_eq!(hello, (200, "hello".to_owned()));
        assert_eq!(ready, 200);
        assert_eq!(elsewhere, 404, "MCP is at the path it was mounted at");
        for d in discovered {
            let info = &d["result"]["_meta"]["io.modelcontextprotocol/serverInfo"];
            assert_eq!(info["name"], "doors", "{d}");
        }
        assert_eq!(status, 200);
        let session = session.expect("a session");
        // A session-era call on the session.
        let call = {
            let url = url.clone();
            blocking(move || {
                let body = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                    "params": {"name": "echo", "arguments": {}}});
                let (status, _, r) = post_session(&url, Some(&session), &body);
                (status, r.into_string().unwrap_or_default())
            })
            .await
        };
        assert_eq!(call.0, 200, "{}", call.1);
        assert!(call.1.contains("\"text\":\"x\""), "{}", call.1);

        tokio::time::timeout(Duration::from_secs(15), mcp.shutdown())
            .await
            .expect("drained within 15 s")
            .expect("a clean shutdown");
        // Drained: not ready and no new sessions; the application still serves.
        let after = blocking(move || {
            let (status, _, _) = post_session(&url, None, &initialize_body());
            (get("/hello"), get("/health/ready").0, status)
        })
        .await;
        assert_eq!(after, ((200, "hello".to_owned()), 503, 503));
        handle.stop(true).await;
    });
}

#[test]
fn a_notifier_taken_before_serving_reaches_listeners() {
    actix_rt::System::new().block_on(async {
        let server = server();
        let notifier = server.notifier();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let options = HttpOptions::from_listener(listener).unwrap();
        let running = server.start(Transport::Http(options)).await.unwrap();
        let url = format!("http://{}/mcp", running.local_addr().unwrap());
        let told = blocking(move || {
            let filter = json!({"resourceSubscriptions": ["test://r"], "toolsListChanged": true});
            let (status, r) = post_modern(
                &url,
                7,
                "subscriptions/listen",
                json!({"notifications": filter}),
            );
            assert_eq!(status, 200);
            let mut lines = std::io::BufReader::new(r.into_reader());
            let ack = next_message(&mut lines).expect("the acknowledgement");
            // From outside any call, once the listen is acknowledged.
            notifier.resource_updated("test://not-listened-to");
            notifier.resource_updated("test://r");
            notifier.list_changed(Change::ToolsList);
            let first = next_message(&mut lines).expect("an update");
            let second = next_message(&mut lines).expect("a list change");
            (ack, first, second)
        })
        .await;
        assert_eq!(
            told.0["method"], "notifications/subscriptions/acknowledged",
            "{}",
            told.0
        );
        assert_eq!(
            told.1["method"], "notifications/resources/updated",
            "{}",
            told.1
        );
        assert_eq!(told.1["params"]["uri"], "test://r", "{}", told.1);
        assert_eq!(
            told.2["method"], "notifications/tools/list_changed",
            "{}",
            told.2
        );
        running.shutdown();
        stopped_within(running).await.expect("a clean stop");
    });
}

#[test]
fn completions_are_advertised_only_with_a_completer() {
    use crate::protocol::era::Era;
    let completions = |server: Server| {
        let service = server.service(false, None).expect("a service");
        (
            service
                .capabilities(Era::Legacy(crate::protocol::ProtocolVersion::V2025_11_25))
                .completions
                .is_some(),
            service.capabilities(Era::Modern).completions.is_some(),
        )
    };
    let plain = Server::builder()
        .logger(quiet())
        .prompt(empty_prompt("p").argument("a", "A", false))
        .template(empty_template("t://{x}"))
        .build()
        .unwrap();
    assert_eq!(completions(plain), (false, false));
    assert_eq!(completions(server()), (true, true));
    // A template's completer alone is enough, and it serves `ref/resource`.
    let template = Server::builder()
        .logger(quiet())
        .template(empty_template("t://{x}").complete_variable("x", one("xylophone")))
        .build()
        .unwrap();
    let service = template.service(false, None).unwrap();
    assert!(service
        .capabilities(Era::Legacy(crate::protocol::ProtocolVersion::V2025_11_25))
        .completions
        .is_some());
    let reference = crate::prompts::CompletionRef::Resource {
        uri: "t://{x}".into(),
    };
    let (values, total, more) = service
        .prompts
        .complete(&reference, "x", "", &HashMap::new());
    assert_eq!(
        (values, total, more),
        (vec!["xylophone".to_owned()], 1, false)
    );
}

#[test]
fn a_second_completer_for_one_argument_is_refused_at_build() {
    let refused = |builder: ServerBuilder| {
        let err = builder.logger(quiet()).build().expect_err("refused");
        assert!(err.to_string().contains("a completer for"), "{err}");
        err.to_string()
    };
    let e = refused(
        Server::builder().prompt(
            empty_prompt("p")
                .complete_argument("a", one("1"))
                .complete_argument("a", one("2")),
        ),
    );
    assert!(e.contains("ref/prompt p, argument a"), "{e}");
    let e = refused(
        Server::builder().template(
            empty_template("t://{x}")
                .complete_variable("x", one("1"))
                .complete_variable("x", one("2")),
        ),
    );
    assert!(e.contains("ref/resource t://{x}, variable x"), "{e}");
    // Registered by reference (as the binary's fixture sets do) beside one
    // attached to the template.
    let mut builder =
        Server::builder().template(empty_template("t://{x}").complete_variable("x", one("1")));
    builder.registries().prompts.completer(
        crate::prompts::CompletionRef::Resource {
            uri: "t://{x}".into(),
        },
        "x",
        one("2"),
    );
    refused(builder);
    let mut builder = Server::builder().prompt(empty_prompt("p").complete_argument("a", one("1")));
    builder.registries().prompts.completer(
        crate::prompts::CompletionRef::Prompt { name: "p".into() },
        "a",
        one("2"),
    );
    refused(builder);
    // Different arguments, prompts and templates are no duplicates.
    assert!(Server::builder()
        .logger(quiet())
        .prompt(
            empty_prompt("p")
                .complete_argument("a", one("1"))
                .complete_argument("b", one("2"))
        )
        .prompt(empty_prompt("q").complete_argument("a", one("3")))
        .template(empty_template("t://{x}").complete_variable("x", one("4")))
        .template(empty_template("u://{x}").complete_variable("x", one("5")))
        .build()
        .is_ok());
}

#[test]
fn limits_out_of_range_are_refused_at_build() {
    let quiet = Logger::root(slog::Discard, slog::o!());
    let threads = Limits {
        blocking_threads: usize::MAX,
        ..Limits::default()
    };
    let budget = Limits {
        max_body_bytes_total: Limits::default().max_message_bytes - 1,
        ..Limits::default()
    };
    for (limits, key) in [
        (threads, "limits.blocking_threads"),
        (budget, "limits.max_body_bytes_total"),
    ] {
        let err = Server::builder()
            .logger(quiet.clone())
            .limits(limits)
            .build()
            .unwrap_err();
        assert!(err.to_string().contains(key), "{err}");
    }
}
