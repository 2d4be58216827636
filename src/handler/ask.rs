//! Typed questions to the client, on top of [`CallContext::request_client`]:
//! [`CallContext::elicit`] (a form generated from a Rust type),
//! [`CallContext::sample`] (the client's model) and [`CallContext::roots`].
//!
//! Each one spells the method, the capability and the params for the handler, then
//! asks through `request_client` (or `request_client_keyed`), so it serves both eras
//! exactly as `request_client` does: a request on the call's stream in the session
//! era; in 2026-07-28 an `input_required` result (or a task's `input_required`
//! status) and a retry that runs the handler again from the start.
//!
//! ```no_run
//! use emcee::prelude::*;
//!
//! #[derive(Deserialize, JsonSchema)]
//! struct Name {
//!     /// Your first name.
//!     name: String,
//! }
//!
//! async fn greet(ctx: &CallContext) -> Result<String, RpcError> {
//!     Ok(match ctx.elicit::<Name>("What is your name?").await? {
//!         Elicitation::Accept(Name { name }) => format!("Hello, {name}!"),
//!         Elicitation::Decline => "Hello, whoever you are.".into(),
//!         _ => "Maybe later.".into(),
//!     })
//! }
//! ```

use std::any::TypeId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::CallContext;
use crate::protocol::client::{
    ElicitAction, ElicitRequest, ElicitResult, ListRoots, ListRootsResult, Root, SamplingRequest,
    SamplingResult,
};
use crate::protocol::RpcError;

/// What the user did with an elicitation ([`CallContext::elicit`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Elicitation<T> {
    /// The user submitted the form; its values, decoded.
    Accept(T),
    /// The user explicitly refused.
    Decline,
    /// The user dismissed the form without choosing.
    Cancel,
}

impl<T> Elicitation<T> {
    /// The submitted values, if the user accepted.
    pub fn accepted(self) -> Option<T> {
        match self {
            Elicitation::Accept(value) => Some(value),
            _ => None,
        }
    }
}

impl CallContext {
    /// Ask the user to fill in a form generated from `T` (`elicitation/create`, form
    /// mode), and decode the answer into `T`. Needs the client's `elicitation`
    /// capability (else -32021 in 2026-07-28, -32600 in the session era, as
    /// [`CallContext::request_client`]).
    ///
    /// `T` must be a struct of primitive fields, the only form elicitation knows:
    /// strings, numbers, integers, booleans, unit-variant enums, lists of enum values,
    /// each optional or not. The form's `requestedSchema` is generated from `T` with
    /// schemars (doc comments become descriptions, `#[serde(default = ...)]` becomes
    /// `default`, a variant's doc comment the title of its choice) and checked once per
    /// type: a `T` that is not such a struct fails every call with -32603 naming the
    /// type and the field ([`elicitation_schema`] runs the same check, e.g. in a
    /// test). Keywords elicitation does not know are left out of the form.
    ///
    /// An accepted answer whose `content` does not decode into `T` fails with -32602
    /// naming the field: the answer is the client's input, like a param it sent (in
    /// 2026-07-28 it is one, in the retry's `inputResponses`), so the client is at
    /// fault, not the server; a malformed `inputResponses` entry gets the same code.
    ///
    /// In a 2026-07-28 `inputRequests` the question's key is the one
    /// `request_client` picks (`elicitation-<n>`); [`CallContext::elicit_keyed`] names it.
    pub async fn elicit<T>(&self, message: &str) -> Result<Elicitation<T>, RpcError>
    where
        T: JsonSchema + DeserializeOwned + 'static,
    {
        let params = elicit_params::<T>(message)?;
        let answer = self
            .request_client(ElicitRequest::METHOD, ElicitRequest::CAPABILITY, params)
            .await?;
        decode_elicitation(answer)
    }

