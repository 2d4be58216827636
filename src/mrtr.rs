//! Client input without sessions: 2026-07-28 multi-round-trip requests (MRTR).
//!
//! A 2026-07-28 server sends the client no requests. A handler that needs the
//! client's input (elicitation, sampling, roots) asks with the same call as in the
//! session era ([`crate::handler::CallContext::request_client`]); in a 2026-07-28
//! `tools/call`, `prompts/get` or `resources/read` the ask is recorded here and the
//! call ends with
//!
//! ```json
//! {"resultType":"input_required","inputRequests":{"<key>":{"method":…,"params":…}},"requestState":"…"}
//! ```
//!
//! The client retries the same request (new id, same params) with `inputResponses`
//! and the `requestState`; the handler runs again from the start and the same ask
//! now returns the client's answer at once. Code before an ask therefore runs once
//! per round: it must be safe to run twice.
//!
//! `requestState` is attacker-controlled, so it is sealed: HMAC-SHA-256 over a
//! payload that binds it to the method, the tool/prompt name or resource URI, a
//! digest of the arguments, and an expiry; it also carries the answers of earlier
//! rounds and which method each open question was: a client answers only the latest
//! round's questions (a first call, without a state, only those its handler asks;
//! an answer to anything else is ignored, never carried on, and the question asked
//! again), and an answer of the wrong shape is refused. A state that
//! is tampered with, expired, or bound to other params is -32602. The key comes from
//! `[mrtr] key_file` (instances sharing it accept each other's state) or is random per
//! process. Neither the key nor a state is ever logged.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::protocol::Reply;
use crate::protocol::RpcError;

/// Version tag of sealed states.
const STATE_VERSION: &str = "v1";

/// The sealing key and the bounds of states.
pub struct Mrtr {
    key: [u8; 32],
    ttl: Duration,
    max_state_bytes: usize,
    /// The key is a secret the instances share (not one of this process's own).
    shared: bool,
}

impl std::fmt::Debug for Mrtr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Mrtr")
            .field("ttl", &self.ttl)
            .field("max_state_bytes", &self.max_state_bytes)
            .finish_non_exhaustive()
    }
}

impl Mrtr {
    /// States sealed with `secret` (any length; its SHA-256 is the key), valid for
    /// `ttl`, at most `max_state_bytes` long.
    pub fn new(secret: &[u8], ttl: Duration, max_state_bytes: usize) -> Mrtr {
        Mrtr {
            key: Sha256::digest(secret).into(),
            ttl,
            max_state_bytes,
            shared: true,
        }
    }

    /// False for a random key of this process ([`Mrtr::random`]): its states are
    /// refused by another instance and after a restart.
    pub fn is_shared(&self) -> bool {
        self.shared
    }

    /// The sealer `config` describes: the key file's secret, or a random key of this
    /// process when there is no file ([`Mrtr::is_shared`] false: the server warns,
    /// where several instances may serve one client, that states do not outlive it).
    pub fn from_config(
        config: &crate::config::MrtrConfig,
    ) -> Result<Mrtr, crate::config::ConfigError> {
        Ok(match config.secret()? {
            Some(secret) => Mrtr::new(&secret, config.state_ttl, config.max_state_bytes),
            None => Mrtr::random(config.state_ttl, config.max_state_bytes),
        })
    }

    /// A random key: states are accepted by this process only, until it exits.
    pub fn random(ttl: Duration, max_state_bytes: usize) -> Mrtr {
        let mut secret = [0u8; 32];
        // getrandom fails only without an OS entropy source; a fixed fallback would
        // make states forgeable, so fall back to the clock and the pid, hashed.
        if getrandom::fill(&mut secret).is_err() {
            let seed = format!("{:?}{}", std::time::SystemTime::now(), std::process::id());
            secret = Sha256::digest(seed.as_bytes()).into();
        }
        Mrtr {
            shared: false,
            ..Mrtr::new(&secret, ttl, max_state_bytes)
        }
    }

    fn mac(&self, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(STATE_VERSION.as_bytes());
        mac.update(payload);
        mac
    }

    fn seal(&self, state: &State) -> Result<String, RpcError> {
        let payload = serde_json::to_vec(state).map_err(RpcError::internal)?;
        let sealed = self.sealed_text(&payload);
        if sealed.len() > self.max_state_bytes {
            return Err(RpcError::internal(format!(
                "the client's answers so far take {} bytes as requestState, more than mrtr.max_state_bytes ({})",
                sealed.len(),
                self.max_state_bytes
            )));
        }
        Ok(sealed)
    }

