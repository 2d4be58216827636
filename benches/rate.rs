//! The cost of a rate-limit check (`[rate]`, `src/transport/rate.rs`): governor's
//! GCRA buckets as emcee builds them (a dashmap-keyed limiter per principal or
//! address, a direct one for the server), on a conforming request (a generous
//! quota: every check passes, as for a client within its limit) and on a refused
//! one, with 1 key and with 10,000 keys in the map; and the purge's scan of
//! 10,000 keys in use.
//!
//! Run with: `cargo bench --bench rate`

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroU32;
use std::sync::Arc;

use criterion::{criterion_group, criterion_main, Criterion};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota};

fn generous() -> Quota {
    Quota::per_second(NonZeroU32::new(1_000_000_000).expect("non-zero"))
        .allow_burst(NonZeroU32::new(1_000_000_000).expect("non-zero"))
}

fn stingy() -> Quota {
    Quota::per_hour(NonZeroU32::new(1).expect("non-zero"))
}

fn checks(c: &mut Criterion) {
    let mut group = c.benchmark_group("rate");

    let global = DefaultDirectRateLimiter::direct(generous());
    group.bench_function("global/pass", |b| {
        b.iter(|| black_box(global.check().is_ok()))
    });

    let by_ip = DefaultKeyedRateLimiter::<IpAddr>::dashmap(generous());
    let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    group.bench_function("per_ip/pass/1_key", |b| {
        b.iter(|| black_box(by_ip.check_key(black_box(&ip)).is_ok()))
    });
    for n in 0..10_000u32 {
        let _ = by_ip.check_key(&IpAddr::V4(Ipv4Addr::from(0x0a01_0000 + n)));
    }
    group.bench_function("per_ip/pass/10k_keys", |b| {
        b.iter(|| black_box(by_ip.check_key(black_box(&ip)).is_ok()))
    });

    let by_principal = DefaultKeyedRateLimiter::<Arc<str>>::dashmap(generous());
    let name: Arc<str> = Arc::from("3f9c1e0b");
    group.bench_function("per_principal/pass", |b| {
        b.iter(|| black_box(by_principal.check_key(black_box(&name)).is_ok()))
    });
    group.bench_function("per_principal+global/pass", |b| {
        b.iter(|| {
            black_box(by_principal.check_key(black_box(&name)).is_ok() && global.check().is_ok())
        })
    });

    let refusing = DefaultKeyedRateLimiter::<IpAddr>::dashmap(stingy());
    let _ = refusing.check_key(&ip);
    group.bench_function("per_ip/refused", |b| {
        b.iter(|| black_box(refusing.check_key(black_box(&ip)).is_err()))
    });

    // The purge's scan: 10,000 keys all still in use (kept), as under a flood.
    let purged = DefaultKeyedRateLimiter::<IpAddr>::dashmap(stingy());
    for n in 0..10_000u32 {
        let _ = purged.check_key(&IpAddr::V4(Ipv4Addr::from(0x0a01_0000 + n)));
    }
    group.bench_function("retain_recent/10k_keys_kept", |b| {
        b.iter(|| {
            purged.retain_recent();
            black_box(purged.len())
        })
    });
    group.finish();
}

criterion_group!(benches, checks);
criterion_main!(benches);
