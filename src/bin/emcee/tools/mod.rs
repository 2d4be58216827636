//! The tool sets the binary ships: the built-in tools (`echo`, `sleep`, `kv_*`) and
//! `kv://` resources, command tools from the configuration (`[[tools.command]]`),
//! and the fixture sets behind `--fixtures` (`faults`, and `conformance`: what the
//! official conformance suite calls). Each registers itself on the library's
//! registries.

pub mod builtin;
pub mod command;
pub mod conformance;
pub mod faults;
