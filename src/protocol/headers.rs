//! 2026-07-28 request metadata in HTTP headers: the values of `Mcp-Name` and
//! `Mcp-Param-*` (plain, or `=?base64?…?=` for text HTTP cannot carry), and the
//! `x-mcp-header` annotations of a tool's `inputSchema` that name `Mcp-Param-*`
//! headers. Pure functions; the HTTP transport applies them.

use std::borrow::Cow;

use base64::Engine;
use serde_json::Value;

/// The schema keyword naming a tool argument's `Mcp-Param-{Name}` header.
pub const X_MCP_HEADER: &str = "x-mcp-header";

/// Decode a header value: `=?base64?{standard Base64 of UTF-8}?=`, or plain visible
/// ASCII (spaces and tabs allowed inside) with surrounding whitespace trimmed (then
/// borrowed, not copied). `None` when the value is malformed or holds characters a
/// header may not.
pub fn decode_value(raw: &[u8]) -> Option<Cow<'_, str>> {
    let text = std::str::from_utf8(raw).ok()?.trim_matches([' ', '\t']);
    if let Some(inner) = text
        .strip_prefix("=?base64?")
        .and_then(|t| t.strip_suffix("?="))
    {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(inner)
            .ok()?;
        return String::from_utf8(bytes).ok().map(Cow::Owned);
    }
    text.bytes()
        .all(|b| b == b'\t' || (0x20..=0x7e).contains(&b))
        .then_some(Cow::Borrowed(text))
}

/// The JSON type an annotated argument has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum ParamType {
    /// `"type": "string"`.
    String,
    /// `"type": "integer"`: compared numerically.
    Integer,
    /// `"type": "boolean"`: `true` / `false`.
    Boolean,
}

/// One argument that travels in an `Mcp-Param-{name}` header as well as the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderParam {
    /// `{name}` of the header, as annotated.
    pub name: String,
    /// The header name, lowercase: `mcp-param-{name}`.
    pub header: String,
    /// Property names from the arguments object down to the value.
    pub path: Vec<String>,
    /// The argument's type.
    pub ty: ParamType,
}

/// The `x-mcp-header` annotations of an `inputSchema`: properties reached from the
/// root through `properties` only, of type string, integer or boolean.
pub fn header_params(schema: &Value) -> Vec<HeaderParam> {
    let mut out = Vec::new();
    walk(schema, &mut Vec::new(), &mut out);
    out
}

fn walk(schema: &Value, path: &mut Vec<String>, out: &mut Vec<HeaderParam>) {
    let Some(props) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (key, prop) in props {
        path.push(key.clone());
        if let Some(name) = prop.get(X_MCP_HEADER).and_then(Value::as_str) {
            let ty = match prop.get("type").and_then(Value::as_str) {
                Some("string") => Some(ParamType::String),
                Some("integer") => Some(ParamType::Integer),
                Some("boolean") => Some(ParamType::Boolean),
                _ => None,
            };
            if let Some(ty) = ty {
                out.push(HeaderParam {
                    name: name.to_owned(),
                    header: format!("mcp-param-{}", name.to_ascii_lowercase()),
                    path: path.clone(),
                    ty,
                });
            }
        }
        walk(prop, path, out);
        path.pop();
    }
}

/// Why an `Mcp-Param-*` header is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamMismatch {
    /// The argument has a value but its header is missing.
    #[error("missing header Mcp-Param-{0} (the argument is in the body)")]
    Missing(String),
    /// The header is malformed or holds invalid characters.
    #[error("malformed header Mcp-Param-{0}")]
    Malformed(String),
    /// The header's value differs from the body's.
    #[error("header Mcp-Param-{0} does not match the body")]
    Differs(String),
}

