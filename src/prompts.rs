//! Prompts (`prompts/list`, `prompts/get`) and argument completion (`completion/complete`).
//!
//! A prompt declares its arguments; `prompts/get` refuses a missing required argument
//! with -32602 before the handler runs. Completers are registered per prompt argument
//! or per resource-template variable and return candidate values for a prefix.
//!
//! Prompt handlers fail with the tools' [`ToolError`] (`?` on any `Display` error);
//! the failure becomes the JSON-RPC error of `prompts/get`
//! ([`ToolError::into_rpc_error`]). A second prompt with the same name is refused
//! with [`DuplicateName`].

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use crate::handler::CallContext;
use crate::handler::{DuplicateName, NameKind, ToolError};
pub use crate::protocol::prompt::{
    CompletionRef, GetPromptResult, PromptArgument, PromptDef, PromptMessage, Role,
};
use crate::protocol::RpcError;
use futures::future::LocalBoxFuture;

/// Most completion values returned at once (the MCP limit).
pub const MAX_COMPLETION_VALUES: usize = 100;

/// What a prompt handler returns.
pub type PromptOutcome = Result<GetPromptResult, ToolError>;

/// What a bound `prompts/get` answers: the prompt, or the method's JSON-RPC error.
pub type PromptReply = Result<GetPromptResult, RpcError>;

type Getter = dyn Fn(CallContext, HashMap<String, String>) -> LocalBoxFuture<'static, PromptReply>
    + Send
    + Sync;

/// A prompt.
pub struct Prompt {
    def: PromptDef,
    get: Box<Getter>,
}

impl Prompt {
    /// A prompt answered by `get(ctx, arguments)`.
    pub fn new<F, Fut>(name: impl Into<String>, description: impl Into<String>, get: F) -> Prompt
    where
        F: Fn(CallContext, HashMap<String, String>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = PromptOutcome> + 'static,
    {
        Prompt {
            def: PromptDef {
                name: name.into(),
                title: None,
                description: Some(description.into()),
                arguments: Vec::new(),
            },
            get: Box::new(move |ctx, args| {
                let get = get(ctx, args);
                Box::pin(async move { get.await.map_err(ToolError::into_rpc_error) })
            }),
        }
    }

    /// Declare an argument.
    pub fn argument(
        mut self,
        name: impl Into<String>,
        description: impl Into<String>,
        required: bool,
    ) -> Prompt {
        self.def.arguments.push(PromptArgument {
            name: name.into(),
            description: Some(description.into()),
            required,
        });
        self
    }

    /// The listed definition.
    pub fn def(&self) -> &PromptDef {
        &self.def
    }
}

/// A bound `prompts/get`.
pub type BoundGet = Box<dyn FnOnce(CallContext) -> LocalBoxFuture<'static, PromptReply>>;

type Completer = dyn Fn(&str, &HashMap<String, String>) -> Vec<String> + Send + Sync;

/// All prompts and completers of a server.
#[derive(Default)]
pub struct PromptRegistry {
    prompts: Vec<Arc<Prompt>>,
    by_name: HashMap<String, usize>,
    completers: HashMap<(CompletionRef, String), Box<Completer>>,
}

impl std::fmt::Debug for PromptRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PromptRegistry")
            .field("prompts", &self.prompts.len())
            .field("completers", &self.completers.len())
            .finish()
    }
}

impl PromptRegistry {
    /// Register a prompt; names are unique (a second one is refused, the first kept).
    pub fn add(&mut self, prompt: Prompt) -> Result<&mut Self, DuplicateName> {
        let name = prompt.def.name.clone();
        if self.by_name.contains_key(&name) {
            return Err(DuplicateName {
                kind: NameKind::Prompt,
                name,
            });
        }
        self.by_name.insert(name, self.prompts.len());
        self.prompts.push(Arc::new(prompt));
        Ok(self)
    }

