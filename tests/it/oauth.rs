//! OAuth 2.1 resource server (`[auth] issuer`): RS256 and ES256 access tokens
//! made here (keys from `openssl`, signed with `jsonwebtoken`), the JWKS served by
//! the test on 127.0.0.1 (or read from a file); the RFC 9728 metadata at both
//! paths; every refusal with its exact status, challenge and body; per-tool
//! scopes (403 `insufficient_scope`, both eras, `tools/list` filtered); the JWKS
//! refresh for an unknown key id (rate-limited) and stale keys kept when the
//! JWKS server fails; a bad `[auth]` at start (exit 2 naming the key).

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

use crate::auth::{open_session, request};
use crate::harness::{run, with_meta, Reply, Server, ACCEPT_BOTH, MODERN};

const ISSUER: &str = "https://as.example.test";
/// The tool `[auth.scopes]` guards in these tests, and its scope.
const SCOPED_TOOL: &str = "kv_set";
const SCOPE: &str = "kv:write";

/// A signing key made by `openssl`, its public JWK (with a kid) and public PEM.
pub struct TestKey {
    pub alg: Algorithm,
    pub kid: String,
    pub encoding: EncodingKey,
    pub jwk: Jwk,
    pub public_pem: Vec<u8>,
}

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl must be installed for the OAuth tests");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A fresh key of `alg` (RS256: RSA 2048; ES256: P-256) named `kid`.
pub fn make_key(alg: Algorithm, kid: &str) -> TestKey {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("key.pem");
    let path_s = path.to_str().expect("utf-8 path");
    match alg {
        Algorithm::RS256 => openssl(&[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            path_s,
        ]),
        Algorithm::ES256 => openssl(&[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            path_s,
        ]),
        other => panic!("no test key for {other:?}"),
    };
    let pem = std::fs::read(&path).expect("read key");
    let public_pem = openssl(&["pkey", "-in", path_s, "-pubout"]);
    let encoding = match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&pem),
        _ => EncodingKey::from_ec_pem(&pem),
    }
    .expect("encoding key");
    let mut jwk = Jwk::from_encoding_key(&encoding, alg).expect("jwk");
    jwk.common.key_id = Some(kid.to_owned());
    TestKey {
        alg,
        kid: kid.to_owned(),
        encoding,
        jwk,
        public_pem,
    }
}

/// Keys shared by the tests (RSA generation takes a while).
fn keys() -> &'static [TestKey; 4] {
    static KEYS: OnceLock<[TestKey; 4]> = OnceLock::new();
    KEYS.get_or_init(|| {
        [
            make_key(Algorithm::RS256, "rsa-1"),
            make_key(Algorithm::ES256, "ec-1"),
            make_key(Algorithm::RS256, "rsa-2"),
            make_key(Algorithm::ES256, "ec-2"),
        ]
    })
}

