//! The server the binary serves: the library's [`Server`] with the built-in tools
//! the configuration keeps (and the `kv://` resources when a kv tool is kept), the configuration's command tools, and the enabled
//! fixture sets, over the configured transport.

use std::future::Future;

use emcee::{Error, HttpOptions, Server, StorageOptions, Transport};
use slog::Logger;

use crate::config::{Config, Mode};
use crate::tools;

/// The binary's server for `config`.
pub fn binary_server(config: &Config, log: Logger) -> Result<Server, Error> {
    let mut builder = Server::builder()
        .limits(config.limits.clone())
        .storage(StorageOptions::Dir(
            config.data_dir.clone(),
            config.storage.clone(),
        ))
        .mrtr(config.mrtr.clone())
        .logger(log)
        .log_calls(config.log_calls)
        // The built-in kv tools' namespace holds at most `limits.kv_max_bytes`.
        .kv_bounded(tools::builtin::KV_NAMESPACE);
    {
        let r = builder.registries();
        tools::builtin::register_kept(r.tools, &config.limits, &config.builtin_tools)?;
        if tools::builtin::serves_kv_resources(&config.builtin_tools) {
            tools::builtin::register_resources(r.resources)?;
        }
        tools::command::register(r.tools, &config.command_tools, config.limits.call_timeout)?;
        if config.fixtures.faults {
            tools::faults::register(r.tools, r.health)?;
        }
        if config.fixtures.conformance {
            tools::conformance::register(r.tools, r.resources, r.prompts)?;
        }
    }
    Ok(builder.build()?)
}

/// Run the configured mode until `shutdown` resolves (or stdin closes, on stdio):
/// [`binary_server`] served over the configured transport.
///
/// Must be called inside an actix `System`. Storage is flushed before returning.
pub async fn run(
    config: Config,
    log: Logger,
    shutdown: impl Future<Output = ()>,
) -> Result<(), Error> {
    let transport = match config.mode {
        Mode::Stdio => Transport::Stdio,
        Mode::Serve => {
            let mut http = HttpOptions::new(config.bind);
            http.admin_bind = config.admin_bind;
            http.instance_id = config.instance_id.clone();
            http.http = config.http.clone();
            Transport::Http(http)
        }
        Mode::Config | Mode::Healthcheck => return Ok(()),
    };
    binary_server(&config, log)?
        .serve(transport, shutdown)
        .await
}
