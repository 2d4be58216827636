//! Configuration: what the user typed (flags, env, TOML file) → a validated [`Config`].
//!
//! Precedence, lowest first: built-in defaults < config file < `EMCEE_*` environment
//! < command-line flags. Flags and environment are read by clap (a flag wins over
//! its variable); the file fills what neither gave. The settings themselves
//! ([`Limits`] and the others) are the library's (`emcee::config`).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use emcee::config::{
    ConfigError, HttpConfig, Limits, LogLevel, MrtrConfig, OpsAccess, RedisDurability,
    StorageConfig, MAX_DURATION_MS,
};
use serde::{Deserialize, Serialize};

pub mod command;

/// Default HTTP bind address: loopback only.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";

/// Default data directory when neither config nor `$STATE_DIRECTORY` names one.
pub const DEFAULT_DATA_DIR: &str = "./emcee-data";

/// Why `url` cannot be the shared storage's URL, if it cannot.
fn storage_url_problem(url: &str) -> Option<String> {
    #[cfg(feature = "redis")]
    return emcee::storage::redis_url_problem(url);
    #[cfg(not(feature = "redis"))]
    return Some(format!(
        "this build has no Redis support (the `redis` cargo feature); `{url}` cannot be used"
    ));
}

fn bad(name: &'static str, message: impl Into<String>) -> ConfigError {
    ConfigError::Value {
        name,
        message: message.into(),
    }
}

/// What the command line (or an embedder) sets, over the file and the defaults
/// (flags and environment variables: the binary's `cli` module fills it).
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// TOML configuration file.
    pub config_file: Option<PathBuf>,
    /// See [`Config::log_level`].
    pub log_level: Option<String>,
    /// See [`Config::log_calls`].
    pub log_calls: Option<bool>,
    /// See [`Config::bind`].
    pub bind: Option<String>,
    /// See [`Config::admin_bind`].
    pub admin_bind: Option<String>,
    /// See [`Config::instance_id`].
    pub instance_id: Option<String>,
    /// Comma-separated, replacing [`HttpConfig::allowed_hosts`].
    pub allowed_hosts: Option<String>,
    /// See [`Config::data_dir`].
    pub data_dir: Option<PathBuf>,
    /// Comma-separated fixture sets (known: faults, conformance).
    pub fixtures: Option<String>,
    /// See [`MrtrConfig::key_file`].
    pub mrtr_key_file: Option<PathBuf>,
    /// See [`StorageConfig::url`].
    pub storage_url: Option<String>,
    /// See [`emcee::config::AuthConfig::tokens_file`].
    pub tokens_file: Option<PathBuf>,
    /// See [`emcee::config::AuthConfig::allow_unauthenticated_commands`].
    pub allow_unauthenticated_commands: Option<bool>,
    /// See [`emcee::config::AuthConfig::issuer`] (`EMCEE_AUTH_ISSUER`).
    pub auth_issuer: Option<String>,
    /// See [`emcee::config::AuthConfig::jwks_url`] (`EMCEE_AUTH_JWKS_URL`).
    pub auth_jwks_url: Option<String>,
    /// See [`emcee::config::AuthConfig::resource`] (`EMCEE_AUTH_RESOURCE`).
    pub auth_resource: Option<String>,
    /// The built-in tools to keep (`--builtin-tools` / `EMCEE_BUILTIN_TOOLS`):
    /// `true`/`all`, `false`/`none`, or comma-separated names; over `[tools] builtin`.
    pub builtin_tools: Option<String>,
    /// `[limits]` keys and values, in precedence order (later wins): the binary puts
    /// `EMCEE_LIMIT_<KEY>` variables first, then `--limit KEY=VALUE` flags.
    pub limits: Vec<LimitOverride>,
    /// `EMCEE_LIMITS_<KEY>` variables (a typo of `EMCEE_LIMIT_`): refused, as an
    /// unknown key in the file is, rather than silently ignored.
    pub misnamed_variables: Vec<String>,
}

/// One `[limits]` key set by a variable or a flag.
#[derive(Debug, Clone)]
pub struct LimitOverride {
    /// The key, lower case (`call_timeout_ms`).
    pub key: String,
    /// The value as given.
    pub value: String,
    /// Where it was set, for errors: `EMCEE_LIMIT_CALL_TIMEOUT_MS` or
    /// `--limit CALL_TIMEOUT_MS=5s`.
    pub source: String,
}