/// Check every annotated argument against its header: a value in the body needs a
/// header equal to it; a header for an absent (or null) value is a mismatch.
/// `header(name)` returns the raw header value by lowercase name.
pub fn check_params<'a>(
    params: &[HeaderParam],
    arguments: Option<&Value>,
    header: impl Fn(&str) -> Option<&'a [u8]>,
) -> Result<(), ParamMismatch> {
    for p in params {
        let value = arguments
            .and_then(|args| p.path.iter().try_fold(args, |v, key| v.get(key)))
            .filter(|v| !v.is_null());
        let raw = header(&p.header);
        match (value, raw) {
            (None, None) => {}
            (None, Some(_)) => return Err(ParamMismatch::Differs(p.name.clone())),
            (Some(_), None) => return Err(ParamMismatch::Missing(p.name.clone())),
            (Some(value), Some(raw)) => {
                let text =
                    decode_value(raw).ok_or_else(|| ParamMismatch::Malformed(p.name.clone()))?;
                if !matches(p.ty, value, &text) {
                    return Err(ParamMismatch::Differs(p.name.clone()));
                }
            }
        }
    }
    Ok(())
}

fn matches(ty: ParamType, value: &Value, text: &str) -> bool {
    match (ty, value) {
        (ParamType::String, Value::String(s)) => s == text,
        (ParamType::Boolean, Value::Bool(b)) => text == if *b { "true" } else { "false" },
        (ParamType::Integer, Value::Number(n)) => {
            match n.as_i64().map(i128::from).or(n.as_u64().map(i128::from)) {
                // Exactly: as f64, 2^53 + 1 and 2^53 are one number (issue 21, found
                // by the `header_value` fuzz target).
                Some(n) => decimal_is(text, n),
                None => match (n.as_f64(), text.parse::<f64>()) {
                    (Some(a), Ok(b)) => a == b,
                    _ => false,
                },
            }
        }
        // The body's value has another type than the schema says: compare its JSON
        // text, so that a mismatch is reported here and the tool reports the type.
        (_, other) => serde_json::to_string(other).is_ok_and(|t| t == text),
    }
}

