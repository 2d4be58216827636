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
# printf reads no options after its format: a leading `-` is text there.
allow_option_like = true

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
minimum = 0
required = true

[[tools.command]]
name = "json_out"
argv = ["printf", "{\"n\": %s}", "{n}"]
output = "json"
[tools.command.input.n]
type = "integer"
minimum = 0
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

/// Run `emcee config` on `text`: (exit code, stderr, the file's path).
fn load(text: &str) -> (Option<i32>, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = crate::harness::write_config(dir.path(), text);
    let path = path.to_str().expect("utf-8 path").to_owned();
    let (status, _, stderr) = crate::harness::run(&["config", "--config", &path], &[]);
    (status.code(), stderr, path)
}

/// A refusal: exit 2, one line naming the file and each of `needles`.
fn refused(text: &str, needles: &[&str]) {
    let (code, stderr, path) = load(text);
    assert_eq!(code, Some(2), "{text}\n{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains(&path), "names the file: {stderr}");
    for needle in needles {
        assert!(stderr.contains(needle), "names {needle}: {stderr}");
    }
}

/// Item 10: `argv = ["sort", "{file}"]` with `--output=<file>` emptied a file. A
/// placeholder that can begin an argument before any `--` is refused at load unless
/// the input says it cannot start with `-` (or opts in).
#[test]
fn a_placeholder_in_option_position_is_refused_at_load_unless_declared_safe() {
    let input = "[tools.command.input.file]\ntype = \"string\"\nrequired = true\n";
    refused(
        &format!("[[tools.command]]\nname = \"sorter\"\nargv = [\"sort\", \"{{file}}\"]\n{input}"),
        &[
            "tools.command",
            "sorter",
            "{file}",
            "\"--\"",
            "allow_option_like",
        ],
    );
    // Also when the placeholder leads an element with text after it.
    refused(
        &format!("[[tools.command]]\nname = \"g\"\nargv = [\"grep\", \"{{file}}.txt\"]\n{input}"),
        &["{file}"],
    );
    for ok in [
        format!("[[tools.command]]\nname = \"s\"\nargv = [\"sort\", \"--\", \"{{file}}\"]\n{input}"),
        format!("[[tools.command]]\nname = \"s\"\nargv = [\"sort\", \"-o/dev/null\", \"x{{file}}\"]\n{input}"),
        format!("[[tools.command]]\nname = \"s\"\nargv = [\"printf\", \"%s\", \"{{file}}\"]\n{input}allow_option_like = true\n"),
        "[[tools.command]]\nname = \"h\"\nargv = [\"head\", \"-n\", \"{n}\"]\n[tools.command.input.n]\ntype = \"integer\"\nminimum = 0\n".into(),
        "[[tools.command]]\nname = \"e\"\nargv = [\"printf\", \"%s\", \"{b}\"]\n[tools.command.input.b]\ntype = \"boolean\"\n".into(),
        "[[tools.command]]\nname = \"c\"\nargv = [\"printf\", \"%s\", \"{c}\"]\n[tools.command.input.c]\ntype = \"string\"\nenum = [\"red\", \"green\"]\n".into(),
    ] {
        let (code, stderr, _) = load(&ok);
        assert_eq!(code, Some(0), "{ok}\n{stderr}");
    }
    refused(
        "[[tools.command]]\nname = \"c\"\nargv = [\"p\", \"{c}\"]\n[tools.command.input.c]\ntype = \"string\"\nenum = [\"red\", \"-rf\"]\n",
        &["{c}"],
    );
}

/// Item 10, at call time: whatever passed the load check, a value beginning with `-`
/// in option position never reaches the program (`-0.0` meets `minimum = 0`), and an
/// `enum` or `minimum` is enforced.
#[test]
fn a_value_starting_with_a_dash_is_refused_in_option_position() {
    let mut s = Stdio::with_config(
        "[[tools.command]]\nname = \"num\"\nargv = [\"printf\", \"%s\\n\", \"{n}\"]\n\
         [tools.command.input.n]\ntype = \"number\"\nminimum = 0\nrequired = true\n\
         [[tools.command]]\nname = \"colour\"\nargv = [\"printf\", \"%s\\n\", \"{c}\"]\n\
         [tools.command.input.c]\ntype = \"string\"\nenum = [\"red\", \"green\"]\nrequired = true\n",
        &[],
    );
    s.initialize("2025-11-25");
    let r = s.call_ok(1, "num", json!({"n": 2.5}));
    assert_eq!(text(&r), "2.5\n", "{r}");
    let r = s.call_ok(2, "num", json!({"n": -0.0}));
    assert_eq!(r["isError"], true, "{r}");
    assert!(text(&r).contains("`n`"), "{r}");
    let r = s.call_ok(3, "num", json!({"n": -1}));
    assert_eq!(r["isError"], true, "{r}");
    let r = s.call_ok(4, "colour", json!({"c": "red"}));
    assert_eq!(text(&r), "red\n", "{r}");
    let r = s.call_ok(5, "colour", json!({"c": "-rf"}));
    assert_eq!(r["isError"], true, "{r}");
    assert!(s.finish().0.success());
}

/// Item 11: `sh -c "sleep 300 & echo started"` answered "did not finish" at the
/// timeout although `sh` exited at once. The call ends when the program does; what
/// it left holding its output is killed, and the answer says so.
#[test]
fn a_program_that_exits_leaving_children_answers_at_once() {
    let mut s = Stdio::with_config(
        "[[tools.command]]\nname = \"bg\"\nargv = [\"sh\", \"-c\", \"sleep 39.5 & echo started\"]\ntimeout_ms = 8000\n",
        &[],
    );
    s.initialize("2025-11-25");
    let started = Instant::now();
    let r = s.call_ok(1, "bg", json!({}));
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}: {r}",
        started.elapsed()
    );
    assert_ne!(r["isError"], true, "{r}");
    assert_eq!(text(&r), "started\n", "{r}");
    let note = r["content"][1]["text"].as_str().unwrap_or_default();
    assert!(note.contains("still held"), "a note says why: {r}");
    assert!(
        gone_within("sleep 39.5", Duration::from_secs(3)),
        "the background child outlived the call"
    );
    assert!(s.finish().0.success());
}