    /// [`CallContext::elicit`] with the key this question has in a 2026-07-28
    /// `inputRequests` (ignored in the session era).
    pub async fn elicit_keyed<T>(
        &self,
        key: &str,
        message: &str,
    ) -> Result<Elicitation<T>, RpcError>
    where
        T: JsonSchema + DeserializeOwned + 'static,
    {
        let params = elicit_params::<T>(message)?;
        let answer = self
            .request_client_keyed(
                key,
                ElicitRequest::METHOD,
                ElicitRequest::CAPABILITY,
                params,
            )
            .await?;
        decode_elicitation(answer)
    }

    /// Ask the client's model (`sampling/createMessage`); needs the client's
    /// `sampling` capability. An answer that is not a sampling result fails with
    /// -32602. Key in a 2026-07-28 `inputRequests`: `sampling-<n>`
    /// ([`CallContext::sample_keyed`] names it).
    pub async fn sample(&self, request: SamplingRequest) -> Result<SamplingResult, RpcError> {
        let params = to_params(&request)?;
        let answer = self
            .request_client(SamplingRequest::METHOD, SamplingRequest::CAPABILITY, params)
            .await?;
        decode_answer(SamplingRequest::METHOD, answer)
    }

    /// [`CallContext::sample`] with the key this question has in a 2026-07-28
    /// `inputRequests` (ignored in the session era).
    pub async fn sample_keyed(
        &self,
        key: &str,
        request: SamplingRequest,
    ) -> Result<SamplingResult, RpcError> {
        let params = to_params(&request)?;
        let answer = self
            .request_client_keyed(
                key,
                SamplingRequest::METHOD,
                SamplingRequest::CAPABILITY,
                params,
            )
            .await?;
        decode_answer(SamplingRequest::METHOD, answer)
    }

    /// The client's roots (`roots/list`); needs the client's `roots` capability. An
    /// answer that is not a roots list fails with -32602. Key in a 2026-07-28
    /// `inputRequests`: `roots-<n>` ([`CallContext::roots_keyed`] names it).
    pub async fn roots(&self) -> Result<Vec<Root>, RpcError> {
        let answer = self
            .request_client(
                ListRoots::METHOD,
                ListRoots::CAPABILITY,
                Value::Object(Map::new()),
            )
            .await?;
        decode_answer::<ListRootsResult>(ListRoots::METHOD, answer).map(|r| r.roots)
    }

    /// [`CallContext::roots`] with the key this question has in a 2026-07-28
    /// `inputRequests` (ignored in the session era).
    pub async fn roots_keyed(&self, key: &str) -> Result<Vec<Root>, RpcError> {
        let answer = self
            .request_client_keyed(
                key,
                ListRoots::METHOD,
                ListRoots::CAPABILITY,
                Value::Object(Map::new()),
            )
            .await?;
        decode_answer::<ListRootsResult>(ListRoots::METHOD, answer).map(|r| r.roots)
    }
}

/// The `requestedSchema` [`CallContext::elicit`] sends for `T`: a flat object of
/// primitive properties, everything inline, without `$schema` or `$defs`. Fails with
/// -32603 naming `T` and the offending field when `T` is not such a struct. Generated
/// and checked once per type, then cached.
pub fn elicitation_schema<T: JsonSchema + 'static>() -> Result<Value, RpcError> {
    cached_schema::<T>().map(|schema| (*schema).clone())
}

type SchemaCache = Mutex<HashMap<TypeId, Result<Arc<Value>, String>>>;

fn cached_schema<T: JsonSchema + 'static>() -> Result<Arc<Value>, RpcError> {
    static CACHE: OnceLock<SchemaCache> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    let id = TypeId::of::<T>();
    let hit = cache.lock().ok().and_then(|c| c.get(&id).cloned());
    let made = match hit {
        Some(made) => made,
        None => {
            let made = flat_schema(generate::<T>())
                .map(Arc::new)
                .map_err(|why| format!("elicit::<{}>: {why}", std::any::type_name::<T>()));
            if let Ok(mut c) = cache.lock() {
                c.insert(id, made.clone());
            }
            made
        }
    };
    made.map_err(RpcError::internal)
}

