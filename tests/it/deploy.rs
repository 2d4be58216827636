//! The `deploy/` files, checked against the real binary: nginx session affinity across
//! two instances, TLS and the token in front of one (`nginx-tls.conf`), the systemd
//! unit and the Raspberry Pi drop-in, the Pi profile's memory bound, the PM2 file (read
//! by node, its command run), the Dockerfile's inputs, `emcee healthcheck`, and that
//! every metric the Grafana dashboard and the alert rules name is served (their
//! PromQL parsed by promtool). nginx and promtool are installed from Debian's packages
//! when missing (the test needs root; the packages' services are neither started nor
//! enabled: see `install_debian`). `.ci/check-deploy` runs the checks that need tools
//! from other registries (hadolint, the Compose schema) and `promtool test rules`.

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

/// Install a Debian package for its binaries only: its system service is neither
/// started (a `policy-rc.d` answering 101, "action forbidden", while apt runs, unless
/// the machine has one already) nor left enabled at boot (disabled afterwards).
fn install_debian(package: &str, service: &str) {
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
            .args(["install", "-y", "-qq", "--no-install-recommends", package])
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
        .args(["disable", "--quiet", service])
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
        install_debian("nginx-light", "nginx.service");
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

/// `emcee config --config deploy/FILE` as JSON: the configuration in effect.
fn effective_config(file: &str) -> serde_json::Value {
    let path = deploy(file);
    let (status, stdout, stderr) = run(&["config", "--config", path.to_str().unwrap()], &[]);
    assert!(status.success(), "{file}: {stderr}");
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{file}: {e}: {stdout}"))
}

fn number(v: &serde_json::Value, what: &str) -> u64 {
    v.as_u64()
        .unwrap_or_else(|| panic!("{what} is not a number: {v}"))
}

/// The values of `key=` lines in a systemd unit or drop-in.
fn unit_values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .collect()
}

/// One `key=` value of a unit, which must be there once.
fn unit_value<'a>(unit: &'a str, key: &str) -> &'a str {
    match unit_values(unit, key)[..] {
        [one] => one,
        ref other => panic!("{key}= must be set once, found {other:?}"),
    }
}

/// A systemd time span written in seconds (`20s`), in milliseconds.
fn span_ms(value: &str) -> u64 {
    let s = value
        .strip_suffix('s')
        .unwrap_or_else(|| panic!("{value}: write it in seconds"));
    s.parse::<u64>().expect("seconds") * 1000
}

/// A systemd size with a binary suffix (`48M`), in bytes.
fn size_bytes(value: &str) -> u64 {
    let (n, unit) = value.split_at(value.len() - 1);
    let n: u64 = n.parse().unwrap_or_else(|_| panic!("{value}: a size"));
    n * match unit {
        "K" => 1 << 10,
        "M" => 1 << 20,
        "G" => 1 << 30,
        _ => panic!("{value}: K, M or G"),
    }
}

/// The stop budget of a configuration: the drain grace, 2 s for the connections
/// still open, the final flush (README, "Shutdown").
fn stop_budget_ms(config: &serde_json::Value) -> u64 {
    number(&config["limits"]["shutdown_grace_ms"], "shutdown_grace_ms")
        + 2000
        + number(&config["storage"]["flush_timeout_ms"], "flush_timeout_ms")
}

/// Run `systemd-analyze verify` on `unit` (the binary path pointed at the one under
/// test), with `drop_in` as `emcee.service.d/DROP_IN` beside it.
fn verify_unit(unit: &str, drop_in: Option<(&str, &str)>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("emcee.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/emcee", bin())).unwrap();
    if let Some((name, text)) = drop_in {
        let d = dir.path().join("emcee.service.d");
        std::fs::create_dir(&d).unwrap();
        std::fs::write(d.join(name), text).unwrap();
    }
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .env("SYSTEMD_UNIT_PATH", format!("{}:", dir.path().display()))
        .output()
        .expect("systemd-analyze (Debian's systemd package)");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && stderr.trim().is_empty(),
        "systemd-analyze verify:\n{stderr}"
    );
}