    /// `payload` sealed: version, payload and tag (the fuzz target `request_state`
    /// seals payloads of its own with it, to reach what follows the MAC check).
    pub(crate) fn sealed_text(&self, payload: &[u8]) -> String {
        let tag = self.mac(payload).finalize().into_bytes();
        format!(
            "{STATE_VERSION}.{}.{}",
            URL_SAFE_NO_PAD.encode(payload),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    fn open(&self, sealed: &str, binding: &Binding) -> Result<State, RpcError> {
        let refuse = |why: &str| RpcError::invalid_params(format!("requestState {why}"));
        if sealed.len() > self.max_state_bytes {
            return Err(refuse("is too long"));
        }
        let mut parts = sealed.split('.');
        let (Some(STATE_VERSION), Some(payload), Some(tag), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(refuse("is not one this server issued"));
        };
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| refuse("is not one this server issued"))?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| refuse("is not one this server issued"))?;
        self.mac(&payload)
            .verify_slice(&tag)
            .map_err(|_| refuse("was altered or sealed by another key"))?;
        let state: State =
            serde_json::from_slice(&payload).map_err(|_| refuse("cannot be read"))?;
        if state.method != binding.method
            || state.name != binding.name
            || state.digest != binding.digest()
        {
            return Err(refuse(
                "belongs to another request (method, name or arguments differ)",
            ));
        }
        if crate::storage::unix_ms() > state.expires {
            return Err(refuse("has expired; call again without it"));
        }
        Ok(state)
    }
}

/// What a sealed state says.
#[derive(Debug, Serialize, Deserialize)]
struct State {
    #[serde(rename = "m")]
    method: String,
    #[serde(rename = "n")]
    name: String,
    #[serde(rename = "d")]
    digest: String,
    /// Unix ms after which the state is refused.
    #[serde(rename = "e")]
    expires: u64,
    /// Answers of earlier rounds, by key.
    #[serde(rename = "a", default)]
    answers: Map<String, Value>,
    /// The method of the question each answer in `answers` answered.
    #[serde(rename = "am", default)]
    answered: BTreeMap<String, String>,
    /// The questions of the round this state ends: key → method.
    #[serde(rename = "q", default)]
    asked: BTreeMap<String, String>,
}

/// What a state is bound to: the method, the tool/prompt name or resource URI, and
/// a digest of the arguments (computed only when a state is sealed or opened: most
/// calls never need it).
#[derive(Debug)]
pub struct Binding {
    method: &'static str,
    name: String,
    arguments: Value,
    digest: std::sync::OnceLock<String>,
}

impl Binding {
    /// A binding to `method` on `name` with `arguments` (JSON objects serialize with
    /// sorted keys, so equal arguments give equal digests).
    pub fn new(method: &'static str, name: &str, arguments: Value) -> Binding {
        Binding {
            method,
            name: name.to_owned(),
            arguments,
            digest: std::sync::OnceLock::new(),
        }
    }

    fn digest(&self) -> &str {
        self.digest.get_or_init(|| {
            let text = serde_json::to_vec(&self.arguments).unwrap_or_default();
            URL_SAFE_NO_PAD.encode(Sha256::digest(&text))
        })
    }
}

/// One 2026-07-28 call's client input: the answers it has, the questions it asks.
pub struct Inputs {
    mrtr: std::sync::Arc<Mrtr>,
    binding: Binding,
    answers: Map<String, Value>,
    /// key → method of the question each of `answers` answered.
    answered: BTreeMap<String, String>,
    /// A first call's answers (no `requestState`: no question was asked yet): each
    /// counts only if this run of the handler asks its key; then it is bound to the
    /// asking method and carried in the next state. The others are never used.
    unasked: Map<String, Value>,
    /// Of `unasked`, those the handler asked for: key → method.
    taken: Mutex<BTreeMap<String, String>>,
    asked: Mutex<BTreeMap<String, Value>>,
    asked_methods: Mutex<BTreeMap<String, String>>,
    failure: Mutex<Option<RpcError>>,
    next: AtomicUsize,
}

impl std::fmt::Debug for Inputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inputs").finish_non_exhaustive()
    }
}