/// `T`'s JSON Schema with every subschema inline (no `$ref`, no `$defs`).
fn generate<T: JsonSchema>() -> Value {
    schemars::generate::SchemaSettings::draft2020_12()
        .with(|s| s.inline_subschemas = true)
        .with_transform(schemars::transform::RecursiveTransform(
            crate::protocol::standard_formats_only,
        ))
        .into_generator()
        .into_root_schema_for::<T>()
        .to_value()
}

fn elicit_params<T: JsonSchema + 'static>(message: &str) -> Result<Value, RpcError> {
    let schema = cached_schema::<T>()?;
    to_params(&ElicitRequest {
        message: message.to_owned(),
        requested_schema: (*schema).clone(),
    })
}

fn to_params<P: serde::Serialize>(params: &P) -> Result<Value, RpcError> {
    serde_json::to_value(params).map_err(RpcError::internal)
}

/// The client's answer to `method`, typed; -32602 if it is not of that shape.
fn decode_answer<R: DeserializeOwned>(method: &str, answer: Value) -> Result<R, RpcError> {
    serde_path_to_error::deserialize(answer)
        .map_err(|e| RpcError::invalid_params(format!("the client's {method} answer: {}", at(e))))
}

/// An `elicitation/create` answer: the action, and an accepted `content` decoded into
/// `T` (-32602 naming the field that does not match).
fn decode_elicitation<T: DeserializeOwned>(answer: Value) -> Result<Elicitation<T>, RpcError> {
    let result: ElicitResult = decode_answer(ElicitRequest::METHOD, answer)?;
    match result.action {
        ElicitAction::Decline => Ok(Elicitation::Decline),
        ElicitAction::Cancel => Ok(Elicitation::Cancel),
        ElicitAction::Accept => {
            let content = Value::Object(result.content.unwrap_or_default());
            serde_path_to_error::deserialize(content)
                .map(Elicitation::Accept)
                .map_err(|e| {
                    RpcError::invalid_params(format!(
                        "the accepted elicitation content does not match `{}`: {}",
                        std::any::type_name::<T>(),
                        at(e)
                    ))
                })
        }
    }
}

/// A decoding error with the path of what did not match (`content.age: invalid type...`).
fn at(e: serde_path_to_error::Error<serde_json::Error>) -> String {
    let path = e.path().to_string();
    let inner = e.into_inner();
    if path == "." {
        inner.to_string()
    } else {
        format!("`{path}`: {inner}")
    }
}

/// The string formats elicitation knows.
const STRING_FORMATS: [&str; 4] = ["email", "uri", "date", "date-time"];

/// A schemars root schema made into an elicitation `requestedSchema`: `type`,
/// `properties` (each a primitive, see [`primitive`]) and `required`; anything else
/// (`$schema`, `title`, `additionalProperties`...) is left out.
fn flat_schema(root: Value) -> Result<Value, String> {
    let Value::Object(root) = root else {
        return Err("its schema is not an object schema".into());
    };
    if root.get("type").and_then(Value::as_str) != Some("object") {
        return Err(format!(
            "elicitation asks for a struct of named fields, and this type's schema is {}",
            describe(&root)
        ));
    }
    if ["allOf", "anyOf", "oneOf", "additionalProperties"]
        .iter()
        .any(|k| root.get(*k).is_some_and(|v| v.is_array() || v.is_object()))
    {
        return Err(
            "elicitation asks for a flat struct of named fields (no flatten, no map, no enum of structs)"
                .into(),
        );
    }
    let mut properties = Map::new();
    if let Some(Value::Object(props)) = root.get("properties") {
        for (name, schema) in props {
            let flat = primitive(schema).map_err(|what| {
                format!(
                    "field `{name}` is {what}; an elicitation form holds only strings, numbers, \
                     integers, booleans, enums and lists of enum values"
                )
            })?;
            properties.insert(name.clone(), flat);
        }
    }
    let required = root
        .get("required")
        .cloned()
        .unwrap_or_else(|| Value::Array(Vec::new()));
    let mut out = Map::new();
    out.insert("type".into(), "object".into());
    out.insert("properties".into(), Value::Object(properties));
    out.insert("required".into(), required);
    Ok(Value::Object(out))
}