/// Item 11: a child that leaves the process group (`setsid`) is killed too.
#[test]
fn a_setsid_child_is_killed_with_its_call() {
    let mut s = Stdio::with_config(
        "[[tools.command]]\nname = \"escape\"\n\
         argv = [\"sh\", \"-c\", \"setsid sleep 39.75 & sleep 0.3; echo started\"]\ntimeout_ms = 8000\n",
        &[],
    );
    s.initialize("2025-11-25");
    let started = Instant::now();
    let r = s.call_ok(1, "escape", json!({}));
    let gone = gone_within("sleep 39.75", Duration::from_secs(3));
    kill_all("sleep 39.75");
    assert!(started.elapsed() < Duration::from_secs(5), "{r}");
    assert_ne!(r["isError"], true, "{r}");
    assert!(gone, "the setsid child escaped");
    assert!(s.finish().0.success());
}

/// Item 11: a program outlived `kill -9` of emcee (no parent-death signal).
#[test]
fn a_running_program_dies_with_emcee() {
    let mut s = Stdio::with_config(
        "[[tools.command]]\nname = \"held\"\nargv = [\"sleep\", \"41.25\"]\n",
        &[],
    );
    s.initialize("2025-11-25");
    s.send_call(1, "held", json!({}));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !running("sleep 41.25") {
        assert!(Instant::now() < deadline, "held never started");
        std::thread::sleep(Duration::from_millis(20));
    }
    s.signal("KILL");
    let gone = gone_within("sleep 41.25", Duration::from_secs(3));
    kill_all("sleep 41.25");
    assert!(gone, "the program outlived emcee");
}

/// SIGKILL every process whose command line contains `pattern` (by pid; the
/// patterns are unique to these tests): a failed test leaves nothing behind.
fn kill_all(pattern: &str) {
    let Ok(out) = std::process::Command::new("pgrep")
        .args(["-f", pattern])
        .output()
    else {
        return;
    };
    for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", pid])
            .status();
    }
}

/// Item 11: names MCP cannot carry, programs that cannot run and built-in names
/// are refused at load, naming the file and the tool.
#[test]
fn bad_names_missing_programs_and_builtin_names_are_refused_at_load() {
    refused(
        "[[tools.command]]\nname = \"disk usage!\"\nargv = [\"du\"]\n",
        &["tools.command", "disk usage!", "A-Za-z0-9_.-"],
    );
    refused(
        &format!(
            "[[tools.command]]\nname = \"{}\"\nargv = [\"du\"]\n",
            "n".repeat(129)
        ),
        &["128"],
    );
    refused(
        "[[tools.command]]\nname = \"gone\"\nargv = [\"emcee-no-such-program\"]\n",
        &["gone", "emcee-no-such-program", "PATH"],
    );
    refused(
        "[[tools.command]]\nname = \"notexec\"\nargv = [\"/etc/passwd\"]\n",
        &["notexec", "/etc/passwd", "executable"],
    );
    refused(
        "[[tools.command]]\nname = \"echo\"\nargv = [\"echo\", \"hi\"]\n",
        &["tools.command", "`echo`", "built-in", "tools.builtin"],
    );
}

/// Item 11: the shipped unit's `TasksMax` covers emcee's threads (measured here:
/// a serving emcee has at most 11 + workers + blocking threads) plus the
/// processes of held command calls; 64 did not cover 50 held calls.
#[test]
fn the_unit_allows_the_threads_and_command_processes_it_needs() {
    let unit =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/emcee.service"))
            .expect("deploy/emcee.service");
    let tasks_max: usize = unit
        .lines()
        .find_map(|l| l.strip_prefix("TasksMax="))
        .and_then(|v| v.trim().parse().ok())
        .expect("a numeric TasksMax= in the unit");
    // The unit's formula for a 64-core host, 8 blocking threads and 100 programs
    // (each with one child) running at once.
    assert!(
        tasks_max >= 11 + 64 + 8 + 2 * 100,
        "TasksMax={tasks_max} is too low"
    );
    // The fixed part of the formula, measured: serve with 2 workers, then count.
    let server = crate::harness::Server::with_config("[http]\nworkers = 2\n", &[]);
    let threads = std::fs::read_dir(format!("/proc/{}/task", server.pid()))
        .expect("/proc/<pid>/task")
        .count();
    assert!(threads <= 11 + 2 + 8, "{threads} threads");
}
