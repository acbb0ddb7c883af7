//! The cheap, cloneable handle to a worker.

use std::fmt;
use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::command::{connect_intent, Intent, Mailbox};
use crate::{Dialer, Error, State, Status, When};

/// A handle to one worker.
///
/// Clones share the worker. Every method returns at once: commands are
/// posted to a coalescing mailbox (see the crate docs for the exact
/// semantics) and never wait for the worker.
///
/// Dropping the last handle stops the worker, so a worker cannot outlive
/// everyone who could command it.
pub struct WorkerHandle<P, D: Dialer> {
    inner: Arc<Inner<P, D>>,
}

struct Inner<P, D: Dialer> {
    peer: P,
    mailbox: Arc<Mailbox<D::Addr>>,
    cancel: CancellationToken,
    status: watch::Receiver<Status<D>>,
}

impl<P, D: Dialer> Drop for Inner<P, D> {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

impl<P, D: Dialer> Clone for WorkerHandle<P, D> {
    fn clone(&self) -> Self {
        WorkerHandle {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<P: fmt::Debug, D: Dialer> fmt::Debug for WorkerHandle<P, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerHandle")
            .field("peer", &self.inner.peer)
            .field("stopped", &self.is_stopped())
            .finish_non_exhaustive()
    }
}

impl<P, D: Dialer> WorkerHandle<P, D> {
    pub(crate) fn new(
        peer: P,
        mailbox: Arc<Mailbox<D::Addr>>,
        cancel: CancellationToken,
        status: watch::Receiver<Status<D>>,
    ) -> Self {
        WorkerHandle {
            inner: Arc::new(Inner {
                peer,
                mailbox,
                cancel,
                status,
            }),
        }
    }

    /// The worker's peer.
    pub fn peer(&self) -> &P {
        &self.inner.peer
    }

    /// Asks the worker to get connected, dialing `addrs` if given (else the
    /// addresses it knows), at the time `when` says.
    ///
    /// Replaces any earlier connect or stand-down the worker has not acted
    /// on yet, and cancels a wait or round in progress: the worker re-plans
    /// at once. With [`When::AfterDisconnect`] the worker also steps its
    /// backoff level, even if a later connect replaces this one before the
    /// worker reads it.
    pub fn connect(&self, addrs: Option<Vec<D::Addr>>, when: When) -> Result<(), Error> {
        self.post(Some(connect_intent(when)), addrs, Some(when))
    }

    /// Replaces the worker's addresses without changing what it is doing.
    ///
    /// Idle: only stored. Waiting: if a new address appeared, the wait is
    /// shortened to at most the policy's `min` from now (never lengthened);
    /// the backoff level is kept. Dialing: attempts at withdrawn addresses
    /// are cancelled, new ones join the round (an empty list ends the round
    /// without a backoff step, and the worker awaits addresses). Awaiting
    /// addresses: a non-empty list is dialed at once.
    pub fn update_addrs(&self, addrs: Vec<D::Addr>) -> Result<(), Error> {
        self.post(None, Some(addrs), None)
    }

    /// Asks the worker to go idle (an inbound connection won): a wait or a
    /// round in progress is cancelled, and a connection completing after
    /// this is dropped, never delivered.
    pub fn stand_down(&self) -> Result<(), Error> {
        self.post(Some(Intent::StandDown), None, None)
    }

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

    /// A snapshot of the worker's state (cheap: no message to the worker).
    pub fn status(&self) -> Status<D> {
        self.inner.status.borrow().clone()
    }

    /// Completes when the worker's task has ended.
    pub async fn stopped(&self) {
        let mut status = self.inner.status.clone();
        // An error means the worker dropped its sender: it has ended too.
        let _ = status.wait_for(|s| s.state == State::Stopped).await;
    }

    fn post(
        &self,
        intent: Option<Intent>,
        addrs: Option<Vec<D::Addr>>,
        when: Option<When>,
    ) -> Result<(), Error> {
        if self.inner.cancel.is_cancelled() {
            return Err(Error::Stopped);
        }
        self.inner.mailbox.post(intent, addrs, when);
        Ok(())
    }
}
