//! OAuth 2.1 resource server (`[auth] issuer`, cargo feature `oauth`): JWT access
//! tokens checked against the issuer's JWKS, and the RFC 9728 metadata that tells
//! a client where to get one.
//!
//! A token is accepted only when it is a JWS signed with an asymmetric algorithm
//! (RS*, PS*, ES256, ES384, EdDSA; never `none` or HS*) by a key of the JWKS whose
//! type fits the algorithm, and its claims hold `iss` equal to `[auth] issuer`,
//! `aud` containing the audience (by default the resource URI, RFC 8707), `exp` in
//! the future and `nbf` (when present) in the past, within `[auth] leeway_s`, and a
//! `sub`. None of these checks can be turned off. The `scope` claim
//! (space-separated) grants the tools `[auth.scopes]` guards.
//!
//! The JWKS is read from `[auth] jwks_file` at start, or fetched from
//! `[auth] jwks_url` ([`Jwks`]): at start, then again when a token names a key
//! the set does not hold, no more often than `[auth] jwks_refresh_min_s`, one
//! fetch at a time; a failed fetch keeps the keys already held (logged, counted in
//! `mcp_jwks_fetch_failures_total`).
//!
//! A principal is named by 16 hex digits of SHA-256(`iss` NUL `sub`): bounded, and
//! never equal to a bearer token's 8-digit name. **Invariant:** no token, claim or
//! key material is logged; refusal descriptions are fixed strings.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, KeyAlgorithm, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::{Grant, Principal};
use crate::config::{bad, AuthConfig, ConfigError};

/// Hex digits of SHA-256(iss NUL sub) that name an OAuth principal.
pub const SUBJECT_HEX: usize = 16;
/// Keys a JWKS may hold; more is refused as a whole (the old set is kept).
pub const MAX_KEYS: usize = 64;
/// Longest access token looked at (bytes); a longer one is refused unread.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Most scopes a token's `scope` claim may list.
pub const MAX_SCOPES: usize = 64;
/// Longest scope of a token's `scope` claim (bytes).
pub const MAX_SCOPE_BYTES: usize = 256;

/// The RFC 9728 well-known path; the metadata of a resource whose URI has a path
/// is at this path followed by the resource's path.
pub const METADATA_PATH: &str = "/.well-known/oauth-protected-resource";

/// Why a JWT was refused: the `error_description` of the 401 (fixed text, no
/// token or claim in it).
pub type Rejection = &'static str;

/// The resource server's settings and the issuer's keys; shared by the workers.
#[derive(Debug)]
pub struct OAuth {
    issuer: String,
    audience: Option<String>,
    resource: OnceLock<String>,
    authorization_servers: Vec<String>,
    required: Arc<BTreeMap<String, String>>,
    scopes_supported: Vec<String>,
    leeway: u64,
    keys: Arc<Jwks>,
}

impl OAuth {
    /// The resource server `config` asks for (its JWKS file read now); `None`
    /// when OAuth is off (no `[auth] issuer`).
    pub fn from_config(config: &AuthConfig) -> Result<Option<OAuth>, ConfigError> {
        if !config.oauth_enabled() {
            return Ok(None);
        }
        config.validate()?;
        let issuer = config.issuer.clone().unwrap_or_default();
        let source = match (&config.jwks_file, &config.jwks_url) {
            (Some(path), _) => Source::File(path.clone()),
            (None, Some(url)) => Source::Url {
                url: url.clone(),
                timeout: config.jwks_timeout,
                max_bytes: config.jwks_max_bytes,
            },
            (None, None) => return Err(bad("auth.jwks_file", "or auth.jwks_url is required")),
        };
        let keys = Jwks::new(source, config.jwks_refresh_min);
        if let Source::File(path) = &keys.source {
            let set = read_jwks_file(path, config.jwks_max_bytes)?;
            keys.replace(set);
        }
        let resource = OnceLock::new();
        if let Some(r) = &config.resource {
            let _ = resource.set(r.trim_end_matches('/').to_owned());
        }
        let scopes_supported: BTreeSet<String> = config.scopes.values().cloned().collect();
        Ok(Some(OAuth {
            issuer,
            audience: config.audience.clone(),
            resource,
            authorization_servers: config.authorization_servers.clone(),
            required: Arc::new(config.scopes.clone()),
            scopes_supported: scopes_supported.into_iter().collect(),
            leeway: config.leeway.as_secs(),
            keys: Arc::new(keys),
        }))
    }

