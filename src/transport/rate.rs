//! Rate limits of the HTTP transport (`[rate]`, [`RateConfig`]): GCRA buckets from
//! the `governor` crate, one per principal (`[auth]`), one per client address for
//! requests that bring no principal (auth off; IPv6 by /64), and one for the whole
//! server. `transport::http` asks [`RateLimits::check`] once a POST is parsed, with
//! the number of its metered messages ([`metered`]: `initialize` and `tools/call`,
//! a task's creation included); a refusal is 429 with `Retry-After`.
//!
//! The per-key maps are bounded: keys whose bucket is full again (they could not
//! be told from a new key; governor's `retain_recent` keeps a key one emission
//! interval longer) are forgotten every [`PURGE_EVERY`], by the first check after
//! it, and at once when a map reaches `rate.max_keys`; still at the bound, every
//! key is refused until some are forgotten. Requests whose credentials were
//! refused never get here, so made-up tokens make no key.
//! **Invariant:** nothing here blocks or logs; the caller counts and logs refusals.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota};

use crate::config::RateConfig;
use crate::protocol::request::ClientRequest;
use crate::protocol::{Message, Payload};
use crate::transport::connections::client_key;

/// How often idle keys are forgotten (by the first check after it).
pub const PURGE_EVERY: Duration = Duration::from_secs(10);

/// Who a metered request is counted for.
#[derive(Debug, Clone, Copy)]
pub enum Key<'a> {
    /// A principal (`[auth]`): its name.
    Principal(&'a Arc<str>),
    /// A client address (no principal: auth off).
    Address(IpAddr),
    /// Neither known (a mounted server without a peer address): only the global
    /// bucket applies.
    Unknown,
}

/// The limit a refused request reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `rate.per_principal_per_s`.
    Principal,
    /// `rate.per_ip_per_s`.
    Address,
    /// `rate.global_per_s`.
    Global,
    /// `rate.max_keys`: the key map is full of keys still in use.
    Keys,
}

impl Limit {
    /// The setting an operator changes.
    pub fn setting(self) -> &'static str {
        match self {
            Limit::Principal => "rate.per_principal_per_s",
            Limit::Address => "rate.per_ip_per_s",
            Limit::Global => "rate.global_per_s",
            Limit::Keys => "rate.max_keys",
        }
    }
}

/// A refused check: the limit reached, and when the request would pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Over {
    /// The limit.
    pub limit: Limit,
    /// How long until the bucket holds what was asked (for `Retry-After`).
    pub retry_after: Duration,
}

impl Over {
    /// `Retry-After` in whole seconds, rounded up, at least 1.
    pub fn retry_after_secs(&self) -> u64 {
        let d = self.retry_after;
        (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
    }
}

/// A keyed limiter and its bound.
struct Keyed<K: std::hash::Hash + Eq + Clone> {
    limiter: DefaultKeyedRateLimiter<K>,
    limit: Limit,
}

/// The server's buckets (`[rate]`).
pub struct RateLimits {
    per_principal: Option<Keyed<Arc<str>>>,
    per_ip: Option<Keyed<IpAddr>>,
    global: Option<DefaultDirectRateLimiter>,
    max_keys: usize,
    clock: DefaultClock,
    /// When the idle keys were last forgotten, in ms since `born`.
    purged_ms: AtomicU64,
    born: Instant,
}

impl std::fmt::Debug for RateLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimits")
            .field("per_principal", &self.per_principal.is_some())
            .field("per_ip", &self.per_ip.is_some())
            .field("global", &self.global.is_some())
            .field("max_keys", &self.max_keys)
            .finish()
    }
}

/// The quota of a rate and a burst (0: one second's worth); `None` when off.
fn quota(per_s: u32, burst: u32) -> Option<Quota> {
    let rate = NonZeroU32::new(per_s)?;
    let burst = NonZeroU32::new(burst).unwrap_or(rate);
    Some(Quota::per_second(rate).allow_burst(burst))
}

impl RateLimits {
    /// The buckets `config` asks for; `None` when every rate is off.
    pub fn from_config(config: &RateConfig) -> Option<RateLimits> {
        let per_principal =
            quota(config.per_principal_per_s, config.per_principal_burst).map(|q| Keyed {
                limiter: DefaultKeyedRateLimiter::dashmap(q),
                limit: Limit::Principal,
            });
        let per_ip = quota(config.per_ip_per_s, config.per_ip_burst).map(|q| Keyed {
            limiter: DefaultKeyedRateLimiter::dashmap(q),
            limit: Limit::Address,
        });
        let global =
            quota(config.global_per_s, config.global_burst).map(DefaultDirectRateLimiter::direct);
        if per_principal.is_none() && per_ip.is_none() && global.is_none() {
            return None;
        }
        Some(RateLimits {
            per_principal,
            per_ip,
            global,
            max_keys: config.max_keys.max(1),
            clock: DefaultClock::default(),
            purged_ms: AtomicU64::new(0),
            born: Instant::now(),
        })
    }

