use std::sync::Arc;
use std::time::Duration;

use bitcoin::secp256k1::PublicKey;
use conn_worker::{DialFailure, FailureClass};
use tokio::time::Instant;

use crate::{Direction, DisconnectReason, NetAddress, SkipReason};

/// What the server did, for the application to observe (see
/// [`Server::events`](crate::Server::events)). `E` is the dialer's error.
#[derive(Debug)]
#[non_exhaustive]
pub enum ServerEvent<E> {
    /// A connection was established and handed to the peer handler.
    Connected {
        /// The peer.
        peer: PublicKey,
        /// Who dialed.
        direction: Direction,
        /// The address we dialed, or the peer's source address if inbound.
        addr: Option<NetAddress>,
    },
    /// A connection ended (its peer handler returned, panicked or was
    /// aborted). Exactly one per `Connected`.
    Disconnected {
        /// The peer.
        peer: PublicKey,
        /// Who had dialed.
        direction: Direction,
        /// Why.
        reason: DisconnectReason,
        /// How long it lasted.
        lasted: Duration,
        /// Whether the peer's worker was asked to reconnect.
        reconnecting: bool,
    },
    /// A second connection to a peer was resolved by the duplicate rule.
    DuplicateResolved {
        /// The peer.
        peer: PublicKey,
        /// The direction of the connection that was kept.
        kept: Direction,
    },
    /// An inbound connection from a banned peer was refused.
    RefusedBanned {
        /// The peer.
        peer: PublicKey,
    },
    /// A worker started a dial.
    DialStarted {
        /// The peer.
        peer: PublicKey,
        /// The address dialed.
        addr: NetAddress,
    },
    /// A worker's dial failed.
    DialFailed {
        /// The peer.
        peer: PublicKey,
        /// The address dialed.
        addr: NetAddress,
        /// Why: the dialer's error (typed), a timeout or a panic.
        failure: DialFailure<E>,
        /// The peer's fault, the network's, a timeout, or ours.
        class: FailureClass,
    },
    /// A worker waits before its next round.
    Waiting {
        /// The peer.
        peer: PublicKey,
        /// When it dials again.
        until: Instant,
        /// How long the wait is, from when the worker decided it.
        wait: Duration,
        /// The worker's backoff level.
        backoff: Option<Duration>,
    },
    /// A peer's address is not handed to its worker (for example an onion
    /// address when no proxy is configured).
    AddressSkipped {
        /// The peer.
        peer: PublicKey,
        /// The address.
        addr: NetAddress,
        /// Why.
        reason: SkipReason,
    },
    /// A worker wants to connect but knows no address to dial.
    AwaitingAddrs {
        /// The peer.
        peer: PublicKey,
    },
    /// A worker went idle.
    Idle {
        /// The peer.
        peer: PublicKey,
    },
    /// A worker ended because it was stopped (forget, disconnect, prune,
    /// ban, shutdown).
    WorkerStopped {
        /// The peer.
        peer: PublicKey,
    },
    /// A worker ended without being asked (a panic inside it). The server
    /// removed it and, if the peer is still persistent, started a new one
    /// with the same addresses (`restarted`).
    WorkerFailed {
        /// The peer.
        peer: PublicKey,
        /// What the panic said.
        message: Arc<str>,
        /// Whether a new worker took its place.
        restarted: bool,
    },
    /// Handling a worker's event panicked (a bug); the server recovered (a
    /// delivered connection is redialed) and goes on. Counted in
    /// [`Health::event_panics`](crate::Health::event_panics).
    EventPanicked {
        /// The peer the event was about.
        peer: PublicKey,
        /// What the panic said.
        message: Arc<str>,
    },
}

impl<E> Clone for ServerEvent<E> {
    fn clone(&self) -> Self {
        use ServerEvent::*;
        match self {
            Connected {
                peer,
                direction,
                addr,
            } => Connected {
                peer: *peer,
                direction: *direction,
                addr: addr.clone(),
            },
            Disconnected {
                peer,
                direction,
                reason,
                lasted,
                reconnecting,
            } => Disconnected {
                peer: *peer,
                direction: *direction,
                reason: reason.clone(),
                lasted: *lasted,
                reconnecting: *reconnecting,
            },
            DuplicateResolved { peer, kept } => DuplicateResolved {
                peer: *peer,
                kept: *kept,
            },
            RefusedBanned { peer } => RefusedBanned { peer: *peer },
            DialStarted { peer, addr } => DialStarted {
                peer: *peer,
                addr: addr.clone(),
            },
            DialFailed {
                peer,
                addr,
                failure,
                class,
            } => DialFailed {
                peer: *peer,
                addr: addr.clone(),
                failure: failure.clone(),
                class: *class,
            },
            Waiting {
                peer,
                until,
                wait,
                backoff,
            } => Waiting {
                peer: *peer,
                until: *until,
                wait: *wait,
                backoff: *backoff,
            },
            AddressSkipped { peer, addr, reason } => AddressSkipped {
                peer: *peer,
                addr: addr.clone(),
                reason: *reason,
            },
            AwaitingAddrs { peer } => AwaitingAddrs { peer: *peer },
            Idle { peer } => Idle { peer: *peer },
            WorkerStopped { peer } => WorkerStopped { peer: *peer },
            WorkerFailed {
                peer,
                message,
                restarted,
            } => WorkerFailed {
                peer: *peer,
                message: Arc::clone(message),
                restarted: *restarted,
            },
            EventPanicked { peer, message } => EventPanicked {
                peer: *peer,
                message: Arc::clone(message),
            },
        }
    }
}
