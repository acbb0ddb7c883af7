//! A clock that moves only when the test says so.

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use conn_worker::Clock;
use tokio::time::Instant;

use crate::settle;

/// A [`Clock`] whose time moves only in [`advance`](ManualClock::advance).
///
/// Every pending sleep is visible ([`pending_sleeps`](ManualClock::pending_sleeps),
/// [`next_wake`](ManualClock::next_wake)), so a test can assert how long a
/// worker waits. Advancing wakes exactly the sleeps that fall due, in
/// deadline order, letting the runtime settle after each deadline so that
/// what a woken task does next is computed at that deadline's time.
///
/// Clones share the same time.
#[derive(Clone)]
pub struct ManualClock {
    inner: Arc<Mutex<Inner>>,
}

struct Inner {
    base: Instant,
    elapsed: Duration,
    next_id: u64,
    /// Pending sleeps by (deadline, registration order).
    sleeps: BTreeMap<(Instant, u64), Option<Waker>>,
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = self.lock();
        f.debug_struct("ManualClock")
            .field("elapsed", &inner.elapsed)
            .field("pending_sleeps", &inner.sleeps.len())
            .finish()
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl ManualClock {
    /// A clock at its own time zero.
    pub fn new() -> Self {
        ManualClock {
            inner: Arc::new(Mutex::new(Inner {
                base: Instant::now(),
                elapsed: Duration::ZERO,
                next_id: 0,
                sleeps: BTreeMap::new(),
            })),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Nothing panics while the lock is held.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The clock's time zero (the instant `elapsed` counts from).
    pub fn start(&self) -> Instant {
        self.lock().base
    }

    /// How far the clock has been advanced.
    pub fn elapsed(&self) -> Duration {
        self.lock().elapsed
    }

    /// How long each pending sleep still has to go, soonest first (zero for
    /// a sleep already due but not yet polled).
    pub fn pending_sleeps(&self) -> Vec<Duration> {
        let inner = self.lock();
        let now = inner.base + inner.elapsed;
        inner
            .sleeps
            .keys()
            .map(|(deadline, _)| deadline.saturating_duration_since(now))
            .collect()
    }

    /// How long until the soonest pending sleep, if any.
    pub fn next_wake(&self) -> Option<Duration> {
        self.pending_sleeps().first().copied()
    }

    /// Moves time forward by `by`, stopping at each pending deadline on the
    /// way: the sleeps due then are woken (in registration order), the
    /// runtime settles, and only then does time move on, so sleeps the woken
    /// tasks start are measured from that deadline. Settles at the end too.
    ///
    /// Needs a runtime with tokio's time paused (see [`settle`]).
    pub async fn advance(&self, by: Duration) {
        let target = self.lock().elapsed + by;
        loop {
            settle().await;
            let wakers = {
                let mut inner = self.lock();
                let due = inner
                    .sleeps
                    .keys()
                    .next()
                    .map(|(deadline, _)| *deadline)
                    .filter(|deadline| deadline.saturating_duration_since(inner.base) <= target);
                let Some(deadline) = due else {
                    inner.elapsed = target;
                    break;
                };
                let at = deadline.saturating_duration_since(inner.base);
                inner.elapsed = inner.elapsed.max(at);
                let now = inner.base + inner.elapsed;
                let keys: Vec<_> = inner
                    .sleeps
                    .range(..=(now, u64::MAX))
                    .map(|(k, _)| *k)
                    .collect();
                let mut wakers = Vec::with_capacity(keys.len());
                for key in keys {
                    // Woken sleeps leave the table: they are due, and a
                    // sleep dropped before it is polled must not linger.
                    if let Some(Some(waker)) = inner.sleeps.remove(&key) {
                        wakers.push(waker);
                    }
                }
                wakers
            };
            for waker in wakers {
                waker.wake();
            }
        }
        settle().await;
    }

    /// Moves time to the soonest pending deadline (as
    /// [`advance`](Self::advance)) and returns how far it moved; `None` if
    /// nothing sleeps.
    pub async fn advance_to_next(&self) -> Option<Duration> {
        settle().await;
        let step = self.next_wake()?;
        self.advance(step).await;
        Some(step)
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        let inner = self.lock();
        inner.base + inner.elapsed
    }

    fn sleep_until(&self, deadline: Instant) -> impl Future<Output = ()> + Send + 'static {
        let key = {
            let mut inner = self.lock();
            let id = inner.next_id;
            inner.next_id += 1;
            inner.sleeps.insert((deadline, id), None);
            (deadline, id)
        };
        ManualSleep {
            clock: self.clone(),
            key,
            done: false,
        }
    }
}

/// A sleep on a [`ManualClock`].
struct ManualSleep {
    clock: ManualClock,
    key: (Instant, u64),
    done: bool,
}

impl Future for ManualSleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.done {
            return Poll::Ready(());
        }
        let key = self.key;
        let ready = {
            let mut inner = self.clock.lock();
            let now = inner.base + inner.elapsed;
            if now >= key.0 {
                inner.sleeps.remove(&key);
                true
            } else {
                inner.sleeps.insert(key, Some(cx.waker().clone()));
                false
            }
        };
        if ready {
            self.done = true;
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl Drop for ManualSleep {
    fn drop(&mut self) {
        if !self.done {
            self.clock.lock().sleeps.remove(&self.key);
        }
    }
}
