//! The cheap, cloneable handle to a worker.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::command::{Intent, Post};
use crate::shared::Shared;
use crate::{Error, Status, When};

/// A handle to one worker of peer `P`, dialing addresses `A`, whose dialer
/// fails with `E`.
///
/// Clones share the worker. Every method returns at once: facts are posted
/// to a coalescing mailbox (see the crate docs for the exact semantics) and
/// never wait for the worker, which decides what to do with them.
///
/// Dropping the last handle stops the worker, so a worker cannot outlive
/// everyone who could command it.
pub struct WorkerHandle<P, A, E> {
    inner: Arc<Shared<P, A, E>>,
}

impl<P, A, E> Drop for WorkerHandle<P, A, E> {
    fn drop(&mut self) {
        self.inner.drop_handle();
    }
}

impl<P, A, E> Clone for WorkerHandle<P, A, E> {
    fn clone(&self) -> Self {
        self.inner.add_handle();
        WorkerHandle {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<P: fmt::Debug, A, E> fmt::Debug for WorkerHandle<P, A, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerHandle")
            .field("peer", &self.inner.peer)
            .field("stopped", &self.is_stopped())
            .finish_non_exhaustive()
    }
}

impl<P, A, E> WorkerHandle<P, A, E> {
    /// Stops the worker. Cannot be lost or reordered: it cancels the
    /// worker's token, which every attempt's token is a child of: once this
    /// returns, every attempt in flight is cancelled, the worker starts no
    /// new one (a dialer racing it on another thread is handed an
    /// already-cancelled token and dropped), and the task ends at its next
    /// poll. Idempotent.
    pub fn stop(&self) {
        self.inner.cancel.cancel();
    }

    /// Whether [`stop`](Self::stop) was called or the owner's root token was
    /// cancelled (the task may still be finishing).
    pub fn is_stopped(&self) -> bool {
        self.inner.cancel.is_cancelled()
    }
}

impl<P, A: Clone + PartialEq, E> WorkerHandle<P, A, E> {
    /// The first handle to the worker that shares `inner` (which counts
    /// it already).
    pub(crate) fn new(inner: Arc<Shared<P, A, E>>) -> Self {
        WorkerHandle { inner }
    }

    /// The worker's peer.
    pub fn peer(&self) -> &P {
        &self.inner.peer
    }

    /// Asks the worker to get connected at the time `when` says. `addrs`,
    /// if given, are user-given addresses: they go to the front of the
    /// worker's user list (the latest
    /// [`MAX_USER_ADDRS`](crate::MAX_USER_ADDRS) are kept) and no
    /// announcement removes them.
    ///
    /// Replaces any earlier connect or stand-down the worker has not acted
    /// on yet. With [`When::Now`] the first given address (else the first
    /// known one) is dialed within one stagger, whatever the worker is
    /// doing; see [`Planner::connect`](crate::Planner::connect) for every
    /// case. With [`When::AfterDisconnect`] the worker also steps its
    /// backoff level, even if a later connect replaces this one before the
    /// worker reads it.
    pub fn connect(&self, addrs: Option<Vec<A>>, when: When) -> Result<(), Error> {
        self.post(Post {
            intent: Some(Intent::Connect(when)),
            advertised: None,
            user: addrs.unwrap_or_default(),
            good: None,
            backoff: None,
        })
    }

    /// Adds user-given addresses (as [`connect`](Self::connect) does)
    /// without asking the worker to do anything: for a peer that is
    /// connected now, whose worker should know these addresses next time.
    pub fn add_addrs(&self, addrs: Vec<A>) -> Result<(), Error> {
        self.post(Post {
            intent: None,
            advertised: None,
            user: addrs,
            good: None,
            backoff: None,
        })
    }

    /// Restores what storage kept of the peer across a restart: its backoff
    /// level (the next failed round doubles it; `None` keeps the worker's)
    /// and its last good address (dialed first). Changes nothing the worker
    /// is doing; post it before the startup `connect`.
    pub fn restore(&self, backoff: Option<Duration>, last_good: Option<A>) -> Result<(), Error> {
        self.post(Post {
            intent: None,
            advertised: None,
            user: Vec::new(),
            good: last_good,
            backoff,
        })
    }

    /// Replaces the worker's advertised addresses (a node announcement)
    /// without changing what it is doing; user-given addresses stay.
    ///
    /// Never lengthens a wait: waiting, the wait is cut to at most the
    /// policy's `min` from now if a never-seen address appeared (or, once
    /// per backoff level, one the worker does not list); the level is
    /// kept. Dialing: attempts at withdrawn addresses are cancelled, new
    /// ones join the round. Awaiting addresses: dials at once.
    pub fn update_addrs(&self, addrs: Vec<A>) -> Result<(), Error> {
        self.post(Post {
            intent: None,
            advertised: Some(addrs),
            user: Vec::new(),
            good: None,
            backoff: None,
        })
    }

    /// Tells the worker the peer is connected by other means (an inbound
    /// connection, say): it goes idle, a wait or a round in progress is
    /// cancelled, and a connection completing after this is dropped, never
    /// delivered.
    pub fn stand_down(&self) -> Result<(), Error> {
        self.post(Post {
            intent: Some(Intent::StandDown),
            advertised: None,
            user: Vec::new(),
            good: None,
            backoff: None,
        })
    }

    /// As [`stand_down`](Self::stand_down), for a connection the owner
    /// dialed itself at `addr`: the worker keeps `addr` as the last good
    /// address, and dials it first (or as a last resort if no list has it)
    /// when it next connects.
    pub fn stand_down_at(&self, addr: A) -> Result<(), Error> {
        self.post(Post {
            intent: Some(Intent::StandDown),
            advertised: None,
            user: Vec::new(),
            good: Some(addr),
            backoff: None,
        })
    }

    /// A snapshot of the worker's state (cheap: no message to the worker).
    /// For display: decide nothing from it (see [`Status`]).
    pub fn status(&self) -> Status<A, E> {
        self.inner.status()
    }

    /// Completes when the worker's task has ended (or was dropped unrun,
    /// with its runtime).
    pub async fn stopped(&self) {
        self.inner.ended().await;
    }

    fn post(&self, post: Post<A>) -> Result<(), Error> {
        if self.inner.cancel.is_cancelled() {
            return Err(Error::Stopped);
        }
        self.inner.mailbox.post(post);
        Ok(())
    }
}
