//! `[[tools.command]]`: a program declared as a tool (what the file says and its
//! checks; `crate::tools::command` runs it). See the README, "Command tools".

use std::collections::BTreeMap;
use std::path::PathBuf;

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
}
