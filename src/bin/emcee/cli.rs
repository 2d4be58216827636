//! The `emcee` command line (clap): subcommands, flags and their `EMCEE_*`
//! environment fallbacks, turned into the library's [`Overrides`]. Binary-only, like
//! the load generator (`bench`): an embedder of the library compiles neither.

use std::path::PathBuf;

use crate::config::{LimitOverride, Mode, Overrides};
use clap::{Args, Parser, Subcommand};

/// Command line of the `emcee` binary.
///
/// The serving flags (`--log-level`, `--log-calls`, `--limit`) are taken before the
/// subcommand (with their `EMCEE_*` variables) and after it (`emcee stdio
/// --log-level debug`, which wins); they are not global, so `emcee bench --help`
/// lists the load generator's flags only.
#[derive(Debug, Parser)]
#[command(name = "emcee", version, about = "A production MCP server runtime")]
pub struct Cli {
    /// Log level: trace, debug, info, warning, error, critical (default: info).
    #[arg(long, env = "EMCEE_LOG", value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// One info line per finished tool call, resource read and prompt get: true or
    /// false (default: true; off for benchmark runs).
    #[arg(long, env = "EMCEE_LOG_CALLS", value_name = "BOOL",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub log_calls: Option<bool>,
    /// Set one `[limits]` key (repeatable), e.g. `--limit call_timeout_ms=5000`; wins
    /// over the file and over `EMCEE_LIMIT_<KEY>` variables.
    #[arg(long = "limit", value_name = "KEY=VALUE")]
    pub limits: Vec<String>,
    /// What to run.
    #[command(subcommand)]
    pub command: CliCommand,
}

/// The serving flags after the subcommand: the same as [`Cli`]'s, which they win
/// over (their variables are read there, so that a flag given before the
/// subcommand still wins over a variable).
#[derive(Debug, Args, Clone, Default)]
pub struct ServingFlags {
    /// Log level: trace, debug, info, warning, error, critical (default: info; env
    /// EMCEE_LOG).
    #[arg(long, value_name = "LEVEL")]
    pub log_level: Option<String>,
    /// One info line per finished tool call, resource read and prompt get: true or
    /// false (default: true; env EMCEE_LOG_CALLS).
    #[arg(long, value_name = "BOOL",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub log_calls: Option<bool>,
    /// Set one `[limits]` key (repeatable), e.g. `--limit call_timeout_ms=5000`; wins
    /// over the file and over `EMCEE_LIMIT_<KEY>` variables (defaults: `emcee
    /// config` prints them all).
    #[arg(long = "limit", value_name = "KEY=VALUE")]
    pub limits: Vec<String>,
}

/// `EMCEE_LIMIT_<KEY>` variables as `[limits]` keys (`EMCEE_LIMIT_CALL_TIMEOUT_MS`
/// sets `call_timeout_ms`), sorted; and the `EMCEE_LIMITS_<KEY>` variables (a typo,
/// refused by `Config::resolve`).
fn limit_variables() -> (Vec<LimitOverride>, Vec<String>) {
    let mut found = Vec::new();
    let mut misnamed = Vec::new();
    for (name, value) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if name.starts_with("EMCEE_LIMITS_") {
            misnamed.push(name.to_owned());
        } else if let Some(key) = name.strip_prefix("EMCEE_LIMIT_") {
            found.push(LimitOverride {
                key: key.to_ascii_lowercase(),
                value: value.to_string_lossy().into_owned(),
                source: name.to_owned(),
            });
        }
    }
    found.sort_by(|a, b| a.key.cmp(&b.key));
    misnamed.sort();
    (found, misnamed)
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum CliCommand {
    /// Serve MCP over stdin/stdout (newline-delimited JSON-RPC).
    Stdio(CommonArgs),
    /// Serve MCP over Streamable HTTP.
    Serve(ServeArgs),
    /// Print the effective configuration as JSON and exit.
    Config(ServeArgs),
    /// Probe a running server's /health (exit 0 healthy, 1 not); for container
    /// health checks without curl. Reads the same configuration as `serve`.
    Healthcheck(ServeArgs),
    /// Load-generate against an MCP server (HTTP or stdio) and report throughput,
    /// latency percentiles, errors by kind and the server's RSS and CPU.
    #[command(after_long_help = crate::bench::args::BENCH_HELP)]
    Bench(crate::bench::BenchArgs),
}

