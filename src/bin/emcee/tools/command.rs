//! Command tools: a program as an MCP tool, declared in `emcee.toml`, for people who
//! write no Rust.
//!
//! ```toml
//! [[tools.command]]
//! name = "disk_usage"
//! description = "Disk usage of a directory"
//! argv = ["du", "-s", "--", "{path}"]
//! timeout_ms = 5000
//! [tools.command.input.path]
//! type = "string"
//! description = "The directory"
//! required = true
//! ```
//!
//! Safety: there is no shell. `argv` is the program and its arguments; a `{name}` in
//! an element (a name of letters, digits and `_`; `{{` and `}}` are literal braces,
//! and any other brace is literal) is replaced by the value of argument `name`, and
//! the element stays one argument whatever the value holds (spaces, quotes, `;`,
//! `$(…)`): nothing is split or interpreted by a shell. That does not stop the
//! *program* from reading a value as an option: a placeholder that begins an
//! element before any `--` element is refused at load unless its input cannot start
//! with `-` (`boolean`, `minimum = 0`, an `enum` with no such value) or says
//! `allow_option_like = true`; and at call time a value starting with `-` there is
//! refused all the same unless the input opted in. An element naming an optional
//! argument the call does not give is left out. The program gets only the
//! environment variables named in `env` (default `PATH`) and `EMCEE_COMMAND_CALL`
//! (this call's mark, see below), runs in `cwd` (default emcee's). Its stdout is the
//! result's text (parsed into `structuredContent` with `output = "json"`), bounded by
//! `max_output_bytes` (default 1 MiB); an exit code not in `ok_exit_codes` (default
//! `[0]`) is an `isError` result carrying the end of its stderr.
//!
//! Process control. The call ends when the program exits: what it started and left
//! holding its stdout or stderr gets [`DRAIN_AFTER_EXIT`] more to finish writing,
//! then is killed, and the result says so. When the call ends (done, timed out,
//! cancelled), everything the program started is killed with SIGKILL:
//! - its process group (the program leads one of its own);
//! - every process carrying this call's `EMCEE_COMMAND_CALL` mark in its
//!   environment, found in `/proc`: this catches children that left the group or the
//!   session (`setsid`, a double fork), since they inherit the environment.
//!
//! Not caught: a descendant that both left the group and cleared or replaced its
//! environment (`env -i`, a daemon rewriting it), or runs as another user. The
//! program itself gets SIGKILL when emcee dies, even by `kill -9`
//! (`PR_SET_PDEATHSIG`; strictly, when the emcee thread that started it ends, and
//! emcee's serving threads live as long as the server); its children do not (the
//! signal is not inherited): under systemd the unit's cgroup takes them when the
//! service stops or restarts (`KillMode=control-group`, the default).

use std::collections::BTreeMap;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio::io::AsyncReadExt;

use crate::config::command::{argv_text, option_positions, pieces, Piece};
pub use crate::config::command::{CommandTool, Output};
use emcee::protocol::{CallToolResult, Content};
use emcee::tools::{Tool, ToolError, ToolOutcome};

/// After the program exits, how long what it left holding its output may still
/// write before it is killed and the call answers.
pub const DRAIN_AFTER_EXIT: Duration = Duration::from_millis(250);

/// The environment variable marking every process a call starts (inherited across
/// `setsid` and forks): `EMCEE_COMMAND_CALL=<emcee pid>-<call number>`.
pub const CALL_MARK: &str = "EMCEE_COMMAND_CALL";

/// The runtime side of a [`CommandTool`] declaration.
trait Run {
    fn schema(&self) -> Value;
    fn arguments(&self, args: &Value) -> Result<BTreeMap<String, String>, ToolError>;
    fn argv(&self, values: &BTreeMap<String, String>) -> Result<Vec<String>, ToolError>;
}

