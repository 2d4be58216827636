//! The one test harness: every way the tests start the real `emcee` binary, over
//! stdio ([`Stdio`]) or Streamable HTTP ([`Server`]), and the helpers both share.
//!
//! Every process that runs the binary (directly, or a client or script that spawns it)
//! gets its environment from [`emcee_command`] or [`scrub_env`], so nothing the
//! developer's shell exports (`EMCEE_LOG`, `EMCEE_LIMIT_MAX_SESSIONS`, ...) changes a
//! test's outcome.

#![allow(dead_code)]

mod client;
mod http;
mod stdio;
mod valkey;

pub use self::client::*;
pub use self::http::*;
pub use self::stdio::*;
pub use self::valkey::*;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};

use serde_json::{json, Value};

/// Path of the binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_emcee")
}

/// Variables outside `EMCEE_*` that the binary reads: systemd's `StateDirectory=`
/// (the default data dir), and its notify socket and watchdog (`Type=notify`).
const FOREIGN_VARIABLES: [&str; 4] = [
    "STATE_DIRECTORY",
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
];

/// Whether the binary may read `name`: every `EMCEE_*` variable (the ones clap reads,
/// `EMCEE_LIMIT_<KEY>`, and any added later) and the [`FOREIGN_VARIABLES`].
fn read_by_emcee(name: &OsString) -> bool {
    name.as_encoded_bytes().starts_with(b"EMCEE_") || FOREIGN_VARIABLES.iter().any(|v| name == v)
}

/// Remove from `cmd` every variable of `parent` (the environment `cmd` would inherit)
/// that the binary reads; returns the removed names. Variables set on `cmd` afterwards
/// (a test's own `.env(...)`) still apply.
pub fn scrub_env_from(
    cmd: &mut Command,
    parent: impl IntoIterator<Item = (OsString, OsString)>,
) -> Vec<OsString> {
    let removed: Vec<OsString> = parent
        .into_iter()
        .map(|(name, _)| name)
        .filter(read_by_emcee)
        .collect();
    for name in &removed {
        cmd.env_remove(name);
    }
    removed
}

/// [`scrub_env_from`] this process's environment: for a command that spawns the binary
/// itself (a client SDK, a script), so the binary it starts inherits a clean one.
pub fn scrub_env(cmd: &mut Command) -> &mut Command {
    scrub_env_from(cmd, std::env::vars_os());
    cmd
}

/// A command for the binary as if the test process's environment were `parent`: none
/// of the variables the binary reads is inherited.
pub fn clean_command_from(parent: impl IntoIterator<Item = (OsString, OsString)>) -> Command {
    let mut cmd = Command::new(bin());
    scrub_env_from(&mut cmd, parent);
    cmd
}

/// A command for the binary under test with a clean environment: the one way every
/// test starts it.
pub fn emcee_command() -> Command {
    clean_command_from(std::env::vars_os())
}