/// The TOML config file as written. Every field is optional; unknown keys are errors.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// See [`Config::bind`].
    pub bind: Option<String>,
    /// See [`Config::admin_bind`].
    pub admin_bind: Option<String>,
    /// See [`Config::instance_id`].
    pub instance_id: Option<String>,
    /// See [`Config::data_dir`].
    pub data_dir: Option<PathBuf>,
    /// See [`Config::log_level`].
    pub log_level: Option<String>,
    /// See [`Config::log_calls`].
    pub log_calls: Option<bool>,
    /// Fixture sets, as a list.
    pub fixtures: Option<Vec<String>>,
    /// See [`Limits`]: each key's value and where it is in the file (its keys and
    /// types are checked by [`read_file`], which knows the lines).
    #[serde(default)]
    pub limits: BTreeMap<String, toml::Spanned<toml::Value>>,
    /// The line of each `[limits]` key (filled by [`read_file`]).
    #[serde(skip)]
    pub limit_lines: HashMap<String, usize>,
    /// See [`StorageConfig`].
    #[serde(default)]
    pub storage: FileStorage,
    /// See [`HttpConfig`].
    #[serde(default)]
    pub http: FileHttp,
    /// See [`MrtrConfig`].
    #[serde(default)]
    pub mrtr: FileMrtr,
    /// See [`emcee::config::AuthConfig`].
    #[serde(default)]
    pub auth: FileAuth,
    /// See [`emcee::config::RateConfig`].
    #[serde(default)]
    pub rate: FileRate,
    /// `[[tools.command]]`: programs served as tools.
    #[serde(default)]
    pub tools: FileTools,
}

/// `[tools]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileTools {
    /// `builtin = true` (default), `false`, or the names of the built-in tools to keep.
    #[serde(default)]
    pub builtin: Option<BuiltinChoice>,
    /// `[[tools.command]]` entries.
    #[serde(default)]
    pub command: Vec<command::CommandTool>,
}

/// `[tools] builtin`: all or none of the built-in tools, or the ones named.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum BuiltinChoice {
    /// `true`: all; `false`: none.
    All(bool),
    /// These (names from [`crate::tools::builtin::NAMES`]).
    Some(Vec<String>),
}

impl BuiltinChoice {
    /// The flag's or variable's form: `true`/`all`, `false`/`none` (or empty), or
    /// comma-separated names.
    pub fn parse(text: &str) -> BuiltinChoice {
        match text.trim().to_ascii_lowercase().as_str() {
            "true" | "all" => BuiltinChoice::All(true),
            "false" | "none" | "" => BuiltinChoice::All(false),
            _ => BuiltinChoice::Some(
                text.split(',')
                    .map(str::trim)
                    .filter(|n| !n.is_empty())
                    .map(String::from)
                    .collect(),
            ),
        }
    }

    /// The names kept, in [`crate::tools::builtin::NAMES`]' order; an unknown name
    /// is an error naming the known ones.
    pub fn names(&self) -> Result<Vec<String>, String> {
        let known = crate::tools::builtin::NAMES;
        match self {
            BuiltinChoice::All(all) => Ok(if *all {
                known.iter().map(|n| n.to_string()).collect()
            } else {
                Vec::new()
            }),
            BuiltinChoice::Some(names) => {
                if let Some(unknown) = names.iter().find(|n| !known.contains(&n.as_str())) {
                    return Err(format!(
                        "unknown built-in tool `{unknown}` (known: {}; or true, false)",
                        known.join(", ")
                    ));
                }
                Ok(known
                    .iter()
                    .filter(|k| names.iter().any(|n| n == *k))
                    .map(|n| n.to_string())
                    .collect())
            }
        }
    }
}

/// `[http]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileHttp {
    /// [`HttpConfig::allowed_hosts`].
    pub allowed_hosts: Option<Vec<String>>,
    /// [`HttpConfig::allowed_origins`].
    pub allowed_origins: Option<Vec<String>>,
    /// [`HttpConfig::workers`].
    pub workers: Option<usize>,
    /// [`HttpConfig::max_connections_per_ip`].
    pub max_connections_per_ip: Option<usize>,
    /// [`HttpConfig::max_connections`].
    pub max_connections: Option<usize>,
    /// [`HttpConfig::ops_connections`].
    pub ops_connections: Option<usize>,
}

