//! JSON objects with duplicate keys are refused, at any depth.
//!
//! RFC 8259 leaves duplicate names undefined, and parsers disagree: serde_json keeps
//! the last, some gateways keep the first. A message that means one thing to a proxy
//! and another to emcee (`{"name":"echo","name":"kv_set"}`) is refused instead.
//! Derived structs already refuse their own duplicate fields; these functions cover
//! the free-form parts (`arguments`, capabilities, prompt arguments), for use with
//! `#[serde(deserialize_with = …)]`, while building the value in the same pass.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// A `Value` built from the input, refusing an object with a repeated key.
struct Strict(Value);

impl<'de> serde::Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Strict, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(v.into())
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(StrictVisitor)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(Strict(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Value, A::Error> {
        let mut map = Map::new();
        while let Some(key) = access.next_key::<String>()? {
            let Strict(v) = access.next_value()?;
            if map.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate key `{key}`")));
            }
            map.insert(key, v);
        }
        Ok(Value::Object(map))
    }
}

/// `Option<Value>` without duplicate keys (e.g. tool `arguments`).
pub fn value_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Ok(Some(<Strict as serde::Deserialize>::deserialize(d)?.0).filter(|v| !v.is_null()))
}

/// A JSON object without duplicate keys, shared (client capabilities); `{}` is
/// [`empty_object`].
pub fn object<'de, D: Deserializer<'de>>(d: D) -> Result<Arc<Map<String, Value>>, D::Error> {
    match <Strict as serde::Deserialize>::deserialize(d)?.0 {
        Value::Object(map) if map.is_empty() => Ok(empty_object()),
        Value::Object(map) => Ok(Arc::new(map)),
        other => Err(de::Error::custom(format!(
            "expected an object, got {other}"
        ))),
    }
}

/// The empty object, one for the process: many clients declare no capability,
/// and every session keeps what its client declared.
pub fn empty_object() -> Arc<Map<String, Value>> {
    static EMPTY: std::sync::OnceLock<Arc<Map<String, Value>>> = std::sync::OnceLock::new();
    EMPTY.get_or_init(Arc::default).clone()
}

/// Like [`object`], optional.
pub fn object_opt<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Arc<Map<String, Value>>>, D::Error> {
    object(d).map(Some)
}

/// A map of strings without duplicate keys (prompt arguments).
pub fn string_map<'de, D: Deserializer<'de>>(d: D) -> Result<HashMap<String, String>, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = HashMap<String, String>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object of strings")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
            let mut map = HashMap::new();
            while let Some((key, value)) = access.next_entry::<String, String>()? {
                if map.contains_key(&key) {
                    return Err(de::Error::custom(format!("duplicate key `{key}`")));
                }
                map.insert(key, value);
            }
            Ok(map)
        }
    }
    d.deserialize_map(V)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize, Debug)]
    struct Args {
        #[serde(default, deserialize_with = "value_opt")]
        arguments: Option<Value>,
        #[serde(default, deserialize_with = "string_map")]
        strings: HashMap<String, String>,
    }

    fn parse(json: &str) -> Result<Args, String> {
        serde_json::from_str(json).map_err(|e| e.to_string())
    }

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        let ok =
            parse(r#"{"arguments":{"a":1,"b":{"c":[1,{"d":2}]}},"strings":{"x":"1"}}"#).unwrap();
        assert_eq!(ok.arguments.unwrap()["b"]["c"][1]["d"], 2);
        assert_eq!(ok.strings["x"], "1");
        for bad in [
            r#"{"arguments":{"a":1,"a":2}}"#,
            r#"{"arguments":{"b":{"c":1,"c":1}}}"#,
            r#"{"arguments":[{"k":1,"k":2}]}"#,
            r#"{"strings":{"x":"1","x":"2"}}"#,
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains("duplicate key"), "{bad}: {e}");
        }
        // Derived structs refuse their own repeated fields.
        let e = parse(r#"{"strings":{},"strings":{}}"#).unwrap_err();
        assert!(e.contains("duplicate field"), "{e}");
    }
}
