//! Conformance fixtures (`--fixtures conformance`): exactly the tools, resources and
//! prompts the official MCP conformance suite (`@modelcontextprotocol/conformance`)
//! calls, answering what its scenarios check (see `tests/conformance/SCENARIOS.md`).

use std::collections::HashMap;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use emcee::handler::CallContext;
use emcee::handler::Elicitation;
use emcee::notify::Change;
use emcee::prompts::{CompletionRef, GetPromptResult, Prompt, PromptMessage, PromptRegistry, Role};
use emcee::protocol::{CallToolResult, Content, LoggingLevel, SamplingRequest};
use emcee::resources::{Resource, ResourceContents, ResourceRegistry, Template};
use emcee::tools::{DuplicateName, Tool, ToolError, ToolOutcome, ToolRegistry};

/// A 1×1 red PNG.
pub const PNG_BASE64: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
/// A minimal WAV file.
pub const WAV_BASE64: &str = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA=";

const STEP: Duration = Duration::from_millis(50);

fn no_args() -> Value {
    json!({"type": "object", "properties": {}})
}

fn one_string(name: &str) -> Value {
    json!({"type": "object", "properties": {name: {"type": "string"}}, "required": [name]})
}

fn content(blocks: Vec<Content>) -> ToolOutcome {
    Ok(CallToolResult {
        content: blocks,
        ..Default::default()
    })
}

fn image() -> Content {
    Content::Image {
        data: PNG_BASE64.into(),
        mime_type: "image/png".into(),
    }
}

fn embedded(uri: &str, mime: &str, text: &str) -> Content {
    Content::Resource {
        resource: ResourceContents::text(uri, Some(mime), text).to_value(),
    }
}

fn string_arg(args: &Value, name: &str) -> Result<String, ToolError> {
    args.get(name)
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| ToolError::InvalidArguments(format!("`{name}` must be a string")))
}

/// Elicit a `T` form; a failure is the tool's (`isError`), not a protocol error.
async fn elicit<T>(ctx: &CallContext, message: &str) -> Result<Elicitation<T>, ToolError>
where
    T: JsonSchema + serde::de::DeserializeOwned + 'static,
{
    ctx.elicit::<T>(message)
        .await
        .map_err(|e| ToolError::Failed(e.message))
}

/// `action=<action>, content=<content as JSON>` of an elicitation's answer.
fn action_and_content<T: Serialize>(answer: &Elicitation<T>) -> String {
    let (action, content) = match answer {
        Elicitation::Accept(form) => ("accept", serde_json::to_value(form).unwrap_or_default()),
        Elicitation::Decline => ("decline", Value::Null),
        _ => ("cancel", Value::Null),
    };
    format!("action={action}, content={content}")
}

/// `test_elicitation`'s form.
#[derive(Serialize, Deserialize, JsonSchema)]
struct UserInfo {
    /// User's response
    username: String,
    /// User's email address
    email: String,
}

/// `test_elicitation_sep1034_defaults`'s form: a default for every primitive type.
#[derive(Serialize, Deserialize, JsonSchema)]
struct Profile {
    /// User name
    #[serde(default = "default_name")]
    name: String,
    /// User age
    #[serde(default = "default_age")]
    age: i64,
    /// User score
    #[serde(default = "default_score")]
    score: f64,
    /// User status
    #[serde(default)]
    status: Status,
    /// Verification status
    #[serde(default = "default_verified")]
    verified: bool,
}

fn default_name() -> String {
    "John Doe".into()
}
fn default_age() -> i64 {
    30
}
fn default_score() -> f64 {
    95.5
}
fn default_verified() -> bool {
    true
}

#[derive(Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Status {
    #[default]
    Active,
    Inactive,
    Pending,
}