    /// Fix the resource URI when `[auth] resource` is unset (`http://<addr><path>`,
    /// logged), watch the JWKS fetches with `log` and `failures`, and start the
    /// first fetch (`[auth] jwks_url`). Called once the listener is bound, inside
    /// a Tokio runtime.
    pub fn settle(
        self: &Arc<Self>,
        default_resource: &str,
        log: &slog::Logger,
        failures: prometheus::IntCounter,
    ) {
        if self.resource.set(default_resource.to_owned()).is_ok() {
            slog::info!(log, "oauth resource derived from the bind address (set auth.resource for a public URL)";
                "resource" => default_resource);
        }
        let _ = self.keys.watch.set((log.clone(), failures));
        slog::info!(log, "oauth access tokens accepted"; "issuer" => &self.issuer,
            "resource" => self.resource(), "audience" => self.audience(),
            "jwks" => self.keys.source.describe(), "keys" => self.keys.current().keys.len(),
            "scoped_tools" => self.required.len());
        if matches!(self.keys.source, Source::Url { .. }) {
            let keys = self.keys.clone();
            tokio::spawn(async move {
                let mut last = keys.fetching.lock().await;
                *last = Some(Instant::now());
                keys.fetch_now().await;
            });
        }
    }

    /// The resource URI (RFC 8707): `[auth] resource`, or derived from the bind
    /// address.
    pub fn resource(&self) -> &str {
        self.resource.get().map_or("", String::as_str)
    }

    /// The audience a token's `aud` must contain: `[auth] audience`, else the
    /// resource URI.
    pub fn audience(&self) -> &str {
        self.audience.as_deref().unwrap_or_else(|| self.resource())
    }

    /// The absolute URL of the resource's metadata (RFC 9728 §3.1): the resource's
    /// origin, the well-known path, then the resource's path.
    pub fn metadata_url(&self) -> String {
        let resource = self.resource();
        let after_scheme = resource.find("://").map_or(0, |i| i + 3);
        let (origin, path) = match resource[after_scheme..].find('/') {
            Some(i) => resource.split_at(after_scheme + i),
            None => (resource, ""),
        };
        format!("{origin}{METADATA_PATH}{}", path.trim_end_matches('/'))
    }

    /// The metadata document (RFC 9728 §2).
    pub fn metadata(&self) -> serde_json::Value {
        serde_json::json!({
            "resource": self.resource(),
            "authorization_servers": self.authorization_servers,
            "scopes_supported": self.scopes_supported,
            "bearer_methods_supported": ["header"],
        })
    }

    /// The scopes `[auth.scopes]` names (sorted, each once).
    pub fn scopes_supported(&self) -> &[String] {
        &self.scopes_supported
    }

    /// The tools `[auth.scopes]` gives a required scope.
    pub fn scoped_tools(&self) -> impl Iterator<Item = &str> {
        self.required.keys().map(String::as_str)
    }

