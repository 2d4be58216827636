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

/// Issue 18 item 17: `--help` says what an unset flag means (its default), and
/// `bench --help` lists the load generator's flags only, not the server's.
#[test]
fn help_shows_defaults_and_bench_help_no_serving_flags() {
    let (status, stdout, _) = run(&["serve", "--help"], &[]);
    assert!(status.success());
    for default in [
        "127.0.0.1:8080",
        "./emcee-data",
        "localhost,127.0.0.1,[::1]",
        "default: info",
        "default: true",
    ] {
        assert!(stdout.contains(default), "{default:?} not in:\n{stdout}");
    }
    let (status, stdout, _) = run(&["bench", "--help"], &[]);
    assert!(status.success());
    for serving in ["--log-level", "--log-calls", "--limit ", "EMCEE_LOG"] {
        assert!(!stdout.contains(serving), "{serving:?} in:\n{stdout}");
    }
    // The serving flags work before and after the subcommand alike.
    for args in [
        &["--log-level", "debug", "config"][..],
        &["config", "--log-level", "debug"][..],
    ] {
        let (status, stdout, stderr) = run(args, &[]);
        assert!(status.success(), "{args:?}: {stderr}");
        assert!(stdout.contains("\"debug\""), "{args:?}: {stdout}");
    }
}

