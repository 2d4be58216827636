//! The validation keywords of a tool's `inputSchema`, checked on every call.
//!
//! Deserializing the arguments checks their shape (types, required and unknown
//! fields); the constraints schemars advertises from validation attributes
//! (`#[schemars(length(min = 1))]`, `range(min, max)`, `regex(pattern = ..)`, and
//! the same keywords written by hand in a `Tool::raw` schema) are checked here,
//! before the handler runs. A violation is an `isError` result naming the field and
//! the keyword: ``invalid arguments: `key`: must be at least 1 character long
//! (minLength 1)``.
//!
//! The schema is compiled once, when the tool is created, into a tree holding only
//! the parts of the schema that carry a constraint; a tool without one costs nothing
//! per call, and a check walks only the constrained fields, allocating nothing unless
//! it fails (or checks `uniqueItems`). No check is worse than O(N log N) in the size
//! N of the arguments (a client chooses it): `uniqueItems` writes each item once in
//! a canonical form and sorts the forms instead of comparing every pair (issue 18),
//! `pattern` is regex-lite's O(m·N) search, the rest are linear. Equality (`enum`,
//! `const`, `uniqueItems`) is JSON Schema's: numbers by value (`1` equals `1.0`),
//! objects whatever the order of their members. Checked keywords: `minLength`, `maxLength`, `pattern`, `minimum`,
//! `maximum`, `exclusiveMinimum`, `exclusiveMaximum`, `multipleOf`, `minItems`,
//! `maxItems`, `uniqueItems`, `minProperties`, `maxProperties`, `enum`, `const`,
//! through `properties`, `items`, `additionalProperties` (a schema), `allOf`, local
//! `$ref`s (`#/$defs/..`, `#/definitions/..`) and an `anyOf`/`oneOf` whose branches
//! are one schema and `null` (an `Option`). Not checked (a validator crate would be
//! needed, see below): `format` (`email`, `uri`, ...), `anyOf`/`oneOf` between
//! several non-null schemas, `prefixItems`, `patternProperties`, `if`/`then`,
//! `dependentRequired`, and a recursive `$ref` below its first use. Bounds a Rust
//! integer type implies (`format: uint8` with `minimum: 0`, `maximum: 255`) are left
//! to deserialization, which checks them anyway.
//!
//! Why not the `jsonschema` crate: 0.61 is ~75,000 lines plus fancy-regex, the full
//! regex crate, num/fraction, ahash, idna and, with default features, reqwest and
//! rustls, for a binary of 6 MB whose schemas come from schemars and use a handful of
//! keywords. `pattern` uses regex-lite, already compiled in for actix-router's
//! routes (its syntax is Rust's regex syntax without Unicode classes, close to the
//! ECMA-262 subset JSON Schema patterns use in practice).

use std::collections::HashSet;
use std::fmt::{self, Write as _};

use serde_json::{Map, Number, Value};

/// The compiled constraints of one input schema.
#[derive(Debug)]
pub struct Constraints {
    root: Node,
}

impl Constraints {
    /// Compile `schema`'s constraints; `None` when it carries none (nothing to check).
    pub fn compile(schema: &Value) -> Option<Constraints> {
        let defs = schema
            .get("$defs")
            .or_else(|| schema.get("definitions"))
            .and_then(Value::as_object);
        let mut compiler = Compiler {
            defs,
            visiting: HashSet::new(),
        };
        compiler.node(schema).map(|root| Constraints { root })
    }

    /// Check `args`; the error names the field and the constraint it breaks.
    pub fn check(&self, args: &Value) -> Result<(), String> {
        self.root.check(args, &Segment::Root)
    }
}

/// One schema's constraints, and those of the schemas below it that have any.
#[derive(Debug, Default)]
struct Node {
    checks: Vec<Check>,
    /// Constrained properties (by their JSON names).
    properties: Vec<(String, Node)>,
    /// Every element of an array.
    items: Option<Box<Node>>,
    /// Every member of an object not named in `declared` (`additionalProperties`).
    values: Option<Box<Node>>,
    /// The properties the schema declares, sorted (only kept when `values` is set).
    declared: Vec<String>,
    /// Schemas the value must satisfy as well (`allOf`, a `$ref` beside keywords).
    all: Vec<Node>,
    /// `anyOf`/`oneOf` of one schema and `null`: the schema, for non-null values.
    unless_null: Option<Box<Node>>,
}

