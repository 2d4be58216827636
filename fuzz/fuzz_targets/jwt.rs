//! Fuzz target `jwt`: a bearer credential and a JWKS document through the OAuth
//! resource server's parsing and verification (`emcee::fuzzing::jwt`, which
//! delegates to the `#[doc(hidden)]` entry point of `src/auth.rs`).
//!
//! Not built yet: it joins `Cargo.toml`'s `[[bin]]` list, and `jwt` joins
//! `emcee::fuzzing::TARGETS`, when the OAuth branch is merged.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| emcee::fuzzing::jwt(data));