/// Whether `text`, a decimal in JSON's number syntax (`42`, `-42.0`, `4.2e1`; a
/// leading `+` allowed, as a header is not JSON and as before), is
/// exactly the integer `n`.
fn decimal_is(text: &str, n: i128) -> bool {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
        Some((m, e)) => match e.strip_prefix('+').unwrap_or(e).parse::<i32>() {
            Ok(e) => (m, e),
            Err(_) => return false,
        },
        None => (unsigned, 0),
    };
    let all_digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let (whole, fraction) = match mantissa.split_once('.') {
        Some((w, f)) if all_digits(f) => (w, f),
        Some(_) => return false,
        None => (mantissa, ""),
    };
    if !all_digits(whole) {
        return false;
    }
    // The value is digits × 10^scale.
    let digits = format!("{whole}{fraction}");
    let digits = digits.trim_start_matches('0');
    let significant = digits.trim_end_matches('0');
    if significant.is_empty() {
        return n == 0;
    }
    let Ok(fraction_len) = i32::try_from(fraction.len()) else {
        return false;
    };
    let scale =
        i64::from(exponent) - i64::from(fraction_len) + (digits.len() - significant.len()) as i64;
    // An i128 has at most 39 digits.
    if scale < 0 || significant.len() as i64 + scale > 39 {
        return false;
    }
    let value = significant.parse::<i128>().ok().and_then(|d| {
        10i128
            .checked_pow(scale as u32)
            .and_then(|p| d.checked_mul(p))
    });
    value.is_some_and(|v| if negative { -v == n } else { v == n })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn an_integer_header_matches_only_the_exact_integer_past_2_pow_53() {
        // Found by the fuzz target `header_value`
        // (fuzz/artifacts/header_value/crash-95da3c42…): compared as f64, these matched.
        let p = [HeaderParam {
            name: "N".into(),
            header: "mcp-param-n".into(),
            path: vec!["n".into()],
            ty: ParamType::Integer,
        }];
        let check = |header: &'static str, n: Value| {
            check_params(&p, Some(&json!({ "n": n })), |_| Some(header.as_bytes())).is_ok()
        };
        assert!(!check("9007199254740992", json!(9_007_199_254_740_993_u64)));
        assert!(!check(
            "22222255555555221",
            json!(22_222_255_555_555_222_i64)
        ));
        assert!(check(
            "22222255555555221",
            json!(22_222_255_555_555_221_i64)
        ));
        assert!(check("18446744073709551615", json!(u64::MAX)));
        assert!(check("-9223372036854775808", json!(i64::MIN)));
        // Numerically, not textually: the same integer written otherwise.
        for same in ["42", "+42", "42.0", "4.2e1", "420E-1", "0042", "42.000e0"] {
            assert!(check(same, json!(42)), "{same}");
        }
        for other in [
            "41",
            "42.5",
            "4.2",
            "42e1",
            "",
            "-",
            "4x",
            "0x2a",
            "inf",
            "+-42",
            "--42",
            "42.",
            "1e99999999999",
        ] {
            assert!(!check(other, json!(42)), "{other}");
        }
        assert!(check("-0.0", json!(0)) && check("0e5", json!(0)));
    }

    #[test]
    fn values_are_plain_or_base64() {
        assert_eq!(decode_value(b"  us-west1 ").as_deref(), Some("us-west1"));
        assert_eq!(
            decode_value(b"=?base64?SGVsbG8sIOS4lueVjA==?=").as_deref(),
            Some("Hello, \u{4e16}\u{754c}")
        );
        assert_eq!(
            decode_value(b"=?base64?IHBhZGRlZCA=?=").as_deref(),
            Some(" padded ")
        );
        assert_eq!(decode_value(b"=?base64?!!!?="), None);
        assert_eq!(decode_value(b"a\x01b"), None);
        assert_eq!(decode_value("caf\u{e9}".as_bytes()), None);
    }

    #[test]
    fn annotations_are_found_through_properties_only() {
        let schema = json!({"type":"object","properties":{
            "region":{"type":"string","x-mcp-header":"Region"},
            "n":{"type":"integer","x-mcp-header":"N"},
            "x":{"type":"number","x-mcp-header":"X"},
            "opts":{"type":"object","properties":{"dry":{"type":"boolean","x-mcp-header":"Dry"}}},
            "list":{"type":"array","items":{"type":"string","x-mcp-header":"Item"}}
        }});
        let mut found: Vec<_> = header_params(&schema)
            .into_iter()
            .map(|p| (p.header, p.path.join("."), p.ty))
            .collect();
        found.sort();
        assert_eq!(
            found,
            vec![
                (
                    "mcp-param-dry".into(),
                    "opts.dry".into(),
                    ParamType::Boolean
                ),
                ("mcp-param-n".into(), "n".into(), ParamType::Integer),
                (
                    "mcp-param-region".into(),
                    "region".into(),
                    ParamType::String
                ),
            ]
        );
    }

    #[test]
    fn headers_must_match_present_values() {
        let schema = json!({"properties":{
            "region":{"type":"string","x-mcp-header":"Region"},
            "n":{"type":"integer","x-mcp-header":"N"}}});
        let params = header_params(&schema);
        let args = json!({"region":"eu","n":42});
        let check = |pairs: &[(&str, &'static str)], args: &Value| {
            let pairs: Vec<(String, &'static str)> =
                pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect();
            check_params(&params, Some(args), |name| {
                pairs
                    .iter()
                    .find(|(k, _)| k == name)
                    .map(|(_, v)| v.as_bytes())
            })
        };
        assert!(check(
            &[("mcp-param-region", "eu"), ("mcp-param-n", "42.0")],
            &args
        )
        .is_ok());
        assert_eq!(
            check(&[("mcp-param-region", "eu")], &args),
            Err(ParamMismatch::Missing("N".into()))
        );
        assert_eq!(
            check(&[("mcp-param-region", "us"), ("mcp-param-n", "42")], &args),
            Err(ParamMismatch::Differs("Region".into()))
        );
        assert!(check(&[], &json!({"region": null})).is_ok());
        assert_eq!(
            check(&[("mcp-param-n", "1")], &json!({})),
            Err(ParamMismatch::Differs("N".into()))
        );
    }
}