#[derive(Debug)]
enum Check {
    MinLength(u64),
    MaxLength(u64),
    Pattern(String, Result<regex_lite::Regex, String>),
    Minimum(Number),
    Maximum(Number),
    ExclusiveMinimum(Number),
    ExclusiveMaximum(Number),
    MultipleOf(f64),
    MinItems(u64),
    MaxItems(u64),
    UniqueItems,
    MinProperties(u64),
    MaxProperties(u64),
    Enum(Vec<Value>),
    Const(Value),
}

struct Compiler<'a> {
    defs: Option<&'a Map<String, Value>>,
    /// `$ref`s being compiled (a recursive type stops at its second appearance).
    visiting: HashSet<&'a str>,
}

impl<'a> Compiler<'a> {
    fn node(&mut self, schema: &'a Value) -> Option<Node> {
        let obj = schema.as_object()?;
        let mut node = Node {
            checks: checks(obj),
            ..Node::default()
        };
        if let Some(Value::Object(props)) = obj.get("properties") {
            for (name, sub) in props {
                if let Some(child) = self.node(sub) {
                    node.properties.push((name.clone(), child));
                }
            }
        }
        if let Some(items) = obj.get("items").filter(|i| i.is_object()) {
            node.items = self.node(items).map(Box::new);
        }
        if let Some(values) = obj.get("additionalProperties").filter(|v| v.is_object()) {
            node.values = self.node(values).map(Box::new);
            if node.values.is_some() {
                if let Some(Value::Object(props)) = obj.get("properties") {
                    node.declared = props.keys().cloned().collect();
                    node.declared.sort_unstable();
                }
            }
        }
        if let Some(Value::Array(all)) = obj.get("allOf") {
            node.all.extend(all.iter().filter_map(|s| self.node(s)));
        }
        if let Some(target) = obj.get("$ref").and_then(Value::as_str) {
            if let Some(resolved) = self.resolve(target) {
                if self.visiting.insert(target) {
                    node.all.extend(self.node(resolved));
                    self.visiting.remove(target);
                }
            }
        }
        for key in ["anyOf", "oneOf"] {
            if let Some(Value::Array(branches)) = obj.get(key) {
                let mut non_null = branches.iter().filter(|b| !is_null_schema(b));
                if let (Some(only), None) = (non_null.next(), non_null.next()) {
                    node.unless_null = self.node(only).map(Box::new);
                }
            }
        }
        let empty = node.checks.is_empty()
            && node.properties.is_empty()
            && node.items.is_none()
            && node.values.is_none()
            && node.all.is_empty()
            && node.unless_null.is_none();
        (!empty).then_some(node)
    }

    fn resolve(&self, target: &str) -> Option<&'a Value> {
        let name = target
            .strip_prefix("#/$defs/")
            .or_else(|| target.strip_prefix("#/definitions/"))?;
        self.defs?.get(name)
    }
}

fn is_null_schema(schema: &Value) -> bool {
    schema.get("type").and_then(Value::as_str) == Some("null")
}

/// The constraint keywords of one schema object.
fn checks(obj: &Map<String, Value>) -> Vec<Check> {
    let format = obj.get("format").and_then(Value::as_str);
    let count = |key: &str| obj.get(key).and_then(Value::as_u64);
    let number = |key: &str| match obj.get(key) {
        Some(Value::Number(n)) if !implied_by_format(format, key, n) => Some(n.clone()),
        _ => None,
    };
    let mut checks = Vec::new();
    checks.extend(count("minLength").filter(|&n| n > 0).map(Check::MinLength));
    checks.extend(count("maxLength").map(Check::MaxLength));
    if let Some(pattern) = obj.get("pattern").and_then(Value::as_str) {
        let compiled = regex_lite::Regex::new(pattern).map_err(|e| e.to_string());
        checks.push(Check::Pattern(pattern.to_owned(), compiled));
    }
    checks.extend(number("minimum").map(Check::Minimum));
    checks.extend(number("maximum").map(Check::Maximum));
    checks.extend(number("exclusiveMinimum").map(Check::ExclusiveMinimum));
    checks.extend(number("exclusiveMaximum").map(Check::ExclusiveMaximum));
    checks.extend(
        obj.get("multipleOf")
            .and_then(Value::as_f64)
            .filter(|m| *m > 0.0)
            .map(Check::MultipleOf),
    );
    checks.extend(count("minItems").filter(|&n| n > 0).map(Check::MinItems));
    checks.extend(count("maxItems").map(Check::MaxItems));
    if obj.get("uniqueItems") == Some(&Value::Bool(true)) {
        checks.push(Check::UniqueItems);
    }
    checks.extend(
        count("minProperties")
            .filter(|&n| n > 0)
            .map(Check::MinProperties),
    );
    checks.extend(count("maxProperties").map(Check::MaxProperties));
    if let Some(Value::Array(options)) = obj.get("enum") {
        checks.push(Check::Enum(options.clone()));
    }
    if let Some(value) = obj.get("const") {
        checks.push(Check::Const(value.clone()));
    }
    checks
}

