//! Wire types of the questions a server asks its client: `elicitation/create`,
//! `sampling/createMessage` and `roots/list`, their params and their results.
//!
//! The same types serve both eras: in the session era they are a request on the
//! call's stream and its response; in 2026-07-28 the params ride in an
//! `input_required` result's `inputRequests` and the result comes back in the retry's
//! `inputResponses`.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};

use super::mcp::Content;
use super::prompt::Role;

/// `elicitation/create` params in form mode: a message and the flat object schema of
/// the form. `mode` is left out: a request without it is a form request in every
/// version that knows elicitation (2025-06-18 has no `mode`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ElicitRequest {
    /// Why the user is asked, shown to them.
    pub message: String,
    /// A flat object of primitive properties (strings, numbers, integers,
    /// booleans, enums).
    pub requested_schema: Value,
}

impl ElicitRequest {
    /// The method.
    pub const METHOD: &'static str = "elicitation/create";
    /// The client capability it needs.
    pub const CAPABILITY: &'static str = "elicitation";
}

/// What the user did with an elicitation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ElicitAction {
    /// Submitted the form (`content` holds the answers).
    Accept,
    /// Explicitly refused.
    Decline,
    /// Dismissed without choosing.
    Cancel,
}

/// `elicitation/create` result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ElicitResult {
    /// What the user did.
    pub action: ElicitAction,
    /// The submitted values, with `action: "accept"` in form mode.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<Map<String, Value>>,
}

/// Which MCP servers' context the client should add to a sampling prompt
/// (`includeContext`). The spec soft-deprecates all but [`IncludeContext::None`]:
/// use the others only with a client that declares `sampling.context`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum IncludeContext {
    /// No server's context (the default).
    None,
    /// This server's context.
    ThisServer,
    /// Every connected server's context.
    AllServers,
}

/// A hint at a model for sampling: a name (or part of one, such as `claude` or
/// `sonnet`) the client may match against its models.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ModelHint {
    /// The (partial) model name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl ModelHint {
    /// A hint naming `name`.
    pub fn named(name: impl Into<String>) -> ModelHint {
        ModelHint {
            name: Some(name.into()),
        }
    }
}

/// What the server would like of the model the client picks (the client may ignore
/// it). Priorities are between 0 and 1.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ModelPreferences {
    /// Model names, in order of preference.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hints: Vec<ModelHint>,
    /// How much a cheap model matters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_priority: Option<f64>,
    /// How much a fast model matters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed_priority: Option<f64>,
    /// How much a capable model matters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intelligence_priority: Option<f64>,
}

impl ModelPreferences {
    /// No preference yet.
    pub fn new() -> ModelPreferences {
        ModelPreferences::default()
    }

    /// Add a model name hint (after the ones already given).
    pub fn hint(mut self, name: impl Into<String>) -> ModelPreferences {
        self.hints.push(ModelHint::named(name));
        self
    }

    /// How much a cheap model matters (0 to 1).
    pub fn cost_priority(mut self, priority: f64) -> ModelPreferences {
        self.cost_priority = Some(priority);
        self
    }

    /// How much a fast model matters (0 to 1).
    pub fn speed_priority(mut self, priority: f64) -> ModelPreferences {
        self.speed_priority = Some(priority);
        self
    }

    /// How much a capable model matters (0 to 1).
    pub fn intelligence_priority(mut self, priority: f64) -> ModelPreferences {
        self.intelligence_priority = Some(priority);
        self
    }
}

/// One message of a sampling conversation: who says it and what. Sampling carries
/// text, image and audio blocks ([`Content::Text`], [`Content::Image`],
/// [`Content::Audio`]).
///
/// One block is sent as an object, several as an array (which clients of
/// 2025-11-25 and later accept); a block or an array is read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplingMessage {
    /// Who speaks.
    pub role: Role,
    /// What is said.
    #[serde(
        serialize_with = "one_or_many_out",
        deserialize_with = "one_or_many_in"
    )]
    pub content: Vec<Content>,
}

