//! Interoperability: the official MCP TypeScript SDK (a real third-party client, from
//! npm) drives `emcee stdio` through `tests/clients/stdio-client.mjs`, and `emcee serve`
//! (Streamable HTTP) through `tests/clients/http-client.mjs`, both on the session era
//! (SDK v1, `@modelcontextprotocol/sdk`). The SDK v2 client (`@modelcontextprotocol/client`),
//! pinned to protocol revision 2026-07-28, drives both transports through
//! `tests/clients/modern-client.mjs`.
//!
//! Needs Node.js (>= 20, for the v2 client) and npm on PATH. If the SDKs are not installed
//! yet, the test installs them itself with `npm ci` from the committed `package-lock.json`.
//! A missing `node` or `npm` is a test failure, never a silent skip.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use crate::harness::{bin, describe, drain, scrub_env, Server};

/// Serializes `npm ci` if several tests in this binary need `tests/clients`.
static NPM_INSTALL: Mutex<()> = Mutex::new(());

/// Upper bound for the whole client run (the script has its own 30 s timeout).
const CLIENT_TIMEOUT: Duration = Duration::from_secs(90);

fn clients_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("clients")
}

fn npm_program() -> &'static str {
    if cfg!(windows) {
        "npm.cmd"
    } else {
        "npm"
    }
}

/// The npm packages the client scripts import (SDK v1 and the v2 client).
const SDK_PACKAGES: [&str; 2] = ["sdk", "client"];

/// Install the SDKs into `tests/clients/node_modules` unless they are already there.
fn ensure_sdk_installed(dir: &Path) {
    let _guard = NPM_INSTALL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let scope = dir.join("node_modules").join("@modelcontextprotocol");
    let installed = |name: &str| scope.join(name).join("package.json").is_file();
    if SDK_PACKAGES.iter().all(|name| installed(name)) {
        return;
    }
    let output = Command::new(npm_program())
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .expect(
            "failed to run `npm ci` in tests/clients: npm (Node.js) must be installed \
             and on PATH for the TypeScript SDK interop test",
        );
    assert!(
        output.status.success(),
        "`npm ci --no-audit --no-fund` in {} failed\n{}",
        dir.display(),
        describe(&output)
    );
    for name in SDK_PACKAGES {
        assert!(
            installed(name),
            "`npm ci` succeeded but {} is still missing",
            scope.join(name).display()
        );
    }
}