/// Whether the bound `key` = `n` only restates the range of the Rust integer type
/// schemars wrote as `format` (deserializing checks those already).
fn implied_by_format(format: Option<&str>, key: &str, n: &Number) -> bool {
    let (min, max): (i128, i128) = match format {
        Some("uint8") => (0, u8::MAX.into()),
        Some("uint16") => (0, u16::MAX.into()),
        Some("uint32") => (0, u32::MAX.into()),
        Some("uint64" | "uint" | "uint128") => (0, i128::MAX),
        Some("int8") => (i8::MIN.into(), i8::MAX.into()),
        Some("int16") => (i16::MIN.into(), i16::MAX.into()),
        Some("int32") => (i32::MIN.into(), i32::MAX.into()),
        _ => return false,
    };
    let bound = match key {
        "minimum" => min,
        "maximum" => max,
        _ => return false,
    };
    let value = n
        .as_i64()
        .map(i128::from)
        .or_else(|| n.as_u64().map(i128::from));
    value == Some(bound)
}

/// Where a value sits in the arguments, built on the stack as the check descends and
/// written out only for an error message (`a.b[2]`).
enum Segment<'a> {
    Root,
    Key(&'a str, &'a Segment<'a>),
    Index(usize, &'a Segment<'a>),
}

impl fmt::Display for Segment<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Segment::Root => Ok(()),
            Segment::Key(key, parent) => {
                if !matches!(parent, Segment::Root) {
                    write!(f, "{parent}.")?;
                }
                f.write_str(key)
            }
            Segment::Index(i, parent) => write!(f, "{parent}[{i}]"),
        }
    }
}

impl Node {
    fn check(&self, value: &Value, at: &Segment<'_>) -> Result<(), String> {
        for check in &self.checks {
            if let Some(problem) = check.violation(value) {
                return Err(match at {
                    Segment::Root => problem,
                    _ => format!("`{at}`: {problem}"),
                });
            }
        }
        match value {
            Value::Object(members) => {
                for (name, node) in &self.properties {
                    if let Some(v) = members.get(name) {
                        node.check(v, &Segment::Key(name, at))?;
                    }
                }
                if let Some(node) = &self.values {
                    for (name, v) in members {
                        if self.declared.binary_search(name).is_err() {
                            node.check(v, &Segment::Key(name, at))?;
                        }
                    }
                }
            }
            Value::Array(elements) => {
                if let Some(node) = &self.items {
                    for (i, v) in elements.iter().enumerate() {
                        node.check(v, &Segment::Index(i, at))?;
                    }
                }
            }
            _ => {}
        }
        for node in &self.all {
            node.check(value, at)?;
        }
        match &self.unless_null {
            Some(node) if !value.is_null() => node.check(value, at),
            _ => Ok(()),
        }
    }
}