#[test]
fn the_unit_documents_an_installed_file_and_stops_within_its_budget() {
    let unit = std::fs::read_to_string(deploy("emcee.service")).unwrap();
    let doc = unit_value(&unit, "Documentation");
    let installed = doc
        .strip_prefix("file://")
        .unwrap_or_else(|| panic!("Documentation={doc}: a file the guide installs"));
    let guide = std::fs::read_to_string(deploy("README.md")).expect("deploy/README.md");
    assert!(
        guide.lines().any(|l| l.trim_start().starts_with("install ")
            && l.contains("deploy/README.md")
            && l.trim_end().ends_with(installed)),
        "deploy/README.md must install itself as {installed} (the unit's Documentation=)"
    );
    let config = effective_config("emcee.toml");
    let stop = span_ms(unit_value(&unit, "TimeoutStopSec"));
    assert!(
        stop > stop_budget_ms(&config),
        "TimeoutStopSec {stop} ms must exceed grace + 2 s + flush ({} ms)",
        stop_budget_ms(&config)
    );
}

#[test]
fn the_pi_profile_fits_its_drop_in() {
    let c = effective_config("pi.toml");
    let (l, h, st) = (&c["limits"], &c["http"], &c["storage"]);
    let n = |v: &serde_json::Value| number(v, "a limit");
    assert_eq!(n(&h["workers"]), 1, "one worker");
    let drop_in = std::fs::read_to_string(deploy("pi.conf")).expect("deploy/pi.conf");

    // SECURITY.md's bound on what clients can make emcee hold, with pi.toml's limits.
    let kib = 1024;
    let sessions = n(&l["max_sessions"])
        * (12 * kib
            + 2 * n(&l["max_session_bytes"])
            + n(&l["max_subscriptions"]) * (n(&l["max_uri_bytes"]) + 128));
    let bound = 7 * kib * kib
        + n(&st["cache_capacity_bytes"])
        + sessions
        + n(&l["max_body_bytes_total"])
        + n(&l["max_in_flight_total"]) * n(&l["max_message_bytes"])
        + n(&l["max_pending_answer_bytes"])
        + n(&h["max_connections"]) * 112 * kib
        + n(&l["max_tasks"]) * 300;
    let max = size_bytes(unit_value(&drop_in, "MemoryMax"));
    assert!(
        bound <= max,
        "pi.toml lets clients hold {bound} bytes, over MemoryMax ({max})"
    );
    assert!(n(&l["max_sessions"]) >= 1500, "room for the measured 1,500");

    // The unit's TasksMax terms (deploy/emcee.service): 6 fixed threads, the workers,
    // sled's I/O pool (at most 128), the blocking pool, one storage thread per
    // runtime, and one command-tool process per call in flight.
    let workers = n(&h["workers"]);
    let tasks = 6
        + workers
        + 128
        + n(&l["blocking_threads"])
        + (workers + 1)
        + n(&l["max_in_flight_total"]);
    let tasks_max: u64 = unit_value(&drop_in, "TasksMax").parse().unwrap();
    assert!(
        tasks <= tasks_max,
        "{tasks} tasks, over TasksMax {tasks_max}"
    );

    let stop = span_ms(unit_value(&drop_in, "TimeoutStopSec"));
    assert!(stop > stop_budget_ms(&c), "TimeoutStopSec {stop} ms");

    let unit = std::fs::read_to_string(deploy("emcee.service")).unwrap();
    verify_unit(&unit, Some(("pi.conf", &drop_in)));
}