/// Write a config file into `dir` and return its path.
pub fn write_config(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("emcee.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

/// The JSON-RPC error code of a response (panics if it is not an error).
pub fn error_code(resp: &Value) -> i64 {
    resp["error"]["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("expected an error: {resp}"))
}

/// The first text content of a tool result.
pub fn text(result: &Value) -> &str {
    result["content"][0]["text"]
        .as_str()
        .unwrap_or_else(|| panic!("no text content: {result}"))
}

/// `kill -SIG pid`, failing the test if it fails.
pub fn send_signal(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .args([format!("-{sig}"), pid.to_string()])
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill -{sig} {pid} failed");
}

/// Run the binary with `args` and `env` to completion; returns (status, stdout, stderr).
pub fn run(args: &[&str], env: &[(&str, &str)]) -> (ExitStatus, String, String) {
    let mut cmd = emcee_command();
    cmd.args(args).stdin(std::process::Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().expect("run emcee");
    (
        out.status,
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The resident memory of process `pid`, in KiB.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// A finished child's status and both outputs, for a failure message.
pub fn describe(output: &std::process::Output) -> String {
    format!(
        "status: {}\n--- stdout ---\n{}\n--- stderr ---\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Drain a child pipe on a thread so a chatty child cannot block on a full pipe.
pub fn drain<R: std::io::Read + Send + 'static>(
    pipe: Option<R>,
) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        if let Some(mut pipe) = pipe {
            // A read error just truncates what we can show; the exit status decides.
            let _ = pipe.read_to_end(&mut buf);
        }
        buf
    })
}

/// The 2026-07-28 revision.
pub const MODERN: &str = "2026-07-28";
/// Every version emcee serves, newest first.
pub const SUPPORTED: [&str; 5] = [
    "2026-07-28",
    "2025-11-25",
    "2025-06-18",
    "2025-03-26",
    "2024-11-05",
];
/// `_meta` key of the server's identity on 2026-07-28 results.
pub const SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
/// `_meta` key of a listen stream's notifications.
pub const SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";

/// The required per-request 2026-07-28 `_meta`, declaring no capabilities.
pub fn meta() -> Value {
    json!({
        "io.modelcontextprotocol/protocolVersion": MODERN,
        "io.modelcontextprotocol/clientCapabilities": {},
        "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
    })
}

/// `params` with the usual 2026-07-28 `_meta` (fields of a `_meta` already there win).
pub fn with_meta(params: Value) -> Value {
    let mut params = params;
    let map = params.as_object_mut().expect("params is an object");
    let mut m = meta();
    if let Some(Value::Object(given)) = map.remove("_meta") {
        for (k, v) in given {
            m[k] = v;
        }
    }
    map.insert("_meta".into(), m);
    params
}

/// An environment of `(name, value)` pairs as [`std::env::vars_os`] yields it.
fn environment(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
    pairs
        .iter()
        .map(|(k, v)| (OsString::from(k), OsString::from(v)))
        .collect()
}

/// What a parent's environment would hand the binary, were it exported in the shell
/// that runs the tests.
const HOSTILE: [(&str, &str); 9] = [
    ("EMCEE_LIMIT_MAX_SESSIONS", "1"),
    ("EMCEE_LIMIT_PAGE_SIZE", "1"),
    ("EMCEE_LOG", "shouty"),
    ("EMCEE_LOG_CALLS", "maybe"),
    ("EMCEE_BIND", "not an address"),
    ("EMCEE_DATA_DIR", "/nonexistent/emcee-hostile"),
    ("EMCEE_A_VARIABLE_NO_LIST_NAMES_YET", "x"),
    ("STATE_DIRECTORY", "/nonexistent/emcee-state"),
    ("NOTIFY_SOCKET", "/nonexistent/notify"),
];

/// Every `EMCEE_*` variable of the parent is removed (a fixed list of known names
/// misses `EMCEE_LIMIT_*` and whatever is added later), as are the systemd variables
/// the binary reads; nothing else is touched. The parent is an argument, so no test
/// mutates this process's environment.
#[test]
fn clean_command_removes_every_emcee_variable() {
    let kept = [
        ("PATH", "/usr/bin:/bin"),
        ("HOME", "/root"),
        ("MY_EMCEE_LOG", "x"),
        ("emcee_log", "x"),
        ("EMCEEX", "x"),
    ];
    let parent: Vec<_> = environment(&HOSTILE)
        .into_iter()
        .chain(environment(&kept))
        .collect();
    let cmd = clean_command_from(parent);
    let changes: Vec<(String, Option<String>)> = cmd
        .get_envs()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.map(|v| v.to_string_lossy().into_owned()),
            )
        })
        .collect();
    for (name, _) in HOSTILE {
        assert!(
            changes.contains(&(name.to_owned(), None)),
            "{name} is not removed: {changes:?}"
        );
    }
    for (name, _) in kept {
        assert!(
            changes.iter().all(|(k, _)| k != name),
            "{name} is not the binary's and must be left alone: {changes:?}"
        );
    }
    assert_eq!(changes.len(), HOSTILE.len(), "{changes:?}");
    // The one used everywhere removes what this process has (whatever that is).
    let own: Vec<String> = std::env::vars_os()
        .map(|(k, _)| k.to_string_lossy().into_owned())
        .filter(|k| k.starts_with("EMCEE_"))
        .collect();
    let cmd = emcee_command();
    for name in own {
        assert!(
            cmd.get_envs()
                .any(|(k, v)| k.to_string_lossy() == name && v.is_none()),
            "{name} of the test process is not removed"
        );
    }
}

/// End to end: the binary, given the hostile environment as its parent's (set on the
/// command itself, so no other thread sees it), reads it (`config` fails on
/// `EMCEE_LOG=shouty`, and without it shows `EMCEE_LIMIT_*`); scrubbed, it shows the
/// defaults.
#[test]
fn a_hostile_parent_environment_does_not_reach_the_binary() {
    let show = |scrub: bool, pairs: &[(&str, &str)]| {
        let mut cmd = Command::new(bin());
        cmd.env_clear().envs(pairs.iter().copied());
        if scrub {
            scrub_env_from(&mut cmd, environment(pairs));
        }
        let out = cmd
            .arg("config")
            .stdin(std::process::Stdio::null())
            .output()
            .expect("run emcee config");
        let description = describe(&out);
        (out.status.success(), out.stdout, description)
    };
    let (ok, _, out) = show(false, &HOSTILE);
    assert!(!ok, "the control: EMCEE_LOG=shouty is an error\n{out}");
    let limits_only = &HOSTILE[..2];
    let (ok, stdout, out) = show(false, limits_only);
    assert!(ok, "{out}");
    let v: Value = serde_json::from_slice(&stdout).expect("config JSON");
    assert_eq!(v["limits"]["max_sessions"], 1, "the control\n{out}");
    assert_eq!(v["limits"]["page_size"], 1, "the control\n{out}");

    let (ok, stdout, out) = show(true, &HOSTILE);
    assert!(ok, "scrubbed\n{out}");
    let v: Value = serde_json::from_slice(&stdout).expect("config JSON");
    assert_ne!(v["limits"]["max_sessions"], 1, "{out}");
    assert_ne!(v["limits"]["page_size"], 1, "{out}");
    assert_eq!(v["log_level"], "info", "{out}");
    assert_eq!(v["data_dir"], "./emcee-data", "{out}");
    let (ok, empty, out) = show(false, &[]);
    assert!(ok, "{out}");
    assert_eq!(
        String::from_utf8_lossy(&stdout),
        String::from_utf8_lossy(&empty),
        "scrubbed, the hostile environment is no environment at all"
    );
}
