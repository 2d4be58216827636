//! Resources: static resources, URI templates, and the registry `resources/*` serve.
//!
//! A resource is a URI plus an async reader. A template (`test://item/{id}`, RFC 6570
//! level 1: `{name}` matches one or more characters other than `/`) matches URIs
//! and passes the variables to its reader. Reading an unknown URI is JSON-RPC -32002.
//!
//! Readers fail with the tools' [`ToolError`] (`?` on any `Display` error); the
//! failure becomes the JSON-RPC error of `resources/read` ([`ToolError::into_rpc_error`]:
//! -32603 for a failure, the error itself for [`ToolError::Protocol`], e.g.
//! [`not_found`]'s -32002). A second resource with the same URI, or a second template
//! with the same URI template, is refused with [`DuplicateName`]. A template's
//! variables can be completed ([`Template::complete_variable`]).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use crate::handler::CallContext;
use crate::handler::{DuplicateName, NameKind, ToolError};
use crate::prompts::{check_completers, Completers};
pub use crate::protocol::prompt::CompletionRef;
pub use crate::protocol::resource::{
    ResourceContents, ResourceDef, TemplateDef, RESOURCE_NOT_FOUND,
};
use crate::protocol::RpcError;
use futures::future::LocalBoxFuture;

/// What a reader returns.
pub type ReadOutcome = Result<Vec<ResourceContents>, ToolError>;

/// What a bound read answers: the contents, or the JSON-RPC error of `resources/read`.
pub type ReadReply = Result<Vec<ResourceContents>, RpcError>;

type Reader = dyn Fn(CallContext, String, HashMap<String, String>) -> LocalBoxFuture<'static, ReadReply>
    + Send
    + Sync;

fn boxed_reader<F, Fut>(read: F) -> Box<Reader>
where
    F: Fn(CallContext, String, HashMap<String, String>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ReadOutcome> + 'static,
{
    Box::new(move |ctx, uri, vars| {
        let read = read(ctx, uri, vars);
        Box::pin(async move { read.await.map_err(ToolError::into_rpc_error) })
    })
}

/// A readable resource.
pub struct Resource {
    def: ResourceDef,
    read: Box<Reader>,
}

impl Resource {
    /// A resource at `uri` read by `read(ctx, uri)`.
    pub fn new<F, Fut>(uri: impl Into<String>, name: impl Into<String>, read: F) -> Resource
    where
        F: Fn(CallContext, String) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ReadOutcome> + 'static,
    {
        Resource {
            def: ResourceDef {
                uri: uri.into(),
                name: name.into(),
                title: None,
                description: None,
                mime_type: None,
            },
            read: boxed_reader(move |ctx, uri, _vars| read(ctx, uri)),
        }
    }

    /// Set the description.
    pub fn description(mut self, d: impl Into<String>) -> Resource {
        self.def.description = Some(d.into());
        self
    }

    /// Set the MIME type.
    pub fn mime_type(mut self, m: impl Into<String>) -> Resource {
        self.def.mime_type = Some(m.into());
        self
    }

    /// The listed definition.
    pub fn def(&self) -> &ResourceDef {
        &self.def
    }
}

/// A URI template with a reader.
pub struct Template {
    def: TemplateDef,
    parts: Vec<TemplatePart>,
    read: Box<Reader>,
    completers: Completers,
}

#[derive(Debug, Clone, PartialEq)]
enum TemplatePart {
    Literal(String),
    Var(String),
}

fn parse_template(t: &str) -> Vec<TemplatePart> {
    let mut parts = Vec::new();
    let mut rest = t;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            parts.push(TemplatePart::Literal(rest[..open].to_owned()));
        }
        match rest[open..].find('}') {
            Some(close) => {
                parts.push(TemplatePart::Var(rest[open + 1..open + close].to_owned()));
                rest = &rest[open + close + 1..];
            }
            None => {
                parts.push(TemplatePart::Literal(rest[open..].to_owned()));
                rest = "";
            }
        }
    }
    if !rest.is_empty() {
        parts.push(TemplatePart::Literal(rest.to_owned()));
    }
    parts
}