/// Every key PM2 5 knows in an app of an ecosystem file (its `lib/API/schema.json`,
/// names and aliases): a key outside it is ignored by PM2, so a typo would be silent.
const PM2_KEYS: &[&str] = &[
    "script",
    "exec",
    "name",
    "name_prefix",
    "filter_env",
    "namespace",
    "install_url",
    "cwd",
    "args",
    "exec_interpreter",
    "interpreter",
    "node_args",
    "interpreterArgs",
    "interpreter_args",
    "out_file",
    "out",
    "output",
    "out_log",
    "error_file",
    "error",
    "err",
    "err_file",
    "err_log",
    "log_file",
    "log",
    "disable_logs",
    "log_type",
    "log_date_format",
    "time",
    "env",
    "max_memory_restart",
    "pid_file",
    "pid",
    "restart_delay",
    "exp_backoff_restart_delay",
    "source_map_support",
    "disable_source_map_support",
    "wait_ready",
    "instances",
    "kill_timeout",
    "shutdown_with_message",
    "listen_timeout",
    "cron_restart",
    "cron",
    "merge_logs",
    "combine_logs",
    "vizion",
    "autorestart",
    "watch_delay",
    "watch",
    "ignore_watch",
    "watch_options",
    "min_uptime",
    "max_restarts",
    "execute_command",
    "exec_mode",
    "force",
    "append_env_to_name",
    "post_update",
    "trace",
    "disable_trace",
    "v8",
    "event_loop_inspector",
    "deep_monitoring",
    "increment_var",
    "instance_var",
    "pmx",
    "automation",
    "treekill",
    "port",
    "username",
    "uid",
    "user",
    "gid",
    "windowsHide",
    "kill_retry_time",
    "write",
    "io",
];