impl SamplingMessage {
    /// A user message of one text block.
    pub fn user(text: impl Into<String>) -> SamplingMessage {
        SamplingMessage {
            role: Role::User,
            content: vec![Content::text(text)],
        }
    }

    /// An assistant message of one text block (an earlier turn of the conversation).
    pub fn assistant(text: impl Into<String>) -> SamplingMessage {
        SamplingMessage {
            role: Role::Assistant,
            content: vec![Content::text(text)],
        }
    }
}

/// `sampling/createMessage` params: the conversation so far and how to continue it.
/// Build it with [`SamplingRequest::text`] or [`SamplingRequest::new`], then the
/// builder methods.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct SamplingRequest {
    /// The conversation.
    pub messages: Vec<SamplingMessage>,
    /// The model the server would like (the client decides).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_preferences: Option<ModelPreferences>,
    /// A system prompt (the client may change or drop it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
    /// Which servers' context to add to the prompt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include_context: Option<IncludeContext>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f64>,
    /// The most tokens to sample (the client may sample fewer).
    pub max_tokens: u32,
    /// Sequences that end the sampling.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stop_sequences: Vec<String>,
    /// Provider-specific metadata passed through to the model's provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Map<String, Value>>,
}

impl SamplingRequest {
    /// The method.
    pub const METHOD: &'static str = "sampling/createMessage";
    /// The client capability it needs.
    pub const CAPABILITY: &'static str = "sampling";

    /// A request continuing `messages`, sampling at most `max_tokens` tokens.
    pub fn new(messages: Vec<SamplingMessage>, max_tokens: u32) -> SamplingRequest {
        SamplingRequest {
            messages,
            model_preferences: None,
            system_prompt: None,
            include_context: None,
            temperature: None,
            max_tokens,
            stop_sequences: Vec::new(),
            metadata: None,
        }
    }

    /// The common case: one user message `prompt`, at most `max_tokens` tokens.
    pub fn text(prompt: impl Into<String>, max_tokens: u32) -> SamplingRequest {
        SamplingRequest::new(vec![SamplingMessage::user(prompt)], max_tokens)
    }

    /// Set the system prompt.
    pub fn system_prompt(mut self, prompt: impl Into<String>) -> SamplingRequest {
        self.system_prompt = Some(prompt.into());
        self
    }

    /// Set the temperature.
    pub fn temperature(mut self, temperature: f64) -> SamplingRequest {
        self.temperature = Some(temperature);
        self
    }

    /// Add a stop sequence.
    pub fn stop_sequence(mut self, stop: impl Into<String>) -> SamplingRequest {
        self.stop_sequences.push(stop.into());
        self
    }

    /// Set the model preferences.
    pub fn model_preferences(mut self, preferences: ModelPreferences) -> SamplingRequest {
        self.model_preferences = Some(preferences);
        self
    }

    /// Set which servers' context the client should include.
    pub fn include_context(mut self, include: IncludeContext) -> SamplingRequest {
        self.include_context = Some(include);
        self
    }

    /// Set provider-specific metadata.
    pub fn metadata(mut self, metadata: Map<String, Value>) -> SamplingRequest {
        self.metadata = Some(metadata);
        self
    }
}

/// `sampling/createMessage` result: the model's message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct SamplingResult {
    /// Who speaks (the assistant).
    pub role: Role,
    /// What the model said: one block or several, read into a list.
    #[serde(
        serialize_with = "one_or_many_out",
        deserialize_with = "one_or_many_in"
    )]
    pub content: Vec<Content>,
    /// The model that answered.
    pub model: String,
    /// Why sampling stopped: `endTurn`, `stopSequence`, `maxTokens`, `toolUse`, or
    /// another reason the client names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_reason: Option<String>,
}