impl Inputs {
    /// The input of a request with these `inputResponses` and `requestState`: the
    /// state is verified (-32602 if it fails), its answers and the new ones merged.
    ///
    /// With a `requestState`, a new answer counts only for a question of the round
    /// the state ends (the state names them): an answer to a key that round did not
    /// ask, or to a question an earlier round already had answered, is ignored, as
    /// the revision asks of "information it does not recognize". Without one (a
    /// first call), an answer counts only for a key the handler then asks; the rest
    /// is ignored and never carried into a later state.
    pub fn new(
        mrtr: std::sync::Arc<Mrtr>,
        binding: Binding,
        responses: Option<&Value>,
        state: Option<&str>,
    ) -> Result<Inputs, RpcError> {
        let (mut answers, mut answered, asked) = match state {
            Some(sealed) => {
                let state = mrtr.open(sealed, &binding)?;
                (state.answers, state.answered, Some(state.asked))
            }
            None => (Map::new(), BTreeMap::new(), None),
        };
        let mut unasked = Map::new();
        match (responses, asked) {
            (None | Some(Value::Null), _) => {}
            (Some(Value::Object(new)), None) => unasked = new.clone(),
            (Some(Value::Object(new)), Some(asked)) => {
                for (key, method) in asked {
                    if let Some(value) = new.get(&key) {
                        answers.insert(key.clone(), value.clone());
                        answered.insert(key, method);
                    }
                }
            }
            (Some(_), _) => {
                return Err(RpcError::invalid_params(
                    "inputResponses must be an object of answers by key",
                ))
            }
        }
        Ok(Inputs {
            mrtr,
            binding,
            answers,
            answered,
            unasked,
            taken: Mutex::default(),
            asked: Mutex::default(),
            asked_methods: Mutex::default(),
            failure: Mutex::default(),
            next: AtomicUsize::new(0),
        })
    }

    /// A key for the next ask that names none (`<method>-<n>`, in ask order: the
    /// same on every round as long as the handler asks in the same order).
    pub fn auto_key(&self, method: &str) -> String {
        nth_key(method, self.next.fetch_add(1, Ordering::Relaxed))
    }

    /// The client's answer to question `key` asked with `method`, if it has one; an
    /// answer of the wrong shape ends the call with -32602 (see [`Inputs::failure`]).
    pub fn answer(&self, key: &str, method: &str) -> Option<Result<Value, RpcError>> {
        let Some(value) = self.answers.get(key) else {
            // A first call's answer to the question now asked.
            let value = self.unasked.get(key)?;
            let checked = check_answer(key, method, value).map(|()| value.clone());
            if checked.is_ok() {
                if let Ok(mut taken) = self.taken.lock() {
                    taken.insert(key.to_owned(), method.to_owned());
                }
            }
            return Some(checked);
        };
        // An answer to another question under this key is not this answer.
        if self.answered.get(key).map(String::as_str) != Some(method) {
            return None;
        }
        Some(check_answer(key, method, value).map(|()| value.clone()))
    }

    /// Record question `key` for the `input_required` result.
    pub fn ask(&self, key: &str, method: &str, params: Value) {
        if let Ok(mut asked) = self.asked.lock() {
            asked.insert(
                key.to_owned(),
                serde_json::json!({"method": method, "params": params}),
            );
        }
        if let Ok(mut methods) = self.asked_methods.lock() {
            methods.insert(key.to_owned(), method.to_owned());
        }
    }

    /// End the call with `error` whatever the handler does next.
    pub fn fail(&self, error: RpcError) {
        if let Ok(mut f) = self.failure.lock() {
            f.get_or_insert(error);
        }
    }

    /// The protocol error the call ends with, if an answer was malformed.
    pub fn failure(&self) -> Option<RpcError> {
        self.failure.lock().ok().and_then(|f| f.clone())
    }

    /// Whether the handler asked anything it has no answer for.
    pub fn has_questions(&self) -> bool {
        self.asked.lock().is_ok_and(|a| !a.is_empty())
    }

    /// The `input_required` result: the open questions and a sealed state carrying
    /// every answer so far.
    pub fn input_required(&self) -> Reply {
        let questions = self.asked.lock().map(|a| a.clone()).unwrap_or_default();
        let asked = self
            .asked_methods
            .lock()
            .map(|a| a.clone())
            .unwrap_or_default();
        // Earlier rounds' answers, and a first call's answers the handler used.
        let (mut answers, mut answered) = (self.answers.clone(), self.answered.clone());
        for (key, method) in self.taken.lock().map(|t| t.clone()).unwrap_or_default() {
            if let Some(value) = self.unasked.get(&key) {
                answers.insert(key.clone(), value.clone());
                answered.insert(key, method);
            }
        }
        let state = State {
            method: self.binding.method.to_owned(),
            name: self.binding.name.clone(),
            digest: self.binding.digest().to_owned(),
            expires: crate::storage::unix_ms().saturating_add(self.mrtr.ttl.as_millis() as u64),
            answers,
            answered,
            asked,
        };
        let sealed = self.mrtr.seal(&state)?;
        crate::protocol::reply(&serde_json::json!({
            "resultType": "input_required",
            "inputRequests": questions,
            "requestState": sealed,
        }))
    }
}

