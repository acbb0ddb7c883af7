//! Commands and the coalescing mailbox that carries them.
//!
//! The mailbox is one slot, not a queue: the latest intent (connect or stand
//! down), the latest address list and the latest disconnect record. Posting
//! overwrites the slot under a mutex held only for the swap and then wakes
//! the worker through a [`Notify`] (which keeps a permit if the worker is not
//! waiting, so no wake-up is lost). Memory is therefore bounded whatever the
//! command rate, a post never blocks on the worker and never fails while it
//! lives, and the worker always acts on the newest state.

use std::mem;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

/// When a connect command should dial.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum When {
    /// Dial now.
    Now,
    /// Wait this long, then dial.
    After(Duration),
    /// The peer's connection just ended, after `connected_for` (`None` if it
    /// never started): the worker computes the delay from its own backoff
    /// level with [`backoff::Policy::after_disconnect`] and waits that long.
    AfterDisconnect {
        /// How long the connection lasted.
        connected_for: Option<Duration>,
    },
}

/// The latest intent posted to a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Intent {
    /// Get connected, after this delay.
    Connect(Delay),
    /// Go idle.
    StandDown,
}

/// The delay of a connect intent, once `When` has been split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delay {
    Now,
    After(Duration),
    /// Wait the backoff level (just updated by a disconnect record).
    Backoff,
}

/// What the worker finds in its mailbox.
#[derive(Debug)]
pub(crate) struct Pending<A> {
    pub(crate) intent: Option<Intent>,
    pub(crate) addrs: Option<Vec<A>>,
    /// `Some(connected_for)` if a disconnect was reported.
    pub(crate) disconnect: Option<Option<Duration>>,
}

impl<A> Default for Pending<A> {
    fn default() -> Self {
        Pending {
            intent: None,
            addrs: None,
            disconnect: None,
        }
    }
}

/// The slot plus its wake-up.
#[derive(Debug)]
pub(crate) struct Mailbox<A> {
    slot: Mutex<Pending<A>>,
    notify: Notify,
}

impl<A> Mailbox<A> {
    pub(crate) fn new() -> Self {
        Mailbox {
            slot: Mutex::new(Pending::default()),
            notify: Notify::new(),
        }
    }

    /// Posts a connect (with optional addresses) or a stand-down.
    pub(crate) fn post(&self, intent: Option<Intent>, addrs: Option<Vec<A>>, when: Option<When>) {
        let old_addrs;
        {
            // Poisoning cannot happen: nothing below can panic while the lock is held.
            let mut slot = self.slot.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(When::AfterDisconnect { connected_for }) = when {
                slot.disconnect = Some(connected_for);
            }
            if intent.is_some() {
                slot.intent = intent;
            }
            old_addrs = match addrs {
                Some(addrs) => slot.addrs.replace(addrs),
                None => None,
            };
        }
        // A replaced address list is freed outside the lock.
        drop(old_addrs);
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

/// Splits a public `When` into the intent the mailbox stores.
pub(crate) fn connect_intent(when: When) -> Intent {
    Intent::Connect(match when {
        When::Now => Delay::Now,
        When::After(d) => Delay::After(d),
        When::AfterDisconnect { .. } => Delay::Backoff,
    })
}
