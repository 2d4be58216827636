//! Fuzz target `jwt`: a JWKS document, a NUL, and a bearer credential through the
//! OAuth resource server's key parsing and token checks (`emcee::fuzzing::jwt`,
//! which delegates to `emcee::auth::oauth::fuzz_jwt`).
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| emcee::fuzzing::jwt(data));