/// A JWKS document of `keys`.
pub fn jwks(keys: &[&TestKey]) -> String {
    serde_json::to_string(&JwkSet {
        keys: keys.iter().map(|k| k.jwk.clone()).collect(),
    })
    .expect("jwks json")
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// Claims of a good token for `aud`, with `scope`.
fn claims(aud: &str, scope: &str) -> Value {
    json!({"iss": ISSUER, "aud": aud, "sub": "user-42", "exp": now() + 600,
        "iat": now(), "scope": scope})
}

/// `claims` signed by `key` (kid in the header).
fn sign(key: &TestKey, claims: &Value) -> String {
    let mut header = Header::new(key.alg);
    header.kid = Some(key.kid.clone());
    jsonwebtoken::encode(&header, claims, &key.encoding).expect("sign")
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A JWKS server on 127.0.0.1: serves the current document (or 503 when it is
/// `None`), counts requests; stops when dropped.
pub struct JwksServer {
    pub url: String,
    pub doc: Arc<Mutex<Option<String>>>,
    pub hits: Arc<AtomicUsize>,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl JwksServer {
    pub fn start(doc: String) -> JwksServer {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let url = format!("http://{}/jwks.json", listener.local_addr().expect("addr"));
        let doc = Arc::new(Mutex::new(Some(doc)));
        let hits = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (d, h, s) = (doc.clone(), hits.clone(), stop.clone());
        std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                let Ok((mut conn, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let _ = conn.set_nonblocking(false);
                let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                let mut reader = BufReader::new(conn.try_clone().expect("clone"));
                let mut line = String::new();
                while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                    line.clear();
                }
                h.fetch_add(1, Ordering::SeqCst);
                let answer = match d.lock().unwrap().clone() {
                    Some(body) => format!(
                        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                        body.len()
                    ),
                    None => "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_owned(),
                };
                let _ = conn.write_all(answer.as_bytes());
            }
        });
        JwksServer {
            url,
            doc,
            hits,
            stop,
        }
    }

    fn set(&self, doc: Option<String>) {
        *self.doc.lock().unwrap() = doc;
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// `[auth]` with OAuth from `jwks` (a `jwks_url = ...` or `jwks_file = ...` line),
/// `kv_set` guarded by `kv:write`.
fn config(jwks: &str, extra: &str) -> String {
    format!(
        "[auth]\nissuer = \"{ISSUER}\"\nauthorization_servers = [\"{ISSUER}\"]\n{jwks}\n\
         {extra}\n[auth.scopes]\n{SCOPED_TOOL} = \"{SCOPE}\"\n"
    )
}

fn serve(jwks: &str, extra: &str) -> Server {
    let s = Server::with_config(&config(jwks, extra), &[]);
    wait_for_log(&s, "oauth access tokens accepted");
    s
}

fn metadata_url(s: &Server) -> String {
    format!("http://{}/.well-known/oauth-protected-resource/mcp", s.addr)
}

/// The 401 challenge with OAuth on, for a refused token (`why`) or none.
fn challenge(s: &Server, why: Option<&str>) -> String {
    let tail = format!(
        "resource_metadata=\"{}\", scope=\"{SCOPE}\"",
        metadata_url(s)
    );
    match why {
        None => format!("Bearer {tail}"),
        Some(why) => format!("Bearer error=\"invalid_token\", error_description=\"{why}\", {tail}"),
    }
}

fn wait_for_log(s: &Server, what: &str) -> String {
    s.log_line(&[what], Duration::from_secs(10))
}

/// A 2026-07-28 `tools/call` with `token` (none: no header).
fn modern_call(s: &Server, token: Option<&str>, tool: &str, args: Value) -> Reply {
    let body = json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
        "params": with_meta(json!({"name": tool, "arguments": args}))});
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![
        ("Content-Type", "application/json"),
        ("Accept", ACCEPT_BOTH),
        ("MCP-Protocol-Version", MODERN),
        ("Mcp-Method", "tools/call"),
        ("Mcp-Name", tool),
    ];
    if let Some(a) = &auth {
        headers.push(("Authorization", a));
    }
    s.send("POST", &headers, Some(body.to_string().as_bytes()))
}

fn metric(s: &Server, token: &str, series: &str) -> f64 {
    let url = format!("http://{}/metrics", s.addr);
    let r = s
        .open_url(
            "GET",
            &url,
            &[("Authorization", &format!("Bearer {token}"))],
            None,
        )
        .into_reply();
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
        .lines()
        .find_map(|l| l.strip_prefix(series)?.trim().parse().ok())
        .unwrap_or(0.0)
}

fn tool_names(r: &Reply) -> Vec<String> {
    r.json()["result"]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .map(|t| t["name"].as_str().expect("name").to_owned())
        .collect()
}

#[test]
fn the_metadata_is_served_open_at_both_paths_and_the_401_names_it() {
    let [rsa, ..] = keys();
    let jwks_server = JwksServer::start(jwks(&[rsa]));
    let s = serve(&format!("jwks_url = \"{}\"", jwks_server.url), "");
    let resource = s.url();
    let expected = json!({
        "resource": resource,
        "authorization_servers": [ISSUER],
        "scopes_supported": [SCOPE],
        "bearer_methods_supported": ["header"],
    });
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/mcp",
    ] {
        let r = s.get(path);
        assert_eq!(r.status, 200, "{path}: {}", r.body);
        assert_eq!(r.content_type(), "application/json");
        assert_eq!(r.json(), expected, "{path}");
        let url = format!("http://{}{path}", s.addr);
        let r = s.open_url("POST", &url, &[], Some(b"{}")).into_reply();
        assert_eq!(r.status, 405, "{path}");
        assert_eq!(r.header("allow"), Some("GET"));
        let r = s
            .open_url("GET", &url, &[("Host", "evil.example")], None)
            .into_reply();
        assert_eq!(r.status, 403, "{path}: {}", r.body);
    }

    // No token: 401 naming the metadata and the scopes, the body a JSON-RPC error.
    let r = modern_call(&s, None, "echo", json!({"text": "hi"}));
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(
        r.header("www-authenticate"),
        Some(challenge(&s, None).as_str())
    );
    assert_eq!(
        r.json(),
        json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32000,
            "message": "unauthorized: send Authorization: Bearer <token>"}})
    );
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}});
    let r = s.post(None, &init.to_string(), &[]);
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some(challenge(&s, None).as_str())
    );
}