/// `[storage]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileStorage {
    /// [`StorageConfig::cache_capacity_bytes`].
    pub cache_capacity_bytes: Option<u64>,
    /// [`StorageConfig::flush_timeout`] in milliseconds.
    pub flush_timeout_ms: Option<u64>,
    /// [`StorageConfig::retry`] in milliseconds.
    pub retry_ms: Option<u64>,
    /// [`StorageConfig::url`].
    pub url: Option<String>,
    /// [`StorageConfig::redis_durability`]: `none`, `aof` or `fsync`.
    pub redis_durability: Option<String>,
    /// [`StorageConfig::redis_timeout`] in milliseconds.
    pub redis_timeout_ms: Option<u64>,
}

/// `[mrtr]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileMrtr {
    /// [`MrtrConfig::key_file`].
    pub key_file: Option<PathBuf>,
    /// [`MrtrConfig::state_ttl`] in milliseconds.
    pub state_ttl_ms: Option<u64>,
    /// [`MrtrConfig::max_state_bytes`].
    pub max_state_bytes: Option<usize>,
}

/// `[auth]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileAuth {
    /// [`emcee::config::AuthConfig::tokens_file`].
    pub tokens_file: Option<PathBuf>,
    /// [`emcee::config::AuthConfig::ops`]: `open`, `token` or `admin_only`.
    pub ops: Option<String>,
    /// [`emcee::config::AuthConfig::issuer`].
    pub issuer: Option<String>,
    /// [`emcee::config::AuthConfig::audience`].
    pub audience: Option<String>,
    /// [`emcee::config::AuthConfig::resource`].
    pub resource: Option<String>,
    /// [`emcee::config::AuthConfig::authorization_servers`].
    #[serde(default)]
    pub authorization_servers: Vec<String>,
    /// [`emcee::config::AuthConfig::jwks_file`].
    pub jwks_file: Option<PathBuf>,
    /// [`emcee::config::AuthConfig::jwks_url`].
    pub jwks_url: Option<String>,
    /// [`emcee::config::AuthConfig::jwks_refresh_min`] in seconds.
    pub jwks_refresh_min_s: Option<u64>,
    /// [`emcee::config::AuthConfig::jwks_timeout`] in milliseconds.
    pub jwks_timeout_ms: Option<u64>,
    /// [`emcee::config::AuthConfig::jwks_max_bytes`].
    pub jwks_max_bytes: Option<usize>,
    /// [`emcee::config::AuthConfig::leeway`] in seconds.
    pub leeway_s: Option<u64>,
    /// [`emcee::config::AuthConfig::scopes`]: `[auth.scopes]`, tool = "scope".
    #[serde(default)]
    pub scopes: std::collections::BTreeMap<String, String>,
    /// [`emcee::config::AuthConfig::shared_kv`].
    pub shared_kv: Option<bool>,
    /// [`emcee::config::AuthConfig::allow_unauthenticated_commands`].
    pub allow_unauthenticated_commands: Option<bool>,
}

/// `[rate]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileRate {
    /// [`emcee::config::RateConfig::per_principal_per_s`].
    pub per_principal_per_s: Option<u32>,
    /// [`emcee::config::RateConfig::per_principal_burst`].
    pub per_principal_burst: Option<u32>,
    /// [`emcee::config::RateConfig::per_ip_per_s`].
    pub per_ip_per_s: Option<u32>,
    /// [`emcee::config::RateConfig::per_ip_burst`].
    pub per_ip_burst: Option<u32>,
    /// [`emcee::config::RateConfig::global_per_s`].
    pub global_per_s: Option<u32>,
    /// [`emcee::config::RateConfig::global_burst`].
    pub global_burst: Option<u32>,
    /// [`emcee::config::RateConfig::max_keys`].
    pub max_keys: Option<usize>,
}