/// Wait for `child`, killing it if it outlives `timeout`. The flag is true if it was killed.
fn wait_with_timeout(child: &mut Child, timeout: Duration) -> (ExitStatus, bool) {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("failed to poll the node process") {
            return (status, false);
        }
        if Instant::now() >= deadline {
            // Fails only if it exited meanwhile; wait() reaps it either way.
            let _ = child.kill();
            let status = child
                .wait()
                .expect("failed to reap the killed node process");
            return (status, true);
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Check that `node` runs and return its version, for failure messages.
fn node_version() -> String {
    let output = Command::new("node").arg("--version").output().expect(
        "failed to run `node`: Node.js (>= 20) must be installed and on PATH \
         for the TypeScript SDK interop tests",
    );
    assert!(
        output.status.success(),
        "`node --version` failed\n{}",
        describe(&output)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Run `node tests/clients/<script> <args...>` (installing the SDK first if needed) and
/// return its output, or the reason it did not pass: it timed out, exited non-zero, or
/// did not print `<banner> N checks passed`.
fn run_client(script: &str, args: &[&OsStr], banner: &str) -> Result<(), String> {
    let dir = clients_dir();
    let path = dir.join(script);
    assert!(path.is_file(), "missing {}", path.display());
    let node = node_version();
    ensure_sdk_installed(&dir);

    // The stdio clients spawn `emcee stdio` themselves: it inherits a scrubbed
    // environment.
    let mut child = scrub_env(&mut Command::new("node"))
        .arg(&path)
        .args(args)
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("failed to spawn `node {script}`: {e}"));
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let (status, timed_out) = wait_with_timeout(&mut child, CLIENT_TIMEOUT);
    let output = Output {
        status,
        stdout: stdout.join().expect("stdout reader thread panicked"),
        stderr: stderr.join().expect("stderr reader thread panicked"),
    };
    if timed_out {
        return Err(format!(
            "node {script} (node {node}) did not finish within {CLIENT_TIMEOUT:?} and was killed\n{}",
            describe(&output)
        ));
    }
    if !output.status.success() {
        return Err(format!(
            "node {script} (node {node}) failed\n{}",
            describe(&output)
        ));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    if !(text.contains(banner) && text.contains("checks passed")) {
        return Err(format!(
            "unexpected output from node {script} (node {node})\n{}",
            describe(&output)
        ));
    }
    Ok(())
}

#[test]
fn typescript_sdk_client_lists_and_calls_tools_over_stdio() {
    let data_dir = tempfile::tempdir().expect("failed to create a temporary data dir");
    let args = [OsStr::new(bin()), data_dir.path().as_os_str()];
    if let Err(reason) = run_client("stdio-client.mjs", &args, "ts-sdk stdio client:") {
        panic!("{reason}");
    }
}

#[test]
fn typescript_sdk_client_calls_tools_over_streamable_http() {
    let server = Server::start(&["--fixtures", "conformance"]);
    let url = server.url();
    let result = run_client(
        "http-client.mjs",
        &[OsStr::new(&url)],
        "ts-sdk http client:",
    );
    let server_log = stop(server);
    if let Err(reason) = result {
        panic!("{reason}\n{server_log}");
    }
}

/// The SDK v2 client, pinned to 2026-07-28, spawns `emcee stdio --fixtures conformance`
/// itself: connect (`server/discover`), list tools, call, read, get a prompt, cancel a slow
/// call (`notifications/cancelled`), and `subscriptions/listen` for `kv://interop`.
#[test]
fn ts_sdk_v2_client_speaks_2026_07_28_over_stdio() {
    let data_dir = tempfile::tempdir().expect("failed to create a temporary data dir");
    let args = [
        OsStr::new("stdio"),
        OsStr::new(bin()),
        data_dir.path().as_os_str(),
    ];
    if let Err(reason) = run_client("modern-client.mjs", &args, "ts-sdk v2 stdio client:") {
        panic!("{reason}");
    }
}

/// The SDK v2 client, pinned to 2026-07-28, against `emcee serve`: the same checks as over
/// stdio, where cancelling closes the request's stream and `/metrics` must count it.
#[test]
fn ts_sdk_v2_client_speaks_2026_07_28_over_http() {
    let server = Server::start(&["--fixtures", "conformance"]);
    let url = server.url();
    let args = [OsStr::new("http"), OsStr::new(&url)];
    let result = run_client("modern-client.mjs", &args, "ts-sdk v2 http client:");
    let server_log = stop(server);
    if let Err(reason) = result {
        panic!("{reason}\n{server_log}");
    }
}

/// OAuth with the SDKs' own auth code: `tests/clients/oauth-client.mjs` runs a tiny
/// authorization server and prints its URL; emcee starts with that issuer and its
/// JWKS URL; the script gets the 401, discovers the metadata, registers, authorizes
/// (PKCE, `resource`), gets an RS256 JWT and then lists and calls tools, with SDK v1
/// (session era) and SDK v2 (2026-07-28).
#[test]
fn ts_sdk_clients_authorize_with_oauth_and_call_tools_in_both_eras() {
    use std::io::{BufRead, BufReader, Write};
    let dir = clients_dir();
    let node = node_version();
    ensure_sdk_installed(&dir);
    let mut child = scrub_env(&mut Command::new("node"))
        .arg(dir.join("oauth-client.mjs"))
        .current_dir(&dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("failed to spawn `node oauth-client.mjs`: {e}"));
    let stderr = drain(child.stderr.take());
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    let stdout = child.stdout.take().expect("stdout");
    let reader = thread::spawn(move || {
        let mut all = Vec::new();
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = lines_tx.send(line.clone());
            all.extend_from_slice(line.as_bytes());
            all.push(b'\n');
        }
        all
    });
    let Ok(ready) = lines.recv_timeout(Duration::from_secs(30)) else {
        let _ = child.kill();
        let _ = child.wait();
        let err = stderr.join().unwrap_or_default();
        panic!(
            "node {node}: no `as-ready` line\n{}",
            String::from_utf8_lossy(&err)
        );
    };
    let issuer = ready
        .strip_prefix("as-ready ")
        .unwrap_or_else(|| panic!("unexpected first line {ready:?}"))
        .to_owned();
    let config = format!(
        "[auth]\nissuer = \"{issuer}\"\nauthorization_servers = [\"{issuer}\"]\n\
         jwks_url = \"{issuer}/jwks\"\n[auth.scopes]\nkv_set = \"kv:write\"\n"
    );
    let server = Server::with_config(&config, &[]);
    let mut stdin = child.stdin.take().expect("stdin");
    writeln!(stdin, "{}", server.url()).expect("write the MCP URL");
    drop(stdin);
    let (status, timed_out) = wait_with_timeout(&mut child, CLIENT_TIMEOUT);
    let output = Output {
        status,
        stdout: reader.join().expect("stdout reader thread panicked"),
        stderr: stderr.join().expect("stderr reader thread panicked"),
    };
    let server_log = stop(server);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(
        !timed_out
            && output.status.success()
            && text.contains("ts-sdk oauth client:")
            && text.contains("checks passed"),
        "node oauth-client.mjs (node {node}) failed\n{}\n{server_log}",
        describe(&output)
    );
}

/// Kill `emcee serve` and reap it; its stderr, for a failure message.
fn stop(server: Server) -> String {
    let logs = server.logs();
    drop(server);
    format!("--- emcee serve stderr ---\n{logs}")
}
