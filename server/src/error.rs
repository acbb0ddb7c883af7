use std::sync::Arc;

use bitcoin::secp256k1::PublicKey;
use conn_worker::FailureClass;

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
    /// The peer is neither connected nor persistent.
    #[error("unknown peer {0}")]
    UnknownPeer(PublicKey),
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
    #[error("cannot dial {addr}")]
    Unreachable {
        /// The address.
        addr: NetAddress,
        /// Why.
        #[source]
        reason: SkipReason,
    },
    /// The peer store could not make the change durable: nothing of it was
    /// applied (see [`Server::open`](crate::Server::open)). Also returned by
    /// `open` when the store cannot be read.
    #[error("peer store failed")]
    Store(#[source] Arc<dyn std::error::Error + Send + Sync>),
    /// A one-off dial failed. `source` is the dialer's own error (downcast
    /// it to the dialer's `Error` type), or the text of its panic.
    #[error("dial failed ({class})")]
    Dial {
        /// What kind of failure.
        class: FailureClass,
        /// The cause.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// A dialer's panic, as an error.
#[derive(Debug, thiserror::Error)]
#[error("dialer panicked: {0}")]
pub(crate) struct DialerPanicked(pub(crate) String);