/// Which fixture sets are exposed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Fixtures {
    /// `fault_panic`, `fault_hang`, `fault_big`.
    pub faults: bool,
    /// The official conformance suite's tools, resources and prompts.
    pub conformance: bool,
}

impl Fixtures {
    /// Known fixture set names.
    pub const KNOWN: &'static [&'static str] = &["faults", "conformance"];

    /// Parse names; unknown names are an error naming them.
    pub fn parse<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Fixtures, ConfigError> {
        let mut f = Fixtures::default();
        for name in names.into_iter().map(str::trim).filter(|n| !n.is_empty()) {
            match name {
                "faults" => f.faults = true,
                "conformance" => f.conformance = true,
                other => {
                    return Err(bad(
                        "fixtures",
                        format!(
                            "unknown fixture set `{other}` (known: {})",
                            Fixtures::KNOWN.join(", ")
                        ),
                    ))
                }
            }
        }
        Ok(f)
    }
}

/// What to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// stdio transport.
    Stdio,
    /// Streamable HTTP.
    Serve,
    /// Print the configuration.
    Config,
    /// Probe `/health` of a running server.
    Healthcheck,
}

/// The validated configuration the runtime uses.
#[derive(Debug, Clone, Serialize)]
pub struct Config {
    /// What to run.
    pub mode: Mode,
    /// HTTP listen address.
    pub bind: SocketAddr,
    /// Where `/health*` and `/metrics` are served; `None`: on `bind`.
    pub admin_bind: Option<SocketAddr>,
    /// Session ids start with `{instance_id}-` (several instances behind a proxy).
    pub instance_id: Option<String>,
    /// sled directory.
    pub data_dir: PathBuf,
    /// stderr log level.
    pub log_level: LogLevel,
    /// One `info` line per finished call (`tools/call`, `resources/read`,
    /// `prompts/get`). Default on.
    pub log_calls: bool,
    /// Fixture sets.
    pub fixtures: Fixtures,
    /// Runtime limits.
    pub limits: Limits,
    /// Storage settings.
    pub storage: StorageConfig,
    /// HTTP settings.
    pub http: HttpConfig,
    /// Multi-round-trip request settings.
    pub mrtr: MrtrConfig,
    /// The built-in tools served (`[tools] builtin`), in their listing order; the
    /// `kv://` resources go with the kv tools.
    pub builtin_tools: Vec<String>,
    /// Programs served as tools (`[[tools.command]]`).
    pub command_tools: Vec<command::CommandTool>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mode: Mode::Stdio,
            bind: DEFAULT_BIND
                .parse()
                .unwrap_or_else(|_| ([127, 0, 0, 1], 8080).into()),
            admin_bind: None,
            instance_id: None,
            data_dir: default_data_dir(),
            log_level: LogLevel::Info,
            log_calls: true,
            fixtures: Fixtures::default(),
            limits: Limits::default(),
            storage: StorageConfig::default(),
            http: HttpConfig::default(),
            mrtr: MrtrConfig::default(),
            builtin_tools: crate::tools::builtin::NAMES
                .iter()
                .map(|n| n.to_string())
                .collect(),
            command_tools: Vec::new(),
        }
    }
}

/// `$STATE_DIRECTORY` (set by systemd's `StateDirectory=`) or `./emcee-data`.
fn default_data_dir() -> PathBuf {
    match std::env::var_os("STATE_DIRECTORY") {
        // systemd may pass several colon-separated directories; the first is ours.
        Some(dirs) if !dirs.is_empty() => {
            let dirs = dirs.to_string_lossy().into_owned();
            PathBuf::from(dirs.split(':').next().unwrap_or(DEFAULT_DATA_DIR))
        }
        _ => PathBuf::from(DEFAULT_DATA_DIR),
    }
}

/// Read and parse a config file.
pub fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse_file(&text, path)
}

