//! One duplicate-name rule for tools, resources, templates and prompts, seen from the
//! library's public API as an embedder uses it (the binary's registrations cannot
//! collide, so this is not a wire test).

use emcee::prompts::{GetPromptResult, Prompt};
use emcee::resources::{Resource, ResourceContents, Template};
use emcee::tools::{NameKind, Tool, ToolError};

fn unused_tool(name: &str) -> Tool {
    Tool::new(name, "unused", |_ctx, _a: serde_json::Value| async {
        Err::<emcee::protocol::CallToolResult, _>(ToolError::Failed("unused".into()))
    })
}

fn unused_template(name: &str) -> Template {
    Template::new("kv://{key}", name, |_ctx, _uri, _vars| async {
        Err(ToolError::Failed("unused".into()))
    })
}

#[test]
fn a_second_tool_resource_template_or_prompt_of_the_same_name_is_refused() {
    let mut builder = emcee::Server::builder()
        .tool(unused_tool("echo"))
        .template(unused_template("kv"));
    let service = builder.registries();

    let e = service.tools.add(unused_tool("echo")).unwrap_err();
    assert_eq!((e.kind, e.name.as_str()), (NameKind::Tool, "echo"));

    // The first `kv://{key}` template is kept, not replaced.
    let e = service
        .resources
        .add_template(unused_template("again"))
        .unwrap_err();
    assert_eq!(
        (e.kind, e.name.as_str()),
        (NameKind::Template, "kv://{key}")
    );
    assert_eq!(service.resources.templates().len(), 1);
    assert_eq!(service.resources.templates()[0].def().name, "kv");

    let resource = || {
        Resource::new("note://a", "a", |_ctx, uri| async move {
            Ok(vec![ResourceContents::text(uri, None, "a")])
        })
    };
    service.resources.add(resource()).unwrap();
    let e = service.resources.add(resource()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "a resource with URI `note://a` is already registered"
    );

    let prompt = || {
        Prompt::new("p", "d", |_ctx, _args| async {
            Ok(GetPromptResult {
                description: None,
                messages: vec![],
            })
        })
    };
    service.prompts.add(prompt()).unwrap();
    let e = service.prompts.add(prompt()).unwrap_err();
    assert_eq!(e.kind, NameKind::Prompt);
    assert_eq!(service.prompts.prompts().len(), 1);

    // The same error stops the process with the configuration exit code.
    assert_eq!(emcee::Error::from(e).exit_code(), 2);
}

#[test]
fn the_builder_refuses_duplicates_at_build() {
    let e = emcee::Server::builder()
        .tool(unused_tool("echo"))
        .tool(unused_tool("echo"))
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("echo"), "{e}");
}