impl SamplingResult {
    /// The text of the answer: its text blocks, joined (empty if it has none).
    pub fn text(&self) -> String {
        self.content
            .iter()
            .filter_map(|c| match c {
                Content::Text { text } => Some(text.as_str()),
                _ => None,
            })
            .collect()
    }
}

/// A root the client offers: a directory or file the server may work in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Root {
    /// Its URI (`file://` in the current spec).
    pub uri: String,
    /// A name to show.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl Root {
    /// A root at `uri`, with an optional display name.
    pub fn new(uri: impl Into<String>, name: Option<String>) -> Root {
        Root {
            uri: uri.into(),
            name,
        }
    }
}

/// `roots/list`: its method and capability (its params are empty).
#[derive(Debug, Clone, Copy)]
pub struct ListRoots;

impl ListRoots {
    /// The method.
    pub const METHOD: &'static str = "roots/list";
    /// The client capability it needs.
    pub const CAPABILITY: &'static str = "roots";
}

/// `roots/list` result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListRootsResult {
    /// The client's roots.
    pub roots: Vec<Root>,
}

fn one_or_many_out<S: Serializer>(blocks: &[Content], s: S) -> Result<S::Ok, S::Error> {
    match blocks {
        [one] => one.serialize(s),
        many => many.serialize(s),
    }
}

fn one_or_many_in<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Content>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        Many(Vec<Content>),
        One(Content),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::Many(many) => many,
        OneOrMany::One(one) => vec![one],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_text_request_is_what_the_spec_shows() {
        let r = SamplingRequest::text("What is the capital of France?", 100);
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            json!({"messages": [{"role": "user", "content": {"type": "text",
                "text": "What is the capital of France?"}}], "maxTokens": 100})
        );
        let full = SamplingRequest::text("hi", 10)
            .system_prompt("be brief")
            .temperature(0.5)
            .stop_sequence("\n")
            .include_context(IncludeContext::ThisServer)
            .model_preferences(ModelPreferences::new().hint("claude").speed_priority(0.8));
        let v = serde_json::to_value(&full).unwrap();
        assert_eq!(v["systemPrompt"], "be brief");
        assert_eq!(v["temperature"], 0.5);
        assert_eq!(v["stopSequences"], json!(["\n"]));
        assert_eq!(v["includeContext"], "thisServer");
        assert_eq!(
            v["modelPreferences"],
            json!({"hints": [{"name": "claude"}], "speedPriority": 0.8})
        );
    }

    #[test]
    fn sampling_results_read_one_block_or_many() {
        let one: SamplingResult = serde_json::from_value(json!({"role": "assistant",
            "content": {"type": "text", "text": "Paris"}, "model": "m", "stopReason": "endTurn"}))
        .unwrap();
        assert_eq!(
            (one.text(), one.role),
            ("Paris".to_owned(), Role::Assistant)
        );
        assert_eq!(one.stop_reason.as_deref(), Some("endTurn"));
        let many: SamplingResult = serde_json::from_value(json!({"role": "assistant",
            "content": [{"type": "text", "text": "Pa"}, {"type": "text", "text": "ris"}],
            "model": "m"}))
        .unwrap();
        assert_eq!(many.text(), "Paris");
        assert_eq!(many.stop_reason, None);
    }

    #[test]
    fn roots_and_elicit_results_decode() {
        let roots: ListRootsResult = serde_json::from_value(json!({"roots": [
            {"uri": "file:///a", "name": "A"}, {"uri": "file:///b"}]}))
        .unwrap();
        assert_eq!(
            roots.roots,
            vec![
                Root::new("file:///a", Some("A".into())),
                Root::new("file:///b", None)
            ]
        );
        let declined: ElicitResult = serde_json::from_value(json!({"action": "decline"})).unwrap();
        assert_eq!(
            (declined.action, declined.content),
            (ElicitAction::Decline, None)
        );
    }
}
