//! Prompt wire types: listed prompts, `prompts/get` results, completion references.

use serde::{Deserialize, Serialize};

use super::mcp::Content;

/// A prompt argument as listed.
#[derive(Debug, Clone, Serialize)]
pub struct PromptArgument {
    /// Name.
    pub name: String,
    /// What it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Whether `prompts/get` needs it.
    pub required: bool,
}

/// A prompt as listed by `prompts/list`.
#[derive(Debug, Clone, Serialize)]
pub struct PromptDef {
    /// Name.
    pub name: String,
    /// Display name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// What it is.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Arguments.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub arguments: Vec<PromptArgument>,
}

/// Who speaks a prompt message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// The user.
    User,
    /// The assistant.
    Assistant,
}

/// One message of a prompt.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PromptMessage {
    /// Speaker.
    pub role: Role,
    /// Content block.
    pub content: Content,
}

/// `prompts/get` result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GetPromptResult {
    /// Description.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Messages.
    pub messages: Vec<PromptMessage>,
}

/// What a completion refers to.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(tag = "type")]
pub enum CompletionRef {
    /// A prompt's argument.
    #[serde(rename = "ref/prompt")]
    Prompt {
        /// Prompt name.
        name: String,
    },
    /// A resource template's variable.
    #[serde(rename = "ref/resource")]
    Resource {
        /// The template (or URI).
        uri: String,
    },
}

/// `completion/complete` params.
#[derive(Debug, Clone, Deserialize)]
pub struct CompleteParams {
    /// What is being completed.
    #[serde(rename = "ref")]
    pub reference: CompletionRef,
    /// The argument and its partial value.
    pub argument: CompleteArgument,
    /// Arguments already resolved.
    #[serde(default)]
    pub context: Option<CompleteContext>,
}

/// The argument being completed.
#[derive(Debug, Clone, Deserialize)]
pub struct CompleteArgument {
    /// Its name.
    pub name: String,
    /// What the user typed so far.
    pub value: String,
}

/// Completion context.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CompleteContext {
    /// Already-resolved arguments.
    #[serde(default, deserialize_with = "super::strict::string_map")]
    pub arguments: std::collections::HashMap<String, String>,
}