/// Parse the text of the config file `path` (no IO: `path` only names it in errors).
pub fn parse_file(text: &str, path: &Path) -> Result<FileConfig, ConfigError> {
    let parse_err = |message: String| ConfigError::Parse {
        path: path.to_owned(),
        message,
    };
    let line_at = |offset: usize| text.get(..offset).unwrap_or("").matches('\n').count() + 1;
    let line_of = |e: &toml::de::Error| {
        e.span()
            .map(|span| format!("line {}: ", line_at(span.start)))
            .unwrap_or_default()
    };
    let de = toml::Deserializer::parse(text)
        .map_err(|e| parse_err(format!("{}{}", line_of(&e), e.message().trim())))?;
    let mut file: FileConfig = serde_path_to_error::deserialize(de).map_err(|e| {
        let key = e.path().to_string();
        let inner = e.into_inner();
        let key = if key == "." {
            String::new()
        } else {
            format!("`{key}`: ")
        };
        parse_err(format!("{}{key}{}", line_of(&inner), inner.message().trim()).replace('\n', " "))
    })?;
    // `[limits]`: each key known, a whole number in range, named with its line.
    for (key, value) in &file.limits {
        let line = line_at(value.span().start);
        Limits::check_key(key, value.get_ref()).map_err(|e| at_line(e, path, line))?;
        file.limit_lines.insert(key.clone(), line);
    }
    Ok(file)
}

/// A `[limits]` error told as coming from `line` of the config file `path`, in the
/// shape of the file's other errors (`line 3: `limits.page_size`: ...`).
fn at_line(e: ConfigError, path: &Path, line: usize) -> ConfigError {
    match e {
        ConfigError::Value { name, message } => ConfigError::Parse {
            path: path.to_owned(),
            message: if name == "limits" {
                format!("line {line}: {message}")
            } else {
                format!("line {line}: `{name}`: {message}")
            },
        },
        other => other,
    }
}

/// The fuzz target `config_toml` (`fuzz/fuzz_targets/config_toml.rs` compiles this
/// module in, as the binary is not in the library; the unit test
/// `the_fuzz_corpus_and_past_crashes_parse_without_panic` replays its corpus): any
/// bytes parse as a config file, or are refused with an error that names the file.
#[doc(hidden)]
#[allow(dead_code)] // Called by the fuzz target and the tests only.
pub fn fuzz_file(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("fuzz.toml");
    if let Err(e) = parse_file(text, path) {
        let message = e.to_string();
        assert!(message.contains("fuzz.toml"), "{message}");
    }
}

/// A `[limits]` error told as coming from `source` (a variable or a flag).
fn from_source(e: ConfigError, source: &str) -> ConfigError {
    match e {
        ConfigError::Value { name, message } => ConfigError::Value {
            name,
            message: format!("{source}: {message}"),
        },
        other => other,
    }
}

