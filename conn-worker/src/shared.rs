//! What a worker and its handles share, in one allocation per worker: the
//! peer, the stop token, the mailbox, the status snapshot and the wake-up
//! of those waiting for the worker to end.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::command::Mailbox;
use crate::status::Snapshot;
use crate::{State, Status};

pub(crate) struct Shared<P, A, E> {
    pub(crate) peer: P,
    /// The worker's token, a child of the spawner's root.
    pub(crate) cancel: CancellationToken,
    pub(crate) mailbox: Mailbox<A>,
    /// Written by the worker as it goes, read on demand by handles. A plain
    /// lock, held only to copy a snapshot in or out: status is never
    /// awaited, only [`ended`](Self::ended) is.
    status: Mutex<Snapshot<A, E>>,
    /// Wakes [`ended`](Self::ended) once the worker has ended.
    ended: Notify,
    /// Handles alive: the last one to go stops the worker.
    handles: AtomicUsize,
}

impl<P, A: Clone + PartialEq, E> Shared<P, A, E> {
    /// The state of a worker that has not started yet, with one handle.
    pub(crate) fn new(peer: P, cancel: CancellationToken) -> Self {
        Shared {
            peer,
            cancel,
            mailbox: Mailbox::new(),
            status: Mutex::new(Snapshot::initial()),
            ended: Notify::new(),
            handles: AtomicUsize::new(1),
        }
    }

    /// A copy of the status.
    pub(crate) fn status(&self) -> Status<A, E> {
        self.lock().to_status()
    }
}

impl<P, A, E> Shared<P, A, E> {
    /// Runs `f` on the status under its lock (no user code but the address
    /// type's `Clone` and `PartialEq` runs there; a panic in them leaves
    /// the snapshot as it was, and the lock usable).
    pub(crate) fn with_status<R>(&self, f: impl FnOnce(&mut Snapshot<A, E>) -> R) -> R {
        f(&mut self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Snapshot<A, E>> {
        self.status.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks the worker ended and wakes everyone waiting for that.
    /// Idempotent.
    pub(crate) fn end(&self) {
        self.with_status(|s| {
            s.state = State::Stopped;
            s.in_flight = 0;
            s.next_attempt = None;
        });
        self.ended.notify_waiters();
    }

    /// Completes once [`end`](Self::end) has run.
    pub(crate) async fn ended(&self) {
        let notified = self.ended.notified();
        let mut notified = std::pin::pin!(notified);
        // Registered before the check, so an `end` between the check and
        // the wait still wakes it.
        notified.as_mut().enable();
        if self.lock().state == State::Stopped {
            return;
        }
        notified.await;
    }

    /// One more handle.
    pub(crate) fn add_handle(&self) {
        self.handles.fetch_add(1, Ordering::Relaxed);
    }

    /// One handle fewer; the last one stops the worker.
    pub(crate) fn drop_handle(&self) {
        if self.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.cancel.cancel();
        }
    }
}
