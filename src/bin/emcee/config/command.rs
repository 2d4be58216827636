//! `[[tools.command]]`: a program declared as a tool (what the file says and its
//! checks; `crate::tools::command` runs it). See the README, "Command tools".

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

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
    /// Most bytes of the program's stdout kept (default 1 MiB, [`DEFAULT_OUTPUT_CAP`]);
    /// more is an `isError` result and the program is killed. Of stderr, the last
    /// this many bytes are kept. Not to be confused with `limits.max_output_bytes`
    /// (the stdio transport's bound on answers its client has not read yet).
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
    /// `integer` or `number`: the least value allowed (`minimum = 0`: the value
    /// cannot start with `-`, so it may begin an argument before `--`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub minimum: Option<f64>,
    /// The only values allowed (each of the declared type). When none starts with
    /// `-`, the argument may begin an argument before `--`.
    #[serde(default, rename = "enum", skip_serializing_if = "Option::is_none")]
    pub choices: Option<Vec<serde_json::Value>>,
    /// Let this argument begin an argv element before any `--` although its value
    /// could start with `-` (a program that takes no options there, e.g. `printf`
    /// after its format): the value may then be read as an option.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub allow_option_like: bool,
}

impl InputProperty {
    /// Whether every value this input accepts is text not starting with `-`.
    pub fn cannot_start_with_dash(&self) -> bool {
        let by_type = match self.kind {
            Kind::Boolean => true,
            Kind::Integer | Kind::Number => self.minimum.is_some_and(|m| m >= 0.0),
            Kind::String => false,
        };
        by_type
            || self.choices.as_ref().is_some_and(|values| {
                values
                    .iter()
                    .all(|v| !argv_text(v).is_some_and(|t| t.starts_with('-')))
            })
    }

    /// Whether `value` is one of the `enum` values and at least `minimum`: the
    /// reason if not.
    pub fn admits(&self, value: &serde_json::Value) -> Result<(), String> {
        if let Some(values) = &self.choices {
            if !values.contains(value) {
                return Err(format!(
                    "must be one of {}",
                    serde_json::Value::from(values.clone())
                ));
            }
        }
        if let (Some(min), Some(n)) = (self.minimum, value.as_f64()) {
            if n < min {
                return Err(format!("must be at least {min}"));
            }
        }
        Ok(())
    }
}

/// The argv text of a JSON value of one of the declared types (`None`: not one).
pub fn argv_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

impl Kind {
    /// Whether `value` is of this type.
    pub fn admits(self, value: &serde_json::Value) -> bool {
        match (self, value) {
            (Kind::String, serde_json::Value::String(_)) => true,
            (Kind::Integer, serde_json::Value::Number(n)) => n.is_i64() || n.is_u64(),
            (Kind::Number, serde_json::Value::Number(_)) => true,
            (Kind::Boolean, serde_json::Value::Bool(_)) => true,
            _ => false,
        }
    }

    /// Its name in a schema (`string`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Kind::String => "string",
            Kind::Integer => "integer",
            Kind::Number => "number",
            Kind::Boolean => "boolean",
        }
    }
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

/// The default of a command tool's `max_output_bytes`: 1 MiB.
pub const DEFAULT_OUTPUT_CAP: usize = 1024 * 1024;

fn default_output_cap() -> usize {
    DEFAULT_OUTPUT_CAP
}

/// The longest tool name MCP allows.
pub const MAX_NAME_LEN: usize = 128;

fn default_ok_codes() -> Vec<i32> {
    vec![0]
}

