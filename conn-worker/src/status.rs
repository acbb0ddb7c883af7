//! A worker's state, as a snapshot.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::Dialer;

/// What a worker is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum State {
    /// Not trying to connect (at start, after a connection was delivered, or
    /// after a stand-down).
    Idle,
    /// Waiting before the next round of dials (see
    /// [`Status::next_attempt`]).
    Waiting,
    /// Dials in flight or about to start.
    Dialing,
    /// Wants to connect but knows no address.
    AwaitingAddrs,
    /// The worker's task has ended.
    Stopped,
}

/// A snapshot of a worker, from [`WorkerHandle::status`](crate::WorkerHandle::status).
#[non_exhaustive]
pub struct Status<D: Dialer> {
    /// What the worker is doing.
    pub state: State,
    /// The backoff level: the delay after the last failed round or
    /// disconnect, `None` before any. The next failed round backs off from
    /// it. A connection does not reset it (lnd's rule: a disconnect after a
    /// stable connection relaxes it instead).
    pub backoff: Option<Duration>,
    /// Dials started since the last connection (or since the start).
    pub attempts: u64,
    /// The last dial error since the last connection.
    pub last_error: Option<Arc<D::Error>>,
    /// When the next round starts, while [`State::Waiting`].
    pub next_attempt: Option<Instant>,
    /// Attempts in flight now (dialing, or waiting for a global dial slot).
    pub in_flight: usize,
    /// The addresses the worker knows, in the order given.
    pub addrs: Vec<D::Addr>,
    /// The address of the last connection, dialed first in each round.
    pub last_good: Option<D::Addr>,
}

impl<D: Dialer> Clone for Status<D> {
    fn clone(&self) -> Self {
        Status {
            state: self.state,
            backoff: self.backoff,
            attempts: self.attempts,
            last_error: self.last_error.clone(),
            next_attempt: self.next_attempt,
            in_flight: self.in_flight,
            addrs: self.addrs.clone(),
            last_good: self.last_good.clone(),
        }
    }
}

impl<D: Dialer> fmt::Debug for Status<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Status")
            .field("state", &self.state)
            .field("backoff", &self.backoff)
            .field("attempts", &self.attempts)
            .field(
                "last_error",
                &self.last_error.as_ref().map(|e| e.to_string()),
            )
            .field("next_attempt", &self.next_attempt)
            .field("in_flight", &self.in_flight)
            .field("addrs", &self.addrs)
            .field("last_good", &self.last_good)
            .finish()
    }
}

impl<D: Dialer> Status<D> {
    pub(crate) fn initial() -> Self {
        Status {
            state: State::Idle,
            backoff: None,
            attempts: 0,
            last_error: None,
            next_attempt: None,
            in_flight: 0,
            addrs: Vec::new(),
            last_good: None,
        }
    }
}
