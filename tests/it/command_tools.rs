//! Command tools (`[[tools.command]]` in emcee.toml) through the real binary over
//! stdio: arguments reach the program as single literal argv elements, the
//! environment is an allowlist, exit codes map to `isError`, JSON output becomes
//! `structuredContent`, output is capped, and a timeout or a cancellation kills the
//! program's whole process group.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{text, Stdio};

const CONFIG: &str = r#"
[[tools.command]]
name = "say"
description = "Prints its argument on a line"
argv = ["printf", "%s\n", "{text}"]
[tools.command.input.text]
type = "string"
required = true

[[tools.command]]
name = "env_probe"
argv = ["sh", "-c", "printf '%s' \"${EMCEE_TEST_SECRET:-unset}:${HOME:-nohome}\""]
env = ["PATH", "HOME"]

[[tools.command]]
name = "exit_with"
argv = ["sh", "-c", "echo oops >&2; exit \"$0\"", "{code}"]
ok_exit_codes = [0, 3]
[tools.command.input.code]
type = "integer"
required = true

[[tools.command]]
name = "json_out"
argv = ["printf", "{\"n\": %s}", "{n}"]
output = "json"
[tools.command.input.n]
type = "integer"
required = true

[[tools.command]]
name = "chatty"
argv = ["sh", "-c", "yes x | head -c 100000"]
max_output_bytes = 1000

[[tools.command]]
name = "stuck"
argv = ["sh", "-c", "sleep 37.25 & sleep 37.25; echo never"]
timeout_ms = 400

[[tools.command]]
name = "slow"
argv = ["sh", "-c", "sleep 38.5 & sleep 38.5"]
"#;

fn start_with(env: &[(&str, &str)]) -> Stdio {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = crate::harness::write_config(dir.path(), CONFIG);
    let path = path.to_str().expect("utf-8 path").to_owned();
    let mut s = Stdio::start_in(dir.path(), &["--config", &path], env);
    s.keep(dir);
    s.initialize("2025-11-25");
    s
}

fn start() -> Stdio {
    start_with(&[])
}

/// Whether a process whose command line contains `pattern` is alive.
fn running(pattern: &str) -> bool {
    std::process::Command::new("pgrep")
        .args(["-f", pattern])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn gone_within(pattern: &str, within: Duration) -> bool {
    let deadline = Instant::now() + within;
    while running(pattern) {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    true
}

#[test]
fn arguments_are_literal_argv_elements() {
    let mut s = start();
    for (n, hostile) in ["; rm -rf /", "$(id)", "-n", "a b  'c' \"d\"", "`id`|cat>x"]
        .into_iter()
        .enumerate()
    {
        let r = s.call_ok(n as u64 + 1, "say", json!({"text": hostile}));
        assert_ne!(r["isError"], true, "{r}");
        assert_eq!(text(&r), format!("{hostile}\n"), "{r}");
    }
    let listed = s.request(10, "tools/list", json!({}));
    let say = listed["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "say")
        .cloned()
        .unwrap();
    assert_eq!(
        say["inputSchema"]["properties"]["text"]["type"], "string",
        "{say}"
    );
    assert_eq!(say["inputSchema"]["required"], json!(["text"]), "{say}");
    let bad = s.call_ok(11, "say", json!({"text": 5}));
    assert_eq!(bad["isError"], true, "{bad}");
    assert!(text(&bad).contains("`text`"), "{bad}");
}

#[test]
fn environment_exit_codes_json_and_output_cap() {
    // Set for emcee, not passed on: the tool allows PATH and HOME only.
    let mut s = start_with(&[("EMCEE_TEST_SECRET", "leaked")]);
    let r = s.call_ok(1, "env_probe", json!({}));
    assert!(
        text(&r).starts_with("unset:"),
        "only allowed variables pass: {r}"
    );
    let ok = s.call_ok(2, "exit_with", json!({"code": 3}));
    assert_ne!(ok["isError"], true, "3 is listed as success: {ok}");
    let failed = s.call_ok(3, "exit_with", json!({"code": 4}));
    assert_eq!(failed["isError"], true, "{failed}");
    assert!(text(&failed).contains("exit code 4"), "{failed}");
    assert!(
        text(&failed).contains("oops"),
        "stderr is carried: {failed}"
    );
    let r = s.call_ok(4, "json_out", json!({"n": 7}));
    assert_eq!(r["structuredContent"], json!({"n": 7}), "{r}");
    let r = s.call_ok(5, "chatty", json!({}));
    assert_eq!(r["isError"], true, "{r}");
    assert!(text(&r).contains("max_output_bytes"), "{r}");
}

#[test]
fn a_timeout_or_a_cancellation_kills_the_whole_process_group() {
    let mut s = start();
    let started = Instant::now();
    let r = s.call_ok(1, "stuck", json!({}));
    assert_eq!(r["isError"], true, "{r}");
    assert!(text(&r).contains("killed"), "{r}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(
        gone_within("sleep 37.25", Duration::from_secs(3)),
        "the background child outlived the timeout"
    );
    s.send_call(2, "slow", json!({}));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !running("sleep 38.5") {
        assert!(Instant::now() < deadline, "slow never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    s.notify("notifications/cancelled", json!({"requestId": 2}));
    assert!(
        gone_within("sleep 38.5", Duration::from_secs(3)),
        "a cancelled command's group outlived it"
    );
    assert!(s.finish().0.success());
}

#[test]
fn a_bad_command_tool_declaration_is_a_configuration_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = crate::harness::write_config(
        dir.path(),
        "[[tools.command]]\nname = \"x\"\nargv = [\"echo\", \"{missing}\"]\n",
    );
    let (status, _, stderr) =
        crate::harness::run(&["config", "--config", path.to_str().unwrap()], &[]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("{missing}"), "{stderr}");
}

/// `examples/command_tools.toml` loads and its tools answer.
#[test]
fn the_example_config_serves_its_tools() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/command_tools.toml");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = Stdio::start_in(dir.path(), &["--config", example], &[]);
    s.initialize("2025-11-25");
    let measured = tempfile::tempdir().expect("tempdir");
    std::fs::write(measured.path().join("f"), vec![b'x'; 10_000]).unwrap();
    let path = measured.path().to_str().unwrap();
    let r = s.call_ok(1, "disk_usage", json!({"path": path}));
    assert_ne!(r["isError"], true, "{r}");
    assert!(text(&r).trim_end().ends_with(path), "{r}");
    let r = s.call_ok(2, "utc_now", json!({}));
    assert!(text(&r).trim_end().ends_with('Z'), "{r}");
    let r = s.call_ok(3, "word_count", json!({"text": "one two; rm -rf / three"}));
    assert_eq!(r["structuredContent"], json!({"words": 6}), "{r}");
    assert!(s.finish().0.success());
}
