use std::future::Future;

use bitcoin::secp256k1::PublicKey;
use tokio_util::sync::CancellationToken;

use crate::Direction;

/// Why a connection ended, as the application's [`PeerHandler`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DisconnectReason {
    /// The peer closed the connection or the transport failed.
    Remote(String),
    /// The application closed it (a protocol error, the peer misbehaved).
    Local(String),
    /// The server cancelled it: [`disconnect`](crate::Server::disconnect),
    /// a duplicate connection that lost, or shutdown.
    Cancelled,
}

/// The application's side of a connection: the protocol above BOLT 8.
///
/// The server hands each established connection to [`run`](PeerHandler::run)
/// on a task of its own and learns from its return that the connection
/// ended; a persistent peer is then reconnected with the backoff for how long
/// the connection lasted.
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
}