    /// The principal `token` stands for, or why it is refused. May fetch the
    /// JWKS again (a key id the set does not hold).
    pub async fn verify(&self, token: &str) -> Result<Principal, Rejection> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err("token too long");
        }
        let header = TokenHeader::parse(token)?;
        let generation = self.keys.generation.load(Ordering::Acquire);
        let set = match self.keys.current().find(&header) {
            Ok(_) => self.keys.current(),
            Err(_) => {
                self.keys.refresh(generation).await;
                self.keys.current()
            }
        };
        self.check(&set, &header, token)
    }

    /// The checks of [`OAuth::verify`] once the key set is chosen: the key the
    /// header asks for, the signature, `iss`/`aud`/`exp`/`nbf`/`sub`, the scopes.
    fn check(
        &self,
        set: &KeySet,
        header: &TokenHeader,
        token: &str,
    ) -> Result<Principal, Rejection> {
        let key = set.find(header)?;
        let mut validation = Validation::new(header.alg);
        validation.algorithms = vec![header.alg];
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[self.audience()]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.validate_aud = true;
        validation.leeway = self.leeway;
        let data = jsonwebtoken::decode::<Claims>(token, &key.key, &validation)
            .map_err(|e| describe(e.kind()))?;
        self.principal(&data.claims)
    }

    fn principal(&self, claims: &Claims) -> Result<Principal, Rejection> {
        let mut granted = BTreeSet::new();
        if let Some(scope) = &claims.scope {
            for s in scope.split(' ').filter(|s| !s.is_empty()) {
                if s.len() > MAX_SCOPE_BYTES || granted.len() >= MAX_SCOPES {
                    return Err("scope claim too large");
                }
                granted.insert(s.to_owned());
            }
        }
        let mut digest = Sha256::new();
        digest.update(self.issuer.as_bytes());
        digest.update([0]);
        digest.update(claims.sub.as_deref().unwrap_or_default().as_bytes());
        let digest: [u8; 32] = digest.finalize().into();
        Ok(Principal {
            name: super::hex(&digest, SUBJECT_HEX).into(),
            tools: None,
            scopes: Some(Arc::new(Grant {
                granted,
                required: self.required.clone(),
            })),
        })
    }
}

/// The claims read after the checks (`iss`, `aud`, `exp`, `nbf` are checked by
/// `jsonwebtoken`).
#[derive(Debug, Deserialize)]
struct Claims {
    /// Required (`jsonwebtoken` refuses a token without it): optional here so
    /// that its absence is reported as such, not as malformed claims.
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    scope: Option<String>,
}

/// The `error_description` of a refused JWT.
fn describe(kind: &jsonwebtoken::errors::ErrorKind) -> Rejection {
    use jsonwebtoken::errors::ErrorKind as K;
    match kind {
        K::ExpiredSignature => "token expired",
        K::ImmatureSignature => "token not yet valid",
        K::InvalidIssuer => "wrong issuer",
        K::InvalidAudience => "wrong audience",
        K::InvalidSignature => "bad signature",
        K::InvalidAlgorithm | K::MissingAlgorithm | K::UnsupportedAlgorithm => {
            "algorithm not allowed"
        }
        K::MissingRequiredClaim(_) => "a required claim is missing",
        K::InvalidClaimFormat(_) | K::Json(_) => "malformed claims",
        _ => "malformed token",
    }
}

/// What a token's JOSE header says, once checked: an allowed algorithm, maybe a
/// key id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenHeader {
    /// The signature algorithm (asymmetric only).
    pub alg: Algorithm,
    /// The key id, when given.
    pub kid: Option<String>,
}

impl TokenHeader {
    /// Read a compact JWS's header (unverified): three dot-separated parts, an
    /// allowed algorithm.
    pub fn parse(token: &str) -> Result<TokenHeader, Rejection> {
        if token.split('.').count() != 3 {
            return Err("malformed token");
        }
        // A header naming an algorithm `jsonwebtoken` does not know (`none`) fails
        // to parse: refused the same way as HS*.
        let header = jsonwebtoken::decode_header(token).map_err(|e| match e.kind() {
            jsonwebtoken::errors::ErrorKind::Json(_) => {
                if token_names_unknown_alg(token) {
                    "algorithm not allowed"
                } else {
                    "malformed token"
                }
            }
            other => describe(other),
        })?;
        if !ALLOWED.contains(&header.alg) {
            return Err("algorithm not allowed");
        }
        Ok(TokenHeader {
            alg: header.alg,
            kid: header.kid.map(|k| k.chars().take(256).collect()),
        })
    }
}

/// Whether the header of `token` decodes to JSON with an `alg` (one that the
/// library refused to name, e.g. `none`).
fn token_names_unknown_alg(token: &str) -> bool {
    use base64::Engine;
    let Some(part) = token.split('.').next() else {
        return false;
    };
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part)
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .is_some_and(|v| v.get("alg").is_some())
}

/// The algorithms a token may be signed with: asymmetric only.
pub const ALLOWED: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The kind of a public key: which algorithms it may check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Rsa,
    P256,
    P384,
    Ed25519,
}