impl Check {
    /// What is wrong with `value`, or `None`. A keyword applies only to values of its
    /// type (`minLength` to strings...): a value of another type is the type check's
    /// business (deserialization, which runs next).
    fn violation(&self, value: &Value) -> Option<String> {
        match (self, value) {
            (Check::MinLength(n), Value::String(s)) if (s.chars().count() as u64) < *n => {
                Some(format!(
                    "must be at least {n} character{} long (minLength {n})",
                    plural(*n)
                ))
            }
            (Check::MaxLength(n), Value::String(s)) if (s.chars().count() as u64) > *n => {
                Some(format!(
                    "must be at most {n} character{} long (maxLength {n})",
                    plural(*n)
                ))
            }
            (Check::Pattern(pattern, compiled), Value::String(s)) => match compiled {
                Ok(re) if re.is_match(s) => None,
                Ok(_) => Some(format!("must match the pattern `{pattern}` (pattern)")),
                Err(e) => Some(format!(
                    "the tool's schema has a pattern that does not compile (`{pattern}`: {e})"
                )),
            },
            (Check::Minimum(bound), Value::Number(n)) if less(n, bound) => {
                Some(format!("must be at least {bound} (minimum {bound})"))
            }
            (Check::Maximum(bound), Value::Number(n)) if less(bound, n) => {
                Some(format!("must be at most {bound} (maximum {bound})"))
            }
            (Check::ExclusiveMinimum(bound), Value::Number(n)) if !less(bound, n) => Some(format!(
                "must be greater than {bound} (exclusiveMinimum {bound})"
            )),
            (Check::ExclusiveMaximum(bound), Value::Number(n)) if !less(n, bound) => Some(format!(
                "must be less than {bound} (exclusiveMaximum {bound})"
            )),
            (Check::MultipleOf(m), Value::Number(n)) => {
                let q = n.as_f64().unwrap_or(f64::NAN) / m;
                (q.fract() != 0.0).then(|| format!("must be a multiple of {m} (multipleOf {m})"))
            }
            (Check::MinItems(n), Value::Array(a)) if (a.len() as u64) < *n => Some(format!(
                "must have at least {n} item{} (minItems {n})",
                plural(*n)
            )),
            (Check::MaxItems(n), Value::Array(a)) if (a.len() as u64) > *n => Some(format!(
                "must have at most {n} item{} (maxItems {n})",
                plural(*n)
            )),
            (Check::UniqueItems, Value::Array(a)) => has_repeat(a, &mut |_| {})
                .then(|| "must not repeat an item (uniqueItems)".to_owned()),
            (Check::MinProperties(n), Value::Object(o)) if (o.len() as u64) < *n => Some(format!(
                "must have at least {n} member{} (minProperties {n})",
                plural(*n)
            )),
            (Check::MaxProperties(n), Value::Object(o)) if (o.len() as u64) > *n => Some(format!(
                "must have at most {n} member{} (maxProperties {n})",
                plural(*n)
            )),
            (Check::Enum(options), v) if !options.iter().any(|o| same(o, v)) => {
                let mut list = String::new();
                for (i, o) in options.iter().enumerate() {
                    let _ = write!(list, "{}{o}", if i == 0 { "" } else { ", " });
                }
                Some(format!("must be one of {list} (enum)"))
            }
            (Check::Const(c), v) if !same(c, v) => Some(format!("must be {c} (const)")),
            _ => None,
        }
    }
}

/// Whether an item of `items` equals another (JSON Schema equality, see [`same`]),
/// in O(N log n) for n items of N bytes in all: each item is written once in a
/// canonical form (numbers by value, object members sorted by key) into one buffer,
/// the forms are sorted, and neighbours compared. `work` is told each step (an item
/// encoded, two compared) so that a test can tell n log n from n² without a clock.
fn has_repeat(items: &[Value], work: &mut impl FnMut(u64)) -> bool {
    if items.len() < 2 {
        return false;
    }
    let mut buf = String::new();
    let mut spans = Vec::with_capacity(items.len());
    for item in items {
        work(1);
        let start = buf.len();
        canonical(item, &mut buf);
        spans.push(start..buf.len());
    }
    let form = |span: &std::ops::Range<usize>| buf.get(span.clone()).unwrap_or_default();
    spans.sort_unstable_by(|a, b| {
        work(1);
        form(a).cmp(form(b))
    });
    spans.windows(2).any(|pair| {
        work(1);
        form(&pair[0]) == form(&pair[1])
    })
}

/// A number by value: an integer (an `f64` with no fraction included) or, for the
/// rest, an `f64`. Two numbers are equal exactly when their keys are.
#[derive(Debug, PartialEq)]
enum NumberKey {
    Int(i128),
    Float(f64),
}