impl Config {
    /// Resolve `mode` with the overrides (flags and their environment fallbacks)
    /// against the config file they name and the defaults.
    pub fn resolve(mode: Mode, o: Overrides) -> Result<Config, ConfigError> {
        let (bind, admin_bind) = (o.bind, o.admin_bind);
        let file = match &o.config_file {
            Some(path) => read_file(path)?,
            None => FileConfig::default(),
        };
        let mut config = Config {
            mode,
            ..Config::default()
        };
        if let Some(b) = bind.or(file.bind) {
            config.bind = b
                .parse()
                .map_err(|e| bad("bind", format!("`{b}`: {e} (expected IP:PORT)")))?;
        }
        if let Some(b) = admin_bind.or(file.admin_bind) {
            config.admin_bind = Some(
                b.parse()
                    .map_err(|e| bad("admin bind", format!("`{b}`: {e} (expected IP:PORT)")))?,
            );
        }
        if let Some(id) = o.instance_id.or(file.instance_id) {
            let ok = !id.is_empty()
                && id.len() <= 16
                && id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
            if !ok {
                return Err(bad(
                    "instance id",
                    format!("`{id}` (expected 1-16 of a-z, 0-9)"),
                ));
            }
            config.instance_id = Some(id);
        }
        let mrtr_key_file = o.mrtr_key_file.clone();
        if let Some(url) = o.storage_url.clone().or(file.storage.url.clone()) {
            let url = url.trim().to_owned();
            if !url.is_empty() {
                if let Some(problem) = storage_url_problem(&url) {
                    return Err(bad("storage.url", problem));
                }
                config.storage.url = Some(url);
            }
        }
        if let Some(name) = &file.storage.redis_durability {
            config.storage.redis_durability =
                RedisDurability::from_name(name).ok_or_else(|| {
                    bad(
                        "storage.redis_durability",
                        format!("`{name}` (expected none, aof or fsync)"),
                    )
                })?;
        }
        if let Some(ms) = file.storage.redis_timeout_ms {
            config.storage.redis_timeout = milliseconds("storage.redis_timeout_ms", ms)?;
        }
        if let Some(dir) = o.data_dir.or(file.data_dir) {
            if dir.as_os_str().is_empty() {
                return Err(bad("data dir", "must not be empty"));
            }
            config.data_dir = dir;
        }
        if let Some(level) = o.log_level.or(file.log_level) {
            config.log_level = LogLevel::parse(&level)?;
        }
        if let Some(on) = o.log_calls.or(file.log_calls) {
            config.log_calls = on;
        }
        config.fixtures = match (o.fixtures, file.fixtures) {
            (Some(list), _) => Fixtures::parse(list.split(','))?,
            (None, Some(list)) => Fixtures::parse(list.iter().map(String::as_str))?,
            (None, None) => Fixtures::default(),
        };
        // `[limits]` from the file (checked key by key when it was read), then each
        // override (environment, then flags), checked alone and named by where it
        // was set; then all together (rules between keys), the error named by where
        // the key it names was set.
        if let Some(var) = o.misnamed_variables.first() {
            let meant = var.replacen("EMCEE_LIMITS_", "EMCEE_LIMIT_", 1);
            return Err(bad(
                "limits",
                format!("{var}: emcee reads no such variable (did you mean {meant}?)"),
            ));
        }
        let mut limits = toml::Table::new();
        let mut sources: HashMap<String, String> = HashMap::new();
        for (key, value) in file.limits {
            limits.insert(key, value.into_inner());
        }
        for set in &o.limits {
            let value = match set.value.trim().parse::<i64>() {
                Ok(n) => toml::Value::Integer(n),
                Err(_) => toml::Value::String(set.value.clone()),
            };
            Limits::check_key(&set.key, &value).map_err(|e| from_source(e, &set.source))?;
            limits.insert(set.key.clone(), value);
            sources.insert(set.key.clone(), set.source.clone());
        }
        config.limits = Limits::from_table(limits).map_err(|e| {
            let key = match &e {
                ConfigError::Value { name, .. } => name.strip_prefix("limits.").unwrap_or(name),
                _ => "",
            };
            match (sources.get(key), file.limit_lines.get(key), &o.config_file) {
                (Some(source), _, _) => from_source(e, source),
                (None, Some(line), Some(path)) => at_line(e, path, *line),
                _ => e,
            }
        })?;
        let fh = file.http;
        let hosts = match o.allowed_hosts {
            Some(list) => Some(
                list.split(',')
                    .map(str::trim)
                    .filter(|h| !h.is_empty())
                    .map(String::from)
                    .collect(),
            ),
            None => fh.allowed_hosts,
        };
        if let Some(hosts) = hosts {
            config.http.allowed_hosts = hosts.iter().map(|h| h.to_ascii_lowercase()).collect();
        }
        if let Some(origins) = fh.allowed_origins {
            config.http.allowed_origins = origins
                .iter()
                .map(|o| o.trim_end_matches('/').to_ascii_lowercase())
                .collect();
        }
        if let Some(n) = fh.workers {
            config.http.workers =
                at_most("http.workers", positive("http.workers", n)?, MAX_WORKERS)?;
        }
        if let Some(n) = fh.max_connections_per_ip {
            config.http.max_connections_per_ip = positive("http.max_connections_per_ip", n)?;
        }
        if let Some(n) = fh.max_connections {
            config.http.max_connections = positive("http.max_connections", n)?;
        }
        if let Some(n) = fh.ops_connections {
            config.http.ops_connections = at_most(
                "http.ops_connections",
                positive("http.ops_connections", n)?,
                MAX_OPS_CONNECTIONS,
            )?;
        }
        if let Some(n) = file.storage.cache_capacity_bytes {
            config.storage.cache_capacity_bytes = positive("storage.cache_capacity_bytes", n)?;
        }
        if let Some(ms) = file.storage.flush_timeout_ms {
            config.storage.flush_timeout = milliseconds("storage.flush_timeout_ms", ms)?;
        }
        if let Some(ms) = file.storage.retry_ms {
            config.storage.retry = milliseconds("storage.retry_ms", ms)?;
        }
        config.mrtr.key_file = mrtr_key_file.or(file.mrtr.key_file);
        if let Some(ms) = file.mrtr.state_ttl_ms {
            config.mrtr.state_ttl = milliseconds("mrtr.state_ttl_ms", ms)?;
        }
        if let Some(n) = file.mrtr.max_state_bytes {
            config.mrtr.max_state_bytes = positive("mrtr.max_state_bytes", n)?;
        }
        if config.mrtr.key_file.is_some() {
            config.mrtr.secret()?; // A missing or short key file is a configuration error.
        }
        // `[auth]`: the tokens file read once now, so that a malformed line stops
        // the start (exit 2) naming the file and the line.
        config.http.auth.tokens_file = o.tokens_file.or(file.auth.tokens_file);
        if let Some(name) = &file.auth.ops {
            config.http.auth.ops = OpsAccess::from_name(name).ok_or_else(|| {
                bad(
                    "auth.ops",
                    format!("`{name}` (expected open, token or admin_only)"),
                )
            })?;
        }
        let auth = &mut config.http.auth;
        auth.issuer = o.auth_issuer.or(file.auth.issuer);
        auth.jwks_url = o.auth_jwks_url.or(file.auth.jwks_url);
        auth.resource = o.auth_resource.or(file.auth.resource);
        auth.audience = file.auth.audience;
        auth.authorization_servers = file.auth.authorization_servers;
        auth.jwks_file = file.auth.jwks_file;
        auth.scopes = file.auth.scopes;
        if let Some(s) = file.auth.jwks_refresh_min_s {
            auth.jwks_refresh_min = Duration::from_secs(s);
        }
        if let Some(ms) = file.auth.jwks_timeout_ms {
            auth.jwks_timeout = Duration::from_millis(ms);
        }
        if let Some(n) = file.auth.jwks_max_bytes {
            auth.jwks_max_bytes = n;
        }
        if let Some(s) = file.auth.leeway_s {
            auth.leeway = Duration::from_secs(s);
        }
        if mode != Mode::Stdio {
            // OAuth keys checked now (exit 2 naming the key), the JWKS file read.
            emcee::auth::Auth::from_config(&config.http.auth)?;
        }
        if let Some(shared) = file.auth.shared_kv {
            config.http.auth.shared_kv = shared;
        }
        config.http.auth.allow_unauthenticated_commands = o
            .allow_unauthenticated_commands
            .or(file.auth.allow_unauthenticated_commands)
            .unwrap_or(false);
        let fr = &file.rate;
        let rate = &mut config.http.rate;
        for (value, slot) in [
            (fr.per_principal_per_s, &mut rate.per_principal_per_s),
            (fr.per_principal_burst, &mut rate.per_principal_burst),
            (fr.per_ip_per_s, &mut rate.per_ip_per_s),
            (fr.per_ip_burst, &mut rate.per_ip_burst),
            (fr.global_per_s, &mut rate.global_per_s),
            (fr.global_burst, &mut rate.global_burst),
        ] {
            if let Some(value) = value {
                *slot = value;
            }
        }
        if let Some(n) = fr.max_keys {
            rate.max_keys = positive("rate.max_keys", n)?;
        }
        // (stdio is never gated: its run does not read the file.)
        if let Some(path) = config
            .http
            .auth
            .tokens_file
            .as_ref()
            .filter(|_| mode != Mode::Stdio)
        {
            emcee::auth::TokenSet::read(path)?;
            if config.http.auth.ops == OpsAccess::AdminOnly && config.admin_bind.is_none() {
                return Err(bad(
                    "auth.ops",
                    "admin_only needs admin_bind (--admin-bind, EMCEE_ADMIN_BIND): \
                     /health and /metrics are served only there",
                ));
            }
        }
        // `[tools]`: the built-ins kept (flag or variable over the file), then the
        // command tools, each error naming the file and the key.
        let in_file = |message: String| match &o.config_file {
            Some(path) => ConfigError::Parse {
                path: path.clone(),
                message,
            },
            None => bad("tools", message),
        };
        config.builtin_tools = match (&o.builtin_tools, &file.tools.builtin) {
            (Some(text), _) => BuiltinChoice::parse(text)
                .names()
                .map_err(|e| bad("--builtin-tools (EMCEE_BUILTIN_TOOLS)", e))?,
            (None, Some(choice)) => choice
                .names()
                .map_err(|e| in_file(format!("`tools.builtin`: {e}")))?,
            (None, None) => config.builtin_tools,
        };
        let mut names = std::collections::HashSet::new();
        for tool in &file.tools.command {
            tool.validate()
                .and_then(|()| tool.check_program())
                .map_err(|e| in_file(format!("`tools.command`: {e}")))?;
            if !names.insert(tool.name.clone()) {
                return Err(in_file(format!(
                    "`tools.command`: two command tools are named `{}`: rename one",
                    tool.name
                )));
            }
            if config.builtin_tools.contains(&tool.name) {
                return Err(in_file(format!(
                    "`tools.command`: command tool `{0}`: `{0}` is a built-in tool's name: \
                     rename the command tool, or leave `{0}` out of `tools.builtin` \
                     (e.g. builtin = false)",
                    tool.name
                )));
            }
        }
        config.command_tools = file.tools.command;
        if mode == Mode::Serve {
            refuse_unauthenticated_commands(&config)?;
        }
        Ok(config)
    }
}