impl Run for CommandTool {
    /// The tool's `inputSchema`.
    fn schema(&self) -> Value {
        let mut properties = Map::new();
        let mut required = Vec::new();
        for (name, p) in &self.input {
            let mut schema = json!({"type": p.kind});
            if let Some(d) = &p.description {
                schema["description"] = d.clone().into();
            }
            if let Some(values) = &p.choices {
                schema["enum"] = values.clone().into();
            }
            if let Some(min) = p.minimum {
                schema["minimum"] = if min.fract() == 0.0 && min.abs() < 9e15 {
                    json!(min as i64)
                } else {
                    json!(min)
                };
            }
            properties.insert(name.clone(), schema);
            if p.required {
                required.push(Value::from(name.clone()));
            }
        }
        json!({"type": "object", "properties": properties, "required": required,
            "additionalProperties": false})
    }

    /// Check `args` against the declared inputs; their values as argv text.
    fn arguments(&self, args: &Value) -> Result<BTreeMap<String, String>, ToolError> {
        let empty = Map::new();
        let given = match args {
            Value::Null => &empty,
            Value::Object(map) => map,
            _ => {
                return Err(ToolError::InvalidArguments(
                    "arguments must be an object".into(),
                ))
            }
        };
        let mut values = BTreeMap::new();
        for (name, value) in given {
            let Some(p) = self.input.get(name) else {
                return Err(ToolError::InvalidArguments(format!(
                    "`{name}`: unknown argument"
                )));
            };
            let text = argv_text(value)
                .filter(|_| p.kind.admits(value))
                .ok_or_else(|| {
                    ToolError::InvalidArguments(format!("`{name}`: expected {}", p.kind.name()))
                })?;
            p.admits(value)
                .map_err(|why| ToolError::InvalidArguments(format!("`{name}`: {why}")))?;
            if text.contains('\0') {
                return Err(ToolError::InvalidArguments(format!(
                    "`{name}`: contains a NUL byte"
                )));
            }
            values.insert(name.clone(), text);
        }
        for (name, p) in &self.input {
            if p.required && !values.contains_key(name) {
                return Err(ToolError::InvalidArguments(format!("`{name}`: missing")));
            }
        }
        Ok(values)
    }

    /// argv with the placeholders filled; an element naming an absent argument is
    /// left out. Each element stays one argument. An element in option position
    /// (before any `--`) that would start with `-` because of a value is refused,
    /// unless the inputs that begin it opted in (`allow_option_like`).
    fn argv(&self, values: &BTreeMap<String, String>) -> Result<Vec<String>, ToolError> {
        let mut argv: Vec<Option<String>> = self
            .argv
            .iter()
            .map(|element| {
                let mut out = String::with_capacity(element.len());
                for piece in pieces(element) {
                    match piece {
                        Piece::Text(text) => out.push_str(&text),
                        Piece::Arg(name) => out.push_str(values.get(name)?),
                    }
                }
                Some(out)
            })
            .collect();
        for (i, leading) in option_positions(&self.argv) {
            let Some(element) = argv.get_mut(i).and_then(Option::as_mut) else {
                continue;
            };
            let opted_in = leading
                .iter()
                .all(|name| self.input.get(*name).is_some_and(|p| p.allow_option_like));
            if element.starts_with('-') && !opted_in {
                let first = leading.first().copied().unwrap_or_default();
                return Err(ToolError::InvalidArguments(format!(
                    "`{first}`: a value starting with `-` would reach the program as an option here"
                )));
            }
        }
        Ok(argv.into_iter().flatten().collect())
    }
}

/// The tool `spec` declares: `default_timeout` unless the declaration sets one.
pub fn tool(spec: CommandTool, default_timeout: Duration) -> Tool {
    let schema = spec.schema();
    let name = spec.name.clone();
    let description = spec.description.clone();
    let timeout = spec
        .timeout_ms
        .map_or(default_timeout, Duration::from_millis);
    let spec = std::sync::Arc::new(spec);
    Tool::raw(name, description, schema, move |_ctx, args| {
        let spec = spec.clone();
        async move { run(&spec, &args, timeout).await }
    })
    // The tool's own limit: its process group is killed when it passes.
    .timeout(timeout + DRAIN_AFTER_EXIT + Duration::from_millis(500))
}

/// How a program's run ended.
enum Ended {
    /// It exited; `true`: processes it left still held its output and were killed.
    Exited(std::io::Result<std::process::ExitStatus>, bool),
    /// It wrote more than `max_output_bytes`.
    TooMuch,
}