/// `test_elicitation_sep1330_enums`'s form: every enum style.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct Choices {
    untitled_single: Option<Untitled>,
    titled_single: Option<Titled>,
    #[schemars(extend("enumNames" = ["Option One", "Option Two", "Option Three"]))]
    legacy_enum: Option<Legacy>,
    untitled_multi: Option<Vec<Untitled>>,
    titled_multi: Option<Vec<TitledMulti>>,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Untitled {
    Option1,
    Option2,
    Option3,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Titled {
    #[schemars(title = "First Option")]
    Value1,
    #[schemars(title = "Second Option")]
    Value2,
    #[schemars(title = "Third Option")]
    Value3,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum Legacy {
    Opt1,
    Opt2,
    Opt3,
}

#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
enum TitledMulti {
    #[schemars(title = "First Choice")]
    Value1,
    #[schemars(title = "Second Choice")]
    Value2,
    #[schemars(title = "Third Choice")]
    Value3,
}

/// A one-field form: the user's name (also the multi-round-trip fixtures').
#[derive(Deserialize, JsonSchema)]
struct NameForm {
    name: String,
}

/// Whether to proceed.
#[derive(Deserialize, JsonSchema)]
struct OkForm {
    ok: bool,
}

/// A favourite colour.
#[derive(Deserialize, JsonSchema)]
struct ColorForm {
    color: String,
}

/// The context a prompt should use.
#[derive(Deserialize, JsonSchema)]
struct ContextForm {
    context: String,
}

/// Whether to delete a file.
#[derive(Deserialize, JsonSchema)]
struct ConfirmForm {
    confirm: bool,
}

/// Register the conformance tools, resources, prompts and completions.
pub fn register(
    tools: &mut ToolRegistry,
    resources: &mut ResourceRegistry,
    prompts: &mut PromptRegistry,
) -> Result<(), DuplicateName> {
    register_tools(tools)?;
    register_resources(resources)?;
    register_prompts(prompts)?;
    Ok(())
}

fn register_tools(tools: &mut ToolRegistry) -> Result<(), DuplicateName> {
    tools
        .add(Tool::raw("test_simple_text", "Returns simple text content.", no_args(), |_ctx, _a| async {
            content(vec![Content::text("This is a simple text response for testing.")])
        }))?
        .add(Tool::raw("test_image_content", "Returns image content.", no_args(), |_ctx, _a| async {
            content(vec![image()])
        }))?
        .add(Tool::raw("test_audio_content", "Returns audio content.", no_args(), |_ctx, _a| async {
            content(vec![Content::Audio {
                data: WAV_BASE64.into(),
                mime_type: "audio/wav".into(),
            }])
        }))?
        .add(Tool::raw("test_embedded_resource", "Returns an embedded resource.", no_args(), |_ctx, _a| async {
            content(vec![embedded(
                "test://embedded-resource",
                "text/plain",
                "This is an embedded resource content.",
            )])
        }))?
        .add(Tool::raw(
            "test_multiple_content_types",
            "Returns text, image and resource content.",
            no_args(),
            |_ctx, _a| async {
                content(vec![
                    Content::text("Multiple content types test:"),
                    image(),
                    embedded(
                        "test://mixed-content-resource",
                        "application/json",
                        r#"{"test":"data","value":123}"#,
                    ),
                ])
            },
        ))?
        .add(Tool::raw(
            "test_tool_with_logging",
            "Sends three log notifications while it runs.",
            no_args(),
            |ctx, _a| async move {
                for (i, msg) in ["Tool execution started", "Tool processing data", "Tool execution completed"]
                    .into_iter()
                    .enumerate()
                {
                    if i > 0 {
                        actix_rt::time::sleep(STEP).await;
                    }
                    ctx.notify_log(LoggingLevel::Info, Some("conformance"), json!(msg));
                }
                content(vec![Content::text("Tool with logging executed successfully")])
            },
        ))?
        .add(Tool::raw(
            "test_error_handling",
            "Always fails with an isError result.",
            no_args(),
            |_ctx, _a| async { Err(ToolError::Failed("This tool intentionally returns an error for testing".into())) },
        ))?
        .add(Tool::raw(
            "test_tool_with_progress",
            "Reports progress 0, 50, 100 of 100.",
            no_args(),
            |ctx, _a| async move {
                for (i, p) in [0.0, 50.0, 100.0].into_iter().enumerate() {
                    if i > 0 {
                        actix_rt::time::sleep(STEP).await;
                    }
                    ctx.progress(p, Some(100.0), None);
                }
                content(vec![Content::text("Tool with progress executed successfully")])
            },
        ))?
        .add(Tool::raw(
            "test_sampling",
            "Asks the client's LLM to answer `prompt` (sampling/createMessage).",
            one_string("prompt"),
            |ctx, a| async move {
                let prompt = string_arg(&a, "prompt")?;
                let answer = ctx
                    .sample(SamplingRequest::text(prompt, 100))
                    .await
                    .map_err(|e| ToolError::Failed(e.message))?;
                content(vec![Content::text(format!("LLM response: {}", answer.text()))])
            },
        ))?
        .add(Tool::raw(
            "test_elicitation",
            "Asks the user for a username and an email (elicitation/create).",
            one_string("message"),
            |ctx, a| async move {
                let message = string_arg(&a, "message")?;
                let answer = elicit::<UserInfo>(&ctx, &message).await?;
                content(vec![Content::text(format!(
                    "User response: {}",
                    action_and_content(&answer)
                ))])
            },
        ))?
        .add(Tool::raw(
            "json_schema_2020_12_tool",
            "Tool with JSON Schema 2020-12 features",
            json!({
                "$schema": "https://json-schema.org/draft/2020-12/schema",
                "type": "object",
                "$defs": {"address": {"$anchor": "addressDef", "type": "object", "properties": {"street": {"type": "string"}, "city": {"type": "string"}}}},
                "properties": {
                    "name": {"type": "string"},
                    "address": {"$ref": "#/$defs/address"},
                    "contactMethod": {"type": "string", "enum": ["phone", "email"]},
                    "phone": {"type": "string"},
                    "email": {"type": "string"}
                },
                "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
                "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
                "then": {"required": ["phone"]},
                "else": {"required": ["email"]},
                "additionalProperties": false
            }),
            |_ctx, a| async move { content(vec![Content::text(format!("Received: {a}"))]) },
        ))?
        .add(Tool::raw(
            "test_elicitation_sep1034_defaults",
            "Elicits a form whose fields have defaults (SEP-1034).",
            no_args(),
            |ctx, _a| async move {
let answer = elicit::<Profile>(&ctx, "Please review your profile").await?;
                content(vec![Content::text(format!(
                    "Elicitation completed: {}",
                    action_and_content(&answer)
                ))])
            },
        ))?
        .add(Tool::raw(
            "test_elicitation_sep1330_enums",
            "Elicits a form with every enum style (SEP-1330).",
            no_args(),
            |ctx, _a| async move {
let answer = elicit::<Choices>(&ctx, "Please choose your options").await?;
                content(vec![Content::text(format!(
                    "Elicitation completed: {}",
                    action_and_content(&answer)
                ))])
            },
        ))?
        .add(Tool::raw(
            "test_reconnection",
            "Closes its SSE stream mid-call, then finishes (SEP-1699 resumption).",
            no_args(),
            |ctx, _a| async move {
                actix_rt::time::sleep(STEP).await;
                ctx.close_stream();
                actix_rt::time::sleep(STEP * 3).await;
                content(vec![Content::text("Reconnection test completed successfully")])
            },
        ))?;
    register_2026_tools(tools)?;
    register_input_required_tools(tools)?;
    register_task_tools(tools)
}

/// The user's name from a `NameForm` answer (`default` unless accepted).
fn name_or(answer: Elicitation<NameForm>, default: &str) -> String {
    answer
        .accepted()
        .map_or_else(|| default.to_owned(), |f| f.name)
}

/// The multi-round-trip fixtures (`input-required-result-*` scenarios): each asks
/// with the same handler API as the session-era tools.
fn register_input_required_tools(tools: &mut ToolRegistry) -> Result<(), DuplicateName> {
    let elicit_name = |ctx: CallContext, _a: Value| async move {
        let answer = ctx
            .elicit_keyed::<NameForm>("user_name", "What is your name?")
            .await?;
        let name = name_or(answer, "stranger");
        content(vec![Content::text(format!("Hello, {name}!"))])
    };
    tools
        .add(Tool::raw(
            "test_input_required_result_elicitation",
            "Asks the client for a name (elicitation), then greets.",
            no_args(),
            elicit_name,
        ))?
        .add(Tool::raw(
            "test_input_required_result_tampered_state",
            "Asks for a name; a retry with an altered requestState is refused.",
            no_args(),
            elicit_name,
        ))?
        .add(Tool::raw(
            "test_input_required_result_sampling",
            "Asks the client's model a question (sampling), then answers with it.",
            no_args(),
            |ctx, _a| async move {
                let answer = ctx
                    .sample_keyed(
                        "capital_question",
                        SamplingRequest::text("What is the capital of France?", 100),
                    )
                    .await?;
                content(vec![Content::text(format!(
                    "The model says: {}",
                    answer.text()
                ))])
            },
        ))?
        .add(Tool::raw(
            "test_input_required_result_list_roots",
            "Asks the client for its roots, then lists them.",
            no_args(),
            |ctx, _a| async move {
                let count = ctx.roots_keyed("client_roots").await?.len();
                content(vec![Content::text(format!(
                    "The client has {count} root(s)."
                ))])
            },
        ))?
        .add(Tool::raw(
            "test_input_required_result_request_state",
            "Asks for a confirmation; the round's state rides in requestState.",
            no_args(),
            |ctx, _a| async move {
                let answer = ctx.elicit_keyed::<OkForm>("confirm", "Proceed?").await?;
                let ok = answer.accepted().is_some_and(|f| f.ok);
                content(vec![Content::text(format!("state-ok, confirmed={ok}"))])
            },
        ))?
        .add(Tool::raw(
            "test_input_required_result_multiple_inputs",
            "Asks for a name, a greeting and the roots in one round.",
            no_args(),
            |ctx, _a| async move {
                let (name, greeting, roots) = futures::join!(
                    ctx.elicit_keyed::<NameForm>("user_name", "What is your name?"),
                    ctx.sample_keyed("greeting", SamplingRequest::text("Write a greeting.", 100)),
                    ctx.roots_keyed("client_roots"),
                );
                let (name, greeting, roots) = (name?, greeting?, roots?);
                content(vec![Content::text(format!(
                    "{} {}; {} root(s)",
                    greeting.text(),
                    name_or(name, "stranger"),
                    roots.len()
                ))])
            },
        ))?
        .add(Tool::raw(
            "test_input_required_result_multi_round",
            "Asks for a name, then (next round) a colour.",
            no_args(),
            |ctx, _a| async move {
                let name = ctx
                    .elicit_keyed::<NameForm>("step1", "What is your name?")
                    .await?;
                let color = ctx
                    .elicit_keyed::<ColorForm>("step2", "Favourite colour?")
                    .await?;
                content(vec![Content::text(format!(
                    "{} likes {}",
                    name_or(name, "someone"),
                    color
                        .accepted()
                        .map_or_else(|| "no colour".to_owned(), |f| f.color)
                ))])
            },
        ))?
        .add(Tool::raw(
            "test_input_required_result_capabilities",
            "Asks only what the request's client capabilities allow.",
            no_args(),
            |ctx, _a| async move {
                let caps = ctx.client_capabilities().clone();
                let mut said = Vec::new();
                if caps.contains_key("elicitation") {
                    let a = ctx
                        .elicit_keyed::<NameForm>("user_name", "What is your name?")
                        .await?;
                    let name = a.accepted().map_or(Value::Null, |f| Value::from(f.name));
                    said.push(format!("name={name}"));
                }
                if caps.contains_key("sampling") {
                    let a = ctx
                        .sample_keyed("greeting", SamplingRequest::text("Write a greeting.", 100))
                        .await?;
                    said.push(format!("greeting={}", Value::from(a.text())));
                }
                if caps.contains_key("roots") {
                    let roots = ctx.roots_keyed("client_roots").await?;
                    said.push(format!(
                        "roots={}",
                        serde_json::to_value(&roots).unwrap_or_default()
                    ));
                }
                content(vec![Content::text(said.join("; "))])
            },
        ))?;
    Ok(())
}

/// The tasks extension fixtures (`tasks-*` scenarios).
fn register_task_tools(tools: &mut ToolRegistry) -> Result<(), DuplicateName> {
    use emcee::tools::TaskSupport;
    let name_schema = json!({"type": "object", "properties": {"name": {"type": "string"}}});
    let compute_schema = json!({"type": "object", "properties": {
        "seconds": {"type": "number", "minimum": 0}, "label": {"type": "string"}}});
    let file_schema = json!({"type": "object", "properties": {"filename": {"type": "string"}}});
    tools
        .add(Tool::raw(
            "greet",
            "Says hello to `name` (never a task).",
            name_schema,
            |_ctx, a| async move {
                let name = a["name"].as_str().unwrap_or("World").to_owned();
                content(vec![Content::text(format!("Hello, {name}!"))])
            },
        ))?
        .add(
            Tool::raw(
                "slow_compute",
                "Works `seconds` seconds, then answers (a task for clients with the tasks extension).",
                compute_schema,
                |_ctx, a| async move {
                    let seconds = a["seconds"].as_f64().unwrap_or(1.0).clamp(0.0, 3600.0);
                    actix_rt::time::sleep(Duration::from_secs_f64(seconds)).await;
                    let label = a["label"].as_str().unwrap_or("compute").to_owned();
                    content(vec![Content::text(format!("{label}: done after {seconds} s"))])
                },
            )
            .task(TaskSupport::Optional),
        )?
        .add(
            Tool::raw(
                "failing_job",
                "Fails as a tool after about a second; only runs as a task.",
                no_args(),
                |_ctx, _a| async move {
                    actix_rt::time::sleep(Duration::from_secs(1)).await;
                    Err(ToolError::Failed("the job failed, as it always does".into()))
                },
            )
            .task(TaskSupport::Required),
        )?
        .add(
            Tool::raw(
                "protocol_error_job",
                "Ends with a JSON-RPC error (a task for clients with the tasks extension).",
                no_args(),
                |_ctx, _a| async move {
                    actix_rt::time::sleep(STEP).await;
                    Err(ToolError::Protocol(emcee::protocol::RpcError::internal(
                        "protocol_error_job: a protocol-level failure",
                    )))
                },
            )
            .task(TaskSupport::Optional),
        )?
        .add(
            Tool::raw(
                "confirm_delete",
                "Asks the client to confirm (elicitation inside the task), then deletes nothing.",
                file_schema,
                |ctx, a| async move {
                    let file = a["filename"].as_str().unwrap_or("file").to_owned();
                    let answer = ctx.elicit_keyed::<ConfirmForm>("confirm", &format!("Delete {file}?")).await?;
                    let confirmed = matches!(answer, Elicitation::Accept(ConfirmForm { confirm: true }));
                    content(vec![Content::text(format!("{file}: {}", if confirmed { "deleted" } else { "kept" }))])
                },
            )
            .task(TaskSupport::Optional),
        )?
        .add(
            Tool::raw(
                "multi_input",
                "Asks two questions at once inside the task.",
                no_args(),
                |ctx, _a| async move {
                    let (first, second) = futures::join!(
                        ctx.elicit_keyed::<NameForm>("first", "First name?"),
                        ctx.elicit_keyed::<NameForm>("second", "Second name?"),
                    );
                    let (first, second) = (first?, second?);
                    content(vec![Content::text(format!(
                        "{} and {}",
                        name_or(first, "?"),
                        name_or(second, "?")
                    ))])
                },
            )
            .task(TaskSupport::Optional),
        )?
        .add(
            Tool::raw(
                "test_tool_with_task",
                "Asks for a name (multi-round trip), then works on as a task.",
                no_args(),
                |ctx, _a| async move {
                    let answer = ctx.elicit_keyed::<NameForm>("user_name", "What is your name?").await?;
                    let name = name_or(answer, "stranger");
                    ctx.begin_task().await?;
                    actix_rt::time::sleep(STEP).await;
                    content(vec![Content::text(format!("Task done for {name}"))])
                },
            )
            .task_begun_by_handler(TaskSupport::Required),
        )?;
    Ok(())
}

/// The fixtures the 2026-07-28 scenarios add.
fn register_2026_tools(tools: &mut ToolRegistry) -> Result<(), DuplicateName> {
    tools
        .add(Tool::raw(
            "test_missing_capability",
            "Needs the client's sampling capability: -32021 when the request does not declare it.",
            no_args(),
            |ctx, _a| async move {
                ctx.require_client_capabilities("test_missing_capability", &["sampling"])?;
                content(vec![Content::text("The client declared sampling.")])
            },
        ))?
        .add(Tool::raw(
            "test_streaming_elicitation",
            "Reports progress, then answers; never sends the client a request.",
            no_args(),
            |ctx, _a| async move {
                ctx.progress(1.0, Some(2.0), Some("working"));
                actix_rt::time::sleep(STEP).await;
                ctx.progress(2.0, Some(2.0), Some("done"));
                content(vec![Content::text(
                    "Streaming finished without asking the client.",
                )])
            },
        ))?
        .add(Tool::raw(
            "test_logging_tool",
            "Logs at info; the client sees it only when its request names a log level.",
            no_args(),
            |ctx, _a| async move {
                ctx.notify_log(
                    LoggingLevel::Info,
                    Some("conformance"),
                    json!("test_logging_tool ran"),
                );
                content(vec![Content::text("Logging tool executed.")])
            },
        ))?
        .add(Tool::raw(
            "test_trigger_tool_change",
            "Announces a tool list change to listening clients.",
            no_args(),
            |ctx, _a| async move {
                ctx.list_changed(Change::ToolsList);
                content(vec![Content::text("Tool list change announced.")])
            },
        ))?
        .add(Tool::raw(
            "test_trigger_prompt_change",
            "Announces a prompt list change to listening clients.",
            no_args(),
            |ctx, _a| async move {
                ctx.list_changed(Change::PromptsList);
                content(vec![Content::text("Prompt list change announced.")])
            },
        ))?
        .add(Tool::raw(
            "test_header_param",
            "Echoes `region`, which 2026-07-28 HTTP clients also send as Mcp-Param-Region.",
            json!({"type": "object",
                   "properties": {"region": {"type": "string", "x-mcp-header": "Region"}},
                   "required": ["region"]}),
            |_ctx, a| async move {
                let region = string_arg(&a, "region")?;
                content(vec![Content::text(format!("region: {region}"))])
            },
        ))?;
    Ok(())
}

fn register_resources(resources: &mut ResourceRegistry) -> Result<(), DuplicateName> {
    resources
        .add(
            Resource::new("test://static-text", "static-text", |_ctx, uri| async move {
                Ok(vec![ResourceContents::text(
                    uri,
                    Some("text/plain"),
                    "This is the content of the static text resource.",
                )])
            })
            .description("A static text resource")
            .mime_type("text/plain"),
        )?
        .add(
            Resource::new("test://static-binary", "static-binary", |_ctx, uri| async move {
                Ok(vec![ResourceContents::blob(uri, Some("image/png"), PNG_BASE64)])
            })
            .description("A static binary resource (a PNG)")
            .mime_type("image/png"),
        )?
        .add(
            Resource::new("test://watched-resource", "watched-resource", |_ctx, uri| async move {
                Ok(vec![ResourceContents::text(uri, Some("text/plain"), "Watched resource content.")])
            })
            .description("A resource clients can subscribe to")
            .mime_type("text/plain"),
        )?
        .add_template(
            Template::new("test://template/{id}/data", "template-data", |_ctx, uri, vars: HashMap<String, String>| async move {
                let id = vars.get("id").cloned().unwrap_or_default();
                let text = json!({"id": id, "templateTest": true, "data": format!("Data for ID: {id}")}).to_string();
                Ok(vec![ResourceContents::text(uri, Some("application/json"), text)])
            })
            .description("Data for an id")
            .mime_type("application/json"),
        )?;
    Ok(())
}

fn text_message(text: String) -> PromptMessage {
    PromptMessage {
        role: Role::User,
        content: Content::text(text),
    }
}

fn register_prompts(prompts: &mut PromptRegistry) -> Result<(), DuplicateName> {
    prompts
        .add(Prompt::new(
            "test_input_required_result_prompt",
            "Asks the client for context (elicitation), then builds the prompt with it.",
            |ctx, _args| async move {
                let answer = ctx
                    .elicit_keyed::<ContextForm>(
                        "user_context",
                        "What context should the prompt use?",
                    )
                    .await?;
                let context = answer
                    .accepted()
                    .map_or_else(|| "none".to_owned(), |f| f.context);
                Ok(GetPromptResult {
                    description: None,
                    messages: vec![text_message(format!("Context: {context}"))],
                })
            },
        ))?
        .add(Prompt::new(
            "test_simple_prompt",
            "A simple prompt without arguments",
            |_ctx, _args| async {
                Ok(GetPromptResult {
                    description: None,
                    messages: vec![text_message("This is a simple prompt for testing.".into())],
                })
            },
        ))?
        .add(
            Prompt::new(
                "test_prompt_with_arguments",
                "A prompt with two required arguments",
                |_ctx, args| async move {
                    let get = |k: &str| args.get(k).cloned().unwrap_or_default();
                    Ok(GetPromptResult {
                        description: None,
                        messages: vec![text_message(format!(
                            "Prompt with arguments: arg1='{}', arg2='{}'",
                            get("arg1"),
                            get("arg2")
                        ))],
                    })
                },
            )
            .argument("arg1", "First test argument", true)
            .argument("arg2", "Second test argument", true),
        )?
        .add(
            Prompt::new(
                "test_prompt_with_embedded_resource",
                "A prompt embedding the resource named by `resourceUri`",
                |_ctx, args| async move {
                    let uri = args.get("resourceUri").cloned().unwrap_or_default();
                    Ok(GetPromptResult {
                        description: None,
                        messages: vec![
                            PromptMessage {
                                role: Role::User,
                                content: embedded(
                                    &uri,
                                    "text/plain",
                                    "Embedded resource content for testing.",
                                ),
                            },
                            text_message("Please process the embedded resource above.".into()),
                        ],
                    })
                },
            )
            .argument("resourceUri", "URI of the resource to embed", true),
        )?
        .add(Prompt::new(
            "test_prompt_with_image",
            "A prompt with an image",
            |_ctx, _args| async {
                Ok(GetPromptResult {
                    description: None,
                    messages: vec![
                        PromptMessage {
                            role: Role::User,
                            content: image(),
                        },
                        text_message("Please analyze the image above.".into()),
                    ],
                })
            },
        ))?
        .completer(
            CompletionRef::Prompt {
                name: "test_prompt_with_arguments".into(),
            },
            "arg1",
            |prefix, _context| {
                ["test", "testValue1", "testing", "value"]
                    .into_iter()
                    .filter(|v| v.starts_with(prefix))
                    .map(str::to_owned)
                    .collect()
            },
        );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use emcee::handler::elicitation_schema;

    /// The typed forms send the schemas the suite checks (what these fixtures sent
    /// when they spelled them by hand).
    #[test]
    fn typed_forms_send_the_hand_written_schemas() {
        let form = |property: &str, kind: &str| json!({"type": "object", "properties": {property: {"type": kind}}, "required": [property]});
        assert_eq!(
            elicitation_schema::<NameForm>().unwrap(),
            form("name", "string")
        );
        assert_eq!(
            elicitation_schema::<OkForm>().unwrap(),
            form("ok", "boolean")
        );
        assert_eq!(
            elicitation_schema::<ColorForm>().unwrap(),
            form("color", "string")
        );
        assert_eq!(
            elicitation_schema::<ContextForm>().unwrap(),
            form("context", "string")
        );
        assert_eq!(
            elicitation_schema::<ConfirmForm>().unwrap(),
            form("confirm", "boolean")
        );
        assert_eq!(
            elicitation_schema::<UserInfo>().unwrap(),
            json!({
                "type": "object",
                "properties": {
                    "username": {"type": "string", "description": "User's response"},
                    "email": {"type": "string", "description": "User's email address"}
                },
                "required": ["username", "email"]
            })
        );
        assert_eq!(
            elicitation_schema::<Profile>().unwrap(),
            json!({
                "type": "object",
                "properties": {
                    "name": {"type": "string", "description": "User name", "default": "John Doe"},
                    "age": {"type": "integer", "description": "User age", "default": 30},
                    "score": {"type": "number", "description": "User score", "default": 95.5},
                    "status": {"type": "string", "description": "User status", "enum": ["active", "inactive", "pending"], "default": "active"},
                    "verified": {"type": "boolean", "description": "Verification status", "default": true}
                },
                "required": []
            })
        );
        assert_eq!(
            elicitation_schema::<Choices>().unwrap(),
            json!({
                "type": "object",
                "properties": {
                    "untitledSingle": {"type": "string", "enum": ["option1", "option2", "option3"]},
                    "titledSingle": {"type": "string", "oneOf": [
                        {"const": "value1", "title": "First Option"},
                        {"const": "value2", "title": "Second Option"},
                        {"const": "value3", "title": "Third Option"}]},
                    "legacyEnum": {"type": "string", "enum": ["opt1", "opt2", "opt3"],
                        "enumNames": ["Option One", "Option Two", "Option Three"]},
                    "untitledMulti": {"type": "array", "items": {"type": "string", "enum": ["option1", "option2", "option3"]}},
                    "titledMulti": {"type": "array", "items": {"anyOf": [
                        {"const": "value1", "title": "First Choice"},
                        {"const": "value2", "title": "Second Choice"},
                        {"const": "value3", "title": "Third Choice"}]}}
                },
                "required": []
            })
        );
    }
}