    /// Take `n` requests (at least 1) from `key`'s bucket, then from the global
    /// one; the first that has not room refuses (a batch's items pass or fail
    /// together).
    pub fn check(&self, key: Key<'_>, n: usize) -> Result<(), Over> {
        let Some(n) = NonZeroU32::new(u32::try_from(n.max(1)).unwrap_or(u32::MAX)) else {
            return Ok(());
        };
        self.purge_if_due();
        match key {
            Key::Principal(name) => {
                if let Some(keyed) = &self.per_principal {
                    self.check_keyed(keyed, name, n)?;
                }
            }
            Key::Address(ip) => {
                if let Some(keyed) = &self.per_ip {
                    self.check_keyed(keyed, &client_key(ip), n)?;
                }
            }
            Key::Unknown => {}
        }
        if let Some(global) = &self.global {
            let outcome = global.check_n(n);
            self.outcome(outcome, Limit::Global)?;
        }
        Ok(())
    }

    fn check_keyed<K: std::hash::Hash + Eq + Clone>(
        &self,
        keyed: &Keyed<K>,
        key: &K,
        n: NonZeroU32,
    ) -> Result<(), Over> {
        if keyed.limiter.len() >= self.max_keys {
            keyed.limiter.retain_recent();
            keyed.limiter.shrink_to_fit();
            if keyed.limiter.len() >= self.max_keys {
                return Err(Over {
                    limit: Limit::Keys,
                    retry_after: Duration::from_secs(1),
                });
            }
        }
        let outcome = keyed.limiter.check_key_n(key, n);
        self.outcome(outcome, keyed.limit)
    }

    fn outcome(
        &self,
        outcome: Result<
            Result<(), governor::NotUntil<<DefaultClock as Clock>::Instant>>,
            governor::InsufficientCapacity,
        >,
        limit: Limit,
    ) -> Result<(), Over> {
        match outcome {
            Ok(Ok(())) => Ok(()),
            Ok(Err(not_until)) => Err(Over {
                limit,
                retry_after: not_until.wait_time_from(self.clock.now()),
            }),
            // More at once than the burst: it never fits; say when the bucket is full.
            Err(governor::InsufficientCapacity(_)) => Err(Over {
                limit,
                retry_after: Duration::from_secs(1),
            }),
        }
    }

    /// Forget the keys whose bucket is full again, once every [`PURGE_EVERY`]
    /// (the first check after it does it; the others go on).
    fn purge_if_due(&self) {
        let now = u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        let last = self.purged_ms.load(Ordering::Relaxed);
        let every = PURGE_EVERY.as_millis() as u64;
        if now.saturating_sub(last) < every
            || self
                .purged_ms
                .compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed)
                .is_err()
        {
            return;
        }
        self.purge();
    }

    /// Forget the keys whose bucket is full again, now.
    pub fn purge(&self) {
        if let Some(keyed) = &self.per_principal {
            keyed.limiter.retain_recent();
            keyed.limiter.shrink_to_fit();
        }
        if let Some(keyed) = &self.per_ip {
            keyed.limiter.retain_recent();
            keyed.limiter.shrink_to_fit();
        }
    }

    /// Keys remembered now: per principal, per address.
    #[cfg(test)]
    fn keys(&self) -> (usize, usize) {
        (
            self.per_principal.as_ref().map_or(0, |k| k.limiter.len()),
            self.per_ip.as_ref().map_or(0, |k| k.limiter.len()),
        )
    }
}

