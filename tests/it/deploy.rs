//! The `deploy/` files, checked against the real binary: nginx session affinity across
//! two instances, the systemd unit, the Dockerfile's inputs, and `emcee healthcheck`.
//! nginx is installed from Debian's packages when missing (the test needs root; the
//! package's service is neither started nor enabled: see `install_nginx`).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{bin, run, text, Server};

pub(crate) fn deploy(file: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("deploy")
        .join(file)
}

/// Install nginx-light for its binary only: its system service is neither started
/// (a `policy-rc.d` answering 101, "action forbidden", while apt runs, unless the
/// machine has one already) nor left enabled at boot (disabled afterwards).
fn install_nginx() {
    let policy = Path::new("/usr/sbin/policy-rc.d");
    let ours = !policy.exists() && {
        use std::os::unix::fs::PermissionsExt;
        std::fs::write(
            policy,
            "#!/bin/sh\n# emcee's tests: start no service\nexit 101\n",
        )
        .is_ok()
            && std::fs::set_permissions(policy, std::fs::Permissions::from_mode(0o755)).is_ok()
    };
    let install = || {
        Command::new("apt-get")
            .args([
                "install",
                "-y",
                "-qq",
                "--no-install-recommends",
                "nginx-light",
            ])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    if !install() {
        let _ = Command::new("apt-get").args(["update", "-qq"]).status();
        install();
    }
    // Best effort: without systemd (a container) there is nothing to disable.
    let _ = Command::new("systemctl")
        .args(["disable", "--quiet", "nginx.service"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
    if ours {
        let _ = std::fs::remove_file(policy);
    }
}

fn nginx_binary() -> String {
    let found = |p: &str| Path::new(p).is_file();
    if !found("/usr/sbin/nginx") {
        install_nginx();
    }
    assert!(
        found("/usr/sbin/nginx"),
        "nginx is needed: apt-get install nginx-light"
    );
    "/usr/sbin/nginx".to_owned()
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub(crate) struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: the master stops its workers too (SIGKILL would orphan them).
        let _ = Command::new("kill").arg(self.0.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Run deploy/nginx.conf with its upstreams pointed at `a` and `b` and its listener
/// at `port`, all else as shipped.
fn start_nginx(dir: &Path, a: &str, b: &str, port: u16) -> Nginx {
    let shipped = std::fs::read_to_string(deploy("nginx.conf")).expect("deploy/nginx.conf");
    assert!(shipped.contains("emcee-a:8080"));
    let conf = shipped
        .replace("emcee-a:8080", a)
        .replace("emcee-b:8080", b);
    run_nginx(dir, &conf, port)
}

/// Run the nginx configuration `conf` (a shipped one, its upstreams already
/// pointed at test servers) in `dir`, listening on 127.0.0.1:`port` instead of
/// 8080, writing its pid and temporary files in `dir` and its errors to stderr.
pub(crate) fn run_nginx(dir: &Path, conf: &str, port: u16) -> Nginx {
    assert!(conf.contains("listen 8080;"));
    let temp = |name: &str| format!("{}/{name}", dir.display());
    let conf = conf
        .replace("listen 8080;", &format!("listen 127.0.0.1:{port};"))
        .replace("worker_processes auto;", "worker_processes 1;\npid nginx.pid;\nerror_log stderr warn;")
        .replace(
            "http {",
            &format!(
                "http {{\n    access_log off;\n    client_body_temp_path {};\n    proxy_temp_path {};\n    \
                 fastcgi_temp_path {};\n    uwsgi_temp_path {};\n    scgi_temp_path {};",
                temp("body"),
                temp("proxy"),
                temp("fastcgi"),
                temp("uwsgi"),
                temp("scgi")
            ),
        );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).expect("write nginx.conf");
    let child = Command::new(nginx_binary())
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(&path)
        .args(["-g", "daemon off;"])
        .stdin(Stdio::null())
        .spawn()
        .expect("start nginx");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nginx did not listen on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
    Nginx(child)
}

fn post(
    url: &str,
    session: Option<&str>,
    body: serde_json::Value,
) -> (u16, Option<String>, serde_json::Value) {
    let session: Vec<(&str, &str)> = session
        .map(|id| ("mcp-session-id", id))
        .into_iter()
        .collect();
    post_with(url, &session, body)
}

/// POST `body` with `headers` besides the content type and accept ones.
fn post_with(
    url: &str,
    headers: &[(&str, &str)],
    body: serde_json::Value,
) -> (u16, Option<String>, serde_json::Value) {
    let mut req = ureq::post(url)
        .set("content-type", "application/json")
        .set("accept", "application/json, text/event-stream");
    for (name, value) in headers {
        req = req.set(name, value);
    }
    let resp = match req.send_string(&body.to_string()) {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("POST {url}: {e}"),
    };
    let status = resp.status();
    let id = resp.header("mcp-session-id").map(str::to_owned);
    let text = resp.into_string().expect("body");
    (
        status,
        id,
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null),
    )
}

#[test]
fn nginx_routes_each_session_to_the_instance_that_minted_it() {
    let a = Server::start(&["--instance-id", "a"]);
    let b = Server::start(&["--instance-id", "b"]);
    let addr = |s: &Server| {
        s.url()
            .trim_start_matches("http://")
            .trim_end_matches("/mcp")
            .to_owned()
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _nginx = start_nginx(dir.path(), &addr(&a), &addr(&b), port);
    let url = format!("http://127.0.0.1:{port}/mcp");

    let init = json!({"jsonrpc": "2.0", "id": 0, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}});
    let mut sessions = Vec::new();
    for _ in 0..6 {
        let (status, id, _) = post(&url, None, init.clone());
        assert_eq!(status, 200);
        sessions.push(id.expect("a session id through the proxy"));
    }
    assert!(
        sessions.iter().any(|s| s.starts_with("a-")),
        "round-robin reaches a: {sessions:?}"
    );
    assert!(
        sessions.iter().any(|s| s.starts_with("b-")),
        "round-robin reaches b: {sessions:?}"
    );
    for (i, id) in sessions.iter().enumerate() {
        for n in 0..3 {
            let call = json!({"jsonrpc": "2.0", "id": n + 1, "method": "tools/call",
                "params": {"name": "echo", "arguments": {"text": format!("{i}/{n}")}}});
            let (status, _, body) = post(&url, Some(id), call);
            assert_eq!(status, 200, "session {id} must reach its instance: {body}");
            assert_eq!(text(&body["result"]), format!("{i}/{n}"));
        }
    }
}

#[test]
fn the_systemd_unit_verifies() {
    let unit = std::fs::read_to_string(deploy("emcee.service")).expect("deploy/emcee.service");
    for needle in [
        "Type=notify",
        "WatchdogSec=",
        "StateDirectory=emcee",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "MemoryMax=",
    ] {
        assert!(unit.contains(needle), "{needle} missing from the unit");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("emcee.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/emcee", bin())).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .expect("systemd-analyze (Debian's systemd package)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify:\n{stderr}"
    );
}

#[test]
fn the_shipped_configs_are_valid_and_the_dockerfile_inputs_exist() {
    for file in ["emcee.toml", "docker.toml"] {
        let path = deploy(file);
        let (status, stdout, stderr) = run(&["config", "--config", path.to_str().unwrap()], &[]);
        assert!(status.success(), "{file}: {stderr}");
        assert!(stdout.contains("\"bind\""), "{stdout}");
    }
    let dockerfile = std::fs::read_to_string(deploy("Dockerfile")).unwrap();
    assert!(
        dockerfile.contains("USER 10001") && dockerfile.contains("HEALTHCHECK"),
        "non-root, with a health check"
    );
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for line in dockerfile
        .lines()
        .filter(|l| l.starts_with("COPY ") && !l.contains("--from"))
    {
        let parts: Vec<&str> = line.split_whitespace().collect();
        for src in &parts[1..parts.len() - 1] {
            assert!(
                root.join(src).exists(),
                "Dockerfile copies {src}, which does not exist"
            );
        }
    }
}

#[test]
fn healthcheck_exits_0_when_healthy_and_1_when_unreachable() {
    let s = Server::start(&[]);
    let bind = s
        .url()
        .trim_start_matches("http://")
        .trim_end_matches("/mcp")
        .to_owned();
    let (status, _, stderr) = run(&["healthcheck", "--bind", &bind], &[]);
    assert_eq!(status.code(), Some(0), "{stderr}");
    drop(s);
    let (status, _, stderr) = run(&["healthcheck", "--bind", &bind], &[]);
    assert_eq!(status.code(), Some(1));
    assert!(stderr.contains("/health"), "{stderr}");
}

/// A 2026-07-28 `tools/call` through the proxy: no session id, so round-robin.
fn post_modern(url: &str, id: u64, text: &str) -> (u16, serde_json::Value) {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": "echo", "arguments": {"text": text},
            "_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                "io.modelcontextprotocol/clientCapabilities": {}}}});
    let headers = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "echo"),
    ];
    let (status, _, answer) = post_with(url, &headers, body);
    (status, answer)
}

#[test]
fn nginx_spreads_sessionless_requests_over_every_instance() {
    let a = Server::start(&["--instance-id", "a"]);
    let b = Server::start(&["--instance-id", "b"]);
    let addr = |s: &Server| {
        s.url()
            .trim_start_matches("http://")
            .trim_end_matches("/mcp")
            .to_owned()
    };
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _nginx = start_nginx(dir.path(), &addr(&a), &addr(&b), port);
    let url = format!("http://127.0.0.1:{port}/mcp");
    for i in 0..8 {
        let (status, body) = post_modern(&url, i, &format!("m{i}"));
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["result"]["resultType"], "complete", "{body}");
        assert_eq!(text(&body["result"]), format!("m{i}"));
    }
    // Any instance serves any 2026-07-28 request: both served some.
    let served = |s: &Server| {
        let metrics = s.get("/metrics").body;
        metrics
            .lines()
            .find_map(|l| {
                l.strip_prefix("mcp_requests_total{method=\"tools/call\",outcome=\"ok\"} ")
                    .and_then(|n| n.trim().parse::<u64>().ok())
            })
            .unwrap_or(0)
    };
    let (on_a, on_b) = (served(&a), served(&b));
    assert_eq!(on_a + on_b, 8);
    assert!(on_a > 0 && on_b > 0, "round-robin: a {on_a}, b {on_b}");
}
