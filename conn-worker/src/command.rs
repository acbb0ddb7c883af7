//! Commands and the coalescing mailbox that carries them.
//!
//! The mailbox is one slot, not a queue: the latest intent (connect or stand
//! down), the latest advertised address list, the user-given addresses
//! posted since the worker last looked (latest first, bounded), the latest
//! disconnect record and the latest address reported good. Posting
//! overwrites the slot under a mutex held only for the swap and then wakes
//! the worker (a flag and the worker's waker: a post while the worker is not
//! waiting leaves the flag set, so no wake-up is lost). Memory is therefore
//! bounded whatever the command rate, a post never blocks on the worker and
//! never fails while it lives, and the worker always acts on the newest
//! state.
//!
//! The slot is boxed and exists only while something is posted and not yet
//! taken: an idle worker's mailbox is a null pointer, a lock, a flag and a
//! waker.

use std::future::{poll_fn, Future};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::task::Poll;
use std::time::Duration;

use futures::task::AtomicWaker;

use crate::planner::MAX_USER_ADDRS;

/// When a connect command should dial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum When {
    /// Dial now (within one stagger, even during a round that already tried
    /// the address).
    Now,
    /// Wait this long, then dial.
    After(Duration),
    /// The peer's connection just ended, after `connected_for` (`None` if it
    /// never started): the worker computes the delay from its own backoff
    /// level with [`backoff::Policy::after_disconnect`] and waits that long
    /// (a stable connection also starts the reconnect phase: see
    /// [`Planner::record_disconnect`](crate::Planner::record_disconnect)).
    AfterDisconnect {
        /// How long the connection lasted.
        connected_for: Option<Duration>,
    },
    /// Dial after a small random delay (up to a tenth of the policy's
    /// `min`), with no backoff step: the connection was closed for a reason
    /// that is not a failure (a duplicate that lost).
    Soon,
}

/// The latest intent posted to a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Intent {
    /// Get connected.
    Connect(When),
    /// Go idle.
    StandDown,
}

/// What the worker finds in its mailbox.
#[derive(Debug)]
pub(crate) struct Pending<A> {
    pub(crate) intent: Option<Intent>,
    pub(crate) advertised: Option<Vec<A>>,
    /// User-given addresses, latest first.
    pub(crate) user: Vec<A>,
    /// `Some(connected_for)` if a disconnect was reported.
    pub(crate) disconnect: Option<Option<Duration>>,
    /// An address the owner connected at.
    pub(crate) good: Option<A>,
    /// A backoff level restored from storage.
    pub(crate) backoff: Option<Duration>,
    /// The first address of the latest connect that gave some: the one to
    /// dial within a stagger.
    pub(crate) lead: Option<A>,
}

impl<A> Default for Pending<A> {
    fn default() -> Self {
        Pending {
            intent: None,
            advertised: None,
            user: Vec::new(),
            disconnect: None,
            good: None,
            backoff: None,
            lead: None,
        }
    }
}

/// The slot plus its wake-up. Only the worker waits on it, so one waker is
/// enough.
#[derive(Debug)]
pub(crate) struct Mailbox<A> {
    slot: Mutex<Option<Box<Pending<A>>>>,
    /// Set by a post, cleared when the worker wakes for it.
    posted: AtomicBool,
    waker: AtomicWaker,
}

/// One post to the mailbox.
pub(crate) struct Post<A> {
    pub(crate) intent: Option<Intent>,
    pub(crate) advertised: Option<Vec<A>>,
    pub(crate) user: Vec<A>,
    pub(crate) good: Option<A>,
    pub(crate) backoff: Option<Duration>,
}

impl<A: Clone + PartialEq> Mailbox<A> {
    pub(crate) fn new() -> Self {
        Mailbox {
            slot: Mutex::new(None),
            posted: AtomicBool::new(false),
            waker: AtomicWaker::new(),
        }
    }

    /// Merges a post into the slot and wakes the worker.
    pub(crate) fn post(&self, post: Post<A>) {
        let old;
        {
            // Poisoning cannot happen: nothing below panics while the lock
            // is held (no user code runs under it).
            let mut guard = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
            let slot = guard.get_or_insert_with(Box::default);
            if let Some(Intent::Connect(When::AfterDisconnect { connected_for })) = post.intent {
                slot.disconnect = Some(connected_for);
            }
            if post.intent.is_some() {
                slot.intent = post.intent;
                // A new intent: only its own address leads.
                slot.lead = None;
            }
            if matches!(post.intent, Some(Intent::Connect(_))) {
                slot.lead = post.user.first().cloned();
            }
            if !post.user.is_empty() {
                // Later posts go first; the oldest fall off the end.
                let mut user = post.user;
                for a in slot.user.drain(..) {
                    if !user.contains(&a) {
                        user.push(a);
                    }
                }
                user.truncate(MAX_USER_ADDRS);
                slot.user = user;
            }
            if post.good.is_some() {
                slot.good = post.good;
            }
            if post.backoff.is_some() {
                slot.backoff = post.backoff;
            }
            old = match post.advertised {
                Some(addrs) => slot.advertised.replace(addrs),
                None => None,
            };
        }
        // A replaced address list is freed outside the lock.
        drop(old);
        self.posted.store(true, Ordering::Release);
        self.waker.wake();
    }

    /// Takes everything posted since the last take.
    pub(crate) fn take(&self) -> Pending<A> {
        let taken = {
            let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
            slot.take()
        };
        // The box is freed outside the lock.
        taken.map(|b| *b).unwrap_or_default()
    }

    /// Completes when something was posted since it last completed
    /// (possibly already taken: a spurious wake-up is harmless, the worker
    /// finds an empty slot). For the worker alone: a second waiter would
    /// take the first one's place.
    pub(crate) fn notified(&self) -> impl Future<Output = ()> + '_ {
        poll_fn(|cx| {
            if self.posted.swap(false, Ordering::Acquire) {
                return Poll::Ready(());
            }
            self.waker.register(cx.waker());
            // A post between the check and the registration woke the old
            // waker (or none): check again.
            if self.posted.swap(false, Ordering::Acquire) {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
    }
}