/// The messages of `payload` a rate limit counts: requests to `initialize` and
/// `tools/call` (with or without a task). Never discovery, lists, reads,
/// `ping`, `subscriptions/listen`, notifications or responses.
pub fn metered(payload: &Payload) -> usize {
    let is_metered = |m: &Result<Message, _>| {
        matches!(m, Ok(Message::Request(r))
            if matches!(r.call, ClientRequest::Initialize(_) | ClientRequest::ToolsCall(_)))
    };
    match payload {
        Payload::Single(m) => usize::from(is_metered(m)),
        Payload::Batch(items) => items.iter().filter(|m| is_metered(m)).count(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(n: u32) -> Key<'static> {
        Key::Address(IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n)))
    }

    fn config(f: impl FnOnce(&mut RateConfig)) -> RateConfig {
        let mut c = RateConfig::default();
        f(&mut c);
        c
    }

    #[test]
    fn off_by_default() {
        assert!(RateLimits::from_config(&RateConfig::default()).is_none());
    }

    #[test]
    fn a_key_gets_its_burst_then_is_refused_with_the_wait() {
        let r = RateLimits::from_config(&config(|c| {
            c.per_ip_per_s = 1;
            c.per_ip_burst = 2;
        }))
        .unwrap();
        let a = Key::Address("10.0.0.1".parse().unwrap());
        assert!(r.check(a, 1).is_ok() && r.check(a, 1).is_ok());
        let over = r.check(a, 1).unwrap_err();
        assert_eq!(over.limit, Limit::Address);
        assert!(over.retry_after <= Duration::from_secs(1), "{over:?}");
        assert_eq!(over.retry_after_secs(), 1);
        // Another address has its own bucket; the same /64 shares one.
        assert!(r
            .check(Key::Address("10.0.0.2".parse().unwrap()), 1)
            .is_ok());
        let v6 = |s: &str| Key::Address(s.parse().unwrap());
        assert!(r.check(v6("2001:db8::1"), 2).is_ok());
        assert_eq!(
            r.check(v6("2001:db8::2"), 1).unwrap_err().limit,
            Limit::Address
        );
    }

    #[test]
    fn a_batch_counts_each_item_and_the_global_bucket_all() {
        let r = RateLimits::from_config(&config(|c| {
            c.per_principal_per_s = 1;
            c.per_principal_burst = 3;
            c.global_per_s = 1;
            c.global_burst = 5;
        }))
        .unwrap();
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        assert!(r.check(Key::Principal(&a), 3).is_ok());
        assert_eq!(
            r.check(Key::Principal(&a), 1).unwrap_err().limit,
            Limit::Principal
        );
        assert!(r.check(Key::Principal(&b), 2).is_ok());
        assert_eq!(
            r.check(Key::Principal(&b), 1).unwrap_err().limit,
            Limit::Global,
            "five taken from the global bucket"
        );
        // More than a burst at once never fits.
        assert_eq!(
            r.check(Key::Principal(&"c".into()), 4).unwrap_err().limit,
            Limit::Principal
        );
    }

    #[test]
    fn at_max_keys_with_every_key_in_use_a_request_is_refused() {
        let r = RateLimits::from_config(&config(|c| {
            c.per_ip_per_s = 1; // a key stays in use for about 2 s
            c.per_ip_burst = 1;
            c.max_keys = 100;
        }))
        .unwrap();
        for n in 0..100 {
            assert!(r.check(ip(n), 1).is_ok());
        }
        assert_eq!(r.keys().1, 100);
        assert_eq!(r.check(ip(100), 1).unwrap_err().limit, Limit::Keys);
        assert_eq!(r.keys().1, 100, "nothing was added");
    }

    #[test]
    fn many_distinct_keys_keep_the_map_within_max_keys() {
        let r = RateLimits::from_config(&config(|c| {
            c.per_ip_per_s = 1000; // a key idle for ~2 ms is forgotten
            c.per_ip_burst = 1;
            c.max_keys = 100;
        }))
        .unwrap();
        let mut admitted = 0;
        for n in 0..10_000 {
            if n % 50 == 0 {
                std::thread::sleep(Duration::from_millis(3));
            }
            admitted += usize::from(r.check(ip(n), 1).is_ok());
            assert!(r.keys().1 <= 100, "{} keys", r.keys().1);
        }
        assert!(
            admitted >= 9_000,
            "idle keys make room: {admitted} admitted"
        );
        std::thread::sleep(Duration::from_millis(5));
        r.purge();
        assert_eq!(r.keys().1, 0, "idle keys are forgotten");
    }

    #[test]
    fn only_initialize_and_tools_call_are_metered() {
        let parse = |s: &str| crate::protocol::jsonrpc::parse(s.as_bytes());
        let one = |method: &str, params: &str| {
            format!(r#"{{"jsonrpc":"2.0","id":1,"method":"{method}","params":{params}}}"#)
        };
        let init = one(
            "initialize",
            r#"{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"t","version":"1"}}"#,
        );
        let call = one("tools/call", r#"{"name":"echo","arguments":{"text":"x"}}"#);
        assert_eq!(metered(&parse(&init)), 1);
        assert_eq!(metered(&parse(&call)), 1);
        for other in [
            one("tools/list", "{}"),
            one("ping", "{}"),
            one("server/discover", "{}"),
            one("resources/list", "{}"),
            one("prompts/list", "{}"),
            one("subscriptions/listen", r#"{"notifications":{}}"#),
            one("resources/read", r#"{"uri":"kv://a"}"#),
            r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#.to_owned(),
            r#"{"jsonrpc":"2.0","id":1,"result":{}}"#.to_owned(),
        ] {
            assert_eq!(metered(&parse(&other)), 0, "{other}");
        }
        let batch = format!("[{call},{},{call}]", one("ping", "{}"));
        assert_eq!(metered(&parse(&batch)), 2);
    }
}
