//! Prompts (`prompts/list`, `prompts/get`) and argument completion (`completion/complete`).
//!
//! A prompt declares its arguments; `prompts/get` refuses a missing required argument
//! with -32602 before the handler runs. Completers are attached to a prompt's argument
//! ([`Prompt::complete_argument`], a `ref/prompt` reference) or to a resource
//! template's variable (`Template::complete_variable`, a `ref/resource` reference)
//! and return candidate values for what the user typed so far. One completer per
//! reference and argument: a second is refused with [`DuplicateName`] when the server
//! is built. The `completions` capability is advertised when there is at least one.
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

/// A completer: the candidate values of an argument from what the user typed so far
/// (`prefix`) and the arguments already chosen (`context`). Called on the session's
/// thread for each `completion/complete`: keep it quick (no blocking IO). At most
/// [`MAX_COMPLETION_VALUES`] are sent; `total` says how many there were.
pub type Completer = dyn Fn(&str, &HashMap<String, String>) -> Vec<String> + Send + Sync;

/// Completers attached to one prompt or template, by argument (in the order given;
/// a duplicate is kept here and refused when registered).
pub(crate) type Completers = Vec<(String, Arc<Completer>)>;

/// A prompt.
pub struct Prompt {
    def: PromptDef,
    get: Box<Getter>,
    completers: Completers,
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
            completers: Vec::new(),
        }
    }

    /// Complete `argument` (`completion/complete` with `ref/prompt` naming this
    /// prompt): `complete(prefix, context)` returns the candidates for what the user
    /// typed so far, `context` holding the arguments already chosen. A second
    /// completer for the same argument is refused with [`DuplicateName`].
    ///
    /// ```
    /// use emcee::prelude::*;
    ///
    /// let prompt = Prompt::new("review", "Review a change.", |_ctx, _args| async {
    ///     Ok(GetPromptResult { description: None, messages: Vec::new() })
    /// })
    /// .argument("tone", "How to say it", false)
    /// .complete_argument("tone", |prefix, _context| {
    ///     ["brief", "detailed", "friendly"]
    ///         .into_iter()
    ///         .filter(|t| t.starts_with(prefix))
    ///         .map(String::from)
    ///         .collect()
    /// });
    /// let server = Server::builder().prompt(prompt).build();
    /// assert!(server.is_ok());
    /// ```
    pub fn complete_argument<F>(mut self, argument: impl Into<String>, complete: F) -> Prompt
    where
        F: Fn(&str, &HashMap<String, String>) -> Vec<String> + Send + Sync + 'static,
    {
        self.completers.push((argument.into(), Arc::new(complete)));
        self
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

/// The name a duplicate completer is refused under.
fn duplicate_completer(reference: &CompletionRef, argument: &str) -> DuplicateName {
    let name = match reference {
        CompletionRef::Prompt { name } => format!("ref/prompt {name}, argument {argument}"),
        CompletionRef::Resource { uri } => format!("ref/resource {uri}, variable {argument}"),
    };
    DuplicateName {
        kind: NameKind::Completion,
        name,
    }
}

/// The first duplicate among `completers` (attached to `reference`), if any.
pub(crate) fn check_completers(
    reference: &CompletionRef,
    completers: &Completers,
) -> Result<(), DuplicateName> {
    let mut seen = std::collections::HashSet::new();
    match completers.iter().find(|(a, _)| !seen.insert(a.as_str())) {
        Some((argument, _)) => Err(duplicate_completer(reference, argument)),
        None => Ok(()),
    }
}

/// All prompts and completers of a server.
#[derive(Default)]
pub struct PromptRegistry {
    prompts: Vec<Arc<Prompt>>,
    by_name: HashMap<String, usize>,
    completers: HashMap<(CompletionRef, String), Arc<Completer>>,
    /// Completers refused as duplicates by [`PromptRegistry::completer`], reported
    /// when the server is built.
    refused: Vec<DuplicateName>,
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
    /// Register a prompt and the completers attached to it; names are unique, and
    /// so is a completer per argument (a second prompt, or a prompt completing an
    /// argument twice or one already completed, is refused and the first kept).
    pub fn add(&mut self, prompt: Prompt) -> Result<&mut Self, DuplicateName> {
        let name = prompt.def.name.clone();
        if self.by_name.contains_key(&name) {
            return Err(DuplicateName {
                kind: NameKind::Prompt,
                name,
            });
        }
        let reference = CompletionRef::Prompt { name: name.clone() };
        check_completers(&reference, &prompt.completers)?;
        if let Some((argument, _)) = prompt.completers.iter().find(|(a, _)| {
            self.completers
                .contains_key(&(reference.clone(), a.clone()))
        }) {
            return Err(duplicate_completer(&reference, argument));
        }
        for (argument, complete) in &prompt.completers {
            self.completers
                .insert((reference.clone(), argument.clone()), complete.clone());
        }
        self.by_name.insert(name, self.prompts.len());
        self.prompts.push(Arc::new(prompt));
        Ok(self)
    }

    /// Register a completer for `argument` of `reference`: `complete(prefix, context)`
    /// where context holds arguments already chosen. One per reference and argument:
    /// a second is not registered, and the server it is for refuses to build
    /// ([`DuplicateName`]); see [`PromptRegistry::refused`].
    pub fn completer<F>(
        &mut self,
        reference: CompletionRef,
        argument: impl Into<String>,
        complete: F,
    ) -> &mut Self
    where
        F: Fn(&str, &HashMap<String, String>) -> Vec<String> + Send + Sync + 'static,
    {
        if let Err(e) = self.insert_completer(reference, argument.into(), Arc::new(complete)) {
            self.refused.push(e);
        }
        self
    }

    /// Register `complete` for `argument` of `reference` unless one is there.
    pub(crate) fn insert_completer(
        &mut self,
        reference: CompletionRef,
        argument: String,
        complete: Arc<Completer>,
    ) -> Result<(), DuplicateName> {
        match self.completers.entry((reference, argument)) {
            std::collections::hash_map::Entry::Occupied(e) => {
                let (reference, argument) = e.key();
                Err(duplicate_completer(reference, argument))
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(complete);
                Ok(())
            }
        }
    }

    /// The completers [`PromptRegistry::completer`] refused as duplicates.
    pub fn refused(&self) -> &[DuplicateName] {
        &self.refused
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

    fn prompt(name: &str) -> Prompt {
        Prompt::new(name, "d", |_ctx, _args| async {
            Err(ToolError::Failed("unused".into()))
        })
    }

    fn fixed(value: &'static str) -> impl Fn(&str, &HashMap<String, String>) -> Vec<String> {
        move |_, _| vec![value.to_owned()]
    }

    #[test]
    fn a_second_completer_for_one_argument_is_refused_and_the_first_kept() {
        let reference = CompletionRef::Prompt { name: "p".into() };
        let values = |r: &PromptRegistry| r.complete(&reference, "a", "", &HashMap::new()).0;
        // Attached to the prompt twice: the prompt is refused.
        let mut r = PromptRegistry::default();
        let e = r
            .add(
                prompt("p")
                    .complete_argument("a", fixed("first"))
                    .complete_argument("a", fixed("second")),
            )
            .expect_err("refused");
        assert_eq!(e.kind, NameKind::Completion);
        assert!(e.to_string().contains("ref/prompt p, argument a"), "{e}");
        assert!(r.is_empty() && !r.has_completions());
        // Attached, then registered by reference: the first is kept, the second
        // recorded for the build to refuse.
        r.add(prompt("p").complete_argument("a", fixed("first")))
            .expect("registered");
        r.completer(reference.clone(), "a", fixed("second"));
        assert_eq!(values(&r), ["first"]);
        assert_eq!(r.refused().len(), 1);
        // By reference, then attached: the prompt is refused.
        let mut r = PromptRegistry::default();
        r.completer(reference.clone(), "a", fixed("first"));
        assert!(r
            .add(prompt("p").complete_argument("a", fixed("second")))
            .is_err());
        assert_eq!(values(&r), ["first"]);
        // Other arguments and other prompts are not duplicates.
        r.add(prompt("q").complete_argument("a", fixed("q")))
            .expect("another prompt");
        r.completer(reference.clone(), "b", fixed("b"));
        assert!(r.refused().is_empty());
    }
}
