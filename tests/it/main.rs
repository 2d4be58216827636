//! Integration tests: one binary, each module drives the real `emcee` executable.

mod auth;
mod bench;
mod builtin_tools;
mod cli;
mod command_tools;
mod conformance;
mod connections;
mod crash;
mod deploy;
mod examples;
mod fleet;
mod harness;
mod http;
mod logs;
mod modern_http;
mod modern_stdio;
mod mrtr;
mod ops;
mod py_client;
mod registries;
mod stdio;
mod tasks;
mod tidy;
mod transports;
mod ts_client;
mod unread_answers;