#[test]
fn the_pm2_file_runs_the_units_command_and_stops_within_kill_timeout() {
    let file = deploy("ecosystem.config.js");
    let out = Command::new("node")
        .args([
            "-e",
            "process.stdout.write(JSON.stringify(require(process.argv[1])))",
        ])
        .arg(&file)
        .output()
        .expect("node (Debian's nodejs package)");
    assert!(
        out.status.success(),
        "node cannot load the file: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let eco: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let apps = eco["apps"].as_array().expect("apps");
    assert_eq!(apps.len(), 1, "one app: {eco}");
    let app = &apps[0];
    for key in app.as_object().unwrap().keys() {
        assert!(
            PM2_KEYS.contains(&key.as_str()) || key.starts_with("env_"),
            "{key} is not a PM2 key"
        );
    }
    assert_eq!(app["interpreter"], "none", "a binary, not a Node.js script");
    assert_eq!(app["exec_mode"], "fork");
    assert_eq!(app["instances"], 1, "one process per data dir");
    assert_eq!(app["autorestart"], true);
    assert!(number(&app["exp_backoff_restart_delay"], "backoff") > 0);

    // The command is the systemd unit's.
    let unit = std::fs::read_to_string(deploy("emcee.service")).unwrap();
    let exec: Vec<&str> = unit_value(&unit, "ExecStart").split_whitespace().collect();
    let args: Vec<&str> = app["args"]
        .as_array()
        .expect("args as a list")
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(app["script"], exec[0]);
    assert_eq!(args, exec[1..], "the unit's arguments");

    // kill_timeout covers the drain of the configuration it names.
    let config = effective_config("emcee.toml");
    assert_eq!(args[1..], ["--config", "/etc/emcee/emcee.toml"]);
    let kill = number(&app["kill_timeout"], "kill_timeout");
    assert!(
        kill > stop_budget_ms(&config),
        "kill_timeout {kill} ms must exceed grace + 2 s + flush ({} ms)",
        stop_budget_ms(&config)
    );

    // Run that command as PM2 would (its env, its cwd; the shipped config, free
    // ports), and stop it as PM2 does: SIGINT, which must end it in time, exit 0.
    let dir = tempfile::tempdir().unwrap();
    let (port, admin) = (free_port(), free_port());
    let mut cmd = crate::harness::emcee_command();
    cmd.args(&args[..1])
        .args(["--config", deploy("emcee.toml").to_str().unwrap()])
        .args(["--bind", &format!("127.0.0.1:{port}")])
        .args(["--admin-bind", &format!("127.0.0.1:{admin}")])
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in app["env"].as_object().expect("env") {
        assert!(k.starts_with("EMCEE_"), "{k}");
        let v = v.as_str().unwrap();
        let v = if k == "EMCEE_DATA_DIR" {
            assert_eq!(Some(v), app["cwd"].as_str(), "cwd is the data dir");
            dir.path().to_str().unwrap()
        } else {
            v
        };
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start emcee");
    let health = format!("127.0.0.1:{admin}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while run(&["healthcheck", "--bind", &health], &[]).0.code() != Some(0) {
        assert!(Instant::now() < deadline, "not healthy");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        dir.path().read_dir().unwrap().next().is_some(),
        "EMCEE_DATA_DIR is where the data goes"
    );
    let sent = Instant::now();
    assert!(Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap()
        .success());
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            sent.elapsed() < Duration::from_millis(kill),
            "still running after kill_timeout"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "SIGINT is a clean stop");
}

/// Spawn nginx with `conf` (prefix `dir`) and wait until it listens on `port`.
fn spawn_nginx(dir: &Path, conf: &Path, port: u16) -> Nginx {
    let child = Command::new(nginx_binary())
        .arg("-p")
        .arg(dir)
        .arg("-c")
        .arg(conf)
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

/// `curl -sk` (nginx-tls.conf speaks TLS; the tests' HTTP client does not): the
/// status, the headers and the body.
fn curl(args: &[&str]) -> (u16, String) {
    let out = Command::new("curl")
        .args(["-sk", "-i", "--max-time", "10"])
        .args(args)
        .output()
        .expect("curl (Debian's curl package)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no HTTP status from curl {args:?}: {text}"));
    (status, text)
}

#[test]
fn the_tls_proxy_serves_mcp_to_clients_with_a_token_only() {
    let s = Server::start(&[]);
    let upstream = s
        .url()
        .trim_start_matches("http://")
        .trim_end_matches("/mcp")
        .to_owned();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // A self-signed certificate for the test, where the guide uses Let's Encrypt's.
    let made = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
        ])
        .args(["-subj", "/CN=localhost", "-keyout"])
        .arg(d.join("key.pem"))
        .arg("-out")
        .arg(d.join("cert.pem"))
        .stderr(Stdio::null())
        .status()
        .expect("openssl");
    assert!(made.success());
    let (tls, plain) = (free_port(), free_port());
    // As the guide makes them: `openssl rand -hex 32`.
    let token = "0123456789abcdef".repeat(4);
    let token = token.as_str();
    let shipped = std::fs::read_to_string(deploy("nginx-tls.conf")).unwrap();
    for needle in [
        "server 127.0.0.1:8080;",
        "listen 443 ssl;",
        "listen 80;",
        "/etc/letsencrypt/live/mcp.example.com/fullchain.pem",
        "/etc/letsencrypt/live/mcp.example.com/privkey.pem",
        "CHANGE-ME-TOKEN-FOR-CLIENT-1",
    ] {
        assert!(shipped.contains(needle), "{needle}");
    }
    let site = shipped
        .replace("server 127.0.0.1:8080;", &format!("server {upstream};"))
        .replace("listen 443 ssl;", &format!("listen 127.0.0.1:{tls} ssl;"))
        .replace("listen 80;", &format!("listen 127.0.0.1:{plain};"))
        .replace(
            "/etc/letsencrypt/live/mcp.example.com/fullchain.pem",
            d.join("cert.pem").to_str().unwrap(),
        )
        .replace(
            "/etc/letsencrypt/live/mcp.example.com/privkey.pem",
            d.join("key.pem").to_str().unwrap(),
        )
        .replace("CHANGE-ME-TOKEN-FOR-CLIENT-1", token);
    std::fs::write(d.join("emcee.conf"), site).unwrap();
    // The file is an http-context include, as in /etc/nginx/conf.d/.
    let temp = |name: &str| d.join(name).display().to_string();
    let main = format!(
        "pid {};\nerror_log stderr warn;\nevents {{}}\nhttp {{\n    access_log off;\n    \
         client_body_temp_path {};\n    proxy_temp_path {};\n    fastcgi_temp_path {};\n    \
         uwsgi_temp_path {};\n    scgi_temp_path {};\n    include {};\n}}\n",
        temp("nginx.pid"),
        temp("body"),
        temp("proxy"),
        temp("fastcgi"),
        temp("uwsgi"),
        temp("scgi"),
        temp("emcee.conf"),
    );
    let conf = d.join("nginx.conf");
    std::fs::write(&conf, main).unwrap();
    let checked = Command::new(nginx_binary())
        .arg("-t")
        .arg("-p")
        .arg(d)
        .arg("-c")
        .arg(&conf)
        .output()
        .unwrap();
    assert!(
        checked.status.success(),
        "nginx -t: {}",
        String::from_utf8_lossy(&checked.stderr)
    );
    let _nginx = spawn_nginx(d, &conf, tls);

    let url = format!("https://127.0.0.1:{tls}/mcp");
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "0"}}})
    .to_string();
    let post = |auth: Option<&str>| {
        let bearer = auth.map(|t| format!("Authorization: Bearer {t}"));
        let mut args = vec![
            url.as_str(),
            "-H",
            "Content-Type: application/json",
            "-H",
            "Accept: application/json, text/event-stream",
            "-d",
            init.as_str(),
        ];
        if let Some(b) = &bearer {
            args.extend(["-H", b.as_str()]);
        }
        curl(&args)
    };
    let (status, text) = post(None);
    assert_eq!(status, 401, "no token: {text}");
    assert!(text
        .to_ascii_lowercase()
        .contains("www-authenticate: bearer"));
    let (status, text) = post(Some("not-the-token"));
    assert_eq!(status, 401, "a wrong token: {text}");
    let (status, text) = post(Some(token));
    assert_eq!(status, 200, "the token: {text}");
    assert!(
        text.to_ascii_lowercase().contains("mcp-session-id:"),
        "{text}"
    );
    assert!(
        text.contains("\"protocolVersion\":\"2025-11-25\""),
        "{text}"
    );
    // Nothing but /mcp, and plain HTTP only redirects.
    let (status, _) = curl(&[&format!("https://127.0.0.1:{tls}/metrics")]);
    assert_eq!(status, 404);
    let (status, text) = curl(&[&format!("http://127.0.0.1:{plain}/mcp")]);
    assert_eq!(status, 301, "{text}");
}

