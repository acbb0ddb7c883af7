//! Error types: [`HandshakeError`] for the sans-IO handshake, [`DecryptError`]
//! for the message framing, and [`Error`] for everything that does I/O.

use std::fmt;
use std::io;
use std::net::SocketAddr;

use lnaddr::AddressKind;

use crate::keys::SignerError;
use crate::socks::SocksError;

/// One of the three acts of the BOLT 8 handshake.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Act {
    /// Act one: initiator to responder, 50 bytes.
    One,
    /// Act two: responder to initiator, 50 bytes.
    Two,
    /// Act three: initiator to responder, 66 bytes.
    Three,
}

impl Act {
    /// The act's number as the spec writes it (1, 2 or 3).
    pub fn number(self) -> u8 {
        match self {
            Act::One => 1,
            Act::Two => 2,
            Act::Three => 3,
        }
    }

    /// The act's exact length on the wire, version byte included.
    pub fn wire_len(self) -> usize {
        match self {
            Act::One | Act::Two => crate::handshake::ACT_ONE_LEN,
            Act::Three => crate::handshake::ACT_THREE_LEN,
        }
    }
}

impl fmt::Display for Act {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Act::One => f.write_str("act one"),
            Act::Two => f.write_str("act two"),
            Act::Three => f.write_str("act three"),
        }
    }
}

/// What was wrong with an act the peer sent (the spec's failure labels).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum PeerFault {
    /// The act was shorter (or longer) than the spec requires (`READ_FAILED`).
    #[error("expected {expected} bytes, got {got}")]
    ReadFailed {
        /// Bytes the act must have.
        expected: usize,
        /// Bytes that arrived.
        got: usize,
    },
    /// The version byte was not 0 (`BAD_VERSION`).
    #[error("bad version {0}")]
    BadVersion(u8),
    /// A public key did not parse as a point on secp256k1 (`BAD_PUBKEY`).
    #[error("bad public key")]
    BadPubkey,
    /// An authentication tag did not verify (`BAD_TAG`).
    #[error("bad tag")]
    BadTag,
    /// Act three: the encrypted static key did not decrypt (`BAD_CIPHERTEXT`).
    #[error("bad ciphertext")]
    BadCiphertext,
}

impl PeerFault {
    /// The spec's label without the act prefix, e.g. `BAD_VERSION`.
    pub fn label(&self) -> &'static str {
        match self {
            PeerFault::ReadFailed { .. } => "READ_FAILED",
            PeerFault::BadVersion(_) => "BAD_VERSION",
            PeerFault::BadPubkey => "BAD_PUBKEY",
            PeerFault::BadTag => "BAD_TAG",
            PeerFault::BadCiphertext => "BAD_CIPHERTEXT",
        }
    }
}

/// A handshake step failed.
///
/// Peer faults (the other node sent something wrong) are kept apart from
/// local faults (this process could not do its part), so callers can tell a
/// bad peer from a bad environment.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The peer's act was invalid.
    #[error("handshake failed: {act}: {fault}")]
    Peer {
        /// The act in which the fault was detected.
        act: Act,
        /// What was wrong with it.
        fault: PeerFault,
    },
    /// This side could not complete its step (no randomness, or an internal
    /// error of the Noise state machine).
    #[error("handshake failed: {act}: local failure: {reason}")]
    Local {
        /// The act being produced or consumed.
        act: Act,
        /// A short description.
        reason: &'static str,
    },
    /// The node's [`NodeSigner`](crate::NodeSigner) failed its ECDH (a
    /// local fault).
    #[error("handshake failed: {act}")]
    Signer {
        /// The act being produced or consumed.
        act: Act,
        /// The signer's error.
        #[source]
        error: SignerError,
    },
}

impl HandshakeError {
    /// The act in which the error happened.
    pub fn act(&self) -> Act {
        match self {
            HandshakeError::Peer { act, .. }
            | HandshakeError::Local { act, .. }
            | HandshakeError::Signer { act, .. } => *act,
        }
    }

    /// The peer's fault, if the peer is to blame.
    pub fn peer_fault(&self) -> Option<PeerFault> {
        match self {
            HandshakeError::Peer { fault, .. } => Some(*fault),
            HandshakeError::Local { .. } | HandshakeError::Signer { .. } => None,
        }
    }

    /// The spec's label for a peer fault, e.g. `ACT2_BAD_VERSION`; `None` for
    /// local faults.
    pub fn code(&self) -> Option<String> {
        self.peer_fault()
            .map(|fault| format!("ACT{}_{}", self.act().number(), fault.label()))
    }

    pub(crate) fn peer(act: Act, fault: PeerFault) -> Self {
        HandshakeError::Peer { act, fault }
    }
}

