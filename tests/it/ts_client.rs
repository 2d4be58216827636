//! Interoperability: the official MCP TypeScript SDK (a real third-party client, from
//! npm) drives `emcee stdio` through `tests/clients/stdio-client.mjs`.
//!
//! Needs Node.js (>= 18) and npm on PATH. If the SDK is not installed yet, the test
//! installs it itself with `npm ci` from the committed `package-lock.json`. A missing
//! `node` or `npm` is a test failure, never a silent skip.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

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

fn describe(output: &Output) -> String {
    format!(
        "status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Install the SDK into `tests/clients/node_modules` unless it is already there.
fn ensure_sdk_installed(dir: &Path) {
    let _guard = NPM_INSTALL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let sdk = dir
        .join("node_modules")
        .join("@modelcontextprotocol")
        .join("sdk");
    if sdk.join("package.json").is_file() {
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
    assert!(
        sdk.is_dir(),
        "`npm ci` succeeded but {} is still missing",
        sdk.display()
    );
}

/// Drain a child pipe on a thread so a chatty child cannot block on a full pipe.
fn drain<R: Read + Send + 'static>(pipe: Option<R>) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut pipe) = pipe {
            // A read error just truncates what we can show; the exit status decides.
            let _ = pipe.read_to_end(&mut buf);
        }
        buf
    })
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

#[test]
fn typescript_sdk_client_lists_and_calls_tools_over_stdio() {
    let dir = clients_dir();
    let script = dir.join("stdio-client.mjs");
    assert!(script.is_file(), "missing {}", script.display());

    let node_version = Command::new("node").arg("--version").output().expect(
        "failed to run `node`: Node.js (>= 18) must be installed and on PATH \
             for the TypeScript SDK interop test",
    );
    assert!(
        node_version.status.success(),
        "`node --version` failed\n{}",
        describe(&node_version)
    );

    ensure_sdk_installed(&dir);

    let data_dir = tempfile::tempdir().expect("failed to create a temporary data dir");
    let mut child = Command::new("node")
        .arg(&script)
        .arg(env!("CARGO_BIN_EXE_emcee"))
        .arg(data_dir.path())
        .current_dir(&dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("failed to spawn `node stdio-client.mjs`");
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let (status, timed_out) = wait_with_timeout(&mut child, CLIENT_TIMEOUT);
    let output = Output {
        status,
        stdout: stdout.join().expect("stdout reader thread panicked"),
        stderr: stderr.join().expect("stderr reader thread panicked"),
    };
    let node = String::from_utf8_lossy(&node_version.stdout);
    assert!(
        !timed_out,
        "node stdio-client.mjs (node {}) did not finish within {:?} and was killed\n{}",
        node.trim(),
        CLIENT_TIMEOUT,
        describe(&output)
    );
    assert!(
        output.status.success(),
        "node stdio-client.mjs (node {}) failed\n{}",
        node.trim(),
        describe(&output)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        stdout.contains("ts-sdk stdio client:") && stdout.contains("checks passed"),
        "unexpected client output\n{}",
        describe(&output)
    );
}
