//! Commands and the coalescing mailbox that carries them.
//!
//! The mailbox is one slot, not a queue: the latest intent (connect or stand
//! down), the latest advertised address list, the user-given addresses
//! posted since the worker last looked (latest first, bounded), the latest
//! disconnect record and the latest address reported good. Posting
//! overwrites the slot under a mutex held only for the swap and then wakes
//! the worker through a [`Notify`] (which keeps a permit if the worker is not
//! waiting, so no wake-up is lost). Memory is therefore bounded whatever the
//! command rate, a post never blocks on the worker and never fails while it
//! lives, and the worker always acts on the newest state.

use std::mem;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

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

/// The slot plus its wake-up.
#[derive(Debug)]
pub(crate) struct Mailbox<A> {
    slot: Mutex<Pending<A>>,
    notify: Notify,
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
            slot: Mutex::new(Pending::default()),
            notify: Notify::new(),
        }
    }

    /// Merges a post into the slot and wakes the worker.
    pub(crate) fn post(&self, post: Post<A>) {
        let old;
        {
            // Poisoning cannot happen: nothing below panics while the lock
            // is held (no user code runs under it).
            let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
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
        self.notify.notify_one();
    }

    /// Takes everything posted since the last take.
    pub(crate) fn take(&self) -> Pending<A> {
        let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
        mem::take(&mut *slot)
    }

    /// Completes when something was posted (possibly already taken: a
    /// spurious wake-up is harmless, the worker finds an empty slot).
    pub(crate) async fn notified(&self) {
        self.notify.notified().await;
    }
}