    /// Register a completer for `argument` of `reference`: `complete(prefix, context)`
    /// where context holds arguments already chosen.
    pub fn completer<F>(
        &mut self,
        reference: CompletionRef,
        argument: impl Into<String>,
        complete: F,
    ) -> &mut Self
    where
        F: Fn(&str, &HashMap<String, String>) -> Vec<String> + Send + Sync + 'static,
    {
        self.completers
            .insert((reference, argument.into()), Box::new(complete));
        self
    }

    /// True when there are no prompts.
    pub fn is_empty(&self) -> bool {
        self.prompts.is_empty()
    }

    /// True when completion is offered.
    pub fn has_completions(&self) -> bool {
        !self.completers.is_empty()
    }

    /// Listed prompts.
    pub fn prompts(&self) -> &[Arc<Prompt>] {
        &self.prompts
    }

    /// Bind `prompts/get`, checking required arguments.
    pub fn bind(&self, name: &str, args: HashMap<String, String>) -> Result<BoundGet, RpcError> {
        let prompt = self
            .by_name
            .get(name)
            .map(|&i| self.prompts[i].clone())
            .ok_or_else(|| RpcError::invalid_params(format!("unknown prompt: {name}")))?;
        if let Some(missing) = prompt
            .def
            .arguments
            .iter()
            .find(|a| a.required && !args.contains_key(&a.name))
        {
            return Err(RpcError::invalid_params(format!(
                "prompt `{name}` needs argument `{}`",
                missing.name
            )));
        }
        Ok(Box::new(move |ctx| (prompt.get)(ctx, args)))
    }

    /// Complete `argument` = `value` of `reference`: `(values, total, has_more)`.
    /// An unknown reference or argument completes to nothing.
    pub fn complete(
        &self,
        reference: &CompletionRef,
        argument: &str,
        value: &str,
        context: &HashMap<String, String>,
    ) -> (Vec<String>, usize, bool) {
        let Some(complete) = self
            .completers
            .get(&(reference.clone(), argument.to_owned()))
        else {
            return (Vec::new(), 0, false);
        };
        let mut values = complete(value, context);
        let total = values.len();
        values.truncate(MAX_COMPLETION_VALUES);
        (values, total, total > MAX_COMPLETION_VALUES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_arguments_are_checked_before_the_handler() {
        let mut r = PromptRegistry::default();
        r.add(
            Prompt::new("p", "d", |_ctx, _args| async {
                Ok(GetPromptResult {
                    description: None,
                    messages: vec![],
                })
            })
            .argument("a", "A", true)
            .argument("b", "B", false),
        )
        .expect("registered");
        assert!(r.bind("p", HashMap::new()).is_err());
        assert!(r
            .bind("p", HashMap::from([("a".to_owned(), "1".to_owned())]))
            .is_ok());
        assert_eq!(r.bind("nope", HashMap::new()).err().unwrap().code, -32602);
    }

    #[test]
    fn duplicate_names_are_refused_and_the_first_kept() {
        let mut r = PromptRegistry::default();
        let prompt = |description: &str| {
            Prompt::new("p", description, |_ctx, _args| async {
                Err(ToolError::Failed("unused".into()))
            })
        };
        r.add(prompt("first")).expect("first");
        let e = r.add(prompt("second")).expect_err("refused");
        assert_eq!((e.kind, e.name.as_str()), (NameKind::Prompt, "p"));
        assert_eq!(r.prompts().len(), 1);
        assert_eq!(r.prompts()[0].def().description.as_deref(), Some("first"));
    }

    #[test]
    fn completion_caps_at_the_mcp_limit() {
        let mut r = PromptRegistry::default();
        let reference = CompletionRef::Prompt { name: "p".into() };
        r.completer(reference.clone(), "a", |prefix, _| {
            (0..150).map(|i| format!("{prefix}{i}")).collect()
        });
        let (values, total, more) = r.complete(&reference, "a", "x", &HashMap::new());
        assert_eq!((values.len(), total, more), (100, 150, true));
        assert_eq!(r.complete(&reference, "b", "x", &HashMap::new()).0.len(), 0);
    }
}