/// The key of the `n`th question a handler asks without naming one:
/// `<method's first segment>-<n>` (`elicitation-0`).
pub fn nth_key(method: &str, n: usize) -> String {
    let short = method.split('/').next().unwrap_or(method);
    format!("{short}-{n}")
}

/// `work`, ended as soon as it waits for client input: with the `input_required`
/// result once it asked something it has no answer for, or with the -32602 of a
/// malformed answer. Questions asked together (`join!`) all make it into the result:
/// they are recorded in the same poll.
pub fn until_input(
    mut work: futures::future::LocalBoxFuture<'static, Reply>,
    inputs: std::sync::Arc<Inputs>,
) -> futures::future::LocalBoxFuture<'static, Reply> {
    Box::pin(futures::future::poll_fn(move |cx| {
        match work.as_mut().poll(cx) {
            std::task::Poll::Ready(reply) => std::task::Poll::Ready(reply),
            std::task::Poll::Pending => {
                if let Some(error) = inputs.failure() {
                    std::task::Poll::Ready(Err(error))
                } else if inputs.has_questions() {
                    std::task::Poll::Ready(inputs.input_required())
                } else {
                    std::task::Poll::Pending
                }
            }
        }
    }))
}

/// An answer must have the shape of the result of the method that asked.
pub(crate) fn check_answer(key: &str, method: &str, value: &Value) -> Result<(), RpcError> {
    let object = value.as_object();
    let fits = match method {
        "elicitation/create" => object
            .and_then(|o| o.get("action"))
            .and_then(Value::as_str)
            .is_some_and(|a| matches!(a, "accept" | "decline" | "cancel")),
        "sampling/createMessage" => {
            object.is_some_and(|o| o.get("role").is_some() && o.get("content").is_some())
        }
        "roots/list" => object
            .and_then(|o| o.get("roots"))
            .is_some_and(Value::is_array),
        _ => object.is_some(),
    };
    if fits {
        Ok(())
    } else {
        Err(RpcError::invalid_params(format!(
            "inputResponses.{key} is not a {method} result"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn mrtr() -> Arc<Mrtr> {
        Arc::new(Mrtr::new(b"secret", Duration::from_secs(60), 64 * 1024))
    }

    fn binding(args: Value) -> Binding {
        Binding::new("tools/call", "t", args)
    }

    fn state_of(reply: &Reply) -> String {
        let v: Value = serde_json::from_str(reply.as_ref().unwrap().json()).unwrap();
        v["requestState"].as_str().unwrap().to_owned()
    }

    #[test]
    fn answers_carry_over_rounds_and_states_are_bound_and_sealed() {
        let m = mrtr();
        let first = Inputs::new(m.clone(), binding(json!({"a": 1})), None, None).unwrap();
        assert!(first.answer("name", "elicitation/create").is_none());
        first.ask("name", "elicitation/create", json!({"message": "?"}));
        assert!(first.has_questions());
        let state = state_of(&first.input_required());
        // Round two answers; round three answers another question only.
        let reply = json!({"name": {"action": "accept", "content": {"n": "A"}}});
        let second = Inputs::new(
            m.clone(),
            binding(json!({"a": 1})),
            Some(&reply),
            Some(&state),
        )
        .unwrap();
        assert!(second.answer("name", "elicitation/create").unwrap().is_ok());
        second.ask("color", "elicitation/create", json!({}));
        let state = state_of(&second.input_required());
        let reply = json!({"color": {"action": "accept", "content": {}}});
        let third = Inputs::new(
            m.clone(),
            binding(json!({"a": 1})),
            Some(&reply),
            Some(&state),
        )
        .unwrap();
        assert!(third.answer("name", "elicitation/create").is_some(), "kept");
        assert!(third.answer("color", "elicitation/create").is_some());
        // Other arguments, another key, a changed byte: refused with -32602.
        let other = Inputs::new(m.clone(), binding(json!({"a": 2})), None, Some(&state));
        assert_eq!(other.unwrap_err().code, -32602);
        let foreign = Arc::new(Mrtr::new(b"other", Duration::from_secs(60), 64 * 1024));
        let err = Inputs::new(foreign, binding(json!({"a": 1})), None, Some(&state));
        assert_eq!(err.unwrap_err().code, -32602);
        let mut tampered = state.clone().into_bytes();
        let at = tampered.len() / 2;
        tampered[at] = if tampered[at] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        let err = Inputs::new(m.clone(), binding(json!({"a": 1})), None, Some(&tampered));
        assert_eq!(err.unwrap_err().code, -32602);
        let err = Inputs::new(
            m,
            binding(json!({"a": 1})),
            None,
            Some(&format!("{state}-TAMPERED")),
        );
        assert_eq!(err.unwrap_err().code, -32602);
    }

    #[test]
    fn only_answers_to_the_latest_rounds_questions_count() {
        let m = mrtr();
        let name = json!({"action": "accept", "content": {"n": "A"}});
        // No requestState: an answer counts for the question the handler asks, and
        // one to a question never asked is never used or carried on.
        let early = json!({"name": name, "later": name});
        let first = Inputs::new(m.clone(), binding(json!(null)), Some(&early), None).unwrap();
        assert_eq!(
            first.answer("name", "elicitation/create").unwrap().unwrap(),
            name
        );
        first.ask("other", "elicitation/create", json!({}));
        let state = state_of(&first.input_required());
        let none = json!({});
        let carried =
            Inputs::new(m.clone(), binding(json!(null)), Some(&none), Some(&state)).unwrap();
        assert!(carried.answer("name", "elicitation/create").is_some());
        assert!(
            carried.answer("later", "elicitation/create").is_none(),
            "a first call's answer to a question not asked is not carried"
        );
        let first = Inputs::new(m.clone(), binding(json!(null)), None, None).unwrap();
        first.ask("name", "elicitation/create", json!({}));
        let state = state_of(&first.input_required());
        // Round two answers the question asked, and one never asked (ignored).
        let both = json!({"name": name, "color": {"action": "accept", "content": {}}});
        let second =
            Inputs::new(m.clone(), binding(json!(null)), Some(&both), Some(&state)).unwrap();
        assert!(second.answer("name", "elicitation/create").is_some());
        assert!(second.answer("color", "elicitation/create").is_none());
        // An answer is bound to the method that asked.
        assert!(second.answer("name", "roots/list").is_none());
        second.ask("color", "elicitation/create", json!({}));
        let state = state_of(&second.input_required());
        // Round three cannot replace round two's answer.
        let again = json!({"name": {"action": "decline"}, "color": {"action": "decline"}});
        let third = Inputs::new(m, binding(json!(null)), Some(&again), Some(&state)).unwrap();
        assert_eq!(
            third.answer("name", "elicitation/create").unwrap().unwrap(),
            name
        );
        assert_eq!(
            third
                .answer("color", "elicitation/create")
                .unwrap()
                .unwrap(),
            json!({"action": "decline"})
        );
    }

    #[test]
    fn expired_states_and_malformed_answers_are_refused() {
        let m = Arc::new(Mrtr::new(b"k", Duration::from_millis(0), 64 * 1024));
        let first = Inputs::new(m.clone(), binding(json!(null)), None, None).unwrap();
        first.ask("q", "roots/list", json!({}));
        let state = state_of(&first.input_required());
        std::thread::sleep(Duration::from_millis(5));
        let err = Inputs::new(m, binding(json!(null)), None, Some(&state)).unwrap_err();
        assert!(err.message.contains("expired"), "{err:?}");
        let m = mrtr();
        let first = Inputs::new(m.clone(), binding(json!(null)), None, None).unwrap();
        first.ask("q", "roots/list", json!({}));
        let state = state_of(&first.input_required());
        let bad = json!({"q": 12345});
        let inputs = Inputs::new(m, binding(json!(null)), Some(&bad), Some(&state)).unwrap();
        let answer = inputs.answer("q", "roots/list").unwrap();
        assert_eq!(answer.unwrap_err().code, -32602);
        assert!(Inputs::new(mrtr(), binding(json!(null)), Some(&json!([1])), None).is_err());
    }

    #[test]
    fn a_state_past_its_size_bound_is_an_error() {
        let m = Arc::new(Mrtr::new(b"k", Duration::from_secs(60), 300));
        let first = Inputs::new(m.clone(), binding(json!(null)), None, None).unwrap();
        first.ask("q", "elicitation/create", json!({}));
        let state = state_of(&first.input_required());
        let big = json!({"q": {"action": "accept", "content": {"x": "y".repeat(400)}}});
        let inputs = Inputs::new(m, binding(json!(null)), Some(&big), Some(&state)).unwrap();
        assert!(inputs.answer("q", "elicitation/create").is_some());
        inputs.ask("r", "roots/list", json!({}));
        let err = inputs.input_required().unwrap_err();
        assert!(err.message.contains("mrtr.max_state_bytes"), "{err:?}");
    }

    use serde_json::json;
}
