//! Fuzz target `header_value`: see `emcee::fuzzing::header_value` for what it reaches and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| emcee::fuzzing::header_value(data));