/// A message frame failed to authenticate: the peer (or the path to it)
/// corrupted the stream. The decryptor must not be used afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecryptError {
    /// The 18-byte length header did not authenticate.
    #[error("bad tag on message length")]
    BadLengthTag,
    /// The message body did not authenticate.
    #[error("bad tag on message body")]
    BadBodyTag,
    /// The buffer handed in has the wrong size for the frame part.
    #[error("frame part has {got} bytes, expected {expected}")]
    WrongLength {
        /// The size the frame part must have.
        expected: usize,
        /// The size given.
        got: usize,
    },
    /// A previous frame failed to decrypt, so this decryptor is unusable.
    #[error("decryptor already failed")]
    Poisoned,
}

/// A message longer than [`MAX_MESSAGE_LEN`](crate::MAX_MESSAGE_LEN) was
/// handed to an encryptor. Nothing was written and the cipher state is
/// unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("message of {len} bytes exceeds the 65535-byte maximum")]
pub struct MessageTooLarge {
    /// The length of the refused message.
    pub len: usize,
}

/// Who or what is to blame for an [`Error`], for callers that act on it
/// (count it, back off, ban) without matching every variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Category {
    /// The other node sent something invalid: a bad act, a frame that does
    /// not authenticate, a truncated frame.
    Peer,
    /// The path to the peer failed: DNS, a refused or reset connection, an
    /// unreachable host (also when a proxy says so).
    Network,
    /// Something took longer than its timeout: the connect or an act.
    Timeout,
    /// This side failed: its configuration (no proxy for an onion address,
    /// a proxy that is down or refuses our credentials), its signer, its
    /// randomness, a message too large to send.
    Local,
    /// The caller cancelled.
    Cancelled,
}

impl fmt::Display for Category {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Category::Peer => "peer",
            Category::Network => "network",
            Category::Timeout => "timeout",
            Category::Local => "local",
            Category::Cancelled => "cancelled",
        })
    }
}

