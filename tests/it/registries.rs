//! One duplicate-name rule for tools, resources, templates and prompts, seen from the
//! library's public API as an embedder uses it (the binary's registrations cannot
//! collide, so this is not a wire test).

use emcee::config::{Limits, LogLevel};
use emcee::prompts::{GetPromptResult, Prompt};
use emcee::resources::{Resource, ResourceContents, Template};
use emcee::storage::Storage;
use emcee::tools::{NameKind, Tool, ToolError};

fn service() -> emcee::internals::Service {
    let log = emcee::telemetry::logging::logger_to(std::io::sink(), LogLevel::Info);
    emcee::builtin_service(Storage::temporary().unwrap(), Limits::default(), log).unwrap()
}

#[test]
fn a_second_tool_resource_template_or_prompt_of_the_same_name_is_refused() {
    let mut service = service();

    let tool = Tool::new("echo", "again", |_ctx, _a: serde_json::Value| async {
        Err::<emcee::protocol::CallToolResult, _>(ToolError::Failed("unused".into()))
    });
    let e = service.tools.add(tool).unwrap_err();
    assert_eq!((e.kind, e.name.as_str()), (NameKind::Tool, "echo"));

    // The built-in `kv://{key}` template is kept, not replaced.
    let template = Template::new("kv://{key}", "again", |_ctx, _uri, _vars| async {
        Err(ToolError::Failed("unused".into()))
    });
    let e = service.resources.add_template(template).unwrap_err();
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
