//! JSON-RPC 2.0 envelope: classify an incoming message, encode responses and errors.
//!
//! Parsing is done in one pass over borrowed input; `params`, `result` and `error`
//! stay raw (`RawValue`) until the method that owns them decodes them into a typed
//! struct. Nothing here does IO.

use std::fmt;

use serde::de::Deserializer;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

pub use super::error::{code, decode_params, RpcError};
use super::request::{decode_meta, ClientNotification, ClientRequest, RequestMeta};

/// A JSON-RPC request id: MCP allows strings and integers, never null.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(untagged)]
pub enum RequestId {
    /// An integer id.
    Number(i64),
    /// A string id.
    String(String),
}

/// Read by what the value is (no buffering, as `untagged` would do): every
/// message has an id or refers to one.
impl<'de> Deserialize<'de> for RequestId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<RequestId, D::Error> {
        struct Id;
        impl serde::de::Visitor<'_> for Id {
            type Value = RequestId;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string or an integer")
            }

            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<RequestId, E> {
                Ok(RequestId::Number(n))
            }

            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<RequestId, E> {
                i64::try_from(n)
                    .map(RequestId::Number)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(n), &self))
            }

            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<RequestId, E> {
                Ok(RequestId::String(s.to_owned()))
            }

            fn visit_string<E: serde::de::Error>(self, s: String) -> Result<RequestId, E> {
                Ok(RequestId::String(s))
            }
        }
        d.deserialize_any(Id)
    }
}

/// Longest part of a string id that `Display` shows (ids are client-chosen and reach
/// logs and error messages).
pub(crate) const ID_DISPLAY_MAX: usize = 64;

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RequestId::Number(n) => write!(f, "{n}"),
            RequestId::String(s) => match s.char_indices().nth(ID_DISPLAY_MAX) {
                None => f.write_str(s),
                Some((at, _)) => write!(f, "{}…", &s[..at]),
            },
        }
    }
}

/// A request: has an id and a method; expects exactly one response. Decoded once,
/// here: the method with its typed params, and the params' `_meta`.
#[derive(Debug)]
pub struct Request {
    /// The id to echo in the response.
    pub id: RequestId,
    /// The method and its params.
    pub call: ClientRequest,
    /// The params' `_meta`.
    pub meta: RequestMeta,
}

impl Request {
    /// The method name, e.g. `tools/call`.
    pub fn method(&self) -> &str {
        self.call.method()
    }
}

/// A notification: a method without an id; never answered.
pub type Notification = ClientNotification;

/// A response from the peer to a request we sent (server → client requests).
#[derive(Debug)]
pub struct Response {
    /// The id of our request.
    pub id: RequestId,
    /// `Ok(result)` or `Err(error)`.
    pub outcome: Result<Box<RawValue>, RpcError>,
}

/// One classified JSON-RPC message.
#[derive(Debug)]
pub enum Message {
    /// See [`Request`] (boxed: it is the large variant).
    Request(Box<Request>),
    /// See [`Notification`].
    Notification(Notification),
    /// See [`Response`].
    Response(Response),
}

impl Message {
    /// The method name, when the message has one.
    pub fn method(&self) -> Option<&str> {
        match self {
            Message::Request(r) => Some(r.method()),
            Message::Notification(_) => None,
            Message::Response(_) => None,
        }
    }
}

/// Why an incoming payload could not be turned into a [`Message`].
///
/// Each variant knows the id to answer with (if any could be recovered) and the error.
#[derive(Debug)]
pub struct Rejected {
    /// The id of the offending request, when it could be read.
    pub id: Option<RequestId>,
    /// The JSON-RPC error to answer with.
    pub error: RpcError,
}

/// A payload: one message or a batch (an array of them).
#[derive(Debug)]
pub enum Payload {
    /// A single message (or one that failed to classify).
    Single(Result<Message, Rejected>),
    /// A JSON array of messages; the array itself was well-formed and non-empty.
    Batch(Vec<Result<Message, Rejected>>),
}

/// A message's members, each the text it has in the message (borrowed: nothing
/// is copied before the method decides what to decode).
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(default, borrow, deserialize_with = "some")]
    jsonrpc: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "some")]
    id: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "some")]
    method: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "some")]
    params: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "some")]
    result: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "some")]
    error: Option<&'a RawValue>,
}