/// Why a [`Transport`](crate::Transport) could not open a byte stream.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    /// The DNS lookup of a host name failed.
    #[error("dns lookup of {host} failed")]
    Resolve {
        /// The host name.
        host: String,
        /// The resolver's error.
        #[source]
        source: io::Error,
    },
    /// A host name resolved to no address.
    #[error("{host} resolved to no address")]
    NoAddress {
        /// The host name.
        host: String,
    },
    /// The TCP connect failed (for a host name: the last address tried).
    #[error("tcp connect to {addr} failed")]
    Tcp {
        /// The address dialed.
        addr: SocketAddr,
        /// The socket error.
        #[source]
        source: io::Error,
    },
    /// The SOCKS5 proxy did not connect us.
    #[error(transparent)]
    Socks(#[from] SocksError),
    /// This transport cannot reach addresses of this kind (an onion address
    /// and no proxy).
    #[error("{0} addresses cannot be reached without a socks5 proxy")]
    Unreachable(AddressKind),
    /// Setting a socket option (`TCP_NODELAY`, keepalive) failed.
    #[error("setting a socket option failed")]
    SocketOption(#[source] io::Error),
    /// Another transport's error.
    #[error(transparent)]
    Other(io::Error),
}

impl ConnectError {
    /// Who or what is to blame.
    pub fn category(&self) -> Category {
        match self {
            ConnectError::Resolve { .. }
            | ConnectError::NoAddress { .. }
            | ConnectError::Tcp { .. }
            | ConnectError::Other(_) => Category::Network,
            ConnectError::Socks(e) => e.category(),
            ConnectError::Unreachable(_) | ConnectError::SocketOption(_) => Category::Local,
        }
    }

    /// The SOCKS5 error, if the proxy was the one to fail.
    pub fn socks(&self) -> Option<&SocksError> {
        match self {
            ConnectError::Socks(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for ConnectError {
    fn from(e: io::Error) -> Self {
        ConnectError::Other(e)
    }
}

/// Errors of the I/O layer: dialing, accepting and the message codec.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The caller's cancellation token fired.
    #[error("cancelled")]
    Cancelled,
    /// The connect (DNS, TCP or the proxy, and every address a host name
    /// resolved to) did not complete within the connect timeout.
    #[error("connect timed out")]
    ConnectTimedOut,
    /// The connect failed.
    #[error("connect failed")]
    Connect(#[source] ConnectError),
    /// The peer did not complete an act within the per-act timeout.
    #[error("handshake timed out in {0}")]
    HandshakeTimedOut(Act),
    /// The handshake failed (see the act and the failure inside).
    #[error(transparent)]
    Handshake(#[from] HandshakeError),
    /// Reading or writing an act failed at the socket.
    #[error("handshake i/o failed in {act}")]
    HandshakeIo {
        /// The act being read or written.
        act: Act,
        /// The socket error.
        #[source]
        source: io::Error,
    },
    /// A message frame failed to authenticate.
    #[error("decrypt failed")]
    Decrypt(#[from] DecryptError),
    /// A message was too large to send.
    #[error(transparent)]
    MessageTooLarge(#[from] MessageTooLarge),
    /// The connection ended in the middle of a frame.
    #[error("connection closed in the middle of a frame")]
    TruncatedFrame,
    /// A socket error after the handshake.
    #[error("connection i/o failed")]
    Io(#[from] io::Error),
}

impl Error {
    /// Who or what is to blame: the peer, the network, a timeout, this
    /// side, or the caller's cancellation.
    pub fn category(&self) -> Category {
        match self {
            Error::Cancelled => Category::Cancelled,
            Error::ConnectTimedOut | Error::HandshakeTimedOut(_) => Category::Timeout,
            Error::Connect(e) => e.category(),
            Error::Handshake(e) if e.peer_fault().is_some() => Category::Peer,
            Error::Handshake(_) | Error::MessageTooLarge(_) => Category::Local,
            Error::Decrypt(_) | Error::TruncatedFrame => Category::Peer,
            Error::HandshakeIo { .. } | Error::Io(_) => Category::Network,
        }
    }

    /// `true` if the other node is to blame (it sent invalid handshake data or
    /// a frame that does not authenticate), `false` for local faults,
    /// timeouts, cancellation and network errors.
    pub fn is_peer_fault(&self) -> bool {
        self.category() == Category::Peer
    }

    /// The SOCKS5 error, if the dial failed at the proxy.
    pub fn socks(&self) -> Option<&SocksError> {
        match self {
            Error::Connect(e) => e.socks(),
            _ => None,
        }
    }

    /// The handshake's failure, if the handshake failed.
    pub fn handshake(&self) -> Option<&HandshakeError> {
        match self {
            Error::Handshake(e) => Some(e),
            _ => None,
        }
    }
}

/// A configuration that cannot work, refused when it is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// A listener must allow at least one handshake at a time.
    #[error("max_handshakes must be at least 1")]
    ZeroMaxHandshakes,
    /// A listener's handshake slots are a tokio semaphore, which holds at
    /// most `max` permits.
    #[error("max_handshakes must be at most {max}")]
    TooManyHandshakes {
        /// The largest bound allowed.
        max: usize,
    },
    /// A listener must let at least one connection wait for a slot.
    #[error("max_pending must be at least 1")]
    ZeroMaxPending,
    /// Keepalive needs an idle time and an interval of 1 to 32767 s and 1
    /// to 127 probes (Linux refuses other values).
    #[error("keepalive needs idle and interval of 1 to 32767 s and 1 to 127 retries")]
    Keepalive,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Initiator, NodeKeyPair, NodeSigner, PublicKey, Responder, SecretKey};
    use bitcoin::secp256k1::ecdh::SharedSecret;

    /// The messages of an error and its sources, as a logger joins them.
    fn chain(e: &dyn std::error::Error) -> String {
        let mut out = e.to_string();
        let mut next = e.source();
        while let Some(cause) = next {
            out.push_str(": ");
            out.push_str(&cause.to_string());
            next = cause.source();
        }
        out
    }

    #[derive(Clone)]
    struct Down(PublicKey);

    impl NodeSigner for Down {
        fn node_id(&self) -> PublicKey {
            self.0
        }
        fn ecdh(&self, _: &PublicKey) -> Result<SharedSecret, SignerError> {
            Err(SignerError::new("hsm down"))
        }
    }

    #[test]
    fn a_signer_failure_says_each_part_once() {
        let key = |b| NodeKeyPair::new(SecretKey::from_slice(&[b; 32]).unwrap());
        let server = key(0x21);
        let (act_one, _) = Initiator::new(&key(0x11), &server.public_key())
            .and_then(Initiator::act_one)
            .unwrap();
        let signer = Down(server.public_key());
        let Err(e) = Responder::new(&signer).and_then(|r| r.read_act_one(&act_one)) else {
            panic!("the signer failed");
        };
        assert!(
            matches!(e, HandshakeError::Signer { act: Act::One, .. }),
            "{e:?}"
        );
        assert_eq!(
            chain(&e),
            "handshake failed: act one: signer failed: hsm down"
        );
        let e = Error::from(e);
        assert_eq!(
            chain(&e),
            "handshake failed: act one: signer failed: hsm down"
        );
        assert_eq!(e.category(), Category::Local);
    }
}
