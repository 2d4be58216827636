//! Choosing the built-in tools (`[tools] builtin`, `EMCEE_BUILTIN_TOOLS`,
//! `--builtin-tools`), through the binary: `tools/list` shows exactly the chosen
//! set, the `kv://` resources come with a kept kv tool only, and `emcee config`
//! prints the choice.

use serde_json::{json, Value};

use crate::harness::{run, write_config, Stdio};

const ALL: [&str; 6] = ["echo", "sleep", "kv_set", "kv_get", "kv_delete", "kv_list"];

const SAY: &str = "[[tools.command]]\nname = \"say\"\nargv = [\"printf\", \"%s\", \"hi\"]\n";

/// (tool names, resource templates) served with `config`, `args` and `env`.
fn served(config: &str, args: &[&str], env: &[(&str, &str)]) -> (Vec<String>, Vec<String>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_config(dir.path(), config);
    let mut all = vec!["--config", path.to_str().expect("utf-8 path")];
    all.extend_from_slice(args);
    let mut s = Stdio::start_in(dir.path(), &all, env);
    s.initialize("2025-11-25");
    let names = |v: &Value, list: &str, key: &str| -> Vec<String> {
        v["result"][list]
            .as_array()
            .unwrap_or_else(|| panic!("{v}"))
            .iter()
            .map(|t| t[key].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    let tools = names(&s.request(1, "tools/list", json!({})), "tools", "name");
    let templates = names(
        &s.request(2, "resources/templates/list", json!({})),
        "resourceTemplates",
        "uriTemplate",
    );
    assert!(s.finish().0.success());
    (tools, templates)
}

#[test]
fn builtin_false_serves_the_command_tools_only() {
    let (tools, templates) = served(&format!("[tools]\nbuiltin = false\n{SAY}"), &[], &[]);
    assert_eq!(tools, ["say"]);
    assert!(
        templates.is_empty(),
        "no kv:// without kv tools: {templates:?}"
    );
    let (tools, templates) = served(&format!("[tools]\nbuiltin = true\n{SAY}"), &[], &[]);
    assert_eq!(tools[..6], ALL);
    assert_eq!(tools[6..], ["say"]);
    assert_eq!(templates, ["kv://{key}"]);
}

#[test]
fn a_list_keeps_the_chosen_builtins_and_kv_resources_follow_the_kv_tools() {
    let (tools, templates) = served("[tools]\nbuiltin = [\"kv_get\", \"echo\"]\n", &[], &[]);
    assert_eq!(tools, ["echo", "kv_get"]);
    assert_eq!(templates, ["kv://{key}"]);
    let (tools, templates) = served("[tools]\nbuiltin = [\"echo\", \"sleep\"]\n", &[], &[]);
    assert_eq!(tools, ["echo", "sleep"]);
    assert!(templates.is_empty(), "{templates:?}");
    // Without the built-in, its name is free for a command tool.
    let (tools, _) = served(
        "[tools]\nbuiltin = [\"sleep\"]\n[[tools.command]]\nname = \"echo\"\nargv = [\"echo\"]\n",
        &[],
        &[],
    );
    assert_eq!(tools, ["sleep", "echo"]);
}

#[test]
fn the_variable_overrides_the_file_and_the_flag_the_variable() {
    let file = "[tools]\nbuiltin = [\"echo\"]\n";
    let (tools, _) = served(file, &[], &[("EMCEE_BUILTIN_TOOLS", "kv_get,kv_set")]);
    assert_eq!(tools, ["kv_set", "kv_get"]);
    let (tools, _) = served(
        file,
        &["--builtin-tools", "false"],
        &[("EMCEE_BUILTIN_TOOLS", "kv_get")],
    );
    assert!(tools.is_empty(), "{tools:?}");
    let (tools, _) = served(file, &["--builtin-tools", "true"], &[]);
    assert_eq!(tools, ALL);
}

#[test]
fn unknown_builtin_names_are_refused_naming_the_known_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write_config(dir.path(), "[tools]\nbuiltin = [\"echo\", \"ekho\"]\n");
    let path = path.to_str().expect("utf-8 path");
    let (status, _, stderr) = run(&["config", "--config", path], &[]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    for needle in [path, "tools.builtin", "ekho", &ALL.join(", ")] {
        assert!(stderr.contains(needle), "{needle}: {stderr}");
    }
    let (status, _, stderr) = run(&["config", "--builtin-tools", "echo,nope"], &[]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--builtin-tools") && stderr.contains("nope"),
        "{stderr}"
    );
    let (status, _, stderr) = run(&["config"], &[("EMCEE_BUILTIN_TOOLS", "nope")]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("EMCEE_BUILTIN_TOOLS"), "{stderr}");
}

#[test]
fn emcee_config_prints_the_choice() {
    let show = |args: &[&str], env: &[(&str, &str)]| -> Value {
        let (status, stdout, stderr) = run(args, env);
        assert!(status.success(), "{stderr}");
        serde_json::from_str(&stdout).expect("config prints JSON")
    };
    assert_eq!(show(&["config"], &[])["builtin_tools"], json!(ALL));
    assert_eq!(
        show(&["config"], &[("EMCEE_BUILTIN_TOOLS", "none")])["builtin_tools"],
        json!([])
    );
    assert_eq!(
        show(&["config", "--builtin-tools", "kv_list, echo"], &[])["builtin_tools"],
        json!(["echo", "kv_list"])
    );
}