fn number_key(n: &Number) -> NumberKey {
    if let Some(i) = n.as_i64() {
        return NumberKey::Int(i.into());
    }
    if let Some(u) = n.as_u64() {
        return NumberKey::Int(u.into());
    }
    let f = n.as_f64().unwrap_or(f64::NAN);
    // Every f64 with no fraction in i128's range converts exactly (-0.0 to 0); one
    // outside it equals no i64 or u64, so it may stay a float.
    const LIMIT: f64 = 1.7e38; // below 2^127
    if f.fract() == 0.0 && f.abs() < LIMIT {
        NumberKey::Int(f as i128)
    } else {
        NumberKey::Float(f)
    }
}

/// `value` in a form that is the same for equal values and different otherwise:
/// JSON with numbers written by value (`1`, never `1.0`; a float in Rust's shortest
/// round-trip form, which always has a `.` or an `e`) and object members sorted by key.
fn canonical(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push('n'),
        Value::Bool(b) => out.push(if *b { 't' } else { 'f' }),
        Value::Number(n) => {
            let _ = match number_key(n) {
                NumberKey::Int(i) => write!(out, "{i}"),
                NumberKey::Float(f) => write!(out, "{f:?}"),
            };
        }
        Value::String(s) => quoted(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        Value::Object(members) => {
            // Sorted whatever the map's order (serde_json's `preserve_order` feature
            // may be on in an embedder's build).
            let mut sorted: Vec<(&String, &Value)> = members.iter().collect();
            sorted.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (key, member)) in sorted.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                quoted(key, out);
                out.push(':');
                canonical(member, out);
            }
            out.push('}');
        }
    }
}

/// `s` between quotes, its quotes and backslashes escaped (so it ends at the first
/// unescaped quote).
fn quoted(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
}

/// JSON Schema equality (`enum`, `const`): numbers by value (`1` equals `1.0`),
/// objects with the same members in any order, arrays item by item.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => number_key(x) == number_key(y),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