impl Kind {
    fn fits(self, alg: Algorithm) -> bool {
        use Algorithm as A;
        match self {
            Kind::Rsa => matches!(
                alg,
                A::RS256 | A::RS384 | A::RS512 | A::PS256 | A::PS384 | A::PS512
            ),
            Kind::P256 => alg == A::ES256,
            Kind::P384 => alg == A::ES384,
            Kind::Ed25519 => alg == A::EdDSA,
        }
    }
}

/// One verification key of a JWKS.
struct Key {
    kid: Option<String>,
    alg: Option<Algorithm>,
    kind: Kind,
    key: DecodingKey,
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("kind", &self.kind)
            .finish_non_exhaustive()
    }
}

/// The usable keys of a JWKS document (RFC 7517): public signature keys of a
/// supported type; symmetric keys, encryption keys and unknown types are left
/// out.
#[derive(Debug, Default)]
pub struct KeySet {
    keys: Vec<Key>,
}

impl KeySet {
    /// Parse a JWKS document: `{"keys": [...]}`, at most [`MAX_KEYS`] keys. Keys
    /// that cannot check signatures here are skipped; none left is an error.
    pub fn parse(bytes: &[u8]) -> Result<KeySet, String> {
        #[derive(Deserialize)]
        struct Doc {
            keys: Vec<serde_json::Value>,
        }
        let doc: Doc = serde_json::from_slice(bytes).map_err(|e| {
            format!(
                "not a JWKS document (line {}, column {})",
                e.line(),
                e.column()
            )
        })?;
        if doc.keys.len() > MAX_KEYS {
            return Err(format!("more than {MAX_KEYS} keys"));
        }
        let keys: Vec<Key> = doc.keys.into_iter().filter_map(key_of).collect();
        if keys.is_empty() {
            return Err("no usable signature key (RSA, EC P-256/P-384, Ed25519)".into());
        }
        Ok(KeySet { keys })
    }

    /// How many keys it holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key `header` asks for: by key id when it names one, else the only key
    /// that fits its algorithm.
    fn find(&self, header: &TokenHeader) -> Result<&Key, Rejection> {
        let fits = |k: &&Key| k.kind.fits(header.alg) && k.alg.is_none_or(|a| a == header.alg);
        match &header.kid {
            Some(kid) => {
                let key = self
                    .keys
                    .iter()
                    .find(|k| k.kid.as_deref() == Some(kid.as_str()))
                    .ok_or("unknown key id")?;
                Some(key).filter(fits).ok_or("algorithm not allowed")
            }
            None => {
                let mut fitting = self.keys.iter().filter(fits);
                match (fitting.next(), fitting.next()) {
                    (Some(key), None) => Ok(key),
                    _ => Err("unknown key id"),
                }
            }
        }
    }
}

fn curve_of(curve: &EllipticCurve) -> Option<Kind> {
    match curve {
        EllipticCurve::P256 => Some(Kind::P256),
        EllipticCurve::P384 => Some(Kind::P384),
        EllipticCurve::Ed25519 => Some(Kind::Ed25519),
        _ => None,
    }
}

/// One JWKS entry as a usable key, or `None` (skipped).
fn key_of(value: serde_json::Value) -> Option<Key> {
    let jwk: Jwk = serde_json::from_value(value).ok()?;
    if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
        return None;
    }
    let kind = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Kind::Rsa,
        AlgorithmParameters::EllipticCurve(p) => match curve_of(&p.curve)? {
            Kind::Ed25519 => return None,
            kind => kind,
        },
        AlgorithmParameters::OctetKeyPair(p) => match curve_of(&p.curve)? {
            Kind::Ed25519 => Kind::Ed25519,
            _ => return None,
        },
        _ => return None,
    };
    let alg = match jwk.common.key_algorithm {
        None => None,
        Some(a) => {
            let alg = algorithm_of(a)?;
            if !kind.fits(alg) {
                return None;
            }
            Some(alg)
        }
    };
    let key = DecodingKey::from_jwk(&jwk).ok()?;
    Some(Key {
        kid: jwk.common.key_id.map(|k| k.chars().take(256).collect()),
        alg,
        kind,
        key,
    })
}