/// A well-formed message's members read straight into what they are (the
/// shortcut of [`parse`]): a member of another shape (an `id` that is not a string
/// or an integer, a `jsonrpc` or `method` that is not a string without escapes)
/// fails it, and the full path, reading [`Envelope`], says what is wrong.
#[derive(Deserialize)]
struct Members<'a> {
    #[serde(default, borrow, deserialize_with = "some")]
    jsonrpc: Option<&'a str>,
    #[serde(default, deserialize_with = "some")]
    id: Option<RequestId>,
    #[serde(default, borrow, deserialize_with = "some")]
    method: Option<&'a str>,
    #[serde(default, borrow, deserialize_with = "some")]
    params: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "some")]
    result: Option<&'a RawValue>,
    #[serde(default, borrow, deserialize_with = "some")]
    error: Option<&'a RawValue>,
}

/// A member that is present has a value of its type: `"field": null` is told from
/// a missing field (and `null` is not an id).
fn some<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(d).map(Some)
}

/// A message's members once each is known to have its shape (`method` still to
/// be checked: the full path finds it wrong only after `jsonrpc`).
struct Parts<'a> {
    id: Option<RequestId>,
    /// Whether `jsonrpc` is `"2.0"`, when present.
    jsonrpc: Option<bool>,
    method: Option<Option<std::borrow::Cow<'a, str>>>,
    params: Option<&'a RawValue>,
    result: Option<&'a RawValue>,
    error: Option<&'a RawValue>,
}

/// A JSON string's text: borrowed from the message unless it has escapes.
fn string_of(raw: &RawValue) -> Option<std::borrow::Cow<'_, str>> {
    match serde_json::from_str::<&str>(raw.get()) {
        Ok(text) => Some(std::borrow::Cow::Borrowed(text)),
        Err(_) => serde_json::from_str::<String>(raw.get())
            .ok()
            .map(std::borrow::Cow::Owned),
    }
}

/// Parse one transport payload (a line on stdio, a body on HTTP).
///
/// Malformed JSON yields `Payload::Single(Err(..))` with code -32700; an empty batch
/// or a non-object yields -32600.
pub fn parse(input: &[u8]) -> Payload {
    // The common case, one well-formed object: its members are read in one pass.
    // Anything else (a batch, malformed JSON, a member of the wrong shape) takes
    // the path below, which validates the whole payload first and says which
    // error it is.
    if let Some(m) = one_object(input) {
        return Payload::Single(from_parts(Parts {
            id: m.id,
            jsonrpc: m.jsonrpc.map(|v| v == "2.0"),
            method: m.method.map(|name| Some(std::borrow::Cow::Borrowed(name))),
            params: m.params,
            result: m.result,
            error: m.error,
        }));
    }
    parse_whole(input)
}

/// [`parse`] without its shortcut: the payload is read as one JSON value first,
/// then classified (a batch item by item).
fn parse_whole(input: &[u8]) -> Payload {
    let raw: &RawValue = match serde_json::from_slice(input) {
        Ok(raw) => raw,
        Err(e) => {
            return Payload::Single(Err(Rejected {
                id: None,
                error: RpcError::parse_error(e),
            }))
        }
    };
    let text = raw.get();
    if text.starts_with('[') {
        let items: Vec<&RawValue> = match serde_json::from_str(text) {
            Ok(items) => items,
            Err(e) => {
                return Payload::Single(Err(Rejected {
                    id: None,
                    error: RpcError::parse_error(e),
                }))
            }
        };
        if items.is_empty() {
            return Payload::Single(Err(Rejected {
                id: None,
                error: RpcError::invalid_request("empty batch"),
            }));
        }
        return Payload::Batch(items.into_iter().map(classify).collect());
    }
    Payload::Single(classify(raw))
}

/// The members of `input` when it is one well-formed JSON object (UTF-8, nothing
/// but whitespace around it, each member of the shape [`Members`] reads);
/// `None` otherwise, for [`parse`]'s full path to classify.
fn one_object(input: &[u8]) -> Option<Members<'_>> {
    let start = input.iter().position(|b| !b.is_ascii_whitespace())?;
    if input[start] != b'{' {
        return None;
    }
    // `from_str` checks nothing of the text's UTF-8 (`from_slice` would check
    // only what it reads as strings): the whole payload is checked here, as
    // the full path's raw value does.
    let text = std::str::from_utf8(input).ok()?;
    serde_json::from_str(text).ok()
}

