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
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use tokio::io::AsyncReadExt;

use super::{Tool, ToolError, ToolOutcome};
use crate::protocol::CallToolResult;

/// One `[[tools.command]]` table.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CommandTool {
    /// The tool's name.
    pub name: String,
    /// What it does (shown to the model).
    #[serde(default)]
    pub description: String,
    /// The program, then its arguments; `{name}` is replaced by argument `name`.
    pub argv: Vec<String>,
    /// The arguments: name → type, description, whether required.
    #[serde(default)]
    pub input: BTreeMap<String, InputProperty>,
    /// Working directory (default: emcee's).
    #[serde(default)]
    pub cwd: Option<PathBuf>,
    /// Environment variables passed through from emcee's environment (no others).
    #[serde(default = "default_env")]
    pub env: Vec<String>,
    /// Longest run; then the process group is killed (default: `limits.call_timeout_ms`).
    #[serde(default)]
    pub timeout_ms: Option<u64>,
    /// Most bytes of stdout kept (and of stderr); more is an `isError` result.
    #[serde(default = "default_output_cap")]
    pub max_output_bytes: usize,
    /// Exit codes that mean success.
    #[serde(default = "default_ok_codes")]
    pub ok_exit_codes: Vec<i32>,
    /// `text` (default) or `json`: stdout parsed into `structuredContent` too.
    #[serde(default)]
    pub output: Output,
}

/// What stdout is.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Output {
    /// Plain text.
    #[default]
    Text,
    /// A JSON value, also returned as `structuredContent` (an object) .
    Json,
}

/// One argument of a command tool.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct InputProperty {
    /// `string`, `integer`, `number` or `boolean`.
    #[serde(rename = "type")]
    pub kind: Kind,
    /// Shown to the model.
    #[serde(default)]
    pub description: Option<String>,
    /// Whether a call must give it.
    #[serde(default)]
    pub required: bool,
}

/// The type of an argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A JSON string.
    String,
    /// A JSON integer.
    Integer,
    /// A JSON number.
    Number,
    /// A JSON boolean.
    Boolean,
}

fn default_env() -> Vec<String> {
    vec!["PATH".to_owned()]
}

fn default_output_cap() -> usize {
    1024 * 1024
}

fn default_ok_codes() -> Vec<i32> {
    vec![0]
}

/// A piece of an argv element: literal text, or the value of an argument.
#[derive(Debug, PartialEq, Eq)]
enum Piece<'a> {
    Text(std::borrow::Cow<'a, str>),
    Arg(&'a str),
}

/// An argv element's pieces: `{name}` (a name of letters, digits and `_`) is an
/// argument; `{{` and `}}` are literal braces; any other brace is literal too (so
/// `${HOME:-x}` or a JSON template stay as written).
fn pieces(element: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut text = String::new();
    let mut rest = element;
    while let Some(at) = rest.find(['{', '}']) {
        text.push_str(&rest[..at]);
        let tail = &rest[at..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            text.push_str(&tail[..1]);
            rest = &tail[2..];
            continue;
        }
        if let Some(close) = tail.find('}').filter(|_| tail.starts_with('{')) {
            let name = &tail[1..close];
            let ident = !name.is_empty()
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                && !name.starts_with(|c: char| c.is_ascii_digit());
            if ident {
                if !text.is_empty() {
                    out.push(Piece::Text(std::mem::take(&mut text).into()));
                }
                out.push(Piece::Arg(name));
                rest = &tail[close + 1..];
                continue;
            }
        }
        text.push_str(&tail[..1]);
        rest = &tail[1..];
    }
    text.push_str(rest);
    if !text.is_empty() || out.is_empty() {
        out.push(Piece::Text(text.into()));
    }
    out
}

/// The argument names an argv element uses.
fn placeholders(element: &str) -> Vec<&str> {
    pieces(element)
        .into_iter()
        .filter_map(|p| match p {
            Piece::Arg(name) => Some(name),
            Piece::Text(_) => None,
        })
        .collect()
}

impl CommandTool {
    /// Check the declaration: a program, placeholders naming declared arguments.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.trim().is_empty() {
            return Err("a command tool needs a name".into());
        }
        let Some(program) = self.argv.first() else {
            return Err(format!("command tool `{}`: argv is empty", self.name));
        };
        if !placeholders(program).is_empty() {
            return Err(format!(
                "command tool `{}`: the program (argv[0]) cannot be templated",
                self.name
            ));
        }
        for element in &self.argv {
            for name in placeholders(element) {
                if !self.input.contains_key(name) {
                    return Err(format!(
                        "command tool `{}`: argv names {{{name}}}, which is not an input",
                        self.name
                    ));
                }
            }
        }
        if self.max_output_bytes == 0 {
            return Err(format!(
                "command tool `{}`: max_output_bytes must be > 0",
                self.name
            ));
        }
        Ok(())
    }

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

    /// The tool: `default_timeout` unless the declaration sets one.
    pub fn into_tool(self, default_timeout: Duration) -> Tool {
        let schema = self.schema();
        let name = self.name.clone();
        let description = self.description.clone();
        let timeout = self
            .timeout_ms
            .map_or(default_timeout, Duration::from_millis);
        let spec = std::sync::Arc::new(self);
        Tool::raw(name, description, schema, move |_ctx, args| {
            let spec = spec.clone();
            async move { spec.run(&args, timeout).await }
        })
        // The tool's own limit: its process group is killed when it passes.
        .timeout(timeout + Duration::from_millis(500))
    }

    async fn run(&self, args: &Value, timeout: Duration) -> ToolOutcome {
        let values = self.arguments(args)?;
        let argv = self.argv(&values);
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
        for name in &self.env {
            if let Some(value) = std::env::var_os(name) {
                command.env(name, value);
            }
        }
        if let Some(cwd) = &self.cwd {
            command.current_dir(cwd);
        }
        let mut child = command
            .spawn()
            .map_err(|e| ToolError::Failed(format!("cannot start `{program}`: {e}")))?;
        // From here, dropping this future (timeout, cancellation) kills the group.
        let group = Group(child.id());
        let cap = self.max_output_bytes;
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
            Some(code) if self.ok_exit_codes.contains(&code) => {}
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
        match self.output {
            Output::Text => Ok(CallToolResult::text(stdout)),
            Output::Json => {
                let value: Value = serde_json::from_str(&stdout).map_err(|e| {
                    ToolError::Failed(format!("`{program}` did not print JSON: {e}"))
                })?;
                let mut result = CallToolResult::text(stdout);
                result.structured_content = Some(match value {
                    Value::Object(_) => value,
                    other => json!({"result": other}),
                });
                Ok(result)
            }
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
            unsafe {
                libc::killpg(pid, libc::SIGKILL);
            }
        }
    }
}

/// Register `tools` (already validated) with `default_timeout`.
pub fn register(
    registry: &mut super::ToolRegistry,
    tools: &[CommandTool],
    default_timeout: Duration,
) -> Result<(), super::DuplicateName> {
    for tool in tools {
        registry.add(tool.clone().into_tool(default_timeout))?;
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
