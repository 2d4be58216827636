//! Fuzz target `request_state`: see `emcee::fuzzing::request_state` for what it reaches and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| emcee::fuzzing::request_state(data));