/// Match `uri` against template parts; `{var}` takes one or more non-`/` characters.
fn match_template(parts: &[TemplatePart], uri: &str) -> Option<HashMap<String, String>> {
    let mut vars = HashMap::new();
    let mut rest = uri;
    for (i, part) in parts.iter().enumerate() {
        match part {
            TemplatePart::Literal(lit) => rest = rest.strip_prefix(lit.as_str())?,
            TemplatePart::Var(name) => {
                let end = match parts.get(i + 1) {
                    Some(TemplatePart::Literal(next)) => rest.find(next.as_str())?,
                    _ => rest.find('/').unwrap_or(rest.len()),
                };
                let value = &rest[..end];
                if value.is_empty() || value.contains('/') {
                    return None;
                }
                vars.insert(name.clone(), value.to_owned());
                rest = &rest[end..];
            }
        }
    }
    rest.is_empty().then_some(vars)
}

impl Template {
    /// A template read by `read(ctx, uri, variables)`.
    pub fn new<F, Fut>(
        uri_template: impl Into<String>,
        name: impl Into<String>,
        read: F,
    ) -> Template
    where
        F: Fn(CallContext, String, HashMap<String, String>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ReadOutcome> + 'static,
    {
        let uri_template = uri_template.into();
        Template {
            parts: parse_template(&uri_template),
            def: TemplateDef {
                uri_template,
                name: name.into(),
                title: None,
                description: None,
                mime_type: None,
            },
            read: boxed_reader(read),
            completers: Vec::new(),
        }
    }

    /// Complete `variable` (`completion/complete` with `ref/resource` naming this
    /// URI template): `complete(prefix, context)` returns the candidates for what the
    /// user typed so far, `context` holding the variables already chosen. A second
    /// completer for the same variable is refused with [`DuplicateName`] when the
    /// server is built.
    ///
    /// ```
    /// use emcee::prelude::*;
    ///
    /// let cities = Template::new("weather://{city}", "weather", |_ctx, _uri, _vars| async {
    ///     Ok(Vec::new())
    /// })
    /// .complete_variable("city", |prefix, _context| {
    ///     ["Oslo", "Osaka", "Ottawa"]
    ///         .into_iter()
    ///         .filter(|c| c.starts_with(prefix))
    ///         .map(String::from)
    ///         .collect()
    /// });
    /// assert!(Server::builder().template(cities).build().is_ok());
    /// ```
    pub fn complete_variable<F>(mut self, variable: impl Into<String>, complete: F) -> Template
    where
        F: Fn(&str, &HashMap<String, String>) -> Vec<String> + Send + Sync + 'static,
    {
        self.completers.push((variable.into(), Arc::new(complete)));
        self
    }

    /// The completers attached with [`Template::complete_variable`].
    pub(crate) fn completers(&self) -> &Completers {
        &self.completers
    }

    /// The reference `completion/complete` names this template by.
    pub(crate) fn reference(&self) -> CompletionRef {
        CompletionRef::Resource {
            uri: self.def.uri_template.clone(),
        }
    }

    /// Set the description.
    pub fn description(mut self, d: impl Into<String>) -> Template {
        self.def.description = Some(d.into());
        self
    }

    /// Set the MIME type.
    pub fn mime_type(mut self, m: impl Into<String>) -> Template {
        self.def.mime_type = Some(m.into());
        self
    }

    /// The listed definition.
    pub fn def(&self) -> &TemplateDef {
        &self.def
    }

    /// The variables if `uri` matches.
    pub fn matches(&self, uri: &str) -> Option<HashMap<String, String>> {
        match_template(&self.parts, uri)
    }
}

/// All resources and templates of a server.
#[derive(Default)]
pub struct ResourceRegistry {
    resources: Vec<Arc<Resource>>,
    by_uri: HashMap<String, usize>,
    templates: Vec<Arc<Template>>,
}

impl std::fmt::Debug for ResourceRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceRegistry")
            .field("resources", &self.resources.len())
            .field("templates", &self.templates.len())
            .finish()
    }
}

/// A read ready to run: the reader bound to its URI and variables.
pub type BoundRead = Box<dyn FnOnce(CallContext) -> LocalBoxFuture<'static, ReadReply>>;

