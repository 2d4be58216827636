//! Tool argument checks (`src/tools/constraints.rs`): the cost of `uniqueItems` over
//! a large array, which a client chooses (schemars writes `uniqueItems` for every
//! `HashSet`/`BTreeSet` argument). Issue 18 item 4: the check was O(n²), two 1 MB
//! requests held both HTTP workers for 24 s.
//!
//! Run with: `cargo bench --bench constraints`
//!
//! The module is compiled into this bench from its source (it is private to the
//! library), so the figures are the check alone: no dispatch, no JSON parse.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, SamplingMode};
use serde_json::{json, Value};
use std::hint::black_box;

#[allow(dead_code)]
#[path = "../src/tools/constraints.rs"]
mod constraints;

/// What the module's unit tests import from the library (they compile here too).
#[allow(unused_imports)]
mod tools {
    pub use emcee::tools::schema_of;
}

fn unique_items(c: &mut Criterion) {
    let schema = json!({"type": "object", "properties": {
        "tags": {"type": "array", "uniqueItems": true, "items": {"type": "string"}}
    }});
    let checks = constraints::Constraints::compile(&schema).expect("has constraints");
    let mut group = c.benchmark_group("constraints/unique_items");
    // The quadratic version takes seconds per check at 100k: one check per sample.
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    for n in [10_000usize, 100_000] {
        // Distinct strings (the worst case: every item is compared), ~1 MB at 100k.
        let tags: Vec<Value> = (0..n).map(|i| json!(format!("tag-{i:07}"))).collect();
        let args = json!({ "tags": tags });
        group.bench_with_input(BenchmarkId::from_parameter(n), &args, |b, args| {
            b.iter(|| black_box(checks.check(black_box(args))))
        });
    }
    group.finish();
}

criterion_group!(benches, unique_items);
criterion_main!(benches);
