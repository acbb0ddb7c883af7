//! The global limit on dials in flight: one place that counts every dial,
//! hands free slots out by priority, and takes a slot back from an attempt
//! that holds it too long while others wait.
//!
//! Why not a plain semaphore: with a fair (first come, first served)
//! semaphore and a few addresses that never answer, every slot is held for
//! a whole connect timeout and every live peer queues behind the dead ones
//! (measured: 100 live peers all connected after 30 s with no dead peer,
//! 242 s with 20 dead ones listed first, never with a dialer that has no
//! timeout). Here:
//!
//! - waiters are served by [`Priority`] (a user's dial, then peers that have
//!   not failed since they were last connected, then retries), first come
//!   first served within one priority;
//! - a waiter takes the slot of a holder of its own or a lower priority
//!   once that holder has had the slot for
//!   [`Config::slot_lease`](crate::Config::slot_lease): the holder's attempt
//!   fails as timed out ([`DialFailure::TimedOut`](crate::DialFailure)) and
//!   its worker goes on as after any failure (next address, or backoff). A
//!   dial is never cut short before its lease, so a live peer answering in
//!   well under a second is never interrupted.
//!
//! With no one waiting, an attempt keeps its slot until it ends or hits the
//! attempt timeout, so a slow peer (Tor) is only cut short when the slots
//! are contended.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Who is asking for a dial slot; the lower sorts first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum Priority {
    /// A user asked for this dial (a perm connect's address, a one-off
    /// connect).
    User,
    /// A peer that has not failed since it was last connected (or never
    /// tried).
    Fresh,
    /// A peer whose last round failed.
    Retry,
}

/// The dial slots shared by the workers of a [`Spawner`](crate::Spawner)
/// (and any other dialer its owner runs, through [`DialSlots::acquire`]).
/// Cheap to clone; clones share the slots.
#[derive(Clone)]
pub struct DialSlots {
    inner: Arc<Inner>,
}

struct Inner {
    limit: usize,
    lease: Duration,
    state: Mutex<State>,
    peak: AtomicUsize,
}

#[derive(Default)]
struct State {
    holders: Vec<Holder>,
    waiters: BTreeMap<(Priority, u64), oneshot::Sender<SlotPermit>>,
    next: u64,
}

struct Holder {
    id: u64,
    priority: Priority,
    /// When its dial started (on the holder's clock); `None` between the
    /// grant and the start, when the lease has not begun.
    since: Option<Instant>,
    /// Fired to take the slot back.
    reclaim: CancellationToken,
}

/// A dial slot. Dropping it frees the slot (for the best waiter).
pub struct SlotPermit {
    slots: DialSlots,
    id: u64,
    reclaim: CancellationToken,
    armed: bool,
}

impl fmt::Debug for DialSlots {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DialSlots")
            .field("limit", &self.inner.limit)
            .field("in_use", &self.in_use())
            .field("peak", &self.peak())
            .finish()
    }
}

impl fmt::Debug for SlotPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SlotPermit").field("id", &self.id).finish()
    }
}

impl DialSlots {
    /// `limit` slots (at least one); a holder keeps its slot against a
    /// waiter of its own priority for `lease`.
    pub fn new(limit: usize, lease: Duration) -> Self {
        DialSlots {
            inner: Arc::new(Inner {
                limit: limit.max(1),
                lease,
                state: Mutex::new(State::default()),
                peak: AtomicUsize::new(0),
            }),
        }
    }

    /// Slots in use now.
    pub fn in_use(&self) -> usize {
        self.lock().holders.len()
    }

    /// The most slots ever in use at once.
    pub fn peak(&self) -> usize {
        self.inner.peak.load(Ordering::SeqCst)
    }

    /// The limit.
    pub fn limit(&self) -> usize {
        self.inner.limit
    }

    /// Waits for a slot at `priority`; `now` is the caller's clock. May take
    /// the slot of a holder that must yield (see the module docs). Dropping
    /// the future gives up the place in the queue.
    pub async fn acquire(&self, priority: Priority, now: Instant) -> SlotPermit {
        let (rx, seq) = {
            let mut st = self.lock();
            if st.holders.len() < self.inner.limit && !st.waiters.keys().any(|k| k.0 <= priority) {
                return self.grant(&mut st, priority, Some(now));
            }
            let seq = st.next;
            st.next += 1;
            let (tx, rx) = oneshot::channel();
            st.waiters.insert((priority, seq), tx);
            self.rebalance(&st, now);
            (rx, seq)
        };
        let mut guard = Queued {
            slots: self,
            key: (priority, seq),
            done: false,
        };
        let permit = rx.await;
        guard.done = true;
        match permit {
            Ok(permit) => permit,
            // The sender lives in the queue until it is used or this future
            // is dropped: it cannot be dropped while we wait.
            Err(_) => std::future::pending().await,
        }
    }