/// Flags shared by every serving subcommand. A flag that is not given falls back to
/// its variable, then to the configuration file, then to the default its help names.
#[derive(Debug, Args, Clone, Default)]
pub struct CommonArgs {
    /// Directory of the sled database (default: `$STATE_DIRECTORY` under systemd,
    /// else `./emcee-data`).
    #[arg(long, env = "EMCEE_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Comma-separated fixture sets to expose (known: faults, conformance; default:
    /// none).
    #[arg(long, env = "EMCEE_FIXTURES", value_name = "LIST")]
    pub fixtures: Option<String>,
    /// TOML configuration file (default: none, the built-in defaults).
    #[arg(long, env = "EMCEE_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Secret file sealing 2026-07-28 `requestState` (`[mrtr] key_file`; default:
    /// none, a random key per process).
    #[arg(long, env = "EMCEE_MRTR_KEY_FILE", value_name = "FILE")]
    pub mrtr_key_file: Option<PathBuf>,
    /// Shared state on Redis or Valkey, e.g. redis://127.0.0.1:6379/0 (`[storage]
    /// url`; default: none, sled in the data directory). The password may be in
    /// the URL; it is never logged.
    #[arg(long, env = "EMCEE_STORAGE_URL", value_name = "URL")]
    pub storage_url: Option<String>,
    /// Bearer tokens asked on the HTTP transport (`[auth] tokens_file`): one a
    /// line, optionally followed by a space and the tools it may call; reloaded on
    /// SIGHUP (default: none, no token asked; stdio is never gated).
    #[arg(long, env = "EMCEE_TOKENS_FILE", value_name = "FILE")]
    pub tokens_file: Option<PathBuf>,
    /// OAuth: the issuer of the JWT access tokens accepted (`[auth] issuer`;
    /// default: none, OAuth off).
    #[arg(long, env = "EMCEE_AUTH_ISSUER", value_name = "URL")]
    pub auth_issuer: Option<String>,
    /// OAuth: where the issuer's JWKS is fetched (`[auth] jwks_url`).
    #[arg(long, env = "EMCEE_AUTH_JWKS_URL", value_name = "URL")]
    pub auth_jwks_url: Option<String>,
    /// OAuth: this server's resource URI, the public URL of /mcp (`[auth]
    /// resource`; default: http://<bind>/mcp).
    #[arg(long, env = "EMCEE_AUTH_RESOURCE", value_name = "URL")]
    pub auth_resource: Option<String>,
    /// Built-in tools to serve (`[tools] builtin`): true (all, the default), false
    /// (none), or comma-separated names of echo, sleep, kv_set, kv_get, kv_delete,
    /// kv_list.
    #[arg(long, env = "EMCEE_BUILTIN_TOOLS", value_name = "LIST")]
    pub builtin_tools: Option<String>,
    /// Logging and limits.
    #[command(flatten)]
    pub serving: ServingFlags,
}

/// Flags of `serve`.
#[derive(Debug, Args, Clone, Default)]
pub struct ServeArgs {
    /// Address to listen on (default: 127.0.0.1:8080).
    #[arg(long, env = "EMCEE_BIND", value_name = "ADDR")]
    pub bind: Option<String>,
    /// Serve /health and /metrics on this address instead of --bind (default: none,
    /// on --bind).
    #[arg(long, env = "EMCEE_ADMIN_BIND", value_name = "ADDR")]
    pub admin_bind: Option<String>,
    /// Instance id (a-z, 0-9, up to 16): prefixes session ids for proxy affinity
    /// (default: none).
    #[arg(long, env = "EMCEE_INSTANCE_ID", value_name = "ID")]
    pub instance_id: Option<String>,
    /// Comma-separated host names accepted in Host and Origin ("*": any), replacing
    /// `http.allowed_hosts` (default: `localhost,127.0.0.1,[::1]`).
    #[arg(long, env = "EMCEE_ALLOWED_HOSTS", value_name = "LIST")]
    pub allowed_hosts: Option<String>,
    /// Serve command tools on a non-loopback address without auth (`[auth]
    /// allow_unauthenticated_commands`; default: refuse to start so).
    #[arg(long, env = "EMCEE_ALLOW_UNAUTHENTICATED_COMMANDS", value_name = "BOOL",
          num_args = 0..=1, default_missing_value = "true",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub allow_unauthenticated_commands: Option<bool>,
    /// Shared flags.
    #[command(flatten)]
    pub common: CommonArgs,
}