/// Whether clients must prove who they are on `/mcp`: `[auth] tokens_file` or
/// OAuth (`[auth] issuer`, `jwks_file`, `jwks_url`...).
pub fn auth_configured(config: &Config) -> bool {
    config.http.auth.enabled()
}

/// The safe default: `serve` on a non-loopback address with command tools and no
/// auth would let anyone who reaches the port run those programs. Refused (exit 2)
/// unless `[auth] allow_unauthenticated_commands` says it is meant.
fn refuse_unauthenticated_commands(config: &Config) -> Result<(), ConfigError> {
    if config.command_tools.is_empty()
        || config.bind.ip().is_loopback()
        || auth_configured(config)
        || config.http.auth.allow_unauthenticated_commands
    {
        return Ok(());
    }
    Err(bad(
        "auth.allow_unauthenticated_commands",
        format!(
            "refusing to serve command tools ([[tools.command]]) on {} (not loopback) \
             without auth: set [auth] tokens_file or OAuth ([auth] issuer), or allow \
             it on purpose with [auth] allow_unauthenticated_commands = true \
             (EMCEE_ALLOW_UNAUTHENTICATED_COMMANDS=true, --allow-unauthenticated-commands)",
            config.bind
        ),
    ))
}

/// Most HTTP worker threads (`http.workers`): one per CPU is the default; far more
/// only costs memory, and an absurd count fails to spawn.
const MAX_WORKERS: usize = 1024;

