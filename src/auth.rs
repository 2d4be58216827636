//! Who may call: bearer tokens (`[auth] tokens_file`), OAuth 2.1 access tokens
//! (`[auth] issuer`, [`oauth`]), and the [`Principal`] a valid one stands for. The
//! HTTP transport's gate (`transport::http`) asks [`Auth::check`] before any body
//! is read or session looked up, and puts the principal in the request's
//! extensions; the session reads what it may call.
//!
//! Tokens are kept only as SHA-256 digests and compared in constant time (every
//! digest of the set, `subtle`); a principal is named by a fingerprint of its
//! digest, never by the token. With both kinds on, a request's bearer value is
//! looked up among the tokens first, then checked as a JWT. **Invariant:** nothing
//! here logs a token or imports the runtime.

#[cfg(feature = "oauth")]
pub mod oauth;

use std::collections::{BTreeMap, BTreeSet, HashSet};
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
    /// For an OAuth access token: its scopes, and the scope each guarded tool
    /// needs (`[auth.scopes]`); `None`: no scope is asked (a bearer token).
    pub scopes: Option<Arc<Grant>>,
}

/// The scopes of an access token and what `[auth.scopes]` asks.
#[derive(Debug, PartialEq, Eq)]
pub struct Grant {
    /// The token's `scope` claim, split.
    pub granted: BTreeSet<String>,
    /// Tool name → the scope it needs.
    pub required: Arc<BTreeMap<String, String>>,
}

impl Principal {
    /// Whether it may call the tool `name`: in its tool list, and holding the
    /// scope the tool needs.
    pub fn may_call(&self, name: &str) -> bool {
        self.tools.as_ref().is_none_or(|tools| tools.contains(name))
            && self.missing_scope(name).is_none()
    }

    /// The scope the tool `name` needs that it does not hold, if any.
    pub fn missing_scope(&self, name: &str) -> Option<&str> {
        let grant = self.scopes.as_ref()?;
        let needed = grant.required.get(name)?;
        (!grant.granted.contains(needed)).then_some(needed.as_str())
    }

    /// Whether some tools are out of its reach (its `tools/list` is filtered).
    pub fn is_limited(&self) -> bool {
        self.tools.is_some() || self.scopes.as_ref().is_some_and(|g| !g.required.is_empty())
    }
}

/// Why [`Auth::check`] let a request not in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No `Authorization: Bearer` credentials.
    Missing,
    /// A bearer token, but not one of the set (RFC 6750 `invalid_token`).
    Invalid,
    /// An OAuth access token refused (`invalid_token`), and why (a fixed text,
    /// the challenge's `error_description`).
    Rejected(&'static str),
    /// More than one `Authorization` header: RFC 6750 `invalid_request`, 400.
    Malformed,
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
                    name: hex(&digest, FINGERPRINT_HEX).into(),
                    tools,
                    scopes: None,
                },
                digest,
            });
        }
        Ok(TokenSet { entries })
    }

    /// Every tool name a token of the set is limited to.
    pub fn tool_names(&self) -> std::collections::BTreeSet<String> {
        self.entries
            .iter()
            .filter_map(|e| e.principal.tools.as_ref())
            .flat_map(|tools| tools.iter().cloned())
            .collect()
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

/// The first `digits` hex digits of `digest`.
fn hex(digest: &[u8; 32], digits: usize) -> String {
    let mut hex = String::with_capacity(digits);
    for b in digest.iter().take(digits.div_ceil(2)) {
        hex.push_str(&format!("{b:02x}"));
    }
    hex.truncate(digits);
    hex
}

/// The bearer token of a request whose `Authorization` header values are
/// `authorization`: exactly one header, `Bearer <token>` (scheme
/// case-insensitive).
fn bearer<'a>(mut authorization: impl Iterator<Item = &'a [u8]>) -> Result<&'a str, Denied> {
    let value = match (authorization.next(), authorization.next()) {
        (Some(value), None) => value,
        (None, _) => return Err(Denied::Missing),
        (Some(_), Some(_)) => return Err(Denied::Malformed),
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
    Ok(token.trim())
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

    /// Every tool name a token of the current set is limited to.
    pub fn tool_names(&self) -> std::collections::BTreeSet<String> {
        self.current().tool_names()
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
        authorization: impl Iterator<Item = &'a [u8]>,
    ) -> Result<Principal, Denied> {
        let token = bearer(authorization)?;
        self.principal_of(token).ok_or(Denied::Invalid)
    }

    fn principal_of(&self, token: &str) -> Option<Principal> {
        self.current().principal_of(token).cloned()
    }
}

