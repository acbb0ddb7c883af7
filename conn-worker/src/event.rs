//! What workers report to their owner.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::FailureClass;

/// One step of one worker, tagged with the peer. `A`, `C` and `E` are the
/// dialer's address, connection and error types.
#[non_exhaustive]
pub struct Event<P, A, C, E> {
    /// The worker's peer.
    pub peer: P,
    /// When it happened, on the worker's clock.
    pub at: Instant,
    /// What happened.
    pub kind: EventKind<A, C, E>,
}

/// Why an attempt failed.
#[non_exhaustive]
pub enum DialFailure<E> {
    /// The dialer returned an error.
    Error(Arc<E>),
    /// The attempt ran out of time (its own timeout, or its dial slot was
    /// taken back for a waiting peer: see [`Config::attempt_timeout`] and
    /// [`Config::slot_lease`](crate::Config::slot_lease)).
    ///
    /// [`Config::attempt_timeout`]: crate::Config::attempt_timeout
    TimedOut {
        /// How long it had run.
        after: Duration,
    },
    /// The dialer panicked; the worker carries on as after an error.
    Panicked(Arc<str>),
}

impl<E> Clone for DialFailure<E> {
    fn clone(&self) -> Self {
        match self {
            DialFailure::Error(e) => DialFailure::Error(Arc::clone(e)),
            DialFailure::TimedOut { after } => DialFailure::TimedOut { after: *after },
            DialFailure::Panicked(m) => DialFailure::Panicked(Arc::clone(m)),
        }
    }
}

impl<E: fmt::Debug> fmt::Debug for DialFailure<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DialFailure::Error(e) => f.debug_tuple("Error").field(e).finish(),
            DialFailure::TimedOut { after } => {
                f.debug_struct("TimedOut").field("after", after).finish()
            }
            DialFailure::Panicked(m) => f.debug_tuple("Panicked").field(m).finish(),
        }
    }
}

/// Why a worker ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StopReason {
    /// It was stopped: [`WorkerHandle::stop`](crate::WorkerHandle::stop),
    /// the root token, or the last handle dropped.
    Stopped,
    /// Code inside the worker panicked (its clock, say; a dialer's panic
    /// only fails that attempt). Its owner should not count on it.
    Panicked(Arc<str>),
}

/// What a worker did.
#[non_exhaustive]
pub enum EventKind<A, C, E> {
    /// An attempt got its global dial slot and called the dialer.
    DialStarted {
        /// The address being dialed.
        addr: A,
    },
    /// An attempt failed.
    DialFailed {
        /// The address that failed.
        addr: A,
        /// Why.
        failure: DialFailure<E>,
        /// What kind of failure: the dialer's
        /// [`classify`](crate::Dialer::classify) for its errors,
        /// [`FailureClass::Timeout`] for a timeout, [`FailureClass::Local`]
        /// for a panic.
        class: FailureClass,
    },
    /// An attempt was cancelled (stand-down, re-plan, another address won,
    /// the address was withdrawn, a user's address took its place, stop); a
    /// connection it produced anyway was dropped, never delivered.
    DialCancelled {
        /// The address of the cancelled attempt.
        addr: A,
    },
    /// An attempt succeeded: the connection is the owner's now. The worker
    /// goes idle next.
    Connected {
        /// The address that answered (now the worker's last known good one).
        addr: A,
        /// The connection.
        conn: C,
    },
    /// The worker waits until `until` before its next round of dials.
    Waiting {
        /// When the next round starts, on the worker's clock.
        until: Instant,
        /// The backoff level (for an owner that keeps it across restarts).
        backoff: Option<Duration>,
    },
    /// The worker wants to connect but knows no address: it waits for an
    /// address update.
    AwaitingAddrs,
    /// The worker is idle (after a connection, a stand-down, or at start).
    Idle,
    /// The worker's task ended; it is the worker's last event.
    Stopped {
        /// Why.
        reason: StopReason,
    },
}

/// The receiving end of a spawner's events, drained by the owner.
///
/// The channel is unbounded so that a worker never waits for its owner. Its
/// growth is bounded by what workers do, not by how many commands arrive:
/// commands coalesce in the mailbox, and each step emits a few events.
pub type Events<P, A, C, E> = mpsc::UnboundedReceiver<Event<P, A, C, E>>;

impl<P: fmt::Debug, A: fmt::Debug, C, E: fmt::Debug> fmt::Debug for Event<P, A, C, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("peer", &self.peer)
            .field("at", &self.at)
            .field("kind", &self.kind)
            .finish()
    }
}

impl<A: fmt::Debug, C, E: fmt::Debug> fmt::Debug for EventKind<A, C, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventKind::DialStarted { addr } => {
                f.debug_struct("DialStarted").field("addr", addr).finish()
            }
            EventKind::DialFailed {
                addr,
                failure,
                class,
            } => f
                .debug_struct("DialFailed")
                .field("addr", addr)
                .field("failure", failure)
                .field("class", class)
                .finish(),
            EventKind::DialCancelled { addr } => {
                f.debug_struct("DialCancelled").field("addr", addr).finish()
            }
            EventKind::Connected { addr, .. } => f
                .debug_struct("Connected")
                .field("addr", addr)
                .finish_non_exhaustive(),
            EventKind::Waiting { until, backoff } => f
                .debug_struct("Waiting")
                .field("until", until)
                .field("backoff", backoff)
                .finish(),
            EventKind::AwaitingAddrs => f.write_str("AwaitingAddrs"),
            EventKind::Idle => f.write_str("Idle"),
            EventKind::Stopped { reason } => {
                f.debug_struct("Stopped").field("reason", reason).finish()
            }
        }
    }
}

impl<E: fmt::Display> fmt::Display for DialFailure<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // Transparent: the dialer's error says it all.
            DialFailure::Error(e) => e.fmt(f),
            DialFailure::TimedOut { after } => write!(f, "attempt timed out after {after:?}"),
            DialFailure::Panicked(m) => write!(f, "dialer panicked: {m}"),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for DialFailure<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            // Transparent: the error's own source, not the error itself
            // (whose message this one already is).
            DialFailure::Error(e) => e.source(),
            _ => None,
        }
    }
}

/// The events of workers that dial with `D`.
pub type DialerEvent<P, D> =
    Event<P, <D as crate::Dialer>::Addr, <D as crate::Dialer>::Conn, <D as crate::Dialer>::Error>;

/// The receiver of the events of workers that dial with `D`.
pub type DialerEvents<P, D> = mpsc::UnboundedReceiver<DialerEvent<P, D>>;