    /// A holder's lease may be over (its own timer, on its clock): if a
    /// waiter that may take its slot is queued, the slot is taken back now.
    pub fn lease_expired(&self, now: Instant) {
        let st = self.lock();
        self.rebalance(&st, now);
    }

    /// The lease.
    pub fn lease(&self) -> Duration {
        self.inner.lease
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // No code panics while holding the lock.
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn grant(&self, st: &mut State, priority: Priority, since: Option<Instant>) -> SlotPermit {
        let id = st.next;
        st.next += 1;
        let reclaim = CancellationToken::new();
        st.holders.push(Holder {
            id,
            priority,
            since,
            reclaim: reclaim.clone(),
        });
        self.inner
            .peak
            .fetch_max(st.holders.len(), Ordering::SeqCst);
        SlotPermit {
            slots: self.clone(),
            id,
            reclaim,
            armed: true,
        }
    }

    /// Takes back, for the waiters that no free or yielding slot will
    /// serve, the slots that must yield to them: a holder of the same or a
    /// lower priority whose lease is over (the lowest priority, then the
    /// oldest, first).
    fn rebalance(&self, st: &State, now: Instant) {
        let free = self.inner.limit.saturating_sub(st.holders.len());
        let yielding = st
            .holders
            .iter()
            .filter(|h| h.reclaim.is_cancelled())
            .count();
        let mut need = st.waiters.len().saturating_sub(free + yielding);
        for &(priority, _) in st.waiters.keys() {
            if need == 0 {
                break;
            }
            let lease = self.inner.lease;
            let victim = st
                .holders
                .iter()
                .filter(|h| !h.reclaim.is_cancelled())
                .filter(|h| {
                    h.priority >= priority && h.since.is_some_and(|s| deadline(s, lease) <= now)
                })
                .max_by(|a, b| a.priority.cmp(&b.priority).then(b.since.cmp(&a.since)));
            match victim {
                Some(h) => {
                    h.reclaim.cancel();
                    need -= 1;
                }
                // Nothing yields to the best waiter left: nothing yields to
                // a worse one either.
                None => break,
            }
        }
    }

    /// Frees holder `id`'s slot and hands it to the best waiter.
    fn release(&self, id: u64) {
        let mut st = self.lock();
        st.holders.retain(|h| h.id != id);
        while st.holders.len() < self.inner.limit {
            let Some(((priority, _), tx)) = st.waiters.pop_first() else {
                break;
            };
            let permit = self.grant(&mut st, priority, None);
            if let Err(mut permit) = tx.send(permit) {
                // The waiter is gone: undo the grant here (its drop would
                // take the lock we hold).
                permit.armed = false;
                let gone = permit.id;
                st.holders.retain(|h| h.id != gone);
            }
        }
    }
}

impl SlotPermit {
    /// The dial holding this slot starts now (on the holder's clock): its
    /// lease runs from here.
    pub fn start(&self, now: Instant) {
        let mut st = self.slots.lock();
        if let Some(h) = st.holders.iter_mut().find(|h| h.id == self.id) {
            h.since.get_or_insert(now);
        }
    }

    /// When this slot's lease ends, if its dial has started.
    pub fn lease_ends(&self) -> Option<Instant> {
        let st = self.slots.lock();
        let lease = self.slots.inner.lease;
        st.holders
            .iter()
            .find(|h| h.id == self.id)
            .and_then(|h| h.since)
            .map(|s| deadline(s, lease))
    }

    /// Completes when the slot is taken back for a waiter: the attempt
    /// holding it should give up.
    pub async fn reclaimed(&self) {
        self.reclaim.cancelled().await;
    }

    /// Whether the slot was taken back.
    pub fn is_reclaimed(&self) -> bool {
        self.reclaim.is_cancelled()
    }

    /// The slots this permit is one of.
    pub fn slots(&self) -> &DialSlots {
        &self.slots
    }
}

impl Drop for SlotPermit {
    fn drop(&mut self) {
        if self.armed {
            self.slots.release(self.id);
        }
    }
}

/// Removes a waiter that gave up (its future was dropped).
struct Queued<'a> {
    slots: &'a DialSlots,
    key: (Priority, u64),
    done: bool,
}

impl Drop for Queued<'_> {
    fn drop(&mut self) {
        if !self.done {
            let removed = self.slots.lock().waiters.remove(&self.key);
            // A permit sent just now to the dropped receiver is freed when
            // the sender's channel drops it; nothing else to do.
            drop(removed);
        }
    }
}

fn deadline(since: Instant, lease: Duration) -> Instant {
    crate::clock::deadline_after(since, lease)
}