impl Cli {
    /// The mode and the overrides of a serving subcommand, or the load generator's
    /// own arguments for `bench`.
    #[allow(clippy::result_large_err)]
    pub fn into_parts(self) -> Result<(Mode, Overrides), crate::bench::BenchArgs> {
        // Environment first, flags after: a later value wins. Keys are case-blind,
        // as the variables' upper case is.
        let (mode, serve, common) = match self.command {
            CliCommand::Bench(args) => return Err(args),
            CliCommand::Stdio(common) => (Mode::Stdio, ServeArgs::default(), common),
            CliCommand::Serve(a) => (Mode::Serve, a.clone(), a.common),
            CliCommand::Config(a) => (Mode::Config, a.clone(), a.common),
            CliCommand::Healthcheck(a) => (Mode::Healthcheck, a.clone(), a.common),
        };
        let after = &common.serving;
        let (mut limits, misnamed_variables) = limit_variables();
        for flag in self.limits.iter().chain(&after.limits) {
            let (key, value) = flag.split_once('=').unwrap_or((flag.as_str(), ""));
            limits.push(LimitOverride {
                key: key.trim().to_ascii_lowercase(),
                value: value.to_owned(),
                source: format!("--limit {flag}"),
            });
        }
        Ok((
            mode,
            Overrides {
                config_file: common.config,
                log_level: after.log_level.clone().or(self.log_level),
                log_calls: after.log_calls.or(self.log_calls),
                bind: serve.bind,
                admin_bind: serve.admin_bind,
                instance_id: serve.instance_id,
                allowed_hosts: serve.allowed_hosts,
                data_dir: common.data_dir,
                fixtures: common.fixtures,
                mrtr_key_file: common.mrtr_key_file,
                storage_url: common.storage_url,
                tokens_file: common.tokens_file,
                allow_unauthenticated_commands: serve.allow_unauthenticated_commands,
                auth_issuer: common.auth_issuer,
                auth_jwks_url: common.auth_jwks_url,
                auth_resource: common.auth_resource,
                builtin_tools: common.builtin_tools,
                limits,
                misnamed_variables,
            },
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Fixtures, DEFAULT_BIND};
    use emcee::config::{ConfigError, LogLevel};
    use std::io::Write;
    use std::path::PathBuf;
    use std::time::Duration;

    fn resolve(args: &[&str]) -> Result<Config, ConfigError> {
        let cli = Cli::try_parse_from(std::iter::once("emcee").chain(args.iter().copied()))
            .expect("flags parse");
        let (mode, overrides) = cli.into_parts().expect("a serving subcommand");
        Config::resolve(mode, overrides)
    }

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    const COMMAND_TOOL: &str = "[[tools.command]]\nname = \"say\"\ndescription = \"d\"\n\
                                argv = [\"printf\", \"%s\", \"{text}\"]\n\
                                [tools.command.input.text]\ntype = \"string\"\nallow_option_like = true\n";

    #[test]
    fn command_tools_on_a_public_bind_need_auth_or_the_override() {
        let f = file(COMMAND_TOOL);
        let path = f.path().to_str().unwrap();
        let e = resolve(&["serve", "--config", path, "--bind", "0.0.0.0:8080"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("auth.allow_unauthenticated_commands"), "{e}");
        assert!(!e.contains('\n'), "one line: {e}");
        let allowed = resolve(&[
            "serve",
            "--config",
            path,
            "--bind",
            "0.0.0.0:8080",
            "--allow-unauthenticated-commands",
        ])
        .unwrap();
        assert!(allowed.http.auth.allow_unauthenticated_commands);
        // Loopback, `config`, and no command tools: as before.
        assert!(resolve(&["serve", "--config", path]).is_ok());
        assert!(resolve(&["config", "--config", path, "--bind", "0.0.0.0:8080"]).is_ok());
        assert!(resolve(&["serve", "--bind", "0.0.0.0:8080"]).is_ok());
        // OAuth counts as auth (its JWKS URL is fetched only when serving starts).
        let f = file(&format!(
            "[auth]\nissuer = \"https://auth.example.com\"\n\
             authorization_servers = [\"https://auth.example.com\"]\n\
             jwks_url = \"http://127.0.0.1:9/jwks\"\n{COMMAND_TOOL}"
        ));
        let oauth = f.path().to_str().unwrap();
        assert!(resolve(&["serve", "--config", oauth, "--bind", "0.0.0.0:8080"]).is_ok());
        // In the file too.
        let f = file(&format!(
            "[auth]\nallow_unauthenticated_commands = true\n{COMMAND_TOOL}"
        ));
        let path = f.path().to_str().unwrap();
        assert!(resolve(&["serve", "--config", path, "--bind", "0.0.0.0:8080"]).is_ok());
    }

    #[test]
    fn rate_and_shares_are_read_from_the_file() {
        let f = file(
            "[rate]\nper_principal_per_s = 5\nper_principal_burst = 10\nper_ip_per_s = 2\n\
             global_per_s = 100\nglobal_burst = 200\nmax_keys = 50\n\
             [limits]\nmax_sessions_per_principal = 7\nmax_in_flight_per_principal = 9\n\
             [auth]\nshared_kv = true\n",
        );
        let c = resolve(&["serve", "--config", f.path().to_str().unwrap()]).unwrap();
        let r = &c.http.rate;
        assert_eq!(
            (
                r.per_principal_per_s,
                r.per_principal_burst,
                r.per_ip_per_s,
                r.per_ip_burst
            ),
            (5, 10, 2, 0)
        );
        assert_eq!((r.global_per_s, r.global_burst, r.max_keys), (100, 200, 50));
        assert_eq!(c.limits.sessions_per_principal(), 7);
        assert_eq!(c.limits.in_flight_per_principal(), 9);
        assert!(c.http.auth.shared_kv);
        // The defaults: rates off, a quarter of each total.
        let c = resolve(&["serve"]).unwrap();
        assert_eq!(c.http.rate, emcee::config::RateConfig::default());
        assert_eq!(c.limits.sessions_per_principal(), 500);
        assert_eq!(c.limits.in_flight_per_principal(), 1024);
        let f = file("[rate]\nmax_keys = 0\n");
        let e = resolve(&["serve", "--config", f.path().to_str().unwrap()]).unwrap_err();
        assert!(e.to_string().contains("rate.max_keys"), "{e}");
        let f = file("[rate]\nper_second = 1\n");
        assert!(resolve(&["serve", "--config", f.path().to_str().unwrap()]).is_err());
    }

    #[test]
    fn defaults_need_nothing() {
        let c = resolve(&["serve"]).unwrap();
        assert_eq!(c.bind.to_string(), DEFAULT_BIND);
        assert_eq!(c.log_level, LogLevel::Info);
        assert_eq!(c.fixtures, Fixtures::default());
        assert_eq!(c.limits.call_timeout, Duration::from_secs(60));
    }

    #[test]
    fn file_overrides_defaults_and_flags_override_file() {
        let f = file(
            "bind = \"127.0.0.1:9000\"\ndata_dir = \"/tmp/from-file\"\nfixtures = [\"faults\"]\n\
             [limits]\ncall_timeout_ms = 1500\npage_size = 2\n",
        );
        let path = f.path().to_str().unwrap();
        let c = resolve(&["serve", "--config", path]).unwrap();
        assert_eq!(c.bind.to_string(), "127.0.0.1:9000");
        assert_eq!(c.data_dir, PathBuf::from("/tmp/from-file"));
        assert!(c.fixtures.faults);
        assert_eq!(c.limits.call_timeout, Duration::from_millis(1500));
        assert_eq!(c.limits.page_size, 2);
        let c = resolve(&[
            "serve",
            "--config",
            path,
            "--bind",
            "127.0.0.1:9001",
            "--data-dir",
            "/tmp/flag",
            "--fixtures",
            "",
        ])
        .unwrap();
        assert_eq!(c.bind.to_string(), "127.0.0.1:9001");
        assert_eq!(c.data_dir, PathBuf::from("/tmp/flag"));
        assert!(!c.fixtures.faults);
    }

    #[test]
    fn log_calls_and_allowed_hosts_follow_the_precedence() {
        assert!(resolve(&["serve"]).unwrap().log_calls);
        let f = file("log_calls = false\n[http]\nallowed_hosts = [\"a.example\"]\n");
        let path = f.path().to_str().unwrap();
        let c = resolve(&["serve", "--config", path]).unwrap();
        assert!(!c.log_calls);
        assert_eq!(c.http.allowed_hosts, ["a.example"]);
        let c = resolve(&[
            "--log-calls",
            "true",
            "serve",
            "--config",
            path,
            "--allowed-hosts",
            "B.example, localhost",
        ])
        .unwrap();
        assert!(c.log_calls);
        assert_eq!(c.http.allowed_hosts, ["b.example", "localhost"]);
        assert!(!resolve(&["stdio", "--log-calls", "off"]).unwrap().log_calls);
        assert!(Cli::try_parse_from(["emcee", "stdio", "--log-calls", "maybe"]).is_err());
    }

    #[test]
    fn bad_values_name_the_problem() {
        let e = resolve(&["serve", "--bind", "nowhere"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("bind") && e.contains("nowhere"), "{e}");
        let e = resolve(&["stdio", "--fixtures", "faults,bogus"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("bogus"), "{e}");
        let e = resolve(&["--log-level", "loud", "stdio"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("loud"), "{e}");
        let f = file("[limits]\npage_size = 0\n");
        let e = resolve(&["stdio", "--config", f.path().to_str().unwrap()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("limits.page_size"), "{e}");
        let f = file("colour = \"blue\"\n");
        let e = resolve(&["stdio", "--config", f.path().to_str().unwrap()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("colour") && !e.contains('\n'), "{e}");
        let e = resolve(&["stdio", "--config", "/nonexistent/emcee.toml"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent/emcee.toml"), "{e}");
        let f = file(
            "[limits]
call_timeout_ms = \"soon\"\ncolour = 1\n",
        );
        let e = resolve(&["stdio", "--config", f.path().to_str().unwrap()])
            .unwrap_err()
            .to_string();
        assert!(e.contains("limits"), "{e}");
        let e = resolve(&["stdio", "--limit", "colour=1"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("colour"), "unknown keys are refused: {e}");
        let e = resolve(&["stdio", "--limit", "page_size=many"])
            .unwrap_err()
            .to_string();
        assert!(e.contains("limits.page_size") && e.contains("many"), "{e}");
    }

    /// The serving flags before and after the subcommand: after wins; `--limit`s of
    /// both count, in order.
    #[test]
    fn serving_flags_after_the_subcommand_win_over_those_before() {
        let c = resolve(&["--log-level", "debug", "stdio", "--log-level", "warning"]).unwrap();
        assert_eq!(c.log_level, LogLevel::Warning);
        let c = resolve(&["--log-level", "debug", "stdio"]).unwrap();
        assert_eq!(c.log_level, LogLevel::Debug);
        let c = resolve(&["--log-calls", "false", "serve", "--log-calls", "true"]).unwrap();
        assert!(c.log_calls);
        let c = resolve(&[
            "--limit",
            "page_size=3",
            "--limit",
            "max_tasks=7",
            "config",
            "--limit",
            "page_size=4",
        ])
        .unwrap();
        assert_eq!((c.limits.page_size, c.limits.max_tasks), (4, 7));
        assert!(Cli::try_parse_from(["emcee", "bench", "--log-level", "debug"]).is_err());
    }

    /// Every limit can be set by the file, then `EMCEE_LIMIT_<KEY>`, then `--limit`.
    #[test]
    fn every_limit_is_settable_by_file_env_and_flag_in_that_order() {
        let f = file("[limits]\npage_size = 3\ncall_timeout_ms = 1000\nmax_tasks = 9\n");
        let path = f.path().to_str().unwrap();
        let c = resolve(&["stdio", "--config", path]).unwrap();
        assert_eq!(c.limits.page_size, 3);
        assert_eq!(c.limits.call_timeout, Duration::from_millis(1000));
        // The environment is read by into_parts: give it as overrides in the same
        // order the binary does (variables, then flags).
        let cli =
            Cli::try_parse_from(["emcee", "--limit", "page_size=5", "stdio", "--config", path])
                .unwrap();
        let (mode, mut o) = cli.into_parts().unwrap();
        let var = |key: &str, value: &str| LimitOverride {
            key: key.into(),
            value: value.into(),
            source: format!("EMCEE_LIMIT_{}", key.to_ascii_uppercase()),
        };
        o.limits.insert(0, var("page_size", "4"));
        o.limits.insert(0, var("call_timeout_ms", "2000"));
        let c = Config::resolve(mode, o).unwrap();
        assert_eq!(c.limits.page_size, 5, "the flag wins over the variable");
        assert_eq!(
            c.limits.call_timeout,
            Duration::from_millis(2000),
            "the variable over the file"
        );
        assert_eq!(c.limits.max_tasks, 9, "the file over the default");
        assert_eq!(c.limits.max_sessions, 2000, "the default");
    }
}
