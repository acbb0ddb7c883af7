//! The crate's error.

use std::io;

use conn_worker::FailureClass;

/// Why a dial or an inbound setup did not end in a connected LDK peer.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The transport could not open a stream (refused, unreachable, DNS,
    /// the SOCKS5 proxy).
    #[error(transparent)]
    Connect(#[from] brontide::ConnectError),
    /// The transport did not open a stream within the connect timeout.
    #[error("connect timed out")]
    ConnectTimeout,
    /// LDK did not finish the noise handshake and `init` within the setup
    /// timeout (the connection was closed).
    #[error("ldk setup timed out")]
    SetupTimeout,
    /// LDK closed the connection before the peer was connected (a failed
    /// handshake, a wrong key, a peer that hung up).
    #[error("disconnected during ldk setup")]
    Disconnected,
    /// LDK closed the connection because it already has one to this peer
    /// (LDK keeps the first).
    #[error("ldk already has a connection to this peer")]
    AlreadyConnected,
    /// The dial was cancelled (the connection, if any, was closed).
    #[error("cancelled")]
    Cancelled,
    /// A socket operation on our side failed (handing the stream to LDK).
    #[error("socket setup failed")]
    Socket(#[source] io::Error),
}

impl Error {
    /// Which kind of failure this is, as the server's events report it.
    pub fn class(&self) -> FailureClass {
        match self {
            Error::Connect(e) => match e.category() {
                brontide::Category::Network => FailureClass::Network,
                brontide::Category::Timeout => FailureClass::Timeout,
                brontide::Category::Peer => FailureClass::Peer,
                _ => FailureClass::Local,
            },
            Error::ConnectTimeout | Error::SetupTimeout => FailureClass::Timeout,
            Error::Disconnected => FailureClass::Network,
            Error::AlreadyConnected | Error::Cancelled | Error::Socket(_) => FailureClass::Local,
        }
    }
}
