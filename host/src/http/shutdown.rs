//! A worker's word to its connections that it is shutting down, so those
//! waiting between requests close.
//!
//! Every connection waits on it between every two requests. A
//! `tokio::sync::watch` (or `Notify`) enqueues and dequeues a waiter under
//! a lock on each wait, about 750 instructions of the 25,000 a `/home/`
//! request took. Here a connection leaves its task's waker once, on its
//! first wait, and each later wait reads a flag and compares the waker with
//! the one it left, taking no lock.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// The worker's end: [`Shutdown::fire`] wakes every connection watching.
#[derive(Clone, Default)]
pub struct Shutdown {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    fired: AtomicBool,
    slots: Mutex<Slots>,
}

/// One slot per watching connection; freed ones are reused.
#[derive(Default)]
struct Slots {
    wakers: Vec<Option<Waker>>,
    free: Vec<usize>,
}

impl Inner {
    fn slots(&self) -> MutexGuard<'_, Slots> {
        // A panic while the lock was held leaves plain data behind.
        self.slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Shutdown {
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks the shutdown and wakes the connections waiting on it.
    pub fn fire(&self) {
        self.inner.fired.store(true, Ordering::SeqCst);
        let wakers: Vec<Waker> = self
            .inner
            .slots()
            .wakers
            .iter_mut()
            .filter_map(Option::take)
            .collect();
        for waker in wakers {
            waker.wake();
        }
    }

    pub fn is_fired(&self) -> bool {
        self.inner.fired.load(Ordering::SeqCst)
    }

    /// A connection's view of the signal.
    pub fn watch(&self) -> ShutdownWatch {
        ShutdownWatch {
            inner: self.inner.clone(),
            slot: None,
            left: None,
        }
    }
}

/// One connection's registration; its slot is freed when it is dropped.
pub struct ShutdownWatch {
    inner: Arc<Inner>,
    slot: Option<usize>,
    /// The waker left in the slot, to compare without the lock.
    left: Option<Waker>,
}

impl ShutdownWatch {
    pub fn is_fired(&self) -> bool {
        self.inner.fired.load(Ordering::SeqCst)
    }

    /// Ready once the shutdown is fired; else the waker of `cx` is left to
    /// be woken then, unless it is the one left already.
    pub fn poll_fired(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        if self.is_fired() {
            return Poll::Ready(());
        }
        if self.left.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
            return Poll::Pending;
        }
        let waker = cx.waker().clone();
        {
            let mut slots = self.inner.slots();
            let slot = match self.slot {
                Some(slot) => slot,
                None => match slots.free.pop() {
                    Some(slot) => slot,
                    None => {
                        slots.wakers.push(None);
                        slots.wakers.len() - 1
                    }
                },
            };
            if let Some(kept) = slots.wakers.get_mut(slot) {
                *kept = Some(waker.clone());
            }
            self.slot = Some(slot);
        }
        self.left = Some(waker);
        // Fired while the waker was being left: `fire` may have missed it.
        if self.is_fired() {
            return Poll::Ready(());
        }
        Poll::Pending
    }

    /// Resolves once the shutdown is fired.
    pub async fn fired(&mut self) {
        std::future::poll_fn(|cx| self.poll_fired(cx)).await
    }
}

impl Drop for ShutdownWatch {
    fn drop(&mut self) {
        if let Some(slot) = self.slot {
            let mut slots = self.inner.slots();
            if let Some(kept) = slots.wakers.get_mut(slot) {
                *kept = None;
            }
            slots.free.push(slot);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use std::task::Wake;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn waker() -> (Arc<Count>, Waker) {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        (count.clone(), Waker::from(count))
    }

    #[test]
    fn firing_wakes_each_waiting_connection_once_and_stays_fired() {
        let shutdown = Shutdown::new();
        let (a_count, a) = waker();
        let (b_count, b) = waker();
        let mut watch_a = shutdown.watch();
        let mut watch_b = shutdown.watch();
        for _ in 0..3 {
            assert!(watch_a
                .poll_fired(&mut Context::from_waker(&a))
                .is_pending());
        }
        assert!(watch_b
            .poll_fired(&mut Context::from_waker(&b))
            .is_pending());
        assert_eq!(shutdown.inner.slots().wakers.len(), 2);
        shutdown.fire();
        assert_eq!(a_count.0.load(Ordering::SeqCst), 1);
        assert_eq!(b_count.0.load(Ordering::SeqCst), 1);
        assert!(watch_a.poll_fired(&mut Context::from_waker(&a)).is_ready());
        assert!(watch_b.is_fired() && shutdown.is_fired());
        // A connection that starts watching after the fact sees it at once.
        let mut late = shutdown.watch();
        assert!(late.poll_fired(&mut Context::from_waker(&a)).is_ready());
    }

    #[test]
    fn a_closed_connection_gives_its_slot_back_and_is_not_woken() {
        let shutdown = Shutdown::new();
        let (gone_count, gone) = waker();
        let mut watch = shutdown.watch();
        assert!(watch
            .poll_fired(&mut Context::from_waker(&gone))
            .is_pending());
        drop(watch);
        // Ten thousand connections coming and going reuse one slot.
        for _ in 0..10_000 {
            let (_, w) = waker();
            let mut watch = shutdown.watch();
            assert!(watch.poll_fired(&mut Context::from_waker(&w)).is_pending());
        }
        assert_eq!(shutdown.inner.slots().wakers.len(), 1);
        shutdown.fire();
        assert_eq!(gone_count.0.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_new_waker_replaces_the_kept_one() {
        let shutdown = Shutdown::new();
        let (old_count, old) = waker();
        let (new_count, new) = waker();
        let mut watch = shutdown.watch();
        assert!(watch
            .poll_fired(&mut Context::from_waker(&old))
            .is_pending());
        assert!(watch
            .poll_fired(&mut Context::from_waker(&new))
            .is_pending());
        shutdown.fire();
        assert_eq!(old_count.0.load(Ordering::SeqCst), 0);
        assert_eq!(new_count.0.load(Ordering::SeqCst), 1);
    }
}