fn plural(n: u64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// `a < b` for JSON numbers: exact for integers, as `f64` otherwise.
fn less(a: &Number, b: &Number) -> bool {
    match (a.as_i64(), b.as_i64(), a.as_u64(), b.as_u64()) {
        (Some(x), Some(y), _, _) => x < y,
        (_, _, Some(x), Some(y)) => x < y,
        // One is an i64 below zero, the other a u64 above i64::MAX.
        (Some(_), None, _, Some(_)) => true,
        (None, Some(_), Some(_), _) => false,
        _ => a.as_f64().unwrap_or(f64::NAN) < b.as_f64().unwrap_or(f64::NAN),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tools::schema_of;
    use schemars::JsonSchema;
    use serde_json::json;

    #[derive(serde::Deserialize, JsonSchema)]
    #[allow(dead_code)]
    struct Args {
        #[schemars(length(min = 1, max = 8))]
        name: String,
        #[schemars(range(min = 1, max = 10))]
        count: u8,
        #[schemars(regex(pattern = r"^[a-z]+$"))]
        slug: Option<String>,
        #[schemars(length(max = 2))]
        tags: Vec<Tag>,
        inner: Option<Inner>,
        plain: u64,
        mode: Mode,
    }

    #[derive(serde::Deserialize, JsonSchema)]
    #[allow(dead_code)]
    struct Tag {
        #[schemars(length(min = 1))]
        label: String,
    }

    #[derive(serde::Deserialize, JsonSchema)]
    #[allow(dead_code)]
    struct Inner {
        #[schemars(range(max = 0.5))]
        ratio: f64,
    }

    #[derive(serde::Deserialize, JsonSchema)]
    #[serde(rename_all = "lowercase")]
    #[allow(dead_code)]
    enum Mode {
        Fast,
        Slow,
    }

    fn ok() -> Value {
        json!({"name": "a", "count": 1, "tags": [{"label": "x"}], "plain": 0, "mode": "fast",
               "slug": "abc", "inner": {"ratio": 0.5}})
    }

    fn error(patch: Value) -> String {
        let c = Constraints::compile(&schema_of::<Args>()).expect("has constraints");
        let mut args = ok();
        for (k, v) in patch.as_object().expect("object") {
            args[k] = v.clone();
        }
        c.check(&args).expect_err("a violation")
    }

    #[test]
    fn valid_arguments_pass() {
        let c = Constraints::compile(&schema_of::<Args>()).expect("has constraints");
        assert_eq!(c.check(&ok()), Ok(()));
        // Absent and null optionals, other types (left to deserialization) pass.
        let mut args = ok();
        args["slug"] = Value::Null;
        args.as_object_mut().expect("object").remove("inner");
        args["name"] = json!(5);
        assert_eq!(c.check(&args), Ok(()));
    }

    #[test]
    fn violations_name_the_field_and_the_keyword() {
        assert_eq!(
            error(json!({"name": ""})),
            "`name`: must be at least 1 character long (minLength 1)"
        );
        assert_eq!(
            error(json!({"name": "ééééééééé"})),
            "`name`: must be at most 8 characters long (maxLength 8)"
        );
        assert_eq!(
            error(json!({"count": 11})),
            "`count`: must be at most 10 (maximum 10)"
        );
        assert_eq!(
            error(json!({"count": 0})),
            "`count`: must be at least 1 (minimum 1)"
        );
        assert_eq!(
            error(json!({"slug": "A-b"})),
            "`slug`: must match the pattern `^[a-z]+$` (pattern)"
        );
        assert_eq!(
            error(json!({"tags": [{"label": "a"}, {"label": "b"}, {"label": "c"}]})),
            "`tags`: must have at most 2 items (maxItems 2)"
        );
        assert_eq!(
            error(json!({"tags": [{"label": "a"}, {"label": ""}]})),
            "`tags[1].label`: must be at least 1 character long (minLength 1)"
        );
        assert_eq!(
            error(json!({"inner": {"ratio": 0.75}})),
            "`inner.ratio`: must be at most 0.5 (maximum 0.5)"
        );
        assert_eq!(
            error(json!({"mode": "medium"})),
            "`mode`: must be one of \"fast\", \"slow\" (enum)"
        );
    }

    #[test]
    fn a_schema_without_constraints_compiles_to_nothing() {
        #[derive(serde::Deserialize, JsonSchema)]
        #[allow(dead_code)]
        struct Plain {
            text: String,
            n: u64,
            small: u8,
            signed: i32,
            list: Vec<String>,
        }
        assert!(Constraints::compile(&schema_of::<Plain>()).is_none());
    }

    #[test]
    fn hand_written_keywords_are_checked_too() {
        let schema = json!({"type": "object", "properties": {
            "seconds": {"type": "number", "exclusiveMinimum": 0, "multipleOf": 0.5},
            "ids": {"type": "array", "uniqueItems": true, "minItems": 1},
            "env": {"type": "object", "additionalProperties": {"type": "string", "maxLength": 3}},
            "kind": {"const": "x"},
            "bad": {"type": "string", "pattern": "("}
        }});
        let c = Constraints::compile(&schema).expect("has constraints");
        let check = |args: Value| c.check(&args);
        assert!(
            check(json!({"seconds": 1.5, "ids": [1, 2], "env": {"A": "abc"}, "kind": "x"})).is_ok()
        );
        assert!(check(json!({"seconds": 0}))
            .unwrap_err()
            .contains("exclusiveMinimum 0"));
        assert!(check(json!({"seconds": 0.7}))
            .unwrap_err()
            .contains("multipleOf 0.5"));
        assert!(check(json!({"ids": []}))
            .unwrap_err()
            .contains("minItems 1"));
        assert!(check(json!({"ids": [1, 1]}))
            .unwrap_err()
            .contains("uniqueItems"));
        assert_eq!(
            check(json!({"env": {"A": "abcd"}})).unwrap_err(),
            "`env.A`: must be at most 3 characters long (maxLength 3)"
        );
        assert!(check(json!({"kind": "y"})).unwrap_err().contains("(const)"));
        assert!(check(json!({"bad": "x"}))
            .unwrap_err()
            .contains("does not compile"));
    }

    #[test]
    fn recursive_types_compile() {
        #[derive(serde::Deserialize, JsonSchema)]
        #[allow(dead_code)]
        struct Tree {
            #[schemars(length(min = 1))]
            name: String,
            children: Vec<Tree>,
        }
        let c = Constraints::compile(&schema_of::<Tree>()).expect("has constraints");
        assert!(c
            .check(&json!({"name": "a", "children": [{"name": "b", "children": []}]}))
            .is_ok());
        assert!(c.check(&json!({"name": "", "children": []})).is_err());
    }

    fn unique_items() -> Constraints {
        Constraints::compile(&json!({"type": "array", "uniqueItems": true})).expect("compiles")
    }

    /// The answer of `has_repeat` and the steps it took.
    fn work_of(items: &[Value]) -> (bool, u64) {
        let mut work = 0;
        let repeat = has_repeat(items, &mut |n| work += n);
        (repeat, work)
    }

    /// Issue 18 item 4: two 1 MB arrays froze both HTTP workers for 24 s (n² pairs).
    /// The work of a check grows as n log n: at most 2·n·log2(n) comparisons, for
    /// distinct items of every kind and with the repeat at the very end.
    #[test]
    fn unique_items_work_grows_as_n_log_n() {
        for n in [1_000usize, 4_000] {
            let bound = 2 * n as u64 * (usize::BITS - n.leading_zeros()) as u64;
            let numbers: Vec<Value> = (0..n).map(|i| json!(i)).collect();
            let strings: Vec<Value> = (0..n).map(|i| json!(format!("item {i}"))).collect();
            let objects: Vec<Value> = (0..n).map(|i| json!({"id": i, "tags": [i % 7]})).collect();
            for items in [numbers, strings, objects] {
                let (repeat, work) = work_of(&items);
                assert!(!repeat);
                assert!(
                    work <= bound,
                    "{n} distinct items: {work} steps (bound {bound})"
                );
                let mut repeated = items;
                repeated.push(repeated[n / 2].clone());
                let (repeat, work) = work_of(&repeated);
                assert!(repeat);
                assert!(work <= bound + 64, "{n} items + a repeat: {work} steps");
            }
        }
    }

    /// Equality is JSON Schema's: numbers by value (1 and 1.0 are one number),
    /// objects whatever their key order; nothing else is equal.
    #[test]
    fn unique_items_and_enum_use_json_schema_equality() {
        let c = unique_items();
        let repeats = [
            json!([1, 1.0]),
            json!([0, -0.0]),
            json!([10000000000000000000u64, 1e19]),
            json!([-5, -5.0]),
            json!([{"a": 1, "b": [2.0]}, {"b": [2], "a": 1.0}]),
            json!([[1, {"x": null}], [1.0, {"x": null}]]),
            json!(["é", "é"]),
            json!([true, false, true]),
            json!([null, null]),
        ];
        for items in repeats {
            assert!(c.check(&items).is_err(), "{items} repeats an item");
        }
        let distinct = [
            json!([1, "1", [1], {"1": 1}, true, null]),
            json!([9007199254740993u64, 9007199254740992.0]),
            json!([0.1, 0.10000000000000002]),
            json!([[1, 2], [2, 1]]),
            json!([{"a": 1}, {"a": 1, "b": null}]),
            json!([{"a": "b"}, {"ab": ""}, "a\"b", "a\\\"b"]),
            json!([false, 0, "", [], {}]),
            json!([-1, 18446744073709551615u64, 1e300, -1e300]),
        ];
        for items in distinct {
            assert_eq!(c.check(&items), Ok(()), "{items} has no repeat");
        }
        let schema = json!({"properties": {
            "e": {"enum": [1, {"k": [2]}]},
            "c": {"const": {"a": 1.0, "b": 2}}
        }});
        let c = Constraints::compile(&schema).expect("compiles");
        assert_eq!(c.check(&json!({"e": 1.0})), Ok(()));
        assert_eq!(c.check(&json!({"e": {"k": [2.0]}})), Ok(()));
        assert!(c.check(&json!({"e": 2})).is_err());
        assert_eq!(c.check(&json!({"c": {"b": 2.0, "a": 1}})), Ok(()));
        assert!(c.check(&json!({"c": {"a": 1}})).is_err());
    }

    #[test]
    fn big_integers_compare_exactly() {
        let (a, b) = (Number::from(u64::MAX), Number::from(u64::MAX - 1));
        assert!(less(&b, &a) && !less(&a, &b));
        assert!(less(&Number::from(-1), &Number::from(u64::MAX)));
        assert!(!less(&Number::from(u64::MAX), &Number::from(-1)));
    }
}
