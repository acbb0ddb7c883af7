//! A worker's state snapshot.

use std::fmt;
use std::time::Duration;

use tokio::time::Instant;

use crate::DialFailure;

/// What a worker is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum State {
    /// Not trying to connect (connected, stood down, or never asked).
    Idle,
    /// Waiting before its next round.
    Waiting,
    /// Dialing.
    Dialing,
    /// Wants to connect, knows no address.
    AwaitingAddrs,
    /// The task has ended.
    Stopped,
}

/// A snapshot of one worker, for display. Owners must not decide from it:
/// it may be stale by the time it is read; post the fact to the worker and
/// let it decide.
#[non_exhaustive]
pub struct Status<A, E> {
    /// What it is doing.
    pub state: State,
    /// The backoff level (the last wait after a failed round or a
    /// disconnect).
    pub backoff: Option<Duration>,
    /// Dials started since the last connection.
    pub attempts: u64,
    /// Why the last attempt failed, if none succeeded since.
    pub last_error: Option<DialFailure<E>>,
    /// When the next round starts, if waiting.
    pub next_attempt: Option<Instant>,
    /// Attempts in flight.
    pub in_flight: usize,
    /// Every address, in the order the next round tries them.
    pub addrs: Vec<A>,
    /// The user-given addresses, latest first.
    pub user_addrs: Vec<A>,
    /// The advertised addresses, from the latest announcement.
    pub advertised: Vec<A>,
    /// The address of the last connection.
    pub last_good: Option<A>,
}

impl<A: Clone, E> Clone for Status<A, E> {
    fn clone(&self) -> Self {
        Status {
            state: self.state,
            backoff: self.backoff,
            attempts: self.attempts,
            last_error: self.last_error.clone(),
            next_attempt: self.next_attempt,
            in_flight: self.in_flight,
            addrs: self.addrs.clone(),
            user_addrs: self.user_addrs.clone(),
            advertised: self.advertised.clone(),
            last_good: self.last_good.clone(),
        }
    }
}

impl<A: fmt::Debug, E: fmt::Debug> fmt::Debug for Status<A, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Status")
            .field("state", &self.state)
            .field("backoff", &self.backoff)
            .field("attempts", &self.attempts)
            .field("last_error", &self.last_error)
            .field("next_attempt", &self.next_attempt)
            .field("in_flight", &self.in_flight)
            .field("addrs", &self.addrs)
            .field("user_addrs", &self.user_addrs)
            .field("advertised", &self.advertised)
            .field("last_good", &self.last_good)
            .finish()
    }
}

/// What the worker keeps of its status for handles to read: a [`Status`]
/// without the address order, which is computed when read.
pub(crate) struct Snapshot<A, E> {
    pub(crate) state: State,
    pub(crate) backoff: Option<Duration>,
    pub(crate) attempts: u64,
    pub(crate) last_error: Option<DialFailure<E>>,
    pub(crate) next_attempt: Option<Instant>,
    pub(crate) in_flight: usize,
    pub(crate) user_addrs: Vec<A>,
    pub(crate) advertised: Vec<A>,
    pub(crate) last_good: Option<A>,
}

impl<A, E> Snapshot<A, E> {
    /// A worker that has not started yet.
    pub(crate) fn initial() -> Self {
        Snapshot {
            state: State::Idle,
            backoff: None,
            attempts: 0,
            last_error: None,
            next_attempt: None,
            in_flight: 0,
            user_addrs: Vec::new(),
            advertised: Vec::new(),
            last_good: None,
        }
    }
}

impl<A: Clone + PartialEq, E> Snapshot<A, E> {
    /// The status this snapshot describes.
    pub(crate) fn to_status(&self) -> Status<A, E> {
        Status {
            state: self.state,
            backoff: self.backoff,
            attempts: self.attempts,
            last_error: self.last_error.clone(),
            next_attempt: self.next_attempt,
            in_flight: self.in_flight,
            addrs: crate::planner::order(
                &self.user_addrs,
                &self.advertised,
                self.last_good.as_ref(),
            ),
            user_addrs: self.user_addrs.clone(),
            advertised: self.advertised.clone(),
            last_good: self.last_good.clone(),
        }
    }
}
