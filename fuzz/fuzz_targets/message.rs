//! Fuzz target `message`: see `emcee::fuzzing::message` for what it reaches and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| emcee::fuzzing::message(data));
