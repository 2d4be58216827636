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
//! the element stays one argument whatever the value holds (spaces, quotes, `;`, `$(…)`, a leading `-`):
//! nothing is split or interpreted. An element naming an optional argument the call
//! does not give is left out. The program gets only the environment variables named
//! in `env` (default `PATH`), runs in `cwd` (default emcee's), in a process group of
//! its own that is killed, children included, on timeout or cancellation. Its stdout
//! is the result's text (parsed into `structuredContent` with `output = "json"`),
//! bounded by `max_output_bytes`; an exit code not in `ok_exit_codes` (default `[0]`)
//! is an `isError` result carrying the end of its stderr.

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio::io::AsyncReadExt;

use crate::config::command::{pieces, Piece};
pub use crate::config::command::{CommandTool, Kind, Output};
use emcee::protocol::CallToolResult;
use emcee::tools::{Tool, ToolError, ToolOutcome};

/// The runtime side of a [`CommandTool`] declaration.
trait Run {
    fn schema(&self) -> Value;
    fn arguments(&self, args: &Value) -> Result<BTreeMap<String, String>, ToolError>;
    fn argv(&self, values: &BTreeMap<String, String>) -> Vec<String>;
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
            let text = match (p.kind, value) {
                (Kind::String, Value::String(s)) => s.clone(),
                (Kind::Integer, Value::Number(n)) if n.is_i64() || n.is_u64() => n.to_string(),
                (Kind::Number, Value::Number(n)) => n.to_string(),
                (Kind::Boolean, Value::Bool(b)) => b.to_string(),
                (kind, _) => {
                    return Err(ToolError::InvalidArguments(format!(
                        "`{name}`: expected {}",
                        serde_json::to_value(kind).unwrap_or_default()
                    )))
                }
            };
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
    /// left out. Each element stays one argument.
    fn argv(&self, values: &BTreeMap<String, String>) -> Vec<String> {
        self.argv
            .iter()
            .filter_map(|element| {
                let mut out = String::with_capacity(element.len());
                for piece in pieces(element) {
                    match piece {
                        Piece::Text(text) => out.push_str(&text),
                        Piece::Arg(name) => out.push_str(values.get(name)?),
                    }
                }
                Some(out)
            })
            .collect()
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
    .timeout(timeout + Duration::from_millis(500))
}

async fn run(spec: &CommandTool, args: &Value, timeout: Duration) -> ToolOutcome {
    let values = spec.arguments(args)?;
    let argv = spec.argv(&values);
    let (program, rest) = argv
        .split_first()
        .ok_or_else(|| ToolError::Failed("empty argv".into()))?;
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
    if let Some(cwd) = &spec.cwd {
        command.current_dir(cwd);
    }
    let mut child = command
        .spawn()
        .map_err(|e| ToolError::Failed(format!("cannot start `{program}`: {e}")))?;
    // From here, dropping this future (timeout, cancellation) kills the group.
    let group = Group(child.id());
    let cap = spec.max_output_bytes;
    let stdout = child.stdout.take();
    let stderr = child.stderr.take();
    let read = async {
        let (out, err) = tokio::join!(read_capped(stdout, cap), read_capped(stderr, cap));
        let status = child.wait().await;
        (out, err, status)
    };
    let (out, err, status) = match tokio::time::timeout(timeout, read).await {
        Ok(done) => done,
        Err(_) => {
            drop(group);
            return Err(ToolError::Failed(format!(
                "`{program}` did not finish within {} ms; it was killed",
                timeout.as_millis()
            )));
        }
    };
    drop(group);
    let (out, out_over) = out;
    let (err, _) = err;
    if out_over {
        return Err(ToolError::Failed(format!(
            "`{program}` wrote more than {cap} bytes (max_output_bytes); it was killed"
        )));
    }
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
            return Err(ToolError::Failed(format!(
                "`{program}` failed ({why}): {}",
                tail.trim_end()
            )));
        }
    }
    match spec.output {
        Output::Text => Ok(CallToolResult::text(stdout)),
        Output::Json => {
            let value: Value = serde_json::from_str(&stdout)
                .map_err(|e| ToolError::Failed(format!("`{program}` did not print JSON: {e}")))?;
            let mut result = CallToolResult::text(stdout);
            result.structured_content = Some(match value {
                Value::Object(_) => value,
                other => json!({"result": other}),
            });
            Ok(result)
        }
    }
}

/// Read at most `cap` bytes; the flag says whether there was more.
async fn read_capped<R: tokio::io::AsyncRead + Unpin>(
    source: Option<R>,
    cap: usize,
) -> (Vec<u8>, bool) {
    let Some(mut source) = source else {
        return (Vec::new(), false);
    };
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match source.read(&mut buf).await {
            Ok(0) | Err(_) => return (kept, false),
            Ok(n) if kept.len() + n > cap => {
                kept.extend_from_slice(&buf[..cap - kept.len()]);
                return (kept, true);
            }
            Ok(n) => kept.extend_from_slice(&buf[..n]),
        }
    }
}

/// A process group, killed (SIGKILL, every member) when dropped.
struct Group(Option<u32>);

impl Drop for Group {
    fn drop(&mut self) {
        if let Some(pid) = self.0.and_then(|p| i32::try_from(p).ok()) {
            // The child leads its group (`process_group(0)`): its pid is the group id.
            // SAFETY: killpg only sends a signal; a group that is gone is ESRCH.
            // The one `unsafe` block of the crate (the library forbids any).
            #[allow(unsafe_code)]
            unsafe {
                libc::killpg(pid, libc::SIGKILL);
            }
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

    fn tool(argv: &[&str]) -> CommandTool {
        let toml = format!(
            "name = \"t\"\nargv = {:?}\n[input.a]\ntype = \"string\"\nrequired = true\n[input.b]\ntype = \"integer\"\n",
            argv
        );
        toml::from_str(&toml).unwrap()
    }

    #[test]
    fn each_argument_is_one_argv_element_and_absent_optional_ones_are_left_out() {
        let t = tool(&["prog", "{a}", "--n={b}", "x{a}y"]);
        t.validate().unwrap();
        let values = t
            .arguments(&json!({"a": "; rm -rf / $(id)", "b": 3}))
            .unwrap();
        assert_eq!(
            t.argv(&values),
            ["prog", "; rm -rf / $(id)", "--n=3", "x; rm -rf / $(id)y"]
        );
        let values = t.arguments(&json!({"a": "-v"})).unwrap();
        assert_eq!(t.argv(&values), ["prog", "-v", "x-vy"]);
        assert!(t.arguments(&json!({"b": 1})).is_err(), "a is required");
        assert!(t.arguments(&json!({"a": 1})).is_err(), "a is a string");
        assert!(
            t.arguments(&json!({"a": "x", "c": 1})).is_err(),
            "c is unknown"
        );
        assert!(tool(&["{a}"]).validate().is_err(), "the program is fixed");
        let t = tool(&["sh", "${HOME:-x} {{a}} {\"k\": {b}}", "{a}"]);
        t.validate().unwrap();
        let values = t.arguments(&json!({"a": "A", "b": 2})).unwrap();
        assert_eq!(t.argv(&values), ["sh", "${HOME:-x} {a} {\"k\": 2}", "A"]);
        assert!(
            tool(&["p", "{zz}"]).validate().is_err(),
            "zz is not an input"
        );
    }
}