/// The metric names (`mcp_*`, `process_*`) in `text`.
fn metric_names(text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    let bytes = text.as_bytes();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    for prefix in ["mcp_", "process_"] {
        for (at, _) in text.match_indices(prefix) {
            if at > 0 && word(bytes[at - 1]) {
                continue;
            }
            let end = text[at..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(text.len(), |n| at + n);
            names.insert(text[at..end].to_owned());
        }
    }
    names
}

/// Every `expr` of the dashboard's panels, Grafana's variables replaced by values
/// (`$__rate_interval` 5m, `$job` emcee, `$instance` any).
fn dashboard_exprs(dashboard: &serde_json::Value) -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v) {
                        ("expr", serde_json::Value::String(e)) => out.push(
                            e.replace("$__rate_interval", "5m")
                                .replace("$job", "emcee")
                                .replace("$instance", ".*"),
                        ),
                        _ => walk(v, out),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(&dashboard["panels"], &mut out);
    out
}

fn promtool() -> &'static str {
    if !Path::new("/usr/bin/promtool").is_file() {
        install_debian("prometheus", "prometheus.service");
    }
    assert!(
        Path::new("/usr/bin/promtool").is_file(),
        "promtool is needed: apt-get install prometheus"
    );
    "/usr/bin/promtool"
}