/// Issue 18 item 7: limits that crashed the server (a semaphore or a channel past
/// tokio's maximum: exit 101 at start, or a panic on every listen) or refused every
/// large body for ever are refused at load: exit 2, one line naming the key and the
/// allowed range.
#[test]
fn limits_out_of_range_exit_2_naming_the_key_and_the_range() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let huge = "9223372036854775807";
    let cases: [(&[&str], &[&str]); 6] = [
        (
            &["config", "--limit", "blocking_threads=9223372036854775807"],
            &["limits.blocking_threads", huge, "1 to 512"],
        ),
        (
            &["stdio", "--limit", "blocking_threads=9223372036854775807"],
            &["limits.blocking_threads", "1 to 512"],
        ),
        (
            &["config", "--limit", "listen_queue=9223372036854775807"],
            &["limits.listen_queue", "1 to 65536"],
        ),
        (
            &["config", "--limit", "call_timeout_ms=9223372036854775807"],
            &["limits.call_timeout_ms", "1 to 31536000000 milliseconds"],
        ),
        (
            &["config", "--limit", "max_body_bytes_total=1000"],
            &["limits.max_body_bytes_total", "limits.max_message_bytes"],
        ),
        (
            &["config", "--limit", "max_message_bytes=1073741825"],
            &["limits.max_message_bytes", "1 to 1073741824"],
        ),
    ];
    for (args, needles) in cases {
        let mut args = args.to_vec();
        args.extend(["--data-dir", data]);
        let (status, _, stderr) = run(&args, &[]);
        assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
        for needle in needles {
            one_line_error(&stderr, needle);
        }
    }
    // At the edges: the largest of each is served.
    let (status, stdout, stderr) = run(
        &[
            "config",
            "--limit",
            "blocking_threads=512",
            "--limit",
            "listen_queue=65536",
            "--limit",
            "max_body_bytes_total=4194304",
        ],
        &[],
    );
    assert!(status.success(), "{stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["limits"]["blocking_threads"], 512);
    assert_eq!(v["limits"]["listen_queue"], 65536);
    // From the file: its name, the line and the key.
    let path = write_config(
        dir.path(),
        "[limits]\npage_size = 5\nlisten_queue = 65537\n",
    );
    let (status, _, stderr) = run(&["config", "--config", path.to_str().unwrap()], &[]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    for needle in [
        path.to_str().unwrap(),
        "line 3",
        "`limits.listen_queue`",
        "1 to 65536",
    ] {
        one_line_error(&stderr, needle);
    }
    // Thread counts and durations outside `[limits]` too.
    for (text, needle) in [
        ("[http]\nworkers = 1000000\n", "http.workers"),
        ("[http]\nops_connections = 4097\n", "http.ops_connections"),
        (
            "[storage]\nretry_ms = 9223372036854775807\n",
            "storage.retry_ms",
        ),
        ("[mrtr]\nstate_ttl_ms = 31536000001\n", "mrtr.state_ttl_ms"),
    ] {
        let path = write_config(dir.path(), text);
        let (status, _, stderr) = run(&["config", "--config", path.to_str().unwrap()], &[]);
        assert_eq!(status.code(), Some(2), "{text}: {stderr}");
        one_line_error(&stderr, needle);
        one_line_error(&stderr, "out of range");
    }
    // The top of a range is accepted.
    let path = write_config(dir.path(), "[http]\nops_connections = 4096\n");
    let (status, stdout, stderr) = run(&["config", "--config", path.to_str().unwrap()], &[]);
    assert_eq!(status.code(), Some(0), "{stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["http"]["ops_connections"], 4096, "{stdout}");
}

/// Issue 18 item 14: a `[limits]` error names the file, the line and the key, as
/// every other section's does; a typo gets the closest key, not all 37.
#[test]
fn limits_errors_name_the_file_the_line_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(
        dir.path(),
        "log_level = \"info\"\n[limits]\ncall_timeout_ms = \"5s\"\n",
    );
    let config = path.to_str().unwrap();
    let (status, _, stderr) = run(&["config", "--config", config], &[]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    for needle in [
        config,
        "line 3",
        "`limits.call_timeout_ms`",
        "whole number of milliseconds",
        "\"5s\"",
    ] {
        one_line_error(&stderr, needle);
    }
    let path = write_config(dir.path(), "[limits]\npage_size = 5\ncall_timout_ms = 5\n");
    let config = path.to_str().unwrap();
    let (status, _, stderr) = run(&["config", "--config", config], &[]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    for needle in [
        config,
        "line 3",
        "`limits.call_timout_ms`",
        "did you mean `limits.call_timeout_ms`?",
    ] {
        one_line_error(&stderr, needle);
    }
    assert!(
        !stderr.contains("max_sessions"),
        "no list of every key: {stderr}"
    );
}

/// Issue 18 item 14: an `EMCEE_LIMITS_…` variable (a typo) and an
/// `EMCEE_LIMIT_<UNKNOWN>` are refused, as an unknown key in the file is, naming
/// the variable; a bad value in a variable names it too.
#[test]
fn misnamed_and_unknown_limit_variables_are_refused() {
    let cases = [
        (
            ("EMCEE_LIMITS_CALL_TIMEOUT_MS", "5000"),
            [
                "EMCEE_LIMITS_CALL_TIMEOUT_MS",
                "EMCEE_LIMIT_CALL_TIMEOUT_MS",
            ],
        ),
        (
            ("EMCEE_LIMIT_CALL_TIMOUT_MS", "5000"),
            [
                "EMCEE_LIMIT_CALL_TIMOUT_MS",
                "did you mean `limits.call_timeout_ms`?",
            ],
        ),
        (
            ("EMCEE_LIMIT_CALL_TIMEOUT_MS", "5s"),
            ["EMCEE_LIMIT_CALL_TIMEOUT_MS", "limits.call_timeout_ms"],
        ),
    ];
    for (var, needles) in cases {
        let (status, _, stderr) = run(&["config"], &[var]);
        assert_eq!(status.code(), Some(2), "{var:?}: {stderr}");
        for needle in needles {
            one_line_error(&stderr, needle);
        }
    }
}

/// Issue 18 item 14: `--limit CALL_TIMEOUT_MS=…` is accepted as the variable's
/// upper case is; a bad value names the flag as typed.
#[test]
fn limit_flags_are_case_blind() {
    let (status, stdout, stderr) = run(
        &[
            "config",
            "--limit",
            "CALL_TIMEOUT_MS=5000",
            "--limit",
            "Page_Size=7",
        ],
        &[],
    );
    assert!(status.success(), "{stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(v["limits"]["call_timeout_ms"], 5000);
    assert_eq!(v["limits"]["page_size"], 7);
    let (status, _, stderr) = run(&["config", "--limit", "CALL_TIMEOUT_MS=5s"], &[]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    one_line_error(&stderr, "--limit CALL_TIMEOUT_MS=5s");
    one_line_error(&stderr, "limits.call_timeout_ms");
}

/// Issue 18 item 14: a missing `--mrtr-key-file` is named as the key file, not as
/// a config file.
#[test]
fn a_missing_mrtr_key_file_is_named_as_the_key_file() {
    let (status, _, stderr) = run(&["config", "--mrtr-key-file", "/nonexistent/mrtr.key"], &[]);
    assert_eq!(status.code(), Some(2), "{stderr}");
    one_line_error(&stderr, "mrtr.key_file");
    one_line_error(&stderr, "/nonexistent/mrtr.key");
    assert!(!stderr.contains("config file"), "{stderr}");
}

/// Issue 18 item 14: clap's "did you mean" reaches the user, still on one line.
#[test]
fn clap_suggestions_reach_the_user() {
    for (args, needle) in [
        (&["serv"][..], "a similar subcommand exists: 'serve'"),
        (
            &["config", "--data-dri", "x"][..],
            "a similar argument exists: '--data-dir'",
        ),
    ] {
        let (status, _, stderr) = run(args, &[]);
        assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
        one_line_error(&stderr, needle);
    }
}