fn algorithm_of(a: KeyAlgorithm) -> Option<Algorithm> {
    let alg: Algorithm = a.to_string().parse().ok()?;
    ALLOWED.contains(&alg).then_some(alg)
}

/// What a fuzz target calls: `bytes` is a JWKS document, a NUL, and a bearer
/// credential (no NUL: the same bytes are both). The document is parsed as a
/// fetched one is; the credential goes through every check [`OAuth::verify`]
/// makes after its key set is chosen (header, key, signature, claims, scopes),
/// against that document, with no network.
#[doc(hidden)]
pub fn fuzz_jwt(bytes: &[u8]) {
    let _ = fuzz_check(bytes);
}

/// [`fuzz_jwt`]'s work: `None` where the input stops before the checks (not
/// UTF-8, too long), else what they said.
fn fuzz_check(bytes: &[u8]) -> Option<Result<Principal, Rejection>> {
    let (doc, token) = match bytes.iter().position(|b| *b == 0) {
        Some(at) => (&bytes[..at], &bytes[at + 1..]),
        None => (bytes, bytes),
    };
    let set = KeySet::parse(doc).unwrap_or_default();
    let token = std::str::from_utf8(token).ok()?;
    if token.len() > MAX_TOKEN_BYTES {
        return None;
    }
    let header = match TokenHeader::parse(token) {
        Ok(header) => header,
        Err(why) => return Some(Err(why)),
    };
    let resource = OnceLock::new();
    let _ = resource.set("https://mcp.example/mcp".to_owned());
    let oauth = OAuth {
        issuer: "https://issuer.example".into(),
        audience: None,
        resource,
        authorization_servers: Vec::new(),
        required: Arc::new(BTreeMap::from([("kv_set".into(), "kv:write".into())])),
        scopes_supported: Vec::new(),
        leeway: 30,
        keys: Arc::new(Jwks::new(
            Source::File(PathBuf::new()),
            Duration::from_secs(30),
        )),
    };
    let checked = oauth.check(&set, &header, token);
    if let Ok(principal) = &checked {
        let _ = principal.may_call("kv_set");
    }
    Some(checked)
}

/// Where the keys come from.
#[derive(Debug)]
enum Source {
    File(PathBuf),
    Url {
        url: String,
        timeout: Duration,
        max_bytes: usize,
    },
}

impl Source {
    fn describe(&self) -> String {
        match self {
            Source::File(path) => path.display().to_string(),
            Source::Url { url, .. } => url.clone(),
        }
    }
}

/// The issuer's keys: the last good set, and its refresh.
#[derive(Debug)]
pub struct Jwks {
    source: Source,
    set: RwLock<Arc<KeySet>>,
    /// Bumped at every good fetch: a waiter that sees it moved does not fetch.
    generation: AtomicU64,
    /// When the last fetch began; held during a fetch (one at a time).
    fetching: tokio::sync::Mutex<Option<Instant>>,
    refresh_min: Duration,
    watch: OnceLock<(slog::Logger, prometheus::IntCounter)>,
}

impl Jwks {
    fn new(source: Source, refresh_min: Duration) -> Jwks {
        Jwks {
            source,
            set: RwLock::new(Arc::new(KeySet::default())),
            generation: AtomicU64::new(0),
            fetching: tokio::sync::Mutex::new(None),
            refresh_min,
            watch: OnceLock::new(),
        }
    }

