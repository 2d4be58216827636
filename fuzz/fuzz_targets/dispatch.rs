//! Fuzz target `dispatch`: see `emcee::fuzzing::dispatch` for what it reaches and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| emcee::fuzzing::dispatch(data));