async fn run(spec: &CommandTool, args: &Value, timeout: Duration) -> ToolOutcome {
    static CALLS: AtomicU64 = AtomicU64::new(0);
    let values = spec.arguments(args)?;
    let argv = spec.argv(&values)?;
    let (program, rest) = argv
        .split_first()
        .ok_or_else(|| ToolError::Failed("empty argv".into()))?;
    let mark = format!(
        "{}-{}",
        std::process::id(),
        CALLS.fetch_add(1, Ordering::Relaxed)
    );
    let mut command = tokio::process::Command::new(program);
    command
        .args(rest)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    for name in &spec.env {
        if let Some(value) = std::env::var_os(name) {
            command.env(name, value);
        }
    }
    command.env(CALL_MARK, &mark);
    if let Some(cwd) = &spec.cwd {
        command.current_dir(cwd);
    }
    die_with_emcee(&mut command);
    let mut child = command
        .spawn()
        .map_err(|e| ToolError::Failed(format!("cannot start `{program}`: {e}")))?;
    // From here, dropping this future (timeout, cancellation) kills what it started.
    let group = Group {
        leader: child.id(),
        mark,
    };
    let cap = spec.max_output_bytes;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let work = async {
        let reading = async {
            let (over, ()) = tokio::join!(
                read_capped(stdout, cap, &mut out),
                read_tail(stderr, cap, &mut err)
            );
            over
        };
        tokio::pin!(reading);
        tokio::select! {
            over = &mut reading => {
                if over {
                    return Ended::TooMuch;
                }
                // Both pipes closed: the program is ending (or closed them itself).
                Ended::Exited(child.wait().await, false)
            }
            status = child.wait() => {
                // What it left may hold its output: read what comes soon, no more.
                match tokio::time::timeout(DRAIN_AFTER_EXIT, &mut reading).await {
                    Ok(true) => Ended::TooMuch,
                    Ok(false) => Ended::Exited(status, false),
                    Err(_) => Ended::Exited(status, true),
                }
            }
        }
    };
    let ended = tokio::time::timeout(timeout, work).await;
    drop(group);
    let (status, leftover) = match ended {
        Err(_) => {
            return Err(ToolError::Failed(format!(
                "`{program}` did not finish within {} ms; it was killed",
                timeout.as_millis()
            )))
        }
        Ok(Ended::TooMuch) => {
            return Err(ToolError::Failed(format!(
                "`{program}` wrote more than {cap} bytes (max_output_bytes); it was killed"
            )))
        }
        Ok(Ended::Exited(status, leftover)) => (status, leftover),
    };
    let note = leftover.then(|| {
        format!(
            "note: `{program}` exited, but processes it started still held its output \
             {} ms later; they were killed",
            DRAIN_AFTER_EXIT.as_millis()
        )
    });
    let status = status.map_err(|e| ToolError::Failed(format!("`{program}`: {e}")))?;
    let stdout = String::from_utf8_lossy(&out).into_owned();
    match status.code() {
        Some(code) if spec.ok_exit_codes.contains(&code) => {}
        code => {
            let why = match code {
                Some(code) => format!("exit code {code}"),
                None => "killed by a signal".to_owned(),
            };
            let stderr = String::from_utf8_lossy(&err);
            let tail: String = stderr
                .chars()
                .rev()
                .take(2000)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            let note = note.map(|n| format!(" ({n})")).unwrap_or_default();
            return Err(ToolError::Failed(format!(
                "`{program}` failed ({why}): {}{note}",
                tail.trim_end()
            )));
        }
    }
    let mut result = CallToolResult::text(stdout.clone());
    if let Output::Json = spec.output {
        let value: Value = serde_json::from_str(&stdout)
            .map_err(|e| ToolError::Failed(format!("`{program}` did not print JSON: {e}")))?;
        result.structured_content = Some(match value {
            Value::Object(_) => value,
            other => json!({"result": other}),
        });
    }
    if let Some(note) = note {
        result.content.push(Content::text(note));
    }
    Ok(result)
}