    fn current(&self) -> Arc<KeySet> {
        self.set
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    fn replace(&self, set: KeySet) {
        *self
            .set
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Arc::new(set);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    /// Fetch again for a key the set seen at `generation` lacked, unless another
    /// fetch got a new set meanwhile or the last began less than
    /// `jwks_refresh_min_s` ago. A file is never read again.
    async fn refresh(&self, generation: u64) {
        if !matches!(self.source, Source::Url { .. }) {
            return;
        }
        let mut last = self.fetching.lock().await;
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if last.is_some_and(|at| at.elapsed() < self.refresh_min) {
            return;
        }
        *last = Some(Instant::now());
        self.fetch_now().await;
    }

    /// Fetch the document (on a blocking thread) and replace the set with it; on
    /// failure keep the set, log and count.
    async fn fetch_now(&self) {
        let Source::Url {
            url,
            timeout,
            max_bytes,
        } = &self.source
        else {
            return;
        };
        let (url, timeout, max_bytes) = (url.clone(), *timeout, *max_bytes);
        let fetched = tokio::task::spawn_blocking(move || fetch(&url, timeout, max_bytes))
            .await
            .unwrap_or_else(|e| Err(format!("fetch task failed: {e}")))
            .and_then(|bytes| KeySet::parse(&bytes));
        match fetched {
            Ok(set) => {
                let count = set.len();
                self.replace(set);
                if let Some((log, _)) = self.watch.get() {
                    slog::info!(log, "jwks fetched"; "jwks_url" => self.source.describe(), "keys" => count);
                }
            }
            Err(error) => {
                if let Some((log, failures)) = self.watch.get() {
                    failures.inc();
                    slog::warn!(log, "jwks fetch failed, the keys held are kept";
                        "jwks_url" => self.source.describe(), "error" => error,
                        "keys" => self.current().len());
                }
            }
        }
    }
}

/// GET `url` within `timeout`, at most `max_bytes` of body, no redirect.
fn fetch(url: &str, timeout: Duration, max_bytes: usize) -> Result<Vec<u8>, String> {
    let agent = ureq::AgentBuilder::new()
        .timeout(timeout)
        .redirects(0)
        .build();
    let resp = agent
        .get(url)
        .set("Accept", "application/json")
        .call()
        .map_err(|e| match e {
            ureq::Error::Status(code, _) => format!("HTTP status {code}"),
            ureq::Error::Transport(t) => format!("transport: {}", t.kind()),
        })?;
    let mut body = Vec::new();
    resp.into_reader()
        .take(
            u64::try_from(max_bytes)
                .unwrap_or(u64::MAX)
                .saturating_add(1),
        )
        .read_to_end(&mut body)
        .map_err(|e| format!("reading the body: {e}"))?;
    if body.len() > max_bytes {
        return Err(format!(
            "body larger than auth.jwks_max_bytes ({max_bytes})"
        ));
    }
    Ok(body)
}

fn read_jwks_file(path: &Path, max_bytes: usize) -> Result<KeySet, ConfigError> {
    let error = |message: String| bad("auth.jwks_file", format!("{}: {message}", path.display()));
    let bytes = std::fs::read(path).map_err(|e| error(format!("cannot read it: {e}")))?;
    if bytes.len() > max_bytes {
        return Err(error(format!(
            "larger than auth.jwks_max_bytes ({max_bytes})"
        )));
    }
    KeySet::parse(&bytes).map_err(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RSA_JWK: &str = r#"{"kty":"RSA","kid":"r1","alg":"RS256","use":"sig",
        "n":"u1SU1LfVLPHCozMxH2Mo4lgOEePzNm0tRgeLezV6ffAt0gunVTLw7onLRnrq0_IzW7yWR7QkrmBL7jTKEn5u-qKhbwKfBstIs-bMY2Zkp18gnTxKLxoS2tFczGkPLPgizskuemMghRniWaoLcyehkd3qqGElvW_VDL5AaWTg0nLVkjRo9z-40RQzuVaE8AkAFmxZzow3x-VJYKdjykkJ0iT9wCS0DRTXu269V264Vf_3jvredZiKRkgwlL9xNAwxXFg0x_XFw005UWVRIkdgcKWTjpBP2dPwVZ4WWC-9aGVd-Gyn1o0CLelf4rEjGoXbAAEgAqeGUxrcIlbjXfbcmw",
        "e":"AQAB"}"#;
    const EC_JWK: &str = r#"{"kty":"EC","kid":"e1","crv":"P-256",
        "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
        "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#;

    fn doc(keys: &[&str]) -> Vec<u8> {
        format!("{{\"keys\":[{}]}}", keys.join(",")).into_bytes()
    }

    fn header(alg: &str, kid: Option<&str>) -> String {
        use base64::Engine;
        let mut h = serde_json::json!({"alg": alg, "typ": "JWT"});
        if let Some(kid) = kid {
            h["kid"] = kid.into();
        }
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        format!("{}.{}.c2ln", b64.encode(h.to_string()), b64.encode("{}"))
    }

    #[test]
    fn parses_rsa_and_ec_keys_and_skips_the_rest() {
        let oct = r#"{"kty":"oct","kid":"h","k":"c2VjcmV0"}"#;
        let enc = RSA_JWK.replace("\"sig\"", "\"enc\"").replace("r1", "r2");
        let odd = r#"{"kty":"XYZ","kid":"x"}"#;
        let set = KeySet::parse(&doc(&[RSA_JWK, EC_JWK, oct, &enc, odd])).unwrap();
        assert_eq!(set.len(), 2);
        assert!(KeySet::parse(&doc(&[oct])).is_err());
        assert!(KeySet::parse(b"{\"keys\":").is_err());
        assert!(KeySet::parse(b"[]").is_err());
        let many = vec![EC_JWK; MAX_KEYS + 1];
        assert!(KeySet::parse(&doc(&many))
            .unwrap_err()
            .contains("more than"));
    }

    #[test]
    fn finds_keys_by_kid_and_algorithm() {
        let set = KeySet::parse(&doc(&[RSA_JWK, EC_JWK])).unwrap();
        let h = |alg, kid| TokenHeader::parse(&header(alg, kid)).unwrap();
        assert!(set.find(&h("RS256", Some("r1"))).is_ok());
        assert!(set.find(&h("ES256", Some("e1"))).is_ok());
        assert!(set.find(&h("ES256", None)).is_ok(), "the only P-256 key");
        assert_eq!(
            set.find(&h("ES256", Some("r1"))).err(),
            Some("algorithm not allowed")
        );
        assert_eq!(
            set.find(&h("RS384", Some("r1"))).err(),
            Some("algorithm not allowed")
        );
        assert_eq!(
            set.find(&h("RS256", Some("zz"))).err(),
            Some("unknown key id")
        );
    }

    #[test]
    fn refuses_symmetric_and_none_algorithms_and_bad_shapes() {
        for alg in ["HS256", "HS384", "HS512", "none", "None", "XX1"] {
            assert_eq!(
                TokenHeader::parse(&header(alg, Some("r1"))),
                Err("algorithm not allowed"),
                "{alg}"
            );
        }
        assert_eq!(TokenHeader::parse("a.b"), Err("malformed token"));
        assert_eq!(TokenHeader::parse("a.b.c.d"), Err("malformed token"));
        assert_eq!(TokenHeader::parse("!!.e30.c2ln"), Err("malformed token"));
        fuzz_jwt(header("RS256", Some("r1")).as_bytes());
        fuzz_jwt(&doc(&[RSA_JWK]));
        fuzz_jwt(b"\xff\x00");
    }

    /// The fuzz target's seeds (`fuzz/corpus/jwt/`: a JWKS of an RSA and a P-256
    /// key, a NUL, a token made with `openssl`) reach past the signature: the
    /// valid ones are let in, each bad one is refused for its own reason.
    #[test]
    fn the_fuzz_seeds_reach_every_check() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/jwt");
        let seed = |name: &str| {
            let bytes = std::fs::read(dir.join(name)).expect("the seed is committed");
            fuzz_check(&bytes)
                .unwrap_or_else(|| panic!("{name}: the seed does not reach the checks"))
        };
        for valid in ["rs256_valid", "es256_valid"] {
            let principal = seed(valid).expect(valid);
            assert!(principal.may_call("kv_set"), "{valid}: kv:write granted");
        }
        for (name, why) in [
            ("rs256_expired", "token expired"),
            ("rs256_wrong_aud", "wrong audience"),
            ("es256_nbf_future", "token not yet valid"),
            ("alg_none", "algorithm not allowed"),
            ("hs256_public_key", "algorithm not allowed"),
            ("unknown_kid", "unknown key id"),
            ("no_sub", "a required claim is missing"),
        ] {
            assert_eq!(seed(name).err(), Some(why), "{name}");
        }
    }
}