/// What a schema is, for an error message.
fn describe(schema: &Map<String, Value>) -> String {
    if schema.contains_key("$ref") {
        return "a reference to another schema (a recursive type)".into();
    }
    match schema.get("type") {
        Some(Value::String(t)) if t == "object" => "a nested object".into(),
        Some(Value::String(t)) if t == "array" => "a list of values other than enum values".into(),
        Some(t) => format!("of type {t}"),
        None if schema.contains_key("oneOf") || schema.contains_key("anyOf") => {
            "a choice between non-primitive schemas (an enum with data)".into()
        }
        None => "an unconstrained value".into(),
    }
}

/// One property made into an elicitation primitive: an optional field loses its
/// `null`, and only the keywords elicitation knows are kept. Err: what it is instead.
fn primitive(schema: &Value) -> Result<Value, String> {
    let Value::Object(schema) = schema else {
        return Err("an unconstrained value".into());
    };
    let schema = without_null(schema.clone());
    let mut out = Map::new();
    let keep = |out: &mut Map<String, Value>, keys: &[&str]| {
        for key in keys {
            if let Some(v) = schema.get(*key) {
                out.insert((*key).to_owned(), v.clone());
            }
        }
    };
    keep(&mut out, &["title", "description", "default"]);
    let choices = titled_choices(&schema);
    match (schema.get("type").and_then(Value::as_str), choices) {
        (None | Some("string"), Some(choices)) => {
            out.insert("type".into(), "string".into());
            out.insert("oneOf".into(), choices);
            keep(&mut out, &["enumNames"]);
        }
        (Some("string"), None) => {
            out.insert("type".into(), "string".into());
            keep(&mut out, &["minLength", "maxLength", "enum", "enumNames"]);
            if let Some(format) = schema.get("format").and_then(Value::as_str) {
                if STRING_FORMATS.contains(&format) {
                    out.insert("format".into(), format.into());
                }
            }
            if let Some(Value::Array(values)) = schema.get("enum") {
                if !values.iter().all(Value::is_string) {
                    return Err("an enum whose values are not all strings".into());
                }
            }
        }
        (Some(t @ ("number" | "integer")), None) => {
            out.insert("type".into(), t.into());
            keep(&mut out, &["minimum", "maximum"]);
        }
        (Some("boolean"), None) => {
            out.insert("type".into(), "boolean".into());
        }
        (Some("array"), None) => {
            let items = match schema.get("items") {
                Some(Value::Object(items)) => without_null(items.clone()),
                _ => return Err(describe(&schema)),
            };
            let item = match titled_choices(&items) {
                Some(choices) => {
                    let mut m = Map::new();
                    m.insert("anyOf".into(), choices);
                    m
                }
                None => match items.get("enum") {
                    Some(Value::Array(values)) if values.iter().all(Value::is_string) => {
                        let mut m = Map::new();
                        m.insert("type".into(), "string".into());
                        m.insert("enum".into(), Value::Array(values.clone()));
                        m
                    }
                    _ => return Err(describe(&schema)),
                },
            };
            out.insert("type".into(), "array".into());
            out.insert("items".into(), Value::Object(item));
            keep(&mut out, &["minItems", "maxItems"]);
        }
        _ => return Err(describe(&schema)),
    }
    Ok(Value::Object(out))
}

