use std::future::Future;
use std::sync::Arc;

use bitcoin::secp256k1::PublicKey;
use conn_worker::FailureClass;
use tokio_util::sync::CancellationToken;

use crate::Direction;

/// Why a connection ended, as the application's [`PeerHandler`] reports it
/// (or the server, for a handler that panicked or was aborted).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The peer closed the connection or the transport failed.
    Remote(String),
    /// The peer broke the protocol (a bad message, a failed decryption).
    PeerFault(String),
    /// The peer stopped answering (no pong within the liveness timeout).
    TimedOut,
    /// The application closed it (its own reasons).
    Local(String),
    /// The server cancelled it: [`disconnect`](crate::Server::disconnect),
    /// a ban, a duplicate connection that lost, or shutdown.
    Cancelled,
    /// The peer handler panicked; the server cleared the connection.
    HandlerPanicked(Arc<str>),
    /// The peer handler ignored its cancellation at shutdown and was
    /// aborted after the grace.
    Aborted,
}

impl DisconnectReason {
    /// What kind of end this was: the peer's fault, the network's, a
    /// timeout, or ours.
    pub fn class(&self) -> FailureClass {
        match self {
            DisconnectReason::Remote(_) => FailureClass::Network,
            DisconnectReason::PeerFault(_) => FailureClass::Peer,
            DisconnectReason::TimedOut => FailureClass::Timeout,
            DisconnectReason::Local(_)
            | DisconnectReason::Cancelled
            | DisconnectReason::HandlerPanicked(_)
            | DisconnectReason::Aborted => FailureClass::Local,
        }
    }
}

impl std::fmt::Display for DisconnectReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DisconnectReason::Remote(why) => write!(f, "remote: {why}"),
            DisconnectReason::PeerFault(why) => write!(f, "peer fault: {why}"),
            DisconnectReason::TimedOut => f.write_str("peer stopped answering"),
            DisconnectReason::Local(why) => write!(f, "local: {why}"),
            DisconnectReason::Cancelled => f.write_str("cancelled"),
            DisconnectReason::HandlerPanicked(m) => write!(f, "peer handler panicked: {m}"),
            DisconnectReason::Aborted => f.write_str("peer handler aborted at shutdown"),
        }
    }
}

/// The application's side of a connection: the protocol above BOLT 8.
///
/// The server hands each established connection to [`run`](PeerHandler::run)
/// on a task of its own and learns from its return that the connection
/// ended; a persistent peer is then reconnected with the backoff for how long
/// the connection lasted. A handler that panics is treated as one that
/// returned [`DisconnectReason::HandlerPanicked`]: the connection is cleared
/// and reported as ended, exactly once, either way.
pub trait PeerHandler<C>: Send + Sync + 'static {
    /// Runs one established connection until it ends or `cancel` fires (the
    /// server cancels it on [`disconnect`](crate::Server::disconnect), on a
    /// duplicate that loses, and on shutdown). Dropping `conn` closes it.
    fn run(
        &self,
        peer: PublicKey,
        conn: C,
        direction: Direction,
        cancel: CancellationToken,
    ) -> impl Future<Output = DisconnectReason> + Send;

    /// The server suspects the peer's running connection is dead: a new
    /// connection from it lost the duplicate rule and is held for
    /// [`Config::duplicate_grace`](crate::Config::duplicate_grace). A
    /// handler that can should ping the peer now and end the connection if
    /// no answer comes well within the grace, so a half-open peer's new
    /// connection takes over in seconds. The default does nothing (the
    /// handler's own liveness checks find a dead link later).
    fn probe(&self, peer: PublicKey) {
        let _ = peer;
    }
}