/// What the HTTP transport enforces: bearer tokens and/or OAuth access tokens,
/// and who may read the operations routes.
#[derive(Debug, Clone)]
pub struct Auth {
    /// The live tokens (`[auth] tokens_file`), if any.
    pub tokens: Option<Tokens>,
    /// `[auth] ops`.
    pub ops: OpsAccess,
    /// The OAuth resource server (`[auth] issuer`), if on.
    #[cfg(feature = "oauth")]
    pub oauth: Option<Arc<oauth::OAuth>>,
}

impl Auth {
    /// The tool names the tokens file's lists and `[auth.scopes]` hold that
    /// `known` says the server does not have (sorted, each once): a token limited
    /// to a misspelt tool can call nothing by that name, a scope on one guards
    /// nothing.
    pub fn unknown_tools(&self, known: impl Fn(&str) -> bool) -> Vec<String> {
        let mut named = self
            .tokens
            .as_ref()
            .map(Tokens::tool_names)
            .unwrap_or_default();
        #[cfg(feature = "oauth")]
        if let Some(oauth) = &self.oauth {
            named.extend(oauth.scoped_tools().map(str::to_owned));
        }
        named.retain(|name| !known(name));
        named.into_iter().collect()
    }

    /// The gate `config` asks for, its files read now; `None` when neither a
    /// tokens file nor OAuth is configured.
    pub fn from_config(config: &AuthConfig) -> Result<Option<Auth>, ConfigError> {
        config.validate()?;
        let tokens = match &config.tokens_file {
            Some(path) => Some(Tokens::load(path)?),
            None => None,
        };
        #[cfg(feature = "oauth")]
        let oauth = oauth::OAuth::from_config(config)?.map(Arc::new);
        #[cfg(feature = "oauth")]
        let on = oauth.is_some();
        #[cfg(not(feature = "oauth"))]
        let on = false;
        if tokens.is_none() && !on {
            return Ok(None);
        }
        Ok(Some(Auth {
            tokens,
            ops: config.ops,
            #[cfg(feature = "oauth")]
            oauth,
        }))
    }

    /// The principal of a request whose `Authorization` header values are
    /// `authorization`: a bearer token of the file, else (OAuth on) a valid JWT
    /// access token. May wait for a JWKS fetch.
    pub async fn check<'a>(
        &self,
        authorization: impl Iterator<Item = &'a [u8]>,
    ) -> Result<Principal, Denied> {
        let token = bearer(authorization)?;
        if let Some(principal) = self.tokens.as_ref().and_then(|t| t.principal_of(token)) {
            return Ok(principal);
        }
        #[cfg(feature = "oauth")]
        if let Some(oauth) = &self.oauth {
            return oauth.verify(token).await.map_err(Denied::Rejected);
        }
        Err(Denied::Invalid)
    }

    /// Whether OAuth access tokens are accepted.
    pub fn oauth_on(&self) -> bool {
        #[cfg(feature = "oauth")]
        return self.oauth.is_some();
        #[cfg(not(feature = "oauth"))]
        false
    }

    /// The `WWW-Authenticate` value of a 401 for `denied` (RFC 6750 §3; with
    /// OAuth, RFC 9728 §5.1's `resource_metadata` and the scopes the tools need).
    pub fn challenge(&self, denied: Denied) -> String {
        let mut parts: Vec<String> = Vec::new();
        match denied {
            Denied::Missing => {}
            Denied::Malformed => parts.push("error=\"invalid_request\"".into()),
            Denied::Invalid => parts.push("error=\"invalid_token\"".into()),
            Denied::Rejected(why) => {
                parts.push("error=\"invalid_token\"".into());
                parts.push(format!("error_description=\"{why}\""));
            }
        }
        #[cfg(feature = "oauth")]
        if let Some(oauth) = &self.oauth {
            parts.push(format!("resource_metadata=\"{}\"", oauth.metadata_url()));
            if !oauth.scopes_supported().is_empty() {
                parts.push(format!("scope=\"{}\"", oauth.scopes_supported().join(" ")));
            }
        }
        if parts.is_empty() {
            "Bearer".into()
        } else {
            format!("Bearer {}", parts.join(", "))
        }
    }

    /// The `WWW-Authenticate` value of a 403 for a tool that needs `scope`
    /// (RFC 6750 §3.1 `insufficient_scope`).
    pub fn insufficient_scope(&self, scope: &str) -> String {
        #[allow(unused_mut)]
        let mut challenge = format!("Bearer error=\"insufficient_scope\", scope=\"{scope}\"");
        #[cfg(feature = "oauth")]
        if let Some(oauth) = &self.oauth {
            challenge.push_str(&format!(", resource_metadata=\"{}\"", oauth.metadata_url()));
        }
        challenge
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
        assert!(!beta.is_limited() || beta.tools.is_some());
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
        assert_eq!(t.check(two.into_iter()), Err(Denied::Malformed));
    }
}
