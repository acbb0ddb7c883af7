use bitcoin::secp256k1::PublicKey;

use crate::{NetAddress, SkipReason};

/// Why a server operation was refused or failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServerError {
    /// A non-perm connect to a peer that is already connected.
    #[error("already connected to {0}")]
    AlreadyConnected(PublicKey),
    /// The operation needs a connection to the peer and there is none.
    #[error("not connected to {0}")]
    NotConnected(PublicKey),
    /// The peer is banned.
    #[error("peer {0} is banned")]
    Banned(PublicKey),
    /// The peer is our own node.
    #[error("refusing to connect to ourselves")]
    SelfConnect,
    /// The server is shutting down or has shut down.
    #[error("server is shut down")]
    ShutDown,
    /// A one-off dial did not finish within its timeout.
    #[error("dial timed out")]
    DialTimedOut,
    /// The address cannot be dialed (an onion address without a proxy).
    #[error("cannot dial {addr}: {reason}")]
    Unreachable {
        /// The address.
        addr: NetAddress,
        /// Why.
        reason: SkipReason,
    },
    /// A one-off dial failed.
    #[error("dial failed: {0}")]
    Dial(#[source] Box<dyn std::error::Error + Send + Sync>),
}
