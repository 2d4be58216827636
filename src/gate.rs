//! Counting gates: bounded in-flight work without queues. A caller either gets a
//! [`Permit`] at once or is refused at once; the permit is released when dropped
//! (when the Call actor holding it stops, however it ends).

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
pub struct Permit(Arc<Gate>);

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
            .map(|_| Permit(self.clone()))
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
        self.0.count.fetch_sub(1, Ordering::AcqRel);
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
}
