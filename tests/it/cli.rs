//! The command line and configuration contract.

use serde_json::Value;

use crate::harness::{run, write_config, Stdio};

fn one_line_error(stderr: &str, needle: &str) {
    assert_eq!(
        stderr.trim_end().lines().count(),
        1,
        "one line expected: {stderr:?}"
    );
    assert!(
        stderr.contains(needle),
        "{needle:?} not named in {stderr:?}"
    );
}

#[test]
fn a_bad_flag_exits_2_with_one_line() {
    let (status, stdout, stderr) = run(&["stdio", "--no-such-flag"], &[]);
    assert_eq!(status.code(), Some(2));
    assert!(stdout.is_empty());
    one_line_error(&stderr, "--no-such-flag");
    let (status, _, stderr) = run(&["frobnicate"], &[]);
    assert_eq!(status.code(), Some(2));
    one_line_error(&stderr, "frobnicate");
}

#[test]
fn bad_values_exit_2_with_one_line_naming_them() {
    let dir = tempfile::tempdir().unwrap();
    type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec!["serve", "--bind", "not-an-address"],
            vec![],
            "not-an-address",
        ),
        (
            vec!["stdio", "--fixtures", "faults,nonsense"],
            vec![],
            "nonsense",
        ),
        (vec!["stdio"], vec![("EMCEE_LOG", "shouty")], "shouty"),
        (vec!["stdio"], vec![("EMCEE_FIXTURES", "bogus")], "bogus"),
        (
            vec!["stdio", "--config", "/nonexistent/emcee.toml"],
            vec![],
            "/nonexistent/emcee.toml",
        ),
    ];
    for (args, env, needle) in cases {
        let mut args = args.clone();
        let data = dir.path().join("d");
        args.extend(["--data-dir", data.to_str().unwrap()]);
        let (status, _, stderr) = run(&args, &env);
        assert_eq!(status.code(), Some(2), "{args:?} {env:?}: {stderr}");
        one_line_error(&stderr, needle);
    }
}

#[test]
fn a_bad_config_file_exits_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (text, needle) in [
        ("[limits]\ncall_timeout_ms = 0\n", "limits.call_timeout_ms"),
        ("[limits]\nunknown_limit = 3\n", "unknown_limit"),
        ("bind = [1, 2]\n", "bind"),
        ("this is not toml", "emcee.toml"),
    ] {
        let path = write_config(dir.path(), text);
        let (status, _, stderr) = run(&["stdio", "--config", path.to_str().unwrap()], &[]);
        assert_eq!(status.code(), Some(2), "{text}: {stderr}");
        one_line_error(&stderr, needle);
    }
}

#[test]
fn precedence_is_defaults_then_file_then_env_then_flags() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        dir.path(),
        "bind = \"127.0.0.1:9000\"\ndata_dir = \"/tmp/file-dir\"\nlog_level = \"warning\"\n[limits]\npage_size = 7\n",
    );
    let config = path.to_str().unwrap();
    let show = |args: &[&str], env: &[(&str, &str)]| -> Value {
        let (status, stdout, stderr) = run(args, env);
        assert!(status.success(), "{stderr}");
        serde_json::from_str(&stdout).expect("config prints JSON")
    };

    let defaults = show(&["config"], &[]);
    assert_eq!(defaults["bind"], "127.0.0.1:8080");
    assert_eq!(defaults["data_dir"], "./emcee-data");
    assert_eq!(defaults["log_level"], "info");
    assert_eq!(defaults["limits"]["call_timeout_ms"], 60000);
    assert_eq!(defaults["limits"]["page_size"], 100);

    let file = show(&["config", "--config", config], &[]);
    assert_eq!(file["bind"], "127.0.0.1:9000");
    assert_eq!(file["data_dir"], "/tmp/file-dir");
    assert_eq!(file["log_level"], "warning");
    assert_eq!(file["limits"]["page_size"], 7);

    let env = [
        ("EMCEE_CONFIG", config),
        ("EMCEE_BIND", "127.0.0.1:9001"),
        ("EMCEE_DATA_DIR", "/tmp/env-dir"),
        ("EMCEE_LOG", "debug"),
    ];
    let from_env = show(&["config"], &env);
    assert_eq!(from_env["bind"], "127.0.0.1:9001");
    assert_eq!(from_env["data_dir"], "/tmp/env-dir");
    assert_eq!(from_env["log_level"], "debug");
    assert_eq!(
        from_env["limits"]["page_size"], 7,
        "the file named by EMCEE_CONFIG is read"
    );

    let flags = show(
        &[
            "config",
            "--bind",
            "127.0.0.1:9002",
            "--data-dir",
            "/tmp/flag-dir",
            "--log-level",
            "error",
        ],
        &env,
    );
    assert_eq!(flags["bind"], "127.0.0.1:9002");
    assert_eq!(flags["data_dir"], "/tmp/flag-dir");
    assert_eq!(flags["log_level"], "error");

    // Every [limits] key: EMCEE_LIMIT_<KEY> over the file, --limit over both.
    let limit_env = [
        ("EMCEE_CONFIG", config),
        ("EMCEE_LIMIT_PAGE_SIZE", "8"),
        ("EMCEE_LIMIT_MAX_TASKS", "5"),
    ];
    let from_env = show(&["config"], &limit_env);
    assert_eq!(from_env["limits"]["page_size"], 8);
    assert_eq!(from_env["limits"]["max_tasks"], 5);
    let flagged = show(&["config", "--limit", "page_size=9"], &limit_env);
    assert_eq!(flagged["limits"]["page_size"], 9);
    assert_eq!(flagged["limits"]["max_tasks"], 5);
}

#[test]
fn state_directory_is_the_default_data_dir_under_systemd() {
    let (status, stdout, _) = run(&["config"], &[("STATE_DIRECTORY", "/var/lib/emcee")]);
    assert!(status.success());
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["data_dir"], "/var/lib/emcee");
}

#[test]
/// `serve` on a data dir another process holds exits 3 with one line naming the
/// holder and the fix (`stdio` keeps serving instead: see the stdio tests).
fn a_data_dir_held_by_another_process_stops_serve_with_exit_3_and_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = Stdio::start_in(dir.path(), &[], &[]);
    first.initialize("2025-11-25");
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let (status, _, stderr) = run(&["serve", "--bind", "127.0.0.1:0", "--data-dir", data], &[]);
    assert_eq!(status.code(), Some(3), "{stderr}");
    one_line_error(&stderr, data);
    let v: Value = serde_json::from_str(stderr.trim()).expect("the error is a JSON log line");
    assert_eq!(v["level"], "critical");
    let text = v["msg"].as_str().unwrap_or_default().to_owned() + &v.to_string();
    assert!(
        text.contains(&format!("held by another process (pid {})", first.pid())),
        "{stderr}"
    );
    assert!(text.contains("--data-dir"), "{stderr}");
    assert!(first.finish().0.success());
}

#[test]
fn help_and_version_go_to_stdout_and_exit_0() {
    let (status, stdout, _) = run(&["--help"], &[]);
    assert!(status.success());
    for word in ["stdio", "serve"] {
        assert!(stdout.contains(word), "{stdout}");
    }
    let (status, stdout, _) = run(&["--version"], &[]);
    assert!(status.success());
    assert!(stdout.contains(env!("CARGO_PKG_VERSION")));
}