/// Most connections kept for the operations routes (`http.ops_connections`): a few
/// probes and scrapers need a few.
const MAX_OPS_CONNECTIONS: usize = 4096;

/// `n` if it is at most `max`, else an error naming `name` and the range.
fn at_most(name: &'static str, n: usize, max: usize) -> Result<usize, ConfigError> {
    if n > max {
        return Err(bad(
            name,
            format!("{n} is out of range (allowed: 1 to {max})"),
        ));
    }
    Ok(n)
}

/// A duration setting in milliseconds: 1 to `limits`' [`MAX_DURATION_MS`].
fn milliseconds(name: &'static str, ms: u64) -> Result<Duration, ConfigError> {
    if ms == 0 || ms > MAX_DURATION_MS {
        return Err(bad(
            name,
            format!("{ms} is out of range (allowed: 1 to {MAX_DURATION_MS} milliseconds)"),
        ));
    }
    Ok(Duration::from_millis(ms))
}

fn positive<T: PartialEq + Default + Copy>(name: &'static str, n: T) -> Result<T, ConfigError> {
    if n == T::default() {
        Err(bad(name, "must be greater than 0"))
    } else {
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn the_fuzz_corpus_and_past_crashes_parse_without_panic() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
        let (ran, failed) = emcee::fuzzing::replay(&dir, "config_toml", super::fuzz_file);
        assert!(ran > 0, "no corpus for config_toml");
        assert!(failed.is_empty(), "inputs that panicked: {failed:#?}");
    }
}
