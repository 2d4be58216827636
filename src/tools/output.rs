//! What a typed tool handler may return: a [`CallToolResult`] built by hand, or a
//! [`Json<T>`] whose type gives the tool its `outputSchema`.

use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

use super::{output_schema_of, ToolError, ToolOutcome};
use crate::protocol::CallToolResult;

/// A value a `Tool::new` handler returns (inside `Ok`). The tool's `outputSchema` is
/// [`IntoToolResult::output_schema`] of the handler's return type, so what is
/// advertised and what is returned come from one type.
pub trait IntoToolResult {
    /// The `outputSchema` this type declares, if any.
    fn output_schema() -> Option<Value>;

    /// The result sent to the client.
    fn into_tool_result(self) -> ToolOutcome;
}

/// A result built by hand: content as given, no `outputSchema` (declare one with
/// `Tool::output` if the result carries `structuredContent`).
impl IntoToolResult for CallToolResult {
    fn output_schema() -> Option<Value> {
        None
    }

    fn into_tool_result(self) -> ToolOutcome {
        Ok(self)
    }
}

/// Typed output: the tool's `outputSchema` is generated from `T`, and the result
/// carries `T` as `structuredContent` and, as MCP recommends for clients that do not
/// read structured content, the same JSON as its one text content.
///
/// `T` must serialize to a JSON object (a struct or a map, as MCP requires of
/// `structuredContent`); anything else is an `isError` result saying so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Json<T>(pub T);

impl<T: Serialize + JsonSchema> IntoToolResult for Json<T> {
    fn output_schema() -> Option<Value> {
        Some(output_schema_of::<T>())
    }

    fn into_tool_result(self) -> ToolOutcome {
        let value = serde_json::to_value(&self.0)
            .map_err(|e| ToolError::Failed(format!("cannot encode the result: {e}")))?;
        if !value.is_object() {
            return Err(ToolError::Failed(
                "the structured result is not a JSON object".into(),
            ));
        }
        Ok(CallToolResult::text(value.to_string()).with_structured(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Serialize, JsonSchema)]
    struct Out {
        key: String,
        note: Option<String>,
    }

    #[test]
    fn json_output_is_structured_content_plus_its_text() {
        let out = Json(Out {
            key: "a".into(),
            note: None,
        });
        let result = out.into_tool_result().expect("a result");
        let expected = json!({"key": "a", "note": null});
        assert_eq!(result.structured_content, Some(expected.clone()));
        let text = serde_json::to_value(&result.content).expect("content");
        assert_eq!(
            text,
            json!([{"type": "text", "text": expected.to_string()}])
        );
        assert!(!result.is_error);
    }

    #[test]
    fn json_output_declares_its_schema_keeping_null() {
        let schema = <Json<Out>>::output_schema().expect("a schema");
        assert_eq!(schema["type"], "object");
        assert_eq!(schema["required"], json!(["key"]));
        // `note` may be null on the wire, so its schema says so.
        assert!(schema["properties"]["note"].to_string().contains("null"));
        assert!(schema.get("$schema").is_none() && schema.get("title").is_none());
        assert!(<CallToolResult as IntoToolResult>::output_schema().is_none());
    }

    #[derive(Serialize, serde::Deserialize, JsonSchema)]
    struct Numbers {
        count: u32,
        total: u64,
        delta: i64,
        ratio: f64,
        small: Option<u8>,
        items: Vec<u16>,
        nested: Inner,
        #[schemars(email)]
        mail: String,
        #[schemars(url)]
        link: String,
    }

    #[derive(Serialize, serde::Deserialize, JsonSchema)]
    struct Inner {
        n: usize,
        when: std::collections::BTreeMap<String, f32>,
    }

    fn input_schema_of_a_tool_taking<A>() -> Value
    where
        A: serde::de::DeserializeOwned + JsonSchema + 'static,
    {
        let tool = super::super::Tool::new("t", "d", |_ctx, _args: A| async {
            Ok(CallToolResult::text("ok"))
        });
        tool.def().input_schema.clone()
    }

    /// Every `format` in `schema` (at any depth).
    fn formats(schema: &Value, found: &mut Vec<String>) {
        match schema {
            Value::Object(map) => {
                for (k, v) in map {
                    match (k.as_str(), v) {
                        ("format", Value::String(f)) => found.push(f.clone()),
                        _ => formats(v, found),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|v| formats(v, found)),
            _ => {}
        }
    }

    /// Issue 18 item 17: schemars' own formats (`uint32`, `double`, `int64`...) are
    /// not JSON Schema's and make clients warn; the defined ones stay.
    #[test]
    fn schemas_carry_only_json_schema_formats() {
        for (which, schema) in [
            (
                "output",
                <Json<Numbers>>::output_schema().expect("a schema"),
            ),
            ("input", input_schema_of_a_tool_taking::<Numbers>()),
        ] {
            let mut found = Vec::new();
            formats(&schema, &mut found);
            found.sort();
            assert_eq!(found, ["email", "uri"], "{which}: {schema:#}");
            // The bounds schemars derives from the types stay.
            assert_eq!(schema["properties"]["count"]["minimum"], 0, "{schema:#}");
        }
    }

    #[test]
    fn a_non_object_is_refused() {
        match Json(vec![1, 2]).into_tool_result() {
            Err(e) => assert!(e.message().contains("not a JSON object"), "{e:?}"),
            Ok(r) => panic!("{r:?}"),
        }
    }
}