/// Classify one JSON value as a request, notification or response.
pub fn classify(raw: &RawValue) -> Result<Message, Rejected> {
    if !raw.get().starts_with('{') {
        return Err(Rejected {
            id: None,
            error: RpcError::invalid_request("a message must be a JSON object"),
        });
    }
    let env: Envelope = serde_json::from_str(raw.get()).map_err(|e| Rejected {
        id: None,
        error: RpcError::invalid_request(e),
    })?;
    from_envelope(env)
}

/// Classify a message by its members.
fn from_envelope(env: Envelope<'_>) -> Result<Message, Rejected> {
    let id = match &env.id {
        None => None,
        Some(raw_id) => match serde_json::from_str::<RequestId>(raw_id.get()) {
            Ok(id) => Some(id),
            Err(_) => {
                return Err(Rejected {
                    id: None,
                    error: RpcError::invalid_request(
                        "`id` must be a string or an integer (not null)",
                    ),
                })
            }
        },
    };
    from_parts(Parts {
        id,
        // As written: an escaped "2.0" is not one.
        jsonrpc: env.jsonrpc.map(|v| v.get() == "\"2.0\""),
        method: env.method.map(string_of),
        params: env.params,
        result: env.result,
        error: env.error,
    })
}

/// Classify a message by its members, the id already read.
fn from_parts(parts: Parts<'_>) -> Result<Message, Rejected> {
    let id = parts.id;
    let reject = |msg: &str| Rejected {
        id: id.clone(),
        error: RpcError::invalid_request(msg),
    };
    match parts.jsonrpc {
        Some(true) => {}
        Some(false) => return Err(reject("`jsonrpc` must be \"2.0\"")),
        None => return Err(reject("missing `jsonrpc: \"2.0\"`")),
    }
    if let Some(method) = parts.method {
        let method = method.ok_or_else(|| reject("`method` must be a string"))?;
        if let Some(p) = &parts.params {
            if !(p.get().starts_with('{') || p.get().starts_with('[')) {
                return Err(reject("`params` must be an object or an array"));
            }
        }
        let params = parts.params;
        return Ok(match id {
            Some(id) => {
                let decoded = decode_meta(params).and_then(|meta| {
                    let modern = meta.protocol_version.is_some();
                    Ok((ClientRequest::decode_in(&method, params, modern)?, meta))
                });
                match decoded {
                    Ok((call, meta)) => Message::Request(Box::new(Request { id, call, meta })),
                    Err(error) => {
                        return Err(Rejected {
                            id: Some(id),
                            error,
                        })
                    }
                }
            }
            None => Message::Notification(ClientNotification::decode(&method, params)),
        });
    }
    let Some(id) = id.clone() else {
        return Err(reject("a message needs a `method` or an `id`"));
    };
    let outcome = match (parts.result, parts.error) {
        (Some(result), None) => Ok(result.to_owned()),
        (None, Some(error)) => Err(serde_json::from_str::<RpcError>(error.get())
            .map_err(|_| reject("malformed `error` object"))?),
        _ => {
            return Err(reject(
                "a response needs exactly one of `result` or `error`",
            ))
        }
    };
    Ok(Message::Response(Response { id, outcome }))
}

#[derive(Serialize)]
struct ResultOut<'a, T: Serialize + ?Sized> {
    jsonrpc: &'static str,
    id: &'a RequestId,
    result: &'a T,
}

#[derive(Serialize)]
struct ErrorOut<'a> {
    jsonrpc: &'static str,
    id: Option<&'a RequestId>,
    error: &'a RpcError,
}

#[derive(Serialize)]
struct ErrorOutNoNull<'a> {
    jsonrpc: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a RequestId>,
    error: &'a RpcError,
}

#[derive(Serialize)]
struct NotificationOut<'a, T: Serialize + ?Sized> {
    jsonrpc: &'static str,
    method: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    params: Option<&'a T>,
}

#[derive(Serialize)]
struct RequestOut<'a, T: Serialize + ?Sized> {
    jsonrpc: &'static str,
    id: &'a RequestId,
    method: &'a str,
    params: &'a T,
}

/// Encode a successful response.
pub fn encode_result<T: Serialize + ?Sized>(id: &RequestId, result: &T) -> String {
    to_json(&ResultOut {
        jsonrpc: "2.0",
        id,
        result,
    })
}

