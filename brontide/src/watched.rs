//! A value that changes often, is read now and then, and is waited on
//! rarely: the listener's counters.
//!
//! A `tokio::sync::watch` channel would do, but every send takes its lock
//! and then the locks of its eight wake-up queues, whether anyone waits or
//! not; the listener updates its counters three times per connection. Here
//! an update takes one lock, and wakes waiters only while there are some.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use tokio::sync::Notify;

/// The value, and what [`wait_until`](Self::wait_until) needs.
#[derive(Debug, Default)]
pub(crate) struct Watched<T> {
    value: Mutex<T>,
    /// `wait_until` calls in progress.
    waiting: AtomicUsize,
    changed: Notify,
    /// No update will come any more.
    stopped: AtomicBool,
}

impl<T: Copy> Watched<T> {
    fn lock(&self) -> MutexGuard<'_, T> {
        // A value of `Copy` fields changed in place: consistent across a
        // panic.
        self.value.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The value now.
    pub(crate) fn get(&self) -> T {
        *self.lock()
    }

    /// Changes the value and wakes whoever waits.
    pub(crate) fn update(&self, f: impl FnOnce(&mut T)) {
        f(&mut self.lock());
        // Sequentially consistent, against `wait_until`'s increment: either
        // the waiter's read of the value comes after this change, or this
        // load sees the waiter (the lock orders the two otherwise).
        if self.waiting.load(Ordering::SeqCst) > 0 {
            self.changed.notify_waiters();
        }
    }

    /// Marks the value final and wakes whoever waits.
    pub(crate) fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.changed.notify_waiters();
    }

    /// Waits until `f` holds for the value (at once if it does), and returns
    /// it; `None` if it was stopped without `f` holding.
    pub(crate) async fn wait_until(&self, mut f: impl FnMut(&T) -> bool) -> Option<T> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let _waiting = Waiting(&self.waiting);
        loop {
            // Registered before the value is read: a change after the read
            // wakes this one.
            let mut changed = std::pin::pin!(self.changed.notified());
            changed.as_mut().enable();
            let stopped = self.stopped.load(Ordering::SeqCst);
            let value = self.get();
            if f(&value) {
                return Some(value);
            }
            if stopped {
                return None;
            }
            changed.await;
        }
    }
}

/// Counts a `wait_until` in progress however it ends.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_waiter_sees_every_update_it_waits_for_and_the_stop() {
        let cell = Arc::new(Watched::<u64>::default());
        assert_eq!(cell.wait_until(|v| *v == 0).await, Some(0));
        let updater = {
            let cell = Arc::clone(&cell);
            tokio::spawn(async move {
                for _ in 0..10_000 {
                    cell.update(|v| *v += 1);
                    tokio::task::yield_now().await;
                }
                cell.stop();
            })
        };
        assert_eq!(
            cell.wait_until(|v| *v >= 5_000).await.map(|v| v >= 5_000),
            Some(true)
        );
        assert_eq!(cell.wait_until(|v| *v == 10_000).await, Some(10_000));
        assert_eq!(cell.wait_until(|v| *v > 10_000).await, None);
        updater.await.unwrap();
        assert_eq!(cell.get(), 10_000);
        assert_eq!(cell.waiting.load(Ordering::SeqCst), 0);
    }
}
