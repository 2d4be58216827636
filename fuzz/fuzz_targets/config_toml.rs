//! Fuzz target `config_toml`: the binary's config file parser (`config::fuzz_file`).
//! The binary is not in the library, so its config module is compiled in here, with
//! the built-in tool names it checks `[tools] builtin` against, as `benches/` do.
#![no_main]

#[allow(dead_code, unused_imports)]
#[path = "../../src/bin/emcee/config/mod.rs"]
mod config;

#[allow(dead_code)]
#[path = "../../src/bin/emcee/tools/builtin.rs"]
pub mod builtin;

mod tools {
    pub use super::builtin;
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| config::fuzz_file(data));
