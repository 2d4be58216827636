//! Fuzz target `last_event_id`: see `emcee::fuzzing::last_event_id` for what it reaches and checks.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| emcee::fuzzing::last_event_id(data));