/// A piece of an argv element: literal text, or the value of an argument.
#[derive(Debug, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Literal text.
    Text(std::borrow::Cow<'a, str>),
    /// The value of the argument so named.
    Arg(&'a str),
}

/// An argv element's pieces: `{name}` (a name of letters, digits and `_`) is an
/// argument; `{{` and `}}` are literal braces; any other brace is literal too (so
/// `${HOME:-x}` or a JSON template stay as written).
pub fn pieces(element: &str) -> Vec<Piece<'_>> {
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

/// The argv elements a value could turn into an option: each element after the
/// program and before any `--` element, with the placeholders that begin it (those
/// before its first literal text; all of them when the ones before may be empty).
pub fn option_positions(argv: &[String]) -> Vec<(usize, Vec<&str>)> {
    let mut out = Vec::new();
    for (i, element) in argv.iter().enumerate().skip(1) {
        if element == "--" {
            break;
        }
        let leading: Vec<&str> = pieces(element)
            .into_iter()
            .map_while(|p| match p {
                Piece::Arg(name) => Some(name),
                Piece::Text(_) => None,
            })
            .collect();
        if !leading.is_empty() {
            out.push((i, leading));
        }
    }
    out
}

impl CommandTool {
    /// Check the declaration: an MCP tool name, a program, placeholders naming
    /// declared arguments, none able to pass for an option unless declared so.
    pub fn validate(&self) -> Result<(), String> {
        let name = &self.name;
        if name.is_empty()
            || name.len() > MAX_NAME_LEN
            || !name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
        {
            return Err(format!(
                "`name = {name:?}`: a tool name is 1 to {MAX_NAME_LEN} of A-Za-z0-9_.- \
                 (MCP's tool names): rename it, e.g. {:?}",
                suggest_name(name)
            ));
        }
        let Some(program) = self.argv.first() else {
            return Err(format!("command tool `{name}`: argv is empty"));
        };
        if !placeholders(program).is_empty() {
            return Err(format!(
                "command tool `{name}`: the program (argv[0]) cannot be templated"
            ));
        }
        for element in &self.argv {
            for arg in placeholders(element) {
                if !self.input.contains_key(arg) {
                    return Err(format!(
                        "command tool `{name}`: argv names {{{arg}}}, which is not an input"
                    ));
                }
            }
        }
        for (arg, p) in &self.input {
            if let Some(values) = &p.choices {
                if values.is_empty() {
                    return Err(format!(
                        "command tool `{name}`: input `{arg}`: enum is empty"
                    ));
                }
                if let Some(v) = values.iter().find(|v| !p.kind.admits(v)) {
                    return Err(format!(
                        "command tool `{name}`: input `{arg}`: enum value {v} is not a {}",
                        p.kind.name()
                    ));
                }
            }
            if p.minimum.is_some() && !matches!(p.kind, Kind::Integer | Kind::Number) {
                return Err(format!(
                    "command tool `{name}`: input `{arg}`: minimum needs type integer or number"
                ));
            }
        }
        for (i, leading) in option_positions(&self.argv) {
            for arg in leading {
                let safe = self
                    .input
                    .get(arg)
                    .is_some_and(|p| p.allow_option_like || p.cannot_start_with_dash());
                if !safe {
                    return Err(format!(
                        "command tool `{name}`: {{{arg}}} begins argv[{i}] before any \"--\", \
                         so a value such as `--output=FILE` would reach `{program}` as an \
                         option: put \"--\" before it (if `{program}` takes it), start the \
                         element with literal text, constrain the input (`minimum = 0`, an \
                         `enum` with no value starting with `-`), or set \
                         `allow_option_like = true` on [tools.command.input.{arg}]"
                    ));
                }
            }
        }
        if self.max_output_bytes == 0 {
            return Err(format!(
                "command tool `{name}`: max_output_bytes must be > 0"
            ));
        }
        Ok(())
    }

    /// Check that the program can be run: a path to an executable file, or a
    /// name found on `PATH` (emcee's, which the program gets when `env` lists it).
    pub fn check_program(&self) -> Result<(), String> {
        let Some(program) = self.argv.first() else {
            return Ok(());
        };
        let name = &self.name;
        let executable = |path: &Path| {
            use std::os::unix::fs::PermissionsExt;
            std::fs::metadata(path)
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        };
        if program.contains('/') {
            let path = match &self.cwd {
                Some(cwd) if Path::new(program).is_relative() => cwd.join(program),
                _ => PathBuf::from(program),
            };
            if executable(&path) {
                return Ok(());
            }
            return Err(format!(
                "command tool `{name}`: `{}` is not an executable file: fix argv[0] \
                 (or the file's mode)",
                path.display()
            ));
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        if std::env::split_paths(&path).any(|dir| executable(&dir.join(program))) {
            return Ok(());
        }
        Err(format!(
            "command tool `{name}`: program `{program}` is not an executable found on \
             PATH ({}): install it, or give its full path in argv[0]",
            path.to_string_lossy()
        ))
    }
}

/// `name` with every character MCP does not allow in tool names made `_`.
fn suggest_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-') {
                c
            } else {
                '_'
            }
        })
        .take(MAX_NAME_LEN)
        .collect();
    if out.is_empty() {
        out.push_str("tool");
    }
    out
}
