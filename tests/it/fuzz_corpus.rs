//! The fuzz targets' committed corpus and every past crash (`fuzz/corpus/TARGET/`,
//! `fuzz/artifacts/TARGET/`), replayed through the entry points the targets call
//! (`emcee::fuzzing`), so that `cargo test` catches a regression without running a
//! fuzzer. The config file's target is replayed by the binary's unit test
//! (`config::tests`), as its parser is the binary's.

use std::path::{Path, PathBuf};

use emcee::fuzzing::{replay, TARGETS};

/// Targets whose entry point is not in `emcee::fuzzing`, with where they replay.
const ELSEWHERE: &[&str] = &["config_toml"];

fn fuzz_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

#[test]
fn every_corpus_input_and_past_crash_replays_without_a_panic() {
    let dir = fuzz_dir();
    for (target, entry) in TARGETS {
        let (ran, failed) = replay(&dir, target, *entry);
        assert!(ran > 0, "no corpus for the fuzz target {target}");
        assert!(
            failed.is_empty(),
            "{target}: {} of {ran} inputs panicked: {failed:#?}",
            failed.len()
        );
    }
}

#[test]
fn every_corpus_folder_is_a_target_that_replays() {
    let known: Vec<&str> = TARGETS
        .iter()
        .map(|(name, _)| *name)
        .chain(ELSEWHERE.iter().copied())
        .collect();
    for folder in ["corpus", "artifacts"] {
        let Ok(entries) = std::fs::read_dir(fuzz_dir().join(folder)) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            assert!(
                known.contains(&name.as_str()),
                "fuzz/{folder}/{name} is replayed by no test (known targets: {known:?})"
            );
        }
    }
}