#[test]
fn rs256_and_es256_tokens_get_in_both_eras_and_see_only_the_tools_of_their_scopes() {
    let [rsa, ec, ..] = keys();
    let jwks_server = JwksServer::start(jwks(&[rsa, ec]));
    let s = serve(&format!("jwks_url = \"{}\"", jwks_server.url), "");
    let aud = s.url();
    let plain = sign(rsa, &claims(&aud, "openid"));
    let writer = sign(ec, &claims(&aud, &format!("openid {SCOPE}")));

    for token in [&plain, &writer] {
        let session = open_session(&s, token);
        let r = request(
            &s,
            &session,
            token,
            "tools/call",
            json!({"name": "echo", "arguments": {"text": "hi"}}),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(r.json()["result"].is_object(), "{}", r.body);
        let r = modern_call(&s, Some(token), "echo", json!({"text": "hi"}));
        assert_eq!(r.status, 200, "{}", r.body);
        let r = request(&s, &session, token, "tools/list", json!({}));
        let names = tool_names(&r);
        assert!(names.contains(&"echo".to_owned()), "{names:?}");
        assert_eq!(
            names.contains(&SCOPED_TOOL.to_owned()),
            token == &writer,
            "{names:?}"
        );
    }
    let r = modern_call(
        &s,
        Some(&writer),
        SCOPED_TOOL,
        json!({"key": "k", "value": "v"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);

    // The token appears in no log line; the principal is a 16-digit name.
    let logs = s.logs();
    assert!(!logs.contains(&plain) && !logs.contains(&writer), "{logs}");
    assert!(!logs.contains("user-42"), "{logs}");
}

#[test]
fn every_bad_token_is_a_401_invalid_token_with_its_reason() {
    let [rsa, ec, rsa2, _] = keys();
    let jwks_server = JwksServer::start(jwks(&[rsa, ec]));
    // At trace, with a line per call: the log's secrets are checked at the end.
    let config = format!(
        "log_level = \"trace\"\nlog_calls = true\n{}",
        config(&format!("jwks_url = \"{}\"", jwks_server.url), "")
    );
    let s = Server::with_config(&config, &[]);
    wait_for_log(&s, "oauth access tokens accepted");
    let aud = s.url();
    let good = claims(&aud, "");
    let with = |k: &str, v: Value| {
        let mut c = good.clone();
        c[k] = v;
        c
    };
    // Signed by another key under the JWKS key's kid.
    let mut forged = Header::new(Algorithm::RS256);
    forged.kid = Some(rsa.kid.clone());
    let forged = jsonwebtoken::encode(&forged, &good, &rsa2.encoding).unwrap();
    // HS256 with the RSA public key's bytes as the secret (alg confusion).
    let mut hs = Header::new(Algorithm::HS256);
    hs.kid = Some(rsa.kid.clone());
    let confused = jsonwebtoken::encode(
        &hs,
        &good,
        &EncodingKey::from_secret(&rsa.public_pem).expect("hmac key"),
    )
    .unwrap();
    let none = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "typ": "JWT", "kid": rsa.kid})
            .to_string()
            .as_bytes()),
        b64(good.to_string().as_bytes())
    );
    let mut no_sub = good.clone();
    no_sub.as_object_mut().unwrap().remove("sub");
    let cases: Vec<(&str, String, &str)> = vec![
        ("wrong signature", forged, "bad signature"),
        (
            "expired",
            sign(rsa, &with("exp", json!(now() - 120))),
            "token expired",
        ),
        (
            "nbf in the future",
            sign(rsa, &with("nbf", json!(now() + 600))),
            "token not yet valid",
        ),
        (
            "wrong issuer",
            sign(ec, &with("iss", json!("https://other.test"))),
            "wrong issuer",
        ),
        (
            "wrong audience",
            sign(ec, &with("aud", json!("http://elsewhere/mcp"))),
            "wrong audience",
        ),
        ("alg none", none, "algorithm not allowed"),
        (
            "HS256 with the public key",
            confused,
            "algorithm not allowed",
        ),
        ("no sub", sign(rsa, &no_sub), "a required claim is missing"),
        (
            "not a JWT",
            "opaque-token-123".to_owned(),
            "malformed token",
        ),
    ];
    for (what, token, why) in &cases {
        for session_era in [false, true] {
            let r = if session_era {
                let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {}});
                s.post(
                    None,
                    &init.to_string(),
                    &[("Authorization", &format!("Bearer {token}"))],
                )
            } else {
                modern_call(&s, Some(token), "echo", json!({"text": "hi"}))
            };
            assert_eq!(r.status, 401, "{what}: {}", r.body);
            assert_eq!(
                r.header("www-authenticate"),
                Some(challenge(&s, Some(why)).as_str()),
                "{what}"
            );
            assert_eq!(
                r.json(),
                json!({"jsonrpc": "2.0", "id": null, "error": {"code": -32000,
                    "message": format!("unauthorized: the bearer token is not valid ({why})")}}),
                "{what}"
            );
        }
    }
    // Within the leeway (30 s by default) an expired token still passes.
    let r = modern_call(
        &s,
        Some(&sign(rsa, &with("exp", json!(now() - 5)))),
        "echo",
        json!({"text": "x"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);

    let ok = sign(rsa, &good);
    let counted = metric(&s, &ok, "mcp_rejected_total{reason=\"unauthorized\"}");
    assert_eq!(counted, (cases.len() * 2) as f64);
    let logs = s.logs();
    let mut secrets: Vec<(&str, String)> = cases
        .iter()
        .map(|(what, token, _)| (*what, token.clone()))
        .collect();
    secrets.push(("the good token", ok));
    for line in logs.lines() {
        let found = crate::logs::secrets_in(line, &secrets);
        assert!(found.is_empty(), "{found:?} in {line}");
    }
    assert!(logs.contains("\"msg\":\"call finished\""), "{logs}");
}

#[test]
fn a_tool_without_its_scope_is_403_insufficient_scope_in_both_eras() {
    let [rsa, ..] = keys();
    let jwks_server = JwksServer::start(jwks(&[rsa]));
    let s = serve(&format!("jwks_url = \"{}\"", jwks_server.url), "");
    let token = sign(rsa, &claims(&s.url(), "openid other:scope"));
    let expected_challenge = format!(
        "Bearer error=\"insufficient_scope\", scope=\"{SCOPE}\", resource_metadata=\"{}\"",
        metadata_url(&s)
    );
    let message = format!("forbidden: the tool `{SCOPED_TOOL}` needs the scope `{SCOPE}`");

    let r = modern_call(
        &s,
        Some(&token),
        SCOPED_TOOL,
        json!({"key": "k", "value": "v"}),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        r.header("www-authenticate"),
        Some(expected_challenge.as_str())
    );
    assert_eq!(
        r.json(),
        json!({"jsonrpc": "2.0", "id": 9, "error": {"code": -32000, "message": message}})
    );

    let session = open_session(&s, &token);
    let r = request(
        &s,
        &session,
        &token,
        "tools/call",
        json!({"name": SCOPED_TOOL, "arguments": {"key": "k", "value": "v"}}),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        r.header("www-authenticate"),
        Some(expected_challenge.as_str())
    );
    assert_eq!(
        r.json(),
        json!({"jsonrpc": "2.0", "id": 7, "error": {"code": -32000, "message": message}})
    );
    assert_eq!(
        metric(
            &s,
            &token,
            "mcp_rejected_total{reason=\"insufficient_scope\"}"
        ),
        2.0
    );
    let line = wait_for_log(&s, "\"insufficient_scope\"");
    assert!(!line.contains(&token), "{line}");
}

/// One test for the refresh (it waits out `jwks_refresh_min_s` twice): an
/// unknown kid fetches again, no more than once per interval; a failed fetch
/// keeps the keys held, and is logged and counted.
#[test]
fn an_unknown_kid_refreshes_the_jwks_at_most_once_per_interval_and_stale_keys_survive_a_failure() {
    let [rsa, ec, rsa2, ec2] = keys();
    let jwks_server = JwksServer::start(jwks(&[rsa]));
    let s = serve(
        &format!("jwks_url = \"{}\"", jwks_server.url),
        "jwks_refresh_min_s = 10",
    );
    wait_for_log(&s, "jwks fetched");
    let started = Instant::now();
    assert_eq!(jwks_server.hits(), 1, "one fetch at start");
    let aud = s.url();
    let call = |key: &TestKey| {
        modern_call(
            &s,
            Some(&sign(key, &claims(&aud, ""))),
            "echo",
            json!({"text": "x"}),
        )
    };
    assert_eq!(call(rsa).status, 200);

    // The issuer rotates in a new key: within the interval, no fetch.
    jwks_server.set(Some(jwks(&[rsa, ec])));
    let r = call(ec);
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(
        r.header("www-authenticate"),
        Some(challenge(&s, Some("unknown key id")).as_str())
    );
    assert_eq!(jwks_server.hits(), 1, "rate-limited");

    // After it: one fetch, and the new key works.
    std::thread::sleep(
        Duration::from_secs(10).saturating_sub(started.elapsed()) + Duration::from_millis(300),
    );
    assert_eq!(call(ec).status, 200);
    assert_eq!(jwks_server.hits(), 2);
    let refreshed = Instant::now();
    assert_eq!(call(rsa2).status, 401);
    assert_eq!(jwks_server.hits(), 2, "rate-limited again");

    // The JWKS server fails: the keys held keep working, the failure is logged and
    // counted.
    jwks_server.set(None);
    std::thread::sleep(
        Duration::from_secs(10).saturating_sub(refreshed.elapsed()) + Duration::from_millis(300),
    );
    let r = call(ec2);
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(jwks_server.hits(), 3);
    let line = wait_for_log(&s, "jwks fetch failed");
    assert!(
        line.contains("503") && line.contains("\"keys\":2"),
        "{line}"
    );
    assert_eq!(call(rsa).status, 200);
    assert_eq!(call(ec).status, 200);
    let token = sign(rsa, &claims(&aud, ""));
    assert_eq!(metric(&s, &token, "mcp_jwks_fetch_failures_total"), 1.0);
}

#[test]
fn a_jwks_file_and_a_tokens_file_work_together() {
    let [rsa, ec, ..] = keys();
    let dir = tempfile::tempdir().unwrap();
    let jwks_path = dir.path().join("jwks.json");
    std::fs::write(&jwks_path, jwks(&[ec])).unwrap();
    let tokens_path = dir.path().join("tokens");
    std::fs::write(&tokens_path, "static-token-0123456789 echo\n").unwrap();
    let s = serve(
        &format!("jwks_file = {:?}", jwks_path),
        &format!("tokens_file = {:?}", tokens_path),
    );
    let aud = s.url();
    let r = modern_call(
        &s,
        Some(&sign(ec, &claims(&aud, SCOPE))),
        SCOPED_TOOL,
        json!({"key": "k", "value": "v"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let r = modern_call(
        &s,
        Some("static-token-0123456789"),
        "echo",
        json!({"text": "x"}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // The static token's own tool list still holds.
    let r = modern_call(
        &s,
        Some("static-token-0123456789"),
        "kv_get",
        json!({"key": "k"}),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    // A key not in the file: no fetch to try.
    let r = modern_call(
        &s,
        Some(&sign(rsa, &claims(&aud, ""))),
        "echo",
        json!({"text": "x"}),
    );
    assert_eq!(r.status, 401);
    assert_eq!(
        r.header("www-authenticate"),
        Some(challenge(&s, Some("unknown key id")).as_str())
    );
}

/// With only a tokens file, the 401 stays as it was (no metadata, no route).
#[test]
fn without_oauth_the_challenge_and_routes_are_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let tokens_path = dir.path().join("tokens");
    std::fs::write(&tokens_path, "static-token-0123456789\n").unwrap();
    let s = Server::start(&["--tokens-file", tokens_path.to_str().unwrap()]);
    let r = modern_call(&s, None, "echo", json!({"text": "x"}));
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    assert_eq!(s.get("/.well-known/oauth-protected-resource").status, 404);
}

#[test]
fn a_bad_auth_table_stops_the_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let jwks_path = dir.path().join("jwks.json");
    std::fs::write(&jwks_path, jwks(&[&keys()[1]])).unwrap();
    let base = |jwks_line: &str, extra: &str| config(jwks_line, extra);
    let file = format!("jwks_file = {:?}", jwks_path);
    let cases: Vec<(String, &str)> = vec![
        ("[auth]\nissuer = \"https://as.test\"\nauthorization_servers = [\"https://as.test\"]\n".into(), "auth.jwks_file"),
        ("[auth]\njwks_url = \"http://127.0.0.1:1/j\"\nauthorization_servers = [\"https://as.test\"]\n".into(), "auth.issuer"),
        ("[auth]\nissuer = \"https://as.test\"\njwks_url = \"http://127.0.0.1:1/j\"\n".into(), "auth.authorization_servers"),
        (base(&file, "jwks_refresh_min_s = 9"), "auth.jwks_refresh_min_s"),
        (base(&file, "jwks_refresh_min_s = 61"), "auth.jwks_refresh_min_s"),
        (base(&file, "leeway_s = 301"), "auth.leeway_s"),
        (base(&file, "jwks_timeout_ms = 99"), "auth.jwks_timeout_ms"),
        (base(&file, "jwks_max_bytes = 1023"), "auth.jwks_max_bytes"),
        (base(&file, "resource = \"mcp.example.com/mcp\""), "auth.resource"),
        (base("jwks_url = \"ftp://x/j\"", ""), "auth.jwks_url"),
        (base("jwks_file = \"/nonexistent/jwks.json\"", ""), "auth.jwks_file"),
        (config(&file, "").replace(SCOPE, "two words"), "auth.scopes"),
    ];
    for (text, key) in &cases {
        let path = dir.path().join("emcee.toml");
        std::fs::write(&path, text).unwrap();
        let (status, _out, err) = run(
            &[
                "serve",
                "--bind",
                "127.0.0.1:0",
                "--data-dir",
                dir.path().join("d").to_str().unwrap(),
                "--config",
                path.to_str().unwrap(),
            ],
            &[],
        );
        assert_eq!(status.code(), Some(2), "{key}: {text}\n{err}");
        assert!(err.contains(key), "{key}: {err}");
    }
    // The edges of the bounds are accepted.
    for extra in [
        "jwks_refresh_min_s = 10\nleeway_s = 300",
        "jwks_refresh_min_s = 60\nleeway_s = 0",
    ] {
        let s = Server::with_config(&config(&file, extra), &[]);
        wait_for_log(&s, "oauth access tokens accepted");
    }
    // The environment sets the issuer (EMCEE_AUTH_ISSUER over the file).
    let text = config(&file, "");
    let s = Server::launch(crate::harness::Launch {
        config: Some(&text),
        env: &[("EMCEE_AUTH_ISSUER", "https://env-issuer.test")],
        ..Default::default()
    });
    let line = wait_for_log(&s, "oauth access tokens accepted");
    assert!(line.contains("https://env-issuer.test"), "{line}");
}
