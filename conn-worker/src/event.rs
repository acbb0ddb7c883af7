//! What workers report to their owner.

use std::fmt;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::Dialer;

/// One step of one worker, tagged with the peer.
#[non_exhaustive]
pub struct Event<P, D: Dialer> {
    /// The worker's peer.
    pub peer: P,
    /// When it happened, on the worker's clock.
    pub at: Instant,
    /// What happened.
    pub kind: EventKind<D>,
}

/// What a worker did.
#[non_exhaustive]
pub enum EventKind<D: Dialer> {
    /// An attempt got its global dial slot and called the dialer.
    DialStarted {
        /// The address being dialed.
        addr: D::Addr,
    },
    /// An attempt failed.
    DialFailed {
        /// The address that failed.
        addr: D::Addr,
        /// Why.
        error: Arc<D::Error>,
    },
    /// An attempt was cancelled (stand-down, re-plan, another address won,
    /// the address was withdrawn, stop); a connection it produced anyway was
    /// dropped, never delivered.
    DialCancelled {
        /// The address of the cancelled attempt.
        addr: D::Addr,
    },
    /// An attempt succeeded: the connection is the owner's now. The worker
    /// goes idle next.
    Connected {
        /// The address that answered (now the worker's last known good one).
        addr: D::Addr,
        /// The connection.
        conn: D::Conn,
    },
    /// The worker waits until `until` before its next round of dials.
    Waiting {
        /// When the next round starts, on the worker's clock.
        until: Instant,
    },
    /// The worker wants to connect but knows no address: it waits for an
    /// address update.
    AwaitingAddrs,
    /// The worker is idle (after a connection, a stand-down, or at start).
    Idle,
    /// The worker's task ended; it is the worker's last event.
    Stopped,
}

/// The receiving end of a spawner's events, drained by the owner.
///
/// The channel is unbounded so that a worker never waits for its owner. Its
/// growth is bounded by what workers do, not by how many commands arrive:
/// commands coalesce in the mailbox, and each step emits a few events.
pub type Events<P, D> = mpsc::UnboundedReceiver<Event<P, D>>;

impl<P: fmt::Debug, D: Dialer> fmt::Debug for Event<P, D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Event")
            .field("peer", &self.peer)
            .field("at", &self.at)
            .field("kind", &self.kind)
            .finish()
    }
}

impl<D: Dialer> fmt::Debug for EventKind<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EventKind::DialStarted { addr } => {
                f.debug_struct("DialStarted").field("addr", addr).finish()
            }
            EventKind::DialFailed { addr, error } => f
                .debug_struct("DialFailed")
                .field("addr", addr)
                .field("error", &format_args!("{error}"))
                .finish(),
            EventKind::DialCancelled { addr } => {
                f.debug_struct("DialCancelled").field("addr", addr).finish()
            }
            EventKind::Connected { addr, .. } => f
                .debug_struct("Connected")
                .field("addr", addr)
                .finish_non_exhaustive(),
            EventKind::Waiting { until } => {
                f.debug_struct("Waiting").field("until", until).finish()
            }
            EventKind::AwaitingAddrs => f.write_str("AwaitingAddrs"),
            EventKind::Idle => f.write_str("Idle"),
            EventKind::Stopped => f.write_str("Stopped"),
        }
    }
}