impl ResourceRegistry {
    /// Register a resource; URIs are unique (a second one is refused, the first kept).
    pub fn add(&mut self, resource: Resource) -> Result<&mut Self, DuplicateName> {
        let uri = resource.def.uri.clone();
        if self.by_uri.contains_key(&uri) {
            return Err(DuplicateName {
                kind: NameKind::Resource,
                name: uri,
            });
        }
        self.by_uri.insert(uri, self.resources.len());
        self.resources.push(Arc::new(resource));
        Ok(self)
    }

    /// Register a template; URI templates are unique (a second one is refused), and
    /// so is a completer per variable.
    pub fn add_template(&mut self, template: Template) -> Result<&mut Self, DuplicateName> {
        let uri_template = &template.def.uri_template;
        if self
            .templates
            .iter()
            .any(|t| &t.def.uri_template == uri_template)
        {
            return Err(DuplicateName {
                kind: NameKind::Template,
                name: uri_template.clone(),
            });
        }
        check_completers(&template.reference(), &template.completers)?;
        self.templates.push(Arc::new(template));
        Ok(self)
    }

    /// True when there is nothing to list or read.
    pub fn is_empty(&self) -> bool {
        self.resources.is_empty() && self.templates.is_empty()
    }

    /// Listed resources.
    pub fn resources(&self) -> &[Arc<Resource>] {
        &self.resources
    }

    /// Listed templates.
    pub fn templates(&self) -> &[Arc<Template>] {
        &self.templates
    }

    /// Whether `uri` names a resource or matches a template.
    pub fn exists(&self, uri: &str) -> bool {
        self.by_uri.contains_key(uri) || self.templates.iter().any(|t| t.matches(uri).is_some())
    }

    /// Bind a read of `uri`; `None` when nothing serves it.
    pub fn bind(&self, uri: &str) -> Option<BoundRead> {
        if let Some(&i) = self.by_uri.get(uri) {
            let r = self.resources[i].clone();
            let uri = uri.to_owned();
            return Some(Box::new(move |ctx| (r.read)(ctx, uri, HashMap::new())));
        }
        self.templates.iter().find_map(|t| {
            let vars = t.matches(uri)?;
            let t = t.clone();
            let uri = uri.to_owned();
            Some(Box::new(move |ctx| (t.read)(ctx, uri, vars)) as BoundRead)
        })
    }
}

/// `resources/read` not-found error.
pub fn not_found(uri: &str) -> RpcError {
    RpcError::new(RESOURCE_NOT_FOUND, format!("resource not found: {uri}"))
        .with_data(serde_json::json!({ "uri": uri }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(uri: &str) -> Resource {
        Resource::new(uri, "r", |_ctx, uri| async move {
            Ok(vec![ResourceContents::text(uri, None, "x")])
        })
    }

    #[test]
    fn duplicate_uris_and_templates_are_refused() {
        let mut r = ResourceRegistry::default();
        r.add(text("test://a")).expect("first");
        let e = r.add(text("test://a")).expect_err("refused");
        assert_eq!((e.kind, e.name.as_str()), (NameKind::Resource, "test://a"));
        assert_eq!(r.resources().len(), 1);
        let template = || {
            Template::new("test://t/{id}", "t", |_ctx, _uri, _vars| async {
                Ok(vec![])
            })
        };
        r.add_template(template()).expect("first");
        let e = r.add_template(template()).expect_err("refused");
        assert_eq!(e.kind, NameKind::Template);
        assert_eq!(r.templates().len(), 1);
    }

    #[test]
    fn templates_match_level_one_variables() {
        let p = parse_template("test://template/{id}/data");
        let m = |uri| match_template(&p, uri);
        assert_eq!(m("test://template/42/data").unwrap()["id"], "42");
        assert!(m("test://template//data").is_none());
        assert!(m("test://template/4/2/data").is_none());
        assert!(m("test://template/42/data/x").is_none());
        let p = parse_template("file:///{path}");
        assert_eq!(
            match_template(&p, "file:///a.txt").unwrap()["path"],
            "a.txt"
        );
        let p = parse_template("x://{a}-{b}");
        let v = match_template(&p, "x://1-2").unwrap();
        assert_eq!((v["a"].as_str(), v["b"].as_str()), ("1", "2"));
    }
}