/// The response to `id` whose result is the JSON text `result`, written in one
/// buffer of the size it needs.
pub fn encode_result_text(id: &RequestId, result: &str) -> String {
    let mut out = result_head(id, result.len() + 1);
    out.push_str(result);
    out.push('}');
    out
}

/// `{"jsonrpc":"2.0","id":ID,"result":` with room for `rest` more bytes.
pub(crate) fn result_head(id: &RequestId, rest: usize) -> String {
    const OPEN: &str = r#"{"jsonrpc":"2.0","id":"#;
    const RESULT: &str = r#","result":"#;
    let mut out = String::with_capacity(OPEN.len() + id_len(id) + RESULT.len() + rest);
    out.push_str(OPEN);
    match id {
        RequestId::Number(n) => out.push_str(itoa::Buffer::new().format(*n)),
        RequestId::String(s) => {
            // serde_json escapes the string; writing to a String cannot fail.
            let mut bytes = std::mem::take(&mut out).into_bytes();
            let _ = serde_json::to_writer(&mut bytes, s);
            out = String::from_utf8(bytes).unwrap_or_default();
        }
    }
    out.push_str(RESULT);
    out
}

/// About how long `id` is in JSON (exact for numbers and strings without escapes).
fn id_len(id: &RequestId) -> usize {
    match id {
        RequestId::Number(_) => 20,
        RequestId::String(s) => s.len() + 2,
    }
}

/// Encode an error response; `id` is `None` when it could not be read (JSON `null`).
pub fn encode_error(id: Option<&RequestId>, error: &RpcError) -> String {
    to_json(&ErrorOut {
        jsonrpc: "2.0",
        id,
        error,
    })
}

/// Encode an error response the 2026-07-28 way: an id that could not be read is
/// omitted rather than `null`.
pub fn encode_error_omitting_unknown_id(id: Option<&RequestId>, error: &RpcError) -> String {
    to_json(&ErrorOutNoNull {
        jsonrpc: "2.0",
        id,
        error,
    })
}

/// Encode a notification.
pub fn encode_notification<T: Serialize + ?Sized>(method: &str, params: Option<&T>) -> String {
    to_json(&NotificationOut {
        jsonrpc: "2.0",
        method,
        params,
    })
}

/// Encode a server → client request.
pub fn encode_request<T: Serialize + ?Sized>(id: &RequestId, method: &str, params: &T) -> String {
    to_json(&RequestOut {
        jsonrpc: "2.0",
        id,
        method,
        params,
    })
}

