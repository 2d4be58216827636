//! Counting gates: bounded in-flight work without queues. A caller either gets a
//! [`Permit`] at once or is refused at once; the permit is released when dropped
//! (when the Call actor holding it stops, however it ends). A [`KeyedGate`] counts
//! per key (a principal's share), holding an entry only while its key has permits
//! out.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// A counter with a limit.
#[derive(Debug)]
pub struct Gate {
    count: AtomicUsize,
    limit: usize,
}

/// One unit of a gate's capacity; released on drop.
#[derive(Debug)]
pub struct Permit(Held);

#[derive(Debug)]
enum Held {
    Gate(Arc<Gate>),
    Keyed(Arc<KeyedGate>, Arc<str>),
}

/// A limit per key: at most `limit` permits out for any one key. The map holds
/// only keys with permits out (so at most as many entries as permits).
#[derive(Debug)]
pub struct KeyedGate {
    counts: std::sync::Mutex<std::collections::HashMap<Arc<str>, usize>>,
    limit: usize,
}

impl KeyedGate {
    /// A gate admitting at most `limit` at once per key.
    pub fn new(limit: usize) -> Arc<KeyedGate> {
        Arc::new(KeyedGate {
            counts: std::sync::Mutex::default(),
            limit,
        })
    }

    /// A permit for `key`, or `None` when `limit` are already out for it.
    pub fn try_enter(self: &Arc<Self>, key: &Arc<str>) -> Option<Permit> {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = counts.entry(key.clone()).or_insert(0);
        if *n >= self.limit {
            if *n == 0 {
                counts.remove(key);
            }
            return None;
        }
        *n += 1;
        Some(Permit(Held::Keyed(self.clone(), key.clone())))
    }

    /// Permits out now for `key`.
    pub fn in_use(&self, key: &str) -> usize {
        let counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts.get(key).copied().unwrap_or(0)
    }

    /// Keys with permits out.
    pub fn keys(&self) -> usize {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// The limit per key.
    pub fn limit(&self) -> usize {
        self.limit
    }

    fn release(&self, key: &str) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                counts.remove(key);
            }
        }
    }
}

impl Gate {
    /// A gate admitting at most `limit` at once.
    pub fn new(limit: usize) -> Arc<Gate> {
        Arc::new(Gate {
            count: AtomicUsize::new(0),
            limit,
        })
    }

    /// A permit, or `None` when `limit` are already out.
    pub fn try_enter(self: &Arc<Self>) -> Option<Permit> {
        self.count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.limit).then_some(n + 1)
            })
            .ok()
            .map(|_| Permit(Held::Gate(self.clone())))
    }

    /// Permits out now.
    pub fn in_use(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }

    /// The limit.
    pub fn limit(&self) -> usize {
        self.limit
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        match &self.0 {
            Held::Gate(gate) => {
                gate.count.fetch_sub(1, Ordering::AcqRel);
            }
            Held::Keyed(gate, key) => gate.release(key),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admits_up_to_the_limit_and_frees_on_drop() {
        let g = Gate::new(2);
        let a = g.try_enter().unwrap();
        let _b = g.try_enter().unwrap();
        assert!(g.try_enter().is_none());
        assert_eq!(g.in_use(), 2);
        drop(a);
        assert!(g.try_enter().is_some());
        assert_eq!(g.in_use(), 1, "the temporary permit was dropped");
    }

    #[test]
    fn a_keyed_gate_counts_each_key_and_forgets_idle_ones() {
        let g = KeyedGate::new(2);
        let (a, b): (Arc<str>, Arc<str>) = ("a".into(), "b".into());
        let a1 = g.try_enter(&a).unwrap();
        let _a2 = g.try_enter(&a).unwrap();
        assert!(g.try_enter(&a).is_none(), "a holds its share");
        let b1 = g.try_enter(&b).unwrap();
        assert_eq!((g.in_use("a"), g.in_use("b"), g.keys()), (2, 1, 2));
        drop(b1);
        assert_eq!(g.keys(), 1, "b has nothing out: forgotten");
        drop(a1);
        assert!(g.try_enter(&a).is_some());
    }
}