/// Read into `kept` at most `cap` bytes; `true` if there was more (then stop).
async fn read_capped<R: tokio::io::AsyncRead + Unpin>(
    source: Option<R>,
    cap: usize,
    kept: &mut Vec<u8>,
) -> bool {
    let Some(mut source) = source else {
        return false;
    };
    let mut buf = [0u8; 8192];
    loop {
        match source.read(&mut buf).await {
            Ok(0) | Err(_) => return false,
            Ok(n) if kept.len() + n > cap => {
                kept.extend_from_slice(&buf[..cap - kept.len()]);
                return true;
            }
            Ok(n) => kept.extend_from_slice(&buf[..n]),
        }
    }
}

/// Read `source` to its end, keeping its last `cap` bytes in `kept` (a program
/// writing much to stderr is not blocked, and its last words are what matter).
async fn read_tail<R: tokio::io::AsyncRead + Unpin>(
    source: Option<R>,
    cap: usize,
    kept: &mut Vec<u8>,
) {
    let Some(mut source) = source else { return };
    let mut buf = [0u8; 8192];
    loop {
        match source.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > cap.saturating_mul(2) {
                    kept.drain(..kept.len() - cap);
                }
            }
        }
    }
}

/// The program gets SIGKILL when emcee (the thread that starts it: a serving
/// thread, alive as long as the server) dies, `kill -9` included.
fn die_with_emcee(command: &mut tokio::process::Command) {
    let parent = libc::pid_t::try_from(std::process::id()).unwrap_or(0);
    // SAFETY: the closure runs in the forked child before exec, so it may only make
    // async-signal-safe calls: it makes two system calls (prctl, getppid) and
    // builds an io::Error from errno (no allocation), nothing else. One of the three
    // `unsafe` blocks of the binary (see main.rs).
    #[allow(unsafe_code)]
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(
                libc::PR_SET_PDEATHSIG,
                libc::SIGKILL as libc::c_ulong,
                0,
                0,
                0,
            ) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            // emcee died between the fork and the prctl: do not run orphaned.
            if libc::getppid() != parent {
                return Err(std::io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

/// Send SIGKILL to process `pid`, or to process group `-pid` when negative.
fn sigkill(pid: libc::pid_t) {
    if pid == 0 || pid == -1 {
        return; // 0 and -1 would mean our own group and every process.
    }
    // SAFETY: kill(2) only sends a signal (a process or group that is gone is
    // ESRCH); 0 and -1 are refused above. One of the three `unsafe` blocks of the
    // binary (see main.rs).
    #[allow(unsafe_code)]
    unsafe {
        libc::kill(pid, libc::SIGKILL);
    }
}

/// What one call started, killed (SIGKILL) when dropped: the process group the
/// program leads, and every process marked with the call's [`CALL_MARK`].
struct Group {
    leader: Option<u32>,
    mark: String,
}

impl Drop for Group {
    fn drop(&mut self) {
        // The program leads its group (`process_group(0)`): its pid is the group id.
        if let Some(pid) = self.leader.and_then(|p| libc::pid_t::try_from(p).ok()) {
            sigkill(-pid);
        }
        sweep(&format!("{CALL_MARK}={}", self.mark));
    }
}

/// SIGKILL every process (of ours: others' environments cannot be read) whose
/// environment holds `entry`; again while the last pass found one (a process may
/// have forked before it died), at most three passes.
fn sweep(entry: &str) {
    let me = std::process::id();
    for _ in 0..3 {
        let Ok(dir) = std::fs::read_dir("/proc") else {
            return;
        };
        let mut found = false;
        for proc in dir.flatten() {
            let Some(pid) = proc
                .file_name()
                .to_str()
                .and_then(|n| n.parse::<u32>().ok())
            else {
                continue;
            };
            if pid == me {
                continue;
            }
            let Ok(environ) = std::fs::read(proc.path().join("environ")) else {
                continue;
            };
            if environ.split(|b| *b == 0).any(|v| v == entry.as_bytes()) {
                if let Ok(pid) = libc::pid_t::try_from(pid) {
                    sigkill(pid);
                    found = true;
                }
            }
        }
        if !found {
            return;
        }
    }
}

/// Register `tools` (already validated) with `default_timeout`.
pub fn register(
    registry: &mut emcee::tools::ToolRegistry,
    tools: &[CommandTool],
    default_timeout: Duration,
) -> Result<(), emcee::tools::DuplicateName> {
    for tool in tools {
        registry.add(self::tool(tool.clone(), default_timeout))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tool(argv: &[&str], a_extra: &str) -> CommandTool {
        let toml = format!(
            "name = \"t\"\nargv = {:?}\n[input.a]\ntype = \"string\"\nrequired = true\n{a_extra}\n[input.b]\ntype = \"integer\"\nminimum = 0\n",
            argv
        );
        toml::from_str(&toml).unwrap()
    }

    #[test]
    fn each_argument_is_one_argv_element_and_absent_optional_ones_are_left_out() {
        let t = tool(
            &["prog", "{a}", "--n={b}", "x{a}y"],
            "allow_option_like = true",
        );
        t.validate().unwrap();
        let values = t
            .arguments(&json!({"a": "; rm -rf / $(id)", "b": 3}))
            .unwrap();
        assert_eq!(
            t.argv(&values).unwrap(),
            ["prog", "; rm -rf / $(id)", "--n=3", "x; rm -rf / $(id)y"]
        );
        let values = t.arguments(&json!({"a": "-v"})).unwrap();
        assert_eq!(t.argv(&values).unwrap(), ["prog", "-v", "x-vy"]);
        assert!(t.arguments(&json!({"b": 1})).is_err(), "a is required");
        assert!(t.arguments(&json!({"a": 1})).is_err(), "a is a string");
        assert!(t.arguments(&json!({"a": "x", "b": -1})).is_err(), "b >= 0");
        assert!(
            t.arguments(&json!({"a": "x", "c": 1})).is_err(),
            "c is unknown"
        );
        assert!(
            tool(&["{a}"], "").validate().is_err(),
            "the program is fixed"
        );
        let t = tool(&["sh", "${HOME:-x} {{a}} {\"k\": {b}}", "--", "{a}"], "");
        t.validate().unwrap();
        let values = t.arguments(&json!({"a": "A", "b": 2})).unwrap();
        assert_eq!(
            t.argv(&values).unwrap(),
            ["sh", "${HOME:-x} {a} {\"k\": 2}", "--", "A"]
        );
        assert!(
            tool(&["p", "--", "{zz}"], "").validate().is_err(),
            "zz is not an input"
        );
    }

    #[test]
    fn a_placeholder_that_can_begin_an_option_is_refused_unless_declared_safe() {
        for argv in [&["p", "{a}"][..], &["p", "{a}.txt"], &["p", "-x", "{b}{a}"]] {
            let e = tool(argv, "").validate().unwrap_err();
            assert!(e.contains("{a}") && e.contains("allow_option_like"), "{e}");
        }
        for argv in [&["p", "--", "{a}"][..], &["p", "x{a}"], &["p", "{b}"]] {
            tool(argv, "").validate().unwrap();
        }
        tool(&["p", "{a}"], "enum = [\"x\", \"y\"]")
            .validate()
            .unwrap();
        assert!(tool(&["p", "{a}"], "enum = [\"x\", \"-y\"]")
            .validate()
            .is_err());
        assert!(
            tool(&["p", "--", "{a}"], "enum = [1]").validate().is_err(),
            "enum of strings"
        );
        // At call time too: -0.0 meets `minimum = 0` but prints as `-0.0`.
        let t: CommandTool = toml::from_str(
            "name = \"n\"\nargv = [\"p\", \"{n}\"]\n[input.n]\ntype = \"number\"\nminimum = 0\n",
        )
        .unwrap();
        t.validate().unwrap();
        let values = t.arguments(&json!({"n": -0.0})).unwrap();
        assert!(t.argv(&values).is_err());
        let values = t.arguments(&json!({"n": 0.5})).unwrap();
        assert_eq!(t.argv(&values).unwrap(), ["p", "0.5"]);
    }

    #[test]
    fn names_are_mcp_tool_names() {
        let named = |name: &str| CommandTool {
            name: name.to_owned(),
            ..tool(&["p"], "")
        };
        named("disk_usage.v2-x").validate().unwrap();
        named(&"n".repeat(128)).validate().unwrap();
        for bad in ["", "disk usage!", "é", &"n".repeat(129)] {
            assert!(named(bad).validate().is_err(), "{bad:?}");
        }
        let e = named("disk usage!").validate().unwrap_err();
        assert!(e.contains("\"disk_usage_\""), "a suggestion: {e}");
    }
}