/// An enum whose variants carry titles or descriptions (schemars writes a `oneOf` of
/// `const`s): the `[{const, title}]` list of a titled enum, a variant's description
/// standing in for a missing title. None unless every choice is a string `const`.
fn titled_choices(schema: &Map<String, Value>) -> Option<Value> {
    let options = schema
        .get("oneOf")
        .or_else(|| schema.get("anyOf"))?
        .as_array()?;
    let mut choices = Vec::with_capacity(options.len());
    for option in options {
        let value = option.get("const").filter(|c| c.is_string())?;
        let mut choice = Map::new();
        choice.insert("const".into(), value.clone());
        let title = option.get("title").or_else(|| option.get("description"));
        if let Some(title) = title {
            choice.insert("title".into(), title.clone());
        }
        choices.push(Value::Object(choice));
    }
    (!choices.is_empty()).then_some(Value::Array(choices))
}

/// An `Option` field's schema without its `null`: `["string", "null"]` becomes
/// `"string"`, an `anyOf` with `{"type": "null"}` its other branch (merged under the
/// field's own keywords), `null` leaves an `enum`.
fn without_null(mut schema: Map<String, Value>) -> Map<String, Value> {
    if let Some(Value::Array(types)) = schema.get_mut("type") {
        types.retain(|t| t != "null");
        if types.len() == 1 {
            let only = types.remove(0);
            schema.insert("type".into(), only);
        }
    }
    if let Some(Value::Array(values)) = schema.get_mut("enum") {
        values.retain(|v| !v.is_null());
    }
    for key in ["anyOf", "oneOf"] {
        let single = match schema.get_mut(key) {
            Some(Value::Array(options)) => {
                let before = options.len();
                options.retain(|o| o.get("type").and_then(Value::as_str) != Some("null"));
                (options.len() == 1 && before == 2).then(|| options.remove(0))
            }
            _ => None,
        };
        if let Some(Value::Object(only)) = single {
            schema.remove(key);
            for (k, v) in without_null(only) {
                schema.entry(k).or_insert(v);
            }
        }
    }
    schema
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[allow(dead_code)]
    #[derive(Debug, Deserialize, JsonSchema, PartialEq)]
    enum Colour {
        Red,
        Green,
    }

    #[allow(dead_code)]
    #[derive(Debug, Deserialize, JsonSchema, PartialEq)]
    #[serde(rename_all = "lowercase")]
    enum Plan {
        /// The free plan
        Free,
        /// The paid plan
        Paid,
    }

    #[allow(dead_code)]
    #[derive(Debug, Deserialize, JsonSchema, PartialEq)]
    struct Profile {
        /// Your name
        name: String,
        age: u32,
        score: Option<f64>,
        subscribed: bool,
        colour: Colour,
        plan: Option<Plan>,
        #[serde(default)]
        tags: Vec<Colour>,
    }

    #[test]
    fn a_struct_of_primitives_is_a_flat_object() {
        let s = elicitation_schema::<Profile>().unwrap();
        assert_eq!(s["type"], "object", "{s}");
        let text = s.to_string();
        for noise in [
            "$schema",
            "$defs",
            "$ref",
            "\"null\"",
            "format",
            "title\":\"Profile",
        ] {
            assert!(!text.contains(noise), "{noise} in {s}");
        }
        let p = &s["properties"];
        assert_eq!(
            p["name"],
            json!({"type": "string", "description": "Your name"})
        );
        assert_eq!(p["age"]["type"], "integer", "{s}");
        assert_eq!(p["age"]["minimum"], 0, "{s}");
        assert_eq!(p["score"], json!({"type": "number"}));
        assert_eq!(p["subscribed"], json!({"type": "boolean"}));
        assert_eq!(
            p["colour"],
            json!({"type": "string", "enum": ["Red", "Green"]})
        );
        assert_eq!(
            p["plan"],
            json!({"type": "string", "oneOf": [
                {"const": "free", "title": "The free plan"},
                {"const": "paid", "title": "The paid plan"}]})
        );
        assert_eq!(
            p["tags"]["items"],
            json!({"type": "string", "enum": ["Red", "Green"]})
        );
        assert_eq!(p["tags"]["type"], "array");
        let mut required: Vec<&str> = s["required"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        required.sort_unstable();
        assert_eq!(required, ["age", "colour", "name", "subscribed"]);
    }

    #[test]
    fn nested_and_non_object_types_are_refused_naming_them() {
        #[allow(dead_code)]
        #[derive(Deserialize, JsonSchema)]
        struct Address {
            city: String,
        }
        #[allow(dead_code)]
        #[derive(Deserialize, JsonSchema)]
        struct Person {
            name: String,
            address: Address,
        }
        let e = elicitation_schema::<Person>().unwrap_err();
        assert_eq!(e.code, -32603);
        assert!(e.message.contains("Person"), "{}", e.message);
        assert!(
            e.message.contains("field `address` is a nested object"),
            "{}",
            e.message
        );
        // Cached: the same answer again.
        assert_eq!(elicitation_schema::<Person>().unwrap_err(), e);

        let e = elicitation_schema::<String>().unwrap_err();
        assert!(
            e.message.contains("elicit::<alloc::string::String>"),
            "{}",
            e.message
        );
        assert!(e.message.contains("struct"), "{}", e.message);

        #[allow(dead_code)]
        #[derive(Deserialize, JsonSchema)]
        struct Lists {
            names: Vec<String>,
        }
        let e = elicitation_schema::<Lists>().unwrap_err();
        assert!(e.message.contains("field `names`"), "{}", e.message);
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Name {
        name: String,
    }

    #[test]
    fn accept_decline_and_cancel_decode() {
        let a = decode_elicitation::<Name>(json!({"action": "accept", "content": {"name": "Ada"}}));
        assert_eq!(a.unwrap(), Elicitation::Accept(Name { name: "Ada".into() }));
        let d = decode_elicitation::<Name>(json!({"action": "decline"}));
        assert_eq!(d.unwrap(), Elicitation::Decline);
        let c = decode_elicitation::<Name>(json!({"action": "cancel", "content": {}}));
        assert_eq!(c.unwrap(), Elicitation::Cancel);
    }

    #[test]
    fn content_that_does_not_match_is_refused_naming_the_field() {
        let e = decode_elicitation::<Name>(json!({"action": "accept", "content": {"name": 7}}))
            .unwrap_err();
        assert_eq!(e.code, -32602);
        assert!(e.message.contains("`name`"), "{}", e.message);
        assert!(e.message.contains("Name"), "{}", e.message);
        let e = decode_elicitation::<Name>(json!({"action": "accept"})).unwrap_err();
        assert!(e.message.contains("missing field `name`"), "{}", e.message);
        let e = decode_elicitation::<Name>(json!({"action": "maybe"})).unwrap_err();
        assert_eq!(e.code, -32602);
        assert!(e.message.contains("`action`"), "{}", e.message);
    }

    #[test]
    fn sampling_and_roots_answers_decode_or_are_refused() {
        let r: SamplingResult = decode_answer(
            SamplingRequest::METHOD,
            json!({"role": "assistant", "content": {"type": "text", "text": "Paris"}, "model": "m"}),
        )
        .unwrap();
        assert_eq!(r.text(), "Paris");
        let e = decode_answer::<SamplingResult>(
            SamplingRequest::METHOD,
            json!({"role": "assistant", "content": {"type": "text", "text": "Paris"}}),
        )
        .unwrap_err();
        assert!(e.message.contains("model"), "{}", e.message);
        let roots: ListRootsResult =
            decode_answer(ListRoots::METHOD, json!({"roots": [{"uri": "file:///a"}]})).unwrap();
        assert_eq!(roots.roots, vec![Root::new("file:///a", None)]);
    }
}
