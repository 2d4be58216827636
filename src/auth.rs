//! Who may call: bearer tokens (`[auth] tokens_file`) and the [`Principal`] a
//! valid one stands for. The HTTP transport's gate (`transport::http`) asks
//! [`Tokens::check`] before any body is read or session looked up, and puts the
//! principal in the request's extensions; the session reads its tool list.
//!
//! Tokens are kept only as SHA-256 digests and compared in constant time (every
//! digest of the set, `subtle`); a principal is named by a fingerprint of its
//! digest, never by the token. Another kind of credential (OAuth) plugs in by
//! producing a [`Principal`] too. **Invariant:** nothing here logs a token or
//! imports the runtime.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{AuthConfig, ConfigError, OpsAccess};

/// Hex digits of a token's digest that name its principal in logs and session
/// records.
pub const FINGERPRINT_HEX: usize = 8;

/// Who a request comes from, once its credentials are checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The principal's name in logs and session bindings: for a bearer token, the
    /// first [`FINGERPRINT_HEX`] hex digits of its SHA-256 digest.
    pub name: Arc<str>,
    /// The tools it may call; `None`: all.
    pub tools: Option<Arc<HashSet<String>>>,
}

impl Principal {
    /// Whether it may call the tool `name`.
    pub fn may_call(&self, name: &str) -> bool {
        self.tools.as_ref().is_none_or(|tools| tools.contains(name))
    }
}

/// Why [`Tokens::check`] let a request not in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No `Authorization: Bearer` credentials.
    Missing,
    /// A bearer token, but not one of the set (RFC 6750 `invalid_token`).
    Invalid,
}

/// One token of the set: its digest and who it stands for.
#[derive(Debug)]
struct Entry {
    digest: [u8; 32],
    principal: Principal,
}

/// The tokens of one reading of the file.
#[derive(Debug, Default)]
pub struct TokenSet {
    entries: Vec<Entry>,
}

impl TokenSet {
    /// Parse a tokens file's text (`path` names it in errors): one token a line,
    /// optionally followed by whitespace and the comma-separated tools it may call;
    /// `#` comments and blank lines ignored. A token is RFC 6750 `b64token`
    /// characters; the same token twice is an error.
    pub fn parse(path: &Path, text: &str) -> Result<TokenSet, ConfigError> {
        let error = |line: usize, message: &str| ConfigError::Tokens {
            path: path.to_owned(),
            line,
            message: message.to_owned(),
        };
        let mut entries: Vec<Entry> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line_no = n + 1;
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (token, rest) = match line.split_once(char::is_whitespace) {
                Some((token, rest)) => (token, Some(rest.trim())),
                None => (line, None),
            };
            if !is_b64token(token) {
                return Err(error(
                    line_no,
                    "a token is letters, digits and - . _ ~ + / (then = padding only)",
                ));
            }
            let tools = match rest {
                None => None,
                Some(list) => {
                    let mut tools = HashSet::new();
                    for name in list.split(',').map(str::trim) {
                        if name.is_empty() || name.contains(char::is_whitespace) {
                            return Err(error(
                                line_no,
                                "after the token: a comma-separated list of tool names \
                                 (no empty name, no space inside one)",
                            ));
                        }
                        tools.insert(name.to_owned());
                    }
                    Some(Arc::new(tools))
                }
            };
            let digest = digest(token);
            if entries.iter().any(|e| e.digest == digest) {
                return Err(error(line_no, "this token is already on an earlier line"));
            }
            entries.push(Entry {
                principal: Principal {
                    name: fingerprint(&digest).into(),
                    tools,
                },
                digest,
            });
        }
        Ok(TokenSet { entries })
    }

    /// Read and parse the file at `path`.
    pub fn read(path: &Path) -> Result<TokenSet, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Tokens {
            path: path.to_owned(),
            line: 0,
            message: format!("cannot read it: {e}"),
        })?;
        TokenSet::parse(path, &text)
    }

    /// How many tokens it holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The principal `token` stands for: its digest compared with every digest
    /// of the set in constant time (no early exit).
    fn principal_of(&self, token: &str) -> Option<&Principal> {
        let presented = digest(token);
        let mut found = None;
        for entry in &self.entries {
            if bool::from(entry.digest.ct_eq(&presented)) {
                found = Some(&entry.principal);
            }
        }
        found
    }
}

/// RFC 6750 `b64token`: `1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty()
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn fingerprint(digest: &[u8; 32]) -> String {
    let mut hex = String::with_capacity(FINGERPRINT_HEX);
    for b in digest.iter().take(FINGERPRINT_HEX.div_ceil(2)) {
        hex.push_str(&format!("{b:02x}"));
    }
    hex.truncate(FINGERPRINT_HEX);
    hex
}