fn to_json<T: Serialize>(value: &T) -> String {
    // Serializing these envelope types cannot fail: every field is a string, an id
    // or an already-valid JSON value, and no map has non-string keys.
    serde_json::to_string(value).unwrap_or_else(|e| {
        format!(
            r#"{{"jsonrpc":"2.0","id":null,"error":{{"code":{},"message":"encode failed: {}"}}}}"#,
            code::INTERNAL_ERROR,
            e.to_string().replace('"', "'")
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_is_a_string_or_an_integer_that_fits() {
        let read = |text: &str| serde_json::from_str::<RequestId>(text).ok();
        let from_value = |text: &str| {
            serde_json::from_value::<RequestId>(serde_json::from_str(text).unwrap()).ok()
        };
        for (text, id) in [
            ("0", Some(RequestId::Number(0))),
            ("-9223372036854775808", Some(RequestId::Number(i64::MIN))),
            ("9223372036854775807", Some(RequestId::Number(i64::MAX))),
            ("9223372036854775808", None),
            (r#""a\"b""#, Some(RequestId::String("a\"b".into()))),
            (r#""""#, Some(RequestId::String(String::new()))),
            ("1.0", None),
            ("null", None),
            ("true", None),
            ("[1]", None),
            (r#"{"a":1}"#, None),
        ] {
            assert_eq!(read(text), id, "{text}");
            assert_eq!(from_value(text), id, "{text} as a Value");
        }
    }

    #[test]
    fn a_result_written_from_its_text_is_what_serde_writes() {
        let ids = [
            RequestId::Number(0),
            RequestId::Number(-7),
            RequestId::Number(i64::MIN),
            RequestId::Number(i64::MAX),
            RequestId::String(String::new()),
            RequestId::String("a\"b\\c\u{1}é😀".into()),
        ];
        for id in &ids {
            for result in [
                r#"{}"#,
                r#"{"content":[{"type":"text","text":"hi"}]}"#,
                "[1]",
            ] {
                let raw = RawValue::from_string(result.to_owned()).unwrap();
                let text = encode_result_text(id, result);
                assert_eq!(text, encode_result(id, &raw));
            }
        }
    }

    #[test]
    fn the_shortcut_for_one_object_answers_as_the_whole_parse_does() {
        let cases: &[&[u8]] = &[
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hi"}}}"#,
            b" \t\r\n{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"} \n",
            br#"{"jsonrpc":"2.0","id":"r","result":{"ok":true}}"#,
            br#"{"jsonrpc":"2.0","id":7,"error":{"code":-1,"message":"m"}}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"ping","x":"\u00e9\ud83d\ude00"}"#,
            // Invalid UTF-8 in a member no one reads: still a parse error.
            b"{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\",\"x\":\"\xff\"}",
            // A form feed is not JSON whitespace.
            b"\x0c{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"ping\"}",
            br#"{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"ping"} x"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"ping""#,
            br#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#,
            br#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":7}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"ping","params":3}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":1}}"#,
            br#"{"jsonrpc":"2.0","id":1}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"ping","x":[[[[[[[[[[[[1]]]]]]]]]]]}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":"tools\u002flist"}"#,
            br#"{"jsonrpc":"2\u002e0","id":1,"method":"ping"}"#,
            br#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#,
            br#"{"jsonrpc":"2.0","id":-9223372036854775808,"method":"ping"}"#,
            br#"{"jsonrpc":"2.0","id":9223372036854775808,"method":"ping"}"#,
            br#"{"jsonrpc":"2.0","id":"a\"b","method":"ping"}"#,
            br#"{"jsonrpc":"2.0","id":[1],"method":"ping"}"#,
            br#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":1}}"#,
            br#"{"jsonrpc":"2.0","id":1,"method":null}"#,
            br#"{"jsonrpc":"2.0","id":"r","result":{},"error":{"code":1,"message":"m"}}"#,
            br#"{"id":1,"method":"ping"}"#,
            br#"{"jsonrpc":2.0,"id":1,"method":"ping"}"#,
            br#"{"jsonrpc":"2.00","id":1,"method":"ping"}"#,
            br#"{"jsonrpc":null,"id":1,"method":"ping"}"#,
            br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#,
            b"",
            b"   ",
            b"{}",
            b"{",
        ];
        for case in cases {
            assert_eq!(
                format!("{:?}", parse(case)),
                format!("{:?}", parse_whole(case)),
                "{}",
                String::from_utf8_lossy(case)
            );
        }
        let deep = format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"ping","x":{}1{}}}"#,
            "[".repeat(200),
            "]".repeat(200)
        );
        assert_eq!(
            format!("{:?}", parse(deep.as_bytes())),
            format!("{:?}", parse_whole(deep.as_bytes()))
        );
    }

    #[test]
    fn members_are_read_in_place_and_a_method_with_escapes_is_unescaped() {
        let parse_one = |text: &str| match parse(text.as_bytes()) {
            Payload::Single(m) => m,
            Payload::Batch(_) => panic!("one message"),
        };
        let Ok(Message::Request(r)) =
            parse_one(r#"{"jsonrpc":"2.0","id":"a\"b","method":"tools\u002flist"}"#)
        else {
            panic!("a request");
        };
        assert_eq!(r.method(), "tools/list");
        assert_eq!(r.id, RequestId::String("a\"b".into()));
        let rejected = |text: &str| parse_one(text).err().map(|e| e.error.code);
        assert_eq!(
            rejected(r#"{"jsonrpc":"2.0","id":1,"method":7}"#),
            Some(code::INVALID_REQUEST)
        );
        assert_eq!(
            rejected(r#"{"jsonrpc":"2.0","id":1,"method":null}"#),
            Some(code::INVALID_REQUEST)
        );
        assert_eq!(
            rejected(r#"{"jsonrpc":"2.0","id":1,"method":"ping","params":3}"#),
            Some(code::INVALID_REQUEST)
        );
        let Ok(Message::Response(resp)) =
            parse_one(r#"{"jsonrpc":"2.0","id":2,"result":{"a":[1, 2]}}"#)
        else {
            panic!("a response");
        };
        assert_eq!(resp.outcome.unwrap().get(), r#"{"a":[1, 2]}"#);
    }

    fn single(input: &str) -> Result<Message, Rejected> {
        match parse(input.as_bytes()) {
            Payload::Single(m) => m,
            Payload::Batch(_) => panic!("unexpected batch"),
        }
    }

    fn rejected_code(input: &str) -> i32 {
        single(input).expect_err("should be rejected").error.code
    }

    #[test]
    fn classifies_requests_notifications_and_responses() {
        let m = single(r#"{"jsonrpc":"2.0","id":7,"method":"ping"}"#).unwrap();
        assert!(matches!(m, Message::Request(r) if r.id == RequestId::Number(7)));
        let m = single(r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#).unwrap();
        assert!(matches!(m, Message::Notification(_)));
        let m = single(r#"{"jsonrpc":"2.0","id":"a","result":{}}"#).unwrap();
        assert!(matches!(
            m,
            Message::Response(Response { outcome: Ok(_), .. })
        ));
        let m = single(r#"{"jsonrpc":"2.0","id":"a","error":{"code":-1,"message":"x"}}"#).unwrap();
        assert!(matches!(
            m,
            Message::Response(Response {
                outcome: Err(_),
                ..
            })
        ));
    }

    #[test]
    fn rejects_bad_envelopes_with_the_right_code() {
        assert_eq!(rejected_code("{not json"), code::PARSE_ERROR);
        assert_eq!(rejected_code(""), code::PARSE_ERROR);
        assert_eq!(rejected_code("[]"), code::INVALID_REQUEST);
        assert_eq!(rejected_code("42"), code::INVALID_REQUEST);
        assert_eq!(
            rejected_code(r#"{"id":1,"method":"ping"}"#),
            code::INVALID_REQUEST
        );
        assert_eq!(
            rejected_code(r#"{"jsonrpc":"1.0","id":1,"method":"ping"}"#),
            code::INVALID_REQUEST
        );
        assert_eq!(
            rejected_code(r#"{"jsonrpc":"2.0","id":null,"method":"ping"}"#),
            code::INVALID_REQUEST
        );
        assert_eq!(
            rejected_code(r#"{"jsonrpc":"2.0","id":1.5,"method":"ping"}"#),
            code::INVALID_REQUEST
        );
        assert_eq!(
            rejected_code(r#"{"jsonrpc":"2.0","id":1,"method":3}"#),
            code::INVALID_REQUEST
        );
        assert_eq!(
            rejected_code(r#"{"jsonrpc":"2.0","id":1,"method":"x","params":3}"#),
            code::INVALID_REQUEST
        );
        assert_eq!(rejected_code(r#"{"jsonrpc":"2.0"}"#), code::INVALID_REQUEST);
    }

    #[test]
    fn keeps_the_id_of_an_invalid_request_when_readable() {
        let r = single(r#"{"jsonrpc":"1.0","id":"x","method":"ping"}"#).unwrap_err();
        assert_eq!(r.id, Some(RequestId::String("x".into())));
    }

    #[test]
    fn parses_batches() {
        let p = parse(br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}, 5]"#);
        let Payload::Batch(items) = p else {
            panic!("expected a batch")
        };
        assert_eq!(items.len(), 2);
        assert!(items[0].is_ok());
        assert!(items[1].is_err());
    }

    #[test]
    fn string_ids_display_plain_and_bounded() {
        assert_eq!(RequestId::String("abc".into()).to_string(), "abc");
        assert_eq!(RequestId::Number(7).to_string(), "7");
        let long = RequestId::String("x".repeat(1000)).to_string();
        assert_eq!(long.chars().count(), ID_DISPLAY_MAX + 1);
    }

    #[test]
    fn encodes_envelopes() {
        let id = RequestId::Number(1);
        assert_eq!(
            encode_result(&id, &serde_json::json!({})),
            r#"{"jsonrpc":"2.0","id":1,"result":{}}"#
        );
        assert_eq!(
            encode_error(None, &RpcError::new(-32700, "bad")),
            r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"bad"}}"#
        );
        assert_eq!(
            encode_notification::<()>("notifications/x", None),
            r#"{"jsonrpc":"2.0","method":"notifications/x"}"#
        );
    }

    #[test]
    fn decode_params_names_the_problem() {
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct P {
            name: String,
        }
        let raw = RawValue::from_string("{}".into()).unwrap();
        let err = decode_params::<P>(Some(&raw)).unwrap_err();
        assert_eq!(err.code, code::INVALID_PARAMS);
        assert!(
            err.message.contains("missing field `name`"),
            "{}",
            err.message
        );
        assert!(!err.message.contains("line"), "{}", err.message);
    }
}