#[test]
fn every_metric_the_dashboard_and_the_alert_rules_name_is_served() {
    let s = Server::start(&[]);
    // Label sets appear once used: a call, a tool error, a refusal.
    let session = s.session();
    s.call_ok(&session, 2, "echo", json!({"text": "x"}));
    let missing = s.request(
        &session,
        3,
        "tools/call",
        json!({"name": "kv_get", "arguments": {"key": "missing"}}),
    );
    assert_eq!(missing["result"]["isError"], true, "{missing}");
    let refused = s.send(
        "POST",
        &[
            ("Host", "evil.example"),
            ("Content-Type", "application/json"),
        ],
        Some(b"{}"),
    );
    assert_eq!(refused.status, 403);
    let metrics = s.get("/metrics").body;
    let mut served = std::collections::BTreeSet::new();
    let mut labels = std::collections::BTreeSet::new();
    for line in metrics.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            served.extend(rest.split_whitespace().next().map(str::to_owned));
        } else if !line.starts_with('#') && !line.is_empty() {
            let name = line.split(['{', ' ']).next().unwrap();
            served.insert(name.to_owned());
            if let Some(set) = line.split_once('{').and_then(|(_, r)| r.split_once('}')) {
                for pair in set.0.split(',') {
                    labels.extend(pair.split('=').next().map(str::to_owned));
                }
            }
        }
    }

    let dashboard: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(deploy("grafana/emcee.json")).expect("deploy/grafana/emcee.json"),
    )
    .expect("the dashboard is JSON");
    let exprs = dashboard_exprs(&dashboard);
    assert!(exprs.len() >= 10, "{exprs:?}");
    let rules = std::fs::read_to_string(deploy("prometheus/emcee-rules.yml")).unwrap();
    for (file, text) in [
        ("grafana/emcee.json", exprs.join("\n")),
        ("prometheus/emcee-rules.yml", rules.clone()),
    ] {
        let names = metric_names(&text);
        assert!(names.len() >= 5, "{file}: {names:?}");
        for name in &names {
            assert!(
                served.contains(name),
                "{file} names {name}, which /metrics does not serve:\n{metrics}"
            );
        }
        // Every label an aggregation keeps is one emcee sets or Prometheus adds.
        for (at, _) in text.match_indices(" by (") {
            let list = &text[at + 5..];
            let list = &list[..list.find(')').unwrap()];
            for label in list.split(',').map(str::trim) {
                assert!(
                    labels.contains(label) || ["le", "job", "instance"].contains(&label),
                    "{file} groups by {label}, a label no emcee metric has"
                );
            }
        }
    }

    // The scrape configuration reaches the shipped configuration's admin listener.
    let scrape = std::fs::read_to_string(deploy("prometheus/prometheus.yml")).unwrap();
    let admin = effective_config("emcee.toml")["admin_bind"]
        .as_str()
        .expect("deploy/emcee.toml has an admin listener")
        .to_owned();
    assert!(
        scrape.contains(&format!("targets: [\"{admin}\"]")) && scrape.contains("job_name: emcee"),
        "prometheus.yml must scrape job emcee at {admin}"
    );

    // The dashboard's PromQL parses: promtool checks it as recording rules.
    let dir = tempfile::tempdir().unwrap();
    let mut file = String::from("groups:\n  - name: dashboard\n    rules:\n");
    for (i, e) in exprs.iter().enumerate() {
        file.push_str(&format!(
            "      - record: dashboard:panel_{i}\n        expr: {}\n",
            serde_json::Value::String(e.clone())
        ));
    }
    let path = dir.path().join("dashboard-rules.yml");
    std::fs::write(&path, file).unwrap();
    let out = Command::new(promtool())
        .args(["check", "rules"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the dashboard's queries: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
