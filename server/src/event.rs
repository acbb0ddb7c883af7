use std::time::Duration;

use bitcoin::secp256k1::PublicKey;
use tokio::time::Instant;

use crate::{Direction, DisconnectReason, NetAddress, SkipReason};

/// What the server did, for the application to observe (see
/// [`Server::events`](crate::Server::events)).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ServerEvent {
    /// A connection was established and handed to the peer handler.
    Connected {
        /// The peer.
        peer: PublicKey,
        /// Who dialed.
        direction: Direction,
        /// The address we dialed, or the peer's source address if inbound.
        addr: Option<NetAddress>,
    },
    /// A connection ended (the peer handler returned).
    Disconnected {
        /// The peer.
        peer: PublicKey,
        /// Who had dialed.
        direction: Direction,
        /// Why, as the handler said.
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
        /// The dialer's error, as text.
        error: String,
    },
    /// A worker waits before its next round.
    Waiting {
        /// The peer.
        peer: PublicKey,
        /// When it dials again.
        until: Instant,
        /// How long the wait is, from when the worker decided it.
        wait: Duration,
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
    /// A worker ended.
    WorkerStopped {
        /// The peer.
        peer: PublicKey,
    },
}