/// The live token set of a server, read from its file and replaced whole by
/// [`Tokens::reload`] (SIGHUP); clones share it.
#[derive(Debug, Clone)]
pub struct Tokens {
    path: PathBuf,
    set: Arc<RwLock<Arc<TokenSet>>>,
}

impl Tokens {
    /// The tokens of the file at `path`.
    pub fn load(path: &Path) -> Result<Tokens, ConfigError> {
        let set = TokenSet::read(path)?;
        Ok(Tokens {
            path: path.to_owned(),
            set: Arc::new(RwLock::new(Arc::new(set))),
        })
    }

    /// The file they are read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Read the file again: a good file replaces the set (its count returned), a
    /// bad one leaves the set as it was.
    pub fn reload(&self) -> Result<usize, ConfigError> {
        let set = TokenSet::read(&self.path)?;
        let count = set.len();
        let mut current = self
            .set
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        *current = Arc::new(set);
        Ok(count)
    }

    /// How many tokens the current set holds.
    pub fn len(&self) -> usize {
        self.current().len()
    }

    /// Whether the current set holds none.
    pub fn is_empty(&self) -> bool {
        self.current().is_empty()
    }

    fn current(&self) -> Arc<TokenSet> {
        self.set
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    /// The principal of a request whose `Authorization` header values are
    /// `authorization`: exactly one header, `Bearer <token>` (scheme
    /// case-insensitive), and the token in the set.
    pub fn check<'a>(
        &self,
        mut authorization: impl Iterator<Item = &'a [u8]>,
    ) -> Result<Principal, Denied> {
        let (Some(value), None) = (authorization.next(), authorization.next()) else {
            return Err(Denied::Missing);
        };
        let Ok(value) = std::str::from_utf8(value) else {
            return Err(Denied::Invalid);
        };
        let Some((scheme, token)) = value.trim().split_once(' ') else {
            return Err(Denied::Missing);
        };
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(Denied::Missing);
        }
        self.current()
            .principal_of(token.trim())
            .cloned()
            .ok_or(Denied::Invalid)
    }
}

/// What the HTTP transport enforces: the token set and who may read the
/// operations routes.
#[derive(Debug, Clone)]
pub struct Auth {
    /// The live tokens.
    pub tokens: Tokens,
    /// `[auth] ops`.
    pub ops: OpsAccess,
}

impl Auth {
    /// The gate `config` asks for, its file read now; `None` when no tokens file
    /// is configured.
    pub fn from_config(config: &AuthConfig) -> Result<Option<Auth>, ConfigError> {
        let Some(path) = &config.tokens_file else {
            return Ok(None);
        };
        Ok(Some(Auth {
            tokens: Tokens::load(path)?,
            ops: config.ops,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(text: &str) -> Result<TokenSet, ConfigError> {
        TokenSet::parse(Path::new("tokens"), text)
    }

    fn tokens(text: &str) -> Tokens {
        Tokens {
            path: PathBuf::from("tokens"),
            set: Arc::new(RwLock::new(Arc::new(set(text).unwrap()))),
        }
    }

    #[test]
    fn parses_tokens_tools_comments_and_blank_lines() {
        let s = set("# ops\n\nalpha-1\n  beta.2 echo, kv_get\n").unwrap();
        assert_eq!(s.len(), 2);
        let beta = s.principal_of("beta.2").unwrap();
        assert!(beta.may_call("echo") && beta.may_call("kv_get") && !beta.may_call("sleep"));
        assert!(s.principal_of("alpha-1").unwrap().may_call("sleep"));
        assert!(s.principal_of("gamma").is_none());
        assert_eq!(beta.name.len(), FINGERPRINT_HEX);
        assert!(!beta.name.contains("beta"));
    }

    #[test]
    fn a_malformed_line_names_its_line_and_not_the_token() {
        for (text, line) in [
            ("ok\nbad\"token\n", 2),
            ("ok\n\n# c\nsecret echo,,sleep\n", 4),
            ("same\nsame\n", 2),
            ("=\n", 1),
        ] {
            let e = set(text).unwrap_err().to_string();
            assert!(e.contains(&format!("line {line}:")), "{e}");
            assert!(!e.contains("secret") && !e.contains("same\n"), "{e}");
        }
    }

    #[test]
    fn checks_the_bearer_header() {
        let t = tokens("right\n");
        let h = |v: &'static str| std::iter::once(v.as_bytes());
        assert!(t.check(h("Bearer right")).is_ok());
        assert!(t.check(h("bearer right")).is_ok());
        assert_eq!(t.check(h("Bearer wrong")), Err(Denied::Invalid));
        assert_eq!(t.check(h("Basic cmlnaHQ=")), Err(Denied::Missing));
        assert_eq!(t.check(std::iter::empty()), Err(Denied::Missing));
        let two = ["Bearer right".as_bytes(), "Bearer right".as_bytes()];
        assert_eq!(t.check(two.into_iter()), Err(Denied::Missing));
    }
}
