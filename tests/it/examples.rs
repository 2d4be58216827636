//! The examples, built by `cargo test`, run as a user would run them.

use serde_json::json;

use crate::util::text;

/// Path of a built example (`target/<profile>/examples/NAME`, beside this test's
/// `deps/` directory).
fn example(name: &str) -> std::path::PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(std::path::Path::parent)
        .expect("target/<profile>");
    profile_dir.join("examples").join(name)
}

#[test]
fn custom_tool_serves_its_typed_tool_over_stdio() {
    use std::io::{BufRead, BufReader, Write};
    let mut child = std::process::Command::new(example("custom_tool"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run examples/custom_tool (built by cargo test)");
    let mut stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut ask = |line: serde_json::Value| {
        writeln!(stdin, "{line}").unwrap();
        let mut answer = String::new();
        out.read_line(&mut answer).unwrap();
        serde_json::from_str::<serde_json::Value>(&answer).unwrap()
    };
    let init = ask(
        json!({"jsonrpc":"2.0","id":1,"method":"initialize","params":{
        "protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}),
    );
    assert_eq!(init["result"]["serverInfo"]["name"], "adder", "{init}");
    assert_eq!(
        init["result"]["instructions"],
        "Call `add` to add two integers."
    );
    let sum = ask(json!({"jsonrpc":"2.0","id":2,"method":"tools/call",
        "params":{"name":"add","arguments":{"a":2,"b":3}}}));
    assert_eq!(text(&sum["result"]), "5", "{sum}");
    let overflow = ask(json!({"jsonrpc":"2.0","id":3,"method":"tools/call",
        "params":{"name":"add","arguments":{"a":i64::MAX,"b":1}}}));
    assert_eq!(overflow["result"]["isError"], true, "{overflow}");
    drop(stdin);
    let status = child.wait().unwrap();
    assert!(status.success(), "{status}");
}
