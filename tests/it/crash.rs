//! Crash test (DESIGN §3): kill -9 the real binary at random moments while a client
//! writes with `kv_set`; after a restart every acknowledged write is present.
//! 3 rounds by default; `EMCEE_SLOW_TESTS=1` runs 20.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::Stdio;

/// Writes kept in flight at once, so the kill lands mid-write.
const PIPELINE: u64 = 8;

fn rounds() -> usize {
    if std::env::var_os("EMCEE_SLOW_TESTS").is_some() {
        20
    } else {
        3
    }
}

/// A small xorshift generator seeded from the clock: a different kill moment per run.
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        Rng(nanos | 1)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

#[test]
fn kill_9_loses_no_acknowledged_kv_write() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = Rng::new();
    let mut acked: BTreeMap<String, String> = BTreeMap::new();
    let mut next = 0u64;
    for round in 0..rounds() {
        let mut s = Stdio::start_in(dir.path(), &[], &[]);
        s.initialize("2025-11-25");
        let kill_after = Duration::from_millis(20 + rng.below(300));
        let started = Instant::now();
        let mut in_flight: BTreeMap<u64, (String, String)> = BTreeMap::new();
        while started.elapsed() < kill_after {
            while (in_flight.len() as u64) < PIPELINE {
                next += 1;
                let (key, value) = (format!("r{round}-k{next}"), format!("v{next}"));
                s.send_call(next, "kv_set", json!({"key": key, "value": value}));
                in_flight.insert(next, (key, value));
            }
            if let Some(resp) = s.try_recv(Duration::from_millis(50)) {
                let id = resp["id"].as_u64().expect("numeric id");
                assert!(resp["result"]["isError"].is_null(), "kv_set failed: {resp}");
                let (key, value) = in_flight.remove(&id).expect("a known id");
                acked.insert(key, value);
            }
        }
        s.signal("KILL");
        let (status, late, _) = s.wait();
        assert!(!status.success(), "killed");
        // Answers already written to the pipe were acknowledged too.
        for resp in late {
            if let Some((key, value)) = resp["id"].as_u64().and_then(|id| in_flight.remove(&id)) {
                acked.insert(key, value);
            }
        }
    }
    assert!(
        acked.len() >= rounds(),
        "the test wrote something: {}",
        acked.len()
    );

    let mut s = Stdio::start_in(dir.path(), &[], &[]);
    s.initialize("2025-11-25");
    for (i, (key, value)) in acked.iter().enumerate() {
        let r = s.call_ok(1_000_000 + i as u64, "kv_get", json!({"key": key}));
        assert_eq!(
            r["structuredContent"]["value"], *value,
            "acknowledged write {key} lost: {r}"
        );
    }
}
