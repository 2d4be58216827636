//! The `emcee` binary: parse the configuration, start logging, run, map the outcome
//! to an exit code (0 ok, 1 runtime failure, 2 bad usage or configuration, 3 storage).
//! `emcee bench` (the load generator) is dispatched before any server configuration.

// Three `unsafe` blocks, each `#[allow(unsafe_code)]` with its SAFETY comment: in
// `tools/command.rs`, `kill(2)` (a command tool's process group and escaped
// children) and the `pre_exec` that sets the program's parent-death signal; in
// `alloc.rs`, the glibc `mallopt` settings made before any thread starts. The
// library has none (`#![forbid(unsafe_code)]`).
#![deny(unsafe_code)]

use std::io::Write;

mod alloc;
mod bench;
mod cli;
mod config;
mod healthcheck;
mod server;
mod tools;

use clap::Parser;
use cli::Cli;
use config::{Config, Mode};
use emcee::telemetry;

fn main() {
    alloc::tune();
    let code = match Cli::try_parse() {
        Err(e) => match e.kind() {
            clap::error::ErrorKind::DisplayHelp | clap::error::ErrorKind::DisplayVersion => {
                let _ = e.print();
                0
            }
            _ => {
                eprintln!("emcee: {}", clap_error_line(&e.to_string()));
                2
            }
        },
        // `bench` is a client: its flags are its whole configuration.
        Ok(cli) => match cli.into_parts() {
            Err(bench) => bench::run(bench),
            Ok((mode, overrides)) => match Config::resolve(mode, overrides) {
                Err(e) => {
                    eprintln!("emcee: {e}");
                    2
                }
                Ok(config) if config.mode == Mode::Config => print_config(&config),
                Ok(config) if config.mode == Mode::Healthcheck => healthcheck(&config),
                Ok(config) => serve(config),
            },
        },
    };
    std::process::exit(code);
}

/// A clap error on one line: the problem and clap's tips ("a similar argument
/// exists: '--limit'"); `--help` has the rest.
fn clap_error_line(text: &str) -> String {
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines.next().unwrap_or("invalid arguments");
    let mut line = first.strip_prefix("error: ").unwrap_or(first).to_owned();
    for tip in lines.filter_map(|l| l.strip_prefix("tip: ")) {
        line.push_str("; ");
        line.push_str(tip);
    }
    line.push_str(" (see `emcee --help`)");
    line
}

fn print_config(config: &Config) -> i32 {
    let mut out = std::io::stdout().lock();
    match serde_json::to_string_pretty(config) {
        Ok(text) => {
            let _ = writeln!(out, "{text}");
            0
        }
        Err(e) => {
            eprintln!("emcee: cannot print the configuration: {e}");
            1
        }
    }
}

fn healthcheck(config: &Config) -> i32 {
    let addr = healthcheck::probe_address(config.admin_bind.unwrap_or(config.bind));
    match healthcheck::probe(addr, std::time::Duration::from_secs(3)) {
        Ok(200) => 0,
        Ok(status) => {
            eprintln!("emcee: http://{addr}/health answered {status}");
            1
        }
        Err(e) => {
            eprintln!("emcee: cannot reach http://{addr}/health: {e}");
            1
        }
    }
}

/// How long the exit waits for queued log lines to reach stderr.
const LOG_FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(2);

fn serve(config: Config) -> i32 {
    let log = telemetry::logging::logger_queued(config.log_level, config.limits.log_queue_bytes);
    telemetry::install_panic_hook(log.clone());
    let system = actix::System::new();
    let result = system.block_on(server::run(config, log.clone(), emcee::shutdown_signal()));
    let code = match result {
        Ok(()) => 0,
        Err(e) => {
            slog::crit!(log, "emcee stopped on an error"; "error" => e.to_string());
            e.exit_code()
        }
    };
    // Exit while the runtime is still alive: when stdin is a terminal or a file, dropping
    // it would wait for the blocking thread parked in read(2) on stdin, which only
    // returns when the client closes it.
    // Storage and stdout were flushed by `run`; the log lines still queued are
    // written now.
    telemetry::logging::flush(LOG_FLUSH_TIMEOUT);
    std::process::exit(code);
}
